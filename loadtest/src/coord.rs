//! Driver and workers: how one run is split, synchronised and merged.
//!
//! A run has one driver and N workers. Each worker owns a contiguous share of
//! the connections (by global index) and goes through the same steps:
//! set up (connect, join) → barrier → measure → barrier → tear down → result.
//! The driver samples the server (`/proc`) before anything connects, when every
//! worker has reached the first barrier, and when every worker has reached the
//! second (connections still open), then releases the workers and merges their
//! results. Between barriers it prints a progress line from the workers'
//! periodic counters.
//!
//! With one worker everything runs in this process (a task and bounded
//! channels). With more (`--workers`, or automatically when the open-file hard
//! limit is too small), the driver re-executes its own binary with the same
//! arguments and `WSGATE_LOADTEST_WORKER=index/count/run` in the environment;
//! a child speaks JSON lines on stdout ([`ToDriver`]) and waits for `go` lines
//! on stdin at each barrier.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{ChildStdin, Command};
use tokio::sync::mpsc;

use crate::link::{emit, Ctl, Link, ToDriver, WORKER_ENV};
use crate::procstat;
use crate::scenario::{self, Scenario};
use crate::stats::{Live, Progress, RunResult, ServerUsage, WorkerResult};

pub use crate::link::Share;

/// Runs one worker: the scenario plus a progress reporter.
async fn work(scenario: Scenario, share: Share, mut ctl: Ctl) -> ToDriver {
    let live = Arc::new(Live::default());
    let reporter = {
        let live = live.clone();
        let tx = match &ctl.link {
            Link::Local { tx, .. } => Some(tx.clone()),
            Link::Child { .. } => None,
        };
        let index = ctl.index;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            loop {
                tick.tick().await;
                let p = live.progress();
                match &tx {
                    Some(tx) => {
                        let _ = tx.try_send((index, ToDriver::Progress { p }));
                    }
                    None => emit(&ToDriver::Progress { p }),
                }
            }
        })
    };
    let result = scenario::run(&scenario, &share, &mut ctl, live).await;
    reporter.abort();
    match result {
        Ok(r) => ToDriver::Result { r: Box::new(r) },
        Err(error) => ToDriver::Failed { error },
    }
}

/// Entry point of a child worker process.
pub async fn child_main(scenario: Scenario, share: Share) -> i32 {
    let ctl = Ctl::child(share.index);
    let msg = work(scenario, share, ctl).await;
    emit(&msg);
    i32::from(matches!(msg, ToDriver::Failed { .. }))
}

enum Go {
    Local(mpsc::Sender<()>),
    Child(ChildStdin),
}

impl Go {
    async fn go(&mut self) {
        match self {
            Go::Local(tx) => {
                let _ = tx.send(()).await;
            }
            Go::Child(stdin) => {
                let _ = stdin.write_all(b"go\n").await;
                let _ = stdin.flush().await;
            }
        }
    }
}

fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!(
        "{:x}",
        (nanos ^ std::process::id().rotate_left(16)) & 0xff_ffff
    )
}

/// How many worker processes the open-file hard limit calls for.
fn auto_workers(connections: u64) -> usize {
    let hard = rlimit::getrlimit(rlimit::Resource::NOFILE)
        .map(|(_, hard)| hard)
        .unwrap_or(1024);
    let per_worker = hard.saturating_sub(256).max(256);
    connections.div_ceil(per_worker).max(1) as usize
}

/// The progress line printer.
struct Ticker {
    started: Instant,
    last: Option<(Instant, Progress)>,
    tty: bool,
    quiet: bool,
    printed: bool,
}

impl Ticker {
    fn print(&mut self, phase: &str, parts: &[Progress]) {
        let now = Instant::now();
        let total = parts.iter().fold(Progress::default(), |a, p| Progress {
            open: a.open + p.open,
            sent: a.sent + p.sent,
            delivered: a.delivered + p.delivered,
            p99_us: a.p99_us.max(p.p99_us),
        });
        let (sent_s, deliv_s) = match self.last {
            Some((t, p)) => {
                let dt = now.duration_since(t).as_secs_f64().max(1e-3);
                (
                    total.sent.saturating_sub(p.sent) as f64 / dt,
                    total.delivered.saturating_sub(p.delivered) as f64 / dt,
                )
            }
            None => (0.0, 0.0),
        };
        self.last = Some((now, total));
        if self.quiet || now.duration_since(self.started) < Duration::from_secs(2) {
            return;
        }
        let line = format!(
            "[{phase} {:.0}s] open={} sent/s={:.0} deliv/s={:.0} p99<={:.2}ms",
            now.duration_since(self.started).as_secs_f64(),
            total.open,
            sent_s,
            deliv_s,
            total.p99_us as f64 / 1000.0
        );
        let mut err = std::io::stderr().lock();
        let _ = if self.tty {
            write!(err, "\r\x1b[2K{line}")
        } else {
            writeln!(err, "{line}")
        };
        self.printed = true;
    }

    fn done(&self) {
        if self.tty && self.printed {
            eprintln!();
        }
    }
}

/// Waits for every worker to hit a barrier (or, at the end, to report its
/// result), printing progress meanwhile.
async fn gather(
    rx: &mut mpsc::Receiver<(usize, ToDriver)>,
    workers: usize,
    phase: &str,
    ticker: &mut Ticker,
    progress: &mut [Progress],
    results: &mut Vec<WorkerResult>,
) -> Result<(), String> {
    let mut waiting = workers;
    let period = if ticker.tty { 1 } else { 5 };
    let mut tick = tokio::time::interval(Duration::from_secs(period));
    while waiting > 0 {
        tokio::select! {
            msg = rx.recv() => match msg {
                None => return Err("workers went away".into()),
                Some((i, ToDriver::Progress { p })) => progress[i] = p,
                Some((_, ToDriver::Barrier)) => waiting -= 1,
                Some((_, ToDriver::Result { r })) => {
                    results.push(*r);
                    waiting -= 1;
                }
                Some((i, ToDriver::Failed { error })) => {
                    return Err(format!("worker {i}: {error}"));
                }
            },
            _ = tick.tick() => ticker.print(phase, progress),
        }
    }
    Ok(())
}

async fn spawn_children(
    n: usize,
    run: &str,
    tx: &mpsc::Sender<(usize, ToDriver)>,
) -> Result<(Vec<Go>, Vec<tokio::process::Child>), String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut gos = Vec::new();
    let mut children = Vec::new();
    for i in 0..n {
        let mut child = Command::new(&exe)
            .args(std::env::args_os().skip(1))
            .env(WORKER_ENV, format!("{i}/{n}/{run}"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("spawn worker: {e}"))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err("worker pipes missing".into());
        };
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            let mut finished = false;
            while let Ok(Some(line)) = lines.next_line().await {
                match serde_json::from_str::<ToDriver>(&line) {
                    Ok(msg) => {
                        finished |=
                            matches!(msg, ToDriver::Result { .. } | ToDriver::Failed { .. });
                        if tx.send((i, msg)).await.is_err() {
                            return;
                        }
                    }
                    Err(_) => eprintln!("worker {i}: {line}"),
                }
            }
            if !finished {
                let error = "exited without a result".to_string();
                let _ = tx.send((i, ToDriver::Failed { error })).await;
            }
        });
        gos.push(Go::Child(stdin));
        children.push(child);
    }
    Ok((gos, children))
}

/// Runs `--barrier-hook` with `phase` appended (`sh -c "HOOK phase"`); the
/// workers wait at the barrier meanwhile. A failing hook fails the run.
async fn barrier_hook(hook: Option<&str>, phase: &str) -> Result<(), String> {
    let Some(hook) = hook else {
        return Ok(());
    };
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("{hook} {phase}"))
        .stdin(std::process::Stdio::null())
        .status()
        .await
        .map_err(|e| format!("barrier hook: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("barrier hook `{hook} {phase}` failed: {status}"))
    }
}

/// Runs a scenario from the driver's side and returns the merged result.
pub async fn drive(scenario: Scenario) -> Result<RunResult, String> {
    let common = scenario.common().clone();
    let workers = match common.workers {
        0 => auto_workers(scenario.connections()),
        n => n,
    };
    let run = run_id();
    let pids = common.server_pids.clone();
    let before = procstat::sample(&pids);
    let (tx, mut rx) = mpsc::channel(1024);
    let (mut gos, children) = if workers == 1 {
        let (go_tx, go_rx) = mpsc::channel(4);
        let share = Share {
            index: 0,
            count: 1,
            run_id: run.clone(),
        };
        let ctl = Ctl::local(tx.clone(), go_rx);
        let sc = scenario.clone();
        let result_tx = tx.clone();
        tokio::spawn(async move {
            let msg = work(sc, share, ctl).await;
            let _ = result_tx.send((0, msg)).await;
        });
        (vec![Go::Local(go_tx)], Vec::new())
    } else {
        spawn_children(workers, &run, &tx).await?
    };
    drop(tx);
    let mut own: Vec<u32> = children.iter().filter_map(|c| c.id()).collect();
    own.push(std::process::id());
    let hook = common.barrier_hook.as_deref();
    let mut ticker = Ticker {
        started: Instant::now(),
        last: None,
        tty: std::io::stderr().is_terminal(),
        quiet: common.quiet,
        printed: false,
    };
    let mut progress = vec![Progress::default(); workers];
    let mut results = Vec::new();
    let outcome = async {
        gather(
            &mut rx,
            workers,
            "setup",
            &mut ticker,
            &mut progress,
            &mut results,
        )
        .await?;
        barrier_hook(hook, "start").await?;
        let start = procstat::sample(&pids);
        let own_start = procstat::sample(&own);
        let psi_start = procstat::cpu_pressure_us();
        for g in &mut gos {
            g.go().await;
        }
        gather(
            &mut rx,
            workers,
            "run",
            &mut ticker,
            &mut progress,
            &mut results,
        )
        .await?;
        let end = procstat::sample(&pids);
        let own_end = procstat::sample(&own);
        let psi = procstat::cpu_pressure_us()
            .zip(psi_start)
            .map(|(e, s)| e.saturating_sub(s));
        barrier_hook(hook, "end").await?;
        for g in &mut gos {
            g.go().await;
        }
        gather(
            &mut rx,
            workers,
            "close",
            &mut ticker,
            &mut progress,
            &mut results,
        )
        .await?;
        Ok::<_, String>((start, end, own_end.cpu_s - own_start.cpu_s, psi))
    }
    .await;
    ticker.done();
    let (start, end, loadgen_cpu_s, psi_us) = outcome?;
    let duration_s = end.at.duration_since(start.at).as_secs_f64();
    let mut result = RunResult {
        scenario: scenario.name().into(),
        target: format!("{:?}", common.target).to_lowercase(),
        codec: format!("{:?}", common.codec).to_lowercase(),
        label: common.label.clone(),
        urls: common.urls.clone(),
        workers,
        params: scenario.params(),
        duration_s,
        loadgen_cpu_s,
        cpu_pressure: psi_us.map(|us| us as f64 / 1e6 / duration_s.max(1e-3)),
        ..Default::default()
    };
    result.merge(&results, scenario.is_broadcast());
    if !pids.is_empty() {
        let cpu_s = end.cpu_s - start.cpu_s;
        result.server = Some(ServerUsage {
            pids,
            rss_before_kib: before.rss_kib,
            rss_after_kib: end.rss_kib,
            rss_per_conn_kib: if result.connections > 0 {
                (end.rss_kib as f64 - before.rss_kib as f64) / result.connections as f64
            } else {
                0.0
            },
            cpu_s,
            cpu_cores: cpu_s / result.duration_s.max(1e-3),
        });
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::barrier_hook;

    #[tokio::test]
    async fn hook_gets_the_phase_and_its_failure_fails_the_run() {
        let file = std::env::temp_dir().join(format!("lt-hook-{}", std::process::id()));
        let hook = format!("echo >>'{}'", file.display());
        barrier_hook(Some(&hook), "start").await.unwrap();
        barrier_hook(Some(&hook), "end").await.unwrap();
        let seen = std::fs::read_to_string(&file).unwrap();
        let _ = std::fs::remove_file(&file);
        assert_eq!(seen, "start\nend\n");
        assert!(barrier_hook(None, "start").await.is_ok());
        let err = barrier_hook(Some("exit 3;"), "end").await.unwrap_err();
        assert!(err.contains("failed"), "{err}");
    }
}
