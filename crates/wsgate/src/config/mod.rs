//! One typed [`Config`]: command-line flags, environment variables, a TOML file
//! and defaults, with validation.
//!
//! Every setting is declared once, in the table of [`settings`] (how to add
//! one is at its top); [`table`] holds the macro that derives from each entry
//! its flag, environment variable, file key, clap field, [`Config`] field and
//! [`SETTINGS`] descriptor, and [`parse`] the value parsers entries name.
//!
//! Precedence is flag > env > file > default (contract section 2). Every value,
//! whatever its source, goes through the same parser, so a bad value stops
//! start-up with a [`ConfigError`] naming the setting; `main` exits with 2. An
//! unknown key in the file is an error; an unknown `WSGATE_*` variable is
//! reported by [`unknown_env_vars`] (logged as a warning by `main`).
//! Tests build `Config` values directly ([`Config::default`]) and never touch
//! the process environment.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

mod api_key;
mod limits;
pub mod parse;
mod proxies;
mod settings;
pub mod table;
pub mod webhooks;

pub use api_key::ApiKey;
pub use limits::{parse_percent, parse_size, InboxOverflow};
pub use parse::parse_duration;
use parse::Raw;
pub use proxies::{Cidr, ProxyProtocol, TrustedProxies};
pub use settings::{Cli, Config, SETTINGS};
use table::{Setting, ENV_PREFIX};

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

/// Raw values by file key, after precedence is applied (flag or env over the
/// file); defaults come from the table when a value is read.
#[derive(Default)]
pub(crate) struct Values(HashMap<&'static str, String>);

impl Values {
    /// The value of `setting`: given, else its default.
    fn raw(&self, setting: &'static Setting) -> Raw<'_> {
        Raw {
            setting,
            value: self
                .0
                .get(setting.key)
                .map(String::as_str)
                .or(setting.default),
        }
    }
}

/// The setting whose file key is `key`.
pub fn setting(key: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.key == key)
}

impl Cli {
    /// The clap command, each setting's help ending with its default from
    /// the table (clap's own `default_value` would hide whether a value was
    /// given, which precedence over the file needs).
    pub fn command_with_defaults() -> clap::Command {
        let mut command = <Cli as clap::CommandFactory>::command();
        for s in SETTINGS {
            if let Some(default) = s.default.filter(|d| !d.is_empty()) {
                command = command.mut_arg(s.key, |arg| {
                    let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
                    arg.help(format!("{help} [default: {default}]"))
                });
            }
        }
        command
    }

    /// Parses the process's arguments and environment; `--help`, `--version`
    /// and a malformed command line print and exit as clap does (exit 2 for
    /// an error).
    pub fn from_process() -> Cli {
        let matches = Cli::command_with_defaults().get_matches();
        match <Cli as clap::FromArgMatches>::from_arg_matches(&matches) {
            Ok(cli) => cli,
            Err(e) => e.exit(),
        }
    }

    /// Applies precedence (flag/env, which clap already merged, over the file)
    /// and validates the result.
    pub fn into_config(self) -> Result<Config, ConfigError> {
        let mut values = Values::default();
        if let Some(path) = &self.config {
            values = read_file(path)?;
        }
        for (setting, value) in self.given() {
            if let Some(v) = value {
                values.0.insert(setting.key, v.to_owned());
            }
        }
        Config::from_values(&values)
    }
}

/// The `WSGATE_*` variables among `vars` that name no setting (typos such as
/// `WSGATE_MAX_ROOMZ`); `main` logs each as a warning.
pub fn unknown_env_vars(vars: impl IntoIterator<Item = (OsString, OsString)>) -> Vec<String> {
    let mut unknown: Vec<String> = vars
        .into_iter()
        .filter_map(|(name, _)| name.into_string().ok())
        .filter(|name| name.starts_with(ENV_PREFIX))
        .filter(|name| name != CONFIG_ENV && !SETTINGS.iter().any(|s| s.env == name))
        .filter(|name| !NOT_SETTINGS.contains(&name.as_str()))
        .collect();
    unknown.sort();
    unknown
}

/// The environment variable of `--config`.
const CONFIG_ENV: &str = "WSGATE_CONFIG";

/// `WSGATE_*` variables that are not node settings but are read by the
/// project's tools (tests, load generator), and so may well be set around a node.
const NOT_SETTINGS: &[&str] = &[
    "WSGATE_BIN",
    "WSGATE_TEST_LOG",
    "WSGATE_TEST_REDIS",
    "WSGATE_LOADTEST_WORKER",
    "WSGATE_LOADTEST_REQUIRE_SERVER",
];

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
        if key == "config" {
            // Naming the file inside itself changes nothing.
            continue;
        }
        let Some(setting) = setting(&key) else {
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
        values.0.insert(setting.key, text);
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

/// The entries of a comma list of Redis URLs.
pub fn split_urls(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_owned)
        .collect()
}

impl Config {
    fn from_values(values: &Values) -> Result<Config, ConfigError> {
        let config = Config::parse_each(values)?;
        config.check()?;
        Ok(config)
    }

    /// Checks between settings (each value alone was checked by its parser).
    fn check(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.redis_url {
            if self.redis_mode == RedisMode::Single && split_urls(url).len() > 1 {
                return Err(invalid(
                    "redis-url",
                    url,
                    "one URL in single mode (a list needs --redis-mode sentinel or cluster)",
                ));
            }
        }
        if self.proxy_protocol != ProxyProtocol::Off && self.trusted_proxies.is_empty() {
            return Err(invalid(
                "proxy-protocol",
                &format!("{:?}", self.proxy_protocol).to_ascii_lowercase(),
                "needs --trusted-proxies: only a trusted peer may send a PROXY header",
            ));
        }
        self.check_webhooks()?;
        Ok(())
    }

    /// Refuses a config with no way to authenticate clients. Called by
    /// [`crate::start`] (so by [`crate::run`] and `main`), not by `Default`,
    /// so unit tests can build partial configs.
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
