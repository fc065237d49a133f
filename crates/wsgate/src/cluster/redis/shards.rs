//! Cluster mode's pub/sub (`--redis-mode cluster`): one RESP3 connection
//! per shard primary, and one `SSUBSCRIBE` per channel, sent to the primary
//! of the channel's slot ([`crate::redis::cluster::ShardMap`], read with
//! `CLUSTER SLOTS` each time the subscriber connects). Never a multi-slot
//! batch: a node answers one with `CROSSSLOT` and subscribes none of it.
//!
//! Messages arrive as RESP3 pushes (`smessage`). redis-rs hands each push
//! to [`Shards`]'s handler inside the connection's reader, so the handler
//! only queues the payload with [`Queue::try_push`] (which never waits),
//! like the single-mode reader. Three pushes end the whole set of
//! connections, with a reason on the `ended` channel: a `sunsubscribe` this
//! node did not ask for (its slot moved to another shard, or the shard
//! failed over), a lost connection (`Disconnection`), or a full queue. The
//! subscriber then reads the shard map again, resubscribes everything on the
//! primaries that own the slots now, and catches up (resync and inbox
//! catch-up) exactly as after a Redis restart, so a failover loses nothing
//! the inboxes and room histories hold.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::future::join_all;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, PushInfo, PushKind, Value};
use tokio::sync::mpsc;

use super::inbound::Queue;
use super::Inner;
use crate::redis::cluster::ShardMap;
use crate::redis::{CONNECT_TIMEOUT, OP_TIMEOUT};

/// The subscriber's connections to every shard primary.
pub(super) struct Shards {
    map: ShardMap,
    conns: Vec<MultiplexedConnection>,
    /// Channels this node is unsubscribing: their `sunsubscribe` is expected.
    leaving: Arc<Mutex<HashSet<String>>>,
}

/// What a shard connection's push handler needs.
#[derive(Clone)]
struct Handler {
    queue: Queue,
    node_channel: String,
    leaving: Arc<Mutex<HashSet<String>>>,
    ended: mpsc::Sender<String>,
    overflows: prometheus::IntCounter,
}

impl Handler {
    fn end(&self, reason: String) {
        // One reason is enough: the channel holds one, later ones are dropped.
        if self.ended.try_send(reason).is_err() {
            tracing::trace!("A shard connection ended after another.");
        }
    }

    fn push(&self, info: PushInfo) {
        match info.kind {
            PushKind::SMessage | PushKind::Message => {
                let (Some(channel), Some(Value::BulkString(payload))) =
                    (info.data.first(), info.data.get(1))
                else {
                    return;
                };
                let own = matches!(channel, Value::BulkString(c) if c.as_slice() == self.node_channel.as_bytes());
                if self.queue.try_push(payload, own).is_err() {
                    self.overflows.inc();
                    self.end(format!(
                        "the bus queue to the node is full ({} payloads or {} MiB)",
                        super::inbound::QUEUE_LEN,
                        super::inbound::QUEUE_BYTES >> 20
                    ));
                }
            }
            PushKind::SUnsubscribe => {
                let channel = match info.data.first() {
                    Some(Value::BulkString(c)) => String::from_utf8_lossy(c).into_owned(),
                    _ => String::new(),
                };
                let asked = self
                    .leaving
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&channel);
                if !asked {
                    self.end(format!(
                        "Redis unsubscribed {channel} (its slot moved or its shard failed over)"
                    ));
                }
            }
            PushKind::Disconnection => self.end("a shard connection was lost".into()),
            _ => {}
        }
    }
}

impl Shards {
    /// Reads the shard map and connects to every primary. The receiver
    /// yields the reason once any connection must be made again.
    pub(super) async fn connect(
        inner: &Inner,
        queue: &Queue,
    ) -> Result<(Shards, mpsc::Receiver<String>), String> {
        let redis = &inner.redis;
        let map = redis.shard_map().await.map_err(|e| e.to_string())?;
        if map.primaries().is_empty() {
            return Err("CLUSTER SLOTS names no primary".into());
        }
        let (ended, end_rx) = mpsc::channel(1);
        let leaving = Arc::new(Mutex::new(HashSet::new()));
        let handler = Handler {
            queue: queue.clone(),
            node_channel: redis.keys().node_channel(&inner.node),
            leaving: leaving.clone(),
            ended,
            overflows: inner.metrics.bus_queue_overflows.clone(),
        };
        let opened = join_all(map.primaries().iter().map(|(host, port)| {
            let handler = handler.clone();
            async move {
                let client = redis.node_client(host, *port).map_err(|e| e.to_string())?;
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    .set_response_timeout(None)
                    .set_push_sender(
                        move |info: PushInfo| -> Result<(), std::convert::Infallible> {
                            handler.push(info);
                            Ok(())
                        },
                    );
                match tokio::time::timeout(
                    CONNECT_TIMEOUT,
                    client.get_multiplexed_async_connection_with_config(&config),
                )
                .await
                {
                    Ok(Ok(c)) => Ok(c),
                    Ok(Err(e)) => Err(format!("shard {host}:{port}: {e}")),
                    Err(_) => Err(format!("shard {host}:{port}: connect timed out")),
                }
            }
        }))
        .await;
        let conns = opened.into_iter().collect::<Result<Vec<_>, String>>()?;
        Ok((
            Shards {
                map,
                conns,
                leaving,
            },
            end_rx,
        ))
    }

    /// Sends `command channel` for each channel to the primary of its slot,
    /// all at once, and waits for every answer.
    async fn each(&self, command: &str, channels: &[String]) -> Result<(), String> {
        let sent = join_all(channels.iter().map(|channel| async move {
            let shard = self
                .map
                .shard_of(channel)
                .ok_or_else(|| format!("no primary serves the slot of {channel}"))?;
            let mut conn = self.conns[shard].clone();
            let mut cmd = redis::cmd(command);
            cmd.arg(channel);
            match tokio::time::timeout(OP_TIMEOUT, cmd.query_async::<Value>(&mut conn)).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(format!("{command} {channel}: {e}")),
                Err(_) => Err(format!("{command} {channel} timed out")),
            }
        }))
        .await;
        sent.into_iter().collect()
    }

    /// `SSUBSCRIBE`s each channel on its shard.
    pub(super) async fn subscribe(&self, channels: &[String]) -> Result<(), String> {
        self.each("SSUBSCRIBE", channels).await
    }

    /// `SUNSUBSCRIBE`s each channel on its shard.
    pub(super) async fn unsubscribe(&self, channels: &[String]) -> Result<(), String> {
        self.leaving
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(channels.iter().cloned());
        self.each("SUNSUBSCRIBE", channels).await
    }

    /// Pings every shard connection.
    pub(super) async fn ping(&self) -> Result<(), String> {
        let pinged = join_all(self.conns.iter().map(|c| {
            let mut c = c.clone();
            async move {
                match tokio::time::timeout(
                    OP_TIMEOUT,
                    redis::cmd("PING").query_async::<Value>(&mut c),
                )
                .await
                {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(format!("ping failed: {e}")),
                    Err(_) => Err("ping timed out".to_owned()),
                }
            }
        }))
        .await;
        pinged.into_iter().collect()
    }
}
