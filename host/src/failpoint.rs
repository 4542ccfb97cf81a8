//! Deterministic crash points for crash tests: `SDA_FAILPOINT=name:count` kills the process with SIGKILL at the count-th pass through `name`.
//!
//! Compiled in only for tests: in debug builds (what `cargo test` runs) or with
//! the `failpoints` feature; in a release build every call is a no-op the
//! compiler removes. The points are named where they are hit:
//! `mid-process` (inside a batch, after the operators ran, before anything was
//! delivered), `mid-emit` (a sink has written part of a batch), and
//! `checkpoint-before-rename` / `checkpoint-before-dir-fsync` (a checkpoint's
//! temp file is written but not yet renamed; renamed but its folder not yet
//! synced), `checkpoint-committed` (a checkpoint is durable locally and its
//! offsets are committed, as far as they may be, but its upload may not be
//! done).

#[cfg(any(debug_assertions, feature = "failpoints"))]
mod enabled {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// The armed point and how many passes remain before it fires.
    static ARMED: OnceLock<Option<(String, AtomicU64)>> = OnceLock::new();

    fn armed() -> &'static Option<(String, AtomicU64)> {
        ARMED.get_or_init(|| {
            let spec = std::env::var("SDA_FAILPOINT").ok()?;
            let (name, count) = spec.split_once(':').unwrap_or((spec.as_str(), "1"));
            let count: u64 = count.parse().unwrap_or(1).max(1);
            Some((name.to_string(), AtomicU64::new(count)))
        })
    }

    /// True exactly on the pass at which the point `name` must fire.
    pub fn fires(name: &str) -> bool {
        match armed() {
            Some((armed_name, remaining)) if armed_name == name => remaining.fetch_sub(1, Ordering::SeqCst) == 1,
            _ => false,
        }
    }

    /// True if `name` is one of the points `SDA_FAILPOINT_STALL` (comma-separated) names.
    pub fn stalls(name: &str) -> bool {
        static STALLED: OnceLock<Vec<String>> = OnceLock::new();
        STALLED
            .get_or_init(|| std::env::var("SDA_FAILPOINT_STALL").map(|v| v.split(',').map(str::to_string).collect()).unwrap_or_default())
            .iter()
            .any(|stalled| stalled == name)
    }

    /// Kills the process as `kill -9` would: no destructor, flush or handler runs.
    pub fn crash(name: &str) -> ! {
        eprintln!("failpoint `{name}` fired: SIGKILL");
        let _ = signal_hook::low_level::raise(signal_hook::consts::SIGKILL);
        std::process::abort()
    }
}

/// Crashes here if this is the armed pass through `name`.
#[inline]
pub fn hit(name: &str) {
    #[cfg(any(debug_assertions, feature = "failpoints"))]
    if enabled::fires(name) {
        enabled::crash(name);
    }
    #[cfg(not(any(debug_assertions, feature = "failpoints")))]
    let _ = name;
}

/// For points that must do something first (write half a batch): true if this
/// is the armed pass; the caller then calls [`crash`].
#[inline]
pub fn fires(name: &str) -> bool {
    #[cfg(any(debug_assertions, feature = "failpoints"))]
    return enabled::fires(name);
    #[cfg(not(any(debug_assertions, feature = "failpoints")))]
    {
        let _ = name;
        false
    }
}

/// True if `SDA_FAILPOINT_STALL` names `name`: the caller then waits instead of doing its work
/// (`remote-upload`: checkpoint uploads never finish), so a crash test can kill a process while that
/// work is certainly not done. Always false in a release build.
#[inline]
pub fn stalls(name: &str) -> bool {
    #[cfg(any(debug_assertions, feature = "failpoints"))]
    return enabled::stalls(name);
    #[cfg(not(any(debug_assertions, feature = "failpoints")))]
    {
        let _ = name;
        false
    }
}

/// Kills the process (see [`hit`]).
pub fn crash(name: &str) -> ! {
    #[cfg(any(debug_assertions, feature = "failpoints"))]
    enabled::crash(name);
    #[cfg(not(any(debug_assertions, feature = "failpoints")))]
    panic!("failpoint `{name}` is not compiled into this build")
}
