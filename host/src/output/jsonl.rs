//! An append-only JSON Lines file: whole batches appended, the position where the next lands, a handle to make it durable
//! with, and rotation (close the file under another name, start a new one) for a file that is kept in segments.
//!
//! What goes into a line, and when a batch is written, is the owner's: the file sink queues payloads, the DLQ
//! envelopes and rotates by size and age. This keeps to what the file needs: one `write` per batch (so a reader
//! never sees part of a line from a healthy process), and an fsync, by whichever thread writes the checkpoint
//! that records the position, before that position is trusted.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// One JSON Lines file open for appending.
#[derive(Debug)]
pub struct Appender {
    path: PathBuf,
    file: File,
    /// Length of the file: where the next batch lands.
    position: u64,
}

impl Appender {
    /// Opens `path` for appending, creating it and its folder if needed.
    pub fn open(path: &Path) -> std::io::Result<Appender> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let position = file.metadata()?.len();
        Ok(Appender { path: path.to_path_buf(), file, position })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes in the file, everything appended so far included.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Appends `lines` (whole lines, each ending in a newline) in one write.
    pub fn append(&mut self, lines: &[u8]) -> std::io::Result<()> {
        self.file.write_all(lines)?;
        self.position += lines.len() as u64;
        Ok(())
    }

    /// A handle on the file to make what was appended durable with (`sync_data`), on another thread if need be.
    pub fn sync_handle(&self) -> std::io::Result<File> {
        self.file.try_clone()
    }

    /// Makes the file durable, renames it `closed`, and starts a new empty file at its path (the folder synced,
    /// so the rename survives a crash).
    pub fn rotate_to(&mut self, closed: &Path) -> std::io::Result<()> {
        self.file.sync_data()?;
        std::fs::rename(&self.path, closed)?;
        self.file = OpenOptions::new().create(true).append(true).open(&self.path)?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)?.sync_all()?;
        }
        self.position = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_tracks_the_position_and_rotates_into_a_fresh_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/out.jsonl");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "{\"old\":1}\n").unwrap();
        let mut file = Appender::open(&path).unwrap();
        assert_eq!(file.position(), 10, "opens at the end of what is there");
        file.append(b"{\"a\":1}\n{\"a\":2}\n").unwrap();
        assert_eq!(file.position(), 26);
        file.rotate_to(&dir.path().join("sub/out.jsonl.1")).unwrap();
        assert_eq!(file.position(), 0);
        file.append(b"{\"b\":1}\n").unwrap();
        assert_eq!(std::fs::read_to_string(dir.path().join("sub/out.jsonl.1")).unwrap(), "{\"old\":1}\n{\"a\":1}\n{\"a\":2}\n");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"b\":1}\n");
    }
}
