//! [`Backoff`]: the delay before a reconnect or a `send` retry, exponential
//! with full jitter and a floor (the same schedule as the JS SDK's
//! `backoffDelay`).
//!
//! The ceiling doubles with every failed attempt, from `min` up to `max`; the
//! delay is drawn uniformly between `min` and that ceiling, so clients dropped
//! together (a node drain, a crash) spread out instead of coming back at once.
//! attempt 0 -> `min`, 1 -> [`min`, 2 `min`], 2 -> [`min`, 4 `min`], ...

use std::time::Duration;

/// An exponential backoff schedule with full jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first delay, and the floor of every delay.
    pub min: Duration,
    /// The ceiling no delay exceeds.
    pub max: Duration,
}

impl Backoff {
    /// A schedule from `min` to `max` (`max` is raised to `min` if lower).
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max: max.max(min),
        }
    }

    /// The delay before attempt `attempt + 1` (0 = the first retry), with
    /// `random` in `[0, 1)` choosing where between the floor and the ceiling.
    pub fn delay_with(&self, attempt: u32, random: f64) -> Duration {
        let ceiling = self
            .min
            .checked_mul(1u32 << attempt.min(30))
            .unwrap_or(self.max)
            .min(self.max);
        let spread = ceiling.saturating_sub(self.min);
        self.min + spread.mul_f64(random.clamp(0.0, 1.0))
    }

    /// [`Backoff::delay_with`] with a random draw.
    pub fn delay(&self, attempt: u32) -> Duration {
        self.delay_with(attempt, rand::random::<f64>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ceiling_doubles_up_to_the_max_and_the_floor_holds() {
        let b = Backoff::new(Duration::from_millis(500), Duration::from_secs(20));
        assert_eq!(b.delay_with(0, 0.99), Duration::from_millis(500));
        assert_eq!(b.delay_with(1, 1.0), Duration::from_secs(1));
        assert_eq!(b.delay_with(2, 1.0), Duration::from_secs(2));
        assert_eq!(b.delay_with(3, 0.0), Duration::from_millis(500));
        assert_eq!(b.delay_with(10, 1.0), Duration::from_secs(20));
        assert_eq!(b.delay_with(u32::MAX, 1.0), Duration::from_secs(20));
        for attempt in 0..40 {
            let d = b.delay(attempt);
            assert!(d >= b.min && d <= b.max, "{attempt}: {d:?}");
        }
        let flat = Backoff::new(Duration::from_secs(2), Duration::from_secs(1));
        assert_eq!(flat.delay_with(5, 1.0), Duration::from_secs(2));
    }
}
