//! Test support shared by integration tests and benches: built plugin paths, and helpers to run things for real.

pub mod plugins {
    //! Paths of every plugin under `plugins/`, built for wasm32-wasip2 by this crate's build script.
    include!(concat!(env!("OUT_DIR"), "/plugins.rs"));
}
