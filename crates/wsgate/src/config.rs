//! One typed [`Config`]: command-line flags, environment variables, a TOML file
//! and defaults, with validation.
//!
//! Precedence is flag > env > file > default (contract section 2). Every value,
//! whatever its source, goes through the same parser, so a bad value stops
//! start-up with a [`ConfigError`] naming the setting; `main` exits with 2.
//! Tests build `Config` values directly ([`Config::default`]) and never touch
//! the process environment.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;

mod proxies;
pub use proxies::{Cidr, ProxyProtocol, TrustedProxies};

/// A setting that could not be used, named as its flag.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid value {value:?} for --{name}: {reason}")]
    Invalid {
        name: &'static str,
        value: String,
        reason: String,
    },
    #[error("cannot read config file {path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("{0}")]
    Conflict(String),
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Which origins may open WebSockets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginPolicy {
    /// Unset: requests without `Origin`, and origins whose host is the request's `Host`.
    SameHost,
    /// `*`: any origin.
    Any,
    /// An explicit list of origins such as `https://app.example.com`.
    List(Vec<String>),
}

/// How the node reaches Redis (`--redis-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisMode {
    /// One primary at `--redis-url`.
    Single,
    /// `--redis-url` lists Sentinels; they name the primary of
    /// `--redis-sentinel-master`, and the node follows a failover.
    Sentinel,
    /// `--redis-url` lists Redis Cluster seed nodes.
    Cluster,
}

/// The validated configuration of one node.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    /// gRPC listener of the server API (`wsgate.v1.Gateway`); `None` = off.
    pub grpc_listen: Option<SocketAddr>,
    pub redis_url: Option<String>,
    pub redis_prefix: String,
    pub redis_mode: RedisMode,
    pub redis_sentinel_master: String,
    pub redis_wait_replicas: usize,
    pub redis_wait_timeout: Duration,
    pub node_id: String,
    pub jwt_secret: Option<String>,
    pub jwt_public_key_file: Option<PathBuf>,
    pub jwt_issuer: Option<String>,
    pub jwt_audience: Option<String>,
    pub allow_anonymous: bool,
    pub api_key: Option<String>,
    pub allowed_origins: OriginPolicy,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub max_message_bytes: usize,
    pub rate_limit: u32,
    pub max_rooms: usize,
    pub presence_max_members: usize,
    pub ping_interval: Duration,
    pub pong_timeout: Duration,
    pub ack_timeout: Duration,
    pub inbox_max: usize,
    pub inbox_ttl: Duration,
    /// Room messages kept per room for recovery; 0 = none (offsets are still assigned).
    pub history_size: usize,
    /// A room's history expires this long after its last message.
    pub history_ttl: Duration,
    pub node_ttl: Duration,
    pub drain_timeout: Duration,
    pub handshake_timeout: Duration,
    pub max_pending_handshakes: usize,
    /// Upgrades in progress from one client address (contract 3.2).
    pub max_pending_handshakes_per_ip: usize,
    /// Peers whose `X-Forwarded-For`/`Forwarded` and PROXY headers are
    /// believed (contract 3.1).
    pub trusted_proxies: TrustedProxies,
    /// Which PROXY protocol header the public listener requires.
    pub proxy_protocol: ProxyProtocol,
    pub outbox_size: usize,
    pub api_max_body_bytes: usize,
    pub log_format: LogFormat,
    pub log_level: String,
}

impl Config {
    /// The hard frame limit: a frame larger than this cannot be read and the
    /// connection is closed with 1009. Frames between `max_message_bytes` and this
    /// are read and answered with `message_too_large`.
    pub fn hard_message_limit(&self) -> usize {
        self.max_message_bytes.saturating_mul(4).max(16 * 1024)
    }
}

impl Default for Config {
    #[expect(
        clippy::expect_used,
        reason = "the defaults are constants, checked by the defaults_match_the_contract test"
    )]
    fn default() -> Self {
        let values = Values::default();
        Config::from_values(&values).expect("defaults are valid")
    }
}

/// Command-line flags; each also reads its `WSGATE_*` environment variable.
#[derive(Debug, Parser, Default)]
#[command(
    name = "wsgate",
    version,
    about = "Horizontally scalable WebSocket gateway."
)]
pub struct Cli {
    /// TOML file holding any of the settings below, in snake_case.
    #[arg(long, env = "WSGATE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Public listener: /ws, /healthz, /readyz, the demo page. [default: 0.0.0.0:8080]
    #[arg(long, env = "WSGATE_LISTEN")]
    pub listen: Option<String>,
    /// Admin listener: /metrics, /api/v1/*, /healthz, /readyz. [default: 0.0.0.0:9090]
    #[arg(long, env = "WSGATE_ADMIN_LISTEN")]
    pub admin_listen: Option<String>,
    /// gRPC server API listener (wsgate.v1.Gateway, health, reflection). [default: unset = off]
    #[arg(long, env = "WSGATE_GRPC_LISTEN")]
    pub grpc_listen: Option<String>,
    /// redis:// or rediss:// URL (a comma list in sentinel and cluster mode); unset runs standalone with in-memory state.
    #[arg(long, env = "WSGATE_REDIS_URL")]
    pub redis_url: Option<String>,
    /// Prefix of every Redis key and channel. [default: wsgate]
    #[arg(long, env = "WSGATE_REDIS_PREFIX")]
    pub redis_prefix: Option<String>,
    /// `single` (one primary at --redis-url), `sentinel` (--redis-url lists Sentinels), `cluster` (--redis-url lists Redis Cluster seed nodes). [default: single]
    #[arg(long, env = "WSGATE_REDIS_MODE")]
    pub redis_mode: Option<String>,
    /// The Sentinel service name of the primary. [default: mymaster]
    #[arg(long, env = "WSGATE_REDIS_SENTINEL_MASTER")]
    pub redis_sentinel_master: Option<String>,
    /// Replicas that must hold a stored direct message before the sender's ok (Redis WAIT). [default: 0]
    #[arg(long, env = "WSGATE_REDIS_WAIT_REPLICAS")]
    pub redis_wait_replicas: Option<String>,
    /// How long to wait for those replicas; past it the sender gets unavailable. [default: 1s]
    #[arg(long, env = "WSGATE_REDIS_WAIT_TIMEOUT")]
    pub redis_wait_timeout: Option<String>,
    /// Instance ID, unique in a cluster. [default: hostname + random suffix]
    #[arg(long, env = "WSGATE_NODE_ID")]
    pub node_id: Option<String>,
    /// HS256 key for client tokens.
    #[arg(long, env = "WSGATE_JWT_SECRET")]
    pub jwt_secret: Option<String>,
    /// PEM public key (RSA or EC P-256) for RS256/ES256 tokens.
    #[arg(long, env = "WSGATE_JWT_PUBLIC_KEY_FILE")]
    pub jwt_public_key_file: Option<String>,
    /// Required `iss` claim, when set.
    #[arg(long, env = "WSGATE_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// Required `aud` claim, when set.
    #[arg(long, env = "WSGATE_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
    /// Development only: no token; user id from ?user= (random if absent). [default: false]
    #[arg(long, env = "WSGATE_ALLOW_ANONYMOUS", num_args = 0..=1, default_missing_value = "true")]
    pub allow_anonymous: Option<String>,
    /// Bearer key for /api/v1/*; unset makes the API answer 503.
    #[arg(long, env = "WSGATE_API_KEY")]
    pub api_key: Option<String>,
    /// Comma list of allowed origins; `*` = any. Unset: no Origin, or same host.
    #[arg(long, env = "WSGATE_ALLOWED_ORIGINS")]
    pub allowed_origins: Option<String>,
    /// Connections per node. [default: 1000000]
    #[arg(long, env = "WSGATE_MAX_CONNECTIONS")]
    pub max_connections: Option<String>,
    /// Connections per node per client IP. [default: 1000]
    #[arg(long, env = "WSGATE_MAX_CONNECTIONS_PER_IP")]
    pub max_connections_per_ip: Option<String>,
    /// Largest client frame in bytes. [default: 65536]
    #[arg(long, env = "WSGATE_MAX_MESSAGE_BYTES")]
    pub max_message_bytes: Option<String>,
    /// Client frames per second per connection (burst = 2x). [default: 20]
    #[arg(long, env = "WSGATE_RATE_LIMIT")]
    pub rate_limit: Option<String>,
    /// Rooms one connection may join. [default: 100]
    #[arg(long, env = "WSGATE_MAX_ROOMS")]
    pub max_rooms: Option<String>,
    /// Rooms of at most this many users get presence events and member lists; larger ones only member_count. [default: 200]
    #[arg(long, env = "WSGATE_PRESENCE_MAX_MEMBERS")]
    pub presence_max_members: Option<String>,
    /// Server WebSocket ping period. [default: 25s]
    #[arg(long, env = "WSGATE_PING_INTERVAL")]
    pub ping_interval: Option<String>,
    /// Close if nothing is read for ping-interval + this. [default: 10s]
    #[arg(long, env = "WSGATE_PONG_TIMEOUT")]
    pub pong_timeout: Option<String>,
    /// A live direct message not acked this long is sent again from the inbox. [default: 10s]
    #[arg(long, env = "WSGATE_ACK_TIMEOUT")]
    pub ack_timeout: Option<String>,
    /// Messages kept per offline user; oldest dropped first. [default: 1000]
    #[arg(long, env = "WSGATE_INBOX_MAX")]
    pub inbox_max: Option<String>,
    /// Inbox expiry, renewed on every store. [default: 7d]
    #[arg(long, env = "WSGATE_INBOX_TTL")]
    pub inbox_ttl: Option<String>,
    /// Room messages kept per room for recovery; 0 = no history. [default: 100]
    #[arg(long, env = "WSGATE_HISTORY_SIZE")]
    pub history_size: Option<String>,
    /// A room's history expires this long after its last message. [default: 5m]
    #[arg(long, env = "WSGATE_HISTORY_TTL")]
    pub history_ttl: Option<String>,
    /// A node silent this long is dead; its presence is removed. [default: 15s]
    #[arg(long, env = "WSGATE_NODE_TTL")]
    pub node_ttl: Option<String>,
    /// Connections are closed with 1012 paced over this on shutdown. [default: 30s]
    #[arg(long, env = "WSGATE_DRAIN_TIMEOUT")]
    pub drain_timeout: Option<String>,
    /// Time a client has to complete the HTTP upgrade. [default: 10s]
    #[arg(long, env = "WSGATE_HANDSHAKE_TIMEOUT")]
    pub handshake_timeout: Option<String>,
    /// Upgrades in progress at once; more are refused with 503. [default: 1024]
    #[arg(long, env = "WSGATE_MAX_PENDING_HANDSHAKES")]
    pub max_pending_handshakes: Option<String>,
    /// Upgrades in progress from one client address; more are refused with 503. [default: 32]
    #[arg(long, env = "WSGATE_MAX_PENDING_HANDSHAKES_PER_IP")]
    pub max_pending_handshakes_per_ip: Option<String>,
    /// Comma list of CIDRs whose X-Forwarded-For/Forwarded and PROXY headers are believed. [default: none]
    #[arg(long, env = "WSGATE_TRUSTED_PROXIES")]
    pub trusted_proxies: Option<String>,
    /// `off`, `v1`, `v2` or `any`: the public listener requires a PROXY protocol header first. [default: off]
    #[arg(long, env = "WSGATE_PROXY_PROTOCOL")]
    pub proxy_protocol: Option<String>,
    /// Frames queued for one connection before it is closed as a slow consumer (1013). [default: 1024]
    #[arg(long, env = "WSGATE_OUTBOX_SIZE")]
    pub outbox_size: Option<String>,
    /// Largest server API request body in bytes (413 above). [default: 1048576]
    #[arg(long, env = "WSGATE_API_MAX_BODY_BYTES")]
    pub api_max_body_bytes: Option<String>,
    /// `text` or `json`. [default: text]
    #[arg(long, env = "WSGATE_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Log filter, e.g. `info` or `wsgate=debug`. [default: info]
    #[arg(long, env = "WSGATE_LOG_LEVEL")]
    pub log_level: Option<String>,
}

/// Raw string values by setting name, after precedence is applied.
#[derive(Default)]
struct Values(HashMap<&'static str, String>);

impl Values {
    fn get(&self, name: &'static str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    fn or<'a>(&'a self, name: &'static str, default: &'a str) -> &'a str {
        self.get(name).unwrap_or(default)
    }
}

/// Every setting: (flag name, snake_case file key).
const SETTINGS: [(&str, &str); 42] = [
    ("listen", "listen"),
    ("admin-listen", "admin_listen"),
    ("grpc-listen", "grpc_listen"),
    ("redis-url", "redis_url"),
    ("redis-prefix", "redis_prefix"),
    ("redis-mode", "redis_mode"),
    ("redis-sentinel-master", "redis_sentinel_master"),
    ("redis-wait-replicas", "redis_wait_replicas"),
    ("redis-wait-timeout", "redis_wait_timeout"),
    ("node-id", "node_id"),
    ("jwt-secret", "jwt_secret"),
    ("jwt-public-key-file", "jwt_public_key_file"),
    ("jwt-issuer", "jwt_issuer"),
    ("jwt-audience", "jwt_audience"),
    ("allow-anonymous", "allow_anonymous"),
    ("api-key", "api_key"),
    ("allowed-origins", "allowed_origins"),
    ("max-connections", "max_connections"),
    ("max-connections-per-ip", "max_connections_per_ip"),
    ("max-message-bytes", "max_message_bytes"),
    ("rate-limit", "rate_limit"),
    ("max-rooms", "max_rooms"),
    ("presence-max-members", "presence_max_members"),
    ("ping-interval", "ping_interval"),
    ("pong-timeout", "pong_timeout"),
    ("ack-timeout", "ack_timeout"),
    ("inbox-max", "inbox_max"),
    ("inbox-ttl", "inbox_ttl"),
    ("history-size", "history_size"),
    ("history-ttl", "history_ttl"),
    ("node-ttl", "node_ttl"),
    ("drain-timeout", "drain_timeout"),
    ("handshake-timeout", "handshake_timeout"),
    ("max-pending-handshakes", "max_pending_handshakes"),
    (
        "max-pending-handshakes-per-ip",
        "max_pending_handshakes_per_ip",
    ),
    ("trusted-proxies", "trusted_proxies"),
    ("proxy-protocol", "proxy_protocol"),
    ("outbox-size", "outbox_size"),
    ("api-max-body-bytes", "api_max_body_bytes"),
    ("log-format", "log_format"),
    ("log-level", "log_level"),
    ("config", "config"),
];

impl Cli {
    fn flag_values(&self) -> Vec<(&'static str, &Option<String>)> {
        vec![
            ("listen", &self.listen),
            ("admin-listen", &self.admin_listen),
            ("grpc-listen", &self.grpc_listen),
            ("redis-url", &self.redis_url),
            ("redis-prefix", &self.redis_prefix),
            ("redis-mode", &self.redis_mode),
            ("redis-sentinel-master", &self.redis_sentinel_master),
            ("redis-wait-replicas", &self.redis_wait_replicas),
            ("redis-wait-timeout", &self.redis_wait_timeout),
            ("node-id", &self.node_id),
            ("jwt-secret", &self.jwt_secret),
            ("jwt-public-key-file", &self.jwt_public_key_file),
            ("jwt-issuer", &self.jwt_issuer),
            ("jwt-audience", &self.jwt_audience),
            ("allow-anonymous", &self.allow_anonymous),
            ("api-key", &self.api_key),
            ("allowed-origins", &self.allowed_origins),
            ("max-connections", &self.max_connections),
            ("max-connections-per-ip", &self.max_connections_per_ip),
            ("max-message-bytes", &self.max_message_bytes),
            ("rate-limit", &self.rate_limit),
            ("max-rooms", &self.max_rooms),
            ("presence-max-members", &self.presence_max_members),
            ("ping-interval", &self.ping_interval),
            ("pong-timeout", &self.pong_timeout),
            ("ack-timeout", &self.ack_timeout),
            ("inbox-max", &self.inbox_max),
            ("inbox-ttl", &self.inbox_ttl),
            ("history-size", &self.history_size),
            ("history-ttl", &self.history_ttl),
            ("node-ttl", &self.node_ttl),
            ("drain-timeout", &self.drain_timeout),
            ("handshake-timeout", &self.handshake_timeout),
            ("max-pending-handshakes", &self.max_pending_handshakes),
            (
                "max-pending-handshakes-per-ip",
                &self.max_pending_handshakes_per_ip,
            ),
            ("trusted-proxies", &self.trusted_proxies),
            ("proxy-protocol", &self.proxy_protocol),
            ("outbox-size", &self.outbox_size),
            ("api-max-body-bytes", &self.api_max_body_bytes),
            ("log-format", &self.log_format),
            ("log-level", &self.log_level),
        ]
    }

    /// Applies precedence (flag/env, which clap already merged, over the file)
    /// and validates the result.
    pub fn into_config(self) -> Result<Config, ConfigError> {
        let mut values = Values::default();
        if let Some(path) = &self.config {
            values = read_file(path)?;
        }
        for (name, value) in self.flag_values() {
            if let Some(v) = value {
                values.0.insert(name, v.clone());
            }
        }
        Config::from_values(&values)
    }
}

fn read_file(path: &Path) -> Result<Values, ConfigError> {
    let file_err = |reason: String| ConfigError::File {
        path: path.to_owned(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| file_err(e.to_string()))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| file_err(e.to_string()))?;
    let mut values = Values::default();
    for (key, value) in table {
        let Some((flag, _)) = SETTINGS.iter().find(|(_, k)| *k == key) else {
            return Err(file_err(format!("unknown setting `{key}`")));
        };
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Array(items) => items
                .iter()
                .map(|i| {
                    i.as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| i.to_string())
                })
                .collect::<Vec<_>>()
                .join(","),
            other => return Err(file_err(format!("`{key}`: unsupported value {other}"))),
        };
        values.0.insert(flag, text);
    }
    Ok(values)
}

fn invalid(name: &'static str, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        name,
        value: value.to_owned(),
        reason: reason.into(),
    }
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

fn duration(values: &Values, name: &'static str, default: &str) -> Result<Duration, ConfigError> {
    let text = values.or(name, default);
    parse_duration(text)
        .ok_or_else(|| invalid(name, text, "expected a duration like 500ms, 10s, 5m, 7d"))
}

fn positive(values: &Values, name: &'static str, default: &str) -> Result<usize, ConfigError> {
    let text = values.or(name, default);
    match text.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(invalid(name, text, "expected a positive whole number")),
    }
}

fn whole(values: &Values, name: &'static str, default: &str) -> Result<usize, ConfigError> {
    let text = values.or(name, default);
    text.trim()
        .parse::<usize>()
        .map_err(|_| invalid(name, text, "expected a whole number (0 or more)"))
}

fn boolean(values: &Values, name: &'static str) -> Result<bool, ConfigError> {
    let text = values.or(name, "false");
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" | "" => Ok(false),
        _ => Err(invalid(name, text, "expected true or false")),
    }
}

fn addr(values: &Values, name: &'static str, default: &str) -> Result<SocketAddr, ConfigError> {
    let text = values.or(name, default);
    text.trim()
        .parse()
        .map_err(|_| invalid(name, text, "expected an address like 0.0.0.0:8080"))
}

fn optional(values: &Values, name: &'static str) -> Option<String> {
    values
        .get(name)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// The entries of a comma list of Redis URLs.
pub fn split_urls(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_owned)
        .collect()
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

impl Config {
    fn from_values(values: &Values) -> Result<Config, ConfigError> {
        let redis_mode = match values.or("redis-mode", "single").trim() {
            "single" => RedisMode::Single,
            "sentinel" => RedisMode::Sentinel,
            "cluster" => RedisMode::Cluster,
            other => {
                return Err(invalid(
                    "redis-mode",
                    other,
                    "expected single, sentinel or cluster",
                ))
            }
        };
        let redis_url = optional(values, "redis-url");
        if let Some(url) = &redis_url {
            let urls = split_urls(url);
            if urls.is_empty() {
                return Err(invalid(
                    "redis-url",
                    url,
                    "expected a redis:// or rediss:// URL",
                ));
            }
            if redis_mode == RedisMode::Single && urls.len() > 1 {
                return Err(invalid(
                    "redis-url",
                    url,
                    "one URL in single mode (a list needs --redis-mode sentinel or cluster)",
                ));
            }
            for u in &urls {
                if !(u.starts_with("redis://") || u.starts_with("rediss://")) {
                    return Err(invalid(
                        "redis-url",
                        u,
                        "expected a redis:// or rediss:// URL",
                    ));
                }
            }
        }
        let redis_sentinel_master = values
            .or("redis-sentinel-master", "mymaster")
            .trim()
            .to_owned();
        if redis_sentinel_master.is_empty()
            || redis_sentinel_master
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(invalid(
                "redis-sentinel-master",
                &redis_sentinel_master,
                "expected a Sentinel service name without spaces",
            ));
        }
        let wait_text = values.or("redis-wait-replicas", "0");
        let redis_wait_replicas: usize = wait_text.trim().parse().map_err(|_| {
            invalid(
                "redis-wait-replicas",
                wait_text,
                "expected a whole number (0 = do not wait)",
            )
        })?;
        let redis_prefix = values.or("redis-prefix", "wsgate").trim().to_owned();
        if !wsgate_protocol::names::is_valid_name(&redis_prefix) {
            return Err(invalid(
                "redis-prefix",
                &redis_prefix,
                "expected 1-128 of [A-Za-z0-9_.:@-]",
            ));
        }
        let node_id = optional(values, "node-id").unwrap_or_else(default_node_id);
        if !wsgate_protocol::names::is_valid_name(&node_id) {
            return Err(invalid(
                "node-id",
                &node_id,
                "expected 1-128 of [A-Za-z0-9_.:@-]",
            ));
        }
        let allowed_origins = match optional(values, "allowed-origins") {
            None => OriginPolicy::SameHost,
            Some(s) if s == "*" => OriginPolicy::Any,
            Some(s) => OriginPolicy::List(
                s.split(',')
                    .map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase())
                    .filter(|o| !o.is_empty())
                    .collect(),
            ),
        };
        let log_format = match values.or("log-format", "text").trim() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => return Err(invalid("log-format", other, "expected text or json")),
        };
        let jwt_public_key_file = optional(values, "jwt-public-key-file").map(PathBuf::from);
        if let Some(path) = &jwt_public_key_file {
            if !path.is_file() {
                return Err(invalid(
                    "jwt-public-key-file",
                    &path.display().to_string(),
                    "no such file",
                ));
            }
        }
        let rate_limit = positive(values, "rate-limit", "20")?;
        let trusted_text = values.or("trusted-proxies", "");
        let trusted_proxies = TrustedProxies::parse(trusted_text)
            .map_err(|reason| invalid("trusted-proxies", trusted_text, reason))?;
        let proxy_text = values.or("proxy-protocol", "off");
        let proxy_protocol = ProxyProtocol::parse(proxy_text)
            .ok_or_else(|| invalid("proxy-protocol", proxy_text, "expected off, v1, v2 or any"))?;
        if proxy_protocol != ProxyProtocol::Off && trusted_proxies.is_empty() {
            return Err(invalid(
                "proxy-protocol",
                proxy_text,
                "needs --trusted-proxies: only a trusted peer may send a PROXY header",
            ));
        }
        let config = Config {
            listen: addr(values, "listen", "0.0.0.0:8080")?,
            admin_listen: addr(values, "admin-listen", "0.0.0.0:9090")?,
            grpc_listen: optional(values, "grpc-listen")
                .map(|text| {
                    text.parse().map_err(|_| {
                        invalid(
                            "grpc-listen",
                            &text,
                            "expected an address like 0.0.0.0:50051",
                        )
                    })
                })
                .transpose()?,
            redis_url,
            redis_prefix,
            redis_mode,
            redis_sentinel_master,
            redis_wait_replicas,
            redis_wait_timeout: duration(values, "redis-wait-timeout", "1s")?,
            node_id,
            jwt_secret: optional(values, "jwt-secret"),
            jwt_public_key_file,
            jwt_issuer: optional(values, "jwt-issuer"),
            jwt_audience: optional(values, "jwt-audience"),
            allow_anonymous: boolean(values, "allow-anonymous")?,
            api_key: optional(values, "api-key"),
            allowed_origins,
            max_connections: positive(values, "max-connections", "1000000")?,
            max_connections_per_ip: positive(values, "max-connections-per-ip", "1000")?,
            max_message_bytes: positive(values, "max-message-bytes", "65536")?,
            rate_limit: u32::try_from(rate_limit)
                .map_err(|_| invalid("rate-limit", &rate_limit.to_string(), "too large"))?,
            max_rooms: positive(values, "max-rooms", "100")?,
            presence_max_members: positive(values, "presence-max-members", "200")?,
            ping_interval: duration(values, "ping-interval", "25s")?,
            pong_timeout: duration(values, "pong-timeout", "10s")?,
            ack_timeout: duration(values, "ack-timeout", "10s")?,
            inbox_max: positive(values, "inbox-max", "1000")?,
            inbox_ttl: duration(values, "inbox-ttl", "7d")?,
            history_size: whole(values, "history-size", "100")?,
            history_ttl: duration(values, "history-ttl", "5m")?,
            node_ttl: duration(values, "node-ttl", "15s")?,
            drain_timeout: duration(values, "drain-timeout", "30s")?,
            handshake_timeout: duration(values, "handshake-timeout", "10s")?,
            max_pending_handshakes: positive(values, "max-pending-handshakes", "1024")?,
            max_pending_handshakes_per_ip: positive(values, "max-pending-handshakes-per-ip", "32")?,
            trusted_proxies,
            proxy_protocol,
            outbox_size: positive(values, "outbox-size", "1024")?,
            api_max_body_bytes: positive(values, "api-max-body-bytes", "1048576")?,
            log_format,
            log_level: values.or("log-level", "info").to_owned(),
        };
        for (name, d) in [
            ("ping-interval", config.ping_interval),
            ("pong-timeout", config.pong_timeout),
            ("ack-timeout", config.ack_timeout),
            ("inbox-ttl", config.inbox_ttl),
            ("history-ttl", config.history_ttl),
            ("node-ttl", config.node_ttl),
            ("handshake-timeout", config.handshake_timeout),
            ("redis-wait-timeout", config.redis_wait_timeout),
        ] {
            if d.is_zero() {
                return Err(invalid(name, "0", "must be more than zero"));
            }
        }
        if config.max_message_bytes > 64 * 1024 * 1024 {
            return Err(invalid(
                "max-message-bytes",
                &config.max_message_bytes.to_string(),
                "at most 67108864",
            ));
        }
        Ok(config)
    }

    /// Checks settings that only make sense together. Called by `main`, not by
    /// `Default`, so tests can build partial configs.
    pub fn check_auth(&self) -> Result<(), ConfigError> {
        if self.jwt_secret.is_none() && self.jwt_public_key_file.is_none() && !self.allow_anonymous
        {
            return Err(ConfigError::Conflict(
                "no way to authenticate clients: set --jwt-secret, --jwt-public-key-file, \
                 or --allow-anonymous (development only)"
                    .into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
