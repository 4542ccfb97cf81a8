//! The classifier's logic, shared by its three builds: `classifier` (state version 1),
//! `classifier-v2` (version 2: also remembers each pair's last miss distance) and
//! `classifier-incompatible` (refuses older state; it exists to test failed hot swaps).
//!
//! A crate of its own, not a feature of `classifier`: each build is a component exporting the
//! operator, and a build depending on `classifier` would link its export too. A feature could
//! not switch that off, since Cargo unifies a crate's features across one build and the test kit
//! builds every plugin in one. What differs between the builds is what they remember per pair
//! ([`Memory`]) and how they read older state; the alerts they emit are the same.

use collision_probability::{DefaultSigmas, ObjectAtTca, pc_foster, position_covariance_inertial};
use sda_guest::state::VersionedState;
use sda_guest::{Emitter, Failure, Record};
use sda_records::{CollisionProbability, CovarianceSource, PcMethod};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

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
    /// What the severity is judged by: the miss distance (the default), the probability of collision, or both.
    #[serde(default)]
    pub grade_by: GradeBy,
    /// Probabilities of collision at or above this are RED (with `grade_by` "pc" or "both").
    #[serde(default = "defaults::red_pc")]
    pub red_pc: f64,
    /// Probabilities at or above this (and not RED) are YELLOW.
    #[serde(default = "defaults::yellow_pc")]
    pub yellow_pc: f64,
    /// The radius of the sphere enclosing both objects, for the probability of collision.
    #[serde(default = "defaults::hard_body_radius_m")]
    pub hard_body_radius_m: f64,
    /// Each object's position and velocity uncertainty by orbit regime, when its input carries no covariance.
    #[serde(default)]
    pub default_sigmas: DefaultSigmas,
}

/// `grade_by`: what makes a candidate RED or YELLOW.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GradeBy {
    /// `red_km` / `yellow_km` on the miss distance (the only grading before collision probability).
    #[default]
    Miss,
    /// `red_pc` / `yellow_pc` on the probability of collision; a candidate without states cannot be graded.
    Pc,
    /// The more severe of the two gradings.
    Both,
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
    /// NASA CARA's red threshold.
    pub fn red_pc() -> f64 {
        1e-4
    }
    pub fn yellow_pc() -> f64 {
        1e-7
    }
    /// A common default when the objects' sizes are not known (CARA uses 20 m for such cases).
    pub fn hard_body_radius_m() -> f64 {
        20.0
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
pub type Candidate<'a> = sda_records::Candidate<'a>;

/// Alert v1: the candidate's fields, with its id, severity and a readable TCA.
#[derive(Debug, Serialize)]
struct Alert<'a> {
    alert_id: String,
    #[serde(flatten)]
    encounter: &'a Candidate<'a>,
    severity: Severity,
    /// `tca_ms` as an RFC 3339 UTC timestamp, for people reading alerts.
    tca_utc: String,
    /// When the candidate carries states at TCA.
    #[serde(skip_serializing_if = "Option::is_none")]
    collision_probability: Option<CollisionProbability>,
}

/// What a build remembers of the last alert it emitted for a pair; with it, the version of the build's [`State`]
/// and which older versions it reads (see [`VersionedState`], implemented for every `State<M>` from these).
pub trait Memory: Clone + Serialize + DeserializeOwned {
    /// The version of `State<Self>`: the build's `STATE_VERSION`.
    const STATE_VERSION: u32;

    /// Reads the state an older build wrote in `version` (see [`VersionedState::migrate`]); the default refuses.
    fn migrate(version: u32, bytes: &[u8]) -> Result<State<Self>, String> {
        let _ = (version, bytes);
        Err("this build reads no older version".to_string())
    }

    fn remember(candidate: &Candidate<'_>, severity: Severity) -> Self;
    fn window_start_ms(&self) -> i64;
    fn severity(&self) -> Severity;
    /// Added to the reason a repeat is suppressed (after the common part).
    fn detail(&self) -> String {
        String::new()
    }
}

/// The last alert emitted for a pair, as state version 1 stores it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Remembered {
    pub window_start_ms: i64,
    pub severity: Severity,
}

impl Memory for Remembered {
    /// State version 1, the first: nothing older to migrate.
    const STATE_VERSION: u32 = 1;

    fn remember(candidate: &Candidate<'_>, severity: Severity) -> Self {
        Remembered { window_start_ms: candidate.window_start_ms, severity }
    }
    fn window_start_ms(&self) -> i64 {
        self.window_start_ms
    }
    fn severity(&self) -> Severity {
        self.severity
    }
}

/// Everything the classifier remembers. With [`Remembered`] this is state
/// version 1, byte for byte (postcard of these two fields in this order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound = "M: Memory")]
pub struct State<M> {
    /// By (primary_id, secondary_id).
    pub pairs: BTreeMap<(u32, u32), M>,
    /// Greatest window start seen: remembered pairs older than `suppress_ms` before it are forgotten.
    pub latest_window_start_ms: Option<i64>,
}

impl<M: Memory> VersionedState for State<M> {
    const VERSION: u32 = M::STATE_VERSION;

    fn migrate(version: u32, bytes: &[u8]) -> Result<Self, String> {
        M::migrate(version, bytes)
    }
}

impl<M> Default for State<M> {
    fn default() -> Self {
        State { pairs: BTreeMap::new(), latest_window_start_ms: None }
    }
}

/// `alert_id`: lowercase hex of the first 16 bytes of SHA-256 of `"{primary}|{secondary}|{window_start_ms}"`.
pub fn alert_id(primary_id: u32, secondary_id: u32, window_start_ms: i64) -> String {
    let digest = Sha256::digest(format!("{primary_id}|{secondary_id}|{window_start_ms}").as_bytes());
    hex::encode(&digest[..16])
}

/// `tca_utc`'s format: see [`sda_records::rfc3339_utc`].
pub use sda_records::rfc3339_utc;

/// The `Operator` methods every build delegates to its [`Engine`] unchanged (`init`, `process`,
/// `snapshot`, `restore`), for an `impl Operator` of a newtype around one. Each build declares its
/// [`State`]'s version and which older versions it migrates (its `VersionedState` impl, and
/// `STATE_VERSION` to match): that is what sets the builds apart.
#[macro_export]
macro_rules! delegate_to_engine {
    () => {
        fn init(config: $crate::Config) -> Result<Self, String> {
            $crate::Engine::new(config).map(Self)
        }

        fn process(
            &mut self,
            record: &$crate::__guest::Record<'_>,
            out: &mut $crate::__guest::Emitter,
        ) -> Result<(), $crate::__guest::Failure> {
            self.0.process(record, out)
        }

        fn snapshot(&self) -> Vec<u8> {
            $crate::__guest::state::snapshot_versioned(&self.0.state)
        }

        fn restore(&mut self, version: u32, bytes: &[u8]) -> Result<(), String> {
            self.0.set_state($crate::__guest::state::restore_versioned(version, bytes)?);
            Ok(())
        }
    };
}

/// The SDK, for [`delegate_to_engine!`]'s expansion in the builds.
#[doc(hidden)]
pub use sda_guest as __guest;

/// The classifier with memory `M`: configuration and state.
pub struct Engine<M> {
    pub config: Config,
    /// Read it freely; replace it only through [`Engine::set_state`], which keeps `by_window` in step.
    pub state: State<M>,
    /// `(window_start_ms, pair)` of every remembered pair, oldest first: expiry pops from the front
    /// instead of scanning every pair after every record (which made 10^5 pairs cost seconds per batch).
    by_window: BTreeSet<(i64, (u32, u32))>,
}

impl<M: Memory> Engine<M> {
    /// Checks the configuration (what `init` rejects) and starts with no memory.
    pub fn new(config: Config) -> Result<Self, String> {
        if !(config.red_km.is_finite() && config.red_km > 0.0) {
            return Err(format!("`red_km` must be a positive number of km, not {}", config.red_km));
        }
        if !(config.yellow_km.is_finite() && config.yellow_km >= config.red_km) {
            return Err(format!("`yellow_km` ({}) must be at least `red_km` ({})", config.yellow_km, config.red_km));
        }
        if config.suppress_ms < 0 {
            return Err(format!("`suppress_ms` must not be negative, not {}", config.suppress_ms));
        }
        if !(config.red_pc.is_finite() && config.red_pc > 0.0 && config.red_pc <= 1.0) {
            return Err(format!("`red_pc` must be a probability above 0 and at most 1, not {}", config.red_pc));
        }
        if !(config.yellow_pc.is_finite() && config.yellow_pc > 0.0 && config.yellow_pc <= config.red_pc) {
            return Err(format!("`yellow_pc` ({}) must be above 0 and at most `red_pc` ({})", config.yellow_pc, config.red_pc));
        }
        if !(config.hard_body_radius_m.is_finite() && config.hard_body_radius_m >= 0.0) {
            return Err(format!("`hard_body_radius_m` must be a number of metres, 0 or more, not {}", config.hard_body_radius_m));
        }
        config.default_sigmas.check("default_sigmas")?;
        Ok(Engine { config, state: State::default(), by_window: BTreeSet::new() })
    }

    /// Replaces the whole state (a `restore`).
    pub fn set_state(&mut self, state: State<M>) {
        self.by_window = state.pairs.iter().map(|(pair, r)| (r.window_start_ms(), *pair)).collect();
        self.state = state;
    }

    pub fn process(&mut self, record: &Record<'_>, out: &mut Emitter) -> Result<(), Failure> {
        let c: Candidate<'_> = serde_json::from_slice(record.payload()).map_err(|e| match e.classify() {
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

    fn severity_by_miss(&self, miss_km: f64) -> Option<Severity> {
        if miss_km < self.config.red_km {
            Some(Severity::Red)
        } else if miss_km < self.config.yellow_km {
            Some(Severity::Yellow)
        } else {
            None
        }
    }

    fn severity_by_pc(&self, pc: f64) -> Option<Severity> {
        if pc >= self.config.red_pc {
            Some(Severity::Red)
        } else if pc >= self.config.yellow_pc {
            Some(Severity::Yellow)
        } else {
            None
        }
    }

    /// The candidate's severity by `grade_by`, from its miss distance and its probability of collision.
    fn severity(&self, c: &Candidate<'_>, pc: Option<&CollisionProbability>) -> Result<Option<Severity>, Failure> {
        let by_pc = || {
            pc.map(|p| self.severity_by_pc(p.pc)).ok_or_else(|| {
                Failure::validation(format!(
                    "candidate {}|{} of window {} carries no states at TCA, so no probability of collision: with `grade_by` = \
                     \"{}\" set `emit_states = true` in the correlator's config",
                    c.primary_id,
                    c.secondary_id,
                    c.window_start_ms,
                    if self.config.grade_by == GradeBy::Pc { "pc" } else { "both" }
                ))
            })
        };
        Ok(match self.config.grade_by {
            GradeBy::Miss => self.severity_by_miss(c.miss_distance_km),
            GradeBy::Pc => by_pc()?,
            GradeBy::Both => self.severity_by_miss(c.miss_distance_km).max(by_pc()?),
        })
    }

    /// Foster's 2D probability of collision at the reported TCA, with each object's covariance from the configured
    /// defaults for its regime (the inputs carry none yet); `None` without states.
    fn collision_probability(&self, c: &Candidate<'_>) -> Result<Option<CollisionProbability>, Failure> {
        let Some(states) = c.states_at_tca else { return Ok(None) };
        let object = |s: &sda_records::StateVector| {
            let covariance = self.config.default_sigmas.for_state(s.position_km, s.velocity_km_s).covariance();
            let at_tca = ObjectAtTca {
                position_km: s.position_km,
                velocity_km_s: s.velocity_km_s,
                position_covariance_m2: position_covariance_inertial(s.position_km, s.velocity_km_s, &covariance),
            };
            (at_tca, covariance)
        };
        let ((primary, primary_covariance), (secondary, secondary_covariance)) = (object(&states.primary), object(&states.secondary));
        let pc = pc_foster(&primary, &secondary, self.config.hard_body_radius_m).map_err(|e| {
            Failure::validation(format!(
                "no probability of collision for {}|{} in window {}: {e}",
                c.primary_id, c.secondary_id, c.window_start_ms
            ))
        })?;
        Ok(Some(CollisionProbability {
            pc,
            method: PcMethod::Foster1992,
            hard_body_radius_m: self.config.hard_body_radius_m,
            covariance_source: CovarianceSource::Default,
            primary_covariance_rtn: primary_covariance,
            secondary_covariance_rtn: secondary_covariance,
        }))
    }

    /// Forgets pairs that can no longer suppress anything: those whose window started
    /// `suppress_ms` or more before the latest window seen.
    fn expire(&mut self) {
        let Some(latest) = self.state.latest_window_start_ms else { return };
        while let Some(&(window_start_ms, pair)) = self.by_window.first() {
            if window_start_ms.saturating_add(self.config.suppress_ms) > latest {
                break;
            }
            self.by_window.pop_first();
            self.state.pairs.remove(&pair);
        }
    }

    fn classify(&mut self, c: &Candidate<'_>, out: &mut Emitter) -> Result<(), Failure> {
        // Foster's integration is the costliest step per candidate: graded by miss distance, it is only worked out for
        // a candidate that becomes an alert (after the suppression check below), not for every one.
        let by_miss = self.config.grade_by == GradeBy::Miss;
        let mut collision_probability = if by_miss { None } else { self.collision_probability(c)? };
        let Some(severity) = self.severity(c, collision_probability.as_ref())? else { return Ok(()) };
        let pair = (c.primary_id, c.secondary_id);
        if let Some(last) = self.state.pairs.get(&pair) {
            let within = c.window_start_ms < last.window_start_ms().saturating_add(self.config.suppress_ms);
            if within && severity <= last.severity() {
                return Err(Failure::suppressed(format!(
                    "{severity:?} for {}|{} in window {} repeats the {:?} alert of window {}{}",
                    c.primary_id,
                    c.secondary_id,
                    c.window_start_ms,
                    last.severity(),
                    last.window_start_ms(),
                    last.detail()
                )));
            }
        }
        if by_miss {
            collision_probability = self.collision_probability(c)?;
        }
        if let Some(replaced) = self.state.pairs.insert(pair, M::remember(c, severity)) {
            self.by_window.remove(&(replaced.window_start_ms(), pair));
        }
        self.by_window.insert((c.window_start_ms, pair));
        let alert = Alert {
            alert_id: alert_id(c.primary_id, c.secondary_id, c.window_start_ms),
            encounter: c,
            severity,
            tca_utc: rfc3339_utc(c.tca_ms),
            collision_probability,
        };
        out.emit_json(&alert.alert_id, &alert).at(c.tca_ms).push();
        Ok(())
    }
}
