//! Report: result JSON files to a markdown table and PNG charts.

use crate::cli::ReportArgs;

/// Writes the markdown and charts.
pub fn write(_args: &ReportArgs) -> Result<(), String> {
    Err("not yet".into())
}
