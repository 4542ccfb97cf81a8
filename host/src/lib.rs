//! sda-pipeline: runs a graph of WebAssembly operators over observations of
//! orbiting objects and delivers conjunction alerts, exactly once.
//!
//! # Layout
//! - [`graph`]: `pipeline.toml`, from raw spec to validated plan.
//! - [`runtime`]: wasmtime engine, compiled-plugin cache, sandboxed operator instances.

pub mod graph;
pub mod runtime;
