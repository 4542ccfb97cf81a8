//! Dead-letter queue: the v1 envelope every unprocessable record is wrapped in, and its writers.
//!
//! The envelope is a contract with operators who read, filter and replay the
//! DLQ (`sda-reprocess`): fields are only ever added, and a change of meaning
//! is a new `schema_version`. Keys, payloads and header values are bytes; they
//! are stored as text when they are UTF-8 and as base64 otherwise, and each
//! says which (`*_encoding`).

pub mod file;
pub mod growth;
pub mod kafka;
pub mod read;

pub use file::FileDlq;
pub use kafka::KafkaDlq;

use std::sync::{Arc, Mutex};

/// A task's handle on the DLQ.
pub enum DlqWriter {
    /// A file is shared by every task of the process.
    File(Arc<Mutex<FileDlq>>),
    /// Boxed: a Kafka client's handles are large beside a shared file's pointer.
    Kafka(Box<KafkaDlq>),
}

impl DlqWriter {
    /// Writes entries: to the file's buffer, flushed; to the Kafka producer. They are durable, and
    /// count as delivered, once [`DlqWriter::checkpoint_positions`] returned (Kafka: acknowledged)
    /// and its file handle is synced.
    pub fn write(&mut self, entries: &[Envelope]) -> Result<(), DlqError> {
        match self {
            DlqWriter::File(f) => {
                let mut f = f.lock().unwrap_or_else(|e| e.into_inner());
                for e in entries {
                    f.append(e);
                }
                f.flush()
            }
            DlqWriter::Kafka(k) => k.write(entries),
        }
    }

    /// Says where the DLQ ends: the positions a checkpoint records, and (a file) the handle to sync
    /// before that checkpoint is written (see [`crate::sink::SinkWriter::checkpoint_positions`]).
    pub fn checkpoint_positions(&mut self) -> Result<crate::output::EndPositions, DlqError> {
        match self {
            DlqWriter::File(f) => {
                let mut f = f.lock().unwrap_or_else(|e| e.into_inner());
                let handle = f.sync_later()?;
                Ok((vec![f.position()], Some(handle)))
            }
            DlqWriter::Kafka(k) => Ok((k.positions()?, None)),
        }
    }

    /// Identities of the entries written after `positions`.
    pub fn read_back(&self, positions: &[(u32, u64)], mut each: impl FnMut(crate::dedup::Identity)) -> Result<u64, DlqError> {
        match self {
            DlqWriter::File(f) => {
                let f = f.lock().unwrap_or_else(|e| e.into_inner());
                // `(segment, offset)`; checkpoints from before rotation existed record segment 0, the first.
                let from = positions.first().map_or((1, 0), |&(segment, offset)| (segment.max(1), offset));
                f.lines_since(from, |line| {
                    if let Ok(e) = serde_json::from_slice::<Envelope>(line) {
                        each(e.identity());
                    }
                })
            }
            DlqWriter::Kafka(k) => k.read_back(positions, each),
        }
    }
}

use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// The envelope schema this host writes.
pub const SCHEMA_VERSION: u32 = 1;

/// Why a record was dead-lettered. A closed set: tools and alerts match on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ErrorKind {
    /// The input could not be parsed at all (e.g. a line that is not JSON).
    Deserialization,
    /// The input parsed but broke a rule of its schema.
    Validation,
    /// An operator rejected a record as arriving too late, and asked for it to be kept.
    LateData,
    /// An operator's own logic rejected the record for good.
    OperatorRejected,
    /// An operator kept calling the record transient until the retries ran out.
    RetriesExhausted,
    /// The plugin trapped (a panic, an out-of-bounds access, a broken ABI).
    PluginTrap,
    /// The plugin ran past its call deadline.
    PluginTimeout,
    /// The plugin asked for more memory than its cap.
    PluginMemory,
    /// A sink refused the record for good.
    SinkRejected,
    /// The input record is longer than its source's `max_record_bytes`: skipped without being held
    /// whole; the entry keeps its size and a prefix.
    RecordTooLarge,
}

impl ErrorKind {
    /// Every kind, in the order of the documentation.
    pub const ALL: [ErrorKind; 10] = [
        ErrorKind::Deserialization,
        ErrorKind::Validation,
        ErrorKind::LateData,
        ErrorKind::OperatorRejected,
        ErrorKind::RetriesExhausted,
        ErrorKind::PluginTrap,
        ErrorKind::PluginTimeout,
        ErrorKind::PluginMemory,
        ErrorKind::SinkRejected,
        ErrorKind::RecordTooLarge,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Deserialization => "Deserialization",
            ErrorKind::Validation => "Validation",
            ErrorKind::LateData => "LateData",
            ErrorKind::OperatorRejected => "OperatorRejected",
            ErrorKind::RetriesExhausted => "RetriesExhausted",
            ErrorKind::PluginTrap => "PluginTrap",
            ErrorKind::PluginTimeout => "PluginTimeout",
            ErrorKind::PluginMemory => "PluginMemory",
            ErrorKind::SinkRejected => "SinkRejected",
            ErrorKind::RecordTooLarge => "RecordTooLarge",
        }
    }
}

/// Where in the pipeline the record failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Source,
    Operator,
    Sink,
}

/// Where the failed record (or the input it was derived from) was read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourcePosition {
    /// The source's name in `pipeline.toml`.
    pub name: String,
    /// For a file source: its path.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub file: Option<String>,
    /// For a Kafka source: its topic.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub topic: Option<String>,
    pub partition: u32,
    /// Offset of the source record; `None` for output of a window closing, which has no single input.
    pub offset: Option<u64>,
}

/// Bytes stored as text when possible.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    Utf8,
    Base64,
}

/// Encodes bytes for the envelope.
pub fn encode_bytes(bytes: &[u8]) -> (String, Encoding) {
    match std::str::from_utf8(bytes) {
        Ok(text) => (text.to_string(), Encoding::Utf8),
        Err(_) => (base64::engine::general_purpose::STANDARD.encode(bytes), Encoding::Base64),
    }
}

/// Decodes bytes stored by [`encode_bytes`].
pub fn decode_bytes(text: &str, encoding: &Encoding) -> Result<Vec<u8>, base64::DecodeError> {
    match encoding {
        Encoding::Utf8 => Ok(text.as_bytes().to_vec()),
        Encoding::Base64 => base64::engine::general_purpose::STANDARD.decode(text),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderEntry {
    pub name: String,
    pub value: String,
    pub encoding: Encoding,
}

/// One dead-letter entry, schema version 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub schema_version: u32,
    /// RFC 3339, UTC, milliseconds.
    pub failed_at: String,
    pub pipeline: String,
    /// Name of the operator (or source, or sink: see `stage`) where it failed.
    pub operator: String,
    pub stage: Stage,
    /// `sha256:<hex>` of the plugin that failed it; `None` outside operators.
    pub plugin_digest: Option<String>,
    pub error_kind: ErrorKind,
    pub error_message: String,
    /// How many times it was retried before being dead-lettered.
    pub retry_count: u32,
    pub source: SourcePosition,
    /// Sequence number of the last checkpoint before the failure, if any.
    pub checkpoint_seq: Option<u64>,
    pub key: String,
    pub key_encoding: Encoding,
    pub payload: String,
    pub payload_encoding: Encoding,
    pub headers: Vec<HeaderEntry>,
}

/// The failed record's own content.
pub struct FailedRecord<'a> {
    pub key: &'a [u8],
    pub payload: &'a [u8],
    pub headers: Vec<(&'a [u8], &'a [u8])>,
}

/// Everything about a failure but the record's content.
pub struct FailureContext<'a> {
    pub pipeline: &'a str,
    pub operator: &'a str,
    pub stage: Stage,
    pub plugin_digest: Option<&'a str>,
    pub error_kind: ErrorKind,
    pub error_message: String,
    pub retry_count: u32,
    pub source: SourcePosition,
    pub checkpoint_seq: Option<u64>,
}

impl Envelope {
    pub fn new(context: FailureContext<'_>, record: FailedRecord<'_>) -> Envelope {
        let (key, key_encoding) = encode_bytes(record.key);
        let (payload, payload_encoding) = encode_bytes(record.payload);
        Envelope {
            schema_version: SCHEMA_VERSION,
            failed_at: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            pipeline: context.pipeline.to_string(),
            operator: context.operator.to_string(),
            stage: context.stage,
            plugin_digest: context.plugin_digest.map(str::to_string),
            error_kind: context.error_kind,
            error_message: context.error_message,
            retry_count: context.retry_count,
            source: context.source,
            checkpoint_seq: context.checkpoint_seq,
            key,
            key_encoding,
            payload,
            payload_encoding,
            headers: record
                .headers
                .into_iter()
                .map(|(name, value)| {
                    let (value, encoding) = encode_bytes(value);
                    HeaderEntry { name: String::from_utf8_lossy(name).into_owned(), value, encoding }
                })
                .collect(),
        }
    }
}

impl Envelope {
    /// What makes two entries the same failure: where and how it failed, and
    /// the record. Not `failed_at`: a replay fails the same record again later.
    pub fn identity(&self) -> crate::dedup::Identity {
        let offset = self.source.offset.map(|o| o.to_string()).unwrap_or_default();
        crate::dedup::identity(&[
            self.operator.as_bytes(),
            self.error_kind.as_str().as_bytes(),
            self.source.name.as_bytes(),
            offset.as_bytes(),
            self.key.as_bytes(),
            self.payload.as_bytes(),
        ])
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DlqError {
    #[error("dead-letter queue `{}`: {error}", path.display())]
    Io { path: std::path::PathBuf, error: std::io::Error },
    #[error("dead-letter topic `{topic}`: {message}")]
    Kafka { topic: String, message: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_bytes_round_trip_through_base64_and_text_stays_text() {
        assert_eq!(encode_bytes(b"hello"), ("hello".to_string(), Encoding::Utf8));
        let (text, enc) = encode_bytes(&[0xff, 0x00, 0x10]);
        assert_eq!(enc, Encoding::Base64);
        assert_eq!(decode_bytes(&text, &enc).unwrap(), vec![0xff, 0x00, 0x10]);
    }

    #[test]
    fn envelope_serializes_with_the_documented_field_names() {
        let env = Envelope::new(
            FailureContext {
                pipeline: "p",
                operator: "correlator",
                stage: Stage::Operator,
                plugin_digest: Some("sha256:ab"),
                error_kind: ErrorKind::Validation,
                error_message: "bad".into(),
                retry_count: 0,
                source: SourcePosition { name: "obs".into(), file: Some("in.jsonl".into()), topic: None, partition: 0, offset: Some(42) },
                checkpoint_seq: None,
            },
            FailedRecord { key: b"k", payload: b"{}", headers: vec![(b"h", b"v")] },
        );
        let json: serde_json::Value = serde_json::to_value(&env).unwrap();
        for field in [
            "schema_version",
            "failed_at",
            "pipeline",
            "operator",
            "plugin_digest",
            "error_kind",
            "error_message",
            "retry_count",
            "source",
            "checkpoint_seq",
            "key",
            "payload",
            "headers",
        ] {
            assert!(json.get(field).is_some(), "missing `{field}` in {json}");
        }
        assert_eq!(json["error_kind"], "Validation");
        assert_eq!(json["source"]["offset"], 42);
        assert_eq!(json["source"]["file"], "in.jsonl");
        let back: Envelope = serde_json::from_value(json).unwrap();
        assert_eq!(back, env);
    }
}
