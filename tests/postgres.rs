//! The PostgreSQL sink against a real server: 127.0.0.1:5432, database `test`, user `postgres`
//! (override with SDA_TEST_POSTGRES_ADDR, SDA_TEST_POSTGRES_USER, SDA_TEST_POSTGRES_DB). A server
//! that is not there fails these tests; it never skips them.
//!
//! Every test works in tables (and schemas, roles) of its own, named with a random suffix and
//! dropped at the end, even when the test fails. Faults are real: backends killed with
//! `pg_terminate_backend` from another session, and a TCP proxy in front of the server that is
//! stopped and started again.

use sda_host::sink::postgres::{PostgresError, PostgresSink};
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Row};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

use sda_testkit::postgres::{addr, url, url_via};

/// The sink's logs (its retries and reconnections), shown with a failing test's output.
fn logs() {
    let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("sda_host=info").try_init();
}

/// A random suffix for names: lowercase letters and digits.
fn suffix() -> String {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos());
    format!("{:016x}", h.finish())
}

/// A session of our own, beside the sink's: to look at the table and to inject faults.
struct Admin {
    runtime: tokio::runtime::Runtime,
    client: Client,
}

impl Admin {
    fn connect() -> Admin {
        Admin::connect_to(&url())
    }

    fn connect_to(url: &str) -> Admin {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (client, connection) = runtime
            .block_on(tokio_postgres::connect(url, NoTls))
            .unwrap_or_else(|e| panic!("the PostgreSQL server these tests need is not reachable at {url}: {e:?}"));
        runtime.spawn(connection);
        Admin { runtime, client }
    }

    fn exec(&self, sql: &str) {
        self.runtime.block_on(self.client.batch_execute(sql)).unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    }

    fn rows(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Vec<Row> {
        self.runtime.block_on(self.client.query(sql, params)).unwrap_or_else(|e| panic!("{sql}: {e:?}"))
    }

    fn one<T: for<'a> tokio_postgres::types::FromSql<'a>>(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> T {
        self.rows(sql, params)[0].get(0)
    }

    fn count(&self, table: &str) -> i64 {
        self.one(&format!("SELECT count(*) FROM {table}"), &[])
    }

    /// key -> payload as JSON, and how many transactions wrote the rows.
    fn contents(&self, table: &str, key: &str) -> (std::collections::BTreeMap<String, serde_json::Value>, i64) {
        let rows = self.rows(&format!("SELECT {key}, payload FROM {table}"), &[]);
        let map = rows.iter().map(|r| (r.get::<_, String>(0), r.get::<_, serde_json::Value>(1))).collect();
        let transactions = self.one(&format!("SELECT count(DISTINCT xmin::text) FROM {table}"), &[]);
        (map, transactions)
    }

    fn terminate(&self, pid: i32) {
        assert!(self.one::<bool>("SELECT pg_terminate_backend($1)", &[&pid]), "backend {pid} was not terminated");
    }

    /// Waits until a session of `application_name` other than `not_pid` waits on a lock; its pid.
    fn wait_for_lock_wait(&self, application_name: &str, not_pid: i32) -> i32 {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let rows = self.rows(
                "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND pid <> $2 AND wait_event_type = 'Lock'",
                &[&application_name, &not_pid],
            );
            if let Some(row) = rows.first() {
                return row.get(0);
            }
            assert!(Instant::now() < deadline, "no session of `{application_name}` came to wait on the blocking row");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Drops what a test created when the test ends, passed or failed.
struct Cleanup {
    admin: Admin,
    sql: Vec<String>,
}

impl Cleanup {
    fn new() -> Cleanup {
        Cleanup { admin: Admin::connect(), sql: Vec::new() }
    }

    /// A fresh table name (not created), dropped at the end.
    fn table(&mut self, tag: &str) -> String {
        let name = format!("sda_pg_{tag}_{}", suffix());
        self.sql.push(format!("DROP TABLE IF EXISTS \"{name}\""));
        name
    }

    /// A fresh schema (created), dropped with what it holds at the end.
    fn schema(&mut self) -> String {
        let name = format!("sda_pg_schema_{}", suffix());
        self.admin.exec(&format!("CREATE SCHEMA \"{name}\""));
        self.sql.push(format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"));
        name
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for sql in self.sql.iter().rev() {
            if let Err(e) = self.admin.runtime.block_on(self.admin.client.batch_execute(sql)) {
                eprintln!("cleanup `{sql}` failed: {e:?}");
            }
        }
    }
}

fn connect(name: &str, table: &str) -> PostgresSink {
    PostgresSink::connect(name, &url(), table, "alert_id", CONNECT_TIMEOUT).unwrap_or_else(|e| panic!("{e}"))
}

fn alert(i: usize) -> (String, String) {
    let key = format!("alert-{i:06}");
    let payload = format!(
        r#"{{"alert_id":"{key}","severity":"{}","objects":[{},{}],"miss_km":{:.3},"tca":"2026-01-01T00:{:02}:00.000Z"}}"#,
        if i.is_multiple_of(3) { "RED" } else { "YELLOW" },
        10_000 + i,
        20_000 + i,
        0.5 + (i % 40) as f64 / 10.0,
        i % 60
    );
    (key, payload)
}

fn write_alerts(sink: &mut PostgresSink, range: std::ops::Range<usize>) {
    for i in range {
        let (key, payload) = alert(i);
        sink.write(key.as_bytes(), payload.as_bytes()).unwrap();
    }
}

fn expected(range: std::ops::Range<usize>) -> std::collections::BTreeMap<String, serde_json::Value> {
    range.map(alert).map(|(k, p)| (k, serde_json::from_str(&p).unwrap())).collect()
}

#[test]
fn creates_the_table_plain_or_schema_qualified_and_reuses_it() {
    let mut cleanup = Cleanup::new();
    let table = cleanup.table("create");
    let sink = connect("alerts", &table);
    assert_eq!(sink.name(), "alerts");
    assert_eq!(sink.table(), table);
    let columns: Vec<(String, String, String)> = cleanup
        .admin
        .rows(
            "SELECT column_name::text, data_type::text, is_nullable::text FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
            &[&table],
        )
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let columns: Vec<(&str, &str, &str)> = columns.iter().map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str())).collect();
    assert_eq!(columns, [("alert_id", "text", "NO"), ("payload", "jsonb", "NO"), ("delivered_at", "timestamp with time zone", "NO")]);
    let primary_key: String = cleanup.admin.one(
        "SELECT a.attname::text FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
         WHERE i.indrelid = $1::text::regclass AND i.indisprimary",
        &[&format!("\"{table}\"")],
    );
    assert_eq!(primary_key, "alert_id");
    drop(sink);
    // A second sink (a restart) takes the table as it is.
    let mut again = connect("alerts", &table);
    write_alerts(&mut again, 0..1);
    again.flush().unwrap();
    assert_eq!(cleanup.admin.count(&format!("\"{table}\"")), 1);

    let schema = cleanup.schema();
    let qualified = format!("{schema}.alerts");
    let mut sink = connect("alerts", &qualified);
    write_alerts(&mut sink, 0..3);
    sink.flush().unwrap();
    assert_eq!(cleanup.admin.count(&format!("\"{schema}\".alerts")), 3);
}

#[test]
fn a_batch_is_inserted_in_one_transaction_and_only_at_flush() {
    let mut cleanup = Cleanup::new();
    let table = cleanup.table("batch");
    let quoted = format!("\"{table}\"");
    let mut sink = connect("alerts", &table);
    write_alerts(&mut sink, 0..300);
    assert_eq!(sink.pending(), 300);
    assert_eq!(cleanup.admin.count(&quoted), 0, "nothing reaches the table before flush");
    sink.flush().unwrap();
    assert_eq!(sink.pending(), 0);
    assert_eq!((sink.inserted(), sink.already_present()), (300, 0));
    let (rows, transactions) = cleanup.admin.contents(&quoted, "alert_id");
    assert_eq!(rows, expected(0..300), "every row with its payload");
    assert_eq!(transactions, 1, "the batch was written by one transaction");
    sink.flush().unwrap(); // nothing queued: nothing to do
    write_alerts(&mut sink, 300..310);
    sink.flush().unwrap();
    let (rows, transactions) = cleanup.admin.contents(&quoted, "alert_id");
    assert_eq!((rows.len(), transactions), (310, 2));
}

#[test]
fn a_replayed_batch_inserts_nothing_and_leaves_the_rows_unchanged() {
    let mut cleanup = Cleanup::new();
    let table = cleanup.table("replay");
    let quoted = format!("\"{table}\"");
    let mut sink = connect("alerts", &table);
    write_alerts(&mut sink, 0..50);
    sink.flush().unwrap();
    let snapshot = |admin: &Admin| -> Vec<(String, String, String, String)> {
        admin
            .rows(&format!("SELECT alert_id, payload::text, delivered_at::text, xmin::text FROM {quoted} ORDER BY alert_id"), &[])
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect()
    };
    let before = snapshot(&cleanup.admin);
    drop(sink);

    // After a crash, a new sink is handed the same outputs again.
    let mut replay = connect("alerts", &table);
    write_alerts(&mut replay, 0..50);
    replay.flush().unwrap();
    assert_eq!((replay.inserted(), replay.already_present()), (0, 50));
    // Even a replay carrying different payloads (it should not) overwrites nothing.
    for i in 0..50 {
        replay.write(alert(i).0.as_bytes(), br#"{"changed":true}"#).unwrap();
    }
    replay.flush().unwrap();
    assert_eq!((replay.inserted(), replay.already_present()), (0, 100));
    assert_eq!(snapshot(&cleanup.admin), before, "the rows are untouched: same payload, time and writing transaction");
}

#[test]
fn mixed_new_and_old_keys_and_duplicates_within_a_batch() {
    let mut cleanup = Cleanup::new();
    let table = cleanup.table("mixed");
    let quoted = format!("\"{table}\"");
    let mut sink = connect("alerts", &table);
    write_alerts(&mut sink, 0..10);
    sink.flush().unwrap();
    write_alerts(&mut sink, 5..15);
    sink.flush().unwrap();
    assert_eq!((sink.inserted(), sink.already_present()), (15, 5));
    // The same key twice in one batch: the first is kept.
    sink.write(b"dup", br#"{"n":1}"#).unwrap();
    sink.write(b"dup", br#"{"n":2}"#).unwrap();
    sink.flush().unwrap();
    assert_eq!((sink.inserted(), sink.already_present()), (16, 6));
    let (rows, _) = cleanup.admin.contents(&quoted, "alert_id");
    let mut want = expected(0..15);
    want.insert("dup".into(), serde_json::json!({"n": 1}));
    assert_eq!(rows, want);
}

#[test]
fn sinks_racing_on_one_table_create_it_once_and_deliver_each_key_once() {
    logs();
    let mut cleanup = Cleanup::new();
    let table = cleanup.table("race");
    // Four sinks start at once on a table none of them finds, then deliver overlapping keys in
    // clashing orders (forward and backward), so their transactions wait on each other: the sink
    // inserts in key order, so they queue rather than deadlock (a deadlock would be retried, at a cost
    // of a second each). A retry limit turns anything that keeps failing into a failure, not a hang.
    let barrier = Arc::new(std::sync::Barrier::new(4));
    let racers: Vec<_> = (0..4)
        .map(|n| {
            let (table, barrier) = (table.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                // Connect first, fail after the second barrier: a racer that panicked before it would
                // leave the others waiting there for ever.
                let sink = PostgresSink::connect(&format!("racer{n}"), &url(), &table, "alert_id", CONNECT_TIMEOUT);
                barrier.wait();
                let mut sink =
                    sink.unwrap_or_else(|e| panic!("racer{n} could not set up the table: {e}")).with_retry_limit(Duration::from_secs(60));
                for round in 0..5 {
                    let keys: Vec<usize> = if n % 2 == 0 {
                        (round * 100..round * 100 + 300).collect()
                    } else {
                        (round * 100..round * 100 + 300).rev().collect()
                    };
                    for i in keys {
                        let (key, payload) = alert(i);
                        sink.write(key.as_bytes(), payload.as_bytes()).unwrap();
                    }
                    sink.flush().unwrap();
                }
                (sink.inserted(), sink.already_present())
            })
        })
        .collect();
    let counts: Vec<(u64, u64)> = racers.into_iter().map(|r| r.join().unwrap()).collect();
    let inserted: u64 = counts.iter().map(|c| c.0).sum();
    let present: u64 = counts.iter().map(|c| c.1).sum();
    assert_eq!(inserted, 700, "each key inserted by exactly one sink: {counts:?}");
    assert_eq!(inserted + present, 4 * 5 * 300);
    assert_eq!(cleanup.admin.contents(&format!("\"{table}\""), "alert_id").0, expected(0..700));
}

#[test]
fn records_that_can_never_be_inserted_are_rejected_one_by_one() {
    let mut cleanup = Cleanup::new();
    let table = cleanup.table("reject");
    let mut sink = connect("alerts", &table);
    let refused = |r: Result<(), sda_host::sink::Rejection>| r.expect_err("accepted").0;
    assert!(refused(sink.write(b"", b"{}")).contains("key is empty"));
    assert!(refused(sink.write(&[0xc3, 0x28], b"{}")).contains("UTF-8"));
    assert!(refused(sink.write(b"k1", b"{\"a\":")).contains("not JSON"));
    assert!(refused(sink.write(b"k2", b"not json")).contains("not JSON"));
    assert!(refused(sink.write(b"k3", br#"{"a":"x\u0000y"}"#)).contains("\\u0000"));
    sink.write(b"k4", br#"{"a":"backslash then u0000: \\u0000"}"#).unwrap();
    sink.write("k5-ü".as_bytes(), r#"{"name":"Ørsted","big":123456789012345678901234567890}"#.as_bytes()).unwrap();
    assert_eq!(sink.pending(), 2, "only what can be inserted is queued");
    sink.flush().unwrap();
    let (rows, _) = cleanup.admin.contents(&format!("\"{table}\""), "alert_id");
    assert_eq!(rows.len(), 2);
    assert_eq!(rows["k4"], serde_json::json!({"a": "backslash then u0000: \\u0000"}));
    let big: String = cleanup.admin.one(&format!("SELECT payload->>'big' FROM \"{table}\" WHERE alert_id = 'k5-ü'"), &[]);
    assert_eq!(big, "123456789012345678901234567890", "numbers keep their digits (the payload goes as text)");
}

#[test]
fn identifiers_that_are_not_allowed_are_refused_before_any_sql() {
    let mut cleanup = Cleanup::new();
    let canary = cleanup.table("canary");
    cleanup.admin.exec(&format!("CREATE TABLE \"{canary}\" (x int)"));
    for (table, key) in [
        (format!("{canary}; DROP TABLE {canary}"), "alert_id"),
        (format!("alerts\"; DROP TABLE \"{canary}\"; --"), "alert_id"),
        ("a.b.c".to_string(), "alert_id"),
        ("".to_string(), "alert_id"),
        (".alerts".to_string(), "alert_id"),
        ("x".repeat(64), "alert_id"),
        ("alerts".to_string(), "id) DO NOTHING; DROP TABLE x; --"),
        ("alerts".to_string(), "payload"),
        ("alerts".to_string(), ""),
    ] {
        match PostgresSink::connect("alerts", &url(), &table, key, CONNECT_TIMEOUT) {
            Err(e @ PostgresError::InvalidIdentifier { .. }) => {
                let message = e.to_string();
                assert!(message.contains("sink `alerts`") && message.contains("not allowed"), "{message}");
            }
            Err(e) => panic!("{table:?} / {key:?}: wrong error {e}"),
            Ok(_) => panic!("{table:?} / {key:?} accepted"),
        }
    }
    assert_eq!(cleanup.admin.count(&format!("\"{canary}\"")), 0, "the canary table is still there");
}

#[test]
fn an_incompatible_table_is_a_permanent_error_naming_it() {
    let mut cleanup = Cleanup::new();
    let table = cleanup.table("incompatible");
    cleanup.admin.exec(&format!("CREATE TABLE \"{table}\" (alert_id integer PRIMARY KEY, body text NOT NULL)"));
    let started = Instant::now();
    let e = PostgresSink::connect("alerts", &url(), &table, "alert_id", CONNECT_TIMEOUT).err().expect("accepted");
    let message = e.to_string();
    assert!(matches!(e, PostgresError::IncompatibleTable { .. }), "{message}");
    assert!(message.contains(&format!("table `{table}`")), "{message}");
    assert!(message.contains("`alert_id` is `integer`"), "{message}");
    assert!(message.contains("no column `payload`"), "{message}");
    assert!(message.contains("`body`"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(3), "permanent errors are not retried");

    // No unique index on the key: ON CONFLICT could not work.
    let table = cleanup.table("nounique");
    cleanup.admin.exec(&format!("CREATE TABLE \"{table}\" (alert_id text, payload jsonb)"));
    let message = PostgresSink::connect("alerts", &url(), &table, "alert_id", CONNECT_TIMEOUT).err().expect("accepted").to_string();
    assert!(message.contains(&table) && message.contains("no unique index on `alert_id`"), "{message}");

    // A table that changes under a running sink: the flush fails at once, naming it, the rows stay.
    let table = cleanup.table("altered");
    let mut sink = connect("alerts", &table);
    cleanup.admin.exec(&format!("ALTER TABLE \"{table}\" ADD COLUMN required int NOT NULL"));
    write_alerts(&mut sink, 0..5);
    let started = Instant::now();
    let e = sink.flush().expect_err("flushed into a table it cannot fill");
    let message = e.to_string();
    assert!(matches!(e, PostgresError::Insert { .. }), "{message}");
    assert!(message.contains(&format!("table `{table}`")) && message.contains("23502"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(2), "permanent errors are not retried");
    assert_eq!(sink.pending(), 5);
    cleanup.admin.exec(&format!("ALTER TABLE \"{table}\" DROP COLUMN required"));
    sink.flush().unwrap();
    assert_eq!((sink.inserted(), cleanup.admin.count(&format!("\"{table}\""))), (5, 5));
}

#[test]
fn a_role_needs_only_insert_and_is_told_at_connect_when_it_lacks_it() {
    let mut cleanup = Cleanup::new();
    let table = cleanup.table("privileges");
    let role = format!("sda_pg_role_{}", suffix());
    // The table made by someone else; the role may read it, not write it, nor create anything.
    cleanup.admin.exec(&format!(
        "CREATE TABLE \"{table}\" (alert_id text PRIMARY KEY, payload jsonb NOT NULL); \
         CREATE ROLE \"{role}\" LOGIN; GRANT SELECT ON \"{table}\" TO \"{role}\""
    ));
    cleanup.sql.insert(0, format!("DROP OWNED BY \"{role}\"; DROP ROLE IF EXISTS \"{role}\""));
    let url = format!("postgres://{role}@{}/{}", addr(), sda_testkit::postgres::database());
    let e = PostgresSink::connect("alerts", &url, &table, "alert_id", CONNECT_TIMEOUT).err().expect("accepted");
    let message = e.to_string();
    assert!(matches!(e, PostgresError::IncompatibleTable { .. }), "{message}");
    assert!(message.contains(&format!("table `{table}`")) && message.contains("may not insert"), "{message}");
    // INSERT is all it takes (no CREATE on the schema, though the sink creates missing tables).
    cleanup.admin.exec(&format!("GRANT INSERT ON \"{table}\" TO \"{role}\""));
    let mut sink = PostgresSink::connect("alerts", &url, &table, "alert_id", CONNECT_TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    write_alerts(&mut sink, 0..3);
    sink.flush().unwrap();
    assert_eq!(cleanup.admin.count(&format!("\"{table}\"")), 3);
    // A missing table it may not create: the error says what failed, naming the table.
    let missing = cleanup.table("missing");
    let message = PostgresSink::connect("alerts", &url, &missing, "alert_id", CONNECT_TIMEOUT).err().expect("created").to_string();
    assert!(message.contains(&format!("table `{missing}`: could not create it")) && message.contains("42501"), "{message}");
}

#[test]
fn connecting_to_a_closed_port_fails_at_once_without_showing_the_password() {
    let started = Instant::now();
    let e = PostgresSink::connect("alerts", "postgres://u:secret@127.0.0.1:1/test", "alerts", "alert_id", Duration::from_secs(3))
        .err()
        .expect("connected to port 1");
    let message = e.to_string();
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    assert!(matches!(e, PostgresError::Connect { .. }), "{message}");
    assert!(message.contains("postgres://u:***@127.0.0.1:1/test"), "{message}");
    assert!(!message.contains("secret") && !format!("{e:?}").contains("secret"), "{message}");
}

#[test]
fn connecting_to_a_server_that_never_answers_fails_within_the_timeout() {
    // Accepts connections (the kernel does) but never says a word.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("postgresql://u:hunter2@{}/test?password=hunter3", silent.local_addr().unwrap());
    let started = Instant::now();
    let e = PostgresSink::connect("alerts", &url, "alerts", "alert_id", Duration::from_millis(500)).err().expect("connected");
    let elapsed = started.elapsed();
    let message = e.to_string();
    assert!(matches!(e, PostgresError::ConnectTimeout { .. }), "{message}");
    assert!(elapsed >= Duration::from_millis(500) && elapsed < Duration::from_secs(2), "took {elapsed:?}");
    assert!(message.contains("within 500ms") && !message.contains("hunter"), "{message}");
}

#[test]
fn a_connection_killed_between_batches_is_reopened_by_the_next_flush() {
    logs();
    let mut cleanup = Cleanup::new();
    let table = cleanup.table("killed");
    let mut sink = connect("alerts", &table);
    write_alerts(&mut sink, 0..100);
    sink.flush().unwrap();
    for round in 1..=3 {
        let pid = sink.backend_pid().expect("connected");
        cleanup.admin.terminate(pid);
        write_alerts(&mut sink, round * 100..(round + 1) * 100);
        sink.flush().unwrap();
        let new_pid = sink.backend_pid().expect("reconnected");
        assert_ne!(new_pid, pid, "a new connection");
    }
    assert_eq!((sink.inserted(), sink.already_present()), (400, 0));
    let (rows, transactions) = cleanup.admin.contents(&format!("\"{table}\""), "alert_id");
    assert_eq!(rows, expected(0..400), "every row exactly once");
    assert_eq!(transactions, 4);
}

#[test]
fn a_connection_killed_mid_batch_is_retried_whole_on_a_new_one() {
    logs();
    let mut cleanup = Cleanup::new();
    let table = cleanup.table("midbatch");
    let quoted = format!("\"{table}\"");
    let name = format!("midbatch-{}", suffix());
    let mut sink = connect(&name, &table);
    let pid = sink.backend_pid().expect("connected");
    // Another session holds key 50 in an open transaction: the sink's INSERT writes rows 0..50,
    // then waits on row 50 inside its transaction. That is when its connection is killed.
    let blocker = Admin::connect();
    let (key, _) = alert(50);
    blocker.exec(&format!("BEGIN; INSERT INTO {quoted} (alert_id, payload) VALUES ('{key}', '{{\"blocker\":true}}')"));
    write_alerts(&mut sink, 0..100);
    let flusher = std::thread::spawn(move || {
        let result = sink.flush();
        (sink, result)
    });
    cleanup.admin.wait_for_lock_wait(&format!("sda-pipeline sink {name}"), 0);
    cleanup.admin.terminate(pid);
    // The sink reconnects and retries the batch, which waits on the same row again.
    let retry_pid = cleanup.admin.wait_for_lock_wait(&format!("sda-pipeline sink {name}"), pid);
    assert_ne!(retry_pid, pid);
    assert_eq!(cleanup.admin.count(&quoted), 0, "nothing of the killed transaction is visible");
    blocker.exec("ROLLBACK");
    let (sink, result) = flusher.join().unwrap();
    result.unwrap();
    assert_eq!((sink.inserted(), sink.already_present()), (100, 0));
    let (rows, transactions) = cleanup.admin.contents(&quoted, "alert_id");
    assert_eq!(rows, expected(0..100), "every row exactly once, none from the blocker");
    assert_eq!(transactions, 1, "the whole batch in the one transaction that committed");
}

/// A TCP proxy in front of the server, which can be stopped (connections cut, port closed: the
/// server is unreachable) and started again on the same port.
struct Proxy {
    port: u16,
    running: Option<Running>,
}

/// A listening proxy: its stop flag, the sockets of its connections, its accepting thread.
type Running = (Arc<AtomicBool>, Arc<Mutex<Vec<TcpStream>>>, JoinHandle<()>);

impl Proxy {
    fn start() -> Proxy {
        let mut proxy = Proxy { port: 0, running: None };
        proxy.listen(TcpListener::bind("127.0.0.1:0").unwrap());
        proxy
    }

    fn url(&self) -> String {
        url_via(&format!("127.0.0.1:{}", self.port))
    }

    fn listen(&mut self, listener: TcpListener) {
        self.port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let upstream: SocketAddr = addr().parse().expect("SDA_TEST_POSTGRES_ADDR is ip:port");
        let stop = Arc::new(AtomicBool::new(false));
        let streams = Arc::new(Mutex::new(Vec::<TcpStream>::new()));
        let (stop2, streams2) = (stop.clone(), streams.clone());
        let accepter = std::thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        client.set_nonblocking(false).unwrap();
                        let Ok(server) = TcpStream::connect(upstream) else { continue };
                        let mut all = streams2.lock().unwrap();
                        for (mut from, mut to) in [
                            (client.try_clone().unwrap(), server.try_clone().unwrap()),
                            (server.try_clone().unwrap(), client.try_clone().unwrap()),
                        ] {
                            std::thread::spawn(move || {
                                let _ = io::copy(&mut from, &mut to);
                                let _ = to.shutdown(Shutdown::Write);
                            });
                        }
                        all.extend([client, server]);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(5)),
                    Err(e) => panic!("proxy accept: {e}"),
                }
            }
        });
        self.running = Some((stop, streams, accepter));
    }

    /// Cuts every connection and closes the port.
    fn stop(&mut self) {
        if let Some((stop, streams, accepter)) = self.running.take() {
            stop.store(true, Ordering::SeqCst);
            accepter.join().unwrap();
            for s in streams.lock().unwrap().drain(..) {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }

    /// Opens the same port again.
    fn restart(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).unwrap();
        self.listen(listener);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop();
    }
}

#[test]
fn an_unreachable_server_exhausts_the_retry_limit_and_the_rows_wait_for_the_next_flush() {
    logs();
    let mut cleanup = Cleanup::new();
    let table = cleanup.table("unreachable");
    let quoted = format!("\"{table}\"");
    let mut proxy = Proxy::start();
    let limit = Duration::from_millis(1500);
    let mut sink =
        PostgresSink::connect("alerts", &proxy.url(), &table, "alert_id", Duration::from_secs(1)).unwrap().with_retry_limit(limit);
    write_alerts(&mut sink, 0..10);
    sink.flush().unwrap();

    proxy.stop();
    write_alerts(&mut sink, 10..30);
    let started = Instant::now();
    let e = sink.flush().expect_err("flushed with the server unreachable");
    let elapsed = started.elapsed();
    let message = e.to_string();
    assert!(matches!(e, PostgresError::RetryLimit { attempts: 3.., .. }), "{message}");
    assert!(elapsed >= limit && elapsed < limit + Duration::from_secs(2), "gave up after {elapsed:?}");
    assert!(message.contains(&format!("table `{table}`")) && message.contains("20 rows stay queued"), "{message}");
    assert_eq!(sink.pending(), 20, "no row lost");
    assert_eq!(cleanup.admin.count(&quoted), 10);

    proxy.restart();
    sink.flush().unwrap();
    assert_eq!((sink.inserted(), sink.already_present(), sink.pending()), (30, 0, 0));
    let (rows, _) = cleanup.admin.contents(&quoted, "alert_id");
    assert_eq!(rows, expected(0..30));
}

#[test]
fn by_default_a_flush_waits_for_the_server_to_come_back() {
    logs();
    let mut cleanup = Cleanup::new();
    let table = cleanup.table("comeback");
    let mut proxy = Proxy::start();
    let mut sink = PostgresSink::connect("alerts", &proxy.url(), &table, "alert_id", Duration::from_secs(1)).unwrap();
    proxy.stop();
    write_alerts(&mut sink, 0..50);
    let flusher = std::thread::spawn(move || {
        let result = sink.flush();
        (sink, result)
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!flusher.is_finished(), "the flush gave up while the server was away");
    proxy.restart();
    let (sink, result) = flusher.join().unwrap();
    result.unwrap();
    assert_eq!(sink.inserted(), 50);
    assert_eq!(cleanup.admin.contents(&format!("\"{table}\""), "alert_id").0, expected(0..50));
}

/// Rows per second for batches of small JSON alerts (run with `--nocapture` to see the figures).
#[test]
fn throughput_of_512_and_4096_row_batches() {
    let mut cleanup = Cleanup::new();
    for (batch, batches) in [(512, 40), (4096, 10)] {
        let table = cleanup.table(&format!("throughput{batch}"));
        let mut sink = connect("alerts", &table);
        let records: Vec<(String, String)> = (0..batch * batches).map(alert).collect();
        let started = Instant::now();
        for chunk in records.chunks(batch) {
            for (key, payload) in chunk {
                sink.write(key.as_bytes(), payload.as_bytes()).unwrap();
            }
            sink.flush().unwrap();
        }
        let elapsed = started.elapsed();
        let rows = (batch * batches) as f64;
        eprintln!(
            "batches of {batch}: {} rows in {elapsed:.2?}: {:.0} rows/s, {:.2} ms a batch",
            batch * batches,
            rows / elapsed.as_secs_f64(),
            elapsed.as_secs_f64() * 1000.0 / batches as f64
        );
        // The same again: a replay, every row already there.
        let started = Instant::now();
        for chunk in records.chunks(batch) {
            for (key, payload) in chunk {
                sink.write(key.as_bytes(), payload.as_bytes()).unwrap();
            }
            sink.flush().unwrap();
        }
        eprintln!("  replayed: {:.0} rows/s", rows / started.elapsed().as_secs_f64());
        assert_eq!((sink.inserted(), sink.already_present()), ((batch * batches) as u64, (batch * batches) as u64));
        assert_eq!(cleanup.admin.count(&format!("\"{table}\"")), (batch * batches) as i64);
    }
}

/// The whole pipeline against a PostgreSQL server behind a proxy, with `max_retry_ms = 3000`: an
/// outage shorter than that delays a batch and dead-letters nothing; a longer one dead-letters
/// the batch as `RetriesExhausted` (with its retry count) and the pipeline goes on with the next.
#[test]
fn a_sink_outage_within_the_retry_budget_delays_and_a_longer_one_dead_letters_the_batch() {
    use sda_testkit::{Scratch, plugins};
    let mut cleanup = Cleanup::new();
    let table = cleanup.table("retrybudget");
    let mut proxy = Proxy::start();
    let scratch = Scratch::new();
    scratch.write("in.jsonl", "");
    scratch.write(
        "pipeline.toml",
        format!(
            "version = 1\nname = \"retry-budget\"\n\
             [sources.obs]\ntype = \"file\"\npath = \"in.jsonl\"\nkey_field = \"id\"\n\
             [operators.pass]\nplugin = {:?}\ninputs = [\"obs\"]\n\
             [sinks.db]\ntype = \"postgres\"\ninputs = [\"pass\"]\nurl = {:?}\ntable = {table:?}\nmax_retry_ms = 3000\n\
             [dlq]\ntype = \"file\"\npath = \"out/dlq.jsonl\"\n",
            plugins::PASSTHROUGH,
            proxy.url()
        ),
    );
    let lines = |range: std::ops::Range<u32>| range.map(|i| format!("{{\"id\":\"r{i:03}\",\"n\":{i}}}\n")).collect::<String>();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sda-pipeline"))
        .current_dir(scratch.path())
        .args(["run", "--follow", "--quiet"])
        .env("SDA_CACHE_DIR", std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let quoted = format!("\"{table}\"");
    let rows = |n: i64| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !cleanup.admin.one::<bool>(&format!("SELECT to_regclass('{quoted}') IS NOT NULL"), &[]) || cleanup.admin.count(&quoted) < n {
            assert!(Instant::now() < deadline, "timed out waiting for {n} rows");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    scratch.append("in.jsonl", lines(0..10));
    rows(10);

    // Within the budget: 1 s away, then back.
    proxy.stop();
    scratch.append("in.jsonl", lines(10..20));
    std::thread::sleep(Duration::from_millis(1000));
    proxy.restart();
    rows(20);
    assert!(scratch.read_jsonl("out/dlq.jsonl").is_empty(), "an outage within the budget dead-letters nothing");

    // Beyond it: the batch is dead-lettered and the next one delivered once the server is back.
    proxy.stop();
    scratch.append("in.jsonl", lines(20..30));
    let deadline = Instant::now() + Duration::from_secs(60);
    while scratch.read_jsonl("out/dlq.jsonl").len() < 10 {
        assert!(Instant::now() < deadline, "the batch was not dead-lettered");
        std::thread::sleep(Duration::from_millis(50));
    }
    proxy.restart();
    scratch.append("in.jsonl", lines(30..40));
    rows(30);
    let _ = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status();
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");

    let dlq = scratch.read_jsonl("out/dlq.jsonl");
    let keys: Vec<&str> = dlq.iter().map(|e| e["key"].as_str().unwrap()).collect();
    assert_eq!(keys, (20..30).map(|i| format!("r{i:03}")).collect::<Vec<_>>());
    for entry in &dlq {
        assert_eq!(entry["error_kind"], "RetriesExhausted", "{entry}");
        assert_eq!(entry["stage"], "sink", "{entry}");
        assert_eq!(entry["operator"], "db", "{entry}");
        assert!(entry["retry_count"].as_u64().unwrap() >= 1, "{entry}");
        assert!(entry["error_message"].as_str().unwrap().contains("gave up after"), "{entry}");
    }
    let (contents, _) = cleanup.admin.contents(&quoted, "alert_id");
    let expected: Vec<String> = (0..20).chain(30..40).map(|i| format!("r{i:03}")).collect();
    assert_eq!(contents.keys().cloned().collect::<Vec<_>>(), expected);
}
