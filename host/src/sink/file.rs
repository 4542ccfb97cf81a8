//! The file sink: each record's payload appended as one JSON line, one write per batch.

use super::{Rejection, SinkError};
use crate::output::jsonl::Appender;
use std::fs::File;
use std::path::Path;

pub struct FileSink {
    name: String,
    file: Appender,
    /// The batch in hand, written whole by [`FileSink::flush`] so a reader
    /// never sees part of a line from a healthy process.
    pending: Vec<u8>,
    records: u64,
}

impl FileSink {
    /// Opens (creating it and its folder if needed) the file for appending.
    pub fn open(name: &str, path: &Path) -> Result<FileSink, SinkError> {
        let file = Appender::open(path).map_err(|error| SinkError::Io { sink: name.to_string(), path: path.to_path_buf(), error })?;
        Ok(FileSink { name: name.to_string(), file, pending: Vec::new(), records: 0 })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn path(&self) -> &Path {
        self.file.path()
    }

    fn io_error(&self, error: std::io::Error) -> SinkError {
        SinkError::Io { sink: self.name.clone(), path: self.file.path().to_path_buf(), error }
    }

    /// Queues one record's payload as a line. A payload that is not UTF-8 or
    /// spans lines cannot be a JSON line: it is refused.
    pub fn write(&mut self, payload: &[u8]) -> Result<(), Rejection> {
        if payload.contains(&b'\n') {
            return Err(Rejection("the payload contains a newline, so it cannot be written as one JSON line".into()));
        }
        if std::str::from_utf8(payload).is_err() {
            return Err(Rejection("the payload is not UTF-8 text, so it cannot be written as a JSON line".into()));
        }
        self.pending.extend_from_slice(payload);
        self.pending.push(b'\n');
        self.records += 1;
        Ok(())
    }

    /// Writes the queued lines.
    pub fn flush(&mut self) -> Result<(), SinkError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        if crate::failpoint::fires("mid-emit") {
            // Part of the batch reaches the file, cut mid-line, then the crash.
            let _ = self.file.append(&self.pending[..self.pending.len() / 2]);
            crate::failpoint::crash("mid-emit");
        }
        self.file.append(&self.pending).map_err(|e| self.io_error(e))?;
        self.pending.clear();
        Ok(())
    }

    /// Writes the queued lines and returns a handle to make them durable with (`sync_data`) before a
    /// checkpoint records them, on whichever thread writes that checkpoint.
    pub fn sync_later(&mut self) -> Result<File, SinkError> {
        self.flush()?;
        self.file.sync_handle().map_err(|e| self.io_error(e))
    }

    /// Bytes in the file, everything flushed so far included.
    pub fn position(&self) -> u64 {
        self.file.position()
    }

    /// Records written since open.
    pub fn records(&self) -> u64 {
        self.records
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_lines_and_refuses_what_is_not_one_line_of_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/out.jsonl");
        let mut sink = FileSink::open("out", &path).unwrap();
        sink.write(b"{\"a\":1}").unwrap();
        assert!(sink.write(b"{\n}").is_err());
        assert!(sink.write(&[0xff]).is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "", "nothing before flush");
        sink.flush().unwrap();
        sink.write(b"{\"a\":2}").unwrap();
        sink.flush().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"a\":1}\n{\"a\":2}\n");
        assert_eq!(sink.records(), 2);
    }
}
