//! The validator: a [`Plan`] from a [`PipelineSpec`], in one pass that collects every problem (with its place in the file)
//! before giving up, so a user fixes a file in one go.

use super::error::{Problem, Problems};
use super::librdkafka;
use super::plan::*;
use super::spec::{
    self, Bytes, Declaration, DedupSpec, DlqSpec, GuaranteeSpec, LibrdkafkaSpec, Named, OperatorSpec, PipelineSpec, Section, SinkSpec,
    SourceSpec,
};
use crate::dedup::DedupLimits;
use crate::runtime::inspect;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

/// librdkafka properties the host sets itself on consumers: guarantees depend on them.
const MANAGED_CONSUMER_PROPERTIES: &[&str] =
    &["bootstrap.servers", "group.id", "enable.auto.commit", "enable.auto.offset.store", "isolation.level"];
/// librdkafka properties the host sets itself on producers.
const MANAGED_PRODUCER_PROPERTIES: &[&str] = &["bootstrap.servers", "enable.idempotence", "acks", "transactional.id"];

/// Validates `text` as the contents of `file`, resolving paths against `base_dir`: the plan, or every problem found.
pub(super) fn validate(file: &Path, text: &str, base_dir: &Path) -> Result<Plan, Problems> {
    let (spec, mut problems) = spec::parse(text);
    let plan = spec.and_then(|spec| Builder { spec: &spec, text, base_dir, problems: &mut problems }.build(file));
    match plan {
        Some(plan) if problems.is_empty() => Ok(plan),
        _ => {
            problems.sort_by_key(|p| p.span.as_ref().map_or(usize::MAX, |s| s.start));
            Err(Problems { file: file.to_path_buf(), text: text.to_string(), items: problems })
        }
    }
}

/// What a name in an `inputs` list refers to, before operators are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Declared {
    Source(usize),
    Operator(usize),
    Sink(usize),
    /// Declared, but its entry had problems (reported already): inputs naming
    /// it are not errors of their own.
    Broken(Section),
}

struct Builder<'a> {
    spec: &'a PipelineSpec,
    /// The file's text, for line numbers in messages.
    text: &'a str,
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

        let declared =
            |section: Section| spec.declared.iter().any(|d| d.section == section) || spec.broken_sections.contains(&section_key(section));
        if !declared(Section::Source) {
            let span = spec.section_spans.get("sources").cloned();
            self.problems.push(Problem {
                span,
                message: "the pipeline has no sources".into(),
                help: Some("add one, e.g. `[sources.observations]` with `type = \"file\"` and `path`".into()),
            });
        }
        if !declared(Section::Sink) {
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
        self.check_reachability(&op_inputs);

        let sources: Vec<SourcePlan> = spec.sources.iter().filter_map(|s| self.source(s)).collect();
        let plugins: Vec<Option<PluginFile>> = spec.operators.iter().map(|op| self.plugin(op)).collect();
        let dlq = self.dlq();
        let guarantee = match self.spec.guarantee.as_ref().map(|g| *g.get_ref()) {
            None | Some(GuaranteeSpec::ExactlyOnce) => Guarantee::ExactlyOnce,
            Some(GuaranteeSpec::AtLeastOnce) => Guarantee::AtLeastOnce,
            Some(GuaranteeSpec::AtMostOnce) => Guarantee::AtMostOnce,
        };
        let checkpoint = self.checkpoint();
        let admin = self.admin();
        let sink_dedup: Vec<(String, DedupLimits)> = spec
            .sinks
            .iter()
            .map(|s| {
                let dedup = match &s.spec {
                    SinkSpec::File(f) => f.dedup.as_ref(),
                    SinkSpec::Kafka(k) => k.dedup.as_ref(),
                    SinkSpec::Directory(_) | SinkSpec::Postgres(_) => None,
                };
                (s.name.clone(), self.dedup(&format!("sink `{}`", s.name), dedup))
            })
            .collect();
        let sink_kinds: Vec<SinkKind> = spec.sinks.iter().map(|s| self.sink_kind(s)).collect();
        let limits: Vec<(Limits, RetryPolicy, FaultLimit)> = spec.operators.iter().map(|op| self.limits(&op.name, &op.spec)).collect();
        let parallelism: Vec<u32> = spec.operators.iter().zip(&plugins).map(|(op, plugin)| self.parallelism(op, plugin.as_ref())).collect();

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
            Declared::Sink(_) | Declared::Broken(_) => unreachable!("rejected or reported before"),
        };
        let mut plugins: Vec<Option<PluginFile>> = plugins;
        let operators: Vec<OperatorPlan> = order
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
                    faults: limits[i].2,
                    parallelism: parallelism[i],
                    per_partition: op.spec.per_partition.as_ref().is_some_and(|p| *p.get_ref()),
                }
            })
            .collect();
        let sink_dedup: HashMap<String, DedupLimits> = sink_dedup.into_iter().collect();
        let sinks = spec
            .sinks
            .iter()
            .zip(&sink_inputs)
            .zip(sink_kinds)
            .map(|((s, inputs), kind)| SinkPlan {
                name: s.name.clone(),
                inputs: inputs.iter().map(to_node).collect(),
                kind,
                dedup: sink_dedup[&s.name],
            })
            .collect::<Vec<SinkPlan>>();
        // A replay reaches back one checkpoint interval (plus the time to
        // restart): a sink that forgets deliveries sooner may repeat them.
        for name in spec.sinks.iter().map(|s| &s.name) {
            let dedup = &sink_dedup[name];
            if plan_guarantee_dedups(guarantee) && Duration::from_millis(dedup.max_age_ms) < checkpoint.interval.saturating_mul(2) {
                warnings.push(format!(
                    "sink `{name}`: `dedup.max_age_ms` ({} ms) is shorter than two checkpoint intervals ({} ms each): \
                     after a crash, outputs delivered longer ago than that may be delivered again",
                    dedup.max_age_ms,
                    checkpoint.interval.as_millis()
                ));
            }
        }
        self.check_transactional_sinks(&sources, &operators, &sinks, guarantee);
        if let Some(dlq) = &dlq {
            self.check_leased_sources(&sources, &operators, &sinks, dlq, &checkpoint, &mut warnings);
        }
        if !self.problems.is_empty() {
            return None;
        }
        let fingerprint = fingerprint(spec);
        Some(Plan {
            file: file.to_path_buf(),
            base_dir: self.base_dir.to_path_buf(),
            name: name?,
            fingerprint,
            guarantee,
            checkpoint,
            admin,
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
            None if self.spec.present.contains(&"version") => {}
            None => self.problems.push(
                Problem::whole_file("the pipeline file has no `version`")
                    .with_help(format!("add `version = {}` at the top", spec::SPEC_VERSION)),
            ),
            Some(v) if *v.get_ref() != spec::SPEC_VERSION => self.problems.push(
                Problem::at(
                    v.span(),
                    format!("pipeline file version {} is not supported; this host reads version {}", v.get_ref(), spec::SPEC_VERSION),
                )
                .with_help("a file written for a newer sda-pipeline needs that version to run"),
            ),
            Some(_) => {}
        }
        match &self.spec.name {
            None if self.spec.present.contains(&"name") => None,
            None => {
                self.problems.push(
                    Problem::whole_file("the pipeline has no `name`")
                        .with_help("add `name = \"...\"`: it labels checkpoints, dead-letter entries and metrics"),
                );
                None
            }
            Some(n) if !valid_name(n.get_ref()) => {
                self.problem(n.span(), format!("pipeline name `{}` is not allowed", n.get_ref()));
                self.problems.last_mut().expect("just pushed").help = Some("use letters, digits, `-` and `_` only".into());
                None
            }
            Some(n) => Some(n.get_ref().clone()),
        }
    }

    /// Every declared name, checking they are unique across sections and well-formed.
    fn check_names(&mut self) -> BTreeMap<String, Declared> {
        let spec = self.spec;
        let index_of = |d: &Declaration| -> Declared {
            let found = match d.section {
                Section::Source => spec.sources.iter().position(|s| s.name == d.name).map(Declared::Source),
                Section::Operator => spec.operators.iter().position(|s| s.name == d.name).map(Declared::Operator),
                Section::Sink => spec.sinks.iter().position(|s| s.name == d.name).map(Declared::Sink),
            };
            found.filter(|_| d.parsed).unwrap_or(Declared::Broken(d.section))
        };
        let mut names: BTreeMap<String, Declared> = BTreeMap::new();
        let mut first: BTreeMap<&str, &Declaration> = BTreeMap::new();
        for d in &spec.declared {
            let kind = d.section.noun();
            if !valid_name(&d.name) {
                self.problems.push(
                    Problem::at(d.name_span.clone(), format!("{kind} name `{}` is not allowed", d.name))
                        .with_help("use letters, digits, `-` and `_` only"),
                );
            }
            if let Some(earlier) = first.get(d.name.as_str()) {
                let (line, _) = super::error::line_col(self.text, earlier.name_span.start);
                self.problems.push(
                    Problem::at(
                        d.name_span.clone(),
                        format!("the name `{}` is used by {} and by {}", d.name, earlier.section.with_article(), d.section.with_article()),
                    )
                    .with_help(format!(
                        "names must be unique across sources, operators and sinks; the {} `{}` is declared on line {line}",
                        earlier.section.noun(),
                        d.name
                    )),
                );
                continue;
            }
            first.insert(&d.name, d);
            names.insert(d.name.clone(), index_of(d));
        }
        names
    }

    fn check_runtime(&mut self) -> u32 {
        match &self.spec.runtime.batch_size {
            Some(b) if *b.get_ref() == 0 => {
                self.problems.push(
                    Problem::at(b.span(), "`[runtime]`: `batch_size` must be at least 1")
                        .with_help(format!("omit it for the default of {DEFAULT_BATCH_SIZE}")),
                );
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
        // Operators without inputs are reported by `check_reachability`, with
        // what they leave unreached.
        if inputs.get_ref().is_empty() && kind == "sink" {
            self.problems.push(
                Problem::at(inputs.span(), format!("{kind} `{name}` has no inputs"))
                    .with_help("name at least one source or operator in `inputs`, like `inputs = [\"classifier\"]`"),
            );
        }
        let mut resolved = Vec::new();
        for input in inputs.get_ref() {
            let wanted = input.get_ref().as_str();
            match names.get(wanted) {
                Some(Declared::Sink(_)) | Some(Declared::Broken(Section::Sink)) => self.problems.push(
                    Problem::at(input.span(), format!("{kind} `{name}` reads from `{wanted}`, which is a sink"))
                        .with_help("sinks have no outputs; read from a source or an operator"),
                ),
                // Its own problems were reported; this reference is not one more.
                Some(Declared::Broken(_)) => {}
                Some(d) if resolved.contains(d) => self.problems.push(
                    Problem::at(input.span(), format!("{kind} `{name}` lists input `{wanted}` twice"))
                        .with_help(format!("remove the second `{wanted}`")),
                ),
                Some(d) => resolved.push(*d),
                // It may be declared in a section that could not be read.
                None if !self.spec.broken_sections.is_empty() => {}
                None => {
                    let candidates: Vec<&str> = names
                        .iter()
                        .filter(|(n, d)| n.as_str() != name && !matches!(d, Declared::Sink(_) | Declared::Broken(Section::Sink)))
                        .map(|(n, _)| n.as_str())
                        .collect();
                    let help = match spec::closest(wanted, &candidates) {
                        Some(c) => format!("did you mean `{c}`?"),
                        None if candidates.is_empty() => "define a source or operator to read from".to_string(),
                        None => format!("it can read from {}", candidates.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ")),
                    };
                    self.problems.push(
                        Problem::at(input.span(), format!("{kind} `{name}` reads from `{wanted}`, which is not a source or operator"))
                            .with_help(help),
                    );
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
            // The input that closes the loop: `first` reading from the last of the chain.
            let closing = &ops[*flow.last().expect("a cycle is not empty")].name;
            let first_op = &ops[first];
            let at =
                first_op.spec.inputs.get_ref().iter().find(|i| i.get_ref() == closing).map_or(first_op.name_span.clone(), |i| i.span());
            let problem = if flow.len() == 1 {
                Problem::at(at, format!("operator `{}` reads from itself", first_op.name))
                    .with_help(format!("remove `{}` from its own `inputs`: a pipeline must not loop back on itself", first_op.name))
            } else {
                Problem::at(at, format!("operators form a cycle: {}", chain.join(" -> "))).with_help(format!(
                    "remove `{closing}` from the `inputs` of `{}`: a pipeline must not loop back on itself",
                    first_op.name
                ))
            };
            self.problems.push(problem);
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

    /// Reports operators no source reaches. With every input resolved and no
    /// cycle, walking inputs backwards from any operator ends at a source or at
    /// an operator with `inputs = []`; so the root cause is always the latter,
    /// and it is reported once, naming the operators it leaves unreached.
    fn check_reachability(&mut self, op_inputs: &[Vec<Declared>]) {
        let ops = &self.spec.operators;
        for (root, op) in ops.iter().enumerate() {
            if !op.spec.inputs.get_ref().is_empty() {
                continue;
            }
            // Everything downstream of `root`, in file order.
            let mut downstream = vec![false; ops.len()];
            let mut changed = true;
            while changed {
                changed = false;
                for i in 0..ops.len() {
                    if !downstream[i] && op_inputs[i].iter().any(|d| matches!(d, Declared::Operator(j) if *j == root || downstream[*j])) {
                        downstream[i] = true;
                        changed = true;
                    }
                }
            }
            let stranded: Vec<String> = (0..ops.len()).filter(|&i| downstream[i]).map(|i| format!("`{}`", ops[i].name)).collect();
            let mut help = "name at least one source or operator in `inputs`, like `inputs = [\"observations\"]`".to_string();
            if !stranded.is_empty() {
                help.push_str(&format!(
                    "; until then no source reaches {} either, which read{} from it",
                    stranded.join(", "),
                    if stranded.len() == 1 { "s" } else { "" }
                ));
            }
            self.problems.push(
                Problem::at(op.spec.inputs.span(), format!("operator `{}` has no inputs, so no source reaches it", op.name))
                    .with_help(help),
            );
        }
    }

    fn source(&mut self, s: &Named<SourceSpec>) -> Option<SourcePlan> {
        match &s.spec {
            SourceSpec::Kafka(k) => {
                let what = format!("source `{}`", s.name);
                self.non_empty(&what, "brokers", &k.brokers);
                self.non_empty(&what, "topic", &k.topic);
                self.non_empty(&what, "group_id", &k.group_id);
                Some(SourcePlan {
                    name: s.name.clone(),
                    kind: SourceKind::Kafka(KafkaSourcePlan {
                        brokers: k.brokers.get_ref().clone(),
                        topic: k.topic.get_ref().clone(),
                        group_id: k.group_id.get_ref().clone(),
                        event_time_field: k.event_time_field.as_ref().map(|f| f.get_ref().clone()),
                        connect_timeout: connect_timeout(&k.connect_timeout_ms),
                        dedup: k.dedup.as_ref().map(|d| self.dedup(&what, Some(d))),
                        max_record_bytes: self.max_record_bytes(&what, k.max_record_bytes.as_ref()),
                        librdkafka: self.librdkafka(
                            &what,
                            k.librdkafka.as_ref(),
                            MANAGED_CONSUMER_PROPERTIES,
                            librdkafka::Client::Consumer,
                        ),
                        assignment: self.assignment(&what, k),
                    }),
                })
            }
            SourceSpec::File(f) => {
                let path = self.base_dir.join(f.path.get_ref());
                if !path.is_file() {
                    self.problems.push(
                        Problem::at(f.path.span(), format!("source `{}`: file `{}` does not exist", s.name, f.path.get_ref()))
                            .with_help(looked_for(&path)),
                    );
                }
                let poll_ms = f.poll_interval_ms.as_ref().map_or(DEFAULT_POLL_INTERVAL_MS, |p| p.get_ref().0);
                if let Some(p) = f.poll_interval_ms.as_ref().filter(|p| p.get_ref().0 == 0) {
                    self.problems.push(
                        Problem::at(p.span(), format!("source `{}`: `poll_interval_ms` must be at least 1", s.name))
                            .with_help(format!("omit it for the default of {DEFAULT_POLL_INTERVAL_MS} ms")),
                    );
                }
                Some(SourcePlan {
                    name: s.name.clone(),
                    kind: SourceKind::File(FileSourcePlan {
                        path,
                        key_field: f.key_field.as_ref().map(|k| k.get_ref().clone()),
                        event_time_field: f.event_time_field.as_ref().map(|k| k.get_ref().clone()),
                        follow: f.follow,
                        poll_interval: Duration::from_millis(poll_ms),
                        dedup: f.dedup.as_ref().map(|d| self.dedup(&format!("source `{}`", s.name), Some(d))),
                        max_record_bytes: self.max_record_bytes(&format!("source `{}`", s.name), f.max_record_bytes.as_ref()),
                    }),
                })
            }
        }
    }

    fn plugin(&mut self, op: &Named<OperatorSpec>) -> Option<PluginFile> {
        let given = &op.spec.plugin;
        if let Some(name) = given.get_ref().strip_prefix(crate::runtime::native::PREFIX) {
            return match PluginFile::native(name) {
                Ok(p) => Some(p),
                Err(message) => {
                    self.problem(given.span(), format!("operator `{}`: {message}", op.name));
                    None
                }
            };
        }
        let path = self.base_dir.join(given.get_ref());
        match PluginFile::read(&path) {
            Ok(p) => Some(p),
            Err(PluginFileError::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                self.problems.push(
                    Problem::at(given.span(), format!("operator `{}`: plugin `{}` does not exist", op.name, given.get_ref()))
                        .with_help(looked_for(&path)),
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

    /// A Kafka source's `assignment`, with `idle_timeout_ms`, `shards` and `lease_topic` (which only `"all"` has).
    fn assignment(&mut self, what: &str, k: &spec::KafkaSourceSpec) -> Assignment {
        let all = k.assignment.as_ref().is_some_and(|a| *a.get_ref() == spec::AssignmentSpec::All);
        let lease = self.lease(what, k, all);
        match self.idle_timeout(what, k, all) {
            Some(idle_timeout) => Assignment::All { idle_timeout, lease },
            None => Assignment::Group,
        }
    }

    /// `shards` and `lease_topic`: only with `assignment = "all"`, `shards` between 1 and [`MAX_SHARDS`].
    fn lease(&mut self, what: &str, k: &spec::KafkaSourceSpec, all: bool) -> Option<Lease> {
        if !all {
            for (key, span) in [("shards", k.shards.as_ref().map(|s| s.span())), ("lease_topic", k.lease_topic.as_ref().map(|t| t.span()))]
            {
                if let Some(span) = span {
                    self.problems.push(Problem::at(span, format!("{what}: `{key}` applies only with `assignment = \"all\"`")).with_help(
                        "shards split the pair space of an operator that reads every partition; with the consumer group's \
                         assignment each partition is already a task of its own",
                    ));
                }
            }
            return None;
        }
        let Some(shards) = &k.shards else {
            if let Some(topic) = &k.lease_topic {
                self.problems.push(
                    Problem::at(topic.span(), format!("{what}: `lease_topic` without `shards`"))
                        .with_help("add `shards = N`: the topic's partitions are the leases of the N shards"),
                );
            }
            return None;
        };
        if !(1..=MAX_SHARDS).contains(shards.get_ref()) {
            self.problems.push(
                Problem::at(shards.span(), format!("{what}: `shards` must be between 1 and {MAX_SHARDS}, not {}", shards.get_ref()))
                    .with_help("1 runs the source in one process at a time, failing over to another; more split its pair space"),
            );
        }
        if let Some(topic) = &k.lease_topic {
            self.non_empty(what, "lease_topic", topic);
        }
        let group_id = format!("{}.shards", k.group_id.get_ref());
        Some(Lease {
            shards: *shards.get_ref(),
            topic: k.lease_topic.as_ref().map_or_else(|| group_id.clone(), |t| t.get_ref().clone()),
            group_id,
        })
    }

    /// `idle_timeout_ms` of a source read whole (`None`: the source is not read whole).
    fn idle_timeout(&mut self, what: &str, k: &spec::KafkaSourceSpec, all: bool) -> Option<Duration> {
        match (&k.idle_timeout_ms, all) {
            (Some(given), false) => {
                self.problems.push(
                    Problem::at(given.span(), format!("{what}: `idle_timeout_ms` applies only with `assignment = \"all\"`"))
                        .with_help("with the consumer group's assignment each partition is a task of its own, which nothing waits for"),
                );
                None
            }
            (Some(given), true) if given.get_ref().0 == 0 => {
                self.problems.push(
                    Problem::at(given.span(), format!("{what}: `idle_timeout_ms` must be at least 1"))
                        .with_help("how long a partition with nothing to read may hold the others back; the default is 5000"),
                );
                Some(Duration::from_millis(DEFAULT_IDLE_TIMEOUT_MS))
            }
            (given, true) => Some(Duration::from_millis(given.as_ref().map_or(DEFAULT_IDLE_TIMEOUT_MS, |m| m.get_ref().0))),
            (None, false) => None,
        }
    }

    /// `parallelism`, checked against its range and against what the plugin's WIT version can do.
    /// (Whether the plugin is an all-records operator only its `describe` says: checked at start.)
    fn parallelism(&mut self, op: &Named<OperatorSpec>, plugin: Option<&PluginFile>) -> u32 {
        let Some(given) = &op.spec.parallelism else {
            return 1;
        };
        let n = *given.get_ref();
        if !(1..=MAX_PARALLELISM).contains(&n) {
            self.problems.push(
                Problem::at(
                    given.span(),
                    format!("operator `{}`: `parallelism` must be between 1 and {MAX_PARALLELISM}, not {n}", op.name),
                )
                .with_help("the number of instances of the plugin, each screening its share; omit it for the default of 1"),
            );
            return 1;
        }
        if let Some(plugin) = plugin
            && n > 1
            && !inspect::knows_shards(&plugin.wit_version)
        {
            self.problems.push(
                Problem::at(
                    given.span(),
                    format!(
                        "operator `{}`: `parallelism = {n}` needs a plugin built against WIT `sda:operator@0.2.0` or later, \
                         but plugin `{}` is built against `sda:operator@{}`, which cannot tell an instance its shard",
                        op.name,
                        op.spec.plugin.get_ref(),
                        plugin.wit_version
                    ),
                )
                .with_help("rebuild the plugin with the current `sda-guest`, or set `parallelism = 1`"),
            );
        }
        n
    }

    fn limits(&mut self, name: &str, op: &OperatorSpec) -> (Limits, RetryPolicy, FaultLimit) {
        let mut limits = Limits::default();
        if let Some(m) = &op.max_memory_bytes {
            let bytes = m.get_ref().0;
            if !(MIN_MEMORY_BYTES..=MAX_MEMORY_BYTES).contains(&bytes) {
                self.problems.push(
                    Problem::at(
                        m.span(),
                        format!(
                            "operator `{name}`: `max_memory_bytes` must be between 1 MiB ({MIN_MEMORY_BYTES}) and 4 GiB \
                                ({MAX_MEMORY_BYTES}), not {bytes}"
                        ),
                    )
                    .with_help(format!("256 MiB is 268435456; omit it for the default of {} MiB", DEFAULT_MAX_MEMORY_BYTES >> 20)),
                );
            }
            limits.max_memory_bytes = bytes;
        }
        for (key, given, default_ms, slot) in [
            ("call_timeout_ms", &op.call_timeout_ms, DEFAULT_CALL_TIMEOUT_MS, &mut limits.call_timeout),
            ("watermark_timeout_ms", &op.watermark_timeout_ms, DEFAULT_WATERMARK_TIMEOUT_MS, &mut limits.watermark_timeout),
            ("state_timeout_ms", &op.state_timeout_ms, DEFAULT_STATE_TIMEOUT_MS, &mut limits.state_timeout),
        ] {
            let Some(t) = given else { continue };
            if t.get_ref().0 == 0 {
                self.problems.push(
                    Problem::at(t.span(), format!("operator `{name}`: `{key}` must be at least 1"))
                        .with_help(format!("omit it for the default of {default_ms} ms")),
                );
            }
            *slot = Duration::from_millis(t.get_ref().0);
        }
        let retry = RetryPolicy {
            max_retries: op.max_retries.as_ref().map_or(DEFAULT_MAX_RETRIES, |r| *r.get_ref()),
            backoff: Duration::from_millis(op.retry_backoff_ms.as_ref().map_or(DEFAULT_RETRY_BACKOFF_MS, |b| b.get_ref().0)),
            max_total: Duration::from_millis(op.max_retry_ms.as_ref().map_or(DEFAULT_MAX_RETRY_MS, |b| b.get_ref().0)),
        };
        if let Some(w) = &op.fault_window_ms
            && w.get_ref().0 == 0
        {
            self.problems.push(Problem::at(w.span(), format!("operator `{name}`: `fault_window_ms` must be at least 1")).with_help(
                format!("omit it for the default of {DEFAULT_FAULT_WINDOW_MS} ms; `max_faults = 0` stops the operator at its first fault"),
            ));
        }
        let faults = FaultLimit {
            max_faults: op.max_faults.as_ref().map_or(DEFAULT_MAX_FAULTS, |m| *m.get_ref()),
            window: Duration::from_millis(op.fault_window_ms.as_ref().map_or(DEFAULT_FAULT_WINDOW_MS, |w| w.get_ref().0)),
        };
        (limits, retry, faults)
    }

    fn dlq(&mut self) -> Option<DlqPlan> {
        Some(match self.spec.dlq.as_ref().map(|d| d.get_ref()) {
            Some(DlqSpec::Kafka(k)) => {
                let what = "`[dlq]`";
                self.non_empty(what, "brokers", &k.brokers);
                self.non_empty(what, "topic", &k.topic);
                DlqPlan::Kafka {
                    brokers: k.brokers.get_ref().clone(),
                    topic: k.topic.get_ref().clone(),
                    connect_timeout: connect_timeout(&k.connect_timeout_ms),
                    librdkafka: self.librdkafka(what, k.librdkafka.as_ref(), MANAGED_PRODUCER_PROPERTIES, librdkafka::Client::Producer),
                    dedup: self.dedup(what, k.dedup.as_ref()),
                    growth_alert_per_minute: self.growth_alert(k.growth_alert_per_minute.as_ref()),
                }
            }
            Some(DlqSpec::File(f)) => {
                let dedup = self.dedup("`[dlq]`", f.dedup.as_ref());
                let default = crate::dlq::file::Retention::default();
                let mut retention = default;
                if let Some(b) = &f.max_bytes {
                    if b.get_ref().0 < 1024 {
                        self.problems.push(
                            Problem::at(b.span(), format!("`[dlq]`: `max_bytes` must be at least 1024, not {}", b.get_ref().0))
                                .with_help(format!("omit it for segments of {} MiB", default.max_bytes >> 20)),
                        );
                    }
                    retention.max_bytes = b.get_ref().0;
                }
                if let Some(a) = &f.max_age_ms {
                    if a.get_ref().0 == 0 {
                        self.problems.push(
                            Problem::at(a.span(), "`[dlq]`: `max_age_ms` must be at least 1")
                                .with_help(format!("omit it to keep entries {} days", default.max_age.as_secs() / 86_400)),
                        );
                    }
                    retention.max_age = Duration::from_millis(a.get_ref().0);
                }
                let growth_alert_per_minute = self.growth_alert(f.growth_alert_per_minute.as_ref());
                DlqPlan::File { path: self.base_dir.join(f.path.get_ref()), dedup, retention, growth_alert_per_minute }
            }
            None => DlqPlan::File {
                path: self.base_dir.join(DEFAULT_DLQ_PATH),
                dedup: DedupLimits::default(),
                retention: crate::dlq::file::Retention::default(),
                growth_alert_per_minute: None,
            },
        })
    }

    fn growth_alert(&mut self, limit: Option<&toml::Spanned<u64>>) -> Option<u64> {
        let limit = limit?;
        if *limit.get_ref() == 0 {
            self.problems.push(
                Problem::at(limit.span(), "`[dlq]`: `growth_alert_per_minute` must be at least 1").with_help(
                    "omit it for no alert; `growth_alert_per_minute = 100` degrades the pipeline above 100 dead letters a minute",
                ),
            );
        }
        Some(*limit.get_ref())
    }

    fn sink_kind(&mut self, s: &Named<SinkSpec>) -> SinkKind {
        let what = format!("sink `{}`", s.name);
        match &s.spec {
            SinkSpec::File(f) => SinkKind::File { path: self.base_dir.join(f.path.get_ref()) },
            SinkSpec::Directory(d) => {
                self.non_empty(&what, "path", &d.path);
                let extension = d.extension.as_ref().map_or(String::new(), |e| e.get_ref().clone());
                if let Some(e) = &d.extension
                    && !(e.get_ref().len() <= 16 && e.get_ref().bytes().all(|b| b.is_ascii_alphanumeric()))
                {
                    self.problems.push(
                        Problem::at(e.span(), format!("{what}: `extension` must be up to 16 letters and digits, not `{}`", e.get_ref()))
                            .with_help("e.g. `extension = \"kvn\"`; the sink adds the `.`"),
                    );
                }
                SinkKind::Directory { path: self.base_dir.join(d.path.get_ref()), extension }
            }
            SinkSpec::Kafka(k) => {
                self.non_empty(&what, "brokers", &k.brokers);
                self.non_empty(&what, "topic", &k.topic);
                SinkKind::Kafka(KafkaSinkPlan {
                    brokers: k.brokers.get_ref().clone(),
                    topic: k.topic.get_ref().clone(),
                    transactional: k.transactional,
                    connect_timeout: connect_timeout(&k.connect_timeout_ms),
                    librdkafka: self.librdkafka(&what, k.librdkafka.as_ref(), MANAGED_PRODUCER_PROPERTIES, librdkafka::Client::Producer),
                    by_shard: k.partitioner.as_ref().is_some_and(|p| *p.get_ref() == spec::PartitionerSpec::Shard),
                })
            }
            SinkSpec::Postgres(p) => {
                use crate::sink::postgres::{check_key_column, check_table_name, check_url};
                if let Err(reason) = check_url(p.url.get_ref()) {
                    self.problems.push(
                        Problem::at(p.url.span(), format!("{what}: `url` is not a PostgreSQL connection string: {reason}"))
                            .with_help("write `postgres://USER[:PASSWORD]@HOST:PORT/DATABASE` or `host=... user=... dbname=...`"),
                    );
                }
                if let Err(reason) = check_table_name(p.table.get_ref()) {
                    self.problems.push(
                        Problem::at(p.table.span(), format!("{what}: `table` cannot be `{}`: {reason}", p.table.get_ref()))
                            .with_help("write `table` or `schema.table`; names are quoted, so their case is kept"),
                    );
                }
                if let Some(k) = &p.key_column
                    && let Err(reason) = check_key_column(k.get_ref())
                {
                    self.problems.push(Problem::at(k.span(), format!("{what}: `key_column` cannot be `{}`: {reason}", k.get_ref())));
                }
                SinkKind::Postgres(PostgresSinkPlan {
                    url: p.url.get_ref().clone(),
                    table: p.table.get_ref().clone(),
                    key_column: p.key_column.as_ref().map_or(DEFAULT_POSTGRES_KEY_COLUMN.to_string(), |k| k.get_ref().clone()),
                    connect_timeout: connect_timeout(&p.connect_timeout_ms),
                    retry_for: p.max_retry_ms.as_ref().map(|m| Duration::from_millis(m.get_ref().0)),
                })
            }
        }
    }

    fn non_empty(&mut self, what: &str, key: &str, value: &toml::Spanned<String>) {
        if value.get_ref().trim().is_empty() {
            self.problems.push(Problem::at(value.span(), format!("{what}: `{key}` must not be empty")));
        }
    }

    /// The `librdkafka` table as property pairs; properties the host owns are refused.
    ///
    /// A `librdkafka` table of a `client`: each property checked by librdkafka (name, value, client
    /// kind), each problem at the property's own line.
    fn librdkafka(
        &mut self,
        what: &str,
        table: Option<&toml::Spanned<LibrdkafkaSpec>>,
        managed: &[&str],
        client: librdkafka::Client,
    ) -> Vec<(String, String)> {
        let Some(table) = table else { return Vec::new() };
        let mut pairs = Vec::new();
        for (key, value) in table.get_ref() {
            let (span, key) = (key.span(), key.get_ref());
            let text = match value.get_ref() {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                _ => {
                    self.problems.push(Problem::at(
                        value.span(),
                        format!("{what}: librdkafka property `{key}` must be a string, number or boolean"),
                    ));
                    continue;
                }
            };
            if managed.contains(&key.as_str()) {
                self.problems.push(
                    Problem::at(span, format!("{what}: librdkafka property `{key}` is set by the host")).with_help(
                        "the delivery guarantee depends on it; set `brokers`, `group_id`, `guarantee` or `transactional` instead",
                    ),
                );
                continue;
            }
            if client == librdkafka::Client::Consumer
                && key == "auto.offset.reset"
                && !["earliest", "smallest", "beginning"].contains(&text.as_str())
            {
                self.problems.push(
                    Problem::at(value.span(), format!("{what}: `auto.offset.reset = {text:?}` is not supported")).with_help(
                        "a partition without a checkpoint or a committed offset is read from its beginning, so that no \
                            observation is skipped; remove the property",
                    ),
                );
                continue;
            }
            if client == librdkafka::Client::Consumer && key == "partition.assignment.strategy" && text.contains("cooperative") {
                self.problems.push(
                    Problem::at(value.span(), format!("{what}: `partition.assignment.strategy = {text:?}` is not supported")).with_help(
                        "the host takes and gives back whole assignments (the eager protocol); an incremental one was not verified \
                         against the test broker, whose cooperative hand-over stalled; use `range` or `roundrobin` (the default)",
                    ),
                );
                continue;
            }
            if let Err(reason) = librdkafka::check(client, key, &text) {
                self.problems.push(Problem::at(span, format!("{what}: librdkafka property `{key}`: {reason}")));
                continue;
            }
            pairs.push((key.clone(), text));
        }
        pairs
    }

    /// A transactional sink commits outputs together with Kafka consumer
    /// offsets: every source that reaches it must be Kafka, and the pipeline
    /// exactly-once.
    fn check_transactional_sinks(&mut self, sources: &[SourcePlan], operators: &[OperatorPlan], sinks: &[SinkPlan], guarantee: Guarantee) {
        for (i, sink) in sinks.iter().enumerate() {
            let SinkKind::Kafka(k) = &sink.kind else { continue };
            if !k.transactional {
                continue;
            }
            let span = self.spec.sinks.iter().find(|s| s.name == sink.name).map(|s| s.name_span.clone()).unwrap_or(0..0);
            if guarantee != Guarantee::ExactlyOnce {
                self.problems.push(
                    Problem::at(
                        span.clone(),
                        format!("sink `{}` is transactional, but `guarantee` is `{}`", sink.name, guarantee.as_str()),
                    )
                    .with_help(
                        "transactions are how a Kafka sink delivers exactly once; set `guarantee = \"exactly-once\"` or drop \
                            `transactional`",
                    ),
                );
            }
            // The checkpoint of the last committed transaction must outlive the write of the next one:
            // a crash between that write and its commit leaves recovery needing the older checkpoint.
            let keep = self.spec.checkpoint.as_ref().and_then(|c| c.get_ref().keep.clone());
            if let Some(keep) = keep.filter(|k| *k.get_ref() == 1) {
                self.problems.push(
                    Problem::at(keep.span(), format!("`[checkpoint]`: `keep = 1`, but sink `{}` is transactional", sink.name)).with_help(
                        "a crash between a checkpoint and its transaction's commit needs the checkpoint before it; keep at least 2",
                    ),
                );
            }
            for (s, source) in sources.iter().enumerate() {
                if matches!(source.kind, SourceKind::File(_)) && reachable(operators, sinks, s).1.contains(&i) {
                    self.problems.push(
                        Problem::at(
                            span.clone(),
                            format!(
                                "sink `{}` is transactional, but file source `{}` reaches \
                            it",
                                sink.name, source.name
                            ),
                        )
                        .with_help(
                            "a transaction commits Kafka consumer offsets with the outputs; only Kafka sources can feed a \
                                transactional sink",
                        ),
                    );
                }
            }
        }
    }

    /// A source whose shards move between processes must write where every process reads back: no file
    /// sink after it and no file DLQ (another machine cannot read back what a dead process appended,
    /// and two processes cannot append to one file). Its checkpoints must reach every process too:
    /// a warning while the remote tier is the default folder.
    fn check_leased_sources(
        &mut self,
        sources: &[SourcePlan],
        operators: &[OperatorPlan],
        sinks: &[SinkPlan],
        dlq: &DlqPlan,
        checkpoint: &CheckpointPlan,
        warnings: &mut Vec<String>,
    ) {
        for (k, sink) in sinks.iter().enumerate() {
            let SinkKind::Kafka(KafkaSinkPlan { by_shard: true, transactional, .. }) = &sink.kind else { continue };
            let span = self.spec.sinks.iter().find(|x| x.name == sink.name).map_or(0..0, |x| x.name_span.clone());
            let unleased: Vec<&str> = (sources.iter().enumerate())
                .filter(|(s, source)| {
                    reachable(operators, sinks, *s).1.contains(&k)
                        && !matches!(
                            &source.kind,
                            SourceKind::Kafka(KafkaSourcePlan { assignment: Assignment::All { lease: Some(_), .. }, .. })
                        )
                })
                .map(|(_, source)| source.name.as_str())
                .collect();
            if !unleased.is_empty() || *transactional {
                self.problems.push(
                    Problem::at(
                        span,
                        format!(
                            "sink `{}` has `partitioner = \"shard\"`, but {}",
                            sink.name,
                            match unleased.is_empty() {
                                true => "it is transactional".to_string(),
                                false => format!("source(s) `{}` reaching it have no `shards`", unleased.join("`, `")),
                            }
                        ),
                    )
                    .with_help("a shard's partition is the one its task writes to; only the tasks of a source with `shards` have one"),
                );
            }
        }
        for (s, source) in sources.iter().enumerate() {
            let SourceKind::Kafka(KafkaSourcePlan { assignment: Assignment::All { lease: Some(lease), .. }, .. }) = &source.kind else {
                continue;
            };
            let span = self.spec.sources.iter().find(|x| x.name == source.name).and_then(|x| match &x.spec {
                SourceSpec::Kafka(k) => k.shards.as_ref().map(|s| s.span()),
                SourceSpec::File(_) => None,
            });
            let span = span.unwrap_or(0..0);
            let where_all_read = "a shard moves to another process when its process dies or the group rebalances; what it delivered \
                 must be readable there, and every process may write at once: use Kafka or PostgreSQL";
            for &k in &reachable(operators, sinks, s).1 {
                let kind = match &sinks[k].kind {
                    SinkKind::File { .. } => "file",
                    SinkKind::Directory { .. } => "directory",
                    _ => continue,
                };
                self.problems.push(
                    Problem::at(
                        span.clone(),
                        format!("source `{}` has `shards`, but {kind} sink `{}` follows it", source.name, sinks[k].name),
                    )
                    .with_help(where_all_read),
                );
            }
            if let DlqPlan::File { .. } = dlq {
                self.problems.push(
                    Problem::at(span.clone(), format!("source `{}` has `shards`, but the dead-letter queue is a file", source.name))
                        .with_help(format!("{where_all_read}: `[dlq] type = \"kafka\"`")),
                );
            }
            if checkpoint.remote.as_deref() == Some(DEFAULT_CHECKPOINT_REMOTE) {
                warnings.push(format!(
                    "source `{}` has {} shard(s), whose checkpoints the remote tier carries from one process to the next, but \
                     `[checkpoint] remote` is the default folder `{DEFAULT_CHECKPOINT_REMOTE}`: processes on other machines cannot \
                     read it; point it at a store they all reach (`s3://...`, or a shared folder)",
                    source.name, lease.shards
                ));
            }
        }
    }

    /// A source's `max_record_bytes`: between 1 and [`MAX_MAX_RECORD_BYTES`].
    fn max_record_bytes(&mut self, what: &str, given: Option<&toml::Spanned<Bytes>>) -> u64 {
        let Some(given) = given else { return DEFAULT_MAX_RECORD_BYTES };
        let bytes = given.get_ref().0;
        if !(1..=MAX_MAX_RECORD_BYTES).contains(&bytes) {
            self.problems.push(
                Problem::at(
                    given.span(),
                    format!("{what}: `max_record_bytes` must be between 1 and {MAX_MAX_RECORD_BYTES} (1 GiB), not {bytes}"),
                )
                .with_help(format!("omit it for the default of {DEFAULT_MAX_RECORD_BYTES} (1 MiB)")),
            );
            return DEFAULT_MAX_RECORD_BYTES;
        }
        bytes
    }

    fn dedup(&mut self, what: &str, spec: Option<&toml::Spanned<DedupSpec>>) -> DedupLimits {
        let Some(spec) = spec.map(|s| s.get_ref()) else { return DedupLimits::default() };
        let mut plan = DedupLimits::default();
        if let Some(n) = &spec.max_entries {
            if *n.get_ref() == 0 {
                self.problems.push(
                    Problem::at(n.span(), format!("{what}: `dedup.max_entries` must be at least 1"))
                        .with_help(format!("omit it for the default of {}", crate::dedup::DEFAULT_MAX_ENTRIES)),
                );
            }
            plan.max_entries = usize::try_from(*n.get_ref()).unwrap_or(usize::MAX);
        }
        if let Some(age) = &spec.max_age_ms {
            if age.get_ref().0 == 0 {
                self.problems.push(
                    Problem::at(age.span(), format!("{what}: `dedup.max_age_ms` must be at least 1"))
                        .with_help(format!("omit it for the default of {} ms (one hour)", crate::dedup::DEFAULT_MAX_AGE_MS)),
                );
            }
            plan.max_age_ms = age.get_ref().0;
        }
        plan
    }

    fn checkpoint(&mut self) -> CheckpointPlan {
        let spec = self.spec.checkpoint.as_ref().map(|c| c.get_ref().clone()).unwrap_or_default();
        let keep = spec.keep.as_ref().map_or(DEFAULT_CHECKPOINT_KEEP, |k| *k.get_ref());
        if let Some(k) = spec.keep.as_ref().filter(|k| *k.get_ref() == 0) {
            self.problems.push(
                Problem::at(k.span(), "`[checkpoint]`: `keep` must be at least 1")
                    .with_help(format!("omit it for the default of {DEFAULT_CHECKPOINT_KEEP}")),
            );
        }
        CheckpointPlan {
            dir: self.base_dir.join(spec.dir.as_ref().map_or(DEFAULT_CHECKPOINT_DIR, |d| d.get_ref().as_str())),
            remote: Some(spec.remote.map_or(DEFAULT_CHECKPOINT_REMOTE.to_string(), |r| r.into_inner())),
            interval: Duration::from_millis(spec.interval_ms.map_or(DEFAULT_CHECKPOINT_INTERVAL_MS, |i| i.get_ref().0)),
            keep: keep.max(1) as usize,
        }
    }

    fn admin(&mut self) -> Option<AdminPlan> {
        let spec = self.spec.admin.as_ref()?.get_ref();
        let listen = &spec.listen;
        match listen.get_ref().parse::<std::net::SocketAddr>() {
            Ok(address) if !address.ip().is_loopback() && !spec.allow_remote => {
                self.problems.push(
                    Problem::at(
                        listen.span(),
                        format!(
                            "`[admin]`: `listen = \"{}\"` would serve /status and /metrics beyond this machine, to anyone, in plain HTTP",
                            listen.get_ref()
                        ),
                    )
                    .with_help(
                        "listen on loopback (`127.0.0.1:9464`), or add `allow_remote = true` to `[admin]`, which puts every route behind \
                         the bearer token",
                    ),
                );
                None
            }
            Ok(address) => Some(AdminPlan { listen: address, token_on_every_route: spec.allow_remote }),
            Err(_) => {
                self.problems.push(
                    Problem::at(listen.span(), format!("`[admin]`: `listen` must be an IP address and port, not `{}`", listen.get_ref()))
                        .with_help("write `listen = \"127.0.0.1:9464\"`"),
                );
                None
            }
        }
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

fn section_key(section: Section) -> &'static str {
    match section {
        Section::Source => "sources",
        Section::Operator => "operators",
        Section::Sink => "sinks",
    }
}

/// SHA-256 over the graph's structure, in file order: the pipeline name, each
/// source (name, type, path, key and event-time fields, a Kafka source's assignment), operator (name,
/// inputs) and sink (name, type, path, inputs). Plugins and their configs are
/// left out: swapping a plugin or tuning a threshold keeps checkpoints usable
/// (the plugin itself may still refuse old state).
fn fingerprint(spec: &PipelineSpec) -> String {
    use std::fmt::Write as _;
    let mut text = String::new();
    let name = spec.name.as_ref().map_or("", |n| n.get_ref().as_str());
    let _ = writeln!(text, "pipeline {name}");
    let inputs =
        |i: &toml::Spanned<Vec<toml::Spanned<String>>>| i.get_ref().iter().map(|n| n.get_ref().as_str()).collect::<Vec<_>>().join(",");
    let field = |f: &Option<toml::Spanned<String>>| f.as_ref().map_or(String::new(), |v| v.get_ref().clone());
    for s in &spec.sources {
        match &s.spec {
            SourceSpec::File(f) => {
                let _ = writeln!(
                    text,
                    "source {} file {} key={} time={}",
                    s.name,
                    f.path.get_ref(),
                    field(&f.key_field),
                    field(&f.event_time_field)
                );
            }
            SourceSpec::Kafka(k) => {
                // Said only when not the default, so that pipelines written before `assignment` keep their fingerprint.
                let all = k.assignment.as_ref().is_some_and(|a| *a.get_ref() == spec::AssignmentSpec::All);
                let _ = writeln!(
                    text,
                    "source {} kafka {} group={} time={}{}",
                    s.name,
                    k.topic.get_ref(),
                    k.group_id.get_ref(),
                    field(&k.event_time_field),
                    if all { " assignment=all" } else { "" }
                );
            }
        }
    }
    for o in &spec.operators {
        let _ = writeln!(text, "operator {} <- {}", o.name, inputs(&o.spec.inputs));
    }
    for s in &spec.sinks {
        let target = match &s.spec {
            SinkSpec::File(f) => format!("file {}", f.path.get_ref()),
            SinkSpec::Directory(d) => format!("directory {} {}", d.path.get_ref(), d.extension.as_ref().map_or("", |e| e.get_ref())),
            SinkSpec::Kafka(k) => format!("kafka {}", k.topic.get_ref()),
            SinkSpec::Postgres(p) => format!("postgres {}", p.table.get_ref()),
        };
        let _ = writeln!(text, "sink {} {target} <- {}", s.name, inputs(s.spec.inputs()));
    }
    format!("sha256:{}", hex::encode(Sha256::digest(text.as_bytes())))
}

fn plan_guarantee_dedups(guarantee: Guarantee) -> bool {
    guarantee == Guarantee::ExactlyOnce
}

fn connect_timeout(spec: &Option<toml::Spanned<spec::Millis>>) -> Duration {
    Duration::from_millis(spec.as_ref().map_or(DEFAULT_CONNECT_TIMEOUT_MS, |m| m.get_ref().0))
}

/// Help for a file that does not exist: where it was looked for, in full.
fn looked_for(path: &Path) -> String {
    let shown = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    format!("paths are relative to the pipeline file's folder; looked for `{}`", shown.display())
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
            Err(p) => p.items.into_iter().map(|p| p.message).filter(|m| !m.contains("does not exist")).collect(),
        }
    }

    const HEAD: &str =
        "version = 1\nname = \"t\"\n[sources.s]\ntype = \"file\"\npath = \"s.jsonl\"\n[sinks.out]\ntype = \"file\"\npath = \"o.jsonl\"\n";

    #[test]
    fn cycle_is_reported_as_a_chain_once() {
        let text = format!(
            "{HEAD}inputs = [\"a\"]\n[operators.a]\nplugin = \"p.wasm\"\ninputs = [\"s\", \"c\"]\n[operators.b]\nplugin = \
                \"p.wasm\"\ninputs = [\"a\"]\n[operators.c]\nplugin = \"p.wasm\"\ninputs = [\"b\"]\n"
        );
        let m = messages(&text);
        assert_eq!(m, vec!["operators form a cycle: a -> b -> c -> a"], "{m:#?}");
    }

    #[test]
    fn a_self_loop_is_reported_as_reading_from_itself() {
        let text = format!("{HEAD}inputs = [\"a\"]\n[operators.a]\nplugin = \"p.wasm\"\ninputs = [\"a\"]\n");
        assert_eq!(messages(&text), vec!["operator `a` reads from itself"]);
    }

    #[test]
    fn unreached_operator_and_unknown_input() {
        let text = format!(
            "{HEAD}inputs = [\"a\"]\n[operators.a]\nplugin = \"p.wasm\"\ninputs = [\"nowhere\"]\n[operators.b]\nplugin = \
                \"p.wasm\"\ninputs = [\"s\"]\n"
        );
        let m = messages(&text);
        assert_eq!(m, vec!["operator `a` reads from `nowhere`, which is not a source or operator"], "{m:#?}");
    }

    #[test]
    fn an_operator_without_inputs_is_reported_once_with_what_it_strands() {
        let text = format!(
            "{HEAD}inputs = [\"b\"]\n[operators.a]\nplugin = \"p.wasm\"\ninputs = []\n[operators.b]\nplugin = \"p.wasm\"\ninputs = \
                [\"a\"]\n"
        );
        let dir = tempfile::tempdir().unwrap();
        let problems = Plan::from_text(Path::new("p.toml"), &text, dir.path()).unwrap_err().items;
        let relevant: Vec<_> = problems.iter().filter(|p| !p.message.contains("does not exist")).collect();
        assert_eq!(relevant.len(), 1, "{relevant:#?}");
        assert_eq!(relevant[0].message, "operator `a` has no inputs, so no source reaches it");
        assert!(relevant[0].help.as_ref().unwrap().contains("no source reaches `b` either"));
    }

    #[test]
    fn topological_order_follows_inputs_not_file_order() {
        // b reads from a, but is declared first; the plan must run a first.
        // Without plugin files this cannot build a Plan, so test the ordering step alone.
        let (spec, _) = spec::parse(&format!(
            "{HEAD}inputs = [\"b\"]\n[operators.b]\nplugin = \"p.wasm\"\ninputs = [\"a\"]\n[operators.a]\nplugin = \"p.wasm\"\ninputs = \
                [\"s\"]\n"
        ));
        let mut problems = Vec::new();
        let spec = spec.unwrap();
        let mut builder = Builder { spec: &spec, text: "", base_dir: Path::new("."), problems: &mut problems };
        let names = builder.check_names();
        let inputs: Vec<_> = spec.operators.iter().map(|o| builder.resolve_inputs("operator", &o.name, &o.spec.inputs, &names)).collect();
        let order = builder.order_operators(&inputs);
        let names: Vec<&str> = order.iter().map(|&i| spec.operators[i].name.as_str()).collect();
        assert_eq!(names, vec!["a", "b"]);
        assert!(problems.is_empty(), "{problems:?}");
    }
}
