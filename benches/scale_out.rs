//! Scale-out figures: a catalogue-mode screening of 10^5 objects from an 8-partition topic in 1, 2 and 4 shards leased over 2 processes: throughput, seconds per window, memory; every run's candidates checked.
//!
//! `cargo bench -p sda-host --bench scale_out` (release build). One Tansu broker; the scenario (catalogue
//! mode as in `benches/catalogue.rs`: each object seen every 2 to 20 minutes by 3 sensors, 30 minutes,
//! `state_horizon_ms` 20 minutes) produced keyed by `object_id` to 8 partitions. For each shard count,
//! two processes run the screening stage of `pipeline.scale-out.toml` (source read whole in leased
//! shards -> correlator -> candidates topic, a partition per shard) with `--stop-at-end --report`,
//! started together. Figures:
//!
//! - throughput: observations of the topic over the wall time from the group's settled assignment (the
//!   first one of the last process to join) to the end of the last process;
//! - seconds per window: each shard's screening of a window (its `on-watermark` call that closed it),
//!   median over the steady windows (the last 9 of 30: from minute 21 every window screens the whole
//!   catalogue) of every shard, and the slowest;
//! - peak RSS of each process (each shard task holds the whole catalogue).
//!
//! A fast wrong answer is no figure: the candidates of every shard count must be the same set (by key
//! and value) as those of one shard, and those of one shard must include every planted conjunction with
//! its miss distance within 1 m (`sda_scenario::check::planted_found`).
//!
//! Environment: `SDA_BENCH_OBJECTS` (default 100000), `SDA_BENCH_SHARDS` (default `1,2,4`),
//! `SDA_BENCH_PROCESSES` (default 2), `SDA_BENCH_RUNS` (default 3: the run with the median throughput is
//! shown, with the range; every run's candidates are checked).

#[path = "shared/catalogue_scenario.rs"]
mod catalogue_scenario;

use sda_host::report::{RunReport, percentile};
use sda_scenario::generate::read_summary;
use sda_scenario::{Candidate, GenerateOptions, write_scenario_with};
use sda_testkit::kafka::{Isolation, Tansu, group_consumer_table, librdkafka_table, observation_key, unique_group, unique_topic};
use sda_testkit::pipeline::quoted;
use sda_testkit::{PipelineToml, Scratch, plugins};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const MINUTES: u32 = 30;
/// Windows from which every window screens the whole catalogue (every object seen once: the longest gap is 20 minutes).
const STEADY_FROM: usize = 21;
const PARTITIONS: i32 = 8;
const MIB: f64 = 1024.0 * 1024.0;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The catalogue-mode scenario of `benches/catalogue.rs`.
fn options(objects: usize) -> GenerateOptions {
    catalogue_scenario::catalogue(objects, MINUTES)
}

/// The scenario's observations, generated once and kept under the target folder.
fn scenario(objects: usize) -> (PathBuf, sda_scenario::ScenarioSummary) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-scale-out");
    std::fs::create_dir_all(&dir).expect("the scenario folder");
    let (observations, summary_path) =
        (dir.join(format!("catalogue-{objects}.jsonl")), dir.join(format!("catalogue-{objects}.scenario.json")));
    let options = options(objects);
    let summary = match read_summary(&summary_path) {
        Ok(summary) if summary.options == options && observations.exists() => summary,
        _ => {
            eprintln!("generating {} ({objects} objects, {MINUTES} minutes)...", observations.display());
            write_scenario_with(&observations, &options, false, &|_| {}).expect("generating the scenario").summary
        }
    };
    (observations, summary)
}

/// A process's stderr lines, each with when it was read.
fn spawn(dir: &Path, report: &Path) -> (Child, mpsc::Receiver<(Instant, String)>) {
    sda_testkit::spawn_with_stderr_lines(
        Command::new(env!("CARGO_BIN_EXE_sda-pipeline"))
            .current_dir(dir)
            .args(["run", "pipeline.toml", "--quiet", "--stop-at-end", "--report"])
            .arg(report)
            .env("SDA_CACHE_DIR", Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache"))
            .env("SDA_LOG", "warn,sda_host::source=info")
            .stdout(Stdio::null()),
    )
}

struct Figures {
    shards: u32,
    observations_per_s: f64,
    wall_s: f64,
    window_median_s: f64,
    window_max_s: f64,
    peak_rss_mib: Vec<f64>,
    candidates: BTreeMap<String, String>,
}

/// One run of `shards` shards over `processes` processes.
fn run(tansu: &Tansu, input: &str, records: usize, objects: usize, shards: u32, processes: usize) -> Figures {
    let scratch = Scratch::new();
    let brokers = tansu.brokers();
    let (candidates, dlq, lease_topic, group) =
        (unique_topic("candidates"), unique_topic("dlq"), unique_topic("leases"), unique_group("bench"));
    tansu.create_topic(&candidates, shards as i32);
    tansu.create_topic(&dlq, 1);
    let client = librdkafka_table(sda_testkit::kafka::CLIENT_SETTINGS);
    let per_window = records / MINUTES as usize;
    let config = options(objects).correlator;
    let toml = PipelineToml::new("scale-out-bench")
        // A batch at most a quarter of a window, so that windows close one call at a time (as the catalogue bench).
        .set("runtime", "batch_size", (per_window / 4).clamp(16, 1024))
        .kafka_source("observations", &brokers, input, &group)
        .set("sources.observations", "event_time_field", quoted("epoch_ms"))
        .set("sources.observations", "assignment", quoted("all"))
        .set("sources.observations", "shards", shards)
        .set("sources.observations", "lease_topic", quoted(&lease_topic))
        .lines("sources.observations.librdkafka", group_consumer_table())
        .operator("correlator", plugins::CORRELATOR, &["observations"])
        .set("operators.correlator", "max_memory_bytes", 4_294_967_296u64)
        .set("operators.correlator.config", "window_ms", config.window_ms)
        .set("operators.correlator.config", "allowed_lateness_ms", config.allowed_lateness_ms)
        .set("operators.correlator.config", "screening_km", "5.0")
        .set("operators.correlator.config", "state_horizon_ms", config.state_horizon_ms)
        .kafka_sink("found", &["correlator"], &brokers, &candidates)
        .set("sinks.found", "partitioner", quoted("shard"))
        .lines("sinks.found.librdkafka", &client)
        .kafka_dlq(&brokers, &dlq)
        .lines("dlq.librdkafka", &client)
        .set("checkpoint", "dir", quoted("state/local"))
        .set("checkpoint", "remote", quoted(scratch.join("remote").display().to_string()))
        .set("checkpoint", "interval_ms", 30_000);
    let mut children = Vec::new();
    for p in 0..processes {
        let dir = scratch.write(&format!("p{p}/pipeline.toml"), toml.to_string());
        let dir = dir.parent().unwrap().to_path_buf();
        let report = dir.join("report.json");
        let (child, lines) = spawn(&dir, &report);
        children.push((child, lines, report));
    }
    // The settled assignment: when the last process to join got its first one (the group assigns every member
    // then; later assignments follow a process leaving at its end).
    let mut first_assigned: Vec<Option<Instant>> = vec![None; processes];
    let mut ended = vec![false; processes];
    while ended.iter().any(|e| !e) {
        for (p, (child, lines, _)) in children.iter_mut().enumerate() {
            while let Ok((at, line)) = lines.try_recv() {
                if line.contains("partitions assigned") {
                    first_assigned[p].get_or_insert(at);
                }
            }
            if !ended[p]
                && let Some(status) = child.try_wait().unwrap()
            {
                assert!(status.success(), "process p{p} failed: {status}");
                ended[p] = true;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let settled = first_assigned.iter().map(|a| a.expect("the group assigned every process its leases")).max().unwrap();
    let wall_s = settled.elapsed().as_secs_f64();
    let reports: Vec<RunReport> =
        children.iter().map(|(_, _, path)| serde_json::from_slice(&std::fs::read(path).unwrap()).expect("a readable report")).collect();
    // Each shard closes every window in one call: the slowest calls over all processes are the shards' steady windows.
    let mut closes: Vec<f64> =
        reports.iter().flat_map(|r| r.watermark_calls.get("correlator").into_iter().flatten().map(|c| c.ms / 1e3)).collect();
    closes.sort_by(|a, b| b.total_cmp(a));
    closes.truncate((MINUTES as usize - STEADY_FROM) * shards as usize);
    for (p, r) in reports.iter().enumerate() {
        eprintln!(
            "  {shards} shard(s), p{p}: {} records in, {} out, {} dead letters, {} discarded, {} window closes timed",
            r.records_in,
            r.records_out,
            r.dlq_entries,
            r.discarded,
            r.watermark_calls.get("correlator").map_or(0, Vec::len)
        );
    }
    let mut found = BTreeMap::new();
    for r in tansu.consume_all(&candidates, Isolation::ReadCommitted, Duration::from_secs(300)) {
        assert!(found.insert(r.key_str().to_string(), r.value_str().to_string()).is_none(), "candidate {} twice", r.key_str());
    }
    Figures {
        shards,
        observations_per_s: records as f64 / wall_s,
        wall_s,
        window_median_s: percentile(&closes, 0.5),
        window_max_s: closes.first().copied().unwrap_or(0.0),
        peak_rss_mib: reports.iter().map(|r| r.peak_rss_bytes.unwrap_or(0) as f64 / MIB).collect(),
        candidates: found,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; this harness takes no arguments.
    let objects: usize = env_or("SDA_BENCH_OBJECTS", 100_000);
    let processes: usize = env_or("SDA_BENCH_PROCESSES", 2);
    let shard_counts: Vec<u32> = std::env::var("SDA_BENCH_SHARDS")
        .unwrap_or_else(|_| "1,2,4".into())
        .split(',')
        .map(|s| s.trim().parse().expect("SDA_BENCH_SHARDS: shard counts"))
        .collect();
    let (observations, summary) = scenario(objects);
    let tansu = Tansu::start();
    let input = unique_topic("obs");
    tansu.create_topic(&input, PARTITIONS);
    let text = std::fs::read_to_string(&observations).unwrap();
    let records: usize = tansu.produce_lines_keyed(&input, text.lines(), PARTITIONS, observation_key).iter().sum();
    drop(text);
    println!(
        "catalogue mode, {objects} objects, {records} observations over {MINUTES} min on {PARTITIONS} partitions, {processes} processes, \
         this machine ({} cores)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let runs: usize = env_or("SDA_BENCH_RUNS", 3).max(1);
    println!(
        "| shards | observations/s, median of {runs} (range) | wall s | s per window per shard (median of steady) | max | peak RSS \
         per process MiB | candidates |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut first: Option<BTreeMap<String, String>> = None;
    for &shards in &shard_counts {
        let mut all: Vec<Figures> = (0..runs).map(|_| run(&tansu, &input, records, objects, shards, processes)).collect();
        for other in &all[1..] {
            assert!(other.candidates == all[0].candidates, "{shards} shards: two runs found other candidates");
        }
        // The run with the median throughput stands for the shard count; the range is printed beside it.
        all.sort_by(|a, b| a.observations_per_s.total_cmp(&b.observations_per_s));
        let range = format!("{:.0}-{:.0}", all[0].observations_per_s, all[all.len() - 1].observations_per_s);
        let f = all.swap_remove(runs / 2);
        match &first {
            None => {
                let candidates: Vec<Candidate> = f.candidates.values().map(|v| serde_json::from_str(v).expect("a candidate")).collect();
                let planted = sda_scenario::check::planted_found(&summary, &candidates)
                    .unwrap_or_else(|misses| panic!("{} planted conjunctions not found as planted, e.g. {}", misses.len(), misses[0]));
                eprintln!("{} shard(s): all {} planted conjunctions found", shards, planted.found.len());
            }
            Some(first) => assert!(
                *first == f.candidates,
                "{shards} shards found other candidates than {}: {} against {}",
                shard_counts[0],
                f.candidates.len(),
                first.len()
            ),
        }
        println!(
            "| {} | {:.0} ({range}) | {:.1} | {:.3} | {:.3} | {} | {} |",
            f.shards,
            f.observations_per_s,
            f.wall_s,
            f.window_median_s,
            f.window_max_s,
            f.peak_rss_mib.iter().map(|m| format!("{m:.0}")).collect::<Vec<_>>().join(" / "),
            f.candidates.len()
        );
        first.get_or_insert(f.candidates);
    }
}
