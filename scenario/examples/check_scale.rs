//! Measures the scalable checks on a large sparse scenario: writes it without the reference
//! (unless it exists already), then times `check::sampled_brute_force_file` over a few windows.
//!
//! `cargo run --release -p sda-scenario --example check_scale -- OUT.jsonl [--objects N]
//! [--minutes M] [--sample K] [--windows W] [--from-minute F]`
//!
//! With no pipeline output to compare, every brute-force candidate is reported missing: the
//! numbers that matter are the pairs bounded and screened and the time each step takes.

use sda_scenario::CorrelatorConfig;
use sda_scenario::check::{self, Sample, SampledCheck};
use sda_scenario::generate::{GenerateOptions, SparseCadence, write_scenario_with};
use std::path::PathBuf;
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let mut out: Option<PathBuf> = None;
    let (mut objects, mut minutes, mut sample, mut windows, mut from_minute) = (100_000usize, 120u32, 20usize, 3i64, 60i64);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--objects" => objects = value().parse().expect("--objects N"),
            "--minutes" => minutes = value().parse().expect("--minutes M"),
            "--sample" => sample = value().parse().expect("--sample K"),
            "--windows" => windows = value().parse().expect("--windows W"),
            "--from-minute" => from_minute = value().parse().expect("--from-minute F"),
            path => out = Some(PathBuf::from(path)),
        }
    }
    let out = out.expect("usage: check_scale OUT.jsonl [--objects N] [--minutes M] [--sample K] [--windows W] [--from-minute F]");
    let cadence = SparseCadence::default();
    let options = GenerateOptions {
        objects,
        minutes,
        sparse_cadence: Some(cadence),
        correlator: CorrelatorConfig { state_horizon_ms: cadence.max_gap_ms, ..CorrelatorConfig::default() },
        ..GenerateOptions::default()
    };
    if !out.exists() {
        let started = Instant::now();
        let written = write_scenario_with(&out, &options, false, &|_| {}).expect("scenario written");
        println!("generated {} lines in {:.1} s", written.summary.counts.lines, started.elapsed().as_secs_f64());
    }
    let first = options.start_ms + from_minute * 60_000;
    let range = first..=first + (windows - 1) * options.correlator.window_ms;
    let started = Instant::now();
    let check = SampledCheck { sample: Sample::Random { count: sample, seed: 1 }, window_starts_ms: Some(range) };
    let report = check::sampled_brute_force_file(&out, &options.correlator, &[], &check).expect("checked");
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "{objects} objects, sample {sample}, {} windows: {elapsed:.1} s in all (correlate {:.1?}, bound {:.1?}, screen {:.1?}); \
         {} states, {} pairs bounded, {} screened, {} brute-force candidates",
        report.windows_compared,
        report.timings.correlate,
        report.timings.bound,
        report.timings.screen,
        report.states_seen,
        report.pairs_bounded,
        report.pairs_screened,
        report.expected + report.borderline,
    );
}
