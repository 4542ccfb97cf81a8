//! Sinks: where operator outputs leave the pipeline.
//!
//! A sink takes the records of a batch one by one (refusing, per record, what it
//! can never write: the task dead-letters those as `SinkRejected`) and makes the
//! batch visible in one write at [`FileSink::flush`].

pub mod file;
pub mod recovery;

pub use file::FileSink;

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("sink `{sink}`: cannot write `{}`: {error}", path.display())]
    Io { sink: String, path: std::path::PathBuf, error: std::io::Error },
}

/// Why a sink refused one record for good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection(pub String);
