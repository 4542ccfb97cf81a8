//! sda-pipeline: runs a graph of WebAssembly operators over observations of
//! orbiting objects and delivers conjunction alerts, exactly once.
//!
//! # Layout
//! - [`graph`]: `pipeline.toml`, from raw spec to validated plan, every problem located.
//! - [`runtime`]: wasmtime engine, compiled-plugin cache, sandboxed operator instances.
//! - [`source`]: where records enter, in batches, with their offsets.
//! - [`sink`]: where outputs leave.
//! - [`dlq`]: the dead-letter envelope, its writers (with retention and a growth alert) and its reader.
//! - [`reprocess`]: re-injecting dead letters into their source, once.
//! - [`task`]: one source partition's batch loop through the operator graph.
//! - [`pipeline`]: starts the tasks of a plan and reports what they did.
//! - [`stats`]: live counters for the progress line and the summary.

pub mod admin;
pub mod admin_client;
pub mod checkpoint;
pub mod dedup;
pub mod dlq;
pub mod durable;
pub mod failpoint;
pub mod graph;
pub mod kafka;
pub mod ledger;
pub mod metrics;
pub mod pipeline;
pub mod report;
pub mod reprocess;
pub mod runtime;
pub mod sink;
pub mod source;
pub mod stats;
pub mod swap;
pub mod task;
pub mod watch;
