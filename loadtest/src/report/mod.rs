//! `report`: result JSON files (from `--out`) to `docs/benchmarks.md` and PNG
//! charts.
//!
//! Results are grouped by scenario; each group becomes a markdown table (one
//! row per run: system, nodes, connections, throughput, latency percentiles,
//! loss, server RSS per connection and CPU) and one or two horizontal bar
//! charts (plotters, bitmap backend); `large-room` and `ramp` have their own
//! tables ([`scale`]). Chart text needs a TrueType font: the first of a few
//! common system fonts is registered at run time; without one the charts are
//! skipped and the markdown says so.
//!
//! The file keeps a hand-written part: everything from the [`MARKER`] line to
//! the end survives regeneration (a file without the line is refused, not
//! overwritten), and `--note` (bench.sh's "This run") ends the generated part.

mod scale;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::cli::ReportArgs;
use crate::stats::RunResult;

const FONTS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
];

/// Registers a system font as "sans-serif"; false when none is found.
fn register_font() -> bool {
    for path in FONTS {
        if let Ok(bytes) = std::fs::read(path) {
            // Fonts must live for the whole process; this runs once.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                return true;
            }
        }
    }
    false
}

fn system(r: &RunResult) -> String {
    let name = if r.label.is_empty() {
        r.target.clone()
    } else {
        r.label.clone()
    };
    if r.target == "wsgate" && r.codec == "msgpack" && !name.contains("msgpack") {
        format!("{name} (msgpack)")
    } else {
        name
    }
}

/// A chart bar's name: the system and what it was offered.
fn bar_label(r: &RunResult) -> String {
    match r.params["traffic"]["rate"].as_f64() {
        Some(rate) if rate > 0.0 => format!("{} @ {rate:.0}/s", system(r)),
        Some(_) => format!("{} @ max", system(r)),
        None => format!("{} ({} conns)", system(r), r.connections),
    }
}

/// Row order: wsgate first, then the ideal server, then the peers.
fn rank(system: &str) -> usize {
    let order = ["wsgate", "ideal", "node", "go", "sio", "socketio"];
    order
        .iter()
        .position(|p| system.starts_with(p))
        .unwrap_or(order.len())
}

fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

fn server_cols(r: &RunResult) -> (String, String) {
    match &r.server {
        Some(s) => (
            format!("{:.1}", s.rss_per_conn_kib),
            format!("{:.2}", s.cpu_cores),
        ),
        None => ("–".into(), "–".into()),
    }
}

/// Server CPU per delivery in microseconds (all nodes' CPU over the
/// deliveries the receivers counted), "–" without CPU or deliveries.
fn cpu_per_delivery(r: &RunResult) -> String {
    match &r.server {
        Some(s) if r.deliveries_per_s > 0.0 => {
            format!("{:.2}", s.cpu_cores * 1e6 / r.deliveries_per_s)
        }
        _ => "–".into(),
    }
}

fn table(scenario: &str, runs: &[RunResult]) -> String {
    let mut md = String::new();
    match scenario {
        "large-room" => md += &scale::large_room_table(runs),
        "ramp" => md += &scale::ramp_table(runs),
        "idle" => {
            md += "| system | nodes | connections | failed | RSS before (MiB) | RSS after (MiB) | RSS/conn (KiB) | CPU (cores) |\n";
            md += "|---|---:|---:|---:|---:|---:|---:|---:|\n";
            for r in runs {
                let (before, after) = r
                    .server
                    .as_ref()
                    .map_or((0, 0), |s| (s.rss_before_kib, s.rss_after_kib));
                let (kib, cpu) = server_cols(r);
                let failed: u64 = r.connect_failures.values().sum();
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {failed} | {:.1} | {:.1} | {kib} | {cpu} |",
                    system(r),
                    r.urls.len(),
                    r.connections,
                    before as f64 / 1024.0,
                    after as f64 / 1024.0
                );
            }
        }
        "connect" => {
            md += "| system | nodes | connections | failed | conn/s | handshake p50 (ms) | p99 | p99.9 | max | CPU (cores) |\n";
            md += "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
            for r in runs {
                let (_, cpu) = server_cols(r);
                let h = &r.handshake_us;
                let failed: u64 = r.connect_failures.values().sum();
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {failed} | {:.0} | {} | {} | {} | {} | {cpu} |",
                    system(r),
                    r.urls.len(),
                    r.connections,
                    r.connects_per_s,
                    ms(h.p50),
                    ms(h.p99),
                    ms(h.p999),
                    ms(h.max)
                );
            }
        }
        _ => {
            md += "| system | nodes | connections | senders | offered msgs/s | accepted msgs/s | deliveries/s | p50 (ms) | p99 | p99.9 | max | accept p99 (ms) | loss | dup | CPU (cores) | CPU µs/delivery |\n";
            md += "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
            for r in runs {
                let (_, cpu) = server_cols(r);
                let per_delivery = cpu_per_delivery(r);
                let l = &r.latency_us;
                let offered = match r.params["traffic"]["rate"].as_f64() {
                    Some(rate) if rate > 0.0 => format!("{rate:.0}"),
                    _ => "max".into(),
                };
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {offered} | {:.0} | {:.0} | {} | {} | {} | {} | {} | {:.4}% | {} | {cpu} | {per_delivery} |",
                    system(r),
                    r.urls.len(),
                    r.connections,
                    r.senders,
                    r.accepted_per_s,
                    r.deliveries_per_s,
                    ms(l.p50),
                    ms(l.p99),
                    ms(l.p999),
                    ms(l.max),
                    ms(r.accept_latency_us.p99),
                    r.loss_ratio * 100.0,
                    r.duplicates
                );
            }
        }
    }
    md
}

/// One horizontal bar chart: a bar per run.
fn bar_chart(path: &Path, title: &str, bars: &[(String, f64)]) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let height = 80 + 34 * bars.len() as u32;
    let root = BitMapBackend::new(path, (900, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let max = bars.iter().map(|b| b.1).fold(0.0, f64::max).max(1e-9) * 1.15;
    let n = bars.len() as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(0)
        .build_cartesian_2d(0.0..max, 0.0..n)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .disable_y_axis()
        .x_labels(6)
        .x_label_formatter(&|v| human(*v))
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(|e| err(&e))?;
    let palette = [BLUE, RED, GREEN, MAGENTA, CYAN, BLACK];
    for (i, (name, value)) in bars.iter().enumerate() {
        let y = n - 1.0 - i as f64;
        // One colour per system family (wsgate, ideal, node, ...).
        let color = palette[rank(name) % palette.len()].mix(0.55);
        chart
            .draw_series([Rectangle::new(
                [(0.0, y + 0.15), (*value, y + 0.85)],
                color.filled(),
            )])
            .map_err(|e| err(&e))?;
        let text = format!("{name}: {}", human(*value));
        chart
            .draw_series([Text::new(
                text,
                (max * 0.01, y + 0.62),
                ("sans-serif", 15).into_font(),
            )])
            .map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))
}

fn human(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.2}")
    }
}

/// The charts drawn for a scenario: (file suffix, title, value of a run).
type Metric = (&'static str, &'static str, fn(&RunResult) -> f64);

fn metrics(scenario: &str) -> Vec<Metric> {
    let rss: Metric = ("rss", "server RSS per connection (KiB)", |r| {
        r.server.as_ref().map_or(0.0, |s| s.rss_per_conn_kib)
    });
    let p99: Metric = ("p99", "end-to-end latency p99 (ms)", |r| {
        r.latency_us.p99 as f64 / 1000.0
    });
    let rate: Metric = ("deliveries", "deliveries per second", |r| {
        r.deliveries_per_s
    });
    match scenario {
        "idle" => vec![rss],
        "connect" => vec![
            ("conn-rate", "connections per second", |r| r.connects_per_s),
            ("handshake-p99", "handshake p99 (ms)", |r| {
                r.handshake_us.p99 as f64 / 1000.0
            }),
        ],
        "ramp" => vec![(
            "deliveries",
            "deliveries per second at the highest passing step",
            |r| r.deliveries_per_s,
        )],
        _ => vec![rate, p99],
    }
}

/// Writes the markdown file and the charts.
pub fn write(args: &ReportArgs) -> Result<(), String> {
    let mut groups: BTreeMap<String, Vec<RunResult>> = BTreeMap::new();
    for path in &args.results {
        let text = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let r: RunResult =
            serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        groups.entry(r.scenario.clone()).or_default().push(r);
    }
    for runs in groups.values_mut() {
        runs.sort_by_key(|r| {
            // Paced runs by rate, then flat out ("max", rate 0).
            let rate = r.params["traffic"]["rate"].as_f64().unwrap_or_default();
            let rate = if rate > 0.0 { rate as u64 } else { u64::MAX };
            (rank(&system(r)), r.urls.len(), system(r), rate)
        });
    }
    // Read (and check) the hand-written part before drawing anything.
    let existing = std::fs::read_to_string(&args.markdown).ok();
    hand_written(&args.markdown, &existing)?;
    let fonts = register_font();
    std::fs::create_dir_all(&args.charts).map_err(|e| format!("{}: {e}", args.charts.display()))?;
    let md_dir = args
        .markdown
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let mut md = String::from(HEADER);
    if !fonts {
        md += "\n_No TrueType font was found when this report was made: charts are missing._\n";
    }
    let order = [
        "idle",
        "connect",
        "broadcast",
        "rooms",
        "direct",
        "large-room",
        "ramp",
    ];
    let mut names: Vec<&String> = groups.keys().collect();
    names.sort_by_key(|n| order.iter().position(|o| o == n).unwrap_or(order.len()));
    for name in names {
        let runs = &groups[name];
        let _ = write!(md, "\n## {name}\n\n{}\n\n", describe(name, &runs[0]));
        md += &table(name, runs);
        if !fonts {
            continue;
        }
        md += "\n";
        for (suffix, title, value) in metrics(name) {
            let file = args.charts.join(format!("{name}-{suffix}.png"));
            let bars: Vec<(String, f64)> = runs.iter().map(|r| (bar_label(r), value(r))).collect();
            bar_chart(&file, &format!("{name}: {title}"), &bars)?;
            let rel = relative(&file, &md_dir);
            let _ = writeln!(md, "![{name}: {title}]({})", rel.display());
        }
    }
    if let Some(note) = &args.note {
        let text = std::fs::read_to_string(note).map_err(|e| format!("{}: {e}", note.display()))?;
        md += "\n";
        md += &text;
    }
    md += "\n";
    md += &hand_written(&args.markdown, &existing)?;
    if let Some(dir) = args.markdown.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::write(&args.markdown, md).map_err(|e| format!("{}: {e}", args.markdown.display()))
}

/// The line that ends the generated part of the markdown file: everything
/// from it to the end is hand-written and kept as it is on regeneration.
pub const MARKER: &str =
    "<!-- end of the generated report: everything below is hand-written and kept by `wsgate-loadtest report` -->";

/// The hand-written tail of `existing` (the file's text, if it exists): from
/// [`MARKER`] on. A file that exists without the marker is refused rather
/// than overwritten (its hand-written text would be lost).
fn hand_written(path: &Path, existing: &Option<String>) -> Result<String, String> {
    match existing {
        None => Ok(format!("{MARKER}\n")),
        Some(text) => match text.find(MARKER) {
            Some(at) => Ok(text[at..].to_string()),
            None => Err(format!(
                "{}: no line `{MARKER}`; add it where the hand-written part starts \
                 (nothing was written)",
                path.display()
            )),
        },
    }
}

fn relative(file: &Path, base: &Path) -> PathBuf {
    file.strip_prefix(base)
        .map_or_else(|_| file.to_path_buf(), Path::to_path_buf)
}

fn describe(scenario: &str, r: &RunResult) -> String {
    let p = &r.params;
    let t = &p["traffic"];
    match scenario {
        "idle" => format!(
            "Open the connections, settle, hold for {} s; server RSS is summed over all nodes.",
            p["common"]["duration"]
        ),
        "connect" => "A connection storm: TCP connect + upgrade + first frame, timed per connection.".into(),
        "broadcast" => format!(
            "Sender connections (besides the receivers) broadcast {}-byte payloads for {} s, \
             at the offered rate or, for *max*, as fast as each sender's window of unanswered \
             messages allows; every receiver counts every message.",
            t["size"], p["common"]["duration"]
        ),
        "rooms" => format!(
            "{} rooms of {} members, {} publisher(s) each.",
            p["rooms"], p["members"], p["publishers"]
        ),
        "large-room" => format!(
            "{} members join one room, then {} sender(s) publish {}-byte payloads at the \
             offered rate for {} s (peers: broadcast to the same number).",
            p["members"], p["senders"], t["size"], p["common"]["duration"]
        ),
        "ramp" => format!(
            "Broadcast to {} receivers from {} senders, offered rate from {} msgs/s x{} per \
             step ({} s each) until a step fails.",
            p["connections"], p["senders"], t["rate"], p["factor"], p["common"]["duration"]
        ),
        "direct" => format!(
            "{} pairs on different nodes exchanging acked direct messages; loss and duplicates counted by message id.",
            p["pairs"]
        ),
        _ => String::new(),
    }
}

const HEADER: &str = "# Benchmarks

Generated by `loadtest/bench.sh` (`wsgate-loadtest report`). Every system ran on
the same machine, one after another, driven by the same load generator
(`wsgate-loadtest`), with Redis for the clusters. Systems:

- **wsgate**: this project, standalone (1 node) and 3 nodes over Redis.
- **ideal**: `wsgate-loadtest ideal-server`, the smallest tokio fan-out server
  (no protocol, no Redis): the ceiling.
- **node-ws-redis**, **go-gorilla-redis**, **socketio-redis**: the baseline
  peers (what teams deploy instead), 1 and 3 instances over Redis.

Latency is end to end (the send time travels in the payload; sender and
receivers share the clock), in milliseconds. Loss is against what should have
arrived (accepted messages × receivers for broadcast). RSS/conn (idle only:
each system starts fresh and idle runs first) is the server's resident-memory
growth divided by the connections opened (all nodes summed); CPU is server CPU
seconds per second of measurement (1.0 = one core), and *CPU µs/delivery* that
CPU divided by the deliveries counted (the #15 measure). *Offered* is the rate the
senders aimed at, *accepted* what the server took (wsgate `reply ok`; for the
peers every frame written): a system that cannot keep up shows accepted <
offered and growing latency, not loss. *Accept* latency is send → `reply ok`
(peers: send → the sender's own copy back); it tells a slow publish path
from slow fan-out.
The load generator shares the machine's cores with the server, so on small
machines the generator can be the bottleneck: compare systems, not absolutes.
";
