//! Wall-clock time as the protocol carries it: milliseconds since the Unix
//! epoch (`message.time`, `started_at`, bus latency). A leaf: every module
//! may use it.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
