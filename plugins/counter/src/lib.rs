//! Test plugin: counts records per key and emits the running count; its state survives snapshot/restore.

use sda_guest::state::{self, VersionedState};
use sda_guest::{Emitter, Failure, NoConfig, Operator, Record, export_operator};
use std::collections::BTreeMap;

#[derive(Default, serde::Serialize, serde::Deserialize)]
pub struct Counter {
    counts: BTreeMap<String, u64>,
}

/// State version 1: the counts, by postcard. No older version exists, so there is nothing to migrate.
impl VersionedState for Counter {
    const VERSION: u32 = 1;
}

#[derive(serde::Serialize)]
struct Count<'a> {
    key: &'a str,
    count: u64,
}

impl Operator for Counter {
    type Config = NoConfig; // or your own `#[serde(deny_unknown_fields)]` struct
    const STATE_VERSION: u32 = Counter::VERSION;

    fn init(_: NoConfig) -> Result<Self, String> {
        Ok(Counter::default())
    }

    fn process(&mut self, record: &Record<'_>, out: &mut Emitter) -> Result<(), Failure> {
        let key = record.key_str()?; // not UTF-8? a Deserialization failure, dead-lettered
        let count = self.counts.entry(key.to_string()).or_default();
        *count += 1;
        out.emit_json(key, &Count { key, count: *count }).push();
        Ok(())
    }

    fn snapshot(&self) -> Vec<u8> {
        state::snapshot_versioned(self)
    }

    fn restore(&mut self, version: u32, bytes: &[u8]) -> Result<(), String> {
        *self = state::restore_versioned(version, bytes)?; // checks the version, migrates or refuses
        Ok(())
    }
}

export_operator!(Counter);

#[cfg(test)]
mod tests {
    use super::*;
    use sda_guest::testing::Harness;

    #[test]
    fn counts_per_key_and_survives_a_restore() {
        let mut h = Harness::<Counter>::new("{}").unwrap();
        let out = h.process(&[("a", "{}", 1), ("b", "{}", 2), ("a", "{}", 3)]);
        let payloads: Vec<&str> = out.outputs.iter().map(|o| o.payload_str()).collect();
        assert_eq!(payloads, [r#"{"key":"a","count":1}"#, r#"{"key":"b","count":1}"#, r#"{"key":"a","count":2}"#]);
        assert_eq!(out.outputs[2].origin, Some(2));

        let (version, bytes) = h.snapshot();
        let mut fresh = Harness::<Counter>::new("{}").unwrap();
        fresh.restore(version, &bytes).unwrap();
        let out = fresh.process(&[("a", "{}", 4)]);
        assert_eq!(out.outputs[0].payload_str(), r#"{"key":"a","count":3}"#);
        assert!(fresh.restore(2, &bytes).unwrap_err().contains("unknown state version 2"));
        assert!(fresh.restore(0, &bytes).unwrap_err().contains("cannot migrate state version 0 to version 1"));
    }

    #[test]
    fn rejects_unknown_config_keys() {
        assert!(Harness::<Counter>::new(r#"{"x": 1}"#).is_err());
    }
}
