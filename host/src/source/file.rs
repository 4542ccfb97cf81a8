//! The file source: a JSON Lines file read in batches; a record's offset is the byte position of its line.
//!
//! Any offset at a line start is a place to resume from, so a checkpoint needs
//! only the offset after the last line consumed. A line that is not JSON is
//! rejected (dead-lettered by the task) and reading goes on. A last line
//! without a newline is a record when the file is read to its end, but is left
//! for later when the file is followed (it may still be being written).

use super::{ReadStatus, Reject, SourceBatch, SourceError};
use crate::checkpoint::format::InputFingerprint;
use crate::dlq::ErrorKind;
use crate::graph::FileSourcePlan;
use sda_wire::BatchWriter;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use std::borrow::Cow;
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub struct FileSource {
    name: String,
    path: PathBuf,
    reader: BufReader<File>,
    /// The same open file, for fingerprints: the file read from, even if its path is replaced.
    input: InputFile,
    /// Byte position of the next unread line.
    offset: u64,
    key_field: Option<String>,
    event_time_field: Option<String>,
    follow: bool,
    /// Longer lines are dead-lettered and skipped, never held whole.
    max_record_bytes: u64,
    /// How much of a line is kept while reading it: the limit and a line end, or the prefix a dead
    /// letter keeps if that is longer. A longer line is counted, not held.
    keep_bytes: usize,
    line: Vec<u8>,
}

impl FileSource {
    /// Opens the file and positions it at `offset` (a line start).
    pub fn open(name: &str, plan: &FileSourcePlan, offset: u64, follow: bool) -> Result<FileSource, SourceError> {
        let open_err = |error| SourceError::Open { source_name: name.to_string(), path: plan.path.clone(), error };
        let mut file = File::open(&plan.path).map_err(open_err)?;
        file.seek(SeekFrom::Start(offset)).map_err(open_err)?;
        let input =
            InputFile { source_name: name.to_string(), path: plan.path.clone(), file: Arc::new(file.try_clone().map_err(open_err)?) };
        Ok(FileSource {
            name: name.to_string(),
            path: plan.path.clone(),
            input,
            reader: BufReader::with_capacity(256 * 1024, file),
            offset,
            key_field: plan.key_field.clone(),
            event_time_field: plan.event_time_field.clone(),
            follow,
            max_record_bytes: plan.max_record_bytes,
            keep_bytes: usize::try_from(plan.max_record_bytes).unwrap_or(usize::MAX).saturating_add(2).max(super::TOO_LARGE_PREFIX_BYTES),
            line: Vec::with_capacity(1024),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// The offset the next read starts at.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The open file, for fingerprints of what it held before an offset.
    pub fn input(&self) -> &InputFile {
        &self.input
    }

    /// What the file holds just before `offset` (see [`check_resume_point`]).
    pub fn input_fingerprint(&self, offset: u64) -> Result<InputFingerprint, SourceError> {
        self.input.fingerprint(offset)
    }

    /// Positions the next read at `offset` (a line start).
    pub fn seek(&mut self, offset: u64) -> Result<(), SourceError> {
        self.reader.seek(SeekFrom::Start(offset)).map_err(|error| SourceError::Read {
            source_name: self.name.clone(),
            path: self.path.clone(),
            offset,
            error,
        })?;
        self.offset = offset;
        Ok(())
    }

    /// Reads up to `max_records` records into `batch` (cleared first).
    pub fn read_batch(&mut self, max_records: u32, batch: &mut SourceBatch) -> Result<ReadStatus, SourceError> {
        let mut writer = BatchWriter::reuse(std::mem::take(&mut batch.packed));
        batch.offsets.clear();
        batch.rejects.clear();
        let status = loop {
            if writer.len() >= max_records {
                break ReadStatus::More;
            }
            self.line.clear();
            let (read, ended) = read_line_bounded(&mut self.reader, &mut self.line, self.keep_bytes).map_err(|error| {
                SourceError::Read { source_name: self.name.clone(), path: self.path.clone(), offset: self.offset, error }
            })?;
            if read == 0 {
                break if self.follow { ReadStatus::Idle } else { ReadStatus::End };
            }
            if !ended && self.follow {
                // A line still being written: leave it for the next poll.
                self.reader.seek(SeekFrom::Start(self.offset)).map_err(|error| SourceError::Read {
                    source_name: self.name.clone(),
                    path: self.path.clone(),
                    offset: self.offset,
                    error,
                })?;
                break ReadStatus::Idle;
            }
            let line_offset = self.offset;
            self.offset += read;
            let terminator = if ended { if self.line.len() as u64 == read && self.line.ends_with(b"\r\n") { 2 } else { 1 } } else { 0 };
            let length = read - terminator;
            if length > self.max_record_bytes {
                batch.rejects.push(Reject {
                    offset: line_offset,
                    kind: ErrorKind::RecordTooLarge,
                    key: Vec::new(),
                    bytes: self.line[..super::TOO_LARGE_PREFIX_BYTES.min(self.line.len())].to_vec(),
                    headers: Vec::new(),
                    message: super::too_large(length, self.max_record_bytes),
                });
                continue;
            }
            let text = trim_line_end(&self.line);
            if text.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match extract_fields(text, self.key_field.as_deref(), self.event_time_field.as_deref()) {
                Ok(fields) => {
                    writer.push_simple(None, fields.event_time_ms.unwrap_or(0), fields.key.as_bytes(), text);
                    batch.offsets.push(line_offset);
                }
                Err(e) => batch.rejects.push(Reject {
                    offset: line_offset,
                    kind: ErrorKind::Deserialization,
                    key: Vec::new(),
                    bytes: text.to_vec(),
                    headers: Vec::new(),
                    message: format!("line is not valid JSON: {e}"),
                }),
            }
        };
        batch.count = writer.len();
        batch.packed = writer.finish();
        batch.end_offset = self.offset;
        Ok(status)
    }
}

/// A file source's open file, shared with whoever fingerprints it.
#[derive(Debug, Clone)]
pub struct InputFile {
    source_name: String,
    path: PathBuf,
    file: Arc<File>,
}

impl InputFile {
    /// The last bytes before `offset` (up to [`InputFingerprint::MAX_BYTES`]) and their CRC-32C.
    pub fn fingerprint(&self, offset: u64) -> Result<InputFingerprint, SourceError> {
        fingerprint_before(&self.file, offset).map_err(|error| SourceError::Read {
            source_name: self.source_name.clone(),
            path: self.path.clone(),
            offset,
            error,
        })
    }
}

fn fingerprint_before(file: &File, offset: u64) -> std::io::Result<InputFingerprint> {
    use std::os::unix::fs::FileExt;
    let len = offset.min(InputFingerprint::MAX_BYTES);
    let mut bytes = vec![0; len as usize];
    file.read_exact_at(&mut bytes, offset - len)?;
    Ok(InputFingerprint { len: len as u32, crc32c: crc32c::crc32c(&bytes) })
}

/// Checks, before a checkpoint of a file source is restored, that the file at `path` is the one the
/// checkpoint was taken of: long enough to hold `offset`, and (when the checkpoint recorded one)
/// holding the same bytes just before it. `Err` says what differs. A file that grew since (appended
/// to) passes; one replaced, rotated or truncated does not.
pub fn check_resume_point(path: &Path, offset: u64, expected: Option<&InputFingerprint>) -> Result<(), String> {
    let file = File::open(path).map_err(|e| format!("cannot open the input file `{}` to check it: {e}", path.display()))?;
    let len = file.metadata().map_err(|e| format!("cannot read the size of `{}`: {e}", path.display()))?.len();
    if len < offset {
        return Err(format!(
            "it resumes the input file `{}` at byte {offset}, but the file now holds only {len} bytes: it was truncated or replaced",
            path.display()
        ));
    }
    let Some(expected) = expected else { return Ok(()) };
    let found = fingerprint_before(&file, offset).map_err(|e| format!("cannot read `{}` before byte {offset}: {e}", path.display()))?;
    if found != *expected {
        return Err(format!(
            "the input file `{}` no longer holds what it held before byte {offset}, where it resumes (the {} bytes before it differ): it \
                was replaced or rewritten",
            path.display(),
            expected.len
        ));
    }
    Ok(())
}

/// Reads through the next `\n` (or to the end of the input), appending at most `keep` bytes of it to
/// `line` and skipping the rest: returns how many bytes it consumed, and whether it found the `\n`.
fn read_line_bounded(reader: &mut impl BufRead, line: &mut Vec<u8>, keep: usize) -> std::io::Result<(u64, bool)> {
    let mut consumed = 0u64;
    loop {
        let available = match reader.fill_buf() {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok((consumed, false));
        }
        let (chunk, ended) = match memchr::memchr(b'\n', available) {
            Some(at) => (&available[..=at], true),
            None => (available, false),
        };
        let room = keep.saturating_sub(line.len());
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let n = chunk.len();
        reader.consume(n);
        consumed += n as u64;
        if ended {
            return Ok((consumed, true));
        }
    }
}

fn trim_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The key and event time found in one line.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct LineFields<'a> {
    pub key: Cow<'a, str>,
    pub event_time_ms: Option<i64>,
}

/// Parses a whole line as JSON (so malformed lines are caught here) while
/// picking out the configured key and event-time fields without building a tree.
pub(crate) fn extract_fields<'a>(line: &'a [u8], key_field: Option<&str>, time_field: Option<&str>) -> serde_json::Result<LineFields<'a>> {
    let mut de = serde_json::Deserializer::from_slice(line);
    let fields = FieldsSeed { key_field, time_field }.deserialize(&mut de)?;
    de.end()?;
    Ok(fields)
}

struct FieldsSeed<'f> {
    key_field: Option<&'f str>,
    time_field: Option<&'f str>,
}

impl<'de> DeserializeSeed<'de> for FieldsSeed<'_> {
    type Value = LineFields<'de>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for FieldsSeed<'_> {
    type Value = LineFields<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = LineFields::default();
        while let Some(name) = map.next_key::<Cow<'de, str>>()? {
            if Some(name.as_ref()) == self.key_field {
                fields.key = map.next_value::<KeyValue<'de>>()?.0;
            } else if Some(name.as_ref()) == self.time_field {
                fields.event_time_ms = map.next_value::<TimeValue>()?.0;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(fields)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(LineFields::default())
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(LineFields::default())
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(LineFields::default())
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(LineFields::default())
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(LineFields::default())
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(LineFields::default())
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(LineFields::default())
    }
}

/// A key field's value: a string as is, a number in decimal, anything else empty.
struct KeyValue<'de>(Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for KeyValue<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = KeyValue<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(KeyValue(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(KeyValue(Cow::Owned(v.to_string())))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
                Ok(KeyValue(Cow::Owned(v.to_string())))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
                Ok(KeyValue(Cow::Owned(v.to_string())))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
                Ok(KeyValue(Cow::Owned(v.to_string())))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(KeyValue(Cow::Borrowed("")))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(KeyValue(Cow::Borrowed("")))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(KeyValue(Cow::Borrowed("")))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(KeyValue(Cow::Borrowed("")))
            }
        }
        d.deserialize_any(V)
    }
}

/// An event-time field's value: an integer, or nothing (the operator validates it).
struct TimeValue(Option<i64>);

impl<'de> serde::Deserialize<'de> for TimeValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TimeValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an event time")
            }
            fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
                Ok(TimeValue(Some(v)))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
                Ok(TimeValue(i64::try_from(v).ok()))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(TimeValue(None))
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(TimeValue(None))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(TimeValue(None))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(TimeValue(None))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(TimeValue(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(TimeValue(None))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sda_wire::BatchReader;
    use std::io::Write;
    use std::time::Duration;

    fn plan(path: PathBuf) -> FileSourcePlan {
        FileSourcePlan {
            path,
            key_field: Some("id".into()),
            event_time_field: Some("t".into()),
            follow: false,
            poll_interval: Duration::from_millis(10),
            dedup: None,
            max_record_bytes: crate::graph::DEFAULT_MAX_RECORD_BYTES,
        }
    }

    #[test]
    fn a_line_longer_than_max_record_bytes_is_rejected_with_a_prefix_and_reading_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.jsonl");
        let exact = format!("{{\"id\":\"a\",\"t\":1,\"pad\":\"{}\"}}", "x".repeat(40));
        let limit = exact.len() as u64;
        let long = format!("{{\"id\":\"b\",\"t\":2,\"pad\":\"{}\"}}", "y".repeat(5000));
        let text = format!("{exact}\r\n{long}\n{exact}\n{long}");
        std::fs::write(&path, &text).unwrap();
        let mut source = FileSource::open("s", &FileSourcePlan { max_record_bytes: limit, ..plan(path) }, 0, false).unwrap();
        let mut batch = SourceBatch::default();
        assert_eq!(source.read_batch(10, &mut batch).unwrap(), ReadStatus::End);
        assert_eq!(batch.count, 2, "lines of exactly the limit are records (CRLF or LF)");
        let second = exact.len() as u64 + 2;
        let fourth = second + long.len() as u64 + 1 + exact.len() as u64 + 1;
        assert_eq!(batch.offsets, vec![0, second + long.len() as u64 + 1]);
        assert_eq!(
            batch.rejects.iter().map(|r| (r.offset, r.kind)).collect::<Vec<_>>(),
            vec![(second, ErrorKind::RecordTooLarge), (fourth, ErrorKind::RecordTooLarge)]
        );
        let reject = &batch.rejects[0];
        assert_eq!(reject.bytes, long.as_bytes()[..1024], "a bounded prefix");
        assert!(
            reject.message.contains(&format!("record of {} bytes", long.len())) && reject.message.contains("max_record_bytes"),
            "{}",
            reject.message
        );
        assert!(batch.rejects[1].message.contains(&format!("record of {} bytes", long.len())), "the last line, without a newline");
        assert_eq!(batch.end_offset, text.len() as u64);
        assert!(source.line.capacity() <= 2048, "the long lines were never held whole: {}", source.line.capacity());
    }

    #[test]
    fn extracts_key_and_time_and_rejects_non_json() {
        let f = extract_fields(br#"{"a":[1,{"b":2}],"id":"x-1","t":1000}"#, Some("id"), Some("t")).unwrap();
        assert_eq!(f, LineFields { key: "x-1".into(), event_time_ms: Some(1000) });
        let f = extract_fields(br#"{"id":25544,"t":"soon"}"#, Some("id"), Some("t")).unwrap();
        assert_eq!(f, LineFields { key: "25544".into(), event_time_ms: None });
        assert_eq!(extract_fields(b"[1,2]", Some("id"), None).unwrap(), LineFields::default());
        assert!(extract_fields(b"{\"id\":", Some("id"), None).is_err());
        assert!(extract_fields(b"{} trailing", None, None).is_err());
        assert!(extract_fields(b"\xff\xfe", None, None).is_err());
    }

    #[test]
    fn reads_batches_with_offsets_and_rejects_and_resumes_anywhere() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.jsonl");
        let text = "{\"id\":\"a\",\"t\":1}\nnot json\n\n{\"id\":\"b\",\"t\":2}\r\n{\"id\":\"c\",\"t\":3}";
        std::fs::write(&path, text).unwrap();
        let mut source = FileSource::open("s", &plan(path.clone()), 0, false).unwrap();
        let mut batch = SourceBatch::default();
        assert_eq!(source.read_batch(2, &mut batch).unwrap(), ReadStatus::More);
        assert_eq!(batch.count, 2);
        assert_eq!(batch.offsets, vec![0, 27]);
        assert_eq!(batch.rejects.len(), 1);
        assert_eq!(batch.rejects[0].offset, 17);
        assert_eq!(batch.rejects[0].bytes, b"not json");
        let records = BatchReader::read_all(&batch.packed).unwrap();
        assert_eq!(records[1].key, b"b");
        assert_eq!(records[1].payload, br#"{"id":"b","t":2}"#, "CRLF is trimmed");
        assert_eq!(records[1].event_time_ms, 2);

        // The unterminated last line is a record when the file is read to its end.
        assert_eq!(source.read_batch(2, &mut batch).unwrap(), ReadStatus::End);
        assert_eq!(batch.count, 1);
        assert_eq!(batch.end_offset, text.len() as u64);

        // Resuming from a recorded offset reads exactly what follows it.
        let mut again = FileSource::open("s", &plan(path), 27, false).unwrap();
        again.read_batch(10, &mut batch).unwrap();
        let keys: Vec<_> = BatchReader::read_all(&batch.packed).unwrap().iter().map(|r| r.key.to_vec()).collect();
        assert_eq!(keys, vec![b"b".to_vec(), b"c".to_vec()]);
    }

    #[test]
    fn a_followed_file_leaves_a_partial_line_until_it_is_complete() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.jsonl");
        let mut file = std::fs::File::create(&path).unwrap();
        file.write_all(b"{\"id\":\"a\"}\n{\"id\":").unwrap();
        let mut source = FileSource::open("s", &plan(path), 0, true).unwrap();
        let mut batch = SourceBatch::default();
        assert_eq!(source.read_batch(10, &mut batch).unwrap(), ReadStatus::Idle);
        assert_eq!(batch.count, 1);
        assert!(batch.rejects.is_empty(), "a partial line is not rejected");
        file.write_all(b"\"b\"}\n").unwrap();
        assert_eq!(source.read_batch(10, &mut batch).unwrap(), ReadStatus::Idle);
        assert_eq!(batch.count, 1);
        assert_eq!(BatchReader::read_all(&batch.packed).unwrap()[0].key, b"b");
    }
}
