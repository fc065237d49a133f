//! wsgate-loadtest: the load generator and benchmark tooling for wsgate.
//!
//! - [`wire`]: one connection in each dialect (wsgate, raw fan-out, Socket.IO).
//! - [`scenario`]: idle, connect, broadcast, rooms, direct, large-room.
//! - [`ramp`]: broadcast at rising offered rates until a step fails.
//! - [`coord`]: the driver, and how workers run (in-process, or re-executed
//!   child processes).
//! - [`link`]: a worker's link to the driver (its share, barriers, messages);
//!   the leaf both `coord` and `scenario` use.
//! - [`stats`]: counters, HDR histograms, the result JSON.
//! - [`procstat`]: server RSS and CPU from `/proc`.
//! - [`ideal`]: the ideal fan-out server, the ceiling for comparisons.
//! - [`report`]: result files to `docs/benchmarks.md` and PNG charts.

pub mod cli;
pub mod coord;
pub mod ideal;
pub mod link;
pub mod procstat;
pub mod ramp;
pub mod report;
pub mod scenario;
pub mod stats;
pub mod wire;

use std::path::Path;

pub use scenario::Scenario;
pub use stats::RunResult;

/// Runs a scenario as the driver, writes `--out`, returns the result.
pub async fn run_scenario(scenario: Scenario) -> Result<RunResult, String> {
    let out = scenario.common().out.clone();
    let result = coord::drive(scenario).await?;
    if let Some(path) = out {
        write_json(&path, &result)?;
    }
    Ok(result)
}

/// Runs a ramp (in this process), writes `--out`, returns the result.
pub async fn run_ramp(args: &cli::RampArgs) -> Result<RunResult, String> {
    let result = ramp::run(args).await?;
    if let Some(path) = &args.common.out {
        write_json(path, &result)?;
    }
    Ok(result)
}

fn write_json(path: &Path, result: &RunResult) -> Result<(), String> {
    let json = serde_json::to_string_pretty(result).map_err(|e| e.to_string())?;
    std::fs::write(path, json + "\n").map_err(|e| format!("{}: {e}", path.display()))
}
