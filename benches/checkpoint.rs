//! Checkpoint cost for operator state of 10^5 and 10^6 keys: snapshot, encode and durable write (the pause), and read back plus restore.
//!
//! The state is the counter plugin's map of keys to counts, filled with N
//! distinct keys. "pause" is what a task spends between two batches taking a
//! checkpoint: the plugin's snapshot, encoding with checksum, and the local
//! tier's temp write + fsync + rename + folder fsync. Uploading to the remote
//! tier happens on another thread and is not part of it.
//!
//! Run: `cargo bench -p sda-host --bench checkpoint`.

use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};
use sda_host::checkpoint::format::{Checkpoint, Header, OperatorState, SinkState};
use sda_host::checkpoint::local::LocalTier;
use sda_host::graph::{Limits, PluginFile};
use sda_host::runtime::{LoadedPlugin, OperatorInstance, Runtime};
use sda_testkit::plugins;
use sda_wire::BatchWriter;
use std::path::Path;
use std::time::Duration;

fn counter_with_keys(runtime: &Runtime, loaded: &LoadedPlugin, keys: usize) -> OperatorInstance {
    let limits = Limits { max_memory_bytes: 1 << 30, call_timeout: Duration::from_secs(60), ..Limits::default() };
    let mut op = runtime.instantiate("counter", loaded, limits, "{}").expect("an instance");
    for chunk in (0..keys).collect::<Vec<_>>().chunks(4096) {
        let mut w = BatchWriter::new();
        for k in chunk {
            w.push_simple(None, 0, format!("object-{k:08}").as_bytes(), b"{}");
        }
        op.process(&w.finish()).expect("counting");
    }
    op
}

fn checkpoint_of(state: (u32, Vec<u8>), sequence: u64) -> Checkpoint {
    Checkpoint {
        header: Header {
            pipeline: "bench".into(),
            fingerprint: "sha256:0".into(),
            task: "obs-0".into(),
            sequence,
            created_at_ms: 0,
            guarantee: "exactly-once".into(),
            host_version: "bench".into(),
        },
        operators: vec![OperatorState {
            name: "counter".into(),
            plugin_digest: "sha256:0".into(),
            wit_version: "0.1.0".into(),
            state_version: state.0,
            state: state.1,
        }],
        source: "obs".into(),
        partition: 0,
        offset: 0,
        sinks: vec![],
        dlq: SinkState { name: "dlq".into(), positions: vec![], delivered: Default::default() },
        source_seen: None,
        input: None,
        frontier: None,
    }
}

fn checkpoints(c: &mut Criterion) {
    let cache = tempfile::tempdir().expect("a compile cache");
    let runtime = Runtime::new(Some(cache.path().to_path_buf())).expect("the runtime");
    let file = PluginFile::read(Path::new(plugins::COUNTER)).expect("the counter plugin");
    let loaded = runtime.load("counter", &file).expect("compiling");
    let dir = tempfile::tempdir().expect("a checkpoint folder");
    let tier = LocalTier::new(dir.path(), "bench", "obs-0", 3);

    let mut group = c.benchmark_group("checkpoint");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    for keys in [100_000usize, 1_000_000] {
        let mut op = counter_with_keys(&runtime, &loaded, keys);
        let size = checkpoint_of(op.snapshot().unwrap(), 0).encode().len();
        eprintln!("{keys} keys: checkpoint of {size} bytes");
        let mut sequence = 0;
        group.bench_function(BenchmarkId::new("pause (snapshot + encode + durable write)", format!("{keys} keys")), |b| {
            b.iter(|| {
                sequence += 1;
                let bytes = checkpoint_of(op.snapshot().expect("snapshot"), sequence).encode();
                tier.write(sequence, &bytes).expect("writing")
            })
        });
        group.bench_function(BenchmarkId::new("snapshot only", format!("{keys} keys")), |b| b.iter(|| op.snapshot().expect("snapshot")));
        let bytes = checkpoint_of(op.snapshot().unwrap(), 0).encode();
        group.bench_function(BenchmarkId::new("recover (decode + restore into a new instance)", format!("{keys} keys")), |b| {
            b.iter_batched(
                || {
                    runtime
                        .instantiate(
                            "counter",
                            &loaded,
                            Limits { max_memory_bytes: 1 << 30, call_timeout: Duration::from_secs(60), ..Limits::default() },
                            "{}",
                        )
                        .unwrap()
                },
                |mut fresh| {
                    let c = Checkpoint::decode(&bytes).expect("decodes");
                    let s = &c.operators[0];
                    fresh.restore(s.state_version, &s.state).expect("no fault").expect("accepted");
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, checkpoints);
criterion_main!(benches);
