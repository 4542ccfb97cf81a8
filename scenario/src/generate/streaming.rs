//! The sparse scenario written as it is made: the schedule's observations in time order, with
//! out-of-order, late, duplicate and malformed lines mixed in through bounded buffers.
//!
//! The placement rules are [`delivery`](super::delivery)'s, decided one record at a time instead
//! of over the whole scenario (every record keeps the same chances, drawn as it comes):
//!
//! - **Out of order**, delay `delta` in `[max(1, lateness / 2), lateness]`: held back and written
//!   just before the first on-time record with epoch `> t + delta`. Everything accepted before it
//!   then has an epoch `<= t + delta`, so the watermark is `<= t` and its window is open.
//! - **Late**, `extra` in `[0, window_ms]`: held back and written just after the first on-time
//!   record with epoch `>= window_end(t) + lateness + extra`, which moves the watermark to its
//!   window's end. Guaranteed observations of planted objects are never made late.
//! - **Duplicate**, delay in `[0, lateness]`: a copy held back like an out-of-order record (and
//!   never before its original), so its window is still open and its id already accepted there.
//! - **Malformed**: written right after the record it was derived from.
//!
//! Held records wait at most `window_ms + 2 lateness` of scenario time, so the buffers hold a few
//! minutes' worth of a few percent of the records, whatever the scenario's length.
//!
//! Every line's fate is then *measured*, not assumed: a small model of the correlator's watermark
//! follows the lines as they are written, and the summary lists what it saw. (Records still held
//! at the end of the data are written last; the model says what became of them.)

use super::rng::Rng;
use super::sparse::{Schedule, SparseCadence};
use super::{Delivered, GenerateOptions, MalformedLine, Population, malformed, observation_line};
use crate::error::ScenarioError;
use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};

/// Where the lines go: a file, or memory.
pub trait LineSink {
    /// Takes one line, without its newline.
    fn line(&mut self, text: &str) -> Result<(), ScenarioError>;
}

/// Lines kept in memory.
pub struct VecSink<'a>(pub &'a mut Vec<String>);

impl LineSink for VecSink<'_> {
    fn line(&mut self, text: &str) -> Result<(), ScenarioError> {
        self.0.push(text.to_owned());
        Ok(())
    }
}

/// How often `progress` hears from [`write`], in scheduled observations.
const PROGRESS_EVERY: u64 = 1 << 16;

/// What a record is meant to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Intent {
    OnTime,
    OutOfOrder,
    Late,
    /// A copy of observation number `original`.
    Duplicate {
        original: u64,
    },
}

/// A record, held back (unless on time) until the on-time stream passes `key`.
struct Held {
    key: i64,
    /// Among equal keys, the smaller is written first: `2 number` for an observation, `2 number + 1`
    /// for its copy, so an original goes before its copy and otherwise observations keep their order.
    sequence: u64,
    epoch_ms: i64,
    number: u64,
    intent: Intent,
    /// Whether a copy of it is held too (so its fate must be remembered for the copy).
    copied: bool,
    text: String,
}

impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Held {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.key, self.sequence).cmp(&(other.key, other.sequence))
    }
}

/// What the correlator makes of a line, by the watermark rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Accepted { out_of_order: bool },
    Late,
    Duplicate,
}

/// A model of the correlator's late and duplicate decisions over the lines written so far.
struct Watermark {
    window_ms: i128,
    lateness_ms: i128,
    /// Greatest accepted epoch.
    max_accepted: Option<i64>,
    /// Greatest epoch of any observation line written (accepted or not).
    newest: Option<i64>,
}

impl Watermark {
    /// The fate of an observation line with this epoch; for a copy, whether its original was
    /// accepted (into the same window, since it has the same epoch).
    fn deliver(&mut self, epoch_ms: i64, copy_of_accepted: Option<bool>) -> Fate {
        let window_end = (i128::from(epoch_ms.div_euclid(self.window_ms as i64)) + 1) * self.window_ms;
        let watermark = self.max_accepted.map(|m| i128::from(m) - self.lateness_ms);
        let fate = if watermark.is_some_and(|w| window_end <= w) {
            Fate::Late
        } else if copy_of_accepted == Some(true) {
            Fate::Duplicate
        } else {
            self.max_accepted = Some(self.max_accepted.map_or(epoch_ms, |m| m.max(epoch_ms)));
            Fate::Accepted { out_of_order: self.newest.is_some_and(|n| epoch_ms < n) }
        };
        self.newest = Some(self.newest.map_or(epoch_ms, |n| n.max(epoch_ms)));
        fate
    }
}

/// Writes lines and records where each special one went.
struct Writer<'s> {
    sink: &'s mut dyn LineSink,
    watermark: Watermark,
    delivered: Delivered,
    /// Fates of originals whose copy is still held.
    originals: HashMap<u64, bool>,
}

impl Writer<'_> {
    fn observation(&mut self, held: &Held) -> Result<(), ScenarioError> {
        let copy_of_accepted = match held.intent {
            Intent::Duplicate { original } => Some(self.originals.remove(&original).expect("an original is written before its copy")),
            _ => None,
        };
        let fate = self.watermark.deliver(held.epoch_ms, copy_of_accepted);
        debug_assert!(
            match held.intent {
                Intent::OnTime => fate == Fate::Accepted { out_of_order: false },
                Intent::Duplicate { .. } => fate == Fate::Duplicate,
                Intent::OutOfOrder => matches!(fate, Fate::Accepted { .. }),
                Intent::Late => true, // only held to the end of the data may it be accepted
            },
            "observation {} meant {:?} became {fate:?}",
            held.number,
            held.intent
        );
        if held.copied {
            self.originals.insert(held.number, matches!(fate, Fate::Accepted { .. }));
        }
        let line = self.delivered.lines;
        match fate {
            Fate::Accepted { out_of_order: true } => self.delivered.out_of_order_lines.push(line),
            Fate::Accepted { out_of_order: false } => {}
            Fate::Late => self.delivered.late_lines.push(line),
            Fate::Duplicate => self.delivered.duplicate_lines.push(line),
        }
        self.text(&held.text)
    }

    fn text(&mut self, text: &str) -> Result<(), ScenarioError> {
        self.delivered.lines += 1;
        self.sink.line(text)
    }
}

/// Makes the sparse scenario and writes its lines to `sink`. `progress(done_ms, total_ms)` follows
/// the scenario time written.
pub fn write(
    options: &GenerateOptions,
    cadence: &SparseCadence,
    population: &Population,
    sink: &mut dyn LineSink,
    progress: &dyn Fn(i64, i64),
) -> Result<Delivered, ScenarioError> {
    let window_ms = options.correlator.window_ms;
    let lateness_ms = options.correlator.allowed_lateness_ms;
    let (start_ms, end_ms) = (options.start_ms, options.end_ms());
    let window_end = |t: i64| (t.div_euclid(window_ms) + 1) * window_ms;
    let (p_late, p_out_of_order) = (options.late_pct / 100.0, options.out_of_order_pct / 100.0);
    let (p_duplicate, p_malformed) = (options.duplicate_pct / 100.0, options.malformed_pct / 100.0);
    let mut fates = Rng::stream(options.seed, "sparse-delivery");
    let mut malformed_rng = Rng::stream(options.seed, "sparse-malformed");
    let first_variant = malformed_rng.index(malformed::VARIANTS);

    let mut writer = Writer {
        sink,
        watermark: Watermark { window_ms: i128::from(window_ms), lateness_ms: i128::from(lateness_ms), max_accepted: None, newest: None },
        delivered: Delivered {
            lines: 0,
            observations: 0,
            out_of_order_lines: Vec::new(),
            late_lines: Vec::new(),
            duplicate_lines: Vec::new(),
            malformed: Vec::new(),
        },
        originals: HashMap::new(),
    };
    // Written before the first on-time record past their key / just after the first at or past it.
    let mut before_next: BinaryHeap<Reverse<Held>> = BinaryHeap::new();
    let mut after_next: BinaryHeap<Reverse<Held>> = BinaryHeap::new();
    progress(0, end_ms - start_ms);
    for (index, scheduled) in Schedule::new(options, cadence, population).enumerate() {
        let number = index as u64 + 1;
        writer.delivered.observations += 1;
        let t = scheduled.epoch_ms;
        let object = &population.objects[scheduled.object];
        let sensor = object.sensor(scheduled.sensor);
        let state = object.truth.at(t);
        let text = observation_line(number as usize, object.id, &sensor, t, &state);

        // Its fate, drawn as it comes: the same chances as the regular delivery's.
        let draw = fates.unit();
        let (intent, key) = if draw < p_late {
            let extra_ms = fates.int_between(0, window_ms);
            let anchor_from = window_end(t) + lateness_ms + extra_ms;
            // A late record needs an on-time record after it to be late behind.
            if !scheduled.guaranteed && anchor_from < end_ms { (Intent::Late, anchor_from) } else { (Intent::OnTime, t) }
        } else if draw < p_late + p_out_of_order && lateness_ms >= 1 {
            (Intent::OutOfOrder, t + fates.int_between((lateness_ms / 2).max(1), lateness_ms))
        } else {
            (Intent::OnTime, t)
        };
        let copy = (intent != Intent::Late && fates.chance(p_duplicate)).then(|| Held {
            key: (t + fates.int_between(0, lateness_ms)).max(key),
            sequence: 2 * number + 1,
            epoch_ms: t,
            number,
            intent: Intent::Duplicate { original: number },
            copied: false,
            text: text.clone(),
        });
        let record = Held { key, sequence: 2 * number, epoch_ms: t, number, intent, copied: copy.is_some(), text };
        match intent {
            Intent::OnTime => {
                while before_next.peek().is_some_and(|waiting| waiting.0.key < t) {
                    let Reverse(waiting) = before_next.pop().expect("peeked");
                    writer.observation(&waiting)?;
                }
                writer.observation(&record)?;
                while after_next.peek().is_some_and(|waiting| waiting.0.key <= t) {
                    let Reverse(waiting) = after_next.pop().expect("peeked");
                    writer.observation(&waiting)?;
                }
            }
            Intent::Late => after_next.push(Reverse(record)),
            _ => before_next.push(Reverse(record)),
        }
        if let Some(copy) = copy {
            before_next.push(Reverse(copy));
        }

        if malformed_rng.chance(p_malformed) {
            let made = writer.delivered.malformed.len();
            let template = malformed::Template {
                observation_id: format!("obs-bad-{:06}", made + 1),
                object_id: object.id,
                sensor_id: sensor,
                epoch_ms: t,
                position_km: state.position_km,
                velocity_km_s: state.velocity_km_s,
            };
            let bad = malformed::malformed_line(&template, first_variant + made, &mut malformed_rng);
            writer.delivered.malformed.push(MalformedLine { line: writer.delivered.lines, kind: bad.kind, defect: bad.defect.to_string() });
            writer.text(&bad.text)?;
        }
        if number.is_multiple_of(PROGRESS_EVERY) {
            progress(t - start_ms, end_ms - start_ms);
        }
    }
    // The end of the data: whatever is still held, in the order it was due.
    while let Some(Reverse(waiting)) = before_next.pop() {
        writer.observation(&waiting)?;
    }
    while let Some(Reverse(waiting)) = after_next.pop() {
        writer.observation(&waiting)?;
    }
    progress(end_ms - start_ms, end_ms - start_ms);
    Ok(writer.delivered)
}
