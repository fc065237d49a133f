//! The settings table: every setting of the node, declared once.
//!
//! HOW TO ADD A SETTING: add one entry below (anywhere; keep related settings
//! together, and add yours on its own lines so a neighbour's entry never
//! conflicts with it):
//!
//! ```text
//! /// What it does, for `--help` and the `Config` field (one line if you can).
//! my_setting: Duration = duration("10s");
//! ```
//!
//! That gives `--my-setting`, `WSGATE_MY_SETTING`, the file key `my_setting`
//! and `Config::my_setting`. The parser is a function of [`super::parse`]
//! (`duration`, `positive`, `whole`, `boolean`, `text`, `bytes`, ... or a new
//! one there); `parser()` with no default means unset. Checks between
//! settings go in `Config::check` (`config/mod.rs`). Then add a row to
//! `docs/configuration.md` (a unit test fails until the flag, env var, file
//! key and default appear there) and to PROTOCOL.md section 2 if it is part
//! of the contract. Nothing is counted by hand.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::table::{settings, Setting};
use super::webhooks::{EventSet, ReceiverUrl};
use super::{
    parse, ApiKey, ConfigError, InboxOverflow, LogFormat, OriginPolicy, ProxyProtocol, RedisMode,
    TrustedProxies, Values,
};

settings! {
    /// Public listener: /ws, /healthz, /readyz, the demo page.
    listen: SocketAddr = addr("0.0.0.0:8080");
    /// Admin listener: /metrics, /api/v1/*, /healthz, /readyz.
    admin_listen: SocketAddr = addr("0.0.0.0:9090");
    /// gRPC server API listener (wsgate.v1.Gateway, health, reflection); unset = off.
    grpc_listen: Option<SocketAddr> = optional_addr();
    /// redis:// or rediss:// URL (a comma list in sentinel and cluster mode); unset runs standalone with in-memory state.
    redis_url: Option<String> = redis_urls();
    /// Prefix of every Redis key and channel.
    redis_prefix: String = name("wsgate");
    /// `single` (one primary at --redis-url), `sentinel` (--redis-url lists Sentinels), `cluster` (--redis-url lists Redis Cluster seed nodes).
    redis_mode: RedisMode = redis_mode("single");
    /// The Sentinel service name of the primary.
    redis_sentinel_master: String = sentinel_name("mymaster");
    /// Replicas that must hold a stored direct message before the sender's ok (Redis WAIT).
    redis_wait_replicas: usize = whole("0");
    /// How long to wait for those replicas; past it the sender gets unavailable.
    redis_wait_timeout: Duration = duration("1s");
    /// Instance ID, unique in a cluster; unset = hostname + random suffix.
    node_id: String = node_id();
    /// HS256 key for client tokens.
    jwt_secret: Option<String> = text();
    /// PEM public key (RSA or EC P-256) for RS256/ES256 tokens.
    jwt_public_key_file: Option<PathBuf> = existing_file();
    /// Required `iss` claim, when set.
    jwt_issuer: Option<String> = text();
    /// Required `aud` claim, when set.
    jwt_audience: Option<String> = text();
    /// Development only: no token; user id from ?user= (random if absent).
    #[arg(num_args = 0..=1, default_missing_value = "true")]
    allow_anonymous: bool = boolean("false");
    /// Bearer key for /api/v1/*; unset makes the API answer 503.
    api_key: Option<ApiKey> = api_key();
    /// Comma list of allowed origins; `*` = any. Unset: no Origin, or same host.
    allowed_origins: OriginPolicy = origins();
    /// Connections per node.
    max_connections: usize = positive("1000000");
    /// Connections per node per client IP.
    max_connections_per_ip: usize = positive("1000");
    /// Largest client frame in bytes.
    max_message_bytes: usize = message_bytes("65536");
    /// Client frames per second per connection (burst = 2x).
    rate_limit: u32 = positive_u32("20");
    /// Rooms one connection may join.
    max_rooms: usize = positive("100");
    /// Rooms of at most this many users get presence events and member lists; larger ones only member_count.
    presence_max_members: usize = positive("200");
    /// permessage-deflate (RFC 7692, no context takeover) for clients that offer it.
    #[arg(num_args = 0..=1, default_missing_value = "true")]
    compression: bool = boolean("false");
    /// With --compression: payloads smaller than this many bytes are sent uncompressed.
    compression_min_bytes: usize = whole("256");
    /// Server WebSocket ping period.
    ping_interval: Duration = duration("25s");
    /// Close if nothing is read for ping-interval + this.
    pong_timeout: Duration = duration("10s");
    /// A live direct message not acked this long is sent again from the inbox.
    ack_timeout: Duration = duration("10s");
    /// Unacked messages kept per user; when full, see --inbox-overflow.
    inbox_max: usize = positive("1000");
    /// Bytes of unacked messages kept per user (their size as stored).
    inbox_max_bytes: usize = size("1MiB");
    /// Unacked messages one sender may have in one user's inbox; server API sends are exempt.
    inbox_max_per_sender: usize = positive("100");
    /// When an inbox is full: `reject` (the sender gets inbox_full) or `drop-oldest` (counted as trimmed).
    inbox_overflow: InboxOverflow = inbox_overflow("reject");
    /// Share of Redis maxmemory kept for cluster state: above the rest, direct message stores are refused with unavailable.
    redis_memory_reserve: f64 = percent("10%");
    /// Inbox expiry, renewed on every store.
    inbox_ttl: Duration = duration("7d");
    /// Room messages kept per room for recovery; 0 = no history (offsets are still assigned).
    history_size: usize = whole("100");
    /// A room's history expires this long after its last message.
    history_ttl: Duration = duration("5m");
    /// A node silent this long is dead; its presence is removed.
    node_ttl: Duration = duration("15s");
    /// Connections are closed with 1012 paced over this on shutdown.
    drain_timeout: Duration = duration_or_zero("30s");
    /// Time a client has to complete the HTTP upgrade.
    handshake_timeout: Duration = duration("10s");
    /// Upgrades in progress at once; more are refused with 503.
    max_pending_handshakes: usize = positive("1024");
    /// Upgrades in progress from one client address; more are refused with 503 (contract 3.2).
    max_pending_handshakes_per_ip: usize = positive("32");
    /// Comma list of CIDRs whose X-Forwarded-For/Forwarded and PROXY headers are believed (contract 3.1); unset = none.
    trusted_proxies: TrustedProxies = trusted_proxies();
    /// `off`, `v1`, `v2` or `any`: the public listener requires a PROXY protocol header first.
    proxy_protocol: ProxyProtocol = proxy_protocol("off");
    /// Frames queued for one connection before it is closed as a slow consumer (1013).
    outbox_size: usize = positive("1024");
    /// Largest server API request body in bytes (413 above).
    api_max_body_bytes: usize = positive("1048576");
    /// Where webhook events are POSTed (http:// or https://); unset = off.
    webhook_url: Option<ReceiverUrl> = receiver_url();
    /// HMAC-SHA256 key of the X-Wsgate-Signature header; required with --webhook-url.
    webhook_secret: Option<String> = text();
    /// Comma list of the webhook event types to send.
    webhook_events: EventSet = event_set("user.online,user.offline");
    /// user.offline is sent only if no connection of the user came back within this.
    webhook_offline_delay: Duration = duration("3s");
    /// POSTs of one webhook batch before it is dropped (counted).
    webhook_max_attempts: u32 = positive_u32("10");
    /// How long one webhook POST may take before it counts as failed.
    webhook_timeout: Duration = duration("10s");
    /// The longest wait between two attempts of a webhook batch.
    webhook_backoff_max: Duration = duration("30s");
    /// Most events in one webhook POST (at most 10000).
    webhook_batch_max: usize = batch_max("100");
    /// `text` or `json`.
    log_format: LogFormat = log_format("text");
    /// Log filter, e.g. `info` or `wsgate=debug` (RUST_LOG syntax; a bare word must be a level).
    log_level: String = log_level("info");
}
