//! `sda-pipeline swap` and `sda-pipeline status`: change and look at a running pipeline through its admin endpoint.

use anyhow::Context as _;
use sda_host::admin_client;
use sda_host::graph::Plan;
use serde_json::Value;
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

fn short(digest: &str) -> &str {
    &digest[..digest.len().min("sha256:".len() + 12)]
}

pub fn swap_command(args: &SwapArgs) -> anyhow::Result<ExitCode> {
    let (address, token_file) = endpoint(&args.file, args.admin.as_ref(), args.token_file.as_ref(), true)?;
    let token = admin_client::read_token(&token_file)?;
    // The host resolves the path itself: send it absolute.
    let plugin = std::path::absolute(&args.plugin).with_context(|| format!("cannot resolve `{}`", args.plugin.display()))?;
    let user = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "unknown".into());
    let report =
        admin_client::swap(&address, &token, &args.operator, &plugin.display().to_string(), &format!("sda-pipeline swap (user {user})"))?;
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let compile = if text(&report["compile"]) == "cache" { "taken from the component cache" } else { "compiled" };
    println!(
        "swapped operator `{}`: {} -> {} (WIT {}; plugin {compile} in {:.0} ms)",
        text(&report["operator"]),
        short(&text(&report["from_digest"])),
        short(&text(&report["to_digest"])),
        text(&report["wit_version"]),
        report["compile_ms"].as_f64().unwrap_or_default()
    );
    let tasks = report["tasks"].as_array().cloned().unwrap_or_default();
    if tasks.is_empty() {
        println!("  no task runs it right now; tasks started from now on run the new plugin");
    }
    for task in tasks {
        println!(
            "  task {}: state version {} -> {}, paused {:.1} ms",
            text(&task["task"]),
            task["state_version_from"],
            task["state_version_to"],
            task["pause_ms"].as_f64().unwrap_or_default()
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
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    };
    println!(
        "pipeline {}: {} (up {:.0} s)",
        text(&status["pipeline"]),
        text(&status["health"]),
        status["uptime_seconds"].as_f64().unwrap_or_default()
    );
    for reason in status["reasons"].as_array().into_iter().flatten() {
        println!("  {}", text(reason));
    }
    println!("operators:");
    for (name, op) in status["operators"].as_object().into_iter().flatten() {
        let digest = text(&op["digest"]);
        let mut line = format!("  {name:<16} {}  WIT {}  state v{}", short(&digest), text(&op["wit_version"]), text(&op["state_version"]));
        if !op["swapped_at"].is_null() {
            line += &format!(
                "  swapped {} by {} (was {})",
                text(&op["swapped_at"]),
                text(&op["swapped_by"]),
                short(&text(&op["swapped_from"]))
            );
        }
        if op["faults"].as_u64().unwrap_or_default() > 0 {
            line += &format!("  faults {}", op["faults"]);
        }
        if !op["stopped"].is_null() {
            line += &format!("  STOPPED: {}", text(&op["stopped"]));
        }
        println!("{line}");
    }
    println!("tasks:");
    for (name, task) in status["tasks"].as_object().into_iter().flatten() {
        let checkpoint = match task["last_checkpoint"].as_object() {
            Some(c) => format!("checkpoint #{} ({:.1} s ago)", text(&c["sequence"]), c["age_seconds"].as_f64().unwrap_or_default()),
            None => "no checkpoint yet".into(),
        };
        println!(
            "  {name:<16} {:<9} offset {}  records {}  {checkpoint}{}",
            text(&task["state"]),
            text(&task["source_offset"]),
            text(&task["records_in"]),
            task["error"].as_str().map(|e| format!("  error: {e}")).unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}
