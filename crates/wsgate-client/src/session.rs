//! [`Session`]: a connection that comes back by itself. It reconnects with
//! [`Backoff`] after the connection is lost (to the next of its endpoints, so
//! a crashed node's users land on a survivor), re-joins every room it was in
//! with `since: {epoch, offset}` (contract 5.4), tells the application per
//! room whether the missed messages follow ([`SessionEvent::Recovered`]) or
//! not ([`SessionEvent::NotRecovered`]: refetch from your backend), and drops
//! repeats: room messages by offset ([`RoomPositions`]), direct messages by
//! id ([`Dedupe`]). [`Session::send`] always carries an id and retries
//! `unavailable` (and a lost connection or timeout) with that same id, which
//! the server never stores twice (5.2; a `duplicate: true` reply is an `ok`).
//!
//! Driven by its caller's task, like [`Client`]: [`Session::next_event`]
//! reads, and reconnects when it finds the connection gone. Costs are
//! bounded: one entry per joined room, `dedupe` ids, `max_attempts`
//! reconnects in a row and `send_attempts` sends per message.

use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::time::{sleep, timeout_at, Instant};
use wsgate_protocol::{ErrorCode, Kind, MessageFrame, Reply, ServerFrame};

use crate::{Backoff, Client, ClientError, CloseInfo, Dedupe, Options, RoomPositions, Welcome};

/// How a [`Session`] reconnects and retries.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// Where to connect; a reconnect tries the next one after a failure.
    pub endpoints: Vec<Options>,
    /// Delay between reconnect attempts (the first attempt after a loss is
    /// immediate).
    pub reconnect: Backoff,
    /// Failed connection attempts in a row before [`Session::next_event`]
    /// gives up with the last error; `None` = never.
    pub max_attempts: Option<u32>,
    /// Attempts of one `send` in all (the first included).
    pub send_attempts: u32,
    /// Delay between `send` attempts.
    pub send_retry: Backoff,
    /// Direct message ids remembered to drop repeats.
    pub dedupe: usize,
}

impl SessionOptions {
    /// Defaults: backoff 500 ms..20 s, unlimited reconnects, 5 send attempts
    /// 200 ms..5 s apart, 1000 ids remembered (the JS SDK's defaults).
    pub fn new(endpoint: Options) -> SessionOptions {
        SessionOptions {
            endpoints: vec![endpoint],
            reconnect: Backoff::new(Duration::from_millis(500), Duration::from_secs(20)),
            max_attempts: None,
            send_attempts: 5,
            send_retry: Backoff::new(Duration::from_millis(200), Duration::from_secs(5)),
            dedupe: 1000,
        }
    }

    /// Adds an endpoint to fall over to.
    pub fn endpoint(mut self, endpoint: Options) -> SessionOptions {
        self.endpoints.push(endpoint);
        self
    }
}

/// What a [`Session`] tells its application.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionEvent {
    /// A message seen for the first time (repeats are dropped).
    Message(MessageFrame),
    /// Any other server frame: presence, typing, receipt, ...
    Frame(ServerFrame),
    /// The connection was lost; the session reconnects on the next read.
    Disconnected(CloseInfo),
    /// Connected again (the new `welcome`); the room events follow.
    Reconnected(Welcome),
    /// The re-join of `room` recovered: the missed messages follow, in order,
    /// as [`SessionEvent::Message`]s with `replay: true`.
    Recovered { room: String },
    /// The re-join of `room` could not recover (too old, another epoch):
    /// nothing is replayed; refetch the room from your backend. The session
    /// goes on from the room's current position.
    NotRecovered { room: String },
    /// The re-join of `room` was refused; the session is no longer in it.
    RejoinFailed { room: String, error: String },
}

/// A self-healing connection: reconnects, re-joins, recovers, retries.
pub struct Session {
    opts: SessionOptions,
    client: Option<Client>,
    /// The endpoint used last.
    endpoint: usize,
    /// Failed connection attempts in a row.
    attempt: u32,
    rooms: BTreeSet<String>,
    positions: RoomPositions,
    dedupe: Dedupe,
    events: VecDeque<SessionEvent>,
}

impl Session {
    /// Connects to the first endpoint that answers (trying each once).
    pub async fn connect(opts: SessionOptions) -> Result<Session, ClientError> {
        if opts.endpoints.is_empty() {
            return Err(ClientError::BadRequest(
                "a session needs an endpoint".into(),
            ));
        }
        let mut session = Session {
            dedupe: Dedupe::new(opts.dedupe),
            opts,
            client: None,
            endpoint: 0,
            attempt: 0,
            rooms: BTreeSet::new(),
            positions: RoomPositions::new(),
            events: VecDeque::new(),
        };
        let mut last = None;
        for i in 0..session.opts.endpoints.len() {
            match Client::connect(session.opts.endpoints[i].clone()).await {
                Ok(c) => {
                    session.client = Some(c);
                    session.endpoint = i;
                    return Ok(session);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(ClientError::Timeout))
    }

    /// The `welcome` of the current connection, while connected.
    pub fn welcome(&self) -> Option<&Welcome> {
        self.client.as_ref().map(Client::welcome)
    }

    /// The rooms the session is in (and re-joins after a reconnect).
    pub fn rooms(&self) -> impl Iterator<Item = &str> {
        self.rooms.iter().map(String::as_str)
    }

    /// Where the session is in each room's history.
    pub fn positions(&self) -> &RoomPositions {
        &self.positions
    }

    /// Joins `room`; it is re-joined after every reconnect.
    pub async fn join(&mut self, room: &str) -> Result<Reply, ClientError> {
        let reply = self.request(json!({"type": "join", "room": room})).await?;
        self.positions.joined(room, &reply);
        self.rooms.insert(room.to_owned());
        Ok(reply)
    }

    /// Leaves `room`.
    pub async fn leave(&mut self, room: &str) -> Result<Reply, ClientError> {
        self.rooms.remove(room);
        self.positions.left(room);
        self.request(json!({"type": "leave", "room": room})).await
    }

    /// Publishes to a room (not retried: a publish has no id to dedupe by).
    pub async fn publish(&mut self, room: &str, content: Value) -> Result<Reply, ClientError> {
        self.request(json!({"type": "publish", "room": room, "content": content}))
            .await
    }

    /// Sends a direct message with a new random id; see [`Session::send_with_id`].
    pub async fn send(&mut self, to: &str, content: Value) -> Result<Reply, ClientError> {
        let id = uuid::Uuid::new_v4().to_string();
        self.send_with_id(to, content, &id).await
    }

    /// Sends a direct message with `id`. `unavailable` (the store was not
    /// confirmed), a timeout and a lost connection are retried with the same
    /// id after [`SessionOptions::send_retry`], reconnecting if needed, up to
    /// [`SessionOptions::send_attempts`] in all; the server stores an id once
    /// (a repeat is answered `ok` with `duplicate: true`). Other errors
    /// return at once.
    pub async fn send_with_id(
        &mut self,
        to: &str,
        content: Value,
        id: &str,
    ) -> Result<Reply, ClientError> {
        let frame = json!({"type": "send", "to": to, "content": content, "id": id});
        let attempts = self.opts.send_attempts.max(1);
        let mut attempt = 0;
        loop {
            let err = match self.request(frame.clone()).await {
                Ok(reply) => return Ok(reply),
                Err(e) => e,
            };
            attempt += 1;
            let retryable = err.code() == Some(ErrorCode::Unavailable)
                || matches!(err, ClientError::Timeout)
                || err.is_disconnect();
            if !retryable || attempt >= attempts {
                return Err(err);
            }
            sleep(self.opts.send_retry.delay(attempt - 1)).await;
        }
    }

    /// Acknowledges a direct message.
    pub async fn ack(&mut self, id: &str) -> Result<(), ClientError> {
        let client = self.connected().await?;
        let result = client.ack(id).await;
        self.check(result)
    }

    /// Sends any request on the current connection (reconnecting first if
    /// it is gone) and waits for its reply. A lost connection is reported
    /// as the error and as a [`SessionEvent::Disconnected`].
    pub async fn request(&mut self, frame: Value) -> Result<Reply, ClientError> {
        let client = self.connected().await?;
        let result = client.request(frame).await;
        self.check(result)
    }

    /// The next event within `timeout`, reconnecting (and re-joining) when
    /// the connection is gone. Gives up with the last connection error after
    /// [`SessionOptions::max_attempts`] failed attempts in a row.
    pub async fn next_event(&mut self, timeout: Duration) -> Result<SessionEvent, ClientError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(event) = self.events.pop_front() {
                return Ok(event);
            }
            if self.client.is_none() {
                timeout_at(deadline, self.reconnect())
                    .await
                    .map_err(|_| ClientError::Timeout)??;
                continue;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(client) = self.client.as_mut() else {
                continue;
            };
            match client.next_frame(left).await {
                Ok(ServerFrame::Message(m)) => {
                    if self.is_new(&m) {
                        return Ok(SessionEvent::Message(m));
                    }
                }
                Ok(other) => return Ok(SessionEvent::Frame(other)),
                // The next turn reconnects.
                Err(e) if e.is_disconnect() => self.lost(&e),
                Err(e) => return Err(e),
            }
        }
    }

    /// The next new message within `timeout`; other events are dropped.
    pub async fn next_message(&mut self, timeout: Duration) -> Result<MessageFrame, ClientError> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if let SessionEvent::Message(m) = self.next_event(left).await? {
                return Ok(m);
            }
        }
    }

    /// Closes the connection with 1000; the session stays closed until the
    /// next call that needs a connection.
    pub async fn close(&mut self) -> Result<(), ClientError> {
        if let Some(mut client) = self.client.take() {
            client.close(1000).await?;
        }
        Ok(())
    }

    /// True for a message not seen before (room: by offset; direct: by id).
    fn is_new(&mut self, m: &MessageFrame) -> bool {
        match m.kind {
            Kind::Room => self.positions.observe(m),
            Kind::Direct => self.dedupe.first_time(&m.id),
            _ => true,
        }
    }

    /// The current connection, reconnecting (within the request timeout of
    /// the endpoint) when there is none.
    async fn connected(&mut self) -> Result<&mut Client, ClientError> {
        if self.client.is_none() {
            let limit = self.opts.endpoints[self.endpoint].timeout;
            timeout_at(Instant::now() + limit, self.reconnect())
                .await
                .map_err(|_| ClientError::Timeout)??;
        }
        self.client
            .as_mut()
            .ok_or_else(|| ClientError::BadRequest("not connected".into()))
    }

    /// Passes `result` on; a disconnect drops the connection and queues
    /// [`SessionEvent::Disconnected`].
    fn check<T>(&mut self, result: Result<T, ClientError>) -> Result<T, ClientError> {
        if let Err(e) = &result {
            if e.is_disconnect() {
                self.lost(e);
            }
        }
        result
    }

    /// Drops the connection `e` ended and queues [`SessionEvent::Disconnected`].
    fn lost(&mut self, e: &ClientError) {
        let info = match e {
            ClientError::Closed(info) => info.clone(),
            other => CloseInfo {
                code: None,
                reason: other.to_string(),
            },
        };
        self.client = None;
        self.events.push_back(SessionEvent::Disconnected(info));
    }

    /// Connects again and re-joins every room with `since`. Cancel-safe: the
    /// new connection and its events are kept only once every re-join has
    /// its reply, so a cancelled reconnect leaves the session as it was
    /// (but for the attempt count, which the backoff needs).
    async fn reconnect(&mut self) -> Result<(), ClientError> {
        loop {
            if self.attempt > 0 {
                sleep(self.opts.reconnect.delay(self.attempt - 1)).await;
            }
            let endpoint = if self.attempt == 0 {
                self.endpoint
            } else {
                (self.endpoint + 1) % self.opts.endpoints.len()
            };
            let result = Client::connect(self.opts.endpoints[endpoint].clone()).await;
            self.endpoint = endpoint;
            match result {
                Ok(client) => match self.rejoin(client).await {
                    Ok(()) => {
                        self.attempt = 0;
                        return Ok(());
                    }
                    Err(e) => self.failed(e)?,
                },
                Err(e) => self.failed(e)?,
            }
        }
    }

    /// Counts a failed attempt; the error when it is final (the upgrade was
    /// refused with 4xx other than 429, or `max_attempts` is reached).
    fn failed(&mut self, e: ClientError) -> Result<(), ClientError> {
        self.attempt = self.attempt.saturating_add(1);
        let refused = matches!(e.status(), Some(s) if (400..500).contains(&s) && s != 429);
        let exhausted = self
            .opts
            .max_attempts
            .is_some_and(|max| self.attempt >= max);
        if refused || exhausted {
            return Err(e);
        }
        Ok(())
    }

    async fn rejoin(&mut self, mut client: Client) -> Result<(), ClientError> {
        let mut events = vec![SessionEvent::Reconnected(client.welcome().clone())];
        let mut joined = Vec::new();
        for room in &self.rooms {
            let frame = match self.positions.get(room) {
                Some(p) => json!({"type": "join", "room": room,
                                   "since": {"epoch": p.epoch, "offset": p.offset}}),
                None => json!({"type": "join", "room": room}),
            };
            match client.request(frame).await {
                Ok(reply) => {
                    events.push(if reply.recovered == Some(true) {
                        SessionEvent::Recovered { room: room.clone() }
                    } else {
                        SessionEvent::NotRecovered { room: room.clone() }
                    });
                    joined.push((room.clone(), Some(reply)));
                }
                Err(e) if e.code().is_some() => {
                    events.push(SessionEvent::RejoinFailed {
                        room: room.clone(),
                        error: e.to_string(),
                    });
                    joined.push((room.clone(), None));
                }
                Err(e) => return Err(e),
            }
        }
        for (room, reply) in joined {
            match reply {
                Some(reply) => self.positions.joined(&room, &reply),
                None => {
                    self.rooms.remove(&room);
                    self.positions.left(&room);
                }
            }
        }
        self.events.extend(events);
        self.client = Some(client);
        Ok(())
    }
}
