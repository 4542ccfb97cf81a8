//! The element-set operator: element sets (OMM, TLE) in, Observation v1 state vectors out, by SGP4 on a grid of ticks.
//!
//! The contract (ticks, watermark, which element set a tick uses, ids, state) is `plugins/elsets/README.md`.
//!
//! # Layout
//! - [`elements`]: reading TLEs and OMM JSON into an [`elements::ElementSet`], each refusal named.
//! - [`propagation`]: SGP4 (the `sgp4` crate, Vallado's improved mode, WGS-72) with Vallado's error codes.
//! - [`Elsets`]: the operator: acceptance, ticks, emission, state.

pub mod elements;
pub mod propagation;

use elements::{ElementSet, Refusal};
use propagation::{Propagator, TemeState, norm};
use sda_guest::state::{self, VersionedState};
use sda_guest::{Emitter, Failure, Operator, Record, export_operator};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `[operators.NAME.config]` of the element-set operator.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Ticks are the multiples of this (Unix ms).
    #[serde(default = "defaults::cadence_ms")]
    pub cadence_ms: i64,
    /// How far past the watermark ticks are emitted: the look-ahead of the states.
    #[serde(default = "defaults::span_ms")]
    pub span_ms: i64,
    /// How far behind the newest element-set epoch the watermark stays.
    #[serde(default)]
    pub allowed_lateness_ms: i64,
    /// The first tick (rounded up to a tick); without it, the first tick at or after the first accepted epoch less
    /// the lateness.
    #[serde(default)]
    pub start_ms: Option<i64>,
    /// The `sensor_id` of every observation, and the first part of its `observation_id`.
    #[serde(default = "defaults::sensor_id")]
    pub sensor_id: String,
}

mod defaults {
    pub fn cadence_ms() -> i64 {
        60_000
    }
    pub fn span_ms() -> i64 {
        3_600_000
    }
    pub fn sensor_id() -> String {
        "elsets".to_string()
    }
}

/// Observation v1's rules on a state (plugins/SEMANTICS.md): an emitted state must pass the correlator's reader.
pub const MIN_RADIUS_KM: f64 = 6378.137;
pub const MAX_RADIUS_KM: f64 = 500_000.0;
pub const MAX_SPEED_KM_S: f64 = 20.0;
/// Observation v1's `epoch_ms` range (the instants RFC 3339 can write): no tick outside it is emitted.
pub const MIN_EPOCH_MS: i64 = -62_167_219_200_000;
pub const MAX_EPOCH_MS: i64 = 253_402_300_799_999;

/// One accepted element set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Accepted {
    /// Its place in the order of acceptance, from 0.
    sequence: u64,
    set: ElementSet,
    /// Why SGP4 failed for it at a tick, if it did: the object is left out of that tick and every later one that
    /// uses this set.
    failure: Option<String>,
}

/// Ticks `first_ms..=last_ms` (every `cadence_ms`), decided when the element sets accepted so far numbered
/// `sequence_limit`: they use the sets with a smaller sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct DecidedTicks {
    first_ms: i64,
    last_ms: i64,
    sequence_limit: u64,
}

/// Everything the operator remembers (state version 1).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct ElsetsState {
    /// The cadence the ticks were laid with: a state cannot be restored under another.
    cadence_ms: i64,
    /// The sequence number of the next accepted element set.
    next_sequence: u64,
    /// Per object, the accepted element sets some tick to come may still use, in (epoch, sequence) order.
    sets: BTreeMap<u32, Vec<Accepted>>,
    /// The greatest accepted epoch, Unix ms (rounded down).
    newest_epoch_ms: Option<i64>,
    /// The first tick not decided yet; none before the first accepted element set (unless `start_ms` is set).
    next_tick_ms: Option<i64>,
    /// Ticks decided in `process` whose states the next `on_watermark` computes, in increasing order.
    decided: Vec<DecidedTicks>,
    /// States left out of a tick because SGP4 failed (or gave a state Observation v1 refuses) for the set chosen.
    states_left_out: u64,
}

impl VersionedState for ElsetsState {
    const VERSION: u32 = 1;
}

pub struct Elsets {
    config: Config,
    state: ElsetsState,
    /// SGP4 initialised per accepted set, by sequence number: not state, rebuilt when needed after a restore.
    propagators: BTreeMap<u64, Propagator>,
}

/// The Observation v1 record, fields in the order SEMANTICS.md writes them.
#[derive(Serialize)]
struct ObservationV1<'a> {
    observation_id: &'a str,
    object_id: u32,
    sensor_id: &'a str,
    epoch_ms: i64,
    position_km: [f64; 3],
    velocity_km_s: [f64; 3],
}

/// Whether a state passes Observation v1's rules; the rule it breaks otherwise.
pub fn check_observation_rules(state: &TemeState) -> Result<(), String> {
    if !state.position_km.iter().chain(&state.velocity_km_s).all(|v| v.is_finite()) {
        return Err("a component is not finite".to_string());
    }
    let radius_km = norm(state.position_km);
    if radius_km < MIN_RADIUS_KM {
        return Err(format!("|position| {radius_km} km is below Observation v1's minimum {MIN_RADIUS_KM} km"));
    }
    if radius_km > MAX_RADIUS_KM {
        return Err(format!("|position| {radius_km} km is above Observation v1's maximum {MAX_RADIUS_KM} km"));
    }
    let speed = norm(state.velocity_km_s);
    if speed > MAX_SPEED_KM_S {
        return Err(format!("|velocity| {speed} km/s is above Observation v1's maximum {MAX_SPEED_KM_S} km/s"));
    }
    Ok(())
}

/// Reads, initialises and checks one element set as `process` does: the set if it would be accepted.
pub fn accept(payload: &[u8]) -> Result<(ElementSet, Propagator), Refusal> {
    let set = elements::parse(payload)?;
    let propagator = Propagator::new(&set).map_err(Refusal::Sgp4)?;
    let at_epoch = propagator.at_minutes(0.0).map_err(Refusal::Sgp4)?;
    check_observation_rules(&at_epoch).map_err(Refusal::StateAtEpoch)?;
    Ok((set, propagator))
}

fn to_failure(refusal: &Refusal) -> Failure {
    if refusal.is_deserialization() { Failure::deserialization(refusal.to_string()) } else { Failure::validation(refusal.to_string()) }
}

/// `x` rounded down (`floor`) or up to a multiple of `step`, in i128 so no rounding overflows.
fn floor_to(x: i128, step: i128) -> i128 {
    x.div_euclid(step) * step
}

fn ceil_to(x: i128, step: i128) -> i128 {
    -floor_to(-x, step)
}

impl Elsets {
    /// The element sets held, as (object, epoch in Unix us, sequence number), objects in increasing id: what ticks
    /// to come may still use. For tests and inspection.
    pub fn held_element_sets(&self) -> Vec<(u32, i64, u64)> {
        self.state.sets.iter().flat_map(|(&object, sets)| sets.iter().map(move |a| (object, a.set.epoch_us, a.sequence))).collect()
    }

    /// How many states were left out of their tick because SGP4 failed for the set chosen (see README.md).
    pub fn states_left_out(&self) -> u64 {
        self.state.states_left_out
    }

    /// The tick grid clamped to Observation v1's epochs: the first tick at or after `at_least_ms`.
    fn first_tick_at_or_after(&self, at_least_us: i128) -> i64 {
        let cadence = i128::from(self.config.cadence_ms);
        let tick_ms = ceil_to(at_least_us, cadence * 1000) / 1000;
        tick_ms.max(ceil_to(i128::from(MIN_EPOCH_MS), cadence)) as i64
    }

    /// Decides every tick up to `frontier_ms` (E) not decided yet, with the element sets accepted so far.
    fn decide_up_to(&mut self, frontier_ms: i64) {
        let Some(next) = self.state.next_tick_ms else { return };
        let cadence = i128::from(self.config.cadence_ms);
        let last = floor_to(i128::from(frontier_ms.min(MAX_EPOCH_MS)), cadence) as i64;
        if last < next {
            return;
        }
        let limit = self.state.next_sequence;
        match self.state.decided.last_mut() {
            // The same sets decide both: one range (only the end of input does this).
            Some(range) if range.sequence_limit == limit && range.last_ms.saturating_add(self.config.cadence_ms) == next => {
                range.last_ms = last
            }
            _ => self.state.decided.push(DecidedTicks { first_ms: next, last_ms: last, sequence_limit: limit }),
        }
        // Past the last representable tick, `next` stays above every frontier.
        self.state.next_tick_ms = Some(last.saturating_add(self.config.cadence_ms));
    }

    /// The emission frontier E = W + span_ms, W = newest epoch - allowed_lateness_ms (at the end of input, W = newest).
    fn frontier_ms(&self, end_of_input: bool) -> Option<i64> {
        let lateness = if end_of_input { 0 } else { self.config.allowed_lateness_ms };
        self.state.newest_epoch_ms.map(|newest| newest.saturating_sub(lateness).saturating_add(self.config.span_ms))
    }

    /// Computes and emits the states of every decided tick, in order.
    fn emit_decided(&mut self, out: &mut Emitter) {
        let decided = std::mem::take(&mut self.state.decided);
        let cadence = self.config.cadence_ms;
        for range in decided {
            let mut tick = range.first_ms;
            loop {
                self.emit_tick(tick, range.sequence_limit, out);
                match tick.checked_add(cadence) {
                    Some(next) if next <= range.last_ms => tick = next,
                    _ => break,
                }
            }
        }
    }

    /// One Observation v1 per object at tick `t_ms`, objects in increasing id, from the sets numbered below `limit`.
    fn emit_tick(&mut self, t_ms: i64, limit: u64, out: &mut Emitter) {
        let t_us = i64::try_from(i128::from(t_ms) * 1000).unwrap_or(i64::MAX);
        for (&object_id, sets) in self.state.sets.iter_mut() {
            let Some(chosen) = choose(sets, t_us, limit) else { continue };
            let accepted = &mut sets[chosen];
            if accepted.failure.is_some() {
                self.state.states_left_out += 1;
                continue;
            }
            let propagator = match self.propagators.entry(accepted.sequence) {
                std::collections::btree_map::Entry::Occupied(held) => held.into_mut(),
                std::collections::btree_map::Entry::Vacant(slot) => match Propagator::new(&accepted.set) {
                    Ok(propagator) => slot.insert(propagator),
                    // Cannot happen for a set that was accepted (initialisation is deterministic), but if it did, the
                    // set is failed like any other.
                    Err(error) => {
                        accepted.failure = Some(format!("at tick {t_ms}: {error}"));
                        self.state.states_left_out += 1;
                        continue;
                    }
                },
            };
            let state = propagator.at_unix_ms(t_ms).map_err(|e| e.to_string()).and_then(|s| check_observation_rules(&s).map(|()| s));
            match state {
                Ok(state) => {
                    let observation_id = format!("{}/{object_id}/{t_ms}", self.config.sensor_id);
                    let observation = ObservationV1 {
                        observation_id: &observation_id,
                        object_id,
                        sensor_id: &self.config.sensor_id,
                        epoch_ms: t_ms,
                        position_km: state.position_km,
                        velocity_km_s: state.velocity_km_s,
                    };
                    out.emit_json(&observation_id, &observation).at(t_ms).push();
                }
                Err(problem) => {
                    accepted.failure = Some(format!("at tick {t_ms}: {problem}"));
                    self.state.states_left_out += 1;
                }
            }
        }
    }

    /// Drops the element sets no tick to come can use: for each object, every set ordered before the greatest
    /// (epoch, sequence) whose epoch is at or before the next undecided tick. That set beats them at every tick
    /// from there on, and sets accepted later can only beat them too. Runs with no tick decided and pending.
    fn drop_superseded(&mut self) {
        let Some(next_tick_ms) = self.state.next_tick_ms else { return };
        debug_assert!(self.state.decided.is_empty(), "pending ticks may still need older sets");
        let next_tick_us = i128::from(next_tick_ms) * 1000;
        let propagators = &mut self.propagators;
        for sets in self.state.sets.values_mut() {
            let at_or_before = sets.partition_point(|a| i128::from(a.set.epoch_us) <= next_tick_us);
            if at_or_before > 1 {
                for dropped in sets.drain(..at_or_before - 1) {
                    propagators.remove(&dropped.sequence);
                }
            }
        }
    }
}

/// Which of an object's sets (in (epoch, sequence) order) tick `t_us` uses among those numbered below `limit`: the
/// greatest (epoch, sequence) with epoch at or before the tick, else the earliest epoch (the latest accepted of equal
/// epochs), propagated backwards.
fn choose(sets: &[Accepted], t_us: i64, limit: u64) -> Option<usize> {
    let eligible = || sets.iter().enumerate().filter(|(_, a)| a.sequence < limit);
    if let Some((index, _)) = eligible().rfind(|(_, a)| a.set.epoch_us <= t_us) {
        return Some(index);
    }
    let earliest = eligible().next()?.1.set.epoch_us;
    eligible().rfind(|(_, a)| a.set.epoch_us == earliest).map(|(index, _)| index)
}

impl Operator for Elsets {
    type Config = Config;
    const STATE_VERSION: u32 = ElsetsState::VERSION;

    fn init(config: Config) -> Result<Self, String> {
        if config.cadence_ms <= 0 {
            return Err(format!("`cadence_ms` must be positive, not {}", config.cadence_ms));
        }
        if config.span_ms < 0 {
            return Err(format!("`span_ms` must not be negative, not {}", config.span_ms));
        }
        if config.allowed_lateness_ms < 0 {
            return Err(format!("`allowed_lateness_ms` must not be negative, not {}", config.allowed_lateness_ms));
        }
        if let Some(start_ms) = config.start_ms
            && !(MIN_EPOCH_MS..=MAX_EPOCH_MS).contains(&start_ms)
        {
            return Err(format!("`start_ms` {start_ms} is outside Observation v1's epochs ({MIN_EPOCH_MS} to {MAX_EPOCH_MS})"));
        }
        if config.sensor_id.is_empty() {
            return Err("`sensor_id` must not be empty: it names the observations and starts their ids".to_string());
        }
        let mut operator =
            Elsets { state: ElsetsState { cadence_ms: config.cadence_ms, ..ElsetsState::default() }, config, propagators: BTreeMap::new() };
        operator.state.next_tick_ms = operator.config.start_ms.map(|start| operator.first_tick_at_or_after(i128::from(start) * 1000));
        Ok(operator)
    }

    fn process(&mut self, record: &Record<'_>, _out: &mut Emitter) -> Result<(), Failure> {
        let (set, propagator) = accept(record.payload()).map_err(|refusal| to_failure(&refusal))?;
        let sequence = self.state.next_sequence;
        self.state.next_sequence += 1;
        let epoch_ms = set.epoch_us.div_euclid(1000);
        if self.state.next_tick_ms.is_none() {
            let at_least_us = i128::from(set.epoch_us) - i128::from(self.config.allowed_lateness_ms) * 1000;
            self.state.next_tick_ms = Some(self.first_tick_at_or_after(at_least_us));
        }
        self.state.newest_epoch_ms = Some(self.state.newest_epoch_ms.map_or(epoch_ms, |newest| newest.max(epoch_ms)));
        let sets = self.state.sets.entry(set.object_id).or_default();
        // After every set of the same or an earlier epoch: (epoch, sequence) order, the new sequence being the greatest.
        let at = sets.partition_point(|a| a.set.epoch_us <= set.epoch_us);
        sets.insert(at, Accepted { sequence, set, failure: None });
        self.propagators.insert(sequence, propagator);
        // The ticks this decides are propagated in the next `on_watermark`, under its budget.
        if let Some(frontier) = self.frontier_ms(false) {
            self.decide_up_to(frontier);
        }
        Ok(())
    }

    fn on_watermark(&mut self, event_time_ms: i64, out: &mut Emitter) {
        // Only the end of input moves the ticks: the operator's watermark is its own, from the epochs it accepted.
        if event_time_ms == i64::MAX
            && let Some(frontier) = self.frontier_ms(true)
        {
            self.decide_up_to(frontier);
        }
        self.emit_decided(out);
        self.drop_superseded();
    }

    fn snapshot(&self) -> Vec<u8> {
        state::snapshot_versioned(&self.state)
    }

    fn restore(&mut self, version: u32, bytes: &[u8]) -> Result<(), String> {
        let restored: ElsetsState = state::restore_versioned(version, bytes)?;
        if restored.cadence_ms != self.config.cadence_ms {
            return Err(format!(
                "the state's ticks are every {} ms, but this instance is configured for `cadence_ms` = {}",
                restored.cadence_ms, self.config.cadence_ms
            ));
        }
        self.state = restored;
        self.propagators.clear();
        Ok(())
    }
}

export_operator!(Elsets);

#[cfg(test)]
mod tests {
    use super::*;

    fn accepted(sequence: u64, epoch_us: i64) -> Accepted {
        let set = ElementSet {
            object_id: 1,
            epoch_us,
            mean_motion_rev_per_day: 15.0,
            eccentricity: 0.001,
            inclination_deg: 51.0,
            ra_of_asc_node_deg: 0.0,
            arg_of_pericenter_deg: 0.0,
            mean_anomaly_deg: 0.0,
            bstar_per_earth_radius: 0.0,
        };
        Accepted { sequence, set, failure: None }
    }

    #[test]
    fn a_tick_uses_the_latest_set_at_or_before_it_else_the_earliest() {
        // (epoch, sequence) order: epochs 100 (seq 2), 200 (seq 0), 200 (seq 3), 300 (seq 1).
        let sets = [accepted(2, 100), accepted(0, 200), accepted(3, 200), accepted(1, 300)];
        assert_eq!(choose(&sets, 250, 4), Some(2), "epoch 200, the later accepted of the two");
        assert_eq!(choose(&sets, 250, 3), Some(1), "seq 3 not accepted yet when the tick was decided");
        assert_eq!(choose(&sets, 50, 4), Some(0), "before every epoch: the earliest");
        assert_eq!(choose(&sets, 50, 2), Some(1), "the earliest among those decided with");
        assert_eq!(choose(&sets, 1000, 4), Some(3));
        assert_eq!(choose(&sets, 1000, 0), None, "no set yet");
    }

    #[test]
    fn ticks_round_to_the_grid_for_negative_times_too() {
        assert_eq!(floor_to(-1, 60), -60);
        assert_eq!(ceil_to(-1, 60), 0);
        assert_eq!(ceil_to(61, 60), 120);
        assert_eq!(ceil_to(60, 60), 60);
    }
}
