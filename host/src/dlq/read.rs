//! Reading a dead-letter queue back: every entry of a file DLQ (all its segments) or a Kafka DLQ topic, checked, with where it was read, and the filters the tools select entries by.

use super::{Envelope, ErrorKind, SCHEMA_VERSION};
use rdkafka::consumer::Consumer;
use rdkafka::{Message, Offset, TopicPartitionList};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Where an entry was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A file segment and the 1-based line in it.
    File {
        path: PathBuf,
        line: u64,
    },
    Kafka {
        topic: String,
        partition: i32,
        offset: i64,
    },
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::File { path, line } => write!(f, "{}:{line}", path.display()),
            Location::Kafka { topic, partition, offset } => write!(f, "{topic}[{partition}]@{offset}"),
        }
    }
}

/// One entry and where it was read.
#[derive(Debug, Clone)]
pub struct Entry {
    pub envelope: Envelope,
    pub location: Location,
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read the dead-letter queue `{}`: {error}", path.display())]
    Io { path: PathBuf, error: std::io::Error },
    #[error(
        "{location}: a dead-letter entry of schema version {found}, written by a newer sda-pipeline \
         (this one reads version {SCHEMA_VERSION}); upgrade this tool to read it"
    )]
    NewerSchema { location: Location, found: u64 },
    #[error("{location}: not a dead-letter entry: {reason}")]
    Malformed { location: Location, reason: String },
    #[error("dead-letter topic `{topic}`: {message}")]
    Kafka { topic: String, message: String },
}

/// Every entry of the file DLQ at `path`: its closed segments oldest first, then the active one.
/// A last line without its newline (being written right now) is left out.
pub fn read_file(path: &Path) -> Result<Vec<Entry>, ReadError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |error| ReadError::Io { path, error }
    };
    let mut files: Vec<PathBuf> = super::file::closed_segments(path).map_err(io(path))?.into_iter().map(|(_, p)| p).collect();
    if path.exists() || files.is_empty() {
        files.push(path.to_path_buf());
    }
    let mut entries = Vec::new();
    for file in files {
        let text = match std::fs::read(&file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io(&file)(e)),
        };
        let whole = match text.iter().rposition(|&b| b == b'\n') {
            Some(i) => &text[..=i],
            None => &text[..0],
        };
        for (i, line) in whole.split(|&b| b == b'\n').enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let location = Location::File { path: file.clone(), line: i as u64 + 1 };
            entries.push(Entry { envelope: parse(line, &location)?, location });
        }
    }
    Ok(entries)
}

/// Every entry of the Kafka DLQ topic, from the start of each partition to its end when read.
pub fn read_kafka(brokers: &str, topic: &str, librdkafka: &[(String, String)], timeout: Duration) -> Result<Vec<Entry>, ReadError> {
    let fail = |message: String| ReadError::Kafka { topic: topic.to_string(), message };
    let mut config = crate::kafka::client_config(brokers, librdkafka);
    config
        .set("group.id", "sda-dlq-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed");
    crate::kafka::wait_briefly_at_the_end(&mut config, librdkafka);
    let consumer: crate::kafka::AssignedReader = crate::kafka::AssignedReader::new(config.create().map_err(|e| fail(e.to_string()))?);
    let metadata = consumer.fetch_metadata(Some(topic), timeout).map_err(|e| fail(format!("cannot reach the brokers `{brokers}`: {e}")))?;
    let partitions: Vec<i32> =
        metadata.topics().iter().find(|t| t.name() == topic).map(|t| t.partitions().iter().map(|p| p.id()).collect()).unwrap_or_default();
    if partitions.is_empty() {
        return Err(fail("the topic does not exist or has no partitions".into()));
    }
    let mut tpl = TopicPartitionList::new();
    for &p in &partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning).map_err(|e| fail(e.to_string()))?;
    }
    consumer.assign(&tpl).map_err(|e| fail(e.to_string()))?;
    let mut open: std::collections::BTreeSet<i32> = partitions.iter().copied().collect();
    let mut entries = Vec::new();
    let deadline = std::time::Instant::now() + timeout;
    while !open.is_empty() {
        if std::time::Instant::now() > deadline {
            return Err(fail(format!("partitions {open:?} were not read to their end within {timeout:?}")));
        }
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                open.remove(&p);
            }
            Some(Err(e)) => return Err(fail(e.to_string())),
            Some(Ok(m)) => {
                let location = Location::Kafka { topic: topic.to_string(), partition: m.partition(), offset: m.offset() };
                entries.push(Entry { envelope: parse(m.payload().unwrap_or_default(), &location)?, location });
            }
        }
    }
    Ok(entries)
}

/// Reads every entry of the DLQ a plan writes to.
pub fn read_plan_dlq(dlq: &crate::graph::DlqPlan) -> Result<Vec<Entry>, ReadError> {
    match dlq {
        crate::graph::DlqPlan::File { path, .. } => read_file(path),
        crate::graph::DlqPlan::Kafka { brokers, topic, librdkafka, connect_timeout, .. } => {
            read_kafka(brokers, topic, librdkafka, (*connect_timeout).max(Duration::from_secs(30)))
        }
    }
}

/// An envelope, its schema version checked first so a newer entry is refused by name rather than misread.
fn parse(bytes: &[u8], location: &Location) -> Result<Envelope, ReadError> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| ReadError::Malformed { location: location.clone(), reason: format!("not JSON: {e}") })?;
    let version = value
        .get("schema_version")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| ReadError::Malformed { location: location.clone(), reason: "no `schema_version`".into() })?;
    if version > u64::from(SCHEMA_VERSION) || version == 0 {
        return Err(ReadError::NewerSchema { location: location.clone(), found: version });
    }
    serde_json::from_value(value).map_err(|e| ReadError::Malformed { location: location.clone(), reason: e.to_string() })
}

/// Which entries a command works on; every condition given must hold.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub error_kinds: Vec<ErrorKind>,
    pub operator: Option<String>,
    /// `failed_at` at or after this.
    pub since: Option<SystemTime>,
    /// `failed_at` before this.
    pub until: Option<SystemTime>,
    /// Source offsets, inclusive at both ends.
    pub source_offsets: Option<(Option<u64>, Option<u64>)>,
    /// A prefix of `plugin_digest` (`sha256:3af2` or `3af2`).
    pub plugin_digest: Option<String>,
    pub schema_version: Option<u32>,
}

impl Filter {
    pub fn matches(&self, e: &Envelope) -> bool {
        if !self.error_kinds.is_empty() && !self.error_kinds.contains(&e.error_kind) {
            return false;
        }
        if self.operator.as_ref().is_some_and(|o| *o != e.operator) {
            return false;
        }
        if self.since.is_some() || self.until.is_some() {
            let Ok(at) = humantime::parse_rfc3339(&e.failed_at) else { return false };
            if self.since.is_some_and(|s| at < s) || self.until.is_some_and(|u| at >= u) {
                return false;
            }
        }
        if let Some((from, to)) = self.source_offsets {
            let Some(offset) = e.source.offset else { return false };
            if from.is_some_and(|f| offset < f) || to.is_some_and(|t| offset > t) {
                return false;
            }
        }
        if let Some(prefix) = &self.plugin_digest {
            let digest = e.plugin_digest.as_deref().unwrap_or("");
            let bare = digest.strip_prefix("sha256:").unwrap_or(digest);
            if !(digest.starts_with(prefix.as_str()) || bare.starts_with(prefix.as_str())) {
                return false;
            }
        }
        if self.schema_version.is_some_and(|v| v != e.schema_version) {
            return false;
        }
        true
    }
}

/// Parses an error kind by its name, case-insensitively; the error lists the valid names.
pub fn parse_error_kind(name: &str) -> Result<ErrorKind, String> {
    ErrorKind::ALL.iter().copied().find(|k| k.as_str().eq_ignore_ascii_case(name.trim())).ok_or_else(|| {
        let names: Vec<&str> = ErrorKind::ALL.iter().map(|k| k.as_str()).collect();
        format!("unknown error kind `{name}`; the kinds are {}", names.join(", "))
    })
}

/// Parses `A..B`, `A..`, `..B` or `A` (inclusive).
pub fn parse_offset_range(text: &str) -> Result<(Option<u64>, Option<u64>), String> {
    let number = |s: &str| -> Result<Option<u64>, String> {
        if s.is_empty() { Ok(None) } else { s.parse().map(Some).map_err(|_| format!("`{s}` is not an offset (a whole number)")) }
    };
    match text.split_once("..") {
        Some((a, b)) => Ok((number(a.trim())?, number(b.trim())?)),
        None => {
            let n = number(text.trim())?;
            Ok((n, n))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_ranges_parse_and_bad_ones_say_what_is_valid() {
        assert_eq!(parse_error_kind("plugintrap"), Ok(ErrorKind::PluginTrap));
        let e = parse_error_kind("Trap").unwrap_err();
        assert!(e.contains("PluginTrap") && e.contains("Deserialization"), "{e}");
        assert_eq!(parse_offset_range("10..20"), Ok((Some(10), Some(20))));
        assert_eq!(parse_offset_range("..20"), Ok((None, Some(20))));
        assert_eq!(parse_offset_range("7"), Ok((Some(7), Some(7))));
        assert!(parse_offset_range("a..b").is_err());
    }

    #[test]
    fn a_newer_schema_is_refused_by_name_and_location() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dlq.jsonl");
        std::fs::write(&path, "{\"schema_version\":2,\"anything\":true}\n").unwrap();
        let e = read_file(&path).unwrap_err().to_string();
        assert!(e.contains("dlq.jsonl:1") && e.contains("schema version 2") && e.contains("upgrade"), "{e}");
        std::fs::write(&path, "not json\n").unwrap();
        let e = read_file(&path).unwrap_err().to_string();
        assert!(e.contains("dlq.jsonl:1: not a dead-letter entry"), "{e}");
    }
}
