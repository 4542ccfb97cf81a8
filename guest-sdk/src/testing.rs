//! Drive an operator natively in unit tests, through the same packing a plugin uses.
//!
//! ```
//! use sda_guest::testing::Harness;
//! use sda_guest::{Emitter, Failure, Operator, Record};
//!
//! #[derive(serde::Deserialize)]
//! struct Config { threshold: u64 }
//!
//! struct Over { threshold: u64 }
//!
//! impl Operator for Over {
//!     type Config = Config;
//!     fn init(c: Config) -> Result<Self, String> { Ok(Over { threshold: c.threshold }) }
//!     fn process(&mut self, r: &Record<'_>, out: &mut Emitter) -> Result<(), Failure> {
//!         let n: u64 = r.payload_str()?.parse().map_err(|_| Failure::validation("not a number"))?;
//!         if n > self.threshold { out.emit(r.key(), r.payload()).push() }
//!         Ok(())
//!     }
//! }
//!
//! let mut h = Harness::<Over>::new(r#"{"threshold": 3}"#).unwrap();
//! let out = h.process(&[("a", "5", 1000), ("b", "2", 1001), ("c", "x", 1002)]);
//! assert_eq!(out.outputs.len(), 1);
//! assert_eq!(out.failures[0].0, 2);
//! ```

use crate::{Failure, Operator, Shard, rt};
use sda_wire::{BatchReader, BatchWriter};

/// One output record, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub origin: Option<u32>,
    pub event_time_ms: i64,
    pub key: Vec<u8>,
    pub payload: Vec<u8>,
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Output {
    /// The payload as text (panics if it is not UTF-8: this is for tests).
    pub fn payload_str(&self) -> &str {
        std::str::from_utf8(&self.payload).expect("payload is UTF-8")
    }
}

/// What one call produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    pub outputs: Vec<Output>,
    pub failures: Vec<(u32, Failure)>,
}

/// An operator instance driven natively.
pub struct Harness<T: Operator> {
    operator: T,
}

impl<T: Operator> Harness<T> {
    /// Builds the operator from a JSON config, as the host would.
    pub fn new(config_json: &str) -> Result<Self, String> {
        Self::new_shard(config_json, Shard::WHOLE)
    }

    /// Builds instance `shard` of the operator, as the host does with `parallelism` > 1.
    pub fn new_shard(config_json: &str, shard: Shard) -> Result<Self, String> {
        Ok(Harness { operator: rt::build_shard::<T>(config_json, shard)? })
    }

    /// The operator, for inspection.
    pub fn operator(&self) -> &T {
        &self.operator
    }

    /// Runs `(key, payload, event_time_ms)` records as one batch, as the host does: `process`,
    /// then `on_watermark(NO_WATERMARK)`; the outputs of both, in that order.
    pub fn process(&mut self, records: &[(&str, &str, i64)]) -> Outcome {
        self.process_packed(&pack(records))
    }

    /// Runs an already packed batch as [`Harness::process`] does.
    pub fn process_packed(&mut self, batch: &[u8]) -> Outcome {
        let mut outcome = self.process_packed_only(batch);
        outcome.outputs.extend(self.watermark(crate::NO_WATERMARK).outputs);
        outcome
    }

    /// Only the `process` call, without the `on_watermark` the host makes after every batch.
    pub fn process_only(&mut self, records: &[(&str, &str, i64)]) -> Outcome {
        self.process_packed_only(&pack(records))
    }

    fn process_packed_only(&mut self, batch: &[u8]) -> Outcome {
        let (outputs, failures) = rt::process_batch(&mut self.operator, batch);
        Outcome { outputs: unpack(&outputs), failures }
    }

    /// Advances the watermark.
    pub fn watermark(&mut self, event_time_ms: i64) -> Outcome {
        let outputs = rt::watermark(&mut self.operator, event_time_ms);
        Outcome { outputs: unpack(&outputs), failures: Vec::new() }
    }

    /// `(state_version, snapshot)`.
    pub fn snapshot(&self) -> (u32, Vec<u8>) {
        (T::STATE_VERSION, self.operator.snapshot())
    }

    /// Restores a snapshot into this instance.
    pub fn restore(&mut self, version: u32, state: &[u8]) -> Result<(), String> {
        self.operator.restore(version, state)
    }
}

fn pack(records: &[(&str, &str, i64)]) -> Vec<u8> {
    let mut w = BatchWriter::new();
    for (key, payload, t) in records {
        w.push_simple(None, *t, key.as_bytes(), payload.as_bytes());
    }
    w.finish()
}

fn unpack(packed: &[u8]) -> Vec<Output> {
    BatchReader::read_all(packed)
        .expect("the SDK packs well-formed batches")
        .into_iter()
        .map(|r| Output {
            origin: r.origin,
            event_time_ms: r.event_time_ms,
            key: r.key.to_vec(),
            payload: r.payload.to_vec(),
            headers: r.headers().map(|h| (h.name.to_vec(), h.value.to_vec())).collect(),
        })
        .collect()
}
