//! What the test broker does: the fault-injecting proxy, and the Kafka semantics of the Tansu build the tests
//! run (idempotence, consumer groups, transactions, fencing), pinned with real librdkafka clients.
//!
//! The host's Kafka design leans on these. Where Tansu departs from Kafka, the test is named after the
//! departure, asserts what Tansu really does, and says what a correct broker would do: those are the minimal
//! reproductions the project keeps. If one starts failing, the broker changed: re-check the host's Kafka
//! limitations (README) against the new behaviour before touching the assertion.
//!
//! Some tests re-run this test binary as a child process (see [`child_process_role`]) so that a Kafka client
//! can be killed with SIGKILL mid-transaction or mid-group, as a crashing host would be.
//!
//! Timings go to stderr as `[timing] ...` lines (`cargo test --test broker -- --nocapture` shows them).

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};
use sda_testkit::kafka::{
    self, ConsumedRecord, Isolation, Tansu, group_consumer_config, producer_config, transactional_producer_config, unique_group,
    unique_topic,
};
use sda_testkit::proxy::Proxy;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Generous bound for anything a loaded 2-core machine should do in well under a second.
const SHORT: Duration = Duration::from_secs(30);
/// Bound for group membership changes (session timeouts, rebalances).
const REBALANCE: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------------------
// The proxy, against a plain echo server.
// ---------------------------------------------------------------------------------------------------------

/// An echo server on a free loopback port, one thread per connection, until the test ends.
fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = stream.try_clone().unwrap();
                let mut writer = stream;
                let _ = std::io::copy(&mut reader, &mut writer);
            });
        }
    });
    addr
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    stream.set_read_timeout(Some(SHORT)).unwrap();
    stream
}

/// Reads exactly `n` bytes, or fails when the stream's read timeout passes.
fn read_n(stream: &mut TcpStream, n: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; n];
    stream.read_exact(&mut buf)?;
    Ok(buf)
}

/// True if the peer closed `stream` (a read returns end of file or a reset) within `timeout`.
fn closed_within(stream: &mut TcpStream, timeout: Duration) -> bool {
    stream.set_read_timeout(Some(timeout)).unwrap();
    let mut byte = [0u8; 1];
    matches!(stream.read(&mut byte), Ok(0) | Err(_)) && {
        // A timeout is an error too: tell it apart.
        let again = stream.read(&mut byte);
        !matches!(again, Err(ref e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut)
    }
}

#[test]
fn proxy_forwards_bytes_both_ways() {
    let proxy = Proxy::start(echo_server());
    let mut a = connect(proxy.addr());
    let mut b = connect(proxy.addr());
    a.write_all(b"hello from a").unwrap();
    b.write_all(b"hello from b").unwrap();
    assert_eq!(read_n(&mut a, 12).unwrap(), b"hello from a");
    assert_eq!(read_n(&mut b, 12).unwrap(), b"hello from b");
    let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let mut writer = a.try_clone().unwrap();
    let sent = big.clone();
    let feeder = std::thread::spawn(move || writer.write_all(&sent).unwrap());
    assert_eq!(read_n(&mut a, big.len()).unwrap(), big, "a megabyte comes back unchanged and in order");
    feeder.join().unwrap();
    assert!(proxy.wait_for_connections(2, SHORT));
    assert_eq!(proxy.connections(), 2);
    assert_eq!(proxy.accepted(), 2);
    // The counter moves just after each write: the last one may lag the reader by a moment.
    let deadline = Instant::now() + SHORT;
    while proxy.bytes_forwarded() < 2 * (24 + 1_000_000) as u64 {
        assert!(Instant::now() < deadline, "bytes forwarded: {}", proxy.bytes_forwarded());
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn proxy_cut_closes_open_connections_and_accepts_new_ones() {
    let proxy = Proxy::start(echo_server());
    let mut a = connect(proxy.addr());
    let mut b = connect(proxy.addr());
    a.write_all(b"ping").unwrap();
    b.write_all(b"ping").unwrap();
    read_n(&mut a, 4).unwrap();
    read_n(&mut b, 4).unwrap();
    assert_eq!(proxy.cut(), 2, "both connections were open");
    assert!(closed_within(&mut a, SHORT), "a cut connection is closed for the client");
    assert!(closed_within(&mut b, SHORT));
    assert_eq!(proxy.connections(), 0);
    let mut c = connect(proxy.addr());
    c.write_all(b"again").unwrap();
    assert_eq!(read_n(&mut c, 5).unwrap(), b"again", "a new connection gets through after a cut");
}

#[test]
fn proxy_stall_holds_bytes_then_releases_them_in_order() {
    let proxy = Proxy::start(echo_server());
    let mut a = connect(proxy.addr());
    a.write_all(b"before").unwrap();
    assert_eq!(read_n(&mut a, 6).unwrap(), b"before");
    proxy.stall(true);
    a.write_all(b"one,").unwrap();
    a.write_all(b"two,").unwrap();
    a.set_read_timeout(Some(Duration::from_millis(700))).unwrap();
    let mut byte = [0u8; 1];
    let held = a.read(&mut byte);
    assert!(
        matches!(held, Err(ref e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut),
        "nothing comes back while stalled, and the connection stays open: {held:?}"
    );
    assert_eq!(proxy.connections(), 1);
    // A connection opened during the stall is held too.
    let mut b = connect(proxy.addr());
    b.write_all(b"late").unwrap();
    a.write_all(b"three").unwrap();
    proxy.stall(false);
    a.set_read_timeout(Some(SHORT)).unwrap();
    assert_eq!(read_n(&mut a, 13).unwrap(), b"one,two,three", "held bytes are released in order");
    assert_eq!(read_n(&mut b, 4).unwrap(), b"late");
}

#[test]
fn proxy_stall_downstream_lets_requests_through_but_holds_answers() {
    let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy = Proxy::start(upstream.local_addr().unwrap());
    let mut client = connect(proxy.addr());
    let (mut server, _) = upstream.accept().unwrap();
    server.set_read_timeout(Some(SHORT)).unwrap();
    proxy.stall_downstream(true);
    client.write_all(b"request").unwrap();
    assert_eq!(read_n(&mut server, 7).unwrap(), b"request", "requests still reach the server");
    server.write_all(b"answer").unwrap();
    client.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    assert!(read_n(&mut client, 1).is_err(), "the answer is held");
    proxy.stall_downstream(false);
    client.set_read_timeout(Some(SHORT)).unwrap();
    assert_eq!(read_n(&mut client, 6).unwrap(), b"answer");
}

#[test]
fn proxy_refuse_closes_new_connections_and_leaves_open_ones() {
    let proxy = Proxy::start(echo_server());
    let mut open = connect(proxy.addr());
    open.write_all(b"x").unwrap();
    read_n(&mut open, 1).unwrap();
    proxy.refuse(true);
    let mut refused = connect(proxy.addr());
    assert!(closed_within(&mut refused, SHORT), "a new connection is closed at once");
    assert_eq!(proxy.refused(), 1);
    open.write_all(b"y").unwrap();
    assert_eq!(read_n(&mut open, 1).unwrap(), b"y", "an open connection is left alone");
    proxy.refuse(false);
    let mut again = connect(proxy.addr());
    again.write_all(b"z").unwrap();
    assert_eq!(read_n(&mut again, 1).unwrap(), b"z");
}

#[test]
fn proxy_drop_closes_everything() {
    let proxy = Proxy::start(echo_server());
    let addr = proxy.addr();
    let mut a = connect(addr);
    a.write_all(b"x").unwrap();
    read_n(&mut a, 1).unwrap();
    drop(proxy);
    assert!(closed_within(&mut a, SHORT));
    assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err(), "nothing listens any more");
}

// ---------------------------------------------------------------------------------------------------------
// The testkit's broker harness.
// ---------------------------------------------------------------------------------------------------------

#[test]
fn brokers_start_quickly_on_their_own_ports_with_their_own_storage() {
    let started = Instant::now();
    let a = Tansu::start();
    let first = started.elapsed();
    let b = Tansu::start();
    eprintln!("[timing] broker start (until a metadata request succeeds): {first:?}, then {:?}", started.elapsed() - first);
    assert_ne!(a.brokers(), b.brokers());
    let topic = unique_topic("isolated");
    a.create_topic(&topic, 2);
    assert_eq!(kafka::partition_count(&a.brokers(), &topic), Ok(2));
    assert!(kafka::partition_count(&b.brokers(), &topic).is_err(), "storage is per broker");
    assert!(first < SHORT);
}

#[test]
fn partitioner_is_kafkas_murmur2() {
    // Vectors from Kafka's own UtilsTest.testMurmur2.
    assert_eq!(kafka::murmur2(b"21"), -973932308);
    assert_eq!(kafka::murmur2(b"foobar"), -790332482);
    assert_eq!(kafka::murmur2(b"a-little-bit-long-string"), -985981536);
    assert_eq!(kafka::murmur2(b"a-little-bit-longer-string"), -1486304829);
    assert_eq!(kafka::murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"), -58897971);
    assert_eq!(kafka::murmur2(b"abc"), 479470107);
    for key in ["a", "object-17", "xyz-123456"] {
        let p = kafka::partition_for_key(key.as_bytes(), 4);
        assert!((0..4).contains(&p));
    }
}

/// Kafka answers ListOffsets (latest) with the log end offset: one past the last record. Tansu answers
/// with one past the *first* record of the last batch, so a partition whose last batch holds several
/// records looks shorter than it is (5,000 records in one batch: end offset 1). A fetch still returns
/// every record and ends with a correct partition EOF. So the host never trusts a ListOffsets end offset
/// for where to stop reading: it reads to the partition's EOF, and checkpoints its own sinks' positions
/// from their delivery reports as well.
#[test]
fn tansu_reports_the_last_batchs_first_offset_plus_one_as_the_end_offset() {
    let tansu = Tansu::start();
    let topic = unique_topic("end-offset");
    tansu.create_topic(&topic, 1);
    let values: Vec<String> = (0..5000).map(|i| format!("record-{i}")).collect();
    let records: Vec<(Option<i32>, &[u8], &[u8])> = values.iter().map(|v| (Some(0), &b"k"[..], v.as_bytes())).collect();
    let landed = tansu.produce(&topic, &records);
    assert_eq!(landed.last(), Some(&(0, 4999)), "the last record is at offset 4999");
    let read = tansu.read_topic(&topic, Isolation::ReadUncommitted, SHORT);
    assert_eq!(read.records.len(), 5000, "a fetch returns every record");
    assert_eq!(read.end_positions, [Some(5000)], "and ends at the true end");
    let (_, high) = tansu.watermarks(&topic, Isolation::ReadUncommitted)[0];
    let last_batch_start = high - 1;
    // A correct broker: 5000.
    assert!(
        high < 5000 && landed.iter().any(|(_, o)| *o == last_batch_start),
        "Tansu now reports the true end offset ({high}): this reproduction is obsolete; the host's EOF-based reading \
         still works, but revisit the README's Kafka limitations"
    );
}

#[test]
fn produce_lines_keyed_spreads_lines_by_key_and_keeps_their_order() {
    let tansu = Tansu::start();
    let topic = unique_topic("lines");
    tansu.create_topic(&topic, 4);
    let lines: Vec<String> = (0..200).map(|i| format!(r#"{{"object_id":{},"seq":{i}}}"#, i % 13)).collect();
    let key_of = |line: &str| serde_json::from_str::<serde_json::Value>(line).unwrap()["object_id"].to_string();
    let counts = tansu.produce_lines_keyed(&topic, &lines, 4, key_of);
    assert_eq!(counts.iter().sum::<usize>(), 200);
    let records = tansu.consume_all(&topic, Isolation::ReadUncommitted, SHORT);
    assert_eq!(records.len(), 200);
    let mut per_partition: BTreeMap<i32, Vec<&ConsumedRecord>> = BTreeMap::new();
    for r in &records {
        assert_eq!(r.partition, kafka::partition_for_key(r.key_str().as_bytes(), 4), "placed by its key");
        assert_eq!(r.key_str(), key_of(r.value_str()));
        per_partition.entry(r.partition).or_default().push(r);
    }
    for (p, rs) in per_partition {
        assert_eq!(rs.len(), counts[p as usize]);
        let seqs: Vec<u64> =
            rs.iter().map(|r| serde_json::from_str::<serde_json::Value>(r.value_str()).unwrap()["seq"].as_u64().unwrap()).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "partition {p} keeps the lines' order: {seqs:?}");
        assert!(rs.iter().enumerate().all(|(i, r)| r.offset == i as i64), "no gaps without transactions");
    }
}

// ---------------------------------------------------------------------------------------------------------
// Idempotent producer.
// ---------------------------------------------------------------------------------------------------------

/// An idempotent producer with deliveries served by `flush`.
fn idempotent_producer(brokers: &str) -> BaseProducer {
    producer_config(brokers).create().expect("creating a producer")
}

#[test]
fn idempotent_producer_round_trip_keeps_order_keys_and_headers() {
    let tansu = Tansu::start();
    let topic = unique_topic("roundtrip");
    tansu.create_topic(&topic, 3);
    let producer = idempotent_producer(&tansu.brokers());
    for i in 0..300 {
        let headers = OwnedHeaders::new()
            .insert(Header { key: "seq", value: Some(i.to_string().as_bytes()) })
            .insert(Header { key: "trace", value: Some(&[0u8, 255, 7][..]) })
            .insert(Header::<&[u8]> { key: "empty", value: None });
        let (key, value) = (format!("key-{i}"), format!("value-{i}"));
        let record = BaseRecord::to(&topic).partition(i % 3).key(&key).payload(&value).headers(headers);
        producer.send(record).map_err(|(e, _)| e).unwrap();
        producer.poll(Duration::ZERO);
    }
    producer.flush(SHORT).expect("every record acknowledged");
    for isolation in [Isolation::ReadUncommitted, Isolation::ReadCommitted] {
        let records = tansu.consume_all(&topic, isolation, SHORT);
        assert_eq!(records.len(), 300, "{isolation:?}");
        for r in &records {
            let i: i32 = r.value_str().strip_prefix("value-").unwrap().parse().unwrap();
            assert_eq!(r.partition, i % 3);
            assert_eq!(r.offset, i64::from(i / 3), "in send order, no gaps, no duplicates");
            assert_eq!(r.key_str(), format!("key-{i}"));
            assert_eq!(
                r.headers,
                vec![
                    ("seq".to_string(), Some(i.to_string().into_bytes())),
                    ("trace".to_string(), Some(vec![0, 255, 7])),
                    ("empty".to_string(), None)
                ],
                "headers intact, in order, a null value kept null"
            );
            assert!(r.timestamp_ms.is_some_and(|t| t > 0));
        }
    }
}

/// The case idempotence exists for: the broker appends a batch, the acknowledgement is lost, the connection
/// breaks, the producer sends the batch again on a new connection. A correct broker recognises the producer
/// id and sequence number and answers with the original offset instead of appending it twice.
#[test]
fn idempotent_producer_retry_after_a_lost_acknowledgement_is_written_once() {
    let (tansu, proxy) = Tansu::start_with_proxy();
    let topic = unique_topic("lost-ack");
    tansu.create_topic(&topic, 1);
    let producer = idempotent_producer(&tansu.brokers());
    producer.send(BaseRecord::to(&topic).partition(0).key("k").payload("first")).map_err(|(e, _)| e).unwrap();
    producer.flush(SHORT).unwrap();
    assert_eq!(tansu.log_end_offset(&topic, 0), 1);

    proxy.stall_downstream(true);
    producer.send(BaseRecord::to(&topic).partition(0).key("k").payload("second")).map_err(|(e, _)| e).unwrap();
    let deadline = Instant::now() + SHORT;
    while tansu.log_end_offset(&topic, 0) < 2 {
        producer.poll(Duration::from_millis(20));
        assert!(Instant::now() < deadline, "the broker never got the second record");
    }
    let accepted_before = proxy.accepted();
    // The answer is lost with the connection; the producer must send again through the proxy.
    proxy.cut();
    proxy.stall_downstream(false);
    producer.flush(SHORT).expect("the retried record is acknowledged");
    assert!(proxy.accepted() > accepted_before, "the producer reconnected through the proxy (the advertised address)");
    producer.send(BaseRecord::to(&topic).partition(0).key("k").payload("third")).map_err(|(e, _)| e).unwrap();
    producer.flush(SHORT).unwrap();

    let values: Vec<String> =
        tansu.consume_all(&topic, Isolation::ReadUncommitted, SHORT).iter().map(|r| r.value_str().to_string()).collect();
    assert_eq!(values, ["first", "second", "third"], "the retry was not appended again");
    assert_eq!(tansu.log_end_offset(&topic, 0), 3);
}

// ---------------------------------------------------------------------------------------------------------
// Consumer groups.
// ---------------------------------------------------------------------------------------------------------

/// A member of a consumer group that commits every record it gets (synchronously) and remembers them.
struct Member {
    name: &'static str,
    consumer: BaseConsumer,
    /// (partition, offset, value) of every record received, in order.
    seen: Vec<(i32, i64, String)>,
    errors: Vec<String>,
    /// Commit each record as it comes (else offsets are someone else's business).
    commits: bool,
}

impl Member {
    fn join(brokers: &str, group: &str, topic: &str, name: &'static str) -> Member {
        let consumer: BaseConsumer = group_consumer_config(brokers, group, Isolation::ReadCommitted).create().expect("creating a consumer");
        consumer.subscribe(&[topic]).expect("subscribing");
        Member { name, consumer, seen: Vec::new(), errors: Vec::new(), commits: true }
    }

    /// Polls once (up to 100 ms); commits and records what comes.
    fn poll(&mut self) {
        match self.consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let value = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
                if self.commits
                    && let Err(e) = self.consumer.commit_message(&m, CommitMode::Sync)
                {
                    self.errors.push(format!("commit: {e}"));
                }
                self.seen.push((m.partition(), m.offset(), value));
            }
            Some(Err(e)) => self.errors.push(e.to_string()),
            None => {}
        }
    }

    fn assigned(&self) -> BTreeSet<i32> {
        self.consumer.assignment().map(|tpl| tpl.elements().iter().map(|e| e.partition()).collect()).unwrap_or_default()
    }

    fn seen_since(&self, from: usize) -> BTreeSet<(i32, i64)> {
        self.seen[from..].iter().map(|(p, o, _)| (*p, *o)).collect()
    }
}

/// Polls `members` in turn until `done` holds or `timeout` passes; returns the time it took, or panics with
/// what every member had.
fn poll_until(members: &mut [&mut Member], timeout: Duration, what: &str, done: impl Fn(&[&mut Member]) -> bool) -> Duration {
    let started = Instant::now();
    loop {
        for m in members.iter_mut() {
            m.poll();
        }
        if done(members) {
            return started.elapsed();
        }
        if started.elapsed() > timeout {
            let state: Vec<String> = members
                .iter()
                .map(|m| format!("{}: assigned {:?}, {} records, errors {:?}", m.name, m.assigned(), m.seen.len(), m.errors))
                .collect();
            panic!("{what}: not within {timeout:?}: {}", state.join("; "));
        }
    }
}

/// Produces `per_partition` records to each of `partitions` partitions, values `p{p}-{i}`.
fn fill(tansu: &Tansu, topic: &str, partitions: i32, per_partition: usize) {
    let values: Vec<(i32, String)> = (0..partitions).flat_map(|p| (0..per_partition).map(move |i| (p, format!("p{p}-{i}")))).collect();
    let records: Vec<(Option<i32>, &[u8], &[u8])> = values.iter().map(|(p, v)| (Some(*p), &b"k"[..], v.as_bytes())).collect();
    tansu.produce(topic, &records);
}

fn all_partitions(n: i32) -> BTreeSet<i32> {
    (0..n).collect()
}

/// Two members split four partitions, each consumes and commits its share: returns when that is done.
fn two_members_split(tansu: &Tansu, group: &str, topic: &str) -> (Member, Member) {
    let mut a = Member::join(&tansu.brokers(), group, topic, "a");
    let mut b = Member::join(&tansu.brokers(), group, topic, "b");
    let took = poll_until(&mut [&mut a, &mut b], REBALANCE, "two members split four partitions and consume them", |ms| {
        let (pa, pb) = (ms[0].assigned(), ms[1].assigned());
        !pa.is_empty()
            && !pb.is_empty()
            && pa.is_disjoint(&pb)
            && pa.union(&pb).copied().collect::<BTreeSet<_>>() == all_partitions(4)
            && ms[0].seen.len() + ms[1].seen.len() >= 20
    });
    eprintln!("[timing] two new members split 4 partitions and consumed them in {took:?}");
    for m in [&a, &b] {
        let expected: BTreeSet<(i32, i64)> = m.assigned().iter().flat_map(|p| (0..5).map(move |o| (*p, o))).collect();
        assert_eq!(m.seen_since(0), expected, "{} consumed exactly its partitions, each from the start", m.name);
        assert!(m.errors.is_empty(), "{}: {:?}", m.name, m.errors);
    }
    assert_eq!(tansu.committed_offsets(group, topic), vec![Some(5); 4], "both members' commits are stored");
    (a, b)
}

/// After `survivor` alone owns the group, one more record per partition: it must get exactly those (offset 5
/// everywhere), i.e. resume the partitions it took over from the offsets the other member committed.
fn survivor_takes_over(tansu: &Tansu, group: &str, topic: &str, survivor: &mut Member, what: &str) -> Duration {
    let before = survivor.seen.len();
    let started = Instant::now();
    fill(tansu, topic, 4, 1);
    let took =
        poll_until(&mut [&mut *survivor], REBALANCE, what, |ms| ms[0].assigned() == all_partitions(4) && ms[0].seen.len() - before >= 4);
    // Anything re-delivered would show up now.
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_millis(500) {
        survivor.poll();
    }
    let expected: BTreeSet<(i32, i64)> = (0..4).map(|p| (p, 5)).collect();
    assert_eq!(survivor.seen_since(before), expected, "{what}: resumes every partition at its committed offset, nothing re-delivered");
    assert_eq!(survivor.seen.len() - before, 4, "no duplicates");
    assert_eq!(tansu.committed_offsets(group, topic), vec![Some(6); 4]);
    let _ = took;
    started.elapsed()
}

#[test]
fn group_splits_partitions_and_a_closed_members_share_moves_to_the_other_at_its_committed_offsets() {
    let tansu = Tansu::start();
    let topic = unique_topic("group-close");
    tansu.create_topic(&topic, 4);
    fill(&tansu, &topic, 4, 5);
    let group = unique_group("close");
    let (a, mut b) = two_members_split(&tansu, &group, &topic);
    let closing = Instant::now();
    drop(a); // BaseConsumer's drop closes the consumer: it leaves the group.
    eprintln!("[timing] closing a member took {:?}", closing.elapsed());
    let took = survivor_takes_over(&tansu, &group, &topic, &mut b, "after a member closes, the other gets all 4 partitions");
    eprintln!("[timing] after a member closed, the other owned all 4 partitions and read on in {took:?}");
}

#[test]
fn group_reassigns_the_partitions_of_a_member_that_stops_polling() {
    let tansu = Tansu::start();
    let topic = unique_topic("group-stall");
    tansu.create_topic(&topic, 4);
    fill(&tansu, &topic, 4, 5);
    let group = unique_group("stall");
    let (a, mut b) = two_members_split(&tansu, &group, &topic);
    // `a` is never polled again: librdkafka keeps heartbeating for it, then leaves the group once
    // max.poll.interval.ms (10 s) passes.
    let took = survivor_takes_over(&tansu, &group, &topic, &mut b, "after a member stops polling, the other gets all 4 partitions");
    eprintln!(
        "[timing] after a member stopped polling, the other owned all 4 partitions and read on in {took:?} (max.poll.interval.ms 10 s)"
    );
    assert!(took >= Duration::from_secs(5), "not before the poll interval ran out: {took:?}");
    drop(a);
}

#[test]
fn group_reassigns_the_partitions_of_a_killed_member_after_its_session_times_out() {
    let tansu = Tansu::start();
    let topic = unique_topic("group-kill");
    tansu.create_topic(&topic, 4);
    fill(&tansu, &topic, 4, 5);
    let group = unique_group("kill");
    let mut child =
        ChildProcess::spawn("group-member", &[("BROKERS", tansu.brokers()), ("GROUP", group.clone()), ("TOPIC", topic.clone())]);
    let mut b = Member::join(&tansu.brokers(), &group, &topic, "b");
    // Both members own a share and every record is committed (the child commits what it reads).
    let mut child_assigned = BTreeSet::new();
    let started = Instant::now();
    loop {
        b.poll();
        while let Some(line) = child.try_line() {
            if let Some(list) = line.strip_prefix("ASSIGNED ") {
                child_assigned = list.split(',').filter(|s| !s.is_empty()).map(|s| s.parse().unwrap()).collect();
            }
        }
        let mine = b.assigned();
        if !mine.is_empty()
            && !child_assigned.is_empty()
            && mine.is_disjoint(&child_assigned)
            && mine.union(&child_assigned).copied().collect::<BTreeSet<_>>() == all_partitions(4)
            && b.seen.len() == 5 * mine.len()
            && tansu.committed_offsets(&group, &topic) == vec![Some(5); 4]
        {
            break;
        }
        assert!(
            started.elapsed() < REBALANCE,
            "child and parent never split the partitions: child {child_assigned:?}, parent {mine:?}; child said {:?}",
            child.lines
        );
    }
    eprintln!("[timing] parent and child members split 4 partitions and committed them in {:?}", started.elapsed());
    child.kill();
    let took = survivor_takes_over(&tansu, &group, &topic, &mut b, "after a member is killed, the other gets all 4 partitions");
    eprintln!("[timing] after a member was SIGKILLed, the other owned all 4 partitions and read on in {took:?} (session.timeout.ms 6 s)");
    assert!(took >= Duration::from_secs(3), "a killed member says nothing: only its session timeout frees its partitions ({took:?})");
}

// ---------------------------------------------------------------------------------------------------------
// Transactions.
// ---------------------------------------------------------------------------------------------------------

fn transactional_producer(brokers: &str, transactional_id: &str) -> BaseProducer {
    let producer: BaseProducer =
        transactional_producer_config(brokers, transactional_id).create().expect("creating a transactional producer");
    producer.init_transactions(SHORT).expect("init_transactions");
    producer
}

fn send(producer: &BaseProducer, topic: &str, partition: i32, value: &str) {
    producer.send(BaseRecord::to(topic).partition(partition).key("k").payload(value)).map_err(|(e, _)| e).expect("enqueueing a record");
    producer.poll(Duration::ZERO);
}

fn values(records: &[ConsumedRecord]) -> Vec<String> {
    records.iter().map(|r| r.value_str().to_string()).collect()
}

#[test]
fn committed_transactions_are_visible_to_read_committed_readers() {
    let tansu = Tansu::start();
    let topic = unique_topic("txn-commit");
    tansu.create_topic(&topic, 2);
    let producer = transactional_producer(&tansu.brokers(), &unique_group("txn-commit"));
    producer.begin_transaction().unwrap();
    for i in 0..3 {
        send(&producer, &topic, i % 2, &format!("committed-{i}"));
    }
    let committing = Instant::now();
    producer.commit_transaction(SHORT).expect("commit");
    eprintln!("[timing] commit_transaction of 3 records on 2 partitions: {:?}", committing.elapsed());
    let read = tansu.read_topic(&topic, Isolation::ReadCommitted, SHORT);
    assert!(read.complete(), "{read:?}");
    assert_eq!(read.values(), ["committed-0", "committed-2", "committed-1"]);
    // Each partition ends with a commit marker, which takes an offset.
    assert_eq!(read.end_positions, [Some(3), Some(2)]);
    assert_eq!(values(&tansu.consume_all(&topic, Isolation::ReadUncommitted, SHORT)), read.values());
}

/// Kafka: a read_committed consumer never returns a record of an aborted transaction (the broker lists
/// aborted transactions in each fetch answer and librdkafka drops their records). Tansu returns them: a
/// read_committed reader sees aborted records exactly as a read_uncommitted one does. So Kafka
/// transactions against this broker give no exactly-once on the read side: a sink that aborts leaves its
/// output visible.
#[test]
fn tansu_returns_aborted_records_to_read_committed_readers() {
    let tansu = Tansu::start();
    let topic = unique_topic("txn-abort");
    tansu.create_topic(&topic, 1);
    let producer = transactional_producer(&tansu.brokers(), &unique_group("txn-abort"));
    producer.begin_transaction().unwrap();
    send(&producer, &topic, 0, "committed-1");
    producer.commit_transaction(SHORT).unwrap();
    producer.begin_transaction().unwrap();
    send(&producer, &topic, 0, "aborted-1");
    send(&producer, &topic, 0, "aborted-2");
    producer.flush(SHORT).unwrap(); // On the broker before the abort.
    producer.abort_transaction(SHORT).expect("abort");
    producer.begin_transaction().unwrap();
    send(&producer, &topic, 0, "committed-2");
    producer.commit_transaction(SHORT).unwrap();

    let committed = tansu.read_topic(&topic, Isolation::ReadCommitted, SHORT);
    assert!(committed.complete(), "an aborted transaction does not block readers: {committed:?}");
    let uncommitted = tansu.consume_all(&topic, Isolation::ReadUncommitted, SHORT);
    assert_eq!(values(&uncommitted), ["committed-1", "aborted-1", "aborted-2", "committed-2"]);
    // Offsets: committed-1 0, commit marker 1, aborted 2 and 3, abort marker 4, committed-2 5, marker 6.
    assert_eq!(uncommitted.iter().map(|r| r.offset).collect::<Vec<_>>(), [0, 2, 3, 5]);
    // A correct broker: ["committed-1", "committed-2"].
    assert_eq!(
        committed.values(),
        ["committed-1", "aborted-1", "aborted-2", "committed-2"],
        "Tansu now hides aborted records from read_committed readers: this reproduction is obsolete; revisit the \
         README's Kafka limitations and turn this into a test that they stay hidden"
    );
}

#[test]
fn send_offsets_to_transaction_commits_the_groups_offsets_with_the_records() {
    let tansu = Tansu::start();
    let input = unique_topic("sot-in");
    let output = unique_topic("sot-out");
    tansu.create_topic(&input, 1);
    tansu.create_topic(&output, 1);
    fill(&tansu, &input, 1, 10);
    let group = unique_group("sot");
    let mut consumer = Member::join_without_commits(&tansu.brokers(), &group, &input);
    poll_until(&mut [&mut consumer], REBALANCE, "the consumer reads the 10 input records", |ms| ms[0].seen.len() >= 10);
    let metadata = consumer.consumer.group_metadata().expect("group metadata");
    let producer = transactional_producer(&tansu.brokers(), &unique_group("sot-txn"));

    producer.begin_transaction().unwrap();
    for (_, offset, value) in &consumer.seen {
        send(&producer, &output, 0, &format!("out-{offset}-{value}"));
    }
    let mut offsets = TopicPartitionList::new();
    offsets.add_partition_offset(&input, 0, Offset::Offset(10)).unwrap();
    let sending = Instant::now();
    producer.send_offsets_to_transaction(&offsets, &metadata, SHORT).expect("send_offsets_to_transaction");
    eprintln!("[timing] send_offsets_to_transaction: {:?}", sending.elapsed());
    assert_eq!(tansu.committed_offsets(&group, &input), [None], "offsets are not committed before the transaction is");
    producer.commit_transaction(SHORT).unwrap();
    assert_eq!(tansu.committed_offsets(&group, &input), [Some(10)], "committed with the transaction");
    assert_eq!(tansu.consume_all(&output, Isolation::ReadCommitted, SHORT).len(), 10);

    // An aborted transaction's offsets are dropped with it.
    fill(&tansu, &input, 1, 5);
    poll_until(&mut [&mut consumer], SHORT, "the consumer reads 5 more", |ms| ms[0].seen.len() >= 15);
    producer.begin_transaction().unwrap();
    send(&producer, &output, 0, "out-aborted");
    let mut offsets = TopicPartitionList::new();
    offsets.add_partition_offset(&input, 0, Offset::Offset(15)).unwrap();
    producer.send_offsets_to_transaction(&offsets, &consumer.consumer.group_metadata().unwrap(), SHORT).unwrap();
    producer.flush(SHORT).unwrap(); // A BaseProducer must serve its delivery reports before aborting.
    producer.abort_transaction(SHORT).unwrap();
    assert_eq!(tansu.committed_offsets(&group, &input), [Some(10)], "an aborted transaction commits no offsets");

    // A new member of the group starts where the committed transaction left the group.
    drop(consumer);
    let mut next = Member::join_without_commits(&tansu.brokers(), &group, &input);
    poll_until(&mut [&mut next], REBALANCE, "a new member reads from the committed offset", |ms| ms[0].seen.len() >= 5);
    assert_eq!(next.seen.first().map(|(_, o, _)| *o), Some(10));
}

/// Kafka commits the offsets of a transaction that wrote no records; Tansu 0.6 does not (its EndTxn skips a
/// transaction that never added a partition, and logs `otherwise=Some(Committed)`). The Kafka sink therefore
/// commits no empty transaction: a checkpoint with no outputs commits its offsets to the group directly, which
/// the second half shows works after transactional commits.
#[test]
fn tansu_does_not_commit_the_offsets_of_a_transaction_that_wrote_no_records() {
    let tansu = Tansu::start();
    let input = unique_topic("empty-txn-in");
    let output = unique_topic("empty-txn-out");
    tansu.create_topic(&input, 1);
    tansu.create_topic(&output, 1);
    fill(&tansu, &input, 1, 10);
    let group = unique_group("empty-txn");
    let mut consumer = Member::join_without_commits(&tansu.brokers(), &group, &input);
    poll_until(&mut [&mut consumer], REBALANCE, "the consumer reads the input", |ms| ms[0].seen.len() >= 10);
    let producer = transactional_producer(&tansu.brokers(), &unique_group("empty-txn-txn"));
    let commit = |offset: i64, record: bool| {
        producer.begin_transaction().unwrap();
        if record {
            send(&producer, &output, 0, &format!("through-{offset}"));
            producer.flush(SHORT).unwrap();
        }
        let mut offsets = TopicPartitionList::new();
        offsets.add_partition_offset(&input, 0, Offset::Offset(offset)).unwrap();
        producer.send_offsets_to_transaction(&offsets, &consumer.consumer.group_metadata().unwrap(), SHORT).unwrap();
        producer.commit_transaction(SHORT).unwrap();
    };
    commit(2, true);
    assert_eq!(tansu.committed_offsets(&group, &input), [Some(2)], "a transaction with a record commits its offsets");
    commit(4, false);
    assert_eq!(
        tansu.committed_offsets(&group, &input),
        [Some(2)],
        "Tansu now commits the offsets of a transaction without records (as Kafka does): the Kafka sink's direct \
         commit for such checkpoints (task/checkpointing.rs) is no longer needed; update this test"
    );
    // The host's way for a checkpoint without outputs: a plain commit, after transactional ones.
    let mut offsets = TopicPartitionList::new();
    offsets.add_partition_offset(&input, 0, Offset::Offset(6)).unwrap();
    consumer.consumer.commit(&offsets, CommitMode::Sync).unwrap();
    assert_eq!(tansu.committed_offsets(&group, &input), [Some(6)], "a direct commit stands");
    commit(8, true);
    assert_eq!(tansu.committed_offsets(&group, &input), [Some(8)], "and transactional commits go on after it");
}

impl Member {
    /// A member that does not commit (offsets go through a transaction instead).
    fn join_without_commits(brokers: &str, group: &str, topic: &str) -> Member {
        let mut m = Member::join(brokers, group, topic, "transactional");
        m.commits = false;
        m
    }
}

// ---------------------------------------------------------------------------------------------------------
// Fencing, and producers that disappear.
// ---------------------------------------------------------------------------------------------------------

fn is_fencing(e: &KafkaError) -> bool {
    let text = e.to_string().to_lowercase();
    text.contains("fenc") || text.contains("epoch")
}

/// Kafka: a producer initialising a `transactional.id` aborts the transaction the previous holder left open
/// and fences that holder off. Tansu does both: the open transaction is ended at once (read_committed
/// readers move past it), and the old producer's next write fails. Its records are aborted, but Tansu hands
/// them to read_committed readers all the same (see tansu_returns_aborted_records_to_read_committed_readers).
#[test]
fn a_second_producer_with_the_same_transactional_id_fences_the_first_and_ends_its_transaction() {
    let tansu = Tansu::start();
    let topic = unique_topic("fence");
    tansu.create_topic(&topic, 1);
    let id = unique_group("fence");
    let first = transactional_producer(&tansu.brokers(), &id);
    first.begin_transaction().unwrap();
    send(&first, &topic, 0, "before");
    first.commit_transaction(SHORT).unwrap();
    first.begin_transaction().unwrap();
    send(&first, &topic, 0, "first-open");
    first.flush(SHORT).unwrap();
    let open = tansu.read_topic(&topic, Isolation::ReadCommitted, SHORT);
    assert_eq!(open.values(), ["before"], "an open transaction holds read_committed readers before it");

    let initialising = Instant::now();
    let second = transactional_producer(&tansu.brokers(), &id);
    eprintln!("[timing] init_transactions over an open transaction of the same id: {:?}", initialising.elapsed());
    let after = tansu.read_topic(&topic, Isolation::ReadCommitted, SHORT);
    assert!(after.complete());
    // before 0, commit marker 1, first-open 2, abort marker 3.
    assert_eq!(after.end_positions, [Some(4)], "the open transaction was ended: readers are past its marker");
    assert_eq!(after.values(), ["before", "first-open"], "its record: aborted, yet returned (Tansu)");

    // The fenced producer's next write and its commit fail; nothing it writes lands.
    send(&first, &topic, 0, "zombie");
    let _ = first.flush(Duration::from_secs(10));
    let commit = first.commit_transaction(Duration::from_secs(10));
    let err = commit.expect_err("a fenced producer cannot commit");
    assert!(is_fencing(&err), "the failure says it was fenced: {err}");

    second.begin_transaction().unwrap();
    send(&second, &topic, 0, "second");
    second.commit_transaction(SHORT).unwrap();
    let all = tansu.consume_all(&topic, Isolation::ReadUncommitted, SHORT);
    assert_eq!(values(&all), ["before", "first-open", "second"], "the zombie's write was refused");
    assert_eq!(values(&tansu.consume_all(&topic, Isolation::ReadCommitted, SHORT)), ["before", "first-open", "second"]);
}

/// Kafka answers an EndTxn (commit or abort) from a fenced producer with PRODUCER_FENCED (or
/// INVALID_PRODUCER_EPOCH), and librdkafka turns that into a fatal error: the zombie knows at once it must
/// stop. Tansu closes the connection instead of answering, so librdkafka retries until the call's timeout:
/// `commit_transaction`/`abort_transaction` of a fenced producer end in a retriable "timed out", never in a
/// fencing error. A host must treat a timed-out commit or abort as "recreate the producer", not "retry".
#[test]
fn tansu_never_answers_a_fenced_producers_end_txn() {
    let tansu = Tansu::start();
    let topic = unique_topic("fenced-endtxn");
    tansu.create_topic(&topic, 1);
    for end in ["commit", "abort"] {
        let id = unique_group("fenced-endtxn");
        let first = transactional_producer(&tansu.brokers(), &id);
        first.begin_transaction().unwrap();
        send(&first, &topic, 0, &format!("{end}-open"));
        first.flush(SHORT).unwrap();
        let _second = transactional_producer(&tansu.brokers(), &id);
        let started = Instant::now();
        let result = if end == "commit" {
            first.commit_transaction(Duration::from_secs(5))
        } else {
            first.abort_transaction(Duration::from_secs(5))
        };
        let took = started.elapsed();
        let err = result.expect_err("a fenced producer's transaction cannot end normally");
        eprintln!("[timing] fenced producer's {end}_transaction failed after {took:?}: {err}");
        let KafkaError::Transaction(ref rd) = err else { panic!("{end}: not a transaction error: {err:?}") };
        // A correct broker: `rd.is_fatal()` and a fencing error, at once.
        assert!(!rd.is_fatal() && rd.is_retriable() && !is_fencing(&err), "{end}: Tansu now answers a fenced EndTxn: {err}");
        assert!(took >= Duration::from_secs(4), "{end}: it ran into the timeout: {took:?}");
    }
}

/// Kafka aborts a transaction that stays open longer than its `transaction.timeout.ms` (checking every 10 s
/// by default), so a producer that dies mid-transaction holds read_committed readers for at most about
/// that long. Tansu never does (its transaction maintenance is off in this build): the killed producer's
/// transaction stays open, and read_committed readers see nothing after its first record, for good, until
/// a producer with the same `transactional.id` initialises (see the next test).
#[test]
fn tansu_never_times_out_an_open_transaction_of_a_killed_producer() {
    let tansu = Tansu::start();
    let topic = unique_topic("txn-timeout");
    tansu.create_topic(&topic, 1);
    tansu.produce(&topic, &[(Some(0), b"k", b"before")]);
    let id = unique_group("txn-timeout");
    let mut child = ChildProcess::spawn(
        "open-transaction",
        &[("BROKERS", tansu.brokers()), ("TOPIC", topic.clone()), ("TRANSACTIONAL_ID", id), ("TRANSACTION_TIMEOUT_MS", "1000".into())],
    );
    child.wait_for_line("READY", SHORT);
    child.kill();
    tansu.produce(&topic, &[(Some(0), b"k", b"after")]);
    // 1 s transaction timeout; a correct broker would have aborted it well within 15 s.
    std::thread::sleep(Duration::from_secs(15));
    let read = tansu.read_topic(&topic, Isolation::ReadCommitted, SHORT);
    assert!(read.complete(), "{read:?}");
    assert_eq!(read.values(), ["before"], "Tansu now times out abandoned transactions: this reproduction is obsolete");
    assert_eq!(read.end_positions, [Some(1)], "read_committed readers stop at the open transaction's first record");
    assert_eq!(kafka::watermarks(&tansu.brokers(), &topic, Isolation::ReadUncommitted), [(0, 4)], "open-1, open-2, after are there");
}

/// What a restarted host relies on with a stable `transactional.id`: initialising it again aborts the
/// transaction its killed predecessor left open, and read_committed readers move on.
#[test]
fn a_new_producer_with_a_killed_producers_transactional_id_unblocks_read_committed_readers() {
    let tansu = Tansu::start();
    let topic = unique_topic("txn-killed");
    tansu.create_topic(&topic, 1);
    let id = unique_group("txn-killed");
    let mut child = ChildProcess::spawn(
        "open-transaction",
        &[
            ("BROKERS", tansu.brokers()),
            ("TOPIC", topic.clone()),
            ("TRANSACTIONAL_ID", id.clone()),
            ("TRANSACTION_TIMEOUT_MS", "60000".into()),
        ],
    );
    child.wait_for_line("READY", SHORT);
    child.kill();
    tansu.produce(&topic, &[(Some(0), b"k", b"after-kill")]);
    let blocked = tansu.read_topic(&topic, Isolation::ReadCommitted, SHORT);
    assert!(blocked.values().is_empty(), "the killed producer's open transaction holds readers: {:?}", blocked.values());

    let started = Instant::now();
    let successor = transactional_producer(&tansu.brokers(), &id);
    eprintln!("[timing] init_transactions after a SIGKILLed producer with an open transaction: {:?}", started.elapsed());
    let unblocked = tansu.read_topic(&topic, Isolation::ReadCommitted, SHORT);
    assert!(unblocked.complete());
    // open-1 0, open-2 1, after-kill 2, abort marker 3.
    assert_eq!(unblocked.end_positions, [Some(4)], "readers are past the abort marker");
    assert!(unblocked.values().contains(&"after-kill".to_string()), "{:?}", unblocked.values());
    // Aborted, yet returned: Tansu's read_committed fault. A correct broker: ["after-kill"].
    assert_eq!(unblocked.values(), ["open-1", "open-2", "after-kill"]);

    successor.begin_transaction().unwrap();
    send(&successor, &topic, 0, "successor");
    successor.commit_transaction(SHORT).expect("the successor commits normally");
    assert_eq!(
        tansu.consume_all(&topic, Isolation::ReadCommitted, SHORT).last().map(|r| r.value_str().to_string()),
        Some("successor".into())
    );
}

/// The same with a producer dropped in-process without commit or abort (librdkafka's destroy sends no
/// EndTxn): the transaction stays open until the id is initialised again.
#[test]
fn a_dropped_producers_open_transaction_stays_open_until_its_transactional_id_is_reused() {
    let tansu = Tansu::start();
    let topic = unique_topic("txn-dropped");
    tansu.create_topic(&topic, 1);
    let id = unique_group("txn-dropped");
    {
        let producer = transactional_producer(&tansu.brokers(), &id);
        producer.begin_transaction().unwrap();
        send(&producer, &topic, 0, "dropped-open");
        producer.flush(SHORT).unwrap();
    }
    tansu.produce(&topic, &[(Some(0), b"k", b"after-drop")]);
    assert!(tansu.read_topic(&topic, Isolation::ReadCommitted, SHORT).values().is_empty(), "still open after the drop");
    let _successor = transactional_producer(&tansu.brokers(), &id);
    let read = tansu.read_topic(&topic, Isolation::ReadCommitted, SHORT);
    assert_eq!(read.values(), ["dropped-open", "after-drop"], "ended by the successor (aborted records returned: Tansu)");
}

// ---------------------------------------------------------------------------------------------------------
// Child processes.
// ---------------------------------------------------------------------------------------------------------

/// Set (with the role) when this binary runs as a child of one of these tests.
const CHILD_ENV: &str = "SDA_BROKER_TEST_CHILD";

/// Not a test of its own: when [`CHILD_ENV`] is set, this is the child process's body (the parent runs this
/// binary with `--exact child_process_role`); otherwise it does nothing.
#[test]
fn child_process_role() {
    let Ok(role) = std::env::var(CHILD_ENV) else { return };
    let var = |name: &str| std::env::var(format!("{CHILD_ENV}_{name}")).unwrap_or_else(|_| panic!("{CHILD_ENV}_{name} not set"));
    // Never outlive the parent for long, whatever happens to it.
    let give_up = Instant::now() + Duration::from_secs(120);
    match role.as_str() {
        // Opens a transaction, writes two records (acknowledged), says READY, then waits to be killed.
        "open-transaction" => {
            let brokers = var("BROKERS");
            let topic = var("TOPIC");
            let producer: BaseProducer = transactional_producer_config(&brokers, &var("TRANSACTIONAL_ID"))
                .set("transaction.timeout.ms", var("TRANSACTION_TIMEOUT_MS"))
                .create()
                .unwrap();
            producer.init_transactions(SHORT).unwrap();
            producer.begin_transaction().unwrap();
            send(&producer, &topic, 0, "open-1");
            send(&producer, &topic, 0, "open-2");
            producer.flush(SHORT).unwrap();
            say("READY");
            while Instant::now() < give_up {
                producer.poll(Duration::from_millis(100));
            }
        }
        // Joins the group, commits every record it reads, and says ASSIGNED p,q,... whenever its assignment
        // changes, until killed.
        "group-member" => {
            let mut member = Member::join(&var("BROKERS"), &var("GROUP"), &var("TOPIC"), "child");
            let mut last = None;
            while Instant::now() < give_up {
                member.poll();
                let now = member.assigned();
                if last.as_ref() != Some(&now) {
                    say(&format!("ASSIGNED {}", now.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(",")));
                    last = Some(now);
                }
            }
        }
        other => panic!("unknown child role {other}"),
    }
}

/// Marks the child's own lines on its stdout, which libtest writes to as well (`test child_process_role ... `
/// comes first, without a line break).
const CHILD_SAYS: &str = "@child: ";

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{CHILD_SAYS}{line}").unwrap();
    out.flush().unwrap();
}

/// This test binary running [`child_process_role`] in a role; killed (SIGKILL) when dropped.
struct ChildProcess {
    child: Child,
    incoming: mpsc::Receiver<String>,
    /// Every line it said so far.
    lines: Vec<String>,
}

impl ChildProcess {
    fn spawn(role: &str, vars: &[(&str, String)]) -> ChildProcess {
        let exe = std::env::current_exe().expect("the test binary's path");
        let mut command = Command::new(exe);
        command.args(["--exact", "child_process_role", "--nocapture", "--test-threads=1"]).env(CHILD_ENV, role);
        for (name, value) in vars {
            command.env(format!("{CHILD_ENV}_{name}"), value);
        }
        let mut child =
            command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().expect("starting a child process");
        let stdout = child.stdout.take().unwrap();
        let (tx, incoming) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let Some((_, said)) = line.split_once(CHILD_SAYS) else { continue };
                if tx.send(said.to_string()).is_err() {
                    break;
                }
            }
        });
        ChildProcess { child, incoming, lines: Vec::new() }
    }

    /// The next line it printed, if one is waiting.
    fn try_line(&mut self) -> Option<String> {
        let line = self.incoming.try_recv().ok()?;
        self.lines.push(line.clone());
        Some(line)
    }

    /// Waits for a line equal to `expected`; panics after `timeout` or if the child exits.
    fn wait_for_line(&mut self, expected: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            match self.incoming.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => {
                    self.lines.push(line.clone());
                    if line == expected {
                        return;
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => panic!("the child exited before saying {expected}: {:?}", self.lines),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            assert!(Instant::now() < deadline, "the child did not say {expected} within {timeout:?}: {:?}", self.lines);
        }
    }

    /// SIGKILL, and wait for it to be gone.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What the transactional torture test in tests/kafka.rs depends on: a producer killed inside a
/// transaction that already holds consumer offsets, then a successor with the same transactional id
/// (which fences it) committing later offsets. The group must end at the successor's offsets.
#[test]
fn a_fenced_producers_pending_offsets_do_not_overwrite_its_successors() {
    let tansu = Tansu::start();
    let input = unique_topic("fence-in");
    let output = unique_topic("fence-out");
    tansu.create_topic(&input, 1);
    tansu.create_topic(&output, 1);
    fill(&tansu, &input, 1, 10);
    let group = unique_group("fence");
    let mut consumer = Member::join_without_commits(&tansu.brokers(), &group, &input);
    poll_until(&mut [&mut consumer], REBALANCE, "the consumer reads the input", |ms| ms[0].seen.len() >= 10);
    let transactional_id = unique_group("fence-txn");
    let commit = |producer: &BaseProducer, offset: i64, finish: bool| {
        producer.begin_transaction().unwrap();
        send(producer, &output, 0, &format!("through-{offset}"));
        let mut offsets = TopicPartitionList::new();
        offsets.add_partition_offset(&input, 0, Offset::Offset(offset)).unwrap();
        producer.send_offsets_to_transaction(&offsets, &consumer.consumer.group_metadata().unwrap(), SHORT).unwrap();
        producer.flush(SHORT).unwrap();
        if finish {
            producer.commit_transaction(SHORT).unwrap();
        }
    };
    let first = transactional_producer(&tansu.brokers(), &transactional_id);
    commit(&first, 2, true);
    commit(&first, 3, false);
    drop(first); // Gone inside its transaction, as a SIGKILLed process.
    let successor = transactional_producer(&tansu.brokers(), &transactional_id);
    commit(&successor, 8, true);
    commit(&successor, 9, true);
    assert_eq!(tansu.committed_offsets(&group, &input), [Some(9)], "the successor's last commit stands");
}
