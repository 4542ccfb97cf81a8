//! The sparse cadence: when each object is observed and by which sensor, as a catalogue sees it,
//! produced in time order by a merge over every object's next observation.
//!
//! Each object is watched by `sensors_per_object` sensors of its regime's network and seen at
//! random gaps: `min_gap_ms` plus an exponential part (so passes are irregular, the mean gap is
//! `mean_gap_ms`), capped at `max_gap_ms`. Its first observation falls at a random point of a first
//! gap after the scenario start.
//!
//! **Planted conjunctions stay detectable in catalogue mode.** Random gaps could leave a planted
//! object unseen for longer than the correlator's horizon `H` (`state_horizon_ms`) before its
//! closest approach, and then no window would screen the pair. So each object of a planted pair
//! gets one *guaranteed* observation (besides its random ones), placed where every window that
//! must see the conjunction (the window of its TCA, and for a TCA on or near a window boundary the
//! window on the other side too) holds a state of the object: uniformly in
//! `[s_last - H, s_first)` (`s_first`/`s_last`: the starts of the first and last such window), so
//! it is carried into all of them, unless that interval is empty (`H` at most the span of those
//! windows, `H = 0` included, or the scenario starts too late) and then one inside each of those
//! windows, a fresh state. A later observation of the object can only replace it by a newer one.
//! The delivery never makes a guaranteed observation late, so the correlator accepts it.

use super::rng::{KeyedStreams, Rng};
use super::{GenerateOptions, Population};
use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

/// `sparse_cadence`: how often, how irregularly and by whom each object is observed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SparseCadence {
    /// Mean time between two observations of an object before the cap (default 1500000 = 25 min).
    pub mean_gap_ms: i64,
    /// Shortest time between two observations of an object (default 300000 = 5 min).
    pub min_gap_ms: i64,
    /// Longest time between two observations of an object (default 3600000 = 1 h): with
    /// `state_horizon_ms` at least this, no object ever drops out of the correlator's catalogue.
    pub max_gap_ms: i64,
    /// How many sensors see each object (default 3, 1 to 5), drawn from its regime's network
    /// (8 radars for LEO, 5 telescopes above); each observation comes from one of them.
    pub sensors_per_object: usize,
}

impl Default for SparseCadence {
    fn default() -> Self {
        SparseCadence { mean_gap_ms: 1_500_000, min_gap_ms: 300_000, max_gap_ms: 3_600_000, sensors_per_object: 3 }
    }
}

/// The most sensors an object can have: the smaller network's size.
const MAX_SENSORS_PER_OBJECT: usize = super::TELESCOPES;

impl SparseCadence {
    /// Checks that the gaps and the sensors make sense; the message names the offending key.
    pub fn validate(&self) -> Result<(), String> {
        if !(0 < self.min_gap_ms && self.min_gap_ms <= self.mean_gap_ms && self.mean_gap_ms <= self.max_gap_ms) {
            return Err(format!(
                "`sparse_cadence` needs 0 < `min_gap_ms` <= `mean_gap_ms` <= `max_gap_ms`, not {}, {} and {}",
                self.min_gap_ms, self.mean_gap_ms, self.max_gap_ms
            ));
        }
        if !(1..=MAX_SENSORS_PER_OBJECT).contains(&self.sensors_per_object) {
            return Err(format!(
                "`sparse_cadence.sensors_per_object` must be in 1..={MAX_SENSORS_PER_OBJECT}, not {}",
                self.sensors_per_object
            ));
        }
        Ok(())
    }

    /// A random gap: `min_gap_ms` plus an exponential part of mean `mean_gap_ms - min_gap_ms`,
    /// capped at `max_gap_ms`.
    fn gap_ms(&self, rng: &mut Rng) -> i64 {
        let scale = (self.mean_gap_ms - self.min_gap_ms) as f64;
        // 1 - unit is in (0, 1]: the logarithm is finite.
        let exponential = -scale * libm::log(1.0 - rng.unit());
        (self.min_gap_ms + exponential.round() as i64).min(self.max_gap_ms)
    }
}

/// One observation the schedule asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scheduled {
    pub epoch_ms: i64,
    /// Index into the population's objects.
    pub object: usize,
    /// Which sensor of the object's network (`0..network_size`).
    pub sensor: usize,
    /// A planted object's guaranteed observation: must not be delivered late.
    pub guaranteed: bool,
}

/// The time-ordered merge: a heap holding each object's next observation (and the guaranteed
/// ones), in `(epoch_ms, object_id)` order like the regular cadence's sort. Memory: a heap entry,
/// a stream position and a sensor set per object.
pub struct Schedule<'a> {
    cadence: SparseCadence,
    population: &'a Population,
    end_ms: i64,
    streams: KeyedStreams,
    /// Where each object's random stream stands.
    positions: Vec<u64>,
    /// Each object's sensors, as indices into its network.
    sensors: Vec<[u8; MAX_SENSORS_PER_OBJECT]>,
    /// `(epoch_ms, object_id, guaranteed, object index)`, smallest first.
    heap: BinaryHeap<Reverse<(i64, u32, bool, u32)>>,
}

impl<'a> Schedule<'a> {
    pub fn new(options: &GenerateOptions, cadence: &SparseCadence, population: &'a Population) -> Self {
        let objects = &population.objects;
        let streams = KeyedStreams::new(options.seed, "sparse-schedule");
        let mut positions = Vec::with_capacity(objects.len());
        let mut sensors = Vec::with_capacity(objects.len());
        let mut heap = BinaryHeap::with_capacity(objects.len());
        let (start_ms, end_ms) = (options.start_ms, options.end_ms());
        for (index, object) in objects.iter().enumerate() {
            let mut rng = streams.resume(index as u64, 0);
            // The first `sensors_per_object` of a random permutation of the network.
            let mut network: Vec<u8> = (0..object.network_size() as u8).collect();
            for slot in 0..cadence.sensors_per_object {
                let pick = slot + rng.index(network.len() - slot);
                network.swap(slot, pick);
            }
            let mut chosen = [0; MAX_SENSORS_PER_OBJECT];
            chosen[..cadence.sensors_per_object].copy_from_slice(&network[..cadence.sensors_per_object]);
            let phase = rng.unit();
            let first_ms = start_ms + (phase * cadence.gap_ms(&mut rng) as f64) as i64;
            if first_ms < end_ms {
                heap.push(Reverse((first_ms, object.id, false, index as u32)));
            }
            positions.push(rng.position());
            sensors.push(chosen);
        }
        for (index, epoch_ms) in guaranteed_observations(options, population) {
            heap.push(Reverse((epoch_ms, objects[index].id, true, index as u32)));
        }
        Schedule { cadence: *cadence, population, end_ms, streams, positions, sensors, heap }
    }
}

impl Iterator for Schedule<'_> {
    type Item = Scheduled;

    fn next(&mut self) -> Option<Scheduled> {
        let Reverse((epoch_ms, object_id, guaranteed, index)) = self.heap.pop()?;
        let object = index as usize;
        let mut rng = self.streams.resume(u64::from(index), self.positions[object]);
        let sensor = usize::from(self.sensors[object][rng.index(self.cadence.sensors_per_object)]);
        if !guaranteed {
            let next_ms = epoch_ms + self.cadence.gap_ms(&mut rng);
            if next_ms < self.end_ms {
                self.heap.push(Reverse((next_ms, object_id, false, index)));
            }
        }
        self.positions[object] = rng.position();
        debug_assert_eq!(self.population.objects[object].id, object_id);
        Some(Scheduled { epoch_ms, object, sensor, guaranteed })
    }
}

/// `(object index, epoch)` of the guaranteed observations of planted objects (see the module doc).
fn guaranteed_observations(options: &GenerateOptions, population: &Population) -> Vec<(usize, i64)> {
    let window_ms = options.correlator.window_ms;
    let horizon_ms = options.correlator.state_horizon_ms;
    let (start_ms, end_ms) = (options.start_ms, options.end_ms());
    let planted: HashMap<u32, usize> = population
        .conjunctions
        .iter()
        .flat_map(|c| [c.primary_id, c.secondary_id])
        .map(|id| (id, population.objects.iter().position(|o| o.id == id).expect("planted objects exist")))
        .collect();
    let mut rng = Rng::stream(options.seed, "sparse-planted");
    let mut guaranteed = Vec::new();
    for conjunction in &population.conjunctions {
        // The windows that must see it: the TCA's, and across a boundary it sits on or near.
        let tca_window = conjunction.tca_ms.div_euclid(window_ms);
        let windows = match conjunction.window_edge_offset_ms {
            Some(offset) => {
                let boundary_window = (conjunction.tca_ms - offset).div_euclid(window_ms);
                [boundary_window - 1, boundary_window]
            }
            None => [tca_window, tca_window],
        };
        let (first_start, last_start) = (windows[0] * window_ms, windows[1] * window_ms);
        for id in [conjunction.primary_id, conjunction.secondary_id] {
            let object = planted[&id];
            let carried_from = (last_start.saturating_sub(horizon_ms)).max(start_ms);
            if horizon_ms > 0 && carried_from < first_start {
                guaranteed.push((object, rng.int_between(carried_from, first_start - 1)));
            } else {
                let mut previous = None;
                for k in windows {
                    if previous == Some(k) {
                        continue;
                    }
                    previous = Some(k);
                    let (from, to) = ((k * window_ms).max(start_ms), ((k + 1) * window_ms).min(end_ms) - 1);
                    guaranteed.push((object, rng.int_between(from, to)));
                }
            }
        }
    }
    guaranteed
}
