//! What sinks and the dead-letter queue share on the way out: a JSON Lines appender, recovery of such a file after a crash,
//! where an output ends for a checkpoint, and why a record was refused.
//!
//! Neither [`crate::sink`] nor [`crate::dlq`] owns these: both build on them (and the Kafka producer,
//! [`crate::kafka::producing`]).

pub mod jsonl;
pub mod recovery;

/// Where an output (a sink, the DLQ) ends, as a checkpoint records it: `(partition, offset)` pairs;
/// and, for a file, a handle to sync before that checkpoint is written.
pub type EndPositions = (Vec<(u32, u64)>, Option<std::fs::File>);

/// Why an output refused one record for good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection(pub String);
