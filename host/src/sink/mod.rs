//! Sinks: where operator outputs leave the pipeline.
//!
//! A sink takes the records of a batch one by one (refusing, per record, what it
//! can never write: the task dead-letters those as `SinkRejected`) and makes the
//! batch visible in one write at [`FileSink::flush`].

pub mod directory;
pub mod file;
pub mod kafka;
pub mod postgres;

pub use directory::DirectorySink;
pub use file::FileSink;
pub use kafka::KafkaSink;
pub use postgres::PostgresSink;
// Shared with the DLQ; re-exported where sink code has always found them.
pub use crate::output::{EndPositions, Rejection};

use crate::dedup::Identity;
use std::sync::{Arc, Mutex};

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("sink `{sink}`: cannot write `{}`: {error}", path.display())]
    Io { sink: String, path: std::path::PathBuf, error: std::io::Error },
    #[error("sink `{sink}`: {message}")]
    Kafka { sink: String, message: String },
    #[error("sink `{sink}`: {message}")]
    Postgres { sink: String, message: String },
}

/// A task's handle on one sink.
pub enum SinkWriter {
    /// A file is shared by every task of the process that writes to it.
    File(Arc<Mutex<FileSink>>),
    /// A file per record, named by its key.
    Directory(Box<DirectorySink>),
    Kafka(Box<KafkaSink>),
    Postgres(Box<PostgresSink>),
}

impl SinkWriter {
    /// Whether this sink needs a delivery record to absorb replays. A
    /// PostgreSQL table ignores a repeated key by construction; a
    /// transactional Kafka sink never exposes what a crash left uncommitted.
    pub fn keeps_delivery_record(&self) -> bool {
        match self {
            SinkWriter::File(_) => true,
            // A key names one file, written once: a replay finds it and writes nothing.
            SinkWriter::Directory(_) => false,
            SinkWriter::Kafka(k) => !k.transactional(),
            SinkWriter::Postgres(_) => false,
        }
    }

    /// What identifies a record for this sink's delivery record: what the
    /// sink can read back after a crash (a file holds only payloads; Kafka keeps keys).
    pub fn identity(&self, key: &[u8], payload: &[u8]) -> Identity {
        match self {
            SinkWriter::Kafka(_) => kafka::identity(key, payload),
            _ => crate::dedup::identity(&[payload]),
        }
    }

    /// Delivers a batch of `(key, payload)` records in one write (file), one
    /// acknowledged round (Kafka) or one transaction (PostgreSQL); returns
    /// those not delivered (refused for good, or given up on after a sink's
    /// retry limit), by index.
    pub fn deliver(&mut self, records: &[(&[u8], &[u8])]) -> Result<Vec<(usize, Undelivered)>, SinkError> {
        let mut refused = Vec::new();
        match self {
            SinkWriter::File(file) => {
                let mut file = file.lock().unwrap_or_else(|e| e.into_inner());
                for (i, (_, payload)) in records.iter().enumerate() {
                    if let Err(r) = file.write(payload) {
                        refused.push((i, Undelivered::Rejected(r)));
                    }
                }
                file.flush()?;
            }
            SinkWriter::Directory(d) => {
                for (i, (key, payload)) in records.iter().enumerate() {
                    if let Err(r) = d.write(key, payload) {
                        refused.push((i, Undelivered::Rejected(r)));
                    }
                }
                d.flush()?;
            }
            SinkWriter::Kafka(k) => {
                for (key, payload) in records {
                    k.write(key, payload);
                }
                refused = k.flush()?.into_iter().map(|(i, r)| (i, Undelivered::Rejected(r))).collect();
            }
            SinkWriter::Postgres(p) => return p.deliver(records),
        }
        Ok(refused)
    }

    /// Says where the output ends: the positions a checkpoint records. What Kafka and PostgreSQL
    /// acknowledged is durable already; a file's output is durable once the returned handle is
    /// synced, which the checkpoint's writer does before writing it.
    pub fn checkpoint_positions(&mut self) -> Result<EndPositions, SinkError> {
        match self {
            SinkWriter::File(file) => {
                let mut file = file.lock().unwrap_or_else(|e| e.into_inner());
                let handle = file.sync_later()?;
                Ok((vec![(0, file.position())], Some(handle)))
            }
            SinkWriter::Kafka(k) => Ok((k.positions()?, None)),
            SinkWriter::Directory(_) | SinkWriter::Postgres(_) => Ok((Vec::new(), None)),
        }
    }

    /// Identities of what was delivered after `positions` (where a checkpoint
    /// left off), read back from the sink itself.
    pub fn read_back(&self, positions: &[(u32, u64)], mut each: impl FnMut(Identity)) -> Result<u64, SinkError> {
        match self {
            SinkWriter::File(file) => {
                let file = file.lock().unwrap_or_else(|e| e.into_inner());
                let from = positions.first().map_or(0, |(_, p)| *p);
                crate::output::recovery::lines_since(file.path(), from, |line| each(crate::dedup::identity(&[line])))
                    .map_err(|error| SinkError::Io { sink: file.name().to_string(), path: file.path().to_path_buf(), error })
            }
            SinkWriter::Kafka(k) => k.read_back(positions, each),
            SinkWriter::Directory(_) | SinkWriter::Postgres(_) => Ok(0),
        }
    }
}

/// Why a record of a batch was not delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Undelivered {
    /// The sink refused it for good (dead-lettered as `SinkRejected`).
    Rejected(Rejection),
    /// The sink kept failing transiently until its retry limit (dead-lettered as `RetriesExhausted`).
    RetriesExhausted { retries: u32, message: String },
}
