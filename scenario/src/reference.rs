//! The brute-force reference of the conjunction operators: what the correlator and the classifier
//! must emit for a sequence of observation lines, simulated record by record from SEMANTICS.md.
//!
//! Three phases, each usable on its own:
//! 1. [`correlate`]: validation, windows, watermark, late and duplicate records, and in catalogue
//!    mode the carried states; yields the closed windows in closing order with each object's state.
//!    [`Correlator`] does the same one line at a time and lends each window as it closes, for inputs
//!    too large to hold.
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
//! - Catalogue mode: a window that holds no state at all (a gap window whose carried states have
//!   all expired) is not listed among the closed windows nor counted in `windows_closed`; it has
//!   nothing to screen. So with `state_horizon_ms = 0` the windows listed are exactly those of the
//!   windowed mode.

use crate::config::{ClassifierConfig, CorrelatorConfig};
use crate::error::ScenarioError;
use crate::observation::{InvalidKind, Observation, Rejection, parse_observation};
use crate::propagate::State;
use crate::records::{Alert, Candidate, Severity};
use crate::screening::{self, WindowObject};
use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
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
    /// Sorted by `object_id`: fresh states (accepted into the window) and, in catalogue mode,
    /// carried ones.
    pub objects: Vec<WindowObject>,
}

/// What the correlator does with the input, before any geometry.
#[derive(Debug, Clone, Default)]
pub struct Correlation {
    /// In the order they close; only windows that hold at least one state.
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

/// The states screened when one window closes: its fresh states and, in catalogue mode, the
/// carried states still within the horizon. Borrowed from the correlator, so a caller that only
/// looks at some windows (or some objects) copies nothing.
#[derive(Debug, Clone, Copy)]
pub struct WindowStates<'a> {
    /// `k` in `[k * window_ms, (k + 1) * window_ms)`.
    pub index: i64,
    pub start_ms: i128,
    pub end_ms: i128,
    states: &'a HashMap<u32, WindowObject>,
}

impl<'a> WindowStates<'a> {
    /// How many objects have a state in the window.
    pub fn len(&self) -> usize {
        self.states.len()
    }

    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }

    /// The state of `object_id` in the window, if it has one.
    pub fn get(&self, object_id: u32) -> Option<&'a WindowObject> {
        self.states.get(&object_id)
    }

    /// Every state, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &'a WindowObject> + use<'a> {
        self.states.values()
    }

    /// Every state, by increasing `object_id`.
    pub fn sorted(&self) -> Vec<&'a WindowObject> {
        let mut states: Vec<&WindowObject> = self.states.values().collect();
        states.sort_unstable_by_key(|state| state.object_id);
        states
    }

    /// An owned copy, as [`correlate`] lists them.
    pub fn to_closed_window(&self) -> ClosedWindow {
        ClosedWindow {
            index: self.index,
            start_ms: self.start_ms,
            end_ms: self.end_ms,
            objects: self.sorted().into_iter().cloned().collect(),
        }
    }
}

/// One input line, read: what the correlator's steps start from.
#[derive(Debug, Clone, PartialEq)]
pub enum ReadLine {
    /// Only ASCII whitespace: skipped.
    Blank,
    Invalid(Rejection),
    Observation(Observation),
}

/// Reads one input line (the part of [`Correlator::push`] that needs no state).
pub fn read_line(line: &str) -> ReadLine {
    if line.bytes().all(|b| b.is_ascii_whitespace()) {
        return ReadLine::Blank;
    }
    match parse_observation(line) {
        Ok(observation) => ReadLine::Observation(observation),
        Err(rejection) => ReadLine::Invalid(rejection),
    }
}

/// The correlator's record-by-record bookkeeping, fed one line at a time (config assumed valid).
///
/// Memory is the open windows plus, in catalogue mode, one state per live object: it never holds
/// the input, so a caller can stream a file of any length through it and look at each window as
/// it closes.
pub struct Correlator {
    config: CorrelatorConfig,
    window_ms: i128,
    open: BTreeMap<i64, OpenWindow>,
    /// Each object's carried state between closes; while a window closes (and `on_close` runs),
    /// its states in that window: carried states overwritten by fresh ones. A hash map: at 10^6
    /// objects a tree's cache misses made up most of a close.
    catalogue: HashMap<u32, WindowObject>,
    /// `(epoch_ms, object_id)` of every state put in the catalogue, oldest first: expiry pops the
    /// expired ones instead of scanning the whole catalogue at every close. An entry whose object
    /// has a newer state by then is stale and skipped (an object's states have distinct epochs).
    by_epoch: BinaryHeap<Reverse<(i64, u32)>>,
    /// `None` is minus infinity: before the first accepted observation.
    max_seen: Option<i64>,
    /// Valid observations in a row, up to the last, that the clock guard found too far ahead.
    ahead_in_a_row: u32,
    watermark: Option<i128>,
    /// `k_last`: the greatest window that received an accepted observation. No window after it is
    /// closed (with `k_first`, the first window closed is always one that received one).
    last_accepted_window: Option<i64>,
    /// The last window closed; gap windows after it are closed while the catalogue holds states.
    last_closed: Option<i64>,
    lines: usize,
    /// Everything but the closed windows, which go to `on_close`.
    bookkeeping: Correlation,
}

impl Correlator {
    pub fn new(config: &CorrelatorConfig) -> Self {
        Correlator {
            config: *config,
            window_ms: i128::from(config.window_ms),
            open: BTreeMap::new(),
            catalogue: HashMap::new(),
            by_epoch: BinaryHeap::new(),
            max_seen: None,
            ahead_in_a_row: 0,
            watermark: None,
            last_accepted_window: None,
            last_closed: None,
            lines: 0,
            bookkeeping: Correlation::default(),
        }
    }

    fn window_end(&self, k: i64) -> i128 {
        (i128::from(k) + 1) * self.window_ms
    }

    /// Handles the next input line (steps 1-4 of SEMANTICS.md); every window it closes is passed
    /// to `on_close`, in increasing order.
    pub fn push(&mut self, line: &str, on_close: &mut dyn FnMut(&WindowStates<'_>)) {
        self.push_read(read_line(line), on_close);
    }

    /// [`push`](Self::push) for a line already read by [`read_line`] (on another thread, say:
    /// reading is the larger part of the work).
    pub fn push_read(&mut self, line: ReadLine, on_close: &mut dyn FnMut(&WindowStates<'_>)) {
        let line_index = self.lines;
        self.lines += 1;
        let out = &mut self.bookkeeping;
        let observation = match line {
            ReadLine::Blank => {
                out.blank_lines.push(line_index);
                return;
            }
            ReadLine::Invalid(rejection) => {
                out.invalid.push(InvalidLine { line: line_index, kind: rejection.kind, message: rejection.message });
                return;
            }
            ReadLine::Observation(observation) => observation,
        };
        // 0. The clock guard: too far ahead of the greatest accepted epoch, and not the
        //    `ahead_confirmations`-th such observation in a row.
        let ahead_ms = self.max_seen.map_or(0, |seen| i128::from(observation.epoch_ms) - i128::from(seen));
        if self.config.max_ahead_ms == 0 || ahead_ms <= i128::from(self.config.max_ahead_ms) {
            self.ahead_in_a_row = 0;
        } else {
            self.ahead_in_a_row += 1;
            if self.ahead_in_a_row < self.config.ahead_confirmations {
                let message = format!("`epoch_ms` is {ahead_ms} ms ahead of the greatest accepted epoch, more than `max_ahead_ms`");
                out.invalid.push(InvalidLine { line: line_index, kind: InvalidKind::Validation, message });
                return;
            }
            self.ahead_in_a_row = 0;
        }
        let k = observation.epoch_ms.div_euclid(self.config.window_ms);
        // 1. Late: its window is already closed (whether or not it received anything).
        if self.watermark.is_some_and(|w| (i128::from(k) + 1) * self.window_ms <= w) {
            out.late_lines.push(line_index);
            return;
        }
        // 2. Duplicate: the same id was accepted into a window that is still open.
        if self.open.values().any(|w| w.observation_ids.contains(&observation.observation_id)) {
            out.duplicate_lines.push(line_index);
            return;
        }
        // 3. Accepted: the object's state is its observation with the greatest
        //    (epoch_ms, observation_id bytes).
        out.accepted += 1;
        self.last_accepted_window = Some(self.last_accepted_window.map_or(k, |last| last.max(k)));
        let window = self.open.entry(k).or_default();
        window.observation_ids.insert(observation.observation_id.clone());
        let newer = WindowObject {
            object_id: observation.object_id,
            observation_id: observation.observation_id,
            epoch_ms: observation.epoch_ms,
            state: State::new(observation.position_km, observation.velocity_km_s),
        };
        match window.objects.get(&newer.object_id) {
            Some(current) if (current.epoch_ms, current.observation_id.as_bytes()) >= (newer.epoch_ms, newer.observation_id.as_bytes()) => {
            }
            _ => {
                window.objects.insert(newer.object_id, newer);
            }
        }
        // 4. The watermark advances and closes what it passed, in increasing k.
        let seen = self.max_seen.map_or(observation.epoch_ms, |m| m.max(observation.epoch_ms));
        self.max_seen = Some(seen);
        let proposed = i128::from(seen) - i128::from(self.config.allowed_lateness_ms);
        let current = self.watermark.map_or(proposed, |w| w.max(proposed));
        self.watermark = Some(current);
        self.close_through(current, on_close);
    }

    /// End of input: `on-watermark(i64::MAX)`, then whatever still lies beyond it. Returns the
    /// bookkeeping (`closed_windows` left empty: they went to `on_close`).
    pub fn finish(mut self, on_close: &mut dyn FnMut(&WindowStates<'_>)) -> Correlation {
        let end_of_input = self.watermark.map_or(i128::from(i64::MAX), |w| w.max(i128::from(i64::MAX)));
        self.close_through(end_of_input, on_close);
        self.close_through(i128::MAX, on_close);
        self.bookkeeping
    }

    /// Closes, in increasing `k`, every window up to `k_last` whose end the watermark has reached.
    fn close_through(&mut self, watermark: i128, on_close: &mut dyn FnMut(&WindowStates<'_>)) {
        loop {
            // While carried states remain, the next window is the one after the last closed
            // (perhaps a gap window); once none remain, gap windows would be empty, so the next
            // is the first open one.
            let next = match self.last_closed {
                Some(last) if !self.catalogue.is_empty() => match last.checked_add(1) {
                    Some(next) => next,
                    None => break,
                },
                _ => match self.open.keys().next() {
                    Some(&first) => first,
                    None => break,
                },
            };
            if self.last_accepted_window.is_none_or(|last| next > last) || self.window_end(next) > watermark {
                break;
            }
            self.close(next, on_close);
        }
    }

    /// Closes window `k`: expiry, then the fresh states win, then the screening (`on_close`).
    fn close(&mut self, k: i64, on_close: &mut dyn FnMut(&WindowStates<'_>)) {
        let start_ms = i128::from(k) * self.window_ms;
        let horizon = i128::from(self.config.state_horizon_ms);
        // With a zero horizon every carried state goes: all are older than the window start.
        while let Some(&Reverse((epoch_ms, object_id))) = self.by_epoch.peek() {
            if start_ms - i128::from(epoch_ms) <= horizon {
                break;
            }
            self.by_epoch.pop();
            if self.catalogue.get(&object_id).is_some_and(|carried| carried.epoch_ms == epoch_ms) {
                self.catalogue.remove(&object_id);
            }
        }
        if let Some(window) = self.open.remove(&k) {
            self.by_epoch.extend(window.objects.values().map(|fresh| Reverse((fresh.epoch_ms, fresh.object_id))));
            self.catalogue.extend(window.objects);
        }
        self.last_closed = Some(k);
        // A window with no state has nothing to screen and is not reported, so the windowed mode
        // (where gap windows are never closed) reports exactly the windows it always did.
        if !self.catalogue.is_empty() {
            on_close(&WindowStates { index: k, start_ms, end_ms: start_ms + self.window_ms, states: &self.catalogue });
        }
        // After the screening the window's fresh states are the carried ones: nothing to do, the
        // catalogue already holds them.
    }
}

/// The correlator's record-by-record bookkeeping over a whole input (config assumed valid), with
/// every closed window copied out.
pub fn correlate<S: AsRef<str>>(lines: &[S], config: &CorrelatorConfig) -> Correlation {
    let mut closed_windows = Vec::new();
    let mut collect = |window: &WindowStates<'_>| closed_windows.push(window.to_closed_window());
    let mut correlator = Correlator::new(config);
    for line in lines {
        correlator.push(line.as_ref(), &mut collect);
    }
    let mut out = correlator.finish(&mut collect);
    out.closed_windows = closed_windows;
    out
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
            candidate(window.start_ms, config.window_ms, a, b, &encounter)
        })
        .collect()
}

/// The candidate a pair's encounter in the window starting at `start_ms` becomes: window bounds
/// and TCA saturated to i64, the TCA rounded to the millisecond (see the module doc).
pub fn candidate(start_ms: i128, window_ms: i64, a: &WindowObject, b: &WindowObject, encounter: &screening::Encounter) -> Candidate {
    let offset_ms = ((encounter.tca_offset_s * 1000.0).round() as i64).clamp(0, window_ms);
    Candidate {
        primary_id: a.object_id,
        secondary_id: b.object_id,
        window_start_ms: saturate(start_ms),
        window_end_ms: saturate(start_ms + i128::from(window_ms)),
        tca_ms: saturate(start_ms + i128::from(offset_ms)),
        miss_distance_km: encounter.miss_distance_km,
        relative_speed_km_s: encounter.relative_speed_km_s,
        primary_observation_id: a.observation_id.clone(),
        secondary_observation_id: b.observation_id.clone(),
    }
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
    results.into_inner().expect("workers finished").into_iter().flat_map(|window| window.expect("every window was screened")).collect()
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
