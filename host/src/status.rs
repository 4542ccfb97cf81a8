//! What the pipeline is doing, as `/status` and `sda-pipeline status` show it: the [`StatusBoard`] the host keeps up to date, and the [`PipelineStatus`] read from it.
//!
//! The host writes the board as it runs (a short write lock per batch and per
//! checkpoint); the admin endpoint ([`crate::admin`]) and the swap controller
//! ([`crate::swap`]) read it. The wire form, [`PipelineStatus`], is the one
//! definition both the server and the client (`sda-pipeline status`) use.

use crate::metrics::RecoveryPath;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Instant, SystemTime};

/// Version of the `/status` JSON layout; raised when a field changes meaning or goes away (not when one is added).
pub const STATUS_SCHEMA_VERSION: u32 = 1;

/// Overall health, worst first when compared: `Down > Degraded > Ok`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Every task is running or has finished.
    Ok,
    /// Running, but something needs attention (see the reasons).
    Degraded,
    /// A task has failed: the pipeline is not processing its input.
    Down,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Ok => "ok",
            Health::Degraded => "degraded",
            Health::Down => "down",
        }
    }
}

/// Where a task is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    /// Known (e.g. recovering its state) but not yet reading.
    Starting,
    Running,
    /// Its source ended, or shutdown was requested, and it stopped cleanly.
    Finished,
    /// It stopped on an error (`error` says which); the pipeline is down.
    Failed,
}

impl TaskState {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Starting => "starting",
            TaskState::Running => "running",
            TaskState::Finished => "finished",
            TaskState::Failed => "failed",
        }
    }
}

/// What the host knows of one operator's plugin; shown under `operators` in `/status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorStatus {
    /// The `.wasm` file, as resolved from the pipeline file.
    pub plugin_path: String,
    /// `sha256:<hex>` of the component.
    pub digest: String,
    /// The WIT package version it was built against, e.g. `0.1.0`.
    pub wit_version: String,
    /// The version of the state it snapshots, once known.
    pub state_version: Option<u32>,
    /// Plugin faults in this run (each cost one dead-lettered record, once isolated).
    pub faults: u64,
    /// Why the operator was stopped (its circuit breaker opened), if it was.
    pub stopped: Option<String>,
    /// When its running plugin was swapped in (RFC 3339), if it was.
    pub swapped_at: Option<String>,
    /// Who or what swapped it in.
    pub swapped_by: Option<String>,
    /// The digest it ran before, if it was swapped.
    pub swapped_from: Option<String>,
}

/// The whole pipeline, as `GET /status` returns it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PipelineStatus {
    /// [`STATUS_SCHEMA_VERSION`].
    pub schema_version: u32,
    pub pipeline: String,
    pub health: Health,
    /// Why `health` is not `ok`, one sentence each; empty when it is.
    pub reasons: Vec<String>,
    /// When the board was created (RFC 3339, UTC).
    pub started_at: String,
    pub uptime_seconds: f64,
    /// By task name.
    pub tasks: BTreeMap<String, TaskStatus>,
    /// By operator name.
    pub operators: BTreeMap<String, OperatorStatus>,
}

/// One task (one source partition's batch loop).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskStatus {
    /// The source it reads.
    pub source: String,
    pub state: TaskState,
    /// Why it failed, when `state` is `failed`.
    pub error: Option<String>,
    /// The source offset it has read up to.
    pub source_offset: u64,
    /// Records it has read in this run.
    pub records_in: u64,
    /// When it started reading (RFC 3339), if it has.
    pub started_at: Option<String>,
    /// Seconds since it last reported progress (a batch); a growing value on a running task means it is stuck or idle.
    pub last_progress_age_seconds: Option<f64>,
    /// How its state was obtained at start, if it has recovered.
    pub recovery: Option<RecoveryStatus>,
    /// Its last durable checkpoint in this run, if any.
    pub last_checkpoint: Option<CheckpointStatus>,
    /// Checkpoints it has written in this run.
    pub checkpoints: u64,
}

/// How a task's state was obtained when it started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryStatus {
    /// `local`, `local_older`, `remote` or `fresh`.
    pub path: RecoveryPath,
    /// The sequence number of the checkpoint restored (none when fresh).
    pub sequence: Option<u64>,
}

/// A task's last durable checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckpointStatus {
    pub sequence: u64,
    /// When it became durable (RFC 3339).
    pub at: String,
    pub age_seconds: f64,
    pub bytes: u64,
    /// Where it lies on local disk.
    pub local_path: String,
}

#[derive(Debug)]
struct TaskEntry {
    source: String,
    state: TaskState,
    error: Option<String>,
    source_offset: u64,
    records_in: u64,
    started: Option<(Instant, SystemTime)>,
    last_progress: Option<Instant>,
    recovery: Option<RecoveryStatus>,
    checkpoint: Option<CheckpointEntry>,
    checkpoints: u64,
}

impl TaskEntry {
    fn new() -> TaskEntry {
        TaskEntry {
            source: String::new(),
            state: TaskState::Starting,
            error: None,
            source_offset: 0,
            records_in: 0,
            started: None,
            last_progress: None,
            recovery: None,
            checkpoint: None,
            checkpoints: 0,
        }
    }
}

#[derive(Debug)]
struct CheckpointEntry {
    sequence: u64,
    at: SystemTime,
    bytes: u64,
    local_path: String,
}

#[derive(Debug, Default)]
struct Board {
    operators: BTreeMap<String, OperatorStatus>,
    tasks: BTreeMap<String, TaskEntry>,
    /// Named conditions that make the pipeline degraded, with their reasons.
    degraded: BTreeMap<String, String>,
}

impl Board {
    /// The task's entry, created (as `starting`) if this is the first word of it.
    fn task(&mut self, task: &str) -> &mut TaskEntry {
        if !self.tasks.contains_key(task) {
            self.tasks.insert(task.to_string(), TaskEntry::new());
        }
        self.tasks.get_mut(task).expect("inserted above")
    }

    fn health(&self) -> (Health, Vec<String>) {
        let mut health = Health::Ok;
        let mut reasons = Vec::new();
        for (name, task) in &self.tasks {
            if task.state == TaskState::Failed {
                health = Health::Down;
                let error = task.error.as_deref().unwrap_or("no reason given");
                reasons.push(format!("task `{name}` failed: {error}"));
            }
        }
        for (check, reason) in &self.degraded {
            health = health.max(Health::Degraded);
            reasons.push(format!("{check}: {reason}"));
        }
        (health, reasons)
    }
}

/// What `/status` shows and `/healthz` judges; updated by the host as it runs.
///
/// Every update is a short write lock and, the first time a name is seen, one
/// allocation: cheap enough per batch. Updates for a task never announced with
/// [`task_started`](StatusBoard::task_started) create it, so the order the host
/// reports in (recovery before start, say) does not matter.
#[derive(Debug)]
pub struct StatusBoard {
    pipeline: String,
    created: Instant,
    created_at: SystemTime,
    board: RwLock<Board>,
    dlq_growth: crate::dlq::growth::DlqGrowth,
}

/// The degraded condition the dead-letter growth alert sets.
const DLQ_GROWTH_CHECK: &str = "dlq_growth";

impl StatusBoard {
    pub fn new(pipeline: &str) -> Arc<StatusBoard> {
        StatusBoard::with_dlq_alert(pipeline, None)
    }

    /// A board that turns `degraded` while more than `growth_alert_per_minute` dead letters were written in the last minute.
    pub fn with_dlq_alert(pipeline: &str, growth_alert_per_minute: Option<u64>) -> Arc<StatusBoard> {
        Arc::new(StatusBoard {
            pipeline: pipeline.to_string(),
            created: Instant::now(),
            created_at: SystemTime::now(),
            board: RwLock::new(Board::default()),
            dlq_growth: crate::dlq::growth::DlqGrowth::new(growth_alert_per_minute),
        })
    }

    /// `entries` dead letters were written.
    pub fn dlq_written(&self, entries: u64) {
        self.dlq_growth.record(entries);
        self.refresh_dlq_growth();
    }

    /// Re-evaluates the dead-letter growth alert: sets or clears the `dlq`
    /// degraded condition, logging each change once.
    pub fn refresh_dlq_growth(&self) {
        use crate::dlq::growth::GrowthState;
        let state = self.dlq_growth.refresh();
        let degraded = self.read().degraded.contains_key(DLQ_GROWTH_CHECK);
        match state {
            GrowthState::Alert { reason, .. } => {
                if !degraded {
                    tracing::warn!("dead-letter queue growing fast: {reason}; the pipeline is degraded until it slows down");
                }
                self.set_degraded(DLQ_GROWTH_CHECK, Some(reason));
            }
            GrowthState::Normal { per_minute } if degraded => {
                tracing::info!(per_minute, "dead-letter growth back under its alert threshold");
                self.set_degraded(DLQ_GROWTH_CHECK, None);
            }
            GrowthState::Normal { .. } => {}
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Board> {
        self.board.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Board> {
        self.board.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records (or replaces, after a hot swap) what is known of operator `name`'s plugin.
    pub fn set_operator(&self, name: &str, info: OperatorStatus) {
        self.write().operators.insert(name.to_string(), info);
    }

    /// Operator `name` now runs `plugin` (a hot swap), whose state is at `state_version`.
    pub fn operator_swapped(&self, name: &str, plugin: &crate::runtime::LoadedPlugin, state_version: Option<u32>, at: &str, by: &str) {
        let mut board = self.write();
        let entry = board.operators.entry(name.to_string()).or_default();
        let from = std::mem::replace(&mut entry.digest, plugin.digest.clone());
        entry.swapped_from = Some(from);
        entry.plugin_path = plugin.path.display().to_string();
        entry.wit_version = plugin.wit_version.clone();
        entry.state_version = state_version.or(entry.state_version);
        entry.swapped_at = Some(at.to_string());
        entry.swapped_by = Some(by.to_string());
    }

    /// Operator `name`'s state is at `version` (learnt from a snapshot).
    pub fn operator_state_version(&self, name: &str, version: u32) {
        let mut board = self.write();
        let entry = board.operators.entry(name.to_string()).or_default();
        if entry.state_version != Some(version) {
            entry.state_version = Some(version);
        }
    }

    /// Operator `name`'s plugin faulted once more.
    pub fn operator_faulted(&self, name: &str) {
        self.write().operators.entry(name.to_string()).or_default().faults += 1;
    }

    /// Operator `name` was stopped, for `reason`.
    pub fn operator_stopped(&self, name: &str, reason: String) {
        self.write().operators.entry(name.to_string()).or_default().stopped = Some(reason);
    }

    /// `task` starts reading `source`.
    pub fn task_started(&self, task: &str, source: &str) {
        let mut board = self.write();
        let entry = board.task(task);
        entry.source = source.to_string();
        entry.state = TaskState::Running;
        entry.error = None;
        entry.started = Some((Instant::now(), SystemTime::now()));
    }

    /// `task` finished a batch: it has read up to `source_offset`, and
    /// `records_in` records in all in this run (a running total, not the batch's count).
    pub fn task_progress(&self, task: &str, source_offset: u64, records_in: u64) {
        let now = Instant::now();
        let mut board = self.write();
        let entry = board.task(task);
        entry.source_offset = source_offset;
        entry.records_in = records_in;
        entry.last_progress = Some(now);
    }

    /// `task` resumes reading at `source_offset` (before its first batch).
    pub fn task_resumes_at(&self, task: &str, source_offset: u64) {
        self.write().task(task).source_offset = source_offset;
    }

    /// Checkpoint `sequence` of `task`, `bytes` long at `local_path`, became durable `at`.
    pub fn task_checkpointed(&self, task: &str, sequence: u64, at: SystemTime, bytes: u64, local_path: String) {
        let mut board = self.write();
        let entry = board.task(task);
        entry.checkpoint = Some(CheckpointEntry { sequence, at, bytes, local_path });
        entry.checkpoints += 1;
    }

    /// `task` obtained its state by `path`, from checkpoint `sequence` (none when fresh).
    pub fn task_recovered(&self, task: &str, path: RecoveryPath, sequence: Option<u64>) {
        self.write().task(task).recovery = Some(RecoveryStatus { path, sequence });
    }

    /// `task` stopped on `error`: from now on `/healthz` answers 503 with it.
    pub fn task_failed(&self, task: &str, error: String) {
        let mut board = self.write();
        let entry = board.task(task);
        entry.state = TaskState::Failed;
        entry.error = Some(error);
    }

    /// `task` stopped cleanly (end of input or shutdown).
    pub fn task_finished(&self, task: &str) {
        let mut board = self.write();
        let entry = board.task(task);
        if entry.state != TaskState::Failed {
            entry.state = TaskState::Finished;
        }
    }

    /// Sets (`Some(reason)`) or clears (`None`) the condition named `check`,
    /// which makes the pipeline `degraded` while set (e.g. `dlq` with
    /// "34 dead letters in the last minute").
    pub fn set_degraded(&self, check: &str, reason: Option<String>) {
        let mut board = self.write();
        match reason {
            Some(reason) => {
                board.degraded.insert(check.to_string(), reason);
            }
            None => {
                board.degraded.remove(check);
            }
        }
    }

    /// The pipeline's health and the reasons it is not `ok`.
    pub fn health(&self) -> (Health, Vec<String>) {
        self.read().health()
    }

    /// Sets `checkpoint_age_seconds` for every running task: the time since
    /// its last durable checkpoint, or since it started if it has written none
    /// yet. Tasks that have stopped keep their last value.
    pub fn publish_checkpoint_ages(&self) {
        let (now, wall) = (Instant::now(), SystemTime::now());
        let board = self.read();
        for (name, task) in &board.tasks {
            if task.state != TaskState::Running {
                continue;
            }
            let age = match (&task.checkpoint, task.started) {
                (Some(c), _) => wall.duration_since(c.at).unwrap_or_default(),
                (None, Some((started, _))) => now.duration_since(started),
                (None, None) => continue,
            };
            crate::metrics::checkpoint_age(name, age);
        }
    }

    /// Everything the board knows, as `/status` shows it.
    pub fn snapshot(&self) -> PipelineStatus {
        let (now, wall) = (Instant::now(), SystemTime::now());
        let board = self.read();
        let (health, reasons) = board.health();
        let tasks = board
            .tasks
            .iter()
            .map(|(name, t)| {
                let status = TaskStatus {
                    source: t.source.clone(),
                    state: t.state,
                    error: t.error.clone(),
                    source_offset: t.source_offset,
                    records_in: t.records_in,
                    started_at: t.started.map(|(_, at)| rfc3339(at)),
                    last_progress_age_seconds: t.last_progress.map(|p| now.duration_since(p).as_secs_f64()),
                    recovery: t.recovery.clone(),
                    last_checkpoint: t.checkpoint.as_ref().map(|c| CheckpointStatus {
                        sequence: c.sequence,
                        at: rfc3339(c.at),
                        age_seconds: wall.duration_since(c.at).unwrap_or_default().as_secs_f64(),
                        bytes: c.bytes,
                        local_path: c.local_path.clone(),
                    }),
                    checkpoints: t.checkpoints,
                };
                (name.clone(), status)
            })
            .collect();
        PipelineStatus {
            schema_version: STATUS_SCHEMA_VERSION,
            pipeline: self.pipeline.clone(),
            health,
            reasons,
            started_at: rfc3339(self.created_at),
            uptime_seconds: now.duration_since(self.created).as_secs_f64(),
            tasks,
            operators: board.operators.clone(),
        }
    }
}

fn rfc3339(at: SystemTime) -> String {
    humantime::format_rfc3339_millis(at).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_task_puts_the_pipeline_down_and_degraded_conditions_come_after() {
        let board = StatusBoard::new("p");
        board.task_started("a", "src-a");
        board.task_started("b", "src-b");
        assert_eq!(board.health(), (Health::Ok, vec![]));

        board.set_degraded("dlq", Some("40 dead letters in the last minute".into()));
        assert_eq!(board.health(), (Health::Degraded, vec!["dlq: 40 dead letters in the last minute".to_string()]));

        board.task_failed("b", "operator `x` faulted".into());
        board.task_finished("b"); // a failed task stays failed
        board.task_finished("a");
        let (health, reasons) = board.health();
        assert_eq!(health, Health::Down);
        assert_eq!(reasons, ["task `b` failed: operator `x` faulted", "dlq: 40 dead letters in the last minute"]);

        board.set_degraded("dlq", None);
        assert_eq!(board.health().1.len(), 1);
        let status = board.snapshot();
        assert_eq!(status.tasks["a"].state, TaskState::Finished);
        assert_eq!(status.tasks["b"].state, TaskState::Failed);
    }

    #[test]
    fn the_status_document_reads_back_as_the_type_the_client_uses() {
        let board = StatusBoard::new("p");
        board.task_started("a", "src-a");
        board.task_recovered("a", RecoveryPath::Local, Some(3));
        board.operator_state_version("op", 2);
        let status = board.snapshot();
        let json = serde_json::to_string(&status).unwrap();
        let read: PipelineStatus = serde_json::from_str(&json).unwrap();
        assert_eq!(serde_json::to_string(&read).unwrap(), json);
        for state in [TaskState::Starting, TaskState::Running, TaskState::Finished, TaskState::Failed] {
            assert_eq!(serde_json::to_value(state).unwrap(), state.as_str());
        }
    }

    #[test]
    fn updates_before_the_start_create_the_task() {
        let board = StatusBoard::new("p");
        board.task_recovered("t", RecoveryPath::Remote, Some(7));
        let status = board.snapshot();
        assert_eq!(status.tasks["t"].state, TaskState::Starting);
        assert_eq!(status.tasks["t"].recovery, Some(RecoveryStatus { path: RecoveryPath::Remote, sequence: Some(7) }));
        board.task_started("t", "src");
        board.task_progress("t", 100, 3);
        board.task_progress("t", 250, 7);
        let status = board.snapshot();
        let t = &status.tasks["t"];
        assert_eq!((t.state, t.source.as_str(), t.source_offset, t.records_in), (TaskState::Running, "src", 250, 7));
        assert!(t.recovery.is_some(), "starting keeps the recovery");
    }
}
