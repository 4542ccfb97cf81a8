//! The file DLQ: dead-letter envelopes appended as JSON Lines, written once per batch, in segments rotated by size and age and deleted once expired.
//!
//! Layout: entries are appended to the active segment, the configured path
//! (`out/dlq.jsonl`). When it reaches `max_bytes`, or its oldest entry is older
//! than `max_age`, it is closed: synced and renamed to `<path>.<N>` (N = 1, 2,
//! ... in the order they were closed; lower is older) and a new active segment
//! starts. A closed segment whose newest entry is older than `max_age` is
//! deleted, at a rotation or a checkpoint: retention never removes an entry
//! younger than `max_age`, and nothing else removes entries at all.
//!
//! A position (what a checkpoint records) is `(segment number, byte offset)`,
//! the active segment's number being one more than the newest closed one's.
//! [`FileDlq::lines_since`] reads every entry written after a position, across
//! rotations; segments retention deleted since are skipped.

use super::{DlqError, Envelope};
use crate::output::jsonl::Appender;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// How large and how old the segments of a file DLQ grow, and how long they are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// The active segment is closed once it holds this many bytes.
    pub max_bytes: u64,
    /// Entries older than this may be deleted; the active segment is closed once its oldest entry is this old.
    pub max_age: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Retention { max_bytes: 64 * 1024 * 1024, max_age: Duration::from_secs(7 * 24 * 3600) }
    }
}

pub struct FileDlq {
    /// The active segment.
    file: Appender,
    retention: Retention,
    /// Number of the active segment: one more than the newest closed one.
    segment: u32,
    /// Entries of the batch in hand, written together by [`FileDlq::flush`].
    pending: Vec<u8>,
    /// Where each pending entry ends in `pending`, so a flush can close a segment between two.
    pending_ends: Vec<usize>,
    written_entries: u64,
    /// When the oldest entry of the active segment was written (`None` while it is empty).
    oldest_entry_at: Option<SystemTime>,
}

impl FileDlq {
    /// Opens (creating it and its folder if needed) the DLQ file for appending, with the default retention.
    pub fn open(path: &Path) -> Result<FileDlq, DlqError> {
        FileDlq::open_with(path, Retention::default())
    }

    /// Opens the DLQ file for appending under `retention`.
    pub fn open_with(path: &Path, retention: Retention) -> Result<FileDlq, DlqError> {
        let err = |error| DlqError::Io { path: path.to_path_buf(), error };
        let file = Appender::open(path).map_err(err)?;
        let position = file.position();
        let segment = closed_segments(path).map_err(err)?.last().map_or(1, |(n, _)| n + 1);
        // The oldest entry's age is only known to the minute or so; a segment without a
        // readable first entry is dated now, which at worst keeps it one `max_age` longer.
        let oldest_entry_at = (position > 0).then(|| first_entry_time(path).unwrap_or_else(SystemTime::now));
        let mut dlq =
            FileDlq { file, retention, segment, pending: Vec::new(), pending_ends: Vec::new(), written_entries: 0, oldest_entry_at };
        dlq.delete_expired()?;
        Ok(dlq)
    }

    pub fn path(&self) -> &Path {
        self.file.path()
    }

    fn io_error(&self, error: std::io::Error) -> DlqError {
        DlqError::Io { path: self.file.path().to_path_buf(), error }
    }

    /// Queues one entry; it reaches the file at the next [`FileDlq::flush`].
    pub fn append(&mut self, envelope: &Envelope) {
        serde_json::to_writer(&mut self.pending, envelope).expect("an envelope serializes to JSON");
        self.pending.push(b'\n');
        self.pending_ends.push(self.pending.len());
        self.written_entries += 1;
    }

    /// Writes queued entries, closing the active segment whenever the next
    /// entry would overfill it (an entry larger than `max_bytes` gets a segment
    /// of its own) or its oldest entry has reached `max_age`.
    pub fn flush(&mut self) -> Result<(), DlqError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let now = SystemTime::now();
        let pending = std::mem::take(&mut self.pending);
        let ends = std::mem::take(&mut self.pending_ends);
        let mut start = 0;
        while start < pending.len() {
            let old = self.oldest_entry_at.is_some_and(|t| now.duration_since(t).unwrap_or_default() >= self.retention.max_age);
            let position = self.file.position();
            let room = self.retention.max_bytes.saturating_sub(position);
            // The entries from `start` that fit in the room left (at least one, in an empty segment).
            let mut end = start;
            for &e in ends.iter().filter(|&&e| e > start) {
                if (e - start) as u64 > room && (end > start || position > 0) {
                    break;
                }
                end = e;
            }
            if position > 0 && (end == start || old) {
                self.rotate()?;
                continue;
            }
            self.file.append(&pending[start..end]).map_err(|e| self.io_error(e))?;
            self.oldest_entry_at.get_or_insert(now);
            start = end;
        }
        self.pending = pending;
        self.pending.clear();
        Ok(())
    }

    /// Writes queued entries, deletes expired segments, and returns a handle to make the active
    /// segment durable with (`sync_data`) before a checkpoint records it, on whichever thread
    /// writes that checkpoint.
    pub fn sync_later(&mut self) -> Result<File, DlqError> {
        self.flush()?;
        self.delete_expired()?;
        self.file.sync_handle().map_err(|e| self.io_error(e))
    }

    /// Where the next entries land: `(segment number, byte offset)`.
    pub fn position(&self) -> (u32, u64) {
        (self.segment, self.file.position())
    }

    /// Entries appended since open.
    pub fn entries(&self) -> u64 {
        self.written_entries
    }

    /// Calls `each` with every entry line written at or after `position`, across rotations.
    pub fn lines_since(&self, position: (u32, u64), mut each: impl FnMut(&[u8])) -> Result<u64, DlqError> {
        let (from_segment, from_offset) = position;
        let err = |path: &Path| {
            let path = path.to_path_buf();
            move |error| DlqError::Io { path, error }
        };
        let mut read = 0;
        for (n, path) in closed_segments(self.path()).map_err(err(self.path()))? {
            if n >= from_segment {
                let offset = if n == from_segment { from_offset } else { 0 };
                read += crate::output::recovery::lines_since(&path, offset, &mut each).map_err(err(&path))?;
            }
        }
        let offset = if self.segment == from_segment { from_offset } else { 0 };
        if self.segment >= from_segment {
            read += crate::output::recovery::lines_since(self.path(), offset, &mut each).map_err(err(self.path()))?;
        }
        Ok(read)
    }

    /// Closes the active segment as `<path>.<segment>` and starts a new one.
    fn rotate(&mut self) -> Result<(), DlqError> {
        let closed = segment_path(self.path(), self.segment);
        let bytes = self.file.position();
        self.file.rotate_to(&closed).map_err(|error| DlqError::Io { path: closed.clone(), error })?;
        tracing::debug!(segment = %closed.display(), bytes, "dead-letter segment closed");
        self.segment += 1;
        self.oldest_entry_at = None;
        self.delete_expired()
    }

    /// Deletes closed segments whose newest entry (their last write) is older than `max_age`.
    fn delete_expired(&mut self) -> Result<(), DlqError> {
        let now = SystemTime::now();
        for (_, path) in closed_segments(self.path()).map_err(|e| self.io_error(e))? {
            let modified = std::fs::metadata(&path).and_then(|m| m.modified());
            if let Ok(modified) = modified
                && now.duration_since(modified).unwrap_or_default() > self.retention.max_age
            {
                match std::fs::remove_file(&path) {
                    Ok(()) => tracing::info!(segment = %path.display(), "expired dead-letter segment deleted"),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(error) => return Err(DlqError::Io { path, error }),
                }
            }
        }
        Ok(())
    }
}

/// `<path>.<n>`.
pub fn segment_path(path: &Path, n: u32) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{n}"));
    path.with_file_name(name)
}

/// The closed segments of the DLQ at `path`, oldest first.
pub fn closed_segments(path: &Path) -> std::io::Result<Vec<(u32, PathBuf)>> {
    let dir = match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(d) => d.to_path_buf(),
        None => PathBuf::from("."),
    };
    let Some(stem) = path.file_name().and_then(|n| n.to_str()) else { return Ok(Vec::new()) };
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut segments = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(n) =
            name.to_str().and_then(|n| n.strip_prefix(stem)).and_then(|rest| rest.strip_prefix('.')).and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        segments.push((n, entry.path()));
    }
    segments.sort();
    Ok(segments)
}

/// `failed_at` of the first entry of the file at `path`.
fn first_entry_time(path: &Path) -> Option<SystemTime> {
    use std::io::BufRead;
    let mut line = String::new();
    std::io::BufReader::new(File::open(path).ok()?).read_line(&mut line).ok()?;
    let envelope: Envelope = serde_json::from_str(line.trim_end()).ok()?;
    humantime::parse_rfc3339(&envelope.failed_at).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dlq::{ErrorKind, FailedRecord, FailureContext, SourcePosition, Stage};

    fn entry(offset: u64) -> Envelope {
        Envelope::new(
            FailureContext {
                pipeline: "p",
                operator: "obs",
                stage: Stage::Source,
                plugin_digest: None,
                error_kind: ErrorKind::Deserialization,
                error_message: "not JSON".into(),
                retry_count: 0,
                source: SourcePosition {
                    name: "obs".into(),
                    file: Some("in.jsonl".into()),
                    topic: None,
                    partition: 0,
                    offset: Some(offset),
                },
                checkpoint_seq: None,
            },
            FailedRecord { key: b"", payload: format!("line {offset}").as_bytes(), headers: Vec::new() },
        )
    }

    fn offsets(lines: &[Vec<u8>]) -> Vec<u64> {
        lines.iter().map(|l| serde_json::from_slice::<Envelope>(l).unwrap().source.offset.unwrap()).collect()
    }

    #[test]
    fn segments_roll_by_size_and_a_position_reads_on_across_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dlq.jsonl");
        let mut dlq = FileDlq::open_with(&path, Retention { max_bytes: 1000, max_age: Duration::from_secs(3600) }).unwrap();
        let mut marks = Vec::new();
        for i in 0..40 {
            marks.push(dlq.position());
            dlq.append(&entry(i));
            dlq.flush().unwrap();
        }
        // A batch larger than a segment is spread over several.
        let before = dlq.position().0;
        for i in 40..60 {
            dlq.append(&entry(i));
        }
        dlq.flush().unwrap();
        assert!(dlq.position().0 >= before + 3, "{:?}", dlq.position());
        let segments = closed_segments(&path).unwrap();
        assert!(segments.len() >= 5, "{segments:?}");
        assert_eq!(dlq.position().0, segments.last().unwrap().0 + 1);
        for (n, segment) in &segments {
            let len = std::fs::metadata(segment).unwrap().len();
            assert!(len <= 1000, "segment {n} holds {len} bytes");
        }
        for from in [0, 7, 23, 39] {
            let mut lines = Vec::new();
            dlq.lines_since(marks[from], |l| lines.push(l.to_vec())).unwrap();
            assert_eq!(offsets(&lines), (from as u64..60).collect::<Vec<_>>(), "from entry {from}");
        }
        // A reopened DLQ continues the numbering and reads the same.
        drop(dlq);
        let dlq = FileDlq::open_with(&path, Retention { max_bytes: 1000, max_age: Duration::from_secs(3600) }).unwrap();
        assert_eq!(dlq.position().0, segments.last().unwrap().0 + 1);
        let mut lines = Vec::new();
        dlq.lines_since((1, 0), |l| lines.push(l.to_vec())).unwrap();
        assert_eq!(offsets(&lines), (0..60).collect::<Vec<_>>());
    }

    #[test]
    fn expired_segments_are_deleted_and_younger_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dlq.jsonl");
        let retention = Retention { max_bytes: 300, max_age: Duration::from_millis(400) };
        let mut dlq = FileDlq::open_with(&path, retention).unwrap();
        for i in 0..6 {
            dlq.append(&entry(i));
            dlq.flush().unwrap();
        }
        let before = closed_segments(&path).unwrap();
        assert!(!before.is_empty());
        std::thread::sleep(Duration::from_millis(600));
        for i in 6..12 {
            dlq.append(&entry(i));
            dlq.flush().unwrap();
        }
        dlq.sync_later().unwrap();
        let after = closed_segments(&path).unwrap();
        for (n, _) in &before {
            assert!(!after.iter().any(|(m, _)| m == n), "segment {n} outlived its entries");
        }
        let mut lines = Vec::new();
        dlq.lines_since((1, 0), |l| lines.push(l.to_vec())).unwrap();
        assert_eq!(offsets(&lines), (6..12).collect::<Vec<_>>(), "every entry younger than max_age is kept");
    }

    #[test]
    fn an_old_active_segment_is_closed_so_it_can_expire() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dlq.jsonl");
        let mut dlq = FileDlq::open_with(&path, Retention { max_bytes: 1 << 20, max_age: Duration::from_millis(200) }).unwrap();
        dlq.append(&entry(0));
        dlq.flush().unwrap();
        std::thread::sleep(Duration::from_millis(300));
        dlq.append(&entry(1));
        dlq.flush().unwrap();
        assert_eq!(dlq.position().0, 2, "the aged active segment was closed");
    }
}
