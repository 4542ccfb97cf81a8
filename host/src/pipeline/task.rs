//! One task of a run: built from its checkpoint (operators, sinks, DLQ, source where it resumes), then run on a thread of its own.

use super::deliveries::{open_dlq, open_sinks};
use super::recover::{TaskCheckpoints, recover_task};
use super::{PipelineError, Shared, TaskRecovery};
use crate::checkpoint::format::Checkpoint;
use crate::checkpoint::local::LocalTier;
use crate::dedup::{SeenSet, now_ms};
use crate::graph::{SinkKind, SourceKind};
use crate::runtime::Shard;
use crate::source::SourceReader;
use crate::source::kafka::GroupMember;
use crate::task::{Checkpointing, RestorePoint, Shutdown, Task, TaskEnd, TaskParts};
use std::sync::Arc;

/// A task running on its own thread.
pub(super) struct Running {
    pub task: String,
    pub stop: Shutdown,
    pub handle: std::thread::JoinHandle<Result<TaskEnd, PipelineError>>,
}

pub(super) fn spawn_task(shared: &Shared, task: Task, stop: Shutdown) -> Running {
    let name = task.id().to_string();
    spawn_building(shared, name, stop, move || Ok(task))
}

/// Runs task `name` on a thread of its own, which first builds it (recovery can take seconds: reading
/// checkpoints, re-reading what sinks wrote since), so that whoever starts tasks (the group coordinator,
/// inside librdkafka's rebalance callback) never waits for it.
pub(super) fn spawn_building(
    shared: &Shared,
    name: String,
    stop: Shutdown,
    build: impl FnOnce() -> Result<Task, PipelineError> + Send + 'static,
) -> Running {
    let board = shared.board.clone();
    let thread_stop = stop.clone();
    let task_id = name.clone();
    let handle = std::thread::Builder::new()
        .name(format!("sda-task-{name}"))
        .spawn(move || {
            let result = build().and_then(|task| task.run(&thread_stop).map_err(PipelineError::from));
            if let Err(e) = &result {
                board.task_failed(&task_id, e.to_string());
                // A file task's stop is the pipeline's: one failing stops the others after their batch
                // in hand (the run joins them in turn, and a following one would otherwise never end).
                // A partition task's stop is its own; its coordinator stops the pipeline.
                thread_stop.request();
            }
            result
        })
        .expect("spawning a task thread");
    Running { task: name, stop, handle }
}

/// The id of a source's task, which names its checkpoints: `<source>-<partition>` (a file is
/// partition 0), or `<source>-all` for the one task of a Kafka source read whole.
pub(super) fn task_id(source: &str, partition: Option<u32>) -> String {
    match partition {
        Some(p) => format!("{source}-{p}"),
        None => format!("{source}-all"),
    }
}

pub(super) fn join(r: Running) -> Result<TaskEnd, PipelineError> {
    let result = r.handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    if let Err(e) = &result {
        tracing::error!(task = %r.task, error = %e, "task failed");
    }
    result
}

/// Builds task `task_id` of source `s` (see [`task_id`]): climbs the
/// recovery ladder, restores operators, rebuilds sinks' delivery records and
/// opens the source where the checkpoint says (`open_source(None)` for a
/// fresh start). `lease`: the shard the task runs, for a source with `shards`. For a transactional sink fed by a Kafka source,
/// `committed` is the group's committed offset: a checkpoint beyond it
/// belongs to a transaction that never committed, and is skipped.
pub(super) fn build_task(
    shared: &Shared,
    s: usize,
    task_id: String,
    group: Option<Arc<GroupMember>>,
    committed: Option<u64>,
    lease: Option<Shard>,
    open_source: impl FnOnce(Option<&Checkpoint>) -> Result<SourceReader, PipelineError>,
) -> Result<Task, PipelineError> {
    let plan = &*shared.plan;
    let source = &plan.sources[s];
    let folder = format!("{}/{}", plan.name, task_id);
    let (operator_indices, sink_indices) = plan.reachable_from(s);
    // Registered before anything is restored: a swap under way finishes first, and one that starts
    // later reaches this task once it runs.
    let (setups, control) = shared.controller.register(&task_id, &operator_indices);
    let transactional = sink_indices.iter().any(|&i| matches!(&plan.sinks[i].kind, SinkKind::Kafka(k) if k.transactional));
    let local = LocalTier::new(&plan.checkpoint.dir, &plan.name, &task_id, plan.checkpoint.keep);
    let (recovered, mut operators) = recover_task(
        shared,
        &TaskCheckpoints {
            source: s,
            task_id: &task_id,
            folder: &folder,
            local: &local,
            setups: &setups,
            operator_indices: &operator_indices,
            transactional,
            committed,
            lease,
        },
    )?;
    let checkpoint = recovered.checkpoint.as_ref().map(|(c, _)| c);

    let now = now_ms();
    // State of operators the pipeline no longer has stays in its checkpoints until it is dropped.
    let kept_states: Vec<_> = checkpoint
        .map(|c| {
            c.operators
                .iter()
                .filter(|o| !plan.operators.iter().any(|op| op.name == o.name))
                .filter(|o| {
                    let drop = shared.options.drop_state.contains(&o.name);
                    if drop {
                        tracing::warn!(task = %task_id, operator = %o.name, "dropping the state of a removed operator (--drop-state)");
                    }
                    !drop
                })
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let reshaped = checkpoint.is_some_and(|c| c.header.fingerprint != plan.fingerprint);
    let sinks = open_sinks(shared, &task_id, &sink_indices, checkpoint, now, lease)?;
    let (dlq, dlq_delivered) = open_dlq(shared, checkpoint, now)?;
    let source_dedup = match &source.kind {
        SourceKind::File(f) => f.dedup,
        SourceKind::Kafka(k) => k.dedup,
    };
    let source_seen = source_dedup.map(|d| {
        let snapshot = checkpoint.and_then(|c| c.source_seen.clone()).unwrap_or_default();
        SeenSet::restore(d, snapshot, now)
    });
    let reader = open_source(checkpoint)?;
    shared.board.task_resumes_at(&task_id, reader.offset());
    for (i, instance, _) in &mut operators {
        // Known before the first checkpoint, for /status.
        if let Ok(version) = instance.state_version() {
            shared.board.operator_state_version(&plan.operators[*i].name, version);
        }
    }
    let restore_point = RestorePoint {
        offset: reader.offset(),
        operators: operators
            .iter()
            .map(|(i, _, _)| {
                let saved = checkpoint.and_then(|c| c.operators.iter().find(|s| s.name == plan.operators[*i].name));
                saved.map(|s| (s.state_version, s.state.clone()))
            })
            .collect(),
        source_seen: source_seen.as_ref().map(|s| s.snapshot()),
    };
    let checkpointing = Checkpointing::new(
        local,
        shared.uploader.clone(),
        folder,
        plan.checkpoint.interval,
        plan.fingerprint.clone(),
        plan.guarantee,
        checkpoint.map(|c| c.header.sequence),
    );
    shared.recoveries.lock().unwrap_or_else(|e| e.into_inner()).push(TaskRecovery {
        task: task_id.clone(),
        path: recovered.path,
        checkpoint: recovered.checkpoint.as_ref().map(|(c, at)| (c.header.sequence, at.clone())),
        skipped: recovered.skipped.clone(),
    });
    Ok(Task::new(
        plan,
        TaskParts {
            source_index: s,
            task_id,
            source: reader,
            group,
            sinks,
            operators,
            dlq,
            dlq_delivered,
            source_seen,
            checkpointing,
            stats: shared.stats.clone(),
            board: shared.board.clone(),
            runtime: shared.runtime.clone(),
            setups,
            lease,
            restore_point,
            control: Some(control),
            kept_states,
            checkpoint_at_start: reshaped,
        },
    ))
}
