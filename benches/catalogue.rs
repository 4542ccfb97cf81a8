//! Catalogue scale: seconds per window close against objects (10^3 to 10^6), windowed and catalogue mode, `parallelism` 1 and 2; every run's candidates checked; JSON and PNG.
//!
//! `cargo bench -p sda-host --features native-operators --bench catalogue`. Each run is the real
//! binary, `sda-pipeline run --report`, with the correlator plugin (wasm) writing its candidates
//! to a file, checkpoints every 5 s. Two scenario shapes, generated once and kept under the target
//! directory (streamed, without the O(n^2) reference):
//!
//! - **windowed**: every object seen once a minute (`state_horizon_ms` = 0), 5 minutes, no late
//!   observations (one would leave its object out of a window);
//! - **catalogue**: each object seen every 2 to 20 minutes (10 on average) by 3 sensors, 30 minutes,
//!   `state_horizon_ms` = 20 minutes: from minute 20 on, every window screens the whole catalogue.
//!
//! A window's time is the correlator's `on-watermark` call that closed it, from the run's report;
//! the figure is the median over the windows in steady state (all of them in windowed mode, those
//! after the first 21 minutes in catalogue mode). The checkpoint pauses are those of the checkpoints
//! taken while records flowed (the one at the end of input, written before the run ends, is left out).
//!
//! A fast wrong answer is no figure, so every run is checked: every planted conjunction found with
//! its miss distance within 1 m; a brute force over every pair involving a sample of objects (all
//! of them up to 1,000 objects; else 20 at random plus the planted ones) in the steady windows; and
//! the candidates of `parallelism` = 2 byte-identical to those of 1.
//!
//! Environment: `SDA_BENCH_SIZES` (default `1000,10000,100000,1000000`), `SDA_BENCH_MODES`
//! (`windowed,catalogue`), `SDA_BENCH_PARALLELISM` (`1,2`). Results go to
//! `target/bench-results/catalogue.json` and `catalogue.png`, or to `SDA_BENCH_OUT`.

#[path = "shared/catalogue_scenario.rs"]
mod catalogue_scenario;

use catalogue_scenario::WINDOW_MS;
use sda_host::report::{RunReport, percentile};
use sda_host::stats::WatermarkCall;
use sda_scenario::check::{self, Sample, SampledCheck};
use sda_scenario::generate::{Progress, read_summary};
use sda_scenario::{Candidate, GenerateOptions, ScenarioSummary, write_scenario_with};
use sda_testkit::{PipelineToml, Scratch, plugins};
use serde::Serialize;
use std::collections::BTreeSet;
use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const MIB: f64 = 1024.0 * 1024.0;

fn env_list<T: std::str::FromStr>(name: &str, default: &str) -> Vec<T> {
    let text = std::env::var(name).unwrap_or_else(|_| default.to_string());
    text.split(',').map(|v| v.trim().parse().unwrap_or_else(|_| panic!("`{name}`: cannot read {v:?}"))).collect()
}

/// The two shapes of scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Mode {
    Windowed,
    Catalogue,
}

impl Mode {
    fn parse(name: &str) -> Mode {
        match name {
            "windowed" => Mode::Windowed,
            "catalogue" => Mode::Catalogue,
            other => panic!("SDA_BENCH_MODES: unknown mode {other:?} (windowed, catalogue)"),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Mode::Windowed => "windowed",
            Mode::Catalogue => "catalogue",
        }
    }

    fn minutes(self) -> u32 {
        match self {
            Mode::Windowed => 5,
            Mode::Catalogue => 30,
        }
    }

    /// Windows screened before the steady state: none in windowed mode; in catalogue mode, until
    /// every object has been seen once (the longest gap, 20 minutes) and one more.
    fn warm_up_windows(self) -> usize {
        match self {
            Mode::Windowed => 0,
            Mode::Catalogue => 21,
        }
    }

    fn options(self, objects: usize) -> GenerateOptions {
        match self {
            Mode::Windowed => GenerateOptions {
                cadence_ms: WINDOW_MS,
                jitter_ms: 0,
                // Seen once a window, an object whose observation arrives late has no state in that
                // window: a planted pair would then go unscreened, rightly, and the check fail.
                late_pct: 0.0,
                ..catalogue_scenario::options(objects, self.minutes(), 0)
            },
            Mode::Catalogue => catalogue_scenario::catalogue(objects, self.minutes()),
        }
    }
}

/// A generated scenario, kept between bench runs.
struct Scenario {
    mode: Mode,
    objects: usize,
    observations: PathBuf,
    summary: ScenarioSummary,
    lines: usize,
}

fn scenario(mode: Mode, objects: usize) -> Scenario {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-catalogue");
    std::fs::create_dir_all(&dir).expect("the scenario folder");
    let observations = dir.join(format!("{}-{objects}.jsonl", mode.name()));
    let summary_path = dir.join(format!("{}-{objects}.scenario.json", mode.name()));
    let options = mode.options(objects);
    let summary = match read_summary(&summary_path) {
        Ok(summary) if summary.options == options && observations.exists() => summary,
        _ => {
            eprintln!("generating {} ({objects} objects, {} minutes)...", observations.display(), options.minutes);
            let started = Instant::now();
            let last_report = std::sync::Mutex::new(Instant::now());
            let progress = |step: Progress| {
                let mut last = last_report.lock().unwrap();
                if let Progress::Generating { done_ms, total_ms } = step
                    && last.elapsed().as_secs() >= 10
                {
                    *last = Instant::now();
                    eprintln!("  {:.0}% of the scenario's time", 100.0 * done_ms as f64 / total_ms.max(1) as f64);
                }
            };
            let written = write_scenario_with(&observations, &options, false, &progress).expect("generating the scenario");
            eprintln!("  generated in {:.1} s", started.elapsed().as_secs_f64());
            written.summary
        }
    };
    let lines = count_lines(&observations);
    Scenario { mode, objects, observations, summary, lines }
}

fn count_lines(path: &Path) -> usize {
    let file = std::fs::File::open(path).expect("the scenario");
    std::io::BufReader::with_capacity(1 << 20, file).lines().count()
}

fn pipeline_toml(scenario: &Scenario, parallelism: u32) -> String {
    let config = &scenario.summary.options.correlator;
    let per_window = scenario.lines / scenario.mode.minutes() as usize;
    // A batch is at most a quarter of a window, so that windows close one call at a time.
    let batch_size = (per_window / 4).clamp(16, 1024);
    let mut toml = PipelineToml::new("catalogue-bench")
        .set("runtime", "batch_size", batch_size)
        .observations_file("observations", scenario.observations.display().to_string())
        .operator("correlator", plugins::CORRELATOR, &["observations"])
        // A million objects' states and screening buffers: more than the default 256 MiB per instance.
        .set("operators.correlator", "max_memory_bytes", 4_294_967_296u64)
        .set("operators.correlator.config", "window_ms", config.window_ms)
        .set("operators.correlator.config", "allowed_lateness_ms", config.allowed_lateness_ms)
        .set("operators.correlator.config", "screening_km", "5.0")
        .set("operators.correlator.config", "state_horizon_ms", config.state_horizon_ms)
        .file_sink("candidates", &["correlator"], "out/candidates.jsonl")
        .file_dlq("out/dlq.jsonl")
        .lines("checkpoint", "dir = \"out/checkpoints\"\ninterval_ms = 5000\nkeep = 2");
    if parallelism > 1 {
        toml = toml.set("operators.correlator", "parallelism", parallelism);
    }
    toml.to_string()
}

/// Runs the pipeline on `scenario` in a fresh folder; the report and the candidates file's bytes.
fn run(scenario: &Scenario, parallelism: u32) -> (RunReport, Vec<u8>) {
    let scratch = Scratch::new();
    scratch.write("pipeline.toml", pipeline_toml(scenario, parallelism));
    let report_path = scratch.join("report.json");
    let output = Command::new(env!("CARGO_BIN_EXE_sda-pipeline"))
        .current_dir(scratch.path())
        .args(["run", "pipeline.toml", "--quiet", "--report"])
        .arg(&report_path)
        .env("SDA_CACHE_DIR", Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache"))
        .output()
        .expect("running sda-pipeline");
    assert!(
        output.status.success(),
        "the run failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let report: RunReport = serde_json::from_slice(&std::fs::read(&report_path).unwrap()).expect("a readable report");
    let candidates = std::fs::read(scratch.join("out/candidates.jsonl")).unwrap_or_default();
    (report, candidates)
}

/// The window closes among the correlator's `on-watermark` calls: the `windows` slowest, in the
/// order made (each window closes in one call: batches are shorter than a window).
fn window_closes(calls: &[WatermarkCall], windows: usize) -> Vec<f64> {
    let mut by_time: Vec<(usize, f64)> = calls.iter().map(|c| c.ms).enumerate().collect();
    by_time.sort_by(|a, b| b.1.total_cmp(&a.1));
    by_time.truncate(windows);
    by_time.sort_by_key(|c| c.0);
    by_time.into_iter().map(|c| c.1 / 1e3).collect()
}

#[derive(Debug, Serialize)]
struct CheckFigures {
    planted: usize,
    planted_found: usize,
    worst_planted_miss_error_m: f64,
    sample_objects: usize,
    sampled_pairs_screened: u64,
    sampled_expected: usize,
    sampled_matched: usize,
    check_s: f64,
}

#[derive(Debug, Serialize)]
struct Row {
    mode: Mode,
    objects: usize,
    parallelism: u32,
    observations: usize,
    windows_measured: usize,
    seconds_per_window_median: f64,
    seconds_per_window_max: f64,
    /// Wall time of the whole run (parsing, windows, screening, checkpoints) over the observations.
    records_per_s: f64,
    elapsed_s: f64,
    peak_rss_bytes: u64,
    peak_rss_bytes_per_object: f64,
    checkpoints: usize,
    checkpoint_pause_p50_ms: Option<f64>,
    checkpoint_pause_p99_ms: Option<f64>,
    checkpoint_pause_max_ms: Option<f64>,
    candidates: usize,
    check: Option<CheckFigures>,
    same_candidates_as_parallelism_1: Option<bool>,
}

/// Checks `candidates` against the scenario (see the module doc); panics on a mismatch.
fn check(scenario: &Scenario, candidates_bytes: &[u8]) -> CheckFigures {
    let started = Instant::now();
    let candidates: Vec<Candidate> = candidates_bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).expect("a candidate"))
        .collect();
    let planted = check::planted_found(&scenario.summary, &candidates).unwrap_or_else(|misses| {
        panic!("{} planted conjunctions not found as planted, e.g. {}", misses.len(), misses[0]);
    });
    let planted_primaries = scenario.summary.conjunctions.iter().map(|c| c.primary_id);
    let file = std::fs::File::open(&scenario.observations).unwrap();
    let observed = check::observed_objects(std::io::BufReader::with_capacity(1 << 20, file).lines().map_while(Result::ok));
    let sample: BTreeSet<u32> = if scenario.objects <= 1000 {
        observed
    } else {
        check::pick_sample(observed, 20, 7).into_iter().chain(planted_primaries).collect()
    };
    let start_ms = scenario.summary.options.start_ms;
    let first_steady = start_ms + scenario.mode.warm_up_windows() as i64 * WINDOW_MS;
    let last = start_ms + (i64::from(scenario.mode.minutes()) - 1) * WINDOW_MS;
    let request = SampledCheck { sample: Sample::Objects(sample.clone()), window_starts_ms: Some(first_steady..=last) };
    let sampled = check::sampled_brute_force_file(&scenario.observations, &scenario.summary.options.correlator, &candidates, &request)
        .expect("reading the scenario");
    assert!(sampled.passed(), "the sampled brute force disagrees:\n{sampled}");
    assert!(sampled.expected > 0 || scenario.objects < 1000, "the sample met no conjunction: the check would prove nothing\n{sampled}");
    CheckFigures {
        planted: scenario.summary.conjunctions.len(),
        planted_found: planted.found.len(),
        worst_planted_miss_error_m: planted.worst_miss_error_km * 1000.0,
        sample_objects: sample.len(),
        sampled_pairs_screened: sampled.pairs_screened,
        sampled_expected: sampled.expected,
        sampled_matched: sampled.matched,
        check_s: started.elapsed().as_secs_f64(),
    }
}

fn main() {
    // `cargo bench` passes `--bench`; this harness takes no arguments.
    let sizes: Vec<usize> = env_list("SDA_BENCH_SIZES", "1000,10000,100000,1000000");
    let modes: Vec<Mode> = env_list::<String>("SDA_BENCH_MODES", "windowed,catalogue").iter().map(|m| Mode::parse(m)).collect();
    let parallelisms: Vec<u32> = env_list("SDA_BENCH_PARALLELISM", "1,2");
    let out_dir = std::env::var_os("SDA_BENCH_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("../bench-results"));
    std::fs::create_dir_all(&out_dir).expect("the results folder");

    let mut rows: Vec<Row> = Vec::new();
    for &mode in &modes {
        for &objects in &sizes {
            let scenario = scenario(mode, objects);
            let mut first_candidates: Option<Vec<u8>> = None;
            for &parallelism in &parallelisms {
                eprintln!("{} mode, {objects} objects, parallelism {parallelism}: running...", mode.name());
                let (report, candidates) = run(&scenario, parallelism);
                let windows = mode.minutes() as usize;
                let calls = report.watermark_calls.get("correlator").map_or(&[][..], Vec::as_slice);
                let closes = window_closes(calls, windows);
                let steady = &closes[mode.warm_up_windows().min(closes.len())..];
                assert!(!steady.is_empty(), "no window close measured ({} on-watermark calls)", calls.len());
                let same = first_candidates.as_ref().map(|first| *first == candidates);
                assert_ne!(same, Some(false), "parallelism {parallelism} wrote other candidates than parallelism {}", parallelisms[0]);
                let check = first_candidates.is_none().then(|| check(&scenario, &candidates));
                // The checkpoint at the end of input is written before the run ends (its pause is
                // its whole write): only those taken while records flowed pause anything.
                let pauses = &report.checkpoint_pauses_ms[..report.checkpoint_pauses_ms.len().saturating_sub(1)];
                let peak = report.peak_rss_bytes.unwrap_or(0);
                let row = Row {
                    mode,
                    objects,
                    parallelism,
                    observations: scenario.lines,
                    windows_measured: steady.len(),
                    seconds_per_window_median: percentile(steady, 0.5),
                    seconds_per_window_max: steady.iter().copied().fold(0.0, f64::max),
                    records_per_s: report.records_per_s,
                    elapsed_s: report.elapsed_s,
                    peak_rss_bytes: peak,
                    peak_rss_bytes_per_object: peak as f64 / objects as f64,
                    checkpoints: pauses.len(),
                    checkpoint_pause_p50_ms: (!pauses.is_empty()).then(|| percentile(pauses, 0.5)),
                    checkpoint_pause_p99_ms: (!pauses.is_empty()).then(|| percentile(pauses, 0.99)),
                    checkpoint_pause_max_ms: pauses.iter().copied().reduce(f64::max),
                    candidates: candidates.iter().filter(|&&b| b == b'\n').count(),
                    check,
                    same_candidates_as_parallelism_1: same,
                };
                eprintln!(
                    "  {:.4} s per window (median of {}, max {:.4}), {:.0} obs/s, peak RSS {:.0} MiB ({:.0} B/object), {} candidates{}",
                    row.seconds_per_window_median,
                    row.windows_measured,
                    row.seconds_per_window_max,
                    row.records_per_s,
                    peak as f64 / MIB,
                    row.peak_rss_bytes_per_object,
                    row.candidates,
                    row.checkpoint_pause_p99_ms.map_or(String::new(), |p| format!(", checkpoint pause p99 {p:.1} ms"))
                );
                if first_candidates.is_none() {
                    first_candidates = Some(candidates);
                }
                rows.push(row);
            }
        }
    }

    let json = out_dir.join("catalogue.json");
    std::fs::write(&json, serde_json::to_vec_pretty(&rows).unwrap()).expect("writing the results");
    println!("\n| mode | objects | parallelism | s per window (median) | max | obs/s | peak RSS MiB | B/object | ckpt pause p99 ms |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {:.4} | {:.4} | {:.0} | {:.0} | {:.0} | {} |",
            r.mode.name(),
            r.objects,
            r.parallelism,
            r.seconds_per_window_median,
            r.seconds_per_window_max,
            r.records_per_s,
            r.peak_rss_bytes as f64 / MIB,
            r.peak_rss_bytes_per_object,
            r.checkpoint_pause_p99_ms.map_or("-".to_string(), |p| format!("{p:.1}"))
        );
    }
    println!("\nresults: {}", json.display());
    let png = out_dir.join("catalogue.png");
    match chart::draw(&rows, &png) {
        Ok(()) => println!("chart:   {}", png.display()),
        Err(e) => eprintln!("no chart: {e}"),
    }
}

/// Objects against seconds per window, log-log, one line per mode and parallelism.
mod chart {
    use super::{Mode, Row};
    use plotters::prelude::*;
    use std::path::Path;

    /// Text needs a TrueType font; DejaVu Sans is on most Linux machines.
    const FONTS: &[&str] = &["/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/usr/share/fonts/TTF/DejaVuSans.ttf"];

    pub fn draw(rows: &[Row], path: &Path) -> Result<(), String> {
        let font = FONTS.iter().find_map(|f| std::fs::read(f).ok()).ok_or_else(|| format!("no font found (looked for {FONTS:?})"))?;
        plotters::style::register_font("sans-serif", FontStyle::Normal, Box::leak(font.into_boxed_slice()))
            .map_err(|_| "the font could not be read".to_string())?;
        let (min_n, max_n) = rows.iter().fold((f64::MAX, 1.0f64), |(lo, hi), r| (lo.min(r.objects as f64), hi.max(r.objects as f64)));
        let (min_s, max_s) = rows
            .iter()
            .fold((f64::MAX, 1e-4f64), |(lo, hi), r| (lo.min(r.seconds_per_window_median.max(1e-4)), hi.max(r.seconds_per_window_median)));
        let root = BitMapBackend::new(path, (1100, 750)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let root = root
            .titled("Correlator: seconds per 60 s window close (wasm plugin, this 2-core machine)", ("sans-serif", 24))
            .map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(80)
            .build_cartesian_2d((min_n * 0.8..max_n * 1.25).log_scale(), (min_s * 0.5..max_s * 2.0).log_scale())
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("objects")
            .y_desc("seconds per window")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| format!("{v}"))
            .draw()
            .map_err(|e| e.to_string())?;
        let styles = [(Mode::Windowed, 1, BLUE), (Mode::Windowed, 2, CYAN), (Mode::Catalogue, 1, RED), (Mode::Catalogue, 2, MAGENTA)];
        for (mode, parallelism, color) in styles {
            let points: Vec<(f64, f64)> = rows
                .iter()
                .filter(|r| r.mode == mode && r.parallelism == parallelism)
                .map(|r| (r.objects as f64, r.seconds_per_window_median.max(1e-4)))
                .collect();
            if points.is_empty() {
                continue;
            }
            let label = format!("{} mode, parallelism {parallelism}", mode.name());
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
                .map_err(|e| e.to_string())?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
            chart.draw_series(points.into_iter().map(|p| Circle::new(p, 4, color.filled()))).map_err(|e| e.to_string())?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 18))
            .draw()
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())
    }
}
