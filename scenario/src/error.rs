//! The crate's error type: each variant names what is at fault (an option, a config key, a file).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// A correlator or classifier setting breaks a rule of SEMANTICS.md.
    #[error("invalid operator config: {0}")]
    InvalidConfig(String),
    /// The generator cannot build what its options ask for.
    #[error("invalid scenario options: {0}")]
    InvalidOptions(String),
    /// The observations path has no file name to derive the companion files' names from.
    #[error("`{path}` does not name a file")]
    NotAFilePath { path: PathBuf },
    #[error("cannot create directory `{path}`: {source}")]
    CreateDir { path: PathBuf, source: std::io::Error },
    #[error("cannot write `{path}`: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot encode the contents of `{path}` as JSON: {source}")]
    Encode { path: PathBuf, source: serde_json::Error },
    #[error("cannot read `{path}`: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("`{path}` is not what was expected: {source}")]
    Decode { path: PathBuf, source: serde_json::Error },
}
