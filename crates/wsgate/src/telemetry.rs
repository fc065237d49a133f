//! Logging: `tracing` to stderr, as text or JSON lines (`--log-format`), with
//! the filter from `--log-level` (`RUST_LOG` syntax).

use tracing_subscriber::EnvFilter;

use crate::config::{Config, ConfigError, LogFormat};

/// Installs the global subscriber. Call once, from `main`. A filter that does
/// not parse (possible only for a `Config` built by hand: the settings parser
/// checks it) is refused naming `--log-level`, never replaced.
pub fn init(config: &Config) -> Result<(), ConfigError> {
    let filter = EnvFilter::try_new(&config.log_level).map_err(|e| ConfigError::Invalid {
        name: "log-level",
        value: config.log_level.clone(),
        reason: e.to_string(),
    })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    match config.log_format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.with_ansi(false).init(),
    }
    Ok(())
}
