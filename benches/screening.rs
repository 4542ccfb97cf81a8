//! Correlator screening time for one window of 1,000 to 1,000,000 objects, natively and as a wasm plugin.
//!
//! The catalogue is synthetic but shaped like the real one: mostly LEO (with a
//! dense band near 800 km), some MEO and GEO, a few eccentric orbits. Native:
//! a `correlator::screen::Screener` kept across iterations (as an instance
//! keeps it across windows) on the window's states, the whole pair space and
//! each shard of two. Plugin: the same observations, three windows of them
//! (the same states, epochs a window apart), fed to a fresh correlator
//! component through the host, which screens the first window (parse,
//! validate, window bookkeeping, the first screening: not timed); then the
//! `on-watermark` call that screens the second and emits its candidates
//! (timed): the plugin in its steady state, memory grown. The crate's own
//! bench (`cargo bench -p correlator`) times the native screening alone,
//! faster to build.
//!
//! Run: `cargo bench -p sda-host --bench screening` (the million-object cases
//! take minutes; `-- "100000 objects"` picks one size).

use correlator::screen::{ObjectState, Screener, Shard};
use correlator::synthetic::SYNTHETIC_WINDOW_START_MS as WINDOW_START_MS;
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sda_host::graph::{Limits, PluginFile};
use sda_host::runtime::Runtime;
use sda_testkit::plugins;
use sda_wire::BatchWriter;
use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

const WINDOW_MS: i64 = 60_000;

/// The synthetic catalogue with every epoch inside the window.
fn catalogue(n: usize) -> Vec<ObjectState> {
    correlator::synthetic::catalogue(n, 0.0)
}

/// The catalogue's observations, `window` windows later: the same states with epochs shifted by
/// whole windows (and ids of their own), so that every window holds the same geometry.
fn observations_batch(objects: &[ObjectState], window: i64) -> Vec<u8> {
    let mut w = BatchWriter::new();
    for o in objects {
        let (id, epoch_ms) = (format!("{}-w{window}", o.observation_id), o.epoch_ms + window * WINDOW_MS);
        let line = serde_json::json!({
            "observation_id": id, "object_id": o.object_id, "sensor_id": "radar-1",
            "epoch_ms": epoch_ms, "position_km": o.position_km, "velocity_km_s": o.velocity_km_s,
        })
        .to_string();
        w.push_simple(None, epoch_ms, id.as_bytes(), line.as_bytes());
    }
    w.finish()
}

fn screening(c: &mut Criterion) {
    let cache = tempfile::tempdir().expect("a temporary compile cache");
    let runtime = Runtime::new(Some(cache.path().to_path_buf())).expect("the runtime");
    let file = PluginFile::read(Path::new(plugins::CORRELATOR)).expect("the correlator plugin");
    let loaded = runtime.load("correlator", &file).expect("compiling the correlator");

    // A million objects' states, id sets and screening buffers need more than the default memory.
    let limits = Limits {
        max_memory_bytes: 3 << 30,
        call_timeout: Duration::from_secs(120),
        watermark_timeout: Duration::from_secs(120),
        ..Limits::default()
    };
    let mut group = c.benchmark_group("correlator - screen one window");
    group.sample_size(10);
    for n in [1_000usize, 10_000, 100_000, 1_000_000] {
        let objects = catalogue(n);
        let refs: Vec<&ObjectState> = objects.iter().collect();
        group.throughput(Throughput::Elements(n as u64));
        group.measurement_time(Duration::from_secs(if n >= 1_000_000 { 60 } else { 10 }));
        for (name, shard) in [
            ("native", Shard::WHOLE),
            ("native shard 0 of 2", Shard { index: 0, count: 2 }),
            ("native shard 1 of 2", Shard { index: 1, count: 2 }),
        ] {
            let mut screener = Screener::new();
            let found = screener.screen(&refs, WINDOW_START_MS, WINDOW_MS, 5.0, shard).len();
            eprintln!("{n} objects, {name}: {found} pairs within 5 km");
            group.bench_with_input(BenchmarkId::new(name, format!("{n} objects")), &refs, |b, refs| {
                b.iter(|| screener.screen(black_box(refs), WINDOW_START_MS, WINDOW_MS, 5.0, shard))
            });
        }
        // The plugin in its steady state: window 0 is screened first (its memory grown), then
        // window 1, timed. Window 2's records close window 1 (the watermark trails them by the
        // allowed lateness, 10 s), and the `on-watermark` after a batch screens what it closed.
        let batches = [0, 1, 2].map(|window| observations_batch(&objects, window));
        let ready = || {
            let mut instance = runtime.instantiate("correlator", &loaded, limits, "{}").expect("an instance");
            instance.process(&batches[0]).expect("window 0's records");
            instance.process(&batches[1]).expect("window 1's records");
            instance.on_watermark(i64::MIN).expect("screening window 0");
            instance.process(&batches[2]).expect("window 2's records");
            instance
        };
        let candidates = ready().on_watermark(i64::MIN).expect("screening window 1").output_count;
        eprintln!("{n} objects, plugin: {candidates} candidates in window 1");
        group.bench_function(BenchmarkId::new("plugin", format!("{n} objects")), |b| {
            b.iter_batched(
                ready,
                |mut instance| instance.on_watermark(black_box(i64::MIN)).expect("screening window 1"),
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, screening);
criterion_main!(benches);
