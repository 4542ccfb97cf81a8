//! The checkpoint file: what one task needs to resume exactly where it left off, encoded with postcard and checksummed.
//!
//! Layout: `MAGIC` (8 bytes) | format version (u32 LE) | body length (u64 LE) |
//! CRC-32C of the body (u32 LE) | body (postcard of [`Checkpoint`]). Postcard's
//! wire format is documented and stable; a change to [`Checkpoint`] that is not
//! purely additive at the end is a new `FORMAT_VERSION`.

use crate::dedup::SeenSetSnapshot;
use serde::{Deserialize, Serialize};

/// First bytes of every checkpoint file.
pub const MAGIC: [u8; 8] = *b"SDACKPT\0";
/// Version of the layout below and of [`Checkpoint`]: 2 added [`Checkpoint::input`], 3
/// [`Checkpoint::frontier`]. Formats 1 and 2 are still read.
pub const FORMAT_VERSION: u32 = 3;
/// The oldest format this host reads.
pub const OLDEST_FORMAT_VERSION: u32 = 1;
/// Extension of checkpoint files.
pub const EXTENSION: &str = "sdackpt";
const PREFIX_BYTES: usize = 8 + 4 + 8 + 4;

/// Who wrote a checkpoint and for what: a checkpoint is only restored into the
/// same pipeline (fingerprint) and task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub pipeline: String,
    /// Digest of the pipeline's structure (see `graph::Plan::fingerprint`).
    pub fingerprint: String,
    /// The task: source name and partition, e.g. `observations-0`.
    pub task: String,
    /// Increases by one with every checkpoint of the task.
    pub sequence: u64,
    /// Wall-clock time it was taken, Unix ms.
    pub created_at_ms: u64,
    /// The delivery guarantee the pipeline ran with.
    pub guarantee: String,
    /// `sda-pipeline` version that wrote it.
    pub host_version: String,
}

/// One operator's state, and what produced it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorState {
    pub name: String,
    pub plugin_digest: String,
    pub wit_version: String,
    pub state_version: u32,
    pub state: Vec<u8>,
}

/// Where a sink (or the DLQ) stood, and what it had delivered recently.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SinkState {
    pub name: String,
    /// Where its output ended when the checkpoint was taken, per partition:
    /// a file's length (partition 0), a Kafka topic's end offsets. Recovery
    /// re-reads what was written after these.
    pub positions: Vec<(u32, u64)>,
    /// A sink: what a replay from this checkpoint still owes it (see `crate::ledger`; identities
    /// may repeat, one entry per debt). The DLQ: the dead letters it delivered recently.
    /// (Exactly-once only.)
    pub delivered: SeenSetSnapshot,
}

/// The consistent cut of one task between two batches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub header: Header,
    pub operators: Vec<OperatorState>,
    /// Source name and the offset to resume reading from.
    pub source: String,
    pub partition: u32,
    pub offset: u64,
    pub sinks: Vec<SinkState>,
    pub dlq: SinkState,
    /// Keys the source has passed on recently, when source deduplication is on.
    pub source_seen: Option<SeenSetSnapshot>,
    /// A file source: what the file held just before `offset`, so that recovery can tell the file
    /// it resumes in from a replaced or truncated one (`None` for Kafka, and in format 1).
    pub input: Option<InputFingerprint>,
    /// A Kafka source read whole (`assignment = "all"`), whose `offset` is a position in the merge of its
    /// partitions: per partition, the first offset not yet handed on there (`None` for other sources, and
    /// in formats 1 and 2).
    pub frontier: Option<Vec<(u32, u64)>>,
}

/// The last bytes of a file before an offset: `len` of them (all, up to [`InputFingerprint::MAX_BYTES`]),
/// and their CRC-32C.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputFingerprint {
    pub len: u32,
    pub crc32c: u32,
}

impl InputFingerprint {
    /// How many bytes before the offset are compared: enough to tell files apart, cheap to read at
    /// every checkpoint.
    pub const MAX_BYTES: u64 = 4096;
}

/// Format 2: format 3 without `frontier`.
#[derive(Deserialize)]
struct CheckpointV2 {
    header: Header,
    operators: Vec<OperatorState>,
    source: String,
    partition: u32,
    offset: u64,
    sinks: Vec<SinkState>,
    dlq: SinkState,
    source_seen: Option<SeenSetSnapshot>,
    input: Option<InputFingerprint>,
}

impl From<CheckpointV2> for Checkpoint {
    fn from(v2: CheckpointV2) -> Self {
        let CheckpointV2 { header, operators, source, partition, offset, sinks, dlq, source_seen, input } = v2;
        Checkpoint { header, operators, source, partition, offset, sinks, dlq, source_seen, input, frontier: None }
    }
}

/// Format 1: format 2 without `input`.
#[derive(Deserialize)]
struct CheckpointV1 {
    header: Header,
    operators: Vec<OperatorState>,
    source: String,
    partition: u32,
    offset: u64,
    sinks: Vec<SinkState>,
    dlq: SinkState,
    source_seen: Option<SeenSetSnapshot>,
}

impl From<CheckpointV1> for Checkpoint {
    fn from(v1: CheckpointV1) -> Self {
        let CheckpointV1 { header, operators, source, partition, offset, mut sinks, dlq, source_seen } = v1;
        // Format 1 saved every output a sink delivered in the last hour, not what a replay owes it
        // (`crate::ledger`): read as debts, they would skip new outputs equal to old ones. What a
        // replay from this checkpoint owes, the sink's read-back after its positions finds.
        for sink in &mut sinks {
            sink.delivered = SeenSetSnapshot::default();
        }
        Checkpoint { header, operators, source, partition, offset, sinks, dlq, source_seen, input: None, frontier: None }
    }
}

/// Why bytes are not a usable checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("not a checkpoint file (bad magic bytes)")]
    BadMagic,
    #[error("written in checkpoint format {found}; this host reads formats {OLDEST_FORMAT_VERSION} to {FORMAT_VERSION}")]
    UnsupportedVersion { found: u32 },
    #[error("truncated: {actual} bytes where the header promises {expected}")]
    Truncated { expected: u64, actual: u64 },
    #[error("checksum mismatch (stored {stored:08x}, computed {computed:08x}): the file is corrupt")]
    Checksum { stored: u32, computed: u32 },
    #[error("the body does not decode: {0}")]
    Decode(String),
}

impl Checkpoint {
    /// Encodes to the file layout.
    pub fn encode(&self) -> Vec<u8> {
        let body = postcard::to_stdvec(self).expect("a checkpoint always encodes");
        let mut out = Vec::with_capacity(PREFIX_BYTES + body.len());
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&(body.len() as u64).to_le_bytes());
        out.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// Decodes and verifies a checkpoint file's bytes.
    pub fn decode(bytes: &[u8]) -> Result<Checkpoint, FormatError> {
        let body = verified_body(bytes)?;
        let decode_error = |e: postcard::Error| FormatError::Decode(e.to_string());
        match u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")) {
            1 => postcard::from_bytes::<CheckpointV1>(body).map(Checkpoint::from).map_err(decode_error),
            2 => postcard::from_bytes::<CheckpointV2>(body).map(Checkpoint::from).map_err(decode_error),
            _ => postcard::from_bytes(body).map_err(decode_error),
        }
    }
}

/// The body of a checkpoint file, after checking magic, version, length and checksum.
pub fn verified_body(bytes: &[u8]) -> Result<&[u8], FormatError> {
    if bytes.len() < 8 || bytes[..8] != MAGIC {
        return Err(FormatError::BadMagic);
    }
    if bytes.len() < PREFIX_BYTES {
        return Err(FormatError::Truncated { expected: PREFIX_BYTES as u64, actual: bytes.len() as u64 });
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if !(OLDEST_FORMAT_VERSION..=FORMAT_VERSION).contains(&version) {
        return Err(FormatError::UnsupportedVersion { found: version });
    }
    let length = u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes"));
    let stored = u32::from_le_bytes(bytes[20..24].try_into().expect("4 bytes"));
    let body = &bytes[PREFIX_BYTES..];
    if body.len() as u64 != length {
        return Err(FormatError::Truncated { expected: PREFIX_BYTES as u64 + length, actual: bytes.len() as u64 });
    }
    let computed = crc32c::crc32c(body);
    if computed != stored {
        return Err(FormatError::Checksum { stored, computed });
    }
    Ok(body)
}

/// File name of checkpoint `sequence`: zero-padded so names sort by sequence.
pub fn file_name(sequence: u64) -> String {
    format!("ckpt-{sequence:020}.{EXTENSION}")
}

/// The sequence number in a checkpoint file name, if it is one.
pub fn sequence_of(name: &str) -> Option<u64> {
    name.strip_prefix("ckpt-")?.strip_suffix(&format!(".{EXTENSION}"))?.parse().ok()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample() -> Checkpoint {
        Checkpoint {
            header: Header {
                pipeline: "p".into(),
                fingerprint: "f".into(),
                task: "obs-0".into(),
                sequence: 7,
                created_at_ms: 1,
                guarantee: "exactly-once".into(),
                host_version: "0.1.0".into(),
            },
            operators: vec![OperatorState {
                name: "correlator".into(),
                plugin_digest: "sha256:ab".into(),
                wit_version: "0.1.0".into(),
                state_version: 1,
                state: vec![1, 2, 3],
            }],
            source: "obs".into(),
            partition: 0,
            offset: 12345,
            sinks: vec![SinkState {
                name: "alerts".into(),
                positions: vec![(0, 99)],
                delivered: SeenSetSnapshot { entries: vec![(42, 1000)] },
            }],
            dlq: SinkState { name: "dlq".into(), positions: vec![(0, 0)], delivered: SeenSetSnapshot { entries: vec![(9, 5)] } },
            source_seen: None,
            input: Some(InputFingerprint { len: 4096, crc32c: 0xdead_beef }),
            frontier: Some(vec![(0, 17), (1, 4)]),
        }
    }

    /// A checkpoint file of format `version` around `body`.
    fn framed(version: u32, body: &[u8]) -> Vec<u8> {
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&version.to_le_bytes());
        bytes.extend_from_slice(&(body.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&crc32c::crc32c(body).to_le_bytes());
        bytes.extend_from_slice(body);
        bytes
    }

    #[test]
    fn round_trips() {
        let c = sample();
        assert_eq!(Checkpoint::decode(&c.encode()).unwrap(), c);
    }

    #[test]
    fn detects_every_kind_of_damage() {
        let bytes = sample().encode();
        assert_eq!(Checkpoint::decode(b"nonsense"), Err(FormatError::BadMagic));
        assert!(matches!(Checkpoint::decode(&bytes[..bytes.len() - 1]), Err(FormatError::Truncated { .. })));
        assert!(matches!(Checkpoint::decode(&bytes[..10]), Err(FormatError::Truncated { .. })));
        for at in [PREFIX_BYTES, bytes.len() / 2, bytes.len() - 1] {
            let mut flipped = bytes.clone();
            flipped[at] ^= 0x01;
            assert!(matches!(Checkpoint::decode(&flipped), Err(FormatError::Checksum { .. })), "byte {at}");
        }
        let mut future = bytes.clone();
        future[8] = 4;
        assert_eq!(Checkpoint::decode(&future), Err(FormatError::UnsupportedVersion { found: 4 }));
    }

    /// A checkpoint's fields as format 1 laid them out (format 2 appended `input`, format 3 `frontier`).
    #[derive(Serialize)]
    struct WrittenAsV1<'a> {
        header: &'a Header,
        operators: &'a [OperatorState],
        source: &'a str,
        partition: u32,
        offset: u64,
        sinks: &'a [SinkState],
        dlq: &'a SinkState,
        source_seen: &'a Option<SeenSetSnapshot>,
    }

    impl<'a> WrittenAsV1<'a> {
        fn of(c: &'a Checkpoint) -> Self {
            WrittenAsV1 {
                header: &c.header,
                operators: &c.operators,
                source: &c.source,
                partition: c.partition,
                offset: c.offset,
                sinks: &c.sinks,
                dlq: &c.dlq,
                source_seen: &c.source_seen,
            }
        }
    }

    #[test]
    fn a_checkpoint_of_format_1_reads_without_an_input_fingerprint() {
        let c = sample();
        let bytes = framed(1, &postcard::to_stdvec(&WrittenAsV1::of(&c)).unwrap());
        let mut expected = Checkpoint { input: None, frontier: None, ..c };
        expected.sinks[0].delivered = SeenSetSnapshot::default();
        assert_eq!(Checkpoint::decode(&bytes).unwrap(), expected, "sinks' delivery sets are dropped, the DLQ's kept");
    }

    #[test]
    fn a_checkpoint_of_format_2_reads_without_a_frontier() {
        let c = sample();
        // Postcard lays out a struct as its fields in order, as it does a tuple: format 1's fields, then `input`.
        let bytes = framed(2, &postcard::to_stdvec(&(WrittenAsV1::of(&c), &c.input)).unwrap());
        assert_eq!(Checkpoint::decode(&bytes).unwrap(), Checkpoint { frontier: None, ..c });
    }

    #[test]
    fn names_sort_by_sequence() {
        assert_eq!(file_name(42), "ckpt-00000000000000000042.sdackpt");
        assert_eq!(sequence_of(&file_name(42)), Some(42));
        assert_eq!(sequence_of("ckpt-42.tmp"), None);
        assert!(file_name(9) < file_name(10));
    }
}
