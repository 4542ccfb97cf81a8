//! Which operators run a plugin other than the one `pipeline.toml` names, because it was swapped in: a journal, and a content-addressed copy of each such plugin, so a restart runs what was running.
//!
//! Layout, beside the task folders of the local checkpoint tier:
//! `<checkpoint dir>/<pipeline>/swaps.json` and `<checkpoint dir>/<pipeline>/plugins/<sha256 hex>.wasm`.
//! Both are written durably (temp file, fsync, rename, folder fsync) before the
//! tasks switch, so a crash at any point after a swap committed finds them.
//!
//! An entry applies while `pipeline.toml` still names the plugin it named when
//! the swap happened (`configured_digest`): once someone edits the file to name
//! another plugin, the file wins again and the entry is dropped.

use crate::durable;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Version of `swaps.json`.
const JOURNAL_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("swap journal `{}`: {error}", path.display())]
    Io { path: PathBuf, error: std::io::Error },
    #[error(
        "swap journal `{}` cannot be read: {message} (remove it to run the plugins pipeline.toml names)",
        path.display()
    )]
    Corrupt { path: PathBuf, message: String },
    #[error(
        "operator `{operator}` was swapped to plugin {digest}, but its copy `{}` {problem}; \
         restore the file, or remove `{operator}` from `{}` to run the plugin pipeline.toml names",
        stored.display(),
        journal.display()
    )]
    MissingPlugin { operator: String, digest: String, stored: PathBuf, journal: PathBuf, problem: String },
}

/// One operator's swapped-in plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwapRecord {
    /// `sha256:<hex>` of the plugin the operator runs.
    pub digest: String,
    /// What `pipeline.toml` named when the swap happened.
    pub configured_digest: String,
    /// The file the plugin was swapped in from.
    pub from_path: String,
    /// RFC 3339, UTC.
    pub swapped_at: String,
    /// Who or what asked for it (the admin endpoint's caller, or `run --watch`).
    pub swapped_by: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct JournalFile {
    version: u32,
    operators: BTreeMap<String, SwapRecord>,
}

/// The journal and plugin copies of one pipeline.
#[derive(Debug, Clone)]
pub struct SwapJournal {
    dir: PathBuf,
}

impl SwapJournal {
    /// The journal of pipeline `pipeline` under checkpoint root `root`.
    pub fn new(root: &Path, pipeline: &str) -> SwapJournal {
        SwapJournal { dir: root.join(pipeline) }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join("swaps.json")
    }

    /// Where the copy of the plugin with `digest` (`sha256:<hex>`) is kept.
    pub fn stored_plugin(&self, digest: &str) -> PathBuf {
        self.dir.join("plugins").join(format!("{}.wasm", digest.trim_start_matches("sha256:")))
    }

    /// Every entry; none when there is no journal.
    pub fn load(&self) -> Result<BTreeMap<String, SwapRecord>, JournalError> {
        let path = self.path();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(error) => return Err(JournalError::Io { path, error }),
        };
        let file: JournalFile =
            serde_json::from_str(&text).map_err(|e| JournalError::Corrupt { path: path.clone(), message: e.to_string() })?;
        if file.version != JOURNAL_VERSION {
            return Err(JournalError::Corrupt {
                path,
                message: format!("it is version {}, this host reads version {JOURNAL_VERSION}", file.version),
            });
        }
        Ok(file.operators)
    }

    /// Records that `operator` runs `plugin` (its bytes kept under [`SwapJournal::stored_plugin`]) from now on.
    pub fn record(&self, operator: &str, record: SwapRecord, plugin: &[u8]) -> Result<(), JournalError> {
        let stored = self.stored_plugin(&record.digest);
        if !stored.exists() {
            durable::replace(&stored, plugin).map_err(|error| JournalError::Io { path: stored.clone(), error })?;
        }
        let mut operators = self.load()?;
        operators.insert(operator.to_string(), record);
        self.save(operators)
    }

    /// Drops `operator`'s entry (it runs what `pipeline.toml` names again). Its plugin copy stays:
    /// older checkpoints may still name it.
    pub fn forget(&self, operator: &str) -> Result<(), JournalError> {
        let mut operators = self.load()?;
        if operators.remove(operator).is_some() {
            self.save(operators)?;
        }
        Ok(())
    }

    fn save(&self, operators: BTreeMap<String, SwapRecord>) -> Result<(), JournalError> {
        let path = self.path();
        let mut text = serde_json::to_string_pretty(&JournalFile { version: JOURNAL_VERSION, operators }).expect("the journal serializes");
        text.push('\n');
        durable::replace(&path, text.as_bytes()).map_err(|error| JournalError::Io { path, error })
    }

    /// The plugin file an entry names, checked against its digest.
    pub fn read_plugin(&self, operator: &str, record: &SwapRecord) -> Result<crate::graph::PluginFile, JournalError> {
        let stored = self.stored_plugin(&record.digest);
        let missing = |problem: String| JournalError::MissingPlugin {
            operator: operator.to_string(),
            digest: record.digest.clone(),
            stored: stored.clone(),
            journal: self.path(),
            problem,
        };
        let file = crate::graph::PluginFile::read(&stored).map_err(|e| missing(format!("cannot be used: {e}")))?;
        if file.digest != record.digest {
            return Err(missing(format!("has digest {} instead", file.digest)));
        }
        Ok(file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(digest: &str) -> SwapRecord {
        SwapRecord {
            digest: digest.into(),
            configured_digest: "sha256:00".into(),
            from_path: "/tmp/new.wasm".into(),
            swapped_at: "2026-11-24T10:00:00Z".into(),
            swapped_by: "test".into(),
        }
    }

    #[test]
    fn records_survive_a_reload_and_forget_removes_only_one() {
        let dir = tempfile::tempdir().unwrap();
        let journal = SwapJournal::new(dir.path(), "p");
        assert!(journal.load().unwrap().is_empty(), "no journal: no entries");
        journal.record("a", record("sha256:aa"), b"plugin a").unwrap();
        journal.record("b", record("sha256:bb"), b"plugin b").unwrap();
        assert_eq!(std::fs::read(journal.stored_plugin("sha256:aa")).unwrap(), b"plugin a");
        let loaded = journal.load().unwrap();
        assert_eq!(loaded.len(), 2);
        assert_eq!(loaded["b"], record("sha256:bb"));
        journal.forget("a").unwrap();
        assert_eq!(journal.load().unwrap().keys().collect::<Vec<_>>(), vec!["b"]);
        assert!(journal.stored_plugin("sha256:aa").exists(), "the copy stays for older checkpoints");
    }

    #[test]
    fn a_damaged_journal_or_copy_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let journal = SwapJournal::new(dir.path(), "p");
        journal.record("a", record("sha256:aa"), b"not a component").unwrap();
        let e = journal.read_plugin("a", &journal.load().unwrap()["a"]).unwrap_err().to_string();
        assert!(e.contains("operator `a` was swapped to plugin sha256:aa") && e.contains("aa.wasm") && e.contains("swaps.json"), "{e}");
        std::fs::write(journal.path(), "{\"version\": 1, \"operators\": {\"a\": {\"digest\": 3}}}").unwrap();
        let e = journal.load().unwrap_err().to_string();
        assert!(e.contains("swaps.json") && e.contains("cannot be read"), "{e}");
    }
}
