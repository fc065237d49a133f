//! The webhook settings (`--webhook-*`, contract section 2 and 10) and
//! the values they take: the event types, the receiver's URL. The
//! `webhooks` module delivers with them; they live here, below it, so the
//! config depends on nothing it configures.

use std::time::Duration;

use http::Uri;

use super::parse::Raw;
use super::{Config, ConfigError};

/// One event type of contract section 10.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    UserOnline,
    UserOffline,
    RoomOccupied,
    RoomVacated,
    MemberJoined,
    MemberLeft,
    MessageRoom,
    MessageDirect,
}

impl EventType {
    pub const ALL: [EventType; 8] = [
        EventType::UserOnline,
        EventType::UserOffline,
        EventType::RoomOccupied,
        EventType::RoomVacated,
        EventType::MemberJoined,
        EventType::MemberLeft,
        EventType::MessageRoom,
        EventType::MessageDirect,
    ];

    /// The wire name (`user.online`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            EventType::UserOnline => "user.online",
            EventType::UserOffline => "user.offline",
            EventType::RoomOccupied => "room.occupied",
            EventType::RoomVacated => "room.vacated",
            EventType::MemberJoined => "member.joined",
            EventType::MemberLeft => "member.left",
            EventType::MessageRoom => "message.room",
            EventType::MessageDirect => "message.direct",
        }
    }

    pub fn parse(s: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == s)
    }

    const fn bit(self) -> u16 {
        1 << self as u16
    }
}

/// The set of event types a cluster sends (`--webhook-events`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EventSet(u16);

impl EventSet {
    /// The contract's default: `user.online,user.offline`.
    pub const DEFAULT: EventSet =
        EventSet(EventType::UserOnline.bit() | EventType::UserOffline.bit());

    /// Parses a comma list; the unknown name is the error.
    pub fn parse(list: &str) -> Result<EventSet, String> {
        let mut set = EventSet(0);
        for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match EventType::parse(name) {
                Some(t) => set.0 |= t.bit(),
                None => return Err(name.to_owned()),
            }
        }
        Ok(set)
    }

    pub fn of(types: &[EventType]) -> EventSet {
        EventSet(types.iter().fold(0, |a, t| a | t.bit()))
    }

    pub const fn has(self, t: EventType) -> bool {
        self.0 & t.bit() != 0
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// "1" or "0" per type, in [`EventType::ALL`] order: how the Redis
    /// scripts are told which events to write.
    pub fn flags(self) -> String {
        EventType::ALL
            .iter()
            .map(|t| if self.has(*t) { '1' } else { '0' })
            .collect()
    }
}

/// A `--webhook-url`, checked at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiverUrl {
    pub(crate) tls: bool,
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) authority: String,
    pub(crate) path: String,
}

impl ReceiverUrl {
    /// Parses an `http://` or `https://` URL; the reason is the error.
    pub fn parse(url: &str) -> Result<ReceiverUrl, String> {
        let uri: Uri = url.parse().map_err(|e| format!("not a URL: {e}"))?;
        let tls = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err("the scheme must be http or https".into()),
        };
        let authority = uri.authority().ok_or("no host")?;
        let host = authority.host().trim_matches(['[', ']']).to_owned();
        if host.is_empty() {
            return Err("no host".into());
        }
        Ok(ReceiverUrl {
            tls,
            port: authority.port_u16().unwrap_or(if tls { 443 } else { 80 }),
            authority: authority.as_str().to_owned(),
            path: uri
                .path_and_query()
                .map_or("/".to_owned(), |p| p.as_str().to_owned()),
            host,
        })
    }
}

/// The webhook settings (`--webhook-*`), checked at start-up.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// `--webhook-url`.
    pub url: ReceiverUrl,
    /// `--webhook-secret`: the HMAC key.
    pub secret: String,
    /// `--webhook-events`.
    pub events: EventSet,
    /// `--webhook-offline-delay`.
    pub offline_delay: Duration,
    /// `--webhook-max-attempts`: POSTs of one batch before it is dropped.
    pub max_attempts: u32,
    /// `--webhook-timeout`: how long one POST may take.
    pub timeout: Duration,
    /// `--webhook-backoff-max`: the longest wait between two attempts.
    pub backoff_max: Duration,
    /// `--webhook-batch-max`: most events in one POST.
    pub batch_max: usize,
}

impl WebhookConfig {
    /// The contract's defaults for everything but the URL and the secret.
    pub fn new(url: ReceiverUrl, secret: String) -> WebhookConfig {
        WebhookConfig {
            url,
            secret,
            events: EventSet::DEFAULT,
            offline_delay: Duration::from_secs(3),
            max_attempts: 10,
            timeout: Duration::from_secs(10),
            backoff_max: Duration::from_secs(30),
            batch_max: 100,
        }
    }
}

/// `--webhook-url`: an `http://` or `https://` URL, or unset.
pub fn receiver_url(raw: Raw) -> Result<Option<ReceiverUrl>, ConfigError> {
    let Some(text) = raw.value.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    ReceiverUrl::parse(text)
        .map(Some)
        .map_err(|reason| raw.invalid(text, reason))
}

/// `--webhook-events`: a comma list of known event types, at least one.
pub fn event_set(raw: Raw) -> Result<EventSet, ConfigError> {
    let text = raw.value.or(raw.setting.default).unwrap_or("");
    let set = EventSet::parse(text)
        .map_err(|name| raw.invalid(text, format!("unknown event type {name:?}")))?;
    if set.is_empty() {
        return Err(raw.invalid(text, "no event type named"));
    }
    Ok(set)
}

/// `--webhook-batch-max`: 1 to 10000.
pub fn batch_max(raw: Raw) -> Result<usize, ConfigError> {
    let n = super::parse::positive(raw)?;
    if n > 10_000 {
        return Err(raw.invalid(&n.to_string(), "at most 10000"));
    }
    Ok(n)
}

impl Config {
    /// The webhook settings together, when `--webhook-url` is set.
    pub fn webhooks(&self) -> Option<WebhookConfig> {
        Some(WebhookConfig {
            url: self.webhook_url.clone()?,
            secret: self.webhook_secret.clone().unwrap_or_default(),
            events: self.webhook_events,
            offline_delay: self.webhook_offline_delay,
            max_attempts: self.webhook_max_attempts,
            timeout: self.webhook_timeout,
            backoff_max: self.webhook_backoff_max,
            batch_max: self.webhook_batch_max,
        })
    }

    /// `--webhook-url` needs `--webhook-secret` (called by `Config::check`).
    pub(super) fn check_webhooks(&self) -> Result<(), ConfigError> {
        if self.webhook_url.is_some() && self.webhook_secret.is_none() {
            return Err(ConfigError::Conflict(
                "--webhook-url needs --webhook-secret: every webhook request is signed".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_parse_and_name_the_unknown() {
        let s = EventSet::parse("user.online, message.room").unwrap();
        assert!(s.has(EventType::UserOnline) && s.has(EventType::MessageRoom));
        assert!(!s.has(EventType::UserOffline));
        assert_eq!(EventSet::parse("user.online,nope"), Err("nope".into()));
        assert_eq!(s.flags(), "10000010");
    }

    #[test]
    fn urls_are_checked() {
        let u = ReceiverUrl::parse("http://127.0.0.1:8081/hooks?x=1").unwrap();
        assert_eq!(
            (u.port, u.path.as_str(), u.tls),
            (8081, "/hooks?x=1", false)
        );
        let u = ReceiverUrl::parse("https://hooks.example.com").unwrap();
        assert_eq!((u.port, u.path.as_str(), u.tls), (443, "/", true));
        assert!(ReceiverUrl::parse("ftp://x/").is_err());
        assert!(ReceiverUrl::parse("nonsense").is_err());
    }
}
