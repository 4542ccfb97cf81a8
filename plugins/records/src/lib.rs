//! The records the SDA operators exchange, as `plugins/SEMANTICS.md` defines them: one definition for the operator
//! that writes a record and for every operator that reads it (a plugin author's operator downstream too).
//!
//! The scenario generator's reference (`scenario/`) keeps its own copies on purpose: it checks the operators
//! independently, so it must not share their definitions.

use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// Candidate v1: a pair of objects passing within the screening distance in one window, the correlator's output and
/// the classifier's input. Fields serialize in this order. The observation ids borrow from what they are read from
/// when they can (no escapes in them), so reading a candidate allocates nothing for them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate<'a> {
    pub primary_id: u32,
    pub secondary_id: u32,
    pub window_start_ms: i64,
    pub window_end_ms: i64,
    pub tca_ms: i64,
    pub miss_distance_km: f64,
    pub relative_speed_km_s: f64,
    #[serde(borrow)]
    pub primary_observation_id: Cow<'a, str>,
    #[serde(borrow)]
    pub secondary_observation_id: Cow<'a, str>,
    /// Both objects' states at `tca_ms`, in the frame of the observations (TEME for states from element
    /// sets): written only when the correlator's `emit_states` is on, absent otherwise (so candidates
    /// without it are byte for byte those of earlier versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub states_at_tca: Option<StatesAtTca>,
}

/// The two objects' states at the time of closest approach (a candidate's `states_at_tca`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StatesAtTca {
    pub primary: StateVector,
    pub secondary: StateVector,
}

/// A position and velocity in an Earth-centred inertial frame.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StateVector {
    pub position_km: [f64; 3],
    pub velocity_km_s: [f64; 3],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_candidate_reads_back_as_written_borrowing_its_ids() {
        let text = r#"{"primary_id":7,"secondary_id":9,"window_start_ms":60000,"window_end_ms":120000,"tca_ms":61234,"miss_distance_km":0.412,"relative_speed_km_s":14.2,"primary_observation_id":"s1-7-60000","secondary_observation_id":"s2-9-61000"}"#;
        let candidate: Candidate<'_> = serde_json::from_str(text).unwrap();
        assert!(matches!(candidate.primary_observation_id, Cow::Borrowed(_)), "no copy of an id without escapes");
        assert_eq!(candidate.secondary_id, 9);
        assert_eq!(serde_json::to_string(&candidate).unwrap(), text, "written back byte for byte, fields in order");
        let with_escape = text.replace("s1-7-60000", "s1\\u002d7");
        let escaped: Candidate<'_> = serde_json::from_str(&with_escape).unwrap();
        assert_eq!(escaped.primary_observation_id, "s1-7", "an id with an escape is read into a string of its own");
        assert_eq!(candidate.states_at_tca, None, "no states unless written");
    }

    #[test]
    fn states_at_tca_are_written_after_the_ids_and_read_back() {
        let text = r#"{"primary_id":7,"secondary_id":9,"window_start_ms":60000,"window_end_ms":120000,"tca_ms":61234,"miss_distance_km":0.412,"relative_speed_km_s":14.2,"primary_observation_id":"a","secondary_observation_id":"b","states_at_tca":{"primary":{"position_km":[7000.0,0.0,0.0],"velocity_km_s":[0.0,7.5,0.0]},"secondary":{"position_km":[7000.4,0.1,0.0],"velocity_km_s":[0.0,0.0,7.5]}}}"#;
        let candidate: Candidate<'_> = serde_json::from_str(text).unwrap();
        let states = candidate.states_at_tca.expect("states read");
        assert_eq!(states.secondary.position_km, [7000.4, 0.1, 0.0]);
        assert_eq!(serde_json::to_string(&candidate).unwrap(), text);
    }
}
