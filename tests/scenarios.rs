//! The real pipeline (correlator and classifier as wasm plugins, run by the binary) against the
//! independent brute-force reference of `sda-scenario`, on freshly generated scenarios.
//!
//! Comparison follows the accuracy clause of `plugins/SEMANTICS.md`: miss distances within 1 m;
//! a time of closest approach anywhere the distance is within 1 m of the minimum; pairs with any
//! candidate within 1 m of a threshold (screening, RED or YELLOW) may go either way, so they are
//! left out of the strict comparison (and so is what suppression does with them).

use sda_scenario::generate::{KmRange, OrbitMix};
use sda_scenario::{Candidate, ClassifierConfig, CorrelatorConfig, GenerateOptions, ReferenceOutput, ScenarioFiles, SparseCadence};
use sda_testkit::Scratch;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

/// Tolerance of the accuracy clause, km.
const METRE_KM: f64 = 1e-3;

fn generate(scratch: &Scratch, options: &GenerateOptions) -> ScenarioFiles {
    sda_scenario::write_scenario(&scratch.join("obs.jsonl"), options, &|_, _| {}).expect("generating a scenario")
}

/// Writes a pipeline: observations -> correlator -> classifier -> alerts, plus a
/// second sink with the correlator's candidates.
fn write_pipeline(s: &Scratch, batch_size: u32, correlator: &CorrelatorConfig, classifier: &ClassifierConfig) {
    let correlator_config = format!(
        "{{ window_ms = {}, allowed_lateness_ms = {}, screening_km = {}, state_horizon_ms = {}, max_ahead_ms = {}, ahead_confirmations = \
            {} }}",
        correlator.window_ms,
        correlator.allowed_lateness_ms,
        float(correlator.screening_km),
        correlator.state_horizon_ms,
        correlator.max_ahead_ms,
        correlator.ahead_confirmations
    );
    let classifier_config = format!(
        "{{ red_km = {}, yellow_km = {}, suppress_ms = {} }}",
        float(classifier.red_km),
        float(classifier.yellow_km),
        classifier.suppress_ms
    );
    let toml = sda_testkit::scenario_pipeline("scenario", "call_timeout_ms = 60000", &correlator_config, &classifier_config).set(
        "runtime",
        "batch_size",
        batch_size,
    );
    s.write("pipeline.toml", toml.to_string());
}

/// A TOML float literal (always with a point).
fn float(x: f64) -> String {
    let text = x.to_string();
    if text.contains('.') || text.contains('e') { text } else { format!("{text}.0") }
}

fn run_pipeline(dir: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_sda-pipeline"))
        .current_dir(dir)
        .args(["run", "pipeline.toml"])
        .env("SDA_CACHE_DIR", Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache"))
        .output()
        .expect("running sda-pipeline");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

/// Pairs whose fate is not decided by the contract: some candidate within a metre of a threshold.
fn borderline_pairs(
    candidates: impl Iterator<Item = (u32, u32, f64)>,
    correlator: &CorrelatorConfig,
    classifier: &ClassifierConfig,
) -> BTreeSet<(u32, u32)> {
    let thresholds = [correlator.screening_km, classifier.red_km, classifier.yellow_km];
    candidates.filter(|(_, _, miss)| thresholds.iter().any(|t| (miss - t).abs() <= METRE_KM)).map(|(p, s, _)| (p, s)).collect()
}

fn field_f64(v: &Value, name: &str) -> f64 {
    v[name].as_f64().unwrap_or_else(|| panic!("`{name}` in {v}"))
}

fn field_i64(v: &Value, name: &str) -> i64 {
    v[name].as_i64().unwrap_or_else(|| panic!("`{name}` in {v}"))
}

/// The TCA tolerance of the contract: how far from the true TCA the distance
/// stays within a metre of the minimum (a flat minimum allows a wide margin).
fn tca_tolerance_ms(miss_km: f64, relative_speed_km_s: f64) -> f64 {
    let flat = (2.0 * miss_km.max(METRE_KM) * METRE_KM).sqrt() / relative_speed_km_s.max(1e-9) * 1000.0;
    flat.max(0.0) + 1.0
}

/// Checks one produced record against its expected twin.
fn assert_same_encounter(what: &str, expected: (f64, i64, f64), got: &Value) {
    let (miss, tca_ms, speed) = expected;
    let got_miss = field_f64(got, "miss_distance_km");
    assert!((got_miss - miss).abs() <= METRE_KM, "{what}: miss {got_miss} km, expected {miss} km: {got}");
    let tolerance = tca_tolerance_ms(miss, speed);
    let got_tca = field_i64(got, "tca_ms");
    assert!(((got_tca - tca_ms) as f64).abs() <= tolerance, "{what}: tca {got_tca}, expected {tca_ms} (± {tolerance:.0} ms): {got}");
    let got_speed = field_f64(got, "relative_speed_km_s");
    let speed_tolerance = METRE_KM + 0.02 * tolerance / 1000.0;
    assert!((got_speed - speed).abs() <= speed_tolerance, "{what}: speed {got_speed}, expected {speed}: {got}");
}

/// Runs the pipeline on `options`' scenario and checks it against the reference.
fn check_against_reference(options: &GenerateOptions) -> ReferenceOutput {
    let s = Scratch::new();
    let files = generate(&s, options);
    write_pipeline(&s, 512, &options.correlator, &options.classifier);
    let stdout = run_pipeline(s.path());
    let reference = files.reference;
    let got_candidates = s.read_jsonl("out/candidates.jsonl");
    let got_alerts = s.read_jsonl("out/alerts.jsonl");

    let pair_of = |v: &Value| (field_i64(v, "primary_id") as u32, field_i64(v, "secondary_id") as u32);
    let skip = borderline_pairs(
        reference
            .candidates
            .iter()
            .map(|c| (c.primary_id, c.secondary_id, c.miss_distance_km))
            .chain(got_candidates.iter().map(|v| (pair_of(v).0, pair_of(v).1, field_f64(v, "miss_distance_km")))),
        &options.correlator,
        &options.classifier,
    );

    // Candidates: same keys in the same order, each within tolerance.
    let key = |c: &Candidate| (c.primary_id, c.secondary_id, c.window_start_ms);
    let expected: Vec<&Candidate> = reference.candidates.iter().filter(|c| !skip.contains(&(c.primary_id, c.secondary_id))).collect();
    let got: Vec<&Value> = got_candidates.iter().filter(|v| !skip.contains(&pair_of(v))).collect();
    let expected_keys: Vec<_> = expected.iter().map(|c| key(c)).collect();
    let got_keys: Vec<_> = got.iter().map(|v| (pair_of(v).0, pair_of(v).1, field_i64(v, "window_start_ms"))).collect();
    assert_eq!(got_keys, expected_keys, "candidate sets differ (seed {})", options.seed);
    for (e, g) in expected.iter().zip(&got) {
        assert_same_encounter(&format!("candidate {:?}", key(e)), (e.miss_distance_km, e.tca_ms, e.relative_speed_km_s), g);
        assert_eq!(g["primary_observation_id"], e.primary_observation_id.as_str());
        assert_eq!(g["secondary_observation_id"], e.secondary_observation_id.as_str());
    }

    // Alerts: same ids in the same order, same severities, within tolerance.
    let expected: Vec<_> = reference.alerts.iter().filter(|a| !skip.contains(&(a.primary_id, a.secondary_id))).collect();
    let got: Vec<&Value> = got_alerts.iter().filter(|v| !skip.contains(&pair_of(v))).collect();
    let expected_ids: Vec<&str> = expected.iter().map(|a| a.alert_id.as_str()).collect();
    let got_ids: Vec<&str> = got.iter().map(|v| v["alert_id"].as_str().unwrap()).collect();
    assert_eq!(got_ids, expected_ids, "alert sets differ (seed {})", options.seed);
    for (e, g) in expected.iter().zip(&got) {
        assert_eq!(g["severity"], serde_json::to_value(e.severity).unwrap(), "{g}");
        assert_eq!(field_i64(g, "window_start_ms"), e.window_start_ms);
        assert_same_encounter(&format!("alert {}", e.alert_id), (e.miss_distance_km, e.tca_ms, e.relative_speed_km_s), g);
    }

    // Every rejected line is dead-lettered with the reference's kind; every discard is counted.
    let dlq = s.read_jsonl("out/dlq.jsonl");
    let kinds = |kind: &str| dlq.iter().filter(|e| e["error_kind"] == kind).count();
    let c = &reference.counts;
    assert_eq!(kinds("Deserialization"), c.invalid_deserialization, "seed {}", options.seed);
    assert_eq!(kinds("Validation"), c.invalid_validation, "seed {}", options.seed);
    assert_eq!(dlq.len(), c.invalid_deserialization + c.invalid_validation);
    let counted = |label: &str, n: usize| {
        if n > 0 {
            assert!(stdout.contains(&format!("{label} {n}\n")), "expected `{label} {n}` in:\n{stdout}");
        }
    };
    counted("correlator: late", c.late);
    counted("correlator: duplicate", c.duplicates);
    if skip.is_empty() {
        counted("classifier: suppressed", c.suppressed);
    }
    reference
}

fn options(seed: u64, objects: usize, minutes: u32) -> GenerateOptions {
    GenerateOptions { seed, objects, minutes, ..GenerateOptions::default() }
}

#[test]
fn matches_the_reference_on_a_default_scenario() {
    let reference = check_against_reference(&options(11, 150, 20));
    assert!(reference.counts.red > 0 && reference.counts.yellow > 0, "{:?}", reference.counts);
    assert!(reference.counts.suppressed > 0 && reference.counts.late > 0 && reference.counts.duplicates > 0);
}

#[test]
fn matches_the_reference_in_meo_geo_and_eccentric_orbits() {
    let mut o = options(12, 150, 20);
    o.orbit_mix = OrbitMix { leo: 0.1, meo: 0.4, geo: 0.3, heo: 0.2 };
    check_against_reference(&o);
}

#[test]
fn matches_the_reference_when_minima_fall_on_window_edges() {
    let mut o = options(13, 80, 15);
    o.conjunctions = 14;
    o.edge_tca_fraction = 1.0;
    let reference = check_against_reference(&o);
    let window = o.correlator.window_ms;
    let on_edge = reference.candidates.iter().filter(|c| c.tca_ms % window == 0).count();
    assert!(on_edge >= 4, "the scenario must have minima on window edges: {on_edge}");
}

#[test]
fn matches_the_reference_with_heavy_disorder_and_bad_data() {
    let mut o = options(14, 100, 15);
    o.out_of_order_pct = 10.0;
    o.late_pct = 3.0;
    o.duplicate_pct = 5.0;
    o.malformed_pct = 3.0;
    check_against_reference(&o);
}

#[test]
fn matches_the_reference_with_other_windows_and_thresholds() {
    let mut o = options(15, 100, 15);
    o.correlator = CorrelatorConfig {
        window_ms: 30_000,
        allowed_lateness_ms: 4_000,
        screening_km: 8.0,
        state_horizon_ms: 0,
        ..CorrelatorConfig::default()
    };
    o.classifier = ClassifierConfig { red_km: 2.0, yellow_km: 6.0, suppress_ms: 120_000 };
    o.conjunction_miss_km = KmRange { min_km: 0.1, max_km: 7.5 };
    check_against_reference(&o);
}

/// A catalogue's cadence: each object seen every few minutes, its state carried for `horizon_ms`.
fn sparse(seed: u64, objects: usize, minutes: u32, horizon_ms: i64) -> GenerateOptions {
    let mut o = options(seed, objects, minutes);
    o.sparse_cadence = Some(SparseCadence { mean_gap_ms: 240_000, min_gap_ms: 60_000, max_gap_ms: 600_000, sensors_per_object: 3 });
    o.correlator.state_horizon_ms = horizon_ms;
    o
}

#[test]
fn matches_the_reference_in_catalogue_mode() {
    // Most objects have no observation in a given window: carried states make the alerts.
    let reference = check_against_reference(&sparse(31, 200, 30, 600_000));
    assert!(reference.counts.red > 0 && reference.counts.yellow > 0, "{:?}", reference.counts);
}

#[test]
fn matches_the_reference_in_catalogue_mode_when_states_expire() {
    // A horizon shorter than the longest gap: objects drop out of the catalogue and come back.
    check_against_reference(&sparse(32, 150, 40, 300_000));
}

#[test]
fn catalogue_mode_finds_what_the_windowed_mode_misses_on_a_sparse_feed() {
    let windowed = check_against_reference(&sparse(33, 200, 30, 0));
    let catalogue = check_against_reference(&sparse(33, 200, 30, 1_200_000));
    assert!(
        catalogue.candidates.len() > 3 * windowed.candidates.len().max(1),
        "carrying states must find far more: {} candidates against {}",
        catalogue.candidates.len(),
        windowed.candidates.len()
    );
}

proptest::proptest! {
    // 8 scenarios per run keeps the suite quick; PROPTEST_CASES=200 digs deeper.
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(8),
        ..Default::default()
    })]

    /// Any scenario the generator can make: the pipeline agrees with the reference.
    #[test]
    fn matches_the_reference_on_random_scenarios(
        seed in 0u64..1_000_000,
        objects in 30usize..70,
        minutes in 4u32..10,
        mix in (0.0f64..1.0, 0.0f64..1.0, 0.0f64..1.0, 0.0f64..1.0),
        disorder in (0.0f64..8.0, 0.0f64..3.0, 0.0f64..4.0, 0.0f64..3.0),
        window_s in 20i64..90,
        lateness_s in 0i64..15,
        edge_fraction in 0.0f64..1.0,
    ) {
        let mut o = options(seed, objects, minutes);
        o.orbit_mix = OrbitMix { leo: mix.0 + 0.05, meo: mix.1, geo: mix.2, heo: mix.3 };
        (o.out_of_order_pct, o.late_pct, o.duplicate_pct, o.malformed_pct) = disorder;
        o.correlator.window_ms = window_s * 1000;
        o.correlator.allowed_lateness_ms = lateness_s * 1000;
        o.edge_tca_fraction = edge_fraction;
        check_against_reference(&o);
    }
}

#[test]
fn output_does_not_depend_on_batch_size() {
    let s = Scratch::new();
    let o = options(21, 60, 10);
    generate(&s, &o);
    let mut runs = Vec::new();
    for batch_size in [1, 7, 512, 100_000] {
        write_pipeline(&s, batch_size, &o.correlator, &o.classifier);
        // A fresh run each time: outputs and checkpoints (which would resume at the end of input) go.
        for dir in ["out", "checkpoints", "checkpoints-remote"] {
            let _ = std::fs::remove_dir_all(s.join(dir));
        }
        run_pipeline(s.path());
        let dlq: Vec<Value> = s
            .read_jsonl("out/dlq.jsonl")
            .into_iter()
            .map(|mut e| {
                e.as_object_mut().unwrap().remove("failed_at");
                e
            })
            .collect();
        runs.push((std::fs::read(s.join("out/alerts.jsonl")).unwrap(), std::fs::read(s.join("out/candidates.jsonl")).unwrap(), dlq));
    }
    assert!(!runs[0].0.is_empty());
    for run in &runs[1..] {
        assert!(run == &runs[0], "outputs differ between batch sizes");
    }
}
