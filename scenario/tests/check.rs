//! The scalable checks: they pass on the reference's own output, and fail, naming the fault, on
//! outputs with a candidate removed, moved by 2 m, made up, or built from the wrong states.

use sda_scenario::check::{self, Found, Mismatch, Sample, SampledCheck};
use sda_scenario::generate::{GenerateOptions, SparseCadence, write_scenario_with};
use sda_scenario::reference::{self, ReferenceOutput};
use sda_scenario::{Candidate, CorrelatorConfig, Scenario, generate};
use std::collections::BTreeSet;

fn sparse_catalogue() -> GenerateOptions {
    GenerateOptions {
        objects: 400,
        minutes: 40,
        seed: 5,
        conjunctions: 8,
        formations: 3,
        edge_tca_fraction: 0.5,
        sparse_cadence: Some(SparseCadence::default()),
        correlator: CorrelatorConfig { state_horizon_ms: 3_600_000, ..CorrelatorConfig::default() },
        ..GenerateOptions::default()
    }
}

fn scenario_and_reference(options: &GenerateOptions) -> (Scenario, ReferenceOutput) {
    let scenario = generate(options).unwrap();
    let out = reference::run(&scenario.lines, &options.correlator, &options.classifier, &|_, _| {}).unwrap();
    (scenario, out)
}

/// Ten random objects and every object of a planted pair or formation: the sample is sure to
/// hold candidates, so a passing comparison is not an empty one.
fn sample_with_planted(scenario: &Scenario, seed: u64) -> BTreeSet<u32> {
    let population = check::observed_objects(&scenario.lines);
    let mut sample = check::pick_sample(population, 10, seed);
    for c in &scenario.summary.conjunctions {
        sample.extend([c.primary_id, c.secondary_id]);
    }
    for f in &scenario.summary.formations {
        sample.extend([f.primary_id, f.secondary_id]);
    }
    sample
}

#[test]
fn every_planted_conjunction_is_found_in_the_references_output() {
    for options in [sparse_catalogue(), GenerateOptions { objects: 80, minutes: 12, edge_tca_fraction: 0.5, ..GenerateOptions::default() }]
    {
        let (scenario, out) = scenario_and_reference(&options);
        let report = check::planted_found(&scenario.summary, &out.candidates).unwrap();
        assert_eq!(report.found.len(), scenario.summary.conjunctions.len());
        assert!(report.worst_miss_error_km < 1e-5, "{}", report.worst_miss_error_km);
        // Alerts carry the same fields, though the classifier may suppress one.
        let report = check::planted_found(&scenario.summary, &out.alerts).unwrap();
        assert!(report.found.iter().any(|f| matches!(f.found, Found::AsPlanted { .. })));
    }
}

/// The candidates of a planted pair in the windows that can show it.
fn planted_keys(scenario: &Scenario, out: &ReferenceOutput, which: usize) -> (u32, u32, Vec<usize>) {
    let planted = &scenario.summary.conjunctions[which];
    let indices = out
        .candidates
        .iter()
        .enumerate()
        .filter(|(_, c)| (c.primary_id, c.secondary_id) == (planted.primary_id, planted.secondary_id))
        .filter(|(_, c)| (c.window_start_ms..=c.window_end_ms).contains(&planted.tca_ms))
        .map(|(i, _)| i)
        .collect();
    (planted.primary_id, planted.secondary_id, indices)
}

#[test]
fn an_alert_suppressed_by_an_earlier_one_is_explained_and_a_removed_one_is_not() {
    let (scenario, out) = scenario_and_reference(&sparse_catalogue());
    let planted = &scenario.summary.conjunctions[1];
    let of_pair = |a: &sda_scenario::Alert| (a.primary_id, a.secondary_id) == (planted.primary_id, planted.secondary_id);
    let alert = out.alerts.iter().find(|a| of_pair(a)).expect("the planted pair raises an alert").clone();
    // An alert as severe one window earlier suppresses the planted one.
    let mut earlier = alert.clone();
    earlier.window_start_ms -= 60_000;
    earlier.miss_distance_km = 0.1;
    earlier.severity = sda_scenario::Severity::Red;
    let mut alerts: Vec<_> = out.alerts.iter().filter(|a| !of_pair(a)).cloned().collect();
    alerts.push(earlier);
    let report = check::planted_found(&scenario.summary, &alerts).unwrap();
    assert!(report.found.iter().any(|f| f.planted == *planted && matches!(f.found, Found::Suppressed { .. })));
    // Without it, nothing explains the missing alert.
    alerts.pop();
    let misses = check::planted_found(&scenario.summary, &alerts).unwrap_err();
    assert_eq!(misses.len(), 1);
    assert_eq!(misses[0].planted, *planted);
}

#[test]
fn a_removed_planted_candidate_is_reported() {
    let (scenario, out) = scenario_and_reference(&sparse_catalogue());
    let (primary, secondary, indices) = planted_keys(&scenario, &out, 3);
    assert!(!indices.is_empty());
    let kept: Vec<Candidate> = out.candidates.iter().enumerate().filter(|(i, _)| !indices.contains(i)).map(|(_, c)| c.clone()).collect();
    let misses = check::planted_found(&scenario.summary, &kept).unwrap_err();
    assert_eq!(misses.len(), 1, "{misses:?}");
    assert_eq!((misses[0].planted.primary_id, misses[0].planted.secondary_id), (primary, secondary));
    let text = misses[0].to_string();
    assert!(text.contains(&format!("{primary}|{secondary}")) && text.contains("not found"), "{text}");
}

#[test]
fn a_planted_miss_moved_by_two_metres_is_reported_and_half_a_metre_is_not() {
    let (scenario, out) = scenario_and_reference(&sparse_catalogue());
    for which in 0..scenario.summary.conjunctions.len() {
        let (_, _, indices) = planted_keys(&scenario, &out, which);
        let moved = |delta_km: f64| {
            let mut candidates = out.candidates.clone();
            for &i in &indices {
                candidates[i].miss_distance_km += delta_km;
            }
            check::planted_found(&scenario.summary, &candidates)
        };
        let misses = moved(0.002).unwrap_err();
        assert_eq!(misses.len(), 1);
        assert!(misses[0].to_string().contains("+2.0 m"), "{}", misses[0]);
        assert!(moved(-0.002).is_err());
        assert!(moved(0.0005).is_ok(), "within the metre of the contract");
    }
}

#[test]
fn a_planted_tca_moved_beyond_its_tolerance_is_reported() {
    let (scenario, out) = scenario_and_reference(&sparse_catalogue());
    let (_, _, indices) = planted_keys(&scenario, &out, 0);
    let planted = &scenario.summary.conjunctions[0];
    let tolerance = check::tca_tolerance_ms(planted.miss_km, planted.relative_speed_km_s).ceil() as i64;
    let mut candidates = out.candidates.clone();
    for &i in &indices {
        candidates[i].tca_ms += tolerance + 1;
    }
    assert!(check::planted_found(&scenario.summary, &candidates).is_err());
}

fn sampled(lines: &[String], config: &CorrelatorConfig, candidates: &[Candidate], sample: &BTreeSet<u32>) -> check::SampledReport {
    let check = SampledCheck { sample: Sample::Objects(sample.clone()), window_starts_ms: None };
    check::sampled_brute_force(lines, config, candidates, &check).unwrap()
}

#[test]
fn the_sampled_brute_force_agrees_with_the_full_reference() {
    let windowed = GenerateOptions { objects: 120, minutes: 10, ..GenerateOptions::default() };
    for options in [sparse_catalogue(), windowed] {
        let (scenario, out) = scenario_and_reference(&options);
        let sample = sample_with_planted(&scenario, 9);
        let report = sampled(&scenario.lines, &options.correlator, &out.candidates, &sample);
        assert!(report.passed(), "{report}");
        let involving = out.candidates.iter().filter(|c| sample.contains(&c.primary_id) || sample.contains(&c.secondary_id)).count();
        assert_eq!(report.matched, involving, "{report}");
        assert!(report.matched >= 10, "{report}");
        assert!(report.pairs_screened * 5 < report.pairs_bounded, "the bound dismisses most pairs: {report}");
    }
}

/// The sample's candidates, and one of a planted pair to tamper with.
fn tamper_setup() -> (Scenario, ReferenceOutput, BTreeSet<u32>, usize) {
    let (scenario, out) = scenario_and_reference(&sparse_catalogue());
    let sample = sample_with_planted(&scenario, 9);
    let (_, _, indices) = planted_keys(&scenario, &out, 2);
    (scenario, out, sample, indices[0])
}

fn only_mismatch(report: &check::SampledReport) -> &Mismatch {
    assert_eq!(report.mismatches.len(), 1, "{report}");
    &report.mismatches[0]
}

#[test]
fn the_sampled_brute_force_reports_a_removed_candidate() {
    let (scenario, mut out, sample, index) = tamper_setup();
    let removed = out.candidates.remove(index);
    let report = sampled(&scenario.lines, &sparse_catalogue().correlator, &out.candidates, &sample);
    assert!(matches!(only_mismatch(&report), Mismatch::Missing { expected } if expected.key() == removed.key()), "{report}");
    assert!(report.to_string().contains(&format!("missing candidate {}", removed.key())), "{report}");
}

#[test]
fn the_sampled_brute_force_reports_a_miss_distance_moved_by_two_metres() {
    let (scenario, mut out, sample, index) = tamper_setup();
    out.candidates[index].miss_distance_km += 0.002;
    let report = sampled(&scenario.lines, &sparse_catalogue().correlator, &out.candidates, &sample);
    assert!(matches!(only_mismatch(&report), Mismatch::Differs { differences, .. } if differences[0].contains("+2.0 m")), "{report}");
    // Half a metre is inside the accuracy clause.
    out.candidates[index].miss_distance_km -= 0.0015;
    assert!(sampled(&scenario.lines, &sparse_catalogue().correlator, &out.candidates, &sample).passed());
}

#[test]
fn the_sampled_brute_force_reports_the_wrong_states() {
    // The pipeline used another observation of the object (say, it did not let a fresh state win).
    let (scenario, mut out, sample, index) = tamper_setup();
    out.candidates[index].primary_observation_id = "obs-00000001".to_string();
    let report = sampled(&scenario.lines, &sparse_catalogue().correlator, &out.candidates, &sample);
    assert!(
        matches!(only_mismatch(&report), Mismatch::Differs { differences, .. } if differences[0].contains("states of observations")),
        "{report}"
    );
}

#[test]
fn the_sampled_brute_force_reports_made_up_and_repeated_candidates() {
    let (scenario, mut out, sample, index) = tamper_setup();
    let config = sparse_catalogue().correlator;
    // The planted pair in a window far from its TCA, where the pair is thousands of km apart.
    let mut made_up = out.candidates[index].clone();
    let elsewhere = if made_up.window_start_ms > scenario.summary.options.start_ms + 600_000 { -600_000 } else { 600_000 };
    made_up.window_start_ms += elsewhere;
    made_up.window_end_ms += elsewhere;
    made_up.tca_ms += elsewhere;
    out.candidates.push(made_up.clone());
    let report = sampled(&scenario.lines, &config, &out.candidates, &sample);
    assert!(matches!(only_mismatch(&report), Mismatch::Unexpected { found, .. } if found.key() == made_up.key()), "{report}");
    out.candidates.pop();
    // After the scenario's last window nothing is screened at all.
    let mut after = made_up.clone();
    after.window_start_ms = scenario.summary.end_ms + 3_600_000;
    out.candidates.push(after);
    let report = sampled(&scenario.lines, &config, &out.candidates, &sample);
    assert!(matches!(only_mismatch(&report), Mismatch::Unexpected { reason, .. } if reason.contains("no such window")), "{report}");
    out.candidates.pop();
    let repeated = out.candidates[index].clone();
    out.candidates.push(repeated);
    let report = sampled(&scenario.lines, &config, &out.candidates, &sample);
    assert!(matches!(only_mismatch(&report), Mismatch::Repeated { .. }), "{report}");
}

#[test]
fn the_sampled_brute_force_compares_only_the_windows_asked_for() {
    let (scenario, mut out, sample, index) = tamper_setup();
    let config = sparse_catalogue().correlator;
    let removed = out.candidates.remove(index);
    let elsewhere = removed.window_start_ms + 300_000;
    let check = SampledCheck { sample: Sample::Objects(sample.clone()), window_starts_ms: Some(elsewhere..=elsewhere + 120_000) };
    let report = check::sampled_brute_force(&scenario.lines, &config, &out.candidates, &check).unwrap();
    assert!(report.passed(), "{report}");
    assert_eq!(report.windows_compared, 3);
    let check = SampledCheck { sample: Sample::Objects(sample), window_starts_ms: Some(removed.window_start_ms..=removed.window_start_ms) };
    let report = check::sampled_brute_force(&scenario.lines, &config, &out.candidates, &check).unwrap();
    assert_eq!(report.windows_compared, 1);
    assert!(matches!(only_mismatch(&report), Mismatch::Missing { .. }), "{report}");
}

#[test]
fn the_file_checks_read_a_written_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run.jsonl");
    let options = sparse_catalogue();
    let written = write_scenario_with(&out, &options, true, &|_| {}).unwrap();
    let expected = written.expected.unwrap();
    let candidates: Vec<Candidate> =
        std::fs::read_to_string(&expected.candidates).unwrap().lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    let summary = sda_scenario::generate::read_summary(&written.scenario).unwrap();
    assert!(check::planted_found(&summary, &candidates).is_ok());
    let random = |count: usize| SampledCheck { sample: Sample::Random { count, seed: 4 }, window_starts_ms: None };
    let report = check::sampled_brute_force_file(&out, &options.correlator, &candidates, &random(25)).unwrap();
    assert!(report.passed(), "{report}");
    assert_eq!(report.sample.len(), 25);
    assert!(report.pairs_bounded > 0);
    // The same seed draws the same sample; a larger one contains it.
    let again = check::sampled_brute_force_file(&out, &options.correlator, &candidates, &random(40)).unwrap();
    assert!(report.sample.iter().all(|id| again.sample.contains(id)));
    // A sample drawn from the first window's catalogue, with the windowed pipeline's output:
    // carried states are missing from it, so the check must fail.
    let windowed = CorrelatorConfig { state_horizon_ms: 0, ..options.correlator };
    let windowed_candidates =
        reference::run(&std::fs::read_to_string(&out).unwrap().lines().collect::<Vec<_>>(), &windowed, &options.classifier, &|_, _| {})
            .unwrap()
            .candidates;
    let everything = SampledCheck { sample: Sample::Random { count: 400, seed: 4 }, window_starts_ms: None };
    let report = check::sampled_brute_force_file(&out, &options.correlator, &windowed_candidates, &everything).unwrap();
    assert!(report.mismatches.iter().any(|m| matches!(m, Mismatch::Missing { .. })), "{report}");
}
