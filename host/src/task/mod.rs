//! One source partition's batch loop: read a batch, run it through the operators in order, deliver it, dead-letter what failed, checkpoint.
//!
//! Between two batches nothing is in flight: every output of a batch has been
//! handed to the sinks and every failure to the DLQ before the next read. That
//! is what makes the point between batches a consistent cut for checkpoints
//! (see `checkpoint` for the invariant). Records flow between operators as
//! packed buffers, never re-encoded; a record's source offset is traced back
//! through output origins only when a failure needs it.
//!
//! The delivery guarantee decides the order of a batch's steps:
//! - exactly-once and at-least-once: compute, deliver, and checkpoint when due
//!   (after the sinks are synced); exactly-once also skips outputs the sink
//!   has already delivered (its delivery record), which is what absorbs a replay;
//! - at-most-once: compute, checkpoint, then deliver: a crash while delivering
//!   loses the rest of the batch but nothing is ever delivered twice.

mod batch;
mod checkpointing;
mod isolation;
mod lineage;
mod swap;

pub(crate) use checkpointing::Checkpointing;
pub(crate) use isolation::{OperatorRecipe, RestorePoint};

use crate::dedup::{SeenSet, now_ms};
use crate::dlq::{self, DlqWriter, Envelope, FailedRecord, FailureContext, SourcePosition, Stage};
use crate::graph::{Guarantee, NodeRef, Plan, RetryPolicy, SourceKind};
use crate::runtime::{OperatorInstance, PluginFault, Runtime};
use crate::sink::{SinkError, SinkWriter};
use crate::source::kafka::GroupMember;
use crate::source::{ReadStatus, SourceBatch, SourceError, SourceReader};
use crate::stats::Stats;
use crate::status::StatusBoard;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Asks running tasks to stop after the batch in hand.
#[derive(Debug, Clone, Default)]
pub struct Shutdown(Arc<AtomicBool>);

impl Shutdown {
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    pub fn request(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_requested(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// The flag itself, for signal handlers.
    pub fn flag(&self) -> Arc<AtomicBool> {
        self.0.clone()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error(transparent)]
    Dlq(#[from] dlq::DlqError),
    #[error("{fault} (the batch in hand held source `{source_name}` offsets {first_offset} to {end_offset}){}", fault_hint(fault))]
    Fault { fault: PluginFault, source_name: String, first_offset: u64, end_offset: u64 },
    #[error(
        "task `{task}`: operator `{operator}` faulted on the record(s) at source offset(s) {offsets} and processed no record \
         after them before the input ended, so the fault cannot be pinned on those records: nothing was dead-lettered and \
         no checkpoint taken past them. Run again: they are tried again, and dead-lettered once the plugin processes another record"
    )]
    Unconvicted { task: String, operator: String, offsets: String },
    #[error("task `{task}`: cannot take a checkpoint: {reason}")]
    Checkpoint { task: String, reason: String },
    #[error(
        "operator `{operator}` stopped: {reason} (the batch in hand held source `{source_name}` offsets {first_offset} to {end_offset}; \
         nothing after the last checkpoint is lost: fix or replace the plugin and start again)"
    )]
    BreakerOpen { operator: String, reason: String, source_name: String, first_offset: u64, end_offset: u64 },
    #[error("task `{task}`: cannot rebuild operator `{operator}` after a plugin fault: {message}")]
    Rebuild { task: String, operator: String, message: String },
}

/// Why one batch could not be completed.
#[derive(Debug, thiserror::Error)]
enum BatchError {
    #[error(transparent)]
    Fault(#[from] PluginFault),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error(transparent)]
    Dlq(#[from] dlq::DlqError),
    /// The task cannot go on (a checkpoint failed, an operator could not be rebuilt, a breaker opened).
    #[error(transparent)]
    Task(Box<TaskError>),
}

/// What to do about a fault that stopped a task, for the error message.
fn fault_hint(fault: &PluginFault) -> String {
    match fault.call {
        "process" => "; no record of the batch faults on its own, so no record is to blame: if the batch's work \
                      outlasts the deadline, raise `call_timeout_ms` or lower `[runtime] batch_size`"
            .to_string(),
        call => format!(
            "; a fault in `{call}` is not any input record's, so nothing was dead-lettered; nothing after the last \
             checkpoint is lost: fix the cause and start again"
        ),
    }
}

/// How a task ended without error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskEnd {
    /// The source ended and everything was delivered and checkpointed.
    Finished,
    /// Shutdown was requested; the batch in hand was finished and checkpointed first.
    Stopped,
}

/// Where an operator or sink reads from, within one task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Input {
    Source,
    /// Position in [`Task::operators`].
    Operator(usize),
}

struct TaskOperator {
    /// Index in the plan's operators.
    plan_index: usize,
    name: String,
    instance: OperatorInstance,
    wit_version: String,
    retry: RetryPolicy,
    inputs: Vec<Input>,
    /// How to make a fresh instance after a fault.
    recipe: OperatorRecipe,
    breaker: isolation::FaultBreaker,
}

struct TaskSink {
    name: String,
    writer: SinkWriter,
    inputs: Vec<Input>,
    /// What the replay owes this sink (exactly-once, and any transactional sink: its open
    /// transaction holds what it wrote since the checkpoint): see [`crate::ledger`].
    ledger: crate::ledger::DeliveryLedger,
}

/// What a task is built from: its recovered state and the shared writers.
pub(crate) struct TaskParts {
    pub source_index: usize,
    pub task_id: String,
    pub source: SourceReader,
    /// For a Kafka source: the group member offsets are committed through.
    pub group: Option<Arc<GroupMember>>,
    /// `(plan index, writer, delivery record)`.
    pub sinks: Vec<(usize, SinkWriter, crate::ledger::DeliveryLedger)>,
    /// `(plan index, instance, WIT version)` in plan order.
    pub operators: Vec<(usize, OperatorInstance, String)>,
    pub dlq: DlqWriter,
    pub dlq_delivered: SeenSet,
    pub source_seen: Option<SeenSet>,
    pub checkpointing: Checkpointing,
    pub stats: Arc<Stats>,
    pub board: Arc<StatusBoard>,
    /// For rebuilding operators after a fault: the runtime and what every plan operator runs.
    pub runtime: Arc<Runtime>,
    pub setups: Vec<crate::swap::OperatorSetup>,
    /// The shard of a lease this task runs, if it runs one (see `pipeline::group`).
    pub lease: Option<crate::runtime::Shard>,
    /// The state the task starts from (its recovered checkpoint's, or fresh).
    pub restore_point: RestorePoint,
    /// Where hot swaps reach the task, between batches.
    pub control: Option<crate::swap::ControlPort>,
    /// State of operators the pipeline no longer has, carried into every checkpoint.
    pub kept_states: Vec<crate::checkpoint::format::OperatorState>,
    /// Checkpoint before the first batch (the state came from another shape of the pipeline).
    pub checkpoint_at_start: bool,
}

pub struct Task {
    pipeline: String,
    task_id: String,
    source_name: String,
    /// What dead-letter entries name as the source: a file or a topic.
    source_label: SourceLabel,
    source: SourceReader,
    group: Option<Arc<GroupMember>>,
    operators: Vec<TaskOperator>,
    sinks: Vec<TaskSink>,
    dlq: DlqWriter,
    dlq_delivered: SeenSet,
    /// Keys the source passed on recently, when source deduplication is on.
    source_seen: Option<SeenSet>,
    guarantee: Guarantee,
    checkpointing: Checkpointing,
    stats: Arc<Stats>,
    board: Arc<StatusBoard>,
    batch_size: u32,
    poll_interval: Duration,
    /// Records this task has read in this run, for its status.
    records_in: u64,
    /// Source offset up to which records were counted in (a replay does not count them again).
    counted_through: u64,
    /// The last checkpoint's state: what a plugin fault rewinds to.
    restore_point: RestorePoint,
    /// Offsets of a batch that faulted, while the task replays up to it (batches overlapping it run guarded).
    suspect: Option<std::ops::Range<u64>>,
    /// Records that faulted a plugin on their own, until the plugin shows it works without them.
    suspects: Vec<isolation::Suspect>,
    control: Option<crate::swap::ControlPort>,
    kept_states: Vec<crate::checkpoint::format::OperatorState>,
    checkpoint_at_start: bool,
    /// The shard of a lease this task runs: only shard 0 dead-letters what an input record caused.
    lease: Option<crate::runtime::Shard>,
}

impl Task {
    pub(crate) fn new(plan: &Plan, parts: TaskParts) -> Task {
        let source_index = parts.source_index;
        let position: Vec<usize> = parts.operators.iter().map(|(i, _, _)| *i).collect();
        let map_inputs = |inputs: &[NodeRef]| -> Vec<Input> {
            inputs
                .iter()
                .filter_map(|n| match *n {
                    NodeRef::Source(s) if s == source_index => Some(Input::Source),
                    NodeRef::Source(_) => None,
                    NodeRef::Operator(o) => position.iter().position(|&p| p == o).map(Input::Operator),
                })
                .collect()
        };
        let operators = parts
            .operators
            .into_iter()
            .map(|(i, instance, wit_version)| TaskOperator {
                plan_index: i,
                name: plan.operators[i].name.clone(),
                instance,
                wit_version,
                retry: plan.operators[i].retry,
                inputs: map_inputs(&plan.operators[i].inputs),
                recipe: OperatorRecipe {
                    runtime: parts.runtime.clone(),
                    plugin: parts.setups[i].plugin.clone(),
                    limits: parts.setups[i].limits,
                    config_json: parts.setups[i].config_json.clone(),
                    parallelism: parts.setups[i].parallelism,
                    lease: parts.lease,
                },
                breaker: isolation::FaultBreaker::new(plan.operators[i].faults),
            })
            .collect();
        let sinks = parts
            .sinks
            .into_iter()
            .map(|(i, writer, ledger)| TaskSink {
                name: plan.sinks[i].name.clone(),
                writer,
                inputs: map_inputs(&plan.sinks[i].inputs),
                ledger,
            })
            .collect();
        let (source_label, poll_interval) = match &plan.sources[source_index].kind {
            SourceKind::File(f) => (SourceLabel { file: Some(f.path.display().to_string()), topic: None }, f.poll_interval),
            SourceKind::Kafka(k) => (SourceLabel { file: None, topic: Some(k.topic.clone()) }, Duration::ZERO),
        };
        Task {
            pipeline: plan.name.clone(),
            task_id: parts.task_id,
            source_name: plan.sources[source_index].name.clone(),
            source_label,
            source: parts.source,
            group: parts.group,
            operators,
            sinks,
            dlq: parts.dlq,
            dlq_delivered: parts.dlq_delivered,
            source_seen: parts.source_seen,
            guarantee: plan.guarantee,
            checkpointing: parts.checkpointing,
            stats: parts.stats,
            board: parts.board,
            batch_size: plan.batch_size,
            poll_interval,
            records_in: 0,
            counted_through: 0,
            restore_point: parts.restore_point,
            suspect: None,
            suspects: Vec::new(),
            control: parts.control,
            kept_states: parts.kept_states,
            checkpoint_at_start: parts.checkpoint_at_start,
            lease: parts.lease,
        }
    }

    /// The task's id: `<source>-<partition>` (`observations-0`; a file source is partition 0).
    pub fn id(&self) -> &str {
        &self.task_id
    }

    /// Runs batches until the source ends or `shutdown` is requested; either
    /// way the task ends with a checkpoint.
    pub fn run(mut self, shutdown: &Shutdown) -> Result<TaskEnd, TaskError> {
        self.board.task_started(&self.task_id, &self.source_name);
        if self.checkpoint_at_start {
            // Restored from the pipeline's previous shape: from now on a restart finds this shape's checkpoint.
            self.take_checkpoint(self.source.offset())?;
        }
        let mut batch = SourceBatch::default();
        loop {
            if shutdown.is_requested() {
                self.take_checkpoint(self.source.offset())?;
                self.commit_uploaded_before_stopping()?;
                return Ok(TaskEnd::Stopped);
            }
            self.commit_uploaded()?;
            self.serve_control()?;
            let status = self.source.read_batch(self.batch_size, &mut batch)?;
            let mut dead_letters = self.reject_envelopes(&batch);
            self.drop_repeated_keys(&mut batch);
            let fresh = batch.offsets.iter().filter(|&&o| o >= self.counted_through).count() as u64;
            self.counted_through = self.counted_through.max(batch.end_offset);
            self.stats.add_records_in(&self.source_name, fresh);
            self.records_in += fresh;
            // After every batch operators get `on-watermark`: the host has no watermark of its own,
            // but a batch's records may have closed windows, whose work runs there. At the end of
            // input, event time jumps to the end of time so windowed operators close and emit
            // everything they hold.
            let end = status == ReadStatus::End;
            let watermark = Some(if end { i64::MAX } else { sda_wire::NO_WATERMARK });
            if batch.count > 0 || end || !dead_letters.is_empty() {
                let first_offset = batch.offsets.first().copied().unwrap_or(batch.end_offset);
                let guarded = self.is_suspect(&batch);
                let result = if guarded {
                    self.run_guarded(&batch, watermark, &mut dead_letters)
                } else {
                    self.run_batch(&batch, watermark, &mut dead_letters)
                };
                match result {
                    Err(BatchError::Fault(fault)) if !guarded && isolation::isolable(&fault) => {
                        self.rewind_after_fault(fault, first_offset..batch.end_offset)?;
                        continue;
                    }
                    result => result.map_err(|e| match e {
                        BatchError::Fault(fault) => {
                            TaskError::Fault { fault, source_name: self.source_name.clone(), first_offset, end_offset: batch.end_offset }
                        }
                        BatchError::Sink(e) => TaskError::Sink(e),
                        BatchError::Dlq(e) => TaskError::Dlq(e),
                        BatchError::Task(e) => *e,
                    })?,
                }
                self.convict_suspects()?;
                self.stats.batch(&self.task_id);
                self.board.task_progress(&self.task_id, batch.end_offset, self.records_in);
            }
            if self.passed_suspect(batch.end_offset) && status != ReadStatus::End {
                // The poison is behind: a checkpoint now keeps the next rewind short.
                self.take_checkpoint(batch.end_offset)?;
            }
            match status {
                ReadStatus::End => {
                    if self.suspects_hold_checkpoints() {
                        return Err(self.unconvicted_at_end());
                    }
                    self.take_checkpoint(batch.end_offset)?;
                    self.commit_uploaded_before_stopping()?;
                    self.board.task_finished(&self.task_id);
                    return Ok(TaskEnd::Finished);
                }
                ReadStatus::More => self.checkpoint_if_due(batch.end_offset)?,
                ReadStatus::Idle => {
                    self.checkpoint_if_due(batch.end_offset)?;
                    sleep_unless(shutdown, self.poll_interval);
                }
            }
        }
    }

    /// Dead-letter entries for the input the source could not read as records.
    fn reject_envelopes(&self, batch: &SourceBatch) -> Vec<Envelope> {
        let mut envelopes = Vec::with_capacity(batch.rejects.len());
        for reject in &batch.rejects {
            tracing::debug!(source = %self.source_name, offset = reject.offset, "line dead-lettered: {}", reject.message);
            envelopes.push(Envelope::new(
                FailureContext {
                    pipeline: &self.pipeline,
                    operator: &self.source_name,
                    stage: Stage::Source,
                    plugin_digest: None,
                    error_kind: reject.kind,
                    error_message: reject.message.clone(),
                    retry_count: 0,
                    source: self.position(batch, Some(reject.offset)),
                    checkpoint_seq: self.checkpointing.last_sequence(),
                },
                FailedRecord {
                    key: &reject.key,
                    payload: &reject.bytes,
                    headers: reject.headers.iter().map(|(k, v)| (k.as_slice(), v.as_slice())).collect(),
                },
            ));
        }
        envelopes
    }

    /// With source deduplication on, drops records whose key was passed on recently.
    fn drop_repeated_keys(&mut self, batch: &mut SourceBatch) {
        let Some(seen) = &mut self.source_seen else { return };
        let now = now_ms();
        let dropped = batch.retain(|record| seen.check_and_insert(crate::dedup::identity(&[record.key]), now));
        for _ in 0..dropped {
            self.stats.discarded(&self.source_name, "duplicate");
        }
    }

    /// A dead-lettered record was never processed, so with source deduplication
    /// on its key is forgotten: re-injecting it after a fix (`sda-reprocess`)
    /// must not be dropped as a repeat. Keys of records further down the graph
    /// are not in the set; forgetting them does nothing.
    fn forget_dead_lettered_keys(&mut self, envelopes: &[Envelope]) {
        let Some(seen) = &mut self.source_seen else { return };
        for envelope in envelopes {
            if let Ok(key) = dlq::decode_bytes(&envelope.key, &envelope.key_encoding) {
                seen.forget(crate::dedup::identity(&[&key]));
            }
        }
    }

    /// Where the item at `offset` of `batch` was read: for a merged source, the partition and offset
    /// behind the position in the merge.
    fn position(&self, batch: &SourceBatch, offset: Option<u64>) -> SourcePosition {
        self.source_label.position(&self.source_name, self.source.partition(), batch, offset)
    }

    /// Commits `next_offset` to the consumer group (Kafka sources only).
    ///
    /// Only at-most-once depends on the commit (it is what keeps a record
    /// from being processed twice). Otherwise the checkpoint, or the next
    /// commit, covers a commit that failed, typically because the group is
    /// rebalancing: a warning, not a reason to stop.
    fn commit_offset(&self, next_offset: u64) -> Result<(), TaskError> {
        if let Some(group) = &self.group {
            match group.commit(self.source.partition() as i32, next_offset) {
                Ok(()) => {}
                Err(e) if self.guarantee != Guarantee::AtMostOnce => {
                    tracing::warn!(task = %self.task_id, error = %e, "offset commit failed; the checkpoint or the next commit covers it");
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Appends a batch's dead letters in source order (entries with no single
    /// source record last), so the DLQ reads the same whatever the batch size.
    /// Under exactly-once, entries the DLQ already holds (a replay) are skipped.
    /// (`batch`: the batch they came from, whose merge positions order them if it has any.)
    fn write_dead_letters(&mut self, mut envelopes: Vec<Envelope>, batch: &SourceBatch) -> Result<(), dlq::DlqError> {
        if envelopes.is_empty() {
            return Ok(());
        }
        // Every shard task of a leased source reads every record and runs the same operators before
        // the sharded ones: each would dead-letter the same records. Shard 0 does; the others keep only
        // what is theirs alone, their sinks' refusals of their own outputs.
        if let Some(shard) = self.lease.filter(|s| s.index > 0) {
            envelopes.retain(|e| e.error_kind == dlq::ErrorKind::SinkRejected);
            if envelopes.is_empty() {
                tracing::trace!(task = %self.task_id, shard = shard.index, "dead letters of input records left to shard 0");
                return Ok(());
            }
        }
        envelopes.sort_by_cached_key(|e| e.source.offset.map_or(u64::MAX, |o| batch.position_of(e.source.partition, o).unwrap_or(o)));
        self.forget_dead_lettered_keys(&envelopes);
        let now = now_ms();
        let dedup = self.guarantee == Guarantee::ExactlyOnce;
        let mut fresh = Vec::with_capacity(envelopes.len());
        for envelope in envelopes {
            if dedup && !self.dlq_delivered.check_and_insert(envelope.identity(), now) {
                continue;
            }
            self.stats.dead_lettered(&envelope.operator, envelope.error_kind);
            fresh.push(envelope);
        }
        if fresh.is_empty() {
            return Ok(());
        }
        self.dlq.write(&fresh)?;
        self.board.dlq_written(fresh.len() as u64);
        Ok(())
    }
}

/// A source as dead-letter entries name it.
struct SourceLabel {
    file: Option<String>,
    topic: Option<String>,
}

impl SourceLabel {
    /// Where the item at `offset` of `batch` (from source `name`, partition `partition`) was read: for a
    /// merged source, the partition and offset behind the position in the merge.
    fn position(&self, name: &str, partition: u32, batch: &SourceBatch, offset: Option<u64>) -> SourcePosition {
        let (partition, offset) = match offset.and_then(|o| batch.origin(o)) {
            Some((partition, offset)) => (partition, Some(offset)),
            None => (partition, offset),
        };
        SourcePosition { name: name.to_string(), file: self.file.clone(), topic: self.topic.clone(), partition, offset }
    }
}

/// Sleeps for `total`, waking early if shutdown is requested.
fn sleep_unless(shutdown: &Shutdown, total: Duration) {
    let step = Duration::from_millis(20);
    let mut slept = Duration::ZERO;
    while slept < total && !shutdown.is_requested() {
        std::thread::sleep(step.min(total - slept));
        slept += step;
    }
}
