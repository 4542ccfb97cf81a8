//! How the records of one batch in flight are found again, and traced back to the source offsets they came from.

use super::Input;
use crate::source::SourceBatch;
use sda_wire::{BatchReader, BatchWriter};
use std::borrow::Cow;

/// The buffers of one batch in flight, and how records trace back to source offsets.
pub(super) struct Lineage<'a> {
    pub batch: &'a SourceBatch,
    /// Outputs of the operators run so far, by position.
    pub outputs: &'a [Vec<u8>],
    /// For each operator run so far: its input, as consecutive (input, count) runs.
    pub segments: &'a [Vec<(Input, u32)>],
}

impl Lineage<'_> {
    pub fn buffer(&self, input: Input) -> &[u8] {
        match input {
            Input::Source => &self.batch.packed,
            Input::Operator(k) => &self.outputs[k],
        }
    }

    fn count(&self, input: Input) -> u32 {
        match input {
            Input::Source => self.batch.count,
            Input::Operator(k) => BatchReader::declared_count(&self.outputs[k]).expect("checked output"),
        }
    }

    /// An operator's input batch: borrowed when it has one input, else the
    /// concatenation of its inputs in declared order.
    pub fn assemble(&self, inputs: &[Input]) -> (Cow<'_, [u8]>, Vec<(Input, u32)>) {
        let segments: Vec<(Input, u32)> = inputs.iter().map(|&i| (i, self.count(i))).collect();
        if let [single] = inputs {
            return (Cow::Borrowed(self.buffer(*single)), segments);
        }
        let mut w = BatchWriter::with_capacity(inputs.iter().map(|&i| self.buffer(i).len()).sum());
        for &i in inputs {
            w.append_batch(self.buffer(i)).expect("checked output");
        }
        (Cow::Owned(w.finish()), segments)
    }

    /// Source offset of record `index` of an operator's assembled input.
    pub fn offset_of_input(&self, segments: &[(Input, u32)], mut index: u32) -> Option<u64> {
        for &(input, count) in segments {
            if index < count {
                return self.offset_of(input, index);
            }
            index -= count;
        }
        None
    }

    /// Source offset of record `index` of `input`, following output origins
    /// back to the source. `None` for outputs with no single input.
    pub fn offset_of(&self, input: Input, index: u32) -> Option<u64> {
        match input {
            Input::Source => self.batch.offsets.get(index as usize).copied(),
            Input::Operator(k) => {
                let record = BatchReader::new(&self.outputs[k]).ok()?.nth(index as usize)?.ok()?;
                self.offset_of_input(&self.segments[k], record.origin?)
            }
        }
    }
}
