//! Runs a validated plan: compiles the plugins, repairs and opens sinks and the DLQ, recovers each task from its checkpoints, starts the tasks, joins them.
//!
//! Everything that can fail before the first record (a plugin that does not
//! compile or whose `init` rejects its config, an unwritable sink, checkpoints
//! that exist but cannot be used) fails here, before any task starts. Tasks run
//! on their own threads; the first task error stops the others after their
//! batch in hand.

use crate::admin::{AdminControl, AdminError, AdminServer};
use crate::checkpoint::format::Checkpoint;
use crate::checkpoint::local::LocalTier;
use crate::checkpoint::recovery::{self, Expected, FreshStart, RecoveryError, Skipped};
use crate::checkpoint::remote::{RemoteError, RemoteTier, Uploader};
use crate::dedup::{SeenSet, now_ms};
use crate::dlq::{DlqError, DlqWriter, FileDlq, KafkaDlq};
use crate::graph::{DlqPlan, Guarantee, Plan, SinkKind, SourceKind};
use crate::ledger::DeliveryLedger;
use crate::metrics::RecoveryPath;
use crate::runtime::{LoadedPlugin, OperatorInstance, Runtime, RuntimeError};
use crate::sink::{FileSink, KafkaSink, PostgresSink, SinkError, SinkWriter, recovery as sink_recovery};
use crate::source::kafka::{GroupMember, PartitionOwner};
use crate::source::{FileSource, KafkaPartitionSource, SourceError, SourceReader};
use crate::stats::Stats;
use crate::status::{OperatorStatus, StatusBoard};
use crate::swap::journal::SwapJournal;
use crate::swap::{Controller, OperatorSetup};
use crate::task::{Checkpointing, RestorePoint, Shutdown, Task, TaskEnd, TaskError, TaskParts};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

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
    #[error(transparent)]
    Journal(#[from] crate::swap::journal::JournalError),
    #[error("cannot write the admin token `{}`: {error}", path.display())]
    AdminToken { path: PathBuf, error: std::io::Error },
}

/// Choices made on the command line rather than in `pipeline.toml`.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Follow every file source as it grows, whatever the file says.
    pub follow: bool,
    /// Start from the beginning of the input when checkpoints exist but none can be used.
    pub allow_fresh_start: bool,
    /// Kafka sources: stop each partition at the end it had when its task
    /// started, as a file source stops at the end of its file (and close
    /// every window, as at the end of input).
    pub stop_at_end: bool,
    /// Operators whose state checkpoints keep although the pipeline no longer has them: drop it.
    pub drop_state: Vec<String>,
    /// Fingerprints of earlier shapes of this pipeline whose checkpoints this run may restore
    /// (a graph rebuilt by `run --watch`); each task then checkpoints at once in the new shape.
    pub accept_fingerprints: Vec<String>,
    /// Sinks whose saved delivery state is not theirs any more (their target changed): they start afresh.
    pub fresh_sinks: Vec<String>,
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
    /// `(sink name, where it delivers, records written)`.
    pub sinks: Vec<(String, String, u64)>,
    /// Outputs not delivered again because a sink had them already.
    pub dedup_hits: u64,
    /// Where the dead-letter queue is: a path or `kafka://brokers/topic`.
    pub dlq_where: String,
    pub dlq_entries: u64,
    pub dlq_breakdown: Vec<(String, String, u64)>,
    pub discarded: u64,
    pub discard_breakdown: Vec<(String, String, u64)>,
    /// `(operator, how its plugin was obtained, how long it took)`.
    pub plugins: Vec<(String, crate::runtime::CompileSource, Duration)>,
    /// `(operator, parallelism)` of the operators that ran as several instances.
    pub sharded: Vec<(String, u32)>,
    pub recoveries: Vec<TaskRecovery>,
}

/// What every task of a run is built from.
struct Shared {
    plan: Arc<Plan>,
    runtime: Arc<Runtime>,
    options: RunOptions,
    /// The plugins at start, for the summary; tasks take theirs from `controller` (swaps change them).
    loaded: Vec<LoadedPlugin>,
    controller: Arc<Controller>,
    /// File sinks are shared by all tasks of the process (by plan sink index).
    file_sinks: Vec<Option<Arc<Mutex<FileSink>>>>,
    file_dlq: Option<Arc<Mutex<FileDlq>>>,
    remote: Option<Arc<RemoteTier>>,
    uploader: Option<Arc<Uploader>>,
    stats: Arc<Stats>,
    board: Arc<StatusBoard>,
    recoveries: Mutex<Vec<TaskRecovery>>,
}

/// A task running on its own thread.
struct Running {
    task: String,
    stop: Shutdown,
    handle: std::thread::JoinHandle<Result<TaskEnd, PipelineError>>,
}

/// Runs `plan` to the end of its input (or until `shutdown`), counting into `stats`.
pub fn run(
    plan: Arc<Plan>,
    runtime: Arc<Runtime>,
    options: &RunOptions,
    shutdown: &Shutdown,
    stats: &Arc<Stats>,
) -> Result<RunSummary, PipelineError> {
    run_with_controller(plan, runtime, options, shutdown, stats, &Arc::new(OnceLock::new()))
}

/// [`run`], putting the run's swap [`Controller`] in `controller_slot` once its tasks can be swapped.
pub fn run_with_controller(
    plan: Arc<Plan>,
    runtime: Arc<Runtime>,
    options: &RunOptions,
    shutdown: &Shutdown,
    stats: &Arc<Stats>,
    controller_slot: &Arc<OnceLock<Arc<Controller>>>,
) -> Result<RunSummary, PipelineError> {
    let started = Instant::now();
    let board = StatusBoard::with_dlq_alert(&plan.name, plan.dlq.growth_alert_per_minute());
    let _admin = match plan.admin {
        Some(admin) => {
            let handle = crate::metrics::install()?;
            let token = write_admin_token(&admin_token_path(&plan))?;
            // Native operators have no file, so no folder.
            let plugin_dirs: std::collections::BTreeSet<PathBuf> =
                plan.operators.iter().filter_map(|op| op.plugin.path.parent()?.canonicalize().ok()).collect();
            let control = AdminControl {
                token,
                token_on_every_route: admin.token_on_every_route,
                plugin_dirs: plugin_dirs.into_iter().collect(),
                controller: controller_slot.clone(),
            };
            let server = AdminServer::start_with_control(admin.listen, board.clone(), handle, Some(control))?;
            tracing::info!(address = %server.local_addr(), "admin endpoint serving /metrics, /healthz, /status and POST /swap");
            Some(server)
        }
        None => None,
    };

    let journal = SwapJournal::new(&plan.checkpoint.dir, &plan.name);
    let swapped = journal.load()?;
    let mut loaded = Vec::with_capacity(plan.operators.len());
    for op in &plan.operators {
        let record = swapped.get(&op.name);
        let file = match record {
            // Swapped in while pipeline.toml still named what it names now: run what was running.
            Some(r) if r.configured_digest == op.plugin.digest && r.digest != op.plugin.digest => {
                tracing::warn!(
                    operator = %op.name, digest = %r.digest, swapped_at = %r.swapped_at, swapped_by = %r.swapped_by, journal = %journal.path().display(),
                    "running the plugin swapped in before the restart, not the one pipeline.toml names; edit pipeline.toml to make it permanent"
                );
                journal.read_plugin(&op.name, r)?
            }
            Some(_) => {
                tracing::info!(operator = %op.name, "pipeline.toml names another plugin than when this operator was swapped; running pipeline.toml's");
                journal.forget(&op.name)?;
                op.plugin.clone()
            }
            None => op.plugin.clone(),
        };
        let plugin = runtime.load(&op.name, &file)?;
        tracing::info!(operator = %op.name, digest = %plugin.digest, source = ?plugin.source, time = ?plugin.compile_time, "plugin ready");
        let swap = record.filter(|r| r.digest == plugin.digest);
        board.set_operator(
            &op.name,
            OperatorStatus {
                plugin_path: plugin.path.display().to_string(),
                digest: plugin.digest.clone(),
                wit_version: plugin.wit_version.clone(),
                state_version: None,
                swapped_at: swap.map(|r| r.swapped_at.clone()),
                swapped_by: swap.map(|r| r.swapped_by.clone()),
                swapped_from: swap.map(|r| r.configured_digest.clone()),
                ..OperatorStatus::default()
            },
        );
        loaded.push(plugin);
    }
    let controller = Arc::new(Controller::new(plan.clone(), runtime.clone(), board.clone(), loaded.clone()));

    // A crash may have cut a line in half: drop it before appending again.
    let file_sinks: Vec<Option<Arc<Mutex<FileSink>>>> = plan
        .sinks
        .iter()
        .map(|s| match &s.kind {
            SinkKind::File { path } => {
                repair(path)?;
                Ok(Some(Arc::new(Mutex::new(FileSink::open(&s.name, path)?))))
            }
            _ => Ok(None),
        })
        .collect::<Result<_, PipelineError>>()?;
    let file_dlq = match &plan.dlq {
        DlqPlan::File { path, retention, .. } => {
            repair(path)?;
            Some(Arc::new(Mutex::new(FileDlq::open_with(path, *retention)?)))
        }
        DlqPlan::Kafka { .. } => None,
    };
    let remote = match &plan.checkpoint.remote {
        Some(url) => Some(Arc::new(RemoteTier::from_url(url, &plan.base_dir)?)),
        None => None,
    };
    let uploader = remote.as_ref().map(|tier| Arc::new(Uploader::start(tier.clone(), plan.checkpoint.keep)));
    let shared = Arc::new(Shared {
        plan: plan.clone(),
        runtime,
        options: options.clone(),
        loaded,
        controller: controller.clone(),
        file_sinks,
        file_dlq,
        remote,
        uploader: uploader.clone(),
        stats: stats.clone(),
        board: board.clone(),
        recoveries: Mutex::new(Vec::new()),
    });

    // File sources: one task each, from now. Kafka sources: a coordinator
    // each, starting and stopping partition tasks as the group assigns them.
    let mut running = Vec::new();
    for (s, source) in plan.sources.iter().enumerate() {
        if let SourceKind::File(file) = &source.kind {
            let follow = file.follow || options.follow;
            let task = build_task(&shared, s, 0, None, None, |offset| {
                let reader = FileSource::open(&source.name, file, offset.unwrap_or(0), follow)?;
                Ok(SourceReader::file(reader, follow, shared.plan.batch_size))
            })?;
            running.push(spawn_task(&shared, task, shutdown.clone()));
        }
    }
    let mut coordinators = Vec::new();
    for (s, source) in plan.sources.iter().enumerate() {
        if let SourceKind::Kafka(_) = &source.kind {
            let coordinator = Arc::new(KafkaCoordinator {
                shared: shared.clone(),
                source: s,
                shutdown: shutdown.clone(),
                member: OnceLock::new(),
                running: Mutex::new(BTreeMap::new()),
                ended: Mutex::new(std::collections::BTreeSet::new()),
                failure: Mutex::new(None),
            });
            let thread = std::thread::Builder::new()
                .name(format!("sda-group-{}", source.name))
                .spawn({
                    let coordinator = coordinator.clone();
                    move || coordinator.run()
                })
                .expect("spawning a group coordinator");
            coordinators.push(thread);
        }
    }
    let _ = controller_slot.set(controller);
    let startup = started.elapsed();
    let running_since = Instant::now();

    let mut first_error: Option<PipelineError> = None;
    let mut stopped_early = false;
    for r in running {
        match join(r) {
            Ok(TaskEnd::Finished) => {}
            Ok(TaskEnd::Stopped) => stopped_early = true,
            Err(e) => {
                shutdown.request();
                first_error.get_or_insert(e);
            }
        }
    }
    for c in coordinators {
        match c.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)) {
            Ok(stopped) => stopped_early |= stopped,
            Err(e) => {
                shutdown.request();
                first_error.get_or_insert(e);
            }
        }
    }
    let elapsed = running_since.elapsed();
    if let Some(uploader) = &uploader
        && let Err(e) = uploader.flush(UPLOAD_FLUSH_TIMEOUT)
    {
        tracing::warn!(error = %e, "not every checkpoint reached the remote tier; the local tier has them");
    }
    if let Some(e) = first_error {
        return Err(e);
    }

    let recoveries = std::mem::take(&mut *shared.recoveries.lock().unwrap_or_else(|e| e.into_inner()));
    Ok(RunSummary {
        pipeline: plan.name.clone(),
        guarantee: plan.guarantee,
        startup,
        elapsed,
        stopped_early,
        records_in: stats.records_in(),
        sinks: plan.sinks.iter().map(|s| (s.name.clone(), s.kind.describe(), stats.sink_records(&s.name))).collect(),
        dedup_hits: stats.dedup_hits_total(),
        dlq_where: plan.dlq.describe(),
        dlq_entries: stats.dlq_entries(),
        dlq_breakdown: stats.dlq_breakdown().into_iter().map(|((op, kind), n)| (op, kind.as_str().to_string(), n)).collect(),
        discarded: stats.discarded_total(),
        discard_breakdown: stats.discard_breakdown().into_iter().map(|((op, reason), n)| (op, reason, n)).collect(),
        plugins: plan.operators.iter().zip(&shared.loaded).map(|(op, p)| (op.name.clone(), p.source, p.compile_time)).collect(),
        sharded: plan.operators.iter().filter(|op| op.parallelism > 1).map(|op| (op.name.clone(), op.parallelism)).collect(),
        recoveries,
    })
}

fn spawn_task(shared: &Shared, task: Task, stop: Shutdown) -> Running {
    let name = task.id().to_string();
    spawn_building(shared, name, stop, move || Ok(task))
}

/// Runs task `name` on a thread of its own, which first builds it (recovery can take seconds: reading
/// checkpoints, re-reading what sinks wrote since), so that whoever starts tasks (the group coordinator,
/// inside librdkafka's rebalance callback) never waits for it.
fn spawn_building(
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

fn join(r: Running) -> Result<TaskEnd, PipelineError> {
    let result = r.handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    if let Err(e) = &result {
        tracing::error!(task = %r.task, error = %e, "task failed");
    }
    result
}

/// Builds the task of partition `partition` of source `s`: climbs the
/// recovery ladder, restores operators, rebuilds sinks' delivery records and
/// opens the source where the checkpoint says (`open_source(None)` for a
/// fresh start). For a transactional sink fed by a Kafka source,
/// `committed` is the group's committed offset: a checkpoint beyond it
/// belongs to a transaction that never committed, and is skipped.
fn build_task(
    shared: &Shared,
    s: usize,
    partition: u32,
    group: Option<Arc<GroupMember>>,
    committed: Option<u64>,
    open_source: impl FnOnce(Option<u64>) -> Result<SourceReader, PipelineError>,
) -> Result<Task, PipelineError> {
    let plan = &*shared.plan;
    let source = &plan.sources[s];
    let task_id = format!("{}-{partition}", source.name);
    let folder = format!("{}/{}", plan.name, task_id);
    let (operator_indices, sink_indices) = plan.reachable_from(s);
    // Registered before anything is restored: a swap under way finishes first, and one that starts
    // later reaches this task once it runs.
    let (setups, control) = shared.controller.register(&task_id, &operator_indices);
    let transactional = sink_indices.iter().any(|&i| matches!(&plan.sinks[i].kind, SinkKind::Kafka(k) if k.transactional));
    let local = LocalTier::new(&plan.checkpoint.dir, &plan.name, &task_id, plan.checkpoint.keep);
    let expected = Expected {
        pipeline: &plan.name,
        fingerprint: &plan.fingerprint,
        also_accepted: &shared.options.accept_fingerprints,
        task: &task_id,
    };
    let fresh_start = if shared.options.allow_fresh_start {
        FreshStart::Asked
    } else if transactional && committed.is_none() {
        FreshStart::NothingCommitted
    } else {
        FreshStart::Refused
    };
    let recovered =
        recovery::recover(&local, shared.remote.as_deref().map(|tier| (tier, folder.as_str())), expected, fresh_start, |checkpoint| {
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
            restore_operators(plan, &shared.runtime, &setups, &operator_indices, Some(checkpoint)).map_err(|e| e.to_string())
        })?;
    let mut operators = match recovered.restored {
        Some(operators) => operators,
        None => restore_operators(plan, &shared.runtime, &setups, &operator_indices, None)?,
    };
    crate::metrics::recovery(&task_id, recovered.path);
    let checkpoint = recovered.checkpoint.as_ref().map(|(c, _)| c);
    shared.board.task_recovered(&task_id, recovered.path, checkpoint.map(|c| c.header.sequence));
    log_recovery(&task_id, &recovered.path, recovered.checkpoint.as_ref());

    let now = now_ms();
    let exactly_once = plan.guarantee == Guarantee::ExactlyOnce;
    let saved = |name: &str| {
        checkpoint.filter(|_| !shared.options.fresh_sinks.iter().any(|s| s == name)).and_then(|c| c.sinks.iter().find(|s| s.name == name))
    };
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
    let mut sinks = Vec::with_capacity(sink_indices.len());
    for &i in &sink_indices {
        let sink = &plan.sinks[i];
        let writer = match &sink.kind {
            SinkKind::File { .. } => SinkWriter::File(shared.file_sinks[i].clone().expect("file sinks are opened at start")),
            SinkKind::Kafka(k) => {
                let transactional_id = format!("{}-{}-{}", plan.name, task_id, sink.name);
                SinkWriter::Kafka(Box::new(KafkaSink::open(&sink.name, k, Some(&transactional_id))?))
            }
            SinkKind::Postgres(p) => {
                let connected = PostgresSink::connect(&sink.name, &p.url, &p.table, &p.key_column, p.connect_timeout)
                    .map_err(|e| SinkError::Postgres { sink: sink.name.clone(), message: e.to_string() })?;
                SinkWriter::Postgres(Box::new(match p.retry_for {
                    Some(limit) => connected.with_retry_limit(limit),
                    None => connected,
                }))
            }
        };
        let saved = saved(&sink.name);
        let mut ledger = DeliveryLedger::restore(sink.dedup, saved.map(|s| s.delivered.clone()).unwrap_or_default(), now);
        if exactly_once && writer.keeps_delivery_record() {
            let read = writer.read_back(saved.map_or(&[][..], |s| &s.positions), |id| ledger.owe(id, now))?;
            if read > 0 {
                tracing::info!(task = %task_id, sink = %sink.name, records = read, "re-read deliveries made after the checkpoint");
            }
        }
        sinks.push((i, writer, ledger));
    }
    let dlq = match &plan.dlq {
        DlqPlan::File { .. } => DlqWriter::File(shared.file_dlq.clone().expect("a file DLQ is opened at start")),
        DlqPlan::Kafka { brokers, topic, connect_timeout, librdkafka, .. } => DlqWriter::Kafka(Box::new(KafkaDlq::open(
            brokers,
            topic,
            librdkafka,
            *connect_timeout,
            plan.guarantee == Guarantee::AtMostOnce,
        )?)),
    };
    let mut dlq_delivered = SeenSet::restore(plan.dlq.dedup(), checkpoint.map(|c| c.dlq.delivered.clone()).unwrap_or_default(), now);
    if exactly_once {
        dlq.read_back(checkpoint.map_or(&[][..], |c| &c.dlq.positions), |id| {
            dlq_delivered.check_and_insert(id, now);
        })?;
    }
    let source_dedup = match &source.kind {
        SourceKind::File(f) => f.dedup,
        SourceKind::Kafka(k) => k.dedup,
    };
    let source_seen = source_dedup.map(|d| {
        let snapshot = checkpoint.and_then(|c| c.source_seen.clone()).unwrap_or_default();
        SeenSet::restore(d, snapshot, now)
    });
    let reader = open_source(checkpoint.map(|c| c.offset))?;
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
            restore_point,
            control: Some(control),
            kept_states,
            checkpoint_at_start: reshaped,
        },
    ))
}

/// Runs a Kafka source's group membership: starts a task for each partition
/// the group assigns here, stops it when the partition is revoked.
struct KafkaCoordinator {
    shared: Arc<Shared>,
    source: usize,
    /// The whole pipeline's stop request.
    shutdown: Shutdown,
    member: OnceLock<Arc<GroupMember>>,
    running: Mutex<BTreeMap<i32, Running>>,
    /// Partitions whose task ended on its own (the end of its input, with `--stop-at-end`).
    ended: Mutex<std::collections::BTreeSet<i32>>,
    failure: Mutex<Option<PipelineError>>,
}

impl KafkaCoordinator {
    fn fail(&self, error: PipelineError) {
        tracing::error!(error = %error, "stopping the pipeline");
        self.failure.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(error);
        self.shutdown.request();
    }

    /// Polls the group until the pipeline stops (or, with `--stop-at-end`,
    /// every partition it was given has reached its end). Returns whether it
    /// stopped before its input ended.
    fn run(self: Arc<Self>) -> Result<bool, PipelineError> {
        let plan = self.shared.plan.clone();
        let source = &plan.sources[self.source];
        let SourceKind::Kafka(kafka) = &source.kind else { unreachable!("coordinators run Kafka sources") };
        let member = match GroupMember::join(&source.name, kafka, self.clone()) {
            Ok(member) => Arc::new(member),
            Err(e) => {
                self.shutdown.request();
                return Err(e.into());
            }
        };
        let _ = self.member.set(member.clone());
        // `--stop-at-end` stops once this process has read every partition to
        // its end: partitions a dead member still holds (until its session
        // times out) are waited for, not skipped.
        let partitions = member.partitions();
        let mut stopped_early = false;
        loop {
            member.poll(Duration::from_millis(100));
            self.reap();
            if self.shutdown.is_requested() {
                stopped_early = true;
                break;
            }
            let running = self.running.lock().unwrap_or_else(|e| e.into_inner()).len();
            let ended = self.ended.lock().unwrap_or_else(|e| e.into_inner()).len();
            if self.shared.options.stop_at_end && running == 0 && ended >= partitions {
                break;
            }
        }
        // Stop what still runs (each checkpoints and commits), then leave.
        let still: Vec<i32> = self.running.lock().unwrap_or_else(|e| e.into_inner()).keys().copied().collect();
        self.stop_partitions(&still);
        member.leave();
        if let Some(e) = self.failure.lock().unwrap_or_else(|e| e.into_inner()).take() {
            return Err(e);
        }
        Ok(stopped_early)
    }

    /// Joins tasks that ended on their own (end of input, or an error).
    fn reap(&self) {
        let finished: Vec<i32> = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(_, r)| r.handle.is_finished())
            .map(|(p, _)| *p)
            .collect();
        for p in finished {
            let Some(r) = self.running.lock().unwrap_or_else(|e| e.into_inner()).remove(&p) else { continue };
            match join(r) {
                Ok(_) => {
                    self.ended.lock().unwrap_or_else(|e| e.into_inner()).insert(p);
                }
                Err(e) => self.fail(e),
            }
        }
    }

    fn stop_partitions(&self, partitions: &[i32]) {
        let stopping: Vec<Running> = {
            let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            partitions.iter().filter_map(|p| running.remove(p)).collect()
        };
        for r in &stopping {
            r.stop.request();
        }
        for r in stopping {
            if let Err(e) = join(r) {
                self.fail(e);
            }
        }
    }
}

impl PartitionOwner for KafkaCoordinator {
    /// Starts a task per partition, each recovering on its own thread: this runs inside librdkafka's
    /// rebalance callback, and a member that does not come back to poll within `max.poll.interval.ms`
    /// is dropped from the group (recovering a partition can take seconds).
    fn assigned(&self, partitions: &[i32]) {
        let Some(member) = self.member.get().cloned() else { return };
        let plan = &*self.shared.plan;
        let source = &plan.sources[self.source];
        for &p in partitions {
            if self.shutdown.is_requested() {
                return;
            }
            let (shared, member, s) = (self.shared.clone(), member.clone(), self.source);
            let build = move || {
                let source = &shared.plan.sources[s];
                let SourceKind::Kafka(kafka) = &source.kind else { unreachable!("coordinators run Kafka sources") };
                let committed = member.committed(p, kafka.connect_timeout)?;
                let stop_at_end = shared.options.stop_at_end;
                build_task(&shared, s, p as u32, Some(member.clone()), committed, |offset| {
                    Ok(SourceReader::Kafka(KafkaPartitionSource::open(&source.name, kafka, p, offset, committed, stop_at_end)?))
                })
            };
            let r = spawn_building(&self.shared, format!("{}-{p}", source.name), Shutdown::new(), build);
            self.running.lock().unwrap_or_else(|e| e.into_inner()).insert(p, r);
        }
    }

    fn revoked(&self, partitions: &[i32]) {
        self.stop_partitions(partitions);
    }
}

/// Where the admin endpoint's bearer token is written at start-up: beside the task folders of the local checkpoint tier.
pub fn admin_token_path(plan: &Plan) -> PathBuf {
    plan.checkpoint.dir.join(&plan.name).join("admin.token")
}

/// A fresh random token, written to `path` readable by its owner only.
fn write_admin_token(path: &Path) -> Result<String, PipelineError> {
    let fail = |error: std::io::Error| PipelineError::AdminToken { path: path.to_path_buf(), error };
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| fail(std::io::Error::other(e.to_string())))?;
    let token = hex::encode(bytes);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    // Never widen an existing file's permissions by rewriting it: start from a new one.
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(fail(e)),
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(fail)?;
    std::io::Write::write_all(&mut file, format!("{token}\n").as_bytes()).map_err(fail)?;
    Ok(token)
}

fn repair(path: &Path) -> Result<(), PipelineError> {
    let cut = sink_recovery::drop_torn_tail(path).map_err(|error| PipelineError::Repair { path: path.to_path_buf(), error })?;
    if cut > 0 {
        tracing::warn!(file = %path.display(), bytes = cut, "dropped a torn last line left by a crash");
    }
    Ok(())
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
    setups: &[OperatorSetup],
    operator_indices: &[usize],
    checkpoint: Option<&Checkpoint>,
) -> Result<Vec<(usize, OperatorInstance, String)>, RestoreError> {
    let mut instances = Vec::with_capacity(operator_indices.len());
    for &i in operator_indices {
        let op = &plan.operators[i];
        let setup = &setups[i];
        let mut instance = runtime.instantiate_parallel(&op.name, &setup.plugin, setup.limits, &setup.config_json, setup.parallelism)?;
        if let Some(saved) = checkpoint.and_then(|c| c.operators.iter().find(|s| s.name == op.name)) {
            match instance.restore(saved.state_version, &saved.state) {
                Ok(Ok(())) => {}
                Ok(Err(reason)) => {
                    return Err(RestoreError::Refused { operator: op.name.clone(), version: saved.state_version, reason });
                }
                Err(fault) => return Err(RuntimeError::Fault(fault).into()),
            }
            if saved.plugin_digest != setup.plugin.digest {
                tracing::info!(operator = %op.name, from = %saved.plugin_digest, to = %setup.plugin.digest, "state restored into a different build of the plugin");
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
