//! End-to-end throughput: file source -> correlator -> classifier -> file sink, exactly-once, as a user runs it; prints and saves observations/s, peak memory, checkpoint pauses and the native-vs-plugin ratio.
//!
//! `make bench`, which is `cargo bench -p sda-host --features native-operators --bench end_to_end`. Each run is the real binary,
//! `sda-pipeline run --report`, on a fresh folder: exactly-once, source deduplication on
//! `observation_id` (the last 100,000), checkpoints every 30 s to a local and a remote tier, the
//! sinks skipping what a replay owes them.
//! The scenario is generated once and kept under the target directory:
//!
//! - `SDA_BENCH_OBSERVATIONS` (default 1,000,000) observations of `SDA_BENCH_OBJECTS` (default 1,000)
//!   objects at the scenario's 10 s cadence; `SDA_BENCH_RUNS` (default 3) runs, median and spread.
//!   Every run's alerts are checked against the scenario's brute-force reference.
//! - The same with the operators built natively into the host (`native:correlator`,
//!   `native:classifier`, in a build with `--features native-operators`), for the native-vs-plugin
//!   ratio (`SDA_BENCH_NATIVE=0` skips it).
//! - The same observations as a real feed might write them, the fields in another order
//!   (`sensor_id` last) and three members of the feed's own first, through the plugins: throughput
//!   beside the generator's layout, alerts checked equal to its run's (`SDA_BENCH_REORDERED=0` skips
//!   it).
//! - Recovery: from the restart of a SIGKILLed run to its first record read.
//! - Checkpoint pauses with `SDA_BENCH_STATE_KEYS` (default 10^6; 0 skips it) keys of operator state.
//! - A long run of `SDA_BENCH_LONG_OBSERVATIONS` (default 10,000,000; 0 skips it), whose timeline
//!   of throughput and memory becomes `end_to_end.png`.
//!
//! Results go to `target/bench-results/end_to_end.json` (and the PNG beside it), or to
//! `SDA_BENCH_OUT`.

use sda_host::report::{RunReport, percentile};
use sda_scenario::GenerateOptions;
use sda_testkit::pipeline::quoted;
use sda_testkit::{PipelineToml, Scratch, plugins};
use serde::Serialize;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Observations per object per minute at the generator's default 10 s cadence.
const PER_OBJECT_MINUTE: usize = 6;

/// A generated scenario, kept between bench runs.
struct Scenario {
    observations: PathBuf,
    /// The alerts the pipeline must produce, as sorted `(alert_id, severity)` (none for the long run,
    /// which skips the reference).
    expected_alerts: Option<Vec<(String, String)>>,
    lines: usize,
}

fn scenario_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-scenarios")
}

/// The scenario of `objects` objects long enough for about `observations` lines, with its reference.
fn checked_scenario(objects: usize, observations: usize) -> Scenario {
    let minutes = observations.div_ceil(objects * PER_OBJECT_MINUTE) as u32;
    let path = scenario_dir().join(format!("{objects}x{minutes}min.jsonl"));
    let alerts = path.with_file_name(format!("{objects}x{minutes}min.expected-alerts.jsonl"));
    if !alerts.exists() {
        eprintln!("generating {} (with its brute-force reference)...", path.display());
        let options = GenerateOptions { objects, minutes, seed: 42, ..GenerateOptions::default() };
        sda_scenario::write_scenario(&path, &options, &|_, _| {}).expect("generating the scenario");
    }
    Scenario { lines: count_lines(&path), expected_alerts: Some(alert_set(&alerts)), observations: path }
}

/// A scenario without the reference (which would take minutes and gigabytes at 10^7).
fn long_scenario(objects: usize, observations: usize) -> Scenario {
    let minutes = observations.div_ceil(objects * PER_OBJECT_MINUTE) as u32;
    let path = scenario_dir().join(format!("{objects}x{minutes}min-unchecked.jsonl"));
    if !path.exists() {
        eprintln!("generating {}...", path.display());
        std::fs::create_dir_all(scenario_dir()).unwrap();
        let options = GenerateOptions { objects, minutes, seed: 42, ..GenerateOptions::default() };
        let scenario = sda_scenario::generate::generate(&options).expect("generating the scenario");
        let partial = path.with_extension("partial");
        let mut out = std::io::BufWriter::new(std::fs::File::create(&partial).unwrap());
        for line in &scenario.lines {
            out.write_all(line.as_bytes()).unwrap();
            out.write_all(b"\n").unwrap();
        }
        out.into_inner().unwrap().sync_all().unwrap();
        std::fs::rename(&partial, &path).unwrap();
    }
    Scenario { lines: count_lines(&path), expected_alerts: None, observations: path }
}

/// `scenario`'s observations rewritten as [`reordered_line`] writes them, beside it; its reference
/// alerts are the same. Written anew each time (a few seconds), so it never lags the rewrite.
fn reordered_scenario(scenario: &Scenario) -> Scenario {
    use std::io::BufRead as _;
    let stem = scenario.observations.file_stem().unwrap().to_string_lossy();
    let path = scenario.observations.with_file_name(format!("{stem}-reordered.jsonl"));
    let partial = path.with_extension("partial");
    let input = std::io::BufReader::new(std::fs::File::open(&scenario.observations).unwrap());
    let mut out = std::io::BufWriter::new(std::fs::File::create(&partial).unwrap());
    for (n, line) in input.lines().enumerate() {
        let line = line.unwrap();
        let rewritten = reordered_line(&line, n);
        // The layout changes, never what a line says (nor how it fails).
        let said = |text: &str| correlator::observation::parse(text.as_bytes()).map_err(|f| f.reason());
        assert_eq!(said(&rewritten), said(&line), "{line}\nrewritten as\n{rewritten}");
        out.write_all(rewritten.as_bytes()).unwrap();
        out.write_all(b"\n").unwrap();
    }
    out.into_inner().unwrap().sync_all().unwrap();
    std::fs::rename(&partial, &path).unwrap();
    Scenario { lines: count_lines(&path), expected_alerts: scenario.expected_alerts.clone(), observations: path }
}

/// `line` with `sensor_id` moved last and three members a feed might add put first: a string with
/// escapes, a nested object, a number. A line not shaped as an object (the scenario's broken ones)
/// is left as it is; one without `sensor_id` only gains the members.
fn reordered_line(line: &str, n: usize) -> String {
    let Some(body) = line.strip_prefix("{\"").and_then(|l| l.strip_suffix('}')) else {
        return line.to_string();
    };
    let extras = format!(r#""feed":"site \"north\"\tband {}","quality":{{"snr_db":{}.5,"flags":[true,null]}},"seq":{n},"#, n % 4, n % 30);
    const SENSOR: &str = ",\"sensor_id\":\"";
    let sensor = body.find(SENSOR).and_then(|at| Some((at, at + SENSOR.len() + body[at + SENSOR.len()..].find('"')? + 1)));
    match sensor {
        Some((at, end)) => format!("{{{extras}\"{}{}{}}}", &body[..at], &body[end..], &body[at..end]),
        None => format!("{{{extras}\"{body}}}"),
    }
}

fn count_lines(path: &Path) -> usize {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    bytes.iter().filter(|b| **b == b'\n').count()
}

/// The bench's pipeline.toml: the sample pipeline's shape and settings (see `pipeline.toml`), on `observations`.
fn pipeline_toml(observations: &Path, native: bool) -> String {
    let mut toml = PipelineToml::sample("end-to-end-bench")
        .top("guarantee", quoted("exactly-once"))
        .observations_file("observations", observations.display().to_string())
        // Repeats are re-sent within minutes: the last 100,000 observation ids (~17 min of this feed).
        .lines("sources.observations.dedup", "max_entries = 100000\nmax_age_ms = 3600000")
        .lines("operators.correlator.config", "window_ms = 60000\nallowed_lateness_ms = 10000\nscreening_km = 5.0")
        .lines("operators.classifier.config", "red_km = 1.0\nyellow_km = 5.0\nsuppress_ms = 600000")
        .lines("sinks.alerts.dedup", "max_entries = 1000000\nmax_age_ms = 3600000")
        .lines("checkpoint", "dir = \"out/checkpoints\"\nremote = \"out/checkpoints-remote\"\ninterval_ms = 30000\nkeep = 3");
    if native {
        toml = toml.set("operators.correlator", "plugin", quoted("native:correlator")).set(
            "operators.classifier",
            "plugin",
            quoted("native:classifier"),
        );
    }
    toml.to_string()
}

/// The alerts of a JSON Lines file as sorted `(alert_id, severity)`: what a run must equal.
fn alert_set(path: &Path) -> Vec<(String, String)> {
    let mut alerts: Vec<(String, String)> = sda_testkit::read_jsonl(path)
        .iter()
        .map(|a| (a["alert_id"].as_str().expect("an alert_id").to_string(), a["severity"].as_str().expect("a severity").to_string()))
        .collect();
    alerts.sort_unstable();
    alerts
}

/// One run of the release binary on a fresh folder; its report, and its alerts (lines, sorted).
fn run_once(scenario: &Scenario, native: bool) -> (RunReport, Vec<String>) {
    let scratch = Scratch::new();
    scratch.write("pipeline.toml", pipeline_toml(&scenario.observations, native));
    let report = run_in(&scratch);
    // A fast wrong answer is no result: the alerts must be the reference's.
    if let Some(expected) = &scenario.expected_alerts {
        let alerts = alert_set(&scratch.join("out/alerts.jsonl"));
        assert!(
            &alerts == expected,
            "the run's alerts are not the reference's: {} written, {} in the reference, {} of them missing, {} not in it",
            alerts.len(),
            expected.len(),
            expected.iter().filter(|a| alerts.binary_search(a).is_err()).count(),
            alerts.iter().filter(|a| expected.binary_search(a).is_err()).count()
        );
    }
    assert!(report.records_in > 0 && report.records_in as usize <= scenario.lines);
    let alerts = std::fs::read_to_string(scratch.join("out/alerts.jsonl")).expect("the run's alerts");
    let mut alerts: Vec<String> = alerts.lines().map(str::to_string).collect();
    alerts.sort_unstable();
    (report, alerts)
}

/// `sda-pipeline run pipeline.toml --quiet` in `scratch`, sharing the bench's compile cache.
fn sda_run(scratch: &Scratch) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sda-pipeline"));
    command
        .current_dir(scratch.path())
        .args(["run", "pipeline.toml", "--quiet"])
        .env("SDA_CACHE_DIR", Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache"));
    command
}

/// Runs `pipeline.toml` in `scratch`; its report.
fn run_in(scratch: &Scratch) -> RunReport {
    let report_path = scratch.join("report.json");
    let output = sda_run(scratch).arg("--report").arg(&report_path).output().expect("running sda-pipeline");
    assert!(
        output.status.success(),
        "the run failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&std::fs::read(&report_path).unwrap()).expect("a readable report")
}

/// How often the state-heavy run sees each key: the first pass fills the state, the others keep it full.
const STATE_HEAVY_PASSES: usize = 6;

/// Checkpoint pauses with `keys` keys of operator state: the counter plugin counts `keys` distinct
/// keys, then sees each [`STATE_HEAVY_PASSES`] - 1 times more, checkpointing every half second (a
/// run takes a few seconds). The pauses of the second half of the run are at full state; the
/// end-of-input checkpoint (written in the pause, as every last one is) is left out.
fn state_heavy_pauses(keys: usize) -> StateHeavy {
    let input = scenario_dir().join(format!("keys-{keys}x{STATE_HEAVY_PASSES}.jsonl"));
    if !input.exists() {
        std::fs::create_dir_all(scenario_dir()).unwrap();
        let partial = input.with_extension("partial");
        let mut out = std::io::BufWriter::new(std::fs::File::create(&partial).unwrap());
        for i in 0..STATE_HEAVY_PASSES * keys {
            writeln!(out, r#"{{"k":"key-{:09}","t":{}}}"#, i % keys, 1_700_000_000_000u64 + i as u64).unwrap();
        }
        out.into_inner().unwrap().sync_all().unwrap();
        std::fs::rename(&partial, &input).unwrap();
    }
    let scratch = Scratch::new();
    let toml = PipelineToml::new("state-heavy-bench")
        .top("guarantee", quoted("exactly-once"))
        .lines(
            "sources.keys",
            format!("type = \"file\"\npath = {}\nkey_field = \"k\"\nevent_time_field = \"t\"", quoted(input.display().to_string())),
        )
        .operator("counter", plugins::COUNTER, &["keys"])
        .set("operators.counter", "max_memory_bytes", 1_073_741_824u64)
        .file_sink("counts", &["counter"], "out/counts.jsonl")
        .set("sinks.counts.dedup", "max_entries", 10_000)
        .file_dlq("out/dlq.jsonl")
        .lines("checkpoint", "dir = \"out/checkpoints\"\ninterval_ms = 500");
    scratch.write("pipeline.toml", toml.to_string());
    let report = run_in(&scratch);
    let pauses = &report.checkpoint_pauses_ms;
    let at_full_state = &pauses[pauses.len() / 2..pauses.len().saturating_sub(1)];
    assert!(!at_full_state.is_empty(), "too few checkpoints: {pauses:?}");
    StateHeavy {
        keys,
        checkpoints: at_full_state.len(),
        pause_p50_ms: percentile(at_full_state, 0.5),
        pause_p99_ms: percentile(at_full_state, 0.99),
        final_checkpoint_ms: pauses.last().copied().unwrap_or(0.0),
        records_per_s: report.records_per_s,
    }
}

/// Seconds from a restart after SIGKILL to its first record read, on the 10^6 scenario: a run with a
/// checkpoint every 300 ms is killed once it has written one, well before the end of its input (the
/// whole scenario takes about two seconds), then restarted with a report sampled every 10 ms (the shortest
/// `--report-every` allows). (The time is counted from the start of `run`, process start-up before it excluded.)
fn recovery_s(scenario: &Scenario) -> f64 {
    let scratch = Scratch::new();
    let toml = pipeline_toml(&scenario.observations, false).replace("interval_ms = 30000", "interval_ms = 300");
    scratch.write("pipeline.toml", toml);
    let mut child =
        sda_run(&scratch).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().expect("running sda-pipeline");
    let folder = scratch.join("out/checkpoints/end-to-end-bench/observations-0");
    let started = std::time::Instant::now();
    while std::fs::read_dir(&folder)
        .map_or(0, |d| d.filter(|e| e.as_ref().is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".sdackpt"))).count())
        == 0
    {
        assert!(child.try_wait().unwrap().is_none(), "the run ended before its first checkpoint");
        assert!(started.elapsed() < std::time::Duration::from_secs(120), "no checkpoints within 2 minutes");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let report_path = scratch.join("report.json");
    let output =
        sda_run(&scratch).args(["--report-every", "0.01", "--report"]).arg(&report_path).output().expect("restarting sda-pipeline");
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && said.contains("resumed from checkpoint"),
        "the restart did not resume:\n{said}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: RunReport = serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    let first = report.timeline.iter().find(|s| s.records_in > 0);
    first.unwrap_or_else(|| panic!("the restart read no records (did the killed run get to the end of its input?):\n{said}")).at_s
}

#[derive(Serialize)]
struct StateHeavy {
    keys: usize,
    /// Checkpoints taken at full state.
    checkpoints: usize,
    pause_p50_ms: f64,
    pause_p99_ms: f64,
    /// The end-of-input checkpoint, encoded and written in the pause.
    final_checkpoint_ms: f64,
    records_per_s: f64,
}

/// `(median, lowest, highest)`.
fn spread(mut values: Vec<f64>) -> Spread {
    values.sort_by(f64::total_cmp);
    Spread { median: values[values.len() / 2], low: values[0], high: values[values.len() - 1] }
}

#[derive(Debug, Clone, Copy, Serialize)]
struct Spread {
    median: f64,
    low: f64,
    high: f64,
}

#[derive(Serialize)]
struct Figures {
    observations_per_s: Spread,
    peak_rss_mib: Spread,
    /// Pauses of the scheduled checkpoints (written in the background), if a run took any.
    checkpoint_pause_p50_ms: Option<Spread>,
    checkpoint_pause_p99_ms: Option<Spread>,
    scheduled_checkpoints_per_run: usize,
    /// The end-of-input checkpoint, encoded and written in the pause.
    final_checkpoint_ms: Spread,
}

/// A run's scheduled checkpoints' pauses: all but the last, the end-of-input one.
fn scheduled(report: &RunReport) -> &[f64] {
    let pauses = &report.checkpoint_pauses_ms;
    &pauses[..pauses.len().saturating_sub(1)]
}

impl Figures {
    fn of(reports: &[RunReport]) -> Figures {
        let pick = |f: &dyn Fn(&RunReport) -> Option<f64>| {
            let values: Vec<f64> = reports.iter().filter_map(f).collect();
            (!values.is_empty()).then(|| spread(values))
        };
        Figures {
            observations_per_s: spread(reports.iter().map(|r| r.records_per_s).collect()),
            peak_rss_mib: spread(reports.iter().map(|r| r.peak_rss_bytes.unwrap_or(0) as f64 / MIB).collect()),
            checkpoint_pause_p50_ms: pick(&|r| (!scheduled(r).is_empty()).then(|| percentile(scheduled(r), 0.5))),
            checkpoint_pause_p99_ms: pick(&|r| (!scheduled(r).is_empty()).then(|| percentile(scheduled(r), 0.99))),
            scheduled_checkpoints_per_run: reports.iter().map(|r| scheduled(r).len()).max().unwrap_or(0),
            final_checkpoint_ms: spread(reports.iter().map(|r| r.checkpoint_pauses_ms.last().copied().unwrap_or(0.0)).collect()),
        }
    }

    fn print(&self, label: &str) {
        let o = self.observations_per_s;
        let m = self.peak_rss_mib;
        println!("  {label:<28} {:>9.0} observations/s (runs {:.0} to {:.0})", o.median, o.low, o.high);
        println!("  {:<28} peak RSS {:.0} MiB (runs {:.0} to {:.0})", "", m.median, m.low, m.high);
        match (self.checkpoint_pause_p50_ms, self.checkpoint_pause_p99_ms) {
            (Some(p50), Some(p99)) => println!(
                "  {:<28} checkpoint pause p50 {:.1} ms, p99 {:.1} ms (medians over runs; {} scheduled checkpoints a run)",
                "", p50.median, p99.median, self.scheduled_checkpoints_per_run
            ),
            _ => println!("  {:<28} no scheduled checkpoint (the run is shorter than the 30 s interval)", ""),
        }
        println!("  {:<28} end-of-input checkpoint, written in the pause: {:.0} ms", "", self.final_checkpoint_ms.median);
    }
}

const MIB: f64 = 1024.0 * 1024.0;

#[derive(Serialize)]
struct Summary {
    objects: usize,
    observations: usize,
    runs: usize,
    plugins: Figures,
    /// The same observations with the fields in another order and other members.
    reordered: Option<Figures>,
    /// Reordered observations/s over the generator's layout's (medians): 1.0 means field order costs nothing.
    reordered_over_canonical: Option<f64>,
    native: Option<Figures>,
    /// Native observations/s over the plugins' (medians): 1.0 means no cost for the sandbox.
    native_over_plugin: Option<f64>,
    /// From a restart after SIGKILL to the first record read, seconds.
    recovery_s: Spread,
    state_heavy: Option<StateHeavy>,
    long_run: Option<LongRun>,
}

#[derive(Serialize)]
struct LongRun {
    observations: usize,
    report: RunReport,
    chart: Option<PathBuf>,
}

fn main() {
    // `cargo bench` passes `--bench`; filters are not supported (use the environment variables).
    let objects: usize = env_or("SDA_BENCH_OBJECTS", 1000);
    let observations: usize = env_or("SDA_BENCH_OBSERVATIONS", 1_000_000);
    let runs: usize = env_or("SDA_BENCH_RUNS", 3).max(1);
    let native: bool = env_or("SDA_BENCH_NATIVE", 1) != 0;
    let reordered: bool = env_or("SDA_BENCH_REORDERED", 1) != 0;
    // The bench and the binary are built with the same features.
    let native_built = !sda_host::runtime::native::available().is_empty();
    let long_observations: usize = env_or("SDA_BENCH_LONG_OBSERVATIONS", 10_000_000);
    let out_dir = std::env::var_os("SDA_BENCH_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("../bench-results"));
    std::fs::create_dir_all(&out_dir).unwrap();

    let scenario = checked_scenario(objects, observations);
    println!(
        "file -> correlator -> classifier -> file, exactly-once, dedup on, checkpoints every 30 s: {} observations of {objects} objects, \
            {runs} runs",
        scenario.lines
    );
    let (plugin_reports, plugin_alerts): (Vec<RunReport>, Vec<Vec<String>>) = (0..runs).map(|_| run_once(&scenario, false)).unzip();
    let plugin_figures = Figures::of(&plugin_reports);
    plugin_figures.print("as plugins (wasm)");
    let reordered_figures = reordered.then(|| {
        let other = reordered_scenario(&scenario);
        let reports: Vec<RunReport> = (0..runs)
            .map(|_| {
                let (report, alerts) = run_once(&other, false);
                // Not only as many alerts as the reference: the very alerts of the generator's layout.
                assert!(
                    alerts == plugin_alerts[0],
                    "the reordered observations gave other alerts ({}) than the generator's layout ({})",
                    alerts.len(),
                    plugin_alerts[0].len()
                );
                report
            })
            .collect();
        let figures = Figures::of(&reports);
        figures.print("reordered + 3 members");
        figures
    });
    let reordered_ratio = reordered_figures.as_ref().map(|r| r.observations_per_s.median / plugin_figures.observations_per_s.median);
    if let Some(ratio) = reordered_ratio {
        println!("  reordered / generator's layout throughput: {ratio:.2}x");
    }
    if native && !native_built {
        println!("  (no native run: this build lacks them; `make bench` builds with `--features native-operators`)");
    }
    let native_figures = (native && native_built).then(|| {
        let reports: Vec<RunReport> = (0..runs).map(|_| run_once(&scenario, true).0).collect();
        let figures = Figures::of(&reports);
        figures.print("natively in the host");
        figures
    });
    let ratio = native_figures.as_ref().map(|n| n.observations_per_s.median / plugin_figures.observations_per_s.median);
    if let Some(ratio) = ratio {
        println!("  native / plugin throughput: {ratio:.2}x");
    }

    let recovery = spread((0..runs).map(|_| recovery_s(&scenario)).collect());
    println!(
        "recovery: first record read {:.0} ms after the restart of a SIGKILLed run (runs {:.0} to {:.0} ms)",
        recovery.median * 1e3,
        recovery.low * 1e3,
        recovery.high * 1e3
    );

    let state_keys: usize = env_or("SDA_BENCH_STATE_KEYS", 1_000_000);
    let state_heavy = (state_keys > 0).then(|| {
        let s = state_heavy_pauses(state_keys);
        println!(
            "checkpoint pause with {} keys of operator state (counter plugin, a checkpoint every 500 ms): p50 {:.1} ms, p99 {:.1} ms over \
                {} checkpoints; the final one (written in the pause) {:.0} ms",
            s.keys, s.pause_p50_ms, s.pause_p99_ms, s.checkpoints, s.final_checkpoint_ms
        );
        s
    });

    let long_run = (long_observations > 0).then(|| {
        let long = long_scenario(objects, long_observations);
        println!("long run: {} observations", long.lines);
        let (report, _) = run_once(&long, false);
        let peak = report.peak_rss_bytes.unwrap_or(0) as f64 / MIB;
        println!("  {:.0} observations/s, peak RSS {peak:.0} MiB, {} checkpoints", report.records_per_s, report.checkpoint_pauses_ms.len());
        let pauses = scheduled(&report);
        if !pauses.is_empty() {
            println!(
                "  scheduled checkpoints: {}, pause p50 {:.1} ms, p99 {:.1} ms; end-of-input checkpoint {:.0} ms",
                pauses.len(),
                percentile(pauses, 0.5),
                percentile(pauses, 0.99),
                report.checkpoint_pauses_ms.last().copied().unwrap_or(0.0)
            );
        }
        let chart = out_dir.join("end_to_end.png");
        let chart = match chart::draw(&report, &chart) {
            Ok(()) => Some(chart),
            Err(e) => {
                println!("  no chart: {e}");
                None
            }
        };
        LongRun { observations: long.lines, report, chart }
    });

    let summary = Summary {
        objects,
        observations: scenario.lines,
        runs,
        plugins: plugin_figures,
        reordered: reordered_figures,
        reordered_over_canonical: reordered_ratio,
        native: native_figures,
        native_over_plugin: ratio,
        recovery_s: recovery,
        state_heavy,
        long_run,
    };
    let json_path = out_dir.join("end_to_end.json");
    std::fs::write(&json_path, serde_json::to_vec_pretty(&summary).unwrap()).unwrap();
    println!("summary: {}", json_path.display());
    if let Some(chart) = summary.long_run.as_ref().and_then(|l| l.chart.as_ref()) {
        println!("chart:   {}", chart.display());
    }
}

/// The long run's timeline as a PNG: observations/s (over each second) and resident memory.
mod chart {
    use plotters::prelude::*;
    use sda_host::report::RunReport;
    use std::path::Path;

    /// Text needs a TrueType font; DejaVu Sans is on most Linux machines.
    const FONTS: &[&str] = &["/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/usr/share/fonts/TTF/DejaVuSans.ttf"];

    pub fn draw(report: &RunReport, path: &Path) -> Result<(), String> {
        let font = FONTS.iter().find_map(|f| std::fs::read(f).ok()).ok_or_else(|| format!("no font found (looked for {FONTS:?})"))?;
        plotters::style::register_font("sans-serif", FontStyle::Normal, Box::leak(font.into_boxed_slice()))
            .map_err(|_| "the font could not be read".to_string())?;
        let rates = rates_per_second(report);
        let memory: Vec<(f64, f64)> = report.timeline.iter().map(|s| (s.at_s, s.rss_bytes as f64 / super::MIB)).collect();
        let end = report.timeline.last().map_or(1.0, |s| s.at_s).max(1.0);
        let top_rate = rates.iter().map(|r| r.1).fold(1.0, f64::max) * 1.1;
        let top_memory = memory.iter().map(|m| m.1).fold(1.0, f64::max) * 1.1;

        let root = BitMapBackend::new(path, (1200, 800)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let title = format!(
            "{} observations, exactly-once: {:.0} obs/s overall, peak RSS {:.0} MiB",
            report.records_in,
            report.records_per_s,
            report.peak_rss_bytes.unwrap_or(0) as f64 / super::MIB
        );
        let root = root.titled(&title, ("sans-serif", 24)).map_err(|e| e.to_string())?;
        let (upper, lower) = root.split_vertically(480);
        let mut rate_chart = ChartBuilder::on(&upper)
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(90)
            .build_cartesian_2d(0.0..end, 0.0..top_rate)
            .map_err(|e| e.to_string())?;
        rate_chart
            .configure_mesh()
            .x_desc("seconds since start")
            .y_desc("observations/s")
            .y_label_formatter(&|v| format!("{:.0}k", v / 1000.0))
            .draw()
            .map_err(|e| e.to_string())?;
        rate_chart.draw_series(LineSeries::new(rates, &BLUE)).map_err(|e| e.to_string())?;
        let mut memory_chart = ChartBuilder::on(&lower)
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(90)
            .build_cartesian_2d(0.0..end, 0.0..top_memory)
            .map_err(|e| e.to_string())?;
        memory_chart.configure_mesh().x_desc("seconds since start").y_desc("resident memory, MiB").draw().map_err(|e| e.to_string())?;
        memory_chart.draw_series(LineSeries::new(memory, &RED)).map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())
    }

    /// Observations/s over consecutive windows of about a second, at each window's end.
    fn rates_per_second(report: &RunReport) -> Vec<(f64, f64)> {
        let mut rates = Vec::new();
        let mut from = match report.timeline.first() {
            Some(first) => *first,
            None => return rates,
        };
        for sample in &report.timeline[1..] {
            let dt = sample.at_s - from.at_s;
            if dt >= 1.0 {
                rates.push((sample.at_s, (sample.records_in - from.records_in) as f64 / dt));
                from = *sample;
            }
        }
        rates
    }
}
