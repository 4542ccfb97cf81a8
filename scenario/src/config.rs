//! The correlator's and the classifier's configuration, with SEMANTICS.md's defaults and rules.

use serde::{Deserialize, Serialize};

/// `[operators.correlator.config]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CorrelatorConfig {
    /// Tumbling window length (default 60000, > 0).
    pub window_ms: i64,
    /// How far the watermark trails the greatest accepted epoch (default 10000, >= 0).
    pub allowed_lateness_ms: i64,
    /// A pair is a candidate when its miss distance is strictly below this (default 5.0, finite, > 0).
    pub screening_km: f64,
    /// Catalogue mode: how long an object's latest state is carried into later windows (default
    /// 0, at least 0; 0 is the windowed mode). Left out of the JSON when 0, so documents written
    /// before catalogue mode existed read back, and are written again, unchanged.
    #[serde(skip_serializing_if = "is_zero")]
    pub state_horizon_ms: i64,
    /// The clock guard: an observation more than this ahead of the greatest accepted epoch is
    /// rejected (default 3600000, at least 0; 0 turns the guard off). Left out of the JSON at its
    /// default, like the next one, so documents written before the guard read back unchanged.
    #[serde(skip_serializing_if = "is_default_max_ahead")]
    pub max_ahead_ms: i64,
    /// ...unless it is the `ahead_confirmations`-th in a row (default 3, at least 1).
    #[serde(skip_serializing_if = "is_default_ahead_confirmations")]
    pub ahead_confirmations: u32,
}

fn is_zero(value: &i64) -> bool {
    *value == 0
}

const DEFAULT_MAX_AHEAD_MS: i64 = 3_600_000;
const DEFAULT_AHEAD_CONFIRMATIONS: u32 = 3;

fn is_default_max_ahead(value: &i64) -> bool {
    *value == DEFAULT_MAX_AHEAD_MS
}

fn is_default_ahead_confirmations(value: &u32) -> bool {
    *value == DEFAULT_AHEAD_CONFIRMATIONS
}

impl Default for CorrelatorConfig {
    fn default() -> Self {
        CorrelatorConfig {
            window_ms: 60_000,
            allowed_lateness_ms: 10_000,
            screening_km: 5.0,
            state_horizon_ms: 0,
            max_ahead_ms: DEFAULT_MAX_AHEAD_MS,
            ahead_confirmations: DEFAULT_AHEAD_CONFIRMATIONS,
        }
    }
}

impl CorrelatorConfig {
    /// Checks the rules of SEMANTICS.md; the message names the offending key.
    pub fn validate(&self) -> Result<(), String> {
        if self.window_ms <= 0 {
            return Err(format!("correlator `window_ms` must be > 0, not {}", self.window_ms));
        }
        if self.allowed_lateness_ms < 0 {
            return Err(format!("correlator `allowed_lateness_ms` must be >= 0, not {}", self.allowed_lateness_ms));
        }
        if !(self.screening_km.is_finite() && self.screening_km > 0.0) {
            return Err(format!("correlator `screening_km` must be finite and > 0, not {}", self.screening_km));
        }
        if self.state_horizon_ms < 0 {
            return Err(format!("correlator `state_horizon_ms` must be >= 0, not {}", self.state_horizon_ms));
        }
        if self.max_ahead_ms < 0 {
            return Err(format!("correlator `max_ahead_ms` must be >= 0, not {}", self.max_ahead_ms));
        }
        if self.ahead_confirmations == 0 {
            return Err("correlator `ahead_confirmations` must be >= 1, not 0".to_string());
        }
        Ok(())
    }
}

/// `[operators.classifier.config]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClassifierConfig {
    /// RED below this miss distance (default 1.0).
    pub red_km: f64,
    /// YELLOW below this miss distance (default 5.0); `0 < red_km <= yellow_km`.
    pub yellow_km: f64,
    /// How long an alert suppresses repeats of its pair, in window-start time (default 600000, >= 0).
    pub suppress_ms: i64,
}

impl Default for ClassifierConfig {
    fn default() -> Self {
        ClassifierConfig { red_km: 1.0, yellow_km: 5.0, suppress_ms: 600_000 }
    }
}

impl ClassifierConfig {
    /// Checks the rules of SEMANTICS.md; the message names the offending key.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.red_km > 0.0 && self.red_km <= self.yellow_km) {
            return Err(format!(
                "classifier needs 0 < `red_km` <= `yellow_km`, not red_km = {} and yellow_km = {}",
                self.red_km, self.yellow_km
            ));
        }
        if self.suppress_ms < 0 {
            return Err(format!("classifier `suppress_ms` must be >= 0, not {}", self.suppress_ms));
        }
        Ok(())
    }
}
