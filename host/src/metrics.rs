//! Prometheus metrics: the process-wide recorder, and the typed helpers the host calls per batch and per checkpoint.
//!
//! [`install`] puts a [`metrics_exporter_prometheus`] recorder in place once per
//! process; the admin endpoint ([`crate::admin`]) renders it on `GET /metrics`.
//! Until `install` is called every helper here is a no-op (the `metrics`
//! crate drops what it has no recorder for), so a run without an admin port
//! pays nothing but the call.
//!
//! # The metrics
//!
//! Names are exactly as exported (Prometheus text format, no suffix added).
//! A series appears once it has first been recorded: a source that has read
//! nothing yet has no `records_in_total` line.
//!
//! | name | type | labels | unit | meaning |
//! |---|---|---|---|---|
//! | `checkpoint_age_seconds` | gauge | `task` | seconds | time since the task's last durable checkpoint (since the task started, before its first); refreshed from the status board at every scrape, so it keeps growing while checkpoints stall |
//! | `checkpoint_duration_seconds` | histogram | `task` | seconds | time to write one checkpoint, from snapshot to durable |
//! | `checkpoint_pause_seconds` | histogram | `task` | seconds | time no batch ran because of one checkpoint |
//! | `checkpoint_bytes` | gauge | `task` | bytes | size of the task's last checkpoint |
//! | `recovery_path_total` | counter | `task`, `path` | starts | how a task's state was obtained at start: `local` (the newest local checkpoint), `local_older` (an older local one, the newest being unusable), `remote` (the remote tier), `fresh` (no checkpoint: from the beginning). All four series of a task appear (at 0) once it has recovered at all |
//! | `records_in_total` | counter | `source` | records | records read from a source (lines that were not records excluded) |
//! | `records_out_total` | counter | `sink` | records | records a sink wrote |
//! | `dedup_hits_total` | counter | `sink` | records | outputs a sink did not write again because it had already delivered them (replays after recovery) |
//! | `dlq_entries_total` | counter | `error_kind`, `operator` | entries | dead-letter entries, by error kind (`Validation`, `PluginTrap`, ...) and the operator (or source, or sink) that produced them |
//! | `dlq_growth_per_minute` | gauge | | entries per minute | dead-letter entries written in the last 60 s (all tasks); above `[dlq] growth_alert_per_minute` the pipeline is `degraded` |
//! | `plugin_faults_total` | counter | `operator`, `kind` | faults | plugin faults (`PluginTrap`, `PluginTimeout`, `PluginMemory`) that made a task rewind to its last checkpoint to isolate the record |
//! | `late_observations_total` | counter | `operator` | records | records an operator discarded as late (the subset of `discarded_total` with `reason="late"`) |
//! | `discarded_total` | counter | `operator`, `reason` | records | records an operator dropped on purpose and counted (`late`, `duplicate`, `suppressed`, ...) |
//! | `operator_batch_seconds` | histogram | `operator` | seconds | time of one `process` call of an operator on one batch |
//! | `batches_total` | counter | `task` | batches | batches a task has completed |
//!
//! Histogram buckets: checkpoints (duration and pause) from 1 ms to 60 s;
//! operator calls from 100 µs to 10 s (the default call deadline is 1 s).
//!
//! # Cost
//!
//! Each helper is one or two registry look-ups keyed by name and labels
//! (a hash and a sharded read lock, plus the label strings it allocates):
//! a few hundred nanoseconds. Call them per batch or per checkpoint, never per
//! record; the `*_n` variants take a count so a batch's discards or dead
//! letters can be reported in one call.

use metrics::{Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

const CHECKPOINT_AGE: &str = "checkpoint_age_seconds";
const CHECKPOINT_DURATION: &str = "checkpoint_duration_seconds";
const CHECKPOINT_PAUSE: &str = "checkpoint_pause_seconds";
const CHECKPOINT_BYTES: &str = "checkpoint_bytes";
const RECOVERY_PATH: &str = "recovery_path_total";
const RECORDS_IN: &str = "records_in_total";
const RECORDS_OUT: &str = "records_out_total";
const DEDUP_HITS: &str = "dedup_hits_total";
const DLQ_ENTRIES: &str = "dlq_entries_total";
const DLQ_GROWTH: &str = "dlq_growth_per_minute";
const PLUGIN_FAULTS: &str = "plugin_faults_total";
const PLUGIN_SWAPS: &str = "plugin_swaps_total";
const LATE_OBSERVATIONS: &str = "late_observations_total";
const DISCARDED: &str = "discarded_total";
const OPERATOR_BATCH: &str = "operator_batch_seconds";
const OPERATOR_WATERMARK: &str = "operator_watermark_seconds";
const BATCHES: &str = "batches_total";

/// Upper bounds of the checkpoint histograms, in seconds: 1 ms to 60 s.
const CHECKPOINT_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];
/// Upper bounds of `operator_batch_seconds`: 100 µs to 10 s.
const OPERATOR_BATCH_BUCKETS: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Upper bounds of `operator_watermark_seconds`: closing a window of a million objects takes seconds.
const OPERATOR_WATERMARK_BUCKETS: &[f64] = &[0.0001, 0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];

/// How often histogram samples are folded into their buckets when nobody scrapes.
///
/// Without its HTTP listener the exporter runs no upkeep task of its own, and
/// recorded samples would pile up in memory until the next scrape.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The handle of the installed recorder, once [`install`] has succeeded.
static INSTALLED: Mutex<Option<PrometheusHandle>> = Mutex::new(None);

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("cannot install the Prometheus recorder: another metrics recorder is already installed in this process")]
    OtherRecorder,
    #[error("cannot install the Prometheus recorder: {0}")]
    Build(BuildError),
}

impl From<BuildError> for MetricsError {
    fn from(e: BuildError) -> MetricsError {
        match e {
            BuildError::FailedToSetGlobalRecorder(_) => MetricsError::OtherRecorder,
            e => MetricsError::Build(e),
        }
    }
}

/// Installs the process-wide Prometheus recorder and returns the handle that renders it.
///
/// The first call installs it (with the buckets above, the metric
/// descriptions, and a background thread folding histogram samples every few
/// seconds); later calls return the same handle.
pub fn install() -> Result<PrometheusHandle, MetricsError> {
    let mut installed = INSTALLED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(handle) = &*installed {
        return Ok(handle.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(CHECKPOINT_DURATION.into()), CHECKPOINT_BUCKETS)?
        .set_buckets_for_metric(Matcher::Full(CHECKPOINT_PAUSE.into()), CHECKPOINT_BUCKETS)?
        .set_buckets_for_metric(Matcher::Full(OPERATOR_BATCH.into()), OPERATOR_BATCH_BUCKETS)?
        .set_buckets_for_metric(Matcher::Full(OPERATOR_WATERMARK.into()), OPERATOR_WATERMARK_BUCKETS)?
        .install_recorder()?;
    describe();
    let upkeep = handle.clone();
    let spawned = std::thread::Builder::new().name("sda-metrics-upkeep".into()).spawn(move || {
        loop {
            std::thread::sleep(UPKEEP_INTERVAL);
            upkeep.run_upkeep();
        }
    });
    if let Err(e) = spawned {
        // Scrapes fold samples too; only an unscraped long run would grow.
        tracing::warn!("cannot start the metrics upkeep thread: {e}");
    }
    *installed = Some(handle.clone());
    Ok(handle)
}

fn describe() {
    describe_gauge!(
        CHECKPOINT_AGE,
        Unit::Seconds,
        "Seconds since the task's last durable checkpoint (since it started, before the first)."
    );
    describe_histogram!(CHECKPOINT_DURATION, Unit::Seconds, "Time to write one checkpoint, until durable.");
    describe_histogram!(CHECKPOINT_PAUSE, Unit::Seconds, "Time no batch ran because of one checkpoint.");
    describe_gauge!(CHECKPOINT_BYTES, Unit::Bytes, "Size of the task's last checkpoint.");
    describe_counter!(RECOVERY_PATH, Unit::Count, "Task starts by how their state was obtained: local, local_older, remote or fresh.");
    describe_counter!(RECORDS_IN, Unit::Count, "Records read from the source.");
    describe_counter!(RECORDS_OUT, Unit::Count, "Records written by the sink.");
    describe_counter!(DEDUP_HITS, Unit::Count, "Outputs the sink skipped because it had already delivered them.");
    describe_counter!(DLQ_ENTRIES, Unit::Count, "Dead-letter entries by error kind and producing operator.");
    describe_gauge!(DLQ_GROWTH, Unit::Count, "Dead-letter entries written in the last minute.");
    describe_counter!(PLUGIN_FAULTS, Unit::Count, "Plugin faults that made a task rewind to isolate the record, by operator and kind.");
    describe_counter!(PLUGIN_SWAPS, Unit::Count, "Hot swaps of an operator's plugin that committed, by operator.");
    describe_counter!(LATE_OBSERVATIONS, Unit::Count, "Records the operator discarded as late.");
    describe_counter!(DISCARDED, Unit::Count, "Records the operator dropped on purpose, by reason.");
    describe_histogram!(OPERATOR_BATCH, Unit::Seconds, "Time of one process call of the operator on one batch.");
    describe_histogram!(OPERATOR_WATERMARK, Unit::Seconds, "Time of one on-watermark call of the operator (closing windows).");
    describe_counter!(BATCHES, Unit::Count, "Batches the task has completed.");
}

/// How a task's state was obtained when it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecoveryPath {
    /// The newest local checkpoint.
    Local,
    /// An older local checkpoint: the newest was unusable.
    LocalOlder,
    /// A checkpoint fetched from the remote tier.
    Remote,
    /// No usable checkpoint: from the beginning of the source.
    Fresh,
}

impl RecoveryPath {
    pub const ALL: [RecoveryPath; 4] = [RecoveryPath::Local, RecoveryPath::LocalOlder, RecoveryPath::Remote, RecoveryPath::Fresh];

    /// The `path` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RecoveryPath::Local => "local",
            RecoveryPath::LocalOlder => "local_older",
            RecoveryPath::Remote => "remote",
            RecoveryPath::Fresh => "fresh",
        }
    }
}

impl std::fmt::Display for RecoveryPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One checkpoint of `task` became durable: it took `duration` to write,
/// held batches back for `pause`, and is `bytes` long. Resets
/// `checkpoint_age_seconds` to 0.
pub fn record_checkpoint(task: &str, duration: Duration, pause: Duration, bytes: u64) {
    histogram!(CHECKPOINT_DURATION, "task" => task.to_owned()).record(duration);
    histogram!(CHECKPOINT_PAUSE, "task" => task.to_owned()).record(pause);
    gauge!(CHECKPOINT_BYTES, "task" => task.to_owned()).set(bytes as f64);
    gauge!(CHECKPOINT_AGE, "task" => task.to_owned()).set(0.0);
}

/// Sets `checkpoint_age_seconds` of `task` (the admin endpoint does, from its status board, at each scrape).
pub fn checkpoint_age(task: &str, age: Duration) {
    gauge!(CHECKPOINT_AGE, "task" => task.to_owned()).set(age);
}

/// `task` started from `path`. The other three paths of the task are registered at 0,
/// so every series exists from the first start on.
pub fn recovery(task: &str, path: RecoveryPath) {
    for p in RecoveryPath::ALL {
        let n = u64::from(p == path);
        counter!(RECOVERY_PATH, "task" => task.to_owned(), "path" => p.as_str()).increment(n);
    }
}

/// `n` records were read from `source`.
pub fn records_in(source: &str, n: u64) {
    counter!(RECORDS_IN, "source" => source.to_owned()).increment(n);
}

/// `sink` wrote `n` records.
pub fn records_out(sink: &str, n: u64) {
    counter!(RECORDS_OUT, "sink" => sink.to_owned()).increment(n);
}

/// `sink` skipped `n` outputs it had already delivered.
pub fn dedup_hits(sink: &str, n: u64) {
    counter!(DEDUP_HITS, "sink" => sink.to_owned()).increment(n);
}

/// One dead-letter entry of kind `error_kind` (e.g. `ErrorKind::as_str()`) produced by `operator`.
pub fn dlq_entry(error_kind: &str, operator: &str) {
    dlq_entries(error_kind, operator, 1);
}

/// `n` dead-letter entries of one kind from one operator.
pub fn dlq_entries(error_kind: &str, operator: &str, n: u64) {
    counter!(DLQ_ENTRIES, "error_kind" => error_kind.to_owned(), "operator" => operator.to_owned()).increment(n);
}

/// Dead-letter entries written in the last minute.
pub fn dlq_growth_per_minute(entries: u64) {
    gauge!(DLQ_GROWTH).set(entries as f64);
}

/// `operator`'s plugin faulted (`kind`: `PluginTrap`, `PluginTimeout`, `PluginMemory`) on a batch.
pub fn plugin_fault(operator: &str, kind: &str) {
    counter!(PLUGIN_FAULTS, "operator" => operator.to_owned(), "kind" => kind.to_owned()).increment(1);
}

/// `operator` now runs another plugin (a hot swap committed).
pub fn plugin_swapped(operator: &str) {
    counter!(PLUGIN_SWAPS, "operator" => operator.to_owned()).increment(1);
}

/// `operator` discarded one record for `reason`; a `late` one also counts in `late_observations_total`.
pub fn discarded(operator: &str, reason: &str) {
    discarded_n(operator, reason, 1);
}

/// `operator` discarded `n` records for `reason`.
pub fn discarded_n(operator: &str, reason: &str, n: u64) {
    counter!(DISCARDED, "operator" => operator.to_owned(), "reason" => reason.to_owned()).increment(n);
    if reason == "late" {
        counter!(LATE_OBSERVATIONS, "operator" => operator.to_owned()).increment(n);
    }
}

/// One `process` call of `operator` took `elapsed`.
pub fn operator_batch(operator: &str, elapsed: Duration) {
    histogram!(OPERATOR_BATCH, "operator" => operator.to_owned()).record(elapsed);
}

/// One `on-watermark` call of `operator` (where windows close) took `elapsed`.
pub fn operator_watermark(operator: &str, elapsed: Duration) {
    histogram!(OPERATOR_WATERMARK, "operator" => operator.to_owned()).record(elapsed);
}

/// `task` completed one batch.
pub fn batch(task: &str) {
    counter!(BATCHES, "task" => task.to_owned()).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_paths_have_their_label_values() {
        let labels: Vec<&str> = RecoveryPath::ALL.iter().map(|p| p.as_str()).collect();
        assert_eq!(labels, ["local", "local_older", "remote", "fresh"]);
        assert_eq!(serde_json::to_string(&RecoveryPath::LocalOlder).unwrap(), "\"local_older\"");
        assert_eq!(RecoveryPath::Remote.to_string(), "remote");
    }

    #[test]
    fn install_twice_gives_the_same_recorder() {
        let a = install().unwrap();
        let b = install().unwrap();
        records_in("unit-install-src", 5);
        batch("unit-install-task");
        for text in [a.render(), b.render()] {
            assert!(text.contains("records_in_total{source=\"unit-install-src\"} 5"), "{text}");
            assert!(text.contains("batches_total{task=\"unit-install-task\"} 1"), "{text}");
        }
    }
}
