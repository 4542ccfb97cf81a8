//! The run's plugins: each operator's plugin compiled (or taken from the cache), or the one a swap put in before a restart, as the swap journal records.

use super::PipelineError;
use crate::graph::Plan;
use crate::runtime::{LoadedPlugin, Runtime};
use crate::status::{OperatorStatus, StatusBoard};
use crate::swap::journal::SwapJournal;

/// Loads every operator's plugin, in plan order, and shows each on the status board. An operator swapped
/// while pipeline.toml still names what it names now runs the swapped-in plugin; if pipeline.toml has
/// changed since, its plugin wins and the journal forgets the swap.
pub(super) fn load_plugins(plan: &Plan, runtime: &Runtime, board: &StatusBoard) -> Result<Vec<LoadedPlugin>, PipelineError> {
    let journal = SwapJournal::new(&plan.checkpoint.dir, &plan.name);
    let swapped = journal.load()?;
    let mut loaded = Vec::with_capacity(plan.operators.len());
    for op in &plan.operators {
        let record = swapped.get(&op.name);
        let file = match record {
            // Swapped in while pipeline.toml still named what it names now: run what was running.
            Some(r) if r.configured_digest == op.plugin.digest && r.digest != op.plugin.digest => {
                tracing::warn!(
                    operator = %op.name, digest = %r.digest, swapped_at = %r.swapped_at, swapped_by = %r.swapped_by,
                    journal = %journal.path().display(),
                    "running the plugin swapped in before the restart, not the one pipeline.toml names; edit pipeline.toml to make it \
                        permanent"
                );
                journal.read_plugin(&op.name, r)?
            }
            Some(_) => {
                tracing::info!(operator = %op.name, "pipeline.toml names another plugin than when this operator was swapped; running \
                    pipeline.toml's");
                journal.forget(&op.name)?;
                op.plugin.clone()
            }
            None => op.plugin.clone(),
        };
        let plugin = runtime.load(&op.name, &file)?;
        tracing::info!(operator = %op.name, digest = %plugin.digest, source = ?plugin.source, time = ?plugin.compile_time, "plugin ready");
        let swap = record.filter(|r| r.digest == plugin.digest);
        board.set_operator(
            &op.name,
            OperatorStatus {
                plugin_path: plugin.path.display().to_string(),
                digest: plugin.digest.clone(),
                wit_version: plugin.wit_version.clone(),
                state_version: None,
                swapped_at: swap.map(|r| r.swapped_at.clone()),
                swapped_by: swap.map(|r| r.swapped_by.clone()),
                swapped_from: swap.map(|r| r.configured_digest.clone()),
                ..OperatorStatus::default()
            },
        );
        loaded.push(plugin);
    }
    Ok(loaded)
}
