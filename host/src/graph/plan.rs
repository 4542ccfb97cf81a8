//! The validated pipeline: names resolved, cycles rejected, plugins read and checked.
//!
//! Built from a [`PipelineSpec`] in one pass that collects every problem (with
//! its place in the file) before giving up, so a user fixes a file in one go.
//! Nothing here runs a plugin; [`crate::runtime`] does that.

use super::error::{Problem, Problems};
use super::spec::{self, DlqSpec, Named, OperatorSpec, PipelineSpec, SinkSpec, SourceSpec};
use crate::runtime::inspect;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub const DEFAULT_BATCH_SIZE: u32 = 512;
pub const DEFAULT_MAX_MEMORY_BYTES: u64 = 256 * 1024 * 1024;
pub const DEFAULT_CALL_TIMEOUT_MS: u64 = 1000;
pub const DEFAULT_MAX_RETRIES: u32 = 3;
pub const DEFAULT_RETRY_BACKOFF_MS: u64 = 100;
pub const DEFAULT_POLL_INTERVAL_MS: u64 = 200;
/// Smallest memory cap that lets a Rust plugin with std start.
pub const MIN_MEMORY_BYTES: u64 = 1024 * 1024;
/// wasm32 memories cannot exceed 4 GiB.
pub const MAX_MEMORY_BYTES: u64 = 4 * 1024 * 1024 * 1024;
/// Default dead-letter file, relative to the pipeline file, when `[dlq]` is absent.
pub const DEFAULT_DLQ_PATH: &str = "dlq.jsonl";

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
}

#[derive(Debug, Clone)]
pub enum SourceKind {
    File(FileSourcePlan),
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
        let wit_version = inspect::operator_wit_version(&bytes)
            .map_err(|source| PluginFileError::Inspect { path: path.to_path_buf(), source })?;
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
        Ok(PluginFile { path: path.to_path_buf(), bytes: bytes.into(), digest, wit_version })
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
    /// Deadline for one call into the plugin (`PluginTimeout` past it).
    pub call_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_memory_bytes: DEFAULT_MAX_MEMORY_BYTES,
            call_timeout: Duration::from_millis(DEFAULT_CALL_TIMEOUT_MS),
        }
    }
}

/// How records an operator calls `transient` are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub backoff: Duration,
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
}

#[derive(Debug, Clone)]
pub enum SinkKind {
    File { path: PathBuf },
}

#[derive(Debug, Clone)]
pub struct SinkPlan {
    pub name: String,
    pub inputs: Vec<NodeRef>,
    pub kind: SinkKind,
}

#[derive(Debug, Clone)]
pub enum DlqPlan {
    File { path: PathBuf },
}

/// A pipeline ready to run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The pipeline file as the user named it.
    pub file: PathBuf,
    pub name: String,
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

impl Plan {
    /// Reads and validates a pipeline file. Relative paths in it are relative
    /// to its directory.
    pub fn load(file: &Path) -> Result<Plan, PlanError> {
        let text =
            std::fs::read_to_string(file).map_err(|source| PlanError::Read { path: file.to_path_buf(), source })?;
        let base_dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
        Plan::from_text(file, &text, &base_dir).map_err(PlanError::Invalid)
    }

    /// Validates `text` as the contents of `file`, resolving paths against `base_dir`.
    pub fn from_text(file: &Path, text: &str, base_dir: &Path) -> Result<Plan, Problems> {
        let (spec, mut problems) = spec::parse(text);
        let plan = Builder { spec: &spec, base_dir, problems: &mut problems }.build(file);
        match plan {
            Some(plan) if problems.is_empty() => Ok(plan),
            _ => {
                problems.sort_by_key(|p| p.span.as_ref().map_or(usize::MAX, |s| s.start));
                Err(Problems { file: file.to_path_buf(), text: text.to_string(), items: problems })
            }
        }
    }

    pub fn node_name(&self, node: NodeRef) -> &str {
        match node {
            NodeRef::Source(i) => &self.sources[i].name,
            NodeRef::Operator(i) => &self.operators[i].name,
        }
    }

    /// Every operator and sink downstream of `source`, as indices.
    pub fn reachable_from(&self, source: usize) -> (Vec<usize>, Vec<usize>) {
        let mut reached = vec![false; self.operators.len()];
        let from = |inputs: &[NodeRef], reached: &[bool]| {
            inputs.iter().any(|n| match *n {
                NodeRef::Source(s) => s == source,
                NodeRef::Operator(o) => reached[o],
            })
        };
        // Execution order puts inputs first, so one pass suffices.
        for (i, op) in self.operators.iter().enumerate() {
            reached[i] = from(&op.inputs, &reached);
        }
        let operators = (0..self.operators.len()).filter(|&i| reached[i]).collect();
        let sinks = self.sinks.iter().enumerate().filter(|(_, s)| from(&s.inputs, &reached)).map(|(i, _)| i).collect();
        (operators, sinks)
    }
}

/// What a name in an `inputs` list refers to, before operators are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Declared {
    Source(usize),
    Operator(usize),
    Sink(usize),
}

struct Builder<'a> {
    spec: &'a PipelineSpec,
    base_dir: &'a Path,
    problems: &'a mut Vec<Problem>,
}

impl Builder<'_> {
    fn problem(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.problems.push(Problem::at(span, message));
    }

    fn build(mut self, file: &Path) -> Option<Plan> {
        let spec = self.spec;
        let name = self.check_header();
        let names = self.check_names();
        let batch_size = self.check_runtime();
        let cache_dir = spec.runtime.cache_dir.as_ref().map(|d| self.base_dir.join(d.get_ref()));

        if spec.sources.is_empty() {
            let span = spec.section_spans.get("sources").cloned();
            self.problems.push(Problem {
                span,
                message: "the pipeline has no sources".into(),
                help: Some("add one, e.g. `[sources.observations]` with `type = \"file\"` and `path`".into()),
            });
        }
        if spec.sinks.is_empty() {
            let span = spec.section_spans.get("sinks").cloned();
            self.problems.push(Problem {
                span,
                message: "the pipeline has no sinks: its outputs would go nowhere".into(),
                help: Some("add one, e.g. `[sinks.alerts]` with `type = \"file\"`, `inputs` and `path`".into()),
            });
        }

        let op_inputs: Vec<Vec<Declared>> =
            spec.operators.iter().map(|op| self.resolve_inputs("operator", &op.name, &op.spec.inputs, &names)).collect();
        let sink_inputs: Vec<Vec<Declared>> =
            spec.sinks.iter().map(|s| self.resolve_inputs("sink", &s.name, s.spec.inputs(), &names)).collect();
        let order = self.order_operators(&op_inputs);
        self.check_reachability(&op_inputs, &order);

        let sources: Vec<SourcePlan> = spec.sources.iter().filter_map(|s| self.source(s)).collect();
        let plugins: Vec<Option<PluginFile>> = spec.operators.iter().map(|op| self.plugin(op)).collect();
        let dlq = self.dlq();
        let limits: Vec<(Limits, RetryPolicy)> = spec.operators.iter().map(|op| self.limits(&op.spec)).collect();

        let mut warnings = Vec::new();
        for (i, op) in spec.operators.iter().enumerate() {
            let read = op_inputs.iter().chain(&sink_inputs).any(|ins| ins.contains(&Declared::Operator(i)));
            if !read {
                warnings.push(format!("the outputs of operator `{}` are not read by any operator or sink", op.name));
            }
        }

        if !self.problems.is_empty() {
            return None;
        }
        // No problems: every lookup below is known to succeed.
        let position: HashMap<usize, usize> = order.iter().enumerate().map(|(pos, &i)| (i, pos)).collect();
        let to_node = |d: &Declared| match *d {
            Declared::Source(i) => NodeRef::Source(i),
            Declared::Operator(i) => NodeRef::Operator(position[&i]),
            Declared::Sink(_) => unreachable!("sinks as inputs were rejected"),
        };
        let mut plugins: Vec<Option<PluginFile>> = plugins;
        let operators = order
            .iter()
            .map(|&i| {
                let op = &spec.operators[i];
                let config = op.spec.config.as_ref().map(|c| c.get_ref().clone()).unwrap_or_default();
                OperatorPlan {
                    name: op.name.clone(),
                    inputs: op_inputs[i].iter().map(to_node).collect(),
                    plugin: plugins[i].take().expect("plugin checked"),
                    config_json: serde_json::to_string(&config).expect("a TOML table converts to JSON"),
                    limits: limits[i].0,
                    retry: limits[i].1,
                }
            })
            .collect();
        let sinks = spec
            .sinks
            .iter()
            .zip(&sink_inputs)
            .map(|(s, inputs)| SinkPlan {
                name: s.name.clone(),
                inputs: inputs.iter().map(to_node).collect(),
                kind: match &s.spec {
                    SinkSpec::File(f) => SinkKind::File { path: self.base_dir.join(f.path.get_ref()) },
                },
            })
            .collect();
        Some(Plan {
            file: file.to_path_buf(),
            name: name?,
            batch_size,
            cache_dir,
            sources,
            operators,
            sinks,
            dlq: dlq?,
            warnings,
        })
    }

    fn check_header(&mut self) -> Option<String> {
        match &self.spec.version {
            None => self.problems.push(
                Problem::whole_file("the pipeline file has no `version`")
                    .with_help(format!("add `version = {}` at the top", spec::SPEC_VERSION)),
            ),
            Some(v) if *v.get_ref() != spec::SPEC_VERSION => self.problems.push(
                Problem::at(
                    v.span(),
                    format!("pipeline file version {} is not supported; this host reads version {}", v.get_ref(), spec::SPEC_VERSION),
                ),
            ),
            Some(_) => {}
        }
        match &self.spec.name {
            None => {
                self.problems.push(Problem::whole_file("the pipeline has no `name`").with_help(
                    "add `name = \"...\"`: it labels checkpoints, dead-letter entries and metrics",
                ));
                None
            }
            Some(n) if !valid_name(n.get_ref()) => {
                self.problem(n.span(), format!("pipeline name `{}` is not allowed", n.get_ref()));
                self.problems.last_mut().expect("just pushed").help =
                    Some("use letters, digits, `-` and `_` only".into());
                None
            }
            Some(n) => Some(n.get_ref().clone()),
        }
    }

    /// Every declared name, checking they are unique across sections and well-formed.
    fn check_names(&mut self) -> BTreeMap<String, Declared> {
        let spec = self.spec;
        let mut all: Vec<(&str, Range<usize>, Declared, &str)> = Vec::new();
        all.extend(spec.sources.iter().enumerate().map(|(i, s)| (s.name.as_str(), s.name_span.clone(), Declared::Source(i), "source")));
        all.extend(spec.operators.iter().enumerate().map(|(i, s)| (s.name.as_str(), s.name_span.clone(), Declared::Operator(i), "operator")));
        all.extend(spec.sinks.iter().enumerate().map(|(i, s)| (s.name.as_str(), s.name_span.clone(), Declared::Sink(i), "sink")));
        all.sort_by_key(|(_, span, _, _)| span.start);
        let mut names: BTreeMap<String, Declared> = BTreeMap::new();
        let mut kinds: BTreeMap<&str, &str> = BTreeMap::new();
        for (name, span, declared, kind) in all {
            if !valid_name(name) {
                self.problems.push(
                    Problem::at(span.clone(), format!("{kind} name `{name}` is not allowed"))
                        .with_help("use letters, digits, `-` and `_` only"),
                );
            }
            if let Some(first) = kinds.get(name) {
                self.problems.push(
                    Problem::at(span, format!("the name `{name}` is used by a {first} and by a {kind}"))
                        .with_help("names must be unique across sources, operators and sinks"),
                );
                continue;
            }
            kinds.insert(name, kind);
            names.insert(name.to_string(), declared);
        }
        names
    }

    fn check_runtime(&mut self) -> u32 {
        match &self.spec.runtime.batch_size {
            Some(b) if *b.get_ref() == 0 => {
                self.problem(b.span(), "`batch_size` must be at least 1");
                DEFAULT_BATCH_SIZE
            }
            Some(b) => *b.get_ref(),
            None => DEFAULT_BATCH_SIZE,
        }
    }

    fn resolve_inputs(
        &mut self,
        kind: &str,
        name: &str,
        inputs: &toml::Spanned<Vec<toml::Spanned<String>>>,
        names: &BTreeMap<String, Declared>,
    ) -> Vec<Declared> {
        if inputs.get_ref().is_empty() {
            self.problems.push(
                Problem::at(inputs.span(), format!("{kind} `{name}` has no inputs"))
                    .with_help("name at least one source or operator in `inputs`"),
            );
        }
        let mut resolved = Vec::new();
        for input in inputs.get_ref() {
            let wanted = input.get_ref().as_str();
            match names.get(wanted) {
                Some(Declared::Sink(_)) => self.problems.push(
                    Problem::at(input.span(), format!("{kind} `{name}` reads from `{wanted}`, which is a sink"))
                        .with_help("sinks have no outputs; read from a source or an operator"),
                ),
                Some(d) if resolved.contains(d) => {
                    self.problem(input.span(), format!("{kind} `{name}` lists input `{wanted}` twice"))
                }
                Some(d) => resolved.push(*d),
                None => {
                    let candidates: Vec<&str> = names
                        .iter()
                        .filter(|(_, d)| !matches!(d, Declared::Sink(_)))
                        .map(|(n, _)| n.as_str())
                        .collect();
                    let mut p = Problem::at(
                        input.span(),
                        format!("{kind} `{name}` reads from `{wanted}`, which is not a source or operator"),
                    );
                    p = p.with_help(match spec::closest(wanted, &candidates) {
                        Some(c) => format!("did you mean `{c}`?"),
                        None if candidates.is_empty() => "define a source or operator to read from".to_string(),
                        None => format!(
                            "the sources and operators are {}",
                            candidates.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ")
                        ),
                    });
                    self.problems.push(p);
                }
            }
        }
        resolved
    }

    /// Operators in an order where each follows its inputs (file order among
    /// equals). Reports every cycle as its chain of names.
    fn order_operators(&mut self, op_inputs: &[Vec<Declared>]) -> Vec<usize> {
        let ops = &self.spec.operators;
        let n = ops.len();
        let mut by_position: Vec<usize> = (0..n).collect();
        by_position.sort_by_key(|&i| ops[i].span.start);
        let deps = |i: usize| op_inputs[i].iter().filter_map(|d| if let Declared::Operator(j) = d { Some(*j) } else { None });

        // Cycles: depth-first search; an edge back onto the current path closes one.
        let dep_lists: Vec<Vec<usize>> = (0..n).map(|i| deps(i).collect()).collect();
        let mut visited = vec![false; n];
        let mut cycles = Vec::new();
        for &start in &by_position {
            if !visited[start] {
                find_cycles(start, &dep_lists, &mut visited, &mut Vec::new(), &mut cycles);
            }
        }
        let mut reported = vec![false; n];
        for cycle in cycles {
            if cycle.iter().any(|&c| reported[c]) {
                continue;
            }
            cycle.iter().for_each(|&c| reported[c] = true);
            // The path runs consumer -> input; show data flow, input -> consumer,
            // starting from the operator declared first.
            let mut flow: Vec<usize> = cycle.iter().rev().copied().collect();
            let first = *flow.iter().min_by_key(|&&c| ops[c].span.start).expect("a cycle is not empty");
            let at = flow.iter().position(|&c| c == first).expect("member of the cycle");
            flow.rotate_left(at);
            let mut chain: Vec<&str> = flow.iter().map(|&c| ops[c].name.as_str()).collect();
            chain.push(chain[0]);
            self.problems.push(
                Problem::at(ops[first].name_span.clone(), format!("operators form a cycle: {}", chain.join(" -> ")))
                    .with_help("a pipeline is a directed acyclic graph; break the cycle by removing one of these inputs"),
            );
        }

        // Kahn's algorithm, picking the earliest-declared ready operator first.
        let mut remaining: Vec<usize> = by_position.clone();
        let mut placed = vec![false; n];
        let mut order = Vec::with_capacity(n);
        while let Some(pos) = remaining.iter().position(|&i| deps(i).all(|j| placed[j])) {
            let i = remaining.remove(pos);
            placed[i] = true;
            order.push(i);
        }
        // Operators on or behind a cycle were reported; keep them in file order.
        order.extend(remaining);
        order
    }

    fn check_reachability(&mut self, op_inputs: &[Vec<Declared>], order: &[usize]) {
        let ops = &self.spec.operators;
        let mut reached = vec![false; ops.len()];
        // Iterate to a fixed point: cheap, and correct even with cycles present.
        let mut changed = true;
        while changed {
            changed = false;
            for &i in order {
                if !reached[i]
                    && op_inputs[i].iter().any(|d| match d {
                        Declared::Source(_) => true,
                        Declared::Operator(j) => reached[*j],
                        Declared::Sink(_) => false,
                    })
                {
                    reached[i] = true;
                    changed = true;
                }
            }
        }
        let in_cycle = |p: &Problem| p.message.starts_with("operators form a cycle");
        let cycle_reported = self.problems.iter().any(in_cycle);
        for (i, op) in ops.iter().enumerate() {
            // Unresolvable inputs and cycles were reported already; do not pile on.
            if reached[i] || op_inputs[i].len() < op.spec.inputs.get_ref().len() || cycle_reported {
                continue;
            }
            self.problems.push(
                Problem::at(op.name_span.clone(), format!("operator `{}` is not reached by any source", op.name))
                    .with_help("every operator must read, directly or through other operators, from a source"),
            );
        }
    }

    fn source(&mut self, s: &Named<SourceSpec>) -> Option<SourcePlan> {
        match &s.spec {
            SourceSpec::File(f) => {
                let path = self.base_dir.join(f.path.get_ref());
                if !path.is_file() {
                    self.problems.push(Problem::at(
                        f.path.span(),
                        format!("source `{}`: file `{}` does not exist", s.name, path.display()),
                    ));
                }
                let poll_ms = f.poll_interval_ms.as_ref().map_or(DEFAULT_POLL_INTERVAL_MS, |p| p.get_ref().0);
                if let Some(p) = f.poll_interval_ms.as_ref().filter(|p| p.get_ref().0 == 0) {
                    self.problem(p.span(), "`poll_interval_ms` must be at least 1");
                }
                Some(SourcePlan {
                    name: s.name.clone(),
                    kind: SourceKind::File(FileSourcePlan {
                        path,
                        key_field: f.key_field.as_ref().map(|k| k.get_ref().clone()),
                        event_time_field: f.event_time_field.as_ref().map(|k| k.get_ref().clone()),
                        follow: f.follow,
                        poll_interval: Duration::from_millis(poll_ms),
                    }),
                })
            }
        }
    }

    fn plugin(&mut self, op: &Named<OperatorSpec>) -> Option<PluginFile> {
        let given = &op.spec.plugin;
        let path = self.base_dir.join(given.get_ref());
        match PluginFile::read(&path) {
            Ok(p) => Some(p),
            Err(PluginFileError::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                self.problems.push(
                    Problem::at(
                        given.span(),
                        format!("operator `{}`: plugin file `{}` does not exist", op.name, given.get_ref()),
                    )
                    .with_help(format!(
                        "the path is relative to the pipeline file's folder (looked for `{}`)",
                        path.display()
                    )),
                );
                None
            }
            Err(PluginFileError::Read { source, .. }) => {
                self.problem(given.span(), format!("operator `{}`: cannot read plugin `{}`: {source}", op.name, given.get_ref()));
                None
            }
            Err(PluginFileError::Inspect { source, .. }) => {
                let mut p = Problem::at(given.span(), format!("operator `{}`: plugin `{}` {source}", op.name, given.get_ref()));
                p.help = source.help();
                self.problems.push(p);
                None
            }
        }
    }

    fn limits(&mut self, op: &OperatorSpec) -> (Limits, RetryPolicy) {
        let mut limits = Limits::default();
        if let Some(m) = &op.max_memory_bytes {
            let bytes = m.get_ref().0;
            if !(MIN_MEMORY_BYTES..=MAX_MEMORY_BYTES).contains(&bytes) {
                self.problem(
                    m.span(),
                    format!("`max_memory_bytes` must be between {MIN_MEMORY_BYTES} (1 MiB) and {MAX_MEMORY_BYTES} (4 GiB), not {bytes}"),
                );
            }
            limits.max_memory_bytes = bytes;
        }
        if let Some(t) = &op.call_timeout_ms {
            if t.get_ref().0 == 0 {
                self.problem(t.span(), "`call_timeout_ms` must be at least 1");
            }
            limits.call_timeout = Duration::from_millis(t.get_ref().0);
        }
        let retry = RetryPolicy {
            max_retries: op.max_retries.as_ref().map_or(DEFAULT_MAX_RETRIES, |r| *r.get_ref()),
            backoff: Duration::from_millis(op.retry_backoff_ms.as_ref().map_or(DEFAULT_RETRY_BACKOFF_MS, |b| b.get_ref().0)),
        };
        (limits, retry)
    }

    fn dlq(&mut self) -> Option<DlqPlan> {
        Some(match self.spec.dlq.as_ref().map(|d| d.get_ref()) {
            Some(DlqSpec::File(f)) => DlqPlan::File { path: self.base_dir.join(f.path.get_ref()) },
            None => DlqPlan::File { path: self.base_dir.join(DEFAULT_DLQ_PATH) },
        })
    }
}

/// Depth-first walk from `node` along input edges, collecting each cycle met
/// (as the path from the revisited operator to the current one).
fn find_cycles(node: usize, deps: &[Vec<usize>], visited: &mut [bool], path: &mut Vec<usize>, cycles: &mut Vec<Vec<usize>>) {
    visited[node] = true;
    path.push(node);
    for &next in &deps[node] {
        if let Some(pos) = path.iter().position(|&p| p == next) {
            cycles.push(path[pos..].to_vec());
        } else if !visited[next] {
            find_cycles(next, deps, visited, path, cycles);
        }
    }
    path.pop();
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Messages of the problems in `text` (plugin and source files are not
    /// present, so problems about them are filtered out).
    fn messages(text: &str) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        match Plan::from_text(Path::new("p.toml"), text, dir.path()) {
            Ok(_) => vec![],
            Err(p) => p
                .items
                .into_iter()
                .map(|p| p.message)
                .filter(|m| !m.contains("does not exist"))
                .collect(),
        }
    }

    const HEAD: &str = "version = 1\nname = \"t\"\n[sources.s]\ntype = \"file\"\npath = \"s.jsonl\"\n[sinks.out]\ntype = \"file\"\npath = \"o.jsonl\"\n";

    #[test]
    fn cycle_is_reported_as_a_chain_once() {
        let text = format!(
            "{HEAD}inputs = [\"a\"]\n[operators.a]\nplugin = \"p.wasm\"\ninputs = [\"s\", \"c\"]\n[operators.b]\nplugin = \"p.wasm\"\ninputs = [\"a\"]\n[operators.c]\nplugin = \"p.wasm\"\ninputs = [\"b\"]\n"
        );
        let m = messages(&text);
        assert_eq!(m, vec!["operators form a cycle: a -> b -> c -> a"], "{m:#?}");
    }

    #[test]
    fn self_loop_is_a_cycle() {
        let text = format!("{HEAD}inputs = [\"a\"]\n[operators.a]\nplugin = \"p.wasm\"\ninputs = [\"a\"]\n");
        assert_eq!(messages(&text), vec!["operators form a cycle: a -> a"]);
    }

    #[test]
    fn unreached_operator_and_unknown_input() {
        let text = format!(
            "{HEAD}inputs = [\"a\"]\n[operators.a]\nplugin = \"p.wasm\"\ninputs = [\"nowhere\"]\n[operators.b]\nplugin = \"p.wasm\"\ninputs = [\"s\"]\n"
        );
        let m = messages(&text);
        assert_eq!(m, vec!["operator `a` reads from `nowhere`, which is not a source or operator"], "{m:#?}");
    }

    #[test]
    fn topological_order_follows_inputs_not_file_order() {
        // b reads from a, but is declared first; the plan must run a first.
        // Without plugin files this cannot build a Plan, so test the ordering step alone.
        let (spec, _) = spec::parse(&format!(
            "{HEAD}inputs = [\"b\"]\n[operators.b]\nplugin = \"p.wasm\"\ninputs = [\"a\"]\n[operators.a]\nplugin = \"p.wasm\"\ninputs = [\"s\"]\n"
        ));
        let mut problems = Vec::new();
        let mut builder = Builder { spec: &spec, base_dir: Path::new("."), problems: &mut problems };
        let names = builder.check_names();
        let inputs: Vec<_> = spec.operators.iter().map(|o| builder.resolve_inputs("operator", &o.name, &o.spec.inputs, &names)).collect();
        let order = builder.order_operators(&inputs);
        let names: Vec<&str> = order.iter().map(|&i| spec.operators[i].name.as_str()).collect();
        assert_eq!(names, vec!["a", "b"]);
        assert!(problems.is_empty(), "{problems:?}");
    }
}
