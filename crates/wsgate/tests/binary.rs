//! The real `wsgate` binary: settings from flags, environment and a TOML
//! file with their precedence, exit code 2 naming a bad setting (contract
//! section 2), and the drain on SIGTERM (section 7).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is how a check fails"
)]

#[macro_use]
mod support;

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use support::*;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use wsgate_client::{Client, Options};

const BIN: &str = env!("CARGO_BIN_EXE_wsgate");

/// The binary with a clean environment (no inherited `WSGATE_*`).
fn wsgate() -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Runs the binary to its exit; returns the exit code and stderr.
async fn run_to_exit(mut cmd: Command) -> (Option<i32>, String) {
    let out = tokio::time::timeout(Duration::from_secs(10), cmd.output())
        .await
        .expect("the binary exits")
        .expect("the binary runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A running binary and the addresses it logged.
struct Running {
    child: Child,
    public: SocketAddr,
    admin: SocketAddr,
    /// The address line was a JSON object (`--log-format json`).
    json_log: bool,
    /// The log lines before the address line (start-up warnings).
    early_log: Vec<String>,
}

/// Spawns the binary on port 0 and reads its two addresses from the log.
async fn spawn(mut cmd: Command) -> Running {
    cmd.args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"]);
    let mut child = cmd.spawn().expect("spawn wsgate");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, mut rx) = mpsc::channel::<String>(64);
    // Keep draining the log so the child never blocks on a full pipe.
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let _ = tx.try_send(line);
        }
    });
    let field = |line: &str, name: &str| -> Option<SocketAddr> {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .and_then(|v| v.trim_matches('"').parse().ok())
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut early_log = Vec::new();
    loop {
        let line = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("the binary logs its addresses")
            .expect("the binary is running");
        if let Ok(json) = serde_json::from_str::<serde_json::Value>(&line) {
            let addr = |k: &str| json[k].as_str().and_then(|v| v.parse().ok());
            if let (Some(public), Some(admin)) = (addr("public"), addr("admin")) {
                return Running {
                    child,
                    public,
                    admin,
                    json_log: true,
                    early_log,
                };
            }
        }
        if let (Some(public), Some(admin)) = (field(&line, "public="), field(&line, "admin=")) {
            return Running {
                child,
                public,
                admin,
                json_log: false,
                early_log,
            };
        }
        early_log.push(line);
    }
}

impl Running {
    fn url(&self, user: &str) -> String {
        format!("ws://{}/ws?user={user}", self.public)
    }

    async fn connect_token(&self, token: &str) -> Client {
        Client::connect(Options::new(format!("ws://{}/ws", self.public)).token(token))
            .await
            .expect("connect")
    }

    fn signal(&self, name: &str) {
        let pid = self.child.id().expect("running").to_string();
        let ok = std::process::Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill -{name} failed");
    }

    async fn exit_code(&mut self, within: Duration) -> Option<i32> {
        tokio::time::timeout(within, self.child.wait())
            .await
            .expect("the binary exits in time")
            .expect("wait")
            .code()
    }
}

/// Flags, environment, and the text the error must contain.
type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);

#[tokio::test]
async fn bad_settings_exit_2_naming_the_setting() {
    let dir = temp_dir("settings");
    let bad_file = dir.join("bad.toml");
    std::fs::write(&bad_file, "allow_anonymous = true\nrate_limit = 0\n").unwrap();
    let unknown_file = dir.join("unknown.toml");
    std::fs::write(&unknown_file, "allow_anonymous = true\nmax_roomz = 3\n").unwrap();
    let not_a_key = dir.join("key.pem");
    std::fs::write(&not_a_key, "not a key").unwrap();
    let bad_file = bad_file.to_str().unwrap().to_owned();
    let unknown_file = unknown_file.to_str().unwrap().to_owned();
    let not_a_key = not_a_key.to_str().unwrap().to_owned();

    let cases: Vec<Case> = vec![
        (
            vec!["--allow-anonymous", "--max-rooms", "zero"],
            vec![],
            "--max-rooms",
        ),
        (
            vec!["--allow-anonymous"],
            vec![("WSGATE_PING_INTERVAL", "soon")],
            "--ping-interval",
        ),
        (
            vec!["--allow-anonymous"],
            vec![("WSGATE_MAX_MESSAGE_BYTES", "-1")],
            "--max-message-bytes",
        ),
        (vec!["--config", &bad_file], vec![], "--rate-limit"),
        (vec!["--config", &unknown_file], vec![], "max_roomz"),
        (
            vec!["--config", "/nonexistent/wsgate.toml"],
            vec![],
            "/nonexistent/wsgate.toml",
        ),
        (vec![], vec![], "--jwt-secret"),
        (
            vec!["--jwt-public-key-file", "/nonexistent/key.pem"],
            vec![],
            "--jwt-public-key-file",
        ),
        (
            vec![
                "--jwt-public-key-file",
                &not_a_key,
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
            ],
            vec![],
            "--jwt-public-key-file",
        ),
        (
            vec!["--allow-anonymous", "--redis-url", "http://nope"],
            vec![],
            "--redis-url",
        ),
        (
            vec!["--allow-anonymous", "--log-format", "xml"],
            vec![],
            "--log-format",
        ),
        (
            vec!["--allow-anonymous", "--drain-timeout", "1 fortnight"],
            vec![],
            "--drain-timeout",
        ),
        // A misspelt level used to become `info` silently and the node ran.
        (
            vec![
                "--allow-anonymous",
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
            ],
            vec![("WSGATE_LOG_LEVEL", "debgu")],
            "--log-level",
        ),
        (
            vec![
                "--allow-anonymous",
                "--log-level",
                "wsgate=loud",
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
            ],
            vec![],
            "--log-level",
        ),
    ];
    for (args, env, name) in cases {
        let mut cmd = wsgate();
        cmd.args(&args).envs(env.iter().copied());
        let (code, stderr) = run_to_exit(cmd).await;
        assert_eq!(code, Some(2), "{args:?} {env:?}: {stderr}");
        assert!(stderr.contains(name), "{args:?} {env:?}: {stderr}");
    }
}

#[tokio::test]
async fn flag_beats_env_beats_file_beats_default() {
    let dir = temp_dir("precedence");
    let file = dir.join("wsgate.toml");
    std::fs::write(
        &file,
        format!(
            "jwt_secret = \"{SECRET}\"\nnode_id = \"from-file\"\nping_interval = \"3s\"\n\
             max_message_bytes = 1111\nmax_rooms = \"bad but overridden\"\n"
        ),
    )
    .unwrap();
    let mut cmd = wsgate();
    cmd.arg("--config")
        .arg(&file)
        .args(["--node-id", "from-flag", "--max-rooms", "2"])
        .env("WSGATE_NODE_ID", "from-env")
        .env("WSGATE_PING_INTERVAL", "4s")
        .env("WSGATE_API_KEY", API_KEY);
    let mut bin = spawn(cmd).await;
    let mut c = bin.connect_token(&token("alice")).await;
    let w = c.welcome().clone();
    assert_eq!(w.node, "from-flag", "flag beats env and file");
    assert_eq!(w.ping_interval_ms, 4000, "env beats file");
    assert_eq!(w.max_message_bytes, 1111, "file beats default");
    // The flag replaced the file's bad max_rooms.
    c.request(join("a")).await.unwrap();
    c.request(join("b")).await.unwrap();
    assert!(c.request(join("c")).await.is_err());
    // The API key came from the environment.
    let auth = format!("Bearer {API_KEY}");
    let res = http(
        bin.admin,
        "GET",
        "/api/v1/nodes",
        &[("Authorization", &auth)],
        None,
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.json()[0]["node"], "from-flag");
    bin.signal("INT");
    assert_eq!(bin.exit_code(Duration::from_secs(10)).await, Some(0));

    // Nothing set: defaults.
    let mut cmd = wsgate();
    cmd.arg("--allow-anonymous");
    let mut bin = spawn(cmd).await;
    assert!(!bin.json_log, "text logs by default");
    let c = Client::connect(Options::new(bin.url("x"))).await.unwrap();
    assert_eq!(c.welcome().ping_interval_ms, 25_000);
    assert_eq!(c.welcome().max_message_bytes, 65_536);
    let api = http(bin.admin, "GET", "/api/v1/nodes", &[], None).await;
    api.assert_error(503, "unavailable");
    bin.signal("TERM");
    assert_eq!(bin.exit_code(Duration::from_secs(10)).await, Some(0));
}

#[tokio::test]
async fn sigterm_drains_with_1012_paced_over_the_drain_timeout_then_exits_0() {
    let mut cmd = wsgate();
    cmd.args(["--allow-anonymous", "--drain-timeout", "2s"]);
    let mut bin = spawn(cmd).await;
    let mut waiters = Vec::new();
    for i in 0..4 {
        let mut c = Client::connect(Options::new(bin.url(&format!("u{i}"))))
            .await
            .unwrap();
        waiters.push(tokio::spawn(async move {
            let info = c.wait_closed(Duration::from_secs(10)).await;
            (info, tokio::time::Instant::now())
        }));
    }
    assert_eq!(
        http(bin.public, "GET", "/readyz", &[], None).await.status,
        200
    );
    let sent = tokio::time::Instant::now();
    bin.signal("TERM");
    let public = bin.public;
    eventually("/readyz turns 503", WAIT, || async move {
        http(public, "GET", "/readyz", &[], None).await.status == 503
    })
    .await;
    assert!(
        sent.elapsed() < Duration::from_millis(1000),
        "not ready at once"
    );
    let ready = http(bin.admin, "GET", "/readyz", &[], None).await;
    assert_eq!(ready.status, 503);
    assert_eq!(ready.json()["reason"], "draining");
    assert_eq!(
        http(bin.public, "GET", "/healthz", &[], None).await.status,
        200
    );
    http(bin.public, "GET", "/ws?user=late", &UPGRADE, None)
        .await
        .assert_error(503, "unavailable");

    let mut times = Vec::new();
    for w in waiters {
        let (info, at) = w.await.unwrap();
        let info = info.expect("closed");
        assert_eq!(info.code, Some(1012), "{info:?}");
        times.push(at);
    }
    times.sort();
    let spread = times[3] - times[0];
    assert!(
        spread >= Duration::from_millis(1000) && spread <= Duration::from_millis(2500),
        "closes spread over {spread:?}, expected about 1.5 s of a 2 s drain"
    );
    assert_eq!(bin.exit_code(Duration::from_secs(10)).await, Some(0));
}

#[tokio::test]
async fn an_unknown_wsgate_variable_is_logged_as_a_warning() {
    let mut cmd = wsgate();
    cmd.arg("--allow-anonymous")
        .env("WSGATE_MAX_ROOMZ", "3")
        .env("WSGATE_MAX_ROOMS", "4");
    let mut bin = spawn(cmd).await;
    let warned: Vec<&String> = bin
        .early_log
        .iter()
        .filter(|l| l.contains("WARN") && l.contains("WSGATE_"))
        .collect();
    assert_eq!(warned.len(), 1, "{:?}", bin.early_log);
    assert!(warned[0].contains("WSGATE_MAX_ROOMZ"), "{warned:?}");
    bin.signal("TERM");
    assert_eq!(bin.exit_code(Duration::from_secs(10)).await, Some(0));
}

#[tokio::test]
async fn json_logs_are_one_object_per_line() {
    let mut cmd = wsgate();
    cmd.args(["--allow-anonymous", "--log-format", "json"]);
    // `spawn` finds the addresses in the JSON "Listening." line.
    let mut bin = spawn(cmd).await;
    assert!(bin.json_log, "the log line was not JSON");
    Client::connect(Options::new(bin.url("j"))).await.unwrap();
    bin.signal("TERM");
    assert_eq!(bin.exit_code(Duration::from_secs(10)).await, Some(0));
}

#[tokio::test]
async fn a_sigterm_right_after_start_still_drains_and_exits_0() {
    for _ in 0..3 {
        let mut cmd = wsgate();
        cmd.arg("--allow-anonymous");
        let mut bin = spawn(cmd).await;
        bin.signal("TERM");
        assert_eq!(
            bin.exit_code(Duration::from_secs(10)).await,
            Some(0),
            "killed by the signal instead of draining"
        );
    }
}
