//! Command line: one subcommand per scenario, plus the ideal server and the
//! report generator. Every scenario shares [`Common`] (target, URLs, workers,
//! server PIDs, output file).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use crate::wire::{Codec, Target};

/// Load generator for wsgate and its baseline peers.
#[derive(Parser, Debug, Clone)]
#[command(name = "wsgate-loadtest", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    /// Open N connections and hold them; report server RSS per connection and CPU.
    Idle(IdleArgs),
    /// Connection storm: handshake latency percentiles and failures.
    Connect(ConnectArgs),
    /// C receivers, S senders broadcasting: deliveries/s, end-to-end latency, loss.
    Broadcast(BroadcastArgs),
    /// Rooms of K members (wsgate join + publish), publishers in each room.
    Rooms(RoomsArgs),
    /// Pairs exchanging acked direct messages (wsgate send/ack), across nodes.
    Direct(DirectArgs),
    /// N members join ONE room (timed), then senders publish to it; peers
    /// (no rooms): a plain broadcast to N.
    LargeRoom(LargeRoomArgs),
    /// Broadcast at a rising offered rate, step by step, until a step fails
    /// (loss, p99 over the limit, accepted < offered); reports every step.
    Ramp(RampArgs),
    /// The ideal fan-out server: every text frame to every client, nothing else.
    IdealServer(IdealArgs),
    /// Turn result JSON files into docs/benchmarks.md tables and PNG charts.
    Report(ReportArgs),
}

/// Parses `500ms`, `10s`, `2m` or a plain number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("bad duration {s:?} (use 500ms, 10s, 2m)"))?;
    let secs = match unit {
        "ms" => v / 1000.0,
        "s" => v,
        "m" => v * 60.0,
        _ => return Err(format!("bad duration unit in {s:?} (use ms, s, m)")),
    };
    if !(0.0..=86_400.0).contains(&secs) {
        return Err(format!("duration {s:?} out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn ser_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// Options every scenario takes.
#[derive(Args, Debug, Clone, Serialize)]
pub struct Common {
    /// Server dialect.
    #[arg(long, value_enum, default_value = "wsgate")]
    pub target: Target,
    /// wsgate frame encoding (subprotocol).
    #[arg(long, value_enum, default_value = "json")]
    pub codec: Codec,
    /// WebSocket URL; repeat for the nodes of a cluster (clients spread round-robin).
    #[arg(long = "url", default_value = "ws://127.0.0.1:8080/ws")]
    pub urls: Vec<String>,
    /// Worker processes (0 = as many as the open-file limit needs).
    #[arg(long, default_value_t = 0)]
    pub workers: usize,
    /// Source addresses 127.0.0.1.. to spread connections over (0 = one per 5,000 connections).
    #[arg(long, default_value_t = 0)]
    pub source_ips: usize,
    /// Handshakes in flight at once, per worker.
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
    /// Give up on one connection (TCP + upgrade + welcome) after this long.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    #[serde(serialize_with = "ser_duration")]
    pub connect_timeout: Duration,
    /// Length of the measurement (hold time for idle, send time for traffic).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    #[serde(serialize_with = "ser_duration")]
    pub duration: Duration,
    /// Server process to sample (RSS, CPU); repeat for a cluster.
    #[arg(long = "server-pid")]
    pub server_pids: Vec<u32>,
    /// Shell command run by the driver at the two barriers, with `start`
    /// (every connection set up, before traffic) or `end` (traffic and drain
    /// done, connections still open) appended: e.g. a script that reads Redis
    /// `INFO`, so its counters cover exactly the measured window.
    #[arg(long)]
    pub barrier_hook: Option<String>,
    /// Write the JSON result here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// System name recorded in the result (for reports).
    #[arg(long, default_value = "")]
    pub label: String,
    /// No progress line on stderr.
    #[arg(long)]
    pub quiet: bool,
}

/// `idle` parameters.
#[derive(Args, Debug, Clone, Serialize)]
pub struct IdleArgs {
    #[command(flatten)]
    pub common: Common,
    /// Connections to open and hold.
    #[arg(long, short = 'n', default_value_t = 1000)]
    pub connections: u64,
    /// Wait this long after the last connection before measuring.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    #[serde(serialize_with = "ser_duration")]
    pub settle: Duration,
}

/// `connect` parameters.
#[derive(Args, Debug, Clone, Serialize)]
pub struct ConnectArgs {
    #[command(flatten)]
    pub common: Common,
    /// Connections in the storm.
    #[arg(long, short = 'n', default_value_t = 1000)]
    pub connections: u64,
    /// New connections per second over all workers (0 = as fast as possible).
    #[arg(long, default_value_t = 0.0)]
    pub connect_rate: f64,
}

/// Sending parameters shared by the traffic scenarios.
#[derive(Args, Debug, Clone, Serialize)]
pub struct Traffic {
    /// Messages per second over all senders (0 = as fast as the server takes
    /// them). wsgate's --rate-limit (frames/s per connection) must allow each
    /// sender's share, acks included.
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// Messages one sender may have unanswered (reply, or own echo) at once.
    #[arg(long, default_value_t = 32)]
    pub window: u64,
    /// Payload size in bytes (at least the ~40-byte timestamp header).
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// After sending stops, wait at most this long for deliveries to stop.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    #[serde(serialize_with = "ser_duration")]
    pub drain: Duration,
}

/// `broadcast` parameters.
#[derive(Args, Debug, Clone, Serialize)]
pub struct BroadcastArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub traffic: Traffic,
    /// Receiving connections.
    #[arg(long, short = 'n', default_value_t = 1000)]
    pub connections: u64,
    /// Sending connections (in addition to the receivers).
    #[arg(long, default_value_t = 1)]
    pub senders: u64,
}

/// `rooms` parameters.
#[derive(Args, Debug, Clone, Serialize)]
pub struct RoomsArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub traffic: Traffic,
    /// Number of rooms.
    #[arg(long, default_value_t = 100)]
    pub rooms: u64,
    /// Members per room (publishers included).
    #[arg(long, default_value_t = 10)]
    pub members: u64,
    /// Publishing members per room.
    #[arg(long, default_value_t = 1)]
    pub publishers: u64,
}

/// `direct` parameters.
#[derive(Args, Debug, Clone, Serialize)]
pub struct DirectArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub traffic: Traffic,
    /// Pairs of users; each side sends to the other (placed on different nodes).
    #[arg(long, default_value_t = 100)]
    pub pairs: u64,
}

/// `large-room` parameters.
#[derive(Args, Debug, Clone, Serialize)]
pub struct LargeRoomArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub traffic: Traffic,
    /// Members of the room, senders included (peers: receivers + senders).
    #[arg(long, default_value_t = 10_000)]
    pub members: u64,
    /// Members that publish (the first ones; they do not count deliveries).
    #[arg(long, default_value_t = 1)]
    pub senders: u64,
}

/// `ramp` parameters: a broadcast (`--rate` is the first step's offered
/// rate, `--duration` each step's sending time) repeated at rising rates.
/// Runs in one process (at most ~the open-file limit of connections).
#[derive(Args, Debug, Clone, Serialize)]
pub struct RampArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub traffic: Traffic,
    /// Receiving connections.
    #[arg(long, short = 'n', default_value_t = 1000)]
    pub connections: u64,
    /// Sending connections (in addition to the receivers).
    #[arg(long, default_value_t = 2)]
    pub senders: u64,
    /// Each step offers this many times the previous one.
    #[arg(long, default_value_t = 1.5)]
    pub factor: f64,
    /// Stop after this many steps even if all passed.
    #[arg(long, default_value_t = 12)]
    pub max_steps: u32,
    /// A step fails when end-to-end p99 exceeds this (ms).
    #[arg(long, default_value_t = 250.0)]
    pub p99_ms: f64,
    /// A step fails when accepted msgs/s is below this share of offered.
    #[arg(long, default_value_t = 0.97)]
    pub min_accepted: f64,
}

/// `ideal-server` parameters.
#[derive(Args, Debug, Clone)]
pub struct IdealArgs {
    /// Address to listen on (port 0 = any; the bound address is printed).
    #[arg(long, default_value = "127.0.0.1:8090")]
    pub listen: String,
    /// Frames queued per client before it is dropped as a slow consumer.
    #[arg(long, default_value_t = 4096)]
    pub outbox: usize,
}

/// `report` parameters.
#[derive(Args, Debug, Clone)]
pub struct ReportArgs {
    /// Result JSON files (from `--out`).
    #[arg(required = true)]
    pub results: Vec<PathBuf>,
    /// Markdown file to write.
    #[arg(long, default_value = "docs/benchmarks.md")]
    pub markdown: PathBuf,
    /// Directory for PNG charts (linked from the markdown).
    #[arg(long, default_value = "docs/benchmarks")]
    pub charts: PathBuf,
    /// Markdown appended to the generated part (bench.sh: "This run").
    #[arg(long)]
    pub note: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_duration("1h").is_err());
    }
}
