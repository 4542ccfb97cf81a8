//! Crash safety with real processes, real SIGKILL and real files: the final alerts and dead letters equal an uncrashed run's.
//!
//! Deterministic crashes use the host's fail points (`SDA_FAILPOINT=name:count`,
//! compiled into debug builds): the process kills itself with SIGKILL at the
//! named place. The torture test kills from outside at random moments; its seed
//! and kill times are printed so a failure can be replayed.

use sda_scenario::GenerateOptions;
use sda_testkit::pipeline::quoted;
use sda_testkit::{PipelineToml, Scratch, plugins};
use serde_json::Value;
use std::collections::BTreeSet;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A generated scenario in its own folder, with a pipeline file to run it.
struct Setup {
    scratch: Scratch,
}

struct Config<'a> {
    guarantee: &'a str,
    interval_ms: u64,
    batch_size: u32,
}

impl Default for Config<'_> {
    fn default() -> Self {
        Config { guarantee: "exactly-once", interval_ms: 100, batch_size: 64 }
    }
}

impl Setup {
    fn new(objects: usize, minutes: u32, seed: u64) -> Setup {
        let scratch = Scratch::new();
        let options = GenerateOptions { objects, minutes, seed, ..GenerateOptions::default() };
        sda_scenario::write_scenario(&scratch.join("obs.jsonl"), &options, &|_, _| {}).expect("generating");
        Setup { scratch }
    }

    fn path(&self) -> &Path {
        self.scratch.path()
    }

    fn configure(&self, c: &Config<'_>) {
        let toml = PipelineToml::sample("crash-test")
            .top("guarantee", quoted(c.guarantee))
            .set("runtime", "batch_size", c.batch_size)
            .set("checkpoint", "dir", quoted("state/local"))
            .set("checkpoint", "remote", quoted("state/remote"))
            .set("checkpoint", "interval_ms", c.interval_ms);
        self.scratch.write("pipeline.toml", toml.to_string());
    }

    fn command(&self, failpoint: Option<&str>) -> Command {
        run_command(self.path(), failpoint)
    }

    fn run(&self, failpoint: Option<&str>) -> Output {
        self.command(failpoint).output().expect("running sda-pipeline")
    }

    /// Runs to the end, which must succeed.
    fn finish(&self) -> String {
        let out = self.run(None);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        stdout
    }

    /// Runs with a fail point, which must kill the process.
    fn crash_at(&self, failpoint: &str) {
        let out = self.run(Some(failpoint));
        sda_testkit::assert_killed_by_failpoint(&out, failpoint);
    }

    fn alert_ids(&self) -> Vec<String> {
        self.scratch.read_jsonl("out/alerts.jsonl").iter().map(|a| a["alert_id"].as_str().unwrap().to_string()).collect()
    }

    /// Dead letters without what differs between runs (when it failed, which checkpoint preceded it).
    fn dead_letters(&self) -> Vec<Value> {
        self.scratch
            .read_jsonl("out/dlq.jsonl")
            .into_iter()
            .map(|mut e| {
                let o = e.as_object_mut().unwrap();
                o.remove("failed_at");
                o.remove("checkpoint_seq");
                e
            })
            .collect()
    }
}

/// `sda-pipeline run pipeline.toml` in `dir`, with the fail point `failpoint` armed if any.
fn run_command(dir: &Path, failpoint: Option<&str>) -> Command {
    sda_testkit::run_command!(dir, failpoint)
}

/// The outputs of an uncrashed run of the same scenario and config.
fn golden(objects: usize, minutes: u32, seed: u64, config: &Config<'_>) -> (Vec<u8>, Vec<Value>) {
    let setup = Setup::new(objects, minutes, seed);
    setup.configure(config);
    setup.finish();
    (std::fs::read(setup.scratch.join("out/alerts.jsonl")).unwrap(), setup.dead_letters())
}

fn assert_exactly_once(setup: &Setup, golden: &(Vec<u8>, Vec<Value>)) {
    let alerts = std::fs::read(setup.scratch.join("out/alerts.jsonl")).unwrap();
    let ids = setup.alert_ids();
    let unique: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "duplicate alert ids");
    assert!(alerts == golden.0, "the alerts file differs from the uncrashed run's:\n{}", String::from_utf8_lossy(&alerts));
    assert_eq!(setup.dead_letters(), golden.1, "the dead letters differ from the uncrashed run's");
}

const OBJECTS: usize = 80;
const MINUTES: u32 = 20;
const SEED: u64 = 31;

/// The sequence numbers of the checkpoints in the local tier, oldest first.
fn local_sequences(setup: &Setup) -> Vec<u64> {
    let mut sequences: Vec<u64> = std::fs::read_dir(local_tier(setup))
        .map(|entries| entries.filter_map(|e| sda_host::checkpoint::format::sequence_of(e.ok()?.file_name().to_str()?)).collect())
        .unwrap_or_default();
    sequences.sort_unstable();
    sequences
}

/// The task's folder in the local tier.
fn local_tier(setup: &Setup) -> std::path::PathBuf {
    setup.scratch.join("state/local/crash-test/observations-0")
}

/// Crashes at `failpoint`, which must leave a checkpoint in `newest` as the newest one on disk; the
/// restart must restore exactly that one (not start fresh, which would also deliver the golden
/// output: the sinks re-read their files) and deliver what an uncrashed run delivers.
fn crash_and_recover(failpoint: &str, config: Config<'_>, newest: std::ops::RangeInclusive<u64>) {
    let golden = golden(OBJECTS, MINUTES, SEED, &config);
    assert!(!golden.0.is_empty());
    let setup = Setup::new(OBJECTS, MINUTES, SEED);
    setup.configure(&config);
    setup.crash_at(failpoint);
    let on_disk = *local_sequences(&setup).last().unwrap_or(&0);
    assert!(newest.contains(&on_disk), "{failpoint}: the crash landed after checkpoint {on_disk}, not in {newest:?}");
    let stdout = setup.finish();
    assert!(stdout.contains(&format!("resumed from checkpoint {on_disk} (local)")), "{failpoint}: {stdout}");
    assert_exactly_once(&setup, &golden);
}

#[test]
fn a_crash_inside_a_batch_loses_and_repeats_nothing() {
    // A checkpoint after every batch (of 64), written while the next batch runs: the crash in batch
    // 120 follows checkpoint 119, or 118 if 119 was still being written.
    crash_and_recover("mid-process:120", Config { interval_ms: 0, ..Config::default() }, 118..=119);
}

#[test]
fn a_crash_after_the_checkpoint_temp_file_is_written_loses_and_repeats_nothing() {
    // Checkpoint 3 was never renamed into place: the restart takes 2.
    crash_and_recover("checkpoint-before-rename:3", Config { interval_ms: 0, ..Config::default() }, 2..=2);
}

#[test]
fn a_crash_after_the_checkpoint_rename_loses_and_repeats_nothing() {
    crash_and_recover("checkpoint-before-dir-fsync:3", Config { interval_ms: 0, ..Config::default() }, 3..=3);
}

#[test]
fn a_crash_part_way_through_writing_alerts_loses_and_repeats_nothing() {
    // The crash cuts a line in half; recovery drops it and re-reads the rest. Checkpoints after every
    // batch: the fourth batch with alerts is written after as many checkpoints as batches before it.
    let config = Config { interval_ms: 0, ..Config::default() };
    let golden = golden(OBJECTS, MINUTES, SEED, &config);
    let setup = Setup::new(OBJECTS, MINUTES, SEED);
    setup.configure(&config);
    setup.crash_at("mid-emit:4");
    let newest = *local_sequences(&setup).last().expect("checkpoints before the fourth batch with alerts");
    let partial = std::fs::read(setup.scratch.join("out/alerts.jsonl")).unwrap();
    assert!(!partial.ends_with(b"\n"), "the crash cut a line in half");
    let stdout = setup.finish();
    assert!(stdout.contains(&format!("resumed from checkpoint {newest} (local)")), "{stdout}");
    assert_exactly_once(&setup, &golden);
}

#[test]
fn repeated_crashes_at_the_same_place_converge() {
    let config = Config::default();
    let golden = golden(OBJECTS, MINUTES, SEED, &config);
    let setup = Setup::new(OBJECTS, MINUTES, SEED);
    setup.configure(&config);
    for point in ["mid-process:40", "mid-emit:2", "mid-process:40", "mid-emit:1", "checkpoint-before-rename:1"] {
        setup.crash_at(point);
    }
    setup.finish();
    assert_exactly_once(&setup, &golden);
}

/// What each guarantee promises, under every crash point: exactly-once loses and repeats nothing,
/// at-least-once loses nothing, at-most-once repeats nothing. A sink write cut short with no
/// checkpoint since the start (everything before it is replayed) shows the difference: at-least-once
/// repeats alerts and at-most-once loses some.
#[test]
fn each_guarantee_shows_what_it_promises_under_every_crash_point() {
    let modes = ["exactly-once", "at-least-once", "at-most-once"];
    let golden_ids: Vec<String> = {
        let setup = Setup::new(OBJECTS, MINUTES, SEED);
        setup.configure(&Config { interval_ms: 600_000, ..Config::default() });
        setup.finish();
        setup.alert_ids()
    };
    let golden_set: BTreeSet<&String> = golden_ids.iter().collect();
    // (crash point, checkpoint interval): the checkpoint points need checkpoints to crash in.
    let points = [
        ("mid-emit:5", 600_000),
        ("mid-process:60", 600_000),
        ("mid-process:60", 0),
        ("checkpoint-before-rename:3", 0),
        ("checkpoint-before-dir-fsync:3", 0),
    ];
    for (point, interval_ms) in points {
        for mode in modes {
            let setup = Setup::new(OBJECTS, MINUTES, SEED);
            setup.configure(&Config { guarantee: mode, interval_ms, ..Config::default() });
            setup.crash_at(point);
            setup.finish();
            let ids = setup.alert_ids();
            let unique: BTreeSet<&String> = ids.iter().collect();
            let duplicates = ids.len() - unique.len();
            let lost = golden_set.difference(&unique).count();
            println!("{point} (interval {interval_ms} ms), {mode}: {duplicates} repeated, {lost} lost");
            assert!(unique.is_subset(&golden_set), "{mode} at {point}: alerts that the uncrashed run did not raise");
            match mode {
                "exactly-once" => assert_eq!((duplicates, lost), (0, 0), "{mode} at {point}"),
                "at-least-once" => assert_eq!(lost, 0, "{mode} at {point}: {duplicates} duplicates, {lost} lost"),
                "at-most-once" => assert_eq!(duplicates, 0, "{mode} at {point}: {duplicates} duplicates, {lost} lost"),
                _ => unreachable!(),
            }
            if point == "mid-emit:5" {
                match mode {
                    "at-least-once" => assert!(duplicates > 0, "{mode} at {point}: the replay repeats what was written"),
                    "at-most-once" => assert!(lost > 0, "{mode} at {point}: the batch in hand is lost"),
                    _ => {}
                }
            }
        }
    }
}

/// An operator may emit the same line many times (a counter, a passthrough of repeated input): under
/// exactly-once every copy is delivered, and a crash anywhere (inside a batch, part way through
/// writing the output, around a checkpoint) still delivers each copy exactly once: the replay skips
/// only as many copies as were delivered past the checkpoint.
#[test]
fn identical_outputs_are_all_delivered_and_a_crash_still_delivers_each_copy_once() {
    // 4,000 lines, each distinct line about 7 times, some copies side by side in a batch, some batches apart.
    let input: String = (0..4000).map(|i| format!("{{\"id\":\"r{}\",\"t\":{}}}\n", i % 7, i / 50)).collect();
    let pipeline = PipelineToml::new("copies")
        .top("guarantee", quoted("exactly-once"))
        .set("runtime", "batch_size", 64)
        .set("checkpoint", "dir", quoted("state"))
        .set("checkpoint", "interval_ms", 0)
        .set("sources.obs", "type", quoted("file"))
        .set("sources.obs", "path", quoted("in.jsonl"))
        .set("sources.obs", "key_field", quoted("id"))
        .set("sources.obs", "event_time_field", quoted("t"))
        .operator("pass", plugins::PASSTHROUGH, &["obs"])
        .file_sink("out", &["pass"], "out/out.jsonl")
        .file_dlq("out/dlq.jsonl")
        .to_string();
    let run = |scratch: &Scratch, failpoint: Option<&str>| run_command(scratch.path(), failpoint).output().expect("running sda-pipeline");
    let output_of = |scratch: &Scratch| std::fs::read_to_string(scratch.join("out/out.jsonl")).unwrap_or_default();
    for failpoint in
        [None, Some("mid-process:30"), Some("mid-emit:30"), Some("checkpoint-before-rename:30"), Some("checkpoint-before-dir-fsync:30")]
    {
        let scratch = Scratch::new();
        scratch.write("in.jsonl", &input);
        scratch.write("pipeline.toml", &pipeline);
        if let Some(point) = failpoint {
            let crashed = run(&scratch, Some(point));
            sda_testkit::assert_killed_by_failpoint(&crashed, point);
            let written = output_of(&scratch).lines().count();
            assert!(written > 64 && written < 4000, "{point}: the crash must land mid-run, after output was written ({written} lines)");
        }
        let out = run(&scratch, None);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{failpoint:?}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        if failpoint.is_some() {
            assert!(stdout.contains("resumed from checkpoint"), "{failpoint:?}: recovery must restore a checkpoint: {stdout}");
        }
        let output = output_of(&scratch);
        assert_eq!(output.lines().count(), 4000, "{failpoint:?}: every copy delivered, each once");
        assert!(output == input, "{failpoint:?}: the output is the input, line for line");
    }
}

fn newest_local(setup: &Setup) -> std::path::PathBuf {
    let newest = *local_sequences(setup).last().expect("a local checkpoint");
    local_tier(setup).join(sda_host::checkpoint::format::file_name(newest))
}

/// Crashes part-way, leaving several checkpoints in both tiers. With `interval_ms` above zero
/// whether any checkpoint precedes the crash depends on the machine's speed, so tests that need one
/// pass `interval_ms: 0` (a checkpoint after every batch).
fn crashed_with_checkpoints(config: &Config<'_>) -> Setup {
    let setup = Setup::new(OBJECTS, MINUTES, SEED);
    setup.configure(config);
    setup.crash_at("mid-process:150");
    if config.interval_ms == 0 {
        newest_local(&setup); // panics unless the crash left a local checkpoint
    }
    setup
}

/// A damaged newest local checkpoint is skipped for the remote copy of the same checkpoint; with the
/// remote tier gone too, for the next older local one.
#[test]
fn a_truncated_or_flipped_newest_checkpoint_falls_back_to_its_remote_copy_or_an_older_one() {
    let config = Config { interval_ms: 0, ..Config::default() };
    let golden = golden(OBJECTS, MINUTES, SEED, &config);
    for (damage, remote_too, expected) in [("truncate", false, "(remote)"), ("flip", true, "(local_older)")] {
        let setup = crashed_with_checkpoints(&config);
        let newest = newest_local(&setup);
        let mut bytes = std::fs::read(&newest).unwrap();
        if !remote_too {
            // The upload is in the background and may not have finished before the kill: make sure the
            // remote tier has this checkpoint.
            let remote = setup.scratch.join("state/remote/crash-test/observations-0");
            std::fs::create_dir_all(&remote).unwrap();
            std::fs::write(remote.join(newest.file_name().unwrap()), &bytes).unwrap();
        }
        match damage {
            "truncate" => bytes.truncate(bytes.len() / 2),
            _ => {
                let middle = bytes.len() / 2;
                bytes[middle] ^= 0x40;
            }
        }
        std::fs::write(&newest, bytes).unwrap();
        if remote_too {
            std::fs::remove_dir_all(setup.scratch.join("state/remote")).unwrap();
        }
        let stdout = setup.finish();
        let sequence = newest.file_name().and_then(|n| sda_host::checkpoint::format::sequence_of(n.to_str()?)).unwrap();
        let resumed = if remote_too { sequence - 1 } else { sequence };
        assert!(
            stdout.contains(&format!("resumed from checkpoint {resumed} {expected}; skipped 1 unusable checkpoint")),
            "{damage}: {stdout}"
        );
        assert_exactly_once(&setup, &golden);
    }
}

#[test]
fn with_the_local_tier_gone_it_recovers_from_the_remote_tier() {
    let config = Config { interval_ms: 0, ..Config::default() };
    let golden = golden(OBJECTS, MINUTES, SEED, &config);
    let setup = crashed_with_checkpoints(&config);
    std::fs::remove_dir_all(setup.scratch.join("state/local")).unwrap();
    let stdout = setup.finish();
    assert!(stdout.contains("(remote)"), "{stdout}");
    assert_exactly_once(&setup, &golden);
}

#[test]
fn with_every_checkpoint_gone_it_starts_fresh_and_still_delivers_nothing_twice() {
    let config = Config::default();
    let golden = golden(OBJECTS, MINUTES, SEED, &config);
    let setup = crashed_with_checkpoints(&config);
    std::fs::remove_dir_all(setup.scratch.join("state")).unwrap();
    let stdout = setup.finish();
    assert!(stdout.contains("started from the beginning of the input"), "{stdout}");
    // The sink re-read its whole file, so the replay from the start repeats nothing.
    assert_exactly_once(&setup, &golden);
}

#[test]
fn checkpoints_of_another_pipeline_shape_are_refused_unless_a_fresh_start_is_asked_for() {
    let setup = crashed_with_checkpoints(&Config { interval_ms: 0, ..Config::default() });
    // Rewire: a second sink changes the pipeline's fingerprint.
    let toml = std::fs::read_to_string(setup.scratch.join("pipeline.toml")).unwrap();
    setup
        .scratch
        .write("pipeline.toml", format!("{toml}[sinks.audit]\ntype = \"file\"\ninputs = [\"correlator\"]\npath = \"out/audit.jsonl\"\n"));
    let out = setup.run(None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("none can be restored, so it will not start from scratch on its own"), "{stderr}");
    assert!(stderr.contains("written for another shape of the pipeline"), "{stderr}");
    assert!(stderr.contains("--allow-fresh-start"), "{stderr}");
    let out = setup.command(None).arg("--allow-fresh-start").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("started from the beginning"));
}

#[test]
fn a_plugin_that_refuses_its_state_makes_recovery_skip_that_checkpoint() {
    let setup = crashed_with_checkpoints(&Config { interval_ms: 0, ..Config::default() });
    // The correlator refuses state cut into other windows.
    let toml = std::fs::read_to_string(setup.scratch.join("pipeline.toml")).unwrap();
    let toml = toml.replace("inputs = [\"observations\"]\n", "inputs = [\"observations\"]\nconfig = { window_ms = 30000 }\n");
    setup.scratch.write("pipeline.toml", toml);
    let out = setup.run(None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("operator `correlator` refused its state"), "{stderr}");
}

/// Thirty SIGKILLs at random moments, each proven to have landed where it counts: after the run took
/// a checkpoint of its own and with input left to read. Each restart must resume from the newest
/// checkpoint on disk (its sequence number is checked in its log), and the final alerts and dead
/// letters equal an uncrashed run's. The seed and the kill times are printed for replay.
#[test]
fn torture_thirty_random_kills_change_nothing() {
    let seed: u64 = std::env::var("SDA_TORTURE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64);
    println!("torture seed {seed} (replay with SDA_TORTURE_SEED={seed})");
    let (objects, minutes) = (400, 90);
    let config = Config { interval_ms: 100, batch_size: 256, ..Config::default() };
    let golden = golden(objects, minutes, 7, &config);

    let mut next = sda_testkit::xorshift(seed);
    let mut kills_per_round: Vec<Vec<u128>> = Vec::new();
    let counted = |rounds: &[Vec<u128>]| rounds.iter().map(Vec::len).sum::<usize>();
    while counted(&kills_per_round) < 30 {
        assert!(kills_per_round.len() < 10, "10 rounds did not reach 30 kills: {kills_per_round:?}");
        let setup = Setup::new(objects, minutes, 7);
        setup.configure(&config);
        let input_bytes = std::fs::metadata(setup.scratch.join("obs.jsonl")).unwrap().len();
        let observations = std::fs::read_to_string(setup.scratch.join("obs.jsonl")).unwrap().lines().count();
        assert!(observations >= 200_000, "a torture round runs over at least 200,000 observations, not {observations}");
        let mut kills = Vec::new();
        let mut spawns = 0;
        let mut finished_by_itself = false;
        while counted(&kills_per_round) + kills.len() < 30 {
            let before = local_sequences(&setup).last().copied();
            let log = setup.scratch.join(&format!("run-{spawns}.log"));
            spawns += 1;
            let mut child = setup
                .command(None)
                .env("SDA_LOG", "info")
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap();
            let started = Instant::now();
            // Wait for a checkpoint of this run's own, then a random while more.
            let mut status = None;
            while status.is_none() && local_sequences(&setup).last().copied() <= before {
                assert!(started.elapsed() < Duration::from_secs(120), "no checkpoint within 120 s of a start");
                std::thread::sleep(Duration::from_millis(2));
                status = child.try_wait().unwrap();
            }
            let extra = Duration::from_millis(next() % 150);
            let waited = Instant::now();
            while status.is_none() && waited.elapsed() < extra {
                std::thread::sleep(Duration::from_millis(2));
                status = child.try_wait().unwrap();
            }
            let restart_log = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(before) = before {
                // The restart climbed the ladder to the newest checkpoint on disk when it started.
                assert!(
                    restart_log.contains(&format!("recovered task=\"observations-0\" path=\"local\" sequence={before} ")),
                    "a restart did not resume from checkpoint {before}:\n{restart_log}"
                );
            }
            if let Some(status) = status {
                assert!(status.success(), "a run between kills failed: {status}\n{restart_log}");
                finished_by_itself = true;
                break;
            }
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            let checkpoint = std::fs::read(newest_local(&setup)).unwrap();
            let offset = sda_host::checkpoint::format::Checkpoint::decode(&checkpoint).unwrap().offset;
            if offset < input_bytes {
                kills.push(started.elapsed().as_millis());
            } else {
                println!("a kill after the whole input was read (not counted)");
            }
        }
        assert!(!(finished_by_itself && kills.is_empty()), "a whole run ends before its first kill: make the scenario longer");
        if !finished_by_itself {
            setup.finish();
        }
        println!(
            "round {}: killed {} times (each after a checkpoint, with input left), after (ms): {kills:?}",
            kills_per_round.len() + 1,
            kills.len()
        );
        assert_exactly_once(&setup, &golden);
        kills_per_round.push(kills);
    }
}

/// The remote tier for real: an S3 API server on loopback, the local tier
/// deleted after a crash, recovery from `s3://` (as another machine would).
#[test]
fn after_losing_the_local_tier_it_recovers_from_s3() {
    use sda_testkit::moto::{MotoServer, unique_bucket};
    let s3 = MotoServer::start();
    let bucket = unique_bucket("ckpt");
    s3.create_bucket(&bucket);
    let config = Config { interval_ms: 0, ..Config::default() };
    let golden = golden(OBJECTS, MINUTES, SEED, &config);
    let setup = Setup::new(OBJECTS, MINUTES, SEED);
    setup.configure(&config);
    let toml = std::fs::read_to_string(setup.scratch.join("pipeline.toml")).unwrap();
    setup.scratch.write("pipeline.toml", toml.replace("remote = \"state/remote\"", &format!("remote = \"s3://{bucket}/checkpoints\"")));
    let with_s3 = |failpoint: Option<&str>| {
        let mut cmd = setup.command(failpoint);
        cmd.envs(s3.env());
        cmd.output().unwrap()
    };
    let crashed = with_s3(Some("mid-process:150"));
    assert_eq!(crashed.status.signal(), Some(9), "{}", String::from_utf8_lossy(&crashed.stderr));

    let out = Command::new(env!("CARGO_BIN_EXE_sda-pipeline"))
        .current_dir(setup.path())
        .args(["checkpoint", "verify", &format!("s3://{bucket}/checkpoints")])
        .envs(s3.env())
        .output()
        .unwrap();
    let verified = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{verified}{}", String::from_utf8_lossy(&out.stderr));
    assert!(verified.contains("0 damaged") && !verified.starts_with("0 checkpoint"), "{verified}");

    std::fs::remove_dir_all(setup.scratch.join("state/local")).unwrap();
    let out = with_s3(None);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("(remote)"), "{stdout}");
    assert_exactly_once(&setup, &golden);
}
