//! Checks of a pipeline's output that scale to catalogue sizes, where the quadratic brute-force
//! reference cannot run: every planted conjunction found, and an exact brute force restricted to a
//! random sample of objects.
//!
//! Both follow the accuracy clause of SEMANTICS.md: miss distances within 1 m
//! ([`METRE_KM`]); a TCA anywhere the distance is within 1 m of the minimum ([`tca_tolerance_ms`]);
//! a pair whose miss distance is within 1 m of `screening_km` may go either way.
//!
//! **[`planted_found`]** needs only the scenario summary: each planted conjunction must appear in
//! the window of its TCA (or, for a TCA on or near a boundary, the window across it) with the
//! planted miss distance, TCA and relative speed. It works on candidates and on alerts; an alert
//! may also be missing for the classifier's reasons (a miss not below `yellow_km`, or suppression
//! by an alert of the pair as severe shortly before), which it then checks instead.
//!
//! **[`sampled_brute_force`]** replays the correlator ([`Correlator`], O(objects) per window, the
//! catalogue-mode states included) and, in each compared window, screens every pair made of a
//! sample object and any other object with the reference's own [`screening`] (no Kepler solver, no
//! spatial index), then compares with the pipeline's candidates that involve a sample object. Only
//! pairs that can come close are integrated; the others are dismissed by a rigorous bound that
//! uses two two-body invariants of the other object and the sample object's own integrated arc
//! (see `PairBound`), so a window costs about `k * n` bound checks and the integration of the
//! few survivors, instead of `n^2 / 2` pairs.
//!
//! Cost, measured on 2 busy cores with `examples/check_scale.rs` (sparse scenarios of 120 minutes,
//! `state_horizon_ms` = 1 h, so every window holds the whole catalogue): the replay reads every
//! line once (parsing on a second thread), 2-3 s for 10^5 objects (0.5 M lines) and 18-40 s for
//! 10^6 (5.4 M lines); then each compared window costs, for a sample of k = 20 objects, 0.1 s at
//! 10^5 objects and 0.3-0.9 s at 10^6 (about 0.02% of the `k * n` pairs survive the bound), and
//! for k = 100 about 0.45 s and 2.8 s.

use crate::config::CorrelatorConfig;
use crate::error::ScenarioError;
use crate::generate::{PlantedConjunction, ScenarioSummary};
use crate::observation::parse_observation;
use crate::propagate::{self, MU_KM3_S2, State, vec3};
use crate::records::{Alert, Candidate, Severity};
use crate::reference::{self, Correlator, ReadLine, WindowStates};
use crate::screening::{self, WindowObject};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::io::BufRead;
use std::ops::RangeInclusive;
use std::path::Path;
use std::time::{Duration, Instant};

/// The accuracy clause's metre, km.
pub const METRE_KM: f64 = 1e-3;

/// How far a TCA may lie from the true one: the distance stays within 1 m of a minimum `miss_km`
/// for `sqrt(2 miss 1m) / v` either side (more for a flat minimum), plus the millisecond rounding.
pub fn tca_tolerance_ms(miss_km: f64, relative_speed_km_s: f64) -> f64 {
    (2.0 * miss_km.max(METRE_KM) * METRE_KM).sqrt() / relative_speed_km_s.max(1e-9) * 1000.0 + 1.0
}

/// How far a relative speed may be off when the TCA is off by `tca_tolerance_ms`: the relative
/// velocity turns at most about 0.02 km/s^2 in LEO.
fn speed_tolerance_km_s(tca_tolerance_ms: f64) -> f64 {
    METRE_KM + 0.02 * tca_tolerance_ms / 1000.0
}

/// What the checks read of a candidate or an alert.
pub trait CloseApproach {
    /// Alerts pass the classifier: a repeat may be suppressed, a miss at or above `yellow_km` has none.
    const CLASSIFIED: bool;
    /// The alert's severity (`None` for a candidate).
    fn severity(&self) -> Option<Severity>;
    fn pair(&self) -> (u32, u32);
    fn window_start_ms(&self) -> i64;
    fn tca_ms(&self) -> i64;
    fn miss_distance_km(&self) -> f64;
    fn relative_speed_km_s(&self) -> f64;
}

impl CloseApproach for Candidate {
    const CLASSIFIED: bool = false;
    fn severity(&self) -> Option<Severity> {
        None
    }
    fn pair(&self) -> (u32, u32) {
        (self.primary_id, self.secondary_id)
    }
    fn window_start_ms(&self) -> i64 {
        self.window_start_ms
    }
    fn tca_ms(&self) -> i64 {
        self.tca_ms
    }
    fn miss_distance_km(&self) -> f64 {
        self.miss_distance_km
    }
    fn relative_speed_km_s(&self) -> f64 {
        self.relative_speed_km_s
    }
}

impl CloseApproach for Alert {
    const CLASSIFIED: bool = true;
    fn severity(&self) -> Option<Severity> {
        Some(self.severity)
    }
    fn pair(&self) -> (u32, u32) {
        (self.primary_id, self.secondary_id)
    }
    fn window_start_ms(&self) -> i64 {
        self.window_start_ms
    }
    fn tca_ms(&self) -> i64 {
        self.tca_ms
    }
    fn miss_distance_km(&self) -> f64 {
        self.miss_distance_km
    }
    fn relative_speed_km_s(&self) -> f64 {
        self.relative_speed_km_s
    }
}

/// How a planted conjunction shows in the output.
#[derive(Debug, Clone, PartialEq)]
pub enum Found {
    /// A record with the planted miss distance, TCA and speed.
    AsPlanted { window_start_ms: i64, miss_distance_km: f64, tca_ms: i64 },
    /// Alerts only: no alert in its window, as the classifier suppresses it, because an alert of
    /// the pair at least as severe was emitted less than `suppress_ms` before (in window-start time).
    Suppressed { by_window_start_ms: i64, severity: Severity },
    /// Alerts only: its miss distance is not below `yellow_km` (within a metre), so no alert is due.
    NoAlertDue,
}

/// A planted conjunction, and how it was found.
#[derive(Debug, Clone, PartialEq)]
pub struct PlantedFound {
    pub planted: PlantedConjunction,
    pub found: Found,
}

/// Every planted conjunction, found.
#[derive(Debug, Clone, PartialEq)]
pub struct PlantedReport {
    pub found: Vec<PlantedFound>,
    /// The largest `|found - planted|` miss distance among those found as planted, km.
    pub worst_miss_error_km: f64,
}

/// One record of a pair, as a miss report shows it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Seen {
    pub window_start_ms: i64,
    pub miss_distance_km: f64,
    pub tca_ms: i64,
    pub relative_speed_km_s: f64,
}

/// A planted conjunction the output does not show as planted.
#[derive(Debug, Clone, PartialEq)]
pub struct PlantedMiss {
    pub planted: PlantedConjunction,
    /// Starts of the windows where it had to be.
    pub windows_searched_ms: Vec<i64>,
    /// Every record of the pair, in any window.
    pub seen: Vec<Seen>,
}

impl fmt::Display for PlantedMiss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.planted;
        let tolerance = tca_tolerance_ms(p.miss_km, p.relative_speed_km_s);
        write!(
            f,
            "planted conjunction {}|{} (TCA {}, miss {:.6} km, {:.3} km/s) not found in the window(s) starting at {:?}",
            p.primary_id, p.secondary_id, p.tca_ms, p.miss_km, p.relative_speed_km_s, self.windows_searched_ms
        )?;
        if self.seen.is_empty() {
            return write!(f, ": no record of the pair at all");
        }
        write!(f, " (1 m, ±{tolerance:.0} ms); records of the pair:")?;
        for seen in &self.seen {
            write!(
                f,
                " [window {}: miss {:.6} km ({:+.1} m), TCA {} ({:+} ms), {:.3} km/s]",
                seen.window_start_ms,
                seen.miss_distance_km,
                (seen.miss_distance_km - p.miss_km) * 1000.0,
                seen.tca_ms,
                seen.tca_ms - p.tca_ms,
                seen.relative_speed_km_s
            )?;
        }
        Ok(())
    }
}

/// Checks that every conjunction planted in `summary` appears in `records` (candidates or alerts)
/// as planted: a record of the pair in a window whose closed interval reaches the planted TCA (to
/// within the TCA tolerance: two windows for a TCA on a boundary), with the miss distance within
/// 1 m, the TCA within [`tca_tolerance_ms`] and the relative speed close. For alerts, a planted
/// conjunction may instead be explained by the classifier (see [`Found`]). Lists every miss.
pub fn planted_found<R: CloseApproach>(summary: &ScenarioSummary, records: &[R]) -> Result<PlantedReport, Vec<PlantedMiss>> {
    let window_ms = summary.options.correlator.window_ms;
    let classifier = &summary.options.classifier;
    let mut by_pair: HashMap<(u32, u32), Vec<&R>> = HashMap::new();
    for record in records {
        by_pair.entry(record.pair()).or_default().push(record);
    }
    let mut found = Vec::new();
    let mut misses = Vec::new();
    let mut worst_miss_error_km: f64 = 0.0;
    for planted in &summary.conjunctions {
        let tolerance = tca_tolerance_ms(planted.miss_km, planted.relative_speed_km_s);
        let reach = tolerance.ceil() as i64;
        let windows_searched_ms: Vec<i64> = ((planted.tca_ms - reach).div_euclid(window_ms) - 1
            ..=(planted.tca_ms + reach).div_euclid(window_ms))
            .map(|k| k * window_ms)
            .filter(|&start| start - reach <= planted.tca_ms && planted.tca_ms <= start + window_ms + reach)
            .collect();
        let pair_records = by_pair.get(&(planted.primary_id, planted.secondary_id)).map_or(&[][..], Vec::as_slice);
        let as_planted = pair_records.iter().find(|r| {
            windows_searched_ms.contains(&r.window_start_ms())
                && (r.miss_distance_km() - planted.miss_km).abs() <= METRE_KM
                && ((r.tca_ms() - planted.tca_ms) as f64).abs() <= tolerance
                && (r.relative_speed_km_s() - planted.relative_speed_km_s).abs() <= speed_tolerance_km_s(tolerance)
        });
        let explained = if let Some(record) = as_planted {
            worst_miss_error_km = worst_miss_error_km.max((record.miss_distance_km() - planted.miss_km).abs());
            Some(Found::AsPlanted {
                window_start_ms: record.window_start_ms(),
                miss_distance_km: record.miss_distance_km(),
                tca_ms: record.tca_ms(),
            })
        } else if R::CLASSIFIED && planted.miss_km + METRE_KM >= classifier.yellow_km {
            Some(Found::NoAlertDue)
        } else if R::CLASSIFIED {
            // The least severe the planted miss can be within the metre of the contract.
            let due = reference::severity(planted.miss_km + METRE_KM, classifier);
            let last_window = *windows_searched_ms.last().expect("the TCA's own window is searched");
            pair_records
                .iter()
                .filter(|r| r.window_start_ms() < last_window && r.window_start_ms() > last_window.saturating_sub(classifier.suppress_ms))
                .find(|r| r.severity() >= due)
                .map(|r| Found::Suppressed { by_window_start_ms: r.window_start_ms(), severity: r.severity().expect("an alert") })
        } else {
            None
        };
        match explained {
            Some(how) => found.push(PlantedFound { planted: planted.clone(), found: how }),
            None => misses.push(PlantedMiss {
                planted: planted.clone(),
                windows_searched_ms,
                seen: pair_records
                    .iter()
                    .map(|r| Seen {
                        window_start_ms: r.window_start_ms(),
                        miss_distance_km: r.miss_distance_km(),
                        tca_ms: r.tca_ms(),
                        relative_speed_km_s: r.relative_speed_km_s(),
                    })
                    .collect(),
            }),
        }
    }
    if misses.is_empty() { Ok(PlantedReport { found, worst_miss_error_km }) } else { Err(misses) }
}

/// Which objects [`sampled_brute_force`] follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sample {
    /// These objects.
    Objects(BTreeSet<u32>),
    /// `count` objects drawn with `seed` (by [`pick_sample`]) from those with a state in the
    /// first window compared: the live catalogue at that time. Needs no extra pass over the input.
    Random { count: usize, seed: u64 },
}

/// What [`sampled_brute_force`] compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampledCheck {
    /// Every pair with at least one sample object is compared.
    pub sample: Sample,
    /// Only windows whose start (Unix ms) lies here; `None`: every window the correlator closes.
    pub window_starts_ms: Option<RangeInclusive<i64>>,
}

/// `count` of `population` (distinct ids) chosen at random with `seed`: those with the smallest
/// seeded hash, so the choice does not depend on the order the ids come in, and a larger sample
/// of the same seed contains a smaller one.
pub fn pick_sample(population: impl IntoIterator<Item = u32>, count: usize, seed: u64) -> BTreeSet<u32> {
    let mut ranked: Vec<(u64, u32)> = population.into_iter().map(|id| (mix(seed ^ mix(u64::from(id))), id)).collect();
    ranked.sort_unstable();
    ranked.into_iter().take(count).map(|(_, id)| id).collect()
}

/// SplitMix64's finaliser: a bijective hash of a u64.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The object ids of the valid observations among `lines`: the population to sample from.
pub fn observed_objects<S: AsRef<str>>(lines: impl IntoIterator<Item = S>) -> BTreeSet<u32> {
    lines.into_iter().filter_map(|line| parse_observation(line.as_ref()).ok()).map(|o| o.object_id).collect()
}

/// A difference between the pipeline and the sampled brute force.
#[derive(Debug, Clone, PartialEq)]
pub enum Mismatch {
    /// The brute force finds a candidate (clear of the threshold) the pipeline did not emit.
    Missing { expected: Candidate },
    /// The pipeline emitted a candidate whose pair the brute force puts over 1 m above
    /// `screening_km`, or in a window the correlator does not screen; `reason` says which.
    Unexpected { found: Candidate, reason: String },
    /// Both have the candidate, but its values differ beyond the accuracy clause.
    Differs { expected: Candidate, found: Candidate, differences: Vec<String> },
    /// The pipeline emitted the same key twice.
    Repeated { found: Candidate },
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let brief = |c: &Candidate| {
            format!(
                "{} (miss {:.6} km, TCA {}, {:.4} km/s, observations {} and {})",
                c.key(),
                c.miss_distance_km,
                c.tca_ms,
                c.relative_speed_km_s,
                c.primary_observation_id,
                c.secondary_observation_id
            )
        };
        match self {
            Mismatch::Missing { expected } => write!(f, "missing candidate {}", brief(expected)),
            Mismatch::Unexpected { found, reason } => write!(f, "unexpected candidate {}: {reason}", brief(found)),
            Mismatch::Differs { expected, found, differences } => {
                write!(f, "candidate {} differs: {}; expected {}", found.key(), differences.join(", "), brief(expected))
            }
            Mismatch::Repeated { found } => write!(f, "candidate {} emitted more than once", brief(found)),
        }
    }
}

/// Time spent in each part of [`sampled_brute_force`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SampledTimings {
    /// Reading the lines and keeping the correlator's states (all windows).
    pub correlate: Duration,
    /// Bounding the `k * n` pairs of the compared windows.
    pub bound: Duration,
    /// Integrating and minimising the pairs the bound kept.
    pub screen: Duration,
}

/// What [`sampled_brute_force`] compared and found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SampledReport {
    pub sample: Vec<u32>,
    /// Windows compared (closed by the correlator, start in range).
    pub windows_compared: usize,
    /// Objects with a state in the compared windows, summed over them.
    pub states_seen: u64,
    /// Pairs (sample object, any object) bounded, summed over the compared windows.
    pub pairs_bounded: u64,
    /// Pairs the bound kept, screened by the brute force.
    pub pairs_screened: u64,
    /// Brute-force candidates clear of the threshold (the pipeline must have them all).
    pub expected: usize,
    /// Candidates both have, within the accuracy clause.
    pub matched: usize,
    /// Pairs within 1 m of `screening_km`: either answer is right.
    pub borderline: usize,
    pub mismatches: Vec<Mismatch>,
    pub timings: SampledTimings,
}

impl SampledReport {
    pub fn passed(&self) -> bool {
        self.mismatches.is_empty()
    }
}

impl fmt::Display for SampledReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "sampled brute force: {} objects x {} windows ({} states): {} pairs bounded, {} screened; \
             {} expected, {} matched, {} borderline, {} mismatches (correlate {:.1?}, bound {:.1?}, screen {:.1?})",
            self.sample.len(),
            self.windows_compared,
            self.states_seen,
            self.pairs_bounded,
            self.pairs_screened,
            self.expected,
            self.matched,
            self.borderline,
            self.mismatches.len(),
            self.timings.correlate,
            self.timings.bound,
            self.timings.screen,
        )?;
        for mismatch in &self.mismatches {
            writeln!(f, "  {mismatch}")?;
        }
        Ok(())
    }
}

/// The pipeline's candidates still to compare, by `(window_start_ms, primary_id, secondary_id)`.
type Emitted<'a> = BTreeMap<(i64, u32, u32), &'a Candidate>;

/// Lines per batch handed from the reading thread to the correlating one.
const READ_BATCH_LINES: usize = 4096;
/// Batches the reading thread may run ahead: bounds the memory of lines read but not correlated.
const READ_AHEAD_BATCHES: usize = 8;

/// The pairs are screened this far past `screening_km`, so a pipeline candidate just under the
/// threshold can be told apart from one the brute force puts clearly above it.
const SCREEN_BEYOND_KM: f64 = 2.0 * METRE_KM;

/// Compares the pipeline's `candidates` with an exact brute force over every pair that involves
/// an object of the sample, in every window the correlator closes (or those in
/// `check.window_starts_ms`). `lines` is the pipeline's whole input, in order: the correlator's
/// states, carried ones included, depend on all of it. Reads the lines once, holding only the
/// correlator's state.
pub fn sampled_brute_force<S: AsRef<str> + Send>(
    lines: impl IntoIterator<Item = S, IntoIter: Send>,
    config: &CorrelatorConfig,
    candidates: &[Candidate],
    check: &SampledCheck,
) -> Result<SampledReport, ScenarioError> {
    config.validate().map_err(ScenarioError::InvalidConfig)?;
    let in_range = |start_ms: i64| check.window_starts_ms.as_ref().is_none_or(|range| range.contains(&start_ms));
    let mut report = SampledReport::default();
    // The sample and the pipeline's candidates the comparison covers (by key), once known.
    let mut compared: Option<(BTreeSet<u32>, Emitted<'_>)> = None;
    let follow = |sample: BTreeSet<u32>, report: &mut SampledReport| {
        let mut emitted = BTreeMap::new();
        for candidate in candidates {
            let involved = sample.contains(&candidate.primary_id) || sample.contains(&candidate.secondary_id);
            if involved && in_range(candidate.window_start_ms) {
                let key = (candidate.window_start_ms, candidate.primary_id, candidate.secondary_id);
                if emitted.insert(key, candidate).is_some() {
                    report.mismatches.push(Mismatch::Repeated { found: candidate.clone() });
                }
            }
        }
        report.sample = sample.iter().copied().collect();
        (sample, emitted)
    };

    let started = Instant::now();
    let mut working = Duration::ZERO;
    let mut compare_window = |window: &WindowStates<'_>| {
        let start_ms = saturate(window.start_ms);
        if !in_range(start_ms) {
            return;
        }
        let began = Instant::now();
        let (sample, emitted) = compared.get_or_insert_with(|| {
            let sample = match &check.sample {
                Sample::Objects(objects) => objects.clone(),
                Sample::Random { count, seed } => pick_sample(window.iter().map(|state| state.object_id), *count, *seed),
            };
            follow(sample, &mut report)
        });
        report.windows_compared += 1;
        report.states_seen += window.len() as u64;
        let expected = brute_force_window(window, config, sample, &mut report);
        for candidate in expected {
            let key = (candidate.window_start_ms, candidate.primary_id, candidate.secondary_id);
            let borderline = (candidate.miss_distance_km - config.screening_km).abs() <= METRE_KM;
            match emitted.remove(&key) {
                Some(found) if !borderline && candidate.miss_distance_km > config.screening_km => {
                    report.mismatches.push(Mismatch::Unexpected {
                        found: found.clone(),
                        reason: format!("the brute force's miss is {:.6} km, over a metre above the threshold", candidate.miss_distance_km),
                    });
                }
                Some(found) => {
                    if borderline {
                        report.borderline += 1;
                    } else {
                        report.expected += 1;
                    }
                    let differences = differences(&candidate, found);
                    if differences.is_empty() {
                        report.matched += 1;
                    } else {
                        report.mismatches.push(Mismatch::Differs { expected: candidate.clone(), found: found.clone(), differences });
                    }
                }
                None if borderline => report.borderline += 1,
                None if candidate.miss_distance_km < config.screening_km => {
                    report.expected += 1;
                    report.mismatches.push(Mismatch::Missing { expected: candidate });
                }
                None => {}
            }
        }
        // Whatever the pipeline emitted in this window that the brute force did not screen close.
        let left: Vec<(i64, u32, u32)> = emitted.range((start_ms, 0, 0)..=(start_ms, u32::MAX, u32::MAX)).map(|(k, _)| *k).collect();
        for key in left {
            let found = emitted.remove(&key).expect("listed");
            let reason = if window.get(found.primary_id).is_none() || window.get(found.secondary_id).is_none() {
                "one of the objects has no state in this window".to_string()
            } else {
                format!("the brute force puts the pair at or beyond {:.6} km", config.screening_km + SCREEN_BEYOND_KM)
            };
            report.mismatches.push(Mismatch::Unexpected { found: found.clone(), reason });
        }
        working += began.elapsed();
    };
    // Lines are read (parsed) on a second thread, batch by batch, while this one correlates.
    let mut correlator = Correlator::new(config);
    std::thread::scope(|scope| {
        let (batches, arriving) = std::sync::mpsc::sync_channel::<Vec<ReadLine>>(READ_AHEAD_BATCHES);
        let lines = lines.into_iter();
        scope.spawn(move || {
            let mut lines = lines.peekable();
            while lines.peek().is_some() {
                let batch: Vec<ReadLine> = lines.by_ref().take(READ_BATCH_LINES).map(|line| reference::read_line(line.as_ref())).collect();
                if batches.send(batch).is_err() {
                    break;
                }
            }
        });
        for batch in arriving {
            for line in batch {
                correlator.push_read(line, &mut compare_window);
            }
        }
    });
    correlator.finish(&mut compare_window);
    report.timings.correlate = started.elapsed().saturating_sub(working);
    // Candidates in windows of the range that the correlator never closed with any state.
    let leftover = match (compared, &check.sample) {
        (Some((_, emitted)), _) => emitted,
        (None, Sample::Objects(objects)) => follow(objects.clone(), &mut report).1,
        (None, Sample::Random { .. }) => BTreeMap::new(), // no window compared: no sample either
    };
    for (_, found) in leftover {
        report.mismatches.push(Mismatch::Unexpected {
            found: found.clone(),
            reason: "the correlator screens no such window (none closed there, or it held no state)".to_string(),
        });
    }
    Ok(report)
}

/// [`sampled_brute_force`] over a file of observation lines, read once.
pub fn sampled_brute_force_file(
    path: &Path,
    config: &CorrelatorConfig,
    candidates: &[Candidate],
    check: &SampledCheck,
) -> Result<SampledReport, ScenarioError> {
    let mut failure = None;
    let lines = read_lines(path)?.map_while(|line| match line {
        Ok(line) => Some(line),
        Err(source) => {
            failure = Some(source);
            None
        }
    });
    let report = sampled_brute_force(lines, config, candidates, check)?;
    match failure {
        Some(source) => Err(ScenarioError::Read { path: path.to_owned(), source }),
        None => Ok(report),
    }
}

/// The lines of `path`; a read error ends the iteration (reported by the caller).
fn read_lines(path: &Path) -> Result<impl Iterator<Item = std::io::Result<String>>, ScenarioError> {
    let file = std::fs::File::open(path).map_err(|source| ScenarioError::Read { path: path.to_owned(), source })?;
    Ok(std::io::BufReader::with_capacity(1 << 20, file).lines())
}

fn saturate(value: i128) -> i64 {
    value.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// How a pipeline candidate differs from the brute force's beyond the accuracy clause.
fn differences(expected: &Candidate, found: &Candidate) -> Vec<String> {
    let mut differences = Vec::new();
    let miss_error = found.miss_distance_km - expected.miss_distance_km;
    if miss_error.abs() > METRE_KM {
        differences.push(format!("miss {:.6} km is {:+.1} m off", found.miss_distance_km, miss_error * 1000.0));
    }
    let tolerance = tca_tolerance_ms(expected.miss_distance_km, expected.relative_speed_km_s);
    if ((found.tca_ms - expected.tca_ms) as f64).abs() > tolerance {
        differences.push(format!("TCA {} is {:+} ms off (± {tolerance:.0} ms)", found.tca_ms, found.tca_ms - expected.tca_ms));
    }
    if (found.relative_speed_km_s - expected.relative_speed_km_s).abs() > speed_tolerance_km_s(tolerance) {
        differences.push(format!("relative speed {:.6} km/s", found.relative_speed_km_s));
    }
    if found.window_end_ms != expected.window_end_ms {
        differences.push(format!("window end {}", found.window_end_ms));
    }
    if (found.primary_observation_id.as_str(), found.secondary_observation_id.as_str())
        != (expected.primary_observation_id.as_str(), expected.secondary_observation_id.as_str())
    {
        differences.push(format!("states of observations {} and {}", found.primary_observation_id, found.secondary_observation_id));
    }
    differences
}

/// The brute force's candidates (screened to `screening_km + SCREEN_BEYOND_KM`) of every pair in
/// `window` with an object of `sample`, in key order.
fn brute_force_window(
    window: &WindowStates<'_>,
    config: &CorrelatorConfig,
    sample: &BTreeSet<u32>,
    report: &mut SampledReport,
) -> Vec<Candidate> {
    let began = Instant::now();
    let window_s = config.window_ms as f64 / 1000.0;
    let arcs: Vec<(&WindowObject, SampleArc)> =
        sample.iter().filter_map(|&id| window.get(id)).map(|object| (object, SampleArc::new(object, window.start_ms, window_s))).collect();
    if arcs.is_empty() {
        report.timings.bound += began.elapsed();
        return Vec::new();
    }
    let threshold_km = config.screening_km + SCREEN_BEYOND_KM + BOUND_MARGIN_KM;
    let others: Vec<&WindowObject> = window.iter().collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 8);
    let chunk = others.len().div_ceil(threads).max(1);
    let kept: Vec<(u32, u32)> = std::thread::scope(|scope| {
        let workers: Vec<_> = others
            .chunks(chunk)
            .map(|part| {
                let arcs = &arcs;
                scope.spawn(move || {
                    let mut kept = Vec::new();
                    for other in part {
                        let bound = PairBound::of(&other.state);
                        for (sample_object, arc) in arcs {
                            if sample_object.object_id != other.object_id && !bound.dismisses(arc, threshold_km) {
                                let (a, b) = (sample_object.object_id, other.object_id);
                                kept.push((a.min(b), a.max(b)));
                            }
                        }
                    }
                    kept
                })
            })
            .collect();
        workers.into_iter().flat_map(|worker| worker.join().expect("a bound worker panicked")).collect()
    });
    let mut kept = kept;
    kept.sort_unstable();
    kept.dedup();
    report.pairs_bounded += (others.len() * arcs.len()) as u64;
    report.pairs_screened += kept.len() as u64;
    report.timings.bound += began.elapsed();

    let began = Instant::now();
    let mut involved: Vec<u32> = kept.iter().flat_map(|&(a, b)| [a, b]).collect();
    involved.sort_unstable();
    involved.dedup();
    let objects: Vec<&WindowObject> = involved.iter().map(|&id| window.get(id).expect("a state of the window")).collect();
    let index = |id: u32| involved.binary_search(&id).expect("involved");
    let pairs: Vec<(usize, usize)> = kept.iter().map(|&(a, b)| (index(a), index(b))).collect();
    let encounters = screening::screen_pairs(window.start_ms, config.window_ms, &objects, &pairs, config.screening_km + SCREEN_BEYOND_KM);
    let candidates = encounters
        .iter()
        .map(|e| reference::candidate(window.start_ms, config.window_ms, objects[e.primary], objects[e.secondary], e))
        .collect();
    report.timings.screen += began.elapsed();
    candidates
}

/// Slack added to the bound's threshold, km: covers the difference between the arcs and orbits
/// the bound assumes and the ones the reference integrates (RK4 at 1 s keeps a LEO state within
/// about 1e-5 km of the exact two-body motion over hours, and the plane exactly), with a factor of
/// 10^4 to spare. Costs nothing measurable in pairs kept.
const BOUND_MARGIN_KM: f64 = 0.1;

/// Longest piece of a sample object's arc between two integrated points, seconds: its chord is
/// then within 0.125 km of the arc (see [`SampleArc`]).
const ARC_PIECE_S: f64 = 10.0;

/// A sample object's motion over the window: integrated points every [`ARC_PIECE_S`] at most,
/// and for each piece between two of them the range of its distance from the Earth's centre.
///
/// Between two points the arc stays within `delta = A tau^2 / 8` of the chord (`A`: a bound of the
/// acceleration, `mu / r_floor^2`; `tau`: the piece's duration), the classic bound of linear
/// interpolation's error for a curve with bounded second derivative.
struct SampleArc {
    points: Vec<[f64; 3]>,
    /// `[min, max]` of `|r|` over each piece.
    radius: Vec<(f64, f64)>,
    /// The largest chord deviation over the pieces, km.
    delta: f64,
    /// `[min, max]` of `|r|` over the whole window.
    radius_range: (f64, f64),
    /// The arc dives too deep for the acceleration bound (below 1000 km from the centre, which no
    /// valid observation reaches within a window): nothing is dismissed against it.
    unbounded: bool,
}

impl SampleArc {
    fn new(object: &WindowObject, window_start_ms: i128, window_s: f64) -> Self {
        let pieces = (window_s / ARC_PIECE_S).ceil().max(1.0) as usize;
        let tau = window_s / pieces as f64;
        let times: Vec<f64> = (0..=pieces).map(|j| window_s * j as f64 / pieces as f64).collect();
        let epoch_s = (i128::from(object.epoch_ms) - window_start_ms) as f64 / 1000.0;
        // Integrated forwards and backwards from the observation, like the reference's trajectories.
        let mut states = vec![object.state; times.len()];
        let first_later = times.iter().position(|&t| t >= epoch_s).unwrap_or(times.len());
        let (mut state, mut at) = (object.state, epoch_s);
        for j in first_later..times.len() {
            state = propagate::propagate(&state, times[j] - at);
            at = times[j];
            states[j] = state;
        }
        let (mut state, mut at) = (object.state, epoch_s);
        for j in (0..first_later).rev() {
            state = propagate::propagate(&state, times[j] - at);
            at = times[j];
            states[j] = state;
        }
        let points: Vec<[f64; 3]> = states.iter().map(|s| s.position_km).collect();
        let fastest = states.iter().map(|s: &State| vec3::norm(s.velocity_km_s)).fold(0.0, f64::max);
        let lowest = points.iter().map(|&p| vec3::norm(p)).fold(f64::INFINITY, f64::min);
        // Every point of the arc is within (speed + 1) tau / 2 of an integrated point: the speed
        // cannot grow by 1 km/s in half a piece above this floor.
        let floor = lowest - (fastest + 1.0) * tau / 2.0;
        let unbounded = floor < 1000.0;
        let delta = if unbounded { f64::INFINITY } else { MU_KM3_S2 / (floor * floor) * tau * tau / 8.0 };
        let radius: Vec<(f64, f64)> = points
            .windows(2)
            .map(|chord| {
                let (closest, _) = closest_to_origin(chord[0], chord[1]);
                (closest - delta, vec3::norm(chord[0]).max(vec3::norm(chord[1])) + delta)
            })
            .collect();
        let radius_range = radius.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), &(a, b)| (lo.min(a), hi.max(b)));
        SampleArc { points, radius, delta, radius_range, unbounded }
    }
}

/// The distance from the origin to the segment `[a, b]`, and where (0..1) it is reached.
fn closest_to_origin(a: [f64; 3], b: [f64; 3]) -> (f64, f64) {
    let ab = vec3::sub(b, a);
    let length2 = vec3::dot(ab, ab);
    let s = if length2 > 0.0 { (-vec3::dot(a, ab) / length2).clamp(0.0, 1.0) } else { 0.0 };
    (vec3::norm(vec3::add_scaled(a, ab, s)), s)
}

/// What the two-body invariants of an object's state say about where it can ever be, whatever
/// the time: on its orbit's conic (the angular momentum gives the plane, the eccentricity vector
/// the conic's shape and orientation), hence in that plane and between its periapsis and apoapsis
/// radii. No time enters (that would need Kepler's equation), so the bound is the same in every
/// window. A sample arc that stays, piece by piece, farther than the threshold from one of these
/// sets can come no closer to the object:
///
/// - **plane**: the distance is at least the sample position's height above the object's plane;
/// - **radii**: at least the gap between the two distances from the Earth's centre;
/// - **path**: at least the in-plane distance from the sample's projection (polar `rho`,
///   `theta`) to the conic. A conic point at angle `phi` is `sqrt((rho - r)^2 + 4 rho r
///   sin^2((phi - theta) / 2))` away, so only the points within a small angle `reach` of `theta`
///   can be nearer than the threshold, and those are at least `|rho - r(phi)|` away.
struct PairBound {
    /// Unit normal of the orbit plane (`None` for a radial orbit, which has no plane).
    normal: Option<[f64; 3]>,
    /// In-plane axes, the first towards periapsis (any in-plane direction for a circle).
    axes: Option<([f64; 3], [f64; 3])>,
    semi_latus_km: f64,
    eccentricity: f64,
    periapsis_km: f64,
    /// Infinite for an unbound orbit.
    apoapsis_km: f64,
}

impl PairBound {
    fn of(state: &State) -> Self {
        let (r, v) = (state.position_km, state.velocity_km_s);
        let h = vec3::cross(r, v);
        let h_norm = vec3::norm(h);
        let r_norm = vec3::norm(r);
        let normal = (h_norm > 1e-9 * r_norm * vec3::norm(v)).then(|| vec3::scale(h, 1.0 / h_norm));
        let energy = vec3::dot(v, v) / 2.0 - MU_KM3_S2 / r_norm;
        let semi_latus_km = h_norm * h_norm / MU_KM3_S2;
        // e = ((v^2 - mu / r) r - (r . v) v) / mu.
        let eccentricity_vector =
            vec3::scale(vec3::sub(vec3::scale(r, vec3::dot(v, v) - MU_KM3_S2 / r_norm), vec3::scale(v, vec3::dot(r, v))), 1.0 / MU_KM3_S2);
        let eccentricity = vec3::norm(eccentricity_vector);
        let axes = normal.map(|n| {
            let towards = if eccentricity > 1e-12 { eccentricity_vector } else { r };
            // The in-plane part, so the axes are exactly orthonormal.
            let x = vec3::unit(vec3::sub(towards, vec3::scale(n, vec3::dot(towards, n))));
            (x, vec3::cross(n, x))
        });
        let periapsis_km = semi_latus_km / (1.0 + eccentricity);
        let apoapsis_km = if energy < 0.0 { -MU_KM3_S2 / energy - periapsis_km } else { f64::INFINITY };
        // Rounding can put the observed radius a hair outside [periapsis, apoapsis].
        PairBound {
            normal,
            axes,
            semi_latus_km,
            eccentricity,
            periapsis_km: periapsis_km.min(r_norm),
            apoapsis_km: apoapsis_km.max(r_norm),
        }
    }

    /// Whether the object provably stays at least `threshold_km` from the sample arc.
    fn dismisses(&self, arc: &SampleArc, threshold_km: f64) -> bool {
        if arc.unbounded {
            return false;
        }
        let (lowest, highest) = arc.radius_range;
        if self.periapsis_km - highest >= threshold_km || lowest - self.apoapsis_km >= threshold_km {
            return true;
        }
        let Some(normal) = self.normal else { return false };
        let mut previous = vec3::dot(arc.points[0], normal);
        for (piece, point) in arc.points[1..].iter().enumerate() {
            let height = vec3::dot(*point, normal);
            let plane = if previous * height <= 0.0 { 0.0 } else { previous.abs().min(height.abs()) } - arc.delta;
            let (low, high) = arc.radius[piece];
            let radial = (self.periapsis_km - high).max(low - self.apoapsis_km);
            previous = height;
            if plane.max(radial) >= threshold_km || self.path_bound(arc.points[piece], *point, arc.delta, threshold_km) >= threshold_km {
                continue;
            }
            return false;
        }
        true
    }

    /// A lower bound of the distance between the object's conic and the arc piece within `delta`
    /// of the chord `[a, b]` (the **path** bound of the type doc); minus infinity when the piece is
    /// too close to the plane's normal through the centre for the angles to mean much.
    fn path_bound(&self, a: [f64; 3], b: [f64; 3], delta: f64, threshold_km: f64) -> f64 {
        let Some((x, y)) = self.axes else { return f64::NEG_INFINITY };
        let project = |q: [f64; 3]| [vec3::dot(q, x), vec3::dot(q, y), 0.0];
        let (a, b) = (project(a), project(b));
        // The projection is 1-Lipschitz: the projected arc stays within delta of the projected chord.
        let rho_low = closest_to_origin(a, b).0 - delta;
        let rho_high = vec3::norm(a).max(vec3::norm(b)) + delta;
        if rho_low < 1000.0 {
            return f64::NEG_INFINITY;
        }
        let theta_a = a[1].atan2(a[0]);
        let turn = (b[1].atan2(b[0]) - theta_a + std::f64::consts::PI).rem_euclid(std::f64::consts::TAU) - std::f64::consts::PI;
        let slack = (delta / rho_low).min(1.0).asin();
        let reach = 2.0 * (threshold_km / (2.0 * (rho_low * self.periapsis_km).sqrt())).min(1.0).asin();
        let (from, to) = (theta_a + turn.min(0.0) - slack - reach, theta_a + turn.max(0.0) + slack + reach);
        if to - from >= std::f64::consts::PI {
            return f64::NEG_INFINITY;
        }
        let (r_low, r_high) = self.radius_between(from, to);
        (r_low - rho_high).max(rho_low - r_high)
    }

    /// The range of the conic's radius `p / (1 + e cos phi)` for `phi` (from periapsis) in `[from, to]`.
    fn radius_between(&self, from: f64, to: f64) -> (f64, f64) {
        let tau = std::f64::consts::TAU;
        let contains = |angle: f64| ((from - angle) / tau).ceil() <= ((to - angle) / tau).floor();
        let (cos_from, cos_to) = (from.cos(), to.cos());
        let most = if contains(0.0) { 1.0 } else { cos_from.max(cos_to) };
        let least = if contains(std::f64::consts::PI) { -1.0 } else { cos_from.min(cos_to) };
        let low = self.semi_latus_km / (1.0 + self.eccentricity * most);
        let denominator = 1.0 + self.eccentricity * least;
        let high = if denominator > 1e-12 { self.semi_latus_km / denominator } else { f64::INFINITY };
        (low, high)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::rng::Rng;

    /// The path bound is below the true distance from the chord to the conic: short chords near
    /// eccentric orbits, where the nearest conic point is often at another angle than the chord's.
    #[test]
    fn the_path_bound_is_below_the_distance_to_the_conic() {
        let mut rng = Rng::stream(17, "path-bound");
        let mut informative = 0;
        for case in 0..300 {
            let eccentricity = [0.0005, 0.05, 0.3, 0.7][case % 4];
            let periapsis = rng.uniform(6600.0, 7200.0);
            let semi_latus = periapsis * (1.0 + eccentricity);
            // A state of that orbit: at periapsis, along x, then the orbit turned at random.
            let speed = (MU_KM3_S2 * (1.0 + eccentricity) / periapsis).sqrt();
            let turn = |q: [f64; 3], angle: f64| [q[0] * angle.cos() - q[1] * angle.sin(), q[0] * angle.sin() + q[1] * angle.cos(), q[2]];
            let tilt = |q: [f64; 3], angle: f64| [q[0], q[1] * angle.cos() - q[2] * angle.sin(), q[1] * angle.sin() + q[2] * angle.cos()];
            let (spin, lean) = (rng.angle(), rng.uniform(0.0, 3.0));
            let place = |q: [f64; 3]| tilt(turn(q, spin), lean);
            let bound = PairBound::of(&State::new(place([periapsis, 0.0, 0.0]), place([0.0, speed, 0.0])));
            let conic = |phi: f64| {
                let r = semi_latus / (1.0 + eccentricity * phi.cos());
                place([r * phi.cos(), r * phi.sin(), 0.0])
            };
            // A 75 km chord near the orbit (up to 15 km off radially, 8 km off the plane).
            let phi = rng.uniform(-2.5, 2.5);
            let radius = semi_latus / (1.0 + eccentricity * phi.cos()) + rng.uniform(-15.0, 15.0);
            let heading = rng.angle();
            let a = [radius * phi.cos(), radius * phi.sin(), rng.uniform(-8.0, 8.0)];
            let b = vec3::add(a, [75.0 * heading.cos(), 75.0 * heading.sin() * 0.3, rng.uniform(-1.0, 1.0)]);
            let (a, b) = (place(a), place(b));
            let got = bound.path_bound(a, b, 0.0, 5.0);
            // Each chord point's distance to the conic: a coarse scan of angles, then golden
            // section. Along the chord the distance is 1-Lipschitz, so 601 points leave at most
            // 0.0625 km between their minimum and the chord's.
            let to_conic = |p: [f64; 3]| {
                let distance = |angle: f64| vec3::norm(vec3::sub(p, conic(angle)));
                let step = 0.06 / 600.0;
                let mut best =
                    (0..=600).map(|i| phi - 0.03 + step * i as f64).min_by(|x, y| distance(*x).total_cmp(&distance(*y))).unwrap();
                let (mut lo, mut hi) = (best - step, best + step);
                let ratio = (5f64.sqrt() - 1.0) / 2.0;
                for _ in 0..60 {
                    let (x1, x2) = (hi - ratio * (hi - lo), lo + ratio * (hi - lo));
                    if distance(x1) < distance(x2) { hi = x2 } else { lo = x1 }
                }
                best = (lo + hi) / 2.0;
                distance(best)
            };
            let truth = (0..=600).map(|i| to_conic(vec3::add_scaled(a, vec3::sub(b, a), i as f64 / 600.0))).fold(f64::INFINITY, f64::min);
            assert!(got <= truth, "case {case} (e = {eccentricity}): bound {got} km above the distance {truth} km");
            if got > 0.5 * truth && got > 1.0 {
                informative += 1;
            }
        }
        assert!(informative > 100, "only {informative} cases where the bound says something");
    }

    /// The bound never dismisses a pair that comes within the threshold: random pairs, half of
    /// them passing within 10 km, checked against their distance every 10 ms.
    #[test]
    fn the_pair_bound_is_a_bound() {
        let mut rng = Rng::stream(3, "pair-bound");
        let threshold = 5.0;
        let (mut dismissed, mut close) = (0, 0);
        for case in 0..600 {
            let radius = rng.uniform(6700.0, 7400.0);
            let speed = (MU_KM3_S2 / radius).sqrt() * if case % 4 == 0 { rng.uniform(0.97, 1.08) } else { rng.uniform(0.999, 1.001) };
            let at_tca = State::new([radius, 0.0, 0.0], [0.0, speed, 0.0]);
            let miss = if case % 2 == 0 { rng.uniform(0.0, 10.0) } else { rng.uniform(10.0, 200.0) };
            let direction = vec3::unit([rng.uniform(-1.0, 1.0), rng.uniform(-1.0, 1.0), rng.uniform(-1.0, 1.0)]);
            // Crossings at any angle, nearly coplanar ones, and co-orbiting ones.
            let angle = match case % 5 {
                0 => rng.uniform(0.0, 0.01),
                1 => rng.uniform(0.0, 1e-4),
                _ => rng.uniform(0.0, 3.1),
            };
            let other_at_tca =
                State::new(vec3::add_scaled(at_tca.position_km, direction, miss), [0.0, speed * angle.cos(), speed * angle.sin()]);
            let tca_s = rng.uniform(-20.0, 80.0);
            let object = |id: u32, epoch_ms: i64, at_tca: &State| WindowObject {
                object_id: id,
                observation_id: format!("o{id}"),
                epoch_ms,
                state: propagate::propagate(at_tca, epoch_ms as f64 / 1000.0 - tca_s),
            };
            let sample = object(1, rng.int_between(-600_000, 60_000), &at_tca);
            let other = object(2, rng.int_between(-600_000, 60_000), &other_at_tca);
            let arc = SampleArc::new(&sample, 0, 60.0);
            let (mut a, mut b) = (
                propagate::propagate(&sample.state, -sample.epoch_ms as f64 / 1000.0),
                propagate::propagate(&other.state, -other.epoch_ms as f64 / 1000.0),
            );
            let mut closest = f64::INFINITY;
            for _ in 0..=6000 {
                closest = closest.min(vec3::norm(vec3::sub(a.position_km, b.position_km)));
                (a, b) = (propagate::propagate(&a, 0.01), propagate::propagate(&b, 0.01));
            }
            if PairBound::of(&other.state).dismisses(&arc, threshold) {
                dismissed += 1;
                assert!(closest >= threshold, "case {case}: dismissed a pair {closest} km apart");
            }
            if closest < threshold {
                close += 1;
            }
        }
        assert!(dismissed > 150 && close > 80, "{dismissed} dismissed, {close} close: the test must exercise both");
    }
}
