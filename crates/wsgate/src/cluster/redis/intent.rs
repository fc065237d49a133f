//! What this node means the user registry to say about it: each local
//! user's connection count, and the per-user order between live updates and
//! resync.
//!
//! A live update (a connect or a close) is a delta (`HINCRBY`); a resync
//! writes absolute counts (`HSET`). Unordered, they race: a resync that read
//! a count, then a close's `-1`, then the resync's `HSET` of the old count
//! leaves a ghost "online" user (and the other way round a lost one). So
//! both take the user's lock ([`Intent::lock`]): a live update records its
//! delta here and writes it while holding it, and resync reads the count
//! here and writes it while holding it. Every delta is then either wholly
//! before a resync's write (counted in what it writes) or wholly after
//! (applied on top), and the registry converges to what the node holds.
//! The count is recorded even when the write fails, so the next resync
//! writes the truth. Locks are striped: a user waits only for its stripe's
//! Redis round trips (each bounded by `OP_TIMEOUT`), and only at connect,
//! close and resync, never on the message path.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Mutex, PoisonError};

use tokio::sync::{Mutex as AsyncMutex, MutexGuard};

/// Lock stripes.
const STRIPES: usize = 256;

/// Each local user's connection count, as this node means it.
pub(super) struct Intent {
    counts: Mutex<HashMap<String, u64>>,
    stripes: Box<[AsyncMutex<()>]>,
}

impl Default for Intent {
    fn default() -> Self {
        Intent {
            counts: Mutex::default(),
            stripes: (0..STRIPES).map(|_| AsyncMutex::new(())).collect(),
        }
    }
}

impl Intent {
    /// The user's lock: hold it across recording and writing.
    pub(super) async fn lock(&self, user: &str) -> MutexGuard<'_, ()> {
        let mut h = DefaultHasher::new();
        user.hash(&mut h);
        self.stripes[h.finish() as usize % STRIPES].lock().await
    }

    /// Records a delta (under the user's lock).
    pub(super) fn apply(&self, user: &str, delta: i64) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let n = counts.get(user).copied().unwrap_or(0) as i64 + delta;
        if n > 0 {
            counts.insert(user.to_owned(), n as u64);
        } else {
            counts.remove(user);
        }
    }

    /// The user's count now (read under the user's lock).
    pub(super) fn count(&self, user: &str) -> u64 {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(user)
            .copied()
            .unwrap_or(0)
    }

    /// Every user with a connection here (resync then locks each in turn).
    pub(super) fn users(&self) -> Vec<String> {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_follow_the_deltas_and_vanish_at_zero() {
        let intent = Intent::default();
        intent.apply("a", 1);
        intent.apply("a", 1);
        intent.apply("b", 1);
        intent.apply("a", -1);
        assert_eq!(intent.count("a"), 1);
        intent.apply("b", -1);
        assert_eq!(intent.count("b"), 0);
        assert_eq!(intent.users(), vec!["a".to_owned()]);
    }
}
