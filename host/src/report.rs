//! A run's figures as JSON (`run --report FILE`): throughput, peak memory, checkpoint pauses, and a timeline sampled while it ran.
//!
//! The end-to-end bench (`benches/end_to_end.rs`) reads these reports; an operator can keep them to
//! compare runs. Memory comes from `/proc/self/status` (`VmRSS`, and `VmHWM` for the peak), so it
//! is reported on Linux only.

use crate::pipeline::RunSummary;
use crate::stats::{Stats, WatermarkCall};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot write the run report {path}: {error}")]
    Write { path: PathBuf, error: std::io::Error },
}

/// The process at one moment of the run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Seconds since the run began (start-up included).
    pub at_s: f64,
    /// Records read from the sources so far.
    pub records_in: u64,
    /// Resident memory then; 0 where it cannot be read.
    pub rss_bytes: u64,
}

/// Percentiles of the checkpoint pauses (time no batch of the task ran because of a checkpoint).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PauseFigures {
    pub count: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl PauseFigures {
    /// Nearest-rank percentiles; `None` when no checkpoint was taken.
    pub fn of(pauses: &[Duration]) -> Option<PauseFigures> {
        let ms: Vec<f64> = pauses.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        let max_ms = ms.iter().copied().reduce(f64::max)?;
        Some(PauseFigures { count: ms.len(), p50_ms: percentile(&ms, 0.50), p99_ms: percentile(&ms, 0.99), max_ms })
    }
}

/// The nearest-rank percentile `p` (0 to 1) of `values`, which must not be empty.
pub fn percentile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1]
}

/// What `run --report` writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    pub pipeline: String,
    pub guarantee: String,
    /// Compiling plugins, recovering, opening files.
    pub startup_s: f64,
    /// Records flowing, from the end of start-up to the end of the run.
    pub elapsed_s: f64,
    pub stopped_early: bool,
    pub records_in: u64,
    pub records_out: u64,
    pub dlq_entries: u64,
    pub discarded: u64,
    /// `records_in / elapsed_s`.
    pub records_per_s: f64,
    /// The most resident memory the process held (`VmHWM`).
    pub peak_rss_bytes: Option<u64>,
    pub checkpoint_pause: Option<PauseFigures>,
    /// Every checkpoint's pause, in milliseconds, in the order taken.
    pub checkpoint_pauses_ms: Vec<f64>,
    pub timeline: Vec<Sample>,
    /// Every `on-watermark` call by operator, in the order made: where windows close, so the
    /// slow ones are the window closes (screenings) and their times.
    #[serde(default)]
    pub watermark_calls: BTreeMap<String, Vec<WatermarkCall>>,
}

impl RunReport {
    pub fn new(summary: &RunSummary, pauses: &[Duration], timeline: Vec<Sample>) -> RunReport {
        let elapsed_s = summary.elapsed.as_secs_f64();
        RunReport {
            pipeline: summary.pipeline.clone(),
            guarantee: summary.guarantee.as_str().to_string(),
            startup_s: summary.startup.as_secs_f64(),
            elapsed_s,
            stopped_early: summary.stopped_early,
            records_in: summary.records_in,
            records_out: summary.sinks.iter().map(|(_, _, n)| n).sum(),
            dlq_entries: summary.dlq_entries,
            discarded: summary.discarded,
            records_per_s: if elapsed_s > 0.0 { summary.records_in as f64 / elapsed_s } else { 0.0 },
            peak_rss_bytes: proc_status_bytes("VmHWM:"),
            checkpoint_pause: PauseFigures::of(pauses),
            checkpoint_pauses_ms: pauses.iter().map(|d| d.as_secs_f64() * 1e3).collect(),
            timeline,
            watermark_calls: BTreeMap::new(),
        }
    }

    /// The report with every operator's `on-watermark` calls.
    pub fn with_watermark_calls(mut self, calls: BTreeMap<String, Vec<WatermarkCall>>) -> RunReport {
        self.watermark_calls = calls;
        self
    }

    /// Writes the report as pretty JSON, durably: a reader finds the old report or the whole new one.
    pub fn write(&self, path: &Path) -> Result<(), ReportError> {
        let fail = |error| ReportError::Write { path: path.to_path_buf(), error };
        let json = serde_json::to_vec_pretty(self).map_err(|e| fail(e.into()))?;
        crate::durable::replace(path, &json).map_err(fail)
    }
}

/// Samples the run's progress and memory on its own thread until [`Sampler::finish`].
pub struct Sampler {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Vec<Sample>>,
}

impl Sampler {
    pub fn start(stats: Arc<Stats>, every: Duration) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name("report-sampler".into())
            .spawn(move || {
                let started = Instant::now();
                let take = || Sample {
                    at_s: started.elapsed().as_secs_f64(),
                    records_in: stats.records_in(),
                    rss_bytes: proc_status_bytes("VmRSS:").unwrap_or(0),
                };
                let mut samples = vec![take()];
                let mut next = started + every;
                while !flag.load(Ordering::Relaxed) {
                    // Short sleeps, so that `finish` does not wait out a whole interval.
                    std::thread::sleep(Duration::from_millis(10).min(every));
                    if Instant::now() >= next {
                        samples.push(take());
                        next += every;
                    }
                }
                samples.push(take());
                samples
            })
            .expect("spawning the report sampler thread");
        Sampler { stop, handle }
    }

    /// Stops sampling; returns the samples, the last taken now.
    pub fn finish(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or_default()
    }
}

/// A `kB` line of `/proc/self/status` in bytes (`None` off Linux).
fn proc_status_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: u64 = line[field.len()..].trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pause_percentiles_are_nearest_rank() {
        assert_eq!(PauseFigures::of(&[]), None);
        let pauses: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let f = PauseFigures::of(&pauses).unwrap();
        assert_eq!((f.count, f.p50_ms, f.p99_ms, f.max_ms), (100, 50.0, 99.0, 100.0));
        let one = PauseFigures::of(&[Duration::from_millis(7)]).unwrap();
        assert_eq!((one.p50_ms, one.p99_ms), (7.0, 7.0));
    }

    #[test]
    fn the_sampler_sees_records_arrive_and_memory_held() {
        let stats = Arc::new(Stats::new());
        let sampler = Sampler::start(stats.clone(), Duration::from_millis(20));
        std::thread::sleep(Duration::from_millis(60));
        stats.add_records_in("src", 5);
        std::thread::sleep(Duration::from_millis(60));
        let samples = sampler.finish();
        assert!(samples.len() >= 3, "{samples:?}");
        assert_eq!(samples[0].records_in, 0);
        assert_eq!(samples.last().unwrap().records_in, 5);
        assert!(samples.windows(2).all(|w| w[0].at_s <= w[1].at_s));
        if cfg!(target_os = "linux") {
            assert!(samples.iter().all(|s| s.rss_bytes > 1 << 20), "{samples:?}");
            assert!(proc_status_bytes("VmHWM:").unwrap() >= samples[0].rss_bytes);
        }
    }

    #[test]
    fn a_report_round_trips_through_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let report = RunReport {
            pipeline: "p".into(),
            guarantee: "exactly-once".into(),
            startup_s: 0.5,
            elapsed_s: 2.0,
            stopped_early: false,
            records_in: 10,
            records_out: 3,
            dlq_entries: 0,
            discarded: 1,
            records_per_s: 5.0,
            peak_rss_bytes: Some(1 << 24),
            checkpoint_pause: PauseFigures::of(&[Duration::from_millis(3)]),
            checkpoint_pauses_ms: vec![3.0],
            timeline: vec![Sample { at_s: 0.0, records_in: 0, rss_bytes: 1 }],
            watermark_calls: BTreeMap::from([("correlator".to_string(), vec![WatermarkCall { end_offset: 120, ms: 2.5 }])]),
        };
        let path = dir.path().join("report.json");
        report.write(&path).unwrap();
        let back: RunReport = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(back, report);
        // A path that cannot be written (its folder would have to be a file) is named in the error.
        let err = report.write(&path.join("report.json")).unwrap_err().to_string();
        assert!(err.contains("report.json/report.json"), "{err}");
    }
}
