//! Hot swap: replace an operator's plugin in every task that runs it, at a batch boundary, with its state carried over; in all tasks or in none.
//!
//! Two phases, coordinated by the [`Controller`]:
//! 1. Before any task pauses, the new plugin is read, checked (WIT version),
//!    compiled (or taken from the component cache) and instantiated once with
//!    the operator's config, so a plugin that cannot work fails the swap
//!    without stopping anything.
//! 2. Every task that runs the operator gets a `Prepare` and, at its next batch
//!    boundary, snapshots its running instance, instantiates the new plugin and
//!    `restore`s the snapshot into it (the plugin migrates the state if its
//!    version differs), reports, and waits. Only if every task is ready does the
//!    controller record the swap durably (the [`journal`], so a restart runs the
//!    new plugin) and tell them to commit: each switches instances and runs on.
//!    No checkpoint is taken then: the journal already makes a restart run the
//!    new plugin, which restores the last checkpoint's state as the running
//!    state was just restored into it; the task's next checkpoint names the new
//!    plugin's digest. Otherwise every task drops what it prepared and runs on
//!    with the old plugin.
//!
//! Between the two phases a task processes nothing, so no record is seen by
//! both plugins and none by neither: that is what makes a swap invisible in the
//! output. The pause is the time from a task's `Prepare` to its switch.
//! Tasks started while a swap is under way (a Kafka partition assigned) wait
//! for it and start with the plugin it leaves in place.

pub mod journal;

use crate::graph::{Limits, Plan, PluginFile};
use crate::runtime::{CompileSource, LoadedPlugin, Runtime, RuntimeError};
use crate::status::StatusBoard;
use journal::{SwapJournal, SwapRecord};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a swap waits for every task to reach a batch boundary and prepare.
pub const PREPARE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a prepared task waits for the verdict before it drops what it prepared.
pub(crate) const VERDICT_TIMEOUT: Duration = Duration::from_secs(60);

/// The step of a swap that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SwapStep {
    /// Reading the plugin file, or its WIT version.
    Read,
    Compile,
    Instantiate,
    /// The plugin's `init` rejected the operator's config.
    Init,
    /// The running instance could not give its state.
    Snapshot,
    /// The new plugin's `restore` refused the running state, or faulted.
    Restore,
    /// Recording the swap durably (the journal, the plugin's copy).
    Record,
    /// A task stopped after the swap was committed.
    Commit,
}

impl std::fmt::Display for SwapStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SwapStep::Read => "read",
            SwapStep::Compile => "compile",
            SwapStep::Instantiate => "instantiate",
            SwapStep::Init => "init",
            SwapStep::Snapshot => "snapshot",
            SwapStep::Restore => "restore",
            SwapStep::Record => "record",
            SwapStep::Commit => "commit",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SwapError {
    #[error("pipeline `{pipeline}` has no operator `{operator}`; its operators are {known}")]
    UnknownOperator { pipeline: String, operator: String, known: String },
    #[error("another swap is under way; try again once it is done")]
    Busy,
    #[error(
        "swap of `{operator}` failed at step `{step}`{}: {message}. Every task keeps plugin {kept}",
        task.as_ref().map(|t| format!(" in task `{t}`")).unwrap_or_default()
    )]
    Failed { operator: String, step: SwapStep, task: Option<String>, message: String, kept: String },
    #[error(
        "swap of `{operator}` gave up after {} s: task(s) {waiting} did not reach a batch boundary; every task keeps plugin {kept}",
        PREPARE_TIMEOUT.as_secs()
    )]
    Timeout { operator: String, waiting: String, kept: String },
}

impl SwapError {
    /// The step that failed, if the swap got as far as trying.
    pub fn step(&self) -> Option<SwapStep> {
        match self {
            SwapError::Failed { step, .. } => Some(*step),
            _ => None,
        }
    }
}

/// Swap `operator` to the plugin at `plugin`, or re-`init` it with another config or limits.
#[derive(Debug, Clone)]
pub struct SwapRequest {
    pub operator: String,
    /// The new component; `None` keeps the running one.
    pub plugin: Option<PathBuf>,
    /// The new `config` (as JSON); `None` keeps the running one.
    pub config_json: Option<String>,
    /// New sandbox limits; `None` keeps the running ones.
    pub limits: Option<Limits>,
    /// Who or what asks: shown in `/status` and recorded in the journal.
    pub requested_by: String,
    /// True when the pipeline file now names the new plugin (`run --watch`): nothing to remember
    /// across restarts. False for a swap the file does not know of (`sda-pipeline swap`).
    pub named_by_pipeline_file: bool,
}

impl SwapRequest {
    /// A swap to the component at `plugin`, asked for by `requested_by`.
    pub fn plugin(operator: &str, plugin: PathBuf, requested_by: &str) -> SwapRequest {
        SwapRequest {
            operator: operator.to_string(),
            plugin: Some(plugin),
            config_json: None,
            limits: None,
            requested_by: requested_by.to_string(),
            named_by_pipeline_file: false,
        }
    }
}

/// What a task needs to make an instance of an operator: its plugin, config, limits and parallelism.
#[derive(Clone)]
pub(crate) struct OperatorSetup {
    pub plugin: LoadedPlugin,
    pub config_json: String,
    pub limits: Limits,
    /// A swap replaces every shard: the new plugin runs as many instances as the old one.
    pub parallelism: u32,
}

/// What a successful swap did: the body of `POST /swap`'s answer, which `sda-pipeline swap` reads.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct SwapReport {
    pub operator: String,
    pub from_digest: String,
    pub to_digest: String,
    pub wit_version: String,
    /// `compiled`, `cache` or `native`.
    pub compile: CompileSource,
    pub compile_ms: f64,
    /// One entry per task that runs the operator.
    pub tasks: Vec<TaskSwapped>,
    /// RFC 3339, UTC.
    pub swapped_at: String,
    pub swapped_by: String,
}

/// One task's part in a swap.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct TaskSwapped {
    pub task: String,
    /// Version of the state the old instance gave.
    pub state_version_from: u32,
    /// Version of the state the new instance gives (what its checkpoints will hold).
    pub state_version_to: u32,
    /// Time the task processed nothing: from its `Prepare` to its switch to the new plugin.
    pub pause_ms: f64,
}

/// A message to a task, handled between batches.
pub(crate) enum Control {
    Prepare(Prepare),
}

/// Phase one, for one task.
pub(crate) struct Prepare {
    /// Plan index of the operator.
    pub operator: usize,
    pub setup: OperatorSetup,
    pub replies: Sender<Reply>,
    pub verdict: Receiver<Verdict>,
}

pub(crate) enum Reply {
    Ready {
        task: String,
        state_version: u32,
    },
    /// The task ended (or does not run the operator): nothing to swap there.
    Skipped {
        task: String,
    },
    Failed {
        task: String,
        step: SwapStep,
        message: String,
    },
    Done {
        task: String,
        state_version: u32,
        pause: Duration,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Commit,
    Abort,
}

/// What a task listens on between batches. Dropped with its task, it answers
/// what is still queued, so a swap does not wait for a task that has ended.
pub(crate) struct ControlPort {
    task: String,
    receiver: Receiver<Control>,
}

impl ControlPort {
    pub(crate) fn try_recv(&self) -> Option<Control> {
        self.receiver.try_recv().ok()
    }
}

impl Drop for ControlPort {
    fn drop(&mut self) {
        while let Ok(Control::Prepare(prepare)) = self.receiver.try_recv() {
            let _ = prepare.replies.send(Reply::Skipped { task: self.task.clone() });
        }
    }
}

struct TaskLink {
    task: String,
    /// Plan indices of the operators it runs.
    operators: Vec<usize>,
    control: Sender<Control>,
}

/// What each operator runs now, and the tasks to tell when that changes.
struct Registry {
    operators: Vec<OperatorSetup>,
    /// The digest the pipeline file names for each operator (what a swap journal entry is relative to).
    configured: Vec<String>,
    tasks: Vec<TaskLink>,
}

/// Coordinates swaps across the tasks of this process.
pub struct Controller {
    plan: Arc<Plan>,
    runtime: Arc<Runtime>,
    board: Arc<StatusBoard>,
    journal: SwapJournal,
    registry: Mutex<Registry>,
    /// Held for the whole of a swap: one at a time.
    in_progress: Mutex<()>,
}

fn rfc3339_now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

impl Controller {
    /// `plugins`: what each plan operator runs at start (by plan index).
    pub(crate) fn new(plan: Arc<Plan>, runtime: Arc<Runtime>, board: Arc<StatusBoard>, plugins: Vec<LoadedPlugin>) -> Controller {
        let journal = SwapJournal::new(&plan.checkpoint.dir, &plan.name);
        let operators = plan
            .operators
            .iter()
            .zip(plugins)
            .map(|(op, plugin)| OperatorSetup {
                plugin,
                config_json: op.config_json.clone(),
                limits: op.limits,
                parallelism: op.parallelism,
            })
            .collect();
        let configured = plan.operators.iter().map(|op| op.plugin.digest.clone()).collect();
        let registry = Registry { operators, configured, tasks: Vec::new() };
        Controller { plan, runtime, board, journal, registry: Mutex::new(registry), in_progress: Mutex::new(()) }
    }

    /// The digest of the plugin operator `name` runs now.
    pub fn running_digest(&self, name: &str) -> Option<String> {
        let index = self.plan.operators.iter().position(|op| op.name == name)?;
        Some(self.registry.lock().unwrap_or_else(|e| e.into_inner()).operators[index].plugin.digest.clone())
    }

    /// Registers a task that runs `operators` (plan indices): returns the plugins to build it
    /// from and the channel swaps reach it by. Waits while a swap is under way.
    pub(crate) fn register(&self, task: &str, operators: &[usize]) -> (Vec<OperatorSetup>, ControlPort) {
        let (control, receiver) = mpsc::channel();
        let mut registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        // A task whose channel is gone has ended; a new one under the same name replaces it.
        registry.tasks.retain(|t| t.task != task);
        registry.tasks.push(TaskLink { task: task.to_string(), operators: operators.to_vec(), control });
        (registry.operators.clone(), ControlPort { task: task.to_string(), receiver })
    }

    /// Swaps an operator's plugin in every task (see the module docs). Blocks until done.
    pub fn swap(&self, request: &SwapRequest) -> Result<SwapReport, SwapError> {
        let _one_at_a_time = self.in_progress.try_lock().map_err(|_| SwapError::Busy)?;
        let plan = &*self.plan;
        let index = plan.operators.iter().position(|op| op.name == request.operator).ok_or_else(|| SwapError::UnknownOperator {
            pipeline: plan.name.clone(),
            operator: request.operator.clone(),
            known: plan.operators.iter().map(|op| format!("`{}`", op.name)).collect::<Vec<_>>().join(", "),
        })?;
        let op = &plan.operators[index];
        let running = self.registry.lock().unwrap_or_else(|e| e.into_inner()).operators[index].clone();
        let kept = running.plugin.digest.clone();
        let failed = |step: SwapStep, task: Option<String>, message: String| SwapError::Failed {
            operator: op.name.clone(),
            step,
            task,
            message,
            kept: kept.clone(),
        };

        // Before anything pauses: read, check, compile, and try an instance.
        let file = match &request.plugin {
            Some(path) => Some(PluginFile::read(path).map_err(|e| failed(SwapStep::Read, None, e.to_string()))?),
            None => None,
        };
        let loaded = match &file {
            Some(file) => self.runtime.load(&op.name, file).map_err(|e| failed(SwapStep::Compile, None, e.to_string()))?,
            None => running.plugin.clone(),
        };
        let setup = OperatorSetup {
            plugin: loaded.clone(),
            config_json: request.config_json.clone().unwrap_or(running.config_json),
            limits: request.limits.unwrap_or(running.limits),
            parallelism: running.parallelism,
        };
        drop(
            self.runtime
                .instantiate_parallel(&op.name, &setup.plugin, setup.limits, &setup.config_json, setup.parallelism, None)
                .map_err(|e| failed(step_of(&e), None, e.to_string()))?,
        );
        tracing::info!(operator = %op.name, from = %kept, to = %loaded.digest, compile = ?loaded.compile_time, "swap: new instance ready; \
            asking the tasks to prepare");

        let mut registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        let (replies, answers) = mpsc::channel();
        let mut verdicts = Vec::new();
        registry.tasks.retain(|link| {
            if !link.operators.contains(&index) {
                return true;
            }
            let (verdict, listen) = mpsc::channel();
            let sent = link.control.send(Control::Prepare(Prepare {
                operator: index,
                setup: setup.clone(),
                replies: replies.clone(),
                verdict: listen,
            }));
            if sent.is_ok() {
                verdicts.push((link.task.clone(), verdict));
            }
            sent.is_ok() // a task whose channel is closed has ended
        });
        drop(replies);

        // Phase one: every task ready, or none commits.
        let deadline = Instant::now() + PREPARE_TIMEOUT;
        let mut waiting: Vec<String> = verdicts.iter().map(|(t, _)| t.clone()).collect();
        let mut from_versions = std::collections::BTreeMap::new();
        let mut failure = None;
        while !waiting.is_empty() && failure.is_none() {
            match answers.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(Reply::Ready { task, state_version }) => {
                    waiting.retain(|t| *t != task);
                    from_versions.insert(task, state_version);
                }
                Ok(Reply::Skipped { task }) => waiting.retain(|t| *t != task),
                Ok(Reply::Failed { task, step, message }) => failure = Some(failed(step, Some(task), message)),
                Ok(Reply::Done { .. }) => {}
                Err(RecvTimeoutError::Timeout) => {
                    failure = Some(SwapError::Timeout { operator: op.name.clone(), waiting: waiting.join(", "), kept: kept.clone() })
                }
                // Every task that has not answered has ended (its input, or a revoked partition):
                // it no longer runs the operator, and the registry gives later tasks the new plugin.
                Err(RecvTimeoutError::Disconnected) => waiting.clear(),
            }
        }
        let swapped_at = rfc3339_now();
        if failure.is_none()
            && let Some(file) = &file
        {
            if request.named_by_pipeline_file {
                registry.configured[index] = loaded.digest.clone();
            }
            let recorded = if loaded.digest == registry.configured[index] {
                self.journal.forget(&op.name)
            } else {
                let record = SwapRecord {
                    digest: loaded.digest.clone(),
                    configured_digest: registry.configured[index].clone(),
                    from_path: file.path.display().to_string(),
                    swapped_at: swapped_at.clone(),
                    swapped_by: request.requested_by.clone(),
                };
                self.journal.record(&op.name, record, &file.bytes)
            };
            if let Err(e) = recorded {
                failure = Some(failed(SwapStep::Record, None, e.to_string()));
            }
        }
        if let Some(error) = failure {
            for (_, verdict) in &verdicts {
                let _ = verdict.send(Verdict::Abort);
            }
            tracing::warn!(operator = %op.name, error = %error, "swap abandoned; the old plugin runs on");
            return Err(error);
        }

        // Phase two: commit everywhere; each task switches (the journal has the swap already).
        registry.operators[index] = setup;
        for (_, verdict) in &verdicts {
            let _ = verdict.send(Verdict::Commit);
        }
        let mut tasks = Vec::new();
        let deadline = Instant::now() + VERDICT_TIMEOUT;
        while tasks.len() < from_versions.len() {
            match answers.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(Reply::Done { task, state_version, pause }) => tasks.push(TaskSwapped {
                    state_version_from: from_versions.get(&task).copied().unwrap_or_default(),
                    task,
                    state_version_to: state_version,
                    pause_ms: pause.as_secs_f64() * 1e3,
                }),
                Ok(Reply::Skipped { task }) => {
                    from_versions.remove(&task);
                }
                Ok(_) => {}
                Err(_) => {
                    // Committed, but a task stopped before it switched: its own error says why, and
                    // its restart runs the new plugin (the journal has it).
                    let missing: Vec<&String> = from_versions.keys().filter(|t| !tasks.iter().any(|s| &s.task == *t)).collect();
                    tracing::error!(operator = %op.name, tasks = ?missing, "swap committed, but these tasks stopped before switching to \
                        the new plugin");
                    break;
                }
            }
        }
        drop(registry);
        tasks.sort_by(|a, b| a.task.cmp(&b.task));
        let state_version = tasks.first().map(|t| t.state_version_to);
        if file.is_some() {
            self.board.operator_swapped(&op.name, &loaded, state_version, &swapped_at, &request.requested_by);
            crate::metrics::plugin_swapped(&op.name);
        }
        let report = SwapReport {
            operator: op.name.clone(),
            from_digest: kept,
            to_digest: loaded.digest.clone(),
            wit_version: loaded.wit_version.clone(),
            compile: loaded.source,
            compile_ms: loaded.compile_time.as_secs_f64() * 1e3,
            tasks,
            swapped_at,
            swapped_by: request.requested_by.clone(),
        };
        tracing::info!(operator = %report.operator, from = %report.from_digest, to = %report.to_digest, tasks = report.tasks.len(), "swap \
            done");
        Ok(report)
    }
}

/// Which step a failure to make an instance belongs to.
pub(crate) fn step_of(error: &RuntimeError) -> SwapStep {
    match error {
        RuntimeError::Compile { .. } | RuntimeError::Engine(_) => SwapStep::Compile,
        RuntimeError::Instantiate { .. }
        | RuntimeError::ShardsUnsupported { .. }
        | RuntimeError::KeyedParallelism { .. }
        | RuntimeError::Thread { .. } => SwapStep::Instantiate,
        RuntimeError::InitRejected { .. } | RuntimeError::Fault(_) => SwapStep::Init,
    }
}
