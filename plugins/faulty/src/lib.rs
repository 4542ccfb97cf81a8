//! Test plugin that misbehaves on purpose, to prove the sandbox contains it.
//!
//! `mode` picks the misbehaviour. The faults (`panic`, `loop`, `alloc`) and the
//! failure reports (`flaky`, `reject`, `discard`) strike on records whose payload
//! contains `marker`; other records pass through. The escape attempts (`escape`,
//! `connect`) run on every record and emit what happened, so a test can check
//! that each attempt was denied. The slow modes (`slow-process`, `slow-watermark`)
//! spend `work_ms` on every record or every `on-watermark` call: valid work that
//! takes long, as closing a window of a large catalogue does. `shard-state` keeps
//! its shard in its state, which a plugin run as several instances must never do.

use sda_guest::{Emitter, Failure, InputScope, Operator, Record, Shard, export_operator};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    mode: Mode,
    #[serde(default = "default_marker")]
    marker: String,
    /// For `connect`: the address to try.
    #[serde(default)]
    address: Option<String>,
    /// For `flaky`: how many attempts at a marked record fail before one succeeds.
    #[serde(default)]
    transient_failures: u32,
    /// For `slow-process` and `slow-watermark`: how long each call works, in milliseconds; for
    /// `panic`, how long each unmarked record works (0 by default).
    #[serde(default)]
    work_ms: u64,
    /// For `bulky-watermark`: how many bytes of output the end of input's `on-watermark` call returns.
    #[serde(default)]
    output_bytes: u64,
    /// For `bulky-watermark`: the size of each output record (1 MiB by default).
    #[serde(default = "default_output_record_bytes")]
    output_record_bytes: u64,
}

fn default_output_record_bytes() -> u64 {
    1 << 20
}

fn default_marker() -> String {
    "POISON".to_string()
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
enum Mode {
    /// Panics (a trap) on a marked record.
    Panic,
    /// Never returns from a marked record.
    Loop,
    /// Allocates without bound on a marked record.
    Alloc,
    /// Tries to read and write files, list directories, read environment
    /// variables and arguments; emits the outcome of each.
    Escape,
    /// Tries to open a TCP connection to `address`; emits the outcome.
    Connect,
    /// Rejects its configuration in `init`.
    RejectConfig,
    /// Reports a marked record as transient `transient_failures` times, then passes it.
    Flaky,
    /// Reports a marked record as a permanent validation failure.
    Reject,
    /// Discards a marked record as late.
    Discard,
    /// Works `work_ms` on every record, then passes it through.
    SlowProcess,
    /// Works `work_ms` in every `on-watermark` call; records pass through at once.
    SlowWatermark,
    /// Returns `output_bytes` of output (records of `output_record_bytes`) from the end of input's `on-watermark`
    /// call: valid heavy output, as a window of a large catalogue's states is.
    BulkyWatermark,
    /// Passes records through, and its state is the shard it was given: run as several instances,
    /// their states differ, as a plugin's that is not deterministic would.
    ShardState,
}

pub struct Faulty {
    config: Config,
    /// Attempts so far per marked record key (for `flaky`).
    attempts: std::collections::HashMap<Vec<u8>, u32>,
    /// The share of the work this instance was given (for `shard-state`).
    shard: Shard,
}

impl Operator for Faulty {
    type Config = Config;
    /// Every instance sees every record, so that tests can run it as several.
    const INPUT_SCOPE: InputScope = InputScope::AllRecords;

    fn init(config: Config) -> Result<Self, String> {
        Self::init_shard(config, Shard::WHOLE)
    }

    fn init_shard(config: Config, shard: Shard) -> Result<Self, String> {
        if config.mode == Mode::RejectConfig {
            return Err("mode `reject-config` always rejects its configuration".into());
        }
        Ok(Faulty { config, attempts: Default::default(), shard })
    }

    fn snapshot(&self) -> Vec<u8> {
        match self.config.mode {
            Mode::ShardState => format!("shard {} of {}", self.shard.index, self.shard.count).into_bytes(),
            _ => Vec::new(),
        }
    }

    fn process(&mut self, record: &Record<'_>, out: &mut Emitter) -> Result<(), Failure> {
        let marked = record.payload_str().is_ok_and(|p| p.contains(&self.config.marker));
        match self.config.mode {
            Mode::Panic if marked => panic!("faulty plugin: poison record `{}`", record.key_str().unwrap_or("?")),
            // Clean records may take `work_ms` too, to space the faults out in time.
            Mode::Panic => work_for(self.config.work_ms),
            Mode::Loop if marked => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            Mode::Alloc if marked => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 16 * 1024 * 1024]);
                    std::hint::black_box(&hoard);
                }
            }
            Mode::Flaky if marked => {
                let attempts = self.attempts.entry(record.key().to_vec()).or_default();
                *attempts += 1;
                if *attempts <= self.config.transient_failures {
                    return Err(Failure::transient(format!("attempt {attempts} fails, as configured")));
                }
            }
            Mode::Reject if marked => return Err(Failure::validation("the record carries the marker")),
            Mode::Discard if marked => return Err(Failure::late("the record carries the marker")),
            Mode::SlowProcess => work_for(self.config.work_ms),
            Mode::Escape => {
                let attempts = escape_attempts();
                out.emit_json(record.key(), &attempts).push();
                return Ok(());
            }
            Mode::Connect => {
                let address = self.config.address.as_deref().unwrap_or("127.0.0.1:9");
                let outcome = match std::net::TcpStream::connect(address) {
                    Ok(_) => "CONNECTED".to_string(),
                    Err(e) => format!("denied: {e}"),
                };
                out.emit_json(record.key(), &serde_json::json!({ "connect": address, "outcome": outcome })).push();
                return Ok(());
            }
            _ => {}
        }
        out.emit(record.key(), record.payload()).headers(record.headers()).push();
        Ok(())
    }

    fn on_watermark(&mut self, event_time_ms: i64, out: &mut Emitter) {
        if self.config.mode == Mode::SlowWatermark {
            work_for(self.config.work_ms);
        }
        if self.config.mode == Mode::BulkyWatermark && event_time_ms == i64::MAX {
            let record_bytes = self.config.output_record_bytes.max(1);
            let payload = vec![b'x'; record_bytes as usize];
            for n in 0..self.config.output_bytes.div_ceil(record_bytes) {
                out.emit(n.to_string().into_bytes(), payload.clone()).push();
            }
        }
    }
}

/// Keeps the CPU busy for `ms` milliseconds (busy, not asleep: the host's deadline counts CPU
/// work the way a long screening would spend it).
fn work_for(ms: u64) {
    let started = std::time::Instant::now();
    let mut n: u64 = 0;
    while started.elapsed() < std::time::Duration::from_millis(ms) {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

/// Each attempt and what came of it; anything but `denied: ...` is an escape.
fn escape_attempts() -> Vec<(String, String)> {
    let outcome = |r: Result<String, std::io::Error>| match r {
        Ok(v) => format!("ESCAPED: {v}"),
        Err(e) => format!("denied: {e}"),
    };
    let mut attempts = vec![
        ("read /etc/passwd".to_string(), outcome(std::fs::read_to_string("/etc/passwd").map(|s| s.len().to_string()))),
        ("list /".to_string(), outcome(std::fs::read_dir("/").map(|d| d.count().to_string()))),
        ("list .".to_string(), outcome(std::fs::read_dir(".").map(|d| d.count().to_string()))),
        ("write /tmp/sda-escape".to_string(), outcome(std::fs::write("/tmp/sda-escape", b"x").map(|_| "written".into()))),
    ];
    let vars: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
    attempts.push((
        "environment".to_string(),
        if vars.is_empty() { "denied: no variables".to_string() } else { format!("ESCAPED: {}", vars.join(",")) },
    ));
    attempts.push((
        "HOME".to_string(),
        match std::env::var("HOME") {
            Ok(v) => format!("ESCAPED: {v}"),
            Err(e) => format!("denied: {e}"),
        },
    ));
    let args: Vec<String> = std::env::args().collect();
    attempts.push((
        "arguments".to_string(),
        if args.is_empty() { "denied: no arguments".to_string() } else { format!("ESCAPED: {}", args.join(" ")) },
    ));
    attempts
}

export_operator!(Faulty);
