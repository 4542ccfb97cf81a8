//! Hot-swap figures: the pause a swap costs a task (the time it processes nothing) with classifier state of 10^4 and 10^6 remembered pairs, and the compile time of a new plugin with and without the component cache.
//!
//! `cargo bench -p sda-host --bench swap_pause` (release build). The pipeline runs in this process: a file
//! of N conjunction candidates, one per pair, all RED in one window (so the classifier remembers
//! every pair) -> classifier -> file sink, following its input. Once every candidate is processed
//! the classifier is swapped to version 2 (migrating its state), then to version 2 again
//! `SDA_BENCH_SWAPS` times (default 3). The pause is the task's, as the swap reports it: snapshot,
//! new instance, restore, and the checkpoint that names the new plugin (with an fsync of the state).
//! Sizes: `SDA_BENCH_PAIRS` (default `10000,1000000`).

use sda_host::graph::{Plan, PluginFile};
use sda_host::pipeline::{self, RunOptions};
use sda_host::runtime::Runtime;
use sda_host::stats::Stats;
use sda_host::swap::{Controller, SwapRequest};
use sda_host::task::Shutdown;
use sda_testkit::{PipelineToml, Scratch, plugins};
use std::io::Write as _;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn candidates(scratch: &Scratch, pairs: usize) {
    let mut file = std::io::BufWriter::new(std::fs::File::create(scratch.join("candidates.jsonl")).unwrap());
    let t0: i64 = 1_767_225_600_000;
    for i in 0..pairs {
        let (primary, secondary) = (i as u32 / 1000, 1_000_000 + i as u32);
        writeln!(
            file,
            r#"{{"primary_id":{primary},"secondary_id":{secondary},"window_start_ms":{t0},"window_end_ms":{},"tca_ms":{},"miss_distance_km":0.5,"relative_speed_km_s":9.5,"primary_observation_id":"a{i}","secondary_observation_id":"b{i}"}}"#,
            t0 + 60_000,
            t0 + 30_000
        )
        .unwrap();
    }
}

fn plan(scratch: &Scratch) -> Plan {
    let text = PipelineToml::new("swap-bench")
        .set("runtime", "batch_size", 4096)
        .lines("checkpoint", "dir = \"state\"\ninterval_ms = 3600000")
        .lines("sources.candidates", "type = \"file\"\npath = \"candidates.jsonl\"\nevent_time_field = \"tca_ms\"")
        .operator("classifier", plugins::CLASSIFIER, &["candidates"])
        .set("operators.classifier", "max_memory_bytes", 2_147_483_648u64)
        .file_sink("alerts", &["classifier"], "alerts.jsonl")
        .file_dlq("dlq.jsonl")
        .to_string();
    let file = scratch.join("pipeline.toml");
    std::fs::write(&file, &text).unwrap();
    Plan::load(&file).unwrap_or_else(|e| panic!("{e}"))
}

fn swap_pauses(pairs: usize, swaps: usize) {
    let scratch = Scratch::new();
    candidates(&scratch, pairs);
    let plan = Arc::new(plan(&scratch));
    let runtime = Arc::new(Runtime::new(Some(scratch.join("cache"))).unwrap());
    let stats = Arc::new(Stats::new());
    let stop = Shutdown::new();
    let slot: Arc<OnceLock<Arc<Controller>>> = Arc::new(OnceLock::new());
    let options = RunOptions { follow: true, ..RunOptions::default() };
    let run = {
        let (plan, runtime, stats, stop, slot) = (plan.clone(), runtime.clone(), stats.clone(), stop.clone(), slot.clone());
        std::thread::spawn(move || pipeline::run_with_controller(plan, runtime, &options, &stop, &stats, &slot))
    };
    let loading = Instant::now();
    while stats.records_in() < pairs as u64 {
        if run.is_finished() {
            panic!("the run ended early: {:?}", run.join().unwrap().map(|s| s.records_in));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let controller = slot.get().expect("the run is going").clone();
    let mut pauses = Vec::new();
    let mut first = None;
    for i in 0..=swaps {
        let report =
            controller.swap(&SwapRequest::plugin("classifier", plugins::CLASSIFIER_V2.into(), "bench")).unwrap_or_else(|e| panic!("{e}"));
        let task = &report.tasks[0];
        if i == 0 {
            first = Some((task.pause_ms, task.state_version_from, task.state_version_to));
        } else {
            pauses.push(task.pause_ms);
        }
    }
    stop.request();
    run.join().unwrap().unwrap();
    let (migrating, from, to) = first.unwrap();
    println!(
        "{pairs:>9} pairs: swap pause {migrating:.1} ms migrating state v{from} -> v{to}; v2 -> v2 median {:.1} ms (min {:.1}, max {:.1}, \
            {swaps} swaps); loading the state took {:.1} s",
        median(pauses.clone()),
        pauses.iter().copied().fold(f64::INFINITY, f64::min),
        pauses.iter().copied().fold(0.0, f64::max),
        loading.elapsed().as_secs_f64()
    );
}

fn compile_times() {
    let file = PluginFile::read(std::path::Path::new(plugins::CLASSIFIER_V2)).unwrap();
    let (mut cold, mut warm) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        let cache = tempfile::tempdir().unwrap();
        let first = Runtime::new(Some(cache.path().to_path_buf())).unwrap().load("classifier", &file).unwrap();
        let again = Runtime::new(Some(cache.path().to_path_buf())).unwrap().load("classifier", &file).unwrap();
        assert_eq!((format!("{:?}", first.source), format!("{:?}", again.source)), ("Compiled".into(), "Cache".into()));
        cold.push(first.compile_time.as_secs_f64() * 1e3);
        warm.push(again.compile_time.as_secs_f64() * 1e3);
    }
    println!(
        "compiling classifier v2 ({} KiB): {:.0} ms without the cache, {:.1} ms from the cache (medians of 3)",
        file.bytes.len() / 1024,
        median(cold),
        median(warm)
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` lists benches; nothing to list here
    }
    let sizes: Vec<usize> =
        env_or("SDA_BENCH_PAIRS", "10000,1000000".to_string()).split(',').filter_map(|s| s.trim().parse().ok()).collect();
    let swaps = env_or("SDA_BENCH_SWAPS", 3usize);
    compile_times();
    for pairs in sizes {
        swap_pauses(pairs, swaps);
    }
}
