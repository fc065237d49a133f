//! Value types and parsers of the inbox and Redis memory settings
//! (`--inbox-max-bytes`, `--inbox-overflow`, `--redis-memory-reserve`).
//! Kept beside the settings so `crate::inbox` can use them without the
//! config module depending on it.

/// `--inbox-overflow`: what a full inbox does with a new message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboxOverflow {
    /// Refuse it: the sender gets `inbox_full` (the default).
    Reject,
    /// Drop the oldest messages until it fits (counted as `trimmed`).
    DropOldest,
}

impl InboxOverflow {
    /// The setting's value.
    pub const fn as_str(self) -> &'static str {
        match self {
            InboxOverflow::Reject => "reject",
            InboxOverflow::DropOldest => "drop-oldest",
        }
    }

    pub fn parse(text: &str) -> Option<InboxOverflow> {
        match text.trim() {
            "reject" => Some(InboxOverflow::Reject),
            "drop-oldest" => Some(InboxOverflow::DropOldest),
            _ => None,
        }
    }
}

/// Parses a size: `512`, `64KiB`, `1MiB`, `2GiB` (also `KB`/`MB`/`GB` as
/// powers of 1000, and `B`).
pub fn parse_size(text: &str) -> Option<usize> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: usize = number.parse().ok()?;
    let unit: usize = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return None,
    };
    n.checked_mul(unit)
}

/// Parses a percentage `10%` (or a bare `10`) into a fraction, 0 to 100 %.
pub fn parse_percent(text: &str) -> Option<f64> {
    let text = text.trim();
    let number = text.strip_suffix('%').unwrap_or(text).trim();
    let p: f64 = number.parse().ok()?;
    (0.0..=100.0).contains(&p).then_some(p / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_percentages() {
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("64KiB"), Some(65536));
        assert_eq!(parse_size("1MiB"), Some(1 << 20));
        assert_eq!(parse_size("1 MB"), Some(1_000_000));
        assert_eq!(parse_size("1XB"), None);
        assert_eq!(parse_size("-1"), None);
        assert_eq!(parse_percent("10%"), Some(0.1));
        assert_eq!(parse_percent("0%"), Some(0.0));
        assert_eq!(parse_percent("101%"), None);
        assert_eq!(parse_percent("x"), None);
        assert_eq!(
            InboxOverflow::parse("drop-oldest"),
            Some(InboxOverflow::DropOldest)
        );
        assert_eq!(InboxOverflow::parse("drop"), None);
    }
}
