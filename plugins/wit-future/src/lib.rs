//! Test plugin built against `sda:operator@0.3.0`, a WIT version no host supports: the host must refuse it by name.

wit_bindgen::generate!({ world: "plugin", path: "wit" });

use exports::sda::operator::operator::{BatchResult, Guest};

struct Future;

impl Guest for Future {
    fn init(_: String) -> Result<(), String> {
        Ok(())
    }
    fn process(batch: Vec<u8>) -> BatchResult {
        BatchResult { outputs: batch, failures: Vec::new() }
    }
    fn on_watermark(_: i64) -> BatchResult {
        BatchResult { outputs: 0u32.to_le_bytes().to_vec(), failures: Vec::new() }
    }
    fn snapshot() -> Vec<u8> {
        Vec::new()
    }
    fn state_version() -> u32 {
        1
    }
    fn restore(_: u32, _: Vec<u8>) -> Result<(), String> {
        Ok(())
    }
}

export!(Future);
