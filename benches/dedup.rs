//! Cost of exactly-once bookkeeping at the sinks: the dedup set, its checkpoint round trip, identities.
//!
//! Measured (one `criterion` line each):
//! - `check_and_insert` of a new identity into a full set of 10,000 and of
//!   1,000,000 entries, so every insertion also evicts the oldest (count
//!   bound), and at 1,000,000 entries held by the age bound instead;
//! - `check_and_insert` of an identity already present (a replayed record);
//! - `snapshot` and `restore` of 1,000,000 entries (what a checkpoint and a
//!   recovery pay);
//! - `identity` of a 300-byte record, and raw XXH3-128 of the same bytes for
//!   reference.
//!
//! Before the timings, under `cargo bench`, it prints a memory report: the
//! set's own estimate (`heap_bytes`) next to the bytes really allocated,
//! counted by a global allocator wrapper in this binary; and the number of
//! allocations during steady-state insertions (zero expected).
//!
//! Run: `cargo bench -p sda-host --bench dedup`.

use criterion::{BatchSize, Criterion, criterion_group};
use sda_host::dedup::{DedupLimits, Identity, SeenSet, identity};
use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// Counts live heap bytes and allocation calls, so the memory report measures
/// rather than estimates. Two relaxed atomic adds per call: noise next to
/// malloc, and the timed steady-state operations do not allocate at all.
struct Counting;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size(), Relaxed);
        ALLOCATIONS.fetch_add(1, Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size(), Relaxed);
        ALLOCATIONS.fetch_add(1, Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size(), Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(new_size, Relaxed);
        LIVE_BYTES.fetch_sub(layout.size(), Relaxed);
        ALLOCATIONS.fetch_add(1, Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The n-th synthetic identity: a 128-bit odd-constant multiply spreads a
/// counter over all bits (distinct for distinct n), at the cost of a couple of
/// instructions inside the timed loops.
fn nth_id(n: u64) -> Identity {
    u128::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)
}

/// A set of exactly `n` entries, stamped 0..n ms, bounded by count only.
fn full_set(n: usize) -> SeenSet {
    let mut set = SeenSet::new(DedupLimits { max_entries: n, max_age_ms: u64::MAX });
    for i in 0..n as u64 {
        assert!(set.check_and_insert(nth_id(i), i));
    }
    assert_eq!(set.len(), n);
    set
}

/// Fails the run if the set's estimate drifts more than 1% from what the
/// allocator saw (a change in std's table layout, or a forgotten container).
fn assert_close(estimate: usize, measured: usize) {
    assert!(estimate.abs_diff(measured) <= measured / 100, "heap_bytes {estimate} but the allocator saw {measured}");
}

fn memory_report() {
    const N: usize = 1_000_000;
    println!("dedup memory report ({N} entries):");

    let before = LIVE_BYTES.load(Relaxed);
    let mut set = full_set(N);
    let measured = LIVE_BYTES.load(Relaxed) - before;
    let per = |bytes: usize| bytes as f64 / N as f64;
    println!(
        "  full: heap_bytes {} = {:.2} B/entry; allocator {} = {:.2} B/entry",
        set.heap_bytes(),
        per(set.heap_bytes()),
        measured,
        per(measured)
    );
    assert_close(set.heap_bytes(), measured);

    // Steady state: every insertion evicts the oldest. Long enough that
    // removals' tombstones use up the table's free slots more than once.
    let churn = 12_000_000u64;
    let allocations = ALLOCATIONS.load(Relaxed);
    let start = Instant::now();
    for i in 0..churn {
        set.check_and_insert(nth_id(N as u64 + i), N as u64 + i);
    }
    let elapsed = start.elapsed();
    let measured = LIVE_BYTES.load(Relaxed) - before;
    println!(
        "  after {churn} more insertions ({:.0} ns each): {} allocations; heap_bytes {:.2} B/entry; allocator {:.2} B/entry",
        elapsed.as_nanos() as f64 / churn as f64,
        ALLOCATIONS.load(Relaxed) - allocations,
        per(set.heap_bytes()),
        per(measured)
    );
    assert_close(set.heap_bytes(), measured);

    let snapshot = set.snapshot();
    let snapshot_bytes = snapshot.entries.capacity() * std::mem::size_of::<(Identity, u64)>();
    let before_restore = LIVE_BYTES.load(Relaxed);
    let restored = SeenSet::restore(set.limits(), snapshot, u64::MAX / 2);
    let measured = LIVE_BYTES.load(Relaxed) + snapshot_bytes - before_restore;
    println!(
        "  restored: heap_bytes {:.2} B/entry; allocator {:.2} B/entry; the snapshot itself {:.2} B/entry",
        per(restored.heap_bytes()),
        per(measured),
        per(snapshot_bytes)
    );
    assert_close(restored.heap_bytes(), measured);
    drop(restored);
    drop(set);
}

fn dedup(c: &mut Criterion) {
    // Insertions of new identities into a full set: one eviction each.
    for n in [10_000usize, 1_000_000] {
        let mut set = full_set(n);
        let mut next = n as u64;
        c.bench_function(&format!("dedup - check_and_insert - {n} entries"), |b| {
            b.iter(|| {
                next += 1;
                set.check_and_insert(black_box(nth_id(next)), next)
            })
        });
        assert_eq!(set.len(), n);
    }

    // The same at 1,000,000 entries held by the age bound: one insertion per
    // millisecond, entries live 1,000,000 ms, so each insertion expires one.
    {
        let n = 1_000_000u64;
        let mut set = SeenSet::new(DedupLimits { max_entries: 2 * n as usize, max_age_ms: n });
        for i in 0..n {
            set.check_and_insert(nth_id(i), i);
        }
        let mut next = n;
        c.bench_function("dedup - check_and_insert (age-bound) - 1000000 entries", |b| {
            b.iter(|| {
                next += 1;
                set.check_and_insert(black_box(nth_id(next)), next)
            })
        });
        assert_eq!(set.len(), n as usize);
    }

    // A replayed record: its identity is present, spread over the whole table.
    {
        let n = 1_000_000u64;
        let mut set = full_set(n as usize);
        let mut i = 0u64;
        c.bench_function("dedup - check duplicate - 1000000 entries", |b| {
            b.iter(|| {
                i = (i + 1) % n;
                set.check_and_insert(black_box(nth_id(i)), n)
            })
        });
        assert!(!set.check_and_insert(nth_id(0), n));
    }

    // The checkpoint round trip.
    {
        let n = 1_000_000usize;
        let set = full_set(n);
        let limits = set.limits();
        let snapshot = set.snapshot();
        let mut group = c.benchmark_group("dedup - checkpoint");
        group.sample_size(10).measurement_time(Duration::from_secs(10));
        group.bench_function(format!("snapshot - {n} entries"), |b| b.iter_with_large_drop(|| set.snapshot()));
        group.bench_function(format!("restore - {n} entries"), |b| {
            b.iter_batched(|| snapshot.clone(), |s| SeenSet::restore(limits, s, n as u64), BatchSize::PerIteration)
        });
        group.finish();
    }

    // A record's identity: one 300-byte part (an alert line's size).
    {
        let record: Vec<u8> = (0..300u32).map(|i| (i * 31 % 251) as u8).collect();
        c.bench_function("dedup - identity - 300-byte record", |b| b.iter(|| identity(&[black_box(&record)])));
        let mut encoded = (record.len() as u64).to_le_bytes().to_vec();
        encoded.extend_from_slice(&record);
        c.bench_function("dedup - xxh3_128 reference - 308 bytes", |b| b.iter(|| xxhash_rust::xxh3::xxh3_128(black_box(&encoded))));
    }
}

criterion_group!(benches, dedup);

fn main() {
    if std::env::args().any(|a| a == "--bench") {
        memory_report();
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
