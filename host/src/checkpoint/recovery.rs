//! The recovery ladder: which checkpoint a task resumes from, tried in a fixed order, every skip explained.
//!
//! Rungs, in order: the newest local checkpoint; older local ones; the remote
//! tier, newest first; a fresh start. A checkpoint is skipped when its bytes
//! are damaged, when it belongs to another pipeline (fingerprint) or task, or
//! when a plugin refuses its state. A fresh start is silent only when there was
//! nothing to recover; when checkpoints exist but none is usable it is refused
//! unless the operator asked for it (`--allow-fresh-start`).

use super::format::{self, Checkpoint};
use super::local::{LocalError, LocalTier};
use super::remote::RemoteTier;
use crate::metrics::RecoveryPath;

/// What a checkpoint must match to be restored.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    pub pipeline: &'a str,
    pub fingerprint: &'a str,
    pub task: &'a str,
}

/// A checkpoint that was passed over, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// Its local path or remote URL.
    pub checkpoint: String,
    pub reason: String,
}

/// How a task recovered.
#[derive(Debug)]
pub struct Recovered<T> {
    pub path: RecoveryPath,
    /// The checkpoint restored, and where it came from; `None` on a fresh start.
    pub checkpoint: Option<(Checkpoint, String)>,
    /// What the restore function built from it (restored operators, say).
    pub restored: Option<T>,
    pub skipped: Vec<Skipped>,
}

#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error(transparent)]
    Local(#[from] LocalError),
    #[error(
        "task `{task}`: {} checkpoint(s) exist but none can be restored, so it will not start from scratch on its own:\n{}\nRestart with `--allow-fresh-start` to start from the beginning of the input anyway.",
        skipped.len(),
        skipped.iter().map(|s| format!("  - {}: {}", s.checkpoint, s.reason)).collect::<Vec<_>>().join("\n")
    )]
    NothingUsable { task: String, skipped: Vec<Skipped> },
}

/// Walks the ladder. `restore` gets each candidate that passed the checks and
/// either builds what the task needs from it or says why it cannot.
pub fn recover<T>(
    local: &LocalTier,
    remote: Option<(&RemoteTier, &str)>,
    expected: Expected<'_>,
    allow_fresh_start: bool,
    mut restore: impl FnMut(&Checkpoint) -> Result<T, String>,
) -> Result<Recovered<T>, RecoveryError> {
    let mut skipped = Vec::new();
    let mut attempt = |bytes: &[u8], at: &str, skipped: &mut Vec<Skipped>| -> Option<(Checkpoint, T)> {
        let outcome = Checkpoint::decode(bytes).map_err(|e| e.to_string()).and_then(|c| {
            check(&c, expected)?;
            restore(&c).map(|t| (c, t))
        });
        match outcome {
            Ok(found) => Some(found),
            Err(reason) => {
                tracing::warn!(task = expected.task, checkpoint = at, %reason, "skipping checkpoint");
                skipped.push(Skipped { checkpoint: at.to_string(), reason });
                None
            }
        }
    };

    let local_files = local.list()?;
    for (index, (_, path)) in local_files.iter().enumerate() {
        let at = path.display().to_string();
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) => {
                skipped.push(Skipped { checkpoint: at, reason: format!("cannot read it: {e}") });
                continue;
            }
        };
        if let Some((checkpoint, restored)) = attempt(&bytes, &at, &mut skipped) {
            let path = if index == 0 { RecoveryPath::Local } else { RecoveryPath::LocalOlder };
            return Ok(Recovered { path, checkpoint: Some((checkpoint, at)), restored: Some(restored), skipped });
        }
    }

    let mut remote_seen = false;
    if let Some((tier, prefix)) = remote {
        match tier.list(prefix) {
            Ok(names) => {
                let mut names: Vec<(u64, String)> = names
                    .into_iter()
                    .filter_map(|n| format::sequence_of(n.rsplit('/').next().unwrap_or(&n)).map(|s| (s, n)))
                    .collect();
                names.sort_by_key(|n| std::cmp::Reverse(n.0));
                remote_seen = !names.is_empty();
                for (_, name) in names {
                    let at = format!("{}/{name}", tier.url().trim_end_matches('/'));
                    match tier.get(&name) {
                        Ok(Some(bytes)) => {
                            if let Some((checkpoint, restored)) = attempt(&bytes, &at, &mut skipped) {
                                return Ok(Recovered {
                                    path: RecoveryPath::Remote,
                                    checkpoint: Some((checkpoint, at)),
                                    restored: Some(restored),
                                    skipped,
                                });
                            }
                        }
                        Ok(None) => skipped.push(Skipped { checkpoint: at, reason: "listed but gone when fetched".into() }),
                        Err(e) => skipped.push(Skipped { checkpoint: at, reason: e.to_string() }),
                    }
                }
            }
            Err(e) => {
                // Unreachable: whether it holds checkpoints is unknown, so a
                // fresh start must be asked for, as when checkpoints are bad.
                remote_seen = true;
                skipped.push(Skipped { checkpoint: tier.url().to_string(), reason: format!("cannot list the remote tier: {e}") });
            }
        }
    }

    if !local_files.is_empty() || remote_seen {
        if !allow_fresh_start {
            return Err(RecoveryError::NothingUsable { task: expected.task.to_string(), skipped });
        }
        tracing::warn!(task = expected.task, skipped = skipped.len(), "no usable checkpoint; starting fresh as asked (--allow-fresh-start)");
    }
    Ok(Recovered { path: RecoveryPath::Fresh, checkpoint: None, restored: None, skipped })
}

fn check(c: &Checkpoint, expected: Expected<'_>) -> Result<(), String> {
    if c.header.pipeline != expected.pipeline {
        return Err(format!("written by pipeline `{}`, not `{}`", c.header.pipeline, expected.pipeline));
    }
    if c.header.fingerprint != expected.fingerprint {
        return Err(format!(
            "written for another shape of the pipeline (fingerprint {}, now {}): sources, operators, sinks or their wiring changed",
            short(&c.header.fingerprint),
            short(expected.fingerprint)
        ));
    }
    if c.header.task != expected.task {
        return Err(format!("belongs to task `{}`, not `{}`", c.header.task, expected.task));
    }
    Ok(())
}

fn short(fingerprint: &str) -> &str {
    let hex = fingerprint.strip_prefix("sha256:").unwrap_or(fingerprint);
    &hex[..hex.len().min(12)]
}
