//! Helpers to encode an operator's state for `snapshot` and read it back in `restore`.
//!
//! `postcard` is compact and its wire format is documented and stable, which a
//! checkpoint kept for days needs. Keep a state type per `STATE_VERSION` you have
//! ever written, and decode old versions into the new shape.
//!
//! [`VersionedState`] does that version check for you: declare the state's version and how the
//! older ones migrate, and [`restore_versioned`] decodes the current version, migrates an older one
//! and refuses a newer one, naming both versions. With no history, the whole of it is one impl line,
//! `STATE_VERSION`, and one call in each of `snapshot` and `restore`:
//!
//! ```
//! use sda_guest::state::{self, VersionedState};
//! use sda_guest::{Emitter, Failure, NoConfig, Operator, Record};
//! use std::collections::BTreeMap;
//!
//! /// Counts per key, and their total (version 2; version 1 had no total).
//! #[derive(Default, serde::Serialize, serde::Deserialize)]
//! struct Counts { per_key: BTreeMap<String, u64>, total: u64 }
//!
//! impl VersionedState for Counts {
//!     const VERSION: u32 = 2;
//!     // Only an author with history writes this; the default refuses every older version.
//!     fn migrate(version: u32, bytes: &[u8]) -> Result<Self, String> {
//!         match version {
//!             1 => {
//!                 let per_key: BTreeMap<String, u64> = state::decode(bytes)?;
//!                 Ok(Counts { total: per_key.values().sum(), per_key })
//!             }
//!             _ => Err("no build of this operator wrote it".to_string()),
//!         }
//!     }
//! }
//!
//! struct Tally { counts: Counts }
//!
//! impl Operator for Tally {
//!     type Config = NoConfig;
//!     const STATE_VERSION: u32 = Counts::VERSION; // never a number of its own: the host labels snapshots with it
//!     fn init(_: NoConfig) -> Result<Self, String> { Ok(Tally { counts: Counts::default() }) }
//!     fn process(&mut self, record: &Record<'_>, _: &mut Emitter) -> Result<(), Failure> {
//!         *self.counts.per_key.entry(record.key_str()?.to_string()).or_default() += 1;
//!         self.counts.total += 1;
//!         Ok(())
//!     }
//!     fn snapshot(&self) -> Vec<u8> {
//!         state::snapshot_versioned(&self.counts)
//!     }
//!     fn restore(&mut self, version: u32, bytes: &[u8]) -> Result<(), String> {
//!         self.counts = state::restore_versioned(version, bytes)?;
//!         Ok(())
//!     }
//! }
//!
//! let mut h = sda_guest::testing::Harness::<Tally>::new("{}").unwrap();
//! let version_1 = state::encode(&BTreeMap::from([("a".to_string(), 2u64), ("b".to_string(), 1)]));
//! h.restore(1, &version_1).unwrap();
//! assert_eq!(h.operator().counts.total, 3);
//! let refused = h.restore(3, &version_1).unwrap_err();
//! assert_eq!(refused, "unknown state version 3: this build's state is version 2, and no build reads a version newer than its own");
//! ```

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

/// A state type that knows its version, and how to read the versions before it: the SDK then
/// does the version check of `restore` ([`restore_versioned`]) and words its refusals.
///
/// The operator's [`crate::Operator::STATE_VERSION`] must be this type's [`VersionedState::VERSION`]
/// (`const STATE_VERSION: u32 = MyState::VERSION;`): the host labels each snapshot with it, and
/// hands the label back to `restore`.
pub trait VersionedState: serde::Serialize + serde::de::DeserializeOwned {
    /// The version of the format [`VersionedState::encode`] writes. Bump it when the format
    /// changes, and teach [`VersionedState::migrate`] to read the one before.
    const VERSION: u32;

    /// Reads state that an older build wrote in format `version` (less than `VERSION`). Refuse
    /// with the reason what cannot be read; the refusal is worded with both versions around it
    /// ([`StateError::Migration`]). The default refuses every older version.
    fn migrate(version: u32, bytes: &[u8]) -> Result<Self, String> {
        let _ = (version, bytes);
        Err("this build reads no older version".to_string())
    }

    /// Writes the state in format `VERSION`: postcard ([`encode`]), unless the type has a layout
    /// of its own (columns after a postcard head, say: [`encode_then`]).
    fn encode(&self) -> Vec<u8> {
        encode(self)
    }

    /// Reads the state in format `VERSION`, as [`VersionedState::encode`] wrote it. The default
    /// reads postcard and refuses bytes left over after the state: they mean a state of another shape.
    fn decode(bytes: &[u8]) -> Result<Self, String> {
        match postcard::take_from_bytes(bytes) {
            Ok((state, [])) => Ok(state),
            Ok((_, rest)) => Err(format!("{} bytes follow the state", rest.len())),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// Why [`restore_versioned`] refused a state. It converts into the `String` that
/// [`crate::Operator::restore`] returns, so `?` passes it on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// A later build wrote it: a build never guesses at a newer format than its own.
    #[error("unknown state version {found}: this build's state is version {current}, and no build reads a version newer than its own")]
    Newer { found: u32, current: u32 },
    /// An older version that [`VersionedState::migrate`] refused, for `reason`.
    #[error("cannot migrate state version {found} to version {current}: {reason}")]
    Migration { found: u32, current: u32, reason: String },
    /// The current version, but the bytes do not decode as it (`reason` says where).
    #[error("state version {version} does not decode: {reason}")]
    Corrupt { version: u32, reason: String },
}

impl From<StateError> for String {
    fn from(error: StateError) -> String {
        error.to_string()
    }
}

/// Encodes `state` in its format [`VersionedState::VERSION`], for `snapshot`.
pub fn snapshot_versioned<S: VersionedState>(state: &S) -> Vec<u8> {
    state.encode()
}

/// Reads a state of format `version` for `restore`: the current version is decoded, an older one
/// migrated ([`VersionedState::migrate`]), a newer one refused.
pub fn restore_versioned<S: VersionedState>(version: u32, bytes: &[u8]) -> Result<S, StateError> {
    let current = S::VERSION;
    if version == current {
        S::decode(bytes).map_err(|reason| StateError::Corrupt { version, reason })
    } else if version < current {
        S::migrate(version, bytes).map_err(|reason| StateError::Migration { found: version, current, reason })
    } else {
        Err(StateError::Newer { found: version, current })
    }
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

    /// Version 3 of a state: a name and a count. Version 2 had no name; version 1 was never read.
    #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Named {
        name: String,
        count: u64,
    }

    impl VersionedState for Named {
        const VERSION: u32 = 3;
        fn migrate(version: u32, bytes: &[u8]) -> Result<Self, String> {
            match version {
                2 => Ok(Named { name: "unnamed".to_string(), count: decode(bytes)? }),
                _ => Err("this build migrates version 2 only".to_string()),
            }
        }
    }

    /// A state with no history: the default `migrate`.
    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Plain(u64);

    impl VersionedState for Plain {
        const VERSION: u32 = 1;
    }

    #[test]
    fn the_current_version_round_trips_as_postcard() {
        let state = Named { name: "seven".to_string(), count: 7 };
        let bytes = snapshot_versioned(&state);
        assert_eq!(bytes, encode(&state), "the bytes `encode` writes");
        assert_eq!(restore_versioned::<Named>(3, &bytes), Ok(state));
    }

    #[test]
    fn an_older_version_is_migrated() {
        assert_eq!(restore_versioned::<Named>(2, &encode(&5u64)), Ok(Named { name: "unnamed".to_string(), count: 5 }));
        let refused = restore_versioned::<Named>(1, &encode(&5u64)).unwrap_err();
        assert_eq!(refused.to_string(), "cannot migrate state version 1 to version 3: this build migrates version 2 only");
        let broken = restore_versioned::<Named>(2, &[]).unwrap_err().to_string();
        assert!(broken.starts_with("cannot migrate state version 2 to version 3: state bytes do not decode"), "{broken}");
    }

    #[test]
    fn with_no_history_an_older_version_is_refused_naming_both() {
        let refused = restore_versioned::<Plain>(0, &encode(&Plain(1))).unwrap_err();
        assert_eq!(refused, StateError::Migration { found: 0, current: 1, reason: "this build reads no older version".to_string() });
        assert_eq!(refused.to_string(), "cannot migrate state version 0 to version 1: this build reads no older version");
    }

    #[test]
    fn a_newer_version_is_refused_naming_both() {
        let refused = restore_versioned::<Named>(4, &snapshot_versioned(&Named { name: String::new(), count: 0 })).unwrap_err();
        assert_eq!(refused, StateError::Newer { found: 4, current: 3 });
        let message = refused.to_string();
        assert!(message.contains("unknown state version 4") && message.contains("version 3"), "{message}");
    }

    #[test]
    fn corrupt_bytes_are_refused_naming_the_version() {
        let bytes = snapshot_versioned(&Named { name: "seven".to_string(), count: 7 });
        let cut = restore_versioned::<Named>(3, &bytes[..bytes.len() - 2]).unwrap_err();
        assert!(matches!(cut, StateError::Corrupt { version: 3, .. }), "{cut:?}");
        assert!(cut.to_string().starts_with("state version 3 does not decode: "), "{cut}");
        let longer = [bytes.as_slice(), b"xy"].concat();
        assert_eq!(
            restore_versioned::<Named>(3, &longer).unwrap_err().to_string(),
            "state version 3 does not decode: 2 bytes follow the state"
        );
        assert!(restore_versioned::<Plain>(1, &[0xff]).is_err(), "a varint with no end");
    }

    #[test]
    fn a_refusal_passes_through_restore_as_its_message() {
        fn restore(version: u32, bytes: &[u8]) -> Result<(), String> {
            let _: Plain = restore_versioned(version, bytes)?;
            Ok(())
        }
        assert_eq!(restore(1, &encode(&Plain(9))), Ok(()));
        assert_eq!(restore(2, &[]), Err(StateError::Newer { found: 2, current: 1 }.to_string()));
    }
}
