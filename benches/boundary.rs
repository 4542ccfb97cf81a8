//! Measures the per-record cost of crossing the WebAssembly boundary, and how much of it is framing.
//!
//! Two measurements, each at batch sizes 1, 16, 256 and 4096. Criterion's
//! `time` is per batch; with `Throughput::Elements(N)` it also prints `thrpt`
//! in records per second, so ns/record = `time` / N = 1000 / `thrpt` in
//! Melem/s. The target is < 100 ns/record at batch 256.
//!
//! - `boundary/passthrough process/batch N`: the full round trip a host pays
//!   per batch: copy the packed batch into the guest, the guest SDK's unpack and
//!   repack, copy the outputs out, and the host's check of the output framing.
//!   The input batch is packed once, before timing, because packing belongs to
//!   whoever produced the records, not to the boundary crossing.
//! - `boundary/framing pack+read/batch N`: packing N records with
//!   `BatchWriter` and reading them back with `BatchReader`, natively, no wasm.
//!   That is the guest SDK's framing work in the round trip (one read, one
//!   write; the host's output check adds one more read), done natively: the
//!   rest of the round trip is the boundary itself (the call, the two copies,
//!   running the same code as wasm).
//!
//! Run: `cargo bench -p sda-host --bench boundary`.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sda_host::graph::{Limits, PluginFile};
use sda_host::runtime::{OperatorInstance, Runtime};
use sda_testkit::plugins;
use sda_wire::{BatchReader, BatchWriter};
use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

/// Batch sizes measured: one record (fixed per-call cost dominates), small,
/// the target size (256) and large.
const BATCH_SIZES: [usize; 4] = [1, 16, 256, 4096];

/// Event time of the first record; later records are one second apart.
const FIRST_EVENT_TIME_MS: i64 = 1_700_000_000_000;

/// One record as a source would hand it to the host.
struct Observation {
    key: String,
    payload: String,
    event_time_ms: i64,
}

/// `count` realistic records: an observation-id key (~20 bytes) and a ~200-byte
/// JSON observation line, no headers. Values vary per record so nothing in the
/// path can benefit from identical inputs.
fn observations(count: usize) -> Vec<Observation> {
    (0..count)
        .map(|i| {
            let event_time_ms = FIRST_EVENT_TIME_MS + i as i64 * 1000;
            let key = format!("obs-20231114-{i:07}");
            let payload = format!(
                concat!(
                    r#"{{"observation_id":"{key}","object_id":{object},"sensor_id":"radar-{sensor}","#,
                    r#""epoch_ms":{epoch},"position_km":[6524.834,-1284.{frac:03},1942.330],"#,
                    r#""velocity_km_s":[1.204,7.318,-0.412],"snr_db":17.5}}"#
                ),
                key = key,
                object = 25544 + i % 1000,
                sensor = i % 8,
                epoch = event_time_ms,
                frac = i % 1000,
            );
            Observation { key, payload, event_time_ms }
        })
        .collect()
}

/// Packs `records` into one batch, without headers.
fn pack(records: &[Observation]) -> Vec<u8> {
    let mut writer = BatchWriter::with_capacity(packed_size(records));
    for r in records {
        writer.push_simple(None, r.event_time_ms, r.key.as_bytes(), r.payload.as_bytes());
    }
    writer.finish()
}

/// Exact packed size of `records`: count, then per record its head, key and payload.
fn packed_size(records: &[Observation]) -> usize {
    4 + records.iter().map(|r| sda_wire::RECORD_HEAD_BYTES + r.key.len() + r.payload.len()).sum::<usize>()
}

/// A passthrough operator instance, compiled into `cache`.
fn passthrough(cache: &Path) -> (Runtime, OperatorInstance) {
    let runtime = Runtime::new(Some(cache.to_path_buf())).expect("cannot set up the runtime");
    let file = PluginFile::read(Path::new(plugins::PASSTHROUGH)).expect("cannot read the passthrough plugin");
    let loaded = runtime.load("passthrough", &file).expect("cannot compile the passthrough plugin");
    let instance = runtime.instantiate("passthrough", &loaded, Limits::default(), "{}").expect("cannot instantiate the passthrough plugin");
    (runtime, instance)
}

/// Checks once, untimed, that the plugin really returns every record unchanged,
/// so the benchmark cannot silently measure a shortcut (e.g. an empty output).
fn assert_passthrough(op: &mut OperatorInstance, records: &[Observation], batch: &[u8]) {
    let out = op.process(batch).expect("passthrough faulted");
    assert_eq!(out.output_count as usize, records.len());
    assert!(out.failures.is_empty());
    let outputs = BatchReader::read_all(&out.outputs).expect("output framing was checked by the host");
    for (i, (got, want)) in outputs.iter().zip(records).enumerate() {
        assert_eq!(got.origin, Some(i as u32));
        assert_eq!(got.event_time_ms, want.event_time_ms);
        assert_eq!(got.key, want.key.as_bytes());
        assert_eq!(got.payload, want.payload.as_bytes());
        assert_eq!(got.header_count(), 0);
    }
}

fn boundary(c: &mut Criterion) {
    // Kept alive until the end: the runtime's compile cache lives in it.
    let cache = tempfile::tempdir().expect("cannot create a temporary compile cache");
    let (_runtime, mut op) = passthrough(cache.path());

    let largest = observations(*BATCH_SIZES.iter().max().unwrap());
    let sample = &largest[0];
    eprintln!(
        "boundary: key {} bytes, payload {} bytes, {} packed bytes per record",
        sample.key.len(),
        sample.payload.len(),
        sda_wire::RECORD_HEAD_BYTES + sample.key.len() + sample.payload.len(),
    );

    let mut group = c.benchmark_group("boundary");
    // Per-call times range from ~microseconds to ~a millisecond; 3 s of
    // measurement gives tight intervals for all of them, and 8 benchmarks then
    // finish in well under two minutes even on a 2-core machine.
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    group.sample_size(50);

    for &size in &BATCH_SIZES {
        let records = &largest[..size];
        let batch = pack(records);
        assert_passthrough(&mut op, records, &batch);
        group.throughput(Throughput::Elements(size as u64));

        group.bench_with_input(BenchmarkId::new("passthrough process", format!("batch {size}")), &batch, |b, batch| {
            // The output is dropped inside the timed loop: freeing it is part of
            // what the host pays per batch.
            b.iter(|| op.process(black_box(batch)).expect("passthrough faulted"))
        });

        group.bench_with_input(BenchmarkId::new("framing pack+read", format!("batch {size}")), records, |b, records| {
            // The buffer is reused across iterations, as a host reuses its batch
            // buffers, so this measures framing and not the allocator.
            let mut buf = Vec::with_capacity(packed_size(records));
            b.iter(|| {
                let mut writer = BatchWriter::reuse(std::mem::take(&mut buf));
                for r in black_box(records) {
                    writer.push_simple(None, r.event_time_ms, r.key.as_bytes(), r.payload.as_bytes());
                }
                buf = writer.finish();
                // Read every record back, validating the framing as the host does
                // with a plugin's output; summing lengths keeps the reads alive.
                let mut bytes = 0usize;
                for record in BatchReader::new(&buf).expect("just packed") {
                    let record = record.expect("just packed");
                    bytes += record.key.len() + record.payload.len();
                }
                black_box(bytes)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, boundary);
criterion_main!(benches);
