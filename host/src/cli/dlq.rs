//! `sda-pipeline dlq ls|show|stats`: read the dead-letter queue.

use crate::common::{load_plan, shorten};
use crate::select::FilterArgs;
use sda_host::dlq::read::{self, Entry};
use sda_host::dlq::{Encoding, decode_bytes};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

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

/// Every entry of the DLQ `source` names, numbered from 1 in reading order.
fn entries(source: &DlqSource) -> anyhow::Result<Result<Vec<(usize, Entry)>, ExitCode>> {
    let all = match &source.dlq_file {
        Some(path) => read::read_file(path)?,
        None => match load_plan(&source.file)? {
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
