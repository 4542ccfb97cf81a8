//! The element-set operator driven natively through the SDK harness: the rules of its README, and outputs that the
//! correlator's own Observation v1 reader accepts.

use elsets::Elsets;
use elsets::elements::tle_checksum;
use sda_guest::testing::{Harness, Output};
use sda_guest::{FailureReason, NO_WATERMARK};

/// 2026-01-01T00:00:00Z.
const T0: i64 = 1_767_225_600_000;
const MINUTE: i64 = 60_000;

/// An OMM element set (CelesTrak's JSON form) of a low orbit, for `object` at `seconds` after T0.
fn omm(object: u32, seconds: i64, mean_anomaly_deg: f64) -> String {
    let epoch = format!("2026-01-01T{:02}:{:02}:{:02}.000000", seconds / 3600, seconds / 60 % 60, seconds % 60);
    format!(
        r#"{{"OBJECT_NAME":"TEST {object}","OBJECT_ID":"2026-001A","EPOCH":"{epoch}","MEAN_MOTION":15.5,"ECCENTRICITY":0.0005,
        "INCLINATION":51.6,"RA_OF_ASC_NODE":{},"ARG_OF_PERICENTER":90,"MEAN_ANOMALY":{mean_anomaly_deg},"EPHEMERIS_TYPE":0,
        "CLASSIFICATION_TYPE":"U","NORAD_CAT_ID":{object},"ELEMENT_SET_NO":999,"REV_AT_EPOCH":1,"BSTAR":0.0001,
        "MEAN_MOTION_DOT":0.00001,"MEAN_MOTION_DDOT":0}}"#,
        object * 7 % 360
    )
}

fn operator(config: &str) -> Harness<Elsets> {
    Harness::new(config).unwrap_or_else(|e| panic!("config {config}: {e}"))
}

fn feed(h: &mut Harness<Elsets>, payloads: &[String]) -> sda_guest::testing::Outcome {
    h.process(&payloads.iter().map(|p| ("k", p.as_str(), 0)).collect::<Vec<_>>())
}

/// The state SGP4 gives for `payload` at `t_ms`, as the operator would print it.
fn expected_state(payload: &str, t_ms: i64) -> ([f64; 3], [f64; 3]) {
    let (_, propagator) = elsets::accept(payload.as_bytes()).expect("accepted");
    let state = propagator.at_unix_ms(t_ms).expect("propagates");
    (state.position_km, state.velocity_km_s)
}

fn parsed(output: &Output) -> correlator::observation::Observation {
    correlator::observation::parse(&output.payload).unwrap_or_else(|f| panic!("the correlator refuses {}: {f}", output.payload_str()))
}

#[test]
fn ticks_are_decided_in_process_and_emitted_by_the_next_on_watermark_as_observation_v1() {
    let mut h = operator(r#"{"span_ms": 120000}"#);
    let set = omm(7, 30, 0.0);
    // W = T0 + 30 s, E = W + 2 min: ticks T0 + 1 min and T0 + 2 min (the first tick at or after the first epoch).
    let processed = h.process_only(&[("k", &set, 0)]);
    assert!(processed.outputs.is_empty() && processed.failures.is_empty(), "process only decides");
    let emitted = h.watermark(NO_WATERMARK).outputs;
    assert_eq!(emitted.len(), 2);
    for (output, t) in emitted.iter().zip([T0 + MINUTE, T0 + 2 * MINUTE]) {
        let id = format!("elsets/7/{t}");
        assert_eq!(output.key, id.as_bytes(), "key = observation_id");
        assert_eq!(output.event_time_ms, t, "event time = the tick");
        assert_eq!(output.origin, None);
        let observation = parsed(output);
        assert_eq!((observation.observation_id.as_str(), observation.object_id, observation.epoch_ms), (id.as_str(), 7, t));
        let (position, velocity) = expected_state(&set, t);
        assert_eq!((observation.position_km, observation.velocity_km_s), (position, velocity), "SGP4's state, printed exactly");
        assert!(
            output
                .payload_str()
                .starts_with(&format!(r#"{{"observation_id":"{id}","object_id":7,"sensor_id":"elsets","epoch_ms":{t},"position_km":["#)),
            "fields in Observation v1's order: {}",
            output.payload_str()
        );
    }
    assert!(h.watermark(NO_WATERMARK).outputs.is_empty(), "each tick at most once");
    // The end of input: W is the newest epoch (no lateness here), so nothing more.
    assert!(h.watermark(i64::MAX).outputs.is_empty());
}

#[test]
fn lateness_holds_ticks_back_until_the_end_of_input_and_earlier_ticks_back_propagate() {
    let mut h = operator(r#"{"span_ms": 0, "allowed_lateness_ms": 60000, "sensor_id": "sgp4-a"}"#);
    let set = omm(3, 30, 0.0);
    // First tick: at or after T0 + 30 s - 60 s, so T0; E = T0 + 30 s - 60 s: nothing yet.
    assert!(feed(&mut h, std::slice::from_ref(&set)).outputs.is_empty());
    let at_end = h.watermark(i64::MAX).outputs;
    assert_eq!(at_end.iter().map(|o| o.key.clone()).collect::<Vec<_>>(), [format!("sgp4-a/3/{T0}").into_bytes()]);
    assert_eq!(parsed(&at_end[0]).position_km, expected_state(&set, T0).0, "30 s before the epoch, SGP4 back-propagates");
}

#[test]
fn a_newer_element_set_replaces_an_older_one_from_its_epoch_on_and_the_older_is_then_dropped() {
    let mut h = operator(r#"{"span_ms": 0, "allowed_lateness_ms": 60000}"#);
    let (a, b) = (omm(1, 0, 0.0), omm(1, 150, 200.0));
    let other = omm(2, 250, 0.0);
    // A at T0: first tick T0 - 60 s (= W + span at or after), decided; nothing else.
    let first = feed(&mut h, std::slice::from_ref(&a)).outputs;
    assert_eq!(first.len(), 1);
    assert_eq!(parsed(&first[0]).position_km, expected_state(&a, T0 - MINUTE).0);
    // B at T0 + 150 s: E = T0 + 90 s: ticks T0 and T0 + 1 min, both before B's epoch, so both from A.
    let second = feed(&mut h, std::slice::from_ref(&b)).outputs;
    let ticks: Vec<i64> = second.iter().map(|o| o.event_time_ms).collect();
    assert_eq!(ticks, [T0, T0 + MINUTE]);
    for output in &second {
        assert_eq!(parsed(output).position_km, expected_state(&a, output.event_time_ms).0, "before B's epoch: A");
    }
    // The next undecided tick (T0 + 2 min) is before B's epoch: A may still be used, and is held.
    let held: Vec<(u32, u64)> = h.operator().held_element_sets().iter().map(|&(object, _, sequence)| (object, sequence)).collect();
    assert_eq!(held, [(1, 0), (1, 1)]);
    // Object 2 at T0 + 250 s moves E to T0 + 190 s: ticks T0 + 2 min (A) and T0 + 3 min (B, from its epoch on).
    let third = feed(&mut h, std::slice::from_ref(&other)).outputs;
    let by_tick: Vec<(i64, u32)> = third.iter().map(|o| (o.event_time_ms, parsed(o).object_id)).collect();
    assert_eq!(by_tick, [(T0 + 2 * MINUTE, 1), (T0 + 2 * MINUTE, 2), (T0 + 3 * MINUTE, 1), (T0 + 3 * MINUTE, 2)]);
    assert_eq!(parsed(&third[0]).position_km, expected_state(&a, T0 + 2 * MINUTE).0, "T0 + 2 min < B's epoch: A");
    assert_eq!(parsed(&third[2]).position_km, expected_state(&b, T0 + 3 * MINUTE).0, "T0 + 3 min >= B's epoch: B");
    assert_eq!(parsed(&third[1]).position_km, expected_state(&other, T0 + 2 * MINUTE).0, "object 2 back-propagated");
    // The next tick (T0 + 4 min) is at or after B's epoch: no tick to come can use A.
    let held: Vec<(u32, u64)> = h.operator().held_element_sets().iter().map(|&(object, _, sequence)| (object, sequence)).collect();
    assert_eq!(held, [(1, 1), (2, 2)]);
}

#[test]
fn a_set_accepted_after_a_tick_was_decided_does_not_change_that_tick() {
    let mut h = operator(r#"{"span_ms": 120000}"#);
    // A at T0 decides T0 .. T0 + 2 min. B, of the same object at T0 + 30 s, arrives next in the same batch: it is
    // the greatest epoch at or before T0 + 1 min and T0 + 2 min, but those ticks were decided before it came.
    let (a, b) = (omm(1, 0, 0.0), omm(1, 30, 90.0));
    let one_batch = feed(&mut h, &[a.clone(), b.clone()]).outputs;
    assert_eq!(one_batch.len(), 3);
    for output in &one_batch {
        assert_eq!(parsed(output).position_km, expected_state(&a, output.event_time_ms).0, "tick {}", output.event_time_ms);
    }
    assert!(h.watermark(i64::MAX).outputs.is_empty(), "T0 + 3 min is past E = T0 + 30 s + 2 min");
    // A tick decided after B came (object 2 at T0 + 60 s moves E to T0 + 3 min) uses B.
    let mut moved = operator(r#"{"span_ms": 120000}"#);
    feed(&mut moved, &[a, b.clone()]);
    let after_b = feed(&mut moved, &[omm(2, 60, 0.0)]).outputs;
    let object_1: Vec<&Output> = after_b.iter().filter(|o| parsed(o).object_id == 1).collect();
    assert_eq!(object_1.len(), 1);
    assert_eq!(parsed(object_1[0]).position_km, expected_state(&b, T0 + 3 * MINUTE).0, "decided after B: B");
}

#[test]
fn objects_are_left_out_of_ticks_where_their_set_has_decayed_and_counted() {
    // MINOTAUR R/B (Vallado's 28872): accepted at its epoch, decayed about 50 min later.
    let line1 = "1 28872U 05037B   05333.02012661  .25992681  00000-0  24476-3 0  1534";
    let line2 = "2 28872  96.4736 157.9986 0303955 244.0492 110.6523 16.46015938 10708";
    let payload = format!("{line1}\n{line2}\n");
    let epoch_ms = elsets::accept(payload.as_bytes()).expect("fine at its epoch").0.epoch_us / 1000;
    assert_eq!(epoch_ms, 1_133_224_138_939, "2005-11-29T00:28:58.939 (day 333.02012661)");
    // Ticks every 10 min for 90 min from the epoch: 1, 11, ..., 81 min after it; Vallado's output stops at 50 min.
    let mut h = operator(&format!(r#"{{"cadence_ms": 600000, "span_ms": 5400000, "start_ms": {epoch_ms}}}"#));
    let outputs = feed(&mut h, &[payload]).outputs;
    let ticks: Vec<i64> = outputs.iter().map(|o| o.event_time_ms).collect();
    let first = (epoch_ms / 600_000 + 1) * 600_000;
    assert_eq!(ticks, (0..6).map(|k| first + k * 600_000).collect::<Vec<_>>(), "up to 51 min after the epoch");
    assert_eq!(h.operator().states_left_out(), 3, "61, 71 and 81 min: decayed, left out and counted");
    assert!(h.watermark(i64::MAX).outputs.is_empty());
}

/// A stream with every kind of record: several objects, sets out of epoch order, a replacement, invalid records.
fn mixed_stream() -> Vec<String> {
    let mut records = Vec::new();
    for step in 0..10i64 {
        records.push(omm(100 + (step % 3) as u32, step * 97, step as f64 * 31.0));
        if step == 4 {
            records.push("{not json".to_string());
            records.push(omm(101, 20, 5.0)); // an older set, accepted after newer ones
        }
        if step == 6 {
            records.push(omm(102, step * 97, 0.0).replace("\"BSTAR\":0.0001,", ""));
        }
    }
    records
}

/// Every output of a run that feeds `batches` one after another, then ends the input.
fn run_in_batches(config: &str, batches: &[&[String]]) -> Vec<Output> {
    let mut h = operator(config);
    let mut outputs = Vec::new();
    for batch in batches {
        outputs.extend(feed(&mut h, batch).outputs);
    }
    outputs.extend(h.watermark(i64::MAX).outputs);
    outputs
}

const MIXED_CONFIG: &str = r#"{"cadence_ms": 30000, "span_ms": 90000, "allowed_lateness_ms": 120000}"#;

#[test]
fn outputs_do_not_depend_on_how_the_input_is_cut_into_batches() {
    let records = mixed_stream();
    let whole = run_in_batches(MIXED_CONFIG, &[&records]);
    assert!(whole.len() > 20, "{} outputs", whole.len());
    let one_by_one: Vec<&[String]> = records.chunks(1).collect();
    assert_eq!(run_in_batches(MIXED_CONFIG, &one_by_one), whole, "one record per batch");
    for size in [2, 3, 5] {
        let chunks: Vec<&[String]> = records.chunks(size).collect();
        assert_eq!(run_in_batches(MIXED_CONFIG, &chunks), whole, "batches of {size}");
    }
    // Replayed into a fresh operator: the same ids, byte for byte the same records.
    assert_eq!(run_in_batches(MIXED_CONFIG, &[&records]), whole);
    let ids: std::collections::BTreeSet<&[u8]> = whole.iter().map(|o| o.key.as_slice()).collect();
    assert_eq!(ids.len(), whole.len(), "one observation per object and tick");
}

#[test]
fn a_snapshot_restored_anywhere_gives_the_same_outputs() {
    let records = mixed_stream();
    let whole = run_in_batches(MIXED_CONFIG, &[&records]);
    for cut in 0..=records.len() {
        let mut first = operator(MIXED_CONFIG);
        let mut outputs = feed(&mut first, &records[..cut]).outputs;
        // A snapshot between `process` and `on_watermark` too: decided ticks are state.
        let pending = first.process_only(&[]);
        assert!(pending.outputs.is_empty());
        let (version, bytes) = first.snapshot();
        assert_eq!(version, 1);
        assert_eq!(first.snapshot().1, bytes, "the same state, the same bytes");
        let mut second = operator(MIXED_CONFIG);
        second.restore(version, &bytes).unwrap();
        assert_eq!(second.snapshot().1, bytes, "restored as it was");
        outputs.extend(feed(&mut second, &records[cut..]).outputs);
        outputs.extend(second.watermark(i64::MAX).outputs);
        assert_eq!(outputs, whole, "snapshot after {cut} records");
    }
    // Mid-batch: ticks decided by `process`, not yet emitted, survive the snapshot.
    let mut h = operator(r#"{"span_ms": 120000}"#);
    assert!(h.process_only(&[("k", &omm(5, 0, 0.0), 0)]).outputs.is_empty());
    let (version, bytes) = h.snapshot();
    let mut restored = operator(r#"{"span_ms": 120000}"#);
    restored.restore(version, &bytes).unwrap();
    assert_eq!(restored.watermark(NO_WATERMARK).outputs, h.watermark(NO_WATERMARK).outputs);
    let refused = operator(r#"{"cadence_ms": 1000}"#).restore(version, &bytes).unwrap_err();
    assert!(refused.contains("`cadence_ms` = 1000"), "{refused}");
}

/// Sets a TLE line's checksum digit right after an edit.
fn fix_checksum(line: &str) -> String {
    format!("{}{}", &line[..68], tle_checksum(line))
}

#[test]
fn bad_element_sets_are_dead_lettered_naming_the_problem() {
    let line1 = "1 25544U 98067A   20194.88612269 -.00002218  00000-0 -31515-4 0  9992";
    let line2 = "2 25544  51.6461 221.2784 0001413  89.1723 280.4612 15.49507896236008";
    let good = format!("ISS (ZARYA)\n{line1}\n{line2}\n");
    let no_bstar = omm(9, 0, 0.0).replace("\"BSTAR\":0.0001,", "");
    let hyperbolic = omm(9, 0, 0.0).replace("\"ECCENTRICITY\":0.0005", "\"ECCENTRICITY\":\"1.0\"");
    let below_ground = omm(9, 0, 0.0).replace("\"MEAN_MOTION\":15.5", "\"MEAN_MOTION\":17.6");
    let bad_alpha5 = format!("{}\n{}", fix_checksum(&line1.replace("25544U", "I5544U")), fix_checksum(&line2.replace("25544", "I5544")));
    let cases: Vec<(String, FailureReason, &str)> = vec![
        (good.replace("9992", "9993"), FailureReason::Validation, "TLE line 1 fails its checksum: column 69 says '3'"),
        (no_bstar, FailureReason::Validation, "missing field `BSTAR`"),
        (hyperbolic, FailureReason::Validation, "eccentricity 1 is out of range [0, 1) (Vallado's SGP4 error 1)"),
        (below_ground, FailureReason::Validation, "Vallado's SGP4 error"),
        (bad_alpha5, FailureReason::Validation, "Alpha-5 never uses the letters I and O"),
        ("{\"NORAD_CAT_ID\": 1,".to_string(), FailureReason::Deserialization, "not valid JSON"),
        (format!("{line1}\n"), FailureReason::Deserialization, "line 2 is missing"),
        (
            omm(9, 0, 0.0).replace("\"NORAD_CAT_ID\":9", "\"NORAD_CAT_ID\":\"A0009\""),
            FailureReason::Validation,
            "an Alpha-5 field belongs in a TLE",
        ),
        (omm(9, 0, 0.0).replace("\"EPHEMERIS_TYPE\":0", "\"EPHEMERIS_TYPE\":4"), FailureReason::Validation, "SGP4-XP"),
    ];
    let mut h = operator("{}");
    let mut records: Vec<String> = cases.iter().map(|(payload, _, _)| payload.clone()).collect();
    records.push(good);
    let outcome = feed(&mut h, &records);
    assert_eq!(outcome.failures.len(), cases.len(), "every bad set refused, the good one accepted: {:?}", outcome.failures);
    for ((index, failure), (payload, reason, words)) in outcome.failures.iter().zip(&cases) {
        assert_eq!(failure.reason(), *reason, "{payload}: {failure}");
        assert!(failure.message().contains(words), "{payload}\n  refused with {:?}\n  expected it to say {words:?}", failure.message());
        assert_eq!(records[*index as usize], *payload);
    }
    assert_eq!(h.operator().held_element_sets().len(), 1, "only the good set is held");
}

#[test]
fn bad_configuration_is_refused_naming_the_setting() {
    for (config, words) in [
        (r#"{"cadence_ms": 0}"#, "`cadence_ms` must be positive"),
        (r#"{"span_ms": -1}"#, "`span_ms` must not be negative"),
        (r#"{"allowed_lateness_ms": -5}"#, "`allowed_lateness_ms` must not be negative"),
        (r#"{"sensor_id": ""}"#, "`sensor_id` must not be empty"),
        (r#"{"start_ms": 9223372036854775807}"#, "`start_ms`"),
        (r#"{"cadence": 1000}"#, "unknown field `cadence`"),
    ] {
        let refused = Harness::<Elsets>::new(config).err().unwrap_or_else(|| panic!("{config} accepted"));
        assert!(refused.contains(words), "{config}: {refused}");
    }
    assert!(Harness::<Elsets>::new("{}").is_ok(), "every setting has a default");
}

#[test]
fn start_ms_sets_the_first_tick_rounded_up() {
    let mut h = operator(&format!(r#"{{"span_ms": 0, "start_ms": {}}}"#, T0 - 3 * MINUTE - 1));
    let ticks: Vec<i64> = feed(&mut h, &[omm(4, 0, 0.0)]).outputs.iter().map(|o| o.event_time_ms).collect();
    assert_eq!(ticks, [T0 - 3 * MINUTE, T0 - 2 * MINUTE, T0 - MINUTE, T0], "from start_ms rounded up to the epoch (E)");
}
