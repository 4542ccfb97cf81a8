//! Helpers to encode an operator's state for `snapshot` and read it back in `restore`.
//!
//! `postcard` is compact and its wire format is documented and stable, which a
//! checkpoint kept for days needs. Keep a state type per `STATE_VERSION` you have
//! ever written, and decode old versions into the new shape in `restore`.

use std::sync::atomic::{AtomicUsize, Ordering};

/// The size of the last state encoded: the next is usually about as large. Growing a buffer of
/// megabytes by doubling copies it about twice over and reallocates it some twenty times, which
/// was a third of a million-key snapshot's time in wasm (and snapshots are taken in the pause).
static LAST_ENCODED_LEN: AtomicUsize = AtomicUsize::new(0);

/// Encodes `state` with postcard.
pub fn encode<T: serde::Serialize>(state: &T) -> Vec<u8> {
    let hint = LAST_ENCODED_LEN.load(Ordering::Relaxed);
    let buffer = Vec::with_capacity(hint.saturating_add(hint / 16));
    let mut bytes = postcard::to_extend(state, buffer).expect("postcard encoding to memory fails only for unsupported types");
    // The bytes cross to the host, which frees them as a list of exactly this length.
    bytes.shrink_to_fit();
    LAST_ENCODED_LEN.store(bytes.len(), Ordering::Relaxed);
    bytes
}

/// Encodes `state` with postcard, then has `tail` append `tail_len` bytes of its own making after
/// it (columns of numbers, say, too large to go through serde and be copied once more); read back
/// with [`decode_prefix`]. One buffer is allocated, for both.
pub fn encode_then<T: serde::Serialize>(state: &T, tail_len: usize, tail: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let hint = LAST_ENCODED_LEN.load(Ordering::Relaxed);
    let buffer = Vec::with_capacity(hint.saturating_add(hint / 16).saturating_add(tail_len));
    let mut bytes = postcard::to_extend(state, buffer).expect("postcard encoding to memory fails only for unsupported types");
    LAST_ENCODED_LEN.store(bytes.len(), Ordering::Relaxed);
    bytes.reserve_exact(tail_len);
    let before = bytes.len();
    tail(&mut bytes);
    debug_assert_eq!(bytes.len() - before, tail_len, "the tail appended as many bytes as it said");
    // The bytes cross to the host, which frees them as a list of exactly this length.
    bytes.shrink_to_fit();
    bytes
}

/// Decodes state written by [`encode`], with a message fit for a refused `restore`.
pub fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    postcard::from_bytes(bytes).map_err(|e| format!("state bytes do not decode: {e}"))
}

/// Decodes state written by [`encode`] at the start of `bytes`, and returns the bytes after it:
/// for a state that appends a part of its own making (columns of numbers, say) to what `encode` wrote.
pub fn decode_prefix<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<(T, &[u8]), String> {
    postcard::take_from_bytes(bytes).map_err(|e| format!("state bytes do not decode: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn a_prefix_decodes_and_leaves_what_follows_it() {
        let bytes = encode_then(&(7u32, "seven".to_string()), 7, |out| out.extend_from_slice(b"columns"));
        assert_eq!(bytes.len(), bytes.capacity(), "handed to the host at its exact length");
        let ((n, word), rest) = decode_prefix::<(u32, String)>(&bytes).unwrap();
        assert_eq!((n, word.as_str(), rest), (7, "seven", &b"columns"[..]));
        assert!(decode_prefix::<(u32, String)>(&bytes[..3]).unwrap_err().contains("do not decode"));
    }

    #[test]
    fn states_of_any_size_round_trip_whatever_was_encoded_before() {
        let state = |n: u64| (0..n).map(|i| (format!("key-{i}"), i)).collect::<BTreeMap<String, u64>>();
        for n in [10_000, 3, 0, 50_000, 49_999] {
            let bytes = encode(&state(n));
            assert_eq!(bytes.len(), bytes.capacity(), "handed to the host at its exact length");
            assert_eq!(decode::<BTreeMap<String, u64>>(&bytes).unwrap(), state(n));
        }
    }
}
