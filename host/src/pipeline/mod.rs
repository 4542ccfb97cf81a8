//! Runs a validated plan: compiles the plugins, repairs and opens sinks and the DLQ, recovers each task from its checkpoints, starts the tasks, joins them.
//!
//! Everything that can fail before the first record (a plugin that does not
//! compile or whose `init` rejects its config, an unwritable sink, checkpoints
//! that exist but cannot be used) fails here, before any task starts. Tasks run
//! on their own threads; the first task error stops the others after their
//! batch in hand.
//!
//! [`run_with_controller`] reads as the list of steps; each has a file:
//! - [`admin`]: the admin endpoint and its token;
//! - [`plugins`]: plugins loaded, with swaps the journal replays;
//! - [`deliveries`]: sink and DLQ files repaired and opened, and per task its writers with what they delivered read back;
//! - [`recover`]: a task's recovery ladder and its operators restored;
//! - [`task`]: a task built from its checkpoint and run on a thread of its own;
//! - [`group`]: the Kafka consumer group, a task per assigned partition or shard lease;
//! - [`summary`]: what the run reports at its end;
//! - [`watch`]: `run --watch`, which reruns the pipeline as its file is edited.

mod admin;
mod deliveries;
mod group;
mod plugins;
mod recover;
mod summary;
mod task;
pub mod watch;

pub use admin::admin_token_path;
pub use plugins::{InputScopeError, check_input_scopes};
pub use recover::RestoreError;
pub use summary::{RunSummary, TaskRecovery};

use crate::admin::AdminError;
use crate::checkpoint::recovery::RecoveryError;
use crate::checkpoint::remote::{RemoteError, RemoteTier, Uploader};
use crate::dlq::DlqError;
use crate::graph::{Assignment, KafkaSourcePlan, Plan, SourceKind};
use crate::runtime::{LoadedPlugin, Runtime, RuntimeError};
use crate::sink::SinkError;
use crate::source::{FileSource, MergedKafkaSource, SourceError, SourceReader};
use crate::stats::Stats;
use crate::status::StatusBoard;
use crate::swap::Controller;
use crate::task::{Shutdown, TaskEnd, TaskError};
use std::path::PathBuf;
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
    #[error(transparent)]
    InputScope(#[from] InputScopeError),
    #[error("cannot write the admin token `{}`: {error}", path.display())]
    AdminToken { path: PathBuf, error: std::io::Error },
    #[error(
        "source `{source_name}` runs in {shards} shard(s) now, but checkpoints of another cut of it exist:\n{}\nIts tasks would start from \
         the beginning of the topic and deliver again every output the old cut delivered. Put `shards` back, or, to start over anyway \
         (delivering again), remove those checkpoints or restart with `--allow-fresh-start`",
        found.iter().map(|f| format!("  - {f}")).collect::<Vec<_>>().join("\n")
    )]
    OtherCut { source_name: String, shards: u32, found: Vec<String> },
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

/// What every task of a run is built from.
struct Shared {
    plan: Arc<Plan>,
    runtime: Arc<Runtime>,
    options: RunOptions,
    /// The plugins at start, for the summary; tasks take theirs from `controller` (swaps change them).
    loaded: Vec<LoadedPlugin>,
    controller: Arc<Controller>,
    /// File sinks and a file DLQ are shared by all tasks of the process.
    files: deliveries::SharedFiles,
    remote: Option<Arc<RemoteTier>>,
    uploader: Option<Arc<Uploader>>,
    stats: Arc<Stats>,
    board: Arc<StatusBoard>,
    recoveries: Mutex<Vec<TaskRecovery>>,
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
    let _admin = admin::start_admin(&plan, &board, controller_slot)?;
    let loaded = plugins::load_plugins(&plan, &runtime, &board)?;
    check_input_scopes(&plan, &runtime, &loaded)?;
    let controller = Arc::new(Controller::new(plan.clone(), runtime.clone(), board.clone(), loaded.clone()));
    let files = deliveries::open_shared_files(&plan)?;
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
        files,
        remote,
        uploader: uploader.clone(),
        stats: stats.clone(),
        board,
        recoveries: Mutex::new(Vec::new()),
    });

    for (s, source) in plan.sources.iter().enumerate() {
        if let SourceKind::Kafka(KafkaSourcePlan { assignment: Assignment::All { lease: Some(lease), .. }, .. }) = &source.kind {
            group::check_one_cut(&shared, s, lease)?;
        }
    }
    // File sources and Kafka sources read whole (`assignment = "all"`): one task each, from now. Other
    // Kafka sources, and those read whole in leased shards: a coordinator each, starting and stopping
    // tasks as the group assigns partitions or leases.
    let mut running = Vec::new();
    for (s, source) in plan.sources.iter().enumerate() {
        let task = match &source.kind {
            SourceKind::File(file) => {
                let follow = file.follow || options.follow;
                task::build_task(&shared, s, task::task_id(&source.name, Some(0)), None, None, None, |checkpoint| {
                    let reader = FileSource::open(&source.name, file, checkpoint.map_or(0, |c| c.offset), follow)?;
                    Ok(SourceReader::file(reader, follow, shared.plan.batch_size))
                })?
            }
            SourceKind::Kafka(kafka) => {
                let Assignment::All { idle_timeout, lease: None } = kafka.assignment else { continue };
                task::build_task(&shared, s, task::task_id(&source.name, None), None, None, None, |checkpoint| {
                    let start = checkpoint.map(|c| (c.offset, c.frontier.as_deref().unwrap_or_default()));
                    let reader = MergedKafkaSource::open(&source.name, kafka, start, options.stop_at_end, idle_timeout)?;
                    Ok(SourceReader::KafkaMerged(reader))
                })?
            }
        };
        running.push(task::spawn_task(&shared, task, shutdown.clone()));
    }
    let coordinators: Vec<_> = (plan.sources.iter().enumerate())
        .filter(|(_, source)| match &source.kind {
            SourceKind::Kafka(k) => matches!(k.assignment, Assignment::Group | Assignment::All { lease: Some(_), .. }),
            SourceKind::File(_) => false,
        })
        .map(|(s, _)| group::KafkaCoordinator::spawn(shared.clone(), s, shutdown.clone()))
        .collect();
    let _ = controller_slot.set(controller);
    let startup = started.elapsed();
    let running_since = Instant::now();

    let mut first_error: Option<PipelineError> = None;
    let mut stopped_early = false;
    for r in running {
        match task::join(r) {
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
    Ok(summary::summarize(&shared, startup, elapsed, stopped_early))
}
