//! Call budgets and the circuit breaker: heavy valid work is never a fault, a fault no record caused dead-letters nothing, and faults cannot loop.
//!
//! Every test runs the real binary on the `faulty` test plugin, whose slow modes spend a set time
//! on each record or each `on-watermark` call. A run that loops instead of ending is killed after
//! two minutes and fails its test (a liveness bound, not a speed target).

use sda_testkit::{Scratch, plugins};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The longest a run may take before it counts as looping.
const LOOPING_AFTER: Duration = Duration::from_secs(120);

fn run(dir: &Path) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sda-pipeline"))
        .current_dir(dir)
        .args(["run", "--quiet", "pipeline.toml"])
        .env("SDA_CACHE_DIR", Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache"))
        .env("SDA_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running sda-pipeline");
    let started = Instant::now();
    while child.try_wait().expect("waiting for sda-pipeline").is_none() {
        if started.elapsed() > LOOPING_AFTER {
            child.kill().expect("killing a looping run");
            let out = child.wait_with_output().expect("its output");
            panic!("the run was still going after {LOOPING_AFTER:?}: it loops\n{}", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("its output")
}

/// `records` numbered JSON lines; the ones in `poisoned` carry the faulty plugin's marker.
fn input(records: usize, poisoned: &[usize]) -> String {
    (0..records)
        .map(|i| {
            let marker = if poisoned.contains(&i) { "POISON" } else { "clean" };
            format!("{{\"id\":\"r{i}\",\"t\":{},\"note\":\"{marker}\"}}\n", 1000 * i)
        })
        .collect()
}

/// observations -> faulty (its table's `body`) -> out/records.jsonl, dead letters to out/dlq.jsonl.
fn pipeline(body: &str) -> String {
    format!(
        "version = 1\nname = \"budgets\"\n\
         [sources.observations]\ntype = \"file\"\npath = \"in.jsonl\"\nkey_field = \"id\"\nevent_time_field = \"t\"\n\
         [operators.faulty]\nplugin = {:?}\ninputs = [\"observations\"]\n{body}\n\
         [sinks.records]\ntype = \"file\"\ninputs = [\"faulty\"]\npath = \"out/records.jsonl\"\n\
         [dlq]\ntype = \"file\"\npath = \"out/dlq.jsonl\"\n",
        plugins::FAULTY
    )
}

fn setup(records: usize, poisoned: &[usize], body: &str) -> Scratch {
    let dir = Scratch::new();
    dir.write("in.jsonl", input(records, poisoned));
    dir.write("pipeline.toml", pipeline(body));
    dir
}

/// Every dead letter the run wrote (none if it wrote no DLQ file).
fn dead_letters(dir: &Scratch) -> Vec<Value> {
    if dir.join("out/dlq.jsonl").exists() { dir.read_jsonl("out/dlq.jsonl") } else { Vec::new() }
}

fn delivered(dir: &Scratch) -> Vec<String> {
    if !dir.join("out/records.jsonl").exists() {
        return Vec::new();
    }
    dir.read_jsonl("out/records.jsonl").iter().map(|r| r["id"].as_str().unwrap().to_string()).collect()
}

fn ids(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("r{i}")).collect()
}

#[test]
fn a_window_close_longer_than_the_call_deadline_is_valid_work_under_its_own_budget() {
    // Each on-watermark call works 400 ms, four times the per-record deadline: no fault.
    let dir = setup(30, &[], "call_timeout_ms = 100\nconfig = { mode = \"slow-watermark\", work_ms = 400 }");
    let out = run(dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(delivered(&dir), ids(0..30));
    assert!(dead_letters(&dir).is_empty(), "{:?}", dead_letters(&dir));
    assert!(!stderr.contains("fault"), "{stderr}");
}

#[test]
fn a_window_close_with_more_output_than_wasmtime_copies_by_default_is_valid_work_within_the_memory_cap() {
    // 200 MiB out of one on-watermark call: over wasmtime's default bound on what a call copies out of a guest
    // (128 MiB, which faulted the elsets operator at 10^5 objects), within the instance's memory cap.
    let bulky = |cap_mib: u64| {
        let body =
            format!("max_memory_bytes = {}\nconfig = {{ mode = \"bulky-watermark\", output_bytes = {} }}", cap_mib << 20, 200u64 << 20);
        let dir = setup(30, &[], &body);
        let out = run(dir.path());
        (dir, out)
    };
    let (dir, out) = bulky(1024);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let written = std::fs::read(dir.join("out/records.jsonl")).unwrap();
    let lines: Vec<&[u8]> = written.split(|&b| b == b'\n').filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 30 + 200, "the 30 records passed through, then 200 outputs of 1 MiB");
    assert!(lines[30..].iter().all(|l| l.len() == 1 << 20), "each output whole");
    assert!(dead_letters(&dir).is_empty() && !stderr.contains("fault"), "{stderr}");

    // Under a cap of 64 MiB the same output cannot be built: the memory cap, named, is what stops it.
    let (dir, out) = bulky(64);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    for needed in ["on-watermark", "`max_memory_bytes`", "nothing was dead-lettered"] {
        assert!(stderr.contains(needed), "the error names {needed}: {stderr}");
    }
    assert!(dead_letters(&dir).is_empty(), "{:?}", dead_letters(&dir));
}

/// 10 records -> `window` (the faulty plugin returning `outputs` records of 100 bytes from the end of input's
/// `on-watermark`) -> `next` (the faulty plugin, its table's `body`) -> out/records.jsonl, in batches of 64.
fn window_then(outputs: u64, body: &str) -> Scratch {
    let dir = Scratch::new();
    dir.write("in.jsonl", input(10, &[]));
    dir.write(
        "pipeline.toml",
        format!(
            "version = 1\nname = \"budgets\"\n[runtime]\nbatch_size = 64\n\
             [sources.observations]\ntype = \"file\"\npath = \"in.jsonl\"\nkey_field = \"id\"\nevent_time_field = \"t\"\n\
             [operators.window]\nplugin = {plugin:?}\ninputs = [\"observations\"]\n\
             config = {{ mode = \"bulky-watermark\", output_bytes = {bytes}, output_record_bytes = 100 }}\n\
             [operators.next]\nplugin = {plugin:?}\ninputs = [\"window\"]\n{body}\n\
             [sinks.records]\ntype = \"file\"\ninputs = [\"next\"]\npath = \"out/records.jsonl\"\n\
             [dlq]\ntype = \"file\"\npath = \"out/dlq.jsonl\"\n",
            plugin = plugins::FAULTY,
            bytes = outputs * 100
        ),
    );
    dir
}

#[test]
fn a_window_close_that_emits_more_than_a_batch_is_handed_on_in_calls_of_a_batch() {
    // 2,000 outputs from one on-watermark call, into an operator that works 2 ms on each record: in one call that is
    // 4 s, past a 1 s deadline; in calls of `batch_size` (64) records, 128 ms each. Valid work, no fault.
    let dir = window_then(2000, "call_timeout_ms = 1000\nconfig = { mode = \"slow-process\", work_ms = 2 }");
    let out = run(dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let written = std::fs::read_to_string(dir.join("out/records.jsonl")).unwrap();
    let lines: Vec<&str> = written.lines().collect();
    assert_eq!(lines.len(), 10 + 2000, "the 10 records, then the window's 2,000 outputs, each handed on once");
    assert!(lines[10..].iter().all(|l| l.len() == 100), "each output whole");
    assert!(dead_letters(&dir).is_empty() && !stderr.contains("fault"), "{stderr}");
}

#[test]
fn failures_in_later_calls_of_a_handed_on_window_name_their_own_records() {
    // 200 outputs of one on-watermark call, handed on in calls of 64: the downstream operator rejects every one, and
    // each dead letter must be the record it rejected, whichever call it came in.
    let dir = window_then(200, "config = { mode = \"reject\", marker = \"xxxxx\" }");
    let out = run(dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(delivered(&dir), ids(0..10), "the input records pass");
    let keys: Vec<String> = dead_letters(&dir).iter().map(|d| d["key"].as_str().unwrap().to_string()).collect();
    assert_eq!(keys, (0..200).map(|n| n.to_string()).collect::<Vec<_>>(), "each output rejected once, as itself");
}

#[test]
fn a_window_close_past_its_budget_stops_the_task_naming_the_setting_and_dead_letters_nothing() {
    let dir = setup(30, &[], "watermark_timeout_ms = 300\nconfig = { mode = \"slow-watermark\", work_ms = 1500 }");
    let out = run(dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    for needed in ["`faulty`", "on-watermark", "300 ms", "`watermark_timeout_ms`", "nothing was dead-lettered"] {
        assert!(stderr.contains(needed), "the error names {needed}: {stderr}");
    }
    assert!(dead_letters(&dir).is_empty(), "{:?}", dead_letters(&dir));
    // The batch whose window close faulted was not delivered: it is still in the source.
    assert!(delivered(&dir).is_empty(), "{:?}", delivered(&dir));
}

#[test]
fn a_timeout_on_every_call_opens_the_breaker_within_max_faults_and_dead_letters_nothing() {
    // No record can ever be processed in time: each fault proves nothing about its record.
    let dir = setup(20, &[], "call_timeout_ms = 50\nmax_faults = 3\nconfig = { mode = \"slow-process\", work_ms = 300 }");
    let out = run(dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("circuit breaker open: 4 plugin faults"), "max_faults + 1 faults open the breaker: {stderr}");
    assert!(stderr.contains("`call_timeout_ms`"), "{stderr}");
    assert!(dead_letters(&dir).is_empty(), "no record is dead-lettered for a plugin that faults on everything: {:?}", dead_letters(&dir));
    assert!(delivered(&dir).is_empty());
}

#[test]
fn faults_raised_while_isolating_poison_pills_count_against_the_breaker() {
    // Five poison pills among 50 records, two faults allowed per minute: isolating them opens the
    // breaker instead of going on forever.
    let poisoned = [3, 11, 19, 27, 35];
    let dir = setup(50, &poisoned, "max_faults = 2\nfault_window_ms = 600000\nconfig = { mode = \"panic\" }");
    let out = run(dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("circuit breaker open: 3 plugin faults within 600 s (max_faults = 2)"), "{stderr}");
    let poison_keys: Vec<String> = poisoned.iter().map(|i| format!("r{i}")).collect();
    for letter in dead_letters(&dir) {
        assert!(poison_keys.contains(&letter["key"].as_str().unwrap().to_string()), "only a poison pill may be dead-lettered: {letter}");
    }
}

#[test]
fn faults_spread_wider_than_the_window_never_open_the_breaker() {
    // The same five poison pills and two faults allowed, but per 100 ms, and every clean record
    // works 60 ms: at least one clean record comes between two pills, so no 100 ms ever holds more
    // than a pill's own faults (its batch's and its probe's). The breaker stays shut: every pill is
    // dead-lettered and the 45 clean records flow. (With the window at 10 minutes, the test above,
    // the breaker opens at the third fault.)
    let poisoned = [3, 11, 19, 27, 35];
    let dir = setup(50, &poisoned, "max_faults = 2\nfault_window_ms = 100\nconfig = { mode = \"panic\", work_ms = 60 }");
    let out = run(dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("circuit breaker open"), "{stderr}");
    let mut lettered: Vec<String> = dead_letters(&dir).iter().map(|l| l["key"].as_str().unwrap().to_string()).collect();
    lettered.sort_by_key(|k| k[1..].parse::<u32>().unwrap());
    assert_eq!(lettered, poisoned.iter().map(|i| format!("r{i}")).collect::<Vec<_>>());
    assert_eq!(delivered(&dir).len(), 45);
}

#[test]
fn a_record_that_faults_with_nothing_else_processed_waits_for_proof_then_is_dead_lettered() {
    // The poison pill is the only record: the plugin processes no other, before or after it, so
    // the fault cannot be pinned on the record (the plugin might fault on everything).
    let dir = setup(1, &[0], "config = { mode = \"panic\" }");
    let out = run(dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("cannot be pinned on those records"), "{stderr}");
    assert!(dead_letters(&dir).is_empty(), "{:?}", dead_letters(&dir));
    assert!(delivered(&dir).is_empty());

    // More input arrives: the plugin processes a record after the fault, which convicts the pill.
    dir.append("in.jsonl", "{\"id\":\"r1\",\"t\":1000,\"note\":\"clean\"}\n");
    let out = run(dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let letters = dead_letters(&dir);
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0]["key"], "r0");
    assert_eq!(letters[0]["error_kind"], "PluginTrap");
    assert_eq!(delivered(&dir), ids(1..2), "nothing delivered twice, nothing lost");
}

#[test]
fn a_batch_slower_than_its_deadline_with_no_slow_record_blames_no_record() {
    // 20 records of 40 ms each in one batch: 800 ms, past the 300 ms deadline, though each record
    // alone takes far less.
    let dir = setup(20, &[], "call_timeout_ms = 300\nconfig = { mode = \"slow-process\", work_ms = 40 }");
    let out = run(dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    for needed in ["no record is to blame", "raise `call_timeout_ms` or lower `[runtime] batch_size`"] {
        assert!(stderr.contains(needed), "the error says {needed}: {stderr}");
    }
    assert!(dead_letters(&dir).is_empty(), "{:?}", dead_letters(&dir));
}
