//! Exactly-once at a sink as a ledger of debts: the outputs a sink delivered beyond the point its task resumes from, owed to the replay that produces them again.
//!
//! After a crash, or a rewind to the last checkpoint after a plugin fault, the
//! task replays its input from a checkpoint and the operators produce again the
//! outputs that had been delivered after it. Those, and only those, must not be
//! delivered a second time. So a sink's ledger holds, as **debts**, the
//! identities of the outputs delivered past the resume point:
//! - after a crash, what the sink's read-back finds beyond the checkpoint's
//!   positions ([`DeliveryLedger::owe`]), plus what the checkpoint itself still
//!   owed;
//! - after a rewind, what was owed at the last checkpoint plus everything
//!   delivered since ([`DeliveryLedger::rewound`]).
//!
//! An output produced while it is owed settles one debt and is skipped
//! ([`DeliveryLedger::settles`]); every other output is delivered. Debts are
//! counted, not merely remembered: two identical lines delivered are two
//! debts, and a third identical line is new. So an operator may emit the same
//! line as often as it likes: outside a replay nothing is ever skipped. (The
//! set of everything delivered in the last hour that this replaced dropped
//! every legitimately repeated line.)
//!
//! A debt the replay never settles (an operator whose outputs differ from run
//! to run) would skip a later identical output once; it is forgotten at the
//! first checkpoint at which it is older than the sink's dedup `max_age_ms`.

use crate::dedup::{DedupLimits, Identity, SeenSetSnapshot};
use std::collections::HashMap;

/// One sink's debts and its deliveries since the last checkpoint.
#[derive(Debug, Clone)]
pub struct DeliveryLedger {
    limits: DedupLimits,
    /// Identity -> stamps (ms) of its unsettled debts, oldest first.
    owed: HashMap<Identity, Vec<u64>>,
    /// What was owed when the last checkpoint was captured: a rewind to it owes it again.
    owed_at_checkpoint: Vec<(Identity, u64)>,
    /// What was delivered since the last checkpoint, with when.
    since_checkpoint: Vec<(Identity, u64)>,
}

impl DeliveryLedger {
    /// The ledger a checkpoint saved ([`DeliveryLedger::checkpointed`]): its debts, dropping those
    /// older than `limits.max_age_ms` at `now_ms`.
    pub fn restore(limits: DedupLimits, saved: SeenSetSnapshot, now_ms: u64) -> DeliveryLedger {
        let mut ledger = DeliveryLedger { limits, owed: HashMap::new(), owed_at_checkpoint: Vec::new(), since_checkpoint: Vec::new() };
        for (id, stamp) in saved.entries {
            if !ledger.expired(stamp, now_ms) {
                ledger.owe(id, stamp);
            }
        }
        ledger.owed_at_checkpoint = ledger.debts();
        ledger
    }

    fn expired(&self, stamp_ms: u64, now_ms: u64) -> bool {
        now_ms.saturating_sub(stamp_ms) >= self.limits.max_age_ms
    }

    /// One more debt: `id` was delivered past the resume point (found by the sink's read-back).
    pub fn owe(&mut self, id: Identity, stamp_ms: u64) {
        self.owed.entry(id).or_default().push(stamp_ms);
    }

    /// `id` was produced again: true if it was owed (one debt settled: skip it), false if it is new.
    pub fn settles(&mut self, id: Identity) -> bool {
        let Some(stamps) = self.owed.get_mut(&id) else { return false };
        stamps.remove(0);
        if stamps.is_empty() {
            self.owed.remove(&id);
        }
        true
    }

    /// `id` was delivered (and is owed again if the task rewinds before the next checkpoint).
    pub fn delivered(&mut self, id: Identity, now_ms: u64) {
        self.since_checkpoint.push((id, now_ms));
    }

    /// A checkpoint is being captured: expired debts are forgotten, what remains is what the
    /// checkpoint saves (and what a rewind to it owes), and deliveries start counting afresh.
    pub fn checkpointed(&mut self, now_ms: u64) -> SeenSetSnapshot {
        let limits = self.limits;
        self.owed.retain(|_, stamps| {
            stamps.retain(|&stamp| now_ms.saturating_sub(stamp) < limits.max_age_ms);
            !stamps.is_empty()
        });
        self.since_checkpoint.clear();
        self.owed_at_checkpoint = self.debts();
        SeenSetSnapshot { entries: self.owed_at_checkpoint.clone() }
    }

    /// The task rewound to its last checkpoint: it owes again what it owed then, and everything it
    /// delivered since.
    pub fn rewound(&mut self) {
        self.owed.clear();
        for &(id, stamp) in self.owed_at_checkpoint.iter().chain(&self.since_checkpoint) {
            self.owed.entry(id).or_default().push(stamp);
        }
    }

    /// How many debts are unsettled.
    pub fn owed(&self) -> usize {
        self.owed.values().map(Vec::len).sum()
    }

    /// The debts, oldest first (ties in identity order, so a snapshot is reproducible).
    fn debts(&self) -> Vec<(Identity, u64)> {
        let mut debts: Vec<(Identity, u64)> =
            self.owed.iter().flat_map(|(&id, stamps)| stamps.iter().map(move |&stamp| (id, stamp))).collect();
        debts.sort_unstable_by_key(|&(id, stamp)| (stamp, id));
        debts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: DedupLimits = DedupLimits { max_entries: 1000, max_age_ms: 60_000 };

    fn ledger() -> DeliveryLedger {
        DeliveryLedger::restore(LIMITS, SeenSetSnapshot::default(), 0)
    }

    #[test]
    fn outside_a_replay_nothing_is_skipped_not_even_identical_outputs() {
        let mut l = ledger();
        for _ in 0..3 {
            assert!(!l.settles(7));
            l.delivered(7, 1);
        }
        assert_eq!(l.owed(), 0);
    }

    #[test]
    fn debts_are_counted_two_identical_deliveries_skip_two_replays_and_a_third_is_new() {
        let mut l = ledger();
        l.owe(7, 1);
        l.owe(7, 2);
        l.owe(8, 2);
        assert!(l.settles(7) && l.settles(7));
        assert!(!l.settles(7), "a third identical output is new");
        assert!(l.settles(8));
        assert_eq!(l.owed(), 0);
    }

    #[test]
    fn a_rewind_owes_what_the_checkpoint_owed_and_everything_delivered_since() {
        let mut l = ledger();
        l.owe(1, 10); // found by a read-back, not yet replayed
        let saved = l.checkpointed(20);
        assert_eq!(saved.entries, vec![(1, 10)]);
        l.delivered(2, 30);
        l.delivered(2, 31);
        assert!(l.settles(1), "the replay settles the old debt");
        l.rewound();
        assert_eq!(l.owed(), 3, "the checkpoint's debt and both deliveries since");
        assert!(l.settles(1) && l.settles(2) && l.settles(2) && !l.settles(2));
        // A second rewind before the next checkpoint owes the same again.
        l.rewound();
        assert_eq!(l.owed(), 3);
        // After a checkpoint, deliveries before it are never owed again.
        assert!(l.settles(1) && l.settles(2) && l.settles(2));
        assert!(l.checkpointed(40).entries.is_empty());
        l.rewound();
        assert_eq!(l.owed(), 0);
    }

    #[test]
    fn debts_survive_a_checkpoint_and_expire_after_max_age() {
        let mut l = ledger();
        l.owe(1, 0);
        l.owe(2, 50_000);
        let saved = l.checkpointed(59_999);
        assert_eq!(saved.entries, vec![(1, 0), (2, 50_000)]);
        let mut restored = DeliveryLedger::restore(LIMITS, saved.clone(), 60_000);
        assert_eq!(restored.owed(), 1, "the debt stamped 0 is 60 s old: forgotten");
        assert!(restored.settles(2) && !restored.settles(1));
        let mut kept = DeliveryLedger::restore(LIMITS, saved, 59_999);
        assert_eq!(kept.checkpointed(60_000).entries, vec![(2, 50_000)]);
    }
}
