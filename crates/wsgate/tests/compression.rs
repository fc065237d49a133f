//! permessage-deflate (RFC 7692) with `--compression`, against a real
//! third-party client: Node's `ws` package (`tests/compression/ws-client.js`,
//! installed with npm into the test's target directory on first use) and
//! raw sockets that read the frame header's RSV1 bit themselves.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is how a check fails"
)]

#[macro_use]
mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;

use flate2::{Decompress, FlushDecompress};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::TcpStream;
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use wsgate_client::raw::{HandWs, Upgrade};

use support::*;

const ANSWER: &str = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

/// A directory whose `node_modules` holds `ws` (npm, once per target dir;
/// tests run in parallel processes, so each installs into its own directory
/// and the first one renamed into place wins).
fn node_ws() -> PathBuf {
    require("node", "nodejs");
    require("npm", "npm");
    let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let dir = base.join("node-ws");
    if !dir.join("node_modules/ws/package.json").exists() {
        let own = base.join(format!("node-ws.{}", std::process::id()));
        std::fs::create_dir_all(&own).unwrap();
        let status = std::process::Command::new("npm")
            .args([
                "install",
                "--no-audit",
                "--no-fund",
                "--prefer-offline",
                "ws@8",
            ])
            .current_dir(&own)
            .stdout(Stdio::null())
            .status()
            .expect("run npm");
        assert!(status.success(), "npm install ws@8 failed");
        if std::fs::rename(&own, &dir).is_err() {
            let _ = std::fs::remove_dir_all(&own);
        }
    }
    dir
}

/// Node's `ws` as a client, driven by lines.
struct NodeWs {
    _child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

impl NodeWs {
    async fn start(server: &WsgateProc, user: &str, deflate: bool) -> NodeWs {
        let dir = node_ws();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/compression/ws-client.js");
        let url = format!("ws://{}/ws?token={}", server.public, token(user));
        let mut child = Command::new("node")
            .arg(script)
            .arg(url)
            .arg(if deflate { "on" } else { "off" })
            .env("NODE_PATH", dir.join("node_modules"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("run node");
        let stdin = child.stdin.take().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        NodeWs {
            _child: child,
            stdin,
            lines,
        }
    }

    async fn event(&mut self) -> Value {
        let line = tokio::time::timeout(4 * T, self.lines.next_line())
            .await
            .expect("an event from node in time")
            .unwrap()
            .expect("node ended");
        serde_json::from_str(&line).unwrap()
    }

    async fn send(&mut self, line: &str) {
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
    }

    /// The next data message that is not `welcome`, parsed.
    async fn message(&mut self) -> Value {
        loop {
            let e = self.event().await;
            assert_eq!(e["event"], "message", "{e}");
            let v: Value = serde_json::from_str(e["data"].as_str().unwrap()).unwrap();
            if v["type"] != "welcome" {
                return v;
            }
        }
    }

    async fn close_code(&mut self) -> Value {
        loop {
            let e = self.event().await;
            if e["event"] == "close" {
                return e["code"].clone();
            }
        }
    }
}

/// A raw socket upgraded with `extensions` offered (if any): the stream and
/// the 101's head.
async fn raw(server: &WsgateProc, user: &str, extensions: Option<&str>) -> (TcpStream, String) {
    let stream = TcpStream::connect(server.public).await.unwrap();
    let headers: Vec<(&str, &str)> = extensions
        .map(|e| ("Sec-WebSocket-Extensions", e))
        .into_iter()
        .collect();
    let host = server.public.to_string();
    let path = format!("/ws?token={}", token(user));
    match HandWs::upgrade(stream, &host, &path, &headers, T)
        .await
        .unwrap()
    {
        Upgrade::Upgraded(ws, head) => (ws.stream, head.to_ascii_lowercase()),
        Upgrade::Refused { head, .. } => panic!("not upgraded: {head}"),
    }
}

/// One server frame: its first byte (FIN, RSV, opcode) and payload.
async fn read_raw(s: &mut TcpStream) -> (u8, Vec<u8>) {
    tokio::time::timeout(T, async {
        let mut h = [0u8; 2];
        s.read_exact(&mut h).await.unwrap();
        let mut len = u64::from(h[1] & 0x7f);
        if len == 126 {
            len = u64::from(s.read_u16().await.unwrap());
        } else if len == 127 {
            len = s.read_u64().await.unwrap();
        }
        let mut payload = vec![0u8; len as usize];
        s.read_exact(&mut payload).await.unwrap();
        (h[0], payload)
    })
    .await
    .expect("a frame in time")
}

/// Raw deflate of one message, as RFC 7692 7.2.2 says: payload + 00 00 ff ff.
fn inflate(data: &[u8]) -> Vec<u8> {
    let mut z = Decompress::new(false);
    let mut out = Vec::with_capacity(1 << 20);
    let input = [data, &[0, 0, 0xff, 0xff]].concat();
    z.decompress_vec(&input, &mut out, FlushDecompress::Sync)
        .unwrap();
    out
}

/// The next JSON data frame that is not `welcome`, with whether it came
/// compressed and its payload's size on the wire.
async fn raw_json(s: &mut TcpStream) -> (bool, usize, Value) {
    loop {
        let (b0, payload) = read_raw(s).await;
        match b0 & 0x0f {
            0x1 => {
                let rsv1 = b0 & 0x40 != 0;
                let text = if rsv1 {
                    inflate(&payload)
                } else {
                    payload.clone()
                };
                let v: Value = serde_json::from_slice(&text).unwrap();
                if v["type"] != "welcome" {
                    return (rsv1, payload.len(), v);
                }
            }
            0x9 | 0xA => {}
            op => panic!("unexpected opcode {op}"),
        }
    }
}

/// A masked client frame; `rsv1` marks it compressed.
fn client_frame(opcode: u8, payload: &[u8], rsv1: bool) -> Vec<u8> {
    let mut f = encode_frame(opcode, payload, true);
    if rsv1 {
        f[0] |= 0x40;
    }
    f
}

/// A raw deflate of `data` with the 4-byte tail removed (what a client sends).
fn deflate(data: &[u8]) -> Vec<u8> {
    use flate2::{Compress, Compression, FlushCompress};
    let mut z = Compress::new(Compression::default(), false);
    let mut out = Vec::with_capacity(data.len() + 1024);
    z.compress_vec(data, &mut out, FlushCompress::Sync).unwrap();
    assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
    out.truncate(out.len() - 4);
    out
}

async fn raw_send(s: &mut TcpStream, v: &Value, compressed: bool) {
    let text = v.to_string();
    let frame = if compressed {
        client_frame(0x1, &deflate(text.as_bytes()), true)
    } else {
        client_frame(0x1, text.as_bytes(), false)
    };
    s.write_all(&frame).await.unwrap();
}

/// Raw: the next `message` frame (presence and replies skipped).
async fn raw_message(s: &mut TcpStream) -> (bool, usize, Value) {
    loop {
        let m = raw_json(s).await;
        if m.2["type"] == "message" {
            return m;
        }
    }
}

/// Raw: waits for the reply carrying `ref`.
async fn raw_reply(s: &mut TcpStream, r#ref: &str) -> Value {
    loop {
        let (_, _, v) = raw_json(s).await;
        if v["ref"] == r#ref {
            return v;
        }
    }
}

fn big_content() -> Value {
    let items: Vec<Value> = (0..12)
        .map(|i| json!({"id": i, "user": format!("user-{i}"), "text": "the quick brown fox jumps over the lazy dog", "tags": ["a", "b"]}))
        .collect();
    json!({ "items": items })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_ws_negotiates_and_messages_are_compressed_both_ways() {
    let server = WsgateProc::start(&["--compression"]).await;
    let mut alice = NodeWs::start(&server, "alice", true).await;
    let up = alice.event().await;
    assert_eq!(up["extensions"], ANSWER, "{up}");
    let open = alice.event().await;
    assert!(
        open["extensions"]
            .as_str()
            .unwrap()
            .contains("permessage-deflate"),
        "{open}"
    );
    // bob offers what browsers offer; carol offers nothing.
    let (mut bob, head) = raw(
        &server,
        "bob",
        Some("permessage-deflate; client_max_window_bits"),
    )
    .await;
    assert!(
        head.contains(&format!("sec-websocket-extensions: {ANSWER}")),
        "{head}"
    );
    let (mut carol, head) = raw(&server, "carol", None).await;
    assert!(!head.contains("sec-websocket-extensions"), "{head}");

    alice
        .send(&json!({"type": "join", "room": "big", "ref": "j"}).to_string())
        .await;
    assert_eq!(alice.message().await["ref"], "j");
    for s in [&mut bob, &mut carol] {
        raw_send(
            s,
            &json!({"type": "join", "room": "big", "ref": "j"}),
            false,
        )
        .await;
        assert_eq!(raw_reply(s, "j").await["type"], "reply");
    }
    // alice's publish leaves `ws` compressed (threshold 0) and is delivered.
    let content = big_content();
    let size = content.to_string().len();
    assert!(size > 1000, "{size}");
    alice
        .send(
            &json!({"type": "publish", "room": "big", "content": content, "ref": "p"}).to_string(),
        )
        .await;
    let (rsv1, wire, v) = raw_message(&mut bob).await;
    assert_eq!(v["type"], "message", "{v}");
    assert_eq!(v["content"], content);
    assert!(
        rsv1,
        "bob negotiated the extension: the frame is compressed"
    );
    assert!(
        wire * 3 < size,
        "{wire} bytes on the wire for a {size}-byte content"
    );
    let (rsv1, wire, v) = raw_message(&mut carol).await;
    assert_eq!(v["content"], content);
    assert!(!rsv1, "carol did not negotiate it");
    assert!(wire > size);

    // A direct message from bob, compressed by bob, inflated by the server
    // and compressed again for alice: `ws` inflates it.
    raw_send(
        &mut bob,
        &json!({"type": "send", "to": "alice", "content": content, "ref": "d"}),
        true,
    )
    .await;
    let m = loop {
        let m = alice.message().await;
        if m["type"] == "message" && m["from"] == "bob" {
            break m;
        }
    };
    assert_eq!(m["content"], content);
    raw_reply(&mut bob, "d").await;
    // Small payloads go out uncompressed (under --compression-min-bytes).
    raw_send(
        &mut carol,
        &json!({"type": "send", "to": "bob", "content": "hi", "ref": "s"}),
        false,
    )
    .await;
    let (rsv1, _, v) = raw_message(&mut bob).await;
    assert_eq!(
        (v["type"].as_str(), &v["content"]),
        (Some("message"), &json!("hi"))
    );
    assert!(!rsv1, "a small payload is not compressed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deflate_bomb_from_node_ws_closes_1009_within_the_limit() {
    let mut server = WsgateProc::start(&["--compression"]).await;
    let mut bystander = server.bystander("bystander").await;
    let rss_before = server.proc_status("VmRSS");
    let mut mallory = NodeWs::start(&server, "mallory", true).await;
    assert_eq!(mallory.event().await["event"], "upgrade");
    assert_eq!(mallory.event().await["event"], "open");
    // 50 MB of spaces, a few tens of KiB deflated: under the 256 KiB hard
    // limit on the wire, 200 times over it inflated.
    mallory.send("BOMB").await;
    assert_eq!(mallory.close_code().await, 1009);
    server
        .wait_metric("wsgate_disconnects_total{code=\"1009\"}", 1.0)
        .await;
    let grown = server.proc_status("VmRSS").saturating_sub(rss_before);
    assert!(grown < 16 * 1024, "RSS grew {grown} kB");
    // A raw bomb too, and corrupt deflate data: 1002.
    let (mut raw_bomb, _) = raw(&server, "eve", Some("permessage-deflate")).await;
    raw_bomb
        .write_all(&client_frame(0x2, &deflate(&vec![0u8; 50_000_000]), true))
        .await
        .unwrap();
    assert_eq!(close_of(&mut raw_bomb).await, Some(1009));
    let (mut corrupt, _) = raw(&server, "eve", Some("permessage-deflate")).await;
    corrupt
        .write_all(&client_frame(0x1, &[0xff, 0xff, 0xff], true))
        .await
        .unwrap();
    assert_eq!(close_of(&mut corrupt).await, Some(1002));
    let grown = server.proc_status("VmRSS").saturating_sub(rss_before);
    assert!(grown < 16 * 1024, "RSS grew {grown} kB");
    assert_unharmed(&mut server, &mut bystander).await;
}

async fn close_of(s: &mut TcpStream) -> Option<u16> {
    loop {
        let (b0, payload) = read_raw(s).await;
        if b0 & 0x0f == 0x8 {
            return (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_compression_the_extension_is_never_negotiated() {
    let server = WsgateProc::start(&[]).await;
    let mut alice = NodeWs::start(&server, "alice", true).await;
    let up = alice.event().await;
    assert_eq!(up["extensions"], Value::Null, "{up}");
    assert_eq!(alice.event().await["extensions"], "");
    alice
        .send(&json!({"type": "ping", "ref": "x"}).to_string())
        .await;
    assert_eq!(alice.message().await, json!({"type": "pong", "ref": "x"}));
    let (mut bob, head) = raw(&server, "bob", Some("permessage-deflate")).await;
    assert!(!head.contains("sec-websocket-extensions"), "{head}");
    // RSV1 without the extension is a protocol error.
    bob.write_all(&client_frame(0x1, &deflate(b"{\"type\":\"ping\"}"), true))
        .await
        .unwrap();
    assert_eq!(close_of(&mut bob).await, Some(1002));
}
