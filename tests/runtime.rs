//! The sandbox against real plugin components: calls, state, faults, escapes, the compile cache.

use sda_host::graph::{Limits, PluginFile};
use sda_host::runtime::{CompileSource, FaultKind, OperatorInstance, Runtime, RuntimeError, Shard};
use sda_testkit::plugins;
use sda_wire::{BatchReader, BatchWriter};
use std::path::Path;
use std::time::{Duration, Instant};

fn runtime(cache: &Path) -> Runtime {
    Runtime::new(Some(cache.to_path_buf())).unwrap()
}

fn instance(rt: &Runtime, name: &str, plugin: &str, limits: Limits, config: &str) -> Result<OperatorInstance, RuntimeError> {
    let file = PluginFile::read(Path::new(plugin)).unwrap();
    let loaded = rt.load(name, &file)?;
    rt.instantiate(name, &loaded, limits, config)
}

fn batch(records: &[(&str, &str)]) -> Vec<u8> {
    let mut w = BatchWriter::new();
    for (i, (key, payload)) in records.iter().enumerate() {
        w.push(None, i as i64 * 1000, key.as_bytes(), payload.as_bytes(), [(&b"h"[..], &b"v"[..])]);
    }
    w.finish()
}

fn payloads(packed: &[u8]) -> Vec<String> {
    BatchReader::read_all(packed).unwrap().iter().map(|r| String::from_utf8(r.payload.to_vec()).unwrap()).collect()
}

#[test]
fn passthrough_returns_every_record_with_its_origin_and_headers() {
    let cache = tempfile::tempdir().unwrap();
    let rt = runtime(cache.path());
    let mut op = instance(&rt, "pass", plugins::PASSTHROUGH, Limits::default(), "{}").unwrap();
    let input = batch(&[("a", "{\"x\":1}"), ("b", "{\"x\":2}")]);
    let out = op.process(&input).unwrap();
    assert_eq!(out.output_count, 2);
    let records = BatchReader::read_all(&out.outputs).unwrap();
    assert_eq!(records[1].origin, Some(1));
    assert_eq!(records[1].key, b"b");
    assert_eq!(records[1].event_time_ms, 1000);
    assert_eq!(records[1].header("h"), Some(&b"v"[..]));
    assert!(out.failures.is_empty());
    assert_eq!(op.on_watermark(i64::MAX).unwrap().output_count, 0);
}

#[test]
fn counter_state_moves_between_instances_through_snapshot_and_restore() {
    let cache = tempfile::tempdir().unwrap();
    let rt = runtime(cache.path());
    let mut first = instance(&rt, "count", plugins::COUNTER, Limits::default(), "{}").unwrap();
    first.process(&batch(&[("a", "{}"), ("a", "{}")])).unwrap();
    let (version, state) = first.snapshot().unwrap();
    assert_eq!(version, 1);

    let mut second = instance(&rt, "count", plugins::COUNTER, Limits::default(), "{}").unwrap();
    second.restore(version, &state).unwrap().unwrap();
    let out = second.process(&batch(&[("a", "{}")])).unwrap();
    assert_eq!(payloads(&out.outputs), vec![r#"{"key":"a","count":3}"#]);
    let refusal = second.restore(9, &state).unwrap().unwrap_err();
    assert!(refusal.contains("unknown state version 9"), "{refusal}");
}

#[test]
fn a_panic_is_a_trap_fault_naming_the_operator_and_the_instance_is_discarded() {
    let cache = tempfile::tempdir().unwrap();
    let rt = runtime(cache.path());
    let mut op = instance(&rt, "fragile", plugins::FAULTY, Limits::default(), r#"{"mode":"panic"}"#).unwrap();
    op.process(&batch(&[("ok", "fine")])).unwrap();
    let fault = op.process(&batch(&[("ok", "fine"), ("bad", "POISON")])).unwrap_err();
    assert_eq!(fault.kind, FaultKind::Trap);
    assert_eq!(fault.operator, "fragile");
    assert!(fault.message.contains("poison record `bad`"), "the panic message is quoted: {}", fault.message);
    let shown = fault.to_string();
    assert!(shown.starts_with("operator `fragile` faulted (PluginTrap) in `process`"), "{shown}");
    let again = op.process(&batch(&[("ok", "fine")])).unwrap_err();
    assert!(again.message.contains("discarded after an earlier fault"), "{}", again.message);
}

#[test]
fn an_endless_loop_is_stopped_at_its_deadline() {
    let cache = tempfile::tempdir().unwrap();
    let rt = runtime(cache.path());
    let limits = Limits { call_timeout: Duration::from_millis(200), ..Limits::default() };
    let mut op = instance(&rt, "spinner", plugins::FAULTY, limits, r#"{"mode":"loop"}"#).unwrap();
    let started = Instant::now();
    let fault = op.process(&batch(&[("bad", "POISON")])).unwrap_err();
    assert_eq!(fault.kind, FaultKind::Timeout, "{fault}");
    assert!(fault.message.contains("deadline of 200 ms"), "{}", fault.message);
    // Stopped, not left running: well before any test harness timeout.
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn unbounded_allocation_hits_the_memory_cap() {
    let cache = tempfile::tempdir().unwrap();
    let rt = runtime(cache.path());
    let limits = Limits { max_memory_bytes: 64 * 1024 * 1024, ..Limits::default() };
    let mut op = instance(&rt, "hoarder", plugins::FAULTY, limits, r#"{"mode":"alloc"}"#).unwrap();
    let fault = op.process(&batch(&[("bad", "POISON")])).unwrap_err();
    assert_eq!(fault.kind, FaultKind::Memory, "{fault}");
    assert!(fault.message.contains("the cap is 67108864 bytes"), "{}", fault.message);
    assert!(op.memory_bytes() <= 64 * 1024 * 1024);
}

#[test]
fn files_environment_and_arguments_are_out_of_reach() {
    let cache = tempfile::tempdir().unwrap();
    let rt = runtime(cache.path());
    let _ = std::fs::remove_file("/tmp/sda-escape");
    // SAFETY: set before any plugin runs; only this test reads it.
    unsafe { std::env::set_var("SDA_SECRET_FOR_ESCAPE_TEST", "leak") };
    let mut op = instance(&rt, "escaper", plugins::FAULTY, Limits::default(), r#"{"mode":"escape"}"#).unwrap();
    let out = op.process(&batch(&[("k", "{}")])).unwrap();
    let attempts: Vec<(String, String)> = serde_json::from_str(&payloads(&out.outputs)[0]).unwrap();
    assert!(attempts.len() >= 7, "{attempts:?}");
    for (attempt, outcome) in &attempts {
        assert!(outcome.starts_with("denied"), "`{attempt}` was not denied: {outcome}");
    }
    assert!(!Path::new("/tmp/sda-escape").exists());
}

#[test]
fn the_network_is_out_of_reach() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let cache = tempfile::tempdir().unwrap();
    let rt = runtime(cache.path());
    let config = serde_json::json!({ "mode": "connect", "address": address }).to_string();
    let mut op = instance(&rt, "caller", plugins::FAULTY, Limits::default(), &config).unwrap();
    let out = op.process(&batch(&[("k", "{}")])).unwrap();
    let outcome: serde_json::Value = serde_json::from_str(&payloads(&out.outputs)[0]).unwrap();
    assert!(outcome["outcome"].as_str().unwrap().starts_with("denied"), "{outcome}");
    assert!(listener.accept().is_err(), "a connection reached the listener");
}

#[test]
fn init_can_reject_its_configuration() {
    let cache = tempfile::tempdir().unwrap();
    let rt = runtime(cache.path());
    let err = instance(&rt, "picky", plugins::FAULTY, Limits::default(), r#"{"mode":"reject-config"}"#).err().unwrap();
    assert!(matches!(err, RuntimeError::InitRejected { .. }));
    assert_eq!(
        err.to_string(),
        "operator `picky`: `init` rejected the configuration: mode `reject-config` always rejects its configuration"
    );
    let err = instance(&rt, "picky", plugins::FAULTY, Limits::default(), r#"{"mode":"panic","colour":1}"#).err().unwrap();
    assert!(err.to_string().contains("unknown field `colour`"), "{err}");
}

#[test]
fn a_second_load_comes_from_the_cache_and_a_corrupt_entry_is_recompiled() {
    let cache = tempfile::tempdir().unwrap();
    let rt = runtime(cache.path());
    let file = PluginFile::read(Path::new(plugins::PASSTHROUGH)).unwrap();
    assert_eq!(rt.load("p", &file).unwrap().source, CompileSource::Compiled);
    assert_eq!(rt.load("p", &file).unwrap().source, CompileSource::Cache);

    let entry = std::fs::read_dir(cache.path()).unwrap().next().unwrap().unwrap().path();
    let mut bytes = std::fs::read(&entry).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&entry, bytes).unwrap();
    let reloaded = rt.load("p", &file).unwrap();
    assert_eq!(reloaded.source, CompileSource::Compiled, "a corrupt entry is not trusted");
    assert_eq!(rt.load("p", &file).unwrap().source, CompileSource::Cache, "and is replaced");
    let mut op = rt.instantiate("p", &reloaded, Limits::default(), "{}").unwrap();
    assert_eq!(op.process(&batch(&[("a", "1")])).unwrap().output_count, 1);
}

#[test]
fn a_plugin_for_an_unknown_wit_version_is_refused_by_name() {
    let err = PluginFile::read(Path::new(plugins::WIT_FUTURE)).unwrap_err();
    let shown = err.to_string();
    assert!(shown.contains("is built against WIT `sda:operator@0.3.0`"), "{shown}");
    assert!(shown.contains("supports `0.1.0`, `0.2.0`"), "{shown}");
}

fn loaded(rt: &Runtime, name: &str, plugin: &str) -> sda_host::runtime::LoadedPlugin {
    rt.load(name, &PluginFile::read(Path::new(plugin)).unwrap()).unwrap()
}

#[test]
fn a_plugin_built_against_wit_0_1_0_still_loads_runs_and_keeps_its_state() {
    let cache = tempfile::tempdir().unwrap();
    let rt = runtime(cache.path());
    let plugin = loaded(&rt, "old", plugins::WIT_V0_1);
    assert_eq!(plugin.wit_version, "0.1.0");
    let mut op = rt.instantiate("old", &plugin, Limits::default(), "{}").unwrap();
    let out = op.process(&batch(&[("a", "1"), ("b", "2")])).unwrap();
    assert_eq!(payloads(&out.outputs), ["1", "2"]);
    assert_eq!(op.on_watermark(i64::MAX).unwrap().output_count, 0);
    let (version, state) = op.snapshot().unwrap();
    assert_eq!((version, state.clone()), (1, 2u64.to_le_bytes().to_vec()), "it counted the records");

    let mut again = rt.instantiate("old", &plugin, Limits::default(), "{}").unwrap();
    again.restore(version, &state).unwrap().unwrap();
    again.process(&batch(&[("c", "3")])).unwrap();
    assert_eq!(again.snapshot().unwrap().1, 3u64.to_le_bytes().to_vec());
    let err = rt.instantiate("old", &plugin, Limits::default(), r#"{"x":1}"#).err().unwrap();
    assert!(err.to_string().contains("takes no config"), "its `init` runs: {err}");
}

#[test]
fn several_instances_need_a_wit_0_2_0_plugin_that_sees_all_records() {
    let cache = tempfile::tempdir().unwrap();
    let rt = runtime(cache.path());
    let old = loaded(&rt, "old", plugins::WIT_V0_1);
    let err = rt.instantiate_parallel("old", &old, Limits::default(), "{}", 2, None).err().unwrap().to_string();
    assert!(err.contains("operator `old`") && err.contains("wit_v0_1.wasm") && err.contains("`sda:operator@0.1.0`"), "{err}");
    assert!(err.contains("`parallelism = 2`"), "{err}");

    let keyed = loaded(&rt, "classifier", plugins::CLASSIFIER);
    assert_eq!(keyed.wit_version, "0.2.0");
    let err = rt.instantiate_parallel("classifier", &keyed, Limits::default(), "{}", 2, None).err().unwrap().to_string();
    assert!(err.contains("operator `classifier`") && err.contains("classifier.wasm") && err.contains("describes itself as keyed"), "{err}");
    assert!(err.contains("not implemented"), "{err}");
    // Alone, both run.
    rt.instantiate_parallel("classifier", &keyed, Limits::default(), "{}", 1, None).unwrap();
}

/// Observations of `objects` objects on crossing circular orbits, 20 s apart for `minutes`.
fn crossing_observations(objects: u32, minutes: i64) -> Vec<u8> {
    const T0: i64 = 1_767_225_600_000;
    const MU: f64 = 398_600.441_8;
    let mut w = BatchWriter::new();
    let mut n = 0;
    for step in 0..minutes * 3 {
        let t = (step * 20) as f64 - 90.0;
        for object in 0..objects {
            let radius = 7000.0 + f64::from(object) * 0.7;
            let speed = (MU / radius).sqrt();
            let (tilt, angle) = (f64::from(object) * 0.4, speed / radius * t);
            let r = [radius * angle.cos(), radius * angle.sin() * tilt.cos(), radius * angle.sin() * tilt.sin()];
            let v = [-speed * angle.sin(), speed * angle.cos() * tilt.cos(), speed * angle.cos() * tilt.sin()];
            let epoch = T0 + step * 20_000;
            n += 1;
            let line = format!(
                r#"{{"observation_id":"o{n}","object_id":{},"sensor_id":"s","epoch_ms":{epoch},"position_km":{r:?},"velocity_km_s":{v:?}}}"#,
                40000 + object
            );
            w.push_simple(None, epoch, b"", line.as_bytes());
        }
    }
    w.finish()
}

#[test]
fn the_correlator_as_four_shards_emits_what_one_instance_does_without_order_headers() {
    let cache = tempfile::tempdir().unwrap();
    let rt = runtime(cache.path());
    let plugin = loaded(&rt, "correlator", plugins::CORRELATOR);
    let input = crossing_observations(12, 4);
    let config = r#"{"screening_km": 40.0}"#;
    let run = |parallelism: u32| {
        let mut op = rt.instantiate_parallel("correlator", &plugin, Limits::default(), config, parallelism, None).unwrap();
        assert_eq!(op.parallelism(), parallelism);
        let mut records = Vec::new();
        for outputs in [op.process(&input).unwrap().outputs, op.on_watermark(i64::MAX).unwrap().outputs] {
            for r in BatchReader::read_all(&outputs).unwrap() {
                assert!(r.header(sda_wire::ORDER_HEADER).is_none(), "the host removes the order header");
                records.push((r.key.to_vec(), r.payload.to_vec(), r.event_time_ms));
            }
        }
        (records, op.snapshot().unwrap())
    };
    let (one, one_state) = run(1);
    assert!(one.len() > 10, "the orbits cross: {} candidates", one.len());
    let (four, four_state) = run(4);
    assert!(four == one, "the merged outputs are what one instance emits, in its order");
    assert_eq!(four_state, one_state, "every shard keeps the whole state");
}

#[test]
fn the_leased_shards_of_the_correlator_emit_between_them_what_one_instance_does_and_the_classifier_runs_whole() {
    let cache = tempfile::tempdir().unwrap();
    let rt = runtime(cache.path());
    let plugin = loaded(&rt, "correlator", plugins::CORRELATOR);
    let input = crossing_observations(12, 4);
    let config = r#"{"screening_km": 40.0}"#;
    let run = |parallelism: u32, lease: Option<Shard>| {
        let mut op = rt.instantiate_parallel("correlator", &plugin, Limits::default(), config, parallelism, lease).unwrap();
        assert_eq!(op.parallelism(), parallelism, "a lease does not change how many instances run here");
        let mut records = Vec::new();
        for outputs in [op.process(&input).unwrap().outputs, op.on_watermark(i64::MAX).unwrap().outputs] {
            for r in BatchReader::read_all(&outputs).unwrap() {
                records.push((r.key.to_vec(), r.payload.to_vec(), r.event_time_ms));
            }
        }
        (records, op.snapshot().unwrap())
    };
    let (mut one, one_state) = run(1, None);
    assert!(one.len() > 10, "the orbits cross: {} candidates", one.len());
    // Three leases of two local instances each: the pair space in six shards, every candidate once.
    let mut leased = Vec::new();
    let mut leases_with_candidates = 0;
    for index in 0..3 {
        let (records, state) = run(2, Some(Shard { index, count: 3 }));
        assert_eq!(state, one_state, "a shard keeps the whole state, so any process can restore any shard");
        leases_with_candidates += usize::from(!records.is_empty());
        leased.extend(records);
    }
    assert!(leases_with_candidates >= 2, "the pair space is split: {leases_with_candidates} of 3 leases found candidates");
    one.sort();
    leased.sort();
    assert_eq!(leased.len(), one.len(), "no candidate lost or emitted by two leases");
    assert!(leased == one, "the leases' candidates are one instance's");

    // A keyed operator under a lease runs whole: its input is the same in every shard task.
    let keyed = loaded(&rt, "classifier", plugins::CLASSIFIER);
    let op = rt.instantiate_parallel("classifier", &keyed, Limits::default(), "{}", 1, Some(Shard { index: 2, count: 3 })).unwrap();
    assert_eq!(op.parallelism(), 1);
}
