//! What changed between two plans of one pipeline, and how a running pipeline takes each change: a hot swap, a re-`init` with state kept, a rebuild of the graph, or nothing until a restart.
//!
//! `sda-pipeline plan --diff OLD NEW` prints it; `run --watch` applies it.

use super::plan::{NodeRef, Plan};
use std::fmt;

/// How the running pipeline takes a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    /// Replace the operator's plugin in every task, state carried over (`crate::swap`).
    Swap,
    /// New instances of the same plugin with the new config or limits, state carried over.
    Reinit,
    /// Finish the batch, checkpoint, rebuild the graph, restore state by operator name.
    Rebuild,
    /// Cannot be applied to a running pipeline: the edit is refused; restart to apply it.
    Restart,
}

/// What a change is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// The pipeline's name.
    Pipeline,
    /// The sources, as a whole.
    Sources,
    /// `[checkpoint]`'s tiers.
    Checkpoint,
    Operator(String),
    Sink(String),
    /// `[dlq]`.
    Dlq,
    /// Pipeline-wide settings: guarantee, batch size, checkpoint interval or keep, admin, cache.
    Settings,
}

impl Subject {
    /// The operator's name, if the change is about one.
    pub fn operator(&self) -> Option<&str> {
        match self {
            Subject::Operator(name) => Some(name),
            _ => None,
        }
    }

    /// The sink's name, if the change is about one.
    pub fn sink(&self) -> Option<&str> {
        match self {
            Subject::Sink(name) => Some(name),
            _ => None,
        }
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Pipeline => f.write_str("pipeline"),
            Subject::Sources => f.write_str("sources"),
            Subject::Checkpoint => f.write_str("[checkpoint]"),
            Subject::Operator(name) => write!(f, "operator `{name}`"),
            Subject::Sink(name) => write!(f, "sink `{name}`"),
            Subject::Dlq => f.write_str("[dlq]"),
            Subject::Settings => f.write_str("settings"),
        }
    }
}

/// What about the subject changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Added,
    Removed,
    /// What it reads from.
    Inputs,
    /// An operator's plugin (its digest).
    Plugin,
    /// An operator's `config`.
    Config,
    /// An operator's memory and time limits.
    Limits,
    Parallelism,
    /// An operator's retry or fault policy.
    Policy,
    /// Anything else about the subject: a sink's kind or dedup, the DLQ, the sources, a name, a setting.
    Settings,
}

/// One difference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub action: Action,
    pub subject: Subject,
    pub kind: Kind,
    /// What changed, for people.
    pub what: String,
}

impl Change {
    /// The operator's name, if the change is about one.
    pub fn operator(&self) -> Option<&str> {
        self.subject.operator()
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let action = match self.action {
            Action::Swap => "hot swap, state carried over",
            Action::Reinit => "re-init, state kept",
            Action::Rebuild => "finish the batch, checkpoint, rebuild the graph, restore state by operator name",
            Action::Restart => "cannot change while running: restart the pipeline to apply it",
        };
        write!(f, "{}: {} -> {action}", self.subject, self.what)
    }
}

/// Every difference, in file order within each kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanDiff {
    pub changes: Vec<Change>,
}

impl PlanDiff {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// The most disruptive action the changes need (none when there are none).
    pub fn action(&self) -> Option<Action> {
        self.changes.iter().map(|c| c.action).max()
    }

    /// Changes that only a restart can apply.
    pub fn refused(&self) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(|c| c.action == Action::Restart)
    }

    /// Operators whose state a rebuild no longer restores (they were removed).
    pub fn removed_operators(&self) -> Vec<String> {
        self.changes.iter().filter(|c| c.kind == Kind::Removed).filter_map(|c| c.operator().map(str::to_string)).collect()
    }

    /// Sinks whose settings (kind or deduplication) changed: a rebuild starts them afresh.
    pub fn resettled_sinks(&self) -> Vec<String> {
        self.changes.iter().filter(|c| c.kind == Kind::Settings).filter_map(|c| c.subject.sink().map(str::to_string)).collect()
    }
}

impl fmt::Display for PlanDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.changes.is_empty() {
            return writeln!(f, "no changes");
        }
        for change in &self.changes {
            writeln!(f, "{change}")?;
        }
        Ok(())
    }
}

fn inputs(plan: &Plan, nodes: &[NodeRef]) -> Vec<String> {
    nodes.iter().map(|&n| plan.node_name(n).to_string()).collect()
}

/// A digest as people read it: `sha256:` and its first 12 hex digits.
pub fn short(digest: &str) -> &str {
    &digest[..digest.len().min("sha256:".len() + 12)]
}

/// What it takes to go from `old` to `new`.
pub fn diff(old: &Plan, new: &Plan) -> PlanDiff {
    let mut changes = Vec::new();
    let mut push = |action, subject: Subject, kind, what: String| changes.push(Change { action, subject, kind, what });
    if old.name != new.name {
        push(
            Action::Restart,
            Subject::Pipeline,
            Kind::Settings,
            format!("name `{}` -> `{}` (its checkpoints are filed under the name)", old.name, new.name),
        );
    }
    let old_sources: Vec<String> = old.sources.iter().map(|s| format!("{} {:?}", s.name, s.kind)).collect();
    let new_sources: Vec<String> = new.sources.iter().map(|s| format!("{} {:?}", s.name, s.kind)).collect();
    if old_sources != new_sources {
        let names = |p: &Plan| p.sources.iter().map(|s| s.name.clone()).collect::<Vec<_>>().join(", ");
        push(
            Action::Restart,
            Subject::Sources,
            Kind::Settings,
            format!("changed ({} -> {}): a source's offsets belong to its input", names(old), names(new)),
        );
    }
    if (&old.checkpoint.dir, &old.checkpoint.remote) != (&new.checkpoint.dir, &new.checkpoint.remote) {
        push(
            Action::Restart,
            Subject::Checkpoint,
            Kind::Settings,
            "`dir` or `remote` changed: the running state is in the old place".into(),
        );
    }

    for op in &new.operators {
        let subject = Subject::Operator(op.name.clone());
        let Some(was) = old.operators.iter().find(|o| o.name == op.name) else {
            push(Action::Rebuild, subject, Kind::Added, format!("added (inputs {})", inputs(new, &op.inputs).join(", ")));
            continue;
        };
        let (from, to) = (inputs(old, &was.inputs), inputs(new, &op.inputs));
        if from != to {
            push(Action::Rebuild, subject.clone(), Kind::Inputs, format!("inputs {} -> {}", from.join(", "), to.join(", ")));
        }
        if was.plugin.digest != op.plugin.digest {
            let what = format!("plugin {} -> {} ({})", short(&was.plugin.digest), short(&op.plugin.digest), op.plugin.path.display());
            push(Action::Swap, subject.clone(), Kind::Plugin, what);
        }
        if was.config_json != op.config_json {
            push(Action::Reinit, subject.clone(), Kind::Config, format!("config {} -> {}", was.config_json, op.config_json));
        }
        if was.limits != op.limits {
            push(Action::Reinit, subject.clone(), Kind::Limits, format!("limits {:?} -> {:?}", was.limits, op.limits));
        }
        if was.parallelism != op.parallelism {
            // New instances, their one state restored into every shard: ownership follows from the state.
            push(Action::Rebuild, subject.clone(), Kind::Parallelism, format!("parallelism {} -> {}", was.parallelism, op.parallelism));
        }
        if (was.retry, was.faults) != (op.retry, op.faults) {
            push(Action::Rebuild, subject, Kind::Policy, "retry or fault policy changed".into());
        }
    }
    for op in &old.operators {
        if !new.operators.iter().any(|o| o.name == op.name) {
            push(Action::Rebuild, Subject::Operator(op.name.clone()), Kind::Removed, "removed".into());
        }
    }

    for sink in &new.sinks {
        let subject = Subject::Sink(sink.name.clone());
        let Some(was) = old.sinks.iter().find(|s| s.name == sink.name) else {
            push(
                Action::Rebuild,
                subject,
                Kind::Added,
                format!("added ({}, inputs {})", sink.kind.describe(), inputs(new, &sink.inputs).join(", ")),
            );
            continue;
        };
        let (from, to) = (inputs(old, &was.inputs), inputs(new, &sink.inputs));
        if from != to {
            push(Action::Rebuild, subject.clone(), Kind::Inputs, format!("inputs {} -> {}", from.join(", "), to.join(", ")));
        }
        if format!("{:?}{:?}", was.kind, was.dedup) != format!("{:?}{:?}", sink.kind, sink.dedup) {
            push(
                Action::Rebuild,
                subject,
                Kind::Settings,
                format!("settings changed ({} -> {})", was.kind.describe(), sink.kind.describe()),
            );
        }
    }
    for sink in &old.sinks {
        if !new.sinks.iter().any(|s| s.name == sink.name) {
            push(Action::Rebuild, Subject::Sink(sink.name.clone()), Kind::Removed, "removed".into());
        }
    }
    if format!("{:?}", old.dlq) != format!("{:?}", new.dlq) {
        push(Action::Rebuild, Subject::Dlq, Kind::Settings, format!("{} -> {}", old.dlq.describe(), new.dlq.describe()));
    }
    let settings = |p: &Plan| {
        format!("{:?} {} {:?} {} {:?} {:?}", p.guarantee, p.batch_size, p.checkpoint.interval, p.checkpoint.keep, p.admin, p.cache_dir)
    };
    if settings(old) != settings(new) {
        push(
            Action::Rebuild,
            Subject::Settings,
            Kind::Settings,
            "guarantee, batch size, checkpoint interval or keep, admin or cache changed".into(),
        );
    }
    PlanDiff { changes }
}
