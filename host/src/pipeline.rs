//! Runs a validated plan: compiles the plugins, repairs and opens sinks and the DLQ, recovers each task from its checkpoints, starts the tasks, joins them.
//!
//! Everything that can fail before the first record (a plugin that does not
//! compile or whose `init` rejects its config, an unwritable sink, checkpoints
//! that exist but cannot be used) fails here, before any task starts. Tasks run
//! on their own threads; the first task error stops the others after their
//! batch in hand.

use crate::admin::{AdminError, AdminServer, OperatorStatus, StatusBoard};
use crate::checkpoint::format::{Checkpoint, SinkState};
use crate::checkpoint::local::LocalTier;
use crate::checkpoint::recovery::{self, Expected, RecoveryError, Skipped};
use crate::checkpoint::remote::{RemoteError, RemoteTier, Uploader};
use crate::dedup::{DedupLimits, SeenSet};
use crate::dlq::{DlqError, Envelope, FileDlq};
use crate::graph::{DedupPlan, DlqPlan, Guarantee, Plan, SinkKind, SourceKind};
use crate::metrics::RecoveryPath;
use crate::runtime::{LoadedPlugin, OperatorInstance, Runtime, RuntimeError};
use crate::sink::{FileSink, SinkError, recovery as sink_recovery};
use crate::source::{FileSource, SourceError};
use crate::stats::Stats;
use crate::task::{Checkpointing, Shutdown, Task, TaskEnd, TaskError, TaskParts};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a clean stop waits for checkpoints still being uploaded.
const UPLOAD_FLUSH_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error(transparent)]
    Dlq(#[from] DlqError),
    #[error(transparent)]
    Task(#[from] TaskError),
    #[error(transparent)]
    Recovery(#[from] RecoveryError),
    #[error(transparent)]
    Remote(#[from] RemoteError),
    #[error(transparent)]
    Admin(#[from] AdminError),
    #[error(transparent)]
    Metrics(#[from] crate::metrics::MetricsError),
    #[error("cannot repair `{}` after a crash: {error}", path.display())]
    Repair { path: PathBuf, error: std::io::Error },
    #[error(transparent)]
    Restore(#[from] RestoreError),
}

/// Choices made on the command line rather than in `pipeline.toml`.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Follow every file source as it grows, whatever the file says.
    pub follow: bool,
    /// Start from the beginning of the input when checkpoints exist but none can be used.
    pub allow_fresh_start: bool,
}

/// How one task resumed.
#[derive(Debug, Clone)]
pub struct TaskRecovery {
    pub task: String,
    pub path: RecoveryPath,
    /// Sequence of the checkpoint restored, and where it was.
    pub checkpoint: Option<(u64, String)>,
    pub skipped: Vec<Skipped>,
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub pipeline: String,
    pub guarantee: Guarantee,
    /// Compiling plugins, recovering, opening files.
    pub startup: Duration,
    /// Running the tasks: the time records were flowing.
    pub elapsed: Duration,
    /// True if a shutdown request ended the run before its input did.
    pub stopped_early: bool,
    pub records_in: u64,
    /// `(sink name, path, records written)`.
    pub sinks: Vec<(String, PathBuf, u64)>,
    /// Outputs not delivered again because a sink had them already.
    pub dedup_hits: u64,
    pub dlq_path: PathBuf,
    pub dlq_entries: u64,
    pub dlq_breakdown: Vec<(String, String, u64)>,
    pub discarded: u64,
    pub discard_breakdown: Vec<(String, String, u64)>,
    /// `(operator, how its plugin was obtained, how long it took)`.
    pub plugins: Vec<(String, crate::runtime::CompileSource, Duration)>,
    pub recoveries: Vec<TaskRecovery>,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn limits(plan: &DedupPlan) -> DedupLimits {
    DedupLimits {
        max_entries: usize::try_from(plan.max_entries).unwrap_or(usize::MAX),
        max_age_ms: plan.max_age.as_millis() as u64,
    }
}

/// Runs `plan` to the end of its input (or until `shutdown`), counting into `stats`.
pub fn run(
    plan: &Plan,
    runtime: &Runtime,
    options: &RunOptions,
    shutdown: &Shutdown,
    stats: &Arc<Stats>,
) -> Result<RunSummary, PipelineError> {
    let started = Instant::now();
    let board = StatusBoard::new(&plan.name);
    let _admin = match plan.admin {
        Some(address) => {
            let handle = crate::metrics::install()?;
            let server = AdminServer::start(address, board.clone(), handle)?;
            tracing::info!(address = %server.local_addr(), "admin endpoint serving /metrics, /healthz and /status");
            Some(server)
        }
        None => None,
    };

    let loaded: Vec<LoadedPlugin> =
        plan.operators.iter().map(|op| runtime.load(&op.name, &op.plugin)).collect::<Result<_, _>>()?;
    for (op, plugin) in plan.operators.iter().zip(&loaded) {
        tracing::info!(operator = %op.name, digest = %plugin.digest, source = ?plugin.source, time = ?plugin.compile_time, "plugin ready");
        board.set_operator(
            &op.name,
            OperatorStatus {
                plugin_path: plugin.path.display().to_string(),
                digest: plugin.digest.clone(),
                wit_version: plugin.wit_version.clone(),
                state_version: None,
            },
        );
    }

    // A crash may have cut a line in half: drop it before appending again.
    let sinks: Vec<Arc<Mutex<FileSink>>> = plan
        .sinks
        .iter()
        .map(|s| {
            let SinkKind::File { path } = &s.kind;
            repair(path)?;
            Ok(Arc::new(Mutex::new(FileSink::open(&s.name, path)?)))
        })
        .collect::<Result<_, PipelineError>>()?;
    let DlqPlan::File { path: dlq_path, dedup: dlq_dedup } = &plan.dlq;
    repair(dlq_path)?;
    let dlq = Arc::new(Mutex::new(FileDlq::open(dlq_path)?));

    let remote = match &plan.checkpoint.remote {
        Some(url) => Some(Arc::new(RemoteTier::from_url(url, &plan.base_dir)?)),
        None => None,
    };
    let uploader = remote.as_ref().map(|tier| Arc::new(Uploader::start(tier.clone(), plan.checkpoint.keep)));

    let mut tasks = Vec::with_capacity(plan.sources.len());
    let mut recoveries = Vec::with_capacity(plan.sources.len());
    for (s, source) in plan.sources.iter().enumerate() {
        let task_id = format!("{}-0", source.name);
        let folder = format!("{}/{}", plan.name, task_id);
        let (operator_indices, sink_indices) = plan.reachable_from(s);
        let local = LocalTier::new(&plan.checkpoint.dir, &plan.name, &task_id, plan.checkpoint.keep);
        let expected = Expected { pipeline: &plan.name, fingerprint: &plan.fingerprint, task: &task_id };
        let recovered = recovery::recover(
            &local,
            remote.as_deref().map(|tier| (tier, folder.as_str())),
            expected,
            options.allow_fresh_start,
            |checkpoint| {
                restore_operators(plan, runtime, &loaded, &operator_indices, Some(checkpoint)).map_err(|e| e.to_string())
            },
        )?;
        let operators = match recovered.restored {
            Some(operators) => operators,
            None => restore_operators(plan, runtime, &loaded, &operator_indices, None)?,
        };
        crate::metrics::recovery(&task_id, recovered.path);
        let checkpoint = recovered.checkpoint.as_ref().map(|(c, _)| c);
        board.task_recovered(&task_id, recovered.path, checkpoint.map(|c| c.header.sequence));
        log_recovery(&task_id, &recovered.path, recovered.checkpoint.as_ref());

        let now = now_ms();
        let exactly_once = plan.guarantee == Guarantee::ExactlyOnce;
        let saved = |name: &str| checkpoint.and_then(|c| c.sinks.iter().find(|s| s.name == name));
        let task_sinks = sink_indices
            .iter()
            .map(|&i| {
                let SinkKind::File { path } = &plan.sinks[i].kind;
                let delivered = delivery_record(
                    limits(&plan.sinks[i].dedup),
                    saved(&plan.sinks[i].name),
                    exactly_once,
                    path,
                    now,
                    |line| Some(crate::dedup::identity(&[line])),
                )?;
                Ok((i, sinks[i].clone(), delivered))
            })
            .collect::<Result<Vec<_>, PipelineError>>()?;
        let dlq_delivered =
            delivery_record(limits(dlq_dedup), checkpoint.map(|c| &c.dlq), exactly_once, dlq_path, now, |line| {
                serde_json::from_slice::<Envelope>(line).ok().map(|e| e.identity())
            })?;

        let SourceKind::File(file) = &source.kind;
        let source_seen = file.dedup.as_ref().map(|d| {
            let snapshot = checkpoint.and_then(|c| c.source_seen.clone()).unwrap_or_default();
            SeenSet::restore(limits(d), snapshot, now)
        });
        let offset = checkpoint.map_or(0, |c| c.offset);
        let reader = FileSource::open(&source.name, file, offset, file.follow || options.follow)?;
        let checkpointing = Checkpointing::new(
            local,
            uploader.clone(),
            folder,
            plan.checkpoint.interval,
            plan.fingerprint.clone(),
            plan.guarantee,
            checkpoint.map(|c| c.header.sequence),
        );
        recoveries.push(TaskRecovery {
            task: task_id.clone(),
            path: recovered.path,
            checkpoint: recovered.checkpoint.as_ref().map(|(c, at)| (c.header.sequence, at.clone())),
            skipped: recovered.skipped.clone(),
        });
        tasks.push(Task::new(
            plan,
            TaskParts {
                source_index: s,
                task_id,
                source: reader,
                operators,
                sinks: task_sinks,
                dlq: dlq.clone(),
                dlq_delivered,
                source_seen,
                checkpointing,
                stats: stats.clone(),
                board: board.clone(),
            },
        ));
    }

    let startup = started.elapsed();
    let running = Instant::now();
    let results: Vec<Result<TaskEnd, TaskError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = tasks
            .into_iter()
            .enumerate()
            .map(|(i, task)| {
                let name = format!("sda-task-{}", plan.sources[i].name);
                let board = board.clone();
                let task_id = format!("{}-0", plan.sources[i].name);
                std::thread::Builder::new()
                    .name(name)
                    .spawn_scoped(scope, move || {
                        let result = task.run(shutdown);
                        if let Err(e) = &result {
                            board.task_failed(&task_id, e.to_string());
                            // One task failing stops the pipeline: the others
                            // finish their batch in hand and stop too.
                            shutdown.request();
                        }
                        result
                    })
                    .expect("spawning a task thread")
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))).collect()
    });
    let elapsed = running.elapsed();
    if let Some(uploader) = &uploader
        && let Err(e) = uploader.flush(UPLOAD_FLUSH_TIMEOUT)
    {
        tracing::warn!(error = %e, "not every checkpoint reached the remote tier; the local tier has them");
    }
    let mut stopped_early = false;
    for result in results {
        match result? {
            TaskEnd::Finished => {}
            TaskEnd::Stopped => stopped_early = true,
        }
    }

    Ok(RunSummary {
        pipeline: plan.name.clone(),
        guarantee: plan.guarantee,
        startup,
        elapsed,
        stopped_early,
        records_in: stats.records_in(),
        sinks: plan
            .sinks
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let SinkKind::File { path } = &s.kind;
                (s.name.clone(), path.clone(), stats.sink_records(i))
            })
            .collect(),
        dedup_hits: stats.dedup_hits_total(),
        dlq_path: dlq_path.clone(),
        dlq_entries: stats.dlq_entries(),
        dlq_breakdown: stats.dlq_breakdown().into_iter().map(|((op, kind), n)| (op, kind.as_str().to_string(), n)).collect(),
        discarded: stats.discarded_total(),
        discard_breakdown: stats.discard_breakdown().into_iter().map(|((op, reason), n)| (op, reason, n)).collect(),
        plugins: plan.operators.iter().zip(&loaded).map(|(op, p)| (op.name.clone(), p.source, p.compile_time)).collect(),
        recoveries,
    })
}

fn repair(path: &Path) -> Result<(), PipelineError> {
    let cut = sink_recovery::drop_torn_tail(path).map_err(|error| PipelineError::Repair { path: path.to_path_buf(), error })?;
    if cut > 0 {
        tracing::warn!(file = %path.display(), bytes = cut, "dropped a torn last line left by a crash");
    }
    Ok(())
}

/// A sink's delivery record: what the checkpoint saved, plus (exactly-once)
/// every record written after the checkpoint's position, read back from the
/// file. With no checkpoint the whole file is read back, so a lost checkpoint
/// does not lead to delivering everything again.
fn delivery_record(
    limits: DedupLimits,
    saved: Option<&SinkState>,
    exactly_once: bool,
    path: &Path,
    now: u64,
    identity: impl Fn(&[u8]) -> Option<crate::dedup::Identity>,
) -> Result<SeenSet, PipelineError> {
    let snapshot = saved.map(|s| s.delivered.clone()).unwrap_or_default();
    let mut seen = SeenSet::restore(limits, snapshot, now);
    if exactly_once {
        let from = saved.map_or(0, |s| s.position);
        let read = sink_recovery::lines_since(path, from, |line| {
            if let Some(id) = identity(line) {
                seen.check_and_insert(id, now);
            }
        })
        .map_err(|error| PipelineError::Repair { path: path.to_path_buf(), error })?;
        if read > 0 {
            tracing::info!(file = %path.display(), records = read, "re-read deliveries made after the checkpoint");
        }
    }
    Ok(seen)
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
    loaded: &[LoadedPlugin],
    operator_indices: &[usize],
    checkpoint: Option<&Checkpoint>,
) -> Result<Vec<(usize, OperatorInstance, String)>, RestoreError> {
    let mut instances = Vec::with_capacity(operator_indices.len());
    for &i in operator_indices {
        let op = &plan.operators[i];
        let mut instance = runtime.instantiate(&op.name, &loaded[i], op.limits, &op.config_json)?;
        if let Some(saved) = checkpoint.and_then(|c| c.operators.iter().find(|s| s.name == op.name)) {
            match instance.restore(saved.state_version, &saved.state) {
                Ok(Ok(())) => {}
                Ok(Err(reason)) => {
                    return Err(RestoreError::Refused { operator: op.name.clone(), version: saved.state_version, reason });
                }
                Err(fault) => return Err(RuntimeError::Fault(fault).into()),
            }
            if saved.plugin_digest != loaded[i].digest {
                tracing::info!(operator = %op.name, from = %saved.plugin_digest, to = %loaded[i].digest, "state restored into a different build of the plugin");
            }
        } else if checkpoint.is_some() {
            tracing::info!(operator = %op.name, "no state for this operator in the checkpoint; it starts empty");
        }
        instances.push((i, instance, loaded[i].wit_version.clone()));
    }
    if let Some(c) = checkpoint {
        for saved in &c.operators {
            if !operator_indices.iter().any(|&i| plan.operators[i].name == saved.name) {
                tracing::warn!(operator = %saved.name, "the checkpoint holds state of an operator the pipeline no longer has; it is not restored");
            }
        }
    }
    Ok(instances)
}

fn log_recovery(task: &str, path: &RecoveryPath, checkpoint: Option<&(Checkpoint, String)>) {
    match checkpoint {
        Some((c, at)) => tracing::info!(task, path = path.as_str(), sequence = c.header.sequence, offset = c.offset, checkpoint = %at, "recovered"),
        None => tracing::info!(task, "starting from the beginning of the input (no checkpoint)"),
    }
}
