//! The file DLQ: dead-letter envelopes appended as JSON Lines, written once per batch.

use super::{DlqError, Envelope};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

pub struct FileDlq {
    path: PathBuf,
    file: File,
    /// Entries of the batch in hand, written together by [`FileDlq::flush`].
    pending: Vec<u8>,
    written_entries: u64,
    /// Length of the file: where the next entries land.
    position: u64,
}

impl FileDlq {
    /// Opens (creating it and its folder if needed) the DLQ file for appending.
    pub fn open(path: &Path) -> Result<FileDlq, DlqError> {
        let err = |error| DlqError::Io { path: path.to_path_buf(), error };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path).map_err(err)?;
        let position = file.metadata().map_err(err)?.len();
        Ok(FileDlq { path: path.to_path_buf(), file, pending: Vec::new(), written_entries: 0, position })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queues one entry; it reaches the file at the next [`FileDlq::flush`].
    pub fn append(&mut self, envelope: &Envelope) {
        serde_json::to_writer(&mut self.pending, envelope).expect("an envelope serializes to JSON");
        self.pending.push(b'\n');
        self.written_entries += 1;
    }

    /// Writes queued entries.
    pub fn flush(&mut self) -> Result<(), DlqError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.file
            .write_all(&self.pending)
            .and_then(|()| self.file.flush())
            .map_err(|error| DlqError::Io { path: self.path.clone(), error })?;
        self.position += self.pending.len() as u64;
        self.pending.clear();
        Ok(())
    }

    /// Makes what was written durable (before a checkpoint records it).
    pub fn sync(&mut self) -> Result<(), DlqError> {
        self.flush()?;
        self.file.sync_data().map_err(|error| DlqError::Io { path: self.path.clone(), error })
    }

    /// Bytes in the file, everything flushed so far included.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Entries appended since open.
    pub fn entries(&self) -> u64 {
        self.written_entries
    }
}
