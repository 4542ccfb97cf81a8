//! Poison-pill isolation: after a plugin fault, go back to the last checkpoint, replay, and halve the failing batch until the record that faults is found and dead-lettered.
//!
//! A faulted instance cannot be trusted (its memory may be anywhere), so it is
//! never asked for its state. Instead the task rebuilds every operator from the
//! state of its last checkpoint (kept in memory as a [`RestorePoint`]), seeks the
//! source back to that checkpoint's offset and reads on. Batches that only
//! repeat what was processed before the fault run as usual: their outputs are
//! replays, which the sinks' delivery records absorb. Batches that overlap the
//! one that faulted run *guarded*: every operator is snapshotted first; on a
//! fault the snapshot is restored and the batch is cut in two, each half run
//! guarded in turn, down to the one record that faults. That record is
//! dead-lettered (`PluginTrap`, `PluginTimeout` or `PluginMemory`, with the
//! faulting plugin's digest) and the rest of the batch goes on. A fault costs
//! `O(log batch_size)` extra calls per poison record.
//!
//! Each fault that forces a rewind is counted by the faulting operator's circuit
//! breaker; more than `max_faults` within `fault_window_ms` stop the task with an
//! error that says so (the records are still in the source: nothing is lost).

use super::{BatchError, Task, TaskError, TaskOperator};
use crate::dedup::{SeenSet, SeenSetSnapshot};
use crate::dlq::{Envelope, ErrorKind, FailedRecord, FailureContext, Stage};
use crate::graph::{FaultLimit, Limits};
use crate::runtime::{FaultKind, LoadedPlugin, OperatorInstance, PluginFault, Runtime, RuntimeError};
use crate::source::SourceBatch;
use sda_wire::BatchReader;
use std::collections::VecDeque;
use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

/// What a task needs to make a fresh instance of one of its operators.
#[derive(Clone)]
pub(crate) struct OperatorRecipe {
    pub runtime: Arc<Runtime>,
    pub plugin: LoadedPlugin,
    pub limits: Limits,
    pub config_json: String,
}

impl OperatorRecipe {
    pub(super) fn instantiate(&self, operator: &str) -> Result<OperatorInstance, RuntimeError> {
        self.runtime.instantiate(operator, &self.plugin, self.limits, &self.config_json)
    }

    /// The same runtime with another plugin, config or limits (a hot swap or re-init).
    pub(super) fn with_setup(&self, setup: crate::swap::OperatorSetup) -> OperatorRecipe {
        OperatorRecipe { runtime: self.runtime.clone(), plugin: setup.plugin, limits: setup.limits, config_json: setup.config_json }
    }
}

/// Each operator's `(state version, state)` in task order; `None`: a fresh instance.
pub(crate) type OperatorStates = Vec<Option<(u32, Vec<u8>)>>;

/// The state of a task's last checkpoint, in memory: what a fault rewinds to.
pub(crate) struct RestorePoint {
    /// Source offset the checkpoint resumes from.
    pub offset: u64,
    pub operators: OperatorStates,
    pub source_seen: Option<SeenSetSnapshot>,
}

/// Counts an operator's faults within a sliding window.
pub(super) struct FaultBreaker {
    limit: FaultLimit,
    recent: VecDeque<Instant>,
}

impl FaultBreaker {
    pub fn new(limit: FaultLimit) -> FaultBreaker {
        FaultBreaker { limit, recent: VecDeque::new() }
    }

    /// Records a fault; returns how many fell within the window if that is
    /// more than the limit (the breaker opens), else `None`.
    fn record(&mut self, now: Instant) -> Option<usize> {
        while self.recent.front().is_some_and(|&t| now.duration_since(t) > self.limit.window) {
            self.recent.pop_front();
        }
        self.recent.push_back(now);
        (self.recent.len() > self.limit.max_faults as usize).then_some(self.recent.len())
    }
}

/// Whether a fault can be blamed on the records of the batch: faults while
/// processing records can; faults while closing windows at a watermark, or
/// while snapshotting, cannot.
pub(super) fn isolable(fault: &PluginFault) -> bool {
    fault.call == "process"
}

impl Task {
    /// Whether `batch` overlaps the batch that faulted, so must run guarded.
    pub(super) fn is_suspect(&self, batch: &SourceBatch) -> bool {
        let Some(suspect) = &self.suspect else { return false };
        let first = batch.offsets.first().copied().unwrap_or(batch.end_offset);
        first < suspect.end && batch.end_offset >= suspect.start
    }

    /// Leaves guarded mode once the source has read past the batch that faulted.
    pub(super) fn passed_suspect(&mut self, end_offset: u64) -> bool {
        if self.suspect.as_ref().is_some_and(|s| end_offset >= s.end) {
            self.suspect = None;
            return true;
        }
        false
    }

    /// After `fault` on the batch at `offsets`: counts it against the operator's
    /// breaker, rebuilds every operator from the last checkpoint's state and seeks
    /// the source back to it, so the loop replays up to the batch, guarded.
    pub(super) fn rewind_after_fault(&mut self, fault: PluginFault, offsets: Range<u64>) -> Result<(), TaskError> {
        // A checkpoint still being written becomes the restore point first.
        self.finish_pending_write(true)?;
        let checkpoint = self.checkpointing.last_sequence();
        let Some(k) = self.operators.iter().position(|op| op.name == fault.operator) else {
            return Err(TaskError::Fault { fault, source_name: self.source_name.clone(), first_offset: offsets.start, end_offset: offsets.end });
        };
        self.board.operator_faulted(&fault.operator);
        crate::metrics::plugin_fault(&fault.operator, fault.kind.error_kind());
        if let Some(faults) = self.operators[k].breaker.record(Instant::now()) {
            let limit = self.operators[k].breaker.limit;
            let reason = format!(
                "circuit breaker open: {faults} plugin faults within {} s (max_faults = {}); the last: {fault}",
                limit.window.as_secs_f64(),
                limit.max_faults
            );
            self.board.operator_stopped(&fault.operator, reason.clone());
            return Err(TaskError::BreakerOpen {
                operator: fault.operator.clone(),
                reason,
                source_name: self.source_name.clone(),
                first_offset: offsets.start,
                end_offset: offsets.end,
            });
        }
        tracing::warn!(
            task = %self.task_id,
            operator = %fault.operator,
            kind = fault.kind.error_kind(),
            offsets = %format!("{}..{}", offsets.start, offsets.end),
            rewind_to = self.restore_point.offset,
            checkpoint = ?checkpoint,
            "plugin fault: {}; rebuilding the operators from the last checkpoint to isolate the record", fault.message
        );
        let states = std::mem::take(&mut self.restore_point.operators);
        let rebuilt = self.rebuild_operators(&states);
        self.restore_point.operators = states;
        rebuilt?;
        if let (Some(seen), Some(snapshot)) = (&mut self.source_seen, &self.restore_point.source_seen) {
            *seen = SeenSet::restore(seen.limits(), snapshot.clone(), super::now_ms());
        }
        // A transactional sink's open transaction still holds what it wrote since the checkpoint; the
        // replay skips those outputs by `TaskSink::in_open_transaction` (not by aborting: Tansu hands
        // aborted records to read_committed readers, see tests/broker.rs).
        self.source.seek(self.restore_point.offset)?;
        self.suspect = Some(match self.suspect.take() {
            Some(s) => s.start.min(offsets.start)..s.end.max(offsets.end),
            None => offsets,
        });
        Ok(())
    }

    /// Runs `batch` so that a record whose processing makes a plugin fault is
    /// dead-lettered and everything else goes on (see the module docs).
    pub(super) fn run_guarded(&mut self, batch: &SourceBatch, watermark: Option<i64>, dead_letters: &mut Vec<crate::dlq::Envelope>) -> Result<(), BatchError> {
        let saved = self.snapshot_operators()?;
        let before = dead_letters.len();
        let fault = match self.run_batch(batch, watermark, dead_letters) {
            Err(BatchError::Fault(fault)) if isolable(&fault) => fault,
            other => return other,
        };
        dead_letters.truncate(before);
        self.rebuild_operators(&saved).map_err(|e| BatchError::Rebuild(Box::new(e)))?;
        let count = batch.count as usize;
        if watermark.is_some() && count > 0 {
            // The records first, then the watermark on its own: a fault in what closing windows emits is not a record's.
            self.run_guarded(batch, None, dead_letters)?;
            return self.run_guarded(&empty_batch_at(batch.end_offset), watermark, &mut Vec::new());
        }
        match count {
            0 => Err(BatchError::Fault(fault)),
            1 => {
                let envelope = self.fault_envelope(&fault, batch);
                tracing::warn!(
                    task = %self.task_id,
                    operator = %fault.operator,
                    kind = fault.kind.error_kind(),
                    offset = batch.offsets[0],
                    "record isolated and dead-lettered: {}", fault.message
                );
                dead_letters.push(envelope);
                self.write_dead_letters(std::mem::take(dead_letters))?;
                Ok(())
            }
            _ => {
                let half = count / 2;
                self.run_guarded(&batch.slice(0..half), None, dead_letters)?;
                self.run_guarded(&batch.slice(half..count), None, &mut Vec::new())
            }
        }
    }

    /// Every operator's state, from healthy instances.
    fn snapshot_operators(&mut self) -> Result<OperatorStates, BatchError> {
        let mut states = Vec::with_capacity(self.operators.len());
        for op in &mut self.operators {
            states.push(Some(op.instance.snapshot()?));
        }
        Ok(states)
    }

    /// Replaces every operator's instance by a fresh one holding `states`.
    fn rebuild_operators(&mut self, states: &[Option<(u32, Vec<u8>)>]) -> Result<(), TaskError> {
        let task = self.task_id.clone();
        for (op, state) in self.operators.iter_mut().zip(states) {
            op.instance = rebuild(op, state.as_ref()).map_err(|message| TaskError::Rebuild { task: task.clone(), operator: op.name.clone(), message })?;
        }
        Ok(())
    }

    /// The dead-letter entry of the one record of `batch`, which made `fault` happen.
    fn fault_envelope(&self, fault: &PluginFault, batch: &SourceBatch) -> Envelope {
        let record = BatchReader::new(&batch.packed).expect("a source packs well-formed batches").next().expect("one record").expect("well-formed");
        let digest = self.operators.iter().find(|op| op.name == fault.operator).map(|op| op.instance.digest());
        let error_kind = match fault.kind {
            FaultKind::Trap => ErrorKind::PluginTrap,
            FaultKind::Timeout => ErrorKind::PluginTimeout,
            FaultKind::Memory => ErrorKind::PluginMemory,
        };
        Envelope::new(
            FailureContext {
                pipeline: &self.pipeline,
                operator: &fault.operator,
                stage: Stage::Operator,
                plugin_digest: digest,
                error_kind,
                error_message: format!("{} in `{}`: {}", fault.kind.error_kind(), fault.call, fault.message),
                retry_count: 0,
                source: self.position(Some(batch.offsets[0])),
                checkpoint_seq: self.checkpointing.last_sequence(),
            },
            FailedRecord { key: record.key, payload: record.payload, headers: record.headers().map(|h| (h.name, h.value)).collect() },
        )
    }
}

fn rebuild(op: &TaskOperator, state: Option<&(u32, Vec<u8>)>) -> Result<OperatorInstance, String> {
    let mut instance = op.recipe.instantiate(&op.name).map_err(|e| e.to_string())?;
    if let Some((version, bytes)) = state {
        match instance.restore(*version, bytes) {
            Ok(Ok(())) => {}
            Ok(Err(reason)) => return Err(format!("it refused its own state (version {version}): {reason}")),
            Err(fault) => return Err(fault.to_string()),
        }
    }
    Ok(instance)
}

fn empty_batch_at(end_offset: u64) -> SourceBatch {
    SourceBatch { packed: sda_wire::empty_batch(), count: 0, offsets: Vec::new(), rejects: Vec::new(), end_offset }
}
