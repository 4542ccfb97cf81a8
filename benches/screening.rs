//! Correlator screening time for one window of 1,000 and 10,000 objects, natively and as a wasm plugin.
//!
//! The catalogue is synthetic but shaped like the real one: mostly LEO (with a
//! dense band near 800 km), some MEO and GEO, a few eccentric orbits. Native:
//! `correlator::screen::screen` on the window's states. Plugin: the same
//! observations fed to the correlator component through the host (parse,
//! validate, window bookkeeping, then the screening when the end-of-input
//! watermark closes the window), on a fresh instance each time.
//!
//! Run: `cargo bench -p sda-host --bench screening`.

use correlator::orbit::{MU_KM3_S2, Vec3};
use correlator::screen::{ObjectState, screen};
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sda_host::graph::{Limits, PluginFile};
use sda_host::runtime::Runtime;
use sda_testkit::plugins;
use sda_wire::BatchWriter;
use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

const WINDOW_START_MS: i64 = 1_767_225_600_000;
const WINDOW_MS: i64 = 60_000;

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

fn catalogue(n: usize) -> Vec<ObjectState> {
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
                observation_id: format!("obs-{k:06}"),
                epoch_ms: WINDOW_START_MS + (rng.range(0.0, 59_999.0)) as i64,
                position_km: r,
                velocity_km_s: v,
            }
        })
        .collect()
}

fn observations_batch(objects: &[ObjectState]) -> Vec<u8> {
    let mut w = BatchWriter::new();
    for o in objects {
        let line = serde_json::json!({
            "observation_id": o.observation_id, "object_id": o.object_id, "sensor_id": "radar-1",
            "epoch_ms": o.epoch_ms, "position_km": o.position_km, "velocity_km_s": o.velocity_km_s,
        })
        .to_string();
        w.push_simple(None, o.epoch_ms, o.observation_id.as_bytes(), line.as_bytes());
    }
    w.finish()
}

fn screening(c: &mut Criterion) {
    let cache = tempfile::tempdir().expect("a temporary compile cache");
    let runtime = Runtime::new(Some(cache.path().to_path_buf())).expect("the runtime");
    let file = PluginFile::read(Path::new(plugins::CORRELATOR)).expect("the correlator plugin");
    let loaded = runtime.load("correlator", &file).expect("compiling the correlator");

    let mut group = c.benchmark_group("correlator - screen one window");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    for n in [1_000usize, 10_000] {
        let objects = catalogue(n);
        let found = screen(&objects, WINDOW_START_MS, WINDOW_MS, 5.0);
        eprintln!("{n} objects: {} pairs within 5 km", found.len());
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("native", format!("{n} objects")), &objects, |b, objects| {
            b.iter(|| screen(black_box(objects), WINDOW_START_MS, WINDOW_MS, 5.0))
        });
        let batch = observations_batch(&objects);
        group.bench_with_input(BenchmarkId::new("plugin", format!("{n} objects")), &batch, |b, batch| {
            b.iter_batched(
                || runtime.instantiate("correlator", &loaded, Limits { call_timeout: Duration::from_secs(60), ..Limits::default() }, "{}").expect("an instance"),
                |mut instance| {
                    instance.process(black_box(batch)).expect("process");
                    instance.on_watermark(i64::MAX).expect("closing the window")
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, screening);
criterion_main!(benches);
