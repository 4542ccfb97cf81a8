//! The pipeline against a real Kafka-protocol broker (Tansu, started per test): Kafka source, Kafka sink in
//! both modes, Kafka DLQ and PostgreSQL sink, through crashes (SIGKILL), network faults and group failover.
//!
//! Observations are produced keyed by `object_id`, so each object lives in one partition and each
//! partition's task screens its own objects: two tasks never produce the same alert, and a run's alert set
//! does not depend on which process ran which partition. Single-process runs use `--stop-at-end` (each
//! partition read to its end), so they end on their own; the processes of the failover test follow the
//! topic and are stopped with SIGTERM once the group has committed every partition's end.

use sda_scenario::GenerateOptions;
use sda_testkit::kafka::{ConsumedRecord, Isolation, Tansu, group_consumer_table, observation_key, unique_group, unique_topic};
use sda_testkit::pipeline::quoted;
use sda_testkit::postgres::ScratchTable;
use sda_testkit::proxy::Proxy;
use sda_testkit::{PipelineToml, Scratch, plugins};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long reading a topic back may take.
const READ: Duration = Duration::from_secs(60);

/// The Kafka sink's mode in a test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SinkMode {
    /// Idempotent producer; a replay is deduplicated against the output topic's tail.
    Idempotent,
    /// One transaction per checkpoint, with the consumer offsets.
    Transactional,
}

struct Config {
    guarantee: &'static str,
    sink: SinkMode,
    interval_ms: u64,
    batch_size: u32,
    /// Also deliver to a PostgreSQL table of this name.
    postgres_table: Option<String>,
    /// `assignment = "all"`: one task reads every partition, merged (else the group's task per partition).
    read_whole: bool,
    /// The correlator's `parallelism`.
    parallelism: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            guarantee: "exactly-once",
            sink: SinkMode::Idempotent,
            interval_ms: 200,
            batch_size: 64,
            postgres_table: None,
            read_whole: false,
            parallelism: 1,
        }
    }
}

impl Config {
    /// The alerts a run with this configuration must deliver over `partitions`, and how many dead letters.
    fn expected(&self, setup: &KafkaSetup, partitions: i32) -> (BTreeMap<String, Value>, usize) {
        match self.read_whole {
            true => merged_reference(setup, partitions),
            false => (reference_alerts(setup, partitions), reference_dead_letters(setup, partitions)),
        }
    }
}

/// A broker, topics for one test, a scenario on the input topic, and a
/// folder per host process (each with its own local checkpoint tier; the remote tier is shared).
struct KafkaSetup {
    tansu: Tansu,
    scratch: Scratch,
    input: String,
    output: String,
    dlq: String,
    group: String,
    /// Records per input partition.
    produced: Vec<usize>,
    /// How many of the scenario's lines are on the input topic (all, unless half produced).
    lines_produced: usize,
    partitions: i32,
}

impl KafkaSetup {
    /// Generates a scenario, creates the topics and produces the observations (keyed by `object_id`) to
    /// `partitions` partitions.
    fn new(objects: usize, minutes: u32, seed: u64, partitions: i32) -> KafkaSetup {
        Self::with_broker(Tansu::start(), objects, minutes, seed, partitions)
    }

    /// As [`KafkaSetup::new`], with every client connection (the pipeline's and the test's) going through
    /// a fault-injecting proxy in front of the broker.
    fn behind_proxy(objects: usize, minutes: u32, seed: u64, partitions: i32) -> (KafkaSetup, Proxy) {
        let (tansu, proxy) = Tansu::start_with_proxy();
        (Self::with_broker(tansu, objects, minutes, seed, partitions), proxy)
    }

    /// As [`KafkaSetup::new`], producing only the first half of the observations (the earlier ones);
    /// [`KafkaSetup::produce_the_rest`] produces the others.
    fn half_produced(objects: usize, minutes: u32, seed: u64, partitions: i32) -> KafkaSetup {
        Self::with_broker_producing(Tansu::start(), objects, minutes, seed, partitions, 0.5)
    }

    /// Produces the observations [`KafkaSetup::half_produced`] held back.
    fn produce_the_rest(&mut self) {
        let text = std::fs::read_to_string(self.scratch.join("obs.jsonl")).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let rest = &lines[self.lines_produced..];
        let more = self.tansu.produce_lines_keyed(&self.input, rest.iter(), self.partitions, observation_key);
        for (total, added) in self.produced.iter_mut().zip(more) {
            *total += added;
        }
        self.lines_produced = lines.len();
    }

    fn with_broker(tansu: Tansu, objects: usize, minutes: u32, seed: u64, partitions: i32) -> KafkaSetup {
        Self::with_broker_producing(tansu, objects, minutes, seed, partitions, 1.0)
    }

    /// Generates the scenario and produces the first `share` of its lines.
    fn with_broker_producing(tansu: Tansu, objects: usize, minutes: u32, seed: u64, partitions: i32, share: f64) -> KafkaSetup {
        let scratch = Scratch::new();
        let options = GenerateOptions { objects, minutes, seed, ..GenerateOptions::default() };
        sda_scenario::write_scenario(&scratch.join("obs.jsonl"), &options, &|_, _| {}).expect("generating");
        let input = unique_topic("obs");
        let output = unique_topic("alerts");
        let dlq = unique_topic("dlq");
        tansu.create_topic(&input, partitions);
        tansu.create_topic(&output, 2);
        tansu.create_topic(&dlq, 1);
        let text = std::fs::read_to_string(scratch.join("obs.jsonl")).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let lines_produced = (lines.len() as f64 * share) as usize;
        let produced = tansu.produce_lines_keyed(&input, lines[..lines_produced].iter(), partitions, observation_key);
        KafkaSetup { tansu, scratch, input, output, dlq, group: unique_group("pipeline"), produced, lines_produced, partitions }
    }

    /// Writes `pipeline.toml` for host process folder `process` (`p0`, `p1`, ...).
    fn configure(&self, process: &str, c: &Config) {
        let brokers = self.tansu.brokers();
        let mut toml = sda_testkit::kafka::kafka_pipeline("kafka-test", &brokers, &self.input, &self.group, &self.output, &self.dlq)
            .top("guarantee", quoted(c.guarantee))
            .set("runtime", "batch_size", c.batch_size)
            .set("checkpoint", "dir", quoted("state/local"))
            .set("checkpoint", "remote", quoted(self.scratch.join("remote").display().to_string()))
            .set("checkpoint", "interval_ms", c.interval_ms)
            .set("sinks.alerts", "transactional", c.sink == SinkMode::Transactional)
            .set("operators.correlator", "parallelism", c.parallelism);
        if c.read_whole {
            toml = toml.set("sources.observations", "assignment", quoted("all")).set("operators.correlator", "per_partition", false);
        }
        if let Some(table) = &c.postgres_table {
            toml = toml
                .set("sinks.alerts_db", "type", quoted("postgres"))
                .set("sinks.alerts_db", "inputs", r#"["classifier"]"#)
                .set("sinks.alerts_db", "url", quoted(sda_testkit::postgres::url()))
                .set("sinks.alerts_db", "table", quoted(table));
        }
        self.scratch.write(&format!("{process}/pipeline.toml"), toml.to_string());
    }

    fn command(&self, process: &str, failpoint: Option<&str>) -> Command {
        let mut cmd = self.command_following(process, failpoint);
        cmd.arg("--stop-at-end").env("SDA_LOG", "warn");
        cmd
    }

    /// A run that keeps following the topic until stopped, logging its assignments and recoveries.
    fn command_following(&self, process: &str, failpoint: Option<&str>) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sda-pipeline"));
        cmd.current_dir(self.scratch.join(process))
            .args(["run", "pipeline.toml"])
            .env("SDA_CACHE_DIR", Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache"))
            .env("SDA_LOG", "info");
        match failpoint {
            Some(point) => cmd.env("SDA_FAILPOINT", point),
            None => cmd.env_remove("SDA_FAILPOINT"),
        };
        cmd
    }

    /// Runs to the end, at most [`RUN_LIMIT`] (then it is killed and the test fails: a hang must not
    /// stall the suite).
    fn run(&self, process: &str, failpoint: Option<&str>) -> Output {
        let (out, err) = (self.scratch.join(&format!("{process}/stdout.log")), self.scratch.join(&format!("{process}/stderr.log")));
        let mut child = self
            .command(process, failpoint)
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .expect("running sda-pipeline");
        let status = wait_at_most(&mut child, RUN_LIMIT);
        let (stdout, stderr) = (std::fs::read(&out).unwrap_or_default(), std::fs::read(&err).unwrap_or_default());
        let status = status.unwrap_or_else(|| {
            panic!(
                "sda-pipeline did not end within {RUN_LIMIT:?}:\n{}{}",
                String::from_utf8_lossy(&stdout),
                String::from_utf8_lossy(&stderr)
            )
        });
        Output { status, stdout, stderr }
    }

    /// Runs to the end, which must succeed; returns stdout and stderr.
    fn finish(&self, process: &str) -> String {
        let out = self.run(process, None);
        let text = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.status.code(), Some(0), "{text}\n--- broker log ---\n{}", self.tansu.log_tail(30));
        text
    }

    /// Runs with a fail point, which must kill the process.
    fn crash_at(&self, process: &str, failpoint: &str) {
        let out = self.run(process, Some(failpoint));
        sda_testkit::assert_killed_by_failpoint(&out, failpoint);
    }

    /// Each input partition's end offset: what the group has committed once everything was processed.
    fn input_ends(&self) -> Vec<Option<i64>> {
        self.produced.iter().map(|&n| Some(n as i64)).collect()
    }

    /// Every record of the output topic, as read_committed subscribers see them.
    fn alerts(&self) -> Vec<ConsumedRecord> {
        self.tansu.consume_all(&self.output, Isolation::ReadCommitted, READ)
    }

    fn dead_letters(&self) -> Vec<ConsumedRecord> {
        self.tansu.consume_all(&self.dlq, Isolation::ReadCommitted, READ)
    }
}

/// How long one run of the pipeline may take in these tests.
const RUN_LIMIT: Duration = Duration::from_secs(300);

/// Waits for `child` at most `limit`; kills it and returns `None` if it is still running then.
fn wait_at_most(child: &mut std::process::Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The client settings tests need against Tansu (IPv4, quick reconnects), as librdkafka table lines.
fn client_settings() -> String {
    sda_testkit::kafka::librdkafka_table(sda_testkit::kafka::CLIENT_SETTINGS)
}

/// Alerts by id; panics on a duplicate id or a record whose key is not its alert id.
fn alerts_by_id(records: &[ConsumedRecord]) -> BTreeMap<String, Value> {
    let mut by_id = BTreeMap::new();
    for r in records {
        let alert: Value = serde_json::from_str(r.value_str()).expect("alerts are JSON");
        let id = alert["alert_id"].as_str().expect("alerts have an alert_id").to_string();
        assert_eq!(r.key_str(), id, "the record key is the alert id");
        if let Some(first) = by_id.insert(id.clone(), alert) {
            panic!("alert {id} was delivered twice (first: {first})");
        }
    }
    by_id
}

/// The alerts of the file pipeline on the same observations, run once per partition's share (which is
/// what the partition's task screens): the reference every Kafka run must equal.
fn reference_alerts(setup: &KafkaSetup, partitions: i32) -> BTreeMap<String, Value> {
    sda_testkit::kafka::per_partition_reference_alerts(
        Path::new(env!("CARGO_BIN_EXE_sda-pipeline")),
        &Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache"),
        &setup.scratch.join(&format!("reference-of-{partitions}")),
        &setup.scratch.join("obs.jsonl"),
        partitions,
    )
}

/// The alerts (and how many dead letters) of the file pipeline on the observations in the order a source
/// read whole hands them on, merged by event time over `partitions` (stated independently by
/// [`sda_testkit::kafka::merged_by_event_time`]): what a run with `assignment = "all"` must deliver.
fn merged_reference(setup: &KafkaSetup, partitions: i32) -> (BTreeMap<String, Value>, usize) {
    let (alerts, dead_letters) = sda_testkit::kafka::merged_reference_alerts(
        Path::new(env!("CARGO_BIN_EXE_sda-pipeline")),
        &Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache"),
        &setup.scratch.join(&format!("reference-merged-of-{partitions}")),
        &setup.scratch.join("obs.jsonl"),
        partitions,
    );
    (alerts, dead_letters.len())
}

/// How many dead letters the reference runs of [`reference_alerts`] wrote.
fn reference_dead_letters(setup: &KafkaSetup, partitions: i32) -> usize {
    (0..partitions).map(|p| setup.scratch.read_jsonl(&format!("reference-of-{partitions}/reference-{p}/dlq.jsonl")).len()).sum()
}

/// Each dead letter is a v1 envelope whose main fields are also headers, and names the input record
/// it came from: that record, on the input topic, is the envelope's original payload.
fn assert_dead_letters_name_their_source(setup: &KafkaSetup, entries: &[ConsumedRecord], expected: usize) {
    assert_eq!(entries.len(), expected, "dead letters");
    let input = setup.tansu.consume_all(&setup.input, Isolation::ReadCommitted, READ);
    let mut places = BTreeSet::new();
    for entry in entries {
        let envelope: Value = serde_json::from_str(entry.value_str()).expect("the value is the JSON envelope");
        let header = |name: &str| String::from_utf8(entry.header(name).unwrap_or_else(|| panic!("no header {name}")).to_vec()).unwrap();
        assert_eq!(envelope["schema_version"], 1, "{envelope}");
        assert_eq!(header("dlq.error_kind"), envelope["error_kind"].as_str().unwrap());
        assert_eq!(header("dlq.operator"), envelope["operator"].as_str().unwrap());
        assert_eq!(header("dlq.source.topic"), setup.input);
        let partition: i32 = header("dlq.source.partition").parse().unwrap();
        let offset: i64 = header("dlq.source.offset").parse().unwrap();
        let original = input.iter().find(|r| r.partition == partition && r.offset == offset).expect("the named input record exists");
        if envelope["payload_encoding"] == "utf8" {
            assert_eq!(envelope["payload"].as_str().unwrap(), original.value_str(), "the envelope carries its record");
            assert_eq!(envelope["key"].as_str().unwrap(), original.key_str(), "and its key: {envelope}");
        }
        assert!(places.insert((partition, offset, header("dlq.operator"))), "{partition}/{offset} dead-lettered twice");
    }
}

/// The output topic holds exactly the reference alerts. Idempotent mode: each once. Transactional mode:
/// each once among committed records; against Tansu, which shows aborted records to read_committed
/// readers (tests/broker.rs), a record of a transaction a crash aborted may appear beside its
/// committed replay, and nothing else may repeat: a repeated alert's copies are all identical, and
/// there is at most one more of them than `crashes`, each of which aborts one open transaction. (Two
/// kills in a row can both abort an alert: the second run re-writes it, and a kill moments after its
/// checkpoint file appears can come before that checkpoint's transaction commits.)
fn assert_delivered(setup: &KafkaSetup, mode: SinkMode, reference: &BTreeMap<String, Value>, crashes: usize) {
    let records = setup.alerts();
    match mode {
        SinkMode::Idempotent => assert_same_alerts(&alerts_by_id(&records), reference),
        SinkMode::Transactional => {
            let mut copies: BTreeMap<String, Vec<Value>> = BTreeMap::new();
            for r in &records {
                let alert: Value = serde_json::from_str(r.value_str()).unwrap();
                assert_eq!(r.key_str(), alert["alert_id"].as_str().unwrap());
                copies.entry(r.key_str().to_string()).or_default().push(alert);
            }
            let repeated: Vec<&String> = copies.iter().filter(|(_, c)| c.len() > 1).map(|(id, _)| id).collect();
            println!("{} of {} alerts also appear in an aborted transaction (shown by Tansu)", repeated.len(), copies.len());
            for (id, c) in &copies {
                assert!(c.iter().all(|a| a == &c[0]), "the copies of alert {id} differ: {c:?}");
                assert!(c.len() <= 1 + crashes, "alert {id} has {} copies after {crashes} crashes: {c:?}", c.len());
            }
            let distinct: BTreeMap<String, Value> = copies.into_iter().map(|(id, mut c)| (id, c.remove(0))).collect();
            assert_same_alerts(&distinct, reference);
        }
    }
}

fn assert_same_alerts(got: &BTreeMap<String, Value>, want: &BTreeMap<String, Value>) {
    let missing: Vec<&String> = want.keys().filter(|k| !got.contains_key(*k)).collect();
    let extra: Vec<&String> = got.keys().filter(|k| !want.contains_key(*k)).collect();
    assert!(missing.is_empty() && extra.is_empty(), "{} alerts missing: {missing:?}; {} unexpected: {extra:?}", missing.len(), extra.len());
    for (id, alert) in want {
        assert_eq!(&got[id], alert, "alert {id} differs");
    }
}

const OBJECTS: usize = 80;
const MINUTES: u32 = 20;
const SEED: u64 = 31;

#[test]
fn kafka_to_kafka_equals_the_file_pipeline_and_commits_its_offsets() {
    let setup = KafkaSetup::new(OBJECTS, MINUTES, SEED, 2);
    let reference = reference_alerts(&setup, 2);
    assert!(reference.len() >= 5, "the scenario yields {} alerts", reference.len());
    setup.configure("p0", &Config::default());
    let summary = setup.finish("p0");
    assert!(summary.contains("records read"), "{summary}");
    let alerts = setup.alerts();
    assert_same_alerts(&alerts_by_id(&alerts), &reference);
    let committed = setup.tansu.committed_offsets(&setup.group, &setup.input);
    let ends: Vec<Option<i64>> = setup.produced.iter().map(|n| Some(*n as i64)).collect();
    assert_eq!(committed, ends, "the group committed every partition's end");
    assert_dead_letters_name_their_source(&setup, &setup.dead_letters(), reference_dead_letters(&setup, 2));

    // A second run finds nothing new to read, and delivers nothing again.
    setup.finish("p0");
    assert_eq!(setup.alerts().len(), alerts.len());
    assert_eq!(setup.dead_letters().len(), reference_dead_letters(&setup, 2));
}

/// The point of `assignment = "all"`: eight partitions keyed by object, read whole by one task (the
/// correlator as two instances), deliver the alerts of one screening of the whole input, where a task
/// per partition would miss every conjunction of two objects in different partitions (checked too, so
/// that the scenario proves something). Dead letters name the partition and offset of their record.
#[test]
fn eight_partitions_read_whole_deliver_the_alerts_of_one_screening_of_everything() {
    let setup = KafkaSetup::new(OBJECTS, MINUTES, SEED, 8);
    let config = Config { read_whole: true, parallelism: 2, ..Config::default() };
    let (whole, dead_letters) = config.expected(&setup, 8);
    let split = reference_alerts(&setup, 8);
    let missed = whole.keys().filter(|id| !split.contains_key(*id)).count();
    assert!(missed >= 3, "screened per partition, {missed} of {} alerts would be missed: make the scenario denser", whole.len());
    setup.configure("p0", &config);
    let summary = setup.finish("p0");
    assert!(summary.contains("observations-all"), "one task reads every partition: {summary}");
    assert_same_alerts(&alerts_by_id(&setup.alerts()), &whole);
    assert_dead_letters_name_their_source(&setup, &setup.dead_letters(), dead_letters);
    assert_eq!(
        setup.tansu.committed_offsets(&setup.group, &setup.input),
        vec![None; 8],
        "a source read whole joins no group and commits nothing: its checkpoint holds every partition's offset"
    );

    // A second run resumes from the checkpoint's frontier, finds nothing new, and delivers nothing again.
    let again = setup.finish("p0");
    assert!(again.contains("resumed from checkpoint"), "{again}");
    assert_eq!(setup.alerts().len(), whole.len());
    assert_eq!(setup.dead_letters().len(), dead_letters);
}

/// The merge does not depend on how fetches interleave: runs with batches of 512 and 7 records, and
/// fetches of at most 1 KiB per partition in the second, write byte-identical alert files and the same
/// dead letters in the same order.
#[test]
fn read_whole_the_alerts_do_not_depend_on_batch_or_fetch_sizes() {
    let setup = KafkaSetup::new(OBJECTS, MINUTES, SEED, 8);
    for (process, batch_size, fetch) in [("p0", 512, ""), ("p1", 7, "\"max.partition.fetch.bytes\" = \"1024\"\n")] {
        let toml = sda_testkit::kafka::kafka_pipeline("merge", &setup.tansu.brokers(), &setup.input, &setup.group, "-", "-")
            .set("sources.observations", "assignment", quoted("all"))
            .set("operators.correlator", "per_partition", false)
            .set("runtime", "batch_size", batch_size)
            .lines("sources.observations.librdkafka", fetch)
            .remove("sinks.alerts")
            .remove("sinks.alerts.librdkafka")
            .file_sink("alerts", &["classifier"], "alerts.jsonl")
            .remove("dlq")
            .remove("dlq.librdkafka")
            .file_dlq("dlq.jsonl")
            .set("checkpoint", "dir", quoted("state/local"))
            .set("checkpoint", "remote", quoted("state/remote"));
        setup.scratch.write(&format!("{process}/pipeline.toml"), toml.to_string());
        setup.finish(process);
    }
    let [first, second] = ["p0", "p1"].map(|p| std::fs::read(setup.scratch.join(&format!("{p}/alerts.jsonl"))).unwrap());
    assert!(!first.is_empty());
    assert!(first == second, "the alert files differ");
    let letters = |p: &str| -> Vec<Value> {
        let mut entries = setup.scratch.read_jsonl(&format!("{p}/dlq.jsonl"));
        for e in &mut entries {
            e.as_object_mut().unwrap().remove("failed_at");
        }
        entries
    };
    assert_eq!(letters("p0"), letters("p1"));
    let (reference, dead_letters) = merged_reference(&setup, 8);
    assert_eq!(letters("p0").len(), dead_letters);
    let by_id = setup.scratch.read_jsonl("p0/alerts.jsonl").into_iter().map(|a| (a["alert_id"].as_str().unwrap().to_string(), a));
    assert_same_alerts(&by_id.collect(), &reference);
}

/// SIGKILL inside a batch of a task that reads eight partitions: the restart resumes each partition
/// from the checkpoint's frontier; each alert of the whole screening once, each dead letter once.
#[test]
fn read_whole_a_crash_inside_a_batch_loses_and_repeats_nothing() {
    crash_and_recover(8, Config { read_whole: true, ..Config::default() }, "mid-process:60");
}

/// The same with the kill between a checkpoint's write and its rename: the restart takes the one before.
#[test]
fn read_whole_a_crash_before_the_checkpoint_rename_loses_and_repeats_nothing() {
    crash_and_recover(8, Config { read_whole: true, parallelism: 2, ..Config::default() }, "checkpoint-before-rename:6");
}

/// A live topic's partition with nothing to read holds the merge back only for `idle_timeout_ms`: with every
/// observation on one of two partitions, a run that follows the topic delivers the alerts of the windows it
/// closes (the reference's, each once) instead of waiting for ever for the empty partition.
#[test]
fn read_whole_an_idle_partition_stops_holding_the_merge_back() {
    let tansu = Tansu::start();
    let scratch = Scratch::new();
    let options = GenerateOptions { objects: OBJECTS, minutes: MINUTES, seed: SEED, ..GenerateOptions::default() };
    sda_scenario::write_scenario(&scratch.join("obs.jsonl"), &options, &|_, _| {}).expect("generating");
    let (input, output, dlq) = (unique_topic("obs"), unique_topic("alerts"), unique_topic("dlq"));
    tansu.create_topic(&input, 2);
    tansu.create_topic(&output, 1);
    tansu.create_topic(&dlq, 1);
    let text = std::fs::read_to_string(scratch.join("obs.jsonl")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    // One key for all: every observation on the same partition, in file order; the other stays empty.
    let produced = tansu.produce_lines_keyed(&input, lines.iter(), 2, |_| "one key".to_string());
    assert_eq!(produced.iter().filter(|&&n| n == 0).count(), 1, "one partition empty: {produced:?}");
    let setup = KafkaSetup {
        tansu,
        scratch,
        input,
        output,
        dlq,
        group: unique_group("idle"),
        produced,
        lines_produced: lines.len(),
        partitions: 2,
    };
    let reference = reference_alerts(&setup, 1);
    setup.configure("p0", &Config { read_whole: true, ..Config::default() });
    let path = setup.scratch.join("p0/pipeline.toml");
    let toml = std::fs::read_to_string(&path).unwrap().replace("assignment = \"all\"", "assignment = \"all\"\nidle_timeout_ms = 300");
    std::fs::write(&path, toml).unwrap();
    let mut run = Background::start_following(&setup, "p0");
    let started = Instant::now();
    let delivered = loop {
        let alerts = alerts_by_id(&setup.tansu.consume_all(&setup.output, Isolation::ReadCommitted, READ));
        if alerts.len() * 2 >= reference.len() {
            break alerts;
        }
        assert!(run.still_running(), "the run ended:\n{}", run.log());
        assert!(started.elapsed() < Duration::from_secs(90), "{} of {} alerts after 90 s:\n{}", alerts.len(), reference.len(), run.log());
        std::thread::sleep(Duration::from_millis(500));
    };
    // What arrives later on the idle partition joins the merge: three lines that are not JSON, dead-lettered.
    let dead_letters = setup.dead_letters().len();
    let empty = setup.produced.iter().position(|&n| n == 0).unwrap() as i32;
    let late: Vec<(Option<i32>, &[u8], &[u8])> = (0..3).map(|_| (Some(empty), &b"late"[..], &b"late, not JSON"[..])).collect();
    setup.tansu.produce(&setup.input, &late);
    let started = Instant::now();
    while setup.dead_letters().len() < dead_letters + 3 {
        assert!(started.elapsed() < Duration::from_secs(60), "the idle partition's new records were not read:\n{}", run.log());
        std::thread::sleep(Duration::from_millis(500));
    }
    run.stop();
    for (id, alert) in &delivered {
        assert_eq!(reference.get(id), Some(alert), "alert {id} is not the reference's");
    }
}

/// Fed by a task per partition, an all-pairs operator would screen each partition alone: `validate`
/// and `run` refuse that, before any broker is contacted, and say what to set instead; the operator's
/// `per_partition = true` or the source's `assignment = "all"` is accepted.
#[test]
fn an_all_pairs_operator_fed_a_task_per_partition_is_refused() {
    let scratch = Scratch::new();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let toml = sda_testkit::kafka::kafka_pipeline("split", &closed, "obs", "g", "alerts", "dlq").set(
        "operators.correlator",
        "per_partition",
        false,
    );
    let sda = |args: &[&str]| sda_testkit::sda_command!(scratch.path()).args(args).output().unwrap();
    scratch.write("pipeline.toml", toml.to_string());
    for stderr in sda_testkit::refused_by_validate_and_run(sda) {
        assert!(stderr.contains("operator `correlator` needs every record"), "{stderr}");
        assert!(stderr.contains("source `observations` splits topic `obs`"), "{stderr}");
        assert!(stderr.contains("`assignment = \"all\"`") && stderr.contains("`per_partition = true`"), "{stderr}");
    }
    for fixed in
        [toml.clone().set("operators.correlator", "per_partition", true), toml.set("sources.observations", "assignment", quoted("all"))]
    {
        scratch.write("pipeline.toml", fixed.to_string());
        let out = sda(&["validate", "pipeline.toml"]);
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    }
}

/// Runs `sql` on the test database and returns the first column of each row as text.
/// Kills runs of process `p0` at random moments while they process, `kills` times in all, and lets the last
/// run of each round finish; `check` judges each round's outputs. Each kill waits for the run's first
/// checkpoint (start-up and the group join take one to several seconds, varying), then a random delay of up
/// to 1 s. How far a run gets in that time depends on the machine's speed, so a run may end before its
/// kill: that round is checked like the last, and the next starts afresh (`new_round`: new topics and
/// scenario), until every kill has landed.
fn torture<R>(mut new_round: impl FnMut() -> (KafkaSetup, R), kills: usize, seed: u64, mut check: impl FnMut(&KafkaSetup, &R, usize)) {
    const PROCESS: &str = "p0";
    println!("torture seed {seed} (replay with SDA_TORTURE_SEED={seed})");
    let mut next = sda_testkit::xorshift(seed);
    let mut kills_per_round: Vec<Vec<u128>> = Vec::new();
    let landed = |rounds: &[Vec<u128>]| rounds.iter().map(Vec::len).sum::<usize>();
    while landed(&kills_per_round) < kills {
        assert!(kills_per_round.len() < 5, "5 rounds did not reach {kills} kills: {kills_per_round:?}");
        let (setup, round) = new_round();
        let mut delays = Vec::new();
        let mut finished_by_itself = false;
        while landed(&kills_per_round) + delays.len() < kills {
            let before = setup.newest_local_sequence(PROCESS);
            let delay = Duration::from_millis(next() % 1000);
            let mut child = setup.command(PROCESS, None).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
            let started = Instant::now();
            while setup.newest_local_sequence(PROCESS) <= before && child.try_wait().unwrap().is_none() {
                if started.elapsed() > RUN_LIMIT {
                    child.kill().unwrap();
                    panic!("the run took no checkpoint within {RUN_LIMIT:?}");
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let processing = Instant::now();
            while processing.elapsed() < delay && child.try_wait().unwrap().is_none() {
                std::thread::sleep(Duration::from_millis(10));
            }
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "a run between kills failed: {status}");
                finished_by_itself = true;
                break;
            }
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            delays.push((processing - started).as_millis() + delay.as_millis());
        }
        assert!(!(finished_by_itself && delays.is_empty()), "a whole run ended before its first kill: make the scenario longer");
        if !finished_by_itself {
            setup.finish(PROCESS);
        }
        println!("round {}: killed {} times, after (ms): {delays:?}", kills_per_round.len() + 1, delays.len());
        check(&setup, &round, delays.len());
        kills_per_round.push(delays);
    }
}

fn torture_seed() -> u64 {
    std::env::var("SDA_TORTURE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64)
}

/// A crash at `failpoint`, then a run to the end: the output topic (and table) hold the reference alerts,
/// each once.
fn crash_and_recover(partitions: i32, config: Config, failpoint: &str) -> KafkaSetup {
    // A checkpoint after every batch: the crash must come after some (the run is over in well under a
    // second, so a timed interval might take none before it), and `checkpoint-before-rename:N` must be reached.
    let config = Config { interval_ms: 0, ..config };
    let setup = KafkaSetup::new(OBJECTS, MINUTES, SEED, partitions);
    let (reference, dead_letters) = config.expected(&setup, partitions);
    setup.configure("p0", &config);
    setup.crash_at("p0", failpoint);
    let text = setup.finish("p0");
    assert!(text.contains("resumed from checkpoint"), "{text}");
    // Resumed where the checkpoint says (for a source read whole, every partition at its frontier), not
    // from the beginning, which the operators' restored state might otherwise hide.
    let read: usize = text.split(" records read").next().and_then(|t| t.rsplit(": ").next()).unwrap().replace(',', "").parse().unwrap();
    let obs = std::fs::read_to_string(setup.scratch.join("obs.jsonl")).unwrap();
    // What a source hands on as records: the JSON lines (the others are dead-lettered on reading).
    let records = obs.lines().filter(|l| serde_json::from_str::<Value>(l).is_ok()).count();
    assert!(0 < read && read < records, "the restart read {read} of {records} records:\n{text}");
    assert_delivered(&setup, config.sink, &reference, 1);
    assert_dead_letters_name_their_source(&setup, &setup.dead_letters(), dead_letters);
    if let Some(table) = &config.postgres_table {
        assert_eq!(
            sda_testkit::postgres::alert_ids(table),
            reference.keys().cloned().collect::<Vec<_>>(),
            "the table holds each alert once"
        );
    }
    setup
}

#[test]
fn idempotent_sink_a_crash_inside_a_batch_loses_and_repeats_nothing() {
    let table = ScratchTable::new("kafka_test_alerts");
    crash_and_recover(2, Config { postgres_table: Some(table.0.clone()), ..Config::default() }, "mid-process:60");
}

#[test]
fn idempotent_sink_a_crash_before_the_checkpoint_rename_loses_and_repeats_nothing() {
    crash_and_recover(2, Config::default(), "checkpoint-before-rename:6");
}

/// One input partition: with two, a task recovering would read its output partitions only up to the
/// other partition's still-open transaction, and Tansu (unlike Kafka) shows the aborted records past it
/// to read_committed readers (tests/broker.rs), which would look like duplicates.
#[test]
fn transactional_sink_a_crash_inside_a_batch_loses_and_repeats_nothing() {
    crash_and_recover(1, Config { sink: SinkMode::Transactional, ..Config::default() }, "mid-process:60");
}

#[test]
fn transactional_sink_a_crash_before_the_checkpoint_rename_loses_and_repeats_nothing() {
    crash_and_recover(1, Config { sink: SinkMode::Transactional, ..Config::default() }, "checkpoint-before-rename:6");
}

#[test]
fn torture_random_kills_with_kafka_and_postgres_sinks_change_nothing() {
    let reference = std::cell::OnceCell::new();
    let new_round = || {
        let setup = KafkaSetup::new(300, 150, 7, 2);
        let table = ScratchTable::new("kafka_test_alerts");
        setup.configure("p0", &Config { postgres_table: Some(table.0.clone()), batch_size: 128, ..Config::default() });
        (setup, table)
    };
    torture(new_round, 6, torture_seed(), |setup, table, _| {
        let (reference, dead_letters) = reference.get_or_init(|| (reference_alerts(setup, 2), reference_dead_letters(setup, 2)));
        assert_same_alerts(&alerts_by_id(&setup.alerts()), reference);
        assert_eq!(table.alert_ids(), reference.keys().cloned().collect::<Vec<_>>());
        assert_eq!(setup.dead_letters().len(), *dead_letters);
    });
}

/// One input partition, as in the transactional crash tests above.
#[test]
fn torture_random_kills_with_a_transactional_sink_change_nothing() {
    let reference = std::cell::OnceCell::new();
    let new_round = || {
        let setup = KafkaSetup::new(300, 150, 11, 1);
        setup.configure("p0", &Config { sink: SinkMode::Transactional, batch_size: 128, ..Config::default() });
        (setup, ())
    };
    torture(new_round, 5, torture_seed(), |setup, (), kills| {
        let (reference, dead_letters) = reference.get_or_init(|| (reference_alerts(setup, 1), reference_dead_letters(setup, 1)));
        assert_delivered(setup, SinkMode::Transactional, reference, kills);
        assert_eq!(setup.dead_letters().len(), *dead_letters);
    });
}

/// The partitions of the last assignment a run logged.
fn assigned_partitions(log: &str) -> Vec<i32> {
    let line = log.lines().rev().find(|l| l.contains("partitions assigned")).expect("an assignment was logged");
    let list = line.split("partitions=[").nth(1).and_then(|rest| rest.split(']').next()).expect("the partitions are listed");
    list.split(',').map(|p| p.trim().parse().expect("a partition number")).collect()
}

impl KafkaSetup {
    /// The sequence number of the newest checkpoint of `partition` in the shared remote tier (0: none).
    fn newest_remote_sequence(&self, partition: i32) -> u64 {
        newest_sequence_in(&self.scratch.join(&format!("remote/kafka-test/observations-{partition}")))
    }

    /// The highest checkpoint sequence number of any partition in `process`'s local tier (0: none).
    fn newest_local_sequence(&self, process: &str) -> u64 {
        let tier = self.scratch.join(&format!("{process}/state/local/kafka-test"));
        std::fs::read_dir(tier).map(|dirs| dirs.flatten().map(|d| newest_sequence_in(&d.path())).max().unwrap_or(0)).unwrap_or(0)
    }
}

/// The sequence number of the newest checkpoint file in `folder` (0: none).
fn newest_sequence_in(folder: &Path) -> u64 {
    std::fs::read_dir(folder)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.strip_prefix("ckpt-")?.strip_suffix(".sdackpt")?.parse().ok())
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0)
}

/// Runs `pipeline.toml` in `scratch` with `--stop-at-end`, killing it after `limit` (a hang fails the test
/// instead of stalling the suite); returns its exit code (`None`: killed) and its output.
fn run_within(scratch: &Scratch, limit: Duration) -> (Option<i32>, String) {
    let log = scratch.join("run.log");
    let file = std::fs::File::create(&log).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sda-pipeline"))
        .current_dir(scratch.path())
        .args(["run", "pipeline.toml", "--stop-at-end"])
        .env("SDA_CACHE_DIR", Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache"))
        .env("SDA_LOG", "warn")
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .unwrap();
    let status = wait_at_most(&mut child, limit);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let status = status.unwrap_or_else(|| panic!("the run did not end within {limit:?}:\n{text}"));
    (status.code(), text)
}

/// A run in the background, its output going to files in its process folder.
struct Background {
    child: std::process::Child,
    log: std::path::PathBuf,
}

impl Background {
    /// A run with `--stop-at-end`.
    fn start(setup: &KafkaSetup, process: &str) -> Background {
        Self::spawn(setup, process, setup.command(process, None))
    }

    /// A run that follows the topic until stopped.
    fn start_following(setup: &KafkaSetup, process: &str) -> Background {
        Self::spawn(setup, process, setup.command_following(process, None))
    }

    fn spawn(setup: &KafkaSetup, process: &str, mut command: Command) -> Background {
        let log = setup.scratch.join(&format!("{process}/run.log"));
        let file = std::fs::File::create(&log).unwrap();
        let child = command.stdout(file.try_clone().unwrap()).stderr(file).spawn().unwrap();
        Background { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log holds `needle`, at most `limit`.
    fn wait_for_log(&mut self, needle: &str, limit: Duration) {
        let started = Instant::now();
        while !self.log().contains(needle) {
            assert!(self.still_running(), "the run ended before logging `{needle}`:\n{}", self.log());
            assert!(started.elapsed() < limit, "no `{needle}` in the log within {limit:?}:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn kill(mut self) {
        self.child.kill().unwrap(); // SIGKILL
        self.child.wait().unwrap();
    }

    /// Asks the run to stop (SIGTERM: finish the batch, checkpoint, leave the group); it must succeed.
    fn stop(mut self) -> String {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success());
        let started = Instant::now();
        while self.still_running() && started.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(!self.still_running(), "the run did not stop within 60 s of SIGTERM:\n{}", self.log());
        let status = self.child.wait().unwrap();
        let text = self.log();
        assert!(status.success(), "{status}:\n{text}");
        text
    }

    fn still_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Waits for the run to end on its own, at most `limit`; it must succeed.
    fn finish_within(mut self, limit: Duration) -> String {
        let status = wait_at_most(&mut self.child, limit);
        let text = self.log();
        let status = status.unwrap_or_else(|| panic!("the run did not finish within {limit:?}:\n{text}"));
        assert_eq!(status.code(), Some(0), "{text}");
        text
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The broker connections of a running pipeline (consumer, producers, DLQ) are cut twice and stalled for
/// three seconds (shorter than the session timeout, so the group keeps its member): the run rides it out
/// and delivers the reference alerts, each once.
#[test]
fn connection_cuts_and_stalls_during_a_run_lose_and_repeat_nothing() {
    let (setup, proxy) = KafkaSetup::behind_proxy(150, 40, 13, 2);
    let reference = reference_alerts(&setup, 2);
    setup.configure("p0", &Config { batch_size: 128, ..Config::default() });
    let mut run = Background::start(&setup, "p0");
    let mut fault = |after: Duration, what: &str, inject: &dyn Fn()| {
        std::thread::sleep(after);
        assert!(run.still_running(), "the run ended before the fault `{what}`: make the scenario longer");
        inject();
        println!("{what} at {:?}; {} connections open", Instant::now(), proxy.connections());
    };
    fault(Duration::from_millis(3000), "cut", &|| assert!(proxy.cut() > 0, "no connection to cut"));
    fault(Duration::from_millis(1500), "stall", &|| proxy.stall(true));
    fault(Duration::from_millis(3000), "resume", &|| proxy.stall(false));
    fault(Duration::from_millis(1000), "cut again", &|| assert!(proxy.cut() > 0, "no connection to cut"));
    let log = run.finish_within(Duration::from_secs(240));
    assert_delivered(&setup, SinkMode::Idempotent, &reference, 0);
    assert_eq!(setup.dead_letters().len(), reference_dead_letters(&setup, 2), "every dead letter once:\n{log}");
}

/// Scale-out and failover: two processes share four partitions; one is SIGKILLed mid-run, and the
/// survivor takes its partitions over, restoring them from the shared remote tier (its own local tier
/// has nothing newer of them); later a third process joins and takes partitions from the survivor. The
/// processes follow the topic (no process alone sees its whole end), and are stopped with SIGTERM once
/// the group has committed every partition's end. The alerts equal the reference, each once.
#[test]
fn failover_to_a_survivor_and_a_rebalance_to_a_newcomer_lose_and_repeat_nothing() {
    // Half the observations now, the rest after the kill: the kill lands mid-run by construction.
    let mut setup = KafkaSetup::half_produced(200, 40, 17, 4);
    let reference = reference_alerts(&setup, 4);
    for process in ["p0", "p1", "p2"] {
        setup.configure(process, &Config { batch_size: 128, ..Config::default() });
    }
    let mut first = Background::start_following(&setup, "p0");
    first.wait_for_log("partitions assigned", Duration::from_secs(60));
    let mut second = Background::start_following(&setup, "p1");
    second.wait_for_log("partitions assigned", Duration::from_secs(60));
    // Let the second process work on its share and checkpoint it a few times (it continues the sequence of
    // the checkpoints it restored) before it dies.
    let taken = assigned_partitions(&second.log());
    let started = Instant::now();
    while !taken.iter().all(|p| setup.newest_remote_sequence(*p) >= 4) {
        assert!(second.still_running(), "{}", second.log());
        assert!(started.elapsed() < Duration::from_secs(60), "the second process did not checkpoint {taken:?}:\n{}", second.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(first.still_running() && second.still_running());
    second.kill();
    let killed_at = Instant::now();
    setup.produce_the_rest();
    first.wait_for_log("path=\"remote\"", Duration::from_secs(60));
    println!("the survivor restored a partition from the remote tier {:?} after the kill", killed_at.elapsed());
    std::thread::sleep(Duration::from_secs(2));
    let mut third = Background::start_following(&setup, "p2");
    third.wait_for_log("partitions assigned", Duration::from_secs(60));

    let ends = setup.input_ends();
    let started = Instant::now();
    loop {
        let committed = setup.tansu.committed_offsets(&setup.group, &setup.input);
        if committed == ends {
            break;
        }
        assert!(first.still_running() && third.still_running(), "a process ended on its own");
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "the group did not commit every partition's end ({ends:?}) within 300 s: {committed:?}\n--- p0 ---\n{}\n--- p2 ---\n{}",
            first.log(),
            third.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let logs = [first.stop(), third.stop()];
    assert!(logs[1].contains("recovered"), "the newcomer restored the partitions it took:\n{}", logs[1]);
    assert_delivered(&setup, SinkMode::Idempotent, &reference, 0);
    assert_eq!(setup.dead_letters().len(), reference_dead_letters(&setup, 4), "every dead letter once");
}

/// Failover before the first upload: a process whose checkpoint uploads never finish is killed right
/// after its first checkpoint is durable in its own local tier. Another process (another machine: its
/// own local tier, the shared remote tier) takes the partition over. The group's offset must not have
/// moved past a checkpoint the remote tier holds: the newcomer starts from the beginning, and no alert
/// is lost (nor repeated).
#[test]
fn a_process_killed_before_its_first_upload_leaves_the_offset_where_a_survivor_can_resume() {
    let setup = KafkaSetup::new(OBJECTS, MINUTES, SEED, 1);
    let reference = reference_alerts(&setup, 1);
    for process in ["p0", "p1"] {
        // A checkpoint after every batch: the third lands early in the run.
        setup.configure(process, &Config { interval_ms: 0, ..Config::default() });
    }
    let point = "checkpoint-committed:3";
    let out = setup.command("p0", Some(point)).env("SDA_FAILPOINT_STALL", "remote-upload").output().unwrap();
    sda_testkit::assert_killed_by_failpoint(&out, point);
    assert!(setup.newest_local_sequence("p0") >= 3, "the killed process checkpointed locally");
    assert_eq!(setup.newest_remote_sequence(0), 0, "and uploaded nothing");
    let committed = setup.tansu.committed_offsets(&setup.group, &setup.input);
    let before = alerts_by_id(&setup.alerts()).len();
    assert!(before < reference.len(), "the kill landed mid-run: {before} of {} alerts delivered", reference.len());
    let log = setup.finish("p1");
    assert!(log.contains("started from the beginning"), "the newcomer had nothing to restore:\n{log}");
    assert_delivered(&setup, SinkMode::Idempotent, &reference, 0);
    assert!(committed.iter().all(|c| c.unwrap_or(0) == 0), "no offset was committed without a remote checkpoint: {committed:?}");
    assert_eq!(setup.tansu.committed_offsets(&setup.group, &setup.input), setup.input_ends());
}

/// A run under `guarantee`, checkpointing every `interval_ms`, killed inside a batch, then a run to the end;
/// with the reference alerts.
fn crashed_once_then_finished(guarantee: &'static str, interval_ms: u64) -> (KafkaSetup, BTreeMap<String, Value>) {
    let setup = KafkaSetup::new(OBJECTS, MINUTES, SEED, 2);
    let reference = reference_alerts(&setup, 2);
    setup.configure("p0", &Config { guarantee, interval_ms, ..Config::default() });
    setup.crash_at("p0", "mid-process:60");
    setup.finish("p0");
    (setup, reference)
}

/// At-least-once against Kafka: sinks do not deduplicate, so a crash may repeat alerts (identical copies)
/// but never loses one: neither after checkpoints (one after every batch) nor before the first (an interval
/// the run never reaches), where the group's offset must not have moved past what a checkpoint holds.
#[test]
fn at_least_once_a_crash_may_repeat_alerts_but_loses_none() {
    for (when, interval_ms) in [("after checkpoints", 0), ("before the first checkpoint", 600_000)] {
        let (setup, reference) = crashed_once_then_finished("at-least-once", interval_ms);
        let mut distinct: BTreeMap<String, Value> = BTreeMap::new();
        let records = setup.alerts();
        for r in &records {
            let alert: Value = serde_json::from_str(r.value_str()).unwrap();
            if let Some(first) = distinct.insert(r.key_str().to_string(), alert.clone()) {
                assert_eq!(first, alert, "copies of alert {} differ (crash {when})", r.key_str());
            }
        }
        println!("crash {when}: {} records for {} alerts", records.len(), distinct.len());
        assert_same_alerts(&distinct, &reference);
        assert_eq!(setup.tansu.committed_offsets(&setup.group, &setup.input), setup.input_ends(), "crash {when}");
    }
}

/// At-most-once against Kafka: offsets are committed before a batch is processed, so a crash may lose the
/// alerts of the batch in hand but never delivers one twice, and the next run goes on after it.
#[test]
fn at_most_once_a_crash_may_lose_alerts_but_repeats_none() {
    let (setup, reference) = crashed_once_then_finished("at-most-once", Config::default().interval_ms);
    let delivered = alerts_by_id(&setup.alerts());
    println!("{} of {} alerts delivered", delivered.len(), reference.len());
    for (id, alert) in &delivered {
        assert_eq!(reference.get(id), Some(alert), "alert {id} is not one of the reference's");
    }
    assert_eq!(setup.tansu.committed_offsets(&setup.group, &setup.input), setup.input_ends());
}

/// Brokers that cannot be reached: start-up fails within `connect_timeout_ms`, with an error naming them,
/// instead of waiting for ever.
#[test]
fn an_unreachable_broker_stops_start_up_with_an_error_naming_it() {
    let scratch = Scratch::new();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap(); // closed once dropped
    let toml = PipelineToml::new("unreachable")
        .kafka_source("observations", &closed.to_string(), "obs", "g")
        .set("sources.observations", "connect_timeout_ms", 2000)
        .lines("sources.observations.librdkafka", client_settings())
        .operator("correlator", plugins::CORRELATOR, &["observations"])
        .set("operators.correlator", "per_partition", true)
        .file_sink("alerts", &["correlator"], "alerts.jsonl");
    scratch.write("pipeline.toml", toml.to_string());
    let started = Instant::now();
    let (code, stderr) = run_within(&scratch, Duration::from_secs(60));
    assert_ne!(code, Some(0), "{stderr}");
    assert!(stderr.contains(&format!("cannot reach the Kafka brokers `{closed}` within 2 s")), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(30), "took {:?}", started.elapsed());
}

/// A record Kafka refuses for good: the sink's client takes nothing over `message.max.bytes` (set to its
/// minimum, 1000 bytes), so the large records a passthrough operator forwards are dead-lettered as
/// `SinkRejected`, naming the sink and the input record, and every other record is delivered, once.
/// A one-partition pipeline `observations -> forward -> out` with a Kafka DLQ, its records produced
/// first; returns the input, output and DLQ topics and where each record was placed.
/// `operator` is the forwarding operator's plugin and extra keys; `sink_extra`, more librdkafka settings of the sink.
fn single_partition_forward(
    tansu: &Tansu,
    scratch: &Scratch,
    name: &str,
    records: &[(String, String)],
    operator: (&str, &str),
    sink_extra: &str,
) -> ([String; 3], Vec<(i32, i64)>) {
    let (input, output, dlq) = (unique_topic("obs"), unique_topic("out"), unique_topic("dlq"));
    for topic in [&input, &output, &dlq] {
        tansu.create_topic(topic, 1);
    }
    let placed = tansu.produce(&input, &records.iter().map(|(k, v)| (Some(0), k.as_bytes(), v.as_bytes())).collect::<Vec<_>>());
    let (client, consumer) = (client_settings(), group_consumer_table());
    let brokers = tansu.brokers();
    let (plugin, operator_extra) = operator;
    let toml = PipelineToml::new(name)
        .set("runtime", "batch_size", 16)
        .kafka_source("observations", &brokers, &input, &unique_group(name))
        .lines("sources.observations.librdkafka", consumer)
        .operator("forward", plugin, &["observations"])
        .lines("operators.forward", operator_extra)
        .kafka_sink("out", &["forward"], &brokers, &output)
        .lines("sinks.out.librdkafka", format!("{client}{sink_extra}"))
        .kafka_dlq(&brokers, &dlq)
        .lines("dlq.librdkafka", &client);
    scratch.write("pipeline.toml", toml.to_string());
    ([input, output, dlq], placed)
}

#[test]
fn records_kafka_refuses_for_good_are_dead_lettered_and_the_rest_delivered() {
    let tansu = Tansu::start();
    let scratch = Scratch::new();
    let records: Vec<(String, String)> = (0..40)
        .map(|i| (format!("k{i:02}"), format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(if i % 10 == 3 { 1500 } else { 10 }))))
        .collect();
    let ([_, output, dlq], placed) =
        single_partition_forward(&tansu, &scratch, "too-large", &records, (plugins::PASSTHROUGH, ""), "\"message.max.bytes\" = \"1000\"\n");
    let (code, text) = run_within(&scratch, Duration::from_secs(120));
    assert_eq!(code, Some(0), "{text}");

    let (large, small): (Vec<usize>, Vec<usize>) = (0..records.len()).partition(|i| i % 10 == 3);
    let delivered: Vec<String> =
        tansu.consume_all(&output, Isolation::ReadCommitted, READ).iter().map(|r| r.key_str().to_string()).collect();
    assert_eq!(delivered, small.iter().map(|&i| records[i].0.clone()).collect::<Vec<_>>(), "{text}");
    let entries = tansu.consume_all(&dlq, Isolation::ReadCommitted, READ);
    assert_eq!(entries.len(), large.len(), "{text}");
    for (entry, &i) in entries.iter().zip(&large) {
        let envelope: Value = serde_json::from_str(entry.value_str()).unwrap();
        assert_eq!(envelope["error_kind"], "SinkRejected", "{envelope}");
        assert_eq!(envelope["operator"], "out");
        assert!(envelope["error_message"].as_str().unwrap().contains("for good"), "{envelope}");
        assert_eq!(envelope["key"], records[i].0.as_str());
        assert_eq!(envelope["payload"], records[i].1.as_str());
        assert_eq!(entry.header("dlq.source.offset").map(|o| String::from_utf8_lossy(o).into_owned()), Some(placed[i].1.to_string()));
    }
}

/// A plugin that panics on a few records of a Kafka partition: the task rewinds its partition to
/// the last checkpoint, isolates each poison record into the DLQ with its partition offset, and
/// delivers every other record once, in order.
#[test]
fn poison_records_in_a_kafka_partition_are_isolated_and_the_rest_delivered_once() {
    poison_in_a_kafka_partition(false);
}

/// The same with a transactional sink, which keeps no delivery record: its open transaction holds
/// the clean batch before the second poison record when the task rewinds, and the replay must not
/// write that batch into it a second time.
#[test]
fn with_a_transactional_sink_a_rewind_writes_nothing_twice_into_the_open_transaction() {
    poison_in_a_kafka_partition(true);
}

fn poison_in_a_kafka_partition(transactional: bool) {
    let tansu = Tansu::start();
    let scratch = Scratch::new();
    // Batches of 16: a poison record in the first and the third, a clean batch between them.
    let poisoned = |i: usize| i % 40 == 7;
    let records: Vec<(String, String)> =
        (0..60).map(|i| (format!("k{i:02}"), format!("{{\"n\":{i}{}}}", if poisoned(i) { ",\"m\":\"POISON\"" } else { "" }))).collect();
    let ([input, output, dlq], placed) = single_partition_forward(
        &tansu,
        &scratch,
        "poison",
        &records,
        (plugins::FAULTY, "config = { mode = \"panic\" }\nper_partition = true"),
        "",
    );
    if transactional {
        let toml = std::fs::read_to_string(scratch.join("pipeline.toml")).unwrap();
        scratch.write("pipeline.toml", toml.replace("[sinks.out.librdkafka]", "transactional = true\n[sinks.out.librdkafka]"));
    }
    let (code, text) = run_within(&scratch, Duration::from_secs(120));
    assert_eq!(code, Some(0), "{text}");

    let (bad, good): (Vec<usize>, Vec<usize>) = (0..records.len()).partition(|&i| poisoned(i));
    let delivered: Vec<String> =
        tansu.consume_all(&output, Isolation::ReadCommitted, READ).iter().map(|r| r.key_str().to_string()).collect();
    assert_eq!(delivered, good.iter().map(|&i| records[i].0.clone()).collect::<Vec<_>>(), "{text}");
    let entries = tansu.consume_all(&dlq, Isolation::ReadCommitted, READ);
    assert_eq!(entries.len(), bad.len(), "{text}");
    for (entry, &i) in entries.iter().zip(&bad) {
        let envelope: Value = serde_json::from_str(entry.value_str()).unwrap();
        assert_eq!(envelope["error_kind"], "PluginTrap", "{envelope}");
        assert_eq!(envelope["operator"], "forward");
        assert_eq!(envelope["key"], records[i].0.as_str());
        assert_eq!(envelope["source"]["topic"], input.as_str());
        assert_eq!(envelope["source"]["offset"], placed[i].1, "{envelope}");
    }
}
