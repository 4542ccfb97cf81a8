//! The deterministic order of an operator's outputs: the outputs of its instances merged by their `sda-order` header, which is then removed.
//!
//! The rule is `guest-sdk/wit/v0.2.0/FRAMING.md`'s: outputs of one call are ordered by their
//! order key (bytes compared lexicographically); ties keep instance order, then output
//! order; an output without the header takes the key of the output before it in its own
//! instance (the empty key when none is), so outputs without keys keep their instance's
//! order. The header never leaves the runtime, with one instance too, so what downstream
//! sees does not depend on the number of instances.

use sda_wire::{BatchReader, BatchWriter, ORDER_HEADER};

/// Merges the (checked) output batches of one call, in instance order, into one batch with no
/// `sda-order` header; returns it and its record count. One batch without the header is
/// returned as it is, uncopied.
pub(super) fn merge(mut batches: Vec<Vec<u8>>) -> (Vec<u8>, u32) {
    let mut keyed = false;
    let mut total = 0u32;
    for batch in &batches {
        for record in BatchReader::new(batch).expect("checked output") {
            let record = record.expect("checked output");
            total += 1;
            keyed |= record.header(ORDER_HEADER).is_some();
        }
    }
    if !keyed && batches.len() == 1 {
        return (batches.pop().expect("one batch"), total);
    }
    // (order key, record), in instance order then output order: a stable sort keeps the ties so.
    let mut entries = Vec::with_capacity(total as usize);
    for batch in &batches {
        let mut key: &[u8] = &[];
        for record in BatchReader::new(batch).expect("checked output") {
            let record = record.expect("checked output");
            if let Some(own) = record.header(ORDER_HEADER) {
                key = own;
            }
            entries.push((key, record));
        }
    }
    if keyed {
        entries.sort_by(|a, b| a.0.cmp(b.0));
    }
    let mut merged = BatchWriter::with_capacity(batches.iter().map(Vec::len).sum());
    for (_, record) in &entries {
        let headers = record.headers().filter(|h| h.name != ORDER_HEADER.as_bytes()).map(|h| (h.name, h.value));
        merged.push(record.origin, record.event_time_ms, record.key, record.payload, headers);
    }
    (merged.finish(), total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sda_wire::OrderKey;

    /// A batch of `(key, order key)` records; `None`: no `sda-order` header. Every record also
    /// carries a header of its own, which must survive.
    fn batch(records: &[(&str, Option<u32>)]) -> Vec<u8> {
        let mut w = BatchWriter::new();
        for (key, order) in records {
            let order = order.map(|o| OrderKey::new().u32(o));
            let mut headers: Vec<(&[u8], &[u8])> = vec![(b"trace", key.as_bytes())];
            if let Some(order) = &order {
                headers.push((ORDER_HEADER.as_bytes(), order.as_bytes()));
            }
            w.push(Some(0), 1, key.as_bytes(), b"{}", headers);
        }
        w.finish()
    }

    fn keys(batch: &[u8]) -> Vec<String> {
        BatchReader::read_all(batch)
            .unwrap()
            .iter()
            .map(|r| {
                assert!(r.header(ORDER_HEADER).is_none(), "the order header is removed");
                assert_eq!(r.header("trace"), Some(r.key), "other headers stay");
                String::from_utf8(r.key.to_vec()).unwrap()
            })
            .collect()
    }

    #[test]
    fn keyed_outputs_of_several_instances_merge_by_key_ties_by_instance() {
        let (merged, count) =
            merge(vec![batch(&[("a1", Some(1)), ("a5", Some(5))]), batch(&[("b2", Some(2)), ("b5", Some(5)), ("b9", Some(9))])]);
        assert_eq!(count, 5);
        assert_eq!(keys(&merged), ["a1", "b2", "a5", "b5", "b9"]);
    }

    #[test]
    fn outputs_without_a_key_follow_the_output_before_them_and_otherwise_keep_instance_order() {
        let (merged, _) = merge(vec![batch(&[("a0", None), ("a3", Some(3)), ("a3+", None)]), batch(&[("b0", None), ("b1", Some(1))])]);
        assert_eq!(keys(&merged), ["a0", "b0", "b1", "a3", "a3+"]);
        let (merged, _) = merge(vec![batch(&[("a", None), ("b", None)]), batch(&[("c", None)])]);
        assert_eq!(keys(&merged), ["a", "b", "c"]);
    }

    #[test]
    fn one_instance_loses_its_order_header_and_an_unkeyed_batch_is_passed_as_it_is() {
        let keyed = batch(&[("x", Some(2)), ("y", Some(1))]);
        let (merged, _) = merge(vec![keyed]);
        assert_eq!(keys(&merged), ["y", "x"]);
        let plain = batch(&[("x", None), ("y", None)]);
        assert_eq!(merge(vec![plain.clone()]), (plain, 2));
    }
}
