//! Bounded deduplication set: what the DLQ delivered recently, and the keys a source passed on recently.
//!
//! The DLQ keeps a [`SeenSet`] of the [`Identity`] of every dead letter it
//! delivered recently, so a replay after a crash does not write one twice (a
//! dead letter names its source position, so two are never legitimately
//! equal); a source with `dedup` drops a record whose key it passed on
//! recently. (Sinks do not use it: a sink skips only what a replay owes it,
//! see [`crate::ledger`].) The set is saved in every checkpoint
//! ([`SeenSet::snapshot`], [`SeenSet::restore`]) and is bounded both by age and
//! by count ([`DedupLimits`]), evicting the oldest entries first.
//!
//! # Design
//!
//! - A `VecDeque` of entries (identity and stamp, 24 bytes each) in insertion
//!   order, which is age order: eviction pops from the front.
//! - A `HashSet<u128>` of the same identities for O(1) membership. Identities
//!   are already XXH3 hashes, so the table's hasher only needs to fold the
//!   128 bits into 64: one keyed multiply (`FoldHasher`) rather than
//!   SipHash. The key is random per set so that inputs chosen to collide in
//!   the table's low bits (hash flooding) cannot be precomputed.
//! - Every operation is O(1) amortised (each entry is popped at most once),
//!   and nothing is allocated in steady state: once the set holds
//!   `max_entries`, an insertion pops one entry and pushes one into capacity
//!   that is already there. The slots that removals leave marked deleted in
//!   the table are cleared in place rather than by growing it, so a full set
//!   keeps the size it had when it filled (see [`SeenSet::heap_bytes`]).
//! - The deque grows geometrically but never past `max_entries`, so a full
//!   set's deque is exactly `max_entries x 24` bytes.
//!
//! # Eviction rule
//!
//! An entry stamped `t` has expired at `now` when `now - t >= max_age_ms`
//! (saturating: a stamp in the future has age 0), so an entry lives exactly
//! `max_age_ms` milliseconds. Eviction only ever pops the front (the oldest by
//! insertion), while the front has expired or the set holds more than
//! `max_entries`. Stamps are non-decreasing in practice; if a caller passes a
//! `now_ms` smaller than an earlier one, the set stays in insertion order and an
//! expired entry behind a younger one waits until it reaches the front. Nothing
//! panics on such input.
//!
//! `max_entries == 0` or `max_age_ms == 0` are valid and mean "retain nothing":
//! every record is reported new and nothing is kept (so nothing is
//! deduplicated).

use std::collections::HashSet;
use std::collections::VecDeque;
use std::hash::{BuildHasher, Hasher};

/// Wall-clock milliseconds: the clock dedup sets and delivery ledgers age their entries by.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// A record's identity: 128-bit XXH3 of the parts that identify it.
///
/// 128 bits so that an accidental collision (which would drop a genuinely new
/// record as a duplicate) is out of the question even over billions of records.
pub type Identity = u128;

/// Identity of a sequence of byte strings, unambiguous (length-prefix each part
/// before hashing, so ("ab","c") != ("a","bc")).
///
/// Exists so that every sink and the recovery scan derive a record's identity
/// the same way. The hashed bytes are, for each part, its length as a
/// little-endian `u64` followed by the part itself; this encoding is
/// prefix-free, so two different sequences of parts never hash the same bytes.
/// The value is part of the checkpoint format: changing the encoding or the
/// hash makes existing checkpoints' dedup sets useless.
pub fn identity(parts: &[&[u8]]) -> Identity {
    /// Inputs up to this many encoded bytes (keys, alert lines) are hashed in one
    /// shot from a stack buffer, faster than the streaming hasher (about 40 vs
    /// 65 ns for 300 bytes). Not larger: the buffer is zeroed on every call.
    const STACK_BYTES: usize = 512;
    const PREFIX: usize = std::mem::size_of::<u64>();

    let encoded_len = parts.iter().fold(0usize, |n, p| n.saturating_add(PREFIX).saturating_add(p.len()));
    if encoded_len <= STACK_BYTES {
        let mut buf = [0u8; STACK_BYTES];
        let mut at = 0;
        for part in parts {
            buf[at..at + PREFIX].copy_from_slice(&(part.len() as u64).to_le_bytes());
            at += PREFIX;
            buf[at..at + part.len()].copy_from_slice(part);
            at += part.len();
        }
        xxhash_rust::xxh3::xxh3_128(&buf[..at])
    } else {
        // Same bytes, streamed: XXH3 gives the same digest either way.
        let mut hasher = xxhash_rust::xxh3::Xxh3Default::new();
        for part in parts {
            hasher.update(&(part.len() as u64).to_le_bytes());
            hasher.update(part);
        }
        hasher.digest128()
    }
}

/// How much a [`SeenSet`] may hold: it exists so operators can trade memory for
/// the replay window they need to cover (both limits come from `pipeline.toml`).
///
/// A replayed record is recognised only while its identity is still in the set,
/// so `max_age_ms` must exceed the longest time between a delivery and the
/// replay that could regenerate it (checkpoint interval plus recovery time),
/// and `max_entries` must exceed the number of records delivered in that time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DedupLimits {
    /// Most identities kept; beyond it the oldest are evicted. 0 keeps nothing.
    pub max_entries: usize,
    /// An entry is evicted once it is this old (milliseconds since its stamp). 0 keeps nothing.
    pub max_age_ms: u64,
}

/// Default [`DedupLimits::max_entries`]: about 60 MB per sink when full
/// (see [`SeenSet::heap_bytes`]), and far more alerts than an hour produces.
pub const DEFAULT_MAX_ENTRIES: usize = 1_000_000;

/// Default [`DedupLimits::max_age_ms`]: one hour, well beyond a checkpoint
/// interval plus a restart.
pub const DEFAULT_MAX_AGE_MS: u64 = 3_600_000;

impl Default for DedupLimits {
    /// [`DEFAULT_MAX_ENTRIES`] and [`DEFAULT_MAX_AGE_MS`], for pipelines that do not set them.
    fn default() -> Self {
        DedupLimits { max_entries: DEFAULT_MAX_ENTRIES, max_age_ms: DEFAULT_MAX_AGE_MS }
    }
}

/// One remembered delivery. The identity is stored as two `u64` halves so an
/// entry is 24 bytes (a `(u128, u64)` tuple is padded to 32 by `u128`'s
/// 16-byte alignment): a quarter less memory for the deque.
#[derive(Clone, Copy)]
struct Entry {
    id_lo: u64,
    id_hi: u64,
    stamp_ms: u64,
}

impl Entry {
    fn new(id: Identity, stamp_ms: u64) -> Entry {
        Entry { id_lo: id as u64, id_hi: (id >> 64) as u64, stamp_ms }
    }

    fn id(&self) -> Identity {
        (u128::from(self.id_hi) << 64) | u128::from(self.id_lo)
    }
}

/// Builds [`FoldHasher`]s: the identity table's hasher, keyed per set.
#[derive(Clone)]
struct FoldBuildHasher {
    k0: u64,
    k1: u64,
}

impl FoldBuildHasher {
    /// A fresh random key, drawn from the same source as std's `RandomState`.
    fn random() -> FoldBuildHasher {
        let state = std::collections::hash_map::RandomState::new();
        FoldBuildHasher { k0: state.hash_one(0x5eed_u64), k1: state.hash_one(0xda7a_u64) }
    }
}

impl BuildHasher for FoldBuildHasher {
    type Hasher = FoldHasher;

    fn build_hasher(&self) -> FoldHasher {
        FoldHasher { k0: self.k0, k1: self.k1, hash: 0 }
    }
}

/// Folds a `u128` key (already a uniformly distributed hash) into 64 bits with
/// one keyed 64x64->128 multiply, high and low halves xored. Both the low bits
/// (the bucket) and the top 7 bits (the table's tag byte) depend on all 128
/// input bits and on the key.
struct FoldHasher {
    k0: u64,
    k1: u64,
    hash: u64,
}

impl FoldHasher {
    fn mix(&mut self, v: u128) {
        let product = u128::from((v as u64) ^ self.k0 ^ self.hash) * u128::from(((v >> 64) as u64) ^ self.k1);
        self.hash = (product as u64) ^ ((product >> 64) as u64);
    }
}

impl Hasher for FoldHasher {
    fn write_u128(&mut self, v: u128) {
        self.mix(v);
    }

    /// Only `u128` keys are ever hashed (through `write_u128`); any other input
    /// is folded 16 bytes at a time so the hasher stays correct if that changes.
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(16) {
            let mut block = [0u8; 16];
            block[..chunk.len()].copy_from_slice(chunk);
            self.mix(u128::from_le_bytes(block) ^ ((chunk.len() as u128) << 120));
        }
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}

/// The identities a sink delivered recently, bounded by age and by count:
/// a replayed record whose identity is here is not delivered again.
pub struct SeenSet {
    limits: DedupLimits,
    /// Insertion order (= age order), oldest at the front.
    order: VecDeque<Entry>,
    /// The same identities, for membership.
    members: HashSet<Identity, FoldBuildHasher>,
    /// Largest `members.capacity()` observed: the table's full capacity, from
    /// which its bucket count follows. Needed because `capacity()` alone
    /// under-reports once removals leave tombstones (see [`SeenSet::heap_bytes`]).
    table_capacity: usize,
}

impl std::fmt::Debug for SeenSet {
    /// Limits and size only: a full set has a million entries.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeenSet").field("limits", &self.limits).field("len", &self.len()).finish_non_exhaustive()
    }
}

impl SeenSet {
    /// An empty set under `limits`; it exists so each sink can start with no
    /// history. Nothing is allocated until the first insertion: a sink that
    /// delivers little holds little.
    pub fn new(limits: DedupLimits) -> SeenSet {
        SeenSet { limits, order: VecDeque::new(), members: HashSet::with_hasher(FoldBuildHasher::random()), table_capacity: 0 }
    }

    /// The sink's one question before delivering: true if `id` was not in the
    /// set (it is now, stamped `now_ms`); false if it was (a duplicate; its stamp
    /// is unchanged).
    ///
    /// Exactly: [`SeenSet::evict`] at `now_ms` (so an entry that has just
    /// expired is no longer a duplicate); if `id` is then present, false;
    /// otherwise push it at the back, `evict(now_ms)` again (which makes room
    /// by evicting the oldest when the set was full), and true. With
    /// `max_entries == 0` or `max_age_ms == 0` it returns true and keeps
    /// nothing.
    ///
    /// O(1) amortised. Once the set has reached `max_entries` it allocates
    /// nothing more, with one exception: if `max_entries` fills more than 4/5
    /// of its table's usable capacity, the table may double once, later on
    /// (see `make_room_in_table`).
    pub fn check_and_insert(&mut self, id: Identity, now_ms: u64) -> bool {
        self.evict(now_ms);
        if self.members.contains(&id) {
            return false;
        }
        if self.limits.max_entries == 0 || self.limits.max_age_ms == 0 {
            // It would expire (or be over count) the moment it was inserted.
            return true;
        }
        if self.order.len() >= self.limits.max_entries {
            self.pop_oldest();
        }
        self.grow_order_if_full();
        if self.members.len() == self.members.capacity() {
            self.make_room_in_table();
        }
        self.order.push_back(Entry::new(id, now_ms));
        self.members.insert(id);
        self.table_capacity = self.table_capacity.max(self.members.capacity());
        // Only does anything when stamps went backwards: the pop above may have
        // exposed an older-stamped entry that has expired.
        self.evict(now_ms);
        true
    }

    /// Removes `id` if present, so the next [`SeenSet::check_and_insert`] of it
    /// passes; true if it was there. Exists for records that were dead-lettered:
    /// they were never processed, so a re-injection of them is not a duplicate.
    ///
    /// Searches from the newest entry back, since what is forgotten was usually
    /// inserted moments ago (same batch): O(distance from the back).
    pub fn forget(&mut self, id: Identity) -> bool {
        if !self.members.remove(&id) {
            return false;
        }
        if let Some(at) = self.order.iter().rposition(|entry| entry.id() == id) {
            self.order.remove(at);
        }
        true
    }

    /// Membership as of the last eviction (no clock here), for the recovery
    /// scan and for tests; it does not insert or evict.
    pub fn contains(&self, id: Identity) -> bool {
        self.members.contains(&id)
    }

    /// Evicts entries older than `max_age_ms` before `now_ms`, then the oldest beyond `max_entries`.
    ///
    /// Exists so the host can release memory on a timer even when a sink is
    /// idle. Pops from the front while the front has expired or the set is over
    /// count (see the module's eviction rule). Memory already allocated is kept
    /// for reuse; it never exceeds what `max_entries` requires.
    pub fn evict(&mut self, now_ms: u64) {
        while let Some(front) = self.order.front() {
            let expired = now_ms.saturating_sub(front.stamp_ms) >= self.limits.max_age_ms;
            if expired || self.order.len() > self.limits.max_entries {
                self.pop_oldest();
            } else {
                break;
            }
        }
    }

    /// Number of identities held, for metrics and the checkpoint's size.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether nothing is held (nothing delivered recently, or limits of zero).
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The limits this set enforces, so a recovery can tell whether the
    /// configuration changed since the checkpoint.
    pub fn limits(&self) -> DedupLimits {
        self.limits
    }

    /// Entries oldest first, for a checkpoint.
    ///
    /// Identities with their stamps, so a restore keeps both the membership
    /// and the eviction order. O(len), one allocation.
    pub fn snapshot(&self) -> SeenSetSnapshot {
        let mut entries = Vec::with_capacity(self.order.len());
        entries.extend(self.order.iter().map(|e| (e.id(), e.stamp_ms)));
        SeenSetSnapshot { entries }
    }

    /// Rebuilds a set from a snapshot under (possibly new) limits, evicting what they no longer allow.
    ///
    /// Exists for recovery: the checkpointed set comes back before the replay,
    /// under the limits in force now. Equivalent to a new set receiving
    /// `check_and_insert(id, stamp)` for each entry in order, then
    /// `evict(now_ms)`: a snapshot that is not from [`SeenSet::snapshot`]
    /// (repeated identities, stamps out of order) is accepted and cannot cause
    /// a panic; a repeated identity keeps its first position. O(entries).
    pub fn restore(limits: DedupLimits, snapshot: SeenSetSnapshot, now_ms: u64) -> SeenSet {
        let mut set = SeenSet::new(limits);
        let expected = snapshot.entries.len().min(limits.max_entries);
        if limits.max_age_ms > 0 && expected > 0 {
            set.order.reserve_exact(expected);
            set.members.reserve(expected);
            set.table_capacity = set.members.capacity();
        }
        for (id, stamp_ms) in snapshot.entries {
            set.check_and_insert(id, stamp_ms);
        }
        set.evict(now_ms);
        set
    }

    /// Heap bytes held now (capacity-based estimate of the containers), for metrics and the memory figure.
    ///
    /// `deque capacity x 24` (one entry: identity and stamp) plus the identity table:
    /// `buckets x (16 + 1) + 16`, each bucket holding a `u128` key and one control
    /// byte, plus one trailing SIMD group of control bytes. The bucket count is
    /// a power of two and the table fills to 7/8 of it (std's SwissTable), so it
    /// follows from the table's full capacity. That full capacity is tracked
    /// as the largest `capacity()` seen after each insertion, because
    /// `capacity()` shrinks as removals leave tombstones while the buckets stay
    /// allocated. Allocator overhead is not counted. At 1,000,000 entries this
    /// is 24 + 35.7 = 59.7 bytes per entry (2^21 buckets).
    ///
    /// The table layout is std's implementation detail (hashbrown), not a
    /// guarantee; the `dedup` bench compares this figure with the bytes a
    /// counting allocator sees, to catch a change.
    pub fn heap_bytes(&self) -> usize {
        const GROUP_WIDTH: usize = 16;
        let deque = self.order.capacity() * std::mem::size_of::<Entry>();
        let buckets = match self.table_capacity {
            0 => 0,
            // Tables of 4 and 8 buckets hold 3 and 7.
            cap if cap < 8 => cap + 1,
            cap => (cap / 7 * 8).next_power_of_two(),
        };
        let table = if buckets == 0 { 0 } else { buckets * (std::mem::size_of::<Identity>() + 1) + GROUP_WIDTH };
        deque + table
    }

    fn pop_oldest(&mut self) {
        if let Some(oldest) = self.order.pop_front() {
            self.members.remove(&oldest.id());
        }
    }

    /// Called when the table has no free slot left for an insertion. Either it
    /// is genuinely full, or removals have left tombstones (slots marked
    /// deleted, which std's table only reclaims when it runs out of room). In
    /// the second case std would rehash in place only while the table is at
    /// most half full, and otherwise allocate a table twice the size: at
    /// 1,000,000 entries (48% of 2^21 buckets, over half of the 7/8 usable)
    /// that doubling came after about 11 million insertions, taking the set
    /// from 60 to 95 bytes per entry. So: while the entries fill at most 4/5 of
    /// the usable capacity, clear the table and re-insert them (no allocation;
    /// O(len), amortised over the at least capacity/5 insertions it takes to
    /// use up the room again, so at most 4 re-insertions per insertion);
    /// beyond that, grow to the next size, as std would. Measured with
    /// `max_entries` 1,000,000 (54% of the usable 1,835,008): a clear-out of
    /// 30-70 ms about every 13 million insertions; at 10,000 (70%) one of
    /// 55 us every 25,000; just under the 4/5 line, about one per `len`
    /// insertions.
    fn make_room_in_table(&mut self) {
        let len = self.members.len();
        let usable = self.table_capacity;
        if len * 5 < usable * 4 {
            self.members.clear();
            self.members.extend(self.order.iter().map(Entry::id));
        } else {
            self.members.reserve(usable + 1 - len);
        }
        self.table_capacity = self.table_capacity.max(self.members.capacity());
    }

    /// Grows the deque geometrically but never beyond `max_entries`, so a full
    /// set's deque is exactly `max_entries x 24` bytes rather than up to twice
    /// that (plain doubling would round 1,000,001 up to 2,097,152).
    fn grow_order_if_full(&mut self) {
        let len = self.order.len();
        if len == self.order.capacity() {
            let room = self.limits.max_entries.saturating_sub(len);
            self.order.reserve_exact(len.max(4).min(room).max(1));
        }
    }
}

/// A [`SeenSet`]'s contents in a checkpoint: exists so the set survives a
/// restart. Identities with their stamps (milliseconds), oldest first; the
/// limits are not saved, they come from the configuration at restore.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SeenSetSnapshot {
    /// `(identity, stamp_ms)` in insertion order, oldest first.
    pub entries: Vec<(Identity, u64)>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn limits(max_entries: usize, max_age_ms: u64) -> DedupLimits {
        DedupLimits { max_entries, max_age_ms }
    }

    fn ids(set: &SeenSet) -> Vec<Identity> {
        set.snapshot().entries.iter().map(|&(id, _)| id).collect()
    }

    /// Checks the deque and the table agree, and the bounds hold.
    fn assert_consistent(set: &SeenSet) {
        assert_eq!(set.order.len(), set.members.len());
        assert!(set.order.iter().all(|e| set.members.contains(&e.id())));
        assert!(set.len() <= set.limits.max_entries);
        assert!(set.order.capacity() <= set.limits.max_entries.max(4), "deque over-allocated");
    }

    #[test]
    fn identity_is_length_prefixed() {
        assert_ne!(identity(&[b"ab", b"c"]), identity(&[b"a", b"bc"]));
        assert_ne!(identity(&[b"abc"]), identity(&[b"ab", b"c"]));
        assert_ne!(identity(&[]), identity(&[b""]));
        assert_ne!(identity(&[b""]), identity(&[b"", b""]));
        // A part that looks like a length prefix does not confuse it either.
        assert_ne!(identity(&[b"a", b""]), identity(&[&[b'a', 0, 0, 0, 0, 0, 0, 0, 0]]));
    }

    #[test]
    fn identity_is_stable() {
        // Pinned values. If this test fails, the identity function changed, and
        // every dedup set in an existing checkpoint holds identities that no
        // longer match: recovery would deliver replayed records a second time.
        // Do not update these values without a checkpoint format migration.
        assert_eq!(identity(&[b"19949", b"26877", b"1767225600000"]), 0x0b1b_ce30_9723_5007_c5cb_56cd_f07b_cc7c);
        // No parts hash no bytes: this is the XXH3-128 reference vector for
        // empty input, an anchor independent of this code.
        assert_eq!(identity(&[]), 0x99aa_06d3_0147_98d8_6001_c324_468d_497f);
    }

    #[test]
    fn identity_streams_large_inputs_to_the_same_digest() {
        // Above the stack buffer the streaming path must hash the same bytes.
        let big = vec![7u8; 5000];
        let mut encoded = Vec::new();
        for part in [&big[..], b"tail"] {
            encoded.extend_from_slice(&(part.len() as u64).to_le_bytes());
            encoded.extend_from_slice(part);
        }
        assert_eq!(identity(&[&big, b"tail"]), xxhash_rust::xxh3::xxh3_128(&encoded));
        // And exactly at the boundary (512 encoded bytes) and one past it.
        for n in [504, 505] {
            let part = vec![1u8; n];
            let mut encoded = (n as u64).to_le_bytes().to_vec();
            encoded.extend_from_slice(&part);
            assert_eq!(identity(&[&part]), xxhash_rust::xxh3::xxh3_128(&encoded));
        }
    }

    #[test]
    fn duplicates_are_detected() {
        let mut set = SeenSet::new(DedupLimits::default());
        let a = identity(&[b"alert", b"1"]);
        let b = identity(&[b"alert", b"2"]);
        assert!(set.check_and_insert(a, 1_000));
        assert!(set.check_and_insert(b, 1_001));
        assert!(!set.check_and_insert(a, 1_002));
        assert!(!set.check_and_insert(b, 1_003));
        assert!(set.contains(a) && set.contains(b));
        assert_eq!(set.len(), 2);
        // The duplicate did not refresh the stamp.
        assert_eq!(set.snapshot().entries, vec![(a, 1_000), (b, 1_001)]);
    }

    #[test]
    fn count_bound_evicts_oldest_first() {
        let mut set = SeenSet::new(limits(3, u64::MAX));
        for id in 1..=5u128 {
            assert!(set.check_and_insert(id, 10));
            assert_consistent(&set);
        }
        assert_eq!(ids(&set), vec![3, 4, 5]);
        assert!(!set.contains(1) && !set.contains(2));
        // An evicted identity is new again, and pushes out the oldest.
        assert!(set.check_and_insert(1, 11));
        assert_eq!(ids(&set), vec![4, 5, 1]);
        // A duplicate at full count evicts nothing: the oldest stays.
        assert!(!set.check_and_insert(4, 12));
        assert_eq!(ids(&set), vec![4, 5, 1]);
    }

    #[test]
    fn a_forgotten_identity_is_new_again_and_its_old_stamp_evicts_nothing() {
        let mut set = SeenSet::new(limits(3, u64::MAX));
        for id in 1..=3u128 {
            assert!(set.check_and_insert(id, 10));
        }
        assert!(set.forget(2));
        assert!(!set.forget(2), "only once");
        assert!(!set.forget(9), "never there");
        assert_consistent(&set);
        assert_eq!(ids(&set), vec![1, 3]);
        // Re-inserted, 2 is the newest: filling up evicts 1, then 3, never the new 2.
        assert!(set.check_and_insert(2, 11));
        assert!(set.check_and_insert(4, 12));
        assert!(set.check_and_insert(5, 13));
        assert_eq!(ids(&set), vec![2, 4, 5]);
        assert_consistent(&set);
    }

    #[test]
    fn age_bound_evicts_what_has_expired() {
        let mut set = SeenSet::new(limits(100, 1_000));
        assert!(set.check_and_insert(1, 0));
        assert!(set.check_and_insert(2, 500));
        // Age 999 is within the bound: still a duplicate.
        assert!(!set.check_and_insert(1, 999));
        // Age 1000 has expired: new again (and re-stamped, now the youngest).
        assert!(set.check_and_insert(1, 1_000));
        assert_eq!(set.snapshot().entries, vec![(2, 500), (1, 1_000)]);
        set.evict(1_500);
        assert_eq!(ids(&set), vec![1]);
        set.evict(10_000);
        assert!(set.is_empty());
        assert_consistent(&set);
    }

    #[test]
    fn both_bounds_together() {
        let mut set = SeenSet::new(limits(3, 100));
        for (id, t) in [(1, 0), (2, 10), (3, 20), (4, 30)] {
            assert!(set.check_and_insert(id, t));
        }
        // Count: 1 went when 4 arrived.
        assert_eq!(ids(&set), vec![2, 3, 4]);
        // Age: at 115, 2 (stamp 10) has expired but 3 (stamp 20) has not.
        assert!(set.check_and_insert(5, 115));
        assert_eq!(ids(&set), vec![3, 4, 5]);
        // Both at once: at 125 3 expires, then 6 needs room and 4 goes.
        set.evict(125);
        assert_eq!(ids(&set), vec![4, 5]);
        assert!(set.check_and_insert(6, 125));
        assert!(set.check_and_insert(7, 125));
        assert_eq!(ids(&set), vec![5, 6, 7]);
        assert_consistent(&set);
    }

    #[test]
    fn zero_limits_retain_nothing() {
        for l in [limits(0, 1_000), limits(10, 0), limits(0, 0)] {
            let mut set = SeenSet::new(l);
            assert!(set.check_and_insert(1, 5));
            // Nothing kept, so the repeat is not recognised: dedup is off.
            assert!(set.check_and_insert(1, 5));
            assert!(set.is_empty() && !set.contains(1));
            assert_eq!(set.heap_bytes(), 0);
            let restored = SeenSet::restore(l, SeenSetSnapshot { entries: vec![(1, 5), (2, 5)] }, 5);
            assert!(restored.is_empty());
        }
    }

    #[test]
    fn time_going_backwards_keeps_insertion_order() {
        let mut set = SeenSet::new(limits(10, 100));
        assert!(set.check_and_insert(1, 1_000));
        assert!(set.check_and_insert(2, 500)); // clock stepped back
        assert!(set.check_and_insert(3, 1_050));
        // At 1_099: 1 is alive (age 99); 2 (age 599) has expired but is behind
        // it, so it stays until it reaches the front.
        set.evict(1_099);
        assert_eq!(ids(&set), vec![1, 2, 3]);
        assert!(!set.check_and_insert(2, 1_099));
        // At 1_100: 1 expires, then 2 is at the front and expired.
        set.evict(1_100);
        assert_eq!(ids(&set), vec![3]);
        // Stamps in the future have age 0.
        set.evict(0);
        assert_eq!(ids(&set), vec![3]);
        assert_consistent(&set);
    }

    #[test]
    fn snapshot_restore_round_trip() {
        let l = limits(1_000, 10_000);
        let mut set = SeenSet::new(l);
        for i in 0..500u128 {
            set.check_and_insert(identity(&[&i.to_le_bytes()]), 1_000 + i as u64);
        }
        let snap = set.snapshot();
        assert_eq!(snap.entries.len(), 500);
        // Through JSON too: u128 must survive whatever text format checkpoints use.
        let json = serde_json::to_string(&snap).unwrap();
        let snap: SeenSetSnapshot = serde_json::from_str(&json).unwrap();
        let restored = SeenSet::restore(l, snap.clone(), 1_500);
        assert_eq!(restored.snapshot(), snap);
        assert_eq!(restored.limits(), l);
        for &(id, _) in &snap.entries {
            assert!(restored.contains(id));
        }
        assert!(!restored.contains(identity(&[b"never"])));
        assert_consistent(&restored);
        // The restored set evicts in the same order as the original.
        let mut a = set;
        let mut b = restored;
        for i in 0..600u128 {
            let id = identity(&[b"more", &i.to_le_bytes()]);
            assert_eq!(a.check_and_insert(id, 1_600), b.check_and_insert(id, 1_600));
        }
        assert_eq!(a.snapshot(), b.snapshot());
    }

    #[test]
    fn restore_under_smaller_limits_evicts() {
        let entries: Vec<(Identity, u64)> = (0..100u128).map(|i| (i, i as u64 * 10)).collect();
        let snap = SeenSetSnapshot { entries };
        // Count: only the 10 youngest remain.
        let set = SeenSet::restore(limits(10, u64::MAX), snap.clone(), 990);
        assert_eq!(ids(&set), (90..100).collect::<Vec<_>>());
        assert_consistent(&set);
        // Age: at 1_000 with max age 200, stamps 810..=990 remain (age < 200).
        let set = SeenSet::restore(limits(1_000, 200), snap.clone(), 1_000);
        assert_eq!(ids(&set), (81..100).collect::<Vec<_>>());
        // Both: the tighter one wins.
        let set = SeenSet::restore(limits(5, 200), snap.clone(), 1_000);
        assert_eq!(ids(&set), (95..100).collect::<Vec<_>>());
        // A much later restart: everything has expired.
        let set = SeenSet::restore(limits(1_000, 200), snap, 1_000_000);
        assert!(set.is_empty());
    }

    #[test]
    fn restore_tolerates_a_malformed_snapshot() {
        let snap = SeenSetSnapshot { entries: vec![(1, 50), (2, 10), (1, 60), (3, 40)] };
        let set = SeenSet::restore(limits(10, 1_000), snap, 100);
        assert_eq!(set.snapshot().entries, vec![(1, 50), (2, 10), (3, 40)]);
        assert_consistent(&set);
    }

    #[test]
    fn memory_per_entry_at_one_million() {
        // Bound: an entry costs 24 bytes in the deque (sized exactly to
        // max_entries) plus 17 bytes per table bucket (16-byte key + control
        // byte). 1,000,000 entries need 2^21 buckets (the table fills to 7/8,
        // and 2^20 x 7/8 = 917,504 is too few), i.e. 35.65 bytes per entry:
        // 59.65 in all. 64 leaves room only for that; a padded 32-byte entry
        // (67.65) or a deque that doubled past max_entries (84.8) fails.
        let n = 1_000_000;
        let mut set = SeenSet::new(limits(n, u64::MAX));
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = || {
            // splitmix64, twice, for a uniformly distributed u128.
            let mut half = || {
                x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
                let mut z = x;
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                z ^ (z >> 31)
            };
            (u128::from(half()) << 64) | u128::from(half())
        };
        for t in 0..n as u64 {
            assert!(set.check_and_insert(next(), t));
        }
        assert_eq!(set.len(), n);
        let per_entry = set.heap_bytes() as f64 / n as f64;
        assert_eq!(set.order.capacity(), n);
        assert_eq!(set.heap_bytes(), n * 24 + (1 << 21) * 17 + 16);
        assert!(per_entry < 64.0, "{per_entry:.2} bytes per entry");
        // Steady state (full, every insertion evicts one): the figure holds.
        for t in 0..(n / 4) as u64 {
            assert!(set.check_and_insert(next(), n as u64 + t));
        }
        assert_eq!(set.len(), n);
        assert_eq!(set.heap_bytes(), n * 24 + (1 << 21) * 17 + 16);
        // Restored from a snapshot, the containers are sized for exactly what it holds.
        let restored = SeenSet::restore(set.limits(), set.snapshot(), 2 * n as u64);
        assert_eq!(restored.len(), n);
        assert_eq!(restored.heap_bytes(), n * 24 + (1 << 21) * 17 + 16);
    }

    /// Fills a set of `n` and churns it (every insertion evicts one), checking
    /// heap_bytes never decreases while the buckets stay allocated; returns
    /// heap_bytes when full and at the end.
    fn churn(n: usize, insertions: u128) -> (usize, usize) {
        let mut set = SeenSet::new(limits(n, u64::MAX));
        let mut full = 0;
        let mut last = 0;
        for i in 0..insertions {
            assert!(set.check_and_insert(i.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835), i as u64));
            let now = set.heap_bytes();
            assert!(now >= last);
            last = now;
            if i + 1 == n as u128 {
                full = now;
            }
            assert_eq!(set.order.len(), set.members.len());
        }
        (full, last)
    }

    #[test]
    fn tombstones_are_cleared_in_place() {
        // Removals leave tombstones that use up the table's free slots. At 700
        // entries in 1024 buckets (896 usable, so 78%) std alone would double
        // the table (it rehashes in place only up to half); the set clears
        // them in place instead, so memory stays exactly as it was when full.
        let (full, end) = churn(700, 200_000);
        assert_eq!(full, 700 * 24 + 1024 * 17 + 16);
        assert_eq!(end, full);
    }

    #[test]
    fn heap_bytes_follows_a_table_that_grows() {
        // 850 entries fill 1024 buckets to 95% of the usable 896: past 4/5, so
        // when tombstones use up the rest the table doubles once, to 2048
        // buckets, and is cleared in place from then on. heap_bytes must
        // follow (capacity() alone would have shrunk with the tombstones).
        let (full, end) = churn(850, 200_000);
        assert_eq!(full, 850 * 24 + 1024 * 17 + 16);
        assert_eq!(end, 850 * 24 + 2048 * 17 + 16);
    }

    #[test]
    fn debug_is_short() {
        let set = SeenSet::new(DedupLimits::default());
        assert_eq!(format!("{set:?}"), "SeenSet { limits: DedupLimits { max_entries: 1000000, max_age_ms: 3600000 }, len: 0, .. }");
    }

    /// The rules, written as plainly as possible, for the property test.
    #[derive(Debug, Clone)]
    struct Model {
        limits: DedupLimits,
        entries: Vec<(Identity, u64)>,
    }

    impl Model {
        fn expired(&self, stamp: u64, now: u64) -> bool {
            now.saturating_sub(stamp) >= self.limits.max_age_ms
        }

        fn evict(&mut self, now: u64) {
            while !self.entries.is_empty() && (self.expired(self.entries[0].1, now) || self.entries.len() > self.limits.max_entries) {
                self.entries.remove(0);
            }
        }

        fn check_and_insert(&mut self, id: Identity, now: u64) -> bool {
            self.evict(now);
            if self.entries.iter().any(|&(e, _)| e == id) {
                return false;
            }
            self.entries.push((id, now));
            // Over count (or, with zero limits, the newcomer itself) goes at once.
            self.evict(now);
            true
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Check { id: u8, dt: i8 },
        Evict { dt: i8 },
        Contains { id: u8 },
        Restore { max_entries: usize, max_age_ms: u64, dt: i8 },
        RestoreArbitrary { entries: Vec<(u8, u8)>, dt: i8 },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            8 => (any::<u8>(), -3i8..20).prop_map(|(id, dt)| Op::Check { id: id % 24, dt }),
            2 => (-3i8..60).prop_map(|dt| Op::Evict { dt }),
            2 => any::<u8>().prop_map(|id| Op::Contains { id: id % 24 }),
            1 => (0usize..10, 0u64..80, -3i8..20)
                .prop_map(|(max_entries, max_age_ms, dt)| Op::Restore { max_entries, max_age_ms, dt }),
            1 => (proptest::collection::vec((0u8..24, any::<u8>()), 0..12), -3i8..20)
                .prop_map(|(entries, dt)| Op::RestoreArbitrary { entries, dt }),
        ]
    }

    /// Spreads the small test ids over the whole u128 range, both halves.
    fn wide(id: u8) -> Identity {
        u128::from(id).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn agrees_with_the_model(
            max_entries in 0usize..10,
            max_age_ms in 0u64..80,
            start in 0u64..100,
            ops in proptest::collection::vec(op(), 0..120),
        ) {
            let l = limits(max_entries, max_age_ms);
            let mut set = SeenSet::new(l);
            let mut model = Model { limits: l, entries: Vec::new() };
            let mut now = start;
            let step = |now: u64, dt: i8| now.saturating_add_signed(i64::from(dt));
            for op in ops {
                match op {
                    Op::Check { id, dt } => {
                        now = step(now, dt);
                        prop_assert_eq!(set.check_and_insert(wide(id), now), model.check_and_insert(wide(id), now));
                    }
                    Op::Evict { dt } => {
                        now = step(now, dt);
                        set.evict(now);
                        model.evict(now);
                    }
                    Op::Contains { id } => {
                        prop_assert_eq!(set.contains(wide(id)), model.entries.iter().any(|&(e, _)| e == wide(id)));
                    }
                    Op::Restore { max_entries, max_age_ms, dt } => {
                        now = step(now, dt);
                        let l = limits(max_entries, max_age_ms);
                        set = SeenSet::restore(l, set.snapshot(), now);
                        let mut restored = Model { limits: l, entries: Vec::new() };
                        for (id, t) in model.entries {
                            restored.check_and_insert(id, t);
                        }
                        restored.evict(now);
                        model = restored;
                    }
                    Op::RestoreArbitrary { entries, dt } => {
                        now = step(now, dt);
                        let entries: Vec<_> = entries.into_iter().map(|(id, t)| (wide(id), u64::from(t))).collect();
                        set = SeenSet::restore(model.limits, SeenSetSnapshot { entries: entries.clone() }, now);
                        let mut restored = Model { limits: model.limits, entries: Vec::new() };
                        for (id, t) in entries {
                            restored.check_and_insert(id, t);
                        }
                        restored.evict(now);
                        model = restored;
                    }
                }
                prop_assert_eq!(&set.snapshot().entries, &model.entries);
                prop_assert_eq!(set.len(), model.entries.len());
                prop_assert_eq!(set.is_empty(), model.entries.is_empty());
                prop_assert_eq!(set.order.len(), set.members.len());
                prop_assert!(set.len() <= set.limits().max_entries);
            }
        }
    }
}
