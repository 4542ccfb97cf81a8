//! What a run reports when it ends: records in, deliveries per sink, dead letters, plugins, how each task resumed.

use super::Shared;
use crate::checkpoint::recovery::Skipped;
use crate::graph::Guarantee;
use crate::metrics::RecoveryPath;
use std::time::Duration;

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

/// The summary of the run `shared` describes, which ran its tasks for `elapsed` after `startup`.
pub(super) fn summarize(shared: &Shared, startup: Duration, elapsed: Duration, stopped_early: bool) -> RunSummary {
    let (plan, stats) = (&*shared.plan, &shared.stats);
    let recoveries = std::mem::take(&mut *shared.recoveries.lock().unwrap_or_else(|e| e.into_inner()));
    RunSummary {
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
    }
}
