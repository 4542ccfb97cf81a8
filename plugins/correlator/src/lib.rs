//! The windowed conjunction correlator: observations in, conjunction candidates out, per event-time window.
//!
//! The exact contract (windows, watermark, late data, duplicates, the miss
//! distance) is `plugins/SEMANTICS.md`. This crate builds natively too: the
//! screening is benchmarked and tested without wasm.
//!
//! # Layout
//! - [`observation`]: parsing and validation of Observation v1.
//! - [`orbit`]: two-body propagation.
//! - [`screen`]: finding every close pair in a closed window.
//! - [`Correlator`]: the operator: windows, watermark, state.

pub mod observation;
pub mod orbit;
pub mod screen;

use sda_guest::{Emitter, Failure, Operator, Record, export_operator, state};
use screen::ObjectState;
use serde::{Deserialize, Serialize};
use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashSet};

/// `[operators.NAME.config]` of the correlator.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Length of the tumbling event-time windows.
    #[serde(default = "defaults::window_ms")]
    pub window_ms: i64,
    /// How far behind the newest event time a record may be and still count.
    #[serde(default = "defaults::allowed_lateness_ms")]
    pub allowed_lateness_ms: i64,
    /// Pairs passing closer than this become candidates.
    #[serde(default = "defaults::screening_km")]
    pub screening_km: f64,
}

mod defaults {
    pub fn window_ms() -> i64 {
        60_000
    }
    pub fn allowed_lateness_ms() -> i64 {
        10_000
    }
    pub fn screening_km() -> f64 {
        5.0
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            window_ms: defaults::window_ms(),
            allowed_lateness_ms: defaults::allowed_lateness_ms(),
            screening_km: defaults::screening_km(),
        }
    }
}

/// One open window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Window {
    /// Each object's latest accepted observation in the window.
    objects: BTreeMap<u32, ObjectState>,
    /// Every observation id accepted into the window: repeats change nothing. Hashed (with fixed
    /// seeds, so snapshots are reproducible): the ordered set it replaced spent 14% of a run in
    /// `memcmp`, comparing ids that share long prefixes, and SipHash (the standard hasher) another
    /// 4% of a plugin run's time. The encoding is the same sequence of strings, so version 1
    /// state reads either way.
    accepted_ids: HashSet<String, foldhash::fast::FixedState>,
}

/// Everything the correlator remembers (state version 1).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct CorrelatorState {
    /// The window length the open windows were cut with.
    window_ms: i64,
    /// Greatest event time of the observations accepted so far.
    max_seen: Option<i64>,
    /// Greatest watermark the host has announced.
    host_watermark: Option<i64>,
    /// Open windows by index `k` (`[k*window_ms, (k+1)*window_ms)`).
    windows: BTreeMap<i64, Window>,
}

/// A pair of objects passing within the screening distance in one window.
#[derive(Debug, Serialize)]
pub struct Candidate<'a> {
    pub primary_id: u32,
    pub secondary_id: u32,
    pub window_start_ms: i64,
    pub window_end_ms: i64,
    pub tca_ms: i64,
    pub miss_distance_km: f64,
    pub relative_speed_km_s: f64,
    pub primary_observation_id: &'a str,
    pub secondary_observation_id: &'a str,
}

pub struct Correlator {
    config: Config,
    state: CorrelatorState,
}

impl Correlator {
    fn watermark(&self) -> Option<i64> {
        let own = self.state.max_seen.map(|m| m.saturating_sub(self.config.allowed_lateness_ms));
        own.max(self.state.host_watermark)
    }

    fn window_of(&self, epoch_ms: i64) -> (i64, i64, i64) {
        let k = epoch_ms.div_euclid(self.config.window_ms);
        let start = k * self.config.window_ms;
        (k, start, start.saturating_add(self.config.window_ms))
    }

    /// Closes, in order, every window the watermark has reached.
    fn close_ready(&mut self, out: &mut Emitter) {
        let Some(watermark) = self.watermark() else { return };
        while let Some(entry) = self.state.windows.first_entry() {
            let start = *entry.key() * self.config.window_ms;
            if start.saturating_add(self.config.window_ms) > watermark {
                break;
            }
            let window = entry.remove();
            self.emit_candidates(start, &window, out);
        }
    }

    fn emit_candidates(&self, start: i64, window: &Window, out: &mut Emitter) {
        let objects: Vec<ObjectState> = window.objects.values().cloned().collect();
        let end = start.saturating_add(self.config.window_ms);
        for c in screen::screen(&objects, start, self.config.window_ms, self.config.screening_km) {
            let (p, s) = (&objects[c.primary], &objects[c.secondary]);
            let tca_ms = start.saturating_add((c.tca_s * 1000.0).round() as i64);
            let candidate = Candidate {
                primary_id: p.object_id,
                secondary_id: s.object_id,
                window_start_ms: start,
                window_end_ms: end,
                tca_ms,
                miss_distance_km: c.miss_distance_km,
                relative_speed_km_s: c.relative_speed_km_s,
                primary_observation_id: &p.observation_id,
                secondary_observation_id: &s.observation_id,
            };
            let key = format!("{}|{}|{start}", p.object_id, s.object_id);
            out.emit_json_unattributed(tca_ms, key, &candidate);
        }
    }
}

impl Operator for Correlator {
    type Config = Config;

    fn init(config: Config) -> Result<Self, String> {
        if config.window_ms <= 0 {
            return Err(format!("`window_ms` must be positive, not {}", config.window_ms));
        }
        if config.allowed_lateness_ms < 0 {
            return Err(format!("`allowed_lateness_ms` must not be negative, not {}", config.allowed_lateness_ms));
        }
        if !(config.screening_km.is_finite() && config.screening_km > 0.0) {
            return Err(format!("`screening_km` must be a positive number of km, not {}", config.screening_km));
        }
        let state = CorrelatorState { window_ms: config.window_ms, ..CorrelatorState::default() };
        Ok(Correlator { config, state })
    }

    fn process(&mut self, record: &Record<'_>, out: &mut Emitter) -> Result<(), Failure> {
        let obs = observation::parse(record.payload())?;
        let (k, start, end) = self.window_of(obs.epoch_ms);
        if self.watermark().is_some_and(|w| end <= w) {
            return Err(Failure::late(format!(
                "observation `{}` at {} belongs to window [{start}, {end}), closed at watermark {}",
                obs.observation_id,
                obs.epoch_ms,
                self.watermark().unwrap_or_default()
            )));
        }
        let duplicate = |id: &str| Failure::duplicate(format!("observation `{id}` was already taken into account"));
        if self.state.windows.iter().any(|(&other, w)| other != k && w.accepted_ids.contains(&obs.observation_id)) {
            return Err(duplicate(&obs.observation_id));
        }
        let window = self.state.windows.entry(k).or_default();
        // The check in the observation's own window and the insertion are one lookup.
        if !window.accepted_ids.insert(obs.observation_id.clone()) {
            return Err(duplicate(&obs.observation_id));
        }
        let state = ObjectState {
            object_id: obs.object_id,
            observation_id: obs.observation_id,
            epoch_ms: obs.epoch_ms,
            position_km: obs.position_km,
            velocity_km_s: obs.velocity_km_s,
        };
        match window.objects.entry(obs.object_id) {
            Entry::Vacant(slot) => {
                slot.insert(state);
            }
            Entry::Occupied(mut held) => {
                let newer = (state.epoch_ms, state.observation_id.as_str()) > (held.get().epoch_ms, held.get().observation_id.as_str());
                if newer {
                    held.insert(state);
                }
            }
        }
        self.state.max_seen = Some(self.state.max_seen.map_or(obs.epoch_ms, |m| m.max(obs.epoch_ms)));
        self.close_ready(out);
        Ok(())
    }

    fn on_watermark(&mut self, event_time_ms: i64, out: &mut Emitter) {
        self.state.host_watermark = Some(self.state.host_watermark.map_or(event_time_ms, |w| w.max(event_time_ms)));
        self.close_ready(out);
    }

    fn snapshot(&self) -> Vec<u8> {
        state::encode(&self.state)
    }

    fn restore(&mut self, version: u32, bytes: &[u8]) -> Result<(), String> {
        if version != 1 {
            return Err(format!("unknown state version {version}; this build reads version 1"));
        }
        let restored: CorrelatorState = state::decode(bytes)?;
        if restored.window_ms != self.config.window_ms {
            return Err(format!(
                "the state holds windows of {} ms, but this instance is configured for `window_ms` = {}",
                restored.window_ms, self.config.window_ms
            ));
        }
        self.state = restored;
        Ok(())
    }
}

export_operator!(Correlator);
