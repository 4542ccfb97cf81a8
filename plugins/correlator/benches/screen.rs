//! Screening time for one window natively: 1,000 to 1,000,000 objects, whole and in two shards.
//!
//! The catalogue is the host bench's (`benches/screening.rs`): synthetic but shaped like the real
//! one. Each configuration keeps one [`Screener`] across iterations, as an instance does across
//! windows, so the timings are of the steady state (buffers grown, nothing allocated). The
//! carried-states case gives objects epochs up to six hours before the window, as catalogue mode
//! does: each object's start is then a long Kepler solve.
//!
//! Run: `cargo bench -p correlator --bench screen` (the million-object cases take minutes;
//! `-- "100000 objects"` picks one size).

use correlator::orbit::{MU_KM3_S2, Vec3};
use correlator::screen::{ObjectState, Screener, Shard};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::Duration;

const WINDOW_START_MS: i64 = 1_767_225_600_000;
const WINDOW_MS: i64 = 60_000;
const SCREENING_KM: f64 = 5.0;
/// How far before the window start epochs go: not at all (windowed mode), or six hours, as
/// carried states do in catalogue mode.
const FRESH_MS: f64 = 0.0;
const CARRIED_MS: f64 = 6.0 * 3_600_000.0;

/// A small deterministic generator (xorshift64*), so the catalogue is the same every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.next()
    }
}

/// State vector from classical elements (a km, e, i, raan, argp, true anomaly; radians).
fn state(a: f64, e: f64, i: f64, raan: f64, argp: f64, nu: f64) -> (Vec3, Vec3) {
    let p = a * (1.0 - e * e);
    let r = p / (1.0 + e * nu.cos());
    let (rp, vp) = ([r * nu.cos(), r * nu.sin(), 0.0], {
        let k = (MU_KM3_S2 / p).sqrt();
        [-k * nu.sin(), k * (e + nu.cos()), 0.0]
    });
    let (co, so) = (raan.cos(), raan.sin());
    let (cw, sw) = (argp.cos(), argp.sin());
    let (ci, si) = (i.cos(), i.sin());
    let rot = [
        [co * cw - so * sw * ci, -co * sw - so * cw * ci, so * si],
        [so * cw + co * sw * ci, -so * sw + co * cw * ci, -co * si],
        [sw * si, cw * si, ci],
    ];
    let apply = |v: Vec3| [0, 1, 2].map(|row| rot[row][0] * v[0] + rot[row][1] * v[1] + rot[row][2] * v[2]);
    (apply(rp), apply(vp))
}

/// `n` objects shaped like the real catalogue: mostly LEO (with a dense sun-synchronous band near
/// 800 km), some MEO and GEO, a few eccentric orbits; epochs from `epochs_before_ms` before the
/// window start to its end (with 0, the host bench's catalogue).
fn catalogue(n: usize, epochs_before_ms: f64) -> Vec<ObjectState> {
    let mut rng = Rng(0x5DA_2026);
    let tau = std::f64::consts::TAU;
    (0..n)
        .map(|k| {
            let pick = rng.next();
            let (a, e, i) = if pick < 0.45 {
                (rng.range(7100.0, 7250.0), rng.range(0.0, 0.005), rng.range(1.4, 1.75)) // dense sun-synchronous band
            } else if pick < 0.85 {
                (rng.range(6750.0, 8400.0), rng.range(0.0, 0.02), rng.range(0.0, 1.9))
            } else if pick < 0.92 {
                (rng.range(25500.0, 29600.0), rng.range(0.0, 0.02), rng.range(0.9, 1.1))
            } else if pick < 0.97 {
                (rng.range(42100.0, 42230.0), rng.range(0.0, 0.001), rng.range(0.0, 0.05))
            } else {
                (rng.range(24000.0, 26600.0), rng.range(0.6, 0.72), rng.range(1.0, 1.2)) // Molniya-like
            };
            let (r, v) = state(a, e, i, rng.range(0.0, tau), rng.range(0.0, tau), rng.range(0.0, tau));
            ObjectState {
                object_id: k as u32,
                observation_id: format!("obs-{k:06}").into(),
                epoch_ms: WINDOW_START_MS + (rng.range(-epochs_before_ms, 59_999.0)) as i64,
                position_km: r,
                velocity_km_s: v,
            }
        })
        .collect()
}

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
