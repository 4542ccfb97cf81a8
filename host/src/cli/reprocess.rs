//! `reprocess` (of `sda-pipeline`, and the `sda-reprocess` binary): re-inject dead letters into the source they came from, once.

use crate::common::{load_plan, shorten};
use crate::select::FilterArgs;
use crate::terminal::{finish_progress, show_progress};
use indicatif::{ProgressBar, ProgressStyle};
use sda_host::dlq::read;
use sda_host::reprocess::{self, Decision, Ledger};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

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

pub fn reprocess_command(args: &ReprocessArgs) -> anyhow::Result<ExitCode> {
    let filter = args.filter.to_filter()?;
    let plan = match load_plan(&args.file)? {
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
        show_progress(bar.clone());
        bar
    };
    let injected = reprocess::inject(&planned, &mut ledger, args.rate, |done| bar.set_position(done));
    finish_progress();
    let injected = injected?;
    println!("re-injected {injected} entries into their sources; recorded in {}", ledger.path().display());
    Ok(ExitCode::SUCCESS)
}
