//! `ramp`: sustained broadcast throughput found by stepping the offered rate
//! up, instead of sending flat out (which measures the load generator as
//! much as the server).
//!
//! Step k offers `rate × factor^k` messages/s over all senders for
//! `--duration`, as one whole `broadcast` run (connect, send, drain, close;
//! a fresh set of connections each step, so a step that overloads the server
//! cannot leave a backlog to the next). A step passes ([`verdict`]) when
//! nothing was lost or dropped, end-to-end p99 is at most `--p99-ms`, and the
//! server accepted at least `--min-accepted` of the offered rate. The ramp
//! stops at the first failing step or after `--max-steps`.
//!
//! The result is the highest passing step's (the first step's when none
//! passed), with every step in `steps`: offered and accepted rate, loss, p99,
//! and the server's CPU beside the generator's own, so a reader can tell who
//! was the limit (a generator near one core of a small machine is the limit).
//! A ramp runs in this process only (one worker).

use crate::cli::{BroadcastArgs, RampArgs};
use crate::coord;
use crate::scenario::Scenario;
use crate::stats::{RampStep, RunResult};

/// What a step must hold to pass.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub p99_us: u64,
    /// Minimum accepted / offered.
    pub min_accepted: f64,
}

/// None when `r` (a run offered `offered` msgs/s) passes; otherwise why not.
pub fn verdict(r: &RunResult, offered: f64, limits: Limits) -> Option<String> {
    if r.lost > 0 {
        return Some(format!("lost {}", r.lost));
    }
    if r.dropped > 0 {
        return Some(format!("{} connections closed", r.dropped));
    }
    if r.accepted == 0 {
        return Some("nothing accepted".into());
    }
    if r.latency_us.p99 > limits.p99_us {
        return Some(format!("p99 {:.0} ms", r.latency_us.p99 as f64 / 1000.0));
    }
    if offered > 0.0 && r.accepted_per_s < offered * limits.min_accepted {
        return Some(format!("accepted {:.0}/s", r.accepted_per_s));
    }
    None
}

/// The offered rate of step `k` (0-based).
pub fn step_rate(start: f64, factor: f64, k: u32) -> f64 {
    start * factor.max(1.0).powi(k as i32)
}

/// One step's summary row.
pub fn step_of(r: &RunResult, offered: f64, failed: Option<String>) -> RampStep {
    let secs = r.duration_s.max(1e-3);
    RampStep {
        offered,
        accepted_per_s: r.accepted_per_s,
        deliveries_per_s: r.deliveries_per_s,
        lost: r.lost,
        loss_ratio: r.loss_ratio,
        dropped: r.dropped,
        p50_us: r.latency_us.p50,
        p99_us: r.latency_us.p99,
        server_cores: r.server.as_ref().map_or(0.0, |s| s.cpu_cores),
        loadgen_cores: r.loadgen_cpu_s / secs,
        cpu_pressure: r.cpu_pressure,
        failed,
    }
}

/// The highest passing step's index, if any passed.
pub fn best(steps: &[RampStep]) -> Option<usize> {
    steps.iter().rposition(|s| s.failed.is_none())
}

/// Runs the ramp and returns its result (see the module docs).
pub async fn run(args: &RampArgs) -> Result<RunResult, String> {
    if args.traffic.rate <= 0.0 {
        return Err("ramp needs --rate > 0 (the first step's offered rate)".into());
    }
    let limits = Limits {
        p99_us: (args.p99_ms * 1000.0) as u64,
        min_accepted: args.min_accepted,
    };
    let mut common = args.common.clone();
    common.workers = 1;
    common.out = None;
    let mut steps = Vec::new();
    let mut results: Vec<RunResult> = Vec::new();
    for k in 0..args.max_steps.max(1) {
        let offered = step_rate(args.traffic.rate, args.factor, k);
        let mut traffic = args.traffic.clone();
        traffic.rate = offered;
        let step = Scenario::Broadcast(BroadcastArgs {
            common: common.clone(),
            traffic,
            connections: args.connections,
            senders: args.senders,
        });
        let r = coord::drive(step).await?;
        let failed = verdict(&r, offered, limits);
        let s = step_of(&r, offered, failed);
        if !args.common.quiet {
            eprintln!(
                "ramp step {k}: offered {offered:.0}/s accepted {:.0}/s p99 {:.1} ms lost {} server {:.2} cores generator {:.2} cores: {}",
                s.accepted_per_s,
                s.p99_us as f64 / 1000.0,
                s.lost,
                s.server_cores,
                s.loadgen_cores,
                s.failed.as_deref().unwrap_or("pass")
            );
        }
        let stop = s.failed.is_some();
        steps.push(s);
        results.push(r);
        if stop {
            break;
        }
    }
    let pick = best(&steps).unwrap_or(0);
    let mut result = results.swap_remove(pick);
    result.scenario = "ramp".into();
    result.params = serde_json::to_value(args).unwrap_or_default();
    result.steps = steps;
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Percentiles;

    fn run_with(lost: u64, p99_us: u64, accepted_per_s: f64) -> RunResult {
        RunResult {
            accepted: 100,
            lost,
            accepted_per_s,
            latency_us: Percentiles {
                p99: p99_us,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    const LIMITS: Limits = Limits {
        p99_us: 250_000,
        min_accepted: 0.97,
    };

    #[test]
    fn a_step_fails_on_loss_latency_or_a_short_accepted_rate() {
        assert_eq!(verdict(&run_with(0, 250_000, 100.0), 100.0, LIMITS), None);
        assert_eq!(verdict(&run_with(0, 1_000, 97.0), 100.0, LIMITS), None);
        assert_eq!(
            verdict(&run_with(3, 1_000, 100.0), 100.0, LIMITS).as_deref(),
            Some("lost 3")
        );
        assert_eq!(
            verdict(&run_with(0, 250_001, 100.0), 100.0, LIMITS).as_deref(),
            Some("p99 250 ms")
        );
        assert_eq!(
            verdict(&run_with(0, 1_000, 96.0), 100.0, LIMITS).as_deref(),
            Some("accepted 96/s")
        );
        let mut dropped = run_with(0, 1_000, 100.0);
        dropped.dropped = 2;
        assert!(verdict(&dropped, 100.0, LIMITS).is_some());
        let nothing = RunResult::default();
        assert!(verdict(&nothing, 100.0, LIMITS).is_some());
    }

    #[test]
    fn rates_grow_geometrically_and_never_shrink() {
        assert_eq!(step_rate(100.0, 1.5, 0), 100.0);
        assert_eq!(step_rate(100.0, 1.5, 2), 225.0);
        assert_eq!(step_rate(100.0, 0.5, 3), 100.0);
    }

    #[test]
    fn best_is_the_last_passing_step() {
        let pass = RampStep::default();
        let fail = RampStep {
            failed: Some("lost 1".into()),
            ..Default::default()
        };
        assert_eq!(best(&[pass.clone(), pass.clone(), fail.clone()]), Some(1));
        assert_eq!(best(&[fail]), None);
        assert_eq!(best(&[pass]), Some(0));
    }

    #[test]
    fn a_step_carries_both_cpus() {
        let mut r = run_with(0, 5_000, 50.0);
        r.duration_s = 2.0;
        r.loadgen_cpu_s = 1.8;
        r.server = Some(crate::stats::ServerUsage {
            cpu_cores: 0.4,
            ..Default::default()
        });
        let s = step_of(&r, 50.0, None);
        assert!((s.loadgen_cores - 0.9).abs() < 1e-9);
        assert_eq!(s.server_cores, 0.4);
        assert_eq!(s.p99_us, 5_000);
    }
}
