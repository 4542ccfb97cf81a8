//! Shared Kafka plumbing: client configuration, reachability at start, error classification, and reading a topic's tail back after a crash.
//!
//! Sources, sinks and the DLQ build their clients here, so every client gets
//! the same base settings and the user's `librdkafka` table the same way.

pub mod producing;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, DefaultConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, ClientContext};
use rdkafka::{Offset, TopicPartitionList};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum KafkaClientError {
    #[error("cannot reach the Kafka brokers `{brokers}` within {} s: {message}", timeout.as_secs_f64())]
    Unreachable { brokers: String, timeout: Duration, message: String },
    #[error("topic `{topic}` does not exist on `{brokers}` (create it first, with the partitions you want)")]
    TopicMissing { topic: String, brokers: String },
    #[error("Kafka {what}: {message}")]
    Client { what: String, message: String },
}

/// A client configuration: the brokers, then the user's extra properties.
pub fn client_config(brokers: &str, extra: &[(String, String)]) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers);
    // Logs go through `tracing`; librdkafka's own chatter only when asked.
    config.set("log_level", "3");
    for (key, value) in extra {
        config.set(key, value);
    }
    config
}

/// `fetch.wait.max.ms` of consumers that read to a partition's end and stop there, unless the user's
/// `librdkafka` table sets it. A broker holds a fetch at the end of a partition this long before it
/// answers "nothing more" (librdkafka's default, 500 ms, suits a consumer that follows a topic): each
/// read to the end (the read-back of a sink's and the DLQ's topic at start, a `--stop-at-end` source's
/// last fetch) would cost half a second.
const END_READER_FETCH_WAIT_MS: &str = "10";

/// Sets [`END_READER_FETCH_WAIT_MS`] on `config` unless `extra` (the user's table) sets the wait.
pub fn wait_briefly_at_the_end(config: &mut ClientConfig, extra: &[(String, String)]) {
    if !extra.iter().any(|(k, _)| k == "fetch.wait.max.ms") {
        config.set("fetch.wait.max.ms", END_READER_FETCH_WAIT_MS);
    }
}

/// A consumer that reads partitions it was assigned and commits nothing (a read-back, a partition
/// source, `sda-dlq`), closed on a thread of its own when dropped, on every path. A consumer with a
/// `group.id` (which `assign` needs) closes as it is dropped, and rust-rdkafka waits for that in
/// 100 ms polls that each last their whole timeout: at least 100 ms per consumer, paid twice per task
/// at start (the read-backs of the sink's and the DLQ's topics) and once at its end. Nothing needs
/// to wait for it: such a consumer commits nothing, and a close cut short by the process ending
/// loses nothing.
/// (Held in an `Arc`, which partition queues split from it share: it closes once the last of them is gone.)
pub struct AssignedReader<C: ConsumerContext + 'static = DefaultConsumerContext>(Option<Arc<BaseConsumer<C>>>);

impl<C: ConsumerContext + 'static> AssignedReader<C> {
    pub fn new(consumer: BaseConsumer<C>) -> Self {
        AssignedReader(Some(Arc::new(consumer)))
    }

    /// The consumer as an `Arc`, which [`BaseConsumer::split_partition_queue`] needs.
    pub fn shared(&self) -> &Arc<BaseConsumer<C>> {
        self.0.as_ref().expect("the consumer is taken only on drop")
    }
}

impl<C: ConsumerContext + 'static> std::ops::Deref for AssignedReader<C> {
    type Target = BaseConsumer<C>;

    fn deref(&self) -> &BaseConsumer<C> {
        self.0.as_ref().expect("the consumer is taken only on drop")
    }
}

impl<C: ConsumerContext + 'static> Drop for AssignedReader<C> {
    fn drop(&mut self) {
        if let Some(consumer) = self.0.take() {
            // Should the thread not start, the closure and the consumer in it are dropped here.
            let _ = std::thread::Builder::new().name("kafka-close".into()).spawn(move || drop(consumer));
        }
    }
}

/// The context of consumers that read to a partition's end (`enable.partition.eof`): librdkafka also
/// reports each end reached as a "global error", which the default context logs at ERROR level; it is
/// what these consumers wait for, not an error, so it is not logged. Other errors are.
pub struct EndReadingContext;

impl ClientContext for EndReadingContext {
    fn error(&self, error: KafkaError, reason: &str) {
        let end_of_partition =
            matches!(error, KafkaError::PartitionEOF(_)) || error.rdkafka_error_code() == Some(RDKafkaErrorCode::PartitionEOF);
        if !end_of_partition {
            tracing::error!(%error, reason, "librdkafka error");
        }
    }
}

impl ConsumerContext for EndReadingContext {}

/// Checks the brokers answer within `timeout` and `topic` exists; returns its partition count.
pub fn check_topic(brokers: &str, topic: &str, extra: &[(String, String)], timeout: Duration) -> Result<usize, KafkaClientError> {
    let consumer: BaseConsumer = client_config(brokers, extra)
        .create()
        .map_err(|e| KafkaClientError::Client { what: format!("client for `{brokers}`"), message: e.to_string() })?;
    let metadata = consumer.fetch_metadata(Some(topic), timeout).map_err(|e| KafkaClientError::Unreachable {
        brokers: brokers.to_string(),
        timeout,
        message: e.to_string(),
    })?;
    match metadata.topics().iter().find(|t| t.name() == topic) {
        Some(t) if t.error().is_none() && !t.partitions().is_empty() => Ok(t.partitions().len()),
        _ => Err(KafkaClientError::TopicMissing { topic: topic.to_string(), brokers: brokers.to_string() }),
    }
}

/// Makes sure `topic` exists with `partitions` partitions, creating it (replication: the broker's
/// default) if it does not: a lease topic, whose partitions are leases, not data. Several processes
/// may start at once; the one whose creation loses the race finds the topic there.
pub fn ensure_topic(
    brokers: &str,
    topic: &str,
    partitions: usize,
    extra: &[(String, String)],
    timeout: Duration,
) -> Result<(), KafkaClientError> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let has = |count: usize| {
        if count == partitions {
            Ok(())
        } else {
            Err(KafkaClientError::Client {
                what: format!("lease topic `{topic}`"),
                message: format!(
                    "it has {count} partition(s), but the source has `shards = {partitions}`, and each shard's lease is one of its \
                     partitions; set `lease_topic` to a new topic, or delete this one once no process of the pipeline runs"
                ),
            })
        }
    };
    match check_topic(brokers, topic, extra, timeout) {
        Ok(count) => return has(count),
        Err(KafkaClientError::TopicMissing { .. }) => {}
        Err(e) => return Err(e),
    }
    let client =
        |e: &dyn std::fmt::Display| KafkaClientError::Client { what: format!("creating lease topic `{topic}`"), message: e.to_string() };
    let admin: AdminClient<rdkafka::client::DefaultClientContext> = client_config(brokers, extra).create().map_err(|e| client(&e))?;
    let options = AdminOptions::new().operation_timeout(Some(timeout)).request_timeout(Some(timeout));
    let new_topic = NewTopic::new(topic, partitions as i32, TopicReplication::Fixed(-1));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| client(&e))?;
    let results = runtime.block_on(admin.create_topics([&new_topic], &options)).map_err(|e| client(&e))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => return Err(client(&code)),
        }
    }
    // Metadata lags a creation a little.
    let deadline = Instant::now() + timeout;
    loop {
        match check_topic(brokers, topic, extra, timeout) {
            Ok(count) if count == partitions || Instant::now() >= deadline => return has(count),
            Err(e) if Instant::now() >= deadline => return Err(e),
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// True for a record the broker (or the client) will never accept, whatever
/// the retries: it belongs in the DLQ. Anything else is worth waiting out.
pub fn is_permanent_record_error(e: &KafkaError) -> bool {
    let code = match e {
        KafkaError::MessageProduction(code) => *code,
        _ => return false,
    };
    matches!(
        code,
        RDKafkaErrorCode::MessageSizeTooLarge
            | RDKafkaErrorCode::InvalidMessageSize
            | RDKafkaErrorCode::InvalidMessage
            | RDKafkaErrorCode::InvalidRecord
            | RDKafkaErrorCode::MessageBatchTooLarge
            | RDKafkaErrorCode::InvalidRequiredAcks
    )
}

/// Calls `each(key, value)` for every record of `topic` written at or after
/// `positions` (partitions not listed are read from their start), up to where
/// a fetch reports each partition's end. (End offsets from ListOffsets are not
/// trusted: Tansu under-reports them, see tests/broker.rs.) Every record is
/// read (`read_uncommitted`): an idempotent producer's acknowledged records
/// are final. Transactional sinks never re-read: what they committed is
/// exactly what their checkpoint knows of.
pub fn read_since(
    brokers: &str,
    topic: &str,
    extra: &[(String, String)],
    positions: &[(u32, u64)],
    timeout: Duration,
    mut each: impl FnMut(&[u8], &[u8]),
) -> Result<u64, KafkaClientError> {
    let partitions = check_topic(brokers, topic, extra, timeout)?;
    let mut config = client_config(brokers, extra);
    config
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_uncommitted")
        .set("group.id", "sda-read-back");
    wait_briefly_at_the_end(&mut config, extra);
    let consumer = AssignedReader::new(
        config
            .create_with_context(EndReadingContext)
            .map_err(|e| KafkaClientError::Client { what: format!("read-back client for `{topic}`"), message: e.to_string() })?,
    );
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions as u32 {
        let from = positions.iter().find(|(q, _)| *q == p).map_or(0, |(_, o)| *o);
        tpl.add_partition_offset(topic, p as i32, Offset::Offset(from as i64))
            .map_err(|e| KafkaClientError::Client { what: "read-back assignment".into(), message: e.to_string() })?;
    }
    consumer.assign(&tpl).map_err(|e| KafkaClientError::Client { what: format!("read-back of `{topic}`"), message: e.to_string() })?;
    let mut done = vec![false; partitions];
    let mut read = 0u64;
    // Time without progress, not in all: a long tail is fine while it flows.
    let mut last_progress = Instant::now();
    let patience = timeout.max(Duration::from_secs(30));
    while done.iter().any(|d| !d) {
        if last_progress.elapsed() > patience {
            return Err(KafkaClientError::Client {
                what: format!("read-back of `{topic}`"),
                message: format!("no progress for {} s before every partition's end was reached", patience.as_secs()),
            });
        }
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                each(m.key().unwrap_or_default(), m.payload().unwrap_or_default());
                read += 1;
                last_progress = Instant::now();
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                if let Some(d) = done.get_mut(p as usize) {
                    *d = true;
                }
                last_progress = Instant::now();
            }
            Some(Err(e)) => tracing::warn!(topic, error = %e, "read-back: transient error; retrying"),
            None => {}
        }
    }
    Ok(read)
}
