//! One connection's shared half: its bounded outbox and its close request.
//!
//! Overflow policy: an outbox holds at most `outbox-size` frames; a push to a
//! full outbox queues nothing and asks the session to close with 1013 (slow
//! consumer). A push never waits: the hub and the bus reader call it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use wsgate_protocol::CloseCode;

use super::encoding::Outgoing;

/// A connection's id, unique on this node.
pub type ConnId = u64;

/// What a push into an outbox did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    Queued,
    /// The outbox was full: the connection is now being closed with 1013.
    SlowConsumer,
    /// The connection is gone or closing.
    Closed,
}

/// The shared half of a connection: what the hub and other tasks hold.
///
/// Its outbox is a bounded queue of shared frames. It is a locked `VecDeque`
/// rather than a channel because an idle connection must cost little: the
/// queue allocates nothing until a frame is queued and gives its buffer back
/// when it drains (a tokio channel allocates a cache-padded channel and a
/// 32-slot block up front, about 800 bytes per connection).
#[derive(Debug)]
pub struct Conn {
    pub id: ConnId,
    pub user: Arc<str>,
    outbox: Mutex<VecDeque<Arc<Outgoing>>>,
    capacity: usize,
    close: AtomicU16,
    /// Wakes the session when frames are queued.
    queued: Notify,
    /// Wakes the session when a close is requested.
    kicked: Notify,
}

/// Queue capacity kept when an outbox drains; larger buffers are released.
const OUTBOX_KEEP: usize = 16;

impl Conn {
    /// Creates a connection whose outbox holds at most `capacity` frames.
    pub fn new(id: ConnId, user: Arc<str>, capacity: usize) -> Arc<Conn> {
        Arc::new(Conn {
            id,
            user,
            outbox: Mutex::new(VecDeque::new()),
            capacity,
            close: AtomicU16::new(0),
            queued: Notify::new(),
            kicked: Notify::new(),
        })
    }

    fn lock_outbox(&self) -> std::sync::MutexGuard<'_, VecDeque<Arc<Outgoing>>> {
        self.outbox.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a frame without waiting. A full outbox closes the connection with 1013.
    pub fn push(&self, frame: &Arc<Outgoing>) -> Pushed {
        if self.close.load(Ordering::Relaxed) != 0 {
            return Pushed::Closed;
        }
        {
            let mut queue = self.lock_outbox();
            if queue.len() >= self.capacity {
                drop(queue);
                return if self.kick(CloseCode::TryAgainLater) {
                    Pushed::SlowConsumer
                } else {
                    Pushed::Closed
                };
            }
            queue.push_back(frame.clone());
        }
        self.queued.notify_one();
        Pushed::Queued
    }

    /// Moves up to `max` queued frames into `out`; returns true when more remain.
    pub fn take(&self, out: &mut Vec<Arc<Outgoing>>, max: usize) -> bool {
        let mut queue = self.lock_outbox();
        let n = queue.len().min(max);
        out.extend(queue.drain(..n));
        if queue.is_empty() && queue.capacity() > OUTBOX_KEEP {
            *queue = VecDeque::new();
        }
        !queue.is_empty()
    }

    /// Resolves when frames may have been queued since the last call.
    pub async fn wait_queued(&self) {
        self.queued.notified().await;
    }

    /// Re-arms [`Conn::wait_queued`] when frames were left in the queue.
    pub fn rearm(&self) {
        self.queued.notify_one();
    }

    /// Asks the session to close with `code`. Returns false when a close was
    /// already requested (the first code wins).
    pub fn kick(&self, code: CloseCode) -> bool {
        let first = self
            .close
            .compare_exchange(0, code.as_u16(), Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if first {
            self.kicked.notify_one();
        }
        first
    }

    /// The close requested by [`Conn::kick`], if any.
    pub fn kicked(&self) -> Option<CloseCode> {
        CloseCode::from_u16(self.close.load(Ordering::Acquire))
    }

    /// Resolves once a close is requested.
    pub async fn wait_kicked(&self) -> CloseCode {
        loop {
            if let Some(code) = self.kicked() {
                return code;
            }
            self.kicked.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wsgate_protocol::ServerFrame;

    #[test]
    fn a_full_outbox_kicks_with_1013_once() {
        let c = Conn::new(1, "u".into(), 2);
        let d = Outgoing::control(ServerFrame::Pong { r#ref: None });
        assert_eq!(c.push(&d), Pushed::Queued);
        assert_eq!(c.push(&d), Pushed::Queued);
        assert_eq!(c.push(&d), Pushed::SlowConsumer);
        assert_eq!(c.kicked(), Some(CloseCode::TryAgainLater));
        assert_eq!(c.push(&d), Pushed::Closed);
        assert!(!c.kick(CloseCode::Restart), "first close code wins");
        let mut out = Vec::new();
        assert!(c.take(&mut out, 1), "one frame left");
        assert!(!c.take(&mut out, 10));
        assert_eq!(out.len(), 2);
    }
}
