//! `sda-pipeline run`: a pipeline run with its live progress line, Ctrl-C handling, summary and report.

use crate::common::load_plan;
use crate::terminal::{finish_progress, show_progress};
use crate::text::group;
use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use sda_host::pipeline::{self, RunOptions, RunSummary};
use sda_host::report::{RunReport, Sampler};
use sda_host::runtime::{CompileSource, Runtime};
use sda_host::stats::Stats;
use sda_host::task::Shutdown;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `run`: runs the pipeline in `file` (watching it with `--watch`), with a live progress line unless `quiet`, then prints
/// the summary and writes the report if asked.
pub fn run(file: &Path, options: RunOptions, quiet: bool, watch: bool, report: Option<(PathBuf, Duration)>) -> anyhow::Result<ExitCode> {
    let plan = match load_plan(file)? {
        Ok(plan) => plan,
        Err(code) => return Ok(code),
    };
    let runtime = Runtime::new(plan.cache_dir.clone()).context("starting the WebAssembly runtime")?;

    let shutdown = Shutdown::new();
    // First Ctrl-C (or SIGTERM): finish the batch in hand, then stop. A second
    // Ctrl-C exits at once.
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(signal, 130, shutdown.flag()).context("installing the signal handler")?;
        signal_hook::flag::register(signal, shutdown.flag()).context("installing the signal handler")?;
    }

    let stats = Arc::new(if report.is_some() { Stats::for_report() } else { Stats::new() });
    let progress = (!quiet && std::io::stderr().is_terminal()).then(|| start_progress(stats.clone()));
    let sampler = report.as_ref().map(|(_, every)| Sampler::start(stats.clone(), *every));
    let summary = if watch {
        pipeline::watch::run_watching(file, plan, Arc::new(runtime), &options, &shutdown, &stats)
    } else {
        pipeline::run(Arc::new(plan), Arc::new(runtime), &options, &shutdown, &stats)
    };
    if let Some((done, handle)) = progress {
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = handle.join();
    }
    finish_progress();
    let timeline = sampler.map(Sampler::finish);
    let summary = summary?;
    print_summary(&summary);
    if let (Some((path, _)), Some(timeline)) = (report, timeline) {
        RunReport::new(&summary, &stats.checkpoint_pauses(), timeline).with_watermark_calls(stats.watermark_calls()).write(&path)?;
        println!("  report: {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn print_summary(s: &RunSummary) {
    let secs = s.elapsed.as_secs_f64();
    let rate = if secs > 0.0 { s.records_in as f64 / secs } else { 0.0 };
    let mut out = String::new();
    use std::fmt::Write as _;
    let ended = if s.stopped_early { "stopped (interrupted)" } else { "finished" };
    let _ = writeln!(
        out,
        "pipeline `{}` {ended} in {secs:.2} s (after {:.2} s start-up): {} records read ({} records/s)",
        s.pipeline,
        s.startup.as_secs_f64(),
        group(s.records_in),
        group(rate as u64)
    );
    for r in &s.recoveries {
        let how = match &r.checkpoint {
            Some((sequence, _)) => format!("resumed from checkpoint {sequence} ({})", r.path.as_str()),
            None => "started from the beginning of the input".to_string(),
        };
        let skipped = if r.skipped.is_empty() { String::new() } else { format!("; skipped {} unusable checkpoint(s)", r.skipped.len()) };
        let _ = writeln!(out, "  task `{}`: {how}{skipped}", r.task);
    }
    for (name, path, n) in &s.sinks {
        let _ = writeln!(out, "  sink `{name}`: {} records -> {path}", group(*n));
    }
    if s.dedup_hits > 0 {
        let _ = writeln!(
            out,
            "  {} replayed outputs were already delivered and not written again ({})",
            group(s.dedup_hits),
            s.guarantee.as_str()
        );
    }
    let entries = if s.dlq_entries == 1 { "entry" } else { "entries" };
    let _ = writeln!(out, "  dead-letter queue: {} {entries} -> {}", group(s.dlq_entries), s.dlq_where);
    for (op, kind, n) in &s.dlq_breakdown {
        let _ = writeln!(out, "      {op}: {kind} {}", group(*n));
    }
    let _ = writeln!(out, "  discarded: {}", group(s.discarded));
    for (op, reason, n) in &s.discard_breakdown {
        let _ = writeln!(out, "      {op}: {reason} {}", group(*n));
    }
    let compiled: Vec<String> = s
        .plugins
        .iter()
        .map(|(op, source, t)| match source {
            CompileSource::Cache => format!("{op} (cached)"),
            CompileSource::Compiled => format!("{op} (compiled in {:.1} s)", t.as_secs_f64()),
            CompileSource::Native => format!("{op} (native)"),
        })
        .collect();
    if !compiled.is_empty() {
        let _ = writeln!(out, "  plugins: {}", compiled.join(", "));
    }
    for (op, parallelism) in &s.sharded {
        let _ = writeln!(out, "  operator `{op}`: {parallelism} instances, each screening its shard (`parallelism`)");
    }
    print!("{out}");
    let _ = std::io::stdout().flush();
}

fn start_progress(stats: Arc<Stats>) -> (Arc<std::sync::atomic::AtomicBool>, std::thread::JoinHandle<()>) {
    let bar = ProgressBar::new_spinner();
    bar.set_style(ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}").expect("valid template"));
    show_progress(bar.clone());
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = done.clone();
    let handle = std::thread::spawn(move || {
        let started = Instant::now();
        let (mut last_in, mut last_at) = (0u64, started);
        let mut rate = 0.0;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let now = Instant::now();
            let records_in = stats.records_in();
            let dt = now.duration_since(last_at).as_secs_f64();
            if dt >= 1.0 {
                rate = (records_in - last_in) as f64 / dt;
                (last_in, last_at) = (records_in, now);
            }
            bar.set_message(format!(
                "{} in ({}/s) · {} out · {} DLQ · {} discarded",
                group(records_in),
                group(rate as u64),
                group(stats.records_out()),
                group(stats.dlq_entries()),
                group(stats.discarded_total()),
            ));
            bar.tick();
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    (done, handle)
}
