//! Checkpoints: a task's state and positions, kept in tiers so a crash, or the loss of a machine, loses nothing.
//!
//! # Layout
//! - [`remote`]: the remote tier (object_store), uploaded in the background.

pub mod remote;
