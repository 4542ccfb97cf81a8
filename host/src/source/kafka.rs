//! The Kafka source: group membership (which partitions this process owns) and, per owned partition, a reader with its own consumer.
//!
//! The group member subscribes, and on each rebalance hands the change to a
//! [`PartitionOwner`] (the pipeline), which stops the tasks of revoked
//! partitions (each checkpoints and commits first) and starts tasks for
//! assigned ones. The member itself never fetches: its partitions are paused
//! as soon as they are assigned. Each task reads its partition through its own
//! assign-based consumer, starting exactly where its checkpoint says, so no
//! record can slip past a task through a shared queue. Offsets are committed
//! through the member, which is the one the group knows.

use super::{ReadStatus, Reject, SourceBatch, SourceError};
use crate::dlq::ErrorKind;
use crate::graph::KafkaSourcePlan;
use crate::kafka;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, ConsumerGroupMetadata};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use sda_wire::BatchWriter;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// What the pipeline does when the group hands partitions over.
pub trait PartitionOwner: Send + Sync + 'static {
    /// These partitions are now this process's: start their tasks.
    fn assigned(&self, partitions: &[i32]);
    /// These partitions are being taken away: stop their tasks, each after
    /// its batch in hand, a checkpoint and an offset commit. Returns when done.
    fn revoked(&self, partitions: &[i32]);
}

/// The member's librdkafka context: routes rebalances to the owner.
pub struct MemberContext {
    topic: String,
    owner: OnceLock<Arc<dyn PartitionOwner>>,
}

impl ClientContext for MemberContext {}

impl ConsumerContext for MemberContext {
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: rdkafka::types::RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        use rdkafka::types::RDKafkaRespErr::*;
        let partitions: Vec<i32> = tpl.elements_for_topic(&self.topic).iter().map(|e| e.partition()).collect();
        let Some(owner) = self.owner.get() else { return };
        match err {
            RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                if let Err(e) = consumer.assign(tpl) {
                    tracing::error!(topic = %self.topic, error = %e, "cannot take the assigned partitions");
                    return;
                }
                // The member only holds the assignment; tasks fetch.
                if let Err(e) = consumer.pause(tpl) {
                    tracing::warn!(topic = %self.topic, error = %e, "cannot pause the member's own fetching");
                }
                tracing::info!(topic = %self.topic, ?partitions, "partitions assigned");
                owner.assigned(&partitions);
            }
            RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                tracing::info!(topic = %self.topic, ?partitions, "partitions revoked");
                owner.revoked(&partitions);
                if let Err(e) = consumer.unassign() {
                    tracing::warn!(topic = %self.topic, error = %e, "cannot release the revoked partitions");
                }
            }
            other => tracing::error!(topic = %self.topic, error = ?other, "rebalance failed"),
        }
    }
}

/// This process's membership of a source's consumer group.
pub struct GroupMember {
    consumer: BaseConsumer<MemberContext>,
    topic: String,
    name: String,
    /// The topic's partition count when the member joined.
    partitions: usize,
}

impl GroupMember {
    /// Joins the group (the first rebalance happens in [`GroupMember::poll`]).
    pub fn join(name: &str, plan: &KafkaSourcePlan, owner: Arc<dyn PartitionOwner>) -> Result<GroupMember, SourceError> {
        let partitions = kafka::check_topic(&plan.brokers, &plan.topic, &plan.librdkafka, plan.connect_timeout)
            .map_err(|e| SourceError::Kafka { source_name: name.to_string(), message: e.to_string() })?;
        let mut config = kafka::client_config(&plan.brokers, &plan.librdkafka);
        config.set("group.id", &plan.group_id).set("enable.auto.commit", "false").set("enable.auto.offset.store", "false");
        let context = MemberContext { topic: plan.topic.clone(), owner: OnceLock::new() };
        let _ = context.owner.set(owner);
        let consumer: BaseConsumer<MemberContext> = config
            .create_with_context(context)
            .map_err(|e| SourceError::Kafka { source_name: name.to_string(), message: e.to_string() })?;
        consumer.subscribe(&[&plan.topic]).map_err(|e| SourceError::Kafka { source_name: name.to_string(), message: e.to_string() })?;
        Ok(GroupMember { consumer, topic: plan.topic.clone(), name: name.to_string(), partitions })
    }

    /// The topic's partition count when the member joined.
    pub fn partitions(&self) -> usize {
        self.partitions
    }

    /// Serves the group's callbacks (rebalances) for up to `timeout`.
    pub fn poll(&self, timeout: Duration) {
        // Paused partitions fetch nothing; anything already buffered is the
        // tasks' to read, not the member's: drop it.
        if let Some(Err(e)) = self.consumer.poll(timeout) {
            tracing::warn!(source = %self.name, error = %e, "consumer group error (retried by the client)");
        }
    }

    /// Commits `next_offset` (the first offset not yet done) for `partition`.
    pub fn commit(&self, partition: i32, next_offset: u64) -> Result<(), SourceError> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&self.topic, partition, Offset::Offset(next_offset as i64))
            .map_err(|e| SourceError::Kafka { source_name: self.name.clone(), message: e.to_string() })?;
        self.consumer.commit(&tpl, CommitMode::Sync).map_err(|e| SourceError::Kafka {
            source_name: self.name.clone(),
            message: format!("committing offset {next_offset} of partition {partition}: {e}"),
        })
    }

    /// The group's committed offset for `partition`, if any.
    pub fn committed(&self, partition: i32, timeout: Duration) -> Result<Option<u64>, SourceError> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&self.topic, partition);
        let committed = self
            .consumer
            .committed_offsets(tpl, timeout)
            .map_err(|e| SourceError::Kafka { source_name: self.name.clone(), message: e.to_string() })?;
        Ok(committed.elements().first().and_then(|e| match e.offset() {
            Offset::Offset(o) if o >= 0 => Some(o as u64),
            _ => None,
        }))
    }

    /// For transactional sinks: the group's identity, to commit offsets within a transaction.
    pub fn group_metadata(&self) -> Option<ConsumerGroupMetadata> {
        self.consumer.group_metadata()
    }

    /// Leaves the group: revokes (and so stops) every owned partition's task first.
    pub fn leave(&self) {
        self.consumer.unsubscribe();
        // The revoke callback runs in a poll; short ones, so that leaving takes as long as the revoke
        // (the callback releases the assignment), not a fixed second. (Rust-rdkafka's polls last their
        // whole timeout.)
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline {
            self.poll(Duration::from_millis(5));
            if self.consumer.assignment().is_ok_and(|a| a.count() == 0) {
                break;
            }
        }
    }
}

/// One partition, read by its own assign-based consumer.
pub struct KafkaPartitionSource {
    name: String,
    topic: String,
    partition: i32,
    consumer: kafka::AssignedReader<kafka::EndReadingContext>,
    /// The first offset not yet read.
    next_offset: u64,
    event_time_field: Option<String>,
    /// Longer values are dead-lettered with a prefix (librdkafka has fetched them whole by then;
    /// its `fetch.max.bytes` and the topic's `max.message.bytes` bound that).
    max_record_bytes: u64,
    /// With `--stop-at-end`: stop once the partition is read to its end.
    stop_at_end: bool,
}

impl KafkaPartitionSource {
    /// Opens `partition` at `start` (the checkpoint's offset), else at the
    /// group's committed offset, else at the beginning.
    pub fn open(
        name: &str,
        plan: &KafkaSourcePlan,
        partition: i32,
        start: Option<u64>,
        committed: Option<u64>,
        stop_at_end: bool,
    ) -> Result<KafkaPartitionSource, SourceError> {
        let err = |message: String| SourceError::Kafka { source_name: name.to_string(), message };
        let mut config = kafka::client_config(&plan.brokers, &plan.librdkafka);
        // Reading only: no group membership, no commits from this client.
        // With `stop_at_end`, the partition's end is where a fetch reports EOF: end
        // offsets from ListOffsets are not trusted (Tansu under-reports them,
        // see tests/broker.rs).
        config
            .set("group.id", format!("{}-reader", plan.group_id))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", if stop_at_end { "true" } else { "false" });
        if stop_at_end {
            kafka::wait_briefly_at_the_end(&mut config, &plan.librdkafka);
        }
        let consumer: BaseConsumer<kafka::EndReadingContext> =
            config.create_with_context(kafka::EndReadingContext).map_err(|e| err(e.to_string()))?;
        let next_offset = start.or(committed).unwrap_or(0);
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&plan.topic, partition, Offset::Offset(next_offset as i64)).map_err(|e| err(e.to_string()))?;
        consumer.assign(&tpl).map_err(|e| err(e.to_string()))?;
        Ok(KafkaPartitionSource {
            name: name.to_string(),
            topic: plan.topic.clone(),
            partition,
            consumer: kafka::AssignedReader::new(consumer),
            next_offset,
            event_time_field: plan.event_time_field.clone(),
            max_record_bytes: plan.max_record_bytes,
            stop_at_end,
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    pub fn partition(&self) -> i32 {
        self.partition
    }

    /// The first offset not yet read: where to resume.
    pub fn offset(&self) -> u64 {
        self.next_offset
    }

    /// Positions the next read at `offset`, by assigning the partition anew
    /// (a seek fails while the partition's fetcher is still starting).
    pub fn seek(&mut self, offset: u64) -> Result<(), SourceError> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&self.topic, self.partition, Offset::Offset(offset as i64))
            .and_then(|()| self.consumer.assign(&tpl))
            .map_err(|e| SourceError::Kafka { source_name: self.name.clone(), message: format!("cannot seek to offset {offset}: {e}") })?;
        self.next_offset = offset;
        Ok(())
    }

    /// Reads up to `max_records` records (waiting briefly for the first).
    pub fn read_batch(&mut self, max_records: u32, batch: &mut SourceBatch) -> Result<ReadStatus, SourceError> {
        let mut writer = BatchWriter::reuse(std::mem::take(&mut batch.packed));
        batch.offsets.clear();
        batch.rejects.clear();
        let mut wait = Duration::from_millis(100);
        let status = loop {
            if writer.len() >= max_records {
                break ReadStatus::More;
            }
            let message = match self.consumer.poll(wait) {
                None => break if writer.is_empty() && batch.rejects.is_empty() { ReadStatus::Idle } else { ReadStatus::More },
                Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) if self.stop_at_end => break ReadStatus::End,
                Some(Err(e)) => {
                    // Transport problems are retried by the client; say so and go on.
                    tracing::warn!(source = %self.name, partition = self.partition, error = %e, "consumer error (retried)");
                    break ReadStatus::Idle;
                }
                Some(Ok(m)) => m,
            };
            wait = Duration::ZERO;
            let offset = message.offset() as u64;
            self.next_offset = offset + 1;
            match decode(&message, self.event_time_field.as_deref(), self.max_record_bytes) {
                Decoded::Record { event_time, key, payload, headers } => {
                    writer.push(None, event_time.unwrap_or(0), key, payload, headers);
                    batch.offsets.push(offset);
                }
                Decoded::Reject(reject) => batch.rejects.push(reject),
            }
        };
        batch.count = writer.len();
        batch.packed = writer.finish();
        batch.end_offset = self.next_offset;
        Ok(status)
    }
}

/// A Kafka message as a source passes it on.
pub(super) enum Decoded<'m> {
    Record {
        /// `None` when the value has no integer `event_time_field` (the record's event time is then 0).
        event_time: Option<i64>,
        key: &'m [u8],
        payload: &'m [u8],
        headers: Vec<(&'m [u8], &'m [u8])>,
    },
    /// Too long, or not JSON where the event time is a JSON field: its dead letter (at the message's offset).
    Reject(Reject),
}

/// Reads a message's key, value, headers and event time (the `event_time_field` of its JSON value,
/// else its timestamp); a value longer than `max_record_bytes` is a reject with a prefix of it.
pub(super) fn decode<'m>(message: &'m BorrowedMessage<'_>, event_time_field: Option<&str>, max_record_bytes: u64) -> Decoded<'m> {
    let offset = message.offset() as u64;
    let key = message.key().unwrap_or_default();
    let payload = message.payload().unwrap_or_default();
    let headers: Vec<(&[u8], &[u8])> =
        message.headers().map(|h| h.iter().map(|h| (h.key.as_bytes(), h.value.unwrap_or_default())).collect()).unwrap_or_default();
    let reject = |kind, bytes: &[u8], message: String| {
        Decoded::Reject(Reject {
            offset,
            kind,
            key: key.to_vec(),
            bytes: bytes.to_vec(),
            headers: headers.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect(),
            message,
        })
    };
    if payload.len() as u64 > max_record_bytes {
        let prefix = &payload[..super::TOO_LARGE_PREFIX_BYTES.min(payload.len())];
        return reject(ErrorKind::RecordTooLarge, prefix, super::too_large(payload.len() as u64, max_record_bytes));
    }
    let event_time = match event_time_field {
        Some(field) => match super::file::extract_fields(payload, None, Some(field)) {
            Ok(fields) => fields.event_time_ms,
            Err(e) => return reject(ErrorKind::Deserialization, payload, format!("value is not valid JSON: {e}")),
        },
        None => message.timestamp().to_millis(),
    };
    Decoded::Record { event_time, key, payload, headers }
}
