//! Generates a scenario and its expected outputs, with a progress line and timings.
//!
//! `cargo run --release -p sda-scenario --example scenario -- OUT.jsonl [--objects N] [--minutes M] [--seed S]`

use sda_scenario::{GenerateOptions, generate, reference, write_scenario};
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let mut out: Option<PathBuf> = None;
    let mut options = GenerateOptions::default();
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--objects" => options.objects = value().parse().expect("--objects N"),
            "--minutes" => options.minutes = value().parse().expect("--minutes M"),
            "--seed" => options.seed = value().parse().expect("--seed S"),
            path => out = Some(PathBuf::from(path)),
        }
    }
    let out = out.expect("usage: scenario OUT.jsonl [--objects N] [--minutes M] [--seed S]");
    let progress = |done: usize, total: usize| {
        eprint!("\r  reference: window {done}/{total}");
        let _ = std::io::stderr().flush();
    };

    let started = Instant::now();
    let scenario = generate(&options).expect("valid options");
    let generated = started.elapsed();
    let started = Instant::now();
    let expected = reference::run(&scenario.lines, &options.correlator, &options.classifier, &progress).expect("valid config");
    let referenced = started.elapsed();
    eprintln!();
    println!(
        "{} objects x {} min: {} lines; generate {:.2} s, reference {:.2} s",
        options.objects,
        options.minutes,
        scenario.lines.len(),
        generated.as_secs_f64(),
        referenced.as_secs_f64()
    );
    println!("{}", serde_json::to_string_pretty(&expected.counts).unwrap());
    let files = write_scenario(&out, &options, &|_, _| {}).expect("scenario written");
    println!("wrote {} and companions", files.observations.display());
}
