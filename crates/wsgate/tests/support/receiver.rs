//! [`Receiver`]: a real HTTP webhook receiver in the test process (hyper's
//! server on a free port), as a backend would run one: it checks every
//! request's `X-Wsgate-Signature` (HMAC-SHA256 of `"{t}.{body}"`), answers
//! the status the test sets, keeps what it was sent, and can go down (its
//! port refuses connections) and come back on the same port.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use sha2::Sha256;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{eventually, free_port, WAIT};

/// One POST as received.
#[derive(Debug, Clone)]
pub struct Batch {
    pub body: Value,
    /// The signature checked out under the receiver's secret.
    pub verified: bool,
    /// The status answered.
    pub status: u16,
    /// The body's exact bytes and the `X-Wsgate-Signature` header, as
    /// sent (for verifiers outside the test: docs/examples/).
    pub raw: Bytes,
    pub signature: Option<String>,
}

#[derive(Default)]
struct State {
    batches: Vec<Batch>,
    /// Statuses to answer next, in order; 200 once they are used up.
    script: Vec<u16>,
}

/// The receiver.
pub struct Receiver {
    pub addr: SocketAddr,
    secret: String,
    state: Arc<Mutex<State>>,
    stop: Option<CancellationToken>,
}

fn verify(secret: &str, header: Option<&str>, body: &[u8]) -> bool {
    let Some(header) = header else { return false };
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", x)) => t = Some(x),
            Some(("v1", x)) => v1 = Some(x),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    let Ok(secs) = t.parse::<u64>() else {
        return false;
    };
    // The replay window a receiver keeps: five minutes.
    if super::now_secs().abs_diff(secs) > 300 {
        return false;
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key");
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    hex == v1
}

impl Receiver {
    /// A receiver checking signatures under `secret`, up.
    pub async fn start(secret: &str) -> Receiver {
        let mut r = Receiver {
            addr: ([127, 0, 0, 1], free_port()).into(),
            secret: secret.to_owned(),
            state: Arc::default(),
            stop: None,
        };
        r.up().await;
        r
    }

    /// `http://ADDR/hooks`.
    pub fn url(&self) -> String {
        format!("http://{}/hooks", self.addr)
    }

    /// Listens again on the same port.
    pub async fn up(&mut self) {
        assert!(self.stop.is_none(), "the receiver is already up");
        let listener = TcpListener::bind(self.addr)
            .await
            .expect("bind the receiver");
        let stop = CancellationToken::new();
        self.stop = Some(stop.clone());
        let state = self.state.clone();
        let secret = self.secret.clone();
        tokio::spawn(async move {
            loop {
                let (tcp, _) = tokio::select! {
                    () = stop.cancelled() => return,
                    a = listener.accept() => match a { Ok(a) => a, Err(_) => continue },
                };
                let (state, secret, stop) = (state.clone(), secret.clone(), stop.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let (state, secret) = (state.clone(), secret.clone());
                        async move {
                            let header = req
                                .headers()
                                .get("x-wsgate-signature")
                                .and_then(|v| v.to_str().ok())
                                .map(str::to_owned);
                            let body = req.into_body().collect().await.map(|b| b.to_bytes());
                            let body = body.unwrap_or_default();
                            let verified = verify(&secret, header.as_deref(), &body);
                            let mut s = state.lock().unwrap();
                            let status = if s.script.is_empty() {
                                200
                            } else {
                                s.script.remove(0)
                            };
                            s.batches.push(Batch {
                                body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                                verified,
                                status,
                                raw: body,
                                signature: header,
                            });
                            let answer = Response::builder()
                                .status(status)
                                .body(Full::new(Bytes::from_static(b"ok")))
                                .unwrap();
                            Ok::<_, Infallible>(answer)
                        }
                    });
                    let conn = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service);
                    tokio::select! {
                        () = stop.cancelled() => {}
                        _ = conn => {}
                    }
                });
            }
        });
    }

    /// Stops listening and drops every open connection: the port refuses.
    pub fn down(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop.cancel();
        }
    }

    /// Answers these statuses to the next requests, then 200 again.
    pub fn answer_next(&self, statuses: &[u16]) {
        self.state
            .lock()
            .unwrap()
            .script
            .extend_from_slice(statuses);
    }

    /// Every batch so far.
    pub fn batches(&self) -> Vec<Batch> {
        self.state.lock().unwrap().batches.clone()
    }

    /// The events of the batches answered 2xx, repeats (same event id)
    /// dropped as a receiver does, in arrival order.
    pub fn events(&self) -> Vec<Value> {
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for b in self
            .batches()
            .into_iter()
            .filter(|b| (200..300).contains(&b.status))
        {
            for e in b.body["events"].as_array().cloned().unwrap_or_default() {
                if seen.insert(e["id"].as_str().unwrap_or_default().to_owned()) {
                    out.push(e);
                }
            }
        }
        out
    }

    /// The delivered events of `kind` about `user` (field `user`).
    pub fn of(&self, kind: &str, user: &str) -> Vec<Value> {
        self.events()
            .into_iter()
            .filter(|e| e["type"] == kind && e["user"] == user)
            .collect()
    }

    /// Waits until `check` holds for the delivered events; returns them.
    pub async fn wait_for(
        &self,
        what: &str,
        limit: Duration,
        check: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        eventually(what, limit, || {
            let events = self.events();
            let ok = check(&events);
            async move { ok.then_some(events) }
        })
        .await
    }

    /// [`Receiver::wait_for`] with [`WAIT`].
    pub async fn wait(&self, what: &str, check: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        self.wait_for(what, WAIT, check).await
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.down();
    }
}

/// The event types of `events`, in order.
pub fn types(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["type"].as_str().unwrap_or_default().to_owned())
        .collect()
}
