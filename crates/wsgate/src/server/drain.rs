//! The session tracker and the drain (contract section 7).
//!
//! Upgraded sockets outlive hyper's connection future, so every session runs
//! in the server's [`TaskTracker`]; the drain awaits them with a deadline,
//! never a fixed sleep. On SIGTERM or SIGINT: `/readyz` turns 503 at once, new
//! upgrades get 503, connections are closed with 1012 paced evenly over
//! `drain-timeout` (so clients do not all reconnect at once), then the
//! sessions get [`DRAIN_GRACE`] to finish their close handshakes and
//! unregister, the node leaves the cluster and the listeners stop.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};
use wsgate_protocol::CloseCode;

use super::Server;
use crate::session;

/// How long the drain waits for sessions after the last 1012: a session's
/// close handshake ([`session::CLOSE_TIMEOUT`]) plus leaving its rooms and
/// the registry ([`session::UNREGISTER_TIME`]). Derived, so it follows them.
pub const DRAIN_GRACE: Duration = session::CLOSE_TIMEOUT.saturating_add(session::UNREGISTER_TIME);

/// The sessions of a server and whether it is draining or stopped.
#[derive(Default)]
pub struct Drain {
    sessions: TaskTracker,
    draining: AtomicBool,
    /// Cancelled when the server stops (listeners and background loops end).
    stopped: CancellationToken,
}

impl Drain {
    pub fn new() -> Drain {
        Drain::default()
    }

    /// Runs a session as a tracked task, awaited by the drain.
    pub fn spawn_session<F>(&self, session: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.sessions.spawn(session);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Resolves once the server has stopped.
    pub fn stopped(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.stopped.cancelled()
    }
}

/// Drains `server` (see the module doc) and returns once it has stopped.
pub async fn drain(server: &Server) {
    let drain = &server.drain;
    drain.draining.store(true, Ordering::Release);
    server.metrics.draining.set(1);
    server.metrics.ready.set(0);
    let conns = server.hub.all();
    let total = conns.len();
    let timeout = server.config.drain_timeout;
    info!(
        connections = total,
        timeout_ms = timeout.as_millis() as u64,
        "Draining."
    );
    if total > 0 {
        let tick = (timeout / total as u32).max(Duration::from_millis(10));
        let per_tick = ((total as f64) * tick.as_secs_f64() / timeout.as_secs_f64().max(0.001))
            .ceil()
            .max(1.0) as usize;
        let mut interval = tokio::time::interval(tick);
        for batch in conns.chunks(per_tick) {
            interval.tick().await;
            for conn in batch {
                conn.kick(CloseCode::Restart);
            }
        }
    }
    drain.sessions.close();
    if tokio::time::timeout(DRAIN_GRACE, drain.sessions.wait())
        .await
        .is_err()
    {
        warn!(
            left = drain.sessions.len(),
            "Sessions still open after the drain; exiting anyway."
        );
    }
    server.node.leave_cluster().await;
    drain.stopped.cancel();
    info!("Drained.");
}

#[cfg(test)]
mod tests;
