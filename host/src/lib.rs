//! sda-pipeline: runs a graph of WebAssembly operators over observations of
//! orbiting objects and delivers conjunction alerts, exactly once.
//!
//! # Layout
//! - [`graph`]: `pipeline.toml`, from raw spec to validated plan, every problem located.
//! - [`runtime`]: wasmtime engine, compiled-plugin cache, sandboxed operator instances.
//! - [`source`]: where records enter, in batches, with their offsets.
//! - [`task`]: one source partition's batch loop through the operator graph.
//! - [`sink`]: where outputs leave.
//! - [`ledger`]: what a replay owes each sink, so it skips exactly that.
//! - [`dlq`]: the dead-letter envelope, its writers (with retention and a growth alert) and its reader.
//! - [`dedup`]: the bounded identity set of the DLQ and of sources with `dedup`.
//! - [`checkpoint`]: the checkpoint file, its local and remote tiers, and the recovery ladder.
//! - [`durable`]: writing a small file so that a crash leaves its old contents or its new ones.
//! - [`failpoint`]: deterministic crash points for the crash tests.
//! - [`kafka`]: Kafka plumbing shared by sources, sinks and the DLQ (client settings, error classes, tail read-back).
//! - [`pipeline`]: starts the tasks of a plan and reports what they did.
//! - [`watch`]: `run --watch`, applying edits of `pipeline.toml` while it runs.
//! - [`swap`]: two-phase hot swap of plugins, and its journal.
//! - [`status`]: the status board the host keeps, and the `/status` document.
//! - [`admin`]: the admin HTTP endpoint (`/metrics`, `/healthz`, `/status`, `POST /swap`).
//! - [`admin_client`]: the command line's side of the admin endpoint (`swap`, `status`).
//! - [`metrics`]: the Prometheus metrics the host records.
//! - [`stats`]: live counters for the progress line and the summary.
//! - [`report`]: the `run --report` JSON of a run.
//! - [`reprocess`]: re-injecting dead letters into their source, once.

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
pub mod status;
pub mod swap;
pub mod task;
pub mod watch;
