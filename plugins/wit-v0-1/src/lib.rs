//! Test plugin built with raw `wit-bindgen` against the frozen `sda:operator@0.1.0` (not through `sda-guest`, which exports the newest version): the host must keep running it.
//!
//! It passes every record on unchanged and counts them; the count is its state, so a
//! checkpoint and a restore of a 0.1.0 plugin are exercised too.

wit_bindgen::generate!({ world: "plugin", path: "../../guest-sdk/wit/v0.1.0" });

use exports::sda::operator::operator::{BatchResult, Guest};
use std::sync::atomic::{AtomicU64, Ordering};

/// Records seen since the state began (wasm32-wasip2 has one thread: relaxed is enough).
static SEEN: AtomicU64 = AtomicU64::new(0);

struct CountingPassthrough;

impl Guest for CountingPassthrough {
    fn init(config: String) -> Result<(), String> {
        match config.trim() {
            "{}" => Ok(()),
            other => Err(format!("this plugin takes no config, but was given {other}")),
        }
    }
    fn process(batch: Vec<u8>) -> BatchResult {
        let count = batch.get(..4).map_or(0, |c| u32::from_le_bytes(c.try_into().expect("4 bytes")));
        SEEN.fetch_add(u64::from(count), Ordering::Relaxed);
        // The input framing is the output framing; inputs carry no origin, which is allowed.
        BatchResult { outputs: batch, failures: Vec::new() }
    }
    fn on_watermark(_: i64) -> BatchResult {
        BatchResult { outputs: 0u32.to_le_bytes().to_vec(), failures: Vec::new() }
    }
    fn snapshot() -> Vec<u8> {
        SEEN.load(Ordering::Relaxed).to_le_bytes().to_vec()
    }
    fn state_version() -> u32 {
        1
    }
    fn restore(_: u32, state: Vec<u8>) -> Result<(), String> {
        let bytes: [u8; 8] = state.as_slice().try_into().map_err(|_| format!("expected 8 bytes of state, got {}", state.len()))?;
        SEEN.store(u64::from_le_bytes(bytes), Ordering::Relaxed);
        Ok(())
    }
}

export!(CountingPassthrough);
