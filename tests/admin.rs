//! The admin endpoint over real HTTP on loopback: /metrics, /healthz, /status, 404s, binding and shutdown.
//!
//! The metrics recorder is process-wide and these tests run in parallel, so
//! each test uses label values (task, source, sink, operator names) of its own.

use sda_host::admin::{AdminError, AdminServer};
use sda_host::metrics::{self, RecoveryPath};
use sda_host::status::{OperatorStatus, StatusBoard};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

struct HttpResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl HttpResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// `method path` over a fresh connection (`Connection: close`), read to the end.
fn request(addr: SocketAddr, method: &str, path: &str) -> HttpResponse {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(stream, "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap_or_else(|e| panic!("reading the answer to {method} {path}: {e}"));
    let text = String::from_utf8(raw).expect("a UTF-8 answer");
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no end of headers in {text:?}"));
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap_or_else(|| panic!("bad header line {l:?}"));
            (n.trim().to_string(), v.trim().to_string())
        })
        .collect();
    let mut response = HttpResponse { status, headers, body: body.to_string() };
    if response.header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        response.body = dechunk(&response.body);
    }
    response
}

fn get(addr: SocketAddr, path: &str) -> HttpResponse {
    request(addr, "GET", path)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").expect("a chunk size line");
        let size = usize::from_str_radix(size.split(';').next().unwrap().trim(), 16).expect("a hex chunk size");
        if size == 0 {
            return out;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
}

/// The value of the sample `name{labels}` (labels in any order, exactly these) in Prometheus text.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut want: Vec<(String, String)> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    want.sort();
    text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (series_name, mut got) = match series.split_once('{') {
            Some((n, rest)) => (n, parse_labels(rest.strip_suffix('}')?)),
            None => (series, Vec::new()),
        };
        got.sort();
        (series_name == name && got == want).then(|| value.parse().expect("a numeric sample value"))
    })
}

/// `a="x",b="y"` (with `\"` and `\\` escapes) as pairs.
fn parse_labels(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while chars.peek().is_some() {
        let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
        assert_eq!(chars.next(), Some('"'), "label value must be quoted in {s:?}");
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => value.push(chars.next().unwrap()),
                '"' => break,
                c => value.push(c),
            }
        }
        out.push((key.trim().to_string(), value));
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
    out
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// Drops `server` on another thread and fails (rather than hangs) if that takes longer than `limit`.
fn drop_within(server: AdminServer, limit: Duration) -> Duration {
    let started = Instant::now();
    let (done, dropped) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        drop(server);
        let _ = done.send(());
    });
    dropped.recv_timeout(limit).unwrap_or_else(|_| panic!("dropping the admin server took more than {limit:?}"));
    started.elapsed()
}

fn start(board: &Arc<StatusBoard>) -> AdminServer {
    let handle = metrics::install().expect("installing the recorder");
    AdminServer::start(loopback(), board.clone(), handle).expect("starting the admin server")
}

#[test]
fn metrics_lists_every_metric_with_its_labels_and_values() {
    let board = StatusBoard::new("metrics-test");
    let server = start(&board);
    let addr = server.local_addr();

    metrics::records_in("mt-src", 40);
    metrics::records_in("mt-src", 2);
    metrics::records_out("mt-sink", 7);
    metrics::dedup_hits("mt-sink", 3);
    metrics::dlq_entry("Validation", "mt-op");
    metrics::dlq_entry("Validation", "mt-op");
    metrics::dlq_entries("PluginTrap", "mt-op", 5);
    metrics::discarded("mt-op", "late");
    metrics::discarded_n("mt-op", "duplicate", 2);
    metrics::discarded_n("mt-op", "late", 3);
    metrics::operator_batch("mt-op", Duration::from_micros(150));
    metrics::operator_batch("mt-op", Duration::from_millis(20));
    metrics::batch("mt-task");
    metrics::batch("mt-task");
    metrics::batch("mt-task");
    metrics::recovery("mt-task", RecoveryPath::LocalOlder);
    metrics::record_checkpoint("mt-task", Duration::from_millis(20), Duration::from_millis(3), 4096);
    board.task_started("mt-task", "mt-src");
    board.task_checkpointed("mt-task", 1, SystemTime::now(), 4096, "/tmp/ckpt/1".into());

    let page = get(addr, "/metrics");
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.header("content-type").is_some_and(|t| t.starts_with("text/plain")), "{:?}", page.headers);
    let text = &page.body;

    for (name, kind) in [
        ("checkpoint_age_seconds", "gauge"),
        ("checkpoint_duration_seconds", "histogram"),
        ("checkpoint_pause_seconds", "histogram"),
        ("checkpoint_bytes", "gauge"),
        ("recovery_path_total", "counter"),
        ("records_in_total", "counter"),
        ("records_out_total", "counter"),
        ("dedup_hits_total", "counter"),
        ("dlq_entries_total", "counter"),
        ("late_observations_total", "counter"),
        ("discarded_total", "counter"),
        ("operator_batch_seconds", "histogram"),
        ("batches_total", "counter"),
    ] {
        assert!(text.contains(&format!("# TYPE {name} {kind}\n")), "no `# TYPE {name} {kind}` in:\n{text}");
        assert!(text.contains(&format!("# HELP {name} ")), "no help for {name} in:\n{text}");
    }

    let value = |name: &str, labels: &[(&str, &str)]| {
        sample(text, name, labels).unwrap_or_else(|| panic!("no sample {name}{labels:?} in:\n{text}"))
    };
    assert_eq!(value("records_in_total", &[("source", "mt-src")]), 42.0);
    assert_eq!(value("records_out_total", &[("sink", "mt-sink")]), 7.0);
    assert_eq!(value("dedup_hits_total", &[("sink", "mt-sink")]), 3.0);
    assert_eq!(value("dlq_entries_total", &[("error_kind", "Validation"), ("operator", "mt-op")]), 2.0);
    assert_eq!(value("dlq_entries_total", &[("error_kind", "PluginTrap"), ("operator", "mt-op")]), 5.0);
    assert_eq!(value("discarded_total", &[("operator", "mt-op"), ("reason", "late")]), 4.0);
    assert_eq!(value("discarded_total", &[("operator", "mt-op"), ("reason", "duplicate")]), 2.0);
    assert_eq!(value("late_observations_total", &[("operator", "mt-op")]), 4.0);
    assert_eq!(value("batches_total", &[("task", "mt-task")]), 3.0);
    assert_eq!(value("recovery_path_total", &[("task", "mt-task"), ("path", "local_older")]), 1.0);
    for other in ["local", "remote", "fresh"] {
        assert_eq!(value("recovery_path_total", &[("task", "mt-task"), ("path", other)]), 0.0, "path {other}");
    }
    assert_eq!(value("checkpoint_bytes", &[("task", "mt-task")]), 4096.0);
    let age = value("checkpoint_age_seconds", &[("task", "mt-task")]);
    assert!((0.0..5.0).contains(&age), "checkpoint age {age}");

    // Histograms: real buckets (not summaries), with the bounds chosen for each.
    assert_eq!(value("checkpoint_duration_seconds_count", &[("task", "mt-task")]), 1.0);
    assert!((value("checkpoint_duration_seconds_sum", &[("task", "mt-task")]) - 0.020).abs() < 1e-9);
    assert_eq!(value("checkpoint_duration_seconds_bucket", &[("task", "mt-task"), ("le", "0.01")]), 0.0);
    assert_eq!(value("checkpoint_duration_seconds_bucket", &[("task", "mt-task"), ("le", "0.025")]), 1.0);
    assert_eq!(value("checkpoint_duration_seconds_bucket", &[("task", "mt-task"), ("le", "60")]), 1.0);
    assert_eq!(value("checkpoint_pause_seconds_bucket", &[("task", "mt-task"), ("le", "0.001")]), 0.0);
    assert_eq!(value("checkpoint_pause_seconds_bucket", &[("task", "mt-task"), ("le", "0.005")]), 1.0);
    assert_eq!(value("checkpoint_pause_seconds_count", &[("task", "mt-task")]), 1.0);
    assert_eq!(value("operator_batch_seconds_count", &[("operator", "mt-op")]), 2.0);
    assert_eq!(value("operator_batch_seconds_bucket", &[("operator", "mt-op"), ("le", "0.0001")]), 0.0);
    assert_eq!(value("operator_batch_seconds_bucket", &[("operator", "mt-op"), ("le", "0.00025")]), 1.0);
    assert_eq!(value("operator_batch_seconds_bucket", &[("operator", "mt-op"), ("le", "0.025")]), 2.0);
    assert_eq!(value("operator_batch_seconds_bucket", &[("operator", "mt-op"), ("le", "+Inf")]), 2.0);

    // Counters keep counting between scrapes.
    metrics::records_in("mt-src", 8);
    let again = get(addr, "/metrics");
    assert_eq!(sample(&again.body, "records_in_total", &[("source", "mt-src")]), Some(50.0));
}

#[test]
fn checkpoint_age_grows_between_scrapes() {
    metrics::install().unwrap();
    let board = StatusBoard::new("age-test");
    let server = start(&board);
    let addr = server.local_addr();

    board.task_started("age-task", "age-src");
    board.task_started("age-young", "age-src2"); // no checkpoint yet: age since its start
    board.task_checkpointed("age-task", 3, SystemTime::now() - Duration::from_secs(2), 100, "/ckpt/3".into());

    let age_of = |text: &str, task: &str| {
        sample(text, "checkpoint_age_seconds", &[("task", task)])
            .unwrap_or_else(|| panic!("no checkpoint_age_seconds for {task} in:\n{text}"))
    };
    let first = get(addr, "/metrics").body;
    std::thread::sleep(Duration::from_millis(150));
    let second = get(addr, "/metrics").body;
    let (a1, a2) = (age_of(&first, "age-task"), age_of(&second, "age-task"));
    assert!(a1 >= 2.0, "first age {a1}");
    assert!(a2 >= a1 + 0.1, "the age must grow between scrapes: {a1} then {a2}");
    let (y1, y2) = (age_of(&first, "age-young"), age_of(&second, "age-young"));
    assert!(y1 < 2.0 && y2 >= y1 + 0.1, "age since start: {y1} then {y2}");

    // A new checkpoint brings it back down.
    board.task_checkpointed("age-task", 4, SystemTime::now(), 100, "/ckpt/4".into());
    let a3 = age_of(&get(addr, "/metrics").body, "age-task");
    assert!(a3 < a2 && a3 < 1.0, "after a new checkpoint: {a3}");
}

#[test]
fn healthz_is_ok_until_a_task_fails_then_503_with_the_reason() {
    let board = StatusBoard::new("health-test");
    let server = start(&board);
    let addr = server.local_addr();

    let empty = get(addr, "/healthz");
    assert_eq!((empty.status, empty.body.as_str()), (200, "ok\n"), "no task yet");

    board.task_started("h-task", "h-src");
    board.task_started("h-other", "h-src2");
    board.task_progress("h-task", 10, 1);
    let ok = get(addr, "/healthz");
    assert_eq!((ok.status, ok.body.as_str()), (200, "ok\n"));

    board.set_degraded("dlq", Some("12 dead letters in the last minute".into()));
    let degraded = get(addr, "/healthz");
    assert_eq!(degraded.status, 200, "degraded is still alive");
    assert_eq!(degraded.body, "degraded\ndlq: 12 dead letters in the last minute\n");
    board.set_degraded("dlq", None);

    board.task_finished("h-other");
    assert_eq!(get(addr, "/healthz").status, 200, "a finished task is healthy");

    board.task_failed("h-task", "operator `classifier` faulted (PluginTrap) in `process`".into());
    let down = get(addr, "/healthz");
    assert_eq!(down.status, 503, "{}", down.body);
    assert_eq!(down.body, "down\ntask `h-task` failed: operator `classifier` faulted (PluginTrap) in `process`\n");

    let status: serde_json::Value = serde_json::from_str(&get(addr, "/status").body).unwrap();
    assert_eq!(status["health"], "down");
    assert_eq!(status["reasons"][0], "task `h-task` failed: operator `classifier` faulted (PluginTrap) in `process`");
    assert_eq!(status["tasks"]["h-task"]["state"], "failed");
    assert_eq!(status["tasks"]["h-task"]["error"], "operator `classifier` faulted (PluginTrap) in `process`");
    assert_eq!(status["tasks"]["h-other"]["state"], "finished");
}

#[test]
fn status_shows_tasks_offsets_checkpoints_and_operators() {
    let board = StatusBoard::new("conjunction-alerts");
    let server = start(&board);
    let addr = server.local_addr();

    board.set_operator(
        "correlator",
        OperatorStatus {
            plugin_path: "plugins/dist/correlator.wasm".into(),
            digest: "sha256:3af204a1".into(),
            wit_version: "0.1.0".into(),
            state_version: Some(1),
            faults: 0,
            stopped: None,
            ..OperatorStatus::default()
        },
    );
    board.set_operator(
        "classifier",
        OperatorStatus {
            plugin_path: "plugins/dist/classifier.wasm".into(),
            digest: "sha256:77e0".into(),
            wit_version: "0.1.0".into(),
            state_version: None,
            faults: 0,
            stopped: None,
            ..OperatorStatus::default()
        },
    );
    board.operator_faulted("classifier");
    board.operator_stopped("classifier", "circuit breaker open: 11 plugin faults within 60 s (max_faults = 10)".into());
    board.task_recovered("observations", RecoveryPath::Local, Some(41));
    board.task_recovered("radar", RecoveryPath::Fresh, None);
    board.task_started("observations", "observations");
    board.task_started("radar", "radar-feed");
    board.task_progress("observations", 182_093, 512);
    board.task_progress("observations", 364_000, 1024);
    let at = SystemTime::now() - Duration::from_secs(3);
    board.task_checkpointed("observations", 42, at, 65_536, "/var/lib/sda/ckpt/000042".into());

    let response = get(addr, "/status");
    assert_eq!(response.status, 200, "{}", response.body);
    assert!(response.header("content-type").is_some_and(|t| t.starts_with("application/json")));
    assert!(response.body.contains("\n  \"pipeline\""), "pretty-printed: {}", response.body);
    let status: serde_json::Value = serde_json::from_str(&response.body).unwrap();

    assert_eq!(status["schema_version"], 1);
    assert_eq!(status["pipeline"], "conjunction-alerts");
    assert_eq!(status["health"], "ok");
    assert_eq!(status["reasons"], serde_json::json!([]));
    assert!(status["uptime_seconds"].as_f64().unwrap() >= 0.0);
    assert!(status["started_at"].as_str().unwrap().ends_with('Z'));

    let obs = &status["tasks"]["observations"];
    assert_eq!(obs["source"], "observations");
    assert_eq!(obs["state"], "running");
    assert_eq!(obs["error"], serde_json::Value::Null);
    assert_eq!(obs["source_offset"], 364_000);
    assert_eq!(obs["records_in"], 1024);
    assert!(obs["last_progress_age_seconds"].as_f64().unwrap() < 5.0);
    assert_eq!(obs["recovery"], serde_json::json!({ "path": "local", "sequence": 41 }));
    assert_eq!(obs["checkpoints"], 1);
    let checkpoint = &obs["last_checkpoint"];
    assert_eq!(checkpoint["sequence"], 42);
    assert_eq!(checkpoint["bytes"], 65_536);
    assert_eq!(checkpoint["local_path"], "/var/lib/sda/ckpt/000042");
    assert_eq!(checkpoint["at"].as_str().unwrap(), humantime::format_rfc3339_millis(at).to_string());
    let age = checkpoint["age_seconds"].as_f64().unwrap();
    assert!((3.0..10.0).contains(&age), "checkpoint age {age}");

    let radar = &status["tasks"]["radar"];
    assert_eq!(radar["source"], "radar-feed");
    assert_eq!(radar["recovery"], serde_json::json!({ "path": "fresh", "sequence": null }));
    assert_eq!(radar["last_checkpoint"], serde_json::Value::Null);
    assert_eq!(radar["source_offset"], 0);

    assert_eq!(
        status["operators"]["correlator"],
        serde_json::json!({
            "plugin_path": "plugins/dist/correlator.wasm",
            "digest": "sha256:3af204a1",
            "wit_version": "0.1.0",
            "state_version": 1,
            "faults": 0,
            "stopped": null,
            "swapped_at": null,
            "swapped_by": null,
            "swapped_from": null
        })
    );
    assert_eq!(status["operators"]["classifier"]["state_version"], serde_json::Value::Null);
    assert_eq!(status["operators"]["classifier"]["faults"], 1);
    assert!(status["operators"]["classifier"]["stopped"].as_str().unwrap().starts_with("circuit breaker open"));
    assert_eq!(status["operators"]["correlator"]["stopped"], serde_json::Value::Null);
    assert_eq!(status["operators"].as_object().unwrap().len(), 2);

    // The snapshot is what the endpoint serves.
    let direct = board.snapshot();
    assert_eq!(direct.tasks["observations"].source_offset, 364_000);
    assert_eq!(direct.operators["correlator"].digest, "sha256:3af204a1");
}

#[test]
fn unknown_paths_are_404_and_other_methods_405() {
    let board = StatusBoard::new("404-test");
    let server = start(&board);
    let addr = server.local_addr();
    for path in ["/", "/nope", "/metrics/extra", "/statuses", "/healthz/"] {
        let response = get(addr, path);
        assert_eq!(response.status, 404, "GET {path}: {}", response.body);
        assert!(response.body.contains("/metrics, /healthz or /status"), "{}", response.body);
    }
    assert_eq!(request(addr, "POST", "/status").status, 405);
    assert_eq!(request(addr, "DELETE", "/metrics").status, 405);
}

#[test]
fn binding_an_address_in_use_names_it() {
    let taken = TcpListener::bind(loopback()).unwrap();
    let addr = taken.local_addr().unwrap();
    let board = StatusBoard::new("bind-test");
    let handle = metrics::install().unwrap();
    let error = AdminServer::start(addr, board, handle).expect_err("the address is taken");
    assert!(matches!(&error, AdminError::Bind { address, .. } if *address == addr), "{error:?}");
    assert_eq!(error.to_string(), format!("cannot listen on `{addr}`: address in use"));
}

#[test]
fn dropping_the_server_frees_the_port() {
    let board = StatusBoard::new("drop-test");
    let server = start(&board);
    let addr = server.local_addr();
    assert_eq!(get(addr, "/healthz").status, 200);
    drop_within(server, Duration::from_secs(5));

    assert!(TcpStream::connect(addr).is_err(), "nothing listens on {addr} after the drop");
    // The port can be bound again, by anyone and by a new server.
    drop(TcpListener::bind(addr).unwrap_or_else(|e| panic!("binding {addr} again: {e}")));
    let again = AdminServer::start(addr, board, metrics::install().unwrap()).expect("a new server on the same port");
    assert_eq!(again.local_addr(), addr);
    assert_eq!(get(addr, "/healthz").body, "ok\n");
}

#[test]
fn dropping_the_server_does_not_wait_for_idle_or_stalled_clients() {
    let board = StatusBoard::new("stall-test");
    let server = start(&board);
    let addr = server.local_addr();

    // One client connected and silent, one that sent half a request, one
    // kept alive after a full request.
    let _silent = TcpStream::connect(addr).unwrap();
    let mut partial = TcpStream::connect(addr).unwrap();
    partial.write_all(b"GET /status HTTP/1.1\r\nHost: x\r\n").unwrap();
    let mut kept = TcpStream::connect(addr).unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut buf = [0u8; 256];
    kept.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let n = kept.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    std::thread::sleep(Duration::from_millis(50));

    let took = drop_within(server, Duration::from_secs(5));
    eprintln!("dropped with three open connections in {took:?}");
    assert!(TcpStream::connect(addr).is_err(), "still listening on {addr}");
}

#[test]
fn install_returns_the_same_recorder_every_time() {
    let first = metrics::install().unwrap();
    let second = metrics::install().unwrap();
    metrics::records_out("install-sink", 9);
    assert_eq!(sample(&first.render(), "records_out_total", &[("sink", "install-sink")]), Some(9.0));
    assert_eq!(sample(&second.render(), "records_out_total", &[("sink", "install-sink")]), Some(9.0));
}
