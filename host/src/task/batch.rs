//! One batch: compute (every operator in order, with retries), then deliver (sinks and DLQ), in the order the guarantee requires.

use super::lineage::Lineage;
use super::{BatchError, Input, Task, TaskOperator, now_ms};
use crate::dlq::{Envelope, ErrorKind, FailedRecord, FailureContext, Stage};
use crate::graph::Guarantee;
use crate::runtime::PluginFault;
use crate::source::SourceBatch;
use sda_wire::{BatchReader, BatchWriter, FailureKind as Kind, FailureReason as Reason, RecordView};
use std::time::{Duration, Instant};

/// Longest single wait between retries of a transient failure.
const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(30);

/// A failure that will not be retried any more.
struct Settled {
    index: u32,
    kind: Kind,
    reason: Reason,
    message: String,
    retry_count: u32,
}

/// Every operator's outputs for one batch, and what each read.
pub(super) struct Computed {
    outputs: Vec<Vec<u8>>,
    segments: Vec<Vec<(Input, u32)>>,
}

impl Task {
    /// Pushes one batch (and, at the end of input, the final watermark)
    /// through every operator, then delivers its outputs and dead letters.
    /// `watermark`: what `on-watermark` is called with after the operators' `process` (`None`: not called).
    pub(super) fn run_batch(
        &mut self,
        batch: &SourceBatch,
        watermark: Option<i64>,
        dead_letters: &mut Vec<Envelope>,
    ) -> Result<(), BatchError> {
        let computed = self.compute(batch, watermark, Some(dead_letters))?;
        crate::failpoint::hit("mid-process");
        if self.guarantee == Guarantee::AtMostOnce {
            // Commit before delivering: a crash from here on loses the rest of
            // this batch's outputs, and nothing is ever delivered twice.
            self.take_checkpoint(batch.end_offset).map_err(|e| BatchError::Task(Box::new(e)))?;
        }
        self.deliver(batch, &computed, dead_letters)?;
        self.write_dead_letters(std::mem::take(dead_letters), batch)?;
        Ok(())
    }

    /// Runs every operator over `batch`. Failures the operators report are settled into `envelopes`
    /// (dead letters) and the counts of discards; `None` (a probe, whose work is thrown away) settles nothing.
    pub(super) fn compute(
        &mut self,
        batch: &SourceBatch,
        watermark: Option<i64>,
        mut envelopes: Option<&mut Vec<Envelope>>,
    ) -> Result<Computed, BatchError> {
        let mut outputs: Vec<Vec<u8>> = Vec::with_capacity(self.operators.len());
        let mut segments: Vec<Vec<(Input, u32)>> = Vec::with_capacity(self.operators.len());
        let max_call_records = self.batch_size.max(1) as usize;
        for k in 0..self.operators.len() {
            let lineage = Lineage { batch, outputs: &outputs, segments: &segments };
            let (input, input_segments) = lineage.assemble(&self.operators[k].inputs);
            let input_count: u32 = input_segments.iter().map(|(_, n)| n).sum();
            let op = &mut self.operators[k];
            let started = Instant::now();
            let (mut produced, settled) = if input_count > 0 {
                process_in_calls_of(op, &input, input_count as usize, max_call_records)?
            } else {
                (sda_wire::empty_batch(), Vec::new())
            };
            if input_count > 0 {
                crate::metrics::operator_batch(&op.name, started.elapsed());
                // Evidence that the plugin works: what a record that faulted it waits for.
                op.breaker.succeeded();
            }
            if let Some(envelopes) = envelopes.as_deref_mut()
                && !settled.is_empty()
            {
                let views = BatchReader::read_all(&input).expect("the host packed this batch");
                let this = Lineage { batch, outputs: &outputs, segments: &segments };
                for failure in settled {
                    let offset = this.offset_of_input(&input_segments, failure.index);
                    let record = &views[failure.index as usize];
                    envelopes.extend(self.settle(k, failure, batch, offset, record));
                }
            }
            if let Some(t) = watermark {
                let started = Instant::now();
                let flushed = self.operators[k].instance.on_watermark(t)?;
                self.stats.watermark_call(&self.operators[k].name, batch.end_offset, started.elapsed());
                if flushed.output_count > 0 {
                    produced = concat(&produced, &flushed.outputs);
                }
            }
            outputs.push(produced);
            segments.push(input_segments);
        }
        Ok(Computed { outputs, segments })
    }

    /// Hands each sink its records, one delivery per sink. Under exactly-once
    /// a record the sink already delivered (a replay after a crash) is skipped.
    fn deliver(&mut self, batch: &SourceBatch, computed: &Computed, envelopes: &mut Vec<Envelope>) -> Result<(), BatchError> {
        let lineage = Lineage { batch, outputs: &computed.outputs, segments: &computed.segments };
        let exactly_once = self.guarantee == Guarantee::ExactlyOnce;
        let now = now_ms();
        for sink in &mut self.sinks {
            let transactional = matches!(&sink.writer, crate::sink::SinkWriter::Kafka(k) if k.transactional());
            // What a replay owes the sink: outputs it delivered past the point the task resumed from.
            let ledger = (exactly_once && sink.writer.keeps_delivery_record()) || transactional;
            let mut records: Vec<(&[u8], &[u8])> = Vec::new();
            let mut origins: Vec<(Input, u32, crate::dedup::Identity)> = Vec::new();
            let mut repeats = 0u64;
            for &input in &sink.inputs {
                for (i, record) in BatchReader::new(lineage.buffer(input)).expect("checked output").enumerate() {
                    let record = record.expect("checked output");
                    let id = sink.writer.identity(record.key, record.payload);
                    if ledger && sink.ledger.settles(id) {
                        repeats += 1;
                        continue;
                    }
                    records.push((record.key, record.payload));
                    origins.push((input, i as u32, id));
                }
            }
            let refused = sink.writer.deliver(&records)?;
            let written = (origins.len() - refused.len()) as u64;
            let mut refused_at = refused.iter().map(|(i, _)| *i).peekable();
            for (index, &(_, _, id)) in origins.iter().enumerate() {
                if refused_at.peek() == Some(&index) {
                    refused_at.next();
                } else if ledger {
                    sink.ledger.delivered(id, now);
                }
            }
            for (index, undelivered) in refused {
                let (input, i, _) = origins[index];
                let (error_kind, error_message, retry_count) = match undelivered {
                    crate::sink::Undelivered::Rejected(r) => (ErrorKind::SinkRejected, r.0, 0),
                    crate::sink::Undelivered::RetriesExhausted { retries, message } => (ErrorKind::RetriesExhausted, message, retries),
                };
                let record = BatchReader::new(lineage.buffer(input))
                    .expect("checked output")
                    .nth(i as usize)
                    .expect("in range")
                    .expect("checked output");
                envelopes.push(Envelope::new(
                    FailureContext {
                        pipeline: &self.pipeline,
                        operator: &sink.name,
                        stage: Stage::Sink,
                        plugin_digest: None,
                        error_kind,
                        error_message,
                        retry_count,
                        source: self.source_label.position(&self.source_name, self.source.partition(), batch, lineage.offset_of(input, i)),
                        checkpoint_seq: self.checkpointing.last_sequence(),
                    },
                    failed_record(&record),
                ));
            }
            self.stats.add_sink_records(&sink.name, written);
            if repeats > 0 {
                self.stats.dedup_hits(&sink.name, repeats);
            }
        }
        Ok(())
    }

    /// Counts a discard, or builds the dead-letter entry for a failure.
    fn settle(&self, k: usize, failure: Settled, batch: &SourceBatch, offset: Option<u64>, record: &RecordView<'_>) -> Option<Envelope> {
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
            (Kind::Permanent, Reason::Duplicate | Reason::Suppressed | Reason::Operator) => ErrorKind::OperatorRejected,
        };
        Some(Envelope::new(
            FailureContext {
                pipeline: &self.pipeline,
                operator: &op.name,
                stage: Stage::Operator,
                plugin_digest: Some(op.instance.digest()),
                error_kind,
                error_message: failure.message,
                retry_count: failure.retry_count,
                source: self.position(batch, offset),
                checkpoint_seq: self.checkpointing.last_sequence(),
            },
            failed_record(record),
        ))
    }
}

fn failed_record<'a>(record: &RecordView<'a>) -> FailedRecord<'a> {
    FailedRecord { key: record.key, payload: record.payload, headers: record.headers().map(|h| (h.name, h.value)).collect() }
}

/// Calls `process` on `input` (`count` records) in calls of at most `max_records` records each: the task's
/// `batch_size`, what a call's deadline (`call_timeout_ms`) is sized for. A source batch is never larger, but an
/// operator's outputs can be far larger than its input (a window's states, a window's candidates), and handed on in
/// one call they would turn valid work into a timeout. The outputs and failures are those of one call, their
/// origins and indices counted in `input`; operators' results do not depend on how their input is cut into calls.
fn process_in_calls_of(
    op: &mut TaskOperator,
    input: &[u8],
    count: usize,
    max_records: usize,
) -> Result<(Vec<u8>, Vec<Settled>), PluginFault> {
    if count <= max_records {
        return process_with_retries(op, input);
    }
    let views = BatchReader::read_all(input).expect("the host packed this batch");
    let mut all = BatchWriter::new();
    let mut settled = Vec::new();
    for (n, chunk) in views.chunks(max_records).enumerate() {
        let start = (n * max_records) as u32;
        let mut call = BatchWriter::new();
        for view in chunk {
            call.push_view(view.origin, view);
        }
        let (outputs, failures) = process_with_retries(op, &call.finish())?;
        for record in BatchReader::new(&outputs).expect("checked output") {
            let record = record.expect("checked output");
            all.push_view(record.origin.map(|o| o + start), &record);
        }
        settled.extend(failures.into_iter().map(|f| Settled { index: f.index + start, ..f }));
    }
    Ok((all.finish(), settled))
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
    let started = Instant::now();
    while !transient.is_empty() && attempt < op.retry.max_retries {
        let wait = with_jitter(op.retry.backoff.saturating_mul(1 << attempt.min(16)).min(MAX_RETRY_BACKOFF));
        if started.elapsed() + wait > op.retry.max_total {
            break;
        }
        attempt += 1;
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
        sort_failures(result.failures.into_iter().map(|f| (original[f.index as usize], f)), attempt, &mut settled, &mut transient);
    }
    for (index, message) in transient {
        settled.push(Settled {
            index,
            kind: Kind::Transient,
            reason: Reason::Operator,
            message: format!("still failing after {attempt} retries in {:.1} s: {message}", started.elapsed().as_secs_f64()),
            retry_count: attempt,
        });
    }
    Ok((all.finish(), settled))
}

/// `wait` scaled by a random factor in [0.5, 1): retries of many records (or
/// many tasks) that failed together do not come back together.
fn with_jitter(wait: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let random = std::collections::hash_map::RandomState::new().build_hasher().finish();
    wait.mul_f64(0.5 + (random >> 11) as f64 / (1u64 << 54) as f64)
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
