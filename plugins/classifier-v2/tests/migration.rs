//! Version 2 takes over from version 1 mid-stream: the state migrates, the alerts stay exactly those of version 1 alone.

use classifier::Classifier;
use classifier_v2::ClassifierV2;
use proptest::prelude::*;
use sda_guest::FailureReason;
use sda_guest::testing::{Harness, Outcome};
use serde_json::json;

const T0: i64 = 1_767_225_600_000;
const MIN: i64 = 60_000;

fn candidate(primary: u32, secondary: u32, window: i64, miss_km: f64) -> String {
    json!({"primary_id": primary, "secondary_id": secondary, "window_start_ms": T0 + window * MIN,
           "window_end_ms": T0 + (window + 1) * MIN, "tca_ms": T0 + window * MIN + 30_000,
           "miss_distance_km": miss_km, "relative_speed_km_s": 9.5,
           "primary_observation_id": "obs-a", "secondary_observation_id": "obs-b"})
    .to_string()
}

fn feed<T: sda_guest::Operator>(h: &mut Harness<T>, candidates: &[String]) -> Outcome {
    let records: Vec<(&str, &str, i64)> = candidates.iter().map(|c| ("k", c.as_str(), 0)).collect();
    h.process(&records)
}

fn alerts(outcome: &Outcome) -> Vec<String> {
    outcome.outputs.iter().map(|o| o.payload_str().to_string()).collect()
}

#[test]
fn version_1_state_migrates_and_keeps_suppressing() {
    let mut v1 = Harness::<Classifier>::new("{}").unwrap();
    assert_eq!(alerts(&feed(&mut v1, &[candidate(1, 2, 0, 0.5)])).len(), 1);
    let (version, bytes) = v1.snapshot();
    assert_eq!(version, 1);

    let mut v2 = Harness::<ClassifierV2>::new("{}").unwrap();
    v2.restore(version, &bytes).unwrap();
    assert_eq!(v2.operator().remembered_pairs(), 1);
    assert_eq!(v2.operator().last_miss_km(1, 2), None, "version 1 never kept the distance");
    // Version 1 remembered the RED alert of pair 1|2: the repeat is still suppressed.
    let repeat = feed(&mut v2, &[candidate(1, 2, 1, 0.4)]);
    assert!(repeat.outputs.is_empty());
    assert_eq!(repeat.failures[0].1.reason(), FailureReason::Suppressed);
    assert!(!repeat.failures[0].1.message().contains("then"), "{}", repeat.failures[0].1.message());

    // What version 2 remembers itself carries the distance, and survives its own snapshot.
    assert_eq!(alerts(&feed(&mut v2, &[candidate(3, 4, 1, 0.7)])).len(), 1);
    let (version, bytes) = v2.snapshot();
    assert_eq!(version, 2);
    let mut again = Harness::<ClassifierV2>::new("{}").unwrap();
    again.restore(version, &bytes).unwrap();
    assert_eq!(again.operator().last_miss_km(3, 4), Some(0.7));
    let repeat = feed(&mut again, &[candidate(3, 4, 2, 0.6)]);
    assert!(repeat.failures[0].1.message().ends_with("(then 0.700 km)"), "{}", repeat.failures[0].1.message());

    // Going back is refused, with the reason: version 1 cannot read version 2.
    let mut back = Harness::<Classifier>::new("{}").unwrap();
    let refused = back.restore(version, &bytes).unwrap_err();
    assert!(refused.contains("unknown state version 2"), "{refused}");
}

proptest! {
    /// Any stream, swapped from version 1 to version 2 at any point: the same alerts as version 1 throughout.
    #[test]
    fn a_swap_at_any_point_changes_no_alert(
        stream in prop::collection::vec((0u32..4, 0i64..3, 0.0f64..6.0), 1..60),
        cut in 0usize..60,
    ) {
        let mut window = 0;
        let candidates: Vec<String> = stream
            .iter()
            .map(|&(pair, step, miss)| {
                window += step;
                candidate(pair, pair + 10, window, miss)
            })
            .collect();
        let cut = cut.min(candidates.len());
        let mut alone = Harness::<Classifier>::new("{}").unwrap();
        let expected = alerts(&feed(&mut alone, &candidates));

        let mut v1 = Harness::<Classifier>::new("{}").unwrap();
        let mut got = alerts(&feed(&mut v1, &candidates[..cut]));
        let (version, bytes) = v1.snapshot();
        let mut v2 = Harness::<ClassifierV2>::new("{}").unwrap();
        v2.restore(version, &bytes).unwrap();
        got.extend(alerts(&feed(&mut v2, &candidates[cut..])));
        prop_assert_eq!(got, expected);
    }
}
