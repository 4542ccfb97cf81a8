//! The Kafka sink: an idempotent producer, or a transactional one (one transaction per checkpoint); a batch is delivered once every record is acknowledged.
//!
//! Delivery outcomes come back asynchronously; [`KafkaSink::flush`] waits for
//! all of a batch's, then reports the records the broker refused for good
//! (dead-lettered by the task). Transient trouble (a broker down, a cut
//! connection, a leader change) is retried inside librdkafka, and the flush
//! waits it out: such records are never dead-lettered and never lost. With
//! `transactional = true`, records become visible to read_committed readers
//! only when [`KafkaSink::commit_transaction`] commits them together with the
//! consumer offsets of the checkpoint.

use super::{Rejection, SinkError};
use crate::graph::KafkaSinkPlan;
use crate::kafka::{self, producing::Producing};
use rdkafka::TopicPartitionList;
use rdkafka::consumer::ConsumerGroupMetadata;

/// Identity of a Kafka record for deduplication: its key (an alert id), or its value when it has none.
pub fn identity(key: &[u8], payload: &[u8]) -> crate::dedup::Identity {
    if key.is_empty() { crate::dedup::identity(&[b"v", payload]) } else { crate::dedup::identity(&[b"k", key]) }
}

/// A task's Kafka sink.
pub struct KafkaSink {
    name: String,
    plan: KafkaSinkPlan,
    producing: Producing,
}

impl KafkaSink {
    /// Opens the sink; `transactional_id` (one per task, stable across
    /// restarts) when the sink is transactional; `shard`: the task's, for `partitioner = "shard"`.
    pub fn open(name: &str, plan: &KafkaSinkPlan, transactional_id: Option<&str>, shard: Option<u32>) -> Result<KafkaSink, SinkError> {
        let producing = Producing::open(
            &format!("sink `{name}`"),
            &plan.brokers,
            &plan.topic,
            &plan.librdkafka,
            plan.connect_timeout,
            transactional_id.filter(|_| plan.transactional),
        )
        .and_then(|producing| match (plan.by_shard, shard) {
            (true, Some(shard)) => producing.into_partition(shard as i32),
            (true, None) => Err("`partitioner = \"shard\"`, but this task runs no shard".to_string()),
            (false, _) => Ok(producing),
        })
        .map_err(|message| SinkError::Kafka { sink: name.to_string(), message })?;
        Ok(KafkaSink { name: name.to_string(), plan: plan.clone(), producing })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn transactional(&self) -> bool {
        self.plan.transactional
    }

    pub fn write(&mut self, key: &[u8], payload: &[u8]) {
        self.producing.send(key, payload, None);
    }

    /// See [`Producing::flush`].
    pub fn flush(&mut self) -> Result<Vec<(usize, Rejection)>, SinkError> {
        self.producing.flush().map_err(|message| SinkError::Kafka { sink: self.name.clone(), message })
    }

    pub fn positions(&self) -> Result<Vec<(u32, u64)>, SinkError> {
        self.producing.positions(self.plan.connect_timeout).map_err(|message| SinkError::Kafka { sink: self.name.clone(), message })
    }

    /// See [`Producing::commit_transaction`].
    pub fn commit_transaction(&mut self, offsets: Option<(&TopicPartitionList, &ConsumerGroupMetadata)>) -> Result<bool, SinkError> {
        self.producing
            .commit_transaction(offsets, self.plan.connect_timeout)
            .map_err(|message| SinkError::Kafka { sink: self.name.clone(), message })
    }

    /// Identities of the records written to the topic after `positions`.
    pub fn read_back(&self, positions: &[(u32, u64)], mut each: impl FnMut(crate::dedup::Identity)) -> Result<u64, SinkError> {
        kafka::read_since(&self.plan.brokers, &self.plan.topic, &self.plan.librdkafka, positions, self.plan.connect_timeout, |k, v| {
            each(identity(k, v))
        })
        .map_err(|e| SinkError::Kafka { sink: self.name.clone(), message: e.to_string() })
    }
}
