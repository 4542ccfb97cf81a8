//! Runs a validated plan: compiles the plugins, opens sinks and the DLQ, starts one task per source partition, joins them.
//!
//! Everything that can fail before the first record (a plugin that does not
//! compile or whose `init` rejects its config, an unwritable sink) fails here,
//! before any task starts. Tasks run on their own threads; the first task
//! error stops the others after their batch in hand.

use crate::dlq::{DlqError, FileDlq};
use crate::graph::{DlqPlan, Plan, SinkKind, SourceKind};
use crate::runtime::{LoadedPlugin, Runtime, RuntimeError};
use crate::sink::{FileSink, SinkError};
use crate::source::{FileSource, SourceError};
use crate::stats::Stats;
use crate::task::{Shutdown, Task, TaskEnd, TaskError};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
}

/// Choices made on the command line rather than in `pipeline.toml`.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Follow every file source as it grows, whatever the file says.
    pub follow: bool,
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub pipeline: String,
    /// Compiling plugins, instantiating them, opening files.
    pub startup: Duration,
    /// Running the tasks: the time records were flowing.
    pub elapsed: Duration,
    /// True if a shutdown request ended the run before its input did.
    pub stopped_early: bool,
    pub records_in: u64,
    /// `(sink name, path, records written)`.
    pub sinks: Vec<(String, PathBuf, u64)>,
    pub dlq_path: PathBuf,
    pub dlq_entries: u64,
    pub dlq_breakdown: Vec<(String, String, u64)>,
    pub discarded: u64,
    pub discard_breakdown: Vec<(String, String, u64)>,
    /// `(operator, how its plugin was obtained, how long it took)`.
    pub plugins: Vec<(String, crate::runtime::CompileSource, Duration)>,
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
    let loaded: Vec<LoadedPlugin> =
        plan.operators.iter().map(|op| runtime.load(&op.name, &op.plugin)).collect::<Result<_, _>>()?;
    for (op, plugin) in plan.operators.iter().zip(&loaded) {
        tracing::info!(operator = %op.name, digest = %plugin.digest, source = ?plugin.source, time = ?plugin.compile_time, "plugin ready");
    }

    let sinks: Vec<Arc<Mutex<FileSink>>> = plan
        .sinks
        .iter()
        .map(|s| match &s.kind {
            SinkKind::File { path } => FileSink::open(&s.name, path).map(|f| Arc::new(Mutex::new(f))),
        })
        .collect::<Result<_, _>>()?;
    let DlqPlan::File { path: dlq_path } = &plan.dlq;
    let dlq = Arc::new(Mutex::new(FileDlq::open(dlq_path)?));

    let mut tasks = Vec::with_capacity(plan.sources.len());
    for (s, source) in plan.sources.iter().enumerate() {
        let (operator_indices, sink_indices) = plan.reachable_from(s);
        let instances = operator_indices
            .into_iter()
            .map(|i| {
                let op = &plan.operators[i];
                runtime.instantiate(&op.name, &loaded[i], op.limits, &op.config_json).map(|inst| (i, inst))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let SourceKind::File(file) = &source.kind;
        let reader = FileSource::open(&source.name, file, 0, file.follow || options.follow)?;
        let task_sinks = sink_indices.into_iter().map(|i| (i, sinks[i].clone())).collect();
        tasks.push(Task::new(plan, s, reader, instances, task_sinks, dlq.clone(), stats.clone()));
    }

    let startup = started.elapsed();
    let running = Instant::now();
    let results: Vec<Result<TaskEnd, TaskError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = tasks
            .into_iter()
            .enumerate()
            .map(|(i, task)| {
                let name = format!("sda-task-{}", plan.sources[i].name);
                std::thread::Builder::new()
                    .name(name)
                    .spawn_scoped(scope, move || {
                        let result = task.run(shutdown);
                        if result.is_err() {
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
    let mut stopped_early = false;
    for result in results {
        match result? {
            TaskEnd::Finished => {}
            TaskEnd::Stopped => stopped_early = true,
        }
    }

    Ok(RunSummary {
        pipeline: plan.name.clone(),
        startup,
        elapsed: running.elapsed(),
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
        dlq_path: dlq_path.clone(),
        dlq_entries: stats.dlq_entries(),
        dlq_breakdown: stats.dlq_breakdown().into_iter().map(|((op, kind), n)| (op, kind.as_str().to_string(), n)).collect(),
        discarded: stats.discarded_total(),
        discard_breakdown: stats.discard_breakdown().into_iter().map(|((op, reason), n)| (op, reason, n)).collect(),
        plugins: plan.operators.iter().zip(&loaded).map(|(op, p)| (op.name.clone(), p.source, p.compile_time)).collect(),
    })
}
