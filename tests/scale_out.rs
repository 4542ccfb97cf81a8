//! Scale-out across processes against a real broker (Tansu): a source's shards leased through a Kafka group, SIGKILL, a joiner, and the classifier after the shards.
//!
//! Stage 1 (screening): an 8-partition observation topic read whole by 4 shard tasks, leased over a
//! lease topic to whichever processes run the pipeline; each shard writes its candidates to its own
//! partition of the candidates topic (`partitioner = "shard"`). Stage 2 (classification): that topic
//! read whole, merged by event time, by one leased task. Both stages run with `--stop-at-end`, so the
//! second starts once the first has ended (a stage that stops at the end it saw when it started must
//! not start before its input is complete). The alerts must equal the file pipeline's on the same
//! observations in the merged order: one process, one task, one screening of everything.

use sda_scenario::GenerateOptions;
use sda_testkit::kafka::{
    ConsumedRecord, Isolation, Tansu, group_consumer_table, librdkafka_table, observation_key, unique_group, unique_topic,
};
use sda_testkit::pipeline::quoted;
use sda_testkit::{PipelineToml, Scratch, plugins};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const READ: Duration = Duration::from_secs(60);
const SHARDS: u32 = 4;
const PARTITIONS: i32 = 8;

struct ScaleOut {
    tansu: Tansu,
    scratch: Scratch,
    input: String,
    candidates: String,
    alerts: String,
    dlq: String,
    lease_topic: String,
    /// The screening stage's consumer group (its lease group is `<group>.shards`): one for all processes.
    group: String,
    input_records: usize,
}

impl ScaleOut {
    fn new(objects: usize, minutes: u32, seed: u64) -> ScaleOut {
        let tansu = Tansu::start();
        let scratch = Scratch::new();
        let options = GenerateOptions { objects, minutes, seed, ..GenerateOptions::default() };
        sda_scenario::write_scenario(&scratch.join("obs.jsonl"), &options, &|_, _| {}).expect("generating");
        let (input, candidates, alerts, dlq) =
            (unique_topic("obs"), unique_topic("candidates"), unique_topic("alerts"), unique_topic("dlq"));
        tansu.create_topic(&input, PARTITIONS);
        tansu.create_topic(&candidates, SHARDS as i32);
        tansu.create_topic(&alerts, 2);
        tansu.create_topic(&dlq, 1);
        let text = std::fs::read_to_string(scratch.join("obs.jsonl")).unwrap();
        let produced = tansu.produce_lines_keyed(&input, text.lines(), PARTITIONS, observation_key);
        let lease_topic = unique_topic("leases");
        let group = unique_group("screening");
        ScaleOut { tansu, scratch, input, candidates, alerts, dlq, lease_topic, group, input_records: produced.iter().sum() }
    }

    /// Stage 1 in process folder `process`: observations, read whole in `SHARDS` leased shards -> correlator
    /// -> the candidates topic, a partition per shard. Each process has its own local checkpoint tier; the
    /// remote tier is shared (another machine's recovery reads it).
    fn configure_screening(&self, process: &str, batch_size: u32, shards: u32) {
        let brokers = self.tansu.brokers();
        let client = librdkafka_table(sda_testkit::kafka::CLIENT_SETTINGS);
        let toml = PipelineToml::new("screening")
            .kafka_source("observations", &brokers, &self.input, &self.group)
            .set("sources.observations", "event_time_field", quoted("epoch_ms"))
            .set("sources.observations", "assignment", quoted("all"))
            .set("sources.observations", "shards", shards)
            .set("sources.observations", "lease_topic", quoted(&self.lease_topic))
            .lines("sources.observations.librdkafka", group_consumer_table())
            .operator("correlator", plugins::CORRELATOR, &["observations"])
            .kafka_sink("candidates", &["correlator"], &brokers, &self.candidates)
            .set("sinks.candidates", "partitioner", quoted("shard"))
            .lines("sinks.candidates.librdkafka", &client)
            .kafka_dlq(&brokers, &self.dlq)
            .lines("dlq.librdkafka", &client);
        self.write(process, toml, batch_size, 0);
    }

    /// Stage 2: the candidates topic read whole (merged by window start, `window_start_ms`) by one leased task ->
    /// classifier -> the alerts topic.
    fn configure_classification(&self, process: &str) {
        let brokers = self.tansu.brokers();
        let client = librdkafka_table(sda_testkit::kafka::CLIENT_SETTINGS);
        let toml = PipelineToml::new("classification")
            .kafka_source("candidates", &brokers, &self.candidates, &unique_group("classification"))
            .set("sources.candidates", "event_time_field", quoted("window_start_ms"))
            .set("sources.candidates", "assignment", quoted("all"))
            .set("sources.candidates", "shards", 1)
            .set("sources.candidates", "idle_timeout_ms", 60_000)
            .lines("sources.candidates.librdkafka", group_consumer_table())
            .operator("classifier", plugins::CLASSIFIER, &["candidates"])
            .kafka_sink("alerts", &["classifier"], &brokers, &self.alerts)
            .lines("sinks.alerts.librdkafka", &client)
            .kafka_dlq(&brokers, &self.dlq)
            .lines("dlq.librdkafka", &client);
        // Batches of 8 and a checkpoint after each: the crash below lands between two checkpoints.
        self.write(process, toml, 8, 0);
    }

    fn write(&self, process: &str, toml: PipelineToml, batch_size: u32, checkpoint_interval_ms: u64) {
        let toml = toml
            .set("runtime", "batch_size", batch_size)
            .set("checkpoint", "dir", quoted("state/local"))
            .set("checkpoint", "remote", quoted(self.scratch.join("remote").display().to_string()))
            .set("checkpoint", "interval_ms", checkpoint_interval_ms);
        self.scratch.write(&format!("{process}/pipeline.toml"), toml.to_string());
    }

    fn start(&self, process: &str) -> Process {
        self.start_with(process, None)
    }

    /// Starts `process`, killed by SIGKILL at fail point `failpoint` if one is given.
    fn start_with(&self, process: &str, failpoint: Option<&str>) -> Process {
        let log = self.scratch.join(&format!("{process}/run.log"));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_sda-pipeline"))
            .current_dir(self.scratch.join(process))
            .args(["run", "pipeline.toml", "--stop-at-end"])
            .env("SDA_CACHE_DIR", Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache"))
            .env("SDA_LOG", "info")
            .env("SDA_FAILPOINT", failpoint.unwrap_or_default())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("running sda-pipeline");
        Process { name: process.to_string(), child, log }
    }

    /// The sequence number of the newest checkpoint of stage 1's shard `shard` of `shards` in the remote tier (0: none).
    fn remote_sequence(&self, shard: u32, shards: u32) -> u64 {
        let folder = self.scratch.join(&format!("remote/screening/observations-shard-{shard}-of-{shards}"));
        std::fs::read_dir(folder)
            .map(|entries| {
                (entries.flatten())
                    .filter_map(|e| e.file_name().to_str()?.strip_prefix("ckpt-")?.strip_suffix(".sdackpt")?.parse().ok())
                    .max()
                    .unwrap_or(0)
            })
            .unwrap_or(0)
    }
}

struct Process {
    name: String,
    child: Child,
    log: std::path::PathBuf,
}

impl Process {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    fn wait_for(&mut self, what: &str, limit: Duration, done: impl Fn(&str) -> bool) {
        let started = Instant::now();
        while !done(&self.log()) {
            assert!(self.running(), "{} ended before {what}:\n{}", self.name, self.log());
            assert!(started.elapsed() < limit, "{}: no {what} within {limit:?}:\n{}", self.name, self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The shards of the last lease assignment this process logged.
    fn shards(&self) -> Vec<u32> {
        let log = self.log();
        let Some(line) = log.lines().rev().find(|l| l.contains("partitions assigned")) else { return Vec::new() };
        let list = line.split("partitions=[").nth(1).and_then(|rest| rest.split(']').next()).expect("the partitions are listed");
        list.split(',').filter(|p| !p.trim().is_empty()).map(|p| p.trim().parse().expect("a shard number")).collect()
    }

    fn finish_within(mut self, limit: Duration) -> String {
        let started = Instant::now();
        while self.running() {
            assert!(started.elapsed() < limit, "{} did not finish within {limit:?}:\n{}", self.name, self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
        let status = self.child.wait().unwrap();
        let log = self.log();
        assert!(status.success(), "{}: {status}\n{log}", self.name);
        log
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `recovered` lines of shard task `task` in `log`: (path, offset).
fn recoveries(log: &str, task: &str) -> Vec<(String, u64)> {
    let field = |line: &str, name: &str| -> Option<String> {
        let rest = line.split(&format!(" {name}=")).nth(1)?;
        Some(rest.split(' ').next()?.trim_matches('"').to_string())
    };
    (log.lines())
        .filter(|l| l.contains(" recovered") && l.contains(&format!("task=\"{task}\"")))
        .filter_map(|l| Some((field(l, "path")?, field(l, "offset")?.parse().ok()?)))
        .collect()
}

/// From a run's summary: how many records it read (`...: 1,234 records read`) and discarded as late
/// (`correlator: late 12`); 0 where the summary does not say.
fn read_and_late(log: &str) -> (u64, u64) {
    let number = |text: &str| text.trim().replace(',', "").parse().unwrap_or(0);
    let read =
        log.lines().find_map(|l| l.split(" records read").next().filter(|_| l.contains(" records read"))?.rsplit(": ").next().map(number));
    let late = log.lines().find_map(|l| l.split("correlator: late ").nth(1).map(number));
    (read.unwrap_or(0), late.unwrap_or(0))
}

fn by_key(records: &[ConsumedRecord], what: &str) -> BTreeMap<String, Value> {
    let mut map = BTreeMap::new();
    for r in records {
        let value: Value = serde_json::from_str(r.value_str()).unwrap_or_else(|e| panic!("{what} are JSON: {e}"));
        assert!(map.insert(r.key_str().to_string(), value).is_none(), "{what} `{}` delivered twice", r.key_str());
    }
    map
}

/// 3 processes share 4 shards of an 8-partition topic; one is SIGKILLed mid-run and its shards fail over
/// to the survivors, which restore them from the shared remote tier; a fourth process joins later and
/// takes shards over. Then the classifier stage runs. The alerts equal one process's screening of
/// everything, each once; every dead letter is written once (by shard 0) and names its input record.
#[test]
fn three_processes_four_shards_a_kill_and_a_joiner_deliver_one_screening_of_everything() {
    let setup = ScaleOut::new(400, 90, 23);
    let (reference, reference_dead_letters) = sda_testkit::kafka::merged_reference_alerts(
        Path::new(env!("CARGO_BIN_EXE_sda-pipeline")),
        &Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache"),
        &setup.scratch.join("reference"),
        &setup.scratch.join("obs.jsonl"),
        PARTITIONS,
    );
    assert!(reference.len() >= 10, "the scenario raises alerts: {}", reference.len());
    for process in ["p0", "p1", "p2", "p3"] {
        // Small batches and a checkpoint after each: each shard task reads the whole topic, and the run must
        // last well past the kill.
        setup.configure_screening(process, 32, SHARDS);
    }

    let mut processes: Vec<Process> = ["p0", "p1", "p2"].iter().map(|p| setup.start(p)).collect();
    // Wait until the group has settled on the three (each holds a shard) and the victim has worked on its shards: a
    // checkpoint per batch of 32, and an idle start (waiting for every partition's first fetch) checkpoints only a few.
    let started = Instant::now();
    let victim_shards = loop {
        let held: Vec<Vec<u32>> = processes.iter().map(Process::shards).collect();
        let victim = &held[1];
        let settled = held.iter().all(|h| !h.is_empty()) && held.iter().map(Vec::len).sum::<usize>() == SHARDS as usize;
        if settled && victim.iter().all(|&s| setup.remote_sequence(s, SHARDS) >= 300) {
            break victim.clone();
        }
        for p in &mut processes {
            assert!(p.running(), "{} ended before the kill (make the scenario longer):\n{}", p.name, p.log());
        }
        assert!(started.elapsed() < Duration::from_secs(120), "the leases did not settle on 3 processes: {held:?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let victim_tasks: Vec<String> = victim_shards.iter().map(|s| format!("observations-shard-{s}-of-{SHARDS}")).collect();
    let before: Vec<usize> = victim_tasks.iter().map(|t| processes.iter().map(|p| recoveries(&p.log(), t).len()).sum::<usize>()).collect();
    let mut victim = processes.remove(1);
    victim.child.kill().unwrap(); // SIGKILL
    victim.child.wait().unwrap();
    let killed_at = Instant::now();
    println!("SIGKILLed p1 holding shards {victim_shards:?}");

    // Failover: each of the victim's shards is recovered by a survivor, from the remote tier (the survivors'
    // local tiers hold nothing newer of it), at an offset short of the input's end: the kill landed mid-run.
    let mut failover = Duration::ZERO;
    for (task, before) in victim_tasks.iter().zip(before) {
        let started = Instant::now();
        let (path, offset) = loop {
            let found: Vec<(String, u64)> = processes.iter().flat_map(|p| recoveries(&p.log(), task)).collect();
            if found.len() > before {
                break found[before].clone();
            }
            assert!(started.elapsed() < Duration::from_secs(90), "no survivor recovered {task}");
            std::thread::sleep(Duration::from_millis(20));
        };
        failover = failover.max(killed_at.elapsed());
        assert_eq!(path, "remote", "{task} is restored from the remote tier, where the dead process uploaded it");
        assert!(offset > 0 && (offset as usize) < setup.input_records, "{task} resumed mid-run, at {offset} of {}", setup.input_records);
    }
    println!("failover: every shard of the killed process resumed {failover:?} after the kill (session.timeout.ms = 6000)");

    let mut joiner = setup.start("p3");
    joiner.wait_for("a lease assignment", Duration::from_secs(60), |log| log.contains("partitions assigned"));
    println!("p3 joined and holds shards {:?}", joiner.shards());
    processes.push(joiner);
    let mut logs = BTreeMap::new();
    for p in processes {
        let name = p.name.clone();
        logs.insert(name, p.finish_within(Duration::from_secs(300)));
    }
    assert!(logs["p3"].contains(" recovered"), "the joiner took a shard over:\n{}", logs["p3"]);
    // The scenario's malformed records carry arbitrary times: a merge that trusted them would hold their
    // partitions back and make most observations late (83% of them, once). In file order 0.5% are.
    for (name, log) in &logs {
        let (read, late) = read_and_late(log);
        assert!(read > 0 && late * 50 < read, "{name}: {late} of {read} records late:\n{log}");
    }

    // Every candidate once, in the partition of the shard that found it.
    let candidates = setup.tansu.consume_all(&setup.candidates, Isolation::ReadCommitted, READ);
    let found = by_key(&candidates, "candidates");
    let partitions: BTreeSet<i32> = candidates.iter().map(|r| r.partition).collect();
    assert!(partitions.len() >= 2, "the shards split the pair space: candidates in partitions {partitions:?}");
    // What the second stage relies on: each partition is one shard's output, in window order (candidates of
    // four shards interleaved by key, at their own paces and across a failover, would not be).
    let mut by_partition: BTreeMap<i32, Vec<(i64, i64)>> = BTreeMap::new();
    for r in &candidates {
        let window: i64 = found[r.key_str()]["window_start_ms"].as_i64().expect("a candidate has its window");
        by_partition.entry(r.partition).or_default().push((r.offset, window));
    }
    for (partition, mut windows) in by_partition {
        windows.sort();
        assert!(windows.windows(2).all(|w| w[0].1 <= w[1].1), "partition {partition} is not in window order: {windows:?}");
    }

    // The hop, exactly once across a crash: the classification stage is killed inside its fourth batch (its
    // operators ran, nothing of the batch delivered), after three batches' alerts and checkpoints (a batch
    // can be short: the merge ends one after 100 ms of waiting); the restart resumes from its newest local
    // checkpoint and must deliver neither less nor twice.
    setup.configure_classification("c0");
    let mut crashed = setup.start_with("c0", Some("mid-process:4"));
    let started = Instant::now();
    while crashed.running() {
        assert!(started.elapsed() < Duration::from_secs(120), "the fail point did not fire:\n{}", crashed.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = crashed.child.wait().unwrap();
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(9), "killed at the fail point:\n{}", crashed.log());
    let before_restart = setup.tansu.consume_all(&setup.alerts, Isolation::ReadCommitted, READ).len();
    assert!(before_restart < reference.len(), "the crash came before the end: {before_restart} of {} alerts out", reference.len());
    let log = setup.start("c0").finish_within(Duration::from_secs(300));
    let resumed = recoveries(&log, "candidates-shard-0-of-1");
    assert!(
        resumed.first().is_some_and(|(path, offset)| path == "local" && *offset > 0),
        "the restart resumed from the checkpoint after the third batch: {resumed:?}\n{log}"
    );
    println!("classification: killed with {before_restart} alerts out, resumed at {resumed:?}");
    let alerts = by_key(&setup.tansu.consume_all(&setup.alerts, Isolation::ReadCommitted, READ), "alerts");
    let missing: Vec<&String> = reference.keys().filter(|k| !alerts.contains_key(*k)).collect();
    let extra: Vec<&String> = alerts.keys().filter(|k| !reference.contains_key(*k)).collect();
    assert!(missing.is_empty() && extra.is_empty(), "{} alerts missing: {missing:?}; {} unexpected: {extra:?}", missing.len(), extra.len());
    for (id, alert) in &reference {
        assert_eq!(&alerts[id], alert, "alert {id} differs");
    }
    println!("{} candidates, {} alerts, equal to one screening of everything", found.len(), alerts.len());

    let dead: Vec<ConsumedRecord> = setup.tansu.consume_all(&setup.dlq, Isolation::ReadCommitted, READ);
    assert_eq!(dead.len(), reference_dead_letters.len(), "every dead letter once, whichever shard and process");
    let input = setup.tansu.consume_all(&setup.input, Isolation::ReadCommitted, READ);
    let mut places = BTreeSet::new();
    for entry in &dead {
        let header = |name: &str| String::from_utf8(entry.header(name).unwrap_or_else(|| panic!("no header {name}")).to_vec()).unwrap();
        let (partition, offset): (i32, i64) =
            (header("dlq.source.partition").parse().unwrap(), header("dlq.source.offset").parse().unwrap());
        let envelope: Value = serde_json::from_str(entry.value_str()).unwrap();
        let original = input.iter().find(|r| r.partition == partition && r.offset == offset).expect("the named input record exists");
        if envelope["payload_encoding"] == "utf8" {
            assert_eq!(envelope["payload"].as_str().unwrap(), original.value_str(), "the envelope carries its record");
        }
        assert!(places.insert((partition, offset)), "{partition}/{offset} dead-lettered twice");
    }
}

/// An operator after the correlator's leased shards would see each pair's candidates split across
/// processes (which shard owns a pair can change from one window to the next): `validate` and `run`
/// refuse it before any broker is contacted and point at the two-stage layout, which validates. With
/// one shard (a lease for failover alone) nothing is split, and the one-stage graph is accepted.
#[test]
fn an_operator_after_leased_shards_is_refused_and_the_two_stage_layout_accepted() {
    let scratch = Scratch::new();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let one_stage = sda_testkit::kafka::kafka_pipeline("sharded", &closed, "obs", "g", "alerts", "dlq")
        .set("operators.correlator", "per_partition", false)
        .set("sources.observations", "assignment", quoted("all"))
        .set("sources.observations", "shards", 4);
    let sda = |args: &[&str]| sda_testkit::sda_command!(scratch.path()).args(args).output().unwrap();
    scratch.write("pipeline.toml", one_stage.to_string());
    for stderr in sda_testkit::refused_by_validate_and_run(sda) {
        assert!(
            stderr
                .contains("operator `classifier` reads the outputs of operator `correlator`, which source `observations` runs in 4 shards"),
            "{stderr}"
        );
        assert!(stderr.contains("second stage") && stderr.contains("pipeline.scale-out.toml"), "{stderr}");
    }
    let client = librdkafka_table(sda_testkit::kafka::CLIENT_SETTINGS);
    let two_stages = one_stage
        .clone()
        .kafka_sink("candidates", &["correlator"], &closed, "candidates")
        .set("sinks.candidates", "partitioner", quoted("shard"))
        .lines("sinks.candidates.librdkafka", &client)
        .kafka_source("found", &closed, "candidates", "g2")
        .set("sources.found", "assignment", quoted("all"))
        .set("sources.found", "shards", 1)
        .set("sources.found", "event_time_field", quoted("window_start_ms"))
        .set("operators.classifier", "inputs", r#"["found"]"#);
    for accepted in [two_stages, one_stage.set("sources.observations", "shards", 1)] {
        scratch.write("pipeline.toml", accepted.to_string());
        let out = sda(&["validate", "pipeline.toml"]);
        assert_eq!(out.status.code(), Some(0), "{}\n{accepted}", String::from_utf8_lossy(&out.stderr));
    }
}

/// Another cut of a source's shards (another `shards`, or its one task read whole) has checkpoints: the new
/// cut's tasks would start from the topic's beginning and deliver everything again, so `run` refuses before
/// contacting the broker and names the checkpoints found in either tier; `--allow-fresh-start` runs anyway.
#[test]
fn a_changed_shard_count_is_refused_while_the_old_cut_has_checkpoints() {
    let scratch = Scratch::new();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let toml = sda_testkit::kafka::kafka_pipeline("resharded", &closed, "obs", "g", "alerts", "dlq")
        .set("operators.correlator", "per_partition", false)
        .set("sources.observations", "assignment", quoted("all"))
        .set("sources.observations", "shards", 1)
        .set("sources.observations", "connect_timeout_ms", 500);
    scratch.write("pipeline.toml", toml.to_string());
    let checkpoint = "ckpt-00000000000000000007.sdackpt";
    scratch.write(&format!("checkpoints/resharded/observations-shard-3-of-4/{checkpoint}"), b"old cut");
    scratch.write(&format!("checkpoints-remote/resharded/observations-all/{checkpoint}"), b"old cut");
    // This cut's own checkpoints, and another source's, are no reason to refuse.
    scratch.write(&format!("checkpoints/resharded/observations-shard-0-of-1/{checkpoint}"), b"this cut");
    scratch.write(&format!("checkpoints/resharded/other-shard-0-of-2/{checkpoint}"), b"another source");
    let out = sda_testkit::sda_command!(scratch.path()).args(["run", "pipeline.toml", "--quiet"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.code().is_some_and(|c| c != 0), "{stderr}");
    assert!(stderr.contains("source `observations` runs in 1 shard(s) now, but checkpoints of another cut of it exist"), "{stderr}");
    assert!(stderr.contains("observations-shard-3-of-4") && stderr.contains("resharded/observations-all"), "both tiers named: {stderr}");
    assert!(!stderr.contains("observations-shard-0-of-1") && !stderr.contains("other-shard"), "{stderr}");
    assert!(!stderr.contains("cannot reach"), "refused before the broker is asked: {stderr}");
    let out = sda_testkit::sda_command!(scratch.path()).args(["run", "pipeline.toml", "--quiet", "--allow-fresh-start"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot reach"), "with --allow-fresh-start the run goes on, to the (closed) broker: {stderr}");
}
