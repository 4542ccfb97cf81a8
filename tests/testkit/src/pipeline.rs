//! `pipeline.toml` for tests and benches, built rather than written out by hand: the sample graph, then what a test changes.
//!
//! ```
//! use sda_testkit::PipelineToml;
//! use sda_testkit::pipeline::quoted;
//!
//! let toml = PipelineToml::sample("crash-test")
//!     .top("guarantee", quoted("exactly-once"))
//!     .set("runtime", "batch_size", 64)
//!     .set("checkpoint", "dir", quoted("state"))
//!     .set("operators.classifier", "config", "{ red_km = 1.0 }")
//!     .to_string();
//! assert!(toml.starts_with("version = 1\nname = \"crash-test\"\nguarantee = \"exactly-once\"\n"));
//! assert!(toml.contains("[runtime]\nbatch_size = 64\n"));
//! ```
//!
//! Values are TOML text (`"\"exactly-once\""`, `64`, `"{ red_km = 1.0 }"`); [`quoted`] makes a string of a path.
//! Tables keep the order they were first named in; a key set twice keeps its first place and its last value.

use crate::plugins;
use std::fmt;

/// A pipeline file being built.
#[derive(Debug, Clone)]
pub struct PipelineToml {
    /// Keys before the first table (`version`, `name`, `guarantee`).
    top: Vec<(String, String)>,
    /// `(header, lines)`: each line a `key = value` or raw TOML.
    tables: Vec<(String, Vec<String>)>,
}

/// `text` as a TOML string, escaped as TOML needs.
pub fn quoted(text: impl AsRef<str>) -> String {
    toml::Value::String(text.as_ref().to_string()).to_string()
}

/// `names` as a TOML array of strings: `["a", "b"]`.
fn array(names: &[&str]) -> String {
    format!("[{}]", names.iter().map(quoted).collect::<Vec<_>>().join(", "))
}

impl PipelineToml {
    /// An empty pipeline named `name` (a file with only `version` and `name` is not valid yet: add a source and a sink).
    pub fn new(name: &str) -> PipelineToml {
        PipelineToml { top: Vec::new(), tables: Vec::new() }.top("version", 1).top("name", quoted(name))
    }

    /// The sample graph: source `observations` (`obs.jsonl`, keyed by `observation_id`, event time `epoch_ms`) ->
    /// `correlator` -> `classifier` -> sink `alerts` (`out/alerts.jsonl`), dead letters to `out/dlq.jsonl`.
    pub fn sample(name: &str) -> PipelineToml {
        PipelineToml::new(name)
            .observations_file("observations", "obs.jsonl")
            .operator("correlator", plugins::CORRELATOR, &["observations"])
            .operator("classifier", plugins::CLASSIFIER, &["correlator"])
            .file_sink("alerts", &["classifier"], "out/alerts.jsonl")
            .file_dlq("out/dlq.jsonl")
    }

    /// Sets a top-level key (`guarantee`, say) to `value`, TOML text.
    pub fn top(mut self, key: &str, value: impl fmt::Display) -> PipelineToml {
        let value = value.to_string();
        match self.top.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value,
            None => self.top.push((key.to_string(), value)),
        }
        self
    }

    /// Sets `key` of table `[table]` to `value`, TOML text; the table is added if it is not there.
    pub fn set(mut self, table: &str, key: &str, value: impl fmt::Display) -> PipelineToml {
        let line = format!("{key} = {value}");
        let lines = self.lines_of(table);
        match lines.iter_mut().find(|l| l.split_once('=').is_some_and(|(k, _)| k.trim() == key)) {
            Some(existing) => *existing = line,
            None => lines.push(line),
        }
        self
    }

    /// Appends raw TOML lines to table `[table]` (several keys at once); the table is added if it is not there.
    pub fn lines(mut self, table: &str, text: impl AsRef<str>) -> PipelineToml {
        let lines = self.lines_of(table);
        lines.extend(text.as_ref().lines().filter(|l| !l.trim().is_empty()).map(str::to_string));
        self
    }

    /// Removes table `[table]` (and nothing else: its subtables stay).
    pub fn remove(mut self, table: &str) -> PipelineToml {
        self.tables.retain(|(header, _)| header != table);
        self
    }

    /// A file source of observations: keyed by `observation_id`, event time from `epoch_ms`.
    pub fn observations_file(self, name: &str, path: impl AsRef<str>) -> PipelineToml {
        let table = format!("sources.{name}");
        self.set(&table, "type", "\"file\"").set(&table, "path", quoted(path)).set(&table, "key_field", "\"observation_id\"").set(
            &table,
            "event_time_field",
            "\"epoch_ms\"",
        )
    }

    /// A Kafka source reading `topic` in consumer group `group`.
    pub fn kafka_source(self, name: &str, brokers: &str, topic: &str, group: &str) -> PipelineToml {
        let table = format!("sources.{name}");
        self.set(&table, "type", "\"kafka\"").set(&table, "brokers", quoted(brokers)).set(&table, "topic", quoted(topic)).set(
            &table,
            "group_id",
            quoted(group),
        )
    }

    /// Operator `name` running `plugin` on `inputs`.
    pub fn operator(self, name: &str, plugin: impl AsRef<str>, inputs: &[&str]) -> PipelineToml {
        let table = format!("operators.{name}");
        self.set(&table, "plugin", quoted(plugin)).set(&table, "inputs", array(inputs))
    }

    /// A file sink of `inputs` at `path`.
    pub fn file_sink(self, name: &str, inputs: &[&str], path: impl AsRef<str>) -> PipelineToml {
        let table = format!("sinks.{name}");
        self.set(&table, "type", "\"file\"").set(&table, "inputs", array(inputs)).set(&table, "path", quoted(path))
    }

    /// A Kafka sink of `inputs` producing to `topic`.
    pub fn kafka_sink(self, name: &str, inputs: &[&str], brokers: &str, topic: &str) -> PipelineToml {
        let table = format!("sinks.{name}");
        self.set(&table, "type", "\"kafka\"").set(&table, "inputs", array(inputs)).set(&table, "brokers", quoted(brokers)).set(
            &table,
            "topic",
            quoted(topic),
        )
    }

    /// Dead letters to the file at `path`.
    pub fn file_dlq(self, path: impl AsRef<str>) -> PipelineToml {
        self.remove("dlq").set("dlq", "type", "\"file\"").set("dlq", "path", quoted(path))
    }

    /// Dead letters to the Kafka topic `topic`.
    pub fn kafka_dlq(self, brokers: &str, topic: &str) -> PipelineToml {
        self.remove("dlq").set("dlq", "type", "\"kafka\"").set("dlq", "brokers", quoted(brokers)).set("dlq", "topic", quoted(topic))
    }

    fn lines_of(&mut self, table: &str) -> &mut Vec<String> {
        let at = match self.tables.iter().position(|(header, _)| header == table) {
            Some(at) => at,
            None => {
                self.tables.push((table.to_string(), Vec::new()));
                self.tables.len() - 1
            }
        };
        &mut self.tables[at].1
    }
}

impl fmt::Display for PipelineToml {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (key, value) in &self.top {
            writeln!(f, "{key} = {value}")?;
        }
        for (header, lines) in &self.tables {
            writeln!(f, "[{header}]")?;
            for line in lines {
                writeln!(f, "{line}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_the_sample_and_what_a_test_changes_in_it() {
        let toml = PipelineToml::sample("t")
            .top("guarantee", quoted("exactly-once"))
            .set("runtime", "batch_size", 64)
            .set("operators.classifier", "plugin", quoted("other.wasm"))
            .lines("operators.correlator", "call_timeout_ms = 60000\nconfig = { window_ms = 1000 }")
            .to_string();
        let parsed: toml::Table = toml.parse().unwrap_or_else(|e| panic!("{e}\n{toml}"));
        assert_eq!(parsed["guarantee"].as_str(), Some("exactly-once"));
        assert_eq!(parsed["runtime"]["batch_size"].as_integer(), Some(64));
        assert_eq!(parsed["operators"]["classifier"]["plugin"].as_str(), Some("other.wasm"), "set replaces a key");
        assert_eq!(parsed["operators"]["classifier"]["inputs"].as_array().unwrap().len(), 1);
        assert_eq!(parsed["operators"]["correlator"]["config"]["window_ms"].as_integer(), Some(1000));
        assert_eq!(parsed["sources"]["observations"]["path"].as_str(), Some("obs.jsonl"));
        assert_eq!(parsed["dlq"]["path"].as_str(), Some("out/dlq.jsonl"));
        for text in ["a\"b\\c", "tab\there", "line\nbreak", "C:\\plugins\\x.wasm"] {
            let parsed: toml::Table = format!("k = {}", quoted(text)).parse().unwrap();
            assert_eq!(parsed["k"].as_str(), Some(text), "{text:?} quoted as {}", quoted(text));
        }
    }
}
