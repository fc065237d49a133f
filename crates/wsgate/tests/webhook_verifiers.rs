//! The signature verifiers docs/webhooks.md shows (Node and Python, kept as
//! `docs/examples/webhook-verify.js` and `docs/examples/webhook_verify.py`,
//! which the doc quotes whole) accept a POST a real wsgate sent, and refuse
//! it once its body, its secret or its age is wrong. Runs the stock `node`
//! and `python3` on the body and header the test's receiver captured.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is how a check fails"
)]

#[macro_use]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use support::*;

const HOOK_SECRET: &str = "verifier-test-secret";

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/examples")
}

/// `tool script HEADER BODY_FILE` with the secret in the environment:
/// true when it says the signature is valid (exit 0, prints "valid").
fn run(tool: &str, script: &str, secret: &str, header: &str, body: &Path) -> bool {
    let out = Command::new(tool)
        .arg(examples().join(script))
        .arg(header)
        .arg(body)
        .env("WSGATE_WEBHOOK_SECRET", secret)
        .output()
        .expect("run the verifier");
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        stdout == "valid" || stdout == "invalid",
        "{tool} {script}: stdout {stdout:?}, stderr {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        out.status.success(),
        stdout == "valid",
        "{tool} exit status"
    );
    stdout == "valid"
}

fn sign(secret: &str, t: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key");
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("t={t},v1={hex}")
}

#[test]
fn the_docs_quote_the_verifier_files_whole() {
    let doc = std::fs::read_to_string(examples().join("../webhooks.md")).expect("webhooks.md");
    for (file, lang) in [("webhook-verify.js", "js"), ("webhook_verify.py", "python")] {
        let code = std::fs::read_to_string(examples().join(file)).expect("example file");
        let block = format!("```{lang}\n{code}```\n");
        assert!(
            doc.contains(&block),
            "docs/webhooks.md must quote docs/examples/{file} whole, in a ```{lang} block"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_and_python_verifiers_accept_a_real_post_and_refuse_a_forged_one() {
    require("node", "nodejs");
    require("python3", "python3");
    let receiver = Receiver::start(HOOK_SECRET).await;
    let url = receiver.url();
    let node = WsgateProc::start(&[
        "--allow-anonymous",
        "--node-id",
        "wsgate",
        "--webhook-url",
        &url,
        "--webhook-secret",
        HOOK_SECRET,
    ])
    .await;
    let _alice = node.connect("alice").await;
    receiver
        .wait("alice's user.online", |e| !e.is_empty())
        .await;
    let batch = receiver.batches().remove(0);
    assert!(batch.verified, "the receiver's own check");
    let header = batch.signature.expect("a signature header");
    let dir = temp_dir("verifiers");
    let body = dir.join("body.json");
    std::fs::write(&body, &batch.raw).expect("write the body");
    let mut forged = batch.raw.to_vec();
    forged.extend_from_slice(b" ");
    let tampered = dir.join("tampered.json");
    std::fs::write(&tampered, &forged).expect("write the tampered body");
    // Signed right, but ten minutes ago: a replayed capture.
    let old = sign(HOOK_SECRET, now_secs() - 600, &batch.raw);

    for (tool, script) in [
        ("node", "webhook-verify.js"),
        ("python3", "webhook_verify.py"),
    ] {
        assert!(
            run(tool, script, HOOK_SECRET, &header, &body),
            "{tool} accepts what wsgate signed"
        );
        assert!(
            !run(tool, script, HOOK_SECRET, &header, &tampered),
            "{tool}: body changed"
        );
        assert!(
            !run(tool, script, "another-secret", &header, &body),
            "{tool}: secret"
        );
        assert!(
            !run(tool, script, HOOK_SECRET, &old, &body),
            "{tool}: replay window"
        );
        assert!(
            !run(tool, script, HOOK_SECRET, "", &body),
            "{tool}: no header"
        );
    }
}
