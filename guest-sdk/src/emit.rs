//! Where an operator's outputs go: packed straight into the output batch, one [`Emit::push`] at a time.
//!
//! Two entry points, one per form of payload: [`Emitter::emit`] takes bytes and [`Emitter::emit_json`]
//! a value to serialize. Everything else about an output (its event time, headers, origin, place in
//! the merged order) is the same whatever the payload, so it is an option of the [`Emit`] both
//! return, not a method of its own: one method per combination had made five, in three parameter
//! orders. Options left out keep the defaults: the current input's event time and origin (in
//! `on_watermark`, the watermark's time and no origin).
//!
//! ```
//! # use sda_guest::{Emitter, OrderKey, Record};
//! # fn f(record: &Record<'_>, out: &mut Emitter, value: &serde_json::Value) {
//! out.emit(record.key(), record.payload()).push();
//! out.emit_json("alert-7", value).at(1_767_225_660_000).ordered(&OrderKey::new().i64(42)).push();
//! # }
//! ```
//!
//! Why an explicit `.push()`, and not a push when the [`Emit`] is dropped: a drop runs on every way
//! out of a scope, so `let e = out.emit_json(k, &v); let t = when()?; e.at(t)` would push `v` with
//! the wrong time when `when()` fails, and a panic would push half-built outputs while unwinding.
//! `.push()` is where the output is complete, and nothing is emitted before it. [`Emit`] is
//! `#[must_use]`, so a forgotten `.push()` is a warning (an error in this workspace, which denies
//! `unused_must_use`).
//!
//! Why `emit` does not push at once, with defaults, and a second pair of methods (`record`,
//! `record_json`) open the builder: that is four entry points, two spellings of the same output, and
//! an output that grows an option must change its entry point as well. The common case pays five
//! characters instead, `out.emit(key, payload).push()`, and every output is written one way.

use sda_wire::{BatchWriter, ORDER_HEADER, OrderKey};

/// The headers of an output none were given for.
type NoHeaders = std::iter::Empty<(&'static [u8], &'static [u8])>;

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

    /// An output of `payload`'s bytes under `key`; nothing is emitted until [`Emit::push`].
    pub fn emit<K: AsRef<[u8]>, P: AsRef<[u8]>>(&mut self, key: K, payload: P) -> Emit<'_, K, P> {
        Emit {
            origin: self.origin,
            event_time_ms: self.event_time_ms,
            writer: &mut self.writer,
            key,
            payload,
            order: None,
            headers: std::iter::empty(),
        }
    }

    /// An output of `value` serialized as JSON under `key`; nothing is emitted until [`Emit::push`].
    pub fn emit_json<K: AsRef<[u8]>, T: serde::Serialize + ?Sized>(&mut self, key: K, value: &T) -> Emit<'_, K, Vec<u8>> {
        let payload = serde_json::to_vec(value).expect("serializing a value to JSON in memory cannot fail");
        self.emit(key, payload)
    }

    /// Outputs emitted so far in this call.
    pub fn len(&self) -> u32 {
        self.writer.len()
    }

    pub fn is_empty(&self) -> bool {
        self.writer.is_empty()
    }
}

/// One output being built by [`Emitter::emit`] or [`Emitter::emit_json`]: set what differs from
/// the defaults, then [`Emit::push`] it. The options may come in any order; each replaces what an
/// earlier call of the same option set.
///
/// Without `.push()` nothing is emitted, and the compiler says so:
///
/// ```compile_fail
/// #![deny(unused_must_use)]
/// fn forgets(out: &mut sda_guest::Emitter) {
///     out.emit("key", "payload");
/// }
/// ```
#[must_use = "nothing is emitted until `.push()` is called"]
pub struct Emit<'e, K, P, H = NoHeaders> {
    /// The call's output batch, borrowed until `push`.
    writer: &'e mut BatchWriter,
    /// The index of the input it derives from; `None` for no single input.
    origin: Option<u32>,
    event_time_ms: i64,
    key: K,
    payload: P,
    /// Written as the [`ORDER_HEADER`], before `headers`.
    order: Option<&'e OrderKey>,
    headers: H,
}

impl<'e, K, P, H> Emit<'e, K, P, H> {
    /// Its event time, instead of the current input's (or the watermark's).
    pub fn at(mut self, event_time_ms: i64) -> Self {
        self.event_time_ms = event_time_ms;
        self
    }

    /// With no origin: for an output that does not derive from the record being processed (a
    /// window it caused to close, say), so a dead-letter entry downstream does not blame that record.
    pub fn unattributed(mut self) -> Self {
        self.origin = None;
        self
    }

    /// With its place in the operator's output order (the reserved header [`ORDER_HEADER`]): when
    /// the host runs several instances it merges their outputs by this key, so the result is the
    /// same whatever their number. The host removes the header; records downstream never see it.
    /// Emit in key order, so one instance's output is already merged.
    pub fn ordered(mut self, order: &'e OrderKey) -> Self {
        self.order = Some(order);
        self
    }

    /// With these headers, as `(name, value)` pairs in order (after the [`ORDER_HEADER`] of
    /// [`Emit::ordered`], which is set only that way).
    pub fn headers<'h, I: IntoIterator<Item = (&'h [u8], &'h [u8])>>(self, headers: I) -> Emit<'e, K, P, I> {
        let Emit { writer, origin, event_time_ms, key, payload, order, headers: _ } = self;
        Emit { writer, origin, event_time_ms, key, payload, order, headers }
    }
}

impl<K: AsRef<[u8]>, P: AsRef<[u8]>, H> Emit<'_, K, P, H> {
    /// Appends the output to the call's batch.
    pub fn push<'h>(self)
    where
        H: IntoIterator<Item = (&'h [u8], &'h [u8])>,
    {
        let order = self.order.map(|order| (ORDER_HEADER.as_bytes(), order.as_bytes()));
        // Not an identity to the borrow checker: the given headers' borrows shorten to the order
        // key's, so the two chain (headers may be `'static` when the key is a temporary).
        #[expect(clippy::map_identity, reason = "the map shortens the headers' lifetime")]
        let given = self.headers.into_iter().map(|(name, value)| (name, value));
        let headers = order.into_iter().chain(given);
        self.writer.push(self.origin, self.event_time_ms, self.key.as_ref(), self.payload.as_ref(), headers);
    }
}

#[cfg(test)]
mod tests {
    //! Each way to emit writes the bytes the emit methods it replaced wrote: the host reads them.

    use super::*;

    /// The bytes `emit` writes as input 3 (event time 1000), and the bytes `expected` writes.
    fn compare(emit: impl FnOnce(&mut Emitter), expected: impl FnOnce(&mut BatchWriter)) {
        let mut out = Emitter::new(BatchWriter::new());
        out.set_current(Some(3), 1000);
        emit(&mut out);
        let mut writer = BatchWriter::new();
        expected(&mut writer);
        assert_eq!(out.finish(), writer.finish());
    }

    const JSON: &[u8] = br#"{"n":1}"#;

    #[test]
    fn raw_outputs_default_to_the_current_input_and_its_time() {
        compare(|out| out.emit("k", "v").push(), |w| w.push_simple(Some(3), 1000, b"k", b"v"));
        compare(|out| out.emit(b"k", vec![1, 2]).at(-5).push(), |w| w.push_simple(Some(3), -5, b"k", &[1, 2]));
        let headers = [(&b"a"[..], &b"1"[..]), (b"b", b"")];
        compare(|out| out.emit("k", "v").at(7).headers(headers).push(), |w| w.push(Some(3), 7, b"k", b"v", headers));
        compare(|out| out.emit("k", "v").unattributed().push(), |w| w.push_simple(None, 1000, b"k", b"v"));
    }

    #[test]
    fn json_outputs_write_the_serialized_value() {
        let value = serde_json::json!({"n": 1});
        compare(|out| out.emit_json("k", &value).at(9).push(), |w| w.push_simple(Some(3), 9, b"k", JSON));
        compare(|out| out.emit_json("k", &value).at(9).unattributed().push(), |w| w.push_simple(None, 9, b"k", JSON));
    }

    #[test]
    fn an_ordered_output_carries_the_order_header_first() {
        let value = serde_json::json!({"n": 1});
        let order = OrderKey::new().i64(-1).u32(7);
        let header = (ORDER_HEADER.as_bytes(), order.as_bytes());
        compare(|out| out.emit_json("k", &value).at(9).ordered(&order).push(), |w| w.push(Some(3), 9, b"k", JSON, [header]));
        // Options in any order; the order key may live shorter than the headers.
        let static_headers: [(&'static [u8], &'static [u8]); 1] = [(b"h", b"x")];
        compare(
            |out| out.emit("k", "v").headers(static_headers).ordered(&OrderKey::new().i64(-1).u32(7)).unattributed().push(),
            |w| w.push(None, 1000, b"k", b"v", [header, (b"h", b"x")]),
        );
    }

    #[test]
    fn outputs_of_on_watermark_have_no_origin_and_the_watermarks_time() {
        let mut out = Emitter::new(BatchWriter::new());
        out.set_current(None, 5000);
        out.emit("k", "v").push();
        out.emit("k", "w").at(6000).push();
        assert_eq!(out.len(), 2);
        let mut writer = BatchWriter::new();
        writer.push_simple(None, 5000, b"k", b"v");
        writer.push_simple(None, 6000, b"k", b"w");
        assert_eq!(out.finish(), writer.finish());
    }
}
