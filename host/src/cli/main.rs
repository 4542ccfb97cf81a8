//! `sda-pipeline`: the command line: run a pipeline, validate or explain its `pipeline.toml`, read and re-inject its dead letters.
//!
//! One file per group of subcommands; `sda-reprocess` (a crate root beside this one, so `mod` finds
//! the same files) is built from `common`, `select`, `reprocess` and `terminal`.

mod admin;
mod checkpoint;
mod common;
mod dlq;
mod generate;
mod plan;
mod reprocess;
mod run;
mod select;
mod terminal;
mod text;
mod tle;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use sda_host::pipeline::RunOptions;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

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
    Gen(Box<generate::GenArgs>),
    /// List, inspect and verify checkpoints.
    #[command(subcommand)]
    Checkpoint(checkpoint::CheckpointCommand),
    /// Read the dead-letter queue: list entries, show one in full, count them by kind, operator and hour.
    #[command(subcommand)]
    Dlq(dlq::DlqCommand),
    /// Re-inject dead letters into the source they came from, once (also installed as `sda-reprocess`).
    Reprocess(Box<reprocess::ReprocessArgs>),
    /// Replace an operator's plugin in the running pipeline, its state carried over (through the admin endpoint).
    ///
    /// Every task that runs the operator switches at a batch boundary, or none does: a plugin that
    /// does not compile, whose `init` rejects the operator's config or whose `restore` refuses the
    /// running state leaves the old one running, and the error says which step failed. The swap
    /// survives a restart (the host keeps a copy of the plugin beside its checkpoints) until
    /// pipeline.toml is edited to name another plugin.
    Swap(Box<admin::SwapArgs>),
    /// Show a running pipeline's health, tasks and operators (plugin digest, WIT and state versions, swaps).
    Status(admin::StatusArgs),
    /// Turn two- and three-line element set files into JSON Lines for a file source (one set per line, as
    /// Space-Track's `gp` JSON: `OBJECT_NAME`, `TLE_LINE1`, `TLE_LINE2`), for the `elsets` operator.
    TleToJsonl(tle::TleArgs),
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
    terminal::init_logging("warn,sda_host=info,sda::plugin=info");
    let result = match cli.command {
        Command::Run { file, follow, quiet, allow_fresh_start, stop_at_end, watch, drop_state, report, report_every } => {
            let report = report.map(|path| (path, Duration::from_secs_f64(report_every)));
            run::run(
                &file,
                RunOptions { follow, allow_fresh_start, stop_at_end, drop_state, ..RunOptions::default() },
                quiet,
                watch,
                report,
            )
        }
        Command::Validate { file } => plan::validate(&file),
        Command::Plan { file, diff: Some(new) } => plan::show_diff(&file, &new),
        Command::Plan { file, diff: None } => plan::show_plan(&file),
        Command::Gen(args) => generate::generate(&args),
        Command::Checkpoint(command) => checkpoint::checkpoint_command(command),
        Command::Dlq(command) => dlq::dlq_command(command),
        Command::Reprocess(args) => reprocess::reprocess_command(&args),
        Command::Swap(args) => admin::swap_command(&args),
        Command::Status(args) => admin::status_command(&args),
        Command::TleToJsonl(args) => tle::tle_to_jsonl(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            terminal::finish_progress();
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Whether a subcommand only reads and prints (its output may well be piped to `head`), as opposed
/// to running a pipeline or talking to one, which must never die of a peer's closed connection.
fn prints_only(command: &Command) -> bool {
    matches!(
        command,
        Command::Validate { .. }
            | Command::Plan { .. }
            | Command::Checkpoint(_)
            | Command::Dlq(_)
            | Command::Gen(_)
            | Command::TleToJsonl(_)
    )
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
            "the old file comes first: `sda-pipeline plan OLD --diff NEW` (`plan --diff OLD NEW` would compare NEW to OLD, the diff \
                reversed)",
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
