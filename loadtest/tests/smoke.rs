//! Smoke runs of every scenario: tiny, a few seconds in all.
//!
//! Raw scenarios (idle, connect, broadcast) run against the built-in ideal
//! server; rooms and direct against an in-process wsgate stand-in; everything
//! again against the real `target/debug/wsgate` when it is built (skipped,
//! with a note, otherwise; `WSGATE_LOADTEST_REQUIRE_SERVER=1` makes that a
//! failure). Timing goals do not belong here: only counts.

mod support;

use support::{ideal_server, mock_wsgate, real_wsgate, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ideal_idle_connect_broadcast() {
    let url = ideal_server().await;
    let pid = std::process::id().to_string();
    let base = [
        "--target",
        "raw",
        "--url",
        &url,
        "--workers",
        "1",
        "--quiet",
    ];

    let idle: Vec<&str> = [
        "idle",
        "-n",
        "50",
        "--settle",
        "100ms",
        "--duration",
        "300ms",
    ]
    .into_iter()
    .chain(base)
    .chain(["--server-pid", &pid])
    .collect();
    let r = run(&idle).await;
    assert_eq!(r.connections, 50);
    assert!(r.connect_failures.is_empty(), "{:?}", r.connect_failures);
    assert_eq!(r.handshake_us.count, 50);
    let server = r.server.expect("server usage");
    assert!(server.rss_after_kib > 0);

    let connect: Vec<&str> = ["connect", "-n", "100", "--connect-rate", "1000"]
        .into_iter()
        .chain(base)
        .collect();
    let r = run(&connect).await;
    assert_eq!(r.connections, 100);
    assert!(r.connects_per_s > 0.0);

    let bc: Vec<&str> = ["broadcast", "-n", "20", "--senders", "2", "--rate", "100"]
        .into_iter()
        .chain(["--duration", "500ms", "--drain", "2s"])
        .chain(base)
        .collect();
    let r = run(&bc).await;
    assert_eq!((r.receivers, r.senders), (20, 2));
    assert!(r.sent >= 40, "sent {}", r.sent);
    assert_eq!(r.accepted, r.sent);
    assert_eq!(r.expected, r.accepted * 20);
    assert_eq!(r.delivered, r.expected, "lost {}", r.lost);
    assert_eq!(r.latency_us.count, r.delivered);
    assert_eq!(r.accept_latency_us.count, r.sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ideal_broadcast_in_two_worker_processes() {
    let url = ideal_server().await;
    let out = std::env::temp_dir().join(format!("lt-smoke-{}.json", std::process::id()));
    let phases = std::env::temp_dir().join(format!("lt-smoke-{}.hook", std::process::id()));
    let hook = format!("echo >>'{}'", phases.display());
    let args = [
        "broadcast",
        "--target",
        "raw",
        "--url",
        &url,
        "-n",
        "40",
        "--senders",
        "2",
    ];
    // Paced, not flat out: a starved test machine must not turn receivers
    // into slow consumers the ideal server drops.
    let more = [
        "--rate",
        "400",
        "--window",
        "8",
        "--duration",
        "500ms",
        "--workers",
        "2",
    ];
    let status = tokio::process::Command::new(env!("CARGO_BIN_EXE_wsgate-loadtest"))
        .args(args)
        .args(more)
        .args(["--barrier-hook", &hook])
        .args(["--quiet", "--out"])
        .arg(&out)
        .status()
        .await
        .unwrap();
    assert!(status.success());
    let r: wsgate_loadtest::RunResult =
        serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let _ = std::fs::remove_file(&out);
    // The driver ran the hook once at each barrier, in order.
    let seen = std::fs::read_to_string(&phases).unwrap_or_default();
    let _ = std::fs::remove_file(&phases);
    assert_eq!(seen, "start\nend\n");
    assert_eq!(r.workers, 2);
    assert_eq!((r.connections, r.receivers, r.senders), (42, 40, 2));
    assert!(r.sent > 10);
    assert_eq!(
        r.delivered,
        r.sent * 40,
        "lost {} dropped {}",
        r.lost,
        r.dropped
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mock_wsgate_rooms_direct_broadcast() {
    let url = mock_wsgate().await;
    let base = ["--url", &url, "--workers", "1", "--quiet", "--drain", "2s"];

    let rooms: Vec<&str> = [
        "rooms",
        "--rooms",
        "4",
        "--members",
        "5",
        "--publishers",
        "2",
    ]
    .into_iter()
    .chain(["--rate", "80", "--duration", "500ms"])
    .chain(base)
    .collect();
    let r = run(&rooms).await;
    assert_eq!((r.connections, r.senders, r.receivers), (20, 8, 12));
    assert!(r.accepted >= 30, "accepted {}", r.accepted);
    assert_eq!(r.expected, r.accepted * 3);
    assert_eq!(r.delivered, r.expected);

    let direct: Vec<&str> = [
        "direct",
        "--pairs",
        "5",
        "--rate",
        "100",
        "--duration",
        "500ms",
    ]
    .into_iter()
    .chain(base)
    .collect();
    let r = run(&direct).await;
    assert_eq!(r.connections, 10);
    assert!(r.accepted >= 40, "accepted {}", r.accepted);
    assert_eq!((r.lost, r.duplicates), (0, 0));
    assert_eq!(r.delivered, r.accepted);

    let bc: Vec<&str> = [
        "broadcast",
        "-n",
        "10",
        "--rate",
        "50",
        "--duration",
        "300ms",
    ]
    .into_iter()
    .chain(base)
    .collect();
    let r = run(&bc).await;
    assert_eq!(r.delivered, r.accepted * 10);
    assert_eq!(r.accept_latency_us.count, r.accepted);
    assert!(r.rejected.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_wsgate_every_scenario() {
    let Some(server) = real_wsgate().await else {
        // Skipped while the server cannot start; CI can insist.
        assert!(
            std::env::var_os("WSGATE_LOADTEST_REQUIRE_SERVER").is_none(),
            "WSGATE_LOADTEST_REQUIRE_SERVER is set but wsgate did not start"
        );
        return;
    };
    let url = server.url.clone();
    let pid = server.child.id().to_string();
    for codec in ["json", "msgpack"] {
        let base = ["--url", &url, "--codec", codec, "--workers", "1", "--quiet"];
        let base: Vec<&str> = base.into_iter().chain(["--server-pid", &pid]).collect();
        let with = |head: &[&'static str]| -> Vec<&str> {
            head.iter().copied().chain(base.iter().copied()).collect()
        };
        let r = run(&with(&[
            "idle",
            "-n",
            "20",
            "--settle",
            "100ms",
            "--duration",
            "300ms",
        ]))
        .await;
        assert_eq!(r.connections, 20, "{codec}: {:?}", r.connect_failures);
        let r = run(&with(&["connect", "-n", "50"])).await;
        assert_eq!(r.connections, 50, "{codec}: {:?}", r.connect_failures);
        let bc = [
            "broadcast",
            "-n",
            "10",
            "--rate",
            "50",
            "--duration",
            "500ms",
            "--drain",
            "2s",
        ];
        let r = run(&with(&bc)).await;
        assert!(r.accepted > 0, "{codec}: rejected {:?}", r.rejected);
        assert_eq!(r.delivered, r.expected, "{codec}");
        let rooms = [
            "rooms",
            "--rooms",
            "3",
            "--members",
            "4",
            "--rate",
            "30",
            "--duration",
            "500ms",
        ];
        let r = run(&with(&rooms)).await;
        assert!(r.accepted > 0, "{codec}: rejected {:?}", r.rejected);
        assert_eq!(r.delivered, r.expected, "{codec}");
        let direct = [
            "direct",
            "--pairs",
            "3",
            "--rate",
            "30",
            "--duration",
            "500ms",
            "--drain",
            "3s",
        ];
        let r = run(&with(&direct)).await;
        assert!(r.accepted > 0, "{codec}: rejected {:?}", r.rejected);
        assert_eq!((r.lost, r.duplicates), (0, 0), "{codec}");
    }
}
