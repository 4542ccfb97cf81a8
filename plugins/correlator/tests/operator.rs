//! The correlator as an operator, driven natively through the SDK harness: the rules of SEMANTICS.md.

use correlator::Correlator;
use correlator::orbit::{MU_KM3_S2, Orbit};
use proptest::prelude::*;
use sda_guest::FailureReason;
use sda_guest::testing::{Harness, Outcome};
use serde_json::{Value, json};

const T0: i64 = 1_767_225_600_000;

fn observation(id: &str, object: u32, epoch_ms: i64, r: [f64; 3], v: [f64; 3]) -> String {
    json!({"observation_id": id, "object_id": object, "sensor_id": "radar-1", "epoch_ms": epoch_ms,
           "position_km": r, "velocity_km_s": v})
    .to_string()
}

/// Observations of objects on circular orbits that all cross the same point at
/// `meet_s` seconds after T0, in planes `object * 25` degrees apart, radii
/// stepping by `step_km`: each pair passes within a few km.
fn crossing_stream(objects: u32, minutes: i64, cadence_s: i64, meet_s: f64, step_km: f64) -> Vec<String> {
    let mut lines = Vec::new();
    let mut n = 0;
    for step in 0..(minutes * 60 / cadence_s) {
        let t_ms = T0 + step * cadence_s * 1000;
        for object in 0..objects {
            let radius = 7000.0 + f64::from(object) * step_km;
            let speed = (MU_KM3_S2 / radius).sqrt();
            let tilt = f64::from(object) * 25f64.to_radians();
            let orbit_at_meet = Orbit::new([radius, 0.0, 0.0], [0.0, speed * tilt.cos(), speed * tilt.sin()]);
            let s = orbit_at_meet.at((t_ms - T0) as f64 / 1000.0 - meet_s);
            n += 1;
            lines.push(observation(&format!("obs-{n:05}"), 40000 + object, t_ms, s.r, s.v));
        }
    }
    lines
}

fn run(h: &mut Harness<Correlator>, lines: &[String]) -> Outcome {
    let records: Vec<(&str, &str, i64)> = lines.iter().map(|l| ("k", l.as_str(), 0)).collect();
    h.process(&records)
}

fn payloads(outcome: &Outcome) -> Vec<Value> {
    outcome.outputs.iter().map(|o| serde_json::from_str(o.payload_str()).unwrap()).collect()
}

fn correlator(config: &str) -> Harness<Correlator> {
    Harness::new(config).unwrap()
}

#[test]
fn a_window_closes_when_the_watermark_reaches_its_end_and_at_end_of_input() {
    let mut h = correlator("{}");
    // Three objects meeting at T0 + 30 s: three pairs, all within 5 km.
    let lines = crossing_stream(3, 1, 10, 30.0, 1.0);
    let first = run(&mut h, &lines);
    assert!(first.outputs.is_empty(), "max seen T0+50s, watermark T0+40s: window [T0, T0+60s) still open");
    // An observation at T0 + 70 s moves the watermark to T0 + 60 s: the window closes.
    let more = crossing_stream(3, 2, 10, 30.0, 1.0);
    let next = run(&mut h, &more[more.len() - 3..more.len() - 2]);
    let candidates = payloads(&next);
    assert_eq!(candidates.len(), 3, "{candidates:?}");
    assert_eq!(candidates[0]["primary_id"], 40000);
    assert_eq!(candidates[0]["secondary_id"], 40001);
    assert_eq!(candidates[0]["window_start_ms"], T0);
    assert_eq!(candidates[0]["window_end_ms"], T0 + 60_000);
    assert!((candidates[0]["tca_ms"].as_i64().unwrap() - (T0 + 30_000)).abs() < 500);
    assert!(candidates[0]["miss_distance_km"].as_f64().unwrap() < 1.5);
    assert_eq!(next.outputs[0].key, format!("40000|40001|{T0}").as_bytes());
    assert_eq!(next.outputs[0].origin, None, "window output is not blamed on the record that closed it");
}

#[test]
fn with_emit_states_a_candidate_carries_both_states_at_its_reported_tca() {
    let lines = crossing_stream(3, 2, 10, 30.0, 1.0);
    let plain = run_to_end("{}", &lines);
    let with_states = run_to_end(r#"{"emit_states": true}"#, &lines);
    assert_eq!(plain.len(), 3);
    assert!(plain.iter().all(|c| c.get("states_at_tca").is_none()), "off by default: candidates as before");
    assert_eq!(with_states.len(), 3);
    for (c, p) in with_states.iter().zip(&plain) {
        let mut without = c.clone();
        without.as_object_mut().unwrap().remove("states_at_tca");
        assert_eq!(&without, p, "the same candidate, states added");
        let tca_ms = c["tca_ms"].as_i64().unwrap();
        let vec3 = |v: &Value| -> [f64; 3] { serde_json::from_value(v.clone()).unwrap() };
        for (role, id_field) in [("primary", "primary_id"), ("secondary", "secondary_id")] {
            // Each object's true orbit (crossing_stream's), stepped from the meeting point instead of from an observation.
            let object = c[id_field].as_u64().unwrap() as u32 - 40000;
            let radius = 7000.0 + f64::from(object);
            let speed = (MU_KM3_S2 / radius).sqrt();
            let tilt = f64::from(object) * 25f64.to_radians();
            let truth =
                Orbit::new([radius, 0.0, 0.0], [0.0, speed * tilt.cos(), speed * tilt.sin()]).at((tca_ms - T0) as f64 / 1000.0 - 30.0);
            let state = &c["states_at_tca"][role];
            let (r, v) = (vec3(&state["position_km"]), vec3(&state["velocity_km_s"]));
            for i in 0..3 {
                assert!((r[i] - truth.r[i]).abs() < 1e-6, "{role} position at TCA: {r:?} against {:?}", truth.r);
                assert!((v[i] - truth.v[i]).abs() < 1e-9, "{role} velocity at TCA: {v:?} against {:?}", truth.v);
            }
        }
        // At the reported TCA (rounded to the millisecond) the separation is the miss distance, give or take the
        // relative motion over half a millisecond.
        let (p, s) = (&c["states_at_tca"]["primary"], &c["states_at_tca"]["secondary"]);
        let d: f64 = (0..3).map(|i| (vec3(&s["position_km"])[i] - vec3(&p["position_km"])[i]).powi(2)).sum::<f64>().sqrt();
        let slack = c["relative_speed_km_s"].as_f64().unwrap() * 0.0005 + 1e-6;
        assert!((d - c["miss_distance_km"].as_f64().unwrap()).abs() <= slack, "separation {d} km at TCA, miss {}", c["miss_distance_km"]);
    }
}

#[test]
fn end_of_input_closes_every_window() {
    let mut h = correlator("{}");
    // Meeting at T0 + 90 s, in window [T0+60s, T0+120s); input ends at T0 + 110 s,
    // so the watermark (T0 + 100 s) never reaches the window's end by itself.
    let out = run(&mut h, &crossing_stream(3, 2, 10, 90.0, 1.0));
    assert!(out.outputs.is_empty());
    let closed = payloads(&h.watermark(i64::MAX));
    assert_eq!(closed.len(), 3, "{closed:?}");
    assert!(closed.iter().all(|c| c["window_start_ms"] == T0 + 60_000));
}

#[test]
fn late_observations_are_discarded_and_counted() {
    let mut h = correlator("{}");
    let lines = crossing_stream(2, 3, 10, 30.0, 1.0);
    run(&mut h, &lines);
    // Watermark is now T0 + 170 s - 10 s = T0 + 160 s: window 0 and 1 are closed.
    let late = observation("obs-late", 40000, T0 + 59_999, [7000.0, 0.0, 0.0], [0.0, 7.5, 0.0]);
    let on_time = observation("obs-ok", 40000, T0 + 120_000, [7000.0, 0.0, 0.0], [0.0, 7.5, 0.0]);
    let out = run(&mut h, &[late, on_time]);
    assert_eq!(out.failures.len(), 1);
    assert_eq!(out.failures[0].0, 0);
    assert_eq!(out.failures[0].1.reason(), FailureReason::Late);
    assert!(out.failures[0].1.message().contains("obs-late"));
}

#[test]
fn a_repeated_observation_id_changes_nothing() {
    let mut h = correlator("{}");
    let a = observation("obs-a", 1, T0 + 1000, [7000.0, 0.0, 0.0], [0.0, 7.5, 0.0]);
    // Same id, later epoch and another position: ignored as a duplicate.
    let again = observation("obs-a", 1, T0 + 2000, [7000.0, 3.0, 0.0], [0.0, 7.5, 0.0]);
    let b = observation("obs-b", 2, T0 + 1000, [7000.0, 1.0, 0.0], [0.0, 7.5, 0.1]);
    let out = run(&mut h, &[a, again, b]);
    assert_eq!(out.failures.len(), 1);
    assert_eq!(out.failures[0].1.reason(), FailureReason::Duplicate);
    let closed = payloads(&h.watermark(i64::MAX));
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0]["primary_observation_id"], "obs-a");
}

#[test]
fn the_latest_observation_of_an_object_wins_ties_by_greatest_id() {
    let mut h = correlator("{}");
    let far = observation("obs-far", 1, T0 + 5000, [7000.0, 100.0, 0.0], [0.0, 7.5, 0.0]);
    let near_a = observation("obs-m", 1, T0 + 5000, [7000.0, 1.0, 0.0], [0.0, 7.5, 0.0]);
    let older = observation("obs-z", 1, T0 + 4000, [7000.0, 2.0, 0.0], [0.0, 7.5, 0.0]);
    let other = observation("obs-other", 2, T0 + 5000, [7000.0, 0.0, 0.0], [0.0, 7.5, 0.05]);
    run(&mut h, &[far, near_a, older, other]);
    let closed = payloads(&h.watermark(i64::MAX));
    // "obs-m" > "obs-far" at the same epoch; "obs-z" is older.
    assert_eq!(closed.len(), 1, "{closed:?}");
    assert_eq!(closed[0]["primary_observation_id"], "obs-m");
}

#[test]
fn invalid_observations_fail_with_their_kind_and_do_not_move_the_watermark() {
    let mut h = correlator("{}");
    let lines = crossing_stream(2, 1, 10, 30.0, 1.0);
    let far_future = observation("obs-bad", 1, T0 + 10_000_000, [100.0, 0.0, 0.0], [0.0, 7.5, 0.0]);
    let mut input = lines.clone();
    input.push(far_future);
    input.push("{not json".to_string());
    let out = run(&mut h, &input);
    let reasons: Vec<FailureReason> = out.failures.iter().map(|f| f.1.reason()).collect();
    assert_eq!(reasons, vec![FailureReason::Validation, FailureReason::Deserialization]);
    assert!(out.outputs.is_empty(), "the invalid far-future record must not close the window");
}

#[test]
fn config_is_checked() {
    assert!(Harness::<Correlator>::new(r#"{"window_ms": 0}"#).is_err());
    assert!(Harness::<Correlator>::new(r#"{"allowed_lateness_ms": -1}"#).is_err());
    assert!(Harness::<Correlator>::new(r#"{"screening_km": -5}"#).is_err());
    let err = Harness::<Correlator>::new(r#"{"window": 5}"#).err().unwrap();
    assert!(err.contains("unknown field `window`"), "{err}");
}

#[test]
fn restore_refuses_state_cut_into_other_windows() {
    let mut h = correlator("{}");
    run(&mut h, &crossing_stream(2, 1, 10, 30.0, 1.0));
    let (version, bytes) = h.snapshot();
    let mut other = correlator(r#"{"window_ms": 30000}"#);
    let refusal = other.restore(version, &bytes).unwrap_err();
    assert!(refusal.contains("windows of 60000 ms"), "{refusal}");
    assert!(other.restore(5, &bytes).unwrap_err().contains("unknown state version 5"));
}

#[test]
fn a_state_of_version_1_restores_with_an_empty_catalogue() {
    let lines = crossing_stream(3, 1, 10, 30.0, 1.0);
    let mut h = correlator("{}");
    run(&mut h, &lines);
    let (version, bytes) = h.snapshot();
    assert_eq!(version, 4);
    // Postcard writes fields in order, so version 1 (the same fields without the three that later
    // versions appended) is version 4 without its last six bytes while those hold no window
    // screened yet (`None`, a zero tag), no observation ahead in a row (a varint 0) and an empty
    // catalogue (its columns: a count of 0, 4 bytes).
    assert_eq!(&bytes[bytes.len() - 6..], &[0, 0, 0, 0, 0, 0], "no window screened, none ahead, nothing carried");
    let v1 = &bytes[..bytes.len() - 6];
    let mut restored = correlator(r#"{"state_horizon_ms": 600000}"#);
    restored.restore(1, v1).unwrap();
    assert_eq!(payloads(&restored.watermark(i64::MAX)), payloads(&h.watermark(i64::MAX)));
}

#[test]
fn screening_runs_in_on_watermark_not_in_the_record_that_closes_the_window() {
    let mut h = correlator("{}");
    run(&mut h, &crossing_stream(3, 1, 10, 30.0, 1.0));
    let more = crossing_stream(3, 2, 10, 30.0, 1.0);
    let processed = h.process_only(&[("k", more[more.len() - 3].as_str(), 0)]);
    assert!(processed.outputs.is_empty() && processed.failures.is_empty(), "{processed:?}");
    // The window is closed now: a record for it is late even before the screening ran...
    let late = observation("obs-late", 40001, T0 + 59_000, [7000.0, 0.0, 0.0], [0.0, 7.5, 0.0]);
    let refused = h.process_only(&[("k", late.as_str(), 0)]);
    assert_eq!(refused.failures[0].1.reason(), FailureReason::Late);
    // ...and the after-batch call screens it, the one outputs of that window.
    let screened = payloads(&h.watermark(sda_guest::NO_WATERMARK));
    assert_eq!(screened.len(), 3, "{screened:?}");
    assert!(screened.iter().all(|c| c["window_start_ms"] == T0));
    assert!(payloads(&h.watermark(sda_guest::NO_WATERMARK)).is_empty(), "screened once");
}

/// One observation of an object on a circular orbit of `radius` km, in a plane tilted by `tilt`
/// radians about the x axis, that reaches the x axis at `meet_ms`; observed at `epoch_ms`.
fn on_crossing_orbit(id: &str, object: u32, epoch_ms: i64, meet_ms: i64, radius: f64, tilt: f64) -> String {
    let speed = (MU_KM3_S2 / radius).sqrt();
    let at_meet = Orbit::new([radius, 0.0, 0.0], [0.0, speed * tilt.cos(), speed * tilt.sin()]);
    let s = at_meet.at((epoch_ms - meet_ms) as f64 / 1000.0);
    observation(id, object, epoch_ms, s.r, s.v)
}

/// A far geostationary object, observed to move the watermark.
fn far_object(id: &str, epoch_ms: i64) -> String {
    observation(id, 9, epoch_ms, [42_164.0, 0.0, 0.0], [0.0, 3.0747, 0.0])
}

/// Objects 1 and 2 meet 0.5 km apart at T0 + 10 min + 30 s (window 10). Object 1 is observed in
/// window 0 only, object 2 in window 10, and the far object every minute so windows 0-10 all hold
/// data.
fn sparse_meeting() -> Vec<String> {
    let meet = T0 + 630_000;
    let mut lines = vec![on_crossing_orbit("obs-1", 1, T0 + 1_000, meet, 7000.0, 0.0)];
    for minute in 0..=12 {
        lines.push(far_object(&format!("obs-far-{minute}"), T0 + minute * 60_000 + 2_000));
        if minute == 10 {
            lines.push(on_crossing_orbit("obs-2", 2, T0 + 600_500, meet, 7000.5, 1.0));
        }
    }
    lines
}

fn pairs(candidates: &[Value]) -> Vec<(u64, u64, i64, String, String)> {
    candidates
        .iter()
        .map(|c| {
            (
                c["primary_id"].as_u64().unwrap(),
                c["secondary_id"].as_u64().unwrap(),
                c["window_start_ms"].as_i64().unwrap(),
                c["primary_observation_id"].as_str().unwrap().to_string(),
                c["secondary_observation_id"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn run_to_end(config: &str, lines: &[String]) -> Vec<Value> {
    let mut h = correlator(config);
    let mut all = payloads(&run(&mut h, lines));
    all.extend(payloads(&h.watermark(i64::MAX)));
    all
}

#[test]
fn catalogue_mode_carries_a_state_into_later_windows_within_the_horizon() {
    let lines = sparse_meeting();
    assert!(run_to_end("{}", &lines).iter().all(|c| c["primary_id"] != 1), "windowed mode: object 1 is gone by window 10");
    // 10 min - 1 s + the window: obs-1 (epoch T0 + 1 s) is 599 s older than window 10's start.
    let found = run_to_end(r#"{"state_horizon_ms": 599000}"#, &lines);
    let meeting: Vec<_> = pairs(&found).into_iter().filter(|p| (p.0, p.1) == (1, 2)).collect();
    assert_eq!(meeting, vec![(1, 2, T0 + 600_000, "obs-1".to_string(), "obs-2".to_string())], "{found:?}");
    let c = found.iter().find(|c| c["primary_id"] == 1 && c["secondary_id"] == 2).unwrap();
    assert!((c["miss_distance_km"].as_f64().unwrap() - 0.5).abs() < 0.01, "{c}");
    assert!((c["tca_ms"].as_i64().unwrap() - (T0 + 630_000)).abs() < 100, "{c}");
}

#[test]
fn a_carried_state_expires_once_older_than_the_horizon_at_the_window_start() {
    // Exactly at the horizon (599 s = 599000 ms) it is carried (above); 1 ms less and it is not.
    let found = run_to_end(r#"{"state_horizon_ms": 598999}"#, &sparse_meeting());
    assert!(found.iter().all(|c| c["primary_id"] != 1), "{found:?}");
}

#[test]
fn a_fresh_state_wins_over_the_carried_one() {
    // Object 1 is seen again in window 10, far from the meeting point: its fresh state counts.
    // It arrives beside obs-2, while window 10 is open (at the end of the stream it would be late).
    let mut lines = sparse_meeting();
    let at = lines.iter().position(|l| l.contains("\"obs-2\"")).expect("obs-2") + 1;
    lines.insert(at, observation("obs-1-again", 1, T0 + 600_100, [0.0, 7000.0, 0.0], [-7.5, 0.0, 0.0]));
    let mut h = correlator(r#"{"state_horizon_ms": 3600000}"#);
    let outcome = run(&mut h, &lines);
    assert!(outcome.failures.is_empty(), "every observation is accepted: {:?}", outcome.failures);
    let mut found = payloads(&outcome);
    found.extend(payloads(&h.watermark(i64::MAX)));
    assert!(found.iter().all(|c| !(c["primary_id"] == 1 && c["secondary_id"] == 2)), "{found:?}");
}

#[test]
fn gap_windows_are_screened_with_carried_states_and_nothing_after_the_last_window_with_data() {
    // Objects 1 and 2 observed in window 0 only; they meet in window 5; the far object is seen in
    // window 0 and window 7, so windows 1-6 are gaps.
    let meet = T0 + 330_000;
    let lines = vec![
        on_crossing_orbit("obs-1", 1, T0 + 1_000, meet, 7000.0, 0.0),
        on_crossing_orbit("obs-2", 2, T0 + 1_500, meet, 7000.5, 1.0),
        far_object("obs-far-0", T0 + 2_000),
        far_object("obs-far-7", T0 + 7 * 60_000 + 2_000),
    ];
    let found = pairs(&run_to_end(r#"{"state_horizon_ms": 3600000}"#, &lines));
    assert_eq!(found, vec![(1, 2, T0 + 300_000, "obs-1".to_string(), "obs-2".to_string())]);
    // They also meet in window 9, after the last window with data (7): never screened.
    let late_meet = T0 + 9 * 60_000 + 30_000;
    let lines = vec![
        on_crossing_orbit("obs-1", 1, T0 + 1_000, late_meet, 7000.0, 0.0),
        on_crossing_orbit("obs-2", 2, T0 + 1_500, late_meet, 7000.5, 1.0),
        far_object("obs-far-0", T0 + 2_000),
        far_object("obs-far-7", T0 + 7 * 60_000 + 2_000),
    ];
    assert!(run_to_end(r#"{"state_horizon_ms": 3600000}"#, &lines).is_empty());
}

#[test]
fn catalogue_mode_with_a_horizon_of_zero_is_the_windowed_mode() {
    let lines = crossing_stream(4, 3, 10, 95.0, 0.8);
    let mut sparse = sparse_meeting();
    sparse.extend(lines.iter().cloned());
    for input in [lines, sparse] {
        assert_eq!(run_to_end(r#"{"state_horizon_ms": 0}"#, &input), run_to_end("{}", &input));
    }
}

/// Runs `lines` cut at `cuts` into batches, snapshotting and restoring into a
/// fresh instance at each cut marked `true`; returns every output payload.
fn run_interrupted(config: &str, lines: &[String], cuts: &[(usize, bool)]) -> Vec<String> {
    let mut h = correlator(config);
    let mut outputs = Vec::new();
    let mut from = 0;
    let mut boundaries: Vec<(usize, bool)> = cuts.iter().copied().filter(|(c, _)| *c > 0 && *c < lines.len()).collect();
    boundaries.sort();
    boundaries.dedup_by_key(|b| b.0);
    boundaries.push((lines.len(), false));
    for (to, restore) in boundaries {
        outputs.extend(run(&mut h, &lines[from..to]).outputs.into_iter().map(|o| o.payload_str().to_string()));
        if restore {
            let (version, bytes) = h.snapshot();
            h = correlator(config);
            h.restore(version, &bytes).unwrap();
        }
        from = to;
    }
    outputs.extend(h.watermark(i64::MAX).outputs.into_iter().map(|o| o.payload_str().to_string()));
    outputs
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// The result does not depend on batch size or on where the host takes a
    /// snapshot and restores it.
    #[test]
    fn output_is_independent_of_batching_and_snapshot_points(
        cuts in proptest::collection::vec((any::<prop::sample::Index>(), any::<bool>()), 0..12),
    ) {
        let lines = crossing_stream(4, 3, 10, 95.0, 0.8);
        let cuts: Vec<(usize, bool)> = cuts.iter().map(|(i, r)| (i.index(lines.len()), *r)).collect();
        let uninterrupted = run_interrupted("{}", &lines, &[]);
        prop_assert!(uninterrupted.len() >= 6, "the stream must produce candidates: {}", uninterrupted.len());
        prop_assert_eq!(run_interrupted("{}", &lines, &cuts), uninterrupted);
    }

    /// The same in catalogue mode, where carried states and gap windows are part of the state.
    #[test]
    fn catalogue_output_is_independent_of_batching_and_snapshot_points(
        cuts in proptest::collection::vec((any::<prop::sample::Index>(), any::<bool>()), 0..12),
    ) {
        let mut lines = sparse_meeting();
        lines.extend(crossing_stream(4, 3, 20, 95.0, 0.8).into_iter().map(|l| l.replace("\"obs-", "\"x-obs-")));
        lines.sort_by_key(|l| serde_json::from_str::<Value>(l).unwrap()["epoch_ms"].as_i64().unwrap());
        let config = r#"{"state_horizon_ms": 900000}"#;
        let cuts: Vec<(usize, bool)> = cuts.iter().map(|(i, r)| (i.index(lines.len()), *r)).collect();
        let uninterrupted = run_interrupted(config, &lines, &[]);
        prop_assert!(uninterrupted.iter().any(|c| c.contains("\"obs-1\"")), "a carried state makes a candidate");
        prop_assert_eq!(run_interrupted(config, &lines, &cuts), uninterrupted);
    }
}

/// Outputs with their `sda-order` header value.
type Ordered = Vec<(Vec<u8>, Value)>;

/// Every output of a run to the end of input, with its `sda-order` header, and the state at the end.
fn run_shard_to_end(shard: sda_guest::Shard, lines: &[String]) -> (Ordered, (u32, Vec<u8>)) {
    let mut h = Harness::<Correlator>::new_shard(r#"{"screening_km": 30.0}"#, shard).unwrap();
    let mut outcome = run(&mut h, lines);
    outcome.outputs.extend(h.watermark(i64::MAX).outputs);
    let ordered = outcome
        .outputs
        .iter()
        .map(|o| {
            let order =
                o.headers.iter().find(|(name, _)| name == sda_guest::ORDER_HEADER.as_bytes()).expect("every candidate has an order key");
            (order.1.clone(), serde_json::from_str(o.payload_str()).unwrap())
        })
        .collect();
    (ordered, h.snapshot())
}

#[test]
fn shards_emit_each_candidate_once_and_merged_by_order_key_give_the_whole_output() {
    let lines = crossing_stream(8, 3, 20, 90.0, 1.0);
    let (whole, whole_state) = run_shard_to_end(sda_guest::Shard::WHOLE, &lines);
    assert!(whole.len() > 10, "the stream has candidates: {}", whole.len());
    assert!(whole.windows(2).all(|w| w[0].0 < w[1].0), "one instance emits in order-key order");
    for count in [2, 3, 4] {
        let mut merged = Vec::new();
        for index in 0..count {
            let (outputs, state) = run_shard_to_end(sda_guest::Shard { index, count }, &lines);
            assert_eq!(state, whole_state, "shard {index} of {count} keeps the same state as the whole");
            merged.extend(outputs);
        }
        merged.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(merged, whole, "{count} shards");
    }
}

#[test]
fn a_shard_that_does_not_exist_is_refused() {
    let err = Harness::<Correlator>::new_shard("{}", sda_guest::Shard { index: 2, count: 2 }).err().unwrap();
    assert!(err.contains("shard 2 of 2 does not exist"), "{err}");
}

#[test]
fn a_damaged_catalogue_in_a_state_is_refused_naming_what_is_wrong() {
    // Carried states, then a snapshot whose catalogue columns are cut short or run on.
    let mut h = correlator(r#"{"state_horizon_ms": 3600000}"#);
    run(&mut h, &sparse_meeting());
    let (version, bytes) = h.snapshot();
    let mut restored = correlator(r#"{"state_horizon_ms": 3600000}"#);
    restored.restore(version, &bytes).expect("the whole state restores");
    let cut = restored.restore(version, &bytes[..bytes.len() - 3]).unwrap_err();
    assert!(cut.contains("catalogue's columns end early"), "{cut}");
    let longer = [bytes.as_slice(), &[0]].concat();
    assert!(restored.restore(version, &longer).unwrap_err().contains("1 bytes follow the catalogue's last column"));
}
