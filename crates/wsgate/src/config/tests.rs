use super::*;
use clap::Parser;
use std::time::Duration;

fn parse(args: &[&str]) -> Result<Config, ConfigError> {
    let mut argv = vec!["wsgate"];
    argv.extend_from_slice(args);
    Cli::try_parse_from(argv)
        .expect("flags parse")
        .into_config()
}

#[test]
fn defaults_match_the_contract() {
    let c = Config::default();
    assert_eq!(c.listen.to_string(), "0.0.0.0:8080");
    assert_eq!(c.admin_listen.to_string(), "0.0.0.0:9090");
    assert_eq!(c.redis_prefix, "wsgate");
    assert!(c.redis_url.is_none());
    assert!(!c.allow_anonymous);
    assert_eq!(c.allowed_origins, OriginPolicy::SameHost);
    assert_eq!(
        (c.max_connections, c.max_connections_per_ip),
        (1_000_000, 1000)
    );
    assert_eq!(
        (c.max_message_bytes, c.rate_limit, c.max_rooms),
        (65536, 20, 100)
    );
    assert_eq!(c.ping_interval, Duration::from_secs(25));
    assert_eq!(c.pong_timeout, Duration::from_secs(10));
    assert_eq!(c.ack_timeout, Duration::from_secs(10));
    assert_eq!(c.inbox_max, 1000);
    assert_eq!(c.inbox_ttl, Duration::from_secs(7 * 86400));
    assert_eq!(c.node_ttl, Duration::from_secs(15));
    assert_eq!(c.drain_timeout, Duration::from_secs(30));
    assert_eq!(c.log_format, LogFormat::Text);
}

#[test]
fn durations_accept_the_documented_units() {
    assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
    assert_eq!(parse_duration("10s"), Some(Duration::from_secs(10)));
    assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
    assert_eq!(parse_duration("7d"), Some(Duration::from_secs(604_800)));
    assert_eq!(parse_duration("3"), Some(Duration::from_secs(3)));
    for bad in ["", "s", "10x", "-1s", "1.5s", "99999999999999999999d"] {
        assert_eq!(parse_duration(bad), None, "{bad}");
    }
}

#[test]
fn bad_values_name_the_setting() {
    for (args, name) in [
        (vec!["--max-rooms", "zero"], "max-rooms"),
        (vec!["--max-rooms", "0"], "max-rooms"),
        (vec!["--ping-interval", "10 parsecs"], "ping-interval"),
        (vec!["--listen", "nowhere"], "listen"),
        (vec!["--redis-url", "http://x"], "redis-url"),
        (vec!["--log-format", "xml"], "log-format"),
        (vec!["--allow-anonymous", "maybe"], "allow-anonymous"),
        (vec!["--node-id", "a b"], "node-id"),
    ] {
        let err = parse(&args).unwrap_err().to_string();
        assert!(err.contains(&format!("--{name}")), "{args:?}: {err}");
    }
}

#[test]
fn flags_override_the_file_and_the_file_overrides_defaults() {
    let dir = std::env::temp_dir().join(format!("wsgate-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("wsgate.toml");
    std::fs::write(
        &file,
        "max_rooms = 7\nrate_limit = 5\nallowed_origins = [\"https://a.example\", \"https://b.example\"]\nallow_anonymous = true\n",
    )
    .unwrap();
    let c = parse(&["--config", file.to_str().unwrap(), "--rate-limit", "9"]).unwrap();
    assert_eq!(c.max_rooms, 7, "file beats default");
    assert_eq!(c.rate_limit, 9, "flag beats file");
    assert!(c.allow_anonymous);
    assert_eq!(
        c.allowed_origins,
        OriginPolicy::List(vec!["https://a.example".into(), "https://b.example".into()])
    );

    std::fs::write(&file, "max_roomz = 7\n").unwrap();
    let err = parse(&["--config", file.to_str().unwrap()])
        .unwrap_err()
        .to_string();
    assert!(err.contains("max_roomz"), "{err}");
    let err = parse(&["--config", "/nonexistent/wsgate.toml"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("/nonexistent/wsgate.toml"), "{err}");
}

#[test]
fn auth_must_be_configured() {
    let mut c = Config::default();
    assert!(c.check_auth().is_err());
    c.allow_anonymous = true;
    assert!(c.check_auth().is_ok());
}

#[test]
fn proxy_settings_parse_strictly() {
    let c = Config::default();
    assert!(c.trusted_proxies.is_empty());
    assert_eq!(c.proxy_protocol, ProxyProtocol::Off);
    assert_eq!(c.max_pending_handshakes_per_ip, 32);
    let c = parse(&[
        "--trusted-proxies",
        "10.0.0.0/8,::1",
        "--proxy-protocol",
        "v2",
        "--max-pending-handshakes-per-ip",
        "4",
    ])
    .unwrap();
    assert!(c.trusted_proxies.contains("10.9.8.7".parse().unwrap()));
    assert_eq!(c.proxy_protocol, ProxyProtocol::V2);
    assert_eq!(c.max_pending_handshakes_per_ip, 4);
    for (args, name) in [
        (vec!["--trusted-proxies", "10.0.0.0/33"], "trusted-proxies"),
        (vec!["--trusted-proxies", "10.0.0.1/8"], "trusted-proxies"),
        (vec!["--trusted-proxies", "ingress"], "trusted-proxies"),
        (vec!["--proxy-protocol", "v3"], "proxy-protocol"),
        (vec!["--proxy-protocol", "v1"], "proxy-protocol"),
        (
            vec!["--max-pending-handshakes-per-ip", "0"],
            "max-pending-handshakes-per-ip",
        ),
    ] {
        let err = parse(&args).unwrap_err().to_string();
        assert!(err.contains(&format!("--{name}")), "{args:?}: {err}");
    }
}

#[test]
fn redis_mode_settings_default_and_validate() {
    let c = Config::default();
    assert_eq!(c.redis_mode, RedisMode::Single);
    assert_eq!(c.redis_sentinel_master, "mymaster");
    assert_eq!(c.redis_wait_replicas, 0);
    assert_eq!(c.redis_wait_timeout, Duration::from_secs(1));

    let c = parse(&[
        "--redis-mode",
        "sentinel",
        "--redis-url",
        "redis://s1:26379, rediss://s2:26379",
        "--redis-sentinel-master",
        "primary-a",
        "--redis-wait-replicas",
        "1",
        "--redis-wait-timeout",
        "250ms",
    ])
    .unwrap();
    assert_eq!(c.redis_mode, RedisMode::Sentinel);
    assert_eq!(
        split_urls(c.redis_url.as_deref().unwrap()),
        ["redis://s1:26379", "rediss://s2:26379"]
    );
    assert_eq!(c.redis_sentinel_master, "primary-a");
    assert_eq!(c.redis_wait_replicas, 1);
    assert_eq!(c.redis_wait_timeout, Duration::from_millis(250));

    for (args, name) in [
        (vec!["--redis-mode", "ring"], "redis-mode"),
        (vec!["--redis-url", "redis://a,redis://b"], "redis-url"),
        (
            vec![
                "--redis-mode",
                "cluster",
                "--redis-url",
                "redis://a,http://b",
            ],
            "redis-url",
        ),
        (
            vec!["--redis-sentinel-master", "my master"],
            "redis-sentinel-master",
        ),
        (vec!["--redis-wait-replicas=-1"], "redis-wait-replicas"),
        (vec!["--redis-wait-replicas", "two"], "redis-wait-replicas"),
        (vec!["--redis-wait-timeout", "0s"], "redis-wait-timeout"),
    ] {
        let err = parse(&args).unwrap_err().to_string();
        assert!(err.contains(&format!("--{name}")), "{args:?}: {err}");
    }
}

#[test]
fn webhooks_need_a_secret_in_every_redis_mode() {
    for mode in [RedisMode::Single, RedisMode::Sentinel, RedisMode::Cluster] {
        let mut c = Config {
            webhook_url: Some(webhooks::ReceiverUrl::parse("http://127.0.0.1:8081/hooks").unwrap()),
            webhook_secret: Some("s".into()),
            redis_mode: mode,
            ..Config::default()
        };
        assert!(c.check_webhooks().is_ok(), "{mode:?}");
        c.webhook_secret = None;
        let err = c.check_webhooks().unwrap_err().to_string();
        assert!(err.contains("--webhook-secret"), "{mode:?}: {err}");
    }
}

#[test]
fn log_level_is_checked_not_replaced() {
    for level in ["info", "wsgate=debug,info", "warn,hyper=off", "TRACE"] {
        assert_eq!(parse(&["--log-level", level]).unwrap().log_level, level);
    }
    for bad in ["debgu", "loud", "wsgate=loud", "info,verbose", ""] {
        let err = parse(&["--log-level", bad]).unwrap_err().to_string();
        assert!(err.contains("--log-level"), "{bad}: {err}");
    }
}

#[test]
fn names_derive_from_the_file_key() {
    let mut seen = std::collections::HashSet::new();
    for s in SETTINGS {
        assert!(seen.insert(s.key), "{} declared twice", s.key);
        assert_eq!(s.flag, s.key.replace('_', "-"));
        assert_eq!(s.env, format!("WSGATE_{}", s.key.to_ascii_uppercase()));
        assert!(!s.doc.trim().is_empty(), "{} has no doc", s.key);
        assert_eq!(setting(s.key).map(|x| x.flag), Some(s.flag));
    }
    // clap knows every setting under the same flag and environment variable.
    let command = Cli::command_with_defaults();
    for s in SETTINGS {
        let arg = command
            .get_arguments()
            .find(|a| a.get_id() == s.key)
            .unwrap_or_else(|| panic!("no clap argument for {}", s.key));
        assert_eq!(arg.get_long(), Some(s.flag));
        assert_eq!(arg.get_env().and_then(|e| e.to_str()), Some(s.env));
    }
}

#[test]
fn every_setting_is_documented() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/configuration.md");
    let docs = std::fs::read_to_string(path).expect("docs/configuration.md");
    for s in SETTINGS {
        let flag = format!("`--{}`", s.flag);
        let row = docs
            .lines()
            .find(|l| l.starts_with(&format!("| {flag} |")))
            .unwrap_or_else(|| panic!("docs/configuration.md has no row for {flag}"));
        for name in [format!("`{}`", s.env), format!("`{}`", s.key)] {
            assert!(row.contains(&name), "the row of {flag} lacks {name}: {row}");
        }
        if let Some(default) = s.default.filter(|d| !d.is_empty()) {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            assert!(
                cells.get(4).is_some_and(|c| c.contains(default)),
                "the row of {flag} does not show the default {default}: {row}"
            );
        }
    }
}

#[test]
fn unknown_environment_variables_are_found() {
    let vars = [
        ("WSGATE_MAX_ROOMS", "7"),
        ("WSGATE_MAX_ROOMZ", "7"),
        ("WSGATE_CONFIG", "/etc/wsgate.toml"),
        ("WSGATE_BIN", "target/debug/wsgate"),
        ("HOME", "/root"),
        ("WSGATE_LISTEN_ADDR", "x"),
    ]
    .map(|(k, v)| (k.into(), v.into()));
    assert_eq!(
        unknown_env_vars(vars),
        ["WSGATE_LISTEN_ADDR", "WSGATE_MAX_ROOMZ"]
    );
}

#[test]
fn the_file_names_settings_by_their_key_and_refuses_bad_values() {
    let dir = std::env::temp_dir().join(format!("wsgate-config-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("wsgate.toml");
    std::fs::write(&file, "log_level = \"debgu\"\n").unwrap();
    let err = parse(&["--config", file.to_str().unwrap()])
        .unwrap_err()
        .to_string();
    assert!(err.contains("--log-level"), "{err}");
    std::fs::write(&file, "drain_timeout = \"0s\"\nhistory_size = 0\n").unwrap();
    let c = parse(&["--config", file.to_str().unwrap()]).unwrap();
    assert_eq!((c.drain_timeout, c.history_size), (Duration::ZERO, 0));
    std::fs::write(&file, "pong_timeout = \"0s\"\n").unwrap();
    let err = parse(&["--config", file.to_str().unwrap()])
        .unwrap_err()
        .to_string();
    assert!(err.contains("--pong-timeout"), "{err}");
}

#[tokio::test]
async fn start_refuses_a_config_without_authentication() {
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_listen: "127.0.0.1:0".parse().unwrap(),
        ..Config::default()
    };
    let listeners = crate::Listeners::bind(&config).unwrap();
    let err = crate::run(config, listeners, std::future::ready(()))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("no way to authenticate"), "{err}");
}
