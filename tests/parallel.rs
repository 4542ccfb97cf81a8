//! `parallelism = N` with real processes: the correlator as 1, 2 and 4 instances gives byte-identical alerts that match the reference, a SIGKILL under one N recovers under another, and what cannot run sharded is refused by name.
//!
//! The scenarios come from `sda-scenario` (windowed, and a sparse catalogue cadence for catalogue
//! mode); the pipeline is the binary, with the correlator and classifier plugins built by the
//! testkit. The comparison with the reference follows `tests/scenarios.rs`: pairs with a candidate
//! within a metre of a threshold may go either way, so they are left out of it.

use sda_scenario::{GenerateOptions, ReferenceOutput, SparseCadence};
use sda_testkit::{Scratch, plugins};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

/// Tolerance of the accuracy clause, km.
const METRE_KM: f64 = 1e-3;

/// A generated scenario in its own folder, run by a pipeline whose correlator has a `parallelism`.
struct Setup {
    scratch: Scratch,
    options: GenerateOptions,
    reference: ReferenceOutput,
}

impl Setup {
    fn new(options: GenerateOptions) -> Setup {
        let scratch = Scratch::new();
        let files = sda_scenario::write_scenario(&scratch.join("obs.jsonl"), &options, &|_, _| {}).expect("generating a scenario");
        Setup { scratch, options, reference: files.reference }
    }

    fn configure(&self, parallelism: u32) {
        let (c, k) = (&self.options.correlator, &self.options.classifier);
        let correlator_config = format!(
            "{{ window_ms = {}, allowed_lateness_ms = {}, screening_km = {:?}, state_horizon_ms = {} }}",
            c.window_ms, c.allowed_lateness_ms, c.screening_km, c.state_horizon_ms
        );
        let classifier_config = format!("{{ red_km = {:?}, yellow_km = {:?}, suppress_ms = {} }}", k.red_km, k.yellow_km, k.suppress_ms);
        let toml =
            sda_testkit::scenario_pipeline("parallel", &format!("parallelism = {parallelism}"), &correlator_config, &classifier_config)
                .set("runtime", "batch_size", 64)
                .set("checkpoint", "interval_ms", 0);
        self.scratch.write("pipeline.toml", toml.to_string());
    }

    fn run(&self, failpoint: Option<&str>) -> Output {
        sda_testkit::run_command!(self.scratch.path(), failpoint).output().expect("running sda-pipeline")
    }

    /// Runs to the end, which must succeed; its summary.
    fn finish(&self) -> String {
        let out = self.run(None);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        stdout
    }

    /// A fresh run (no outputs, no checkpoints) with `parallelism`: `(alerts, candidates)` bytes.
    fn fresh_run(&self, parallelism: u32) -> (Vec<u8>, Vec<u8>) {
        for dir in ["out", "checkpoints", "checkpoints-remote"] {
            let _ = std::fs::remove_dir_all(self.scratch.join(dir));
        }
        self.configure(parallelism);
        let stdout = self.finish();
        if parallelism > 1 {
            assert!(stdout.contains(&format!("operator `correlator`: {parallelism} instances")), "{stdout}");
        }
        self.outputs()
    }

    fn outputs(&self) -> (Vec<u8>, Vec<u8>) {
        (std::fs::read(self.scratch.join("out/alerts.jsonl")).unwrap(), std::fs::read(self.scratch.join("out/candidates.jsonl")).unwrap())
    }

    /// The alert ids in the file, in order, checked for the reference's (borderline pairs aside).
    fn assert_alerts_match_the_reference(&self) {
        let (c, k) = (&self.options.correlator, &self.options.classifier);
        let thresholds = [c.screening_km, k.red_km, k.yellow_km];
        let candidates = self.scratch.read_jsonl("out/candidates.jsonl");
        let pair = |v: &Value| (v["primary_id"].as_u64().unwrap() as u32, v["secondary_id"].as_u64().unwrap() as u32);
        let borderline: BTreeSet<(u32, u32)> = self
            .reference
            .candidates
            .iter()
            .map(|c| ((c.primary_id, c.secondary_id), c.miss_distance_km))
            .chain(candidates.iter().map(|v| (pair(v), v["miss_distance_km"].as_f64().unwrap())))
            .filter(|(_, miss)| thresholds.iter().any(|t| (miss - t).abs() <= METRE_KM))
            .map(|(p, _)| p)
            .collect();
        let expected: Vec<&str> = self
            .reference
            .alerts
            .iter()
            .filter(|a| !borderline.contains(&(a.primary_id, a.secondary_id)))
            .map(|a| a.alert_id.as_str())
            .collect();
        let alerts = self.scratch.read_jsonl("out/alerts.jsonl");
        let got: Vec<&str> = alerts.iter().filter(|a| !borderline.contains(&pair(a))).map(|a| a["alert_id"].as_str().unwrap()).collect();
        assert!(!expected.is_empty(), "the scenario raises alerts");
        assert_eq!(got, expected, "alerts differ from the reference's");
    }
}

fn windowed() -> GenerateOptions {
    GenerateOptions { objects: 80, minutes: 20, seed: 41, ..GenerateOptions::default() }
}

/// A catalogue: each object seen every 5 to 20 minutes, its state carried for 20 minutes, so every
/// window screens most of the catalogue.
fn catalogue() -> GenerateOptions {
    let mut o = GenerateOptions { objects: 90, minutes: 60, seed: 42, ..GenerateOptions::default() };
    o.sparse_cadence = Some(SparseCadence { mean_gap_ms: 600_000, min_gap_ms: 300_000, max_gap_ms: 1_200_000, ..SparseCadence::default() });
    o.correlator.state_horizon_ms = 1_200_000;
    o
}

fn assert_same_bytes_for_1_2_and_4_instances(setup: &Setup) {
    let one = setup.fresh_run(1);
    assert!(!one.0.is_empty(), "the scenario raises alerts");
    setup.assert_alerts_match_the_reference();
    for parallelism in [2, 4] {
        let many = setup.fresh_run(parallelism);
        assert!(many.1 == one.1, "the candidates of {parallelism} instances differ from one instance's");
        assert!(many.0 == one.0, "the alerts of {parallelism} instances differ from one instance's");
    }
}

#[test]
fn windowed_alerts_are_byte_identical_for_1_2_and_4_instances_and_match_the_reference() {
    assert_same_bytes_for_1_2_and_4_instances(&Setup::new(windowed()));
}

#[test]
fn catalogue_mode_alerts_are_byte_identical_for_1_2_and_4_instances_and_match_the_reference() {
    let setup = Setup::new(catalogue());
    assert_same_bytes_for_1_2_and_4_instances(&setup);
}

/// SIGKILL at the `crash_at`-th batch under 2 instances, then a restart under `restart_with`.
fn crash_with_2_and_restart_with(setup: &Setup, restart_with: u32, golden: &(Vec<u8>, Vec<u8>)) {
    for dir in ["out", "checkpoints", "checkpoints-remote"] {
        let _ = std::fs::remove_dir_all(setup.scratch.join(dir));
    }
    setup.configure(2);
    let point = "mid-process:60";
    let out = setup.run(Some(point));
    sda_testkit::assert_killed_by_failpoint(&out, point);
    assert!(String::from_utf8_lossy(&out.stderr).contains("failpoint `mid-process` fired"), "{}", String::from_utf8_lossy(&out.stderr));
    // It died part-way: some alerts out, not all, and checkpoints (one per batch) behind it.
    let partial = std::fs::read(setup.scratch.join("out/alerts.jsonl")).unwrap_or_default();
    assert!(
        !partial.is_empty() && partial.len() < golden.0.len(),
        "the crash is mid-run: {} of {} bytes of alerts",
        partial.len(),
        golden.0.len()
    );
    assert!(golden.0.starts_with(&partial), "what was delivered before the crash is the start of the uncrashed run's alerts");

    setup.configure(restart_with);
    let stdout = setup.finish();
    assert!(stdout.contains("resumed from checkpoint"), "{stdout}");
    let ids: Vec<String> =
        setup.scratch.read_jsonl("out/alerts.jsonl").iter().map(|a| a["alert_id"].as_str().unwrap().to_string()).collect();
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), ids.len(), "no alert twice");
    let (alerts, candidates) = setup.outputs();
    assert!(alerts == golden.0, "restarted with {restart_with} instances, the alerts differ from the uncrashed run's");
    assert!(candidates == golden.1, "restarted with {restart_with} instances, the candidates differ from the uncrashed run's");
}

#[test]
fn a_sigkill_under_2_instances_recovers_under_1_and_under_4_with_nothing_lost_or_repeated() {
    let setup = Setup::new(windowed());
    let golden = setup.fresh_run(1);
    crash_with_2_and_restart_with(&setup, 1, &golden);
    crash_with_2_and_restart_with(&setup, 4, &golden);
}

/// `sda-pipeline validate` on a pipeline of its own: `(exit code, stderr)`.
fn validate(scratch: &Scratch, toml: &str) -> (Option<i32>, String) {
    scratch.write("pipeline.toml", toml);
    scratch.write("obs.jsonl", "");
    let out = Command::new(env!("CARGO_BIN_EXE_sda-pipeline"))
        .current_dir(scratch.path())
        .args(["validate", "pipeline.toml"])
        .env("SDA_CACHE_DIR", Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache"))
        .output()
        .unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn two_operators(first: (&str, &str), second: (&str, &str)) -> String {
    format!(
        r#"version = 1
name = "refusals"
[sources.observations]
type = "file"
path = "obs.jsonl"
[operators.first]
plugin = {:?}
inputs = ["observations"]
{}
[operators.second]
plugin = {:?}
inputs = ["first"]
{}
[sinks.out]
type = "file"
inputs = ["second"]
path = "out.jsonl"
"#,
        first.0, first.1, second.0, second.1
    )
}

#[test]
fn parallelism_out_of_range_is_reported_for_every_operator_with_its_place() {
    let s = Scratch::new();
    let (code, stderr) = validate(&s, &two_operators((plugins::CORRELATOR, "parallelism = 0"), (plugins::CORRELATOR, "parallelism = 65")));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("operator `first`: `parallelism` must be between 1 and 64, not 0"), "{stderr}");
    assert!(stderr.contains("operator `second`: `parallelism` must be between 1 and 64, not 65"), "{stderr}");
    assert!(stderr.contains("pipeline.toml:9:15") && stderr.contains("pipeline.toml:13:15"), "each at its line and column: {stderr}");
    assert!(stderr.contains("has 2 problems"), "{stderr}");
}

#[test]
fn parallelism_on_a_wit_0_1_0_plugin_is_refused_by_validate_naming_the_plugin_and_its_version() {
    let s = Scratch::new();
    let (code, stderr) = validate(&s, &two_operators((plugins::WIT_V0_1, "parallelism = 2"), (plugins::WIT_V0_1, "")));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("operator `first`: `parallelism = 2` needs a plugin built against WIT `sda:operator@0.2.0` or later"),
        "{stderr}"
    );
    assert!(stderr.contains("wit_v0_1.wasm") && stderr.contains("is built against `sda:operator@0.1.0`"), "{stderr}");
    assert!(stderr.contains("pipeline.toml:9:15"), "{stderr}");
    // The same plugin as one instance runs, as the second operator does here.
    let (code, stderr) = validate(&s, &two_operators((plugins::WIT_V0_1, ""), (plugins::WIT_V0_1, "")));
    assert_eq!(code, Some(0), "{stderr}");
}

/// `sda-pipeline run pipeline.toml [extra]` in `scratch`.
fn run_in(scratch: &Scratch, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sda-pipeline"))
        .current_dir(scratch.path())
        .args(["run", "pipeline.toml"])
        .args(extra)
        .env("SDA_CACHE_DIR", Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache"))
        .output()
        .unwrap()
}

#[test]
fn parallelism_on_a_keyed_plugin_is_refused_at_start_and_says_keyed_partitioning_is_not_implemented() {
    let s = Scratch::new();
    let toml = two_operators((plugins::PASSTHROUGH, ""), (plugins::CLASSIFIER, "parallelism = 2"));
    // `validate` reads files, not what a plugin says of itself: that takes an instance.
    assert_eq!(validate(&s, &toml).0, Some(0));
    let out = run_in(&s, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("operator `second`: `parallelism = 2` needs an all-records operator"), "{stderr}");
    assert!(
        stderr.contains("classifier.wasm") && stderr.contains("describes itself as keyed") && stderr.contains("not implemented"),
        "{stderr}"
    );
    assert!(!s.join("out.jsonl").exists() || std::fs::read(s.join("out.jsonl")).unwrap().is_empty(), "nothing ran");
}

#[test]
fn shards_whose_states_differ_stop_the_task_as_a_plugin_that_is_not_deterministic() {
    // The faulty plugin's `shard-state` mode keeps its shard in its state: the two instances saw the
    // same records but hold different states, which the end-of-input checkpoint finds.
    let s = Scratch::new();
    let toml = two_operators((plugins::FAULTY, "parallelism = 2\nconfig = { mode = \"shard-state\" }"), (plugins::PASSTHROUGH, ""));
    s.write("pipeline.toml", &toml);
    s.write("obs.jsonl", (0..10).map(|i| format!("{{\"n\":{i}}}\n")).collect::<String>());
    let out = run_in(&s, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    for needed in ["`first`", "the plugin is not deterministic: shard 1 of 2 holds another state than shard 0", "`parallelism = 1`"] {
        assert!(stderr.contains(needed), "the error says {needed}: {stderr}");
    }
    let dead_letters = s.join("dlq.jsonl");
    assert!(!dead_letters.exists() || std::fs::read(&dead_letters).unwrap().is_empty(), "no record is to blame");

    // The same plugin in a deterministic mode runs as two instances without complaint.
    s.write("pipeline.toml", toml.replace("shard-state", "reject"));
    let _ = std::fs::remove_dir_all(s.join("checkpoints"));
    let out = run_in(&s, &["--allow-fresh-start"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}
