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
    /// How long each checkpoint held its task's batches back, in the order taken, for `run
    /// --report`; `None` (not kept) otherwise: one entry per task per interval would grow for as long
    /// as the process runs. The Prometheus metrics have the pauses as a histogram either way.
    checkpoint_pauses: Option<Mutex<Vec<Duration>>>,
    /// Every `on-watermark` call of each operator (where windows close), for `run --report`;
    /// `None` otherwise, for the same reason as the pauses.
    watermark_calls: Option<Mutex<BTreeMap<String, Vec<WatermarkCall>>>>,
}

/// One `on-watermark` call of an operator: after the batch that ended at `end_offset` of its
/// task's source, it took `ms` (closing windows, if the batch closed any).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WatermarkCall {
    pub end_offset: u64,
    pub ms: f64,
}

impl Stats {
    pub fn new() -> Stats {
        Stats::default()
    }

    /// Stats for `run --report`: they also keep every checkpoint's pause ([`Stats::checkpoint_pauses`])
    /// and every `on-watermark` call's time ([`Stats::watermark_calls`]).
    pub fn for_report() -> Stats {
        Stats { checkpoint_pauses: Some(Mutex::default()), watermark_calls: Some(Mutex::default()), ..Stats::default() }
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
        if let Some(pauses) = &self.checkpoint_pauses {
            pauses.lock().unwrap_or_else(|e| e.into_inner()).push(pause);
        }
    }

    /// Every checkpoint's pause, in the order taken; empty unless made by [`Stats::keeping_checkpoint_pauses`].
    pub fn checkpoint_pauses(&self) -> Vec<Duration> {
        self.checkpoint_pauses.as_ref().map(|p| p.lock().unwrap_or_else(|e| e.into_inner()).clone()).unwrap_or_default()
    }

    /// `operator`'s `on-watermark` call after the batch ending at `end_offset` took `elapsed`.
    pub fn watermark_call(&self, operator: &str, end_offset: u64, elapsed: Duration) {
        metrics::operator_watermark(operator, elapsed);
        if let Some(calls) = &self.watermark_calls {
            let call = WatermarkCall { end_offset, ms: elapsed.as_secs_f64() * 1e3 };
            calls.lock().unwrap_or_else(|e| e.into_inner()).entry(operator.to_string()).or_default().push(call);
        }
    }

    /// Every operator's `on-watermark` calls, in the order made; empty unless made by [`Stats::for_report`].
    pub fn watermark_calls(&self) -> BTreeMap<String, Vec<WatermarkCall>> {
        self.watermark_calls.as_ref().map(|c| c.lock().unwrap_or_else(|e| e.into_inner()).clone()).unwrap_or_default()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_pauses_are_kept_only_when_asked() {
        let plain = Stats::new();
        plain.checkpointed(Duration::from_millis(3));
        assert!(plain.checkpoint_pauses().is_empty());
        let keeping = Stats::for_report();
        keeping.checkpointed(Duration::from_millis(3));
        keeping.checkpointed(Duration::from_millis(5));
        assert_eq!(keeping.checkpoint_pauses(), [Duration::from_millis(3), Duration::from_millis(5)]);
    }

    #[test]
    fn watermark_calls_are_kept_by_operator_in_order_only_when_asked() {
        let plain = Stats::new();
        plain.watermark_call("correlator", 10, Duration::from_millis(3));
        assert!(plain.watermark_calls().is_empty());
        let keeping = Stats::for_report();
        keeping.watermark_call("correlator", 10, Duration::from_millis(3));
        keeping.watermark_call("classifier", 10, Duration::from_millis(1));
        keeping.watermark_call("correlator", 20, Duration::from_millis(250));
        let calls = keeping.watermark_calls();
        let offsets: Vec<u64> = calls["correlator"].iter().map(|c| c.end_offset).collect();
        assert_eq!(offsets, [10, 20]);
        assert!((calls["correlator"][1].ms - 250.0).abs() < 1e-9);
        assert_eq!(calls["classifier"].len(), 1);
    }
}
