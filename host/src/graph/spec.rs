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
                        u64::try_from(v)
                            .map($ty)
                            .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(v), &self))
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
}

#[derive(Debug, Clone)]
pub enum SourceSpec {
    File(FileSourceSpec),
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
    pub call_timeout_ms: Option<Spanned<Millis>>,
    /// Attempts after the first for a record the plugin calls `transient`.
    pub max_retries: Option<Spanned<u32>>,
    /// Wait before the first retry; doubled for each further one.
    pub retry_backoff_ms: Option<Spanned<Millis>>,
}

/// `[sinks.NAME]` with `type = "file"`: appends JSON Lines.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSinkSpec {
    pub inputs: Spanned<Vec<Spanned<String>>>,
    pub path: Spanned<String>,
}

#[derive(Debug, Clone)]
pub enum SinkSpec {
    File(FileSinkSpec),
}

impl SinkSpec {
    pub fn inputs(&self) -> &Spanned<Vec<Spanned<String>>> {
        match self {
            SinkSpec::File(s) => &s.inputs,
        }
    }
}

/// `[dlq]` with `type = "file"`: dead-letter entries as JSON Lines.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDlqSpec {
    pub path: Spanned<String>,
}

#[derive(Debug, Clone)]
pub enum DlqSpec {
    File(FileDlqSpec),
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
    /// Span of the `sources`, `operators`, `sinks` tables, for "missing" problems.
    pub section_spans: BTreeMap<&'static str, Range<usize>>,
}

const TOP_LEVEL_KEYS: &[&str] = &["version", "name", "runtime", "sources", "operators", "sinks", "dlq"];
const SOURCE_TYPES: &[&str] = &["file"];
const SINK_TYPES: &[&str] = &["file"];
const DLQ_TYPES: &[&str] = &["file"];

/// Parses `text`, collecting every problem instead of stopping at the first.
pub fn parse(text: &str) -> (PipelineSpec, Vec<Problem>) {
    let mut problems = Vec::new();
    let (root, syntax_errors) = DeTable::parse_recoverable(text);
    if !syntax_errors.is_empty() {
        for e in syntax_errors {
            problems.push(toml_problem(&e, 0..0, "TOML syntax error"));
        }
        return (PipelineSpec::default(), problems);
    }
    let root = root.into_inner();
    let mut spec = PipelineSpec::default();

    for (key, value) in root.iter() {
        let key_span = key.span();
        let value_span = value.span();
        match key.get_ref().as_ref() {
            "version" => spec.version = typed(value, "`version`", &mut problems),
            "name" => spec.name = typed(value, "`name`", &mut problems),
            "runtime" => {
                if let Some(r) = typed::<RuntimeSpec>(value, "`[runtime]`", &mut problems) {
                    spec.runtime = r.into_inner();
                }
            }
            "sources" => {
                spec.section_spans.insert("sources", key_span);
                for (name, entry) in entries(value, "sources", &mut problems) {
                    let what = format!("source `{}`", name.get_ref());
                    if let Some(s) = tagged(&entry, &what, SOURCE_TYPES, &mut problems, |kind, v, p| match kind {
                        "file" => typed_inner(v, &what, p).map(SourceSpec::File),
                        _ => unreachable!("checked against SOURCE_TYPES"),
                    }) {
                        spec.sources.push(named(&name, &entry, s));
                    }
                }
            }
            "operators" => {
                spec.section_spans.insert("operators", key_span);
                for (name, entry) in entries(value, "operators", &mut problems) {
                    let what = format!("operator `{}`", name.get_ref());
                    if let Some(op) = typed::<OperatorSpec>(&entry, &what, &mut problems) {
                        spec.operators.push(named(&name, &entry, op.into_inner()));
                    }
                }
            }
            "sinks" => {
                spec.section_spans.insert("sinks", key_span);
                for (name, entry) in entries(value, "sinks", &mut problems) {
                    let what = format!("sink `{}`", name.get_ref());
                    if let Some(s) = tagged(&entry, &what, SINK_TYPES, &mut problems, |kind, v, p| match kind {
                        "file" => typed_inner(v, &what, p).map(SinkSpec::File),
                        _ => unreachable!("checked against SINK_TYPES"),
                    }) {
                        spec.sinks.push(named(&name, &entry, s));
                    }
                }
            }
            "dlq" => {
                let d = tagged(value, "`[dlq]`", DLQ_TYPES, &mut problems, |kind, v, p| match kind {
                    "file" => typed_inner(v, "`[dlq]`", p).map(DlqSpec::File),
                    _ => unreachable!("checked against DLQ_TYPES"),
                });
                spec.dlq = d.map(|d| Spanned::new(value_span, d));
            }
            other => {
                let mut p = Problem::at(key_span, format!("unknown top-level key `{other}`"));
                p = p.with_help(match closest(other, TOP_LEVEL_KEYS) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!("the top-level keys are {}", list(TOP_LEVEL_KEYS)),
                });
                problems.push(p);
            }
        }
    }
    // The TOML map is ordered by key; report and keep entries in file order.
    problems.sort_by_key(|p| p.span.as_ref().map_or(usize::MAX, |s| s.start));
    spec.sources.sort_by_key(|n| n.span.start);
    spec.operators.sort_by_key(|n| n.span.start);
    spec.sinks.sort_by_key(|n| n.span.start);
    (spec, problems)
}

fn named<T>(name: &Spanned<String>, entry: &Spanned<DeValue<'_>>, spec: T) -> Named<T> {
    Named { name: name.get_ref().clone(), name_span: name.span(), span: entry.span(), spec }
}

/// The `NAME = { ... }` entries of a section such as `[sources]`.
fn entries<'i>(
    value: &Spanned<DeValue<'i>>,
    section: &str,
    problems: &mut Vec<Problem>,
) -> Vec<(Spanned<String>, Spanned<DeValue<'i>>)> {
    let Some(table) = value.get_ref().as_table() else {
        problems.push(Problem::at(
            value.span(),
            format!("`{section}` must be a table of named entries, like `[{section}.NAME]`"),
        ));
        return Vec::new();
    };
    table
        .iter()
        .map(|(k, v)| (Spanned::new(k.span(), k.get_ref().to_string()), v.clone()))
        .collect()
}

/// Deserializes one value, turning a failure into a problem about `what`.
fn typed<'i, T: Deserialize<'i>>(
    value: &Spanned<DeValue<'i>>,
    what: &str,
    problems: &mut Vec<Problem>,
) -> Option<Spanned<T>> {
    match T::deserialize(ValueDeserializer::from(value.clone())) {
        Ok(v) => Some(Spanned::new(value.span(), v)),
        Err(e) => {
            problems.push(toml_problem(&e, value.span(), what));
            None
        }
    }
}

fn typed_inner<'i, T: Deserialize<'i>>(
    value: &Spanned<DeValue<'i>>,
    what: &str,
    problems: &mut Vec<Problem>,
) -> Option<T> {
    typed(value, what, problems).map(Spanned::into_inner)
}

/// Reads the `type` key of a table, then deserializes the rest as that type.
fn tagged<'i, T>(
    value: &Spanned<DeValue<'i>>,
    what: &str,
    types: &[&str],
    problems: &mut Vec<Problem>,
    build: impl FnOnce(&str, &Spanned<DeValue<'i>>, &mut Vec<Problem>) -> Option<T>,
) -> Option<T> {
    let Some(table) = value.get_ref().as_table() else {
        problems.push(Problem::at(value.span(), format!("{what} must be a table")));
        return None;
    };
    let Some((type_key, type_value)) = table.iter().find(|(k, _)| k.get_ref().as_ref() == "type") else {
        problems.push(
            Problem::at(value.span(), format!("{what} has no `type`"))
                .with_help(format!("add `type = \"{}\"` (types: {})", types[0], list(types))),
        );
        return None;
    };
    let Some(kind) = type_value.get_ref().as_str() else {
        problems.push(Problem::at(type_value.span(), format!("the `type` of {what} must be a string")));
        return None;
    };
    if !types.contains(&kind) {
        let mut p = Problem::at(type_value.span(), format!("{what} has unknown type `{kind}`"));
        p = p.with_help(match closest(kind, types) {
            Some(s) => format!("did you mean `{s}`? (types: {})", list(types)),
            None => format!("types: {}", list(types)),
        });
        problems.push(p);
        return None;
    }
    let mut rest = table.clone();
    let type_key = type_key.clone();
    rest.remove(&type_key);
    let rest = Spanned::new(value.span(), DeValue::Table(rest));
    build(kind, &rest, problems)
}

/// Converts a toml/serde error into a problem, adding help for the usual slips.
fn toml_problem(e: &toml::de::Error, fallback: Range<usize>, what: &str) -> Problem {
    let span = e.span().unwrap_or(fallback);
    let message = e.message().trim_end_matches('\n').to_string();
    let mut problem = Problem::at(span, format!("{what}: {message}"));
    if let Some(field) = message.strip_prefix("unknown field `").and_then(|m| m.split('`').next()) {
        let expected: Vec<&str> = message
            .split("expected ")
            .nth(1)
            .map(|list| list.split('`').skip(1).step_by(2).collect())
            .unwrap_or_default();
        if let Some(help) = unknown_field_help(field, &expected) {
            problem = problem.with_help(help);
        }
    }
    problem
}

/// "did you mean" for a misspelt key, and a hint when a unit suffix is missing or wrong.
fn unknown_field_help(field: &str, expected: &[&str]) -> Option<String> {
    let unit_of = |k: &str| ["_ms", "_bytes"].into_iter().find(|u| k.ends_with(u));
    // `call_timeout` or `call_timeout_s` for `call_timeout_ms`: say where units go.
    if let Some(with_unit) = expected.iter().find(|k| {
        unit_of(k).is_some_and(|u| {
            let stem = k.trim_end_matches(u);
            field == stem || field.strip_prefix(stem).is_some_and(|rest| rest.starts_with('_'))
        })
    }) {
        let unit = if with_unit.ends_with("_ms") { "milliseconds" } else { "bytes" };
        return Some(format!("write `{with_unit}`: this value is given in {unit}, and the unit is part of the key's name"));
    }
    closest(field, expected).map(|s| format!("did you mean `{s}`?"))
}

/// The candidate most like `word`, if any is close enough to be a likely typo.
pub fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), *c))
        .filter(|(d, c)| *d <= (c.len() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
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
        assert!(problems[2].contains("unknown field `call_timeout`") && problems[2].contains("write `call_timeout_ms`"));
        assert!(problems[3].contains("a whole number of bytes"));
    }

    #[test]
    fn syntax_errors_are_located() {
        let (_, problems) = parse("name = \"x\nversion = 1\n");
        assert!(!problems.is_empty());
        assert!(problems[0].span.is_some());
    }

    #[test]
    fn closest_finds_typos_only() {
        assert_eq!(closest("corelator", &["correlator", "classifier"]), Some("correlator"));
        assert_eq!(closest("zzz", &["correlator", "classifier"]), None);
    }
}
