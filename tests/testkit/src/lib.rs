//! Test support shared by integration tests and benches: built plugin paths, and helpers to run things for real.

use std::path::{Path, PathBuf};

pub mod moto;

pub mod plugins {
    //! Paths of every plugin under `plugins/`, built for wasm32-wasip2 by this crate's build script.
    include!(concat!(env!("OUT_DIR"), "/plugins.rs"));
}

/// A scratch folder for one test: pipeline files, inputs and outputs.
pub struct Scratch {
    dir: tempfile::TempDir,
}

impl Default for Scratch {
    fn default() -> Self {
        Self::new()
    }
}

impl Scratch {
    pub fn new() -> Scratch {
        Scratch { dir: tempfile::tempdir().expect("creating a temp dir") }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn join(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// Writes `contents` to `relative`, creating folders; returns the full path.
    pub fn write(&self, relative: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("creating folders");
        }
        std::fs::write(&path, contents).expect("writing a scratch file");
        path
    }

    /// Appends `contents` to `relative`.
    pub fn append(&self, relative: &str, contents: impl AsRef<[u8]>) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(self.join(relative)).expect("opening for append");
        f.write_all(contents.as_ref()).expect("appending");
    }

    /// The JSON lines of `relative` (empty if it does not exist).
    pub fn read_jsonl(&self, relative: &str) -> Vec<serde_json::Value> {
        read_jsonl(&self.join(relative))
    }
}

/// The JSON lines of a file; an absent file has none. Panics on a line that is not JSON.
pub fn read_jsonl(path: &Path) -> Vec<serde_json::Value> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: line is not JSON ({e}): {l}", path.display())))
        .collect()
}
