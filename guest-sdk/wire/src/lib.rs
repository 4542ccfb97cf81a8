//! The packed batch framing of `sda:operator` (0.1.0 and 0.2.0 share it), and its failure taxonomy, shared by host and guests.
//!
//! Records cross the WebAssembly boundary as one `list<u8>` (see
//! `guest-sdk/wit/v0.2.0/FRAMING.md` for the byte layout): one copy in, one copy
//! out, no per-record lifting. This crate writes and reads that layout without
//! allocating per record; it knows nothing of wasmtime or wit-bindgen, so the
//! host, the guest SDK and benches all use the same code.

use std::fmt;

/// The event time the host passes to `on-watermark` after a batch when it has no watermark of its
/// own (it calls `on-watermark` after every batch): no news about event time, only the turn to do
/// the work the batch's records made due, such as screening the windows they closed.
pub const NO_WATERMARK: i64 = i64::MIN;

/// What the host does with an input record an operator could not handle
/// (the WIT `failure-kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// A passing problem: the host retries the record later.
    Transient,
    /// The record can never succeed: the host dead-letters it.
    Permanent,
    /// The record is deliberately dropped and counted, not dead-lettered.
    Discard,
}

/// Why a record failed, as the operator judges it (the WIT `failure-reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureReason {
    /// The payload could not be parsed.
    Deserialization,
    /// The payload parsed but broke a rule of its schema.
    Validation,
    /// The record arrived after its window closed.
    Late,
    /// The record repeats one already taken into account.
    Duplicate,
    /// The record is deliberately held back (e.g. an alert suppressed as a repeat).
    Suppressed,
    /// The operator's own logic rejected it.
    Operator,
}

impl FailureReason {
    /// The name used in counts and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::Deserialization => "deserialization",
            FailureReason::Validation => "validation",
            FailureReason::Late => "late",
            FailureReason::Duplicate => "duplicate",
            FailureReason::Suppressed => "suppressed",
            FailureReason::Operator => "operator",
        }
    }
}

/// The reserved output header (WIT 0.2.0) whose value is the record's place in its operator's output
/// order: the host merges the outputs of an operator's instances by it, then removes it (see `FRAMING.md`).
pub const ORDER_HEADER: &str = "sda-order";

/// Builds an [`ORDER_HEADER`] value from numbers, most significant first: big-endian, signed ones with
/// the sign bit flipped, so comparing the bytes compares the numbers.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct OrderKey(Vec<u8>);

impl OrderKey {
    pub fn new() -> OrderKey {
        OrderKey::default()
    }

    pub fn i64(mut self, value: i64) -> OrderKey {
        self.0.extend_from_slice(&((value as u64) ^ (1 << 63)).to_be_bytes());
        self
    }

    pub fn u64(mut self, value: u64) -> OrderKey {
        self.0.extend_from_slice(&value.to_be_bytes());
        self
    }

    pub fn u32(mut self, value: u32) -> OrderKey {
        self.0.extend_from_slice(&value.to_be_bytes());
        self
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// `origin` value meaning "not derived from a single input record".
pub const NO_ORIGIN: u32 = u32::MAX;

/// Bytes of the fixed head that precedes each record's variable parts.
pub const RECORD_HEAD_BYTES: usize = 4 + 8 + 4 + 4 + 4;

/// Bytes of the fixed head that precedes each header's name and value.
const HEADER_HEAD_BYTES: usize = 4 + 4;

/// A packed buffer that does not follow the framing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError {
    /// Byte offset in the buffer where reading failed.
    pub offset: usize,
    /// What was expected there.
    pub problem: FrameProblem,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameProblem {
    /// The buffer ended inside a record (or before the count).
    Truncated,
    /// Bytes remain after the last of `count` records.
    TrailingBytes { extra: usize },
    /// A length field points past the end of the buffer.
    LengthOutOfRange { length: u32 },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.problem {
            FrameProblem::Truncated => {
                write!(f, "packed batch ends early, at byte {}", self.offset)
            }
            FrameProblem::TrailingBytes { extra } => {
                write!(f, "packed batch has {extra} bytes after its last record (at byte {})", self.offset)
            }
            FrameProblem::LengthOutOfRange { length } => {
                write!(f, "packed batch has a length of {length} at byte {} that runs past its end", self.offset)
            }
        }
    }
}

impl std::error::Error for FrameError {}

/// One header of a record, borrowed from a packed buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    pub name: &'a [u8],
    pub value: &'a [u8],
}

/// One record, borrowed from a packed buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordView<'a> {
    /// Index of the input this output came from; `None` for inputs and for
    /// outputs with no single input.
    pub origin: Option<u32>,
    pub event_time_ms: i64,
    pub key: &'a [u8],
    pub payload: &'a [u8],
    header_count: u32,
    header_bytes: &'a [u8],
}

impl<'a> RecordView<'a> {
    /// Number of headers.
    pub fn header_count(&self) -> usize {
        self.header_count as usize
    }

    /// The headers, in order.
    pub fn headers(&self) -> Headers<'a> {
        Headers { remaining: self.header_count, bytes: self.header_bytes }
    }

    /// The value of the first header called `name`.
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers().find(|h| h.name == name.as_bytes()).map(|h| h.value)
    }
}

/// Iterator over a record's headers (already validated when the record was read).
#[derive(Debug, Clone)]
pub struct Headers<'a> {
    remaining: u32,
    bytes: &'a [u8],
}

impl<'a> Iterator for Headers<'a> {
    type Item = Header<'a>;

    fn next(&mut self) -> Option<Header<'a>> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let name_len = read_u32(self.bytes, 0) as usize;
        let value_len = read_u32(self.bytes, 4) as usize;
        let (name, rest) = self.bytes[HEADER_HEAD_BYTES..].split_at(name_len);
        let (value, rest) = rest.split_at(value_len);
        self.bytes = rest;
        Some(Header { name, value })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining as usize, Some(self.remaining as usize))
    }
}

impl ExactSizeIterator for Headers<'_> {}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

fn read_i64(bytes: &[u8], at: usize) -> i64 {
    i64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

/// Reads the records of a packed batch, checking the framing as it goes.
///
/// The iterator yields `Err` once, at the first framing problem, then stops.
/// After the last record it checks that nothing trails it.
#[derive(Debug, Clone)]
pub struct BatchReader<'a> {
    buf: &'a [u8],
    pos: usize,
    remaining: u32,
    failed: bool,
}

impl<'a> BatchReader<'a> {
    /// Starts reading `buf`; fails only if it is too short to hold a count.
    pub fn new(buf: &'a [u8]) -> Result<Self, FrameError> {
        if buf.len() < 4 {
            return Err(FrameError { offset: buf.len(), problem: FrameProblem::Truncated });
        }
        Ok(BatchReader { buf, pos: 4, remaining: read_u32(buf, 0), failed: false })
    }

    /// The number of records the batch declares.
    pub fn declared_count(buf: &[u8]) -> Result<u32, FrameError> {
        BatchReader::new(buf).map(|r| r.remaining)
    }

    /// Records not yet read.
    pub fn remaining(&self) -> u32 {
        self.remaining
    }

    /// Reads every record, or the first framing problem.
    pub fn read_all(buf: &'a [u8]) -> Result<Vec<RecordView<'a>>, FrameError> {
        let reader = Self::new(buf)?;
        let mut out = Vec::with_capacity(reader.remaining.min(1 << 20) as usize);
        for record in reader {
            out.push(record?);
        }
        Ok(out)
    }

    fn take(&mut self, len: u32, at_field: usize) -> Result<&'a [u8], FrameError> {
        let start = self.pos;
        let end = start
            .checked_add(len as usize)
            .filter(|&end| end <= self.buf.len())
            .ok_or(FrameError { offset: at_field, problem: FrameProblem::LengthOutOfRange { length: len } })?;
        self.pos = end;
        Ok(&self.buf[start..end])
    }

    fn read_record(&mut self) -> Result<RecordView<'a>, FrameError> {
        let head = self.pos;
        if self.buf.len() - head < RECORD_HEAD_BYTES {
            return Err(FrameError { offset: self.buf.len(), problem: FrameProblem::Truncated });
        }
        let origin = read_u32(self.buf, head);
        let event_time_ms = read_i64(self.buf, head + 4);
        let key_len = read_u32(self.buf, head + 12);
        let payload_len = read_u32(self.buf, head + 16);
        let header_count = read_u32(self.buf, head + 20);
        self.pos = head + RECORD_HEAD_BYTES;
        let key = self.take(key_len, head + 12)?;
        let payload = self.take(payload_len, head + 16)?;
        let headers_start = self.pos;
        for _ in 0..header_count {
            let at = self.pos;
            if self.buf.len() - at < HEADER_HEAD_BYTES {
                return Err(FrameError { offset: self.buf.len(), problem: FrameProblem::Truncated });
            }
            let name_len = read_u32(self.buf, at);
            let value_len = read_u32(self.buf, at + 4);
            self.pos = at + HEADER_HEAD_BYTES;
            self.take(name_len, at)?;
            self.take(value_len, at + 4)?;
        }
        Ok(RecordView {
            origin: (origin != NO_ORIGIN).then_some(origin),
            event_time_ms,
            key,
            payload,
            header_count,
            header_bytes: &self.buf[headers_start..self.pos],
        })
    }
}

impl<'a> Iterator for BatchReader<'a> {
    type Item = Result<RecordView<'a>, FrameError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        if self.remaining == 0 {
            if self.pos != self.buf.len() {
                self.failed = true;
                let extra = self.buf.len() - self.pos;
                return Some(Err(FrameError { offset: self.pos, problem: FrameProblem::TrailingBytes { extra } }));
            }
            return None;
        }
        self.remaining -= 1;
        match self.read_record() {
            Ok(record) => Some(Ok(record)),
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// Builds a packed batch record by record.
#[derive(Debug, Clone)]
pub struct BatchWriter {
    buf: Vec<u8>,
    count: u32,
}

impl Default for BatchWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl BatchWriter {
    pub fn new() -> Self {
        Self::with_capacity(256)
    }

    /// A writer whose buffer starts with room for `bytes` bytes.
    pub fn with_capacity(bytes: usize) -> Self {
        let mut buf = Vec::with_capacity(bytes.max(4));
        buf.extend_from_slice(&0u32.to_le_bytes());
        BatchWriter { buf, count: 0 }
    }

    /// Reuses `buf`'s allocation (its contents are discarded).
    pub fn reuse(mut buf: Vec<u8>) -> Self {
        buf.clear();
        buf.extend_from_slice(&0u32.to_le_bytes());
        BatchWriter { buf, count: 0 }
    }

    /// Records written so far.
    pub fn len(&self) -> u32 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes written so far, count included.
    pub fn byte_len(&self) -> usize {
        self.buf.len()
    }

    /// Appends one record with headers given as `(name, value)` pairs.
    pub fn push<'h>(
        &mut self,
        origin: Option<u32>,
        event_time_ms: i64,
        key: &[u8],
        payload: &[u8],
        headers: impl IntoIterator<Item = (&'h [u8], &'h [u8])>,
    ) {
        let head = self.buf.len();
        self.buf.reserve(RECORD_HEAD_BYTES + key.len() + payload.len());
        self.buf.extend_from_slice(&origin.unwrap_or(NO_ORIGIN).to_le_bytes());
        self.buf.extend_from_slice(&event_time_ms.to_le_bytes());
        self.buf.extend_from_slice(&len_u32(key.len()).to_le_bytes());
        self.buf.extend_from_slice(&len_u32(payload.len()).to_le_bytes());
        self.buf.extend_from_slice(&0u32.to_le_bytes());
        self.buf.extend_from_slice(key);
        self.buf.extend_from_slice(payload);
        let mut header_count = 0u32;
        for (name, value) in headers {
            self.buf.extend_from_slice(&len_u32(name.len()).to_le_bytes());
            self.buf.extend_from_slice(&len_u32(value.len()).to_le_bytes());
            self.buf.extend_from_slice(name);
            self.buf.extend_from_slice(value);
            header_count += 1;
        }
        self.buf[head + 20..head + 24].copy_from_slice(&header_count.to_le_bytes());
        self.count += 1;
    }

    /// Appends one record without headers.
    pub fn push_simple(&mut self, origin: Option<u32>, event_time_ms: i64, key: &[u8], payload: &[u8]) {
        self.push(origin, event_time_ms, key, payload, std::iter::empty());
    }

    /// Appends a record read from another batch, keeping its headers and
    /// replacing its origin.
    pub fn push_view(&mut self, origin: Option<u32>, record: &RecordView<'_>) {
        self.push(origin, record.event_time_ms, record.key, record.payload, record.headers().map(|h| (h.name, h.value)));
    }

    /// Appends every record of a well-formed packed batch, unchanged.
    pub fn append_batch(&mut self, batch: &[u8]) -> Result<(), FrameError> {
        let count = BatchReader::declared_count(batch)?;
        // Validate before copying, so a bad batch leaves the writer untouched.
        for record in BatchReader::new(batch)? {
            record?;
        }
        self.buf.extend_from_slice(&batch[4..]);
        self.count += count;
        Ok(())
    }

    /// The finished packed batch.
    pub fn finish(mut self) -> Vec<u8> {
        self.buf[0..4].copy_from_slice(&self.count.to_le_bytes());
        self.buf
    }
}

fn len_u32(len: usize) -> u32 {
    u32::try_from(len).expect("a record field longer than 4 GiB cannot be framed")
}

/// An empty packed batch.
pub fn empty_batch() -> Vec<u8> {
    BatchWriter::with_capacity(4).finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_records_with_headers() {
        let mut w = BatchWriter::new();
        w.push(None, 1000, b"k", b"{}", [(&b"a"[..], &b"1"[..]), (&b"b"[..], &b""[..])]);
        w.push_simple(Some(7), -5, b"", b"payload");
        let buf = w.finish();
        let records = BatchReader::read_all(&buf).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].origin, None);
        assert_eq!(records[0].event_time_ms, 1000);
        assert_eq!(records[0].key, b"k");
        assert_eq!(records[0].payload, b"{}");
        let headers: Vec<_> = records[0].headers().collect();
        assert_eq!(headers, vec![Header { name: b"a", value: b"1" }, Header { name: b"b", value: b"" }]);
        assert_eq!(records[0].header("b"), Some(&b""[..]));
        assert_eq!(records[1].origin, Some(7));
        assert_eq!(records[1].event_time_ms, -5);
        assert_eq!(records[1].header_count(), 0);
    }

    #[test]
    fn matches_the_documented_example() {
        let mut w = BatchWriter::new();
        w.push_simple(None, 1000, b"k", b"{}");
        let expected: Vec<u8> = [
            &[1, 0, 0, 0][..],
            &[0xff, 0xff, 0xff, 0xff],
            &[0xe8, 0x03, 0, 0, 0, 0, 0, 0],
            &[1, 0, 0, 0],
            &[2, 0, 0, 0],
            &[0, 0, 0, 0],
            b"k",
            b"{}",
        ]
        .concat();
        assert_eq!(w.finish(), expected);
    }

    #[test]
    fn rejects_truncation_trailing_bytes_and_bad_lengths() {
        let mut w = BatchWriter::new();
        w.push_simple(None, 1, b"key", b"value");
        let good = w.finish();

        let truncated = &good[..good.len() - 1];
        let err = BatchReader::read_all(truncated).unwrap_err();
        assert!(matches!(err.problem, FrameProblem::LengthOutOfRange { length: 5 }), "{err}");

        let mut trailing = good.clone();
        trailing.push(0);
        let err = BatchReader::read_all(&trailing).unwrap_err();
        assert_eq!(err.problem, FrameProblem::TrailingBytes { extra: 1 });

        let mut overcount = good.clone();
        overcount[0] = 2;
        let err = BatchReader::read_all(&overcount).unwrap_err();
        assert_eq!(err.problem, FrameProblem::Truncated);

        let mut huge_len = good.clone();
        huge_len[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(BatchReader::read_all(&huge_len).is_err());

        assert!(BatchReader::new(&[1, 0]).is_err());
    }

    #[test]
    fn append_batch_concatenates_and_rejects_bad_input_untouched() {
        let mut a = BatchWriter::new();
        a.push_simple(None, 1, b"a", b"1");
        let a = a.finish();
        let mut b = BatchWriter::new();
        b.push_simple(Some(0), 2, b"b", b"2");
        b.push_simple(None, 3, b"c", b"3");
        let b = b.finish();

        let mut all = BatchWriter::new();
        all.append_batch(&a).unwrap();
        all.append_batch(&b).unwrap();
        assert!(all.append_batch(&b[..b.len() - 1]).is_err());
        let all = all.finish();
        let keys: Vec<_> = BatchReader::read_all(&all).unwrap().iter().map(|r| r.key.to_vec()).collect();
        assert_eq!(keys, vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
    }

    #[test]
    fn empty_batch_reads_as_no_records() {
        assert!(BatchReader::read_all(&empty_batch()).unwrap().is_empty());
    }

    #[test]
    fn order_keys_compare_as_their_numbers() {
        let key = |start: i64, a: u32, b: u32| OrderKey::new().i64(start).u32(a).u32(b);
        let ordered = [key(i64::MIN, 0, 0), key(-1, 5, 5), key(0, 0, 1), key(0, 1, 0), key(60_000, 0, 0), key(i64::MAX, 0, 0)];
        for pair in ordered.windows(2) {
            assert!(pair[0].as_bytes() < pair[1].as_bytes(), "{pair:?}");
        }
        assert!(OrderKey::new().u64(1).as_bytes() < OrderKey::new().u64(256).as_bytes());
    }
}
