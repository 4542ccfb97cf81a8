//! Checkpoints: a task's operator states, delivery records and source offset, taken together between batches.
//!
//! The invariant this module keeps: **a source offset is never recorded as
//! done before the outputs of the records before it are durable in the sinks.**
//! A checkpoint is taken between two batches, after every sink and the DLQ
//! have been flushed and synced; it records the offset after the last batch.
//! A crash at any instant then resumes from a checkpoint whose offset is at or
//! before the last delivered output, so nothing is lost; what is replayed is
//! recognised by the sinks' delivery records (exactly-once) or delivered again
//! (at-least-once).
//!
//! # Layout
//! - [`format`]: the file and its checksum.
//! - [`local`]: the local tier (durable writes, keep the newest N).
//! - [`remote`]: the remote tier (object_store), uploaded in the background.
//! - [`recovery`]: the recovery ladder.

pub mod format;
pub mod local;
pub mod recovery;
pub mod remote;
