//! A local S3 API server for tests: moto's `moto_server`, from the `.venv` that `make test` installs.
//!
//! Each [`MotoServer`] is its own process on a free loopback port, killed when dropped; its state (buckets,
//! objects) lives only as long as it does. Point object_store at it with [`MotoServer::env`].

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Region the server and clients agree on (moto creates buckets in us-east-1 when none is asked for).
pub const REGION: &str = "us-east-1";

/// A running moto S3 server, killed on drop.
pub struct MotoServer {
    child: Child,
    addr: SocketAddr,
    /// Holds the server's log, shown if it fails.
    log_dir: tempfile::TempDir,
}

/// The virtualenv tests take Python tools from: `$SDA_VENV` (relative to the workspace root, as `make test`
/// reads it), else `.venv` at the workspace root.
pub fn venv_dir() -> PathBuf {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    match std::env::var_os("SDA_VENV") {
        Some(dir) if !dir.is_empty() => workspace.join(dir),
        _ => workspace.join(".venv"),
    }
}

impl MotoServer {
    /// Starts a server on a free `127.0.0.1` port and waits until it answers HTTP.
    ///
    /// Panics if `moto_server` is not installed (run `make test`, which installs it) or does not come up.
    pub fn start() -> MotoServer {
        let bin = venv_dir().join("bin").join("moto_server");
        if !bin.is_file() {
            panic!(
                "{} not found: the S3 tests need moto's server, which `make test` installs into the virtualenv \
                 (from tests/requirements.txt). Run `make test`, or set SDA_VENV to a virtualenv that has `moto[server]`.",
                bin.display()
            );
        }
        // The free port is found by binding and releasing it, so another process may take it in between:
        // then moto exits at once and we try another.
        let mut last_failure = String::new();
        for _ in 0..5 {
            let port = free_port();
            let log_dir = tempfile::tempdir().expect("creating a temp dir for moto's log");
            let log = std::fs::File::create(log_dir.path().join("moto.log")).expect("creating moto's log");
            let child = Command::new(&bin)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("cloning a file handle"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
            let mut server = MotoServer { child, addr: SocketAddr::from(([127, 0, 0, 1], port)), log_dir };
            match server.wait_until_ready(Duration::from_secs(60)) {
                Ok(()) => return server,
                Err(e) => last_failure = format!("{e}\n--- moto log ---\n{}", server.log()),
            }
        }
        panic!("moto_server did not come up: {last_failure}");
    }

    fn wait_until_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                return Err(format!("moto_server exited with {status}"));
            }
            // Any HTTP answer means it is serving.
            if self.request("GET", "/moto-api/", &[]).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("no answer on {} after {timeout:?}", self.addr));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Creates `bucket` (in [`REGION`]). Panics unless the server says it did.
    pub fn create_bucket(&self, bucket: &str) {
        let (status, body) = self
            .request("PUT", &format!("/{bucket}"), &[])
            .unwrap_or_else(|e| panic!("creating bucket {bucket} on {}: {e}", self.endpoint()));
        assert_eq!(status, 200, "creating bucket {bucket} on {}: HTTP {status}: {body}", self.endpoint());
    }

    /// The `AWS_*` variables that point an S3 client (object_store's `AmazonS3Builder::from_env`) at this
    /// server: dummy credentials, the region, the endpoint, plain HTTP allowed.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ACCESS_KEY_ID", "testing".to_string()),
            ("AWS_SECRET_ACCESS_KEY", "testing".to_string()),
            ("AWS_REGION", REGION.to_string()),
            ("AWS_ENDPOINT", self.endpoint()),
            ("AWS_ALLOW_HTTP", "true".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// What the server has logged so far (a line per request).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_dir.path().join("moto.log")).unwrap_or_default()
    }

    /// One HTTP/1.1 request without a body; returns the status and the body. No HTTP client needed.
    fn request(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> std::io::Result<(u16, String)> {
        let mut stream = TcpStream::connect_timeout(&self.addr, Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n", self.addr);
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes())?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response)?;
        let response = String::from_utf8_lossy(&response);
        let status = response
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {response:.200}")))?;
        let body = response.split_once("\r\n\r\n").map_or("", |(_, body)| body).to_string();
        Ok((status, body))
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A bucket name no other test (in this process or another) uses: lowercase, valid for S3.
pub fn unique_bucket(label: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let label: String = label.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).take(30).collect();
    format!("sda-{label}-{}-{}-{nanos:x}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A loopback port nothing listens on (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("binding a free loopback port").port()
}
