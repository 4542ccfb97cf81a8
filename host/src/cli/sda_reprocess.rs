//! `sda-reprocess`: re-inject dead letters into the source they came from, once (the same as `sda-pipeline reprocess`).

// The same files as `sda-pipeline`'s (this crate root sits beside its `main.rs`): the `reprocess` command and what it uses.
mod common;
mod reprocess;
mod select;
mod terminal;

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
    args: reprocess::ReprocessArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    terminal::init_logging("warn");
    match reprocess::reprocess_command(&cli.args) {
        Ok(code) => code,
        Err(e) => {
            terminal::finish_progress();
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
