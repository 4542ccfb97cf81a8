//! Re-injecting dead letters into the source they were read from, once: the selection, the dry run, the paced injection and the ledger that makes a second run inject nothing new.
//!
//! An entry can be re-injected when its record *is* a source record: a record
//! the source could not read (`stage = source`), one an operator reading the
//! source directly refused, or the record a plugin fault was isolated to (the
//! task dead-letters the source record itself). A record an operator further
//! down refused is an intermediate result, and a sink's entry holds an output
//! (an alert): neither belongs in the source, so they are listed and skipped.
//!
//! Re-injection appends the original payload as a line to a file source, or
//! produces the original key, payload and headers to a Kafka source topic
//! (idempotent producer, every record acknowledged). After each chunk is
//! durable its entries' identities are appended to the ledger (and synced),
//! so a second run skips them. A crash between the two re-injects that chunk
//! once more; the pipeline's source dedup and the sinks' delivery records
//! absorb the repeat.

use crate::dlq::read::{Entry, Filter};
use crate::dlq::{ErrorKind, Stage, decode_bytes};
use crate::graph::{NodeRef, Plan, SourceKind};
use std::collections::HashSet;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Entries injected per write (file) or acknowledged round (Kafka).
const CHUNK: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum ReprocessError {
    #[error("ledger `{}`: {error}", path.display())]
    Ledger { path: PathBuf, error: std::io::Error },
    #[error("ledger `{}` line {line}: {reason}", path.display())]
    LedgerLine { path: PathBuf, line: usize, reason: String },
    #[error("source file `{}`: {error}", path.display())]
    SourceFile { path: PathBuf, error: std::io::Error },
    #[error("source topic `{topic}`: {message}")]
    SourceTopic { topic: String, message: String },
    #[error("entry at {location}: its {what} is not valid base64: {error}")]
    Encoding { location: String, what: &'static str, error: base64::DecodeError },
}

/// Where an entry goes back to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    File(PathBuf),
    Kafka { source: String, brokers: String, topic: String, librdkafka: Vec<(String, String)> },
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::File(p) => write!(f, "{}", p.display()),
            Target::Kafka { brokers, topic, .. } => write!(f, "kafka://{brokers}/{topic}"),
        }
    }
}

/// What will happen to one selected entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Inject(Target),
    /// The ledger says it was re-injected before.
    AlreadyInjected,
    /// Its record is not a source record, or its source is not in the pipeline; says why.
    NotReinjectable(String),
}

impl Decision {
    /// A short label for tables and counts.
    pub fn label(&self) -> &'static str {
        match self {
            Decision::Inject(_) => "inject",
            Decision::AlreadyInjected => "already re-injected",
            Decision::NotReinjectable(_) => "not re-injectable",
        }
    }
}

/// One selected entry and its decision.
#[derive(Debug, Clone)]
pub struct Planned {
    pub entry: Entry,
    pub identity: String,
    pub decision: Decision,
}

/// The identities already re-injected, read from the ledger file (absent: none).
pub struct Ledger {
    path: PathBuf,
    injected: HashSet<String>,
}

impl Ledger {
    pub fn open(path: &Path) -> Result<Ledger, ReprocessError> {
        let mut injected = HashSet::new();
        match std::fs::read_to_string(path) {
            Ok(text) => {
                for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
                    let value: serde_json::Value = serde_json::from_str(line).map_err(|e| ReprocessError::LedgerLine {
                        path: path.to_path_buf(),
                        line: i + 1,
                        reason: e.to_string(),
                    })?;
                    let identity = value["identity"].as_str().ok_or_else(|| ReprocessError::LedgerLine {
                        path: path.to_path_buf(),
                        line: i + 1,
                        reason: "no `identity`".into(),
                    })?;
                    injected.insert(identity.to_string());
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(ReprocessError::Ledger { path: path.to_path_buf(), error }),
        }
        Ok(Ledger { path: path.to_path_buf(), injected })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn contains(&self, identity: &str) -> bool {
        self.injected.contains(identity)
    }

    /// Records `planned` as re-injected, durably.
    fn record(&mut self, planned: &[&Planned], target: &Target) -> Result<(), ReprocessError> {
        let err = |error| ReprocessError::Ledger { path: self.path.clone(), error };
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&self.path).map_err(err)?;
        let now = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
        let mut text = String::new();
        for p in planned {
            let line = serde_json::json!({
                "identity": p.identity,
                "reinjected_at": now,
                "target": target.to_string(),
                "error_kind": p.entry.envelope.error_kind.as_str(),
                "failed_at": p.entry.envelope.failed_at,
                "from": p.entry.location.to_string(),
            });
            text.push_str(&line.to_string());
            text.push('\n');
        }
        file.write_all(text.as_bytes()).and_then(|()| file.sync_data()).map_err(err)?;
        self.injected.extend(planned.iter().map(|p| p.identity.clone()));
        Ok(())
    }
}

/// The entries `filter` selects, each with what re-injection would do with it.
pub fn plan(pipeline: &Plan, entries: Vec<Entry>, filter: &Filter, ledger: &Ledger) -> Vec<Planned> {
    entries
        .into_iter()
        .filter(|e| filter.matches(&e.envelope))
        .map(|entry| {
            let identity = format!("{:032x}", entry.envelope.identity());
            let decision = if ledger.contains(&identity) { Decision::AlreadyInjected } else { decide(pipeline, &entry) };
            Planned { entry, identity, decision }
        })
        .collect()
}

fn decide(pipeline: &Plan, entry: &Entry) -> Decision {
    let e = &entry.envelope;
    let Some((index, source)) = pipeline.sources.iter().enumerate().find(|(_, s)| s.name == e.source.name) else {
        return Decision::NotReinjectable(format!("source `{}` is not in this pipeline", e.source.name));
    };
    let is_source_record = match e.stage {
        Stage::Source => true,
        Stage::Sink => {
            return Decision::NotReinjectable(format!(
                "the entry holds an output of sink `{}`, not a record of source `{}`",
                e.operator, source.name
            ));
        }
        // A fault is isolated to the source record itself.
        Stage::Operator if matches!(e.error_kind, ErrorKind::PluginTrap | ErrorKind::PluginTimeout | ErrorKind::PluginMemory) => true,
        Stage::Operator => pipeline.operators.iter().any(|op| op.name == e.operator && op.inputs.contains(&NodeRef::Source(index))),
    };
    if !is_source_record {
        return Decision::NotReinjectable(format!(
            "operator `{}` does not read source `{}` directly: the record is an intermediate result",
            e.operator, source.name
        ));
    }
    match &source.kind {
        SourceKind::File(f) => Decision::Inject(Target::File(f.path.clone())),
        SourceKind::Kafka(k) => Decision::Inject(Target::Kafka {
            source: source.name.clone(),
            brokers: k.brokers.clone(),
            topic: k.topic.clone(),
            librdkafka: k.librdkafka.clone(),
        }),
    }
}

/// Re-injects every planned entry whose decision is [`Decision::Inject`], at most `per_second`
/// a second (0: as fast as they go), calling `progress` with the count done so far. Returns the
/// count injected.
pub fn inject(planned: &[Planned], ledger: &mut Ledger, per_second: u32, mut progress: impl FnMut(u64)) -> Result<u64, ReprocessError> {
    let started = Instant::now();
    let mut done = 0u64;
    // Grouped by target, in DLQ order within each.
    let mut targets: Vec<&Target> = Vec::new();
    for p in planned {
        if let Decision::Inject(t) = &p.decision
            && !targets.contains(&t)
        {
            targets.push(t);
        }
    }
    for target in targets {
        let mine: Vec<&Planned> = planned.iter().filter(|p| p.decision == Decision::Inject(target.clone())).collect();
        let mut writer = Writer::open(target)?;
        for chunk in mine.chunks(if per_second == 0 { CHUNK } else { CHUNK.min(per_second as usize).max(1) }) {
            writer.write(chunk)?;
            ledger.record(chunk, target)?;
            done += chunk.len() as u64;
            progress(done);
            if per_second > 0 {
                let due = Duration::from_secs_f64(done as f64 / f64::from(per_second));
                if let Some(wait) = due.checked_sub(started.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
        }
    }
    Ok(done)
}

enum Writer {
    File { path: PathBuf, file: std::fs::File },
    Kafka { topic: String, producing: crate::kafka::producing::Producing },
}

impl Writer {
    fn open(target: &Target) -> Result<Writer, ReprocessError> {
        match target {
            Target::File(path) => {
                let err = |error| ReprocessError::SourceFile { path: path.clone(), error };
                let mut file = std::fs::OpenOptions::new().read(true).append(true).open(path).map_err(err)?;
                // A file that does not end with a newline would glue the first entry to its last line.
                let len = file.metadata().map_err(err)?.len();
                if len > 0 {
                    let mut last = [0u8; 1];
                    file.seek(SeekFrom::Start(len - 1)).and_then(|_| file.read_exact(&mut last)).map_err(err)?;
                    if last[0] != b'\n' {
                        file.write_all(b"\n").map_err(err)?;
                    }
                }
                Ok(Writer::File { path: path.clone(), file })
            }
            Target::Kafka { source, brokers, topic, librdkafka } => {
                let producing = crate::kafka::producing::Producing::open(
                    &format!("re-injection into source `{source}`"),
                    brokers,
                    topic,
                    librdkafka,
                    Duration::from_secs(30),
                    None,
                )
                .map_err(|message| ReprocessError::SourceTopic { topic: topic.clone(), message })?;
                Ok(Writer::Kafka { topic: topic.clone(), producing })
            }
        }
    }

    fn write(&mut self, chunk: &[&Planned]) -> Result<(), ReprocessError> {
        match self {
            Writer::File { path, file } => {
                let mut bytes = Vec::new();
                for p in chunk {
                    bytes.extend(payload(p)?);
                    bytes.push(b'\n');
                }
                file.write_all(&bytes)
                    .and_then(|()| file.sync_data())
                    .map_err(|error| ReprocessError::SourceFile { path: path.clone(), error })
            }
            Writer::Kafka { topic, producing } => {
                for p in chunk {
                    let e = &p.entry.envelope;
                    let key = decode_bytes(&e.key, &e.key_encoding).map_err(|error| encoding(p, "key", error))?;
                    let mut headers = Vec::with_capacity(e.headers.len());
                    for h in &e.headers {
                        headers.push((h.name.as_str(), decode_bytes(&h.value, &h.encoding).map_err(|error| encoding(p, "header", error))?));
                    }
                    let headers =
                        (!headers.is_empty()).then(|| crate::kafka::producing::headers(headers.iter().map(|(n, v)| (*n, v.as_slice()))));
                    producing.send(&key, &payload(p)?, headers);
                }
                let refused = producing.flush().map_err(|message| ReprocessError::SourceTopic { topic: topic.clone(), message })?;
                match refused.first() {
                    Some((i, why)) => Err(ReprocessError::SourceTopic {
                        topic: topic.clone(),
                        message: format!("the broker refused the entry at {}: {}", chunk[*i].entry.location, why.0),
                    }),
                    None => Ok(()),
                }
            }
        }
    }
}

fn payload(p: &Planned) -> Result<Vec<u8>, ReprocessError> {
    let e = &p.entry.envelope;
    decode_bytes(&e.payload, &e.payload_encoding).map_err(|error| encoding(p, "payload", error))
}

fn encoding(p: &Planned, what: &'static str, error: base64::DecodeError) -> ReprocessError {
    ReprocessError::Encoding { location: p.entry.location.to_string(), what, error }
}
