//! `sda-pipeline swap` and `sda-pipeline status`: change and look at a running pipeline through its admin endpoint.

use anyhow::Context as _;
use sda_host::admin::client as admin_client;
use sda_host::graph::Plan;
use sda_host::graph::diff::short;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct SwapArgs {
    /// The pipeline file of the running pipeline (for its admin address and token).
    #[arg(default_value = "pipeline.toml")]
    file: PathBuf,
    /// The operator whose plugin to replace.
    #[arg(long)]
    operator: String,
    /// The new component (`.wasm`).
    #[arg(long)]
    plugin: PathBuf,
    /// The admin endpoint, `HOST:PORT` (default: `[admin] listen` of the pipeline file).
    #[arg(long)]
    admin: Option<String>,
    /// The bearer token file (default: the one the running pipeline wrote beside its checkpoints).
    #[arg(long)]
    token_file: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct StatusArgs {
    /// The pipeline file of the running pipeline (for its admin address).
    #[arg(default_value = "pipeline.toml")]
    file: PathBuf,
    /// The admin endpoint, `HOST:PORT` (default: `[admin] listen` of the pipeline file).
    #[arg(long)]
    admin: Option<String>,
    /// Print `/status` as JSON, as the endpoint returns it.
    #[arg(long)]
    json: bool,
    /// The bearer token file, for an endpoint with `allow_remote` (default: the one the running
    /// pipeline wrote beside its checkpoints, if this machine has it).
    #[arg(long)]
    token_file: Option<PathBuf>,
}

/// The admin address and token file, from the flags or else the pipeline file.
fn endpoint(file: &Path, admin: Option<&String>, token_file: Option<&PathBuf>, need_token: bool) -> anyhow::Result<(String, PathBuf)> {
    match (admin, token_file) {
        (Some(address), Some(token)) => return Ok((address.clone(), token.clone())),
        (Some(address), None) if !need_token => return Ok((address.clone(), PathBuf::new())),
        _ => {}
    }
    let plan = Plan::load(file)
        .with_context(|| format!("cannot find the admin endpoint from `{}` (or pass --admin and --token-file)", file.display()))?;
    let address = match (admin, plan.admin) {
        (Some(address), _) => address.clone(),
        (None, Some(admin)) => admin.listen.to_string(),
        (None, None) => {
            anyhow::bail!("`{}` has no `[admin] listen`, so the pipeline has no admin endpoint; add one and restart it", file.display())
        }
    };
    let token = token_file.cloned().unwrap_or_else(|| sda_host::pipeline::admin_token_path(&plan));
    Ok((address, token))
}

pub fn swap_command(args: &SwapArgs) -> anyhow::Result<ExitCode> {
    let (address, token_file) = endpoint(&args.file, args.admin.as_ref(), args.token_file.as_ref(), true)?;
    let token = admin_client::read_token(&token_file)?;
    // The host resolves the path itself: send it absolute.
    let plugin = std::path::absolute(&args.plugin).with_context(|| format!("cannot resolve `{}`", args.plugin.display()))?;
    let user = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "unknown".into());
    let report =
        admin_client::swap(&address, &token, &args.operator, &plugin.display().to_string(), &format!("sda-pipeline swap (user {user})"))?;
    let compile = match report.compile {
        sda_host::runtime::CompileSource::Cache => "taken from the component cache",
        sda_host::runtime::CompileSource::Compiled => "compiled",
        sda_host::runtime::CompileSource::Native => "built into the host",
    };
    println!(
        "swapped operator `{}`: {} -> {} (WIT {}; plugin {compile} in {:.0} ms)",
        report.operator,
        short(&report.from_digest),
        short(&report.to_digest),
        report.wit_version,
        report.compile_ms
    );
    if report.tasks.is_empty() {
        println!("  no task runs it right now; tasks started from now on run the new plugin");
    }
    for task in &report.tasks {
        println!(
            "  task {}: state version {} -> {}, paused {:.1} ms",
            task.task, task.state_version_from, task.state_version_to, task.pause_ms
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn status_command(args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let (address, token_file) = endpoint(&args.file, args.admin.as_ref(), args.token_file.as_ref(), false)?;
    // A token given is required; the default one is sent if it is here (a loopback endpoint needs none).
    let token = match (&args.token_file, token_file.as_os_str().is_empty()) {
        (Some(_), _) => Some(admin_client::read_token(&token_file)?),
        (None, false) => admin_client::read_token(&token_file).ok(),
        (None, true) => None,
    };
    let status = admin_client::status(&address, token.as_deref())?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(ExitCode::SUCCESS);
    }
    let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    println!("pipeline {}: {} (up {:.0} s)", status.pipeline, status.health.as_str(), status.uptime_seconds);
    for reason in &status.reasons {
        println!("  {reason}");
    }
    println!("operators:");
    for (name, op) in &status.operators {
        let state_version = or_dash(op.state_version.map(|v| v.to_string()));
        let mut line = format!("  {name:<16} {}  WIT {}  state v{state_version}", short(&op.digest), op.wit_version);
        if let Some(at) = &op.swapped_at {
            line +=
                &format!("  swapped {at} by {} (was {})", or_dash(op.swapped_by.clone()), short(op.swapped_from.as_deref().unwrap_or("-")));
        }
        if op.faults > 0 {
            line += &format!("  faults {}", op.faults);
        }
        if let Some(stopped) = &op.stopped {
            line += &format!("  STOPPED: {stopped}");
        }
        println!("{line}");
    }
    println!("tasks:");
    for (name, task) in &status.tasks {
        let checkpoint = match &task.last_checkpoint {
            Some(c) => format!("checkpoint #{} ({:.1} s ago)", c.sequence, c.age_seconds),
            None => "no checkpoint yet".into(),
        };
        println!(
            "  {name:<16} {:<9} offset {}  records {}  {checkpoint}{}",
            task.state.as_str(),
            task.source_offset,
            task.records_in,
            task.error.as_ref().map(|e| format!("  error: {e}")).unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}
