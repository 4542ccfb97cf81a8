//! The terminal both binaries write to: log lines on stderr, printed above the progress bar when one is drawn.

use indicatif::ProgressBar;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;

/// The live progress line, shared with the log writer so logs print above it.
static PROGRESS: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Draws `bar` as the progress line: log lines from now on print above it.
pub fn show_progress(bar: ProgressBar) {
    *PROGRESS.lock().unwrap_or_else(|e| e.into_inner()) = Some(bar);
}

/// Clears the progress line, if one is drawn.
pub fn finish_progress() {
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

/// Logs to stderr, filtered by `SDA_LOG` if set, else by `default_filter`.
pub fn init_logging(default_filter: &str) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("SDA_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| LogWriter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}
