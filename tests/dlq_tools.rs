//! The dead-letter tools for real: `dlq ls|show|stats` on a real run's DLQ, and `reprocess` (and `sda-reprocess`) re-injecting into a file source and a Kafka topic, once.

use sda_testkit::kafka::{Isolation, Tansu, group_consumer_table, producer_config, unique_group, unique_topic};
use sda_testkit::pipeline::quoted;
use sda_testkit::{PipelineToml, Scratch, plugins};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

fn sda(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sda-pipeline"))
        .current_dir(dir)
        .args(args)
        .env("SDA_CACHE_DIR", Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache"))
        .env("SDA_LOG", "warn")
        .output()
        .expect("running sda-pipeline")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn ok(out: Output) -> String {
    assert_eq!(out.status.code(), Some(0), "{}{}", text(&out.stdout), text(&out.stderr));
    text(&out.stdout)
}

/// `in.jsonl -> guard (faulty, `mode`) -> out/out.jsonl`, DLQ in `out/dlq.jsonl`.
fn guarded_pipeline(scratch: &Scratch, guard: &str) {
    let toml = PipelineToml::new("tools")
        .lines("sources.obs", "type = \"file\"\npath = \"in.jsonl\"\nkey_field = \"id\"\nevent_time_field = \"t\"")
        .operator("guard", plugins::FAULTY, &["obs"])
        .lines("operators.guard", guard)
        .file_sink("out", &["guard"], "out/out.jsonl")
        .file_dlq("out/dlq.jsonl");
    scratch.write("pipeline.toml", toml.to_string());
}

/// Twenty records, those at `marked` carrying the marker `POISON`, and one line that is not JSON after the fifth.
fn input(marked: &[usize]) -> String {
    let mut text = String::new();
    for i in 0..20 {
        let mark = if marked.contains(&i) { ",\"m\":\"POISON\"" } else { "" };
        text.push_str(&format!("{{\"id\":\"r{i:02}\",\"t\":{i}{mark}}}\n"));
        if i == 5 {
            text.push_str("{not json\n");
        }
    }
    text
}

fn output_ids(scratch: &Scratch) -> Vec<String> {
    let mut ids: Vec<String> = scratch.read_jsonl("out/out.jsonl").iter().map(|v| v["id"].as_str().unwrap().to_string()).collect();
    ids.sort();
    ids
}

#[test]
fn dlq_ls_show_and_stats_read_a_real_runs_dead_letters_and_filter_them() {
    let s = Scratch::new();
    s.write("in.jsonl", input(&[3, 9, 14]));
    guarded_pipeline(&s, "config = { mode = \"reject\" }");
    ok(sda(s.path(), &["run", "--quiet"]));

    let ls = ok(sda(s.path(), &["dlq", "ls"]));
    assert!(ls.contains("4 of 4 entries"), "{ls}");
    assert!(ls.contains("Deserialization") && ls.contains("Validation"), "{ls}");
    let only = ok(sda(s.path(), &["dlq", "ls", "--error-kind", "validation", "--operator", "guard"]));
    assert!(only.contains("3 of 4 entries") && !only.contains("Deserialization"), "{only}");
    for key in ["r03", "r09", "r14"] {
        assert!(only.contains(key), "{only}");
    }
    let offset_of_r09 = input(&[3, 9, 14]).find("{\"id\":\"r09\"").unwrap();
    let one = ok(sda(s.path(), &["dlq", "ls", "--source-offset", &format!("{offset_of_r09}..{offset_of_r09}")]));
    assert!(one.contains("1 of 4 entries") && one.contains("r09"), "{one}");
    let none = ok(sda(s.path(), &["dlq", "ls", "--until", "2000-01-01T00:00:00Z"]));
    assert!(none.contains("0 of 4 entries"), "{none}");

    let stats = ok(sda(s.path(), &["dlq", "stats"]));
    assert!(stats.contains("4 of 4 entries"), "{stats}");
    let line =
        |name: &str| stats.lines().find(|l| l.trim_start().starts_with(name)).map(|l| l.split_whitespace().last().unwrap().to_string());
    assert_eq!(line("Validation").as_deref(), Some("3"), "{stats}");
    assert_eq!(line("Deserialization").as_deref(), Some("1"), "{stats}");
    assert_eq!(line("guard").as_deref(), Some("3"), "{stats}");
    assert!(stats.contains("by hour of failure (UTC):"), "{stats}");

    // Entry 2 is r03's (the bad line of batch order comes at its offset, after r03).
    let index = ls.lines().find(|l| l.contains("r03")).unwrap().split_whitespace().next().unwrap().to_string();
    let show = ok(sda(s.path(), &["dlq", "show", "--index", &index]));
    assert!(show.contains("error_kind      Validation") && show.contains("operator        guard"), "{show}");
    assert!(show.contains("{\"id\":\"r03\",\"t\":3,\"m\":\"POISON\"}"), "the payload exactly as it was: {show}");
    assert!(show.contains("plugin_digest   sha256:"), "{show}");

    // Without the pipeline file, from the DLQ file itself.
    let direct = ok(sda(s.path(), &["dlq", "ls", "nonexistent.toml", "--dlq-file", "out/dlq.jsonl"]));
    assert!(direct.contains("4 of 4 entries"), "{direct}");

    let bad_kind = sda(s.path(), &["dlq", "ls", "--error-kind", "Trap"]);
    assert_eq!(bad_kind.status.code(), Some(1));
    assert!(
        text(&bad_kind.stderr).contains("unknown error kind `Trap`; the kinds are Deserialization, Validation"),
        "{}",
        text(&bad_kind.stderr)
    );
    let missing = sda(s.path(), &["dlq", "show", "--index", "99"]);
    assert!(text(&missing.stderr).contains("there is no entry 99: the DLQ holds 4"), "{}", text(&missing.stderr));

    // An entry from a newer host is refused, naming where it is, never misread.
    s.append("out/dlq.jsonl", "{\"schema_version\":2,\"failed_at\":\"2027-01-01T00:00:00Z\"}\n");
    let newer = sda(s.path(), &["dlq", "ls"]);
    assert_eq!(newer.status.code(), Some(1));
    let stderr = text(&newer.stderr);
    assert!(stderr.contains("out/dlq.jsonl:5") && stderr.contains("schema version 2") && stderr.contains("upgrade this tool"), "{stderr}");
    let reprocess = sda(s.path(), &["reprocess", "--dry-run"]);
    assert!(text(&reprocess.stderr).contains("schema version 2"), "{}", text(&reprocess.stderr));
}

/// Turns on deduplication on `id` at the source of a pipeline written by [`guarded_pipeline`].
fn with_source_dedup(scratch: &Scratch) {
    let toml = std::fs::read_to_string(scratch.join("pipeline.toml")).unwrap();
    let toml = toml.replace("[operators.guard]", "[sources.obs.dedup]\nmax_entries = 1000\n[operators.guard]");
    scratch.write("pipeline.toml", toml);
}

#[test]
fn reprocess_after_the_fix_delivers_the_missing_records_once_and_a_second_run_injects_nothing() {
    reprocess_round_trip(false);
}

/// The source remembers every key it passed on; a dead-lettered record's key is
/// forgotten, or its re-injection would be dropped as a repeat.
#[test]
fn reprocess_works_with_source_deduplication_on() {
    reprocess_round_trip(true);
}

fn reprocess_round_trip(source_dedup: bool) {
    let s = Scratch::new();
    let marked = [2, 11, 17];
    s.write("in.jsonl", input(&marked));
    let configure = |guard: &str| {
        guarded_pipeline(&s, guard);
        if source_dedup {
            with_source_dedup(&s);
        }
    };
    configure("config = { mode = \"panic\" }");
    ok(sda(s.path(), &["run", "--quiet"]));
    let delivered = output_ids(&s);
    assert_eq!(delivered.len(), 17);
    let dlq = s.read_jsonl("out/dlq.jsonl");
    assert_eq!(dlq.iter().filter(|e| e["error_kind"] == "PluginTrap").count(), 3);

    // The dry run lists what it would do and changes nothing.
    let before: Vec<Vec<u8>> = ["in.jsonl", "out/dlq.jsonl"].iter().map(|f| std::fs::read(s.join(f)).unwrap()).collect();
    let dry = ok(sda(s.path(), &["reprocess", "--dry-run", "--error-kind", "PluginTrap"]));
    assert!(dry.contains("3 entries selected (PluginTrap 3); 3 to re-inject"), "{dry}");
    assert!(dry.contains("inject -> in.jsonl") && dry.contains("PluginTrap in `process`: wasm trap"), "{dry}");
    let after: Vec<Vec<u8>> = ["in.jsonl", "out/dlq.jsonl"].iter().map(|f| std::fs::read(s.join(f)).unwrap()).collect();
    assert!(before == after, "a dry run changed a file");
    assert!(!s.join("dlq-reprocessed.jsonl").exists(), "a dry run wrote the ledger");

    // Fix the cause (the guard no longer trips on these records), then re-inject the plugin faults only.
    configure("config = { mode = \"panic\", marker = \"NOTHING-CARRIES-THIS\" }");
    let out = Command::new(env!("CARGO_BIN_EXE_sda-reprocess"))
        .current_dir(s.path())
        .args(["--error-kind", "PluginTrap", "--rate", "0"])
        .output()
        .unwrap();
    let stdout = ok(out);
    assert!(stdout.contains("re-injected 3 entries"), "{stdout}");
    assert_eq!(s.read_jsonl("dlq-reprocessed.jsonl").len(), 3);
    let lines = std::fs::read_to_string(s.join("in.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 21 + 3, "the Deserialization entry was filtered out, the rest appended");

    // The pipeline resumes from its checkpoint and reads the appended records.
    ok(sda(s.path(), &["run", "--quiet"]));
    let all: Vec<String> = (0..20).map(|i| format!("r{i:02}")).collect();
    assert_eq!(output_ids(&s), all, "every record delivered exactly once");

    // Again: nothing new to inject, and nothing is.
    let again = ok(sda(s.path(), &["reprocess", "--error-kind", "PluginTrap"]));
    assert!(again.contains("0 to re-inject") && again.contains("skipped 3: already re-injected"), "{again}");
    assert_eq!(std::fs::read_to_string(s.join("in.jsonl")).unwrap(), lines);
    // Without the filter the source-level failure is selected too, and would be re-injected as it is.
    let all_dry = ok(sda(s.path(), &["reprocess", "--dry-run"]));
    assert!(all_dry.contains("4 entries selected") && all_dry.contains("1 to re-inject"), "{all_dry}");
}

#[test]
fn reprocess_into_a_kafka_topic_keeps_key_and_headers_and_the_fixed_pipeline_delivers_them() {
    use rdkafka::message::{Header, OwnedHeaders};
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let tansu = Tansu::start();
    let s = Scratch::new();
    let topic = unique_topic("reinject");
    tansu.create_topic(&topic, 1);
    let producer: BaseProducer = producer_config(&tansu.brokers()).create().unwrap();
    for i in 0..12 {
        let value = format!("{{\"n\":{i}{}}}", if i % 5 == 2 { ",\"m\":\"POISON\"" } else { "" });
        let key = format!("k{i:02}");
        let headers = OwnedHeaders::new().insert(Header { key: "sensor", value: Some(format!("radar-{i}").as_bytes()) });
        producer.send(BaseRecord::to(&topic).key(&key).payload(&value).headers(headers)).unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    let brokers = tansu.brokers();
    let consumer = group_consumer_table();
    let group = unique_group("reinject");
    let write = |marker: &str| {
        let toml = PipelineToml::new("reinject")
            .kafka_source("obs", &brokers, &topic, &group)
            .lines("sources.obs.librdkafka", &consumer)
            .operator("guard", plugins::FAULTY, &["obs"])
            .set("operators.guard", "config", format!("{{ mode = \"panic\", marker = {} }}", quoted(marker)))
            // The test plugin says it needs every record (so that it can run as several instances); it relates none.
            .set("operators.guard", "per_partition", true)
            .file_sink("out", &["guard"], "out/out.jsonl")
            .file_dlq("out/dlq.jsonl");
        s.write("pipeline.toml", toml.to_string())
    };
    write("POISON");
    ok(sda(s.path(), &["run", "--quiet", "--stop-at-end"]));
    assert_eq!(s.read_jsonl("out/out.jsonl").len(), 10);

    write("NOTHING-CARRIES-THIS");
    let stdout = ok(sda(s.path(), &["reprocess", "--error-kind", "PluginTrap"]));
    assert!(stdout.contains("re-injected 2 entries"), "{stdout}");
    let records = tansu.consume_all(&topic, Isolation::ReadCommitted, Duration::from_secs(60));
    assert_eq!(records.len(), 14);
    for (record, i) in records[12..].iter().zip([2, 7]) {
        assert_eq!(record.key_str(), format!("k{i:02}"));
        assert_eq!(record.value_str(), format!("{{\"n\":{i},\"m\":\"POISON\"}}"));
        assert_eq!(record.header("sensor"), Some(format!("radar-{i}").as_bytes()));
    }
    // The fixed pipeline, resuming from its checkpoint, delivers exactly the two missing records.
    ok(sda(s.path(), &["run", "--quiet", "--stop-at-end"]));
    let outputs: Vec<Value> = s.read_jsonl("out/out.jsonl");
    let mut ns: Vec<i64> = outputs.iter().map(|v| v["n"].as_i64().unwrap()).collect();
    ns.sort();
    assert_eq!(ns, (0..12).collect::<Vec<_>>());
}
