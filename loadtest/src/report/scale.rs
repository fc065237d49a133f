//! The report's tables for the two #15 scenarios, each with a short "how to
//! read": `large-room` (one room of many members) and `ramp` (the highest
//! offered broadcast rate that passed, with server and generator CPU).

use std::fmt::Write as _;

use super::{ms, server_cols, system};
use crate::stats::{RampStep, RunResult};

/// #15's large-room goal: joins within 2 s, no loss, no 1013, p99 <= 250 ms.
const JOIN_GOAL_S: f64 = 2.0;
const P99_GOAL_US: u64 = 250_000;
/// A generator using this much of one core (or more) was likely the limit.
const GENERATOR_BOUND_CORES: f64 = 0.85;

/// Closes with 1013 (slow consumer / try again later), and all others.
fn closes(r: &RunResult) -> (u64, u64) {
    let slow = r.closes.get("close_1013").copied().unwrap_or_default();
    (slow, r.dropped.saturating_sub(slow))
}

/// Whether a large-room run met #15's goal, and if not, the first reason.
pub fn large_room_goal(r: &RunResult) -> String {
    let (slow, other) = closes(r);
    let rooms = r.target == "wsgate";
    let reason = if r.connections == 0 || r.accepted == 0 {
        Some("nothing measured".to_string())
    } else if rooms && r.join_secs > JOIN_GOAL_S {
        Some(format!("join {:.2} s", r.join_secs))
    } else if r.lost > 0 {
        Some(format!("lost {}", r.lost))
    } else if slow > 0 {
        Some(format!("{slow} closed 1013"))
    } else if other > 0 {
        Some(format!("{other} closed"))
    } else if r.latency_us.p99 > P99_GOAL_US {
        Some(format!("p99 {} ms", ms(r.latency_us.p99)))
    } else {
        None
    };
    reason.map_or_else(|| "met".into(), |why| format!("not met ({why})"))
}

pub fn large_room_table(runs: &[RunResult]) -> String {
    let mut md = String::from(
        "How to read: *join (s)* is from the first `join` sent to the last `join` ok, \
         every member already connected (peers have no rooms: their row is the plain \
         broadcast to the same number of connections, so no join time). *Closed 1013* \
         counts members the server closed as slow consumers during the measurement, \
         *other* any other close; *goal* is #15's: join within 2 s, no loss, no 1013, \
         p99 <= 250 ms.\n\n",
    );
    md += "| system | nodes | members | join (s) | senders | offered msgs/s | accepted msgs/s | deliveries/s | p50 (ms) | p99 | max | loss | dup | closed 1013 | other | CPU (cores) | goal |\n";
    md += "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n";
    for r in runs {
        let (_, cpu) = server_cols(r);
        let (slow, other) = closes(r);
        let join = if r.target == "wsgate" {
            format!("{:.2}", r.join_secs)
        } else {
            "– (broadcast)".into()
        };
        let offered = r.params["traffic"]["rate"].as_f64().unwrap_or_default();
        let l = &r.latency_us;
        let _ = writeln!(
            md,
            "| {} | {} | {} | {join} | {} | {offered:.0} | {:.1} | {:.0} | {} | {} | {} | {:.4}% | {} | {slow} | {other} | {cpu} | {} |",
            system(r),
            r.urls.len(),
            r.connections,
            r.senders,
            r.accepted_per_s,
            r.deliveries_per_s,
            ms(l.p50),
            ms(l.p99),
            ms(l.max),
            r.loss_ratio * 100.0,
            r.duplicates,
            large_room_goal(r)
        );
    }
    md
}

/// Who likely stopped the ramp, judged at its first failing step: the
/// generator or the server when it used most of a core, otherwise neither
/// (with the machine's CPU pressure: near 100 %, the shared CPUs were).
pub fn ramp_limit(steps: &[RampStep]) -> String {
    let Some(s) = steps.iter().find(|s| s.failed.is_some()) else {
        return "not reached (max steps)".into();
    };
    let psi = s.cpu_pressure.map_or(String::new(), |p| {
        format!(", CPU pressure {:.0} %", p * 100.0)
    });
    if s.loadgen_cores >= GENERATOR_BOUND_CORES {
        format!("generator ({:.2} cores{psi})", s.loadgen_cores)
    } else if s.server_cores >= GENERATOR_BOUND_CORES {
        format!("server ({:.2} cores{psi})", s.server_cores)
    } else {
        format!(
            "neither at a core (server {:.2}, generator {:.2}{psi})",
            s.server_cores, s.loadgen_cores
        )
    }
}

fn step_list(steps: &[RampStep]) -> String {
    steps
        .iter()
        .map(|s| match &s.failed {
            None => format!("{:.0} ok", s.offered),
            Some(why) => format!("{:.0} **{why}**", s.offered),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn ramp_table(runs: &[RunResult]) -> String {
    let mut md = String::from(
        "How to read: each system got the same broadcast at a rising offered rate \
         (each step a fresh set of connections); a step passes with no loss, no \
         closed connection, p99 <= 250 ms and accepted >= 97 % of offered. *Highest \
         passing* is the last step that passed (deliveries/s, p99 and both CPUs are \
         that step's); *stopped by* is why the next step failed, and *limit* reads the \
         CPUs of that failing step: a generator at or above 0.85 core (2-core machine) \
         means the load generator, not the server, was the limit, and the figure is a \
         floor for the server; a server there means the server; neither, with the \
         machine's CPU pressure (share of the step some runnable task waited for a CPU) \
         near 100 %, means the shared CPUs were.\n\n",
    );
    md += "| system | nodes | receivers | highest passing msgs/s | deliveries/s | p99 (ms) | server CPU | generator CPU | stopped by | limit |\n";
    md += "|---|---:|---:|---:|---:|---:|---:|---:|---|---|\n";
    for r in runs {
        let best = r.steps.iter().rposition(|s| s.failed.is_none());
        let stopped = r
            .steps
            .iter()
            .find_map(|s| {
                s.failed
                    .as_ref()
                    .map(|w| format!("{:.0}/s: {w}", s.offered))
            })
            .unwrap_or_else(|| "–".into());
        let cells = match best.map(|i| &r.steps[i]) {
            Some(s) => format!(
                "{:.0} | {:.0} | {} | {:.2} | {:.2}",
                s.offered,
                s.deliveries_per_s,
                ms(s.p99_us),
                s.server_cores,
                s.loadgen_cores
            ),
            None => "none | – | – | – | –".into(),
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {cells} | {stopped} | {} |",
            system(r),
            r.urls.len(),
            r.receivers,
            ramp_limit(&r.steps)
        );
    }
    md += "\nSteps (offered msgs/s):\n\n";
    for r in runs {
        let _ = writeln!(md, "- {}: {}", system(r), step_list(&r.steps));
    }
    md
}
