//! The risk classifier: conjunction candidates in, RED and YELLOW alerts out, repeats suppressed per pair.
//!
//! The exact contract (severity, suppression, escalation, expiry, `alert_id`)
//! is `plugins/SEMANTICS.md`.

use sda_guest::{Emitter, Failure, Operator, Record, export_operator, state};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// `[operators.NAME.config]` of the classifier.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Miss distances below this are RED.
    #[serde(default = "defaults::red_km")]
    pub red_km: f64,
    /// Miss distances below this (and not RED) are YELLOW; above, no alert.
    #[serde(default = "defaults::yellow_km")]
    pub yellow_km: f64,
    /// How long an alert for a pair holds back repeats of the same or lower severity.
    #[serde(default = "defaults::suppress_ms")]
    pub suppress_ms: i64,
}

mod defaults {
    pub fn red_km() -> f64 {
        1.0
    }
    pub fn yellow_km() -> f64 {
        5.0
    }
    pub fn suppress_ms() -> i64 {
        600_000
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Severity {
    #[serde(rename = "YELLOW")]
    Yellow,
    #[serde(rename = "RED")]
    Red,
}

/// A candidate from the correlator (see SEMANTICS.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Candidate {
    primary_id: u32,
    secondary_id: u32,
    window_start_ms: i64,
    window_end_ms: i64,
    tca_ms: i64,
    miss_distance_km: f64,
    relative_speed_km_s: f64,
    primary_observation_id: String,
    secondary_observation_id: String,
}

/// Alert v1: the candidate's fields, with its id, severity and a readable TCA.
#[derive(Debug, Serialize)]
struct Alert<'a> {
    alert_id: String,
    #[serde(flatten)]
    encounter: &'a Candidate,
    severity: Severity,
    /// `tca_ms` as an RFC 3339 UTC timestamp, for people reading alerts.
    tca_utc: String,
}

/// The last alert emitted for a pair.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Remembered {
    window_start_ms: i64,
    severity: Severity,
}

/// Everything the classifier remembers (state version 1).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct ClassifierState {
    /// By (primary_id, secondary_id).
    pairs: BTreeMap<(u32, u32), Remembered>,
    /// Greatest window start seen: remembered pairs older than `suppress_ms` before it are forgotten.
    latest_window_start_ms: Option<i64>,
}

pub struct Classifier {
    config: Config,
    state: ClassifierState,
}

/// `alert_id`: lowercase hex of the first 16 bytes of SHA-256 of `"{primary}|{secondary}|{window_start_ms}"`.
pub fn alert_id(primary_id: u32, secondary_id: u32, window_start_ms: i64) -> String {
    let digest = Sha256::digest(format!("{primary_id}|{secondary_id}|{window_start_ms}").as_bytes());
    hex::encode(&digest[..16])
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

impl Classifier {
    fn severity(&self, miss_km: f64) -> Option<Severity> {
        if miss_km < self.config.red_km {
            Some(Severity::Red)
        } else if miss_km < self.config.yellow_km {
            Some(Severity::Yellow)
        } else {
            None
        }
    }

    /// Forgets pairs that can no longer suppress anything.
    fn expire(&mut self) {
        let Some(latest) = self.state.latest_window_start_ms else { return };
        let suppress_ms = self.config.suppress_ms;
        self.state.pairs.retain(|_, r| r.window_start_ms.saturating_add(suppress_ms) > latest);
    }
}

impl Operator for Classifier {
    type Config = Config;

    fn init(config: Config) -> Result<Self, String> {
        if !(config.red_km.is_finite() && config.red_km > 0.0) {
            return Err(format!("`red_km` must be a positive number of km, not {}", config.red_km));
        }
        if !(config.yellow_km.is_finite() && config.yellow_km >= config.red_km) {
            return Err(format!("`yellow_km` ({}) must be at least `red_km` ({})", config.yellow_km, config.red_km));
        }
        if config.suppress_ms < 0 {
            return Err(format!("`suppress_ms` must not be negative, not {}", config.suppress_ms));
        }
        Ok(Classifier { config, state: ClassifierState::default() })
    }

    fn process(&mut self, record: &Record<'_>, out: &mut Emitter) -> Result<(), Failure> {
        let c: Candidate = serde_json::from_slice(record.payload()).map_err(|e| match e.classify() {
            serde_json::error::Category::Data => Failure::validation(format!("not a conjunction candidate: {e}")),
            _ => Failure::deserialization(format!("not valid JSON: {e}")),
        })?;
        if !c.miss_distance_km.is_finite() {
            return Err(Failure::validation("`miss_distance_km` must be a finite number"));
        }
        self.state.latest_window_start_ms = Some(self.state.latest_window_start_ms.map_or(c.window_start_ms, |w| w.max(c.window_start_ms)));
        let result = self.classify(&c, out);
        self.expire();
        result
    }

    fn snapshot(&self) -> Vec<u8> {
        state::encode(&self.state)
    }

    fn restore(&mut self, version: u32, bytes: &[u8]) -> Result<(), String> {
        match version {
            1 => {
                self.state = state::decode(bytes)?;
                Ok(())
            }
            v => Err(format!("unknown state version {v}; this build reads version 1")),
        }
    }
}

impl Classifier {
    fn classify(&mut self, c: &Candidate, out: &mut Emitter) -> Result<(), Failure> {
        let Some(severity) = self.severity(c.miss_distance_km) else { return Ok(()) };
        let pair = (c.primary_id, c.secondary_id);
        if let Some(last) = self.state.pairs.get(&pair) {
            let within = c.window_start_ms < last.window_start_ms.saturating_add(self.config.suppress_ms);
            if within && severity <= last.severity {
                return Err(Failure::suppressed(format!(
                    "{severity:?} for {}|{} in window {} repeats the {:?} alert of window {}",
                    c.primary_id, c.secondary_id, c.window_start_ms, last.severity, last.window_start_ms
                )));
            }
        }
        self.state.pairs.insert(pair, Remembered { window_start_ms: c.window_start_ms, severity });
        let alert = Alert {
            alert_id: alert_id(c.primary_id, c.secondary_id, c.window_start_ms),
            encounter: c,
            severity,
            tca_utc: rfc3339_utc(c.tca_ms),
        };
        out.emit_json(c.tca_ms, &alert.alert_id, &alert);
        Ok(())
    }
}

export_operator!(Classifier);
