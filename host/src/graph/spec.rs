//! The raw `pipeline.toml`: a serde mirror of what the user wrote, with places, and no logic.
//!
//! Each section and each named entry is deserialized on its own, so one mistake
//! does not hide the next: every entry that does not parse becomes a [`Problem`]
//! and parsing goes on. Validation (names, cycles, plugins) belongs to
//! [`super::plan`].

use super::error::Problem;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

/// The only `version` of `pipeline.toml` this host reads.
pub const SPEC_VERSION: u32 = 1;

/// A whole number of milliseconds; the unit is in the key's name (`*_ms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Millis(pub u64);

/// A whole number of bytes; the unit is in the key's name (`*_bytes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bytes(pub u64);

macro_rules! unit_newtype {
    ($ty:ident, $what:literal) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl serde::de::Visitor<'_> for V {
                    type Value = $ty;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($what)
                    }
                    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<$ty, E> {
                        u64::try_from(v).map($ty).map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(v), &self))
                    }
                    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<$ty, E> {
                        Ok($ty(v))
                    }
                }
                d.deserialize_any(V)
            }
        }
    };
}

unit_newtype!(Millis, "a whole number of milliseconds, like 1000 (the unit is in the key's name)");
unit_newtype!(Bytes, "a whole number of bytes, like 268435456 for 256 MiB (the unit is in the key's name)");

/// `[runtime]`: settings for the whole host.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeSpec {
    /// Records read from a source per batch.
    pub batch_size: Option<Spanned<u32>>,
    /// Where compiled plugins are cached, relative to the pipeline file.
    pub cache_dir: Option<Spanned<String>>,
}

/// `[sources.NAME]` with `type = "file"`: a JSON Lines file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSourceSpec {
    pub path: Spanned<String>,
    /// Top-level JSON field whose value becomes the record key.
    pub key_field: Option<Spanned<String>>,
    /// Top-level JSON field (integer milliseconds) whose value becomes the event time.
    pub event_time_field: Option<Spanned<String>>,
    /// Keep reading as the file grows instead of stopping at its end.
    #[serde(default)]
    pub follow: bool,
    /// How often a followed file is checked for new lines.
    pub poll_interval_ms: Option<Spanned<Millis>>,
    /// Drop records whose key the source passed on recently (off when absent).
    pub dedup: Option<Spanned<DedupSpec>>,
    /// A longer line is dead-lettered (`RecordTooLarge`) and skipped without being held whole.
    pub max_record_bytes: Option<Spanned<Bytes>>,
}

/// Bounds of a deduplication set: by count and by age, oldest evicted first.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DedupSpec {
    pub max_entries: Option<Spanned<u64>>,
    pub max_age_ms: Option<Spanned<Millis>>,
}

/// How much the pipeline promises about delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GuaranteeSpec {
    ExactlyOnce,
    AtLeastOnce,
    AtMostOnce,
}

/// `[checkpoint]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointSpec {
    /// The local tier, relative to the pipeline file.
    pub dir: Option<Spanned<String>>,
    /// The remote tier: an object_store URL or a folder.
    pub remote: Option<Spanned<String>>,
    pub interval_ms: Option<Spanned<Millis>>,
    pub keep: Option<Spanned<u32>>,
}

/// `[admin]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSpec {
    /// Where `/metrics`, `/healthz` and `/status` are served, e.g. `127.0.0.1:9464`.
    pub listen: Spanned<String>,
    /// Serve beyond this machine (a `listen` address other than loopback); every route then
    /// requires the bearer token. Off by default: an address such as `0.0.0.0` is refused.
    #[serde(default)]
    pub allow_remote: bool,
}

/// Properties handed to librdkafka verbatim (`"session.timeout.ms" = 6000`).
pub type LibrdkafkaSpec = BTreeMap<Spanned<String>, Spanned<toml::Value>>;

/// `[sources.NAME]` with `type = "kafka"`: a topic read by a consumer group.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSourceSpec {
    /// Bootstrap servers, `host:port,host:port`.
    pub brokers: Spanned<String>,
    pub topic: Spanned<String>,
    pub group_id: Spanned<String>,
    /// Top-level JSON field (integer ms) for the event time; otherwise the message timestamp.
    pub event_time_field: Option<Spanned<String>>,
    /// How long start-up waits for the brokers to answer.
    pub connect_timeout_ms: Option<Spanned<Millis>>,
    pub dedup: Option<Spanned<DedupSpec>>,
    /// A longer message value is dead-lettered (`RecordTooLarge`) with a prefix of it.
    pub max_record_bytes: Option<Spanned<Bytes>>,
    pub librdkafka: Option<Spanned<LibrdkafkaSpec>>,
    /// Who reads which partitions: the consumer group (a task per partition) or one task all of them.
    pub assignment: Option<Spanned<AssignmentSpec>>,
    /// `assignment = "all"`: how long a partition with nothing to read may hold the merge back.
    pub idle_timeout_ms: Option<Spanned<Millis>>,
    /// `assignment = "all"`: run the source's tasks as this many shards, leased across processes.
    pub shards: Option<Spanned<u32>>,
    /// With `shards`: the control topic whose partitions are the shards' leases.
    pub lease_topic: Option<Spanned<String>>,
}

/// A Kafka source's `assignment`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AssignmentSpec {
    /// The consumer group spreads the partitions over the processes; a task per partition.
    Group,
    /// One task reads every partition, merged in event-time order.
    All,
}

#[derive(Debug, Clone)]
pub enum SourceSpec {
    File(Box<FileSourceSpec>),
    Kafka(Box<KafkaSourceSpec>),
}

/// `[operators.NAME]`: a WebAssembly plugin and its wiring.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorSpec {
    /// Path of the `.wasm` component, relative to the pipeline file.
    pub plugin: Spanned<String>,
    pub inputs: Spanned<Vec<Spanned<String>>>,
    /// Passed to the plugin's `init`, as JSON.
    pub config: Option<Spanned<toml::Table>>,
    pub max_memory_bytes: Option<Spanned<Bytes>>,
    /// Deadline of a `process` call (and of `init`).
    pub call_timeout_ms: Option<Spanned<Millis>>,
    /// Deadline of an `on-watermark` call, where windows close: work that grows with the state.
    pub watermark_timeout_ms: Option<Spanned<Millis>>,
    /// Deadline of a `snapshot` or `restore` call, which also grow with the state.
    pub state_timeout_ms: Option<Spanned<Millis>>,
    /// Attempts after the first for a record the plugin calls `transient`.
    pub max_retries: Option<Spanned<u32>>,
    /// Wait before the first retry; doubled for each further one.
    pub retry_backoff_ms: Option<Spanned<Millis>>,
    /// Longest time a record may spend being retried before it is dead-lettered.
    pub max_retry_ms: Option<Spanned<Millis>>,
    /// Plugin faults (trap, timeout, memory) tolerated within `fault_window_ms`,
    /// each costing one dead-lettered record; one more stops the operator.
    pub max_faults: Option<Spanned<u32>>,
    pub fault_window_ms: Option<Spanned<Millis>>,
    /// Instances of the plugin to run, each owning a shard of the work (all-pairs operators only).
    pub parallelism: Option<Spanned<u32>>,
    /// An all-records operator run per input partition anyway: its user vouches that records it
    /// relates never come from different partitions.
    pub per_partition: Option<Spanned<bool>>,
}

/// `[sinks.NAME]` with `type = "file"`: appends JSON Lines.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSinkSpec {
    pub inputs: Spanned<Vec<Spanned<String>>>,
    pub path: Spanned<String>,
    /// Bounds of the set of recently delivered records (exactly-once).
    pub dedup: Option<Spanned<DedupSpec>>,
}

/// `[sinks.NAME]` with `type = "directory"`: a file per record, named by its key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectorySinkSpec {
    pub inputs: Spanned<Vec<Spanned<String>>>,
    /// The folder, relative to the pipeline file.
    pub path: Spanned<String>,
    /// Appended to each key after a `.` (`"kvn"`, `"xml"`); none when absent.
    pub extension: Option<Spanned<String>>,
}

/// `[sinks.NAME]` with `type = "kafka"`: an idempotent (or transactional) producer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSinkSpec {
    pub inputs: Spanned<Vec<Spanned<String>>>,
    pub brokers: Spanned<String>,
    pub topic: Spanned<String>,
    /// Outputs and consumer offsets in one Kafka transaction per checkpoint.
    #[serde(default)]
    pub transactional: bool,
    pub connect_timeout_ms: Option<Spanned<Millis>>,
    pub dedup: Option<Spanned<DedupSpec>>,
    pub librdkafka: Option<Spanned<LibrdkafkaSpec>>,
    /// Which partition a record goes to: by its key (the default) or the writing task's shard.
    pub partitioner: Option<Spanned<PartitionerSpec>>,
}

/// A Kafka sink's `partitioner`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PartitionerSpec {
    /// librdkafka's default: a hash of the key.
    Key,
    /// Partition `k` for every output of shard `k`: each partition then holds one shard's outputs in
    /// the order it emitted them (after a source with `shards`).
    Shard,
}

/// `[sinks.NAME]` with `type = "postgres"`: rows keyed by the record key, inserted idempotently.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSinkSpec {
    pub inputs: Spanned<Vec<Spanned<String>>>,
    /// `postgres://user:password@host:port/database`.
    pub url: Spanned<String>,
    /// Table, optionally schema-qualified; created if absent.
    pub table: Spanned<String>,
    /// Primary-key column holding the record key (default `alert_id`).
    pub key_column: Option<Spanned<String>>,
    pub connect_timeout_ms: Option<Spanned<Millis>>,
    /// How long a batch is retried through transient failures before its rows are
    /// dead-lettered as `RetriesExhausted`; absent: retried until it succeeds.
    pub max_retry_ms: Option<Spanned<Millis>>,
}

#[derive(Debug, Clone)]
pub enum SinkSpec {
    File(FileSinkSpec),
    Directory(DirectorySinkSpec),
    Kafka(KafkaSinkSpec),
    Postgres(PostgresSinkSpec),
}

impl SinkSpec {
    pub fn inputs(&self) -> &Spanned<Vec<Spanned<String>>> {
        match self {
            SinkSpec::File(s) => &s.inputs,
            SinkSpec::Directory(s) => &s.inputs,
            SinkSpec::Kafka(s) => &s.inputs,
            SinkSpec::Postgres(s) => &s.inputs,
        }
    }
}

/// `[dlq]` with `type = "file"`: dead-letter entries as JSON Lines.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDlqSpec {
    pub path: Spanned<String>,
    /// Bounds of the set of recently written entries (exactly-once).
    pub dedup: Option<Spanned<DedupSpec>>,
    /// Size at which the active segment is closed and a new one started.
    pub max_bytes: Option<Spanned<Bytes>>,
    /// Age after which entries may be deleted (whole closed segments at a time).
    pub max_age_ms: Option<Spanned<Millis>>,
    /// Dead letters per minute above which the pipeline is `degraded`.
    pub growth_alert_per_minute: Option<Spanned<u64>>,
}

/// `[dlq]` with `type = "kafka"`: envelopes as values, their main fields as headers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaDlqSpec {
    pub brokers: Spanned<String>,
    pub topic: Spanned<String>,
    pub connect_timeout_ms: Option<Spanned<Millis>>,
    pub dedup: Option<Spanned<DedupSpec>>,
    pub librdkafka: Option<Spanned<LibrdkafkaSpec>>,
    /// Dead letters per minute above which the pipeline is `degraded`.
    pub growth_alert_per_minute: Option<Spanned<u64>>,
}

#[derive(Debug, Clone)]
pub enum DlqSpec {
    File(FileDlqSpec),
    Kafka(KafkaDlqSpec),
}

/// A named entry (`[sources.NAME]` and friends) with the place of its name.
#[derive(Debug, Clone)]
pub struct Named<T> {
    pub name: String,
    pub name_span: Range<usize>,
    /// The whole entry, for problems about it as a whole.
    pub span: Range<usize>,
    pub spec: T,
}

/// Which section an entry was declared in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Source,
    Operator,
    Sink,
}

impl Section {
    /// "a source", "an operator", "a sink".
    pub fn with_article(self) -> &'static str {
        match self {
            Section::Source => "a source",
            Section::Operator => "an operator",
            Section::Sink => "a sink",
        }
    }

    pub fn noun(self) -> &'static str {
        match self {
            Section::Source => "source",
            Section::Operator => "operator",
            Section::Sink => "sink",
        }
    }
}

/// A named entry as declared, whether or not its body parsed: names stay
/// resolvable, so one broken entry does not make everything that reads from
/// it an error too.
#[derive(Debug, Clone)]
pub struct Declaration {
    pub section: Section,
    pub name: String,
    pub name_span: Range<usize>,
    /// False when the entry's body had problems (already reported).
    pub parsed: bool,
}

/// Everything that parsed. Entries that did not are missing here and reported.
#[derive(Debug, Clone, Default)]
pub struct PipelineSpec {
    pub version: Option<Spanned<u32>>,
    pub name: Option<Spanned<String>>,
    pub runtime: RuntimeSpec,
    pub sources: Vec<Named<SourceSpec>>,
    pub operators: Vec<Named<OperatorSpec>>,
    pub sinks: Vec<Named<SinkSpec>>,
    pub dlq: Option<Spanned<DlqSpec>>,
    pub guarantee: Option<Spanned<GuaranteeSpec>>,
    pub checkpoint: Option<Spanned<CheckpointSpec>>,
    pub admin: Option<Spanned<AdminSpec>>,
    /// Every source, operator and sink declared, in file order.
    pub declared: Vec<Declaration>,
    /// Top-level keys present in the file (parsed or not).
    pub present: Vec<&'static str>,
    /// Sections present but not readable as tables of entries (or misspelt):
    /// names declared there are unknown, so references to unknown names are
    /// not reported as errors of their own.
    pub broken_sections: Vec<&'static str>,
    /// Span of the `sources`, `operators`, `sinks` tables, for "missing" problems.
    pub section_spans: BTreeMap<&'static str, Range<usize>>,
}

const TOP_LEVEL_KEYS: &[&str] = &["version", "name", "guarantee", "runtime", "sources", "operators", "sinks", "dlq", "checkpoint", "admin"];
const SOURCE_TYPES: &[&str] = &["file", "kafka"];
const SINK_TYPES: &[&str] = &["file", "directory", "kafka", "postgres"];
const DLQ_TYPES: &[&str] = &["file", "kafka"];

/// Parses `text`, collecting every problem instead of stopping at the first.
/// `None` when the file is not valid TOML: then only the first syntax error is
/// reported, since the ones after it are mostly echoes of it.
pub fn parse(text: &str) -> (Option<PipelineSpec>, Vec<Problem>) {
    let (root, syntax_errors) = DeTable::parse_recoverable(text);
    if let Some(first) = syntax_errors.first() {
        let span = first.span().unwrap_or(0..0);
        let problem = Problem::at(span, format!("this is not valid TOML: {}", first.message().trim_end()))
            .with_help("fix this first: later lines may be read wrongly until it is fixed");
        return (None, vec![problem]);
    }
    let mut parser = Parser { text, problems: Vec::new(), broken_sections: Vec::new() };
    let mut spec = parser.document(root.into_inner());
    spec.broken_sections = std::mem::take(&mut parser.broken_sections);
    let mut problems = parser.problems;
    // The TOML map is ordered by key; report and keep entries in file order.
    problems.sort_by_key(|p| p.span.as_ref().map_or(usize::MAX, |s| s.start));
    (Some(spec), problems)
}

struct Parser<'t> {
    text: &'t str,
    problems: Vec<Problem>,
    broken_sections: Vec<&'static str>,
}

impl Parser<'_> {
    fn document(&mut self, root: DeTable<'_>) -> PipelineSpec {
        let mut spec = PipelineSpec::default();
        for (key, value) in root.iter() {
            let key_span = key.span();
            let value_span = value.span();
            let known = TOP_LEVEL_KEYS.iter().find(|k| **k == key.get_ref().as_ref());
            if let Some(k) = known {
                spec.present.push(k);
            }
            match key.get_ref().as_ref() {
                "version" => spec.version = self.typed(value, "`version`"),
                "name" => spec.name = self.typed(value, "`name`"),
                "runtime" => {
                    if let Some(r) = self.typed::<RuntimeSpec>(value, "`[runtime]`") {
                        spec.runtime = r.into_inner();
                    }
                }
                "guarantee" => spec.guarantee = self.typed(value, "`guarantee`"),
                "checkpoint" => spec.checkpoint = self.typed(value, "`[checkpoint]`"),
                "admin" => spec.admin = self.typed(value, "`[admin]`"),
                "sources" => {
                    spec.section_spans.insert("sources", key_span);
                    for (name, entry) in self.entries(value, "sources") {
                        let what = format!("source `{}`", name.get_ref());
                        let parsed = self.tagged(&entry, &what, SOURCE_TYPES, |p, kind, v| match kind {
                            "file" => p.typed_inner(v, &what).map(|f| SourceSpec::File(Box::new(f))),
                            "kafka" => p.typed_inner(v, &what).map(|k| SourceSpec::Kafka(Box::new(k))),
                            _ => unreachable!("checked against SOURCE_TYPES"),
                        });
                        spec.declared.push(declaration(Section::Source, &name, parsed.is_some()));
                        spec.sources.extend(parsed.map(|s| named(&name, &entry, s)));
                    }
                }
                "operators" => {
                    spec.section_spans.insert("operators", key_span);
                    for (name, entry) in self.entries(value, "operators") {
                        let what = format!("operator `{}`", name.get_ref());
                        let parsed = self.typed::<OperatorSpec>(&entry, &what);
                        spec.declared.push(declaration(Section::Operator, &name, parsed.is_some()));
                        spec.operators.extend(parsed.map(|op| named(&name, &entry, op.into_inner())));
                    }
                }
                "sinks" => {
                    spec.section_spans.insert("sinks", key_span);
                    for (name, entry) in self.entries(value, "sinks") {
                        let what = format!("sink `{}`", name.get_ref());
                        let parsed = self.tagged(&entry, &what, SINK_TYPES, |p, kind, v| match kind {
                            "file" => p.typed_inner(v, &what).map(SinkSpec::File),
                            "directory" => p.typed_inner(v, &what).map(SinkSpec::Directory),
                            "kafka" => p.typed_inner(v, &what).map(SinkSpec::Kafka),
                            "postgres" => p.typed_inner(v, &what).map(SinkSpec::Postgres),
                            _ => unreachable!("checked against SINK_TYPES"),
                        });
                        spec.declared.push(declaration(Section::Sink, &name, parsed.is_some()));
                        spec.sinks.extend(parsed.map(|s| named(&name, &entry, s)));
                    }
                }
                "dlq" => {
                    let d = self.tagged(value, "`[dlq]`", DLQ_TYPES, |p, kind, v| match kind {
                        "file" => p.typed_inner(v, "`[dlq]`").map(DlqSpec::File),
                        "kafka" => p.typed_inner(v, "`[dlq]`").map(DlqSpec::Kafka),
                        _ => unreachable!("checked against DLQ_TYPES"),
                    });
                    spec.dlq = d.map(|d| Spanned::new(value_span, d));
                }
                other => {
                    let guess = closest(other, TOP_LEVEL_KEYS);
                    // `[operater.x]`: its entries are the user's operators, misfiled.
                    let section = match guess {
                        Some("sources") => Some(Section::Source),
                        Some("operators") => Some(Section::Operator),
                        Some("sinks") => Some(Section::Sink),
                        _ => None,
                    };
                    if let (Some(section), Some(table)) = (section, value.get_ref().as_table()) {
                        for (name, _) in table.iter() {
                            let name = Spanned::new(name.span(), name.get_ref().to_string());
                            spec.declared.push(declaration(section, &name, false));
                        }
                    }
                    let help = match guess {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => format!("the top-level keys are {}", list(TOP_LEVEL_KEYS)),
                    };
                    self.problems.push(Problem::at(key_span, format!("unknown top-level key `{other}`")).with_help(help));
                }
            }
        }
        spec.sources.sort_by_key(|n| n.span.start);
        spec.operators.sort_by_key(|n| n.span.start);
        spec.sinks.sort_by_key(|n| n.span.start);
        spec.declared.sort_by_key(|d| d.name_span.start);
        spec
    }

    /// The `NAME = { ... }` entries of a section such as `[sources]`.
    fn entries<'i>(&mut self, value: &Spanned<DeValue<'i>>, section: &'static str) -> Vec<(Spanned<String>, Spanned<DeValue<'i>>)> {
        let Some(table) = value.get_ref().as_table() else {
            self.broken_sections.push(section);
            self.problems.push(
                Problem::at(value.span(), format!("`{section}` must be a table of named entries"))
                    .with_help(format!("write each entry as its own section, like `[{section}.NAME]`")),
            );
            return Vec::new();
        };
        table.iter().map(|(k, v)| (Spanned::new(k.span(), k.get_ref().to_string()), v.clone())).collect()
    }

    /// Deserializes one value, turning a failure into a problem about `what`.
    fn typed<'i, T: Deserialize<'i>>(&mut self, value: &Spanned<DeValue<'i>>, what: &str) -> Option<Spanned<T>> {
        match T::deserialize(ValueDeserializer::from(value.clone())) {
            Ok(v) => Some(Spanned::new(value.span(), v)),
            Err(e) => {
                let problem = self.describe(&e, value.span(), what);
                self.problems.push(problem);
                self.further_missing_fields::<T>(value, &e, what);
                None
            }
        }
    }

    /// serde stops at the first missing field; a user fixing them one run at a time would be told
    /// of the next only then. After a missing field, this fills it with a placeholder of whatever
    /// type gets past it and tries again, reporting each further missing field until none is left.
    /// Only missing fields are reported this way: other errors surface once these are fixed.
    fn further_missing_fields<'i, T: Deserialize<'i>>(&mut self, value: &Spanned<DeValue<'i>>, first: &toml::de::Error, what: &str) {
        let Some(mut table) = value.get_ref().as_table().cloned() else { return };
        let mut missing = missing_field(first);
        // Bounded by the number of fields a spec can have; a guard, not a limit anyone reaches.
        for _ in 0..32 {
            let Some(field) = missing.take() else { return };
            let placeholders = [
                DeValue::String("".into()),
                DeValue::Array(toml::de::DeArray::new()),
                DeValue::Table(DeTable::default()),
                DeValue::Boolean(false),
            ];
            for placeholder in placeholders {
                table.insert(Spanned::new(value.span(), field.clone().into()), Spanned::new(value.span(), placeholder));
                let attempt = Spanned::new(value.span(), DeValue::Table(table.clone()));
                match T::deserialize(ValueDeserializer::from(attempt)) {
                    Ok(_) => return,
                    Err(e) => match missing_field(&e) {
                        Some(next) if next != field => {
                            let problem = self.describe(&e, value.span(), what);
                            self.problems.push(problem);
                            missing = Some(next);
                            break;
                        }
                        // This placeholder is of the wrong type (or did not help): try the next one.
                        _ => {}
                    },
                }
            }
        }
    }

    fn typed_inner<'i, T: Deserialize<'i>>(&mut self, value: &Spanned<DeValue<'i>>, what: &str) -> Option<T> {
        self.typed(value, what).map(Spanned::into_inner)
    }

    /// Reads the `type` key of a table, then deserializes the rest as that type.
    fn tagged<'i, T>(
        &mut self,
        value: &Spanned<DeValue<'i>>,
        what: &str,
        types: &[&str],
        build: impl FnOnce(&mut Self, &str, &Spanned<DeValue<'i>>) -> Option<T>,
    ) -> Option<T> {
        let Some(table) = value.get_ref().as_table() else {
            self.problems.push(Problem::at(value.span(), format!("{what} must be a table")));
            return None;
        };
        let Some((type_key, type_value)) = table.iter().find(|(k, _)| k.get_ref().as_ref() == "type") else {
            self.problems.push(Problem::at(value.span(), format!("{what} has no `type`")).with_help(format!(
                "add `type = \"{}\"` ({})",
                types[0],
                supported_types(types)
            )));
            return None;
        };
        let Some(kind) = type_value.get_ref().as_str() else {
            self.problems.push(Problem::at(type_value.span(), format!("the `type` of {what} must be a string")));
            return None;
        };
        if !types.contains(&kind) {
            let help = match closest(kind, types) {
                Some(s) => format!("did you mean `{s}`? ({})", supported_types(types)),
                None => supported_types(types),
            };
            self.problems.push(Problem::at(type_value.span(), format!("{what} has unknown type `{kind}`")).with_help(help));
            return None;
        }
        let mut rest = table.clone();
        let type_key = type_key.clone();
        rest.remove(&type_key);
        let rest = Spanned::new(value.span(), DeValue::Table(rest));
        build(self, kind, &rest)
    }

    /// Turns a toml/serde error into a problem in the user's terms: the key at
    /// fault, what it must be, and an example.
    fn describe(&self, e: &toml::de::Error, fallback: Range<usize>, what: &str) -> Problem {
        let span = e.span().unwrap_or(fallback);
        let message = e.message().trim_end().to_string();
        if let Some(rest) = message.strip_prefix("unknown field `") {
            let field = rest.split('`').next().unwrap_or_default();
            let expected: Vec<&str> = rest.split("expected ").nth(1).map(|l| l.split('`').skip(1).step_by(2).collect()).unwrap_or_default();
            let problem = Problem::at(span, format!("{what}: unknown key `{field}`"));
            return match unknown_key_help(field, &expected) {
                Some(help) => problem.with_help(help),
                None => problem,
            };
        }
        if let Some(rest) = message.strip_prefix("unknown variant `") {
            let found = rest.split('`').next().unwrap_or_default();
            let expected: Vec<&str> = rest.split("expected ").nth(1).map(|l| l.split('`').skip(1).step_by(2).collect()).unwrap_or_default();
            let problem = Problem::at(span, format!("{what} cannot be `{found}`"));
            let help = match closest(found, &expected) {
                Some(c) => format!("did you mean `{c}`? (it can be {})", list(&expected)),
                None => format!("it can be {}", list(&expected)),
            };
            return problem.with_help(help);
        }
        if let Some(rest) = message.strip_prefix("missing field `") {
            let field = rest.split('`').next().unwrap_or_default();
            let problem = Problem::at(span, format!("{what} has no `{field}`"));
            return match example_for(field) {
                Some(example) => problem.with_help(format!("add {example}")),
                None => problem,
            };
        }
        for prefix in ["invalid type: ", "invalid value: "] {
            let Some(rest) = message.strip_prefix(prefix) else { continue };
            let Some((found, expected)) = rest.split_once(", expected ") else { continue };
            // Top-level values are named by `what`; nested ones by the key before the value.
            let key = if what.starts_with('`') && !what.starts_with("`[") {
                what.trim_matches('`').to_string()
            } else {
                key_before(self.text, span.start).unwrap_or_default()
            };
            let subject = match (what.starts_with('`') && !what.starts_with("`["), key.is_empty()) {
                (true, _) => format!("`{key}`"),
                (false, true) => what.to_string(),
                (false, false) => format!("{what}: `{key}`"),
            };
            let problem = Problem::at(span, format!("{subject} must be {}, not {}", expected_phrase(expected), found_phrase(found)));
            return match example_for(&key) {
                Some(example) => problem.with_help(format!("write {example}")),
                None => problem,
            };
        }
        Problem::at(span, format!("{what}: {message}"))
    }
}

fn declaration(section: Section, name: &Spanned<String>, parsed: bool) -> Declaration {
    Declaration { section, name: name.get_ref().clone(), name_span: name.span(), parsed }
}

fn named<T>(name: &Spanned<String>, entry: &Spanned<DeValue<'_>>, spec: T) -> Named<T> {
    Named { name: name.get_ref().clone(), name_span: name.span(), span: entry.span(), spec }
}

/// The key whose value starts at `offset`: the last word before `=` on its line.
fn key_before(text: &str, offset: usize) -> Option<String> {
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let before = text[line_start..offset].trim_end().strip_suffix('=')?.trim_end();
    let key: String = before
        .chars()
        .rev()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    (!key.is_empty()).then_some(key)
}

/// serde's "expected ..." in plain words.
fn expected_phrase(expected: &str) -> String {
    match expected {
        "u8" | "u16" | "u32" | "u64" | "i8" | "i16" | "i32" | "i64" | "usize" | "an integer" => "a whole number".into(),
        "a map" => "a table".into(),
        "a sequence" => "a list".into(),
        "a boolean" => "`true` or `false`".into(),
        other => other.into(),
    }
}

/// serde's "invalid type: ..." in plain words.
fn found_phrase(found: &str) -> String {
    match found {
        "map" => "a table".into(),
        "sequence" => "a list".into(),
        f if f.starts_with("string ") => format!("the {f}"),
        f if f.starts_with("integer ") => format!("the {f}"),
        f if f.starts_with("floating point ") => format!("the number {}", &f["floating point ".len()..]),
        f if f.starts_with("boolean ") => f["boolean ".len()..].to_string(),
        other => other.into(),
    }
}

/// An example setting of `key`, for help lines.
fn example_for(key: &str) -> Option<String> {
    Some(match key {
        "version" => format!("`version = {SPEC_VERSION}`"),
        "name" => "`name = \"conjunction-alerts\"`".into(),
        "plugin" => "`plugin = \"plugins/NAME.wasm\"` (relative to this file)".into(),
        "inputs" => "`inputs = [\"observations\"]`: the sources or operators to read from".into(),
        "path" => "`path = \"...\"` (relative to this file)".into(),
        "config" => "`config = { key = value }`, or a `[operators.NAME.config]` section".into(),
        "batch_size" => "`batch_size = 512`".into(),
        "max_retries" => "`max_retries = 3`".into(),
        "max_faults" => "`max_faults = 10`: plugin faults tolerated within `fault_window_ms`".into(),
        "follow" => "`follow = true`".into(),
        "keep" => "`keep = 3`".into(),
        "max_entries" => "`max_entries = 1000000`".into(),
        "listen" => "`listen = \"127.0.0.1:9464\"`".into(),
        "allow_remote" => "`allow_remote = true`: serve beyond loopback, every route behind the bearer token".into(),
        "brokers" => "`brokers = \"127.0.0.1:9092\"`: bootstrap servers, `host:port` separated by commas".into(),
        "topic" => "`topic = \"sda.observations\"`".into(),
        "group_id" => "`group_id = \"conjunction-alerts\"`: processes with the same group share the partitions".into(),
        "url" => "`url = \"postgres://USER@HOST:5432/DATABASE\"`".into(),
        "table" => "`table = \"conjunction_alerts\"` (created if absent)".into(),
        k if k.ends_with("_ms") => format!("`{k} = 1000` for one second"),
        k if k.ends_with("_bytes") => format!("`{k} = 268435456` for 256 MiB"),
        _ => return None,
    })
}

/// The field a "missing field" error names.
fn missing_field(e: &toml::de::Error) -> Option<String> {
    e.message().strip_prefix("missing field `").and_then(|rest| rest.split('`').next()).map(str::to_string)
}

/// "did you mean" for a misspelt key, or where the unit goes, or the valid keys.
fn unknown_key_help(field: &str, expected: &[&str]) -> Option<String> {
    let unit_of = |k: &str| ["_ms", "_bytes"].into_iter().find(|u| k.ends_with(u));
    // `call_timeout`, `call_timeout_s` or `call_timeout_sec` for `call_timeout_ms`.
    if let Some(with_unit) = expected.iter().find(|k| {
        unit_of(k).is_some_and(|u| {
            let stem = k.trim_end_matches(u);
            field == stem || field.strip_prefix(stem).is_some_and(|rest| rest.starts_with('_'))
        })
    }) {
        let unit = if with_unit.ends_with("_ms") { "milliseconds" } else { "bytes" };
        return Some(format!("write `{with_unit}`: it is given in {unit}, and the unit is part of the key's name"));
    }
    match closest(field, expected) {
        Some(s) => Some(format!("did you mean `{s}`?")),
        None if !expected.is_empty() => Some(format!("the keys here are {}", list(expected))),
        None => None,
    }
}

/// The candidate most like `word`: a likely typo, or a word it begins.
pub fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let typo = candidates
        .iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), *c))
        .filter(|(d, c)| *d <= (c.len() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c);
    typo.or_else(|| candidates.iter().copied().find(|c| word.len() >= 3 && c.starts_with(word)))
}

fn supported_types(types: &[&str]) -> String {
    match types {
        [only] => format!("the only supported type is `{only}`"),
        many => format!("the supported types are {}", list(many)),
    }
}

fn list(items: &[&str]) -> String {
    items.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems_of(text: &str) -> Vec<String> {
        parse(text).1.into_iter().map(|p| format!("{} | {}", p.message, p.help.unwrap_or_default())).collect()
    }

    #[test]
    fn parses_a_complete_file() {
        let (spec, problems) = parse(
            r#"
version = 1
name = "demo"
[runtime]
batch_size = 64
[sources.obs]
type = "file"
path = "obs.jsonl"
key_field = "id"
[operators.pass]
plugin = "p.wasm"
inputs = ["obs"]
call_timeout_ms = 500
config = { x = 1 }
[sinks.out]
type = "file"
inputs = ["pass"]
path = "out.jsonl"
[dlq]
type = "file"
path = "dlq.jsonl"
"#,
        );
        assert!(problems.is_empty(), "{problems:?}");
        let spec = spec.unwrap();
        assert_eq!(spec.name.unwrap().into_inner(), "demo");
        assert_eq!(spec.runtime.batch_size.unwrap().into_inner(), 64);
        assert_eq!(spec.sources.len(), 1);
        assert_eq!(spec.operators[0].spec.call_timeout_ms.as_ref().unwrap().get_ref().0, 500);
        assert!(matches!(spec.dlq.unwrap().into_inner(), DlqSpec::File(_)));
    }

    #[test]
    fn reports_problems_in_every_entry_at_once() {
        let problems = problems_of(
            r#"
version = 1
name = "demo"
colour = "red"
[sources.a]
type = "fiel"
path = "x"
[operators.b]
plugin = "p.wasm"
inputs = ["a"]
call_timeout = 5
[operators.c]
plugin = "p.wasm"
inputs = ["a"]
max_memory_bytes = "256MiB"
"#,
        );
        assert_eq!(problems.len(), 4, "{problems:#?}");
        assert!(problems[0].contains("unknown top-level key `colour`"));
        assert!(problems[1].contains("unknown type `fiel`") && problems[1].contains("did you mean `file`"));
        assert!(problems[2].contains("unknown key `call_timeout`") && problems[2].contains("write `call_timeout_ms`"));
        assert!(problems[3].contains("operator `c`: `max_memory_bytes` must be a whole number of bytes"), "{}", problems[3]);
    }

    #[test]
    fn only_the_first_syntax_error_is_reported() {
        let (spec, problems) = parse("name = \"x\nversion = [1\n[a]\nb = \n");
        assert!(spec.is_none());
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].span.is_some());
    }

    #[test]
    fn finds_the_key_before_a_value() {
        let text = "[a]\ncall_timeout_ms = \"1s\"\ny = { inner = 5 }\n";
        assert_eq!(key_before(text, text.find("\"1s").unwrap()).as_deref(), Some("call_timeout_ms"));
        assert_eq!(key_before(text, text.find("5 }").unwrap()).as_deref(), Some("inner"));
    }

    #[test]
    fn closest_finds_typos_only() {
        assert_eq!(closest("corelator", &["correlator", "classifier"]), Some("correlator"));
        assert_eq!(closest("zzz", &["correlator", "classifier"]), None);
        assert_eq!(closest("cache", &["batch_size", "cache_dir"]), Some("cache_dir"));
    }
}
