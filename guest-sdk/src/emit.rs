//! Where an operator's outputs go: packed straight into the output batch.

use sda_wire::{BatchWriter, ORDER_HEADER, OrderKey};

/// Collects an operator's outputs for one call.
///
/// Each output remembers which input it came from (the record being processed),
/// so the host can trace it back to its source offset; outputs emitted from
/// `on_watermark` have no single input.
#[derive(Debug)]
pub struct Emitter {
    writer: BatchWriter,
    origin: Option<u32>,
    event_time_ms: i64,
}

impl Emitter {
    pub(crate) fn new(writer: BatchWriter) -> Self {
        Emitter { writer, origin: None, event_time_ms: 0 }
    }

    /// Outputs from now on derive from input `index`, whose event time is `event_time_ms`.
    pub(crate) fn set_current(&mut self, origin: Option<u32>, event_time_ms: i64) {
        self.origin = origin;
        self.event_time_ms = event_time_ms;
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        self.writer.finish()
    }

    /// Emits a record with the current input's event time (or the watermark's).
    pub fn emit(&mut self, key: impl AsRef<[u8]>, payload: impl AsRef<[u8]>) {
        self.writer.push_simple(self.origin, self.event_time_ms, key.as_ref(), payload.as_ref());
    }

    /// Emits a record with an explicit event time.
    pub fn emit_at(&mut self, event_time_ms: i64, key: impl AsRef<[u8]>, payload: impl AsRef<[u8]>) {
        self.writer.push_simple(self.origin, event_time_ms, key.as_ref(), payload.as_ref());
    }

    /// Emits a record with headers, given as `(name, value)` pairs.
    pub fn emit_with_headers<'h>(
        &mut self,
        event_time_ms: i64,
        key: impl AsRef<[u8]>,
        payload: impl AsRef<[u8]>,
        headers: impl IntoIterator<Item = (&'h [u8], &'h [u8])>,
    ) {
        self.writer.push(self.origin, event_time_ms, key.as_ref(), payload.as_ref(), headers);
    }

    /// Emits `value` serialized as JSON, with an explicit event time.
    pub fn emit_json<T: serde::Serialize>(&mut self, event_time_ms: i64, key: impl AsRef<[u8]>, value: &T) {
        let payload = serde_json::to_vec(value).expect("serializing a value to JSON in memory cannot fail");
        self.emit_at(event_time_ms, key, payload);
    }

    /// Emits `value` as JSON with no origin: for an output that does not derive
    /// from the record being processed (a window it caused to close, say), so a
    /// dead-letter entry downstream does not blame that record.
    pub fn emit_json_unattributed<T: serde::Serialize>(&mut self, event_time_ms: i64, key: impl AsRef<[u8]>, value: &T) {
        let payload = serde_json::to_vec(value).expect("serializing a value to JSON in memory cannot fail");
        self.writer.push_simple(None, event_time_ms, key.as_ref(), &payload);
    }

    /// Emits `value` as JSON with its place in the operator's output order (the reserved header
    /// [`ORDER_HEADER`]): when the host runs several instances it merges their outputs by this key,
    /// so the result is the same whatever their number. The host removes the header; records
    /// downstream never see it. Emit in key order, so one instance's output is already merged.
    pub fn emit_ordered_json<T: serde::Serialize>(&mut self, order: &OrderKey, event_time_ms: i64, key: impl AsRef<[u8]>, value: &T) {
        let payload = serde_json::to_vec(value).expect("serializing a value to JSON in memory cannot fail");
        let header = [(ORDER_HEADER.as_bytes(), order.as_bytes())];
        self.writer.push(self.origin, event_time_ms, key.as_ref(), &payload, header);
    }

    /// Outputs emitted so far in this call.
    pub fn len(&self) -> u32 {
        self.writer.len()
    }

    pub fn is_empty(&self) -> bool {
        self.writer.is_empty()
    }
}
