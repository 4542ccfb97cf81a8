//! Helpers to encode an operator's state for `snapshot` and read it back in `restore`.
//!
//! `postcard` is compact and its wire format is documented and stable, which a
//! checkpoint kept for days needs. Keep a state type per `STATE_VERSION` you have
//! ever written, and decode old versions into the new shape in `restore`.

/// Encodes `state` with postcard.
pub fn encode<T: serde::Serialize>(state: &T) -> Vec<u8> {
    postcard::to_stdvec(state).expect("postcard encoding to memory fails only for unsupported types")
}

/// Decodes state written by [`encode`], with a message fit for a refused `restore`.
pub fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    postcard::from_bytes(bytes).map_err(|e| format!("state bytes do not decode: {e}"))
}
