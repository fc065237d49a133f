//! The session state an idle connection never touches: the rooms it is
//! in, the live direct messages awaiting an ack, the protocol-error window.
//! Allocated on first use (a join, a tracked direct message, a protocol
//! error), so an idle session holds one pointer for it instead of about 80
//! bytes (docs/benchmarks.md, "Performance round 2").

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use super::limits::ErrorWindow;
use super::{Session, MAX_TRACKED_ACKS};

/// The state an idle connection never touches, allocated on first use (a
/// join, a tracked direct message, a protocol error): an idle session holds
/// one pointer instead of about 80 bytes.
#[derive(Default)]
pub(super) struct Busy {
    pub(super) rooms: Vec<Arc<str>>,
    /// Live direct messages not acked yet, with their redelivery deadline.
    pub(super) unacked: VecDeque<(String, Instant)>,
    pub(super) errors: ErrorWindow,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    /// The state of [`Busy`], allocated now if it is not yet.
    pub(super) fn busy(&mut self) -> &mut Busy {
        self.busy.get_or_insert_with(Box::default)
    }

    /// The rooms the connection is in.
    pub(super) fn rooms(&self) -> &[Arc<str>] {
        self.busy.as_deref().map_or(&[], |b| &b.rooms)
    }

    /// Tracks a live direct message for redelivery until `due`.
    pub(super) fn track_unacked(&mut self, id: String, due: Instant) {
        let unacked = &mut self.busy().unacked;
        if unacked.len() == MAX_TRACKED_ACKS {
            unacked.pop_front();
        }
        unacked.push_back((id, due));
    }
}
