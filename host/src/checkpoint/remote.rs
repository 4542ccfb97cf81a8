//! The remote checkpoint tier: copies of local checkpoint files in an object store (S3, or a directory), for recovery on another machine.
//!
//! [`RemoteTier`] is a synchronous façade over an [`ObjectStore`]: it owns a
//! small tokio runtime of its own, so the pipeline's task threads (which are
//! not async) can call it directly, and so can code that *is* inside another
//! runtime (each call runs on this tier's runtime and the caller waits on a
//! plain channel, never on `block_on`).
//!
//! [`Uploader`] puts checkpoints to a tier from a background thread, so taking
//! a checkpoint never waits for the network. The local tier is the source of
//! truth; an upload that keeps failing is logged and counted, not fatal.
//!
//! # URLs
//! - `s3://bucket` or `s3://bucket/prefix`: credentials, region, endpoint and
//!   client options come from the `AWS_*` environment variables exactly as
//!   [`AmazonS3Builder::from_env`] reads them (`AWS_ACCESS_KEY_ID`,
//!   `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`,
//!   `AWS_ENDPOINT` / `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_S3`,
//!   `AWS_ALLOW_HTTP=true` for a plain-HTTP endpoint such as a local S3
//!   server, `AWS_TIMEOUT`, `AWS_CONNECT_TIMEOUT`, ...). The bucket in the
//!   URL wins over `AWS_BUCKET`. `AWS_PROFILE` and `~/.aws/credentials` are
//!   *not* read (object_store does not support them).
//! - `file:///abs/dir`, or a plain path (relative to the pipeline file's
//!   folder): a directory, created if missing; objects are files below it,
//!   written through a temp file and renamed, fsynced.
//!
//! Object names are `/`-separated and relative to the tier, e.g.
//! `pipeline/task/ckpt-00000000000000000042.sdackpt`.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{BackoffConfig, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig};

/// What went wrong with the remote tier. Every message names the store URL, and the object when there is one.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("remote checkpoint store `{url}`: unsupported URL scheme `{scheme}://` (use s3://bucket/prefix, file:///dir or a path)")]
    UnsupportedScheme { url: String, scheme: String },
    #[error("remote checkpoint store `{url}`: invalid URL: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("remote checkpoint store `{url}`: cannot create the directory {}: {source}", path.display())]
    CreateDir { url: String, path: PathBuf, source: std::io::Error },
    #[error("remote checkpoint store `{url}`: the directory {} does not exist", path.display())]
    Missing { url: String, path: PathBuf },
    #[error("remote checkpoint store `{url}`: cannot set up the store: {source}")]
    Configure { url: String, source: Box<object_store::Error> },
    #[error("remote checkpoint store `{url}`: cannot start its I/O runtime: {source}")]
    Runtime { url: String, source: std::io::Error },
    #[error("remote checkpoint store `{url}`: `{name}` is not a valid object name: {reason}")]
    InvalidName { url: String, name: String, reason: String },
    #[error("remote checkpoint store `{url}`: {op} of `{name}` failed: {source}")]
    Store { url: String, op: &'static str, name: String, source: Box<object_store::Error> },
    #[error("remote checkpoint store `{url}`: {op} of `{name}` was cancelled (the store's runtime stopped or its task panicked)")]
    Cancelled { url: String, op: &'static str, name: String },
    #[error("remote checkpoint store `{url}`: flush timed out after {waited:?} with {} upload(s) left: {}", pending.len(), pending.join(", \
        "))]
    FlushTimeout { url: String, waited: Duration, pending: Vec<String> },
    #[error("remote checkpoint store `{url}`: {count} upload(s) failed (the local tier still has them); {}: \
        {}", if *count as usize > failures.len() { "the last ones" } else { "errors" }, failures.join("; "))]
    UploadsFailed { url: String, count: u64, failures: Vec<String> },
    #[error("remote checkpoint store `{url}`: the uploader thread has stopped; {} upload(s) left: {}", pending.len(), pending.join(", "))]
    UploaderStopped { url: String, pending: Vec<String> },
}

/// A remote store of checkpoint objects, used synchronously.
pub struct RemoteTier {
    url: String,
    store: Arc<dyn ObjectStore>,
    /// Prepended to every object name (`prefix/name`); empty for none.
    prefix: String,
    /// `Option` only so `Drop` can shut it down without blocking.
    runtime: Option<tokio::runtime::Runtime>,
}

impl fmt::Debug for RemoteTier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteTier").field("url", &self.url).field("store", &self.store.to_string()).finish_non_exhaustive()
    }
}

impl Drop for RemoteTier {
    fn drop(&mut self) {
        // Never blocks, so dropping the last `Arc<RemoteTier>` is safe even inside an async context.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// object_store's own retries of one S3 request (connection errors, 5xx,
/// throttling). Kept short: the [`Uploader`] retries whole uploads on top,
/// and recovery would rather move on to the next rung than wait minutes.
fn s3_retry_config() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig { init_backoff: Duration::from_millis(100), max_backoff: Duration::from_secs(2), base: 2.0 },
        max_retries: 2,
        retry_timeout: Duration::from_secs(15),
    }
}

impl RemoteTier {
    /// Opens the tier at `url` (see the module docs); `base_dir` resolves a relative plain path.
    /// S3 settings come from the process's `AWS_*` environment variables.
    pub fn from_url(url: &str, base_dir: &FsPath) -> Result<RemoteTier, RemoteError> {
        let env = std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
        Self::from_url_with_env(url, base_dir, env)
    }

    /// [`from_url`](Self::from_url) for a tier that must exist already: a local directory is not
    /// created but refused ([`RemoteError::Missing`]), so that a tool reading a mistyped location
    /// says so instead of creating it and finding it empty.
    pub fn open_existing(url: &str, base_dir: &FsPath) -> Result<RemoteTier, RemoteError> {
        let env = std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
        Self::open(url, base_dir, env, false)
    }

    /// [`from_url`](Self::from_url) with the `AWS_*` variables given explicitly instead of read from the
    /// process environment (which is not consulted at all). Keys that do not start with `AWS_`, or that
    /// object_store does not know, are ignored, as `AmazonS3Builder::from_env` does.
    pub fn from_url_with_env<K, V>(url: &str, base_dir: &FsPath, env: impl IntoIterator<Item = (K, V)>) -> Result<RemoteTier, RemoteError>
    where
        K: AsRef<str>,
        V: Into<String>,
    {
        Self::open(url, base_dir, env, true)
    }

    /// Opens the tier at `url`, creating a local directory if `create`.
    fn open<K, V>(url: &str, base_dir: &FsPath, env: impl IntoIterator<Item = (K, V)>, create: bool) -> Result<RemoteTier, RemoteError>
    where
        K: AsRef<str>,
        V: Into<String>,
    {
        match url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("s3") || scheme.eq_ignore_ascii_case("s3a") => {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                let prefix = prefix.trim_matches('/');
                if bucket.is_empty() {
                    return Err(RemoteError::InvalidUrl {
                        url: url.to_string(),
                        reason: "no bucket name (expected s3://bucket/prefix)".into(),
                    });
                }
                if !prefix.is_empty() {
                    check_name(prefix).map_err(|reason| RemoteError::InvalidUrl {
                        url: url.to_string(),
                        reason: format!("prefix `{prefix}`: {reason}"),
                    })?;
                }
                let display = if prefix.is_empty() { format!("s3://{bucket}") } else { format!("s3://{bucket}/{prefix}") };
                let mut builder = AmazonS3Builder::new();
                for (key, value) in env {
                    let key = key.as_ref();
                    if !key.starts_with("AWS_") {
                        continue;
                    }
                    if let Ok(config_key) = key.to_ascii_lowercase().parse::<AmazonS3ConfigKey>() {
                        builder = builder.with_config(config_key, value);
                    }
                }
                let store = builder
                    .with_bucket_name(bucket)
                    .with_retry(s3_retry_config())
                    .build()
                    .map_err(|source| RemoteError::Configure { url: display.clone(), source: Box::new(source) })?;
                Self::from_store_with_prefix(display, Arc::new(store), prefix)
            }
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("file") => {
                let rest = rest.strip_prefix("localhost").unwrap_or(rest);
                if !rest.starts_with('/') {
                    return Err(RemoteError::InvalidUrl {
                        url: url.to_string(),
                        reason: "a file URL needs an absolute path (file:///abs/dir)".into(),
                    });
                }
                let path = percent_decode(rest)
                    .ok_or_else(|| RemoteError::InvalidUrl { url: url.to_string(), reason: "bad %-escape in the path".into() })?;
                Self::local(url, PathBuf::from(path), create)
            }
            Some((scheme, _)) if !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) => {
                Err(RemoteError::UnsupportedScheme { url: url.to_string(), scheme: scheme.to_string() })
            }
            _ => {
                if url.is_empty() {
                    return Err(RemoteError::InvalidUrl { url: String::new(), reason: "empty".into() });
                }
                Self::local(url, base_dir.join(url), create)
            }
        }
    }

    fn local(url: &str, dir: PathBuf, create: bool) -> Result<RemoteTier, RemoteError> {
        if !create && !dir.is_dir() {
            return Err(RemoteError::Missing { url: url.to_string(), path: dir });
        }
        std::fs::create_dir_all(&dir).map_err(|source| RemoteError::CreateDir { url: url.to_string(), path: dir.clone(), source })?;
        let dir = dir.canonicalize().map_err(|source| RemoteError::CreateDir { url: url.to_string(), path: dir.clone(), source })?;
        let display = format!("file://{}", dir.display());
        let store = LocalFileSystem::new_with_prefix(&dir)
            .map_err(|source| RemoteError::Configure { url: display.clone(), source: Box::new(source) })?
            // A copy meant to survive this machine should at least survive a power cut.
            .with_fsync(true);
        Self::from_store_with_prefix(display, Arc::new(store), "")
    }

    /// A tier over any object store (tests wrap one to make it slow or faulty); `url` is only its label in
    /// messages and [`url`](Self::url).
    pub fn from_store(url: impl Into<String>, store: Arc<dyn ObjectStore>) -> Result<RemoteTier, RemoteError> {
        Self::from_store_with_prefix(url.into(), store, "")
    }

    fn from_store_with_prefix(url: String, store: Arc<dyn ObjectStore>, prefix: &str) -> Result<RemoteTier, RemoteError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(2)
            .thread_name("sda-remote")
            .enable_all()
            .build()
            .map_err(|source| RemoteError::Runtime { url: url.clone(), source })?;
        Ok(RemoteTier { url, store, prefix: prefix.to_string(), runtime: Some(runtime) })
    }

    /// The tier's URL: `s3://bucket/prefix` as given (less trailing slashes), or `file://` and the
    /// absolute directory of a local tier.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Stores `bytes` as `name`, replacing any object of that name. Atomic: readers see the old object or the
    /// whole new one.
    pub fn put(&self, name: &str, bytes: Bytes) -> Result<(), RemoteError> {
        let location = self.location(name)?;
        let store = Arc::clone(&self.store);
        let len = bytes.len();
        let started = Instant::now();
        self.run("put", name, async move { store.put(&location, PutPayload::from(bytes)).await })?
            .map_err(|source| self.store_error("put", name, source))?;
        tracing::debug!(url = %self.url, name, bytes = len, elapsed_ms = started.elapsed().as_millis() as u64, "remote checkpoint stored");
        Ok(())
    }

    /// The bytes of `name`, or `None` if there is no such object.
    pub fn get(&self, name: &str) -> Result<Option<Vec<u8>>, RemoteError> {
        let location = self.location(name)?;
        let store = Arc::clone(&self.store);
        let result = self.run("get", name, async move {
            match store.get(&location).await {
                Ok(got) => got.bytes().await.map(Some),
                Err(e @ object_store::Error::NotFound { .. }) if !is_missing_bucket(&e) => Ok(None),
                Err(e) => Err(e),
            }
        })?;
        Ok(result.map_err(|source| self.store_error("get", name, source))?.map(|b| b.to_vec()))
    }

    /// The names of every object under the folder `prefix` (`""` for all), at any depth, relative to the
    /// tier, sorted. Matching is by whole path segments: `a/b` holds `a/b/c` but not `a/bc`.
    pub fn list(&self, prefix: &str) -> Result<Vec<String>, RemoteError> {
        let folder = prefix.trim_end_matches('/');
        if !folder.is_empty() {
            check_name(folder).map_err(|reason| RemoteError::InvalidName { url: self.url.clone(), name: prefix.to_string(), reason })?;
        }
        let full = join(&self.prefix, folder);
        let start = if full.is_empty() { None } else { Some(Path::from(full)) };
        let store = Arc::clone(&self.store);
        // `ObjectStore::list` is a `futures` stream, and this crate does not depend on `futures`; walking the
        // folders with `list_with_delimiter` (itself paginated inside object_store) needs no stream API. A
        // checkpoint folder has no subfolders, so listing one costs one request.
        let locations = self
            .run("list", prefix, async move {
                let mut found = Vec::new();
                let mut folders = vec![start];
                while let Some(folder) = folders.pop() {
                    let listed = match store.list_with_delimiter(folder.as_ref()).await {
                        Ok(listed) => listed,
                        Err(e @ object_store::Error::NotFound { .. }) if !is_missing_bucket(&e) => continue,
                        Err(e) => return Err(e),
                    };
                    found.extend(listed.objects.into_iter().map(|meta| meta.location));
                    folders.extend(listed.common_prefixes.into_iter().map(Some));
                }
                Ok(found)
            })?
            .map_err(|source| self.store_error("list", prefix, source))?;
        let mut names: Vec<String> = locations
            .iter()
            .filter_map(|location| {
                let location = location.as_ref();
                if self.prefix.is_empty() { Some(location) } else { location.strip_prefix(self.prefix.as_str())?.strip_prefix('/') }
            })
            .map(str::to_string)
            .collect();
        names.sort();
        Ok(names)
    }

    /// Deletes `name`; deleting an absent object is not an error.
    pub fn delete(&self, name: &str) -> Result<(), RemoteError> {
        let location = self.location(name)?;
        let store = Arc::clone(&self.store);
        // S3 answers a delete of an absent key with success; the local filesystem with NotFound.
        self.run("delete", name, async move {
            match store.delete(&location).await {
                Err(object_store::Error::NotFound { .. }) => Ok(()),
                other => other,
            }
        })?
        .map_err(|source| self.store_error("delete", name, source))
    }

    fn location(&self, name: &str) -> Result<Path, RemoteError> {
        check_name(name).map_err(|reason| RemoteError::InvalidName { url: self.url.clone(), name: name.to_string(), reason })?;
        Ok(Path::from(join(&self.prefix, name)))
    }

    fn store_error(&self, op: &'static str, name: &str, source: object_store::Error) -> RemoteError {
        RemoteError::Store { url: self.url.clone(), op, name: name.to_string(), source: Box::new(source) }
    }

    /// Runs `future` on this tier's runtime and waits for it on a plain channel, so callers may be plain
    /// threads or async tasks alike (`block_on` would panic inside another runtime).
    fn run<T: Send + 'static>(
        &self,
        op: &'static str,
        name: &str,
        future: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, RemoteError> {
        let cancelled = || RemoteError::Cancelled { url: self.url.clone(), op, name: name.to_string() };
        let runtime = self.runtime.as_ref().ok_or_else(cancelled)?;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        runtime.spawn(async move {
            let _ = tx.send(future.await);
        });
        rx.recv().map_err(|_| cancelled())
    }
}

/// object_store reports S3's `NoSuchBucket` as `NotFound`, just like a missing object: read as "absent",
/// a misspelt bucket would make the tier look empty and recovery skip it silently.
fn is_missing_bucket(error: &object_store::Error) -> bool {
    let mut cause: Option<&dyn std::error::Error> = Some(error);
    while let Some(e) = cause {
        if e.to_string().contains("NoSuchBucket") {
            return true;
        }
        cause = e.source();
    }
    false
}

fn join(prefix: &str, name: &str) -> String {
    match (prefix.is_empty(), name.is_empty()) {
        (true, _) => name.to_string(),
        (false, true) => prefix.to_string(),
        (false, false) => format!("{prefix}/{name}"),
    }
}

/// A name must be a relative `/`-separated path that object_store keeps as it is (no empty, `.` or `..`
/// segments, nothing it would escape or reject).
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty".into());
    }
    if name.starts_with('/') || name.ends_with('/') {
        return Err("must not start or end with `/`".into());
    }
    match Path::parse(name) {
        Ok(path) if path.as_ref() == name => Ok(()),
        Ok(path) => Err(format!("the store would read it as `{path}`")),
        Err(e) => Err(e.to_string()),
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// How the [`Uploader`] retries an upload that failed.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Tries in all, the first included (at least 1).
    pub attempts: u32,
    /// Wait before the second try; doubled before each next one.
    pub first_backoff: Duration,
    /// The longest wait between two tries.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { attempts: 4, first_backoff: Duration::from_millis(500), max_backoff: Duration::from_secs(8) }
    }
}

impl RetryPolicy {
    fn backoff(&self, failed_attempts: u32) -> Duration {
        let factor = 2u32.saturating_pow(failed_attempts.saturating_sub(1));
        self.first_backoff.saturating_mul(factor).min(self.max_backoff)
    }
}

/// What an [`Uploader`] has done so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploadStats {
    /// Checkpoints stored remotely.
    pub uploaded: u64,
    /// Checkpoints given up on after every retry (the local tier still has them).
    pub failed: u64,
    /// Checkpoints never uploaded because a newer one of the same folder came while they waited.
    pub superseded: u64,
    /// Tries that failed and were tried again.
    pub retried: u64,
    /// Old objects deleted to keep the newest N of a folder.
    pub pruned: u64,
    /// Checkpoints waiting in the queue.
    pub queued: usize,
    /// The checkpoint being uploaded now.
    pub in_flight: Option<String>,
    /// The last error of any upload or prune, with the object it concerned.
    pub last_error: Option<String>,
}

/// Failure messages kept for the next `flush` to report (the count is kept whole).
const MAX_REPORTED_FAILURES: usize = 16;

struct Job {
    name: String,
    bytes: Bytes,
}

fn folder_of(name: &str) -> &str {
    name.rsplit_once('/').map_or("", |(folder, _)| folder)
}

#[derive(Default)]
struct UploaderState {
    queue: VecDeque<Job>,
    /// Per folder, the name of the newest checkpoint stored remotely.
    newest_uploaded: std::collections::HashMap<String, String>,
    stats: UploadStats,
    /// Failures not yet reported by a `flush`: how many, and the last few messages.
    unreported: u64,
    unreported_messages: VecDeque<String>,
    stop: bool,
}

struct Shared {
    state: Mutex<UploaderState>,
    /// Signalled on every change: a submit, a finished upload, stop.
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, UploaderState> {
        // The state stays consistent under every panic point, so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Uploads in the background so a checkpoint never waits for the network.
pub struct Uploader {
    tier: Arc<RemoteTier>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl fmt::Debug for Uploader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Uploader").field("url", &self.tier.url).field("stats", &self.stats()).finish()
    }
}

impl Uploader {
    /// `keep`: after each successful upload, delete the oldest objects of the same folder (the name's
    /// parent) beyond the newest `keep`; 0 keeps everything. Oldest means smallest name, which is oldest
    /// for zero-padded sequence numbers; the object just uploaded always counts as one of the `keep` and is
    /// never deleted. Only objects directly in the folder are considered, not subfolders. Retries with
    /// [`RetryPolicy::default`].
    pub fn start(tier: Arc<RemoteTier>, keep: usize) -> Uploader {
        Self::start_with(tier, keep, RetryPolicy::default())
    }

    /// [`start`](Self::start) with a retry policy of your own.
    pub fn start_with(tier: Arc<RemoteTier>, keep: usize, retry: RetryPolicy) -> Uploader {
        let shared = Arc::new(Shared { state: Mutex::new(UploaderState::default()), changed: Condvar::new() });
        let worker = Worker { tier: Arc::clone(&tier), shared: Arc::clone(&shared), keep, retry };
        let thread = std::thread::Builder::new()
            .name("sda-remote-upload".into())
            .spawn(move || worker.run())
            .expect("spawning the checkpoint upload thread");
        Uploader { tier, shared, thread: Some(thread) }
    }

    /// Queues an upload of `bytes` as `name`; never blocks on the store. A queued checkpoint of the same
    /// folder is older (submitted earlier) and is dropped in favour of this one, and counted as superseded.
    pub fn submit(&self, name: String, bytes: Bytes) {
        let mut state = self.shared.lock();
        let folder = folder_of(&name);
        let before = state.queue.len();
        state.queue.retain(|job| {
            let keep = folder_of(&job.name) != folder;
            if !keep {
                tracing::debug!(url = %self.tier.url, superseded = %job.name, by = %name, "queued checkpoint upload superseded");
            }
            keep
        });
        state.stats.superseded += (before - state.queue.len()) as u64;
        state.queue.push_back(Job { name, bytes });
        drop(state);
        self.shared.changed.notify_all();
    }

    /// Waits, up to `timeout`, until everything submitted so far is uploaded (or given up on). `Err` names
    /// what is still pending, or what failed since the last flush (those failures are then reported).
    pub fn flush(&self, timeout: Duration) -> Result<(), RemoteError> {
        let started = Instant::now();
        let deadline = started + timeout;
        let mut state = self.shared.lock();
        loop {
            if state.queue.is_empty() && state.stats.in_flight.is_none() {
                break;
            }
            let pending = || state.stats.in_flight.iter().cloned().chain(state.queue.iter().map(|job| job.name.clone())).collect();
            if self.thread.as_ref().is_none_or(|t| t.is_finished()) {
                return Err(RemoteError::UploaderStopped { url: self.tier.url.clone(), pending: pending() });
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(RemoteError::FlushTimeout { url: self.tier.url.clone(), waited: started.elapsed(), pending: pending() });
            }
            // Bounded waits, so a worker that died without signalling is noticed.
            let wait = (deadline - now).min(Duration::from_millis(200));
            state = self.shared.changed.wait_timeout(state, wait).unwrap_or_else(|p| p.into_inner()).0;
        }
        if state.unreported == 0 {
            Ok(())
        } else {
            let count = std::mem::take(&mut state.unreported);
            let failures = std::mem::take(&mut state.unreported_messages).into();
            Err(RemoteError::UploadsFailed { url: self.tier.url.clone(), count, failures })
        }
    }

    /// The name of the newest checkpoint of `folder` this uploader has stored remotely (names sort
    /// by sequence), if any.
    pub fn newest_uploaded(&self, folder: &str) -> Option<String> {
        self.shared.lock().newest_uploaded.get(folder).cloned()
    }

    /// Counters so far, the queue's length and the upload in hand.
    pub fn stats(&self) -> UploadStats {
        let state = self.shared.lock();
        UploadStats { queued: state.queue.len(), ..state.stats.clone() }
    }

    /// The tier this uploads to.
    pub fn tier(&self) -> &Arc<RemoteTier> {
        &self.tier
    }
}

impl Drop for Uploader {
    /// Stops the thread after the upload in hand (its retries are cut short); queued ones are abandoned
    /// with a warning (the local tier has them).
    fn drop(&mut self) {
        let abandoned: Vec<String> = {
            let mut state = self.shared.lock();
            state.stop = true;
            state.queue.drain(..).map(|job| job.name).collect()
        };
        self.shared.changed.notify_all();
        if !abandoned.is_empty() {
            tracing::warn!(url = %self.tier.url, count = abandoned.len(), names = ?abandoned, "uploader stopped with checkpoint uploads \
                still queued; they stay local only");
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct Worker {
    tier: Arc<RemoteTier>,
    shared: Arc<Shared>,
    keep: usize,
    retry: RetryPolicy,
}

enum Outcome {
    Uploaded,
    Failed(RemoteError),
    /// A newer checkpoint of the same folder arrived while this one waited to be retried.
    Superseded,
    Stopped(RemoteError),
}

impl Worker {
    fn run(self) {
        loop {
            let job = {
                let mut state = self.shared.lock();
                loop {
                    if state.stop {
                        return;
                    }
                    if let Some(job) = state.queue.pop_front() {
                        state.stats.in_flight = Some(job.name.clone());
                        break job;
                    }
                    state = self.shared.changed.wait(state).unwrap_or_else(|p| p.into_inner());
                }
            };
            let outcome = self.upload(&job);
            let pruned = match &outcome {
                Outcome::Uploaded => self.prune(&job.name),
                _ => Ok(0),
            };
            let mut state = self.shared.lock();
            match outcome {
                Outcome::Uploaded => {
                    state.stats.uploaded += 1;
                    let folder = folder_of(&job.name).to_string();
                    let newest = state.newest_uploaded.entry(folder).or_default();
                    if *newest < job.name {
                        *newest = job.name.clone();
                    }
                }
                Outcome::Superseded => state.stats.superseded += 1,
                Outcome::Failed(e) | Outcome::Stopped(e) => {
                    tracing::warn!(url = %self.tier.url, name = %job.name, error = %e, "checkpoint upload failed; it stays in the local \
                        tier only");
                    state.stats.failed += 1;
                    state.stats.last_error = Some(e.to_string());
                    state.unreported += 1;
                    if state.unreported_messages.len() == MAX_REPORTED_FAILURES {
                        state.unreported_messages.pop_front();
                    }
                    state.unreported_messages.push_back(e.to_string());
                }
            }
            match pruned {
                Ok(n) => state.stats.pruned += n,
                Err(e) => state.stats.last_error = Some(e.to_string()),
            }
            state.stats.in_flight = None;
            drop(state);
            self.shared.changed.notify_all();
        }
    }

    fn upload(&self, job: &Job) -> Outcome {
        if crate::failpoint::stalls("remote-upload") {
            // Crash tests: the upload never finishes (until the uploader stops).
            let mut state = self.shared.lock();
            while !state.stop {
                state = self.shared.changed.wait(state).unwrap_or_else(|p| p.into_inner());
            }
            return Outcome::Stopped(RemoteError::UploaderStopped { url: self.tier.url.clone(), pending: vec![job.name.clone()] });
        }
        let attempts = self.retry.attempts.max(1);
        let mut attempt = 1;
        loop {
            let error = match self.tier.put(&job.name, job.bytes.clone()) {
                Ok(()) => return Outcome::Uploaded,
                Err(e) => e,
            };
            if attempt >= attempts {
                return Outcome::Failed(error);
            }
            let backoff = self.retry.backoff(attempt);
            let backoff_ms = backoff.as_millis() as u64;
            tracing::debug!(
                url = %self.tier.url, name = %job.name, attempt, of = attempts, backoff_ms, error = %error,
                "checkpoint upload failed; retrying"
            );
            let deadline = Instant::now() + backoff;
            let mut state = self.shared.lock();
            state.stats.retried += 1;
            loop {
                if state.stop {
                    return Outcome::Stopped(error);
                }
                let folder = folder_of(&job.name);
                if state.queue.iter().any(|queued| folder_of(&queued.name) == folder) {
                    tracing::debug!(url = %self.tier.url, name = %job.name, "failing checkpoint upload superseded by a newer one; not \
                        retried");
                    return Outcome::Superseded;
                }
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                state = self.shared.changed.wait_timeout(state, deadline - now).unwrap_or_else(|p| p.into_inner()).0;
            }
            drop(state);
            attempt += 1;
        }
    }

    /// Deletes the oldest objects directly in `uploaded`'s folder beyond the newest `keep`.
    fn prune(&self, uploaded: &str) -> Result<u64, RemoteError> {
        if self.keep == 0 {
            return Ok(0);
        }
        let folder = folder_of(uploaded);
        let names =
            self.tier.list(folder).inspect_err(|e| tracing::warn!(error = %e, "cannot list old remote checkpoints to prune them"))?;
        // The checkpoint just uploaded is one of the `keep`, whatever its name (after a fresh start its
        // sequence number may be lower than older runs' ones); the others keep the newest `keep - 1`.
        let others: Vec<&String> = names.iter().filter(|name| folder_of(name) == folder && name.as_str() != uploaded).collect();
        let excess = others.len().saturating_sub(self.keep - 1);
        let mut pruned = 0;
        for old in others.into_iter().take(excess) {
            self.tier.delete(old).inspect_err(|e| tracing::warn!(error = %e, "cannot delete an old remote checkpoint"))?;
            tracing::debug!(url = %self.tier.url, name = %old, "old remote checkpoint deleted");
            pruned += 1;
        }
        Ok(pruned)
    }
}
