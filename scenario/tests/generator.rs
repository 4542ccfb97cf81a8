//! The generator: reproducible, and everything it plants is found by the reference as intended.

use sda_scenario::generate::{GenerateOptions, KmRange, Progress, ScenarioSummary, SparseCadence, read_summary};
use sda_scenario::reference::{self, ReferenceOutput};
use sda_scenario::{
    Alert, Candidate, CorrelatorConfig, ScenarioError, Severity, check, generate, parse_observation, write_scenario, write_scenario_with,
};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;

fn small() -> GenerateOptions {
    GenerateOptions { objects: 60, minutes: 8, conjunctions: 6, formations: 2, ..GenerateOptions::default() }
}

fn expected(lines: &[String], options: &GenerateOptions) -> ReferenceOutput {
    reference::run(lines, &options.correlator, &options.classifier, &|_, _| {}).expect("valid configs")
}

fn summary_json(summary: &ScenarioSummary) -> String {
    serde_json::to_string(summary).unwrap()
}

#[test]
fn a_seed_gives_the_same_bytes_and_another_seed_other_bytes() {
    let options = small();
    let first = generate(&options).unwrap();
    let second = generate(&options).unwrap();
    assert_eq!(first.lines, second.lines);
    assert_eq!(summary_json(&first.summary), summary_json(&second.summary));
    let other = generate(&GenerateOptions { seed: options.seed + 1, ..options.clone() }).unwrap();
    assert_ne!(first.lines, other.lines);
    let differing = first.lines.iter().zip(&other.lines).filter(|(a, b)| a != b).count();
    assert!(differing > first.lines.len() / 2, "another seed is another scenario, not a small edit");
}

/// Pins the exact bytes of one small scenario. Generation is specified to be byte-identical on
/// every machine (ChaCha8, integer sampling, pure-Rust libm, fixed-decimal printing); if this
/// fails on a new platform that promise is broken. (The bytes also depend on the locked versions
/// of `rand_chacha` and `libm`: updating either may legitimately change them.) Update the digest only for a deliberate change
/// to the generator (and say so: every stored scenario changes with it).
#[test]
fn a_small_scenario_has_pinned_bytes() {
    let options =
        GenerateOptions { objects: 20, minutes: 3, conjunctions: 2, formations: 1, malformed_pct: 3.0, ..GenerateOptions::default() };
    let scenario = generate(&options).unwrap();
    let mut hasher = Sha256::new();
    for line in &scenario.lines {
        hasher.update(line.as_bytes());
        hasher.update(b"\n");
    }
    let digest = hex::encode(hasher.finalize());
    assert_eq!(
        digest,
        "11eba3236947cec3d60ccb85823e14d8f72ec9c8c9f4cfb12e70d45ba30988af",
        "{} lines; first: {}",
        scenario.lines.len(),
        scenario.lines[0]
    );
}

/// Epoch of each line that is a valid observation.
fn epochs(lines: &[String]) -> Vec<Option<i64>> {
    lines.iter().map(|line| parse_observation(line).ok().map(|o| o.epoch_ms)).collect()
}

fn check_fates(options: &GenerateOptions) {
    let scenario = generate(options).unwrap();
    let summary = &scenario.summary;
    // Only the correlator's bookkeeping matters here, not the geometry.
    let out = reference::correlate(&scenario.lines, &options.correlator);
    let label = format!("window {} ms, lateness {} ms", options.correlator.window_ms, options.correlator.allowed_lateness_ms);

    // Late records are exactly the ones built to be late; duplicates likewise.
    assert_eq!(out.late_lines, summary.late_lines, "{label}: late lines");
    assert_eq!(out.duplicate_lines, summary.duplicate_lines, "{label}: duplicate lines");
    // Every malformed line is rejected with its intended kind, and nothing else is rejected.
    let rejected: Vec<_> = out.invalid.iter().map(|i| (i.line, i.kind)).collect();
    let intended: Vec<_> = summary.malformed.iter().map(|m| (m.line, m.kind)).collect();
    assert_eq!(rejected, intended, "{label}: rejected lines");
    // Out-of-order records: really out of order, never late, never duplicates.
    let late: BTreeSet<usize> = out.late_lines.iter().copied().collect();
    let duplicates: BTreeSet<usize> = out.duplicate_lines.iter().copied().collect();
    let epochs = epochs(&scenario.lines);
    for &line in &summary.out_of_order_lines {
        assert!(!late.contains(&line) && !duplicates.contains(&line), "{label}: out-of-order line {line}");
        let newest_before = epochs[..line].iter().flatten().max().copied().unwrap_or(i64::MIN);
        assert!(epochs[line].unwrap() < newest_before, "{label}: line {line} is not out of order");
    }
    let counts = &summary.counts;
    assert_eq!(out.accepted, counts.observations - counts.late, "{label}: every other observation is accepted");
    assert_eq!(counts.lines, scenario.lines.len());
    assert_eq!(counts.observations + counts.duplicates + counts.malformed_deserialization + counts.malformed_validation, counts.lines);
}

#[test]
fn special_records_meet_their_fates() {
    let heavy = GenerateOptions { out_of_order_pct: 8.0, late_pct: 3.0, duplicate_pct: 4.0, malformed_pct: 3.0, ..small() };
    let scenario = generate(&heavy).unwrap();
    let counts = &scenario.summary.counts;
    assert!(counts.out_of_order > 150 && counts.late > 50 && counts.duplicates > 80, "{counts:?}");
    // Every malformed variant appears at least once.
    let defects: BTreeSet<&str> = scenario.summary.malformed.iter().map(|m| m.defect.as_str()).collect();
    assert_eq!(defects.len(), 32, "{defects:?}");
    check_fates(&heavy);
    for (window_ms, allowed_lateness_ms) in [(10_000, 3_000), (60_000, 0), (60_000, 1), (30_000, 45_000)] {
        let correlator = CorrelatorConfig { window_ms, allowed_lateness_ms, ..CorrelatorConfig::default() };
        check_fates(&GenerateOptions { correlator, ..heavy.clone() });
    }
}

fn window_of(t: i64, window_ms: i64) -> i64 {
    t.div_euclid(window_ms) * window_ms
}

/// Where a planted conjunction must show up.
fn find(candidates: &[Candidate], primary: u32, secondary: u32, window_start: i64) -> &Candidate {
    candidates
        .iter()
        .find(|c| c.primary_id == primary && c.secondary_id == secondary && c.window_start_ms == window_start)
        .unwrap_or_else(|| panic!("no candidate for {primary}|{secondary}|{window_start}"))
}

/// Observation positions are printed to 1 mm (6 decimals of km): rounding moves each object by at
/// most sqrt(3) * 0.5 mm = 0.87 mm, the pair's separation by at most 1.7 mm. The generator's truth
/// (closed-form Kepler) and the reference (RK4) agree to far below a micrometre over a window, and
/// second-order (tidal) terms move the planted minimum by far less. 1 cm leaves room to spare while
/// still catching any real error (a wrong TCA by 1 ms alone is several metres at these speeds).
const MISS_TOLERANCE_KM: f64 = 1e-5;

#[test]
fn planted_conjunctions_are_found_as_planted() {
    let options = GenerateOptions {
        objects: 100,
        minutes: 20,
        conjunctions: 20,
        formations: 0,
        edge_tca_fraction: 0.5,
        ..GenerateOptions::default()
    };
    let scenario = generate(&options).unwrap();
    let out = expected(&scenario.lines, &options);
    let window_ms = options.correlator.window_ms;
    let mut worst_km: f64 = 0.0;
    let (mut exact_edges, mut near_edges) = (0, 0);
    for planted in &scenario.summary.conjunctions {
        let (p, s, tca) = (planted.primary_id, planted.secondary_id, planted.tca_ms);
        let found = find(&out.candidates, p, s, window_of(tca, window_ms));
        let error = (found.miss_distance_km - planted.miss_km).abs();
        worst_km = worst_km.max(error);
        assert!(error < MISS_TOLERANCE_KM, "{p}|{s}: found {} km, planted {} km", found.miss_distance_km, planted.miss_km);
        assert!((found.tca_ms - tca).abs() <= 1, "{p}|{s}: TCA {} vs planted {tca}", found.tca_ms);
        assert!((found.relative_speed_km_s - planted.relative_speed_km_s).abs() < 1e-6);
        match planted.window_edge_offset_ms {
            // Exactly on a boundary: the window that ends there finds it at its end too.
            Some(0) => {
                exact_edges += 1;
                let before = find(&out.candidates, p, s, tca - window_ms);
                assert_eq!(before.tca_ms, tca);
                assert!((before.miss_distance_km - planted.miss_km).abs() < MISS_TOLERANCE_KM);
            }
            // Near a boundary: the other window's minimum is on the boundary, farther than the miss.
            Some(offset) => {
                near_edges += 1;
                let boundary = tca - offset;
                let other_window = if offset > 0 { boundary - window_ms } else { boundary };
                if let Some(other) =
                    out.candidates.iter().find(|c| c.primary_id == p && c.secondary_id == s && c.window_start_ms == other_window)
                {
                    assert_eq!(other.tca_ms, boundary);
                    assert!(other.miss_distance_km > planted.miss_km);
                }
            }
            None => {}
        }
    }
    assert!(exact_edges >= 1 && near_edges >= 1, "{exact_edges} exact and {near_edges} near-edge TCAs");
    eprintln!("worst planted-miss error: {:.3} mm", worst_km * 1e6);
}

#[test]
fn the_default_scenario_has_red_and_yellow_alerts_escalations_and_suppression() {
    let options = GenerateOptions::default();
    let scenario = generate(&options).unwrap();
    let out = expected(&scenario.lines, &options);
    let red = out.alerts.iter().filter(|a| a.severity == Severity::Red).count();
    let yellow = out.alerts.iter().filter(|a| a.severity == Severity::Yellow).count();
    assert!(red >= 1 && yellow >= 1, "{red} RED, {yellow} YELLOW");
    assert!(out.counts.suppressed > 0);
    // Formations: a candidate in every window, and the escalating ones escalate.
    let windows = i64::from(options.minutes) * 60_000 / options.correlator.window_ms;
    for formation in &scenario.summary.formations {
        let pair = |c: &Candidate| c.primary_id == formation.primary_id && c.secondary_id == formation.secondary_id;
        assert_eq!(out.candidates.iter().filter(|c| pair(c)).count() as i64, windows, "{formation:?}");
        if formation.escalating {
            let alerts: Vec<&Alert> =
                out.alerts.iter().filter(|a| a.primary_id == formation.primary_id && a.secondary_id == formation.secondary_id).collect();
            let escalated = alerts.windows(2).any(|w| {
                w[0].severity == Severity::Yellow
                    && w[1].severity == Severity::Red
                    && w[1].window_start_ms < w[0].window_start_ms + options.classifier.suppress_ms
            });
            assert!(escalated, "no YELLOW -> RED escalation for {formation:?}: {alerts:?}");
        }
    }
}

#[test]
fn write_scenario_writes_observations_and_expectations_side_by_side() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("nested/run.jsonl");
    let options = small();
    let files = write_scenario(&out, &options, &|_, _| {}).unwrap();
    assert_eq!(files.expected_alerts, dir.path().join("nested/run.expected-alerts.jsonl"));
    assert_eq!(files.expected_candidates, dir.path().join("nested/run.expected-candidates.jsonl"));
    assert_eq!(files.scenario, dir.path().join("nested/run.scenario.json"));

    let observations = std::fs::read_to_string(&out).unwrap();
    assert_eq!(observations.lines().collect::<Vec<_>>(), generate(&options).unwrap().lines);
    // Compared as text: serde_json's default float parser may be 1 ulp off when reading back.
    let alert_lines: Vec<String> = std::fs::read_to_string(&files.expected_alerts).unwrap().lines().map(String::from).collect();
    let expected_lines: Vec<String> = files.reference.alerts.iter().map(|a| serde_json::to_string(a).unwrap()).collect();
    assert_eq!(alert_lines, expected_lines);
    assert!(!alert_lines.is_empty());
    let first: Alert = serde_json::from_str(&alert_lines[0]).unwrap();
    assert_eq!(first.alert_id, files.reference.alerts[0].alert_id);
    let candidates = std::fs::read_to_string(&files.expected_candidates).unwrap();
    assert_eq!(candidates.lines().count(), files.reference.candidates.len());
    let document: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&files.scenario).unwrap()).unwrap();
    assert_eq!(document["summary"]["options"]["seed"], 1);
    assert_eq!(document["reference"]["alerts"], alert_lines.len());
}

#[test]
fn write_errors_name_the_path_at_fault() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, "").unwrap();
    let options = GenerateOptions { objects: 4, minutes: 2, conjunctions: 1, formations: 0, ..GenerateOptions::default() };
    let error = write_scenario(&blocker.join("run.jsonl"), &options, &|_, _| {}).unwrap_err();
    assert!(matches!(error, ScenarioError::CreateDir { .. }), "{error:?}");
    assert!(error.to_string().contains("not-a-dir"), "{error}");
    let error = write_scenario(std::path::Path::new("/"), &options, &|_, _| {}).unwrap_err();
    assert!(matches!(error, ScenarioError::NotAFilePath { .. }), "{error:?}");
}

#[test]
fn impossible_options_are_refused_with_the_reason() {
    let cases = [
        GenerateOptions { objects: 10, conjunctions: 4, formations: 2, ..GenerateOptions::default() },
        GenerateOptions { late_pct: 101.0, ..GenerateOptions::default() },
        GenerateOptions { conjunction_miss_km: KmRange { min_km: 3.0, max_km: 1.0 }, ..GenerateOptions::default() },
        GenerateOptions { cadence_ms: 0, ..GenerateOptions::default() },
        GenerateOptions { edge_tca_fraction: 1.5, ..GenerateOptions::default() },
    ];
    for options in cases {
        assert!(matches!(generate(&options), Err(ScenarioError::InvalidOptions(_))), "{options:?}");
    }
    let bad_config = GenerateOptions {
        correlator: CorrelatorConfig { screening_km: f64::NAN, ..CorrelatorConfig::default() },
        ..GenerateOptions::default()
    };
    assert!(matches!(generate(&bad_config), Err(ScenarioError::InvalidConfig(_))));
}

#[test]
fn options_round_trip_through_json_with_defaults_for_missing_keys() {
    let options: GenerateOptions = serde_json::from_str(r#"{"objects": 42, "correlator": {"window_ms": 30000}}"#).unwrap();
    assert_eq!(options.objects, 42);
    assert_eq!(options.correlator.window_ms, 30_000);
    assert_eq!(options.correlator.allowed_lateness_ms, 10_000);
    assert_eq!(options.minutes, GenerateOptions::default().minutes);
    assert!(serde_json::from_str::<GenerateOptions>(r#"{"object": 42}"#).is_err(), "unknown keys are refused");
}

// The sparse (catalogue) cadence, built as a stream.

fn sparse(objects: usize, minutes: u32, horizon_ms: i64) -> GenerateOptions {
    GenerateOptions {
        objects,
        minutes,
        conjunctions: 6,
        formations: 2,
        sparse_cadence: Some(SparseCadence::default()),
        correlator: CorrelatorConfig { state_horizon_ms: horizon_ms, ..CorrelatorConfig::default() },
        ..GenerateOptions::default()
    }
}

#[test]
fn a_sparse_scenario_is_reproducible_and_streams_the_bytes_it_generates() {
    let options = sparse(200, 60, 3_600_000);
    let first = generate(&options).unwrap();
    assert_eq!(first.lines, generate(&options).unwrap().lines);
    let other = generate(&GenerateOptions { seed: 2, ..options.clone() }).unwrap();
    assert_ne!(first.lines[..20], other.lines[..20]);
    // The same objects as the regular cadence with the same seed (the same streams draw them).
    let regular = generate(&GenerateOptions { sparse_cadence: None, ..options.clone() }).unwrap();
    assert_eq!(regular.summary.conjunctions, first.summary.conjunctions);
    assert_eq!(regular.summary.formations, first.summary.formations);

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sparse.jsonl");
    // A stale expected file from an earlier run with the reference must not survive.
    std::fs::write(dir.path().join("sparse.expected-alerts.jsonl"), "stale\n").unwrap();
    let steps = std::sync::Mutex::new(Vec::new());
    let written = write_scenario_with(&out, &options, false, &|step| steps.lock().unwrap().push(step)).unwrap();
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(text.lines().collect::<Vec<_>>(), first.lines);
    assert!(written.expected.is_none());
    assert!(!dir.path().join("sparse.expected-alerts.jsonl").exists());
    assert!(!dir.path().join("sparse.expected-candidates.jsonl").exists());
    let total_ms = 60 * 60_000;
    let steps = steps.into_inner().unwrap();
    assert_eq!(steps.first(), Some(&Progress::Generating { done_ms: 0, total_ms }));
    assert_eq!(steps.last(), Some(&Progress::Generating { done_ms: total_ms, total_ms }));
    assert!(steps.iter().all(|s| matches!(s, Progress::Generating { .. })), "no reference was run");

    // The summary records the options, and reads back.
    let document: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&written.scenario).unwrap()).unwrap();
    assert_eq!(document["summary"]["options"]["sparse_cadence"]["mean_gap_ms"], 1_500_000);
    assert_eq!(document["summary"]["options"]["correlator"]["state_horizon_ms"], 3_600_000);
    assert!(document.get("reference").is_none());
    // (serde_json may read a float back 1 ulp off, so the floats are not compared.)
    let summary = read_summary(&written.scenario).unwrap();
    assert_eq!((&summary.options, &summary.counts), (&first.summary.options, &first.summary.counts));
    assert_eq!((&summary.late_lines, &summary.duplicate_lines), (&first.summary.late_lines, &first.summary.duplicate_lines));
    let tcas = |s: &ScenarioSummary| s.conjunctions.iter().map(|c| (c.primary_id, c.secondary_id, c.tca_ms)).collect::<Vec<_>>();
    assert_eq!(tcas(&summary), tcas(&first.summary));
}

#[test]
fn a_regular_summary_has_no_sparse_or_horizon_keys() {
    let text = summary_json(&generate(&small()).unwrap().summary);
    assert!(!text.contains("sparse_cadence") && !text.contains("state_horizon_ms"), "{text}");
}

/// `(epoch, sensor)` of each distinct observation, per object.
fn observations_by_object(lines: &[String]) -> std::collections::BTreeMap<u32, Vec<(i64, String)>> {
    let mut seen = BTreeSet::new();
    let mut by_object: std::collections::BTreeMap<u32, Vec<(i64, String)>> = Default::default();
    for o in lines.iter().filter_map(|line| parse_observation(line).ok()) {
        if seen.insert(o.observation_id.clone()) {
            by_object.entry(o.object_id).or_default().push((o.epoch_ms, o.sensor_id));
        }
    }
    for observations in by_object.values_mut() {
        observations.sort();
    }
    by_object
}

#[test]
fn sparse_gaps_and_sensors_follow_the_options() {
    let cadence = SparseCadence { mean_gap_ms: 1_200_000, min_gap_ms: 240_000, max_gap_ms: 3_000_000, sensors_per_object: 2 };
    // No planted conjunctions: their guaranteed observations are extra and break the gap rule.
    // A day, so that the gaps cut short by the scenario's end hardly bias the mean.
    let options = GenerateOptions {
        objects: 300,
        minutes: 1_440,
        conjunctions: 0,
        formations: 0,
        sparse_cadence: Some(cadence),
        ..GenerateOptions::default()
    };
    let scenario = generate(&options).unwrap();
    let by_object = observations_by_object(&scenario.lines);
    assert_eq!(by_object.len(), 300, "every object is seen in a day");
    let gaps: Vec<i64> = by_object.values().flat_map(|o| o.windows(2).map(|w| w[1].0 - w[0].0)).collect();
    assert!(gaps.iter().all(|&g| (240_000..=3_000_000).contains(&g)), "{:?}", gaps.iter().minmax());
    // min + exponential(mean - min), capped: E = min + s (1 - exp(-(max - min) / s)).
    let scale = (1_200_000 - 240_000) as f64;
    let expected_mean = 240_000.0 + scale * (1.0 - (-(3_000_000.0 - 240_000.0) / scale).exp());
    let mean = gaps.iter().sum::<i64>() as f64 / gaps.len() as f64;
    assert!((mean / expected_mean - 1.0).abs() < 0.04, "mean gap {mean} ms, expected {expected_mean} ms");
    // Irregular: gaps spread, not one period.
    let spread = gaps.iter().filter(|&&g| g > 2 * 1_200_000).count() as f64 / gaps.len() as f64;
    assert!(spread > 0.05, "{spread} of the gaps are over twice the mean");
    // Each object is seen by at most two sensors of its network, and many by both.
    let mut two_sensors = 0;
    for observations in by_object.values() {
        let sensors: BTreeSet<&str> = observations.iter().map(|(_, s)| s.as_str()).collect();
        assert!(sensors.len() <= 2, "{sensors:?}");
        let radar = sensors.iter().all(|s| s.starts_with("radar-"));
        assert!(radar || sensors.iter().all(|s| s.starts_with("optical-")), "{sensors:?}");
        two_sensors += usize::from(sensors.len() == 2);
    }
    assert!(two_sensors > by_object.len() / 2, "{two_sensors} of {} objects seen by two sensors", by_object.len());
}

trait MinMax {
    fn minmax(self) -> (Option<i64>, Option<i64>);
}
impl<'a, I: Iterator<Item = &'a i64> + Clone> MinMax for I {
    fn minmax(self) -> (Option<i64>, Option<i64>) {
        (self.clone().min().copied(), self.max().copied())
    }
}

#[test]
fn sparse_special_records_meet_their_fates() {
    let heavy =
        GenerateOptions { out_of_order_pct: 8.0, late_pct: 3.0, duplicate_pct: 4.0, malformed_pct: 3.0, ..sparse(1_500, 60, 3_600_000) };
    let scenario = generate(&heavy).unwrap();
    let counts = &scenario.summary.counts;
    assert!(counts.out_of_order > 50 && counts.late > 30 && counts.duplicates > 50, "{counts:?}");
    let defects: BTreeSet<&str> = scenario.summary.malformed.iter().map(|m| m.defect.as_str()).collect();
    assert_eq!(defects.len(), 32, "{defects:?}");
    check_fates(&heavy);
    for (window_ms, allowed_lateness_ms) in [(10_000, 3_000), (60_000, 0), (60_000, 1), (30_000, 45_000)] {
        let correlator = CorrelatorConfig { window_ms, allowed_lateness_ms, ..heavy.correlator };
        check_fates(&GenerateOptions { correlator, ..heavy.clone() });
    }
}

#[test]
fn sparse_planted_conjunctions_are_found_in_catalogue_mode() {
    // A horizon over the windows, one under a window (the fresh fallback), and none.
    for horizon_ms in [3_600_000, 45_000, 0] {
        let options = GenerateOptions { conjunctions: 12, edge_tca_fraction: 0.5, ..sparse(300, 60, horizon_ms) };
        let scenario = generate(&options).unwrap();
        let out = expected(&scenario.lines, &options);
        let report = check::planted_found(&scenario.summary, &out.candidates)
            .unwrap_or_else(|misses| panic!("H = {horizon_ms}:\n{}", misses.iter().map(|m| m.to_string()).collect::<Vec<_>>().join("\n")));
        assert_eq!(report.found.len(), 12);
        assert!(report.worst_miss_error_km < MISS_TOLERANCE_KM, "H = {horizon_ms}: {} km", report.worst_miss_error_km);
    }
    // With a horizon most planted objects are seen only before their TCA window: the conjunction
    // is found through carried states, which is what the guaranteed observations are for.
    let options = GenerateOptions { conjunctions: 12, ..sparse(300, 60, 3_600_000) };
    let scenario = generate(&options).unwrap();
    let out = expected(&scenario.lines, &options);
    let window_ms = options.correlator.window_ms;
    let carried = scenario
        .summary
        .conjunctions
        .iter()
        .filter(|p| {
            let found = find(&out.candidates, p.primary_id, p.secondary_id, window_of(p.tca_ms, window_ms));
            let epoch = |id: &str| {
                scenario.lines.iter().find_map(|l| parse_observation(l).ok().filter(|o| o.observation_id == id)).unwrap().epoch_ms
            };
            epoch(&found.primary_observation_id) < found.window_start_ms || epoch(&found.secondary_observation_id) < found.window_start_ms
        })
        .count();
    assert!(carried >= 8, "only {carried} of 12 found through a carried state");
}

#[test]
fn impossible_sparse_options_are_refused_with_the_reason() {
    let with = |cadence: SparseCadence| GenerateOptions { sparse_cadence: Some(cadence), ..GenerateOptions::default() };
    let base = SparseCadence::default();
    for (cadence, key) in [
        (SparseCadence { min_gap_ms: 0, ..base }, "min_gap_ms"),
        (SparseCadence { mean_gap_ms: 100_000, ..base }, "mean_gap_ms"),
        (SparseCadence { max_gap_ms: 1_000_000, ..base }, "max_gap_ms"),
        (SparseCadence { sensors_per_object: 0, ..base }, "sensors_per_object"),
        (SparseCadence { sensors_per_object: 6, ..base }, "sensors_per_object"),
    ] {
        match generate(&with(cadence)) {
            Err(ScenarioError::InvalidOptions(message)) => assert!(message.contains(key), "{message}"),
            other => panic!("{cadence:?}: {other:?}"),
        }
    }
    let negative =
        GenerateOptions { correlator: CorrelatorConfig { state_horizon_ms: -1, ..CorrelatorConfig::default() }, ..sparse(100, 5, 0) };
    assert!(matches!(generate(&negative), Err(ScenarioError::InvalidConfig(_))));
}

/// Pins the bytes of one small sparse scenario, as `a_small_scenario_has_pinned_bytes` does for
/// the regular cadence (same promise, same caveats). Update only for a deliberate change.
#[test]
fn a_small_sparse_scenario_has_pinned_bytes() {
    let options = GenerateOptions { malformed_pct: 3.0, out_of_order_pct: 5.0, duplicate_pct: 3.0, ..sparse(60, 45, 1_800_000) };
    let scenario = generate(&options).unwrap();
    let mut hasher = Sha256::new();
    for line in &scenario.lines {
        hasher.update(line.as_bytes());
        hasher.update(b"\n");
    }
    let digest = hex::encode(hasher.finalize());
    assert_eq!(
        digest,
        "e3c05f41d37edc6f76577f94cc9a6fd23a3259b46956db3517610cbb7e45101b",
        "{} lines; first: {}",
        scenario.lines.len(),
        scenario.lines[0]
    );
}
