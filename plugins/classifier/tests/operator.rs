//! The classifier as an operator, driven natively: severity, suppression, escalation, expiry, ids.

use classifier::{Classifier, alert_id, rfc3339_utc};
use proptest::prelude::*;
use sda_guest::FailureReason;
use sda_guest::testing::Harness;
use serde_json::{Value, json};

const T0: i64 = 1_767_225_600_000;
const MIN: i64 = 60_000;

fn candidate(primary: u32, secondary: u32, window: i64, miss_km: f64) -> String {
    json!({"primary_id": primary, "secondary_id": secondary, "window_start_ms": T0 + window * MIN,
           "window_end_ms": T0 + (window + 1) * MIN, "tca_ms": T0 + window * MIN + 30_000,
           "miss_distance_km": miss_km, "relative_speed_km_s": 9.5,
           "primary_observation_id": "obs-a", "secondary_observation_id": "obs-b"})
    .to_string()
}

/// Feeds `candidates`, returning (emitted alerts, reasons of failures).
fn classify(h: &mut Harness<Classifier>, candidates: &[String]) -> (Vec<Value>, Vec<FailureReason>) {
    let records: Vec<(&str, &str, i64)> = candidates.iter().map(|c| ("k", c.as_str(), 0)).collect();
    let out = h.process(&records);
    (
        out.outputs.iter().map(|o| serde_json::from_str(o.payload_str()).unwrap()).collect(),
        out.failures.iter().map(|f| f.1.reason()).collect(),
    )
}

#[test]
fn alert_id_is_the_documented_hash() {
    // printf '%s' '25544|43013|1767225600000' | sha256sum | cut -c1-32
    assert_eq!(alert_id(25544, 43013, 1_767_225_600_000), "494b1f0429d0530ab8d28d641a4284b3");
}

#[test]
fn utc_timestamps_are_rfc3339() {
    assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(rfc3339_utc(1_767_225_631_417), "2026-01-01T00:00:31.417Z");
    assert_eq!(rfc3339_utc(951_782_400_000), "2000-02-29T00:00:00.000Z");
    assert_eq!(rfc3339_utc(-1), "1969-12-31T23:59:59.999Z");
}

#[test]
fn severity_follows_the_thresholds_and_alerts_carry_every_field() {
    let mut h = Harness::<Classifier>::new("{}").unwrap();
    let (alerts, failures) = classify(&mut h, &[candidate(1, 2, 0, 0.99), candidate(3, 4, 0, 1.0), candidate(5, 6, 0, 5.0)]);
    assert!(failures.is_empty());
    assert_eq!(alerts.len(), 2, "5.0 km is not below yellow_km: no alert");
    assert_eq!(alerts[0]["severity"], "RED");
    assert_eq!(alerts[1]["severity"], "YELLOW");
    let a = &alerts[0];
    assert_eq!(a["alert_id"], alert_id(1, 2, T0));
    assert_eq!(a["tca_utc"], "2026-01-01T00:00:30.000Z");
    for field in [
        "primary_id",
        "secondary_id",
        "window_start_ms",
        "window_end_ms",
        "tca_ms",
        "miss_distance_km",
        "relative_speed_km_s",
        "primary_observation_id",
        "secondary_observation_id",
    ] {
        assert!(a.get(field).is_some(), "missing {field}");
    }
    let keys: Vec<Vec<u8>> = h.process(&[("k", &candidate(7, 8, 0, 0.5), 0)]).outputs.iter().map(|o| o.key.clone()).collect();
    assert_eq!(keys, vec![alert_id(7, 8, T0).into_bytes()], "the record key is the alert id");
}

#[test]
fn repeats_are_suppressed_for_suppress_ms_but_escalations_get_through() {
    let mut h = Harness::<Classifier>::new("{}").unwrap();
    // YELLOW at minute 0; YELLOW at 1..9 suppressed; RED at 5 escalates; RED at 9 suppressed;
    // at minute 15 (>= 5 + 10) a YELLOW is emitted again.
    let input: Vec<String> = vec![
        candidate(1, 2, 0, 3.0),
        candidate(1, 2, 1, 3.0),
        candidate(1, 2, 5, 0.5),
        candidate(1, 2, 9, 0.4),
        candidate(1, 2, 14, 3.0),
        candidate(1, 2, 15, 3.0),
    ];
    let (alerts, failures) = classify(&mut h, &input);
    let emitted: Vec<(i64, &str)> =
        alerts.iter().map(|a| ((a["window_start_ms"].as_i64().unwrap() - T0) / MIN, a["severity"].as_str().unwrap())).collect();
    assert_eq!(emitted, vec![(0, "YELLOW"), (5, "RED"), (15, "YELLOW")]);
    assert_eq!(failures, vec![FailureReason::Suppressed; 3]);
}

#[test]
fn other_pairs_are_independent() {
    let mut h = Harness::<Classifier>::new("{}").unwrap();
    let (alerts, _) = classify(&mut h, &[candidate(1, 2, 0, 3.0), candidate(1, 3, 0, 3.0), candidate(2, 3, 1, 3.0)]);
    assert_eq!(alerts.len(), 3);
}

#[test]
fn remembered_pairs_expire_once_they_cannot_suppress() {
    let mut h = Harness::<Classifier>::new(r#"{"suppress_ms": 120000}"#).unwrap();
    let many: Vec<String> = (0..200).map(|p| candidate(p, p + 1000, 0, 3.0)).collect();
    classify(&mut h, &many);
    let (_, full) = h.snapshot();
    // Minute 1: the 200 pairs of minute 0 can still suppress (0 + 2 > 1): kept.
    classify(&mut h, &[candidate(5000, 5001, 1, 3.0)]);
    assert!(h.snapshot().1.len() >= full.len());
    // Minute 2 reaches 0 + 2 minutes: they are forgotten; only minute 1's pair is left.
    classify(&mut h, &[candidate(6000, 6001, 2, 9.0)]);
    let (_, expired) = h.snapshot();
    assert!(expired.len() * 20 < full.len(), "{} bytes left of {}", expired.len(), full.len());
    let (_, failures) = classify(&mut h, &[candidate(5000, 5001, 2, 3.0)]);
    assert_eq!(failures, vec![FailureReason::Suppressed], "(5000,5001) is still remembered");
}

#[test]
fn bad_input_and_bad_config_are_reported() {
    let mut h = Harness::<Classifier>::new("{}").unwrap();
    let (_, failures) = classify(&mut h, &["{oops".to_string(), "{\"primary_id\":1}".to_string()]);
    assert_eq!(failures, vec![FailureReason::Deserialization, FailureReason::Validation]);
    assert!(Harness::<Classifier>::new(r#"{"red_km": 6, "yellow_km": 5}"#).is_err());
    assert!(Harness::<Classifier>::new(r#"{"suppress_ms": -1}"#).is_err());
    assert!(Harness::<Classifier>::new(r#"{"red": 1}"#).is_err());
}

proptest! {
    /// Snapshot and restore at any point give the output of an uninterrupted run.
    #[test]
    fn output_is_independent_of_snapshot_points(
        stream in proptest::collection::vec((1u32..4, 0i64..3, 0.0f64..6.0), 1..60),
        cut in any::<prop::sample::Index>(),
    ) {
        // Candidates in window order, as the correlator emits them.
        let mut window = 0;
        let candidates: Vec<String> = stream
            .iter()
            .map(|(pair, step, miss)| {
                window += step;
                candidate(*pair, *pair + 10, window, *miss)
            })
            .collect();
        let mut whole = Harness::<Classifier>::new("{}").unwrap();
        let expected = classify(&mut whole, &candidates);
        let at = cut.index(candidates.len());
        let mut first = Harness::<Classifier>::new("{}").unwrap();
        let (mut alerts, mut failures) = classify(&mut first, &candidates[..at]);
        let (version, bytes) = first.snapshot();
        let mut second = Harness::<Classifier>::new("{}").unwrap();
        second.restore(version, &bytes).unwrap();
        let rest = classify(&mut second, &candidates[at..]);
        alerts.extend(rest.0);
        failures.extend(rest.1);
        prop_assert_eq!((alerts, failures), expected);
    }
}
