//! Sources: where records enter, in batches, each record with the offset it came from.
//!
//! A source hands out a [`SourceBatch`]: the records packed in the operator
//! framing, the offset of each, and the lines it could not read at all
//! ([`Reject`]), which the task dead-letters. A source never stops on bad input.

pub mod file;
pub mod kafka;
pub mod merged;
pub mod prefetch;

pub use file::FileSource;
pub use kafka::KafkaPartitionSource;
pub use merged::MergedKafkaSource;
pub use prefetch::Prefetching;

use crate::checkpoint::format::InputFingerprint;

/// A task's source: a file, one partition of a Kafka topic, or all of them merged.
pub enum SourceReader {
    File(FileSource),
    /// A file read to its end, read ahead by a thread of its own (batches of a fixed size).
    FileAhead(Prefetching),
    Kafka(KafkaPartitionSource),
    /// Every partition of a Kafka topic in one task (`assignment = "all"`); its offsets are positions in the merge.
    KafkaMerged(MergedKafkaSource),
}

impl SourceReader {
    /// A file source: read ahead on its own thread unless followed (a followed file's reads
    /// mostly find nothing new, and the task paces them).
    pub fn file(source: FileSource, follow: bool, batch_size: u32) -> SourceReader {
        if follow { SourceReader::File(source) } else { SourceReader::FileAhead(Prefetching::start(source, batch_size)) }
    }

    pub fn read_batch(&mut self, max_records: u32, batch: &mut SourceBatch) -> Result<ReadStatus, SourceError> {
        match self {
            SourceReader::File(f) => f.read_batch(max_records, batch),
            SourceReader::FileAhead(f) => f.read_batch(batch),
            SourceReader::Kafka(k) => k.read_batch(max_records, batch),
            SourceReader::KafkaMerged(k) => k.read_batch(max_records, batch),
        }
    }

    /// Where the next read starts: the offset a checkpoint records.
    pub fn offset(&self) -> u64 {
        match self {
            SourceReader::File(f) => f.offset(),
            SourceReader::FileAhead(f) => f.offset(),
            SourceReader::Kafka(k) => k.offset(),
            SourceReader::KafkaMerged(k) => k.offset(),
        }
    }

    /// A file source: what its file holds just before `offset`, for a checkpoint of `offset` (see
    /// [`file::check_resume_point`]); `None` for Kafka, whose offsets name records, not bytes.
    pub fn input_fingerprint(&self, offset: u64) -> Result<Option<InputFingerprint>, SourceError> {
        match self {
            SourceReader::File(f) => f.input_fingerprint(offset).map(Some),
            SourceReader::FileAhead(f) => f.input_fingerprint(offset).map(Some),
            SourceReader::Kafka(_) | SourceReader::KafkaMerged(_) => Ok(None),
        }
    }

    /// A merged source: its frontier at `offset` (per partition, the first offset not handed on), for a
    /// checkpoint of `offset`; `None` for a source whose offset says it all.
    pub fn frontier_at(&mut self, offset: u64) -> Result<Option<Vec<(u32, u64)>>, SourceError> {
        match self {
            SourceReader::KafkaMerged(k) => k.frontier_at(offset).map(Some),
            _ => Ok(None),
        }
    }

    pub fn partition(&self) -> u32 {
        match self {
            SourceReader::File(_) | SourceReader::FileAhead(_) | SourceReader::KafkaMerged(_) => 0,
            SourceReader::Kafka(k) => k.partition() as u32,
        }
    }

    /// Moves the next read back (or on) to `offset`: after a plugin fault,
    /// the task replays from its last checkpoint.
    pub fn seek(&mut self, offset: u64) -> Result<(), SourceError> {
        match self {
            SourceReader::File(f) => f.seek(offset),
            SourceReader::FileAhead(f) => f.seek(offset),
            SourceReader::Kafka(k) => k.seek(offset),
            SourceReader::KafkaMerged(k) => k.seek(offset),
        }
    }
}

/// Records read from a source in one go.
#[derive(Debug, Default)]
pub struct SourceBatch {
    /// Packed records (see `sda_wire`).
    pub packed: Vec<u8>,
    pub count: u32,
    /// Offset each record came from, by index.
    pub offsets: Vec<u64>,
    /// Input that is not a record at all, to dead-letter.
    pub rejects: Vec<Reject>,
    /// Offset to resume from after this batch.
    pub end_offset: u64,
    /// A merged source's items (records and rejects) in order: the partition and offset each
    /// offset (a position in the merge) stands for. Empty for other sources.
    pub origins: Vec<Origin>,
}

/// Where an item of a merged source came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    /// Its offset in the batch: a position in the merge.
    pub position: u64,
    pub partition: u32,
    pub offset: u64,
}

impl SourceBatch {
    /// The partition and offset the item at `offset` came from, if this batch is a merge's.
    pub fn origin(&self, offset: u64) -> Option<(u32, u64)> {
        let i = self.origins.binary_search_by_key(&offset, |o| o.position).ok()?;
        Some((self.origins[i].partition, self.origins[i].offset))
    }

    /// The position in the merge of the item read at `offset` of `partition`, if this batch is a merge's and has it.
    pub fn position_of(&self, partition: u32, offset: u64) -> Option<u64> {
        self.origins.iter().find(|o| o.partition == partition && o.offset == offset).map(|o| o.position)
    }

    /// Records `range` of this batch as a batch of their own (no rejects), resuming
    /// after the last of them: the pieces a batch is cut into to find a poison record.
    pub fn slice(&self, range: std::ops::Range<usize>) -> SourceBatch {
        let reader = sda_wire::BatchReader::new(&self.packed).expect("a source packs well-formed batches");
        let mut writer = sda_wire::BatchWriter::new();
        for record in reader.skip(range.start).take(range.len()) {
            writer.push_view(None, &record.expect("a source packs well-formed batches"));
        }
        SourceBatch {
            count: writer.len(),
            packed: writer.finish(),
            offsets: self.offsets[range.clone()].to_vec(),
            rejects: Vec::new(),
            end_offset: self.offsets.get(range.end).copied().unwrap_or(self.end_offset),
            origins: self.origins.clone(),
        }
    }

    /// Keeps only the records `keep` accepts (in order, with their offsets);
    /// returns how many were dropped.
    pub fn retain(&mut self, mut keep: impl FnMut(&sda_wire::RecordView<'_>) -> bool) -> usize {
        let mut writer = sda_wire::BatchWriter::with_capacity(self.packed.len());
        let mut offsets = Vec::with_capacity(self.offsets.len());
        let reader = sda_wire::BatchReader::new(&self.packed).expect("a source packs well-formed batches");
        for (record, &offset) in reader.zip(&self.offsets) {
            let record = record.expect("a source packs well-formed batches");
            if keep(&record) {
                writer.push_view(None, &record);
                offsets.push(offset);
            }
        }
        let dropped = self.offsets.len() - offsets.len();
        if dropped > 0 {
            self.count = writer.len();
            self.packed = writer.finish();
            self.offsets = offsets;
        }
        dropped
    }
}

/// A piece of input a source could not turn into a record.
#[derive(Debug, Clone)]
pub struct Reject {
    pub offset: u64,
    /// `Deserialization` (not JSON) or `RecordTooLarge`.
    pub kind: crate::dlq::ErrorKind,
    /// The record's key (a Kafka record's; empty for a line of a file).
    pub key: Vec<u8>,
    pub bytes: Vec<u8>,
    /// The record's headers, as (name, value).
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    pub message: String,
}

/// How much of a record longer than `max_record_bytes` its dead letter keeps.
pub const TOO_LARGE_PREFIX_BYTES: usize = 1024;

/// The dead letter's message for a record of `len` bytes over the limit.
pub fn too_large(len: u64, max_record_bytes: u64) -> String {
    format!(
        "record of {len} bytes is longer than the source's `max_record_bytes` = {max_record_bytes}: skipped (its first {} bytes are kept \
            here)",
        TOO_LARGE_PREFIX_BYTES.min(len as usize)
    )
}

/// What a read found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadStatus {
    /// More may follow right away.
    More,
    /// Input ended (the batch may still hold records).
    End,
    /// Nothing new yet; a followed source will be polled again.
    Idle,
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("source `{source_name}`: {message}")]
    Kafka { source_name: String, message: String },
    #[error("source `{source_name}`: cannot open `{}`: {error}", path.display())]
    Open { source_name: String, path: std::path::PathBuf, error: std::io::Error },
    #[error("source `{source_name}`: cannot read `{}` at byte {offset}: {error}", path.display())]
    Read { source_name: String, path: std::path::PathBuf, offset: u64, error: std::io::Error },
}
