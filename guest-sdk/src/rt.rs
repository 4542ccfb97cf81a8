//! Glue between the generated bindings and an [`Operator`]; used by `export_operator!` only.
//!
//! The per-call logic (unpack the batch, call the operator per record, pack the
//! outputs) lives in plain functions so the native [`crate::testing`] harness runs
//! exactly the code a plugin runs.

use crate::{Emitter, Failure, FailureKind, FailureReason, InputScope, Operator, Record, Shard};
use sda_wire::{BatchReader, BatchWriter};
use std::cell::RefCell;

/// Generated bindings for `sda:operator@0.2.0`; hidden from authors.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "plugin",
        path: "wit/v0.2.0",
        pub_export_macro: true,
        export_macro_name: "__export_plugin_world",
        default_bindings_module: "sda_guest::rt::bindings",
        runtime_path: "sda_guest::rt::wit_bindgen::rt",
    });
}

#[doc(hidden)]
pub use wit_bindgen;

use bindings::exports::sda::operator::operator as wit;

pub type BatchResult = wit::BatchResult;
pub type OperatorInfo = wit::OperatorInfo;
pub type WitShard = wit::Shard;

/// The one operator instance of a plugin.
///
/// A component instance runs on one thread only (wasm32-wasip2 has no threads),
/// so a `RefCell` is enough; `Sync` is asserted for the `static` the export macro
/// declares.
pub struct Slot<T>(RefCell<Option<T>>);

// SAFETY: only instantiated by `export_operator!` on wasm32, which has no
// threads: the slot is never shared across threads.
unsafe impl<T> Sync for Slot<T> {}

impl<T> Slot<T> {
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        Slot(RefCell::new(None))
    }

    fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let mut guard = self.0.borrow_mut();
        let operator = guard.as_mut().expect("the host called the operator before `init` succeeded");
        f(operator)
    }
}

/// Parses the JSON config into `T::Config` and builds the whole operator (shard 0 of 1).
pub fn build<T: Operator>(config_json: &str) -> Result<T, String> {
    build_shard::<T>(config_json, Shard::WHOLE)
}

/// Parses the JSON config into `T::Config` and builds instance `shard` of the operator.
pub fn build_shard<T: Operator>(config_json: &str, shard: Shard) -> Result<T, String> {
    if shard.index >= shard.count {
        return Err(format!("shard {} of {} does not exist", shard.index, shard.count));
    }
    let config: T::Config = serde_json::from_str(config_json).map_err(|e| format!("invalid config: {e}"))?;
    T::init_shard(config, shard)
}

pub fn describe<T: Operator>() -> OperatorInfo {
    OperatorInfo {
        input_scope: match T::INPUT_SCOPE {
            InputScope::Keyed => wit::InputScope::Keyed,
            InputScope::AllRecords => wit::InputScope::AllRecords,
        },
    }
}

/// Runs `operator` over one packed batch: packed outputs and per-record failures.
pub fn process_batch<T: Operator>(operator: &mut T, batch: &[u8]) -> (Vec<u8>, Vec<(u32, Failure)>) {
    let reader = BatchReader::new(batch).unwrap_or_else(|e| panic!("host sent a malformed batch: {e}"));
    let mut out = Emitter::new(BatchWriter::with_capacity(batch.len() + 64));
    let mut failures = Vec::new();
    for (index, record) in reader.enumerate() {
        let view = record.unwrap_or_else(|e| panic!("host sent a malformed batch: {e}"));
        let index = index as u32;
        out.set_current(Some(index), view.event_time_ms);
        if let Err(failure) = operator.process(&Record::new(view, index), &mut out) {
            failures.push((index, failure));
        }
    }
    (out.finish(), failures)
}

/// Runs `operator`'s watermark handler: packed outputs.
pub fn watermark<T: Operator>(operator: &mut T, event_time_ms: i64) -> Vec<u8> {
    let mut out = Emitter::new(BatchWriter::new());
    out.set_current(None, event_time_ms);
    operator.on_watermark(event_time_ms, &mut out);
    out.finish()
}

fn to_wit(index: u32, failure: Failure) -> wit::Failure {
    let (kind, reason, message) = failure.into_parts();
    wit::Failure {
        index,
        kind: match kind {
            FailureKind::Transient => wit::FailureKind::Transient,
            FailureKind::Permanent => wit::FailureKind::Permanent,
            FailureKind::Discard => wit::FailureKind::Discard,
        },
        reason: match reason {
            FailureReason::Deserialization => wit::FailureReason::Deserialization,
            FailureReason::Validation => wit::FailureReason::Validation,
            FailureReason::Late => wit::FailureReason::Late,
            FailureReason::Duplicate => wit::FailureReason::Duplicate,
            FailureReason::Suppressed => wit::FailureReason::Suppressed,
            FailureReason::Operator => wit::FailureReason::Operator,
        },
        message,
    }
}

pub fn init<T: Operator>(slot: &Slot<T>, config_json: &str, shard: WitShard) -> Result<(), String> {
    let operator = build_shard::<T>(config_json, Shard { index: shard.index, count: shard.count })?;
    *slot.0.borrow_mut() = Some(operator);
    Ok(())
}

pub fn process<T: Operator>(slot: &Slot<T>, batch: &[u8]) -> BatchResult {
    let (outputs, failures) = slot.with(|op| process_batch(op, batch));
    BatchResult { outputs, failures: failures.into_iter().map(|(i, f)| to_wit(i, f)).collect() }
}

pub fn on_watermark<T: Operator>(slot: &Slot<T>, event_time_ms: i64) -> BatchResult {
    let outputs = slot.with(|op| watermark(op, event_time_ms));
    BatchResult { outputs, failures: Vec::new() }
}

pub fn snapshot<T: Operator>(slot: &Slot<T>) -> Vec<u8> {
    slot.with(|op| op.snapshot())
}

pub fn restore<T: Operator>(slot: &Slot<T>, version: u32, state: &[u8]) -> Result<(), String> {
    slot.with(|op| op.restore(version, state))
}
