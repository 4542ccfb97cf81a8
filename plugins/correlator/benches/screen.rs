//! Screening time for one window natively: 1,000 to 1,000,000 objects, whole and in two shards.
//!
//! The catalogue is `correlator::synthetic`'s, as in the host bench (`benches/screening.rs`):
//! synthetic but shaped like the real one. Each configuration keeps one [`Screener`] across iterations, as an instance does across
//! windows, so the timings are of the steady state (buffers grown, nothing allocated). The
//! carried-states case gives objects epochs up to six hours before the window, as catalogue mode
//! does: each object's start is then a long Kepler solve.
//!
//! Run: `cargo bench -p correlator --bench screen` (the million-object cases take minutes;
//! `-- "100000 objects"` picks one size).

use correlator::screen::{ObjectState, Screener, Shard};
use correlator::synthetic::{SYNTHETIC_WINDOW_START_MS as WINDOW_START_MS, catalogue};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::Duration;

const WINDOW_MS: i64 = 60_000;
const SCREENING_KM: f64 = 5.0;
/// How far before the window start epochs go: not at all (windowed mode), or six hours, as
/// carried states do in catalogue mode.
const FRESH_MS: f64 = 0.0;
const CARRIED_MS: f64 = 6.0 * 3_600_000.0;

fn screening(c: &mut Criterion) {
    let mut group = c.benchmark_group("correlator - screen one window");
    group.sample_size(10);
    let cases = [(1_000, FRESH_MS), (10_000, FRESH_MS), (100_000, FRESH_MS), (100_000, CARRIED_MS), (1_000_000, FRESH_MS)];
    for (n, epochs_before_ms) in cases {
        let objects = catalogue(n, epochs_before_ms);
        let refs: Vec<&ObjectState> = objects.iter().collect();
        let states = if epochs_before_ms == FRESH_MS { "" } else { ", carried states" };
        group.throughput(Throughput::Elements(n as u64));
        group.measurement_time(Duration::from_secs(if n >= 1_000_000 { 40 } else { 10 }));
        for (name, shard) in
            [("whole", Shard::WHOLE), ("shard 0 of 2", Shard { index: 0, count: 2 }), ("shard 1 of 2", Shard { index: 1, count: 2 })]
        {
            let mut screener = Screener::new();
            let found = screener.screen(&refs, WINDOW_START_MS, WINDOW_MS, SCREENING_KM, shard).len();
            eprintln!("{n} objects{states}, {name}: {found} pairs within {SCREENING_KM} km");
            group.bench_with_input(BenchmarkId::new(name, format!("{n} objects{states}")), &refs, |b, refs| {
                b.iter(|| screener.screen(black_box(refs), WINDOW_START_MS, WINDOW_MS, SCREENING_KM, shard))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, screening);
criterion_main!(benches);
