//! Test support shared by integration tests and benches: built plugin paths, and helpers to run things for real.

use std::path::{Path, PathBuf};

pub mod kafka;
pub mod moto;
pub mod pipeline;
pub mod proxy;

pub use pipeline::PipelineToml;

/// `sda-pipeline run pipeline.toml` in `dir`, with the fail point `failpoint` armed if any (logs at `warn`, the
/// compiled-plugin cache shared by the test binary's runs). A macro: only the integration test or bench that
/// expands it knows where the binary is.
#[macro_export]
macro_rules! run_command {
    ($dir:expr, $failpoint:expr) => {
        $crate::run_command_of(env!("CARGO_BIN_EXE_sda-pipeline"), std::path::Path::new(env!("CARGO_TARGET_TMPDIR")), $dir, $failpoint)
    };
}

/// `sda-pipeline` in `dir`, compiling plugins into the test's shared cache, with no arguments yet (`validate`,
/// `plan`, ...); a macro, like [`run_command!`], so that the binary is the calling test crate's.
#[macro_export]
macro_rules! sda_command {
    ($dir:expr) => {{
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_sda-pipeline"));
        cmd.current_dir($dir).env("SDA_CACHE_DIR", std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache"));
        cmd
    }};
}

/// Runs `validate` and then `run` of `pipeline.toml` through `sda` (see [`sda_command!`]), which must both
/// refuse it (validate with exit code 2) before asking any broker; returns each one's stderr, for the caller's
/// own checks of what it said.
pub fn refused_by_validate_and_run(sda: impl Fn(&[&str]) -> std::process::Output) -> Vec<String> {
    let mut said = Vec::new();
    for args in [&["validate", "pipeline.toml"][..], &["run", "pipeline.toml", "--quiet"]] {
        let out = sda(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        match args[0] {
            "validate" => assert_eq!(out.status.code(), Some(2), "{stderr}"),
            _ => assert!(out.status.code().is_some_and(|c| c != 0), "{stderr}"),
        }
        assert!(!stderr.contains("cannot reach"), "{args:?}: refused before the broker is asked: {stderr}");
        said.push(stderr);
    }
    said
}

/// Spawns `command` with its stderr piped; its lines arrive on the returned channel, each with when it was read
/// (benches time events by the log lines that announce them).
pub fn spawn_with_stderr_lines(
    command: &mut std::process::Command,
) -> (std::process::Child, std::sync::mpsc::Receiver<(std::time::Instant, String)>) {
    use std::io::BufRead as _;
    let mut child = command.stderr(std::process::Stdio::piped()).spawn().expect("running sda-pipeline");
    let stderr = child.stderr.take().expect("stderr is piped");
    let (send, receive) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if send.send((std::time::Instant::now(), line)).is_err() {
                break;
            }
        }
    });
    (child, receive)
}

/// [`run_command!`] with the binary and the test's scratch target folder given.
pub fn run_command_of(binary: &str, target_tmp: &Path, dir: &Path, failpoint: Option<&str>) -> std::process::Command {
    let mut cmd = std::process::Command::new(binary);
    cmd.current_dir(dir).args(["run", "pipeline.toml"]).env("SDA_CACHE_DIR", target_tmp.join("component-cache")).env("SDA_LOG", "warn");
    match failpoint {
        Some(point) => cmd.env("SDA_FAILPOINT", point),
        None => cmd.env_remove("SDA_FAILPOINT"),
    };
    cmd
}

pub mod plugins {
    //! Paths of every plugin under `plugins/`, built for wasm32-wasip2 by this crate's build script.
    include!(concat!(env!("OUT_DIR"), "/plugins.rs"));
}

/// A scratch folder for one test: pipeline files, inputs and outputs.
pub struct Scratch {
    /// `None` only once dropped.
    dir: Option<tempfile::TempDir>,
}

/// With `SDA_KEEP_SCRATCH=1`, a test that fails keeps its scratch folder (logs, checkpoints, configs) and says where.
impl Drop for Scratch {
    fn drop(&mut self) {
        let keep = std::thread::panicking() && std::env::var_os("SDA_KEEP_SCRATCH").is_some_and(|v| v == "1");
        if let (true, Some(dir)) = (keep, self.dir.take()) {
            eprintln!("scratch kept at {}", dir.keep().display());
        }
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Self::new()
    }
}

impl Scratch {
    pub fn new() -> Scratch {
        Scratch { dir: Some(tempfile::tempdir().expect("creating a temp dir")) }
    }

    pub fn path(&self) -> &Path {
        self.dir.as_ref().expect("a scratch folder is there until dropped").path()
    }

    pub fn join(&self, relative: &str) -> PathBuf {
        self.path().join(relative)
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

/// The pipeline the scenario tests run on `obs.jsonl`: the sample graph ([`PipelineToml::sample`]), with the
/// correlator's candidates also to `out/candidates.jsonl`. `correlator_settings` are the correlator's keys besides its
/// plugin, inputs and config; the configs are inline tables.
pub fn scenario_pipeline(name: &str, correlator_settings: &str, correlator_config: &str, classifier_config: &str) -> PipelineToml {
    PipelineToml::sample(name)
        .lines("operators.correlator", correlator_settings)
        .set("operators.correlator", "config", correlator_config)
        .set("operators.classifier", "config", classifier_config)
        .file_sink("candidates", &["correlator"], "out/candidates.jsonl")
}

pub fn read_jsonl(path: &Path) -> Vec<serde_json::Value> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: line is not JSON ({e}): {l}", path.display())))
        .collect()
}

/// A xorshift64 generator: the same seed gives the same draws, so a failing torture run can be replayed.
pub fn xorshift(seed: u64) -> impl FnMut() -> u64 {
    let mut state = seed | 1;
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}

pub mod postgres {
    //! Where tests reach the machine's PostgreSQL server: 127.0.0.1:5432, user `postgres`, database `test`,
    //! overridden by SDA_TEST_POSTGRES_ADDR, SDA_TEST_POSTGRES_USER and SDA_TEST_POSTGRES_DB.

    /// The server's `host:port`.
    pub fn addr() -> String {
        std::env::var("SDA_TEST_POSTGRES_ADDR").unwrap_or_else(|_| "127.0.0.1:5432".into())
    }

    /// A connection URL for the server at `addr` (a proxy in front of it, say).
    pub fn url_via(addr: &str) -> String {
        let user = std::env::var("SDA_TEST_POSTGRES_USER").unwrap_or_else(|_| "postgres".into());
        format!("postgres://{user}@{addr}/{}", database())
    }

    /// A connection URL for the server.
    pub fn url() -> String {
        url_via(&addr())
    }

    /// The test database's name.
    pub fn database() -> String {
        std::env::var("SDA_TEST_POSTGRES_DB").unwrap_or_else(|_| "test".into())
    }

    /// Runs `sql` on the test database; the first column of each row, as text. Panics, saying
    /// where it looked and how to point it elsewhere, when the server does not answer.
    pub fn query(sql: &str) -> Vec<String> {
        try_query(sql).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`query`], with its failure as a message rather than a panic.
    pub fn try_query(sql: &str) -> Result<Vec<String>, String> {
        try_query_at(&url(), sql)
    }

    /// [`try_query`] on the server at `url`.
    pub fn try_query_at(url: &str, sql: &str) -> Result<Vec<String>, String> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
        runtime.block_on(async {
            let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.map_err(|e| {
                format!(
                    "these tests need PostgreSQL, and none answered at `{url}` ({e}); start one, or point \
                     SDA_TEST_POSTGRES_ADDR, SDA_TEST_POSTGRES_USER and SDA_TEST_POSTGRES_DB at one"
                )
            })?;
            tokio::spawn(connection);
            let rows = client.simple_query(sql).await.map_err(|e| format!("{sql}: {e}"))?;
            Ok(rows
                .into_iter()
                .filter_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(row) => Some(row.get(0).unwrap_or_default().to_string()),
                    _ => None,
                })
                .collect())
        })
    }

    /// The `alert_id`s of a sink's table, sorted.
    pub fn alert_ids(table: &str) -> Vec<String> {
        query(&format!("SELECT alert_id FROM \"{table}\" ORDER BY alert_id"))
    }

    /// A table name no other test uses (`<tag>_<pid>_<nanos>`), dropped when this is dropped.
    pub struct ScratchTable(pub String, String);

    impl ScratchTable {
        /// A scratch table on the test server; panics at once, saying so, if that server does not
        /// answer (rather than let the test wait for a pipeline that cannot reach it).
        pub fn new(tag: &str) -> ScratchTable {
            if let Err(e) = try_query("SELECT 1") {
                panic!("{e}");
            }
            ScratchTable::at(tag, &url())
        }

        /// A scratch table on the server at `url`.
        pub fn at(tag: &str, url: &str) -> ScratchTable {
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
            ScratchTable(format!("{tag}_{}_{nanos:x}", std::process::id()), url.to_string())
        }

        /// The `alert_id`s of the rows, sorted.
        pub fn alert_ids(&self) -> Vec<String> {
            alert_ids(&self.0)
        }
    }

    impl Drop for ScratchTable {
        /// Drops the table. Never panics: a panic here while a failing test unwinds (PostgreSQL
        /// missing, say) aborted the whole test binary and hid every other test's result.
        fn drop(&mut self) {
            if let Err(e) = try_query_at(&self.1, &format!("DROP TABLE IF EXISTS \"{}\"", self.0))
                && !std::thread::panicking()
            {
                eprintln!("scratch table `{}` not dropped: {e}", self.0);
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        /// Nothing listens on port 1 of loopback.
        const NOWHERE: &str = "postgres://postgres@127.0.0.1:1/test";

        #[test]
        fn a_missing_server_is_a_clear_failure_and_a_scratch_table_never_aborts_the_binary() {
            let failure = try_query_at(NOWHERE, "SELECT 1").unwrap_err();
            assert!(failure.contains("need PostgreSQL") && failure.contains("SDA_TEST_POSTGRES_ADDR"), "{failure}");
            // A test failing with a scratch table alive: its drop runs while unwinding, and must not
            // panic again (that aborts the process); here the panic is caught and this test goes on.
            let unwound = std::panic::catch_unwind(|| {
                let _table = ScratchTable::at("missing_server", NOWHERE);
                panic!("the test's own failure");
            });
            assert!(unwound.is_err());
            // Dropped normally, it reports and does not panic either.
            drop(ScratchTable::at("missing_server", NOWHERE));
        }
    }
}

/// Asserts that a run with `SDA_FAILPOINT` set to `failpoint` was killed by it (SIGKILL), showing its stderr
/// otherwise.
pub fn assert_killed_by_failpoint(out: &std::process::Output, failpoint: &str) {
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        out.status.signal(),
        Some(9),
        "fail point `{failpoint}` did not fire (exit {:?}):\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
}
