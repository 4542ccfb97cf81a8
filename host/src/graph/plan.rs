//! The validated pipeline: names resolved, cycles rejected, plugins read and checked; what a run is built from.
//!
//! `build.rs` makes a [`Plan`] from a [`super::spec::PipelineSpec`], collecting every problem.
//! Nothing here runs a plugin; [`crate::runtime`] does that.

use super::error::Problems;
use crate::dedup::DedupLimits;
use crate::runtime::inspect;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub const DEFAULT_BATCH_SIZE: u32 = 512;
pub const DEFAULT_MAX_MEMORY_BYTES: u64 = 256 * 1024 * 1024;
pub const DEFAULT_CALL_TIMEOUT_MS: u64 = 1000;
/// Closing windows screens the whole state: at a million objects, seconds per window.
pub const DEFAULT_WATERMARK_TIMEOUT_MS: u64 = 300_000;
/// A snapshot or restore of a catalogue-sized state: a fraction of a second per million objects.
pub const DEFAULT_STATE_TIMEOUT_MS: u64 = 60_000;
pub const DEFAULT_MAX_RETRIES: u32 = 3;
pub const DEFAULT_RETRY_BACKOFF_MS: u64 = 100;
/// Longest a record is retried, however many attempts `max_retries` allows.
pub const DEFAULT_MAX_RETRY_MS: u64 = 60_000;
/// Plugin faults tolerated per window before the operator's circuit breaker opens.
pub const DEFAULT_MAX_FAULTS: u32 = 10;
pub const DEFAULT_FAULT_WINDOW_MS: u64 = 60_000;
pub const DEFAULT_POLL_INTERVAL_MS: u64 = 200;
/// Default `max_record_bytes` of a source: 1 MiB, a thousand times an observation (as Vector's
/// `max_line_bytes`).
pub const DEFAULT_MAX_RECORD_BYTES: u64 = 1024 * 1024;
/// The largest `max_record_bytes`: 1 GiB (a record is held whole, then copied into a batch).
pub const MAX_MAX_RECORD_BYTES: u64 = 1024 * 1024 * 1024;
/// Most instances one operator may run as (`parallelism`): more threads than any machine's cores
/// would only compete, and every instance holds a copy of the state.
pub const MAX_PARALLELISM: u32 = 64;
/// Smallest memory cap that lets a Rust plugin with std start.
pub const MIN_MEMORY_BYTES: u64 = 1024 * 1024;
/// wasm32 memories cannot exceed 4 GiB.
pub const MAX_MEMORY_BYTES: u64 = 4 * 1024 * 1024 * 1024;
/// Default dead-letter file, relative to the pipeline file, when `[dlq]` is absent.
pub const DEFAULT_DLQ_PATH: &str = "dlq.jsonl";
/// Default local checkpoint folder, relative to the pipeline file.
pub const DEFAULT_CHECKPOINT_DIR: &str = "checkpoints";
/// Default remote tier: a folder beside the local one (point it at `s3://...`
/// for a tier another machine can recover from).
pub const DEFAULT_CHECKPOINT_REMOTE: &str = "checkpoints-remote";
pub const DEFAULT_CHECKPOINT_INTERVAL_MS: u64 = 30_000;
pub const DEFAULT_CHECKPOINT_KEEP: u32 = 3;
/// How long start-up waits for Kafka brokers or PostgreSQL to answer.
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 10_000;
/// `assignment = "all"`: how long a partition with nothing to read holds the merge back when not set.
pub const DEFAULT_IDLE_TIMEOUT_MS: u64 = 5_000;
/// Key column of a PostgreSQL sink's table when not set.
pub const DEFAULT_POSTGRES_KEY_COLUMN: &str = "alert_id";

/// What the pipeline promises about delivery across crashes (`guarantee`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guarantee {
    /// Replays from the last checkpoint; sinks recognise what they delivered: no loss, no duplicates.
    ExactlyOnce,
    /// Replays from the last checkpoint, delivering again: no loss, duplicates possible.
    AtLeastOnce,
    /// Commits progress before delivering each batch and never replays: no duplicates, loss possible.
    AtMostOnce,
}

impl Guarantee {
    pub fn as_str(self) -> &'static str {
        match self {
            Guarantee::ExactlyOnce => "exactly-once",
            Guarantee::AtLeastOnce => "at-least-once",
            Guarantee::AtMostOnce => "at-most-once",
        }
    }
}

/// `[checkpoint]`, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointPlan {
    /// The local tier's root folder.
    pub dir: PathBuf,
    /// The remote tier as written (a URL or a folder; relative to the pipeline file).
    pub remote: Option<String>,
    /// Time between checkpoints; zero means after every batch.
    pub interval: Duration,
    /// Checkpoints kept per task in each tier.
    pub keep: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("cannot read pipeline file `{path}`: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Invalid(Problems),
}

/// Where a record stream comes from: a source or an operator's outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NodeRef {
    Source(usize),
    Operator(usize),
}

#[derive(Debug, Clone)]
pub struct FileSourcePlan {
    pub path: PathBuf,
    pub key_field: Option<String>,
    pub event_time_field: Option<String>,
    pub follow: bool,
    pub poll_interval: Duration,
    /// Drop records whose key was passed on recently; `None`: keep them all.
    pub dedup: Option<DedupLimits>,
    /// Longer lines are dead-lettered as `RecordTooLarge`, never held whole.
    pub max_record_bytes: u64,
}

/// A Kafka source: a topic read by a consumer group, one task per assigned partition.
#[derive(Debug, Clone)]
pub struct KafkaSourcePlan {
    pub brokers: String,
    pub topic: String,
    pub group_id: String,
    pub event_time_field: Option<String>,
    pub connect_timeout: Duration,
    pub dedup: Option<DedupLimits>,
    /// Longer message values are dead-lettered as `RecordTooLarge`.
    pub max_record_bytes: u64,
    /// Extra librdkafka properties, as given.
    pub librdkafka: Vec<(String, String)>,
    pub assignment: Assignment,
}

/// Who reads which partitions of a Kafka source's topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assignment {
    /// The consumer group spreads the partitions over the processes; a task per partition, which
    /// sees only its partition's records.
    Group,
    /// One task reads every partition, merged in event-time order (see `source::merged`); a
    /// partition with nothing to read holds the merge back for at most `idle_timeout`. With a
    /// `lease`, one such task per shard, run by whichever process holds the shard's lease.
    All { idle_timeout: Duration, lease: Option<Lease> },
}

/// `shards = N` on a source read whole: N shard tasks, each reading every partition, each running
/// its share of the pair space of the all-records operators, spread over the processes that run
/// the pipeline. A shard's lease is a partition of `topic`, assigned by the consumer group
/// `group_id` (see `pipeline::group`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub shards: u32,
    /// The control topic: one partition per shard (created if missing).
    pub topic: String,
    pub group_id: String,
}

/// The most shards a source may have: each reads the whole topic.
pub const MAX_SHARDS: u32 = 256;

#[derive(Debug, Clone)]
pub enum SourceKind {
    File(FileSourcePlan),
    Kafka(KafkaSourcePlan),
}

#[derive(Debug, Clone)]
pub struct SourcePlan {
    pub name: String,
    pub kind: SourceKind,
}

/// A plugin file, read once: its bytes, digest and operator ABI version.
#[derive(Debug, Clone)]
pub struct PluginFile {
    pub path: PathBuf,
    pub bytes: Arc<[u8]>,
    /// `sha256:<hex>` of the file's bytes.
    pub digest: String,
    /// The `sda:operator` WIT version it exports, e.g. `0.1.0`.
    pub wit_version: String,
}

impl PluginFile {
    /// Reads and checks a plugin file.
    pub fn read(path: &Path) -> Result<PluginFile, PluginFileError> {
        let bytes = std::fs::read(path).map_err(|source| PluginFileError::Read { path: path.to_path_buf(), source })?;
        let wit_version =
            inspect::operator_wit_version(&bytes).map_err(|source| PluginFileError::Inspect { path: path.to_path_buf(), source })?;
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
        Ok(PluginFile { path: path.to_path_buf(), bytes: bytes.into(), digest, wit_version })
    }

    /// An operator built into the host (`plugin = "native:NAME"`, bench builds only); `Err` says why
    /// there is none of that name.
    pub fn native(name: &str) -> Result<PluginFile, String> {
        if !crate::runtime::native::available().contains(&name) {
            return Err(crate::runtime::native::unknown(name));
        }
        let id = format!("{}{name}", crate::runtime::native::PREFIX);
        Ok(PluginFile { path: PathBuf::from(&id), bytes: Arc::from(&[][..]), digest: id, wit_version: "0.2.0".into() })
    }

    /// The native operator this stands for, if it is one.
    pub fn native_name(&self) -> Option<&str> {
        self.digest.strip_prefix(crate::runtime::native::PREFIX)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PluginFileError {
    #[error("cannot read plugin `{}`: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("plugin `{}` {source}", path.display())]
    Inspect { path: PathBuf, source: inspect::InspectError },
}

/// Per-instance sandbox limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Cap on the instance's linear memory; growing past it traps (`PluginMemory`).
    pub max_memory_bytes: u64,
    /// Deadline for one `process` (or `init`) call into the plugin (`PluginTimeout` past it).
    pub call_timeout: Duration,
    /// Deadline for one `on-watermark` call: closing windows, work that grows with the state.
    pub watermark_timeout: Duration,
    /// Deadline for one `snapshot` or `restore` call.
    pub state_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_memory_bytes: DEFAULT_MAX_MEMORY_BYTES,
            call_timeout: Duration::from_millis(DEFAULT_CALL_TIMEOUT_MS),
            watermark_timeout: Duration::from_millis(DEFAULT_WATERMARK_TIMEOUT_MS),
            state_timeout: Duration::from_millis(DEFAULT_STATE_TIMEOUT_MS),
        }
    }
}

/// How records an operator calls `transient` are retried: exponential
/// backoff with jitter, until `max_retries` attempts or `max_total` time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub backoff: Duration,
    pub max_total: Duration,
}

/// An operator's circuit breaker: more than `max_faults` plugin faults within
/// `window` stop it (0: the first fault stops it, nothing is isolated).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultLimit {
    pub max_faults: u32,
    pub window: Duration,
}

#[derive(Debug, Clone)]
pub struct OperatorPlan {
    pub name: String,
    pub inputs: Vec<NodeRef>,
    pub plugin: PluginFile,
    /// The `config` table as JSON, for the plugin's `init`.
    pub config_json: String,
    pub limits: Limits,
    pub retry: RetryPolicy,
    pub faults: FaultLimit,
    /// Instances of the plugin the operator runs as, each a shard of its work (1 to [`MAX_PARALLELISM`]).
    pub parallelism: u32,
    /// `per_partition = true`: an all-records operator may run in a task per input partition.
    pub per_partition: bool,
}

#[derive(Debug, Clone)]
pub struct KafkaSinkPlan {
    pub brokers: String,
    pub topic: String,
    /// Outputs and consumer offsets in one transaction per checkpoint.
    pub transactional: bool,
    pub connect_timeout: Duration,
    pub librdkafka: Vec<(String, String)>,
    /// `partitioner = "shard"`: shard `k`'s task writes to partition `k`.
    pub by_shard: bool,
}

#[derive(Debug, Clone)]
pub struct PostgresSinkPlan {
    pub url: String,
    pub table: String,
    pub key_column: String,
    pub connect_timeout: Duration,
    /// Give up on a batch (dead-letter it) after retrying this long; `None`: never give up.
    pub retry_for: Option<Duration>,
}

#[derive(Debug, Clone)]
pub enum SinkKind {
    File {
        path: PathBuf,
    },
    /// A file per record in `path`, named `<key>.<extension>` (no `.` when the extension is empty).
    Directory {
        path: PathBuf,
        extension: String,
    },
    Kafka(KafkaSinkPlan),
    Postgres(PostgresSinkPlan),
}

impl SinkKind {
    /// Where the sink delivers, for people: a path, `kafka://brokers/topic`
    /// or `postgres table <name>`.
    pub fn describe(&self) -> String {
        match self {
            SinkKind::File { path } => path.display().to_string(),
            SinkKind::Directory { path, extension } if extension.is_empty() => format!("{}/<key>", path.display()),
            SinkKind::Directory { path, extension } => format!("{}/<key>.{extension}", path.display()),
            SinkKind::Kafka(k) => format!("kafka://{}/{}", k.brokers, k.topic),
            SinkKind::Postgres(p) => format!("postgres table {}", p.table),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SinkPlan {
    pub name: String,
    pub inputs: Vec<NodeRef>,
    pub kind: SinkKind,
    /// Bounds of its set of delivered records (exactly-once).
    pub dedup: DedupLimits,
}

#[derive(Debug, Clone)]
pub enum DlqPlan {
    File {
        path: PathBuf,
        dedup: DedupLimits,
        retention: crate::dlq::file::Retention,
        growth_alert_per_minute: Option<u64>,
    },
    Kafka {
        brokers: String,
        topic: String,
        connect_timeout: Duration,
        librdkafka: Vec<(String, String)>,
        dedup: DedupLimits,
        growth_alert_per_minute: Option<u64>,
    },
}

impl DlqPlan {
    /// Dead letters per minute above which the pipeline is `degraded`, if set.
    pub fn growth_alert_per_minute(&self) -> Option<u64> {
        match self {
            DlqPlan::File { growth_alert_per_minute, .. } | DlqPlan::Kafka { growth_alert_per_minute, .. } => *growth_alert_per_minute,
        }
    }

    pub fn dedup(&self) -> DedupLimits {
        match self {
            DlqPlan::File { dedup, .. } | DlqPlan::Kafka { dedup, .. } => *dedup,
        }
    }

    /// Where entries go, for people: a path or `kafka://brokers/topic`.
    pub fn describe(&self) -> String {
        match self {
            DlqPlan::File { path, .. } => path.display().to_string(),
            DlqPlan::Kafka { brokers, topic, .. } => format!("kafka://{brokers}/{topic}"),
        }
    }
}

/// A pipeline ready to run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The pipeline file as the user named it.
    pub file: PathBuf,
    /// Its folder: relative paths in it are relative to this.
    pub base_dir: PathBuf,
    pub name: String,
    /// Digest of the graph's structure (names, wiring, source and sink
    /// identities; not plugins or configs, which may change between runs).
    /// A checkpoint is only restored into a pipeline with the same fingerprint.
    pub fingerprint: String,
    pub guarantee: Guarantee,
    pub checkpoint: CheckpointPlan,
    /// The admin endpoint, if any.
    pub admin: Option<AdminPlan>,
    pub batch_size: u32,
    pub cache_dir: Option<PathBuf>,
    pub sources: Vec<SourcePlan>,
    /// In execution (topological) order: every operator after its inputs.
    pub operators: Vec<OperatorPlan>,
    pub sinks: Vec<SinkPlan>,
    pub dlq: DlqPlan,
    /// Not errors, but worth saying (an operator whose outputs nobody reads).
    pub warnings: Vec<String>,
}

/// `[admin]`, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdminPlan {
    pub listen: std::net::SocketAddr,
    /// Whether every route requires the bearer token (`allow_remote`), not only `POST /swap`.
    pub token_on_every_route: bool,
}

impl Plan {
    /// Reads and validates a pipeline file. Relative paths in it are relative
    /// to its directory.
    pub fn load(file: &Path) -> Result<Plan, PlanError> {
        let text = std::fs::read_to_string(file).map_err(|source| PlanError::Read { path: file.to_path_buf(), source })?;
        let base_dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
        Plan::from_text(file, &text, &base_dir).map_err(PlanError::Invalid)
    }

    /// Validates `text` as the contents of `file`, resolving paths against `base_dir`.
    pub fn from_text(file: &Path, text: &str, base_dir: &Path) -> Result<Plan, Problems> {
        super::build::validate(file, text, base_dir)
    }

    pub fn node_name(&self, node: NodeRef) -> &str {
        match node {
            NodeRef::Source(i) => &self.sources[i].name,
            NodeRef::Operator(i) => &self.operators[i].name,
        }
    }

    /// Every operator and sink downstream of `source`, as indices.
    pub fn reachable_from(&self, source: usize) -> (Vec<usize>, Vec<usize>) {
        reachable(&self.operators, &self.sinks, source)
    }

    /// The graph as chains `a -> b -> c`: a chain continues while a node has one
    /// consumer that has one input; other edges start chains of their own.
    pub fn graph_lines(&self) -> Vec<String> {
        let plan = self;
        #[derive(Clone, Copy, PartialEq)]
        enum Node {
            Flow(NodeRef),
            Sink(usize),
        }
        let consumers = |n: NodeRef| -> Vec<(Node, usize)> {
            let ops = plan
                .operators
                .iter()
                .enumerate()
                .filter(|(_, o)| o.inputs.contains(&n))
                .map(|(i, o)| (Node::Flow(NodeRef::Operator(i)), o.inputs.len()));
            let sinks = plan.sinks.iter().enumerate().filter(|(_, s)| s.inputs.contains(&n)).map(|(i, s)| (Node::Sink(i), s.inputs.len()));
            ops.chain(sinks).collect()
        };
        let name = |n: Node| match n {
            Node::Flow(r) => plan.node_name(r).to_string(),
            Node::Sink(i) => format!("{} (sink)", plan.sinks[i].name),
        };
        let mut lines = Vec::new();
        let mut starts: Vec<Node> = (0..plan.sources.len()).map(|i| Node::Flow(NodeRef::Source(i))).collect();
        let mut seen_starts = Vec::new();
        while let Some(start) = starts.pop() {
            if seen_starts.contains(&start) {
                continue;
            }
            seen_starts.push(start);
            let mut chain = vec![name(start)];
            let mut at = start;
            while let Node::Flow(r) = at {
                let next = consumers(r);
                match next.as_slice() {
                    [(only, 1)] => {
                        chain.push(name(*only));
                        at = *only;
                    }
                    _ => {
                        for (n, _) in next {
                            lines.push(format!("{} -> {}", plan.node_name(r), name(n)));
                            starts.push(n);
                        }
                        break;
                    }
                }
            }
            if chain.len() > 1 {
                lines.push(chain.join(" -> "));
            }
        }
        lines.sort();
        lines.dedup();
        lines
    }
}

/// Operators and sinks downstream of `source` (indices), given operators in execution order.
pub(super) fn reachable(operators: &[OperatorPlan], sinks: &[SinkPlan], source: usize) -> (Vec<usize>, Vec<usize>) {
    let mut reached = vec![false; operators.len()];
    let from = |inputs: &[NodeRef], reached: &[bool]| {
        inputs.iter().any(|n| match *n {
            NodeRef::Source(s) => s == source,
            NodeRef::Operator(o) => reached[o],
        })
    };
    // Execution order puts inputs first, so one pass suffices.
    for (i, op) in operators.iter().enumerate() {
        reached[i] = from(&op.inputs, &reached);
    }
    let operator_indices = (0..operators.len()).filter(|&i| reached[i]).collect();
    let sink_indices = sinks.iter().enumerate().filter(|(_, s)| from(&s.inputs, &reached)).map(|(i, _)| i).collect();
    (operator_indices, sink_indices)
}
