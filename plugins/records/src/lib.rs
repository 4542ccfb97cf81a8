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

/// Alert v1 as an operator downstream of the classifier reads it (the classifier writes the same fields, in the
/// order SEMANTICS.md shows). `states_at_tca` and `collision_probability` are present when the candidate carried
/// states (the correlator's `emit_states`), absent otherwise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert<'a> {
    #[serde(borrow)]
    pub alert_id: Cow<'a, str>,
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub states_at_tca: Option<StatesAtTca>,
    /// `"RED"` or `"YELLOW"`.
    #[serde(borrow)]
    pub severity: Cow<'a, str>,
    #[serde(borrow)]
    pub tca_utc: Cow<'a, str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collision_probability: Option<CollisionProbability>,
}

/// The probability of collision the classifier worked out for an alert, with what it took: the hard-body radius
/// and both objects' covariances (SEMANTICS.md, "Collision probability").
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CollisionProbability {
    /// The probability, from 0 to 1.
    pub pc: f64,
    /// How it was computed: `"FOSTER-1992"` (2D, numerical integration over the hard-body circle).
    pub method: PcMethod,
    /// The radius of the sphere enclosing both objects, metres.
    pub hard_body_radius_m: f64,
    /// Where the covariances come from.
    pub covariance_source: CovarianceSource,
    pub primary_covariance_rtn: Covariance6,
    pub secondary_covariance_rtn: Covariance6,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PcMethod {
    #[serde(rename = "FOSTER-1992")]
    Foster1992,
}

/// As CCSDS 508.0-B-1's `COVARIANCE_METHOD`: `DEFAULT` (configured uncertainties by orbit regime) or `CALCULATED`
/// (from the orbit determination, carried by the input).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum CovarianceSource {
    Default,
    Calculated,
}

/// A 6x6 position-velocity covariance in the object's RTN frame (radial, transverse, normal), as its lower
/// triangle in the order of CCSDS 508.0-B-1's covariance keywords: `CR_R, CT_R, CT_T, CN_R, CN_T, CN_N, CRDOT_R,
/// CRDOT_T, CRDOT_N, CRDOT_RDOT, CTDOT_R, CTDOT_T, CTDOT_N, CTDOT_RDOT, CTDOT_TDOT, CNDOT_R, CNDOT_T, CNDOT_N,
/// CNDOT_RDOT, CNDOT_TDOT, CNDOT_NDOT`. Units: m**2 (position by position), m**2/s (velocity by position),
/// m**2/s**2 (velocity by velocity).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Covariance6(pub [f64; 21]);

impl Covariance6 {
    /// Element `(row, column)` of the full symmetric matrix (rows and columns 0-5: R, T, N, RDOT, TDOT, NDOT).
    pub fn get(&self, row: usize, column: usize) -> f64 {
        let (i, j) = if row >= column { (row, column) } else { (column, row) };
        self.0[i * (i + 1) / 2 + j]
    }

    /// The lower triangle of a symmetric 6x6 matrix (its upper triangle is not read).
    pub fn from_matrix(m: &[[f64; 6]; 6]) -> Covariance6 {
        let mut out = [0.0; 21];
        for i in 0..6 {
            for j in 0..=i {
                out[i * (i + 1) / 2 + j] = m[i][j];
            }
        }
        Covariance6(out)
    }
}

/// Unix milliseconds as `YYYY-MM-DDTHH:MM:SS.mmmZ` (proleptic Gregorian; no
/// clock is read, so replays give the same text).
pub fn rfc3339_utc(unix_ms: i64) -> String {
    let days = unix_ms.div_euclid(86_400_000);
    let ms_of_day = unix_ms.rem_euclid(86_400_000);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, sec, ms) = (ms_of_day / 3_600_000, ms_of_day / 60_000 % 60, ms_of_day / 1000 % 60, ms_of_day % 1000);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{sec:02}.{ms:03}Z")
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
    fn a_covariance_is_the_lower_triangle_in_the_cdm_order() {
        let mut m = [[0.0; 6]; 6];
        for (i, row) in m.iter_mut().enumerate() {
            for (j, cell) in row.iter_mut().enumerate() {
                *cell = (10 * i.max(j) + i.min(j)) as f64;
            }
        }
        let c = Covariance6::from_matrix(&m);
        // CR_R, CT_R, CT_T, CN_R, ...: row by row, up to the diagonal.
        assert_eq!(&c.0[..6], &[0.0, 10.0, 11.0, 20.0, 21.0, 22.0]);
        assert_eq!(c.0[20], 55.0, "CNDOT_NDOT last");
        assert_eq!(c.get(1, 4), 41.0, "symmetric");
        assert_eq!(c.get(4, 1), 41.0);
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
