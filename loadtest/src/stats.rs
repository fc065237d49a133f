//! What a run counts and how the counts are merged and reported.
//!
//! Latencies go into HDR histograms (µs, 1 µs – 10 min, 3 significant
//! digits). While a run is live, connection tasks record into a few
//! mutex-guarded shards ([`Recorder`]) and bump atomic counters ([`Live`]);
//! each worker ends with a [`WorkerResult`] (histograms flattened to
//! `(value, count)` pairs so they cross process boundaries as JSON), and the
//! driver merges those into one [`RunResult`], the JSON written by `--out`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

const SHARDS: usize = 8;
const MAX_US: u64 = 600_000_000;

/// A new empty latency histogram.
#[expect(
    clippy::expect_used,
    reason = "constant bounds that hdrhistogram accepts (low >= 1, high >= 2 x low, 3 significant digits): it cannot fail"
)]
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_US, 3).expect("valid histogram bounds")
}

/// A latency histogram shared by many connection tasks.
pub struct Recorder {
    shards: Vec<Mutex<Histogram<u64>>>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            shards: (0..SHARDS).map(|_| Mutex::new(histogram())).collect(),
        }
    }
}

impl Recorder {
    /// Records one value (µs) into the shard picked by `key`.
    pub fn record(&self, key: usize, value_us: u64) {
        if let Ok(mut h) = self.shards[key % SHARDS].lock() {
            h.saturating_record(value_us.max(1));
        }
    }

    /// All shards merged.
    pub fn snapshot(&self) -> Histogram<u64> {
        let mut all = histogram();
        for shard in &self.shards {
            if let Ok(h) = shard.lock() {
                let _ = all.add(&*h);
            }
        }
        all
    }
}

/// Counters a worker updates while it runs; read for the progress line.
#[derive(Default)]
pub struct Live {
    pub open: AtomicU64,
    pub sent: AtomicU64,
    pub delivered: AtomicU64,
    /// Answers to senders (replies, errors, own echoes): drain detection.
    pub replies: AtomicU64,
    /// End-to-end latency of measured messages.
    pub latency: Recorder,
    /// Send → answer (wsgate `reply`, or the sender's own copy for peers).
    pub accept: Recorder,
}

impl Live {
    pub fn progress(&self) -> Progress {
        Progress {
            open: self.open.load(Ordering::Relaxed),
            sent: self.sent.load(Ordering::Relaxed),
            delivered: self.delivered.load(Ordering::Relaxed),
            p99_us: self.latency.snapshot().value_at_quantile(0.99),
        }
    }
}

/// One worker's live numbers, cumulative.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct Progress {
    pub open: u64,
    pub sent: u64,
    pub delivered: u64,
    pub p99_us: u64,
}

/// A histogram flattened to `(value, count)` pairs.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct HistData(pub Vec<(u64, u64)>);

impl HistData {
    pub fn from_hist(h: &Histogram<u64>) -> Self {
        HistData(
            h.iter_recorded()
                .map(|v| (v.value_iterated_to(), v.count_at_value()))
                .collect(),
        )
    }

    pub fn add_to(&self, h: &mut Histogram<u64>) {
        for &(v, n) in &self.0 {
            let _ = h.record_n(v.clamp(1, MAX_US), n);
        }
    }
}

/// What one worker (process or in-process task) measured.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct WorkerResult {
    /// Connections opened (setup, or the storm).
    pub connections: u64,
    /// Connections that could not be opened, by cause.
    pub connect_failures: BTreeMap<String, u64>,
    /// Connections closed by the server during the measurement.
    pub dropped: u64,
    /// Connections that ended during the measurement, by close code
    /// (`close_1013`) or error kind; parked connections lost before it count
    /// in `dropped` only.
    #[serde(default)]
    pub closes: BTreeMap<String, u64>,
    /// Seconds from the first join sent to the last `join` ok (large-room).
    #[serde(default)]
    pub join_secs: f64,
    pub senders: u64,
    pub receivers: u64,
    /// Frames written by senders.
    pub sent: u64,
    /// Messages the server accepted (`reply ok`; for peers without replies,
    /// every frame written).
    pub accepted: u64,
    /// wsgate `error` replies to sends, by code.
    pub rejected: BTreeMap<String, u64>,
    /// Measured messages received by receivers.
    pub delivered: u64,
    /// Deliveries that should have happened (None: computed by the driver).
    pub expected: Option<u64>,
    /// Messages lost, when the worker can tell by id (direct).
    pub lost: Option<u64>,
    pub duplicates: u64,
    /// Direct messages delivered whose sender never got `reply ok`.
    pub unconfirmed: u64,
    /// Seconds senders were sending.
    pub send_secs: f64,
    /// Seconds the connection storm took (connect scenario).
    pub storm_secs: f64,
    /// End-to-end latency, µs.
    pub latency: HistData,
    /// Send → answer latency of senders, µs.
    #[serde(default)]
    pub accept_latency: HistData,
    /// Handshake latency (TCP + upgrade + welcome), µs.
    pub handshake: HistData,
}

/// Percentiles of one histogram, µs.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Percentiles {
    pub count: u64,
    pub min: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: h.len(),
            min: h.min(),
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: h.mean(),
        }
    }
}

/// The server's resource use, from `/proc` of `--server-pid`s.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ServerUsage {
    pub pids: Vec<u32>,
    /// Summed VmRSS before any connection was opened.
    pub rss_before_kib: u64,
    /// Summed VmRSS at the end of the measurement, connections still open.
    pub rss_after_kib: u64,
    /// (after - before) / connections.
    pub rss_per_conn_kib: f64,
    /// utime + stime spent during the measurement.
    pub cpu_s: f64,
    /// cpu_s per second of measurement (1.0 = one core busy).
    pub cpu_cores: f64,
}

/// The whole run, as written to `--out`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RunResult {
    pub scenario: String,
    pub target: String,
    pub codec: String,
    /// Free-form system name for reports (`--label`).
    pub label: String,
    pub urls: Vec<String>,
    pub workers: usize,
    /// The scenario's parameters as given.
    pub params: serde_json::Value,
    pub connections: u64,
    pub connect_failures: BTreeMap<String, u64>,
    pub dropped: u64,
    /// Connections that ended during the measurement, by close code or kind.
    #[serde(default)]
    pub closes: BTreeMap<String, u64>,
    /// Seconds from the first join to the last join ok, slowest worker
    /// (large-room; 0 when nothing joined).
    #[serde(default)]
    pub join_secs: f64,
    pub senders: u64,
    pub receivers: u64,
    pub sent: u64,
    pub accepted: u64,
    pub rejected: BTreeMap<String, u64>,
    pub delivered: u64,
    pub expected: u64,
    pub lost: u64,
    pub loss_ratio: f64,
    pub duplicates: u64,
    pub unconfirmed: u64,
    /// Length of the measurement window, seconds.
    pub duration_s: f64,
    pub accepted_per_s: f64,
    pub deliveries_per_s: f64,
    /// Connections opened per second of storm (connect scenario).
    pub connects_per_s: f64,
    pub latency_us: Percentiles,
    /// Send → answer (`reply ok`; for peers, the sender's own copy back).
    #[serde(default)]
    pub accept_latency_us: Percentiles,
    pub handshake_us: Percentiles,
    pub server: Option<ServerUsage>,
    /// CPU seconds of the load generator itself (driver and workers) in the
    /// measured window: it shares the machine with the servers.
    #[serde(default)]
    pub loadgen_cpu_s: f64,
    /// Share of the measured window in which some runnable task on the
    /// machine waited for a CPU (`/proc/pressure/cpu`, 0–1; None without
    /// PSI): near 1, every process was short of CPU, whoever's it was.
    #[serde(default)]
    pub cpu_pressure: Option<f64>,
    /// The steps of a ramp, in order (empty for other scenarios); the rest
    /// of this result is then the highest passing step (or the first step
    /// when none passed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<RampStep>,
}

/// One step of a ramp: what was offered, what came of it, and whether it
/// passed (see `crate::ramp`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RampStep {
    /// Offered messages/s over all senders.
    pub offered: f64,
    pub accepted_per_s: f64,
    pub deliveries_per_s: f64,
    pub lost: u64,
    pub loss_ratio: f64,
    pub dropped: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    /// Server CPU, cores (summed over nodes).
    pub server_cores: f64,
    /// The load generator's own CPU, cores (driver and workers).
    pub loadgen_cores: f64,
    /// The machine's CPU pressure in the step (see `RunResult`).
    #[serde(default)]
    pub cpu_pressure: Option<f64>,
    /// None when the step passed; otherwise why it failed.
    pub failed: Option<String>,
}

impl RunResult {
    /// Merges worker results. `broadcast` computes `expected` as accepted
    /// messages times receivers over all workers.
    pub fn merge(&mut self, parts: &[WorkerResult], broadcast: bool) {
        let mut latency = histogram();
        let mut handshake = histogram();
        let mut accept = histogram();
        let mut expected = 0;
        let mut lost_by_id = Some(0u64);
        let mut send_secs: f64 = 0.0;
        let mut storm_secs: f64 = 0.0;
        for p in parts {
            self.connections += p.connections;
            for (k, v) in &p.connect_failures {
                *self.connect_failures.entry(k.clone()).or_default() += v;
            }
            for (k, v) in &p.rejected {
                *self.rejected.entry(k.clone()).or_default() += v;
            }
            self.dropped += p.dropped;
            for (k, v) in &p.closes {
                *self.closes.entry(k.clone()).or_default() += v;
            }
            self.join_secs = self.join_secs.max(p.join_secs);
            self.senders += p.senders;
            self.receivers += p.receivers;
            self.sent += p.sent;
            self.accepted += p.accepted;
            self.delivered += p.delivered;
            self.duplicates += p.duplicates;
            self.unconfirmed += p.unconfirmed;
            expected += p.expected.unwrap_or_default();
            lost_by_id = lost_by_id.zip(p.lost).map(|(a, b)| a + b);
            send_secs = send_secs.max(p.send_secs);
            storm_secs = storm_secs.max(p.storm_secs);
            p.latency.add_to(&mut latency);
            p.handshake.add_to(&mut handshake);
            p.accept_latency.add_to(&mut accept);
        }
        self.expected = if broadcast {
            self.accepted * self.receivers
        } else {
            expected
        };
        self.lost = lost_by_id.unwrap_or_else(|| self.expected.saturating_sub(self.delivered));
        self.loss_ratio = if self.expected > 0 {
            self.lost as f64 / self.expected as f64
        } else {
            0.0
        };
        if send_secs > 0.0 {
            self.accepted_per_s = self.accepted as f64 / send_secs;
            self.deliveries_per_s = self.delivered as f64 / send_secs;
        }
        if storm_secs > 0.0 {
            self.connects_per_s = self.connections as f64 / storm_secs;
        }
        self.latency_us = Percentiles::of(&latency);
        self.handshake_us = Percentiles::of(&handshake);
        self.accept_latency_us = Percentiles::of(&accept);
    }

    /// The one-line summary printed on stdout.
    pub fn summary(&self) -> String {
        let ms = |us: u64| us as f64 / 1000.0;
        let mut s = format!(
            "{} target={} label={} conns={} failed={} ",
            self.scenario,
            self.target,
            self.label,
            self.connections,
            self.connect_failures.values().sum::<u64>()
        );
        if self.connects_per_s > 0.0 {
            s += &format!("conn/s={:.0} ", self.connects_per_s);
        }
        if self.handshake_us.count > 0 {
            s += &format!(
                "handshake_ms p50={:.2} p99={:.2} max={:.2} ",
                ms(self.handshake_us.p50),
                ms(self.handshake_us.p99),
                ms(self.handshake_us.max)
            );
        }
        if self.sent > 0 {
            s += &format!(
                "sent={} accepted={} delivered={} expected={} lost={} dup={} deliv/s={:.0} \
                 latency_ms p50={:.2} p99={:.2} p99.9={:.2} max={:.2} ",
                self.sent,
                self.accepted,
                self.delivered,
                self.expected,
                self.lost,
                self.duplicates,
                self.deliveries_per_s,
                ms(self.latency_us.p50),
                ms(self.latency_us.p99),
                ms(self.latency_us.p999),
                ms(self.latency_us.max)
            );
            s += &format!(
                "accept_ms p50={:.2} p99={:.2} ",
                ms(self.accept_latency_us.p50),
                ms(self.accept_latency_us.p99)
            );
        }
        if self.join_secs > 0.0 {
            s += &format!("join_s={:.2} ", self.join_secs);
        }
        if self.dropped > 0 {
            s += &format!("dropped={} closes={:?} ", self.dropped, self.closes);
        }
        if !self.steps.is_empty() {
            let best = self.steps.iter().rposition(|x| x.failed.is_none());
            s += &format!(
                "ramp steps={} best_offered={} ",
                self.steps.len(),
                best.map_or("none".into(), |i| format!("{:.0}", self.steps[i].offered))
            );
        }
        if let Some(u) = &self.server {
            s += &format!(
                "server rss_kib {}->{} ({:.2} KiB/conn) cpu={:.2} cores",
                u.rss_before_kib, u.rss_after_kib, u.rss_per_conn_kib, u.cpu_cores
            );
        }
        s.trim_end().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_sums_and_computes_broadcast_loss() {
        let mut h = histogram();
        h.record(100).unwrap();
        let w = WorkerResult {
            connections: 10,
            receivers: 10,
            accepted: 5,
            sent: 5,
            delivered: 45,
            send_secs: 1.0,
            latency: HistData::from_hist(&h),
            ..Default::default()
        };
        let mut r = RunResult::default();
        r.merge(&[w.clone(), w], true);
        assert_eq!(r.expected, 10 * 20);
        assert_eq!(r.lost, 200 - 90);
        assert_eq!(r.latency_us.count, 2);
        assert_eq!(r.deliveries_per_s, 90.0);
    }
}
