//! The facade's error type: any error of the crates, plus the recipe's own.

use std::path::PathBuf;

/// Errors of the recipe and the command line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Data (CSV, images, loader).
    #[error(transparent)]
    Data(#[from] fastburn_data::Error),
    /// Models and weights.
    #[error(transparent)]
    Model(#[from] fastburn_models::Error),
    /// Training, checkpoints, inference.
    #[error(transparent)]
    Learner(#[from] fastburn_learner::Error),
    /// Backend selection.
    #[error(transparent)]
    Device(#[from] crate::device::DeviceError),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A folder given to resume is not a run folder: it has no `recipe.json`.
    #[error("{}: not a run folder (no recipe.json; `fastburn train --out DIR` makes one)", .path.display())]
    NotARunFolder {
        /// The folder.
        path: PathBuf,
    },
    /// A run folder's own file (`recipe.json`, `run.json`) is not what the recipe wrote.
    #[error("{}: not a valid run file: {source}", .path.display())]
    RunFile {
        /// The file.
        path: PathBuf,
        /// What the JSON reader found.
        #[source]
        source: serde_json::Error,
    },
    /// A setting has a value that is not accepted.
    #[error("invalid value for `{key}`: {value} (expected {expected})")]
    InvalidArgument {
        /// The setting.
        key: &'static str,
        /// The value given.
        value: String,
        /// What is accepted.
        expected: &'static str,
    },
}

/// A shorthand for `Result<T, fastburn::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
