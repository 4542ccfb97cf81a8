//! Candidate and Alert v1: the records the correlator and the classifier emit, and `alert_id`.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A close approach found by the correlator in one window (the Candidate format of SEMANTICS.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// The smaller object id of the pair.
    pub primary_id: u32,
    pub secondary_id: u32,
    pub window_start_ms: i64,
    pub window_end_ms: i64,
    /// Time of closest approach, rounded to the nearest millisecond.
    pub tca_ms: i64,
    pub miss_distance_km: f64,
    pub relative_speed_km_s: f64,
    pub primary_observation_id: String,
    pub secondary_observation_id: String,
}

impl Candidate {
    /// The record key: `{primary_id}|{secondary_id}|{window_start_ms}`.
    pub fn key(&self) -> String {
        format!("{}|{}|{}", self.primary_id, self.secondary_id, self.window_start_ms)
    }
}

/// How serious a close approach is. `Yellow < Red`, so "higher" compares as expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Severity {
    #[serde(rename = "YELLOW")]
    Yellow,
    #[serde(rename = "RED")]
    Red,
}

/// Alert v1, the classifier's output. Fields in the order SEMANTICS.md lists them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub alert_id: String,
    pub primary_id: u32,
    pub secondary_id: u32,
    pub window_start_ms: i64,
    pub window_end_ms: i64,
    pub tca_ms: i64,
    pub miss_distance_km: f64,
    pub relative_speed_km_s: f64,
    pub severity: Severity,
    pub primary_observation_id: String,
    pub secondary_observation_id: String,
}

impl Alert {
    /// The alert a candidate becomes at `severity`.
    pub fn from_candidate(candidate: &Candidate, severity: Severity) -> Self {
        Alert {
            alert_id: alert_id(candidate.primary_id, candidate.secondary_id, candidate.window_start_ms),
            primary_id: candidate.primary_id,
            secondary_id: candidate.secondary_id,
            window_start_ms: candidate.window_start_ms,
            window_end_ms: candidate.window_end_ms,
            tca_ms: candidate.tca_ms,
            miss_distance_km: candidate.miss_distance_km,
            relative_speed_km_s: candidate.relative_speed_km_s,
            severity,
            primary_observation_id: candidate.primary_observation_id.clone(),
            secondary_observation_id: candidate.secondary_observation_id.clone(),
        }
    }
}

/// Lowercase hex of the first 16 bytes of SHA-256(`"{primary_id}|{secondary_id}|{window_start_ms}"`).
pub fn alert_id(primary_id: u32, secondary_id: u32, window_start_ms: i64) -> String {
    let digest = Sha256::digest(format!("{primary_id}|{secondary_id}|{window_start_ms}").as_bytes());
    hex::encode(&digest[..16])
}
