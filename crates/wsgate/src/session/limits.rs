//! Per-connection limits: the frame rate limit, the protocol-error window,
//! and the token's deadline.
//!
//! The first two are a few bytes per connection and take `now` as an
//! argument, so they are tested without a clock.

use std::time::Duration;

use tokio::time::Instant;

use crate::auth::Identity;
use crate::clock::now_ms;

/// When the token expires, or `None` for no expiry (anonymous) or an `exp`
/// too far ahead for the clock to represent (never reached in practice).
pub fn token_deadline(identity: &Identity) -> Option<Instant> {
    let exp = identity.expires_at?;
    let now = now_ms() / 1000;
    Instant::now().checked_add(Duration::from_secs(exp.saturating_sub(now)))
}

/// Token bucket: `rate` frames per second, burst `2 × rate`.
#[derive(Debug)]
pub struct RateLimiter {
    tokens: f32,
    rate: f32,
    last: Instant,
}

impl RateLimiter {
    pub fn new(rate: u32, now: Instant) -> RateLimiter {
        let rate = rate as f32;
        RateLimiter {
            tokens: rate * 2.0,
            rate,
            last: now,
        }
    }

    /// Takes one token; on refusal returns how long until one is available.
    pub fn take(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f32();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate * 2.0);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - self.tokens) / self.rate;
            Err(Duration::from_secs_f32(wait).max(Duration::from_millis(1)))
        }
    }
}

/// Counts protocol errors in a window that opens at the first error:
/// [`ErrorWindow::LIMIT`] errors within [`ErrorWindow::WINDOW`] close the connection.
#[derive(Debug, Default)]
pub struct ErrorWindow {
    start: Option<Instant>,
    count: u8,
}

impl ErrorWindow {
    pub const LIMIT: u8 = 10;
    pub const WINDOW: Duration = Duration::from_secs(10);

    /// Records an error; true when the limit is reached.
    pub fn record(&mut self, now: Instant) -> bool {
        match self.start {
            Some(start) if now.saturating_duration_since(start) < Self::WINDOW => {
                self.count = self.count.saturating_add(1);
            }
            _ => {
                self.start = Some(now);
                self.count = 1;
            }
        }
        self.count >= Self::LIMIT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_a_burst_of_twice_the_rate_then_refills() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(5, t0);
        for _ in 0..10 {
            assert!(rl.take(t0).is_ok());
        }
        let wait = rl.take(t0).unwrap_err();
        // 1/5 s, within f32 precision (200.000003 ms).
        assert!(
            wait <= Duration::from_micros(200_001) && wait > Duration::ZERO,
            "{wait:?}"
        );
        assert!(rl.take(t0 + Duration::from_millis(210)).is_ok());
    }

    #[test]
    fn ten_errors_in_ten_seconds() {
        let t0 = Instant::now();
        let mut w = ErrorWindow::default();
        for i in 0..9 {
            assert!(!w.record(t0 + Duration::from_millis(i * 100)));
        }
        assert!(w.record(t0 + Duration::from_secs(5)));
        let mut w = ErrorWindow::default();
        for i in 0..9 {
            assert!(!w.record(t0 + Duration::from_secs(i)));
        }
        assert!(!w.record(t0 + Duration::from_secs(11)), "window restarted");
    }
}
