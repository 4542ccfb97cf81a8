//! The recovery ladder: which checkpoint a task resumes from, tried in a fixed order, every skip explained.
//!
//! Rungs, in order: the checkpoints of both tiers, newest (highest sequence)
//! first, the local copy before the remote one of the same checkpoint; then a
//! fresh start. A checkpoint is skipped when its bytes
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
    /// Earlier shapes of the pipeline whose checkpoints are usable too: this process rebuilt the graph
    /// from them (`run --watch`), carrying state over by operator and sink name.
    pub also_accepted: &'a [String],
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
        "task `{task}`: {} checkpoint(s) exist but none can be restored, so it will not start from scratch on its own:\n{}\nRestart with \
            `--allow-fresh-start` to start from the beginning of the input anyway.",
        skipped.len(),
        skipped.iter().map(|s| format!("  - {}: {}", s.checkpoint, s.reason)).collect::<Vec<_>>().join("\n")
    )]
    NothingUsable { task: String, skipped: Vec<Skipped> },
}

/// Whether the ladder may end in a fresh start when checkpoints exist but none is usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreshStart {
    /// No: the task refuses to start and says why ([`RecoveryError::NothingUsable`]).
    Refused,
    /// The operator asked for it (`--allow-fresh-start`).
    Asked,
    /// Nothing the checkpoints stand for was ever made visible: a task with a transactional sink
    /// whose consumer group has no committed offset (every checkpoint's transaction was aborted).
    NothingCommitted,
}

/// A checkpoint the ladder may try.
enum Candidate {
    Local(std::path::PathBuf),
    /// An object name in the remote tier.
    Remote(String),
}

/// Walks the ladder. `restore` gets each candidate that passed the checks and
/// either builds what the task needs from it or says why it cannot.
pub fn recover<T>(
    local: &LocalTier,
    remote: Option<(&RemoteTier, &str)>,
    expected: Expected<'_>,
    fresh_start: FreshStart,
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

    // Every checkpoint of both tiers, newest (highest sequence) first, local before remote at equal
    // sequences (the same checkpoint, and reading it is cheaper). Both tiers count: after a failover a
    // partition can come back to a process whose local tier still holds what it wrote before losing it,
    // while the newer checkpoints of the process that had it since are only in the remote tier.
    // Sequences keep growing across owners (a task continues from the sequence it restored), so the
    // highest one is the newest whatever process wrote it.
    let local_files = local.list()?;
    let mut candidates: Vec<(u64, Candidate)> =
        local_files.iter().map(|(sequence, path)| (*sequence, Candidate::Local(path.clone()))).collect();
    let mut remote_seen = false;
    if let Some((tier, prefix)) = remote {
        match tier.list(prefix) {
            Ok(names) => {
                let names: Vec<(u64, String)> =
                    names.into_iter().filter_map(|n| format::sequence_of(n.rsplit('/').next().unwrap_or(&n)).map(|s| (s, n))).collect();
                remote_seen = !names.is_empty();
                candidates.extend(names.into_iter().map(|(sequence, name)| (sequence, Candidate::Remote(name))));
            }
            Err(e) => {
                // Unreachable: whether it holds checkpoints (newer ones, even) is unknown, so a fresh start
                // must be asked for, as when checkpoints are bad; a local checkpoint is still used.
                remote_seen = true;
                tracing::warn!(task = expected.task, url = %tier.url(), error = %e, "cannot list the remote checkpoint tier; trying the \
                    local one alone");
                skipped.push(Skipped { checkpoint: tier.url().to_string(), reason: format!("cannot list the remote tier: {e}") });
            }
        }
    }
    candidates.sort_by_key(|(sequence, candidate)| (std::cmp::Reverse(*sequence), matches!(candidate, Candidate::Remote(_))));

    let mut locals_tried = 0;
    for (_, candidate) in candidates {
        let (bytes, at, path) = match candidate {
            Candidate::Local(path) => {
                locals_tried += 1;
                let at = path.display().to_string();
                match std::fs::read(&path) {
                    Ok(bytes) => (bytes, at, if locals_tried == 1 { RecoveryPath::Local } else { RecoveryPath::LocalOlder }),
                    Err(e) => {
                        skipped.push(Skipped { checkpoint: at, reason: format!("cannot read it: {e}") });
                        continue;
                    }
                }
            }
            Candidate::Remote(name) => {
                let (tier, _) = remote.expect("remote candidates come from the remote tier");
                let at = format!("{}/{name}", tier.url().trim_end_matches('/'));
                match tier.get(&name) {
                    Ok(Some(bytes)) => (bytes, at, RecoveryPath::Remote),
                    Ok(None) => {
                        skipped.push(Skipped { checkpoint: at, reason: "listed but gone when fetched".into() });
                        continue;
                    }
                    Err(e) => {
                        skipped.push(Skipped { checkpoint: at, reason: e.to_string() });
                        continue;
                    }
                }
            }
        };
        if let Some((checkpoint, restored)) = attempt(&bytes, &at, &mut skipped) {
            return Ok(Recovered { path, checkpoint: Some((checkpoint, at)), restored: Some(restored), skipped });
        }
    }

    if !local_files.is_empty() || remote_seen {
        match fresh_start {
            FreshStart::Refused => return Err(RecoveryError::NothingUsable { task: expected.task.to_string(), skipped }),
            FreshStart::Asked => tracing::warn!(
                task = expected.task,
                skipped = skipped.len(),
                "no usable checkpoint; starting fresh as asked (--allow-fresh-start)"
            ),
            FreshStart::NothingCommitted => tracing::info!(
                task = expected.task,
                skipped = skipped.len(),
                "no checkpoint's transaction was ever committed; starting from the beginning"
            ),
        }
    }
    Ok(Recovered { path: RecoveryPath::Fresh, checkpoint: None, restored: None, skipped })
}

fn check(c: &Checkpoint, expected: Expected<'_>) -> Result<(), String> {
    if c.header.pipeline != expected.pipeline {
        return Err(format!("written by pipeline `{}`, not `{}`", c.header.pipeline, expected.pipeline));
    }
    if c.header.fingerprint != expected.fingerprint && !expected.also_accepted.contains(&c.header.fingerprint) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::format::tests::sample;

    const EXPECTED: Expected<'static> = Expected { pipeline: "p", fingerprint: "f", also_accepted: &[], task: "obs-0" };

    /// A checkpoint of task `obs-0` with `sequence`, resuming at `offset`.
    fn checkpoint(sequence: u64, offset: u64) -> Vec<u8> {
        let mut c = sample();
        c.header.sequence = sequence;
        c.offset = offset;
        c.encode()
    }

    struct Tiers {
        _dir: tempfile::TempDir,
        local: LocalTier,
        remote: RemoteTier,
    }

    impl Tiers {
        fn new() -> Tiers {
            let dir = tempfile::tempdir().unwrap();
            let local = LocalTier::new(&dir.path().join("local"), "p", "obs-0", 3);
            std::fs::create_dir_all(dir.path().join("remote")).unwrap();
            let remote = RemoteTier::from_url("remote", dir.path()).unwrap();
            Tiers { _dir: dir, local, remote }
        }

        fn put_remote(&self, sequence: u64, offset: u64) {
            self.remote.put(&format!("p/obs-0/{}", format::file_name(sequence)), checkpoint(sequence, offset).into()).unwrap();
        }

        fn recover(
            &self,
            fresh_start: FreshStart,
            restore: impl FnMut(&Checkpoint) -> Result<(), String>,
        ) -> Result<Recovered<()>, RecoveryError> {
            recover(&self.local, Some((&self.remote, "p/obs-0")), EXPECTED, fresh_start, restore)
        }
    }

    #[test]
    fn the_newest_checkpoint_wins_whichever_tier_holds_it() {
        // A process that held the partition before a rebalance has sequences 1-2 locally; the process that
        // had it since wrote 3-5, which only the remote tier holds.
        let tiers = Tiers::new();
        tiers.local.write(1, &checkpoint(1, 100)).unwrap();
        tiers.local.write(2, &checkpoint(2, 200)).unwrap();
        for sequence in 3..=5 {
            tiers.put_remote(sequence, sequence * 100);
        }
        let recovered = tiers.recover(FreshStart::Refused, |_| Ok(())).unwrap();
        assert_eq!(recovered.path, RecoveryPath::Remote);
        assert_eq!(recovered.checkpoint.unwrap().0.offset, 500);
    }

    #[test]
    fn the_local_copy_is_read_before_the_remote_copy_of_the_same_checkpoint() {
        let tiers = Tiers::new();
        tiers.local.write(4, &checkpoint(4, 400)).unwrap();
        tiers.put_remote(3, 300);
        tiers.put_remote(4, 400);
        let recovered = tiers.recover(FreshStart::Refused, |_| Ok(())).unwrap();
        assert_eq!(recovered.path, RecoveryPath::Local);
        assert!(recovered.checkpoint.unwrap().1.contains("local"));
    }

    #[test]
    fn a_refused_checkpoint_falls_back_to_the_next_newest_across_tiers() {
        let tiers = Tiers::new();
        tiers.local.write(2, &checkpoint(2, 200)).unwrap();
        tiers.local.write(4, &checkpoint(4, 400)).unwrap();
        tiers.put_remote(3, 300);
        tiers.put_remote(5, 500);
        // As a transactional task whose group committed offset 200 does.
        let recovered = tiers.recover(FreshStart::Refused, |c| if c.offset == 200 { Ok(()) } else { Err("not committed".into()) }).unwrap();
        assert_eq!(recovered.path, RecoveryPath::LocalOlder);
        assert_eq!(recovered.checkpoint.unwrap().0.offset, 200);
        let tried: Vec<&str> = recovered.skipped.iter().map(|s| s.checkpoint.as_str()).collect();
        assert_eq!(tried.len(), 3, "{tried:?}");
        assert!(
            tried[0].ends_with(&format::file_name(5))
                && tried[1].ends_with(&format::file_name(4))
                && tried[2].ends_with(&format::file_name(3))
        );
    }

    #[test]
    fn when_nothing_is_usable_a_fresh_start_is_refused_unless_asked_or_nothing_was_committed() {
        let tiers = Tiers::new();
        tiers.local.write(1, &checkpoint(1, 100)).unwrap();
        tiers.put_remote(2, 200);
        let refuse = |_: &Checkpoint| Err::<(), _>("never committed".to_string());
        match tiers.recover(FreshStart::Refused, refuse) {
            Err(RecoveryError::NothingUsable { task, skipped }) => {
                assert_eq!(task, "obs-0");
                assert_eq!(skipped.len(), 2);
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        for allowed in [FreshStart::Asked, FreshStart::NothingCommitted] {
            let recovered = tiers.recover(allowed, refuse).unwrap();
            assert_eq!(recovered.path, RecoveryPath::Fresh);
            assert!(recovered.checkpoint.is_none());
        }
    }

    #[test]
    fn an_unreachable_remote_tier_leaves_the_local_checkpoints_usable() {
        let dir = tempfile::tempdir().unwrap();
        let local = LocalTier::new(&dir.path().join("local"), "p", "obs-0", 3);
        local.write(1, &checkpoint(1, 100)).unwrap();
        // Nothing listens on port 9: listing fails.
        let remote = RemoteTier::from_url_with_env(
            "s3://bucket/prefix",
            dir.path(),
            [
                ("AWS_ENDPOINT", "http://127.0.0.1:9"),
                ("AWS_ACCESS_KEY_ID", "k"),
                ("AWS_SECRET_ACCESS_KEY", "s"),
                ("AWS_REGION", "us-east-1"),
                ("AWS_ALLOW_HTTP", "true"),
            ],
        )
        .unwrap();
        let recovered = recover(&local, Some((&remote, "p/obs-0")), EXPECTED, FreshStart::Refused, |_| Ok(())).unwrap();
        assert_eq!(recovered.path, RecoveryPath::Local);
        assert!(recovered.skipped[0].reason.contains("cannot list the remote tier"), "{:?}", recovered.skipped);
    }
}
