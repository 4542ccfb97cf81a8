//! Reproducible, realistic conjunction scenarios: observation lines with planted conjunctions and
//! formations, out-of-order, late, duplicate and malformed records, and a summary of all of it.
//!
//! The same options and seed give byte-identical lines on every machine: random numbers come from
//! ChaCha8 with sampling written out here, trigonometry from the pure-Rust `libm`, everything
//! else is IEEE arithmetic, and numbers are printed with fixed decimals.
//!
//! Two cadences, two ways of building the lines (the objects, planted pairs and formations are the
//! same for both, drawn from the same streams):
//! - **Regular** (the default, `sparse_cadence` absent): every object once per `cadence_ms`. All
//!   observations are made, sorted, then delivered by `delivery`, which picks the special records
//!   over the whole scenario at once; held in memory, for scenarios of up to some 10^7 lines.
//! - **Sparse** (`sparse_cadence`): a catalogue's cadence, each object seen a few times an hour by
//!   a few sensors (`sparse`). Built as a stream (`streaming`): a time-ordered merge of every
//!   object's next observation and bounded delivery buffers, so memory grows with the objects and
//!   not with the lines, and 10^6 objects over hours are written in minutes.
//!
//! # Layout
//! - this file: the options, the summary, the objects and what is planted among them;
//! - `delivery`: the regular path's delivery order;
//! - `sparse`, `streaming`: the sparse path's schedule, and its delivery written as it goes;
//! - `files`: the files beside the observations (expected outputs, `.scenario.json`);
//! - `orbits`, `kepler`, `malformed`, `rng`: the truth, the malformed lines, the random numbers.

mod delivery;
mod files;
mod kepler;
mod malformed;
mod orbits;
pub(crate) mod rng;
mod sparse;
mod streaming;

pub use files::{ExpectedFiles, Progress, ScenarioFiles, WrittenScenario, read_summary, write_scenario, write_scenario_with};
pub use orbits::Regime;
pub use sparse::SparseCadence;

use crate::config::{ClassifierConfig, CorrelatorConfig};
use crate::error::ScenarioError;
use crate::observation::InvalidKind;
use crate::propagate::vec3;
use orbits::Truth;
use rng::Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// A range of distances, km (`min_km <= max_km`, both > 0).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct KmRange {
    pub min_km: f64,
    pub max_km: f64,
}

/// Relative weights of the orbit regimes of the background objects (normalised; not all zero).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OrbitMix {
    pub leo: f64,
    pub meo: f64,
    pub geo: f64,
    pub heo: f64,
}

impl Default for OrbitMix {
    /// Roughly the catalogue's shape: mostly LEO, some MEO and GEO, a few eccentric orbits.
    fn default() -> Self {
        OrbitMix { leo: 0.80, meo: 0.08, geo: 0.07, heo: 0.05 }
    }
}

/// Everything that shapes a scenario. Defaults give 300 objects over 30 minutes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GenerateOptions {
    /// Number of objects, planted ones included (default 300).
    pub objects: usize,
    /// Length of the scenario in minutes (default 30): epochs lie in `[start_ms, start_ms + minutes)`.
    pub minutes: u32,
    /// Seed of every random choice (default 1).
    pub seed: u64,
    /// First epoch, Unix ms (default 1767225600000 = 2026-01-01T00:00:00Z, a window boundary).
    pub start_ms: i64,
    /// Each object is observed once per cadence (default 10000 ms), at its own random phase.
    /// Unused with `sparse_cadence`.
    pub cadence_ms: i64,
    /// Observation times are moved by a uniform random amount in `[-jitter_ms, jitter_ms]` (default
    /// 500). Unused with `sparse_cadence`.
    pub jitter_ms: i64,
    /// A catalogue's cadence instead of the regular one: each object seen a few times an hour, at
    /// random gaps, by a few sensors; the scenario is then built as a stream (see the module doc).
    /// Absent by default, and then left out of the JSON, so regular scenarios' summaries are the
    /// bytes they always were.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sparse_cadence: Option<SparseCadence>,
    /// Orbit regimes of the background objects.
    pub orbit_mix: OrbitMix,
    /// Pairs built to pass close to each other at a chosen time (default 10).
    pub conjunctions: usize,
    /// Intended miss distances of planted conjunctions, spread evenly over this range (default 0.2-4.5 km).
    pub conjunction_miss_km: KmRange,
    /// Fraction of planted conjunctions whose TCA is on a window boundary (every other one exactly,
    /// the others within 250 ms of it); at least one when the fraction and the count are > 0 (default 0.2).
    pub edge_tca_fraction: f64,
    /// Pairs flying a few km apart for the whole scenario (default 4).
    pub formations: usize,
    /// Separations of formation pairs (default 0.5-4.5 km).
    pub formation_separation_km: KmRange,
    /// Fraction of formations that drift from the YELLOW range into the RED one (default 0.5; at
    /// least one when the fraction and the count are > 0).
    pub escalating_formation_fraction: f64,
    /// Percent of observations delivered late but provably not late (default 2.0).
    pub out_of_order_pct: f64,
    /// Percent of observations delivered provably late (default 0.5).
    pub late_pct: f64,
    /// Percent of observations delivered a second time, provably counted as duplicates (default 1.0).
    pub duplicate_pct: f64,
    /// Malformed lines added, as a percent of the observations (default 0.5).
    pub malformed_pct: f64,
    /// The correlator's config: windows and lateness shape where special records go, and the
    /// expected outputs are computed with it.
    pub correlator: CorrelatorConfig,
    /// The classifier's config, for the expected alerts (and the RED threshold of escalations).
    pub classifier: ClassifierConfig,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            objects: 300,
            minutes: 30,
            seed: 1,
            start_ms: 1_767_225_600_000,
            cadence_ms: 10_000,
            jitter_ms: 500,
            sparse_cadence: None,
            orbit_mix: OrbitMix::default(),
            conjunctions: 10,
            conjunction_miss_km: KmRange { min_km: 0.2, max_km: 4.5 },
            edge_tca_fraction: 0.2,
            formations: 4,
            formation_separation_km: KmRange { min_km: 0.5, max_km: 4.5 },
            escalating_formation_fraction: 0.5,
            out_of_order_pct: 2.0,
            late_pct: 0.5,
            duplicate_pct: 1.0,
            malformed_pct: 0.5,
            correlator: CorrelatorConfig::default(),
            classifier: ClassifierConfig::default(),
        }
    }
}

impl GenerateOptions {
    /// The end of the scenario (exclusive), Unix ms.
    pub fn end_ms(&self) -> i64 {
        self.start_ms + i64::from(self.minutes) * 60_000
    }

    /// Checks that the options describe a scenario that can be built.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        let fail = |message: String| Err(ScenarioError::InvalidOptions(message));
        self.correlator.validate().map_err(ScenarioError::InvalidConfig)?;
        self.classifier.validate().map_err(ScenarioError::InvalidConfig)?;
        if self.objects == 0 || self.minutes == 0 {
            return fail(format!("`objects` and `minutes` must be > 0, not {} and {}", self.objects, self.minutes));
        }
        let planted = 2 * (self.conjunctions + self.formations);
        if planted > self.objects {
            return fail(format!(
                "{} conjunctions and {} formations need {planted} objects, but `objects` is {}",
                self.conjunctions, self.formations, self.objects
            ));
        }
        if self.objects > 4_000_000 {
            return fail(format!("`objects` must be at most 4000000, not {}", self.objects));
        }
        if self.cadence_ms <= 0 || self.jitter_ms < 0 {
            return fail(format!("`cadence_ms` must be > 0 and `jitter_ms` >= 0, not {} and {}", self.cadence_ms, self.jitter_ms));
        }
        if self.start_ms.checked_add(i64::from(self.minutes) * 60_000 + self.jitter_ms).is_none() || self.start_ms < 0 {
            return fail(format!("`start_ms` {} must be >= 0 and leave room for the scenario", self.start_ms));
        }
        let mix = self.orbit_mix;
        let weights = [mix.leo, mix.meo, mix.geo, mix.heo];
        if weights.iter().any(|w| !(w.is_finite() && *w >= 0.0)) || weights.iter().sum::<f64>() <= 0.0 {
            return fail(format!("`orbit_mix` weights must be finite, >= 0 and not all 0: {mix:?}"));
        }
        for (name, range) in [("conjunction_miss_km", self.conjunction_miss_km), ("formation_separation_km", self.formation_separation_km)]
        {
            if !(range.min_km > 0.0 && range.min_km <= range.max_km && range.max_km.is_finite()) {
                return fail(format!("`{name}` must satisfy 0 < min_km <= max_km, not {range:?}"));
            }
        }
        for (name, fraction) in
            [("edge_tca_fraction", self.edge_tca_fraction), ("escalating_formation_fraction", self.escalating_formation_fraction)]
        {
            if !(0.0..=1.0).contains(&fraction) {
                return fail(format!("`{name}` must be in [0, 1], not {fraction}"));
            }
        }
        for (name, pct) in [
            ("out_of_order_pct", self.out_of_order_pct),
            ("late_pct", self.late_pct),
            ("duplicate_pct", self.duplicate_pct),
            ("malformed_pct", self.malformed_pct),
        ] {
            if !(0.0..=100.0).contains(&pct) {
                return fail(format!("`{name}` must be in [0, 100], not {pct}"));
            }
        }
        if self.out_of_order_pct + self.late_pct > 100.0 {
            return fail("`out_of_order_pct` + `late_pct` must be at most 100".to_string());
        }
        if let Some(sparse) = &self.sparse_cadence {
            sparse.validate().map_err(ScenarioError::InvalidOptions)?;
        }
        Ok(())
    }
}

/// A conjunction built into the scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlantedConjunction {
    pub primary_id: u32,
    pub secondary_id: u32,
    /// The intended time of closest approach, Unix ms.
    pub tca_ms: i64,
    pub miss_km: f64,
    pub relative_speed_km_s: f64,
    /// Angle between the two velocities at TCA.
    pub crossing_angle_deg: f64,
    /// For TCAs placed on a window boundary on purpose: `tca_ms` minus that boundary (0 = exactly on it).
    pub window_edge_offset_ms: Option<i64>,
}

/// A formation pair built into the scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlantedFormation {
    pub primary_id: u32,
    pub secondary_id: u32,
    /// Built to drift from the YELLOW range into the RED one.
    pub escalating: bool,
    /// Separations measured on the true orbits at the start and the end of the scenario, and the
    /// smallest and largest at the window boundaries in between.
    pub separation_start_km: f64,
    pub separation_end_km: f64,
    pub separation_min_km: f64,
    pub separation_max_km: f64,
}

/// A malformed line mixed into the scenario.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MalformedLine {
    /// Zero-based line number.
    pub line: usize,
    /// How the correlator must reject it.
    pub kind: InvalidKind,
    pub defect: String,
}

/// How many of each thing the scenario holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScenarioCounts {
    pub lines: usize,
    /// Distinct observations (each once, whatever its delivery).
    pub observations: usize,
    pub objects: usize,
    pub leo: usize,
    pub meo: usize,
    pub geo: usize,
    pub heo: usize,
    pub conjunctions: usize,
    pub formations: usize,
    pub out_of_order: usize,
    pub late: usize,
    pub duplicates: usize,
    pub malformed_deserialization: usize,
    pub malformed_validation: usize,
}

/// What was generated and why: the options, counts, planted pairs and special lines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioSummary {
    pub generator: String,
    pub options: GenerateOptions,
    pub end_ms: i64,
    pub counts: ScenarioCounts,
    pub conjunctions: Vec<PlantedConjunction>,
    pub formations: Vec<PlantedFormation>,
    /// Zero-based line numbers of the special records.
    pub out_of_order_lines: Vec<usize>,
    pub late_lines: Vec<usize>,
    pub duplicate_lines: Vec<usize>,
    pub malformed: Vec<MalformedLine>,
}

/// A generated scenario: the observation lines (without newlines) and their summary.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub lines: Vec<String>,
    pub summary: ScenarioSummary,
}

/// One object: who it is, how it moves.
struct Object {
    id: u32,
    regime: Regime,
    truth: Truth,
}

impl Object {
    /// A sensor of the network that observes this object's regime: radars for LEO, telescopes
    /// higher up. `pick` is drawn in `0..network_size()`.
    fn sensor(&self, pick: usize) -> String {
        match self.regime {
            Regime::Leo => format!("radar-{}", 1 + pick),
            _ => format!("optical-{}", 1 + pick),
        }
    }

    fn network_size(&self) -> usize {
        match self.regime {
            Regime::Leo => RADARS,
            _ => TELESCOPES,
        }
    }
}

/// Radars (`radar-1` ..) that observe LEO objects.
const RADARS: usize = 8;
/// Telescopes (`optical-1` ..) that observe everything higher.
const TELESCOPES: usize = 5;

/// `count` distinct catalogue-like ids (5 digits while they fit), in random order.
fn object_ids(count: usize, rng: &mut Rng) -> Vec<u32> {
    let upper: u64 = if count <= 45_000 { 99_999 } else { u64::from(u32::MAX) };
    let mut chosen = BTreeSet::new();
    let mut ids = Vec::with_capacity(count);
    while ids.len() < count {
        let id = (10_000 + rng.below(upper - 10_000 + 1)) as u32;
        if chosen.insert(id) {
            ids.push(id);
        }
    }
    ids
}

/// `fraction * count` rounded, but at least one when both are positive.
fn at_least_one(fraction: f64, count: usize) -> usize {
    if fraction <= 0.0 || count == 0 { 0 } else { ((fraction * count as f64).round() as usize).clamp(1, count) }
}

fn percent_of(pct: f64, count: usize) -> usize {
    (pct / 100.0 * count as f64).round() as usize
}

/// The scenario's objects and what is planted among them (the same for both cadences).
struct Population {
    /// Planted conjunction pairs first, then formation pairs, then the background.
    objects: Vec<Object>,
    conjunctions: Vec<PlantedConjunction>,
    formations: Vec<PlantedFormation>,
}

/// The special lines of a delivered scenario and how many lines there are.
struct Delivered {
    lines: usize,
    observations: usize,
    out_of_order_lines: Vec<usize>,
    late_lines: Vec<usize>,
    duplicate_lines: Vec<usize>,
    malformed: Vec<MalformedLine>,
}

/// Builds the scenario `options` describe, in memory.
pub fn generate(options: &GenerateOptions) -> Result<Scenario, ScenarioError> {
    options.validate()?;
    let population = populate(options);
    match &options.sparse_cadence {
        None => Ok(generate_regular(options, &population)),
        Some(cadence) => {
            let mut lines = Vec::new();
            let delivered = streaming::write(options, cadence, &population, &mut streaming::VecSink(&mut lines), &|_, _| {})?;
            Ok(Scenario { lines, summary: summarise(options, &population, delivered) })
        }
    }
}

/// The objects: planted conjunctions, formations, then background objects of the orbit mix.
fn populate(options: &GenerateOptions) -> Population {
    let start_ms = options.start_ms;
    let end_ms = options.end_ms();
    let window_ms = options.correlator.window_ms;
    let seed = options.seed;
    let mut ids = object_ids(options.objects, &mut Rng::stream(seed, "ids")).into_iter();
    let mut objects: Vec<Object> = Vec::with_capacity(options.objects);
    let mut new_object = |regime: Regime, truth: Truth, objects: &mut Vec<Object>| -> u32 {
        let id = ids.next().expect("one id per object");
        objects.push(Object { id, regime, truth });
        id
    };
    // Planted conjunctions: TCAs inside the scenario, at least a window from either end, so both
    // windows around a boundary TCA are full; miss distances spread evenly over their range.
    let mut rng = Rng::stream(seed, "conjunctions");
    let earliest = start_ms + window_ms;
    let latest = (end_ms - window_ms).max(earliest);
    let boundaries: Vec<i64> = {
        let first = earliest.div_euclid(window_ms) + i64::from(earliest.rem_euclid(window_ms) != 0);
        (first..).map(|k| k * window_ms).take_while(|&b| b <= latest).collect()
    };
    let edge_count = if boundaries.is_empty() { 0 } else { at_least_one(options.edge_tca_fraction, options.conjunctions) };
    let range = options.conjunction_miss_km;
    let mut misses: Vec<f64> = (0..options.conjunctions)
        .map(|i| range.min_km + (range.max_km - range.min_km) * (i as f64 + rng.unit()) / options.conjunctions as f64)
        .collect();
    rng.shuffle(&mut misses);
    let mut conjunctions = Vec::with_capacity(options.conjunctions);
    for (i, &miss_km) in misses.iter().enumerate() {
        let (tca_ms, edge_offset) = if i < edge_count {
            let boundary = boundaries[rng.index(boundaries.len())];
            let offset = if i % 2 == 0 { 0 } else { rng.int_between(1, 250) * if rng.chance(0.5) { 1 } else { -1 } };
            (boundary + offset, Some(offset))
        } else {
            (rng.int_between(earliest, latest), None)
        };
        let pair = orbits::plant_conjunction(tca_ms, miss_km, start_ms, &mut rng);
        let a = new_object(Regime::Leo, pair.first, &mut objects);
        let b = new_object(Regime::Leo, pair.second, &mut objects);
        conjunctions.push(PlantedConjunction {
            primary_id: a.min(b),
            secondary_id: a.max(b),
            tca_ms,
            miss_km,
            relative_speed_km_s: pair.relative_speed_km_s,
            crossing_angle_deg: pair.crossing_angle_deg,
            window_edge_offset_ms: edge_offset,
        });
    }

    // Formations.
    let mut rng = Rng::stream(seed, "formations");
    let escalating_count = at_least_one(options.escalating_formation_fraction, options.formations);
    let duration_s = (end_ms - start_ms) as f64 / 1000.0;
    let mut formations = Vec::with_capacity(options.formations);
    for i in 0..options.formations {
        let leader = orbits::formation_leader(start_ms, &mut rng);
        let escalating = i < escalating_count;
        let (radial_km, along_km) = formation_offsets(escalating, options, kepler::mean_motion(&leader.state), duration_s, &mut rng);
        let follower = orbits::plant_formation(radial_km, along_km, leader);
        let a = new_object(Regime::Leo, leader, &mut objects);
        let b = new_object(Regime::Leo, follower, &mut objects);
        let separation = |t: i64| vec3::norm(vec3::sub(leader.at(t).position_km, follower.at(t).position_km));
        let checkpoints: Vec<f64> =
            (0..).map(|k| start_ms + k * window_ms).take_while(|&t| t < end_ms).chain([end_ms]).map(separation).collect();
        formations.push(PlantedFormation {
            primary_id: a.min(b),
            secondary_id: a.max(b),
            escalating,
            separation_start_km: separation(start_ms),
            separation_end_km: separation(end_ms),
            separation_min_km: checkpoints.iter().copied().fold(f64::INFINITY, f64::min),
            separation_max_km: checkpoints.iter().copied().fold(0.0, f64::max),
        });
    }

    // Background objects.
    let mut rng = Rng::stream(seed, "background");
    let mix = options.orbit_mix;
    let total_weight = mix.leo + mix.meo + mix.geo + mix.heo;
    while objects.len() < options.objects {
        let pick = rng.unit() * total_weight;
        let regime = if pick < mix.leo {
            Regime::Leo
        } else if pick < mix.leo + mix.meo {
            Regime::Meo
        } else if pick < mix.leo + mix.meo + mix.geo {
            Regime::Geo
        } else {
            Regime::Heo
        };
        let truth = orbits::random_object(regime, start_ms, &mut rng);
        new_object(regime, truth, &mut objects);
    }

    Population { objects, conjunctions, formations }
}

/// The regular cadence, all in memory: every observation made and sorted, then delivered.
fn generate_regular(options: &GenerateOptions, population: &Population) -> Scenario {
    let start_ms = options.start_ms;
    let end_ms = options.end_ms();
    let window_ms = options.correlator.window_ms;
    let seed = options.seed;
    let objects = &population.objects;
    // Observations: each object once per cadence at its own phase, jittered, inside the scenario.
    let mut rng = Rng::stream(seed, "observations");
    let mut observations: Vec<(i64, usize, String)> = Vec::new(); // (epoch, object index, sensor)
    for (index, object) in objects.iter().enumerate() {
        let phase = rng.int_between(0, options.cadence_ms - 1);
        let mut base = start_ms + phase;
        while base < end_ms {
            let epoch = (base + rng.int_between(-options.jitter_ms, options.jitter_ms)).clamp(start_ms, end_ms - 1);
            let sensor = object.sensor(rng.index(object.network_size()));
            observations.push((epoch, index, sensor));
            base += options.cadence_ms;
        }
    }
    observations.sort_by_key(|(epoch, index, _)| (*epoch, objects[*index].id));
    let records: Vec<delivery::Record> = observations
        .iter()
        .enumerate()
        .map(|(n, (epoch, index, sensor))| {
            let object = &objects[*index];
            let state = object.truth.at(*epoch);
            delivery::Record { epoch_ms: *epoch, text: observation_line(n + 1, object.id, sensor, *epoch, &state) }
        })
        .collect();

    // Delivery order, then malformed lines mixed in.
    let plan = delivery::DeliveryPlan {
        out_of_order: percent_of(options.out_of_order_pct, records.len()),
        late: percent_of(options.late_pct, records.len()),
        duplicates: percent_of(options.duplicate_pct, records.len()),
        window_ms,
        allowed_lateness_ms: options.correlator.allowed_lateness_ms,
    };
    let delivered = delivery::deliver(&records, &plan, &mut Rng::stream(seed, "delivery"));
    let mut rng = Rng::stream(seed, "malformed");
    let malformed_count = percent_of(options.malformed_pct, records.len());
    let first_variant = rng.index(malformed::VARIANTS);
    let malformed_lines: Vec<malformed::Malformed> = (0..malformed_count)
        .map(|i| {
            let (epoch, index, sensor) = &observations[rng.index(observations.len())];
            let object = &objects[*index];
            let state = object.truth.at(*epoch);
            let template = malformed::Template {
                observation_id: format!("obs-bad-{:06}", i + 1),
                object_id: object.id,
                sensor_id: sensor.clone(),
                epoch_ms: *epoch,
                position_km: state.position_km,
                velocity_km_s: state.velocity_km_s,
            };
            malformed::malformed_line(&template, first_variant + i, &mut rng)
        })
        .collect();
    let mut lines = delivered.lines;
    let placement = delivery::mix_in(&mut lines, malformed_lines.iter().map(|m| m.text.clone()).collect(), &mut rng);
    let remap = |original: &[usize]| -> Vec<usize> { original.iter().map(|&line| placement.original_lines[line]).collect() };
    let malformed: Vec<MalformedLine> = malformed_lines
        .iter()
        .zip(&placement.extra_lines)
        .map(|(m, &line)| MalformedLine { line, kind: m.kind, defect: m.defect.to_string() })
        .collect();

    let delivered = Delivered {
        lines: lines.len(),
        observations: records.len(),
        out_of_order_lines: remap(&delivered.out_of_order_lines),
        late_lines: remap(&delivered.late_lines),
        duplicate_lines: remap(&delivered.duplicate_lines),
        malformed,
    };
    Scenario { summary: summarise(options, population, delivered), lines }
}

/// The summary of a delivered scenario.
fn summarise(options: &GenerateOptions, population: &Population, delivered: Delivered) -> ScenarioSummary {
    let objects = &population.objects;
    let malformed = &delivered.malformed;
    let count_regime = |regime: Regime| objects.iter().filter(|o| o.regime == regime).count();
    let counts = ScenarioCounts {
        lines: delivered.lines,
        observations: delivered.observations,
        objects: objects.len(),
        leo: count_regime(Regime::Leo),
        meo: count_regime(Regime::Meo),
        geo: count_regime(Regime::Geo),
        heo: count_regime(Regime::Heo),
        conjunctions: population.conjunctions.len(),
        formations: population.formations.len(),
        out_of_order: delivered.out_of_order_lines.len(),
        late: delivered.late_lines.len(),
        duplicates: delivered.duplicate_lines.len(),
        malformed_deserialization: malformed.iter().filter(|m| m.kind == InvalidKind::Deserialization).count(),
        malformed_validation: malformed.iter().filter(|m| m.kind == InvalidKind::Validation).count(),
    };
    ScenarioSummary {
        generator: format!("sda-scenario {}", env!("CARGO_PKG_VERSION")),
        options: options.clone(),
        end_ms: options.end_ms(),
        counts,
        conjunctions: population.conjunctions.clone(),
        formations: population.formations.clone(),
        out_of_order_lines: delivered.out_of_order_lines,
        late_lines: delivered.late_lines,
        duplicate_lines: delivered.duplicate_lines,
        malformed: delivered.malformed,
    }
}

/// Offsets (radial, along-track) of a formation's follower at the start, km. Along-track drift
/// is `1.5 n radial` km/s (Clohessy-Wiltshire), so over the scenario the along-track offset
/// shrinks (or grows) by `1.5 n |radial| duration`.
fn formation_offsets(escalating: bool, options: &GenerateOptions, mean_motion: f64, duration_s: f64, rng: &mut Rng) -> (f64, f64) {
    let range = options.formation_separation_km;
    let red = options.classifier.red_km;
    let sign = if rng.chance(0.5) { 1.0 } else { -1.0 };
    let drift_per_radial_km = 1.5 * mean_motion * duration_s;
    if escalating {
        // End in the RED range, start as far out as the range (and the YELLOW limit) allows.
        let end_low = range.min_km.max(0.4 * red);
        let end_high = (0.85 * red).max(end_low);
        let separation_end = rng.uniform(end_low, end_high);
        let ceiling = range.max_km.min(0.95 * options.classifier.yellow_km).max(separation_end);
        let mut radial = separation_end * rng.uniform(0.3, 0.7);
        let mut along_start = 0.0;
        for _ in 0..100 {
            let along_end = (separation_end * separation_end - radial * radial).sqrt();
            along_start = along_end + drift_per_radial_km * radial;
            if (radial * radial + along_start * along_start).sqrt() <= ceiling {
                break;
            }
            radial *= 0.8;
        }
        (sign * radial, sign * along_start)
    } else {
        // Nearly constant separation: a small radial offset, drifting slowly either way.
        let separation = rng.uniform(range.min_km, range.max_km);
        let radial = rng.uniform(0.01, 0.08).min(0.5 * separation);
        let along = (separation * separation - radial * radial).sqrt();
        let approaching = rng.chance(0.5) && along - drift_per_radial_km * radial >= 0.3;
        (sign * radial, if approaching { sign * along } else { -sign * along })
    }
}

/// One Observation v1 line. Six decimals of km (1 mm) and nine of km/s (1 micrometre per second)
/// keep rounding far below the 1 m accuracy the contract asks for.
fn observation_line(number: usize, object_id: u32, sensor_id: &str, epoch_ms: i64, state: &crate::propagate::State) -> String {
    let r = state.position_km;
    let v = state.velocity_km_s;
    format!(
        "{{\"observation_id\":\"obs-{number:08}\",\"object_id\":{object_id},\"sensor_id\":\"{sensor_id}\",\"epoch_ms\":{epoch_ms},\
         \"position_km\":[{:.6},{:.6},{:.6}],\"velocity_km_s\":[{:.9},{:.9},{:.9}]}}",
        r[0], r[1], r[2], v[0], v[1], v[2]
    )
}
