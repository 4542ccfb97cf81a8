//! Property tests: any records round-trip, and no byte string makes the reader panic.

use proptest::prelude::*;
use sda_wire::{BatchReader, BatchWriter};

type Owned = (Option<u32>, i64, Vec<u8>, Vec<u8>, Vec<(Vec<u8>, Vec<u8>)>);

fn record() -> impl Strategy<Value = Owned> {
    (
        proptest::option::of(0u32..u32::MAX),
        any::<i64>(),
        proptest::collection::vec(any::<u8>(), 0..40),
        proptest::collection::vec(any::<u8>(), 0..200),
        proptest::collection::vec((proptest::collection::vec(any::<u8>(), 0..10), proptest::collection::vec(any::<u8>(), 0..20)), 0..4),
    )
}

proptest! {
    #[test]
    fn any_records_round_trip(records in proptest::collection::vec(record(), 0..50)) {
        let mut w = BatchWriter::new();
        for (origin, t, key, payload, headers) in &records {
            w.push(*origin, *t, key, payload, headers.iter().map(|(n, v)| (&n[..], &v[..])));
        }
        let buf = w.finish();
        let read = BatchReader::read_all(&buf).unwrap();
        prop_assert_eq!(read.len(), records.len());
        for (view, (origin, t, key, payload, headers)) in read.iter().zip(&records) {
            prop_assert_eq!(view.origin, *origin);
            prop_assert_eq!(view.event_time_ms, *t);
            prop_assert_eq!(view.key, &key[..]);
            prop_assert_eq!(view.payload, &payload[..]);
            let got: Vec<(Vec<u8>, Vec<u8>)> = view.headers().map(|h| (h.name.to_vec(), h.value.to_vec())).collect();
            prop_assert_eq!(&got, headers);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(reader) = BatchReader::new(&bytes) {
            for r in reader { let _ = r; }
        }
    }

    #[test]
    fn every_truncation_of_a_good_batch_is_rejected(
        records in proptest::collection::vec(record(), 1..5),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut w = BatchWriter::new();
        for (origin, t, key, payload, headers) in &records {
            w.push(*origin, *t, key, payload, headers.iter().map(|(n, v)| (&n[..], &v[..])));
        }
        let buf = w.finish();
        let at = cut.index(buf.len());
        prop_assert!(BatchReader::read_all(&buf[..at]).is_err());
    }
}
