//! The value parsers the settings table names: each turns one raw value (the
//! given text, or the entry's default, or `None` when unset) into the typed
//! value, or a [`ConfigError::Invalid`] naming the setting as its flag.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::table::Setting;
pub use super::webhooks::{batch_max, event_set, receiver_url};
use super::{
    limits, split_urls, ApiKey, ConfigError, LogFormat, OriginPolicy, ProxyProtocol, RedisMode,
    TrustedProxies,
};

/// One setting's raw value after precedence: given, else its default.
#[derive(Debug, Clone, Copy)]
pub struct Raw<'a> {
    pub setting: &'static Setting,
    pub value: Option<&'a str>,
}

impl Raw<'_> {
    /// The error naming this setting.
    pub fn invalid(&self, value: &str, reason: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            name: self.setting.flag,
            value: value.to_owned(),
            reason: reason.into(),
        }
    }

    /// The value, trimmed; `None` when unset or empty (an empty value counts
    /// as unset, e.g. `WSGATE_REDIS_URL=`).
    fn trimmed(&self) -> Option<&str> {
        self.value.map(str::trim).filter(|s| !s.is_empty())
    }

    /// The value of a setting that has a default. An empty value is checked
    /// by the parser like any other text.
    fn text(&self) -> &str {
        self.value.or(self.setting.default).unwrap_or("")
    }
}

/// Optional free text.
pub fn text(raw: Raw) -> Result<Option<String>, ConfigError> {
    Ok(raw.trimmed().map(str::to_owned))
}

/// The server API key, kept only as its digest ([`ApiKey`]); unset = none.
pub fn api_key(raw: Raw) -> Result<Option<ApiKey>, ConfigError> {
    Ok(raw.trimmed().map(ApiKey::new))
}

/// `IP:PORT`.
pub fn addr(raw: Raw) -> Result<SocketAddr, ConfigError> {
    let text = raw.text();
    text.trim()
        .parse()
        .map_err(|_| raw.invalid(text, "expected an address like 0.0.0.0:8080"))
}

/// `IP:PORT`, or unset.
pub fn optional_addr(raw: Raw) -> Result<Option<SocketAddr>, ConfigError> {
    raw.trimmed()
        .map(|text| {
            text.parse()
                .map_err(|_| raw.invalid(text, "expected an address like 0.0.0.0:50051"))
        })
        .transpose()
}

/// A whole number, 0 or more.
pub fn whole(raw: Raw) -> Result<usize, ConfigError> {
    let text = raw.text();
    text.trim()
        .parse::<usize>()
        .map_err(|_| raw.invalid(text, "expected a whole number (0 or more)"))
}

/// A whole number greater than zero.
pub fn positive(raw: Raw) -> Result<usize, ConfigError> {
    let text = raw.text();
    match text.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(raw.invalid(text, "expected a positive whole number")),
    }
}

/// A positive whole number that fits in 32 bits.
pub fn positive_u32(raw: Raw) -> Result<u32, ConfigError> {
    let n = positive(raw)?;
    u32::try_from(n).map_err(|_| raw.invalid(&n.to_string(), "too large"))
}

/// The largest frame a client may send: positive, at most 64 MiB.
pub fn message_bytes(raw: Raw) -> Result<usize, ConfigError> {
    let n = positive(raw)?;
    if n > 64 * 1024 * 1024 {
        return Err(raw.invalid(&n.to_string(), "at most 67108864"));
    }
    Ok(n)
}

/// Parses `500ms`, `10s`, `5m`, `2h`, `7d` (a bare number is seconds).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    let ms = match unit.trim() {
        "ms" => n,
        "" | "s" => n.checked_mul(1000)?,
        "m" => n.checked_mul(60_000)?,
        "h" => n.checked_mul(3_600_000)?,
        "d" => n.checked_mul(86_400_000)?,
        _ => return None,
    };
    Some(Duration::from_millis(ms))
}

/// A duration, 0 allowed.
pub fn duration_or_zero(raw: Raw) -> Result<Duration, ConfigError> {
    let text = raw.text();
    parse_duration(text)
        .ok_or_else(|| raw.invalid(text, "expected a duration like 500ms, 10s, 5m, 7d"))
}

/// A duration greater than zero.
pub fn duration(raw: Raw) -> Result<Duration, ConfigError> {
    let d = duration_or_zero(raw)?;
    if d.is_zero() {
        return Err(raw.invalid(raw.text(), "must be more than zero"));
    }
    Ok(d)
}

/// `true`, `1`, `yes`, `on` / `false`, `0`, `no`, `off` (any case; empty = false).
pub fn boolean(raw: Raw) -> Result<bool, ConfigError> {
    let text = raw.text();
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" | "" => Ok(false),
        _ => Err(raw.invalid(text, "expected true or false")),
    }
}

/// A name: 1-128 of `[A-Za-z0-9_.:@-]`.
pub fn name(raw: Raw) -> Result<String, ConfigError> {
    let name = raw.text().trim().to_owned();
    if !wsgate_protocol::names::is_valid_name(&name) {
        return Err(raw.invalid(&name, "expected 1-128 of [A-Za-z0-9_.:@-]"));
    }
    Ok(name)
}

/// A name; unset = the hostname and a random suffix.
pub fn node_id(raw: Raw) -> Result<String, ConfigError> {
    let id = raw.trimmed().map_or_else(default_node_id, str::to_owned);
    if !wsgate_protocol::names::is_valid_name(&id) {
        return Err(raw.invalid(&id, "expected 1-128 of [A-Za-z0-9_.:@-]"));
    }
    Ok(id)
}

fn default_node_id() -> String {
    let host = hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "wsgate".into());
    let host: String = host
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(64)
        .collect();
    format!("{host}-{:08x}", rand::random::<u32>())
}

/// A Sentinel service name: not empty, no spaces or control characters.
pub fn sentinel_name(raw: Raw) -> Result<String, ConfigError> {
    let name = raw.text().trim().to_owned();
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(raw.invalid(&name, "expected a Sentinel service name without spaces"));
    }
    Ok(name)
}

/// `single`, `sentinel` or `cluster`.
pub fn redis_mode(raw: Raw) -> Result<RedisMode, ConfigError> {
    match raw.text().trim() {
        "single" => Ok(RedisMode::Single),
        "sentinel" => Ok(RedisMode::Sentinel),
        "cluster" => Ok(RedisMode::Cluster),
        other => Err(raw.invalid(other, "expected single, sentinel or cluster")),
    }
}

/// A comma list of `redis://` or `rediss://` URLs, or unset. How many the
/// mode allows is checked in `Config::check`.
pub fn redis_urls(raw: Raw) -> Result<Option<String>, ConfigError> {
    let Some(text) = raw.trimmed() else {
        return Ok(None);
    };
    let urls = split_urls(text);
    if urls.is_empty() {
        return Err(raw.invalid(text, "expected a redis:// or rediss:// URL"));
    }
    for u in &urls {
        if !(u.starts_with("redis://") || u.starts_with("rediss://")) {
            return Err(raw.invalid(u, "expected a redis:// or rediss:// URL"));
        }
    }
    Ok(Some(text.to_owned()))
}

/// A path that must name an existing file, or unset.
pub fn existing_file(raw: Raw) -> Result<Option<PathBuf>, ConfigError> {
    let Some(text) = raw.trimmed() else {
        return Ok(None);
    };
    let path = PathBuf::from(text);
    if !path.is_file() {
        return Err(raw.invalid(&path.display().to_string(), "no such file"));
    }
    Ok(Some(path))
}

/// Unset = same host; `*` = any; else a comma list of origins.
pub fn origins(raw: Raw) -> Result<OriginPolicy, ConfigError> {
    Ok(match raw.trimmed() {
        None => OriginPolicy::SameHost,
        Some("*") => OriginPolicy::Any,
        Some(s) => OriginPolicy::List(
            s.split(',')
                .map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase())
                .filter(|o| !o.is_empty())
                .collect(),
        ),
    })
}

/// A comma list of CIDRs (or bare addresses); unset = none.
pub fn trusted_proxies(raw: Raw) -> Result<TrustedProxies, ConfigError> {
    let text = raw.value.unwrap_or("");
    TrustedProxies::parse(text).map_err(|reason| raw.invalid(text, reason))
}

/// `off`, `v1`, `v2` or `any`.
pub fn proxy_protocol(raw: Raw) -> Result<ProxyProtocol, ConfigError> {
    let text = raw.text();
    ProxyProtocol::parse(text).ok_or_else(|| raw.invalid(text, "expected off, v1, v2 or any"))
}

/// `text` or `json`.
pub fn log_format(raw: Raw) -> Result<LogFormat, ConfigError> {
    match raw.text().trim() {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        other => Err(raw.invalid(other, "expected text or json")),
    }
}

/// The levels a bare directive may name.
const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];

/// A `RUST_LOG`-style filter. `tracing` reads a bare word as a target name,
/// so a typo such as `debgu` would silently log nothing: a directive without
/// `=` or `[` must be a level name.
pub fn log_level(raw: Raw) -> Result<String, ConfigError> {
    let text = raw.text().trim();
    if text.is_empty() {
        return Err(raw.invalid(
            text,
            "expected a level such as info, or a filter such as wsgate=debug",
        ));
    }
    for directive in text.split(',').map(str::trim) {
        let bare = !directive.contains('=') && !directive.contains('[');
        if bare && !LEVELS.contains(&directive.to_ascii_lowercase().as_str()) {
            return Err(raw.invalid(
                text,
                format!("`{directive}` is not a level (trace, debug, info, warn, error, off)"),
            ));
        }
    }
    tracing_subscriber::EnvFilter::try_new(text).map_err(|e| raw.invalid(text, e.to_string()))?;
    Ok(text.to_owned())
}

/// A size in bytes, greater than zero: `512`, `64KiB`, `1MiB`.
pub fn size(raw: Raw) -> Result<usize, ConfigError> {
    let text = raw.text();
    match limits::parse_size(text) {
        Some(n) if n > 0 => Ok(n),
        _ => Err(raw.invalid(text, "expected a size like 512, 64KiB, 1MiB")),
    }
}

/// A percentage, `0%` to `100%`, as a fraction.
pub fn percent(raw: Raw) -> Result<f64, ConfigError> {
    let text = raw.text();
    limits::parse_percent(text)
        .ok_or_else(|| raw.invalid(text, "expected a percentage from 0% to 100%, like 10%"))
}

/// `reject` or `drop-oldest`.
pub fn inbox_overflow(raw: Raw) -> Result<limits::InboxOverflow, ConfigError> {
    let text = raw.text();
    limits::InboxOverflow::parse(text)
        .ok_or_else(|| raw.invalid(text, "expected reject or drop-oldest"))
}
