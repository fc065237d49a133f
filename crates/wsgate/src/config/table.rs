//! The machinery behind the settings table in [`super::settings`]: the
//! [`Setting`] descriptor and the `settings!` macro that turns one entry per
//! setting into everything that needs it.
//!
//! Why a declarative macro rather than clap derive with `env` plus a serde
//! default: clap would then hold the defaults, so a flag's default could not
//! be told from a value given in the file (precedence flag > env > file >
//! default breaks), and serde would need a second struct for the file with its
//! own defaults and a second error path for bad values. The macro keeps one
//! entry per setting (doc, type, parser, default) and derives from it the flag
//! (`--max-rooms`), the environment variable (`WSGATE_MAX_ROOMS`) and the file
//! key (`max_rooms`), the clap field, the [`super::Config`] field and the
//! [`SETTINGS`](super::SETTINGS) list, so nothing is counted or spelled twice.

/// One setting as the table declares it.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// The file key, snake_case: `max_rooms`.
    pub key: &'static str,
    /// The flag without its dashes: `max-rooms`.
    pub flag: &'static str,
    /// The environment variable: `WSGATE_MAX_ROOMS`.
    pub env: &'static str,
    /// The default as the parser reads it; `None` = unset.
    pub default: Option<&'static str>,
    /// The doc comment of the entry (also the `--help` text).
    pub doc: &'static str,
}

/// `max_rooms` -> `max-rooms`, at compile time (`N` is the key's length).
pub const fn kebab<const N: usize>(key: &str) -> [u8; N] {
    let key = key.as_bytes();
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = if key[i] == b'_' { b'-' } else { key[i] };
        i += 1;
    }
    out
}

/// The prefix of every setting's environment variable.
pub const ENV_PREFIX: &str = "WSGATE_";

/// `max_rooms` -> `WSGATE_MAX_ROOMS`, at compile time (`N` is the key's
/// length plus that of [`ENV_PREFIX`]).
pub const fn env_name<const N: usize>(key: &str) -> [u8; N] {
    let prefix = ENV_PREFIX.as_bytes();
    let key = key.as_bytes();
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = if i < prefix.len() {
            prefix[i]
        } else {
            key[i - prefix.len()].to_ascii_uppercase()
        };
        i += 1;
    }
    out
}

/// The bytes built by [`kebab`] or [`env_name`] as text. Keys are Rust
/// identifiers, so the bytes are ASCII; the empty fallback cannot happen and
/// would fail the `every_setting_is_documented` test if it did.
pub const fn ascii(bytes: &'static [u8]) -> &'static str {
    match std::str::from_utf8(bytes) {
        Ok(s) => s,
        Err(_) => "",
    }
}

/// Turns the table into: the [`super::Config`] struct (one documented field
/// per setting), the clap [`super::Cli`] (one `Option<String>` flag per
/// setting, reading its environment variable), the
/// [`SETTINGS`](super::SETTINGS) list, and the code that parses every raw
/// value with the entry's parser (see [`super::parse`]).
///
/// An entry: doc comment, optional `#[arg(...)]` extras for clap, then
/// `field: Type = parser("default")` or `field: Type = parser()` (unset).
macro_rules! settings {
    ($(
        $(#[doc = $doc:literal])+
        $(#[arg($($arg:tt)*)])?
        $field:ident: $ty:ty = $parse:ident($($default:literal)?);
    )*) => {
        /// Each setting's descriptor, by its file key.
        #[expect(non_upper_case_globals, reason = "named after the Config field they describe")]
        mod def {
            use $crate::config::table::{ascii, env_name, kebab, Setting, ENV_PREFIX};
            $(
                pub const $field: Setting = Setting {
                    key: stringify!($field),
                    flag: {
                        const B: [u8; stringify!($field).len()] = kebab(stringify!($field));
                        ascii(&B)
                    },
                    env: {
                        const B: [u8; ENV_PREFIX.len() + stringify!($field).len()] =
                            env_name(stringify!($field));
                        ascii(&B)
                    },
                    default: $crate::config::table::default_of!($($default)?),
                    doc: concat!($($doc, "\n"),+),
                };
            )*
        }

        /// Every setting, in the table's order.
        pub const SETTINGS: &[Setting] = &[$(def::$field),*];

        /// The validated configuration of one node: one field per entry of
        /// the settings table (`config/settings.rs`).
        #[derive(Debug, Clone)]
        pub struct Config {
            $(
                $(#[doc = $doc])+
                pub $field: $ty,
            )*
        }

        /// Command-line flags; each also reads its `WSGATE_*` environment
        /// variable. Values stay text here: they are parsed, after the
        /// config file is merged, by the same parser as the file's.
        #[derive(Debug, clap::Parser, Default)]
        #[command(name = "wsgate", version, about = "Horizontally scalable WebSocket gateway.")]
        pub struct Cli {
            /// TOML file holding any of the settings below, in snake_case.
            #[arg(long, env = "WSGATE_CONFIG")]
            pub config: Option<PathBuf>,
            $(
                $(#[doc = $doc])+
                #[arg(long, env = def::$field.env $(, $($arg)*)?)]
                pub $field: Option<String>,
            )*
        }

        impl Cli {
            /// The values given as a flag or in the environment, by setting.
            pub(super) fn given(&self) -> Vec<(&'static Setting, Option<&str>)> {
                vec![$((&def::$field, self.$field.as_deref())),*]
            }
        }

        impl Config {
            /// Parses every setting from its raw value (or its default).
            pub(super) fn parse_each(values: &Values) -> Result<Config, ConfigError> {
                Ok(Config {
                    $($field: parse::$parse(values.raw(&def::$field))?,)*
                })
            }
        }
    };
}

/// `Some(default)` for an entry with one, `None` for an unset one.
macro_rules! default_of {
    () => {
        None
    };
    ($default:literal) => {
        Some($default)
    };
}

pub(crate) use {default_of, settings};
