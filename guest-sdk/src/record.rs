//! A borrowed, typed view of one input record.

use crate::Failure;
use sda_wire::RecordView;

/// One input record, borrowed from the batch the host passed in.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    view: RecordView<'a>,
    index: u32,
}

impl<'a> Record<'a> {
    pub(crate) fn new(view: RecordView<'a>, index: u32) -> Self {
        Record { view, index }
    }

    /// Position of this record in its batch (0-based).
    pub fn index(&self) -> u32 {
        self.index
    }

    /// Event time, milliseconds since the Unix epoch.
    pub fn event_time_ms(&self) -> i64 {
        self.view.event_time_ms
    }

    /// The key, as bytes.
    pub fn key(&self) -> &'a [u8] {
        self.view.key
    }

    /// The key as UTF-8, or a `Deserialization` failure naming the problem.
    pub fn key_str(&self) -> Result<&'a str, Failure> {
        std::str::from_utf8(self.view.key).map_err(|e| Failure::deserialization(format!("record key is not UTF-8: {e}")))
    }

    /// The payload, as bytes.
    pub fn payload(&self) -> &'a [u8] {
        self.view.payload
    }

    /// The payload as UTF-8, or a `Deserialization` failure naming the problem.
    pub fn payload_str(&self) -> Result<&'a str, Failure> {
        std::str::from_utf8(self.view.payload).map_err(|e| Failure::deserialization(format!("payload is not UTF-8: {e}")))
    }

    /// The payload parsed as JSON into `T`, or a `Deserialization` failure with
    /// serde's message (which names the line, column and what was expected).
    pub fn json<T: serde::Deserialize<'a>>(&self) -> Result<T, Failure> {
        serde_json::from_slice(self.view.payload)
            .map_err(|e| Failure::deserialization(format!("payload is not valid JSON for this operator: {e}")))
    }

    /// The value of the first header named `name`.
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.view.header(name)
    }

    /// Every header as `(name, value)`, in order.
    pub fn headers(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a {
        self.view.headers().map(|h| (h.name, h.value))
    }
}
