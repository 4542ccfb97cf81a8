//! `sda-pipeline checkpoint ls|inspect|verify`: both tiers' checkpoints listed, one shown in readable form, a tree checked.

use crate::common::load_plan;
use crate::text::group;
use anyhow::Context as _;
use clap::Subcommand;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Subcommand)]
pub enum CheckpointCommand {
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

/// `checkpoint ls|inspect|verify`.
pub fn checkpoint_command(command: CheckpointCommand) -> anyhow::Result<ExitCode> {
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
