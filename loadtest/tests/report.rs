//! The report generator's large-room and ramp tables, and the hand-written
//! part of the markdown file surviving regeneration. Result files are
//! written by hand here (the scenarios themselves run in smoke.rs).

#![expect(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is how a check fails"
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use wsgate_loadtest::cli::ReportArgs;
use wsgate_loadtest::report::{self, MARKER};
use wsgate_loadtest::stats::{Percentiles, RampStep, RunResult};

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lt-report-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn save(d: &Path, file: &str, r: &RunResult) -> PathBuf {
    let p = d.join(file);
    std::fs::write(&p, serde_json::to_string(r).unwrap()).unwrap();
    p
}

fn large_room(
    label: &str,
    target: &str,
    join: f64,
    p99_ms: u64,
    closes: &[(&str, u64)],
) -> RunResult {
    let closes: BTreeMap<String, u64> = closes.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    RunResult {
        scenario: "large-room".into(),
        target: target.into(),
        label: label.into(),
        urls: vec!["ws://x".into()],
        params: serde_json::json!({"members": 10000, "senders": 1,
            "traffic": {"rate": 20.0, "size": 64}, "common": {"duration": 10.0}}),
        connections: 10_000,
        senders: 1,
        receivers: 9_999,
        accepted: 200,
        accepted_per_s: 20.0,
        delivered: 200 * 9_999,
        expected: 200 * 9_999,
        join_secs: join,
        dropped: closes.values().sum(),
        closes,
        latency_us: Percentiles {
            p50: 20_000,
            p99: p99_ms * 1000,
            ..Default::default()
        },
        ..Default::default()
    }
}

fn step(offered: f64, loadgen: f64, failed: Option<&str>) -> RampStep {
    RampStep {
        offered,
        accepted_per_s: offered,
        deliveries_per_s: offered * 1000.0,
        p99_us: 40_000,
        server_cores: 0.5,
        loadgen_cores: loadgen,
        cpu_pressure: Some(0.97),
        failed: failed.map(str::to_string),
        ..Default::default()
    }
}

fn ramp(label: &str, steps: Vec<RampStep>) -> RunResult {
    RunResult {
        scenario: "ramp".into(),
        target: "raw".into(),
        label: label.into(),
        urls: vec!["ws://x".into()],
        params: serde_json::json!({"connections": 1000, "senders": 2, "factor": 1.5,
            "traffic": {"rate": 100.0}, "common": {"duration": 3.0}}),
        receivers: 1000,
        steps,
        ..Default::default()
    }
}

fn args(d: &Path, results: Vec<PathBuf>, note: Option<PathBuf>) -> ReportArgs {
    ReportArgs {
        results,
        markdown: d.join("benchmarks.md"),
        charts: d.join("charts"),
        note,
    }
}

#[test]
fn large_room_and_ramp_tables_with_goal_and_limit() {
    let d = dir("tables");
    let files = vec![
        save(
            &d,
            "a.json",
            &large_room("wsgate-1", "wsgate", 0.8, 90, &[]),
        ),
        save(
            &d,
            "b.json",
            &large_room(
                "wsgate-3",
                "wsgate",
                1.2,
                120,
                &[("close_1013", 7), ("closed", 1)],
            ),
        ),
        save(&d, "c.json", &large_room("go-1", "raw", 0.0, 300, &[])),
        save(
            &d,
            "d.json",
            &ramp(
                "wsgate-1",
                vec![
                    step(100.0, 0.3, None),
                    step(150.0, 0.5, None),
                    step(225.0, 0.95, Some("lost 3")),
                ],
            ),
        ),
        save(
            &d,
            "e.json",
            &ramp("node-1", vec![step(100.0, 0.2, Some("p99 400 ms"))]),
        ),
    ];
    report::write(&args(&d, files, None)).unwrap();
    let md = std::fs::read_to_string(d.join("benchmarks.md")).unwrap();
    let row = |start: &str, section: &str| -> String {
        let part = &md[md.find(&format!("## {section}")).unwrap()..];
        part.lines()
            .find(|l| l.starts_with(&format!("| {start} |")))
            .unwrap_or_else(|| panic!("no {start} row in {section}:\n{md}"))
            .to_string()
    };
    let w1 = row("wsgate-1", "large-room");
    assert!(w1.contains("| 0.80 |") && w1.ends_with("| met |"), "{w1}");
    let w3 = row("wsgate-3", "large-room");
    assert!(
        w3.contains("| 7 | 1 |") && w3.contains("not met (7 closed 1013)"),
        "{w3}"
    );
    let go = row("go-1", "large-room");
    assert!(
        go.contains("– (broadcast)") && go.contains("not met (p99 300.00 ms)"),
        "{go}"
    );

    let r = row("wsgate-1", "ramp");
    assert!(r.contains("| 150 | 150000 |"), "{r}");
    assert!(
        r.contains("225/s: lost 3") && r.contains("generator (0.95 cores, CPU pressure 97 %)"),
        "{r}"
    );
    let n = row("node-1", "ramp");
    assert!(
        n.contains("| none |")
            && n.contains("neither at a core (server 0.50, generator 0.20, CPU pressure 97 %)"),
        "{n}"
    );
    assert!(
        md.contains("- wsgate-1: 100 ok, 150 ok, 225 **lost 3**"),
        "{md}"
    );
    assert!(md.find("## large-room").unwrap() < md.find("## ramp").unwrap());
    assert!(md.trim_end().ends_with(MARKER));
}

#[test]
fn hand_written_part_survives_and_a_file_without_the_marker_is_refused() {
    let d = dir("keep");
    let file = save(
        &d,
        "a.json",
        &large_room("wsgate-1", "wsgate", 0.5, 50, &[]),
    );
    let note = d.join("note.md");
    std::fs::write(&note, "## This run\n\nthe note\n").unwrap();
    let md_path = d.join("benchmarks.md");
    let hand = format!("{MARKER}\n\n## Reading this run\n\nhand-written words\n");
    std::fs::write(
        &md_path,
        format!("# Old generated\n\n## stale table\n\n{hand}"),
    )
    .unwrap();
    for _ in 0..2 {
        report::write(&args(&d, vec![file.clone()], Some(note.clone()))).unwrap();
        let md = std::fs::read_to_string(&md_path).unwrap();
        assert!(md.ends_with(&hand), "{md}");
        assert!(!md.contains("stale table"), "{md}");
        assert_eq!(md.matches("the note").count(), 1, "{md}");
        assert!(md.find("the note").unwrap() < md.find(MARKER).unwrap());
    }

    std::fs::write(&md_path, "# hand-written only\n").unwrap();
    let err = report::write(&args(&d, vec![file], None)).unwrap_err();
    assert!(err.contains("no line"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&md_path).unwrap(),
        "# hand-written only\n"
    );
}
