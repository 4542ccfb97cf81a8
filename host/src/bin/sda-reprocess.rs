//! `sda-reprocess`: re-inject dead letters into the source they came from, once (the same as `sda-pipeline reprocess`).

// Shared with `sda-pipeline`, whose `dlq` commands this binary does not have.
#[allow(dead_code)]
#[path = "../dlq_cli.rs"]
mod dlq_cli;

use clap::Parser;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "sda-reprocess",
    version,
    about = "Re-inject dead letters into the source they came from, once.",
    long_about = "Re-inject dead letters into the source they came from, once.\n\n\
        Reads the pipeline's dead-letter queue (a file and its rotated segments, or a Kafka topic), selects entries \
        with the filters, and appends each record's original payload to its file source, or produces its original \
        key, payload and headers to its Kafka source topic. What was re-injected is recorded in a ledger, so a second \
        run injects nothing twice; the pipeline's deduplication absorbs what a crash might repeat. Start with `--dry-run`."
)]
struct Cli {
    #[command(flatten)]
    args: dlq_cli::ReprocessArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("SDA_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).init();
    match dlq_cli::reprocess_command(&cli.args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
