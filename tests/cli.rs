//! The `sda-pipeline` binary, run for real on real files: outputs, dead letters, faults, signals, follow mode.

use sda_testkit::{Scratch, plugins};
use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn sda(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sda-pipeline"));
    cmd.current_dir(dir).env("SDA_CACHE_DIR", Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache"));
    cmd
}

fn run(dir: &Path, args: &[&str]) -> Output {
    sda(dir).args(args).output().expect("running sda-pipeline")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A pipeline: file source -> `operators` (each `(name, plugin, config)`, chained) -> file sink.
fn chain_pipeline(scratch: &Scratch, operators: &[(&str, &str, &str)]) {
    let mut toml = String::from(
        "version = 1\nname = \"test\"\n\n[sources.obs]\ntype = \"file\"\npath = \"in.jsonl\"\nkey_field = \"id\"\nevent_time_field = \
            \"t\"\n",
    );
    let mut previous = "obs".to_string();
    for (name, plugin, config) in operators {
        toml.push_str(&format!("\n[operators.{name}]\nplugin = {plugin:?}\ninputs = [\"{previous}\"]\nretry_backoff_ms = 1\n{config}\n"));
        previous = name.to_string();
    }
    toml.push_str(&format!(
        "\n[sinks.out]\ntype = \"file\"\ninputs = [\"{previous}\"]\npath = \"out/out.jsonl\"\n\n[dlq]\ntype = \"file\"\npath = \
            \"out/dlq.jsonl\"\n"
    ));
    scratch.write("pipeline.toml", toml);
}

fn lines(n: usize, marker_at: &[usize]) -> String {
    (0..n)
        .map(|i| {
            let mark = if marker_at.contains(&i) { ",\"m\":\"POISON\"" } else { "" };
            format!("{{\"id\":\"r{i}\",\"t\":{i}{mark}}}\n")
        })
        .collect()
}

/// Byte offset of line `n` (0-based) in `text`.
fn offset_of_line(text: &str, n: usize) -> u64 {
    text.split_inclusive('\n').take(n).map(|l| l.len() as u64).sum()
}

#[test]
fn runs_a_chain_of_plugins_and_prints_a_summary() {
    let s = Scratch::new();
    s.write("in.jsonl", lines(5, &[]));
    chain_pipeline(&s, &[("pass", plugins::PASSTHROUGH, ""), ("count", plugins::COUNTER, "")]);
    let out = run(s.path(), &["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("pipeline `test` finished in"), "{stdout}");
    assert!(stdout.contains("5 records read"), "{stdout}");
    assert!(stdout.contains("sink `out`: 5 records -> out/out.jsonl"), "{stdout}");
    let outputs = s.read_jsonl("out/out.jsonl");
    assert_eq!(outputs.len(), 5);
    assert_eq!(outputs[4], serde_json::json!({"key": "r4", "count": 1}));
}

#[test]
fn malformed_lines_are_dead_lettered_with_their_offsets_and_the_rest_flows() {
    let s = Scratch::new();
    let input = "{\"id\":\"a\",\"t\":1}\n{\"id\": oops}\n\u{1}binary\n{\"id\":\"b\",\"t\":2}\n";
    s.write("in.jsonl", input);
    chain_pipeline(&s, &[("pass", plugins::PASSTHROUGH, "")]);
    let out = run(s.path(), &["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(s.read_jsonl("out/out.jsonl").len(), 2);
    let dlq = s.read_jsonl("out/dlq.jsonl");
    assert_eq!(dlq.len(), 2);
    assert_eq!(dlq[0]["error_kind"], "Deserialization");
    assert_eq!(dlq[0]["stage"], "source");
    assert_eq!(dlq[0]["operator"], "obs");
    assert_eq!(dlq[0]["source"]["offset"], offset_of_line(input, 1));
    assert_eq!(dlq[0]["payload"], "{\"id\": oops}");
    assert_eq!(dlq[1]["source"]["offset"], offset_of_line(input, 2));
    assert_eq!(dlq[0]["schema_version"], 1);
    assert!(text(&out.stdout).contains("dead-letter queue: 2 entries"));
}

#[test]
fn a_permanent_failure_is_dead_lettered_with_the_offset_of_its_source_line() {
    let s = Scratch::new();
    let input = lines(6, &[3]);
    s.write("in.jsonl", &input);
    // The failing operator is second: its input offset is traced back through the first.
    chain_pipeline(&s, &[("pass", plugins::PASSTHROUGH, ""), ("check", plugins::FAULTY, "config = { mode = \"reject\" }")]);
    let out = run(s.path(), &["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(s.read_jsonl("out/out.jsonl").len(), 5);
    let dlq = s.read_jsonl("out/dlq.jsonl");
    assert_eq!(dlq.len(), 1);
    let entry = &dlq[0];
    assert_eq!(entry["error_kind"], "Validation");
    assert_eq!(entry["operator"], "check");
    assert_eq!(entry["stage"], "operator");
    assert_eq!(entry["key"], "r3");
    assert_eq!(entry["source"]["offset"], offset_of_line(&input, 3));
    let digest = entry["plugin_digest"].as_str().unwrap();
    assert!(digest.starts_with("sha256:") && digest.len() == 71, "{digest}");
    assert_eq!(entry["retry_count"], 0);
}

#[test]
fn transient_failures_are_retried_and_dead_lettered_when_retries_run_out() {
    // Two failures, three retries allowed: delivered, nothing dead-lettered.
    let s = Scratch::new();
    s.write("in.jsonl", lines(4, &[1]));
    chain_pipeline(&s, &[("flaky", plugins::FAULTY, "config = { mode = \"flaky\", transient_failures = 2 }")]);
    let out = run(s.path(), &["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let keys: Vec<Value> = s.read_jsonl("out/out.jsonl").iter().map(|v| v["id"].clone()).collect();
    assert_eq!(keys.len(), 4, "{keys:?}");
    assert!(keys.contains(&Value::from("r1")));
    assert!(s.read_jsonl("out/dlq.jsonl").is_empty());

    // Five failures, one retry allowed: dead-lettered after one retry.
    let s = Scratch::new();
    s.write("in.jsonl", lines(4, &[1]));
    chain_pipeline(&s, &[("flaky", plugins::FAULTY, "max_retries = 1\nconfig = { mode = \"flaky\", transient_failures = 5 }")]);
    let out = run(s.path(), &["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(s.read_jsonl("out/out.jsonl").len(), 3);
    let dlq = s.read_jsonl("out/dlq.jsonl");
    assert_eq!(dlq.len(), 1);
    assert_eq!(dlq[0]["error_kind"], "RetriesExhausted");
    assert_eq!(dlq[0]["retry_count"], 1);
    assert_eq!(dlq[0]["key"], "r1");
}

#[test]
fn discards_are_counted_not_dead_lettered() {
    let s = Scratch::new();
    s.write("in.jsonl", lines(5, &[0, 2]));
    chain_pipeline(&s, &[("late", plugins::FAULTY, "config = { mode = \"discard\" }")]);
    let out = run(s.path(), &["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(s.read_jsonl("out/out.jsonl").len(), 3);
    assert!(s.read_jsonl("out/dlq.jsonl").is_empty());
    let stdout = text(&out.stdout);
    assert!(stdout.contains("discarded: 2") && stdout.contains("late: late 2"), "{stdout}");
}

/// A plugin that faults on one record costs that record, not the run: the
/// record is dead-lettered with the fault kind, the plugin's digest and the
/// offset of its source line; the records around it are delivered. With
/// `max_faults = 0` the first fault stops the run instead, with exit code 1 and
/// an error naming the operator and the fault: the host itself never crashes.
fn assert_contained(mode: &str, extra: &str, kind: &str, detail: &str) {
    let s = Scratch::new();
    let input = lines(3, &[1]);
    s.write("in.jsonl", &input);
    let config = format!("{extra}\nconfig = {{ mode = \"{mode}\" }}");
    chain_pipeline(&s, &[("pass", plugins::PASSTHROUGH, ""), ("bad", plugins::FAULTY, &config)]);
    let out = run(s.path(), &["run"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let keys: Vec<Value> = s.read_jsonl("out/out.jsonl").iter().map(|v| v["id"].clone()).collect();
    assert_eq!(keys, [Value::from("r0"), Value::from("r2")]);
    let dlq = s.read_jsonl("out/dlq.jsonl");
    assert_eq!(dlq.len(), 1, "{dlq:?}");
    let entry = &dlq[0];
    assert_eq!(entry["error_kind"], kind);
    assert_eq!(entry["operator"], "bad");
    assert_eq!(entry["stage"], "operator");
    assert_eq!(entry["key"], "r1");
    assert_eq!(entry["payload"], input.lines().nth(1).unwrap());
    assert_eq!(entry["source"]["offset"], offset_of_line(&input, 1));
    assert!(entry["plugin_digest"].as_str().unwrap().starts_with("sha256:"), "{entry}");
    assert!(entry["error_message"].as_str().unwrap().contains(detail), "{entry}");
    assert!(stderr.contains("record isolated and dead-lettered"), "{stderr}");

    let s = Scratch::new();
    s.write("in.jsonl", lines(3, &[1]));
    let config = format!("{extra}\nmax_faults = 0\nconfig = {{ mode = \"{mode}\" }}");
    chain_pipeline(&s, &[("pass", plugins::PASSTHROUGH, ""), ("bad", plugins::FAULTY, &config)]);
    let started = Instant::now();
    let out = run(s.path(), &["run"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "the host exits with an error, not a crash: {stderr}");
    assert!(stderr.contains("error: operator `bad` stopped: circuit breaker open: 1 plugin faults"), "{stderr}");
    assert!(stderr.contains(&format!("operator `bad` faulted ({kind})")), "{stderr}");
    assert!(stderr.contains(detail), "{stderr}");
    assert!(stderr.contains("source `obs` offsets 0 to"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[test]
fn a_panicking_plugin_is_contained() {
    assert_contained("panic", "", "PluginTrap", "poison record `r1`");
}

#[test]
fn a_looping_plugin_is_contained() {
    assert_contained("loop", "call_timeout_ms = 300", "PluginTimeout", "deadline of 300 ms");
}

#[test]
fn an_allocating_plugin_is_contained() {
    assert_contained("alloc", "max_memory_bytes = 67108864", "PluginMemory", "the cap is 67108864 bytes");
}

#[test]
fn a_plugin_cannot_reach_files_environment_or_arguments() {
    let s = Scratch::new();
    s.write("in.jsonl", lines(1, &[]));
    chain_pipeline(&s, &[("escape", plugins::FAULTY, "config = { mode = \"escape\" }")]);
    let out = sda(s.path()).arg("run").env("SDA_SECRET", "leak").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let attempts = &s.read_jsonl("out/out.jsonl")[0];
    for attempt in attempts.as_array().unwrap() {
        let outcome = attempt[1].as_str().unwrap();
        assert!(outcome.starts_with("denied"), "{attempt}");
    }
}

#[test]
fn plugin_stderr_is_logged_with_the_operator_name() {
    let s = Scratch::new();
    s.write("in.jsonl", lines(2, &[1]));
    chain_pipeline(&s, &[("noisy", plugins::FAULTY, "config = { mode = \"panic\" }")]);
    let out = run(s.path(), &["run"]);
    let stderr = text(&out.stderr);
    assert!(
        stderr.lines().any(|l| l.contains("poison record `r1`") && l.contains("operator=noisy") && l.contains("stream=\"stderr\"")),
        "{stderr}"
    );
}

#[test]
fn an_init_error_stops_before_any_record_is_read() {
    let s = Scratch::new();
    s.write("in.jsonl", lines(2, &[]));
    chain_pipeline(&s, &[("picky", plugins::FAULTY, "config = { mode = \"reject-config\" }")]);
    let out = run(s.path(), &["run"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("error: operator `picky`: `init` rejected the configuration: mode `reject-config`"),
        "{}",
        text(&out.stderr)
    );
    assert!(!s.join("out/out.jsonl").exists() || s.read_jsonl("out/out.jsonl").is_empty());
}

fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn spawn(dir: &Path, args: &[&str]) -> Child {
    sda(dir).args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill").args([&format!("-{name}"), &child.id().to_string()]).status().unwrap();
    assert!(status.success());
}

#[test]
fn follow_mode_picks_up_appended_lines_and_sigint_stops_cleanly() {
    let s = Scratch::new();
    s.write("in.jsonl", lines(3, &[]));
    chain_pipeline(&s, &[("count", plugins::COUNTER, "")]);
    let child = spawn(s.path(), &["run", "--follow"]);
    wait_for("the first lines", || s.read_jsonl("out/out.jsonl").len() == 3);
    s.append("in.jsonl", "{\"id\":\"r0\",\"t\":9}\n{\"id\":\"late\",");
    wait_for("the appended line", || s.read_jsonl("out/out.jsonl").len() == 4);
    // The partial line is not read (nor dead-lettered) until it is complete.
    s.append("in.jsonl", "\"t\":10}\n");
    wait_for("the completed line", || s.read_jsonl("out/out.jsonl").len() == 5);
    signal(&child, "INT");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("stopped (interrupted)"), "{}", text(&out.stdout));
    let outputs = s.read_jsonl("out/out.jsonl");
    assert_eq!(outputs[3], serde_json::json!({"key": "r0", "count": 2}));
    assert!(s.read_jsonl("out/dlq.jsonl").is_empty());
}

#[test]
fn sigterm_also_stops_cleanly() {
    let s = Scratch::new();
    s.write("in.jsonl", lines(2, &[]));
    chain_pipeline(&s, &[("pass", plugins::PASSTHROUGH, "")]);
    let child = spawn(s.path(), &["run", "--follow"]);
    wait_for("output", || s.read_jsonl("out/out.jsonl").len() == 2);
    signal(&child, "TERM");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn plan_shows_the_graph_digests_and_wit_versions() {
    let s = Scratch::new();
    s.write("in.jsonl", lines(1, &[]));
    chain_pipeline(&s, &[("pass", plugins::PASSTHROUGH, ""), ("count", plugins::COUNTER, "")]);
    let out = run(s.path(), &["plan"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("obs -> pass -> count -> out (sink)"), "{stdout}");
    assert!(stdout.contains("WIT     sda:operator@0.2.0"), "{stdout}");
    assert_eq!(stdout.matches("digest  sha256:").count(), 2, "{stdout}");
}

#[test]
fn every_command_has_help() {
    let s = Scratch::new();
    for args in [&["--help"][..], &["run", "--help"], &["validate", "--help"], &["plan", "--help"]] {
        let out = run(s.path(), args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(text(&out.stdout).contains("Usage:"), "{args:?}");
    }
}

#[test]
fn a_missing_pipeline_file_is_a_clear_error() {
    let s = Scratch::new();
    let out = run(s.path(), &["run", "nowhere.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("cannot read pipeline file `nowhere.toml`"), "{}", text(&out.stderr));
}

/// A scratch copy of the repository's own `pipeline.toml`, sample data and plugins, as `make run` runs them.
fn sample_pipeline() -> Scratch {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let s = Scratch::new();
    s.write("pipeline.toml", std::fs::read(root.join("pipeline.toml")).unwrap());
    for entry in std::fs::read_dir(root.join("data")).unwrap() {
        let path = entry.unwrap().path();
        s.write(&format!("data/{}", path.file_name().unwrap().to_string_lossy()), std::fs::read(&path).unwrap());
    }
    for (name, path) in plugins::ALL {
        s.write(&format!("plugins/dist/{}.wasm", name.replace('-', "_")), std::fs::read(path).unwrap());
    }
    s
}

fn alert_ids(alerts: &[Value]) -> Vec<String> {
    alerts.iter().map(|a| a["alert_id"].as_str().unwrap().to_string()).collect()
}

/// The sample pipeline: the correlator and classifier must raise exactly the alerts bundled beside the data.
#[test]
fn the_sample_pipeline_runs() {
    let s = sample_pipeline();
    let out = run(s.path(), &["run", "pipeline.toml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("pipeline `conjunction-alerts` finished"), "{stdout}");
    // The alerts the generator's reference computed for this data, in order.
    let expected: Vec<Value> = s.read_jsonl("data/observations.expected-alerts.jsonl");
    let alerts = s.read_jsonl("out/alerts.jsonl");
    assert_eq!(alert_ids(&alerts), alert_ids(&expected));
    for severity in ["RED", "YELLOW"] {
        assert!(alerts.iter().any(|a| a["severity"] == severity), "the sample must raise {severity} alerts");
    }
    assert!(stdout.contains(&format!("sink `alerts`: {} records", alerts.len())), "{stdout}");
}

/// Observations from wrong clocks (a year ahead in mid-stream, the largest s64 in mid-stream and as
/// the very first line) are dead-lettered as `Validation` and silence nothing: the alerts are those
/// of the data without them.
#[test]
fn observations_from_a_wrong_clock_are_dead_lettered_and_the_alerts_are_those_without_them() {
    let s = sample_pipeline();
    let data = std::fs::read_to_string(s.join("data/observations.jsonl")).unwrap();
    let lines: Vec<&str> = data.lines().collect();
    let epoch_of = |line: &str| -> i64 {
        let value: Value = serde_json::from_str(line).unwrap();
        value["epoch_ms"].as_i64().unwrap()
    };
    let with_epoch = |line: &str, id: &str, epoch: i64| {
        let mut value: Value = serde_json::from_str(line).unwrap();
        value["observation_id"] = Value::from(id);
        value["epoch_ms"] = Value::from(epoch);
        value.to_string()
    };
    let year_ms = 365 * 24 * 3_600_000_i64;
    let (third, two_thirds) = (lines.len() / 3, 2 * lines.len() / 3);
    let mut bad = lines.clone();
    let year_ahead = with_epoch(lines[third], "wrong-clock-year", epoch_of(lines[third]) + year_ms);
    let largest = with_epoch(lines[two_thirds], "wrong-clock-max", i64::MAX);
    let first = with_epoch(lines[0], "wrong-clock-first", i64::MAX);
    bad.insert(two_thirds, &largest);
    bad.insert(third, &year_ahead);
    bad.insert(0, &first);
    s.write("data/observations.jsonl", bad.join("\n") + "\n");
    let out = run(s.path(), &["run", "pipeline.toml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let expected: Vec<Value> = s.read_jsonl("data/observations.expected-alerts.jsonl");
    let alerts = s.read_jsonl("out/alerts.jsonl");
    assert_eq!(alert_ids(&alerts), alert_ids(&expected), "one wrong clock must not silence the stream");
    let dlq = s.read_jsonl("out/dlq.jsonl");
    let refused: Vec<(String, String)> = dlq
        .iter()
        .filter(|e| e["payload"].as_str().unwrap().contains("wrong-clock"))
        .map(|e| (e["error_kind"].as_str().unwrap().to_string(), e["error_message"].as_str().unwrap_or_default().to_string()))
        .collect();
    assert_eq!(refused.len(), 3, "{dlq:?}");
    assert!(refused.iter().all(|(kind, _)| kind == "Validation"), "{refused:?}");
    assert!(refused[0].1.contains("year 9999") || refused[0].1.contains("253402300799999"), "{refused:?}");
    assert!(refused[1].1.contains("max_ahead_ms"), "{refused:?}");
}

/// A checkpoint resumes only into the input file it was taken of: a file appended to resumes after
/// what was read; one replaced by other bytes, or truncated, is refused with the reason, and nothing
/// is read or written, until `--allow-fresh-start` reads the new file from its start.
#[test]
fn a_replaced_or_truncated_input_file_is_refused_unless_a_fresh_start_is_asked_for() {
    let s = Scratch::new();
    let first = lines(50, &[]);
    s.write("in.jsonl", &first);
    chain_pipeline(&s, &[("pass", plugins::PASSTHROUGH, "")]);
    s.append("pipeline.toml", "\n[checkpoint]\ndir = \"state\"\n");
    let out = run(s.path(), &["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(s.read_jsonl("out/out.jsonl").len(), 50);

    let more: String = (50..60).map(|i| format!("{{\"id\":\"r{i}\",\"t\":{i}}}\n")).collect();
    s.append("in.jsonl", &more);
    let out = run(s.path(), &["run"]);
    assert_eq!(out.status.code(), Some(0), "appended to, the file resumes: {}", text(&out.stderr));
    assert_eq!(s.read_jsonl("out/out.jsonl").len(), 60, "only the appended lines are read");

    let refused = |what: &str, needle: &str| {
        let out = run(s.path(), &["run"]);
        let stderr = text(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "{what}: {stderr}");
        assert!(stderr.contains(needle) && stderr.contains("in.jsonl") && stderr.contains("--allow-fresh-start"), "{what}: {stderr}");
        assert_eq!(s.read_jsonl("out/out.jsonl").len(), 60, "{what}: nothing read, nothing written");
    };
    // Replaced by as many bytes, other ones: the length alone would not tell.
    let whole = first.clone() + &more;
    let replaced = whole.replace("\"r", "\"x");
    s.write("in.jsonl", &replaced);
    refused("replaced", "no longer holds what it held before byte");
    s.write("in.jsonl", &whole[..whole.len() / 3]);
    refused("truncated", "the file now holds only");

    // Asked for, a fresh start reads the new file from its start. (Under exactly-once, outputs
    // equal to what the sink already holds would count as delivered: these are all new.)
    s.write("in.jsonl", &replaced);
    let out = run(s.path(), &["run", "--allow-fresh-start"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let ids: Vec<String> = s.read_jsonl("out/out.jsonl").iter().map(|v| v["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(ids.len(), 120, "the new file read from its start");
    assert!(ids[60..].iter().all(|id| id.starts_with('x')), "{ids:?}");
}

/// Runs `sda-pipeline run` in `dir`; returns its exit code and its peak resident memory (KiB).
fn run_measured(dir: &Path) -> (Option<i32>, String, i64) {
    #[expect(clippy::zombie_processes, reason = "waited for below with wait4, which also gives its resource usage")]
    let child = sda(dir).arg("run").stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let pid = child.id() as libc::pid_t;
    let mut stderr = child.stderr.unwrap();
    let mut errors = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut errors).unwrap();
    let (mut status, mut usage) = (0, unsafe { std::mem::zeroed::<libc::rusage>() });
    // SAFETY: waits for our own child, writing into the two locals.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid, "wait4: {}", std::io::Error::last_os_error());
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    (code, errors, usage.ru_maxrss)
}

/// One line of 1 GiB in the input: dead-lettered as `RecordTooLarge` with its size and a bounded
/// prefix, every other line delivered, and the process's peak memory within twice that of the same
/// run without the line (it is skipped without ever being held whole).
#[test]
fn a_one_gigabyte_line_is_dead_lettered_without_being_held_whole() {
    use std::io::Write;
    const HUGE: usize = 1 << 30;
    let runs: Vec<(Option<i32>, String, i64, Scratch)> = [false, true]
        .into_iter()
        .map(|with_huge| {
            let s = Scratch::new();
            let input = lines(1000, &[]);
            let (head, tail) = input.split_at(offset_of_line(&input, 500) as usize);
            let mut file = std::io::BufWriter::new(std::fs::File::create(s.join("in.jsonl")).unwrap());
            file.write_all(head.as_bytes()).unwrap();
            if with_huge {
                file.write_all(b"{\"id\":\"huge\",\"t\":1,\"pad\":\"").unwrap();
                let chunk = vec![b'x'; 1 << 20];
                for _ in 0..HUGE >> 20 {
                    file.write_all(&chunk).unwrap();
                }
                file.write_all(b"\"}\n").unwrap();
            }
            file.write_all(tail.as_bytes()).unwrap();
            file.into_inner().unwrap().sync_all().unwrap();
            chain_pipeline(&s, &[("pass", plugins::PASSTHROUGH, "")]);
            if !with_huge {
                // Once unmeasured, so that both measured runs load the compiled plugin from the cache
                // (compiling it takes far more memory than anything measured here).
                let out = run(s.path(), &["run"]);
                assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
                std::fs::remove_dir_all(s.join("out")).unwrap();
                let _ = std::fs::remove_dir_all(s.join("checkpoints"));
                let _ = std::fs::remove_dir_all(s.join("checkpoints-remote"));
            }
            let (code, errors, peak_kib) = run_measured(s.path());
            (code, errors, peak_kib, s)
        })
        .collect();
    for (code, errors, _, s) in &runs {
        assert_eq!(*code, Some(0), "{errors}");
        assert_eq!(s.read_jsonl("out/out.jsonl").len(), 1000, "every other line delivered");
    }
    let (_, _, without_kib, _) = &runs[0];
    let (_, _, with_kib, s) = &runs[1];
    let dlq = s.read_jsonl("out/dlq.jsonl");
    assert_eq!(dlq.len(), 1, "{dlq:?}");
    assert_eq!(dlq[0]["error_kind"], "RecordTooLarge");
    let size = HUGE + "{\"id\":\"huge\",\"t\":1,\"pad\":\"\"}".len();
    assert!(dlq[0]["error_message"].as_str().unwrap().contains(&format!("record of {size} bytes")), "{:?}", dlq[0]);
    assert_eq!(dlq[0]["payload"].as_str().map(str::len), Some(1024), "a bounded prefix");
    assert_eq!(dlq[0]["source"]["offset"], offset_of_line(&lines(1000, &[]), 500));
    println!("peak RSS: {without_kib} KiB without the 1 GiB line, {with_kib} KiB with it");
    assert!(*with_kib <= 2 * *without_kib, "peak RSS {with_kib} KiB with the line, {without_kib} KiB without");
}

fn http_get(address: &str, path: &str) -> Option<(u16, String)> {
    http_get_with(address, path, "")
}

/// `GET path` with `extra_headers` (each line ending in `\r\n`).
fn http_get_with(address: &str, path: &str, extra_headers: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {address}\r\n{extra_headers}Connection: close\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Some((status, body))
}

#[test]
fn the_admin_endpoint_serves_metrics_status_and_health_while_running() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let address = format!("127.0.0.1:{port}");
    let s = Scratch::new();
    s.write("in.jsonl", lines(20, &[3]));
    chain_pipeline(&s, &[("check", plugins::FAULTY, "config = { mode = \"reject\" }"), ("count", plugins::COUNTER, "")]);
    s.append("pipeline.toml", format!("[admin]\nlisten = \"{address}\"\n[checkpoint]\ninterval_ms = 50\n"));
    let child = spawn(s.path(), &["run", "--follow"]);
    wait_for("the admin endpoint", || http_get(&address, "/healthz").is_some_and(|(status, _)| status == 200));
    wait_for("the outputs", || s.read_jsonl("out/out.jsonl").len() == 19);
    wait_for("a checkpoint", || http_get(&address, "/metrics").is_some_and(|(_, body)| body.contains("checkpoint_bytes{task=\"obs-0\"}")));
    let (status, metrics) = http_get(&address, "/metrics").unwrap();
    assert_eq!(status, 200);
    for expected in [
        "records_in_total{source=\"obs\"} 20",
        "records_out_total{sink=\"out\"} 19",
        "dlq_entries_total{error_kind=\"Validation\",operator=\"check\"} 1",
        "recovery_path_total{task=\"obs-0\",path=\"fresh\"} 1",
        "checkpoint_age_seconds{task=\"obs-0\"}",
        "checkpoint_duration_seconds",
    ] {
        assert!(metrics.contains(expected), "`{expected}` missing from /metrics:\n{metrics}");
    }
    let (status, body) = http_get(&address, "/status").unwrap();
    assert_eq!(status, 200);
    let status_json: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status_json["pipeline"], "test");
    assert!(body.contains("obs-0") && body.contains("sha256:"), "{body}");
    signal(&child, "INT");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn source_deduplication_drops_repeated_keys_and_counts_them() {
    let s = Scratch::new();
    s.write(
        "in.jsonl",
        "{\"id\":\"a\",\"t\":1}\n{\"id\":\"b\",\"t\":2}\n{\"id\":\"a\",\"t\":3}\n{\"id\":\"c\",\"t\":4}\n{\"id\":\"b\",\"t\":5}\n",
    );
    chain_pipeline(&s, &[("pass", plugins::PASSTHROUGH, "")]);
    let toml = std::fs::read_to_string(s.join("pipeline.toml")).unwrap();
    s.write("pipeline.toml", toml.replace("event_time_field = \"t\"\n", "event_time_field = \"t\"\ndedup = { max_entries = 100 }\n"));
    let out = run(s.path(), &["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let ids: Vec<Value> = s.read_jsonl("out/out.jsonl").iter().map(|v| v["t"].clone()).collect();
    assert_eq!(ids, vec![Value::from(1), Value::from(2), Value::from(4)], "the first of each key goes through");
    let stdout = text(&out.stdout);
    assert!(stdout.contains("obs: duplicate 2"), "{stdout}");
}

#[test]
fn a_dedup_memory_shorter_than_the_checkpoint_interval_is_warned_about() {
    let s = Scratch::new();
    s.write("in.jsonl", lines(1, &[]));
    chain_pipeline(&s, &[("pass", plugins::PASSTHROUGH, "")]);
    s.append("pipeline.toml", "[sinks.out.dedup]\nmax_age_ms = 1000\n[checkpoint]\ninterval_ms = 30000\n");
    let out = run(s.path(), &["validate"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("warning: sink `out`: `dedup.max_age_ms` (1000 ms) is shorter than two checkpoint intervals"),
        "{}",
        text(&out.stderr)
    );
}

/// One task failing stops the others after their batch in hand, even one following its file for ever:
/// the run ends with the failure instead of waiting on the follower.
#[test]
fn a_failing_task_stops_a_following_one() {
    let s = Scratch::new();
    s.write("calm.jsonl", lines(3, &[]));
    s.write("bad.jsonl", lines(3, &[1]));
    s.write(
        "pipeline.toml",
        format!(
            "version = 1\nname = \"test\"\n\
             [sources.calm]\ntype = \"file\"\npath = \"calm.jsonl\"\nkey_field = \"id\"\nevent_time_field = \"t\"\n\
             [sources.poisoned]\ntype = \"file\"\npath = \"bad.jsonl\"\nkey_field = \"id\"\nevent_time_field = \"t\"\n\
             [operators.pass]\nplugin = {:?}\ninputs = [\"calm\"]\n\
             [operators.bad]\nplugin = {:?}\ninputs = [\"poisoned\"]\nmax_faults = 0\nconfig = {{ mode = \"panic\" }}\n\
             [sinks.out]\ntype = \"file\"\ninputs = [\"pass\", \"bad\"]\npath = \"out/out.jsonl\"\n\
             [dlq]\ntype = \"file\"\npath = \"out/dlq.jsonl\"\n",
            plugins::PASSTHROUGH,
            plugins::FAULTY
        ),
    );
    let mut child = spawn(s.path(), &["run", "--follow"]);
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            panic!("the run kept following `calm.jsonl` after the other task failed");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("error: operator `bad` stopped: circuit breaker open"), "{}", text(&out.stderr));
}

/// Under a steady stream of bad lines the file DLQ closes small segments, deletes the ones whose
/// entries all expired, and keeps every entry younger than `max_age_ms`; meanwhile the growth
/// alert turns the pipeline `degraded` (not down) and says why.
#[test]
fn the_file_dlq_rotates_under_load_keeps_every_unexpired_entry_and_alerts_on_growth() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let address = format!("127.0.0.1:{port}");
    let s = Scratch::new();
    s.write("in.jsonl", "");
    chain_pipeline(&s, &[("pass", plugins::PASSTHROUGH, "")]);
    let max_age = Duration::from_millis(1500);
    let toml = std::fs::read_to_string(s.join("pipeline.toml")).unwrap();
    s.write(
        "pipeline.toml",
        toml.replace(
            "path = \"out/dlq.jsonl\"\n",
            &format!("path = \"out/dlq.jsonl\"\nmax_bytes = 4096\nmax_age_ms = {}\ngrowth_alert_per_minute = 100\n", max_age.as_millis()),
        ) + &format!("[admin]\nlisten = \"{address}\"\n[checkpoint]\ninterval_ms = 100\n"),
    );
    let child = spawn(s.path(), &["run", "--follow"]);
    wait_for("the admin endpoint", || http_get(&address, "/healthz").is_some_and(|(status, body)| status == 200 && body.starts_with("ok")));

    // Six seconds of load: 40 bad lines and one good one every 100 ms.
    let mut written: Vec<(Instant, u64)> = Vec::new();
    let mut offset = 0u64;
    let mut degraded = None;
    for round in 0..60 {
        let mut chunk = String::new();
        for i in 0..40 {
            written.push((Instant::now(), offset + chunk.len() as u64));
            chunk.push_str(&format!("not json, round {round} line {i}\n"));
        }
        chunk.push_str(&format!("{{\"id\":\"good-{round}\",\"t\":{round}}}\n"));
        offset += chunk.len() as u64;
        s.append("in.jsonl", chunk);
        if degraded.is_none() && round >= 10 {
            degraded = http_get(&address, "/healthz").filter(|(_, body)| body.starts_with("degraded"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    wait_for("every good line", || s.read_jsonl("out/out.jsonl").len() == 60);
    let (status, body) = degraded.expect("the pipeline turned degraded while the DLQ grew");
    assert_eq!(status, 200, "degraded is not down");
    assert!(body.contains("dead letters in the last minute, over the alert threshold of 100"), "{body}");
    let (_, metrics) = http_get(&address, "/metrics").unwrap();
    assert!(metrics.contains("dlq_growth_per_minute "), "{metrics}");
    signal(&child, "INT");
    let out = child.wait_with_output().unwrap();
    let end = Instant::now();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    let path = s.join("out/dlq.jsonl");
    let segments = sda_host::dlq::file::closed_segments(&path).unwrap();
    assert!(segments.len() >= 3, "{segments:?}");
    assert!(segments[0].0 > 1, "the oldest segments, long expired, were deleted: {segments:?}");
    let mut found = std::collections::BTreeSet::new();
    for file in segments.iter().map(|(_, p)| p.clone()).chain([path]) {
        for entry in sda_testkit::read_jsonl(&file) {
            assert!(std::fs::metadata(&file).unwrap().len() <= 4096, "{} outgrew max_bytes", file.display());
            assert!(found.insert(entry["source"]["offset"].as_u64().unwrap()), "an entry is in the DLQ twice: {entry}");
        }
    }
    let unexpired: Vec<u64> = written.iter().filter(|(at, _)| end.duration_since(*at) < max_age).map(|(_, o)| *o).collect();
    assert!(!unexpired.is_empty());
    for o in &unexpired {
        assert!(found.contains(o), "the entry of the line at offset {o} was deleted before it expired");
    }
    assert!(found.len() < written.len(), "expired entries were deleted");
}

#[test]
fn report_every_must_be_a_sane_number_of_seconds() {
    let s = Scratch::new();
    // `inf` panicked in `Duration` (exit 101); every bad value is now a usage error naming the flag.
    for bad in ["inf", "NaN", "-1", "0", "1e9", "soon"] {
        let out = run(s.path(), &["run", "pipeline.toml", "--report", "report.json", &format!("--report-every={bad}")]);
        let said = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {said}");
        assert!(said.contains("--report-every") && !said.contains("panicked"), "{bad}: {said}");
    }
}

#[test]
fn checkpoint_verify_refuses_a_location_without_checkpoints_and_creates_nothing() {
    let s = Scratch::new();
    let typo = s.join("typo");
    let url = format!("file://{}", typo.display());
    // A mistyped URL used to be created, found empty, and verified with exit 0.
    let out = run(s.path(), &["checkpoint", "verify", &url]);
    let said = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("does not exist"), "{said}");
    assert!(!typo.exists(), "verify created {}", typo.display());
    // An existing folder with no checkpoint in it: nothing verified is a failure, as a URL and as a path.
    std::fs::create_dir(&typo).unwrap();
    for location in [url.as_str(), typo.to_str().unwrap()] {
        let out = run(s.path(), &["checkpoint", "verify", location]);
        let said = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{location}: {said}");
        assert!(said.contains("no checkpoint found"), "{location}: {said}");
    }
}

#[test]
fn plan_diff_with_the_old_file_after_diff_is_refused_rather_than_reversed() {
    let s = Scratch::new();
    // `plan --diff OLD NEW` parsed as `plan NEW --diff OLD` and printed the diff backwards.
    let out = run(s.path(), &["plan", "--diff", "old.toml", "new.toml"]);
    let said = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(said.contains("the old file comes first: `sda-pipeline plan OLD --diff NEW`"), "{said}");
    // The documented order goes on to read the files (missing here).
    let out = run(s.path(), &["plan", "old.toml", "--diff", "new.toml"]);
    let said = text(&out.stderr);
    assert!(!said.contains("comes first") && said.contains("old.toml"), "{said}");
}

#[test]
fn checkpoint_ls_lists_both_tiers_and_inspect_describes_one_and_an_unreachable_remote_hides_nothing_local() {
    let s = Scratch::new();
    s.write("in.jsonl", lines(5, &[]));
    chain_pipeline(&s, &[("count", plugins::COUNTER, "")]);
    s.append("pipeline.toml", "[checkpoint]\ndir = \"state/local\"\nremote = \"state/remote\"\n");
    let out = run(s.path(), &["run", "--quiet"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    let out = run(s.path(), &["checkpoint", "ls"]);
    let listed = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{listed}{}", text(&out.stderr));
    assert!(listed.starts_with("local tier: state/local\n"), "{listed}");
    assert!(listed.contains("remote tier: file://"), "{listed}");
    // The same checkpoint in both tiers, each line saying it is intact and of which task.
    let entries: Vec<&str> = listed.lines().filter(|l| l.contains("ckpt-00000000000000000001.sdackpt")).collect();
    assert_eq!(entries.len(), 2, "{listed}");
    assert!(entries.iter().all(|l| l.contains("ok  task obs-0  seq 1")), "{listed}");

    let file = std::fs::read_dir(s.join("state/local/test/obs-0")).unwrap().next().unwrap().unwrap().path();
    let out = run(s.path(), &["checkpoint", "inspect", file.to_str().unwrap()]);
    let described = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(described.contains("checkpoint 1 of task `obs-0` in pipeline `test`") && described.contains("checksum ok"), "{described}");
    assert!(described.contains("source       `obs` partition 0: resume at byte offset"), "{described}");
    assert!(described.contains("count ") && described.contains("state version 1"), "{described}");
    std::fs::write(s.join("damaged.sdackpt"), b"not a checkpoint").unwrap();
    let out = run(s.path(), &["checkpoint", "inspect", "damaged.sdackpt"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("`damaged.sdackpt` is not a usable checkpoint"), "{}", text(&out.stderr));

    // A remote tier that does not answer: the local listing still comes, then the error, exit 1.
    let toml = std::fs::read_to_string(s.join("pipeline.toml")).unwrap();
    s.write("pipeline.toml", toml.replace("remote = \"state/remote\"", "remote = \"s3://nowhere/checkpoints\""));
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let out = sda(s.path())
        .args(["checkpoint", "ls"])
        .envs([
            ("AWS_ACCESS_KEY_ID", "testing".to_string()),
            ("AWS_SECRET_ACCESS_KEY", "testing".to_string()),
            ("AWS_REGION", "us-east-1".to_string()),
            ("AWS_ENDPOINT", format!("http://{closed}")),
            ("AWS_ALLOW_HTTP", "true".to_string()),
        ])
        .output()
        .unwrap();
    let (listed, said) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{listed}{said}");
    assert!(listed.starts_with("local tier: state/local\n") && listed.contains("ok  task obs-0  seq 1"), "{listed}");
    assert!(said.contains("cannot list the remote tier `s3://nowhere/checkpoints`"), "{said}");
}

#[test]
fn printing_commands_stop_quietly_when_the_reader_has_gone() {
    use std::os::unix::process::ExitStatusExt as _;
    let s = Scratch::new();
    s.write("in.jsonl", lines(3, &[]));
    chain_pipeline(&s, &[("count", plugins::COUNTER, "")]);
    // As `sda-pipeline plan | head -0`: the pipe's reader is gone before the first line is written.
    for args in [&["plan"][..], &["validate"], &["checkpoint", "ls"]] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = sda(s.path()).args(args).stdout(writer).stderr(Stdio::piped()).output().unwrap();
        let said = text(&out.stderr);
        assert!(!said.contains("panicked") && !said.contains("Broken pipe"), "{args:?}: {said}");
        // Ended by SIGPIPE (13), as `cat` or `grep` would be: the shell says nothing of it.
        assert_eq!(out.status.signal(), Some(13), "{args:?}: {:?} {said}", out.status);
    }
}

#[test]
fn a_non_loopback_admin_address_is_refused_unless_allowed_and_then_every_route_needs_the_token() {
    use std::os::unix::fs::PermissionsExt as _;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let s = Scratch::new();
    s.write("in.jsonl", lines(5, &[]));
    chain_pipeline(&s, &[("count", plugins::COUNTER, "")]);
    let base = std::fs::read_to_string(s.join("pipeline.toml")).unwrap() + "[checkpoint]\ndir = \"state\"\ninterval_ms = 50\n";
    // `0.0.0.0` served /status and /metrics to the network, unauthenticated: now refused, with the way out.
    s.write("pipeline.toml", format!("{base}[admin]\nlisten = \"0.0.0.0:{port}\"\n"));
    let out = run(s.path(), &["validate"]);
    let said = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(said.contains("would serve /status and /metrics beyond this machine") && said.contains("allow_remote = true"), "{said}");
    assert!(said.contains("pipeline.toml:"), "the problem has its place: {said}");

    s.write("pipeline.toml", format!("{base}[admin]\nlisten = \"0.0.0.0:{port}\"\nallow_remote = true\n"));
    // A token file left readable by others (an older run, a copy) is replaced, never rewritten in place.
    let token_file = s.join("state/test/admin.token");
    s.write("state/test/admin.token", "stale\n");
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let child = spawn(s.path(), &["run", "--follow"]);
    let address = format!("127.0.0.1:{port}");
    wait_for("the admin endpoint", || http_get(&address, "/healthz").is_some_and(|(status, _)| status == 401));
    assert_eq!(std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777, 0o600, "the token is its owner's only");
    let token = std::fs::read_to_string(&token_file).unwrap().trim().to_string();
    assert!(token.len() >= 32, "a token worth the name: {token:?}");
    for (path, allowed) in [("/healthz", 200), ("/status", 200), ("/metrics", 200), ("/nowhere", 404)] {
        for (who, header) in [
            ("no token", String::new()),
            ("an empty token", "Authorization: Bearer \r\n".to_string()),
            ("a wrong token", "Authorization: Bearer 0123456789abcdef0123456789abcdef\r\n".to_string()),
            ("the token without its scheme", format!("Authorization: {token}\r\n")),
        ] {
            let (status, body) = http_get_with(&address, path, &header).unwrap();
            assert_eq!(status, 401, "{path} with {who}: {body}");
            assert!(!body.contains("admin.token") && !body.contains("state/"), "{path}: the refusal names no path: {body}");
        }
        let (status, body) = http_get_with(&address, path, &format!("Authorization: Bearer {token}\r\n")).unwrap();
        assert_eq!(status, allowed, "{path} with the token: {body}");
    }
    // The CLI sends the token it finds beside the checkpoints.
    let out = run(s.path(), &["status"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("pipeline test:"), "{}", text(&out.stdout));
    signal(&child, "INT");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

/// The Kafka samples are valid as shipped (`validate` compiles their plugins and checks that each source
/// feeds its operators what they need; it contacts no broker), and `plan` shows the scale-out sample's
/// leases.
#[test]
fn the_kafka_samples_validate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let s = sample_pipeline();
    for sample in ["pipeline.kafka.toml", "pipeline.scale-out.toml"] {
        s.write(sample, std::fs::read(root.join(sample)).unwrap());
        let out = run(s.path(), &["validate", sample]);
        assert_eq!(out.status.code(), Some(0), "{sample}: {}", text(&out.stderr));
    }
    let out = run(s.path(), &["plan", "pipeline.scale-out.toml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let plan = text(&out.stdout);
    assert!(plan.contains("every partition in each of 4 shard task(s)") && plan.contains("group `conjunction-screening.shards`"), "{plan}");
}
