//! Taking a task's checkpoint between two batches: sync the sinks, snapshot the operators, write locally, upload in the background.

use super::{Task, TaskError};
use crate::checkpoint::format::{self, Checkpoint, Header, OperatorState, SinkState};
use crate::checkpoint::local::LocalTier;
use crate::checkpoint::remote::Uploader;
use crate::graph::Guarantee;
use crate::sink::SinkWriter;
use crate::source::SourceReader;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A task's checkpoint schedule and where its checkpoints go.
pub(crate) struct Checkpointing {
    local: Arc<LocalTier>,
    /// A scheduled checkpoint being encoded and written by a thread while the task goes on.
    pending: Option<PendingWrite>,
    /// Copies each checkpoint to the remote tier without making the task wait.
    uploader: Option<Arc<Uploader>>,
    /// Folder of this task's checkpoints in the remote tier: `<pipeline>/<task>`.
    remote_folder: String,
    interval: Duration,
    last_at: Instant,
    last_sequence: Option<u64>,
    fingerprint: String,
    guarantee: Guarantee,
    /// A consumer-group task with a remote tier: checkpoints whose offsets wait for their upload
    /// before the group may have them (remote name, offset), oldest first.
    awaiting_upload: VecDeque<(String, u64)>,
}

impl Checkpointing {
    pub fn new(
        local: LocalTier,
        uploader: Option<Arc<Uploader>>,
        remote_folder: String,
        interval: Duration,
        fingerprint: String,
        guarantee: Guarantee,
        recovered_sequence: Option<u64>,
    ) -> Checkpointing {
        Checkpointing {
            local: Arc::new(local),
            pending: None,
            uploader,
            remote_folder,
            interval,
            last_at: Instant::now(),
            last_sequence: recovered_sequence,
            fingerprint,
            guarantee,
            awaiting_upload: VecDeque::new(),
        }
    }

    /// The sequence number of the last checkpoint taken or restored.
    pub fn last_sequence(&self) -> Option<u64> {
        self.last_sequence
    }

    fn due(&self) -> bool {
        self.last_at.elapsed() >= self.interval
    }

    /// Where checkpoint `sequence` goes in the remote tier.
    fn remote_name(&self, sequence: u64) -> String {
        format!("{}/{}", self.remote_folder, format::file_name(sequence))
    }
}

/// Files sinks and the DLQ wrote to, with what they are for errors: synced before the checkpoint
/// that records their positions is written.
type Unsynced = Vec<(String, std::fs::File)>;

/// Makes the outputs a checkpoint counts as delivered durable, before it is.
fn sync_outputs(unsynced: Unsynced) -> Result<(), String> {
    for (what, file) in unsynced {
        file.sync_data().map_err(|e| format!("cannot make {what} durable: {e}"))?;
    }
    Ok(())
}

/// A checkpoint captured (sinks synced, states snapshotted) and handed to a writer thread.
struct PendingWrite {
    sequence: u64,
    started: Instant,
    /// How long the capture held the task's batches back.
    pause: Duration,
    done: Receiver<Written>,
}

/// What a checkpoint writer thread reports: the written file, its size and the checkpoint (whose
/// states become the restore point), or why it could not be written.
type Written = Result<(PathBuf, u64, Box<Checkpoint>), String>;

/// How long a checkpoint of a task with a transactional sink waits for the
/// remote tier before its transaction may commit.
const TRANSACTIONAL_UPLOAD_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a group task that stops waits for its last checkpoints' uploads before it leaves their
/// offsets uncommitted.
const STOPPING_UPLOAD_TIMEOUT: Duration = Duration::from_secs(30);

impl Task {
    fn has_transactional_sink(&self) -> bool {
        self.sinks.iter().any(|s| matches!(&s.writer, SinkWriter::Kafka(k) if k.transactional()))
    }

    /// Commits `offset` as done: in the transactions of transactional sinks,
    /// or to the consumer group.
    fn commit_through(&mut self, sequence: u64, offset: u64) -> Result<(), TaskError> {
        // Transactional sinks are only ever fed by Kafka sources (validated in the plan).
        let (Some(group), SourceReader::Kafka(source)) = (&self.group, &self.source) else {
            return Ok(());
        };
        if !self.has_transactional_sink() {
            // Under every guarantee the group's offset follows the checkpoints: committed ahead of the
            // newest one, a restart that finds no checkpoint (none taken yet, or all lost) would resume
            // there with empty operator state, and the windows it had filled would never close: alerts lost.
            // With a remote tier, the process that takes the partition over may be on another machine:
            // it sees only the remote tier, so the offset waits until the checkpoint is uploaded.
            if self.checkpointing.uploader.is_none() {
                return self.commit_offset(offset);
            }
            self.checkpointing.awaiting_upload.push_back((self.checkpointing.remote_name(sequence), offset));
            return self.commit_uploaded();
        }
        let mut offsets = rdkafka::TopicPartitionList::new();
        offsets
            .add_partition_offset(source.topic(), source.partition(), rdkafka::Offset::Offset(offset as i64))
            .map_err(|e| TaskError::Checkpoint { task: self.task_id.clone(), reason: e.to_string() })?;
        let metadata = group.group_metadata();
        let mut committed_in_a_transaction = false;
        for sink in self.sinks.iter_mut() {
            if let SinkWriter::Kafka(kafka) = &mut sink.writer
                && kafka.transactional()
            {
                committed_in_a_transaction |= kafka.commit_transaction(metadata.as_ref().map(|m| (&offsets, m)))?;
            }
        }
        if !committed_in_a_transaction {
            // No sink wrote anything since the last checkpoint, so no transaction was committed: the offset
            // goes to the group directly. Recovery resumes only from the checkpoint at the committed offset,
            // so a failed commit stops the task (as a failed transaction does) rather than leave it behind.
            group.commit(source.partition(), offset)?;
        }
        Ok(())
    }

    /// Commits to the group the offset of the newest checkpoint the remote tier holds, if it has one
    /// the group does not have yet (see `commit_through`). Cheap: called after every batch.
    pub(super) fn commit_uploaded(&mut self) -> Result<(), TaskError> {
        let Some(uploader) = &self.checkpointing.uploader else { return Ok(()) };
        let Some((oldest, _)) = self.checkpointing.awaiting_upload.front() else { return Ok(()) };
        let Some(newest) = uploader.newest_uploaded(&self.checkpointing.remote_folder) else { return Ok(()) };
        if *oldest > newest {
            return Ok(());
        }
        let mut through = None;
        while let Some((name, offset)) = self.checkpointing.awaiting_upload.front() {
            if *name > newest {
                break;
            }
            through = Some(*offset);
            self.checkpointing.awaiting_upload.pop_front();
        }
        through.map_or(Ok(()), |offset| self.commit_offset(offset))
    }

    /// Before a group task stops: waits (a bounded time) for its last checkpoints to reach the remote
    /// tier, then commits their offsets. If they do not, the offsets stay uncommitted: whoever takes
    /// the partition over resumes from an older checkpoint, and the sinks skip what it replays.
    pub(super) fn commit_uploaded_before_stopping(&mut self) -> Result<(), TaskError> {
        if self.checkpointing.awaiting_upload.is_empty() {
            return Ok(());
        }
        if let Some(uploader) = &self.checkpointing.uploader
            && let Err(e) = uploader.flush(STOPPING_UPLOAD_TIMEOUT)
        {
            tracing::warn!(task = %self.task_id, error = %e, "the last checkpoints did not reach the remote tier; their offsets stay \
                uncommitted");
        }
        self.commit_uploaded()
    }

    /// Takes a checkpoint if the interval has passed since the last one.
    ///
    /// Without offsets to commit to a consumer group (file sources), the checkpoint is encoded and
    /// written by a thread while batches go on, after it has synced the files sinks wrote to: the
    /// pause is only the capture (sinks flushed, states snapshotted). Nothing waits for such a
    /// checkpoint to be durable: a crash before it is falls back to the one before, whose replay
    /// the sinks' deduplication covers as after any crash.
    pub(super) fn checkpoint_if_due(&mut self, offset: u64) -> Result<(), TaskError> {
        self.finish_pending_write(false)?;
        if self.checkpointing.due() && !self.suspects_hold_checkpoints() {
            if self.group.is_none() && self.guarantee != Guarantee::AtMostOnce {
                self.take_checkpoint_in_background(offset)?;
            } else {
                self.take_checkpoint(offset)?;
            }
        }
        Ok(())
    }

    /// Ends the background write of the last scheduled checkpoint: waits for it if `wait`, else
    /// only looks whether it is done. A failed write stops the task, as a failed checkpoint does.
    pub(super) fn finish_pending_write(&mut self, wait: bool) -> Result<(), TaskError> {
        let Some(pending) = &self.checkpointing.pending else { return Ok(()) };
        let result = if wait {
            pending.done.recv().unwrap_or_else(|_| Err("the checkpoint writer thread died".into()))
        } else {
            match pending.done.try_recv() {
                Ok(result) => result,
                Err(TryRecvError::Empty) => return Ok(()),
                Err(TryRecvError::Disconnected) => Err("the checkpoint writer thread died".into()),
            }
        };
        let pending = self.checkpointing.pending.take().expect("checked above");
        let (path, size, checkpoint) = result.map_err(|reason| TaskError::Checkpoint { task: self.task_id.clone(), reason })?;
        self.checkpoint_durable(pending.sequence, pending.started.elapsed(), pending.pause, size, path);
        // Rewinds after a fault restore this checkpoint from now on (until now, the one before).
        self.set_restore_point(*checkpoint);
        Ok(())
    }

    /// Captures a checkpoint of `offset` now and has a thread encode and write it.
    fn take_checkpoint_in_background(&mut self, offset: u64) -> Result<(), TaskError> {
        self.finish_pending_write(true)?;
        let started = Instant::now();
        let (checkpoint, unsynced) = self.capture(offset)?;
        let sequence = checkpoint.header.sequence;
        self.checkpointing.last_sequence = Some(sequence);
        self.checkpointing.last_at = Instant::now();
        let local = self.checkpointing.local.clone();
        let upload = self.checkpointing.uploader.clone().map(|u| (u, self.checkpointing.remote_name(sequence)));
        let (done, outcome) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name(format!("checkpoint {}", self.task_id))
            .spawn(move || {
                let written = sync_outputs(unsynced).and_then(|()| {
                    let bytes = checkpoint.encode();
                    let path = local.write(sequence, &bytes).map_err(|e| e.to_string())?;
                    let size = bytes.len() as u64;
                    if let Some((uploader, name)) = upload {
                        uploader.submit(name, bytes::Bytes::from(bytes));
                    }
                    Ok((path, size))
                });
                let _ = done.send(written.map(|(path, size)| (path, size, Box::new(checkpoint))));
            })
            .map_err(|e| TaskError::Checkpoint { task: self.task_id.clone(), reason: format!("cannot start a checkpoint writer: {e}") })?;
        self.checkpointing.pending = Some(PendingWrite { sequence, started, pause: started.elapsed(), done: outcome });
        Ok(())
    }

    /// A checkpoint became durable: metrics, status, log.
    fn checkpoint_durable(&mut self, sequence: u64, took: Duration, pause: Duration, size: u64, path: PathBuf) {
        crate::metrics::record_checkpoint(&self.task_id, took, pause, size);
        self.stats.checkpointed(pause);
        self.board.task_checkpointed(&self.task_id, sequence, SystemTime::now(), size, path.display().to_string());
        tracing::debug!(task = %self.task_id, sequence, bytes = size, ?took, ?pause, "checkpoint taken");
    }

    /// `checkpoint` is what a rewind after a fault restores.
    fn set_restore_point(&mut self, checkpoint: Checkpoint) {
        self.restore_point = super::RestorePoint {
            offset: checkpoint.offset,
            // The task's own operators, in task order (kept states of removed operators come after).
            operators: checkpoint.operators.into_iter().take(self.operators.len()).map(|o| Some((o.state_version, o.state))).collect(),
            source_seen: checkpoint.source_seen,
        };
    }

    /// Takes a checkpoint recording `offset` as the place to resume from, and returns once it is durable.
    ///
    /// Sinks and the DLQ are synced first: a checkpoint never records an
    /// offset whose outputs are not durable.
    pub(super) fn take_checkpoint(&mut self, offset: u64) -> Result<(), TaskError> {
        self.finish_pending_write(true)?;
        if self.suspects_hold_checkpoints() {
            // A restart or rewind goes back to the last checkpoint and meets those records again.
            tracing::info!(task = %self.task_id, "checkpoint held back: records that faulted a plugin wait for it to process another");
            return Ok(());
        }
        let started = Instant::now();
        let (checkpoint, unsynced) = self.capture(offset)?;
        let sequence = checkpoint.header.sequence;
        let fail = |reason: String| TaskError::Checkpoint { task: self.task_id.clone(), reason };
        sync_outputs(unsynced).map_err(fail)?;
        let bytes = checkpoint.encode();
        let path = self.checkpointing.local.write(sequence, &bytes).map_err(|e| fail(e.to_string()))?;
        let size = bytes.len() as u64;
        if let Some(uploader) = &self.checkpointing.uploader {
            uploader.submit(self.checkpointing.remote_name(sequence), bytes::Bytes::from(bytes));
            // A transaction commits outputs that no earlier checkpoint knows
            // of. If this process died after the commit but before the upload,
            // a process taking the partition over would restore the previous
            // checkpoint and write those outputs a second time: so the remote
            // tier must have this checkpoint first. (The default mode re-reads
            // the output topic on recovery instead, and needs no such wait.)
            if self.has_transactional_sink() {
                uploader.flush(TRANSACTIONAL_UPLOAD_TIMEOUT).map_err(|e| fail(format!("uploading before the transaction commits: {e}")))?;
            }
        }
        // The checkpoint is durable: now the offsets it records may be
        // committed, inside each transactional sink's transaction with its
        // outputs, else to the group. (A crash between the two leaves a
        // checkpoint ahead of the group's committed offset; recovery then
        // skips it, for its transaction never committed.)
        self.commit_through(sequence, offset)?;
        crate::failpoint::hit("checkpoint-committed");
        let took = started.elapsed();
        self.checkpoint_durable(sequence, took, took, size, path);
        self.checkpointing.last_sequence = Some(sequence);
        self.checkpointing.last_at = Instant::now();
        self.set_restore_point(checkpoint);
        Ok(())
    }

    /// What a checkpoint of `offset` holds, captured now: sink positions, the operators' snapshots,
    /// the deduplication sets; and the files to sync before it is written.
    fn capture(&mut self, offset: u64) -> Result<(Checkpoint, Unsynced), TaskError> {
        let mut unsynced = Unsynced::new();
        let mut sink_positions = Vec::with_capacity(self.sinks.len());
        for sink in &mut self.sinks {
            let (positions, file) = sink.writer.checkpoint_positions()?;
            unsynced.extend(file.map(|f| (format!("the output of sink `{}`", sink.name), f)));
            sink_positions.push(positions);
        }
        let (positions, file) = self.dlq.checkpoint_positions()?;
        unsynced.extend(file.map(|f| ("the dead-letter queue".to_string(), f)));
        let dlq = SinkState { name: "dlq".into(), positions, delivered: self.dlq_delivered.snapshot() };
        let mut operators = Vec::with_capacity(self.operators.len());
        for op in &mut self.operators {
            let (state_version, state) = op.instance.snapshot().map_err(|fault| TaskError::Fault {
                fault,
                source_name: self.source_name.clone(),
                first_offset: offset,
                end_offset: offset,
            })?;
            self.board.operator_state_version(&op.name, state_version);
            operators.push(OperatorState {
                name: op.name.clone(),
                plugin_digest: op.instance.digest().to_string(),
                wit_version: op.wit_version.clone(),
                state_version,
                state,
            });
        }

        operators.extend(self.kept_states.iter().cloned());
        // Last, once nothing else can fail: the ledgers start counting deliveries afresh from here.
        let now = super::now_ms();
        let sinks = self
            .sinks
            .iter_mut()
            .zip(sink_positions)
            .map(|(sink, positions)| SinkState { name: sink.name.clone(), positions, delivered: sink.ledger.checkpointed(now) })
            .collect();
        let sequence = self.checkpointing.last_sequence.map_or(1, |s| s + 1);
        let checkpoint = Checkpoint {
            header: Header {
                pipeline: self.pipeline.clone(),
                fingerprint: self.checkpointing.fingerprint.clone(),
                task: self.task_id.clone(),
                sequence,
                created_at_ms: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64),
                guarantee: self.checkpointing.guarantee.as_str().to_string(),
                host_version: env!("CARGO_PKG_VERSION").to_string(),
            },
            operators,
            source: self.source_name.clone(),
            partition: 0,
            offset,
            sinks,
            dlq,
            source_seen: self.source_seen.as_ref().map(|s| s.snapshot()),
            input: self.source.input_fingerprint(offset)?,
            frontier: self.source.frontier_at(offset)?,
        };
        Ok((checkpoint, unsynced))
    }
}
