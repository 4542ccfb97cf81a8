//! One source partition's batch loop: read a batch, run it through the operators in order, deliver it, dead-letter what failed.
//!
//! Between two batches nothing is in flight: every output of a batch has been
//! handed to the sinks and every failure to the DLQ before the next read. That
//! is what makes the point between batches a consistent cut for checkpoints.
//! Records flow between operators as packed buffers, never re-encoded; a
//! record's source offset is traced back through output origins only when a
//! failure needs it.

use crate::dlq::{self, Envelope, ErrorKind, FailedRecord, FailureContext, FileDlq, SourcePosition, Stage};
use crate::graph::{NodeRef, Plan, RetryPolicy, SourceKind};
use crate::runtime::{OperatorInstance, PluginFault};
use crate::sink::{FileSink, SinkError};
use crate::source::{FileSource, ReadStatus, SourceBatch, SourceError};
use crate::stats::Stats;
use sda_wire::{BatchReader, BatchWriter, FailureKind as Kind, FailureReason as Reason, RecordView};
use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Longest single wait between retries of a transient failure.
const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(30);

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
    #[error("{fault} (the batch in hand held source `{source_name}` offsets {first_offset} to {end_offset})")]
    Fault { fault: PluginFault, source_name: String, first_offset: u64, end_offset: u64 },
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
}

/// How a task ended without error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskEnd {
    /// The source ended and everything was flushed.
    Finished,
    /// Shutdown was requested; the batch in hand was finished first.
    Stopped,
}

/// Where an operator or sink reads from, within one task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Input {
    Source,
    /// Position in [`Task::operators`].
    Operator(usize),
}

pub(crate) struct TaskOperator {
    pub name: String,
    pub instance: OperatorInstance,
    pub retry: RetryPolicy,
    inputs: Vec<Input>,
}

pub(crate) struct TaskSink {
    /// Index in the plan's sinks (for stats).
    pub plan_index: usize,
    pub sink: Arc<Mutex<FileSink>>,
    inputs: Vec<Input>,
}

pub struct Task {
    pipeline: String,
    source_name: String,
    source_file: String,
    source: FileSource,
    operators: Vec<TaskOperator>,
    sinks: Vec<TaskSink>,
    dlq: Arc<Mutex<FileDlq>>,
    stats: Arc<Stats>,
    batch_size: u32,
    poll_interval: Duration,
}

/// A failure that will not be retried any more.
struct Settled {
    index: u32,
    kind: Kind,
    reason: Reason,
    message: String,
    retry_count: u32,
}

impl Task {
    /// A task for source `source_index` of `plan`, running `operators` (plan
    /// indices, in plan order, with their instances) and `sinks`.
    pub(crate) fn new(
        plan: &Plan,
        source_index: usize,
        source: FileSource,
        operators: Vec<(usize, OperatorInstance)>,
        sinks: Vec<(usize, Arc<Mutex<FileSink>>)>,
        dlq: Arc<Mutex<FileDlq>>,
        stats: Arc<Stats>,
    ) -> Task {
        let position: Vec<usize> = operators.iter().map(|(i, _)| *i).collect();
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
        let operators = operators
            .into_iter()
            .map(|(i, instance)| TaskOperator {
                name: plan.operators[i].name.clone(),
                instance,
                retry: plan.operators[i].retry,
                inputs: map_inputs(&plan.operators[i].inputs),
            })
            .collect();
        let sinks = sinks
            .into_iter()
            .map(|(i, sink)| TaskSink { plan_index: i, sink, inputs: map_inputs(&plan.sinks[i].inputs) })
            .collect();
        let SourceKind::File(file_plan) = &plan.sources[source_index].kind;
        Task {
            pipeline: plan.name.clone(),
            source_name: plan.sources[source_index].name.clone(),
            source_file: file_plan.path.display().to_string(),
            source,
            operators,
            sinks,
            dlq,
            stats,
            batch_size: plan.batch_size,
            poll_interval: file_plan.poll_interval,
        }
    }

    /// Runs batches until the source ends or `shutdown` is requested.
    pub fn run(mut self, shutdown: &Shutdown) -> Result<TaskEnd, TaskError> {
        let mut batch = SourceBatch::default();
        loop {
            if shutdown.is_requested() {
                return Ok(TaskEnd::Stopped);
            }
            let status = self.source.read_batch(self.batch_size, &mut batch)?;
            let mut dead_letters = self.reject_envelopes(&batch);
            self.stats.add_records_in(u64::from(batch.count));
            // At the end of input, event time jumps to the end of time so
            // windowed operators close and emit everything they hold.
            let watermark = (status == ReadStatus::End).then_some(i64::MAX);
            if batch.count > 0 || watermark.is_some() {
                self.run_batch(&batch, watermark, &mut dead_letters).map_err(|e| match e {
                    BatchError::Fault(fault) => TaskError::Fault {
                        fault,
                        source_name: self.source_name.clone(),
                        first_offset: batch.offsets.first().copied().unwrap_or(batch.end_offset),
                        end_offset: batch.end_offset,
                    },
                    BatchError::Sink(e) => TaskError::Sink(e),
                    BatchError::Dlq(e) => TaskError::Dlq(e),
                })?;
            }
            self.write_dead_letters(dead_letters)?;
            match status {
                ReadStatus::More => {}
                ReadStatus::End => return Ok(TaskEnd::Finished),
                ReadStatus::Idle => sleep_unless(shutdown, self.poll_interval),
            }
        }
    }

    /// Dead-letter entries for the input the source could not read as records.
    fn reject_envelopes(&self, batch: &SourceBatch) -> Vec<Envelope> {
        let mut envelopes = Vec::with_capacity(batch.rejects.len());
        for reject in &batch.rejects {
            tracing::debug!(source = %self.source_name, offset = reject.offset, "line dead-lettered: {}", reject.message);
            self.stats.dead_lettered(&self.source_name, ErrorKind::Deserialization);
            envelopes.push(Envelope::new(
                FailureContext {
                    pipeline: &self.pipeline,
                    operator: &self.source_name,
                    stage: Stage::Source,
                    plugin_digest: None,
                    error_kind: ErrorKind::Deserialization,
                    error_message: reject.message.clone(),
                    retry_count: 0,
                    source: self.position(Some(reject.offset)),
                    checkpoint_seq: None,
                },
                FailedRecord { key: b"", payload: &reject.bytes, headers: Vec::new() },
            ));
        }
        envelopes
    }

    /// Appends a batch's dead letters in source order (entries with no single
    /// source record last), so the DLQ reads the same whatever the batch size.
    fn write_dead_letters(&self, mut envelopes: Vec<Envelope>) -> Result<(), dlq::DlqError> {
        if envelopes.is_empty() {
            return Ok(());
        }
        envelopes.sort_by_key(|e| e.source.offset.unwrap_or(u64::MAX));
        let mut dlq = self.dlq.lock().unwrap_or_else(|e| e.into_inner());
        for envelope in &envelopes {
            dlq.append(envelope);
        }
        dlq.flush()
    }

    fn position(&self, offset: Option<u64>) -> SourcePosition {
        SourcePosition {
            name: self.source_name.clone(),
            file: Some(self.source_file.clone()),
            topic: None,
            partition: 0,
            offset,
        }
    }

    /// Pushes one batch (and, at the end of input, the final watermark)
    /// through every operator, then into the sinks; failures go to `envelopes`.
    fn run_batch(&mut self, batch: &SourceBatch, watermark: Option<i64>, envelopes: &mut Vec<Envelope>) -> Result<(), BatchError> {
        let mut outputs: Vec<Vec<u8>> = Vec::with_capacity(self.operators.len());
        let mut segments: Vec<Vec<(Input, u32)>> = Vec::with_capacity(self.operators.len());

        for k in 0..self.operators.len() {
            let lineage = Lineage { batch, outputs: &outputs, segments: &segments };
            let (input, input_segments) = lineage.assemble(&self.operators[k].inputs);
            let input_count: u32 = input_segments.iter().map(|(_, n)| n).sum();
            let op = &mut self.operators[k];
            let (mut produced, settled) = if input_count > 0 {
                process_with_retries(op, &input)?
            } else {
                (sda_wire::empty_batch(), Vec::new())
            };
            if !settled.is_empty() {
                let views = BatchReader::read_all(&input).expect("the host packed this batch");
                let this = Lineage { batch, outputs: &outputs, segments: &segments };
                for failure in settled {
                    let offset = this.offset_of_input(&input_segments, failure.index);
                    let record = &views[failure.index as usize];
                    envelopes.extend(self.settle(k, failure, offset, record));
                }
            }
            if let Some(t) = watermark {
                let flushed = self.operators[k].instance.on_watermark(t)?;
                if flushed.output_count > 0 {
                    produced = concat(&produced, &flushed.outputs);
                }
            }
            outputs.push(produced);
            segments.push(input_segments);
        }

        let lineage = Lineage { batch, outputs: &outputs, segments: &segments };
        for sink in &self.sinks {
            let mut file = sink.sink.lock().unwrap_or_else(|e| e.into_inner());
            let mut written = 0u64;
            for &input in &sink.inputs {
                for (i, record) in BatchReader::new(lineage.buffer(input)).expect("checked output").enumerate() {
                    let record = record.expect("checked output");
                    match file.write(record.payload) {
                        Ok(()) => written += 1,
                        Err(rejection) => {
                            let offset = lineage.offset_of(input, i as u32);
                            self.stats.dead_lettered(file.name(), ErrorKind::SinkRejected);
                            envelopes.push(Envelope::new(
                                FailureContext {
                                    pipeline: &self.pipeline,
                                    operator: file.name(),
                                    stage: Stage::Sink,
                                    plugin_digest: None,
                                    error_kind: ErrorKind::SinkRejected,
                                    error_message: rejection.0,
                                    retry_count: 0,
                                    source: self.position(offset),
                                    checkpoint_seq: None,
                                },
                                failed_record(&record),
                            ));
                        }
                    }
                }
            }
            file.flush()?;
            self.stats.add_sink_records(sink.plan_index, written);
        }
        Ok(())
    }

    /// Counts a discard, or builds the dead-letter entry for a failure.
    fn settle(&self, k: usize, failure: Settled, offset: Option<u64>, record: &RecordView<'_>) -> Option<Envelope> {
        let op = &self.operators[k];
        let error_kind = match (failure.kind, failure.reason) {
            (Kind::Discard, reason) => {
                tracing::trace!(operator = %op.name, reason = reason.as_str(), "record discarded: {}", failure.message);
                self.stats.discarded(&op.name, reason.as_str());
                return None;
            }
            (Kind::Transient, _) => ErrorKind::RetriesExhausted,
            (Kind::Permanent, Reason::Deserialization) => ErrorKind::Deserialization,
            (Kind::Permanent, Reason::Validation) => ErrorKind::Validation,
            (Kind::Permanent, Reason::Late) => ErrorKind::LateData,
            (Kind::Permanent, Reason::Duplicate | Reason::Suppressed) => ErrorKind::OperatorRejected,
            (Kind::Permanent, Reason::Operator) => ErrorKind::OperatorRejected,
        };
        self.stats.dead_lettered(&op.name, error_kind);
        Some(Envelope::new(
            FailureContext {
                pipeline: &self.pipeline,
                operator: &op.name,
                stage: Stage::Operator,
                plugin_digest: Some(op.instance.digest()),
                error_kind,
                error_message: failure.message,
                retry_count: failure.retry_count,
                source: self.position(offset),
                checkpoint_seq: None,
            },
            failed_record(record),
        ))
    }
}

fn failed_record<'a>(record: &RecordView<'a>) -> FailedRecord<'a> {
    FailedRecord { key: record.key, payload: record.payload, headers: record.headers().map(|h| (h.name, h.value)).collect() }
}

/// Calls `process`, retrying records the operator calls transient with
/// exponential backoff. Retried records' outputs follow the batch's; their
/// origins are mapped back to indices of `input`.
fn process_with_retries(op: &mut TaskOperator, input: &[u8]) -> Result<(Vec<u8>, Vec<Settled>), PluginFault> {
    let first = op.instance.process(input)?;
    let mut settled = Vec::new();
    let mut transient: Vec<(u32, String)> = Vec::new();
    sort_failures(first.failures.into_iter().map(|f| (f.index, f)), 0, &mut settled, &mut transient);
    if transient.is_empty() {
        return Ok((first.outputs, settled));
    }

    let views = BatchReader::read_all(input).expect("the host packed this batch");
    let mut all = BatchWriter::reuse(Vec::with_capacity(first.outputs.len()));
    all.append_batch(&first.outputs).expect("checked output");
    let mut attempt = 0;
    while !transient.is_empty() && attempt < op.retry.max_retries {
        attempt += 1;
        let wait = op.retry.backoff.saturating_mul(1 << (attempt - 1).min(16)).min(MAX_RETRY_BACKOFF);
        tracing::debug!(operator = %op.name, records = transient.len(), attempt, ?wait, "retrying transient failures");
        std::thread::sleep(wait);
        let original: Vec<u32> = transient.iter().map(|(i, _)| *i).collect();
        let mut retry = BatchWriter::new();
        for &i in &original {
            retry.push_view(None, &views[i as usize]);
        }
        let result = op.instance.process(&retry.finish())?;
        for record in BatchReader::new(&result.outputs).expect("checked output") {
            let record = record.expect("checked output");
            all.push_view(record.origin.map(|o| original[o as usize]), &record);
        }
        transient.clear();
        sort_failures(
            result.failures.into_iter().map(|f| (original[f.index as usize], f)),
            attempt,
            &mut settled,
            &mut transient,
        );
    }
    for (index, message) in transient {
        settled.push(Settled {
            index,
            kind: Kind::Transient,
            reason: Reason::Operator,
            message: format!("still failing after {attempt} retries: {message}"),
            retry_count: attempt,
        });
    }
    Ok((all.finish(), settled))
}

fn sort_failures(
    failures: impl Iterator<Item = (u32, crate::runtime::PluginFailure)>,
    retry_count: u32,
    settled: &mut Vec<Settled>,
    transient: &mut Vec<(u32, String)>,
) {
    for (index, f) in failures {
        if f.kind == Kind::Transient {
            transient.push((index, f.message));
        } else {
            settled.push(Settled { index, kind: f.kind, reason: f.reason, message: f.message, retry_count });
        }
    }
}

fn concat(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut w = BatchWriter::with_capacity(a.len() + b.len());
    w.append_batch(a).expect("checked output");
    w.append_batch(b).expect("checked output");
    w.finish()
}

/// The buffers of one batch in flight, and how records trace back to source offsets.
struct Lineage<'a> {
    batch: &'a SourceBatch,
    /// Outputs of the operators run so far, by position.
    outputs: &'a [Vec<u8>],
    /// For each operator run so far: its input, as consecutive (input, count) runs.
    segments: &'a [Vec<(Input, u32)>],
}

impl Lineage<'_> {
    fn buffer(&self, input: Input) -> &[u8] {
        match input {
            Input::Source => &self.batch.packed,
            Input::Operator(k) => &self.outputs[k],
        }
    }

    fn count(&self, input: Input) -> u32 {
        match input {
            Input::Source => self.batch.count,
            Input::Operator(k) => BatchReader::declared_count(&self.outputs[k]).expect("checked output"),
        }
    }

    /// An operator's input batch: borrowed when it has one input, else the
    /// concatenation of its inputs in declared order.
    fn assemble(&self, inputs: &[Input]) -> (Cow<'_, [u8]>, Vec<(Input, u32)>) {
        let segments: Vec<(Input, u32)> = inputs.iter().map(|&i| (i, self.count(i))).collect();
        if let [single] = inputs {
            return (Cow::Borrowed(self.buffer(*single)), segments);
        }
        let mut w = BatchWriter::with_capacity(inputs.iter().map(|&i| self.buffer(i).len()).sum());
        for &i in inputs {
            w.append_batch(self.buffer(i)).expect("checked output");
        }
        (Cow::Owned(w.finish()), segments)
    }

    /// Source offset of record `index` of an operator's assembled input.
    fn offset_of_input(&self, segments: &[(Input, u32)], mut index: u32) -> Option<u64> {
        for &(input, count) in segments {
            if index < count {
                return self.offset_of(input, index);
            }
            index -= count;
        }
        None
    }

    /// Source offset of record `index` of `input`, following output origins
    /// back to the source. `None` for outputs with no single input.
    fn offset_of(&self, input: Input, index: u32) -> Option<u64> {
        match input {
            Input::Source => self.batch.offsets.get(index as usize).copied(),
            Input::Operator(k) => {
                let record = BatchReader::new(&self.outputs[k]).ok()?.nth(index as usize)?.ok()?;
                self.offset_of_input(&self.segments[k], record.origin?)
            }
        }
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
