//! Hostile clients that hold resources: slowloris (half an upgrade request,
//! then nothing), upgraded sockets that never answer a ping, a reader that
//! never reads while the server pushes to it, connection floods from one IP,
//! and a connect storm past what the node admits to its handshake.

#[macro_use]
mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::{assert_unharmed, eventually, http, RawWs, WsgateProc, API_KEY, T};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Waits until the peer closes `s` (EOF or reset); false on timeout.
async fn closed_by_server(s: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    tokio::time::timeout(within, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await
    .is_ok()
}

#[tokio::test]
async fn slowloris_and_silent_sockets_are_closed_while_normal_clients_work() {
    // The attacker and the normal clients share 127.0.0.1 here, so the
    // per-address handshake cap (which would rightly refuse the latecomer
    // too; see tests/admission.rs) is raised above the attack.
    let mut server = WsgateProc::start(&[
        "--max-pending-handshakes-per-ip",
        "1000",
        "--handshake-timeout",
        "1s",
        "--ping-interval",
        "1s",
        "--pong-timeout",
        "1s",
    ])
    .await;
    let mut bystander = server.bystander("bystander").await;
    let fds_before = server.open_fds();

    // 300 connections that send half an upgrade request and stall.
    let mut half = Vec::new();
    for _ in 0..300 {
        let mut s = TcpStream::connect(server.public).await.expect("connect");
        s.write_all(b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: webs")
            .await
            .expect("write");
        half.push(s);
    }
    // 100 that upgrade, then never send anything (no pong, no close).
    let mut silent = Vec::new();
    for i in 0..100 {
        silent.push(RawWs::connect(&server, &format!("silent-{i}")).await);
    }
    let started = Instant::now();

    // Normal clients connect and work while all of those are open.
    let mut fresh = server.bystander("latecomer").await;
    fresh.assert_pings().await;
    bystander.assert_pings().await;

    // Half requests: closed after the handshake timeout (1 s), with slack.
    for s in &mut half {
        assert!(
            closed_by_server(s, Duration::from_secs(4)).await,
            "a half request outlived the handshake timeout"
        );
    }
    // Silent sockets: pinged at 1 s, closed 1001 at ping + pong timeout (2 s).
    for ws in &mut silent {
        let code = ws.close_code().await;
        assert_eq!(code, Some(1001), "heartbeat timeout close");
    }
    let took = started.elapsed();
    assert!(took < Duration::from_secs(8), "closing them took {took:?}");
    server
        .wait_metric("wsgate_disconnects_total{code=\"1001\"}", 100.0)
        .await;
    drop(half);
    drop(silent);
    // Everything they held is released.
    eventually("the connection gauge is back to 2", T, || async {
        server.metric("wsgate_connections").await == 2.0
    })
    .await;
    eventually("file descriptors are back", T, || async {
        server.open_fds() <= fds_before + 5
    })
    .await;
    fresh.assert_pings().await;
    assert_unharmed(&mut server, &mut bystander).await;
}

#[tokio::test]
async fn a_reader_that_never_reads_is_closed_1013_and_memory_stays_bounded() {
    let mut server = WsgateProc::start(&["--outbox-size", "16"]).await;
    let mut bystander = server.bystander("bystander").await;

    // A small receive buffer so the kernel stops taking bytes early.
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let stream = socket.connect(server.public).await.expect("connect");
    let path = format!("/ws?token={}", support::token("sloth"));
    let mut sloth = RawWs::upgrade(stream, &server, &path, &[]).await;
    sloth
        .send_json(&json!({"type": "join", "room": "flood", "ref": 1}))
        .await;
    assert_eq!(sloth.next_json().await["ok"], true);
    // From here on the sloth never reads.
    let rss_before = server.proc_status("VmRSS");

    // A flood through the API to the sloth's room (the bystander is not in
    // it, so it keeps up): 48 KiB each, 20 MB in all, far more than the
    // socket buffers and the 16-frame outbox hold.
    let content = "x".repeat(48 * 1024);
    let body = json!({"room": "flood", "content": content}).to_string();
    let auth = format!("Bearer {API_KEY}");
    let mut peak = rss_before;
    let sent = 400;
    for i in 0..sent {
        let r = http(
            server.admin,
            "POST",
            "/api/v1/publish",
            &[
                ("authorization", auth.as_str()),
                ("content-type", "application/json"),
            ],
            Some(body.as_bytes()),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
        if i % 20 == 0 {
            peak = peak.max(server.proc_status("VmRSS"));
            bystander.assert_pings().await;
        }
    }
    // The session is closed with 1013 (the close frame waits up to 10 s
    // behind the unread data before the socket is dropped).
    let s = &server;
    eventually(
        "a slow-consumer close",
        Duration::from_secs(20),
        || async move { s.metric("wsgate_slow_consumer_disconnects_total").await >= 1.0 },
    )
    .await;
    server
        .wait_metric("wsgate_disconnects_total{code=\"1013\"}", 1.0)
        .await;
    peak = peak.max(server.proc_status("VmRSS"));
    let grown = peak.saturating_sub(rss_before);
    assert!(
        grown < 64 * 1024,
        "RSS grew {grown} kB over {sent} messages"
    );
    // The sloth's socket ends: data it never read, then a 1013 close frame or
    // just the end of the stream.
    let code = tokio::time::timeout(Duration::from_secs(20), sloth.close_code())
        .await
        .expect("the sloth's socket ends");
    assert!(matches!(code, None | Some(1013)), "{code:?}");
    assert_unharmed(&mut server, &mut bystander).await;
    eprintln!("slow consumer: {sent} messages of 48 KiB, peak RSS +{grown} kB");
}

#[tokio::test]
async fn a_connection_flood_from_one_ip_gets_429() {
    let mut server = WsgateProc::start(&["--max-connections-per-ip", "5"]).await;
    let mut bystander = server.bystander("bystander").await;
    let mut held = Vec::new();
    for i in 0..4 {
        held.push(server.bystander(&format!("flood-{i}")).await);
    }
    for _ in 0..20 {
        let path = format!("/ws?token={}", support::token("flood-x"));
        let r = support::try_upgrade(&server, &path, &[]).await;
        assert_eq!(r.status, 429, "{}", r.text());
        assert_eq!(r.json()["error"], "too_many_connections");
    }
    assert_eq!(
        server
            .metric("wsgate_connections_rejected_total{reason=\"ip_limit\"}")
            .await,
        20.0
    );
    // A slot freed is a slot usable again.
    drop(held.pop());
    eventually("a freed slot is reusable", T, || async {
        let path = format!("/ws?token={}", support::token("flood-y"));
        support::try_upgrade(&server, &path, &[]).await.status == 101
    })
    .await;
    assert_unharmed(&mut server, &mut bystander).await;
}

#[tokio::test]
async fn a_connect_storm_past_the_handshake_limit_is_refused_fast_with_503() {
    let mut server =
        WsgateProc::start(&["--max-pending-handshakes", "8", "--handshake-timeout", "5s"]).await;
    let mut bystander = server.bystander("bystander").await;
    // Stalled half-handshakes hold every admission slot. Eight fill them, but
    // one may arrive while the bystander's upgrade still holds its slot and
    // be refused itself, so stall more until the node reports them all taken.
    let mut stalled = Vec::new();
    let deadline = Instant::now() + T;
    loop {
        if stalled.len() >= 8 {
            let r = support::try_http(server.public, "GET", "/healthz", &[], None).await;
            if r.is_ok_and(|r| r.status == 503) {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for: the slots are taken"
        );
        let mut s = TcpStream::connect(server.public).await.expect("connect");
        s.write_all(b"GET /ws HTTP/1.1\r\n").await.expect("write");
        stalled.push(s);
    }
    // The storm: each excess connection gets a raw 503 at once, not a queue slot.
    let storm = (0..100).map(|_| async {
        let started = Instant::now();
        let path = format!("/ws?token={}", support::token("storm"));
        let r = support::try_upgrade(&server, &path, &[]).await;
        (r, started.elapsed())
    });
    let results = futures_util::future::join_all(storm).await;
    for (r, took) in &results {
        assert_eq!(r.status, 503, "{}", r.head);
        assert!(r.head.to_ascii_lowercase().contains("retry-after: 1"));
        assert!(r.text().contains("\"unavailable\""), "{}", r.text());
        assert!(*took < Duration::from_secs(1), "a refusal took {took:?}");
    }
    assert!(
        server
            .metric("wsgate_connections_rejected_total{reason=\"handshake_limit\"}")
            .await
            >= 100.0
    );
    // Upgraded sessions hold no admission slot: the bystander works throughout.
    bystander.assert_pings().await;
    drop(stalled);
    eventually("new clients are admitted again", T, || async {
        let path = format!("/ws?token={}", support::token("after"));
        support::try_upgrade(&server, &path, &[]).await.status == 101
    })
    .await;
    assert_unharmed(&mut server, &mut bystander).await;
}
