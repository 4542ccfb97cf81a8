//! The directory sink: each record a file of its own, named by its key (a CDM per conjunction, say).
//!
//! A record's file is written whole and durably (temp file, fsync, rename, folder fsync: [`crate::durable`]) before
//! its batch counts as delivered, so a reader of the folder never sees part of one. A key names at most one file:
//! a record whose file exists already is taken as delivered and the file is left as it is, so a replay after a crash
//! rewrites nothing and changes nothing a reader has seen. That makes the sink exactly-once by construction (as a
//! PostgreSQL table with its key), with no delivery record: it suits operators whose output for a key is always the
//! same bytes, as the project's are (an operator's outputs depend on its input only).

use super::{Rejection, SinkError};
use std::path::{Path, PathBuf};

/// Longest key taken as a file name (file systems allow 255 bytes; the extension and temp suffix need room).
const MAX_KEY_BYTES: usize = 200;

pub struct DirectorySink {
    name: String,
    dir: PathBuf,
    /// Appended to each key after a `.`; empty: none.
    extension: String,
    /// The batch in hand: file names and contents, written by [`DirectorySink::flush`].
    pending: Vec<(String, Vec<u8>)>,
    written: u64,
    already_there: u64,
}

impl DirectorySink {
    /// Opens the folder, creating it if needed.
    pub fn open(name: &str, dir: &Path, extension: &str) -> Result<DirectorySink, SinkError> {
        std::fs::create_dir_all(dir).map_err(|error| SinkError::Io { sink: name.to_string(), path: dir.to_path_buf(), error })?;
        Ok(DirectorySink {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            extension: extension.to_string(),
            pending: Vec::new(),
            written: 0,
            already_there: 0,
        })
    }

    /// Queues a record: its key becomes the file's name. A key that cannot be a plain file name is refused.
    pub fn write(&mut self, key: &[u8], payload: &[u8]) -> Result<(), Rejection> {
        let file_name = file_name(key, &self.extension)?;
        self.pending.push((file_name, payload.to_vec()));
        Ok(())
    }

    /// Writes the queued records' files, each durable before this returns; a file that exists is left alone.
    pub fn flush(&mut self) -> Result<(), SinkError> {
        let pending = std::mem::take(&mut self.pending);
        let crash_after = if pending.len() >= 2 && crate::failpoint::fires("mid-emit") { Some(pending.len() / 2) } else { None };
        for (n, (file_name, payload)) in pending.into_iter().enumerate() {
            if crash_after == Some(n) {
                // Half the batch's files are written, the rest not yet, and nothing recorded it: then the crash.
                crate::failpoint::crash("mid-emit");
            }
            let path = self.dir.join(&file_name);
            if path.exists() {
                self.already_there += 1;
                continue;
            }
            crate::durable::replace(&path, &payload).map_err(|error| SinkError::Io { sink: self.name.clone(), path, error })?;
            self.written += 1;
        }
        Ok(())
    }

    /// Files written since open, and records whose file was there already (replays).
    pub fn counts(&self) -> (u64, u64) {
        (self.written, self.already_there)
    }
}

/// The file name for `key`: letters, digits, `-`, `_` and `.` only, not starting with `.` (no paths, no hidden files,
/// nothing a shell or another file system would read otherwise), at most [`MAX_KEY_BYTES`].
fn file_name(key: &[u8], extension: &str) -> Result<String, Rejection> {
    let shown = String::from_utf8_lossy(&key[..key.len().min(60)]).into_owned();
    if key.is_empty() {
        return Err(Rejection("the record has no key, and a directory sink names each file by its record's key".into()));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(Rejection(format!("the key `{shown}...` is {} bytes, over the {MAX_KEY_BYTES} a file name may take", key.len())));
    }
    if key[0] == b'.' || !key.iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) {
        return Err(Rejection(format!(
            "the key `{shown}` cannot be a file name: a directory sink takes keys of letters, digits, `-`, `_` and `.`, \
             not starting with `.`"
        )));
    }
    let key = std::str::from_utf8(key).expect("checked to be ASCII");
    Ok(if extension.is_empty() { key.to_string() } else { format!("{key}.{extension}") })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_file_per_key_and_leaves_an_existing_one_alone() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("cdm");
        let mut sink = DirectorySink::open("cdms", &out, "kvn").unwrap();
        sink.write(b"SDA-0A1B", b"CCSDS_CDM_VERS = 1.0\nfirst\n").unwrap();
        sink.write(b"SDA-0A1C", b"second").unwrap();
        assert!(!out.join("SDA-0A1B.kvn").exists(), "nothing before flush");
        sink.flush().unwrap();
        assert_eq!(std::fs::read_to_string(out.join("SDA-0A1B.kvn")).unwrap(), "CCSDS_CDM_VERS = 1.0\nfirst\n");
        // A replay of the same key: the file a reader may have taken already is not touched.
        let before = std::fs::metadata(out.join("SDA-0A1B.kvn")).unwrap().modified().unwrap();
        sink.write(b"SDA-0A1B", b"other bytes").unwrap();
        sink.flush().unwrap();
        assert_eq!(std::fs::read_to_string(out.join("SDA-0A1B.kvn")).unwrap(), "CCSDS_CDM_VERS = 1.0\nfirst\n");
        assert_eq!(std::fs::metadata(out.join("SDA-0A1B.kvn")).unwrap().modified().unwrap(), before);
        assert_eq!(sink.counts(), (2, 1));
        let mut names: Vec<String> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        assert_eq!(names, ["SDA-0A1B.kvn", "SDA-0A1C.kvn"], "no temp file left behind");
    }

    #[test]
    fn refuses_keys_that_are_not_plain_file_names() {
        for bad in [&b""[..], b"../escape", b"a/b", b".hidden", b"sp ace", b"\xff", &[b'a'; 201][..]] {
            let err = file_name(bad, "kvn").expect_err("refused");
            assert!(err.0.contains("key"), "{}", err.0);
        }
        assert_eq!(file_name(b"SDA-3F0C.v2_a", "").unwrap(), "SDA-3F0C.v2_a");
        assert_eq!(file_name(b"x", "xml").unwrap(), "x.xml");
    }
}
