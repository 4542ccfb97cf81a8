//! What both binaries share: loading a pipeline file (exit code 2 on problems), shortening text for one-line listings.

use sda_host::graph::{Plan, PlanError};
use std::path::Path;
use std::process::ExitCode;

/// Exit code for a pipeline file with problems (nothing was run).
pub const EXIT_INVALID: u8 = 2;

/// Loads a plan, printing its problems (and returning the exit code) if it has any.
pub fn load_plan(file: &Path) -> Result<Result<Plan, ExitCode>, anyhow::Error> {
    match Plan::load(file) {
        Ok(plan) => {
            for warning in &plan.warnings {
                eprintln!("warning: {warning}");
            }
            Ok(Ok(plan))
        }
        Err(PlanError::Invalid(problems)) => {
            eprintln!("{problems}");
            Ok(Err(ExitCode::from(EXIT_INVALID)))
        }
        Err(e @ PlanError::Read { .. }) => {
            eprintln!("error: {e}");
            Ok(Err(ExitCode::from(EXIT_INVALID)))
        }
    }
}

/// `text` on one line, cut to `max` characters with an ellipsis.
pub fn shorten(text: &str, max: usize) -> String {
    let one_line = text.replace(['\n', '\r', '\t'], " ");
    if one_line.chars().count() <= max {
        return one_line;
    }
    let cut: String = one_line.chars().take(max.saturating_sub(1)).collect();
    format!("{cut}…")
}
