//! The dead-letter commands of the CLI, shared by `sda-pipeline` and `sda-reprocess`: `dlq ls|show|stats` and `reprocess`.

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use sda_host::dlq::read::{self, Entry, Filter};
use sda_host::dlq::{Encoding, decode_bytes};
use sda_host::graph::{Plan, PlanError};
use sda_host::reprocess::{self, Decision, Ledger};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Exit code for a pipeline file with problems.
const EXIT_INVALID: u8 = 2;

/// Which DLQ to read.
#[derive(clap::Args, Debug)]
pub struct DlqSource {
    /// The pipeline file; its `[dlq]` says where the DLQ is.
    #[arg(default_value = "pipeline.toml")]
    pub file: PathBuf,
    /// Read this DLQ file (and its rotated segments `FILE.1`, `FILE.2`, ...) instead of the pipeline's.
    #[arg(long, value_name = "FILE")]
    pub dlq_file: Option<PathBuf>,
}

/// Which entries to select; every condition given must hold.
#[derive(clap::Args, Debug, Default)]
pub struct FilterArgs {
    /// Only entries of these error kinds (repeat it, or separate them with commas), e.g. `PluginTrap,Validation`.
    #[arg(long = "error-kind", value_name = "KIND", value_delimiter = ',')]
    pub error_kinds: Vec<String>,
    /// Only entries of this operator (or source, or sink: the `operator` field).
    #[arg(long)]
    pub operator: Option<String>,
    /// Only entries that failed at or after this time (RFC 3339, e.g. `2026-11-24T06:00:00Z`).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only entries that failed before this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Only entries whose source offset is in this inclusive range: `A..B`, `A..`, `..B` or `A`.
    #[arg(long, value_name = "RANGE")]
    pub source_offset: Option<String>,
    /// Only entries of the plugin whose digest starts with this (`sha256:3af2...` or `3af2...`).
    #[arg(long, value_name = "DIGEST")]
    pub plugin_digest: Option<String>,
    /// Only entries of this envelope schema version.
    #[arg(long, value_name = "VERSION")]
    pub schema_version: Option<u32>,
}

impl FilterArgs {
    pub fn to_filter(&self) -> anyhow::Result<Filter> {
        let time = |flag: &str, text: &Option<String>| -> anyhow::Result<Option<std::time::SystemTime>> {
            text.as_deref()
                .map(|t| {
                    humantime::parse_rfc3339_weak(t)
                        .with_context(|| format!("`--{flag} {t}` is not an RFC 3339 time like 2026-11-24T06:00:00Z"))
                })
                .transpose()
        };
        let mut error_kinds = Vec::new();
        for name in &self.error_kinds {
            error_kinds.push(read::parse_error_kind(name).map_err(anyhow::Error::msg)?);
        }
        Ok(Filter {
            error_kinds,
            operator: self.operator.clone(),
            since: time("since", &self.since)?,
            until: time("until", &self.until)?,
            source_offsets: self
                .source_offset
                .as_deref()
                .map(read::parse_offset_range)
                .transpose()
                .map_err(|e| anyhow::anyhow!("`--source-offset`: {e}"))?,
            plugin_digest: self.plugin_digest.clone(),
            schema_version: self.schema_version,
        })
    }
}

#[derive(clap::Subcommand, Debug)]
pub enum DlqCommand {
    /// List entries, one line each: index (for `show`), when, kind, operator, source position, key, message.
    Ls {
        #[command(flatten)]
        source: DlqSource,
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Show one entry in full, its key, payload and headers decoded where they are text.
    Show {
        #[command(flatten)]
        source: DlqSource,
        /// The entry's index, as `dlq ls` prints it.
        #[arg(long)]
        index: usize,
    },
    /// Count entries by error kind, by operator and by hour of failure.
    Stats {
        #[command(flatten)]
        source: DlqSource,
        #[command(flatten)]
        filter: FilterArgs,
    },
}

/// `reprocess`: re-inject dead letters into the source they came from.
#[derive(clap::Args, Debug)]
pub struct ReprocessArgs {
    /// The pipeline file: its `[dlq]` is read, and its sources are where entries go back to.
    #[arg(default_value = "pipeline.toml")]
    pub file: PathBuf,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Print what would be re-injected (and what skipped, and why each entry failed); change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Records re-injected per second at most (0: no limit).
    #[arg(long, default_value_t = 1000)]
    pub rate: u32,
    /// The record of what was re-injected, so a second run injects nothing twice.
    /// Default: `dlq-reprocessed.jsonl` beside the pipeline file.
    #[arg(long, value_name = "FILE")]
    pub ledger: Option<PathBuf>,
    /// Never draw the progress bar.
    #[arg(long)]
    pub quiet: bool,
}

fn load(file: &Path) -> anyhow::Result<Result<Plan, ExitCode>> {
    match Plan::load(file) {
        Ok(plan) => Ok(Ok(plan)),
        Err(PlanError::Invalid(problems)) => {
            eprintln!("{problems}");
            Ok(Err(ExitCode::from(EXIT_INVALID)))
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(Err(ExitCode::from(EXIT_INVALID)))
        }
    }
}

/// Every entry of the DLQ `source` names, numbered from 1 in reading order.
fn entries(source: &DlqSource) -> anyhow::Result<Result<Vec<(usize, Entry)>, ExitCode>> {
    let all = match &source.dlq_file {
        Some(path) => read::read_file(path)?,
        None => match load(&source.file)? {
            Ok(plan) => read::read_plan_dlq(&plan.dlq)?,
            Err(code) => return Ok(Err(code)),
        },
    };
    Ok(Ok(all.into_iter().enumerate().map(|(i, e)| (i + 1, e)).collect()))
}

pub fn dlq_command(command: DlqCommand) -> anyhow::Result<ExitCode> {
    match command {
        DlqCommand::Ls { source, filter } => {
            let filter = filter.to_filter()?;
            let entries = match entries(&source)? {
                Ok(e) => e,
                Err(code) => return Ok(code),
            };
            let selected: Vec<&(usize, Entry)> = entries.iter().filter(|(_, e)| filter.matches(&e.envelope)).collect();
            println!(
                "{:>6}  {:<24}  {:<16}  {:<14}  {:<22}  {:<20}  message",
                "index", "failed_at", "error_kind", "operator", "source", "key"
            );
            for (index, entry) in &selected {
                let e = &entry.envelope;
                let position =
                    format!("{}/{}@{}", e.source.name, e.source.partition, e.source.offset.map_or("-".to_string(), |o| o.to_string()));
                println!(
                    "{index:>6}  {:<24}  {:<16}  {:<14}  {:<22}  {:<20}  {}",
                    e.failed_at,
                    e.error_kind.as_str(),
                    e.operator,
                    position,
                    shorten(&shown(&e.key, &e.key_encoding), 20),
                    shorten(&e.error_message, 100)
                );
            }
            println!("{} of {} entries", selected.len(), entries.len());
            Ok(ExitCode::SUCCESS)
        }
        DlqCommand::Show { source, index } => {
            let entries = match entries(&source)? {
                Ok(e) => e,
                Err(code) => return Ok(code),
            };
            let Some((_, entry)) = entries.iter().find(|(i, _)| *i == index) else {
                anyhow::bail!("there is no entry {index}: the DLQ holds {} (numbered from 1, as `dlq ls` shows)", entries.len());
            };
            let e = &entry.envelope;
            println!("entry {index}, read at {}", entry.location);
            println!("  schema_version  {}", e.schema_version);
            println!("  failed_at       {}", e.failed_at);
            println!("  pipeline        {}", e.pipeline);
            println!("  stage           {:?}", e.stage);
            println!("  operator        {}", e.operator);
            println!("  plugin_digest   {}", e.plugin_digest.as_deref().unwrap_or("-"));
            println!("  error_kind      {}", e.error_kind.as_str());
            println!("  error_message   {}", e.error_message);
            println!("  retry_count     {}", e.retry_count);
            let where_ = e.source.file.as_deref().or(e.source.topic.as_deref()).unwrap_or("-");
            println!(
                "  source          `{}` ({where_}), partition {}, offset {}",
                e.source.name,
                e.source.partition,
                e.source.offset.map_or("-".to_string(), |o| o.to_string())
            );
            println!("  checkpoint_seq  {}", e.checkpoint_seq.map_or("-".to_string(), |s| s.to_string()));
            println!("  key             {}", shown(&e.key, &e.key_encoding));
            for h in &e.headers {
                println!("  header          {} = {}", h.name, shown(&h.value, &h.encoding));
            }
            println!("  payload:");
            for line in payload_text(&e.payload, &e.payload_encoding).lines() {
                println!("    {line}");
            }
            Ok(ExitCode::SUCCESS)
        }
        DlqCommand::Stats { source, filter } => {
            let filter = filter.to_filter()?;
            let entries = match entries(&source)? {
                Ok(e) => e,
                Err(code) => return Ok(code),
            };
            let mut by_kind: BTreeMap<&str, u64> = BTreeMap::new();
            let mut by_operator: BTreeMap<&str, u64> = BTreeMap::new();
            let mut by_hour: BTreeMap<String, u64> = BTreeMap::new();
            let mut total = 0;
            for (_, entry) in entries.iter().filter(|(_, e)| filter.matches(&e.envelope)) {
                let e = &entry.envelope;
                total += 1;
                *by_kind.entry(e.error_kind.as_str()).or_default() += 1;
                *by_operator.entry(e.operator.as_str()).or_default() += 1;
                *by_hour.entry(format!("{}:00Z", e.failed_at.get(..13).unwrap_or(&e.failed_at))).or_default() += 1;
            }
            println!("{total} of {} entries", entries.len());
            for (title, counts) in [("by error kind", &by_kind), ("by operator", &by_operator)] {
                println!("{title}:");
                for (name, n) in counts {
                    println!("  {name:<24} {n:>8}");
                }
            }
            println!("by hour of failure (UTC):");
            for (hour, n) in &by_hour {
                println!("  {hour:<24} {n:>8}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub fn reprocess_command(args: &ReprocessArgs) -> anyhow::Result<ExitCode> {
    let filter = args.filter.to_filter()?;
    let plan = match load(&args.file)? {
        Ok(plan) => plan,
        Err(code) => return Ok(code),
    };
    let entries = read::read_plan_dlq(&plan.dlq)?;
    let ledger_path = args.ledger.clone().unwrap_or_else(|| plan.base_dir.join("dlq-reprocessed.jsonl"));
    let mut ledger = Ledger::open(&ledger_path)?;
    let planned = reprocess::plan(&plan, entries, &filter, &ledger);
    let to_inject = planned.iter().filter(|p| matches!(p.decision, Decision::Inject(_))).count();

    let mut by_kind: BTreeMap<&str, u64> = BTreeMap::new();
    let mut skipped: BTreeMap<String, u64> = BTreeMap::new();
    for p in &planned {
        *by_kind.entry(p.entry.envelope.error_kind.as_str()).or_default() += 1;
        match &p.decision {
            Decision::Inject(_) => {}
            Decision::AlreadyInjected => *skipped.entry("already re-injected (in the ledger)".to_string()).or_default() += 1,
            Decision::NotReinjectable(why) => *skipped.entry(format!("not re-injectable: {why}")).or_default() += 1,
        }
    }
    if args.dry_run {
        println!("dry run: nothing is re-injected or recorded");
        println!("{:<24}  {:<16}  {:<14}  {:<22}  {:<40}  why it failed", "failed_at", "error_kind", "operator", "source", "would");
        for p in &planned {
            let e = &p.entry.envelope;
            let position =
                format!("{}/{}@{}", e.source.name, e.source.partition, e.source.offset.map_or("-".to_string(), |o| o.to_string()));
            let would = match &p.decision {
                Decision::Inject(target) => format!("inject -> {target}"),
                other => other.label().to_string(),
            };
            println!(
                "{:<24}  {:<16}  {:<14}  {:<22}  {:<40}  {}",
                e.failed_at,
                e.error_kind.as_str(),
                e.operator,
                position,
                shorten(&would, 40),
                shorten(&e.error_message, 100)
            );
        }
    }
    let kinds: Vec<String> = by_kind.iter().map(|(k, n)| format!("{k} {n}")).collect();
    println!(
        "{} entries selected ({}); {to_inject} to re-inject",
        planned.len(),
        if kinds.is_empty() { "none".into() } else { kinds.join(", ") }
    );
    for (why, n) in &skipped {
        println!("  skipped {n}: {why}");
    }
    if args.dry_run || to_inject == 0 {
        return Ok(ExitCode::SUCCESS);
    }
    let bar = if args.quiet || !std::io::stderr().is_terminal() {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::new(to_inject as u64);
        bar.set_style(ProgressStyle::with_template("re-injecting {bar:40} {pos}/{len} ({per_sec}, {eta} left)").expect("a valid template"));
        bar
    };
    let injected = reprocess::inject(&planned, &mut ledger, args.rate, |done| bar.set_position(done))?;
    bar.finish_and_clear();
    println!("re-injected {injected} entries into their sources; recorded in {}", ledger.path().display());
    Ok(ExitCode::SUCCESS)
}

/// Bytes as stored: text as it is, base64 marked as such.
fn shown(text: &str, encoding: &Encoding) -> String {
    match encoding {
        Encoding::Utf8 => text.to_string(),
        Encoding::Base64 => format!("(base64) {text}"),
    }
}

/// A payload for reading: text exactly as it was (a JSON payload is not re-serialised, which would
/// reorder its keys), binary as base64 with its length.
fn payload_text(text: &str, encoding: &Encoding) -> String {
    match encoding {
        Encoding::Utf8 => text.to_string(),
        Encoding::Base64 => {
            let len = decode_bytes(text, encoding).map_or(0, |b| b.len());
            format!("({len} bytes, not text; base64:)\n{text}")
        }
    }
}

fn shorten(text: &str, max: usize) -> String {
    let one_line = text.replace(['\n', '\r', '\t'], " ");
    if one_line.chars().count() <= max {
        return one_line;
    }
    let cut: String = one_line.chars().take(max.saturating_sub(1)).collect();
    format!("{cut}…")
}
