//! A Kafka producer for one task, idempotent or transactional, and the batch it has in flight: what sinks, the DLQ and `reprocess` produce with.
//!
//! Delivery outcomes come back asynchronously, collected by [`DeliveryLog`];
//! [`Producing::flush`] waits for all of a batch's, then reports the records the
//! broker refused for good. Transient trouble is retried inside librdkafka.

use crate::output::Rejection;
use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, TopicPartitionList};
use std::sync::Mutex;
use std::time::{Duration, Instant};
/// What delivery reports said since the last flush, behind one lock (the
/// callback runs once per record).
#[derive(Default)]
struct Delivered {
    /// Records that failed, by index within the batch.
    failures: Vec<(usize, KafkaError)>,
    /// Per partition, one past the highest offset this producer wrote: the
    /// exact end of what it delivered, whatever the broker reports.
    written_end: Vec<u64>,
}

/// Collects delivery reports.
pub(crate) struct DeliveryLog {
    delivered: Mutex<Delivered>,
}

impl DeliveryLog {
    fn lock(&self) -> std::sync::MutexGuard<'_, Delivered> {
        self.delivered.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl ClientContext for DeliveryLog {}

impl ProducerContext for DeliveryLog {
    type DeliveryOpaque = Box<usize>;

    fn delivery(&self, result: &DeliveryResult<'_>, index: Box<usize>) {
        let mut delivered = self.lock();
        match result {
            Ok(m) => {
                if let (Ok(p), Ok(o)) = (usize::try_from(m.partition()), u64::try_from(m.offset())) {
                    if delivered.written_end.len() <= p {
                        delivered.written_end.resize(p + 1, 0);
                    }
                    delivered.written_end[p] = delivered.written_end[p].max(o + 1);
                }
            }
            Err((e, _)) => delivered.failures.push((*index, e.clone())),
        }
    }
}

/// A producer for one task, and the batch in flight.
pub(crate) struct Producing {
    pub producer: BaseProducer<DeliveryLog>,
    pub topic: String,
    pub partitions: usize,
    what: String,
    /// Records handed to the producer in the batch in flight.
    sent: usize,
    /// Records refused at once (too large, say), by index.
    refused: Vec<(usize, Rejection)>,
    /// Records queued since the open transaction began (transactional producers).
    queued_in_transaction: u64,
    /// Every record goes to this partition (`None`: by its key).
    partition: Option<i32>,
}

impl Producing {
    /// A producer for `topic`: idempotent, `acks=all`; transactional when an id is given.
    pub fn open(
        what: &str,
        brokers: &str,
        topic: &str,
        extra: &[(String, String)],
        connect_timeout: Duration,
        transactional_id: Option<&str>,
    ) -> Result<Producing, String> {
        let partitions = super::check_topic(brokers, topic, extra, connect_timeout).map_err(|e| e.to_string())?;
        let mut config = super::client_config(brokers, extra);
        config.set("enable.idempotence", "true").set("acks", "all");
        if !extra.iter().any(|(k, _)| k == "linger.ms") {
            config.set("linger.ms", "0");
        }
        if let Some(id) = transactional_id {
            config.set("transactional.id", id);
        }
        let producer: BaseProducer<DeliveryLog> = config
            .create_with_context(DeliveryLog { delivered: Mutex::new(Delivered::default()) })
            .map_err(|e| format!("cannot create a producer: {e}"))?;
        if transactional_id.is_some() {
            // Fences any earlier producer with this id and aborts its open transaction.
            producer.init_transactions(connect_timeout).map_err(|e| format!("cannot initialise transactions: {e}"))?;
            producer.begin_transaction().map_err(|e| format!("cannot begin a transaction: {e}"))?;
        }
        Ok(Producing {
            producer,
            topic: topic.to_string(),
            partitions,
            what: what.to_string(),
            sent: 0,
            refused: Vec::new(),
            queued_in_transaction: 0,
            partition: None,
        })
    }

    /// Sends every record to `partition`, which must exist.
    pub fn into_partition(mut self, partition: i32) -> Result<Producing, String> {
        if partition as usize >= self.partitions {
            return Err(format!(
                "records go to partition {partition} (the task's shard), but topic `{}` has {} partition(s): give it at least as many \
                 as the source has shards",
                self.topic, self.partitions
            ));
        }
        self.partition = Some(partition);
        Ok(self)
    }

    /// Hands one record to the producer (waiting if its queue is full).
    pub fn send(&mut self, key: &[u8], payload: &[u8], headers: Option<OwnedHeaders>) {
        let index = self.sent;
        self.sent += 1;
        let mut record = BaseRecord::with_opaque_to(&self.topic, Box::new(index)).payload(payload);
        if !key.is_empty() {
            record = record.key(key);
        }
        if let Some(h) = headers {
            record = record.headers(h);
        }
        if let Some(p) = self.partition {
            record = record.partition(p);
        }
        // A passing refusal is retried until it passes; said at once, then every 10 s, not every try.
        let mut warned_at: Option<Instant> = None;
        loop {
            match self.producer.send(record) {
                Ok(()) => {
                    self.queued_in_transaction += 1;
                    return;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    self.producer.poll(Duration::from_millis(50));
                }
                Err((e, _)) if super::is_permanent_record_error(&e) => {
                    self.refused.push((index, refused_for_good(&e)));
                    return;
                }
                Err((e, back)) => {
                    if warned_at.is_none_or(|at| at.elapsed() >= Duration::from_secs(10)) {
                        tracing::warn!(sink = %self.what, error = %e, "cannot queue a record yet; retrying until it can be");
                        warned_at = Some(Instant::now());
                    }
                    record = back;
                    self.producer.poll(Duration::from_millis(200));
                }
            }
        }
    }

    /// Waits until every record of the batch is acknowledged (or refused for
    /// good); returns the refused ones by index. A record that could not be
    /// delivered for a passing reason before librdkafka gave up
    /// (`delivery.timeout.ms`) is an error: the task stops, and its recovery
    /// finds out what reached the topic.
    pub fn flush(&mut self) -> Result<Vec<(usize, Rejection)>, String> {
        // Not `Producer::flush`: rust-rdkafka's flush polls 100 ms at a time and a
        // poll always lasts its whole timeout, so every batch waited 100 ms after its
        // acknowledgement came (measured: ~8,000 -> ~35,000 observations/s on Kafka).
        // Short polls serve the delivery reports as they arrive.
        let started = Instant::now();
        let mut warned = false;
        while self.producer.in_flight_count() > 0 {
            self.producer.poll(Duration::from_millis(1));
            if !warned && started.elapsed() > Duration::from_secs(5) {
                warned = true;
                tracing::warn!(sink = %self.what, "waiting for Kafka to acknowledge the batch");
            }
        }
        let failures = std::mem::take(&mut self.producer.context().lock().failures);
        let mut refused = std::mem::take(&mut self.refused);
        for (index, e) in failures {
            if !super::is_permanent_record_error(&e) {
                return Err(format!("a record was not acknowledged: {e}"));
            }
            refused.push((index, refused_for_good(&e)));
        }
        self.sent = 0;
        refused.sort_by_key(|(i, _)| *i);
        Ok(refused)
    }

    /// The topic's end offsets, for a checkpoint: where a recovery starts
    /// re-reading. The broker's end offset, or past this producer's own last
    /// write if the broker reports less (Tansu does, see tests/broker.rs):
    /// either way no record written after the checkpoint lies before it.
    pub fn positions(&self, timeout: Duration) -> Result<Vec<(u32, u64)>, String> {
        let written = self.producer.context().lock().written_end.clone();
        (0..self.partitions as i32)
            .map(|p| {
                self.producer
                    .client()
                    .fetch_watermarks(&self.topic, p, timeout)
                    .map(|(_, high)| (p as u32, (high.max(0) as u64).max(written.get(p as usize).copied().unwrap_or(0))))
                    .map_err(|e| format!("end offset of partition {p}: {e}"))
            })
            .collect()
    }

    /// Commits the open transaction (with `offsets` of `group`, if given) and
    /// begins the next; returns whether it did. A transaction no record was
    /// queued in is left open and nothing is committed: the caller commits the
    /// offsets to the group directly. There are no outputs they must be atomic
    /// with, it saves three round trips, and a broker may not commit the
    /// offsets of a transaction that wrote nothing (Tansu 0.6 does not: its
    /// EndTxn only commits transactions that added a partition; see
    /// tests/broker.rs).
    pub fn commit_transaction(
        &mut self,
        offsets: Option<(&TopicPartitionList, &ConsumerGroupMetadata)>,
        timeout: Duration,
    ) -> Result<bool, String> {
        if self.queued_in_transaction == 0 {
            return Ok(false);
        }
        if let Some((offsets, group)) = offsets {
            self.producer
                .send_offsets_to_transaction(offsets, group, timeout)
                .map_err(|e| format!("cannot add the consumer offsets to the transaction: {e}"))?;
        }
        self.producer.commit_transaction(timeout).map_err(|e| format!("cannot commit the transaction: {e}"))?;
        self.queued_in_transaction = 0;
        self.producer.begin_transaction().map_err(|e| format!("cannot begin the next transaction: {e}"))?;
        Ok(true)
    }
}

fn refused_for_good(e: &KafkaError) -> Rejection {
    Rejection(format!("Kafka refused the record for good: {e}"))
}

/// Headers for a record, from `(name, value)` pairs.
pub fn headers<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> OwnedHeaders {
    pairs.into_iter().fold(OwnedHeaders::new(), |h, (key, value)| h.insert(Header { key, value: Some(value) }))
}
