//! sda-pipeline: runs a graph of WebAssembly operators over observations of
//! orbiting objects and delivers conjunction alerts, exactly once.
//!
//! # Layout
//! - [`graph`]: `pipeline.toml`, from raw spec to validated plan, every problem located.
//! - [`runtime`]: wasmtime engine, compiled-plugin cache, sandboxed operator instances.
//! - [`source`]: where records enter, in batches, with their offsets.
//! - [`task`]: one source partition's batch loop through the operator graph.
//! - [`sink`]: where outputs leave (a file, Kafka, PostgreSQL).
//! - [`output`]: what sinks and the DLQ share: the JSON Lines appender, recovery of such a file, end positions.
//! - [`ledger`]: what a replay owes each sink, so it skips exactly that.
//! - [`dlq`]: the dead-letter envelope, its writers (with retention and a growth alert) and its reader.
//! - [`dedup`]: the bounded identity set of the DLQ and of sources with `dedup`.
//! - [`checkpoint`]: the checkpoint file, its local and remote tiers, and the recovery ladder.
//! - [`durable`]: replacing a file so that a crash leaves its old contents or its new ones (the one way the host does).
//! - [`failpoint`]: deterministic crash points for the crash tests.
//! - [`kafka`]: Kafka plumbing shared by sources, sinks and the DLQ (client settings, error classes, tail read-back,
//!   the producer of one task).
//! - [`pipeline`]: starts the tasks of a plan and reports what they did; `run --watch` (edits applied while it runs).
//! - [`swap`]: two-phase hot swap of plugins, and its journal.
//! - [`status`]: the status board the host keeps, and the `/status` document.
//! - [`admin`]: the admin HTTP endpoint (`/metrics`, `/healthz`, `/status`, `POST /swap`), and its client.
//! - [`metrics`]: the Prometheus metrics the host records.
//! - [`stats`]: live counters for the progress line and the summary.
//! - [`report`]: the `run --report` JSON of a run.
//! - [`reprocess`]: re-injecting dead letters into their source, once.
//!
//! The binaries live in `src/cli/`: `main.rs` (`sda-pipeline`, one file per group of subcommands) and
//! `sda_reprocess.rs` (`sda-reprocess`), which share the files beside them.

pub mod admin;
pub mod checkpoint;
pub mod dedup;
pub mod dlq;
pub mod durable;
pub mod failpoint;
pub mod graph;
pub mod kafka;
pub mod ledger;
pub mod metrics;
pub mod output;
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
