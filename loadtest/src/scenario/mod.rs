//! The scenarios and what they share: a worker's context ([`Ctx`]: its share,
//! resolved endpoints, naming) and opening many connections at once
//! ([`Ctx::open`]: bounded concurrency, optional pacing, spread over source
//! addresses and server URLs).
//!
//! Every connection has a global index `g` over the whole run (all workers).
//! It picks the user name (`lg<run>u<g>`), the source address (`g` modulo the
//! number of source addresses) and, unless a scenario places it explicitly,
//! the server URL (`g` modulo the number of URLs).

mod conn;
mod idle;
mod large;
mod park;
mod traffic;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::cli::{
    BroadcastArgs, Common, ConnectArgs, DirectArgs, IdleArgs, LargeRoomArgs, RoomsArgs,
};
use crate::link::{Ctl, Share};
use crate::stats::{self, Live, WorkerResult};
use crate::wire::{self, Client, Endpoint, WireError};
pub use park::{park, unpark_all, Parked};

/// Connections per source address when `--source-ips` is 0.
const SOURCE_CONNECTIONS: u64 = 5_000;

/// One scenario with its parameters.
#[derive(Clone, Debug)]
pub enum Scenario {
    Idle(IdleArgs),
    Connect(ConnectArgs),
    Broadcast(BroadcastArgs),
    Rooms(RoomsArgs),
    Direct(DirectArgs),
    LargeRoom(LargeRoomArgs),
}

impl Scenario {
    pub fn common(&self) -> &Common {
        match self {
            Scenario::Idle(a) => &a.common,
            Scenario::Connect(a) => &a.common,
            Scenario::Broadcast(a) => &a.common,
            Scenario::Rooms(a) => &a.common,
            Scenario::Direct(a) => &a.common,
            Scenario::LargeRoom(a) => &a.common,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Scenario::Idle(_) => "idle",
            Scenario::Connect(_) => "connect",
            Scenario::Broadcast(_) => "broadcast",
            Scenario::Rooms(_) => "rooms",
            Scenario::Direct(_) => "direct",
            Scenario::LargeRoom(_) => "large-room",
        }
    }

    /// Connections over the whole run.
    pub fn connections(&self) -> u64 {
        match self {
            Scenario::Idle(a) => a.connections,
            Scenario::Connect(a) => a.connections,
            Scenario::Broadcast(a) => a.connections + a.senders,
            Scenario::Rooms(a) => a.rooms * a.members,
            Scenario::Direct(a) => a.pairs * 2,
            Scenario::LargeRoom(a) => a.members.max(a.senders),
        }
    }

    /// The parameters as JSON, for the result file.
    pub fn params(&self) -> serde_json::Value {
        let v = match self {
            Scenario::Idle(a) => serde_json::to_value(a),
            Scenario::Connect(a) => serde_json::to_value(a),
            Scenario::Broadcast(a) => serde_json::to_value(a),
            Scenario::Rooms(a) => serde_json::to_value(a),
            Scenario::Direct(a) => serde_json::to_value(a),
            Scenario::LargeRoom(a) => serde_json::to_value(a),
        };
        v.unwrap_or_default()
    }

    /// Whether expected deliveries are accepted messages × all receivers.
    pub fn is_broadcast(&self) -> bool {
        matches!(self, Scenario::Broadcast(_) | Scenario::LargeRoom(_))
    }
}

/// Runs this worker's share of a scenario.
pub async fn run(
    scenario: &Scenario,
    share: &Share,
    ctl: &mut Ctl,
    live: Arc<Live>,
) -> Result<WorkerResult, String> {
    let ctx = Ctx::new(scenario, share, live).await?;
    match scenario {
        Scenario::Idle(a) => idle::idle(&ctx, a, ctl).await,
        Scenario::Connect(a) => idle::connect(&ctx, a, ctl).await,
        Scenario::Broadcast(a) => traffic::broadcast(&ctx, a, ctl).await,
        Scenario::Rooms(a) => traffic::rooms(&ctx, a, ctl).await,
        Scenario::Direct(a) => traffic::direct(&ctx, a, ctl).await,
        Scenario::LargeRoom(a) => large::large_room(&ctx, a, ctl).await,
    }
}

/// A worker's view of the run.
pub struct Ctx {
    pub common: Common,
    pub share: Share,
    pub live: Arc<Live>,
    pub endpoints: Vec<Endpoint>,
    sources: usize,
}

/// Connections opened by [`Ctx::open`], with what it cost.
pub struct Opened {
    /// (global index, parked connection), in completion order.
    pub clients: Vec<(u64, Parked)>,
    pub failures: BTreeMap<String, u64>,
    pub handshake: Histogram<u64>,
}

impl Ctx {
    async fn new(scenario: &Scenario, share: &Share, live: Arc<Live>) -> Result<Self, String> {
        let common = scenario.common().clone();
        let mut endpoints = Vec::new();
        for url in &common.urls {
            let ep = Endpoint::resolve(url, common.target)
                .await
                .map_err(|e| e.to_string())?;
            endpoints.push(ep);
        }
        if endpoints.is_empty() {
            return Err("no --url".into());
        }
        // One source address per 5,000 connections: the ephemeral range
        // (about 28,000 ports) then stays mostly free per address, even with
        // the previous scenario's sockets still in TIME_WAIT, and neither a
        // bind nor a connect has to search it (at 19,000 connections on one
        // address a storm measured the generator's port search, not the
        // server: docs/benchmarks.md, "Connect storm").
        let sources = match common.source_ips {
            0 => scenario.connections().div_ceil(SOURCE_CONNECTIONS).max(1) as usize,
            n => n,
        };
        Ok(Ctx {
            common,
            share: share.clone(),
            live,
            endpoints,
            sources,
        })
    }

    /// The user name of connection `g`.
    pub fn user(&self, g: u64) -> String {
        format!("lg{}u{g}", self.share.run_id)
    }

    /// The name of room `r`.
    pub fn room(&self, r: u64) -> String {
        format!("lg{}r{r}", self.share.run_id)
    }

    /// The default URL of connection `g`.
    pub fn endpoint_of(&self, g: u64) -> usize {
        (g % self.endpoints.len() as u64) as usize
    }

    /// Opens `(global index, endpoint)` connections, at most `--concurrency`
    /// handshakes at once, paced to `rate` per second when `rate > 0`. Each
    /// connection is parked as soon as it is open.
    pub async fn open(&self, plan: Vec<(u64, usize)>, rate: f64) -> Opened {
        let sem = Arc::new(Semaphore::new(self.common.concurrency.max(1)));
        let mut set = JoinSet::new();
        let mut opened = Opened {
            clients: Vec::new(),
            failures: BTreeMap::new(),
            handshake: stats::histogram(),
        };
        let start = Instant::now();
        for (k, (g, e)) in plan.into_iter().enumerate() {
            if rate > 0.0 {
                let at = start + Duration::from_secs_f64(k as f64 / rate);
                tokio::time::sleep_until(at.into()).await;
            }
            let Ok(permit) = sem.clone().acquire_owned().await else {
                break;
            };
            while let Some(joined) = set.try_join_next() {
                self.collect(&mut opened, joined);
            }
            let ep = self.endpoints[e].clone();
            let (target, codec) = (self.common.target, self.common.codec);
            let source = wire::source_ip((g % self.sources as u64) as usize);
            let user = self.user(g);
            let timeout = self.common.connect_timeout;
            let live = self.live.clone();
            set.spawn(async move {
                let t = Instant::now();
                let r = wire::connect(&ep, target, codec, source, user, timeout).await;
                drop(permit);
                if r.is_ok() {
                    live.open.fetch_add(1, Ordering::Relaxed);
                }
                (g, t.elapsed(), r)
            });
        }
        while let Some(joined) = set.join_next().await {
            self.collect(&mut opened, joined);
        }
        opened
    }

    fn collect(
        &self,
        opened: &mut Opened,
        joined: Result<(u64, Duration, Result<Client, WireError>), tokio::task::JoinError>,
    ) {
        match joined {
            Ok((g, took, Ok(client))) => {
                opened.handshake.saturating_record(took.as_micros() as u64);
                opened.clients.push((g, park(client, self.live.clone())));
            }
            Ok((_, _, Err(e))) => {
                let kind = e.kind();
                if !opened.failures.contains_key(&kind) {
                    eprintln!("worker {}: connect failed ({kind}): {e}", self.share.index);
                }
                *opened.failures.entry(kind).or_default() += 1;
            }
            Err(_) => *opened.failures.entry("panic".into()).or_default() += 1,
        }
    }
}

/// Closes connections politely, all at once, bounded by a second each.
pub async fn close_all(live: &Live, clients: impl IntoIterator<Item = Client>) {
    let mut set = JoinSet::new();
    for c in clients {
        live.open.fetch_sub(1, Ordering::Relaxed);
        set.spawn(c.close());
    }
    while set.join_next().await.is_some() {}
}
