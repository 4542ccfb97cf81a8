//! The reference against SEMANTICS.md on tiny hand-built inputs, one rule at a time.

use sda_scenario::propagate::{MU_KM3_S2, State, propagate, vec3};
use sda_scenario::reference::{self, ReferenceOutput};
use sda_scenario::{Alert, Candidate, ClassifierConfig, CorrelatorConfig, InvalidKind, Severity, alert_id};

/// 2026-01-01T00:00:00Z, a window boundary.
const T0: i64 = 1_767_225_600_000;

fn obs_line(observation_id: &str, object_id: u32, epoch_ms: i64, state: &State) -> String {
    let (r, v) = (state.position_km, state.velocity_km_s);
    format!(
        r#"{{"observation_id":"{observation_id}","object_id":{object_id},"sensor_id":"radar-1","epoch_ms":{epoch_ms},"position_km":[{:.9},{:.9},{:.9}],"velocity_km_s":[{:.12},{:.12},{:.12}]}}"#,
        r[0], r[1], r[2], v[0], v[1], v[2]
    )
}

/// Two LEO objects that pass `miss_km` apart at `tca_ms`, crossing at 70 degrees.
struct Crossing {
    a: State,
    b: State,
    tca_ms: i64,
}

impl Crossing {
    fn new(miss_km: f64, tca_ms: i64) -> Self {
        let r = 6878.0;
        let speed = (MU_KM3_S2 / r).sqrt();
        let (sin, cos) = 70f64.to_radians().sin_cos();
        Crossing {
            a: State::new([r, 0.0, 0.0], [0.0, speed, 0.0]),
            b: State::new([r + miss_km, 0.0, 0.0], [0.0, speed * cos, speed * sin]),
            tca_ms,
        }
    }
    fn a_at(&self, t_ms: i64) -> State {
        propagate(&self.a, (t_ms - self.tca_ms) as f64 / 1000.0)
    }
    fn b_at(&self, t_ms: i64) -> State {
        propagate(&self.b, (t_ms - self.tca_ms) as f64 / 1000.0)
    }
}

/// A geostationary object far from everything, used to move the watermark.
fn far_away() -> State {
    State::new([42_164.0, 0.0, 0.0], [0.0, 3.0747, 0.0])
}

fn run(lines: &[String]) -> ReferenceOutput {
    run_with(lines, &CorrelatorConfig::default())
}

fn run_with(lines: &[String], correlator: &CorrelatorConfig) -> ReferenceOutput {
    reference::run(lines, correlator, &ClassifierConfig::default(), &|_, _| {}).expect("valid configs")
}

#[test]
fn every_validation_rule_rejects_with_its_kind() {
    let good = |field: &str, value: &str| -> String {
        let mut fields = [
            ("observation_id", "\"obs-1\"".to_string()),
            ("object_id", "25544".to_string()),
            ("sensor_id", "\"radar-3\"".to_string()),
            ("epoch_ms", T0.to_string()),
            ("position_km", "[6524.834,-1284.21,1942.33]".to_string()),
            ("velocity_km_s", "[1.2,7.3,-0.4]".to_string()),
        ];
        if let Some(slot) = fields.iter_mut().find(|(name, _)| *name == field) {
            slot.1 = value.to_string();
        }
        let body: Vec<String> = fields.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| format!("\"{k}\":{v}")).collect();
        format!("{{{}}}", body.join(","))
    };
    use InvalidKind::{Deserialization as D, Validation as V};
    // (line, expected fate: None = accepted)
    let cases: Vec<(String, Option<InvalidKind>)> = vec![
        (good("", ""), None),
        // Not JSON.
        ("{\"observation_id\":\"obs-1\"".into(), Some(D)),
        ("not json".into(), Some(D)),
        (good("object_id", "025544"), Some(D)),
        (good("position_km", "[NaN,1,2]"), Some(D)),
        (format!("{},", good("", "")), Some(D)),
        // Not an object.
        ("[1,2,3]".into(), Some(V)),
        ("\"obs\"".into(), Some(V)),
        ("null".into(), Some(V)),
        // observation_id / sensor_id: JSON strings.
        (good("observation_id", ""), Some(V)),
        (good("observation_id", "17"), Some(V)),
        (good("sensor_id", "null"), Some(V)),
        (good("sensor_id", ""), Some(V)),
        // object_id: integer literal in [0, 4294967295].
        (good("object_id", "0"), None),
        (good("object_id", "4294967295"), None),
        (good("object_id", "-1"), Some(V)),
        (good("object_id", "4294967296"), Some(V)),
        (good("object_id", "12.5"), Some(V)),
        (good("object_id", "25544.0"), Some(V)),
        (good("object_id", "1e3"), Some(V)),
        (good("object_id", "\"25544\""), Some(V)),
        (good("object_id", ""), Some(V)),
        (good("object_id", "123456789012345678901234567890123456789012"), Some(V)),
        // epoch_ms: integer literal from year 0000 to year 9999 (negative allowed).
        (good("epoch_ms", "-5"), None),
        (good("epoch_ms", "253402300799999"), None),
        (good("epoch_ms", "-62167219200000"), None),
        (good("epoch_ms", "253402300800000"), Some(V)),
        (good("epoch_ms", "-62167219200001"), Some(V)),
        (good("epoch_ms", "9223372036854775807"), Some(V)),
        (good("epoch_ms", "9223372036854775808"), Some(V)),
        (good("epoch_ms", "1.5e12"), Some(V)),
        (good("epoch_ms", "1767225600000.5"), Some(V)),
        (good("epoch_ms", "\"1767225600000\""), Some(V)),
        (good("epoch_ms", ""), Some(V)),
        // position_km: 3 finite numbers, 6378.137 <= |r| <= 500000.
        (good("position_km", "[6378.137,0,0]"), None),
        (good("position_km", "[0,-500000,0]"), None),
        (good("position_km", "[6378.136,0,0]"), Some(V)),
        (good("position_km", "[500000.001,0,0]"), Some(V)),
        (good("position_km", "[6524.834,-1284.21]"), Some(V)),
        (good("position_km", "[6524.834,-1284.21,1942.33,0]"), Some(V)),
        (good("position_km", "[1e400,0,0]"), Some(V)),
        (good("position_km", "[\"6524.834\",0,0]"), Some(V)),
        (good("position_km", "{\"x\":7000}"), Some(V)),
        (good("position_km", "[1e200,1e200,1e200]"), Some(V)),
        (good("position_km", ""), Some(V)),
        // velocity_km_s: 3 finite numbers, |v| <= 20.
        (good("velocity_km_s", "[12,16,0]"), None),
        (good("velocity_km_s", "[12,16,0.001]"), Some(V)),
        (good("velocity_km_s", "[0,-1e400,0]"), Some(V)),
        (good("velocity_km_s", "[1,2]"), Some(V)),
        (good("velocity_km_s", ""), Some(V)),
        // Other fields are ignored; the last of a repeated field counts.
        (format!("{{\"extra\":[1e400,{{}}],{}", &good("", "")[1..]), None),
        (format!("{},\"object_id\":-1}}", &good("", "")[..good("", "").len() - 1]), Some(V)),
        (format!("{{\"object_id\":-1,{}", &good("", "")[1..]), None),
    ];
    // Give every valid line its own id and epoch so none is a duplicate or late; epochs far apart
    // are the point here, so the clock guard is off.
    let lines: Vec<String> = cases.iter().enumerate().map(|(i, (line, _))| line.replace("\"obs-1\"", &format!("\"obs-{i}\""))).collect();
    let out = run_with(&lines, &CorrelatorConfig { max_ahead_ms: 0, ..CorrelatorConfig::default() });
    let expected: Vec<(usize, InvalidKind)> = cases.iter().enumerate().filter_map(|(i, (_, kind))| kind.map(|k| (i, k))).collect();
    let actual: Vec<(usize, InvalidKind)> = out.invalid.iter().map(|invalid| (invalid.line, invalid.kind)).collect();
    for (i, (line, kind)) in cases.iter().enumerate() {
        let got = out.invalid.iter().find(|invalid| invalid.line == i);
        assert_eq!(got.map(|g| g.kind), *kind, "line {i}: {line} ({:?})", got.map(|g| &g.message));
    }
    assert_eq!(actual, expected);
    assert_eq!(out.counts.accepted + out.counts.late + out.counts.duplicates, cases.iter().filter(|(_, k)| k.is_none()).count());
}

#[test]
fn messages_name_the_field_and_the_rule() {
    let out =
        run(&[r#"{"observation_id":"o","object_id":12.5,"sensor_id":"s","epoch_ms":0,"position_km":[7000,0,0],"velocity_km_s":[0,7,0]}"#
            .to_string()]);
    let message = &out.invalid[0].message;
    assert!(message.contains("object_id") && message.contains("integer"), "{message}");
}

#[test]
fn whitespace_only_lines_are_skipped() {
    let c = Crossing::new(1.0, T0 + 30_000);
    let lines = vec![
        String::new(),
        obs_line("a1", 1, T0 + 10_000, &c.a_at(T0 + 10_000)),
        " \t\r".to_string(),
        obs_line("b1", 2, T0 + 20_000, &c.b_at(T0 + 20_000)),
    ];
    let out = run(&lines);
    assert_eq!(out.counts.blank_lines, 2);
    assert!(out.invalid.is_empty());
    assert_eq!(out.candidates.len(), 1);
}

#[test]
fn late_records_are_discarded_and_counted() {
    let c = Crossing::new(1.0, T0 + 30_000);
    let lines = vec![
        obs_line("a1", 1, T0 + 10_000, &c.a_at(T0 + 10_000)),
        obs_line("b1", 2, T0 + 20_000, &c.b_at(T0 + 20_000)),
        // max_seen = T0 + 70 s: watermark T0 + 60 s = the end of window 0, which closes.
        obs_line("f1", 3, T0 + 70_000, &far_away()),
        obs_line("a2", 1, T0 + 59_999, &c.a_at(T0 + 59_999)),
    ];
    let out = run(&lines);
    assert_eq!(out.late_lines, vec![3]);
    assert_eq!(out.candidates.len(), 1);
    assert_eq!(out.candidates[0].primary_observation_id, "a1", "the late observation is never mixed in");

    // One millisecond less and the window is still open: the same record is accepted.
    let mut lines = lines;
    lines[2] = obs_line("f1", 3, T0 + 69_999, &far_away());
    let out = run(&lines);
    assert!(out.late_lines.is_empty());
    assert_eq!(out.candidates[0].primary_observation_id, "a2");
}

#[test]
fn an_observation_too_far_ahead_is_rejected_and_moves_nothing_unless_a_run_of_them_confirms_a_gap() {
    let c = Crossing::new(1.0, T0 + 30_000);
    let year_ms = 365 * 24 * 3_600_000;
    let lines = vec![
        obs_line("a1", 1, T0 + 10_000, &c.a_at(T0 + 10_000)),
        obs_line("wrong-clock", 3, T0 + year_ms, &far_away()),
        obs_line("b1", 2, T0 + 20_000, &c.b_at(T0 + 20_000)),
    ];
    let out = run(&lines);
    assert_eq!(out.invalid.iter().map(|i| (i.line, i.kind)).collect::<Vec<_>>(), vec![(1, InvalidKind::Validation)]);
    assert!(out.invalid[0].message.contains("max_ahead_ms"), "{}", out.invalid[0].message);
    assert!(out.late_lines.is_empty(), "the wrong clock moved no watermark");
    assert_eq!(out.candidates.len(), 1, "a1 and b1 still meet");

    // Three in a row more than an hour ahead: a gap in the stream; the third is accepted, and the
    // two before it were rejected.
    let gap = T0 + 2 * 3_600_000;
    let mut lines = vec![obs_line("a1", 1, T0 + 10_000, &c.a_at(T0 + 10_000))];
    lines.extend((0..4).map(|i| obs_line(&format!("g{i}"), 10 + i, gap + i64::from(i), &far_away())));
    let out = run(&lines);
    assert_eq!(out.invalid.iter().map(|i| i.line).collect::<Vec<_>>(), vec![1, 2]);
    let off = CorrelatorConfig { max_ahead_ms: 0, ..CorrelatorConfig::default() };
    assert!(run_with(&lines, &off).invalid.is_empty(), "0 turns the guard off");
}

#[test]
fn duplicates_are_discarded_and_do_not_move_the_watermark() {
    let c = Crossing::new(1.0, T0 + 30_000);
    let lines = vec![
        obs_line("a1", 1, T0 + 10_000, &c.a_at(T0 + 10_000)),
        obs_line("b1", 2, T0 + 20_000, &c.b_at(T0 + 20_000)),
        // Same id as an observation in an open window, ten minutes later: a duplicate. Had it been
        // accepted, the watermark would have closed window 0 and made the next record late.
        obs_line("b1", 2, T0 + 600_000, &far_away()),
        obs_line("a2", 1, T0 + 50_000, &c.a_at(T0 + 50_000)),
    ];
    let out = run(&lines);
    assert_eq!(out.duplicate_lines, vec![2]);
    assert!(out.late_lines.is_empty());
    assert_eq!(out.counts.windows_closed, 1);
    let candidate = &out.candidates[0];
    assert_eq!((candidate.primary_observation_id.as_str(), candidate.secondary_observation_id.as_str()), ("a2", "b1"));
    assert!((candidate.miss_distance_km - 1.0).abs() < 1e-6);
}

#[test]
fn an_id_is_only_a_duplicate_while_its_window_is_open() {
    let lines = vec![
        obs_line("x", 1, T0 + 10_000, &far_away()),
        obs_line("f", 2, T0 + 75_000, &far_away()), // closes window 0
        obs_line("x", 1, T0 + 80_000, &far_away()), // window 1: accepted again
        obs_line("x", 1, T0 + 90_000, &far_away()), // now a duplicate (window 1 is open)
    ];
    let out = run(&lines);
    assert_eq!(out.counts.accepted, 3);
    assert_eq!(out.duplicate_lines, vec![3]);
}

#[test]
fn state_is_the_greatest_epoch_then_the_greatest_observation_id_as_bytes() {
    let c = Crossing::new(0.5, T0 + 30_000);
    let decoy = State::new(vec3::add(c.a_at(T0 + 20_000).position_km, [3.0, 0.0, 0.0]), c.a_at(T0 + 20_000).velocity_km_s);
    let lines = vec![
        obs_line("b", 2, T0 + 20_000, &c.b_at(T0 + 20_000)),
        // Same epoch: "obs-a" > "obs-B" as bytes (0x61 > 0x42), though not case-insensitively.
        obs_line("obs-a", 1, T0 + 20_000, &c.a_at(T0 + 20_000)),
        obs_line("obs-B", 1, T0 + 20_000, &decoy),
        // An earlier epoch loses even with a greater id.
        obs_line("obs-z", 1, T0 + 10_000, &decoy),
    ];
    let out = run(&lines);
    let candidate = &out.candidates[0];
    assert_eq!(candidate.primary_observation_id, "obs-a");
    assert!((candidate.miss_distance_km - 0.5).abs() < 1e-6, "{}", candidate.miss_distance_km);
}

#[test]
fn a_closest_approach_outside_the_window_is_taken_at_its_edge() {
    // True TCA 200 ms after window 0 ends; both objects are seen in windows 0 and 1.
    let c = Crossing::new(0.3, T0 + 60_200);
    let lines = vec![
        obs_line("a1", 1, T0 + 10_000, &c.a_at(T0 + 10_000)),
        obs_line("b1", 2, T0 + 20_000, &c.b_at(T0 + 20_000)),
        obs_line("a2", 1, T0 + 61_000, &c.a_at(T0 + 61_000)),
        obs_line("b2", 2, T0 + 61_500, &c.b_at(T0 + 61_500)),
    ];
    let out = run(&lines);
    assert_eq!(out.candidates.len(), 2);
    let edge = &out.candidates[0];
    assert_eq!((edge.window_start_ms, edge.window_end_ms, edge.tca_ms), (T0, T0 + 60_000, T0 + 60_000));
    let at_edge = vec3::norm(vec3::sub(c.a_at(T0 + 60_000).position_km, c.b_at(T0 + 60_000).position_km));
    assert!(at_edge > 1.0, "the edge distance {at_edge} is well above the true miss");
    assert!((edge.miss_distance_km - at_edge).abs() < 1e-6, "{} vs {at_edge}", edge.miss_distance_km);
    let relative_speed = vec3::norm(vec3::sub(c.a_at(T0 + 60_000).velocity_km_s, c.b_at(T0 + 60_000).velocity_km_s));
    assert!((edge.relative_speed_km_s - relative_speed).abs() < 1e-6);
    let inside = &out.candidates[1];
    assert_eq!((inside.window_start_ms, inside.tca_ms), (T0 + 60_000, T0 + 60_200));
    assert!((inside.miss_distance_km - 0.3).abs() < 1e-6);

    // And before the window start: window 1's minimum is at its start.
    let c = Crossing::new(0.3, T0 + 59_800);
    let lines = vec![obs_line("a", 1, T0 + 70_000, &c.a_at(T0 + 70_000)), obs_line("b", 2, T0 + 65_000, &c.b_at(T0 + 65_000))];
    let out = run(&lines);
    assert_eq!(out.candidates[0].tca_ms, T0 + 60_000);
    assert!(out.candidates[0].miss_distance_km > 1.0);
}

#[test]
fn end_of_input_closes_every_window_in_increasing_order() {
    let correlator = CorrelatorConfig { allowed_lateness_ms: 3_600_000, ..CorrelatorConfig::default() };
    // Two objects on the same orbit, 2 km apart: a candidate in every window.
    let leader = Crossing::new(0.0, T0).a;
    let follower = State::new(vec3::add(leader.position_km, [0.0, 0.0, 2.0]), leader.velocity_km_s);
    // Delivered newest window first; nothing closes before the end of input.
    let mut lines = Vec::new();
    for (k, t) in [(2, T0 + 130_000), (0, T0 + 30_000), (1, T0 + 80_000)] {
        let dt = (t - T0) as f64 / 1000.0;
        lines.push(obs_line(&format!("a{k}"), 7, t, &propagate(&leader, dt)));
        lines.push(obs_line(&format!("b{k}"), 12, t + 1, &propagate(&follower, dt + 0.001)));
    }
    let out = run_with(&lines, &correlator);
    let starts: Vec<i64> = out.candidates.iter().map(|c| c.window_start_ms).collect();
    assert_eq!(starts, vec![T0, T0 + 60_000, T0 + 120_000]);
    let ids: Vec<&str> = out.candidates.iter().map(|c| c.primary_observation_id.as_str()).collect();
    assert_eq!(ids, vec!["a0", "a1", "a2"]);
    assert!(out.candidates.iter().all(|c| (c.miss_distance_km - 2.0).abs() < 0.1));
}

#[test]
fn windows_use_floor_division_for_negative_times() {
    let c = Crossing::new(1.0, -30_000);
    let lines = vec![obs_line("a", 12, -1, &c.a_at(-1)), obs_line("b", 7, -59_999, &c.b_at(-59_999))];
    let out = run(&lines);
    let candidate = &out.candidates[0];
    assert_eq!((candidate.primary_id, candidate.secondary_id), (7, 12), "primary is the smaller id");
    assert_eq!((candidate.window_start_ms, candidate.window_end_ms, candidate.tca_ms), (-60_000, 0, -30_000));
    assert_eq!(out.alerts[0].alert_id, "af67f84fa9f0ddb4e096111884602d90");
}

#[test]
fn alert_id_is_the_first_16_bytes_of_sha256_in_hex() {
    // printf '%s' '25544|43013|1767225600000' | sha256sum
    //   494b1f0429d0530ab8d28d641a4284b378c28c8b243956afaabfd4bf7a987d5e
    assert_eq!(alert_id(25544, 43013, 1_767_225_600_000), "494b1f0429d0530ab8d28d641a4284b3");
}

fn candidate(primary_id: u32, secondary_id: u32, window: i64, miss_distance_km: f64) -> Candidate {
    Candidate {
        primary_id,
        secondary_id,
        window_start_ms: window * 60_000,
        window_end_ms: (window + 1) * 60_000,
        tca_ms: window * 60_000 + 30_000,
        miss_distance_km,
        relative_speed_km_s: 10.0,
        primary_observation_id: format!("p{window}"),
        secondary_observation_id: format!("s{window}"),
    }
}

fn severities(alerts: &[Alert]) -> Vec<(i64, Severity)> {
    alerts.iter().map(|a| (a.window_start_ms / 60_000, a.severity)).collect()
}

#[test]
fn severity_thresholds_are_strict() {
    let config = ClassifierConfig::default();
    let candidates: Vec<Candidate> =
        [0.0, 0.999_999, 1.0, 4.999_999, 5.0, 7.0].iter().enumerate().map(|(i, &miss)| candidate(1, 2 + i as u32, 0, miss)).collect();
    let out = reference::classify(&candidates, &config);
    let got: Vec<(u32, Severity)> = out.alerts.iter().map(|a| (a.secondary_id, a.severity)).collect();
    assert_eq!(got, vec![(2, Severity::Red), (3, Severity::Red), (4, Severity::Yellow), (5, Severity::Yellow)]);
    assert_eq!(out.below_yellow, vec![4, 5]);
    assert!(out.suppressed.is_empty());
    let alert = &out.alerts[0];
    assert_eq!(alert.alert_id, alert_id(1, 2, 0));
    assert_eq!((alert.tca_ms, alert.primary_observation_id.as_str()), (30_000, "p0"));
}

#[test]
fn repeats_within_suppress_ms_are_suppressed_until_it_passes() {
    let config = ClassifierConfig::default(); // 600000 ms = 10 windows
    let candidates: Vec<Candidate> = (0..12).map(|k| candidate(1, 2, k, 3.0)).collect();
    let out = reference::classify(&candidates, &config);
    assert_eq!(severities(&out.alerts), vec![(0, Severity::Yellow), (10, Severity::Yellow)]);
    assert_eq!(out.suppressed, vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 11]);
}

#[test]
fn escalation_from_yellow_to_red_is_emitted_but_not_the_way_back() {
    let config = ClassifierConfig::default();
    let misses = [3.0, 0.5, 0.4, 3.0, 0.3];
    let candidates: Vec<Candidate> = misses.iter().enumerate().map(|(k, &m)| candidate(1, 2, k as i64, m)).collect();
    let out = reference::classify(&candidates, &config);
    assert_eq!(severities(&out.alerts), vec![(0, Severity::Yellow), (1, Severity::Red)]);
    assert_eq!(out.suppressed, vec![2, 3, 4]);
    // The escalation restarted the suppression period: window 10 is still within 1 + 10 windows.
    let mut longer = candidates.clone();
    longer.push(candidate(1, 2, 10, 0.3));
    longer.push(candidate(1, 2, 11, 0.3));
    let out = reference::classify(&longer, &config);
    assert_eq!(severities(&out.alerts), vec![(0, Severity::Yellow), (1, Severity::Red), (11, Severity::Red)]);
}

#[test]
fn expired_pairs_no_longer_suppress_even_a_lower_severity() {
    let config = ClassifierConfig { suppress_ms: 120_000, ..ClassifierConfig::default() };
    let candidates = vec![
        candidate(1, 2, 0, 0.5), // RED, remembered
        candidate(3, 4, 1, 2.0), // another pair
        candidate(3, 4, 2, 2.0), // suppressed; greatest start seen reaches 0 + 120000: pair (1,2) forgotten
        candidate(1, 2, 2, 2.0), // YELLOW after an expired RED: emitted
        candidate(1, 2, 3, 2.0), // suppressed by the new YELLOW
    ];
    let out = reference::classify(&candidates, &config);
    let got: Vec<(u32, i64, Severity)> = out.alerts.iter().map(|a| (a.primary_id, a.window_start_ms / 60_000, a.severity)).collect();
    assert_eq!(got, vec![(1, 0, Severity::Red), (3, 1, Severity::Yellow), (1, 2, Severity::Yellow)]);
    assert_eq!(out.suppressed, vec![2, 4]);
}

#[test]
fn zero_suppress_ms_suppresses_nothing() {
    let config = ClassifierConfig { suppress_ms: 0, ..ClassifierConfig::default() };
    let candidates: Vec<Candidate> = (0..3).map(|k| candidate(1, 2, k, 3.0)).collect();
    assert_eq!(reference::classify(&candidates, &config).alerts.len(), 3);
}

#[test]
fn end_to_end_counts_add_up() {
    let c = Crossing::new(0.7, T0 + 30_000);
    let lines = vec![
        obs_line("a1", 1, T0 + 10_000, &c.a_at(T0 + 10_000)),
        obs_line("b1", 2, T0 + 20_000, &c.b_at(T0 + 20_000)),
        "garbage".to_string(),
    ];
    let out = run(&lines);
    assert_eq!(out.counts.invalid_deserialization, 1);
    assert_eq!((out.counts.candidates, out.counts.alerts, out.counts.red), (1, 1, 1));
    let alert = &out.alerts[0];
    assert_eq!(alert.tca_ms, T0 + 30_000);
    assert_eq!(alert.window_end_ms, T0 + 60_000);
    let json = serde_json::to_string(alert).unwrap();
    assert!(json.starts_with(r#"{"alert_id":""#) && json.contains(r#""severity":"RED""#), "{json}");
}

#[test]
fn invalid_configs_are_refused() {
    let bad_correlator = CorrelatorConfig { window_ms: 0, ..CorrelatorConfig::default() };
    assert!(reference::run(&[] as &[String], &bad_correlator, &ClassifierConfig::default(), &|_, _| {}).is_err());
    let bad_classifier = ClassifierConfig { red_km: 6.0, ..ClassifierConfig::default() };
    assert!(reference::run(&[] as &[String], &CorrelatorConfig::default(), &bad_classifier, &|_, _| {}).is_err());
}

// Catalogue mode (`state_horizon_ms` = H > 0): SEMANTICS.md, "Catalogue mode".

fn catalogue(horizon_ms: i64) -> CorrelatorConfig {
    CorrelatorConfig { state_horizon_ms: horizon_ms, ..CorrelatorConfig::default() }
}

/// `(window index relative to T0, object ids)` of every window the correlator closed.
fn windows_and_objects(lines: &[String], correlator: &CorrelatorConfig) -> Vec<(i64, Vec<(u32, String)>)> {
    reference::correlate(lines, correlator)
        .closed_windows
        .iter()
        .map(|w| (w.index - T0 / 60_000, w.objects.iter().map(|o| (o.object_id, o.observation_id.clone())).collect()))
        .collect()
}

fn ids(candidate: &Candidate) -> (&str, &str) {
    (candidate.primary_observation_id.as_str(), candidate.secondary_observation_id.as_str())
}

#[test]
fn catalogue_mode_carries_a_state_into_the_next_window() {
    // Object 1 is seen in window 0 only, object 2 in window 1 only; they cross in window 1.
    let c = Crossing::new(1.0, T0 + 90_000);
    let lines = vec![obs_line("a1", 1, T0 + 10_000, &c.a_at(T0 + 10_000)), obs_line("b2", 2, T0 + 70_000, &c.b_at(T0 + 70_000))];
    let out = run_with(&lines, &catalogue(120_000));
    assert_eq!(out.candidates.len(), 1, "{:?}", out.candidates);
    let found = &out.candidates[0];
    assert_eq!((found.window_start_ms, found.tca_ms), (T0 + 60_000, T0 + 90_000));
    assert_eq!(ids(found), ("a1", "b2"), "the carried state's observation is named");
    assert!((found.miss_distance_km - 1.0).abs() < 1e-6, "{}", found.miss_distance_km);
    assert_eq!(
        windows_and_objects(&lines, &catalogue(120_000)),
        vec![(0, vec![(1, "a1".into())]), (1, vec![(1, "a1".into()), (2, "b2".into())])]
    );
    // The windowed mode sees each object in one window only: no pair at all.
    assert!(run(&lines).candidates.is_empty());
}

#[test]
fn catalogue_mode_keeps_a_state_exactly_horizon_old_and_drops_one_a_millisecond_older() {
    // Window 1 starts at T0 + 60 s; object 1's state is 50 s older than that.
    let c = Crossing::new(1.0, T0 + 90_000);
    let lines = vec![obs_line("a1", 1, T0 + 10_000, &c.a_at(T0 + 10_000)), obs_line("b2", 2, T0 + 70_000, &c.b_at(T0 + 70_000))];
    // s - epoch_ms = 50000 <= H: carried.
    let kept = run_with(&lines, &catalogue(50_000));
    assert_eq!(kept.candidates.len(), 1);
    assert_eq!(ids(&kept.candidates[0]), ("a1", "b2"));
    // s - epoch_ms = 50000 > H: dropped before the screening of window 1.
    let dropped = run_with(&lines, &catalogue(49_999));
    assert!(dropped.candidates.is_empty(), "{:?}", dropped.candidates);
    assert_eq!(windows_and_objects(&lines, &catalogue(49_999))[1], (1, vec![(2, "b2".into())]));
}

#[test]
fn catalogue_mode_lets_a_fresh_state_win_over_the_carried_one() {
    let c = Crossing::new(0.5, T0 + 90_000);
    let real = c.a_at(T0 + 50_000);
    let decoy = State::new(vec3::add(real.position_km, [2.0, 0.0, 0.0]), real.velocity_km_s);
    let mut lines = vec![
        obs_line("a0", 1, T0 + 50_000, &decoy),
        obs_line("b1", 2, T0 + 70_000, &c.b_at(T0 + 70_000)),
        obs_line("a1", 1, T0 + 65_000, &c.a_at(T0 + 65_000)),
    ];
    let out = run_with(&lines, &catalogue(600_000));
    assert_eq!(out.candidates.len(), 1);
    assert_eq!(ids(&out.candidates[0]), ("a1", "b1"), "the fresh state is used, not the carried one");
    assert!((out.candidates[0].miss_distance_km - 0.5).abs() < 1e-6);
    // Without the fresh observation the carried decoy is screened instead, and it misses by more:
    // the test above can tell the two apart.
    lines.pop();
    let carried = run_with(&lines, &catalogue(600_000));
    assert_eq!(ids(&carried.candidates[0]), ("a0", "b1"));
    assert!(carried.candidates[0].miss_distance_km > 1.0, "{}", carried.candidates[0].miss_distance_km);
}

#[test]
fn catalogue_mode_screens_gap_windows_with_carried_states_only() {
    // Both objects seen in window 0, crossing in window 2; nothing arrives until window 4.
    let c = Crossing::new(0.7, T0 + 150_000);
    let lines = vec![
        obs_line("a0", 1, T0 + 10_000, &c.a_at(T0 + 10_000)),
        obs_line("b0", 2, T0 + 20_000, &c.b_at(T0 + 20_000)),
        obs_line("f4", 3, T0 + 250_000, &far_away()),
    ];
    let out = run_with(&lines, &catalogue(600_000));
    assert_eq!(out.candidates.len(), 1, "{:?}", out.candidates);
    let found = &out.candidates[0];
    assert_eq!((found.window_start_ms, found.tca_ms), (T0 + 120_000, T0 + 150_000));
    assert_eq!(ids(found), ("a0", "b0"));
    assert!((found.miss_distance_km - 0.7).abs() < 1e-6, "{}", found.miss_distance_km);
    let windows: Vec<i64> = windows_and_objects(&lines, &catalogue(600_000)).iter().map(|(k, _)| *k).collect();
    assert_eq!(windows, vec![0, 1, 2, 3, 4]);
    assert_eq!(out.counts.windows_closed, 5);
    // A gap window whose carried states have all expired has nothing to screen.
    let short = windows_and_objects(&lines, &catalogue(130_000));
    assert_eq!(short.iter().map(|(k, _)| *k).collect::<Vec<_>>(), vec![0, 1, 2, 4], "window 3 is past object 1 and 2's horizon");
    assert_eq!(short[3].1, vec![(3, "f4".into())]);
    // The windowed mode never closes the gap windows.
    let windowed: Vec<i64> = windows_and_objects(&lines, &CorrelatorConfig::default()).iter().map(|(k, _)| *k).collect();
    assert_eq!(windowed, vec![0, 4]);
}

#[test]
fn catalogue_mode_screens_nothing_after_the_last_window_that_received_an_observation() {
    let c = Crossing::new(0.7, T0 + 90_000);
    let mut lines = vec![obs_line("a0", 1, T0 + 10_000, &c.a_at(T0 + 10_000)), obs_line("b0", 2, T0 + 20_000, &c.b_at(T0 + 20_000))];
    // End of input closes window 0 only, although carried states would meet in window 1.
    let out = run_with(&lines, &catalogue(600_000));
    assert!(out.candidates.is_empty(), "{:?}", out.candidates);
    assert_eq!(out.counts.windows_closed, 1);
    // One observation of anything in window 1 makes it a window to screen.
    lines.push(obs_line("f1", 3, T0 + 100_000, &far_away()));
    let out = run_with(&lines, &catalogue(600_000));
    assert_eq!(out.candidates.len(), 1);
    assert_eq!((out.candidates[0].window_start_ms, ids(&out.candidates[0])), (T0 + 60_000, ("a0", "b0")));
}

#[test]
fn catalogue_mode_keeps_the_late_and_duplicate_rules() {
    let lines = vec![
        obs_line("x", 1, T0 + 10_000, &far_away()),
        // Watermark T0 + 180 s: windows 0, 1 and 2 close (1 and 2 received nothing).
        obs_line("f", 2, T0 + 190_000, &far_away()),
        // Window 1 received nothing, but the watermark passed it: late.
        obs_line("late", 3, T0 + 100_000, &far_away()),
        // The carried state of object 1 is `x`, but no open window accepted `x`: accepted.
        obs_line("x", 1, T0 + 200_000, &far_away()),
        // Now window 3 has accepted `x`: a duplicate.
        obs_line("x", 1, T0 + 205_000, &far_away()),
    ];
    for horizon_ms in [0, 600_000] {
        let out = run_with(&lines, &catalogue(horizon_ms));
        assert_eq!(out.late_lines, vec![2], "H = {horizon_ms}");
        assert_eq!(out.duplicate_lines, vec![4], "H = {horizon_ms}");
        assert_eq!(out.counts.accepted, 3, "H = {horizon_ms}");
    }
    let windows = windows_and_objects(&lines, &catalogue(600_000));
    assert_eq!(windows.iter().map(|(k, _)| *k).collect::<Vec<_>>(), vec![0, 1, 2, 3]);
    assert_eq!(windows[3].1, vec![(1, "x".into()), (2, "f".into())], "the fresh `x` of window 3");
}

#[test]
fn zero_horizon_screens_exactly_the_fresh_states_of_each_window() {
    // An independent model of the windowed mode: each window's objects are its accepted
    // observations, the greatest (epoch_ms, observation_id) per object.
    let scenario = sda_scenario::generate(&sda_scenario::GenerateOptions {
        objects: 30,
        minutes: 6,
        out_of_order_pct: 8.0,
        late_pct: 3.0,
        duplicate_pct: 4.0,
        ..Default::default()
    })
    .unwrap();
    let config = catalogue(0);
    let correlation = reference::correlate(&scenario.lines, &config);
    let rejected: std::collections::BTreeSet<usize> = correlation
        .late_lines
        .iter()
        .chain(&correlation.duplicate_lines)
        .copied()
        .chain(correlation.invalid.iter().map(|i| i.line))
        .collect();
    let mut model: std::collections::BTreeMap<i64, std::collections::BTreeMap<u32, (i64, String)>> = Default::default();
    for (_, text) in scenario.lines.iter().enumerate().filter(|(line, _)| !rejected.contains(line)) {
        let o = sda_scenario::parse_observation(text).unwrap();
        let slot = model.entry(o.epoch_ms.div_euclid(60_000)).or_default().entry(o.object_id).or_insert((i64::MIN, String::new()));
        if (o.epoch_ms, o.observation_id.as_bytes()) > (slot.0, slot.1.as_bytes()) {
            *slot = (o.epoch_ms, o.observation_id);
        }
    }
    let got: Vec<(i64, Vec<(u32, String)>)> = correlation
        .closed_windows
        .iter()
        .map(|w| (w.index, w.objects.iter().map(|o| (o.object_id, o.observation_id.clone())).collect()))
        .collect();
    let expected: Vec<(i64, Vec<(u32, String)>)> =
        model.into_iter().map(|(k, objects)| (k, objects.into_iter().map(|(id, (_, obs))| (id, obs)).collect())).collect();
    assert_eq!(got, expected);
}

/// Pins the reference's outputs on one generated scenario to the bytes the windowed reference
/// produced before catalogue mode existed: with H = 0 nothing may change. (Computed by the
/// reference of commit d169b5d; update only for a deliberate change of the reference's numbers.)
#[test]
fn zero_horizon_reproduces_the_windowed_reference_byte_for_byte() {
    let options = sda_scenario::GenerateOptions {
        objects: 80,
        minutes: 12,
        seed: 7,
        out_of_order_pct: 8.0,
        late_pct: 3.0,
        duplicate_pct: 4.0,
        malformed_pct: 3.0,
        correlator: CorrelatorConfig { window_ms: 30_000, allowed_lateness_ms: 45_000, ..CorrelatorConfig::default() },
        ..Default::default()
    };
    let scenario = sda_scenario::generate(&options).unwrap();
    let out = reference::run(&scenario.lines, &options.correlator, &options.classifier, &|_, _| {}).unwrap();
    let digest = |lines: Vec<String>| {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        for line in lines {
            hasher.update(line.as_bytes());
            hasher.update(b"\n");
        }
        hex::encode(hasher.finalize())
    };
    assert_eq!(out.counts.windows_closed, 24);
    assert_eq!((out.counts.candidates, out.counts.alerts, out.counts.late, out.counts.duplicates), (108, 18, 152, 230));
    assert_eq!(
        digest(out.candidates.iter().map(|c| serde_json::to_string(c).unwrap()).collect()),
        "2567fed608f1a5a20121dff1b2f8f1a58b2f824faaf75c9ccbe6828201dbc158"
    );
    assert_eq!(
        digest(out.alerts.iter().map(|a| serde_json::to_string(a).unwrap()).collect()),
        "941ef040ec6cce9db251e6200c3e545aa75dc5dcc19b2f616dce9bba45c1465a"
    );
}

#[test]
fn a_negative_state_horizon_is_refused_and_old_documents_still_read() {
    let error = catalogue(-1).validate().unwrap_err();
    assert!(error.contains("state_horizon_ms"), "{error}");
    let old: CorrelatorConfig = serde_json::from_str(r#"{"window_ms":60000,"allowed_lateness_ms":10000,"screening_km":5.0}"#).unwrap();
    assert_eq!(old, CorrelatorConfig::default());
    assert_eq!(serde_json::to_string(&old).unwrap(), r#"{"window_ms":60000,"allowed_lateness_ms":10000,"screening_km":5.0}"#);
    let text = serde_json::to_string(&catalogue(3_600_000)).unwrap();
    assert!(text.ends_with(r#""state_horizon_ms":3600000}"#), "{text}");
    assert_eq!(serde_json::from_str::<CorrelatorConfig>(&text).unwrap(), catalogue(3_600_000));
}
