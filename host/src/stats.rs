//! Live counters of a running pipeline, shared by its tasks, the progress line and the summary; each also feeds the Prometheus metrics.

use crate::dlq::ErrorKind;
use crate::metrics;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[derive(Debug, Default)]
pub struct Stats {
    /// Records read from sources (lines that were not records are not counted).
    pub records_in: AtomicU64,
    /// Records written, by sink name (by name: a graph rebuilt by `run --watch` may add sinks).
    sink_records: Mutex<BTreeMap<String, u64>>,
    pub dlq_entries: AtomicU64,
    pub discarded: AtomicU64,
    /// Outputs not delivered again because the sink had them (replays).
    dedup_hits: AtomicU64,
    /// Dead-letter entries by (operator, kind); updated rarely, read at the end.
    dlq_by: Mutex<BTreeMap<(String, ErrorKind), u64>>,
    /// Discards by (operator, reason).
    discards_by: Mutex<BTreeMap<(String, String), u64>>,
    /// How long each checkpoint held its task's batches back, in the order taken
    /// (one per task per interval: a few thousand in a day-long run).
    checkpoint_pauses: Mutex<Vec<Duration>>,
}

impl Stats {
    pub fn new() -> Stats {
        Stats::default()
    }

    pub fn add_records_in(&self, source: &str, n: u64) {
        self.records_in.fetch_add(n, Ordering::Relaxed);
        metrics::records_in(source, n);
    }

    /// Once per batch and sink: a lock is cheap at that rate.
    pub fn add_sink_records(&self, name: &str, n: u64) {
        *self.sink_records.lock().unwrap_or_else(|e| e.into_inner()).entry(name.to_string()).or_default() += n;
        metrics::records_out(name, n);
    }

    /// Records a sink skipped because it had delivered them already (a replay).
    pub fn dedup_hits(&self, sink: &str, n: u64) {
        self.dedup_hits.fetch_add(n, Ordering::Relaxed);
        metrics::dedup_hits(sink, n);
    }

    pub fn dead_lettered(&self, operator: &str, kind: ErrorKind) {
        self.dlq_entries.fetch_add(1, Ordering::Relaxed);
        *self.dlq_by.lock().unwrap_or_else(|e| e.into_inner()).entry((operator.to_string(), kind)).or_default() += 1;
        metrics::dlq_entry(kind.as_str(), operator);
    }

    pub fn discarded(&self, operator: &str, reason: &str) {
        self.discarded.fetch_add(1, Ordering::Relaxed);
        *self.discards_by.lock().unwrap_or_else(|e| e.into_inner()).entry((operator.to_string(), reason.to_string())).or_default() += 1;
        metrics::discarded(operator, reason);
    }

    /// A task took a checkpoint, and no batch of it ran for `pause`.
    pub fn checkpointed(&self, pause: Duration) {
        self.checkpoint_pauses.lock().unwrap_or_else(|e| e.into_inner()).push(pause);
    }

    pub fn checkpoint_pauses(&self) -> Vec<Duration> {
        self.checkpoint_pauses.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// One batch went through a task.
    pub fn batch(&self, task: &str) {
        metrics::batch(task);
    }

    pub fn dedup_hits_total(&self) -> u64 {
        self.dedup_hits.load(Ordering::Relaxed)
    }

    pub fn records_in(&self) -> u64 {
        self.records_in.load(Ordering::Relaxed)
    }

    pub fn sink_records(&self, sink: &str) -> u64 {
        self.sink_records.lock().unwrap_or_else(|e| e.into_inner()).get(sink).copied().unwrap_or_default()
    }

    pub fn records_out(&self) -> u64 {
        self.sink_records.lock().unwrap_or_else(|e| e.into_inner()).values().sum()
    }

    pub fn dlq_entries(&self) -> u64 {
        self.dlq_entries.load(Ordering::Relaxed)
    }

    pub fn discarded_total(&self) -> u64 {
        self.discarded.load(Ordering::Relaxed)
    }

    pub fn dlq_breakdown(&self) -> BTreeMap<(String, ErrorKind), u64> {
        self.dlq_by.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn discard_breakdown(&self) -> BTreeMap<(String, String), u64> {
        self.discards_by.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
