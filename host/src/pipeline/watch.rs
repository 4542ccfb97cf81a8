//! `run --watch`: run a pipeline and apply edits of its pipeline file while it runs: swaps and re-inits in place, a rebuild of the graph for rewiring, a refusal (with the reasons) for what only a restart can change.
//!
//! The file is polled (its bytes compared every [`POLL_INTERVAL`]) rather than
//! watched through inotify: editors save by writing in place, by renaming a temp
//! file over it, or through a symlink, and a poll sees every one of them the same
//! way. An edit is applied whole or not at all: a file with problems, or one
//! that changes something only a restart can (a source, the checkpoint folder,
//! the pipeline's name), leaves the running pipeline untouched, and says why.

use crate::graph::Plan;
use crate::graph::diff::{self, Action, PlanDiff};
use crate::pipeline::{self, PipelineError, RunOptions, RunSummary};
use crate::runtime::Runtime;
use crate::stats::Stats;
use crate::swap::{Controller, SwapRequest};
use crate::task::Shutdown;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// How often the pipeline file is read for changes.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// Who the swaps of an edit are recorded as made by.
const WATCH_REQUESTER: &str = "pipeline.toml (run --watch)";

/// What became of one edit of the pipeline file.
#[derive(Debug)]
enum Edit {
    /// Nothing was applied (no change that matters, problems, refused, or a swap failed).
    Unchanged,
    /// Swaps and re-inits were applied to the running tasks: this plan now describes what runs.
    AppliedInPlace(Plan),
    /// The graph must be rebuilt from this plan.
    Rebuild(Plan, PlanDiff),
}

/// Runs `plan` (read from `file`) until its input ends or `shutdown`, applying edits of `file` as they are saved.
pub fn run_watching(
    file: &Path,
    plan: Plan,
    runtime: Arc<Runtime>,
    options: &RunOptions,
    shutdown: &Shutdown,
    stats: &Arc<Stats>,
) -> Result<RunSummary, PipelineError> {
    let mut plan = Arc::new(plan);
    let mut options = options.clone();
    let mut seen = std::fs::read(file).unwrap_or_default();
    tracing::info!(file = %file.display(), "watching the pipeline file: saved edits apply to the running pipeline");
    loop {
        let stop = Shutdown::new();
        let slot: Arc<OnceLock<Arc<Controller>>> = Arc::new(OnceLock::new());
        let handle = {
            let (plan, runtime, options, stop, stats, slot) =
                (plan.clone(), runtime.clone(), options.clone(), stop.clone(), stats.clone(), slot.clone());
            std::thread::Builder::new()
                .name("sda-run".into())
                .spawn(move || pipeline::run_with_controller(plan, runtime, &options, &stop, &stats, &slot))
                .expect("spawning the run thread")
        };
        let rebuild = loop {
            if handle.is_finished() {
                break None;
            }
            if shutdown.is_requested() {
                stop.request();
                break None;
            }
            std::thread::sleep(POLL_INTERVAL);
            let Ok(bytes) = std::fs::read(file) else { continue }; // mid-save, or moved away for a moment
            if bytes == seen {
                continue;
            }
            seen = bytes;
            match consider_edit(file, &seen, &plan, slot.get()) {
                Edit::Unchanged => {}
                Edit::AppliedInPlace(new) => plan = Arc::new(new),
                Edit::Rebuild(new, diff) => break Some((new, diff)),
            }
        };
        let Some((new, diff)) = rebuild else {
            return handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        };
        tracing::info!("rebuilding the graph: finishing the batch in hand and checkpointing");
        stop.request();
        handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
        if shutdown.is_requested() {
            return pipeline::run(Arc::new(new), runtime, &options, shutdown, stats);
        }
        options.accept_fingerprints.push(plan.fingerprint.clone());
        options.fresh_sinks = diff.resettled_sinks();
        for removed in diff.removed_operators() {
            tracing::info!(operator = %removed, "its state stays in the checkpoints until `run --drop-state {removed}`");
        }
        plan = Arc::new(new);
    }
}

/// Validates and diffs an edit against the running plan, and applies what can be applied in place.
fn consider_edit(file: &Path, bytes: &[u8], running: &Plan, controller: Option<&Arc<Controller>>) -> Edit {
    let Ok(text) = std::str::from_utf8(bytes) else {
        tracing::error!(file = %file.display(), "the saved pipeline file is not UTF-8; the running pipeline is unchanged");
        return Edit::Unchanged;
    };
    let base_dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let new = match Plan::from_text(file, text, &base_dir) {
        Ok(plan) => plan,
        Err(problems) => {
            tracing::error!("the saved pipeline file has problems; the running pipeline is unchanged:\n{problems}");
            return Edit::Unchanged;
        }
    };
    for warning in &new.warnings {
        tracing::warn!("{warning}");
    }
    let diff = diff::diff(running, &new);
    if diff.is_empty() {
        tracing::info!(file = %file.display(), "saved, with no change to apply");
        return Edit::Unchanged;
    }
    let refused: Vec<String> = diff.refused().map(ToString::to_string).collect();
    if !refused.is_empty() {
        tracing::error!("edit not applied, the running pipeline is unchanged; restart to apply it:\n  {}", refused.join("\n  "));
        return Edit::Unchanged;
    }
    for change in &diff.changes {
        tracing::info!("pipeline file changed: {change}");
    }
    let Some(controller) = controller.filter(|_| diff.action() != Some(Action::Rebuild)) else {
        // Rewiring, or the run is still starting (no tasks to swap yet): rebuild from the new plan.
        return Edit::Rebuild(new, diff);
    };
    let mut applied = true;
    let mut touched: Vec<&str> = diff.changes.iter().filter_map(|c| c.operator()).collect();
    touched.dedup();
    for name in touched {
        let (Some(was), Some(op)) = (running.operators.iter().find(|o| o.name == name), new.operators.iter().find(|o| o.name == name))
        else {
            continue;
        };
        let request = SwapRequest {
            operator: name.to_string(),
            plugin: (was.plugin.digest != op.plugin.digest).then(|| op.plugin.path.clone()),
            config_json: (was.config_json != op.config_json).then(|| op.config_json.clone()),
            limits: (was.limits != op.limits).then_some(op.limits),
            requested_by: WATCH_REQUESTER.to_string(),
            named_by_pipeline_file: true,
        };
        match controller.swap(&request) {
            Ok(report) => tracing::info!(operator = %name, digest = %report.to_digest, tasks = report.tasks.len(), "applied"),
            Err(e) => {
                tracing::error!(operator = %name, "not applied: {e}");
                applied = false;
            }
        }
    }
    if applied { Edit::AppliedInPlace(new) } else { Edit::Unchanged }
}
