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

/// A candidate with states at TCA: two LEO objects at 7000 km, the secondary `miss_m` metres radially outward of the
/// primary, their orbits crossing at right angles (7.5 km/s each, planes 90 degrees apart).
fn candidate_with_states(primary: u32, secondary: u32, window: i64, miss_m: f64) -> String {
    let mut c: Value = serde_json::from_str(&candidate(primary, secondary, window, miss_m / 1000.0)).unwrap();
    c["states_at_tca"] = json!({
        "primary": {"position_km": [7000.0, 0.0, 0.0], "velocity_km_s": [0.0, 7.546, 0.0]},
        "secondary": {"position_km": [7000.0 + miss_m / 1000.0, 0.0, 0.0], "velocity_km_s": [0.0, 0.0, 7.546]},
    });
    c.to_string()
}

/// The probability of collision of an alert, cross-checked by Chan's series on the states and covariances the alert
/// itself carries (a different method from the Foster integration the classifier ran).
fn checked_pc(alert: &Value) -> f64 {
    use collision_probability::{ObjectAtTca, pc_chan, position_covariance_inertial};
    let cp = &alert["collision_probability"];
    assert_eq!(cp["method"], "FOSTER-1992");
    assert_eq!(cp["covariance_source"], "DEFAULT");
    let object = |role: &str| {
        let s: sda_records::StateVector = serde_json::from_value(alert["states_at_tca"][role].clone()).unwrap();
        let c: sda_records::Covariance6 = serde_json::from_value(cp[format!("{role}_covariance_rtn")].clone()).unwrap();
        ObjectAtTca {
            position_km: s.position_km,
            velocity_km_s: s.velocity_km_s,
            position_covariance_m2: position_covariance_inertial(s.position_km, s.velocity_km_s, &c),
        }
    };
    let pc = cp["pc"].as_f64().unwrap();
    let chan = pc_chan(&object("primary"), &object("secondary"), cp["hard_body_radius_m"].as_f64().unwrap()).unwrap();
    assert!((pc - chan).abs() <= 0.02 * pc.max(1e-300), "Foster {pc} against Chan {chan}");
    pc
}

#[test]
fn with_states_an_alert_carries_its_collision_probability_and_without_them_it_is_unchanged() {
    let mut h = Harness::<Classifier>::new("{}").unwrap();
    let input = [candidate_with_states(1, 2, 0, 50.0), candidate(3, 4, 0, 0.05)];
    let text = h.process(&[("k", input[0].as_str(), 0)]).outputs[0].payload_str().to_string();
    let at = |field: &str| text.find(&format!("\"{field}\"")).unwrap_or_else(|| panic!("no {field} in {text}"));
    assert!(at("secondary_observation_id") < at("states_at_tca") && at("states_at_tca") < at("severity"), "{text}");
    assert!(at("tca_utc") < at("collision_probability"), "written last: {text}");
    let mut h = Harness::<Classifier>::new("{}").unwrap();
    let (alerts, failures) = classify(&mut h, &input);
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(alerts.len(), 2);
    let pc = checked_pc(&alerts[0]);
    // 50 m apart radially, sigmas of 100 m radially and 500 m along track (the LEO defaults), hard body 20 m: the
    // circle is well inside one sigma, so Pc is of the order of its area over the ellipse's: ~(20^2)/(2*100*500).
    assert!(pc > 1e-3 && pc < 2e-2, "{pc}");
    assert_eq!(alerts[0]["collision_probability"]["hard_body_radius_m"], 20.0);
    assert!(alerts[1].get("collision_probability").is_none() && alerts[1].get("states_at_tca").is_none());
}

#[test]
fn grading_by_pc_and_by_both() {
    // Far apart (3 km: YELLOW by miss distance, but Pc is negligible) and close (50 m: RED both ways).
    let far = candidate_with_states(1, 2, 0, 3000.0);
    let near = candidate_with_states(3, 4, 0, 50.0);
    let grade = |config: &str| {
        let mut h = Harness::<Classifier>::new(config).unwrap();
        let (alerts, failures) = classify(&mut h, &[far.clone(), near.clone()]);
        assert!(failures.is_empty(), "{failures:?}");
        alerts.iter().map(|a| (a["primary_id"].as_u64().unwrap(), a["severity"].as_str().unwrap().to_string())).collect::<Vec<_>>()
    };
    assert_eq!(grade("{}"), [(1, "YELLOW".to_string()), (3, "RED".to_string())], "by miss distance, the default");
    assert_eq!(grade(r#"{"grade_by": "pc"}"#), [(3, "RED".to_string())], "3 km with 100 m radial sigmas: Pc far below 1e-7");
    // With a YELLOW threshold of 1e-3 the close pair (Pc ~ 5e-3) is only YELLOW by Pc, RED by miss: `both` takes RED.
    assert_eq!(grade(r#"{"grade_by": "pc", "red_pc": 0.5, "yellow_pc": 1e-3}"#), [(3, "YELLOW".to_string())]);
    assert_eq!(grade(r#"{"grade_by": "both", "red_pc": 0.5, "yellow_pc": 1e-3}"#), [(1, "YELLOW".to_string()), (3, "RED".to_string())]);
    // Wider sigmas lower the close pair's Pc below the RED threshold.
    let wide = r#"{"grade_by": "pc", "red_pc": 1e-3, "default_sigmas": {"leo": {"radial_m": 2000, "transverse_m": 8000,
        "normal_m": 2000, "radial_rate_m_s": 2, "transverse_rate_m_s": 8, "normal_rate_m_s": 2}}}"#;
    assert_eq!(grade(wide), [(1, "YELLOW".to_string()), (3, "YELLOW".to_string())]);
}

#[test]
fn grading_by_pc_needs_states_and_says_how_to_get_them() {
    let mut h = Harness::<Classifier>::new(r#"{"grade_by": "pc"}"#).unwrap();
    let out = h.process(&[("k", candidate(1, 2, 0, 0.1).as_str(), 0)]);
    assert!(out.outputs.is_empty());
    assert_eq!(out.failures.len(), 1);
    let failure = &out.failures[0].1;
    assert_eq!(failure.reason(), FailureReason::Validation);
    assert!(failure.message().contains("emit_states = true"), "{}", failure.message());
}

#[test]
fn pc_settings_are_checked() {
    for (config, says) in [
        (r#"{"red_pc": 0}"#, "`red_pc`"),
        (r#"{"red_pc": 1.5}"#, "`red_pc`"),
        (r#"{"yellow_pc": 0.01, "red_pc": 0.001}"#, "`yellow_pc`"),
        (r#"{"hard_body_radius_m": -1}"#, "`hard_body_radius_m`"),
        (r#"{"grade_by": "probability"}"#, "expected one of `miss`, `pc`, `both`"),
        (
            r#"{"default_sigmas": {"leo": {"radial_m": 0, "transverse_m": 1, "normal_m": 1, "radial_rate_m_s": 1,
            "transverse_rate_m_s": 1, "normal_rate_m_s": 1}}}"#,
            "default_sigmas.leo",
        ),
    ] {
        let err = Harness::<Classifier>::new(config).err().unwrap_or_else(|| panic!("{config} accepted"));
        assert!(err.contains(says), "{config}: {err}");
    }
}
