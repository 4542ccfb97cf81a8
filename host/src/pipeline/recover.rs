//! Restores a task's operators from a checkpoint: the recovery ladder's check of each candidate, fresh instances with their state.

use super::{PipelineError, Shared};
use crate::checkpoint::format::Checkpoint;
use crate::checkpoint::local::LocalTier;
use crate::checkpoint::recovery::{self, Expected, FreshStart, Recovered};
use crate::graph::{Plan, SourceKind};
use crate::metrics::RecoveryPath;
use crate::runtime::{OperatorInstance, Runtime, RuntimeError, Shard};
use crate::swap::OperatorSetup;

/// Operator instances of a task, each with the index of its operator in the plan and its plugin's WIT version.
pub(super) type Operators = Vec<(usize, OperatorInstance, String)>;

/// What a task recovers from: who it is, where its checkpoints are, and what the group committed.
pub(super) struct TaskCheckpoints<'a> {
    pub source: usize,
    pub task_id: &'a str,
    /// The task's folder in the remote tier.
    pub folder: &'a str,
    pub local: &'a LocalTier,
    pub setups: &'a [OperatorSetup],
    pub operator_indices: &'a [usize],
    /// A transactional Kafka sink is fed from this task.
    pub transactional: bool,
    /// The group's committed offset of a Kafka source's partition.
    pub committed: Option<u64>,
    /// The shard of a lease this task runs.
    pub lease: Option<Shard>,
}

/// Climbs the recovery ladder: the newest checkpoint of either tier that this pipeline, its input and
/// its operators accept, or a fresh start where that is allowed; returns it with the operators restored from it.
pub(super) fn recover_task(shared: &Shared, task: &TaskCheckpoints) -> Result<(Recovered<Operators>, Operators), PipelineError> {
    let plan = &*shared.plan;
    let source = &plan.sources[task.source];
    let committed = task.committed;
    let transactional = task.transactional;
    let expected = Expected {
        pipeline: &plan.name,
        fingerprint: &plan.fingerprint,
        also_accepted: &shared.options.accept_fingerprints,
        task: task.task_id,
    };
    let fresh_start = if shared.options.allow_fresh_start {
        FreshStart::Asked
    } else if transactional && committed.is_none() {
        FreshStart::NothingCommitted
    } else {
        FreshStart::Refused
    };
    let mut recovered =
        recovery::recover(task.local, shared.remote.as_deref().map(|tier| (tier, task.folder)), expected, fresh_start, |checkpoint| {
            // Each transaction commits one checkpoint's offset with its outputs, so the committed offset
            // names the one checkpoint that matches what subscribers saw. A later one's transaction was
            // aborted; an earlier one would write again outputs that later transactions committed.
            let committed_offset = committed.unwrap_or(0);
            if transactional && checkpoint.offset != committed_offset {
                let shown = committed.map_or("none".to_string(), |c| c.to_string());
                return Err(if checkpoint.offset > committed_offset {
                    format!(
                        "its transaction was never committed (it resumes at offset {}, the group's committed offset is {shown})",
                        checkpoint.offset
                    )
                } else {
                    format!(
                        "older than the last committed transaction (it resumes at offset {}, the group's committed offset is {shown}): \
                         restoring it would deliver that transaction's alerts again",
                        checkpoint.offset
                    )
                });
            }
            if let SourceKind::File(file) = &source.kind {
                crate::source::file::check_resume_point(&file.path, checkpoint.offset, checkpoint.input.as_ref())?;
            }
            restore_operators(plan, &shared.runtime, task, Some(checkpoint)).map_err(|e| e.to_string())
        })?;
    let operators = match recovered.restored.take() {
        Some(operators) => operators,
        None => restore_operators(plan, &shared.runtime, task, None)?,
    };
    crate::metrics::recovery(task.task_id, recovered.path);
    shared.board.task_recovered(task.task_id, recovered.path, recovered.checkpoint.as_ref().map(|(c, _)| c.header.sequence));
    log_recovery(task.task_id, &recovered.path, recovered.checkpoint.as_ref());
    Ok((recovered, operators))
}

/// Why a task's operators could not be set up from a checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("operator `{operator}` refused its state (version {version}): {reason}")]
    Refused { operator: String, version: u32, reason: String },
}

/// Fresh instances of a task's operators, with their state restored from
/// `checkpoint` when there is one.
fn restore_operators(
    plan: &Plan,
    runtime: &Runtime,
    task: &TaskCheckpoints,
    checkpoint: Option<&Checkpoint>,
) -> Result<Vec<(usize, OperatorInstance, String)>, RestoreError> {
    let mut instances = Vec::with_capacity(task.operator_indices.len());
    for &i in task.operator_indices {
        let op = &plan.operators[i];
        let setup = &task.setups[i];
        let mut instance =
            runtime.instantiate_parallel(&op.name, &setup.plugin, setup.limits, &setup.config_json, setup.parallelism, task.lease)?;
        if let Some(saved) = checkpoint.and_then(|c| c.operators.iter().find(|s| s.name == op.name)) {
            match instance.restore(saved.state_version, &saved.state) {
                Ok(Ok(())) => {}
                Ok(Err(reason)) => {
                    return Err(RestoreError::Refused { operator: op.name.clone(), version: saved.state_version, reason });
                }
                Err(fault) => return Err(RuntimeError::Fault(fault).into()),
            }
            if saved.plugin_digest != setup.plugin.digest {
                tracing::info!(operator = %op.name, from = %saved.plugin_digest, to = %setup.plugin.digest, "state restored into a \
                    different build of the plugin");
            }
        } else if checkpoint.is_some() {
            tracing::info!(operator = %op.name, "no state for this operator in the checkpoint; it starts empty");
        }
        instances.push((i, instance, setup.plugin.wit_version.clone()));
    }
    if let Some(c) = checkpoint {
        for saved in &c.operators {
            if !plan.operators.iter().any(|op| op.name == saved.name) {
                tracing::warn!(
                    operator = %saved.name,
                    "the checkpoint holds state of an operator the pipeline no longer has; it is kept in later checkpoints \
                     (restored if the operator comes back) until `run --drop-state {}`", saved.name
                );
            }
        }
    }
    Ok(instances)
}

fn log_recovery(task: &str, path: &RecoveryPath, checkpoint: Option<&(Checkpoint, String)>) {
    match checkpoint {
        Some((c, at)) => {
            tracing::info!(task, path = path.as_str(), sequence = c.header.sequence, offset = c.offset, checkpoint = %at, "recovered")
        }
        None => tracing::info!(task, "starting from the beginning of the input (no checkpoint)"),
    }
}
