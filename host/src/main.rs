//! `sda-pipeline`: the command line: run a pipeline, validate or explain its `pipeline.toml`, read and re-inject its dead letters.

mod admin_cli;
mod dlq_cli;

use anyhow::Context as _;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use sda_host::graph::{NodeRef, Plan, PlanError, SinkKind, SourceKind};
use sda_host::pipeline::{self, RunOptions, RunSummary};
use sda_host::report::{RunReport, Sampler};
use sda_host::runtime::{CompileSource, Runtime};
use sda_host::stats::Stats;
use sda_host::task::Shutdown;
use sda_scenario::generate::{KmRange, OrbitMix};
use sda_scenario::{ClassifierConfig, CorrelatorConfig, GenerateOptions};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Exit code for a pipeline file with problems (nothing was run).
const EXIT_INVALID: u8 = 2;

#[derive(Parser)]
#[command(
    name = "sda-pipeline",
    version,
    about = "Run a conjunction-alert pipeline of WebAssembly operators, exactly once.",
    long_about = "Run a conjunction-alert pipeline of WebAssembly operators, exactly once.\n\n\
        The pipeline is declared in a `pipeline.toml`: sources, operators (plugins built for \
        wasm32-wasip2 against `sda-guest`), sinks and a dead-letter queue.\n\n\
        Logs go to stderr; set SDA_LOG (e.g. `SDA_LOG=debug`, `SDA_LOG=sda::plugin=warn`) to choose what is shown."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a pipeline until its input ends (or Ctrl-C), then print a summary.
    Run {
        /// The pipeline file.
        #[arg(default_value = "pipeline.toml")]
        file: PathBuf,
        /// Keep following file sources as they grow, instead of stopping at their end.
        #[arg(long)]
        follow: bool,
        /// Never draw the live progress line.
        #[arg(long)]
        quiet: bool,
        /// Start from the beginning of the input even though checkpoints exist
        /// and none of them can be restored (the reasons are printed).
        #[arg(long)]
        allow_fresh_start: bool,
        /// Kafka sources: stop once this process has read every partition of
        /// the topic to its end (closing every window, as at the end of a
        /// file), instead of waiting for more.
        #[arg(long)]
        stop_at_end: bool,
        /// Apply edits of the pipeline file while running: a new plugin is hot-swapped, a changed
        /// `config` re-inits the operator with its state kept, rewiring rebuilds the graph after a
        /// checkpoint. A file with problems, or a change only a restart can make, is refused and logged.
        #[arg(long)]
        watch: bool,
        /// Drop the state checkpoints keep of operator NAME, which the pipeline no longer has
        /// (kept until then, so that putting the operator back restores it). Repeatable.
        #[arg(long, value_name = "NAME")]
        drop_state: Vec<String>,
        /// At the end, write the run's figures to FILE as JSON: records/s, peak memory, checkpoint
        /// pauses (p50, p99, each one) and a timeline of records read and memory held, sampled
        /// every SECONDS of `--report-every`.
        #[arg(long, value_name = "FILE")]
        report: Option<PathBuf>,
        /// How often `--report`'s timeline is sampled, in seconds.
        #[arg(long, value_name = "SECONDS", default_value_t = 0.25, requires = "report", value_parser = sampling_interval_s)]
        report_every: f64,
    },
    /// Check a pipeline file and report every problem in it, with its line and column.
    Validate {
        /// The pipeline file.
        #[arg(default_value = "pipeline.toml")]
        file: PathBuf,
    },
    /// Print the graph a pipeline file describes, with each plugin's digest and WIT version.
    Plan {
        /// The pipeline file.
        #[arg(default_value = "pipeline.toml")]
        file: PathBuf,
        /// Compare FILE (the old version) with NEW, and print what `run --watch` would do for each change.
        #[arg(long, value_name = "NEW")]
        diff: Option<PathBuf>,
    },
    /// Generate a realistic observation scenario, and the alerts the pipeline must produce from it.
    ///
    /// Writes OUT (observations, JSON Lines) and beside it `<stem>.expected-alerts.jsonl` and
    /// `<stem>.expected-candidates.jsonl` (from an independent brute-force reference of the
    /// correlator and classifier) and `<stem>.scenario.json` (options, counts, what was planted).
    /// The same options and seed always give the same files.
    ///
    /// Catalogue-sized scenarios: `--sparse` observes each object a few times an hour (and is
    /// written as it is generated, in memory that grows with the objects only), and
    /// `--no-reference` skips the brute-force reference, which is quadratic in the objects per
    /// window: `gen --objects 1000000 --minutes 120 --sparse --no-reference --out big.jsonl`
    /// takes a minute or two. Check such a run with `sda_scenario::check`.
    Gen(Box<GenArgs>),
    /// List, inspect and verify checkpoints.
    #[command(subcommand)]
    Checkpoint(CheckpointCommand),
    /// Read the dead-letter queue: list entries, show one in full, count them by kind, operator and hour.
    #[command(subcommand)]
    Dlq(dlq_cli::DlqCommand),
    /// Re-inject dead letters into the source they came from, once (also installed as `sda-reprocess`).
    Reprocess(Box<dlq_cli::ReprocessArgs>),
    /// Replace an operator's plugin in the running pipeline, its state carried over (through the admin endpoint).
    ///
    /// Every task that runs the operator switches at a batch boundary, or none does: a plugin that
    /// does not compile, whose `init` rejects the operator's config or whose `restore` refuses the
    /// running state leaves the old one running, and the error says which step failed. The swap
    /// survives a restart (the host keeps a copy of the plugin beside its checkpoints) until
    /// pipeline.toml is edited to name another plugin.
    Swap(Box<admin_cli::SwapArgs>),
    /// Show a running pipeline's health, tasks and operators (plugin digest, WIT and state versions, swaps).
    Status(admin_cli::StatusArgs),
}

#[derive(Subcommand)]
enum CheckpointCommand {
    /// List every task's checkpoints in both tiers of a pipeline, newest first, each checked.
    Ls {
        /// The pipeline file (its `[checkpoint]` says where to look).
        #[arg(default_value = "pipeline.toml")]
        file: PathBuf,
    },
    /// Show what one checkpoint file holds, in readable form.
    Inspect {
        /// A checkpoint file (`.sdackpt`).
        checkpoint: PathBuf,
    },
    /// Verify every checkpoint in a folder tree or a remote tier URL (`s3://...`, `file://...`).
    /// Exits with 1 if any is damaged.
    Verify {
        /// A folder or a URL.
        location: String,
    },
}

#[derive(clap::Args)]
struct GenArgs {
    /// Objects in the scenario, planted ones included.
    #[arg(long, default_value_t = GenerateOptions::default().objects)]
    objects: usize,
    /// Length of the scenario, in minutes.
    #[arg(long, default_value_t = GenerateOptions::default().minutes)]
    minutes: u32,
    /// Seed of every random choice.
    #[arg(long, default_value_t = GenerateOptions::default().seed)]
    seed: u64,
    /// Where to write the observations.
    #[arg(long)]
    out: PathBuf,
    /// First epoch, Unix milliseconds.
    #[arg(long, default_value_t = GenerateOptions::default().start_ms)]
    start_ms: i64,
    /// Each object is observed once per cadence (without --sparse).
    #[arg(long, default_value_t = GenerateOptions::default().cadence_ms)]
    cadence_ms: i64,
    /// Observation times move by up to this much either way (without --sparse).
    #[arg(long, default_value_t = GenerateOptions::default().jitter_ms)]
    jitter_ms: i64,
    /// A catalogue's cadence: each object seen a few times an hour, at random gaps, by a few
    /// sensors, instead of once per --cadence-ms. Streams the observations to OUT as they are made.
    #[arg(long)]
    sparse: bool,
    /// With --sparse: mean time between two observations of an object (before the --max-gap-ms cap).
    #[arg(long, requires = "sparse", default_value_t = sda_scenario::SparseCadence::default().mean_gap_ms)]
    mean_gap_ms: i64,
    /// With --sparse: shortest time between two observations of an object; gaps are this plus a
    /// random exponential part.
    #[arg(long, requires = "sparse", default_value_t = sda_scenario::SparseCadence::default().min_gap_ms)]
    min_gap_ms: i64,
    /// With --sparse: longest time between two observations of an object.
    #[arg(long, requires = "sparse", default_value_t = sda_scenario::SparseCadence::default().max_gap_ms)]
    max_gap_ms: i64,
    /// With --sparse: how many sensors (of 8 radars for LEO, 5 telescopes above) see each object.
    #[arg(long, requires = "sparse", default_value_t = sda_scenario::SparseCadence::default().sensors_per_object)]
    sensors_per_object: usize,
    /// Skip the brute-force reference: write the observations and `<stem>.scenario.json` (with the
    /// planted pairs) only, and remove expected files an earlier run left. The way to make large
    /// scenarios: the reference is quadratic in the objects per window.
    #[arg(long)]
    no_reference: bool,
    /// Weights of the orbit regimes of background objects, as `leo=0.8,meo=0.08,geo=0.07,heo=0.05`.
    #[arg(long, value_parser = parse_orbit_mix)]
    orbit_mix: Option<OrbitMix>,
    /// Pairs planted to pass close to each other.
    #[arg(long, default_value_t = GenerateOptions::default().conjunctions)]
    conjunctions: usize,
    /// Intended miss distances of planted conjunctions, `MIN..MAX` km.
    #[arg(long, value_parser = parse_km_range)]
    conjunction_miss_km: Option<KmRange>,
    /// Fraction of planted conjunctions whose closest approach is on a window boundary.
    #[arg(long, default_value_t = GenerateOptions::default().edge_tca_fraction)]
    edge_tca_fraction: f64,
    /// Pairs flying a few km apart for the whole scenario (exercises suppression).
    #[arg(long, default_value_t = GenerateOptions::default().formations)]
    formations: usize,
    /// Separations of formation pairs, `MIN..MAX` km.
    #[arg(long, value_parser = parse_km_range)]
    formation_separation_km: Option<KmRange>,
    /// Fraction of formations drifting from YELLOW into RED range (exercises escalation).
    #[arg(long, default_value_t = GenerateOptions::default().escalating_formation_fraction)]
    escalating_formation_fraction: f64,
    /// Percent of observations delivered out of order, within the allowed lateness.
    #[arg(long, default_value_t = GenerateOptions::default().out_of_order_pct)]
    out_of_order_pct: f64,
    /// Percent of observations delivered after their window closed.
    #[arg(long, default_value_t = GenerateOptions::default().late_pct)]
    late_pct: f64,
    /// Percent of observations delivered twice.
    #[arg(long, default_value_t = GenerateOptions::default().duplicate_pct)]
    duplicate_pct: f64,
    /// Malformed lines added, as a percent of the observations.
    #[arg(long, default_value_t = GenerateOptions::default().malformed_pct)]
    malformed_pct: f64,
    /// The correlator's window length (must match the pipeline's correlator config).
    #[arg(long, default_value_t = CorrelatorConfig::default().window_ms)]
    window_ms: i64,
    /// The correlator's allowed lateness.
    #[arg(long, default_value_t = CorrelatorConfig::default().allowed_lateness_ms)]
    allowed_lateness_ms: i64,
    /// The correlator's screening distance, km.
    #[arg(long, default_value_t = CorrelatorConfig::default().screening_km)]
    screening_km: f64,
    /// The correlator's catalogue mode: how long an object's last state is carried into later
    /// windows (0: windowed mode). Defaults to 0, or to --max-gap-ms with --sparse, so that no
    /// object drops out of the catalogue between two observations.
    #[arg(long)]
    state_horizon_ms: Option<i64>,
    /// The classifier's RED threshold, km.
    #[arg(long, default_value_t = ClassifierConfig::default().red_km)]
    red_km: f64,
    /// The classifier's YELLOW threshold, km.
    #[arg(long, default_value_t = ClassifierConfig::default().yellow_km)]
    yellow_km: f64,
    /// The classifier's suppression time.
    #[arg(long, default_value_t = ClassifierConfig::default().suppress_ms)]
    suppress_ms: i64,
}

fn parse_km_range(text: &str) -> Result<KmRange, String> {
    let (min, max) = text.split_once("..").ok_or_else(|| format!("`{text}` is not a range like `0.2..4.5`"))?;
    let number = |t: &str| t.trim().parse::<f64>().map_err(|_| format!("`{t}` is not a number of km"));
    Ok(KmRange { min_km: number(min)?, max_km: number(max)? })
}

fn parse_orbit_mix(text: &str) -> Result<OrbitMix, String> {
    let mut mix = OrbitMix { leo: 0.0, meo: 0.0, geo: 0.0, heo: 0.0 };
    for part in text.split(',') {
        let (name, weight) = part.split_once('=').ok_or_else(|| format!("`{part}` is not like `leo=0.8`"))?;
        let weight: f64 = weight.trim().parse().map_err(|_| format!("`{weight}` is not a number"))?;
        match name.trim() {
            "leo" => mix.leo = weight,
            "meo" => mix.meo = weight,
            "geo" => mix.geo = weight,
            "heo" => mix.heo = weight,
            other => return Err(format!("unknown regime `{other}`: the regimes are leo, meo, geo, heo")),
        }
    }
    Ok(mix)
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    if let Err(refusal) = refuse_reversed_diff(&matches) {
        refusal.exit();
    }
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if prints_only(&cli.command) {
        stop_quietly_on_a_closed_pipe();
    }
    init_logging();
    let result = match cli.command {
        Command::Run { file, follow, quiet, allow_fresh_start, stop_at_end, watch, drop_state, report, report_every } => {
            let report = report.map(|path| (path, Duration::from_secs_f64(report_every)));
            run(&file, RunOptions { follow, allow_fresh_start, stop_at_end, drop_state, ..RunOptions::default() }, quiet, watch, report)
        }
        Command::Validate { file } => validate(&file),
        Command::Plan { file, diff: Some(new) } => show_diff(&file, &new),
        Command::Plan { file, diff: None } => show_plan(&file),
        Command::Gen(args) => generate(&args),
        Command::Checkpoint(command) => checkpoint_command(command),
        Command::Dlq(command) => dlq_cli::dlq_command(command),
        Command::Reprocess(args) => dlq_cli::reprocess_command(&args),
        Command::Swap(args) => admin_cli::swap_command(&args),
        Command::Status(args) => admin_cli::status_command(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            finish_progress();
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Whether a subcommand only reads and prints (its output may well be piped to `head`), as opposed
/// to running a pipeline or talking to one, which must never die of a peer's closed connection.
fn prints_only(command: &Command) -> bool {
    matches!(command, Command::Validate { .. } | Command::Plan { .. } | Command::Checkpoint(_) | Command::Dlq(_) | Command::Gen(_))
}

/// Rust ignores SIGPIPE, so `println!` to a pipe whose reader has gone (`... | head`) panics with
/// "Broken pipe" (exit 101). A command that only prints takes the signal's default back and ends
/// quietly, as other command-line tools do.
fn stop_quietly_on_a_closed_pipe() {
    // SAFETY: `signal` with `SIG_DFL` installs no handler of ours; it runs before any other thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// `plan --diff OLD NEW` reads as `plan NEW --diff OLD`, the diff reversed: the old file must come
/// first, before `--diff`.
fn refuse_reversed_diff(matches: &clap::ArgMatches) -> Result<(), clap::Error> {
    let Some(("plan", plan)) = matches.subcommand() else { return Ok(()) };
    let given_file = plan.value_source("file") == Some(clap::parser::ValueSource::CommandLine);
    match (plan.index_of("diff"), plan.index_of("file")) {
        (Some(diff), Some(file)) if given_file && file > diff => Err(Cli::command().error(
            clap::error::ErrorKind::ArgumentConflict,
            "the old file comes first: `sda-pipeline plan OLD --diff NEW` (`plan --diff OLD NEW` would compare NEW to OLD, the diff reversed)",
        )),
        _ => Ok(()),
    }
}

/// `--report-every`: a number of seconds from 0.01 to a day (`inf`, NaN and negatives are refused
/// here rather than panic later in `Duration`).
fn sampling_interval_s(text: &str) -> Result<f64, String> {
    let seconds: f64 = text.trim().parse().map_err(|_| format!("`{text}` is not a number of seconds"))?;
    if (0.01..=86_400.0).contains(&seconds) {
        Ok(seconds)
    } else {
        Err(format!("{text} s is out of range: sample between every 0.01 s and every 86400 s (a day)"))
    }
}

/// Loads a plan, printing its problems (and returning the exit code) if it has any.
fn load_plan(file: &Path) -> Result<Result<Plan, ExitCode>, anyhow::Error> {
    match Plan::load(file) {
        Ok(plan) => {
            for warning in &plan.warnings {
                eprintln!("warning: {warning}");
            }
            Ok(Ok(plan))
        }
        Err(PlanError::Invalid(problems)) => {
            eprintln!("{problems}");
            Ok(Err(ExitCode::from(EXIT_INVALID)))
        }
        Err(e @ PlanError::Read { .. }) => {
            eprintln!("error: {e}");
            Ok(Err(ExitCode::from(EXIT_INVALID)))
        }
    }
}

fn validate(file: &Path) -> anyhow::Result<ExitCode> {
    let plan = match load_plan(file)? {
        Ok(plan) => plan,
        Err(code) => return Ok(code),
    };
    println!(
        "`{}` is valid: pipeline `{}` with {} source{}, {} operator{} and {} sink{}",
        file.display(),
        plan.name,
        plan.sources.len(),
        plural(plan.sources.len()),
        plan.operators.len(),
        plural(plan.operators.len()),
        plan.sinks.len(),
        plural(plan.sinks.len()),
    );
    Ok(ExitCode::SUCCESS)
}

fn show_plan(file: &Path) -> anyhow::Result<ExitCode> {
    let plan = match load_plan(file)? {
        Ok(plan) => plan,
        Err(code) => return Ok(code),
    };
    let mut out = String::new();
    use std::fmt::Write as _;
    writeln!(out, "pipeline `{}` ({}), batch size {}", plan.name, file.display(), plan.batch_size)?;
    writeln!(out, "\nsources")?;
    for s in &plan.sources {
        match &s.kind {
            SourceKind::File(f) => {
                write!(out, "  {}  file {}", s.name, f.path.display())?;
                if let Some(k) = &f.key_field {
                    write!(out, ", key from `{k}`")?;
                }
                if let Some(t) = &f.event_time_field {
                    write!(out, ", event time from `{t}`")?;
                }
                if f.follow {
                    write!(out, ", followed")?;
                }
            }
            SourceKind::Kafka(k) => {
                write!(out, "  {}  kafka://{}/{}, group `{}`, key from the record key", s.name, k.brokers, k.topic, k.group_id)?;
                if let Some(t) = &k.event_time_field {
                    write!(out, ", event time from `{t}`")?;
                }
            }
        }
        writeln!(out)?;
    }
    writeln!(out, "\noperators, in execution order")?;
    for op in &plan.operators {
        let inputs: Vec<&str> = op.inputs.iter().map(|&n| plan.node_name(n)).collect();
        writeln!(out, "  {}  <- {}", op.name, inputs.join(", "))?;
        writeln!(out, "      plugin  {}", op.plugin.path.display())?;
        writeln!(out, "      digest  {}", op.plugin.digest)?;
        writeln!(out, "      WIT     sda:operator@{}", op.plugin.wit_version)?;
        if op.parallelism > 1 {
            writeln!(out, "      shards  {} instances, each screening its share (`parallelism`)", op.parallelism)?;
        }
        writeln!(
            out,
            "      limits  memory {} MiB, timeouts {} ms per call, {} ms per watermark, {} ms per snapshot, {} retries from {} ms",
            op.limits.max_memory_bytes / (1024 * 1024),
            op.limits.call_timeout.as_millis(),
            op.limits.watermark_timeout.as_millis(),
            op.limits.state_timeout.as_millis(),
            op.retry.max_retries,
            op.retry.backoff.as_millis()
        )?;
        writeln!(out, "      config  {}", op.config_json)?;
    }
    writeln!(out, "\nsinks")?;
    for s in &plan.sinks {
        let inputs: Vec<&str> = s.inputs.iter().map(|&n| plan.node_name(n)).collect();
        let how = match &s.kind {
            SinkKind::File { .. } => "file",
            SinkKind::Kafka(k) if k.transactional => "kafka, transactional",
            SinkKind::Kafka(_) => "kafka",
            SinkKind::Postgres(_) => "postgres",
        };
        writeln!(out, "  {}  <- {}  {how} {}", s.name, inputs.join(", "), s.kind.describe())?;
    }
    writeln!(out, "\ndead-letter queue: {}", plan.dlq.describe())?;
    writeln!(out, "\ngraph")?;
    for line in graph_lines(&plan) {
        writeln!(out, "  {line}")?;
    }
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

/// The graph as chains `a -> b -> c`: a chain continues while a node has one
/// consumer that has one input; other edges start chains of their own.
fn graph_lines(plan: &Plan) -> Vec<String> {
    #[derive(Clone, Copy, PartialEq)]
    enum Node {
        Flow(NodeRef),
        Sink(usize),
    }
    let consumers = |n: NodeRef| -> Vec<(Node, usize)> {
        let ops = plan
            .operators
            .iter()
            .enumerate()
            .filter(|(_, o)| o.inputs.contains(&n))
            .map(|(i, o)| (Node::Flow(NodeRef::Operator(i)), o.inputs.len()));
        let sinks = plan.sinks.iter().enumerate().filter(|(_, s)| s.inputs.contains(&n)).map(|(i, s)| (Node::Sink(i), s.inputs.len()));
        ops.chain(sinks).collect()
    };
    let name = |n: Node| match n {
        Node::Flow(r) => plan.node_name(r).to_string(),
        Node::Sink(i) => format!("{} (sink)", plan.sinks[i].name),
    };
    let mut lines = Vec::new();
    let mut starts: Vec<Node> = (0..plan.sources.len()).map(|i| Node::Flow(NodeRef::Source(i))).collect();
    let mut seen_starts = Vec::new();
    while let Some(start) = starts.pop() {
        if seen_starts.contains(&start) {
            continue;
        }
        seen_starts.push(start);
        let mut chain = vec![name(start)];
        let mut at = start;
        while let Node::Flow(r) = at {
            let next = consumers(r);
            match next.as_slice() {
                [(only, 1)] => {
                    chain.push(name(*only));
                    at = *only;
                }
                _ => {
                    for (n, _) in next {
                        lines.push(format!("{} -> {}", plan.node_name(r), name(n)));
                        starts.push(n);
                    }
                    break;
                }
            }
        }
        if chain.len() > 1 {
            lines.push(chain.join(" -> "));
        }
    }
    lines.sort();
    lines.dedup();
    lines
}

fn checkpoint_command(command: CheckpointCommand) -> anyhow::Result<ExitCode> {
    use sda_host::checkpoint::{format::Checkpoint, remote::RemoteTier};
    match command {
        CheckpointCommand::Inspect { checkpoint } => {
            let bytes = std::fs::read(&checkpoint).with_context(|| format!("reading `{}`", checkpoint.display()))?;
            match Checkpoint::decode(&bytes) {
                Ok(c) => {
                    print!("{}", describe_checkpoint(&c, bytes.len()));
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("error: `{}` is not a usable checkpoint: {e}", checkpoint.display());
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        CheckpointCommand::Ls { file } => {
            let plan = match load_plan(&file)? {
                Ok(plan) => plan,
                Err(code) => return Ok(code),
            };
            let mut out = String::new();
            use std::fmt::Write as _;
            writeln!(out, "local tier: {}", plan.checkpoint.dir.display())?;
            list_local(&mut out, &plan.checkpoint.dir.join(&plan.name))?;
            // The local listing is printed before the remote tier is asked: an unreachable remote
            // tier must not hide what is on this machine.
            print!("{out}");
            let Some(url) = &plan.checkpoint.remote else { return Ok(ExitCode::SUCCESS) };
            let listed = (|| -> anyhow::Result<String> {
                let tier = RemoteTier::from_url(url, &plan.base_dir)?;
                let mut out = format!("remote tier: {}\n", tier.url());
                for name in tier.list(&format!("{}/", plan.name))? {
                    let status = match tier.get(&name)? {
                        Some(bytes) => checkpoint_line(&bytes),
                        None => "gone".to_string(),
                    };
                    writeln!(out, "  {name}  {status}")?;
                }
                Ok(out)
            })();
            match listed {
                Ok(remote) => {
                    print!("{remote}");
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("error: cannot list the remote tier `{url}`: {e:#}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        CheckpointCommand::Verify { location } => {
            let mut checked = 0;
            let mut damaged = Vec::new();
            let mut check = |name: String, bytes: &[u8]| {
                checked += 1;
                if let Err(e) = sda_host::checkpoint::format::verified_body(bytes) {
                    damaged.push(format!("{name}: {e}"));
                }
            };
            if location.contains("://") {
                let tier = RemoteTier::open_existing(&location, Path::new("."))?;
                for name in tier.list("")? {
                    if name.ends_with(".sdackpt") {
                        let bytes = tier.get(&name)?.unwrap_or_default();
                        check(name, &bytes);
                    }
                }
            } else {
                for path in checkpoint_files(Path::new(&location))? {
                    let bytes = std::fs::read(&path)?;
                    check(path.display().to_string(), &bytes);
                }
            }
            for d in &damaged {
                eprintln!("damaged: {d}");
            }
            if checked == 0 {
                // Nothing verified is not "all intact": the location is likely mistyped.
                eprintln!("error: no checkpoint found in `{location}` (is it the right folder or URL?)");
                return Ok(ExitCode::FAILURE);
            }
            println!("{checked} checkpoint(s) checked in `{location}`: {} intact, {} damaged", checked - damaged.len(), damaged.len());
            Ok(if damaged.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
    }
}

/// Every `.sdackpt` file under `dir`, sorted.
fn checkpoint_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("reading `{}`", d.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "sdackpt") {
                found.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}

fn list_local(out: &mut String, pipeline_dir: &Path) -> anyhow::Result<()> {
    use std::fmt::Write as _;
    if !pipeline_dir.is_dir() {
        writeln!(out, "  (none)")?;
        return Ok(());
    }
    let mut files = checkpoint_files(pipeline_dir)?;
    files.reverse();
    for path in files {
        let bytes = std::fs::read(&path)?;
        writeln!(out, "  {}  {}", path.display(), checkpoint_line(&bytes))?;
    }
    Ok(())
}

/// One line about a checkpoint: sequence, age, size, offset, or why it is damaged.
fn checkpoint_line(bytes: &[u8]) -> String {
    match sda_host::checkpoint::format::Checkpoint::decode(bytes) {
        Ok(c) => format!(
            "ok  task {}  seq {}  taken {}  {} bytes  offset {}",
            c.header.task,
            c.header.sequence,
            humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + Duration::from_millis(c.header.created_at_ms)),
            bytes.len(),
            c.offset
        ),
        Err(e) => format!("DAMAGED: {e}"),
    }
}

fn describe_checkpoint(c: &sda_host::checkpoint::format::Checkpoint, size: usize) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let h = &c.header;
    let taken = humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + Duration::from_millis(h.created_at_ms));
    let _ = writeln!(out, "checkpoint {} of task `{}` in pipeline `{}` ({size} bytes, checksum ok)", h.sequence, h.task, h.pipeline);
    let _ = writeln!(out, "  taken        {taken} by sda-pipeline {}", h.host_version);
    let _ = writeln!(out, "  guarantee    {}", h.guarantee);
    let _ = writeln!(out, "  fingerprint  {}", h.fingerprint);
    let _ = writeln!(out, "  source       `{}` partition {}: resume at byte offset {}", c.source, c.partition, c.offset);
    let _ = writeln!(out, "  operators");
    for op in &c.operators {
        let _ = writeln!(
            out,
            "    {:<14} state version {}, {} bytes; plugin {} (WIT {})",
            op.name,
            op.state_version,
            group(op.state.len() as u64),
            op.plugin_digest,
            op.wit_version
        );
    }
    let _ = writeln!(out, "  sinks");
    for s in c.sinks.iter().chain(std::iter::once(&c.dlq)) {
        let positions: Vec<String> = s
            .positions
            .iter()
            .map(|(p, o)| if s.positions.len() == 1 && *p == 0 { group(*o) } else { format!("{p}:{}", group(*o)) })
            .collect();
        let remembered = if std::ptr::eq(s, &c.dlq) { "delivered dead letters remembered" } else { "outputs a replay owes" };
        let _ = writeln!(
            out,
            "    {:<14} position {}; {} {remembered}",
            s.name,
            if positions.is_empty() { "-".to_string() } else { positions.join(", ") },
            group(s.delivered.entries.len() as u64)
        );
    }
    if let Some(seen) = &c.source_seen {
        let _ = writeln!(out, "  source keys remembered: {}", group(seen.entries.len() as u64));
    }
    out
}

fn generate(args: &GenArgs) -> anyhow::Result<ExitCode> {
    let defaults = GenerateOptions::default();
    let sparse_cadence = args.sparse.then_some(sda_scenario::SparseCadence {
        mean_gap_ms: args.mean_gap_ms,
        min_gap_ms: args.min_gap_ms,
        max_gap_ms: args.max_gap_ms,
        sensors_per_object: args.sensors_per_object,
    });
    let options = GenerateOptions {
        objects: args.objects,
        minutes: args.minutes,
        seed: args.seed,
        start_ms: args.start_ms,
        cadence_ms: args.cadence_ms,
        jitter_ms: args.jitter_ms,
        sparse_cadence,
        orbit_mix: args.orbit_mix.unwrap_or(defaults.orbit_mix),
        conjunctions: args.conjunctions,
        conjunction_miss_km: args.conjunction_miss_km.unwrap_or(defaults.conjunction_miss_km),
        edge_tca_fraction: args.edge_tca_fraction,
        formations: args.formations,
        formation_separation_km: args.formation_separation_km.unwrap_or(defaults.formation_separation_km),
        escalating_formation_fraction: args.escalating_formation_fraction,
        out_of_order_pct: args.out_of_order_pct,
        late_pct: args.late_pct,
        duplicate_pct: args.duplicate_pct,
        malformed_pct: args.malformed_pct,
        correlator: CorrelatorConfig {
            window_ms: args.window_ms,
            allowed_lateness_ms: args.allowed_lateness_ms,
            screening_km: args.screening_km,
            state_horizon_ms: args.state_horizon_ms.unwrap_or(sparse_cadence.map_or(0, |cadence| cadence.max_gap_ms)),
            ..CorrelatorConfig::default()
        },
        classifier: ClassifierConfig { red_km: args.red_km, yellow_km: args.yellow_km, suppress_ms: args.suppress_ms },
    };
    let bar = if std::io::stderr().is_terminal() { ProgressBar::new(0) } else { ProgressBar::hidden() };
    bar.set_style(ProgressStyle::with_template("{spinner} generating: minute {pos}/{len} {wide_bar} {eta}").expect("valid template"));
    let reference_started = std::sync::atomic::AtomicBool::new(false);
    let started = Instant::now();
    let written = sda_scenario::write_scenario_with(&args.out, &options, !args.no_reference, &|step| match step {
        sda_scenario::generate::Progress::Generating { done_ms, total_ms } => {
            bar.set_length((total_ms / 60_000) as u64);
            bar.set_position((done_ms / 60_000) as u64);
        }
        sda_scenario::generate::Progress::Reference { done, total } => {
            if !reference_started.swap(true, std::sync::atomic::Ordering::Relaxed) {
                bar.set_style(
                    ProgressStyle::with_template("{spinner} computing expected alerts: window {pos}/{len} {wide_bar} {eta}")
                        .expect("valid template"),
                );
            }
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        }
    });
    bar.finish_and_clear();
    let written = match written {
        Ok(written) => written,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(EXIT_INVALID));
        }
    };
    let s = &written.summary.counts;
    let mut out = String::new();
    use std::fmt::Write as _;
    writeln!(
        out,
        "scenario (seed {}): {} objects over {} minutes{}, generated in {:.1} s",
        options.seed,
        group(options.objects as u64),
        options.minutes,
        if args.sparse { ", sparse cadence" } else { "" },
        started.elapsed().as_secs_f64()
    )?;
    writeln!(out, "  observations       {} ({} lines)", written.observations.display(), group(s.lines as u64))?;
    writeln!(
        out,
        "      {} out of order, {} late, {} duplicates, {} malformed ({} not JSON, {} breaking a rule)",
        group(s.out_of_order as u64),
        group(s.late as u64),
        group(s.duplicates as u64),
        group((s.malformed_deserialization + s.malformed_validation) as u64),
        group(s.malformed_deserialization as u64),
        group(s.malformed_validation as u64)
    )?;
    writeln!(
        out,
        "      {} planted conjunctions, {} formation pairs",
        written.summary.conjunctions.len(),
        written.summary.formations.len()
    )?;
    if options.correlator.state_horizon_ms > 0 {
        writeln!(out, "      for a correlator with state_horizon_ms = {}", options.correlator.state_horizon_ms)?;
    }
    match &written.expected {
        Some(expected) => {
            let c = &expected.reference.counts;
            writeln!(
                out,
                "  expected alerts    {}: {} ({} RED, {} YELLOW; {} suppressed)",
                expected.alerts.display(),
                group(c.alerts as u64),
                group(c.red as u64),
                group(c.yellow as u64),
                group(c.suppressed as u64)
            )?;
            writeln!(out, "  expected candidates {}: {}", expected.candidates.display(), group(c.candidates as u64))?;
        }
        None => writeln!(out, "  no expected alerts or candidates (--no-reference)")?,
    }
    writeln!(out, "  summary            {}", written.scenario.display())?;
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

/// `plan OLD --diff NEW`: what `run --watch` would do on an edit from OLD to NEW.
fn show_diff(old: &Path, new: &Path) -> anyhow::Result<ExitCode> {
    let old_plan = match load_plan(old)? {
        Ok(plan) => plan,
        Err(code) => return Ok(code),
    };
    let new_plan = match load_plan(new)? {
        Ok(plan) => plan,
        Err(code) => return Ok(code),
    };
    let diff = sda_host::graph::diff::diff(&old_plan, &new_plan);
    print!("{diff}");
    if diff.refused().next().is_some() {
        println!("run --watch would refuse this edit and leave the running pipeline unchanged.");
    }
    Ok(ExitCode::SUCCESS)
}

fn run(file: &Path, options: RunOptions, quiet: bool, watch: bool, report: Option<(PathBuf, Duration)>) -> anyhow::Result<ExitCode> {
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
        sda_host::watch::run_watching(file, plan, Arc::new(runtime), &options, &shutdown, &stats)
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

fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// The live progress line, shared with the log writer so logs print above it.
static PROGRESS: Mutex<Option<ProgressBar>> = Mutex::new(None);

fn start_progress(stats: Arc<Stats>) -> (Arc<std::sync::atomic::AtomicBool>, std::thread::JoinHandle<()>) {
    let bar = ProgressBar::new_spinner();
    bar.set_style(ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}").expect("valid template"));
    *PROGRESS.lock().unwrap_or_else(|e| e.into_inner()) = Some(bar.clone());
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

fn finish_progress() {
    if let Some(bar) = PROGRESS.lock().unwrap_or_else(|e| e.into_inner()).take() {
        bar.finish_and_clear();
    }
}

/// Writes log lines to stderr, above the progress line when there is one.
struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let guard = PROGRESS.lock().unwrap_or_else(|e| e.into_inner());
        match guard.as_ref() {
            Some(bar) => bar.suspend(|| std::io::stderr().write_all(buf))?,
            None => std::io::stderr().write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SDA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,sda_host=info,sda::plugin=info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| LogWriter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}
