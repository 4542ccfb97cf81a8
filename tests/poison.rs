//! Poison pills: plugins that panic, loop or hoard memory on a few records among 100,000 cost those records, never the run or any other alert.

use sda_scenario::GenerateOptions;
use sda_testkit::pipeline::quoted;
use sda_testkit::{PipelineToml, Scratch, plugins};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

fn run(dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sda-pipeline"))
        .current_dir(dir)
        .args(["run", "--quiet", "pipeline.toml"])
        .env("SDA_CACHE_DIR", Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache"))
        .env("SDA_LOG", "warn")
        .output()
        .expect("running sda-pipeline")
}

/// observations -> (guards) -> correlator -> classifier -> alerts; `guards` are `(name, table body)`.
fn pipeline(guards: &[(&str, String)]) -> String {
    let mut toml = PipelineToml::sample("poison");
    let mut previous = "observations";
    for (name, body) in guards {
        toml = toml.operator(name, plugins::FAULTY, &[previous]).lines(&format!("operators.{name}"), body);
        previous = name;
    }
    toml.set("operators.correlator", "inputs", format!("[{}]", quoted(previous))).to_string()
}

/// Dead letters without what differs between runs.
fn comparable(entries: Vec<Value>) -> Vec<Value> {
    entries
        .into_iter()
        .map(|mut e| {
            let object = e.as_object_mut().unwrap();
            object.remove("failed_at");
            object.remove("checkpoint_seq");
            e
        })
        .collect()
}

#[test]
fn poison_pills_among_100000_observations_cost_only_themselves() {
    // 400 objects every 10 s for 42 minutes: about 100,000 observations.
    let clean = Scratch::new();
    let options = GenerateOptions { objects: 400, minutes: 42, seed: 11, ..GenerateOptions::default() };
    sda_scenario::write_scenario(&clean.join("obs.jsonl"), &options, &|_, _| {}).expect("generating");
    let lines: Vec<String> = std::fs::read_to_string(clean.join("obs.jsonl")).unwrap().lines().map(str::to_string).collect();
    assert!(lines.len() >= 100_000, "{} lines", lines.len());
    clean.write("pipeline.toml", pipeline(&[]));
    let out = run(clean.path());
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let golden_alerts = std::fs::read(clean.join("out/alerts.jsonl")).unwrap();
    assert!(!golden_alerts.is_empty());
    let golden_dead_letters = comparable(clean.read_jsonl("out/dlq.jsonl"));

    // 0.1% poison pills that make a plugin panic, and three each that make one loop
    // or hoard memory: copies of real observations with an id of their own and a marker.
    let mut next = sda_testkit::xorshift(20261124);
    let mut kinds: BTreeMap<usize, &str> = BTreeMap::new();
    let (panics, loops, hoards) = (lines.len() / 1000, 3, 3);
    for (kind, n) in [("PANIC", panics), ("LOOP", loops), ("HOARD", hoards)] {
        let mut placed = 0;
        while placed < n {
            let at = (next() % lines.len() as u64) as usize;
            if kinds.insert(at, kind).is_none() {
                placed += 1;
            }
        }
    }
    let poisoned = Scratch::new();
    let mut text = String::new();
    let mut pills: BTreeMap<String, (&str, u64)> = BTreeMap::new();
    for (i, line) in lines.iter().enumerate() {
        if let Some(kind) = kinds.get(&i) {
            let id = format!("poison-{i}");
            let mut record: Value = serde_json::from_str(line).unwrap();
            record["observation_id"] = Value::from(id.clone());
            record["note"] = Value::from(format!("<<{kind}>>"));
            pills.insert(id, (kind, text.len() as u64));
            text.push_str(&record.to_string());
            text.push('\n');
        }
        text.push_str(line);
        text.push('\n');
    }
    poisoned.write("obs.jsonl", &text);
    let guard = |mode: &str, marker: &str, extra: &str| {
        format!("max_faults = 100000\n{extra}\nconfig = {{ mode = \"{mode}\", marker = \"<<{marker}>>\" }}")
    };
    poisoned.write(
        "pipeline.toml",
        pipeline(&[
            ("guard_panic", guard("panic", "PANIC", "")),
            ("guard_loop", guard("loop", "LOOP", "call_timeout_ms = 200")),
            ("guard_hoard", guard("alloc", "HOARD", "max_memory_bytes = 67108864")),
        ]),
    );
    let out = run(poisoned.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "the pipeline never stops: {stderr}");

    let alerts = std::fs::read(poisoned.join("out/alerts.jsonl")).unwrap();
    assert!(alerts == golden_alerts, "the alerts differ from the clean run's");

    let (plugin_faults, others): (Vec<Value>, Vec<Value>) =
        comparable(poisoned.read_jsonl("out/dlq.jsonl")).into_iter().partition(|e| e["error_kind"].as_str().unwrap().starts_with("Plugin"));
    // The pills shift the byte offsets of the lines after them; everything else must match.
    let without_offset = |entries: Vec<Value>| -> Vec<Value> {
        entries
            .into_iter()
            .map(|mut e| {
                e["source"].as_object_mut().unwrap().remove("offset");
                e
            })
            .collect()
    };
    let (others, golden_dead_letters) = (without_offset(others), without_offset(golden_dead_letters));
    assert_eq!(others.len(), golden_dead_letters.len(), "dead letters other than the poison pills");
    if let Some((got, want)) = others.iter().zip(&golden_dead_letters).find(|(a, b)| a != b) {
        panic!("a dead letter differs from the clean run's:\n{got}\n{want}");
    }
    assert_eq!(plugin_faults.len(), pills.len(), "each poison pill is dead-lettered exactly once");
    for entry in &plugin_faults {
        let key = entry["key"].as_str().unwrap();
        let (kind, offset) = pills.get(key).unwrap_or_else(|| panic!("{key} is not a poison pill: {entry}"));
        let (operator, error_kind) = match *kind {
            "PANIC" => ("guard_panic", "PluginTrap"),
            "LOOP" => ("guard_loop", "PluginTimeout"),
            _ => ("guard_hoard", "PluginMemory"),
        };
        assert_eq!(entry["operator"], operator, "{entry}");
        assert_eq!(entry["error_kind"], error_kind, "{entry}");
        assert_eq!(entry["stage"], "operator", "{entry}");
        assert_eq!(entry["source"]["offset"], *offset, "{entry}");
        assert_eq!(entry["source"]["file"].as_str().map(|f| f.ends_with("obs.jsonl")), Some(true), "{entry}");
        assert!(entry["plugin_digest"].as_str().is_some_and(|d| d.starts_with("sha256:")), "{entry}");
        assert!(entry["payload"].as_str().unwrap().contains(&format!("<<{kind}>>")), "{entry}");
    }
    let keys: std::collections::BTreeSet<&str> = plugin_faults.iter().map(|e| e["key"].as_str().unwrap()).collect();
    assert_eq!(keys.len(), pills.len());
}
