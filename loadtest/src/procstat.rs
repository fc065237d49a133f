//! Server resource sampling from `/proc`: resident memory (`VmRSS` in
//! `/proc/<pid>/status`) and CPU time (`utime + stime` in `/proc/<pid>/stat`),
//! summed over every `--server-pid` (a cluster is several processes); and
//! the machine's CPU pressure (`/proc/pressure/cpu`, the time some runnable
//! task waited for a CPU), which tells a shared machine from a slow program.

use std::time::Instant;

/// One reading of all watched processes.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub at: Instant,
    pub rss_kib: u64,
    pub cpu_s: f64,
}

/// Clock ticks per second for `/proc/<pid>/stat` (USER_HZ, 100 on Linux).
const TICKS_PER_S: f64 = 100.0;

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces; fields after it are fixed.
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After ")" come state(3) ... utime(14) stime(15): indexes 11 and 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Microseconds some task has waited for a CPU since boot (PSI `some
/// total`), when the kernel has pressure stall information.
pub fn cpu_pressure_us() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/pressure/cpu").ok()?;
    let some = text.lines().find(|l| l.starts_with("some "))?;
    let total = some
        .split_whitespace()
        .find_map(|f| f.strip_prefix("total="))?;
    total.parse().ok()
}

/// Reads all `pids`; a process that is gone counts as zero.
pub fn sample(pids: &[u32]) -> Sample {
    let mut rss = 0;
    let mut ticks = 0;
    for &pid in pids {
        rss += rss_kib(pid).unwrap_or_default();
        ticks += cpu_ticks(pid).unwrap_or_default();
    }
    Sample {
        at: Instant::now(),
        rss_kib: rss,
        cpu_s: ticks as f64 / TICKS_PER_S,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_process() {
        let s = sample(&[std::process::id()]);
        assert!(s.rss_kib > 0);
        assert!(s.cpu_s >= 0.0);
    }
}
