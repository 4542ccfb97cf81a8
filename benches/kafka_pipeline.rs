//! End-to-end Kafka figures: observations/s from a topic through the correlator and classifier to an alerts topic in each delivery mode, and the time a survivor takes over a killed process's partitions.
//!
//! `cargo bench -p sda-host --bench kafka_pipeline` (release build). Each mode gets a fresh Tansu broker
//! on a free loopback port and the same generated scenario, produced keyed by `object_id` to a
//! 2-partition topic; the pipeline runs with `--stop-at-end`. Throughput is counted from the moment the
//! group assigns the partitions (the join itself takes about 3 s against Tansu, whatever the load) to the
//! end of the run, final checkpoint included. Sizes: `SDA_BENCH_OBJECTS` (default 1000) objects over
//! `SDA_BENCH_MINUTES` (default 100: 609,000 observations, a few seconds of work, so that starting and
//! stopping weigh little) minutes at the scenario's 10 s cadence; `SDA_BENCH_BATCH` records per
//! batch (default: the pipeline's default). Medians of `SDA_BENCH_RUNS` (default 3) runs.
//!
//! A fast wrong answer is no figure: every throughput run's alerts topic is read back and must hold
//! exactly the alerts of the file pipeline run on each partition's share of the scenario (by
//! `alert_id`, each once, each the same alert); in mode `read-whole` (`assignment = "all"`: one task
//! reads both partitions, merged by event time), of the file pipeline run on the merged order.

use sda_scenario::GenerateOptions;
use sda_testkit::Scratch;
use sda_testkit::kafka::{
    Isolation, Tansu, kafka_pipeline, merged_by_event_time, observation_key, per_partition_reference_alerts, unique_group, unique_topic,
};
use sda_testkit::pipeline::quoted;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A broker with the scenario on a fresh input topic.
struct Setup {
    tansu: Tansu,
    scratch: Scratch,
    input: String,
    records: usize,
}

impl Setup {
    fn new(scenario: &Path, partitions: i32) -> Setup {
        let tansu = Tansu::start();
        let scratch = Scratch::new();
        let input = unique_topic("obs");
        tansu.create_topic(&input, partitions);
        let text = std::fs::read_to_string(scenario).unwrap();
        let records = tansu.produce_lines_keyed(&input, text.lines(), partitions, observation_key).iter().sum();
        Setup { tansu, scratch, input, records }
    }

    /// Writes `<process>/pipeline.toml` for `guarantee`, with a transactional sink or not, checkpointing every
    /// `interval_ms`; `read_whole`: the source's `assignment = "all"` (one task, every partition merged).
    #[allow(clippy::too_many_arguments)]
    fn configure(
        &self,
        process: &str,
        group: &str,
        output: &str,
        dlq: &str,
        guarantee: &str,
        transactional: bool,
        interval_ms: u64,
        read_whole: bool,
    ) {
        let brokers = self.tansu.brokers();
        let mut toml = kafka_pipeline("kafka-bench", &brokers, &self.input, group, output, dlq)
            .top("guarantee", quoted(guarantee))
            .set("checkpoint", "dir", quoted("state/local"))
            .set("checkpoint", "remote", quoted(self.scratch.join("remote").display().to_string()))
            .set("checkpoint", "interval_ms", interval_ms)
            .set("sinks.alerts", "transactional", transactional);
        if let Ok(batch) = std::env::var("SDA_BENCH_BATCH") {
            toml = toml.set("runtime", "batch_size", batch);
        }
        if read_whole {
            toml = toml.set("sources.observations", "assignment", quoted("all")).set("operators.correlator", "per_partition", false);
        }
        self.scratch.write(&format!("{process}/pipeline.toml"), toml.to_string());
    }

    fn topics(&self) -> (String, String) {
        let (output, dlq) = (unique_topic("alerts"), unique_topic("dlq"));
        self.tansu.create_topic(&output, 2);
        self.tansu.create_topic(&dlq, 1);
        (output, dlq)
    }

    /// Starts a run whose log lines (stderr) arrive on the returned channel, each with when it was read.
    fn spawn(&self, process: &str, args: &[&str], log_filter: &str) -> (Child, mpsc::Receiver<(Instant, String)>) {
        sda_testkit::spawn_with_stderr_lines(
            Command::new(env!("CARGO_BIN_EXE_sda-pipeline"))
                .current_dir(self.scratch.join(process))
                .args(["run", "pipeline.toml", "--quiet"])
                .args(args)
                .env("SDA_CACHE_DIR", Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache"))
                .env("SDA_LOG", log_filter)
                .stdout(Stdio::null()),
        )
    }
}

/// Waits for a log line holding every one of `needles`; returns when it was read.
fn wait_for(lines: &mpsc::Receiver<(Instant, String)>, needles: &[&str], limit: Duration) -> Instant {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok((at, line)) if needles.iter().all(|n| line.contains(n)) => return at,
            Ok(_) => {}
            Err(e) => panic!("no log line with {needles:?} within {limit:?}: {e}"),
        }
    }
}

/// One run of `guarantee` (transactional or not; `read_whole`: one task reading every partition merged):
/// observations/s from the assignment (or the merged source's opening) to the end. Its alerts must be `reference`'s.
fn throughput(
    scenario: &Path,
    guarantee: &str,
    transactional: bool,
    read_whole: bool,
    reference: &BTreeMap<String, serde_json::Value>,
) -> f64 {
    let setup = Setup::new(scenario, 2);
    let (output, dlq) = setup.topics();
    // Checkpoints every 30 s, as the target's conditions say (the run is shorter: only the final one).
    setup.configure("p0", &unique_group("bench"), &output, &dlq, guarantee, transactional, 30_000, read_whole);
    let (mut child, lines) = setup.spawn("p0", &["--stop-at-end"], "warn,sda_host::source=info");
    let started = if read_whole { "reading every partition" } else { "partitions assigned" };
    let assigned = wait_for(&lines, &[started], Duration::from_secs(60));
    let status = child.wait().unwrap();
    let ended = Instant::now();
    assert!(status.success(), "the run failed: {status}");
    let mut delivered = BTreeMap::new();
    for record in setup.tansu.consume_all(&output, Isolation::ReadCommitted, Duration::from_secs(120)) {
        let alert: serde_json::Value = serde_json::from_str(record.value_str()).expect("alerts are JSON");
        let id = alert["alert_id"].as_str().expect("alerts have an alert_id").to_string();
        assert!(delivered.insert(id.clone(), alert).is_none(), "{guarantee}: alert {id} delivered twice");
    }
    assert!(
        &delivered == reference,
        "{guarantee} (transactional {transactional}): {} alerts delivered, {} in the reference; {} missing, {} not in it",
        delivered.len(),
        reference.len(),
        reference.keys().filter(|id| !delivered.contains_key(*id)).count(),
        delivered.keys().filter(|id| !reference.contains_key(*id)).count()
    );
    setup.records as f64 / (ended - assigned).as_secs_f64()
}

/// Two processes share 2 partitions; one is SIGKILLed: seconds until the survivor has restored one of
/// the dead process's partitions, and until it has checkpointed it after processing.
fn failover(scenario: &Path) -> (f64, f64) {
    let setup = Setup::new(scenario, 2);
    let (output, dlq) = setup.topics();
    let group = unique_group("bench");
    for p in ["p0", "p1"] {
        // A checkpoint a second: the figure is when the survivor's first one after taking over lands.
        setup.configure(p, &group, &output, &dlq, "exactly-once", false, 1000, false);
    }
    let filter = "warn,sda_host::source=info,sda_host::pipeline=info,sda_host::task::checkpointing=debug";
    let (mut survivor, survivor_lines) = setup.spawn("p0", &[], filter);
    wait_for(&survivor_lines, &["partitions assigned"], Duration::from_secs(60));
    let (mut victim, victim_lines) = setup.spawn("p1", &[], filter);
    wait_for(&victim_lines, &["partitions assigned", "partitions=["], Duration::from_secs(60));
    let taken = wait_for_task_of(&victim_lines);
    wait_for(&victim_lines, &["checkpoint taken", &format!("task={taken}")], Duration::from_secs(60));
    victim.kill().unwrap();
    let killed = Instant::now();
    victim.wait().unwrap();
    let recovered = wait_for(&survivor_lines, &["recovered", &format!("task=\"{taken}\"")], Duration::from_secs(120));
    let processing = wait_for(&survivor_lines, &["checkpoint taken", &format!("task={taken}")], Duration::from_secs(120));
    let _ = survivor.kill();
    let _ = survivor.wait();
    ((recovered - killed).as_secs_f64(), (processing - killed).as_secs_f64())
}

/// The task of the first partition a run logs a checkpoint of.
fn wait_for_task_of(lines: &mpsc::Receiver<(Instant, String)>) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, line) = lines.recv_timeout(deadline.saturating_duration_since(Instant::now())).expect("a checkpoint is logged");
        if let Some(rest) = line.split("checkpoint taken task=").nth(1) {
            return rest.split_whitespace().next().unwrap().to_string();
        }
    }
}

fn median(mut values: Vec<f64>) -> (f64, f64, f64) {
    values.sort_by(|a, b| a.total_cmp(b));
    (values[values.len() / 2], values[0], values[values.len() - 1])
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is not supported (use SDA_BENCH_MODES).
    let objects: usize = env_or("SDA_BENCH_OBJECTS", 1000);
    let minutes: u32 = env_or("SDA_BENCH_MINUTES", 100);
    let runs: usize = env_or("SDA_BENCH_RUNS", 3).max(1);
    let scratch = Scratch::new();
    let scenario = scratch.join("obs.jsonl");
    let options = GenerateOptions { objects, minutes, seed: 42, ..GenerateOptions::default() };
    sda_scenario::write_scenario(&scenario, &options, &|_, _| {}).expect("generating the scenario");
    let lines = std::fs::read_to_string(&scenario).unwrap().lines().count();
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache");
    let sda = Path::new(env!("CARGO_BIN_EXE_sda-pipeline"));
    let reference = per_partition_reference_alerts(sda, &cache, &scratch.join("per-partition"), &scenario, 2);
    // A source read whole screens the merge of the partitions: the file pipeline on that order is its reference.
    let text = std::fs::read_to_string(&scenario).unwrap();
    let merged: String = merged_by_event_time(&text.lines().collect::<Vec<_>>(), 2).iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(scratch.join("merged.jsonl"), merged).unwrap();
    let merged_reference = per_partition_reference_alerts(sda, &cache, &scratch.join("merged"), &scratch.join("merged.jsonl"), 1);
    println!(
        "Kafka -> correlator -> classifier -> Kafka, {lines} observations ({objects} objects, {minutes} min), 2 partitions, \
         median of {runs}; every run's alerts checked against the reference ({} per partition, {} read whole)",
        reference.len(),
        merged_reference.len()
    );
    // `SDA_BENCH_MODES`: which of `idempotent,transactional,at-least-once,read-whole,failover` to run (default: all).
    let modes = env_or("SDA_BENCH_MODES", "idempotent,transactional,at-least-once,read-whole,failover".to_string());
    let wanted = |mode: &str| modes.split(',').any(|m| m.trim() == mode);
    for (mode, label, guarantee, transactional, read_whole) in [
        ("idempotent", "exactly-once (idempotent sink)", "exactly-once", false, false),
        ("transactional", "exactly-once (transactional sink)", "exactly-once", true, false),
        ("at-least-once", "at-least-once", "at-least-once", false, false),
        ("read-whole", "exactly-once, read whole (1 task)", "exactly-once", false, true),
    ] {
        if !wanted(mode) {
            continue;
        }
        let reference = if read_whole { &merged_reference } else { &reference };
        let (mid, low, high) = median((0..runs).map(|_| throughput(&scenario, guarantee, transactional, read_whole, reference)).collect());
        println!("  {label:<34} {mid:>9.0} observations/s  (runs {low:.0} to {high:.0})");
    }
    if !wanted("failover") {
        return;
    }
    let (restored, processing): (Vec<f64>, Vec<f64>) = (0..runs).map(|_| failover(&scenario)).unzip();
    let (restored, processing) = (median(restored), median(processing));
    println!(
        "  failover (session.timeout.ms 6000): partition restored {:.1} s after SIGKILL (runs {:.1} to {:.1}), first checkpoint after \
            processing it {:.1} s (runs {:.1} to {:.1})",
        restored.0, restored.1, restored.2, processing.0, processing.1, processing.2
    );
}
