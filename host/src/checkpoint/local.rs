//! The local tier: a task's checkpoints as files in one folder, written so that a crash at any instant leaves either the old set or the new one.
//!
//! Write order: temp file, fsync it, rename it into place, fsync the folder.
//! Only then is a checkpoint durable, and only then may anything depend on it
//! (a Kafka offset commit, the remote copy). The newest `keep` are kept.

use super::format::{self, EXTENSION};
use crate::durable::{self, CrashPoints};
use std::fs;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("checkpoint folder `{}`: {error}", path.display())]
    Io { path: PathBuf, error: std::io::Error },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LocalError + '_ {
    move |error| LocalError::Io { path: path.to_path_buf(), error }
}

/// One task's folder of checkpoints.
#[derive(Debug, Clone)]
pub struct LocalTier {
    dir: PathBuf,
    keep: usize,
}

impl LocalTier {
    /// The folder `root/<pipeline>/<task>`; created on first write.
    pub fn new(root: &Path, pipeline: &str, task: &str, keep: usize) -> LocalTier {
        LocalTier { dir: root.join(pipeline).join(task), keep: keep.max(1) }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes checkpoint `sequence` durably, then prunes all but the newest `keep`.
    pub fn write(&self, sequence: u64, bytes: &[u8]) -> Result<PathBuf, LocalError> {
        let path = self.dir.join(format::file_name(sequence));
        durable::Replace::default()
            .crash_points(CrashPoints { before_rename: "checkpoint-before-rename", before_dir_fsync: "checkpoint-before-dir-fsync" })
            .write(&path, bytes)
            .map_err(io(&path))?;
        self.prune()?;
        Ok(path)
    }

    /// Checkpoint files, newest first. Leftover temp files of a crashed write
    /// are removed: they were never durable checkpoints.
    pub fn list(&self) -> Result<Vec<(u64, PathBuf)>, LocalError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(LocalError::Io { path: self.dir.clone(), error: e }),
        };
        let mut found = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io(&self.dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') && name.contains(&format!(".{EXTENSION}.tmp-")) {
                let _ = fs::remove_file(entry.path());
            } else if let Some(sequence) = format::sequence_of(&name) {
                found.push((sequence, entry.path()));
            }
        }
        found.sort_by_key(|f| std::cmp::Reverse(f.0));
        Ok(found)
    }

    fn prune(&self) -> Result<(), LocalError> {
        for (_, path) in self.list()?.into_iter().skip(self.keep) {
            fs::remove_file(&path).map_err(io(&path))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_and_clears_crashed_temp_files() {
        let root = tempfile::tempdir().unwrap();
        let tier = LocalTier::new(root.path(), "p", "obs-0", 2);
        assert!(tier.list().unwrap().is_empty());
        for seq in 1..=4 {
            tier.write(seq, format!("checkpoint {seq}").as_bytes()).unwrap();
        }
        let left: Vec<u64> = tier.list().unwrap().iter().map(|(s, _)| *s).collect();
        assert_eq!(left, vec![4, 3]);
        assert_eq!(fs::read(&tier.list().unwrap()[0].1).unwrap(), b"checkpoint 4");
        let stray = tier.dir().join(".ckpt-00000000000000000005.sdackpt.tmp-999");
        fs::write(&stray, b"half").unwrap();
        assert_eq!(tier.list().unwrap().len(), 2);
        assert!(!stray.exists(), "a crashed write's temp file is removed");
    }
}
