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
//! - [`catalogue`]: catalogue mode's carried states.
//! - `synthetic`: a catalogue shaped like the real one, for the benches.
//! - [`Correlator`]: the operator: windows, watermark, state.

pub mod catalogue;
pub mod observation;
pub mod orbit;
pub mod screen;
#[doc(hidden)]
pub mod synthetic;

use catalogue::Catalogue;
use screen::ObjectState;
use sda_guest::state::{self, VersionedState};
use sda_guest::{Emitter, Failure, InputScope, Operator, OrderKey, Record, Shard, export_operator};
use sda_records::StatesAtTca;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
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
    /// Catalogue mode: how long an object's latest state is carried into later windows
    /// (0, the default: not at all, the windowed mode). See SEMANTICS.md.
    #[serde(default)]
    pub state_horizon_ms: i64,
    /// The clock guard: an observation more than this ahead of the newest accepted one is
    /// dead-lettered and does not move the watermark (0: no guard). See SEMANTICS.md.
    #[serde(default = "defaults::max_ahead_ms")]
    pub max_ahead_ms: i64,
    /// ...unless it is this many such observations in a row: then the stream itself moved on.
    #[serde(default = "defaults::ahead_confirmations")]
    pub ahead_confirmations: u32,
    /// Write both objects' states at the reported TCA into each candidate (`states_at_tca`), for
    /// collision probability and CDMs downstream. Off by default: candidates stay as they were.
    #[serde(default)]
    pub emit_states: bool,
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
    pub fn max_ahead_ms() -> i64 {
        3_600_000
    }
    pub fn ahead_confirmations() -> u32 {
        3
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            window_ms: defaults::window_ms(),
            allowed_lateness_ms: defaults::allowed_lateness_ms(),
            screening_km: defaults::screening_km(),
            state_horizon_ms: 0,
            max_ahead_ms: defaults::max_ahead_ms(),
            ahead_confirmations: defaults::ahead_confirmations(),
            emit_states: false,
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
    accepted_ids: HashSet<compact_str::CompactString, foldhash::fast::FixedState>,
}

/// Everything the correlator remembers (state version 4: these fields by postcard, then the
/// catalogue's columns to the end of the bytes).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct CorrelatorState {
    /// The window length the open windows were cut with.
    window_ms: i64,
    /// Greatest event time of the observations accepted so far.
    max_seen: Option<i64>,
    /// Greatest watermark the host has announced.
    host_watermark: Option<i64>,
    /// Windows that received an observation and are not screened yet, by index `k`
    /// (`[k*window_ms, (k+1)*window_ms)`): the open ones, and between a record's `process` call
    /// and the next `on-watermark`, the ones it closed.
    windows: BTreeMap<i64, Window>,
    /// Catalogue mode: each object's carried state (its latest state from a screened window). Not
    /// encoded with the rest: its columns follow it (see `snapshot`).
    #[serde(skip)]
    catalogue: Catalogue,
    /// Index of the last window screened.
    last_screened: Option<i64>,
    /// How many valid observations in a row, up to the last one, were too far ahead (the clock guard).
    ahead_in_a_row: u32,
}

/// Version 2 added the catalogue (carried states) and the last window screened; version 3 holds the
/// catalogue as columns; version 4 counts the observations too far ahead in a row.
impl VersionedState for CorrelatorState {
    const VERSION: u32 = 4;

    /// The fields by postcard, then the catalogue's columns: one buffer of the exact size, the
    /// columns written without going through serde.
    fn encode(&self) -> Vec<u8> {
        state::encode_then(self, self.catalogue.encoded_len(), |bytes| self.catalogue.encode_into(bytes))
    }

    fn decode(bytes: &[u8]) -> Result<Self, String> {
        let (mut restored, columns) = state::decode_prefix::<CorrelatorState>(bytes)?;
        restored.catalogue = Catalogue::decode(columns)?;
        Ok(restored)
    }

    fn migrate(version: u32, bytes: &[u8]) -> Result<Self, String> {
        Ok(match version {
            1 => state::decode::<CorrelatorStateV1>(bytes)?.into(),
            2 => state::decode::<CorrelatorStateV2>(bytes)?.into(),
            3 => {
                let (head, columns) = state::decode_prefix::<CorrelatorStateV3>(bytes)?;
                CorrelatorState { catalogue: Catalogue::decode(columns)?, ..head.into() }
            }
            _ => return Err("no build of the correlator wrote it (its versions start at 1)".to_string()),
        })
    }
}

/// State version 3: version 4 before the clock guard (its fields by postcard, then the catalogue's columns).
#[derive(Deserialize)]
struct CorrelatorStateV3 {
    window_ms: i64,
    max_seen: Option<i64>,
    host_watermark: Option<i64>,
    windows: BTreeMap<i64, Window>,
    last_screened: Option<i64>,
}

impl From<CorrelatorStateV3> for CorrelatorState {
    fn from(v3: CorrelatorStateV3) -> Self {
        CorrelatorState {
            window_ms: v3.window_ms,
            max_seen: v3.max_seen,
            host_watermark: v3.host_watermark,
            windows: v3.windows,
            catalogue: Catalogue::default(),
            last_screened: v3.last_screened,
            ahead_in_a_row: 0,
        }
    }
}

/// State version 2: version 3 with the catalogue as a map (postcard: entry by entry).
#[derive(Deserialize)]
struct CorrelatorStateV2 {
    window_ms: i64,
    max_seen: Option<i64>,
    host_watermark: Option<i64>,
    windows: BTreeMap<i64, Window>,
    catalogue: BTreeMap<u32, ObjectState>,
    last_screened: Option<i64>,
}

impl From<CorrelatorStateV2> for CorrelatorState {
    fn from(v2: CorrelatorStateV2) -> Self {
        CorrelatorState {
            window_ms: v2.window_ms,
            max_seen: v2.max_seen,
            host_watermark: v2.host_watermark,
            windows: v2.windows,
            catalogue: Catalogue::from_map(v2.catalogue),
            last_screened: v2.last_screened,
            ahead_in_a_row: 0,
        }
    }
}

/// State version 1: the windowed mode's state, before catalogue mode.
#[derive(Deserialize)]
struct CorrelatorStateV1 {
    window_ms: i64,
    max_seen: Option<i64>,
    host_watermark: Option<i64>,
    windows: BTreeMap<i64, Window>,
}

impl From<CorrelatorStateV1> for CorrelatorState {
    fn from(v1: CorrelatorStateV1) -> Self {
        // Version 1 screened a window the moment it closed, so every window it holds is open, and
        // the last one it screened is not needed: windowed mode screens only windows with data.
        CorrelatorState {
            window_ms: v1.window_ms,
            max_seen: v1.max_seen,
            host_watermark: v1.host_watermark,
            windows: v1.windows,
            catalogue: Catalogue::default(),
            last_screened: None,
            ahead_in_a_row: 0,
        }
    }
}

/// A pair of objects passing within the screening distance in one window: Candidate v1, what the classifier reads.
pub use sda_records::Candidate;

pub struct Correlator {
    config: Config,
    state: CorrelatorState,
    /// Its buffers, kept from one window to the next (not state: nothing in them outlives a screening).
    screener: screen::Screener,
    /// The share of the pairs this instance screens: the whole, unless the host runs several.
    shard: screen::Shard,
}

impl Correlator {
    fn watermark(&self) -> Option<i64> {
        let own = self.state.max_seen.map(|m| m.saturating_sub(self.config.allowed_lateness_ms));
        own.max(self.state.host_watermark)
    }

    /// The clock guard (SEMANTICS.md, "Clock guard"): refuses an observation too far ahead of the
    /// newest accepted one, unless enough of them in a row say the stream itself moved on.
    fn clock_guard(&mut self, obs: &observation::Observation) -> Result<(), Failure> {
        let limit = self.config.max_ahead_ms;
        let ahead_ms = self.state.max_seen.map_or(0, |newest| i128::from(obs.epoch_ms) - i128::from(newest));
        if limit == 0 || ahead_ms <= i128::from(limit) {
            self.state.ahead_in_a_row = 0;
            return Ok(());
        }
        self.state.ahead_in_a_row = self.state.ahead_in_a_row.saturating_add(1);
        let needed = self.config.ahead_confirmations;
        if self.state.ahead_in_a_row >= needed {
            // So many in a row: a gap in the stream, not one wrong clock. This one is accepted.
            self.state.ahead_in_a_row = 0;
            return Ok(());
        }
        Err(Failure::validation(format!(
            "observation `{}` at epoch_ms {} is {ahead_ms} ms ahead of the newest accepted observation ({}), more than \
             `max_ahead_ms` = {limit}: a wrong clock is taken for one unless {needed} observations in a row are this far ahead \
             (this is number {} in a row)",
            obs.observation_id,
            obs.epoch_ms,
            self.state.max_seen.unwrap_or_default(),
            self.state.ahead_in_a_row
        )))
    }

    fn window_of(&self, epoch_ms: i64) -> (i64, i64, i64) {
        let k = epoch_ms.div_euclid(self.config.window_ms);
        let start = k * self.config.window_ms;
        (k, start, start.saturating_add(self.config.window_ms))
    }

    /// Whether window `k` is closed: the watermark is at or past its end.
    fn is_closed(&self, k: i64) -> bool {
        let end = k.saturating_mul(self.config.window_ms).saturating_add(self.config.window_ms);
        self.watermark().is_some_and(|w| end <= w)
    }

    /// Screens, in order, every window the watermark has closed (see SEMANTICS.md, "Which windows
    /// are screened"): the windows with data and, in catalogue mode, the gaps between them while
    /// carried states are alive.
    fn close_ready(&mut self, out: &mut Emitter) {
        loop {
            // Windows after the last one with data are never screened.
            let Some(&next_with_data) = self.state.windows.keys().next() else { return };
            let k = match self.state.last_screened {
                Some(last) if !self.state.catalogue.is_empty() => last + 1,
                _ => next_with_data,
            };
            if !self.is_closed(k) {
                return;
            }
            let fresh = if k == next_with_data { self.state.windows.remove(&k) } else { None };
            self.screen_window(k, fresh.map(|w| w.objects).unwrap_or_default(), out);
            self.state.last_screened = Some(k);
        }
    }

    /// Screens window `k` with its fresh states and (in catalogue mode) the live carried ones, then
    /// carries the fresh states on.
    fn screen_window(&mut self, k: i64, fresh: BTreeMap<u32, ObjectState>, out: &mut Emitter) {
        let start = k.saturating_mul(self.config.window_ms);
        let horizon = self.config.state_horizon_ms;
        if horizon == 0 && self.state.catalogue.is_empty() {
            // The windowed mode: the fresh states alone.
            let states: Vec<&ObjectState> = fresh.values().collect();
            Self::emit_candidates(&mut self.screener, self.shard, &self.config, start, &states, None, out);
            return;
        }
        // Expiry, then the fresh states over the carried ones: the window's states are the catalogue
        // carried on. (A horizon lowered to 0 on restore expires every carried state here.)
        self.state.catalogue.close_window(start, horizon, fresh);
        let states: Vec<&ObjectState> = self.state.catalogue.states().iter().collect();
        Self::emit_candidates(&mut self.screener, self.shard, &self.config, start, &states, Some(self.state.catalogue.shapes()), out);
        if horizon == 0 {
            self.state.catalogue = Catalogue::default();
        }
    }

    fn emit_candidates(
        screener: &mut screen::Screener,
        shard: screen::Shard,
        config: &Config,
        start: i64,
        objects: &[&ObjectState],
        shapes: Option<&[orbit::Shape]>,
        out: &mut Emitter,
    ) {
        if objects.len() < 2 {
            return;
        }
        let end = start.saturating_add(config.window_ms);
        for c in screener.screen_with_shapes(objects, shapes, start, config.window_ms, config.screening_km, shard) {
            let (p, s) = (objects[c.primary], objects[c.secondary]);
            let tca_ms = start.saturating_add((c.tca_s * 1000.0).round() as i64);
            let candidate = Candidate {
                primary_id: p.object_id,
                secondary_id: s.object_id,
                window_start_ms: start,
                window_end_ms: end,
                tca_ms,
                miss_distance_km: c.miss_distance_km,
                relative_speed_km_s: c.relative_speed_km_s,
                primary_observation_id: Cow::Borrowed(&p.observation_id),
                secondary_observation_id: Cow::Borrowed(&s.observation_id),
                states_at_tca: config.emit_states.then(|| StatesAtTca { primary: p.state_at(tca_ms), secondary: s.state_at(tca_ms) }),
            };
            let key = format!("{}|{}|{start}", p.object_id, s.object_id);
            // The order one instance screens in: the host merges the shards' candidates by it.
            let order = OrderKey::new().i64(start).u32(p.object_id).u32(s.object_id);
            out.emit_json(key, &candidate).at(tca_ms).ordered(&order).push();
        }
    }
}

impl Operator for Correlator {
    type Config = Config;
    /// The state's version: see `CorrelatorState`'s `VersionedState` impl.
    const STATE_VERSION: u32 = CorrelatorState::VERSION;
    /// Screening is all-pairs: every instance needs every object, and owns a share of the pairs.
    const INPUT_SCOPE: InputScope = InputScope::AllRecords;

    fn init_shard(config: Config, shard: Shard) -> Result<Self, String> {
        let mut correlator = Self::init(config)?;
        correlator.shard = screen::Shard { index: shard.index, count: shard.count };
        Ok(correlator)
    }

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
        if config.state_horizon_ms < 0 {
            return Err(format!("`state_horizon_ms` must not be negative, not {} (0 turns catalogue mode off)", config.state_horizon_ms));
        }
        if config.max_ahead_ms < 0 {
            return Err(format!("`max_ahead_ms` must not be negative, not {} (0 turns the clock guard off)", config.max_ahead_ms));
        }
        if config.ahead_confirmations == 0 {
            return Err("`ahead_confirmations` must be at least 1".to_string());
        }
        let state = CorrelatorState { window_ms: config.window_ms, ..CorrelatorState::default() };
        Ok(Correlator { config, state, screener: screen::Screener::new(), shard: screen::Shard::WHOLE })
    }

    fn process(&mut self, record: &Record<'_>, _out: &mut Emitter) -> Result<(), Failure> {
        let obs = observation::parse(record.payload())?;
        self.clock_guard(&obs)?;
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
        // Only open windows count: one that is closed but not screened yet (until the next
        // `on-watermark`) has been left behind, as if screened already.
        let open = |other: i64| !self.is_closed(other);
        if self.state.windows.iter().any(|(&other, w)| other != k && open(other) && w.accepted_ids.contains(&obs.observation_id)) {
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
        // The windows this closes are screened in the next `on-watermark` call, under its budget.
        self.state.max_seen = Some(self.state.max_seen.map_or(obs.epoch_ms, |m| m.max(obs.epoch_ms)));
        Ok(())
    }

    fn on_watermark(&mut self, event_time_ms: i64, out: &mut Emitter) {
        // `NO_WATERMARK` (after every batch) says nothing new: only the record-driven closes run.
        if event_time_ms != sda_guest::NO_WATERMARK {
            self.state.host_watermark = Some(self.state.host_watermark.map_or(event_time_ms, |w| w.max(event_time_ms)));
        }
        self.close_ready(out);
    }

    fn snapshot(&self) -> Vec<u8> {
        state::snapshot_versioned(&self.state)
    }

    fn restore(&mut self, version: u32, bytes: &[u8]) -> Result<(), String> {
        let restored: CorrelatorState = state::restore_versioned(version, bytes)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use sda_guest::testing::Harness;

    /// Version 2's layout, to write a state as a build of version 2 wrote it.
    #[derive(Serialize)]
    struct WrittenAsV2<'a> {
        window_ms: i64,
        max_seen: Option<i64>,
        host_watermark: Option<i64>,
        windows: &'a BTreeMap<i64, Window>,
        catalogue: BTreeMap<u32, &'a ObjectState>,
        last_screened: Option<i64>,
    }

    fn observation(id: &str, object: u32, epoch_ms: i64, x_km: f64) -> String {
        format!(
            r#"{{"observation_id":"{id}","object_id":{object},"sensor_id":"s","epoch_ms":{epoch_ms},"position_km":[{x_km},0,0],"velocity_km_s":[0,7.5,0]}}"#
        )
    }

    #[test]
    fn a_state_of_version_2_restores_to_the_same_catalogue_and_the_same_outputs() {
        let config = r#"{"state_horizon_ms": 600000}"#;
        let mut h = Harness::<Correlator>::new(config).unwrap();
        // Objects side by side in windows 0 and 1 (carried into 1 and 2), and one more in window 2, left open.
        let lines: Vec<String> = (0..6)
            .map(|i| {
                observation(
                    &format!("obs-{i}"),
                    100 + i % 4,
                    [1_000, 1_000, 61_000, 61_000, 121_000, 151_000][i as usize],
                    7000.0 + f64::from(i),
                )
            })
            .chain([observation("obs-open", 200, 125_000, 7001.5)])
            .collect();
        let outputs_before = h.process(&lines.iter().map(|l| ("k", l.as_str(), 0)).collect::<Vec<_>>()).outputs.len();
        let state = &h.operator().state;
        assert!(state.catalogue.len() >= 4 && !state.windows.is_empty() && outputs_before > 0, "{state:?}");
        let v2 = state::encode(&WrittenAsV2 {
            window_ms: state.window_ms,
            max_seen: state.max_seen,
            host_watermark: state.host_watermark,
            windows: &state.windows,
            catalogue: state.catalogue.states().iter().map(|s| (s.object_id, s)).collect(),
            last_screened: state.last_screened,
        });
        let mut restored = Harness::<Correlator>::new(config).unwrap();
        restored.restore(2, &v2).unwrap();
        assert_eq!(restored.operator().state, h.operator().state);
        let (version, v4) = h.snapshot();
        assert_eq!(version, 4);
        assert_ne!(v4, v2, "the catalogue is written as columns now");
        assert_eq!(restored.watermark(i64::MAX).outputs, h.watermark(i64::MAX).outputs);
    }

    /// Feeds observations one by one; returns the ids of the ones dead-lettered as `Validation`.
    fn refused_ids(h: &mut Harness<Correlator>, observations: &[(&str, u32, i64)]) -> Vec<String> {
        let mut refused = Vec::new();
        for &(id, object, epoch_ms) in observations {
            let line = observation(id, object, epoch_ms, 7000.0 + f64::from(object));
            for (_, failure) in h.process(&[("k", &line, 0)]).failures {
                assert_eq!(failure.reason(), sda_guest::FailureReason::Validation, "{id}: {failure:?}");
                assert!(failure.message().contains("max_ahead_ms"), "{}", failure.message());
                refused.push(id.to_string());
            }
        }
        refused
    }

    const HOUR_MS: i64 = 3_600_000;

    #[test]
    fn one_observation_from_a_wrong_clock_is_refused_and_moves_nothing() {
        let mut h = Harness::<Correlator>::new("{}").unwrap();
        let t0 = 1_767_225_600_000;
        let year_ahead = t0 + 365 * 24 * HOUR_MS;
        let refused = refused_ids(&mut h, &[("a", 1, t0), ("bad", 2, year_ahead), ("b", 3, t0 + 1_000), ("c", 4, t0 + 2_000)]);
        assert_eq!(refused, ["bad"]);
        assert_eq!(h.operator().state.max_seen, Some(t0 + 2_000), "the watermark follows the good clocks");
        assert_eq!(h.operator().state.ahead_in_a_row, 0, "a good observation ends the run");
        // Exactly max_ahead_ms ahead is not too far.
        assert!(refused_none(&mut h, &[("d", 5, t0 + 2_000 + HOUR_MS)]));
    }

    fn refused_none(h: &mut Harness<Correlator>, observations: &[(&str, u32, i64)]) -> bool {
        refused_ids(h, observations).is_empty()
    }

    #[test]
    fn a_run_of_observations_ahead_is_a_gap_in_the_stream_and_the_last_of_the_run_is_accepted() {
        let mut h = Harness::<Correlator>::new("{}").unwrap();
        let t0 = 1_767_225_600_000;
        let after_gap = t0 + 5 * HOUR_MS;
        let refused = refused_ids(
            &mut h,
            &[("a", 1, t0), ("g1", 1, after_gap), ("g2", 2, after_gap + 10), ("g3", 3, after_gap + 20), ("g4", 4, after_gap + 30)],
        );
        assert_eq!(refused, ["g1", "g2"], "the third in a row is taken as the stream moving on");
        assert_eq!(h.operator().state.max_seen, Some(after_gap + 30));
        // A wrong clock's run broken by one good observation starts again from one.
        let mut h = Harness::<Correlator>::new(r#"{"ahead_confirmations": 2}"#).unwrap();
        let refused =
            refused_ids(&mut h, &[("a", 1, t0), ("x1", 9, after_gap), ("b", 2, t0 + 5), ("x2", 9, after_gap + 1), ("c", 3, t0 + 9)]);
        assert_eq!(refused, ["x1", "x2"]);
        assert_eq!(h.operator().state.max_seen, Some(t0 + 9));
    }

    #[test]
    fn the_count_in_a_row_survives_a_snapshot_and_a_state_of_version_3_restores_with_none() {
        let t0 = 1_767_225_600_000;
        let far = t0 + 2 * HOUR_MS;
        let mut h = Harness::<Correlator>::new("{}").unwrap();
        assert_eq!(refused_ids(&mut h, &[("a", 1, t0), ("g1", 2, far), ("g2", 3, far + 1)]), ["g1", "g2"]);
        let (version, bytes) = h.snapshot();
        assert_eq!(version, 4);
        let mut restored = Harness::<Correlator>::new("{}").unwrap();
        restored.restore(version, &bytes).unwrap();
        assert!(refused_none(&mut restored, &[("g3", 4, far + 2)]), "the third in a row, counted across the restore");
        // Version 3: the same head without the count, then the columns.
        #[derive(Serialize)]
        struct WrittenAsV3<'a> {
            window_ms: i64,
            max_seen: Option<i64>,
            host_watermark: Option<i64>,
            windows: &'a BTreeMap<i64, Window>,
            last_screened: Option<i64>,
        }
        let state = &h.operator().state;
        let v3 = state::encode_then(
            &WrittenAsV3 {
                window_ms: state.window_ms,
                max_seen: state.max_seen,
                host_watermark: state.host_watermark,
                windows: &state.windows,
                last_screened: state.last_screened,
            },
            state.catalogue.encoded_len(),
            |bytes| state.catalogue.encode_into(bytes),
        );
        let mut from_v3 = Harness::<Correlator>::new("{}").unwrap();
        from_v3.restore(3, &v3).unwrap();
        assert_eq!(from_v3.operator().state, CorrelatorState { ahead_in_a_row: 0, ..h.operator().state.clone() });
    }

    #[test]
    fn the_guard_can_be_turned_off_and_its_settings_are_checked() {
        let t0 = 1_767_225_600_000;
        let mut h = Harness::<Correlator>::new(r#"{"max_ahead_ms": 0}"#).unwrap();
        assert!(refused_none(&mut h, &[("a", 1, t0), ("far", 2, t0 + 1000 * HOUR_MS)]));
        assert!(Harness::<Correlator>::new(r#"{"max_ahead_ms": -1}"#).err().unwrap().contains("`max_ahead_ms` must not be negative"));
        assert!(
            Harness::<Correlator>::new(r#"{"ahead_confirmations": 0}"#).err().unwrap().contains("`ahead_confirmations` must be at least 1")
        );
    }

    #[test]
    fn inline_observation_ids_encode_as_the_strings_state_version_2_was_written_with() {
        // The state's format did not change when ids moved inline: checkpoints restore either way.
        for id in ["", "obs-1", "exactly-24-bytes-long-id", "an id longer than twenty-four bytes, kept on the heap", "ünïcødé"] {
            let inline = compact_str::CompactString::from(id);
            assert_eq!(state::encode(&inline), state::encode(&id.to_string()), "{id:?}");
            assert_eq!(state::decode::<compact_str::CompactString>(&state::encode(&id.to_string())).unwrap(), id);
        }
    }
}
