//! The brute-force reference of the conjunction operators: what the correlator and the classifier
//! must emit for a sequence of observation lines, simulated record by record from SEMANTICS.md.
//!
//! Three phases, each usable on its own:
//! 1. [`correlate`]: validation, windows, watermark, late and duplicate records; yields the closed
//!    windows in closing order with each object's state.
//! 2. [`screen`]: the candidates of every closed window ([`crate::screening`]), windows spread over
//!    the available cores, results in closing order.
//! 3. [`classify`]: severities, suppression, escalation and expiry, in arrival order.
//!
//! Readings of the contract chosen here (each the most literal one):
//! - Lines made only of ASCII whitespace are skipped, not rejected: the host's file source never
//!   delivers them (it also strips the line's `\r`, which JSON ignores as whitespace anyway).
//! - End of input is `on-watermark(i64::MAX)`. A window whose end lies beyond `i64::MAX` (an epoch
//!   within one window of the largest s64) is closed then as well, since the contract says the end
//!   of input "closes every window". Window bounds and TCAs that do not fit in an i64 (epochs within
//!   one window of the s64 limits) are saturated in the output records.
//! - `tca_ms` is the TCA offset from the window start rounded half away from zero (`f64::round`),
//!   added to the window start. The miss distance and relative speed are taken at the unrounded TCA.
//! - Classifier expiry: "the greatest `window_start_ms` seen" includes every candidate the
//!   classifier has read, the current one included, whatever its severity. Because candidates
//!   arrive in window order, expiry never changes which alerts are emitted; it only bounds memory.
//! - A candidate whose miss distance is not below `yellow_km` has no severity: it produces no
//!   alert, is not suppressed and does not touch what is remembered for its pair.

use crate::config::{ClassifierConfig, CorrelatorConfig};
use crate::error::ScenarioError;
use crate::observation::{InvalidKind, parse_observation};
use crate::propagate::State;
use crate::records::{Alert, Candidate, Severity};
use crate::screening::{self, WindowObject};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A line the correlator rejects (dead-lettered).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvalidLine {
    /// Zero-based index of the line in the input.
    pub line: usize,
    pub kind: InvalidKind,
    pub message: String,
}

/// A window the correlator has closed, with the state of each object in it.
#[derive(Debug, Clone, PartialEq)]
pub struct ClosedWindow {
    /// `k` in `[k * window_ms, (k + 1) * window_ms)`.
    pub index: i64,
    pub start_ms: i128,
    pub end_ms: i128,
    /// Sorted by `object_id`.
    pub objects: Vec<WindowObject>,
}

/// What the correlator does with the input, before any geometry.
#[derive(Debug, Clone, Default)]
pub struct Correlation {
    /// In the order they close.
    pub closed_windows: Vec<ClosedWindow>,
    pub invalid: Vec<InvalidLine>,
    pub late_lines: Vec<usize>,
    pub duplicate_lines: Vec<usize>,
    pub blank_lines: Vec<usize>,
    pub accepted: usize,
}

/// What the classifier does with the candidates.
#[derive(Debug, Clone, Default)]
pub struct Classification {
    /// In emission order.
    pub alerts: Vec<Alert>,
    /// Indices of the candidates discarded as `suppressed`.
    pub suppressed: Vec<usize>,
    /// Indices of the candidates with no severity (miss distance not below `yellow_km`).
    pub below_yellow: Vec<usize>,
}

/// Counts of everything the reference saw, for reports and for comparison with a real run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReferenceCounts {
    pub lines: usize,
    /// Whitespace-only lines, skipped.
    pub blank_lines: usize,
    pub accepted: usize,
    pub invalid_deserialization: usize,
    pub invalid_validation: usize,
    pub late: usize,
    pub duplicates: usize,
    pub windows_closed: usize,
    pub candidates: usize,
    pub alerts: usize,
    pub red: usize,
    pub yellow: usize,
    pub suppressed: usize,
    /// Candidates with no severity (not an error and not counted by the classifier itself).
    pub below_yellow: usize,
}

/// The expected outputs of both operators for one input.
#[derive(Debug, Clone, Default)]
pub struct ReferenceOutput {
    /// The classifier's alerts, in emission order.
    pub alerts: Vec<Alert>,
    /// The correlator's candidates, in emission order.
    pub candidates: Vec<Candidate>,
    pub invalid: Vec<InvalidLine>,
    pub late_lines: Vec<usize>,
    pub duplicate_lines: Vec<usize>,
    /// Indices into `candidates` of the suppressed ones.
    pub suppressed: Vec<usize>,
    pub counts: ReferenceCounts,
}

/// Runs both operators' semantics over `lines`. `progress(done, total)` is called as windows are
/// screened (from worker threads, hence `Sync`).
pub fn run<S: AsRef<str>>(
    lines: &[S],
    correlator: &CorrelatorConfig,
    classifier: &ClassifierConfig,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<ReferenceOutput, ScenarioError> {
    correlator.validate().map_err(ScenarioError::InvalidConfig)?;
    classifier.validate().map_err(ScenarioError::InvalidConfig)?;
    let correlation = correlate(lines, correlator);
    let candidates = screen(&correlation.closed_windows, correlator, progress);
    let classification = classify(&candidates, classifier);
    let red = classification.alerts.iter().filter(|a| a.severity == Severity::Red).count();
    let counts = ReferenceCounts {
        lines: lines.len(),
        blank_lines: correlation.blank_lines.len(),
        accepted: correlation.accepted,
        invalid_deserialization: correlation.invalid.iter().filter(|i| i.kind == InvalidKind::Deserialization).count(),
        invalid_validation: correlation.invalid.iter().filter(|i| i.kind == InvalidKind::Validation).count(),
        late: correlation.late_lines.len(),
        duplicates: correlation.duplicate_lines.len(),
        windows_closed: correlation.closed_windows.len(),
        candidates: candidates.len(),
        alerts: classification.alerts.len(),
        red,
        yellow: classification.alerts.len() - red,
        suppressed: classification.suppressed.len(),
        below_yellow: classification.below_yellow.len(),
    };
    Ok(ReferenceOutput {
        alerts: classification.alerts,
        candidates,
        invalid: correlation.invalid,
        late_lines: correlation.late_lines,
        duplicate_lines: correlation.duplicate_lines,
        suppressed: classification.suppressed,
        counts,
    })
}

/// An open window: each object's best state so far and the ids accepted into it.
#[derive(Default)]
struct OpenWindow {
    objects: BTreeMap<u32, WindowObject>,
    observation_ids: HashSet<String>,
}

/// The correlator's record-by-record bookkeeping (config assumed valid).
pub fn correlate<S: AsRef<str>>(lines: &[S], config: &CorrelatorConfig) -> Correlation {
    let window_ms = i128::from(config.window_ms);
    let mut out = Correlation::default();
    let mut open: BTreeMap<i64, OpenWindow> = BTreeMap::new();
    // `None` is minus infinity: before the first accepted observation.
    let mut max_seen: Option<i64> = None;
    let mut watermark: Option<i128> = None;
    let window_end = |k: i64| (i128::from(k) + 1) * window_ms;

    let close_through = |watermark: i128, open: &mut BTreeMap<i64, OpenWindow>, closed: &mut Vec<ClosedWindow>| {
        while let Some(entry) = open.first_entry() {
            if window_end(*entry.key()) > watermark {
                break;
            }
            let (k, window) = entry.remove_entry();
            closed.push(closed_window(k, window, window_ms));
        }
    };

    for (line_index, line) in lines.iter().enumerate() {
        let line = line.as_ref();
        if line.bytes().all(|b| b.is_ascii_whitespace()) {
            out.blank_lines.push(line_index);
            continue;
        }
        let observation = match parse_observation(line) {
            Ok(observation) => observation,
            Err(rejection) => {
                out.invalid.push(InvalidLine { line: line_index, kind: rejection.kind, message: rejection.message });
                continue;
            }
        };
        let k = observation.epoch_ms.div_euclid(config.window_ms);
        // 1. Late: its window is already closed.
        if watermark.is_some_and(|w| window_end(k) <= w) {
            out.late_lines.push(line_index);
            continue;
        }
        // 2. Duplicate: the same id was accepted into a window that is still open.
        if open.values().any(|w| w.observation_ids.contains(&observation.observation_id)) {
            out.duplicate_lines.push(line_index);
            continue;
        }
        // 3. Accepted: the object's state is its observation with the greatest
        //    (epoch_ms, observation_id bytes).
        out.accepted += 1;
        let window = open.entry(k).or_default();
        window.observation_ids.insert(observation.observation_id.clone());
        let newer = WindowObject {
            object_id: observation.object_id,
            observation_id: observation.observation_id,
            epoch_ms: observation.epoch_ms,
            state: State::new(observation.position_km, observation.velocity_km_s),
        };
        match window.objects.get(&newer.object_id) {
            Some(current)
                if (current.epoch_ms, current.observation_id.as_bytes()) >= (newer.epoch_ms, newer.observation_id.as_bytes()) => {
            }
            _ => {
                window.objects.insert(newer.object_id, newer);
            }
        }
        // 4. The watermark advances and closes what it passed, in increasing k.
        let seen = max_seen.map_or(observation.epoch_ms, |m| m.max(observation.epoch_ms));
        max_seen = Some(seen);
        let proposed = i128::from(seen) - i128::from(config.allowed_lateness_ms);
        let current = watermark.map_or(proposed, |w| w.max(proposed));
        watermark = Some(current);
        close_through(current, &mut open, &mut out.closed_windows);
    }
    // End of input: on-watermark(i64::MAX), then whatever still lies beyond it.
    close_through(watermark.map_or(i128::from(i64::MAX), |w| w.max(i128::from(i64::MAX))), &mut open, &mut out.closed_windows);
    close_through(i128::MAX, &mut open, &mut out.closed_windows);
    out
}

fn closed_window(k: i64, window: OpenWindow, window_ms: i128) -> ClosedWindow {
    ClosedWindow {
        index: k,
        start_ms: i128::from(k) * window_ms,
        end_ms: (i128::from(k) + 1) * window_ms,
        objects: window.objects.into_values().collect(),
    }
}

fn saturate(value: i128) -> i64 {
    value.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// The candidates of one closed window, in `(primary_id, secondary_id)` order.
pub fn window_candidates(window: &ClosedWindow, config: &CorrelatorConfig) -> Vec<Candidate> {
    screening::screen_window(window.start_ms, config.window_ms, &window.objects, config.screening_km)
        .into_iter()
        .map(|encounter| {
            let (a, b) = (&window.objects[encounter.primary], &window.objects[encounter.secondary]);
            let offset_ms = ((encounter.tca_offset_s * 1000.0).round() as i64).clamp(0, config.window_ms);
            Candidate {
                primary_id: a.object_id,
                secondary_id: b.object_id,
                window_start_ms: saturate(window.start_ms),
                window_end_ms: saturate(window.end_ms),
                tca_ms: saturate(window.start_ms + i128::from(offset_ms)),
                miss_distance_km: encounter.miss_distance_km,
                relative_speed_km_s: encounter.relative_speed_km_s,
                primary_observation_id: a.observation_id.clone(),
                secondary_observation_id: b.observation_id.clone(),
            }
        })
        .collect()
}

/// The candidates of all closed windows, in closing order. Windows are independent, so they are
/// screened on all available cores; `progress(done, total)` follows the windows as they finish.
pub fn screen(windows: &[ClosedWindow], config: &CorrelatorConfig, progress: &(dyn Fn(usize, usize) + Sync)) -> Vec<Candidate> {
    let total = windows.len();
    progress(0, total);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, total.max(1));
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Vec<Candidate>>>> = Mutex::new(vec![None; total]);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= total {
                        break;
                    }
                    let candidates = window_candidates(&windows[index], config);
                    results.lock().expect("no worker panics while holding the lock")[index] = Some(candidates);
                    progress(done.fetch_add(1, Ordering::Relaxed) + 1, total);
                }
            });
        }
    });
    results
        .into_inner()
        .expect("workers finished")
        .into_iter()
        .flat_map(|window| window.expect("every window was screened"))
        .collect()
}

/// The severity SEMANTICS.md gives a miss distance, if any.
pub fn severity(miss_distance_km: f64, config: &ClassifierConfig) -> Option<Severity> {
    if miss_distance_km < config.red_km {
        Some(Severity::Red)
    } else if miss_distance_km < config.yellow_km {
        Some(Severity::Yellow)
    } else {
        None
    }
}

/// The classifier over candidates in arrival order (config assumed valid).
pub fn classify(candidates: &[Candidate], config: &ClassifierConfig) -> Classification {
    struct Remembered {
        window_start_ms: i64,
        severity: Severity,
    }
    let suppress_ms = i128::from(config.suppress_ms);
    let mut remembered: HashMap<(u32, u32), Remembered> = HashMap::new();
    let mut greatest_start: Option<i64> = None;
    let mut out = Classification::default();
    for (index, candidate) in candidates.iter().enumerate() {
        let start = candidate.window_start_ms;
        let greatest = greatest_start.map_or(start, |g| g.max(start));
        greatest_start = Some(greatest);
        let pair = (candidate.primary_id, candidate.secondary_id);
        // Expiry: forgotten once the greatest window start seen reaches remembered + suppress_ms.
        if remembered.get(&pair).is_some_and(|r| i128::from(greatest) >= i128::from(r.window_start_ms) + suppress_ms) {
            remembered.remove(&pair);
        }
        let Some(severity) = severity(candidate.miss_distance_km, config) else {
            out.below_yellow.push(index);
            continue;
        };
        if let Some(last) = remembered.get(&pair)
            && i128::from(start) < i128::from(last.window_start_ms) + suppress_ms
            && severity <= last.severity
        {
            out.suppressed.push(index);
            continue;
        }
        remembered.insert(pair, Remembered { window_start_ms: start, severity });
        out.alerts.push(Alert::from_candidate(candidate, severity));
    }
    out
}
