//! The order in which records are delivered: by epoch, except out-of-order, late and duplicate
//! records, placed so that their fate follows from SEMANTICS.md's watermark rule alone.
//!
//! Records delivered in epoch order are "on time". Every other record is inserted right after an
//! on-time record, its *anchor*:
//!
//! - **Out of order**, delayed by `delta` in `[1, allowed_lateness_ms]`: anchored at the last
//!   on-time record with epoch `<= t + delta`, and only if that anchor's epoch is `> t` (so it
//!   really arrives after a later record). Invariant: every inserted record that can be accepted
//!   has an epoch no greater than its anchor's. So when it arrives every accepted record has epoch
//!   `<= t + delta`, the watermark is `<= t + delta - lateness <= t` and its window (which ends
//!   after `t`) is still open: **never late**, and (fresh id) accepted.
//! - **On time** records are therefore accepted too: everything accepted before one has an epoch
//!   no greater than its own.
//! - **Late**: anchored at the first on-time record with epoch `>= window_end(t) + lateness +
//!   extra` (extra in `[0, window_ms]`). That anchor is accepted, so the watermark reaches the
//!   window's end before the record arrives: **always late**.
//! - **Duplicate**: an exact copy of an on-time or out-of-order record, delayed by `delta` in
//!   `[0, lateness]` (anchored at the last on-time record with epoch `<= t + delta`, and never
//!   before its original). By the same argument as out-of-order records its window is still open,
//!   and its original was accepted into it: **always a duplicate**.
//! - **Malformed** lines are invalid, so they change nothing, and go anywhere.

use super::rng::Rng;

/// One observation record: its event time and its line.
pub struct Record {
    pub epoch_ms: i64,
    pub text: String,
}

/// How many records of each kind to make (the plan may make fewer, see [`Delivery`]).
pub struct DeliveryPlan {
    pub out_of_order: usize,
    pub late: usize,
    pub duplicates: usize,
    pub window_ms: i64,
    pub allowed_lateness_ms: i64,
}

/// The delivered lines and the (zero-based) line numbers of each kind of special record.
#[derive(Debug, Clone, Default)]
pub struct Delivery {
    pub lines: Vec<String>,
    pub out_of_order_lines: Vec<usize>,
    pub late_lines: Vec<usize>,
    pub duplicate_lines: Vec<usize>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Fate {
    OnTime,
    OutOfOrder { delay_ms: i64 },
    Late { extra_ms: i64 },
}

/// A record placed after an anchor; `order` keeps originals before their copies.
struct Insertion {
    anchor: usize,
    order: usize,
    record: usize,
    kind: Kind,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    OutOfOrder,
    Late,
    Duplicate,
}

/// Orders `records` (sorted by epoch) for delivery.
///
/// Records whose special fate cannot be guaranteed (a late record too close to the end of the
/// data to be overtaken by far enough, an out-of-order one with no on-time record in its delay)
/// stay on time; [`Delivery`] lists what was actually made. With `allowed_lateness_ms == 0` no
/// record can be out of order without being late, so none is made.
pub fn deliver(records: &[Record], plan: &DeliveryPlan, rng: &mut Rng) -> Delivery {
    debug_assert!(records.windows(2).all(|w| w[0].epoch_ms <= w[1].epoch_ms));
    let lateness = plan.allowed_lateness_ms;
    let window_ms = plan.window_ms;
    let window_end = |t: i64| (t.div_euclid(window_ms) + 1) * window_ms;

    let mut order: Vec<usize> = (0..records.len()).collect();
    rng.shuffle(&mut order);
    let mut fates = vec![Fate::OnTime; records.len()];
    let late_count = plan.late.min(records.len());
    for &index in &order[..late_count] {
        fates[index] = Fate::Late { extra_ms: rng.int_between(0, window_ms) };
    }
    if lateness >= 1 {
        let end = (late_count + plan.out_of_order).min(records.len());
        for &index in &order[late_count..end] {
            fates[index] = Fate::OutOfOrder { delay_ms: rng.int_between((lateness / 2).max(1), lateness) };
        }
    }

    // Give up the fates that cannot be guaranteed. Returning a record to on time only adds
    // anchors, so a check that passed stays passed: one pass, then anchors are computed.
    let on_time_epochs =
        |fates: &[Fate]| -> Vec<i64> { (0..records.len()).filter(|&i| fates[i] == Fate::OnTime).map(|i| records[i].epoch_ms).collect() };
    let epochs = on_time_epochs(&fates);
    for index in 0..records.len() {
        let t = records[index].epoch_ms;
        let keep = match fates[index] {
            Fate::OnTime => true,
            Fate::Late { extra_ms } => epochs.partition_point(|&e| e < window_end(t) + lateness + extra_ms) < epochs.len(),
            Fate::OutOfOrder { delay_ms } => {
                let last = epochs.partition_point(|&e| e <= t + delay_ms);
                last > 0 && epochs[last - 1] > t
            }
        };
        if !keep {
            fates[index] = Fate::OnTime;
        }
    }
    let on_time: Vec<usize> = (0..records.len()).filter(|&i| fates[i] == Fate::OnTime).collect();
    let epochs = on_time_epochs(&fates);
    // Position of each on-time record among the on-time records.
    let mut on_time_position = vec![usize::MAX; records.len()];
    for (position, &index) in on_time.iter().enumerate() {
        on_time_position[index] = position;
    }

    let mut insertions: Vec<Insertion> = Vec::new();
    // Where each record (original) sits: its on-time position or its anchor.
    let mut placed_at = vec![usize::MAX; records.len()];
    for index in 0..records.len() {
        let t = records[index].epoch_ms;
        let (anchor, kind) = match fates[index] {
            Fate::OnTime => {
                placed_at[index] = on_time_position[index];
                continue;
            }
            Fate::Late { extra_ms } => (epochs.partition_point(|&e| e < window_end(t) + lateness + extra_ms), Kind::Late),
            Fate::OutOfOrder { delay_ms } => (epochs.partition_point(|&e| e <= t + delay_ms) - 1, Kind::OutOfOrder),
        };
        placed_at[index] = anchor;
        insertions.push(Insertion { anchor, order: insertions.len(), record: index, kind });
    }

    // Duplicates: copies of records that are accepted (on time or out of order).
    let mut accepted: Vec<usize> = (0..records.len()).filter(|&i| !matches!(fates[i], Fate::Late { .. })).collect();
    rng.shuffle(&mut accepted);
    for &index in accepted.iter().take(plan.duplicates) {
        let t = records[index].epoch_ms;
        let delay_ms = rng.int_between(0, lateness);
        let by_delay = epochs.partition_point(|&e| e <= t + delay_ms).saturating_sub(1);
        let anchor = by_delay.max(placed_at[index]);
        insertions.push(Insertion { anchor, order: insertions.len(), record: index, kind: Kind::Duplicate });
    }
    insertions.sort_by_key(|insertion| (insertion.anchor, insertion.order));

    let mut delivery = Delivery::default();
    let mut pending = insertions.iter().peekable();
    for (position, &index) in on_time.iter().enumerate() {
        delivery.lines.push(records[index].text.clone());
        while let Some(insertion) = pending.next_if(|insertion| insertion.anchor == position) {
            let line = delivery.lines.len();
            match insertion.kind {
                Kind::OutOfOrder => delivery.out_of_order_lines.push(line),
                Kind::Late => delivery.late_lines.push(line),
                Kind::Duplicate => delivery.duplicate_lines.push(line),
            }
            delivery.lines.push(records[insertion.record].text.clone());
        }
    }
    assert!(pending.next().is_none(), "every insertion has an on-time anchor");
    delivery
}

/// Where [`mix_in`] put the lines.
pub struct Mixed {
    /// The final line number of each extra line, in the order given.
    pub extra_lines: Vec<usize>,
    /// The final line number of each original line.
    pub original_lines: Vec<usize>,
}

/// Mixes `extra` lines into `lines` at random places (keeping both sequences' own order).
pub fn mix_in(lines: &mut Vec<String>, extra: Vec<String>, rng: &mut Rng) -> Mixed {
    let total = lines.len() + extra.len();
    let mut taken = std::collections::BTreeSet::new();
    while taken.len() < extra.len() {
        taken.insert(rng.index(total));
    }
    let mut mixed = Vec::with_capacity(total);
    let mut placement = Mixed { extra_lines: Vec::with_capacity(extra.len()), original_lines: Vec::with_capacity(lines.len()) };
    let mut originals = std::mem::take(lines).into_iter();
    let mut extras = extra.into_iter();
    for line in 0..total {
        if taken.contains(&line) {
            placement.extra_lines.push(line);
            mixed.push(extras.next().expect("one extra line per slot"));
        } else {
            placement.original_lines.push(line);
            mixed.push(originals.next().expect("enough original lines"));
        }
    }
    *lines = mixed;
    placement
}
