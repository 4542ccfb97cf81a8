//! The Kafka DLQ: each envelope as a record's value, its main fields also as headers, so entries can be routed and filtered without parsing.
//!
//! Headers: `dlq.schema_version`, `dlq.error_kind`, `dlq.operator`,
//! `dlq.stage`, `dlq.pipeline`, `dlq.failed_at`, `dlq.retry_count`,
//! `dlq.plugin_digest` (when there is one), `dlq.source.name`,
//! `dlq.source.topic` or `dlq.source.file`, `dlq.source.partition`,
//! `dlq.source.offset` (when there is one). The record key is the failed
//! record's own key.

use super::{DlqError, Envelope, decode_bytes};
use crate::kafka;
use crate::kafka::producing::{Producing, headers};
use std::time::Duration;

pub struct KafkaDlq {
    brokers: String,
    topic: String,
    librdkafka: Vec<(String, String)>,
    timeout: Duration,
    producing: Producing,
    /// At-most-once: each write waits for its acknowledgement (see [`KafkaDlq::write`]).
    acknowledge_each_write: bool,
}

impl KafkaDlq {
    pub fn open(
        brokers: &str,
        topic: &str,
        librdkafka: &[(String, String)],
        timeout: Duration,
        acknowledge_each_write: bool,
    ) -> Result<KafkaDlq, DlqError> {
        let producing = Producing::open("the DLQ", brokers, topic, librdkafka, timeout, None)
            .map_err(|message| DlqError::Kafka { topic: topic.to_string(), message })?;
        Ok(KafkaDlq {
            brokers: brokers.to_string(),
            topic: topic.to_string(),
            librdkafka: librdkafka.to_vec(),
            timeout,
            producing,
            acknowledge_each_write,
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Hands the entries to the producer. Their acknowledgements are waited for by the next
    /// [`KafkaDlq::positions`], that is before the checkpoint that counts them delivered: as with
    /// the file DLQ (flushed per batch, made durable at the checkpoint), a crash before then replays
    /// them, and the read-back at recovery recognises those that had arrived. Waiting per batch cost
    /// a broker round trip for every batch with a malformed record in it. Under at-most-once,
    /// which never replays a batch it went past, each write is acknowledged before it returns.
    pub fn write(&mut self, entries: &[Envelope]) -> Result<(), DlqError> {
        for e in entries {
            let value = serde_json::to_vec(e).expect("an envelope serializes to JSON");
            let key = decode_bytes(&e.key, &e.key_encoding).unwrap_or_default();
            let fields: Vec<(&str, String)> = [
                Some(("dlq.schema_version", e.schema_version.to_string())),
                Some(("dlq.error_kind", e.error_kind.as_str().to_string())),
                Some(("dlq.operator", e.operator.clone())),
                Some(("dlq.stage", format!("{:?}", e.stage).to_lowercase())),
                Some(("dlq.pipeline", e.pipeline.clone())),
                Some(("dlq.failed_at", e.failed_at.clone())),
                Some(("dlq.retry_count", e.retry_count.to_string())),
                e.plugin_digest.clone().map(|d| ("dlq.plugin_digest", d)),
                Some(("dlq.source.name", e.source.name.clone())),
                e.source.topic.clone().map(|t| ("dlq.source.topic", t)),
                e.source.file.clone().map(|f| ("dlq.source.file", f)),
                Some(("dlq.source.partition", e.source.partition.to_string())),
                e.source.offset.map(|o| ("dlq.source.offset", o.to_string())),
            ]
            .into_iter()
            .flatten()
            .collect();
            self.producing.send(&key, &value, Some(headers(fields.iter().map(|(k, v)| (*k, v.as_bytes())))));
        }
        if self.acknowledge_each_write {
            return self.wait_for_acknowledgements();
        }
        // Serves the delivery reports that have come in, without waiting for more.
        self.producing.producer.poll(Duration::ZERO);
        Ok(())
    }

    /// Waits until every entry written is acknowledged; an entry refused for good stops the task.
    fn wait_for_acknowledgements(&mut self) -> Result<(), DlqError> {
        let refused = self.producing.flush().map_err(|message| DlqError::Kafka { topic: self.topic.clone(), message })?;
        if let Some((_, why)) = refused.first() {
            // Nowhere further to put it: stop rather than lose it.
            return Err(DlqError::Kafka { topic: self.topic.clone(), message: format!("an entry was refused: {}", why.0) });
        }
        Ok(())
    }

    /// Waits until every entry written is acknowledged, then says where the topic ends.
    pub fn positions(&mut self) -> Result<Vec<(u32, u64)>, DlqError> {
        self.wait_for_acknowledgements()?;
        self.producing.positions(self.timeout).map_err(|message| DlqError::Kafka { topic: self.topic.clone(), message })
    }

    /// Identities of the entries written after `positions`.
    pub fn read_back(&self, positions: &[(u32, u64)], mut each: impl FnMut(crate::dedup::Identity)) -> Result<u64, DlqError> {
        kafka::read_since(&self.brokers, &self.topic, &self.librdkafka, positions, self.timeout, |_, value| {
            if let Ok(e) = serde_json::from_slice::<Envelope>(value) {
                each(e.identity());
            }
        })
        .map_err(|e| DlqError::Kafka { topic: self.topic.clone(), message: e.to_string() })
    }
}
