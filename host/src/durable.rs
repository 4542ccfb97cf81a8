//! Writing a file so that a crash leaves either its old contents or its new ones: temp file, fsync, rename, folder fsync.
//!
//! The one way the host replaces a file it must be able to trust after a crash: checkpoints, the swap journal and
//! its stored plugins, the compiled-plugin cache, run reports. The temp file sits beside the target (a rename is
//! atomic only within a file system) and is named `.<name>.tmp-<pid>-<n>`, so a reader listing the folder can tell
//! a crashed write's leftover from a real file.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Writes so far by this process: part of each temp file's name, so two threads writing the same file never share one.
static WRITES: AtomicU64 = AtomicU64::new(0);

/// Replaces `path` with `bytes` durably, creating its folder if needed.
pub fn replace(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    Replace::default().write(path, bytes)
}

/// Crash points a write passes, named by the caller, for crash tests (see [`crate::failpoint`]).
#[derive(Debug, Clone, Copy)]
pub struct CrashPoints {
    /// The temp file is durable; the target still holds its old contents.
    pub before_rename: &'static str,
    /// Renamed, but the folder entry may not survive a power cut yet.
    pub before_dir_fsync: &'static str,
}

/// A durable replacement of a file, with options; [`replace`] is the plain one.
#[derive(Debug, Clone, Copy, Default)]
pub struct Replace {
    private: bool,
    crash_points: Option<CrashPoints>,
}

impl Replace {
    /// The file is readable and writable by its owner only (mode 0600).
    pub fn private(mut self) -> Replace {
        self.private = true;
        self
    }

    /// Passes `points` on the way, for crash tests.
    pub fn crash_points(mut self, points: CrashPoints) -> Replace {
        self.crash_points = Some(points);
        self
    }

    /// Replaces `path` with `bytes`, creating its folder if needed.
    pub fn write(self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        fs::create_dir_all(dir)?;
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let temp = dir.join(format!(".{name}.tmp-{}-{}", std::process::id(), WRITES.fetch_add(1, Ordering::Relaxed)));
        let written = (|| {
            // A crashed process with the same pid (PIDs repeat across container starts) may have left this name
            // behind: start from a new file, so its contents and permissions are never reused.
            match fs::remove_file(&temp) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            let mut options = OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            if self.private {
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            }
            let mut file = options.open(&temp)?;
            file.write_all(bytes)?;
            file.sync_all()
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&temp);
            return Err(e);
        }
        if let Some(points) = self.crash_points {
            crate::failpoint::hit(points.before_rename);
        }
        fs::rename(&temp, path)?;
        if let Some(points) = self.crash_points {
            crate::failpoint::hit(points.before_dir_fsync);
        }
        File::open(dir)?.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_files_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/state.bin");
        replace(&path, b"old").unwrap();
        Replace::default().private().write(&path, b"new contents").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new contents");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let names: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("state.bin")], "only the file itself is left");
    }

    #[test]
    fn a_temp_file_left_by_a_crashed_process_with_the_same_pid_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.json");
        // Every temp name this process could use next: one is certain to be the next write's.
        let next = WRITES.load(Ordering::Relaxed);
        for n in next..next + 64 {
            fs::write(dir.path().join(format!(".journal.json.tmp-{}-{n}", std::process::id())), b"stale").unwrap();
        }
        replace(&path, b"fresh").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"fresh");
    }
}
