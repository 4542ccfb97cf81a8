//! Poison-pill isolation: after a plugin fault, go back to the last checkpoint, replay, and try the failing batch's records one by one to find the ones that fault; those are dead-lettered only once the plugin has shown it works without them.
//!
//! A faulted instance cannot be trusted (its memory may be anywhere), so it is
//! never asked for its state. Instead the task rebuilds every operator from the
//! state of its last checkpoint (kept in memory as a [`RestorePoint`]), seeks the
//! source back to that checkpoint's offset and reads on. Batches that only
//! repeat what was processed before the fault run as usual: their outputs are
//! replays, which the sinks' delivery records absorb. Batches that overlap the
//! one that faulted run *guarded*:
//!
//! 1. every operator is snapshotted;
//! 2. the *probe*: each record is computed on its own (nothing delivered). A record that faults
//!    alone is set aside, the operators are rebuilt from the snapshot, the records before it are
//!    computed again, and the probe goes on after it;
//! 3. the operators are rebuilt from the snapshot once more, and the batch runs for real in the
//!    pieces between the records set aside, then the watermark.
//!
//! A record set aside is not dead-lettered at once. A fault proves nothing about the record
//! when the plugin faults on *everything* (a deadline too short for any call, a plugin broken by
//! its state): so a record is convicted (dead-lettered as `PluginTrap`, `PluginTimeout` or
//! `PluginMemory`, with the plugin's digest) only once the same operator has processed a record
//! successfully after that fault. Until then it waits, and no checkpoint is taken past it (except
//! under at-most-once, which may lose records by contract), so a crash or a stop replays it.
//!
//! A batch that faults although none of its records faults alone is no record's fault (the work
//! of the whole batch outlasts the call's deadline, say): the task stops with an error that says
//! so. So does a fault in `on-watermark` or `snapshot`, where no record is involved.
//!
//! Every fault counts against the operator's circuit breaker, those of the probe too. It opens
//! when more than `max_faults` faults fall within `fault_window_ms`, or when more than
//! `max_faults` come in a row with no successful call in between (so slow faults, spread wider
//! than the window, cannot loop either). An open breaker stops the task with an error that says
//! so; the records are still in the source, and nothing after the last checkpoint is lost.

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
    pub parallelism: u32,
    /// The shard of a lease this task runs (see [`Runtime::instantiate_parallel`]).
    pub lease: Option<crate::runtime::Shard>,
}

impl OperatorRecipe {
    pub(super) fn instantiate(&self, operator: &str) -> Result<OperatorInstance, RuntimeError> {
        self.runtime.instantiate_parallel(operator, &self.plugin, self.limits, &self.config_json, self.parallelism, self.lease)
    }

    /// The same runtime with another plugin, config or limits (a hot swap or re-init).
    pub(super) fn with_setup(&self, setup: crate::swap::OperatorSetup) -> OperatorRecipe {
        OperatorRecipe {
            runtime: self.runtime.clone(),
            plugin: setup.plugin,
            limits: setup.limits,
            config_json: setup.config_json,
            parallelism: setup.parallelism,
            lease: self.lease,
        }
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

/// Counts an operator's faults: within a sliding window, and in a row.
pub(super) struct FaultBreaker {
    limit: FaultLimit,
    recent: VecDeque<Instant>,
    /// Faults since the operator last processed a record successfully.
    in_a_row: u32,
}

impl FaultBreaker {
    pub fn new(limit: FaultLimit) -> FaultBreaker {
        FaultBreaker { limit, recent: VecDeque::new(), in_a_row: 0 }
    }

    /// Records a fault; returns why the breaker opens, if it does.
    fn record(&mut self, now: Instant) -> Option<String> {
        while self.recent.front().is_some_and(|&t| now.duration_since(t) > self.limit.window) {
            self.recent.pop_front();
        }
        self.recent.push_back(now);
        self.in_a_row = self.in_a_row.saturating_add(1);
        let max = self.limit.max_faults as usize;
        if self.recent.len() > max {
            Some(format!("{} plugin faults within {} s (max_faults = {max})", self.recent.len(), self.limit.window.as_secs_f64()))
        } else if self.in_a_row as usize > max {
            Some(format!("{} plugin faults in a row, with no record processed in between (max_faults = {max})", self.in_a_row))
        } else {
            None
        }
    }

    /// The operator processed at least one record successfully.
    pub fn succeeded(&mut self) {
        self.in_a_row = 0;
    }

    /// Whether the operator has processed a record successfully since its last fault.
    fn works_since_last_fault(&self) -> bool {
        self.in_a_row == 0
    }
}

/// A record that faulted alone, waiting for its operator to show it works without it.
pub(super) struct Suspect {
    operator: String,
    envelope: Envelope,
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

    /// Counts `fault` against its operator's breaker (and in the metrics and status); an open
    /// breaker is the error.
    fn register_fault(&mut self, fault: &PluginFault, offsets: Range<u64>) -> Result<(), TaskError> {
        self.board.operator_faulted(&fault.operator);
        crate::metrics::plugin_fault(&fault.operator, fault.kind.error_kind());
        let Some(k) = self.operators.iter().position(|op| op.name == fault.operator) else {
            return Err(TaskError::Fault {
                fault: fault.clone(),
                source_name: self.source_name.clone(),
                first_offset: offsets.start,
                end_offset: offsets.end,
            });
        };
        let Some(why) = self.operators[k].breaker.record(Instant::now()) else { return Ok(()) };
        let reason = format!("circuit breaker open: {why}; the last: {fault}");
        self.board.operator_stopped(&fault.operator, reason.clone());
        Err(TaskError::BreakerOpen {
            operator: fault.operator.clone(),
            reason,
            source_name: self.source_name.clone(),
            first_offset: offsets.start,
            end_offset: offsets.end,
        })
    }

    /// After `fault` on the batch at `offsets`: counts it against the operator's
    /// breaker, rebuilds every operator from the last checkpoint's state and seeks
    /// the source back to it, so the loop replays up to the batch, guarded.
    pub(super) fn rewind_after_fault(&mut self, fault: PluginFault, offsets: Range<u64>) -> Result<(), TaskError> {
        // A checkpoint still being written becomes the restore point first.
        self.finish_pending_write(true)?;
        let checkpoint = self.checkpointing.last_sequence();
        self.register_fault(&fault, offsets.clone())?;
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
        // The replay finds the records set aside since the checkpoint again.
        self.suspects.clear();
        // The sinks hold what they were handed since the checkpoint (a transactional sink, in its open
        // transaction): the replay owes it to them and skips it (not by aborting: Tansu hands aborted
        // records to read_committed readers, see tests/broker.rs).
        for sink in &mut self.sinks {
            sink.ledger.rewound();
        }
        self.source.seek(self.restore_point.offset)?;
        self.suspect = Some(match self.suspect.take() {
            Some(s) => s.start.min(offsets.start)..s.end.max(offsets.end),
            None => offsets,
        });
        Ok(())
    }

    /// Runs `batch` so that a record whose processing makes a plugin fault is
    /// set aside and everything else goes on (see the module docs).
    pub(super) fn run_guarded(
        &mut self,
        batch: &SourceBatch,
        watermark: Option<i64>,
        dead_letters: &mut Vec<Envelope>,
    ) -> Result<(), BatchError> {
        if batch.count == 0 {
            return self.run_batch(batch, watermark, dead_letters);
        }
        let saved = self.snapshot_operators()?;
        let faulting = self.probe(batch, &saved)?;
        self.rebuild_operators(&saved).map_err(|e| BatchError::Task(Box::new(e)))?;
        let mut from = 0;
        for (index, fault) in faulting {
            if index > from {
                self.run_batch(&batch.slice(from..index), None, dead_letters)?;
            }
            let record = batch.slice(index..index + 1);
            tracing::warn!(
                task = %self.task_id,
                operator = %fault.operator,
                kind = fault.kind.error_kind(),
                offset = record.offsets[0],
                "record faults the plugin on its own; it is dead-lettered once the plugin has processed another record: {}", fault.message
            );
            let envelope = self.fault_envelope(&fault, &record);
            self.suspects.push(Suspect { operator: fault.operator, envelope });
            from = index + 1;
        }
        let count = batch.count as usize;
        if from < count {
            self.run_batch(&batch.slice(from..count), None, dead_letters)?;
        }
        // Source rejects, if nothing above delivered them yet, go with the watermark.
        self.run_batch(&empty_batch_at(batch.end_offset), watermark, dead_letters)
    }

    /// Computes each record of `batch` on its own, from the operators' state `saved`, and returns
    /// the records that fault (by index) with their faults. Nothing is delivered; the operators are
    /// left in no particular state.
    fn probe(&mut self, batch: &SourceBatch, saved: &[Option<(u32, Vec<u8>)>]) -> Result<Vec<(usize, PluginFault)>, BatchError> {
        let mut faulting: Vec<(usize, PluginFault)> = Vec::new();
        for index in 0..batch.count as usize {
            let record = batch.slice(index..index + 1);
            match self.compute(&record, None, None) {
                Ok(_) => {}
                Err(BatchError::Fault(fault)) if isolable(&fault) => {
                    let offset = record.offsets[0];
                    self.register_fault(&fault, offset..record.end_offset).map_err(|e| BatchError::Task(Box::new(e)))?;
                    faulting.push((index, fault));
                    // Back to the state before the batch, and through the records before this one
                    // again, leaving out those that faulted.
                    self.rebuild_operators(saved).map_err(|e| BatchError::Task(Box::new(e)))?;
                    let mut from = 0;
                    for &(skipped, _) in &faulting {
                        if skipped > from {
                            self.compute(&batch.slice(from..skipped), None, None)?;
                        }
                        from = skipped + 1;
                    }
                }
                Err(other) => return Err(other),
            }
        }
        Ok(faulting)
    }

    /// Dead-letters the records set aside whose operator has processed a record since its last
    /// fault: the fault was theirs.
    pub(super) fn convict_suspects(&mut self) -> Result<(), TaskError> {
        if self.suspects.is_empty() {
            return Ok(());
        }
        let works = |op: &str, operators: &[TaskOperator]| operators.iter().any(|o| o.name == op && o.breaker.works_since_last_fault());
        let (convicted, waiting): (Vec<Suspect>, Vec<Suspect>) =
            std::mem::take(&mut self.suspects).into_iter().partition(|s| works(&s.operator, &self.operators));
        self.suspects = waiting;
        if convicted.is_empty() {
            return Ok(());
        }
        for suspect in &convicted {
            tracing::warn!(
                task = %self.task_id,
                operator = %suspect.operator,
                offset = ?suspect.envelope.source.offset,
                "record isolated and dead-lettered: {}", suspect.envelope.error_message
            );
        }
        // Few, each from a batch of its own: their offsets order them.
        self.write_dead_letters(convicted.into_iter().map(|s| s.envelope).collect(), &SourceBatch::default())?;
        Ok(())
    }

    /// Whether records set aside forbid a checkpoint now: it would resume past them, and if the
    /// plugin turns out to fault on everything they were never at fault. At-most-once may lose
    /// records, and its checkpoints before delivery are what keep it from delivering twice.
    pub(super) fn suspects_hold_checkpoints(&self) -> bool {
        !self.suspects.is_empty() && self.guarantee != crate::graph::Guarantee::AtMostOnce
    }

    /// The error when input ends with records set aside that nothing has convicted.
    pub(super) fn unconvicted_at_end(&self) -> TaskError {
        let offsets: Vec<String> = self.suspects.iter().filter_map(|s| s.envelope.source.offset).map(|o| o.to_string()).collect();
        let operators: Vec<&str> = self.suspects.iter().map(|s| s.operator.as_str()).collect();
        TaskError::Unconvicted {
            task: self.task_id.clone(),
            operator: operators.first().copied().unwrap_or_default().to_string(),
            offsets: offsets.join(", "),
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
            op.instance = rebuild(op, state.as_ref()).map_err(|message| TaskError::Rebuild {
                task: task.clone(),
                operator: op.name.clone(),
                message,
            })?;
        }
        Ok(())
    }

    /// The dead-letter entry of the one record of `batch`, which made `fault` happen.
    fn fault_envelope(&self, fault: &PluginFault, batch: &SourceBatch) -> Envelope {
        let record =
            BatchReader::new(&batch.packed).expect("a source packs well-formed batches").next().expect("one record").expect("well-formed");
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
                source: self.position(batch, Some(batch.offsets[0])),
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
    SourceBatch { packed: sda_wire::empty_batch(), count: 0, offsets: Vec::new(), rejects: Vec::new(), end_offset, origins: Vec::new() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn breaker(max_faults: u32, window_ms: u64) -> FaultBreaker {
        FaultBreaker::new(FaultLimit { max_faults, window: Duration::from_millis(window_ms) })
    }

    #[test]
    fn opens_after_max_faults_within_the_window() {
        let mut b = breaker(2, 60_000);
        let t = Instant::now();
        assert!(b.record(t).is_none());
        b.succeeded();
        assert!(b.record(t + Duration::from_secs(1)).is_none());
        b.succeeded();
        let why = b.record(t + Duration::from_secs(2)).expect("the third fault within a minute opens it");
        assert!(why.contains("3 plugin faults within 60 s (max_faults = 2)"), "{why}");
    }

    #[test]
    fn faults_spread_wider_than_the_window_still_open_it_when_nothing_succeeds_between_them() {
        let mut b = breaker(2, 1_000);
        let t = Instant::now();
        assert!(b.record(t).is_none());
        assert!(b.record(t + Duration::from_secs(10)).is_none());
        let why = b.record(t + Duration::from_secs(20)).expect("three in a row");
        assert!(why.contains("3 plugin faults in a row"), "{why}");
        // With a success between them, slow faults are not a loop.
        let mut b = breaker(2, 1_000);
        for n in 0..10 {
            assert!(b.record(t + Duration::from_secs(10 * n)).is_none());
            b.succeeded();
        }
    }

    #[test]
    fn works_since_last_fault_needs_a_success_after_the_fault() {
        let mut b = breaker(10, 60_000);
        assert!(b.works_since_last_fault());
        b.record(Instant::now());
        assert!(!b.works_since_last_fault());
        b.succeeded();
        assert!(b.works_since_last_fault());
    }

    #[test]
    fn max_faults_zero_opens_at_the_first() {
        let mut b = breaker(0, 60_000);
        assert!(b.record(Instant::now()).is_some());
    }
}
