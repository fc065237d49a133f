//! Waiting by polling: [`eventually`] for conditions an `async` closure can
//! check, [`poll!`] for checks that borrow mutably (a client being read).

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// How often a condition is polled.
pub const POLL: Duration = Duration::from_millis(25);

/// What a check returns: `true` / `Some(value)` when the wait is over.
pub trait Ready {
    /// What the wait returns.
    type Value;
    /// `Some` once ready.
    fn ready(self) -> Option<Self::Value>;
}

impl Ready for bool {
    type Value = ();
    fn ready(self) -> Option<()> {
        self.then_some(())
    }
}

impl<V> Ready for Option<V> {
    type Value = V;
    fn ready(self) -> Option<V> {
        self
    }
}

/// Polls `check` every [`POLL`] until it answers `true` (or `Some(v)`,
/// returned); panics naming `what` after `limit`.
pub async fn eventually<R, F, Fut>(what: &str, limit: Duration, mut check: F) -> R::Value
where
    R: Ready,
    F: FnMut() -> Fut,
    Fut: Future<Output = R>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await.ready() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for: {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// [`eventually`] for checks that borrow mutably (a client): polls the
/// `Option` expression `$check` (which may `.await`) every [`POLL`].
macro_rules! poll {
    ($what:expr, $limit:expr, $check:expr) => {{
        let deadline = tokio::time::Instant::now() + $limit;
        loop {
            if let Some(v) = $check {
                break v;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out after {:?} waiting for: {}",
                $limit,
                $what
            );
            tokio::time::sleep($crate::support::POLL).await;
        }
    }};
}
