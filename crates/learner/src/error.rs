//! The learner's error type.

use std::path::PathBuf;

/// Everything that can stop training, checkpointing, or inference.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Loading or preparing data failed.
    #[error(transparent)]
    Data(#[from] fastburn_data::Error),
    /// Building or loading the model failed.
    #[error(transparent)]
    Model(#[from] fastburn_models::Error),
    /// A metric could not be computed.
    #[error("metric `{name}`: {source}")]
    Metric {
        /// The metric's name.
        name: String,
        /// The metric's error.
        #[source]
        source: fastburn_metrics::Error,
    },
    /// The loss became NaN or infinite: training stopped in that step, and no checkpoint was
    /// written after it.
    #[error(
        "loss is {loss} at epoch {epoch}, iteration {iteration} (batch {batch} of the epoch): training stopped"
    )]
    NonFiniteLoss {
        /// 0-based epoch.
        epoch: usize,
        /// 0-based iteration counted from the start of the fit.
        iteration: usize,
        /// 0-based batch within the epoch.
        batch: usize,
        /// The loss value.
        loss: f32,
    },
    /// A data-parallel replica failed (a panic in its forward or backward pass, or on its
    /// device): the step is abandoned and the model keeps the weights of the last
    /// completed step.
    #[error("replica {rank} on {device}: {message}")]
    Replica {
        /// The replica's rank (0: the learner's own device).
        rank: usize,
        /// Its device.
        device: String,
        /// What failed.
        message: String,
    },
    /// A data-parallel replica did not finish its part of a step within the step deadline
    /// ([`DataParallel::with_step_deadline`](crate::DataParallel::with_step_deadline)): its
    /// thread is abandoned, and the learner trains no further on several devices.
    #[error(
        "replica {rank} on {device} did not finish its step within {seconds} s (a peer stuck in a collective, or a hung device)"
    )]
    ReplicaTimeout {
        /// The replica's rank.
        rank: usize,
        /// Its device.
        device: String,
        /// The deadline.
        seconds: u64,
    },
    /// A file or folder could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A Burn record (weights or optimiser state) could not be read or written.
    #[error("{path}: {message}")]
    Record {
        /// The file.
        path: PathBuf,
        /// Burn's message.
        message: String,
    },
    /// A checkpoint or export bundle is unusable.
    #[error("{path}: {problem}")]
    Checkpoint {
        /// The checkpoint folder or file.
        path: PathBuf,
        /// What is wrong.
        problem: CheckpointProblem,
    },
    /// A configuration value is out of its range.
    #[error("invalid value for `{key}`: {value} ({expected})")]
    InvalidConfig {
        /// The key.
        key: &'static str,
        /// The value given.
        value: String,
        /// What is accepted.
        expected: &'static str,
    },
    /// The training loader yields no batch (an empty training split, or fewer items than
    /// one batch while the last partial batch is dropped).
    #[error(
        "the training set gives no batch: {items} items, batch size {batch_size}{}",
        if *drop_last { ", the last partial batch dropped (training loaders drop it, as fastai's)" } else { "" }
    )]
    NoTrainingBatches {
        /// Training items.
        items: usize,
        /// Batch size.
        batch_size: usize,
        /// Whether the last partial batch is dropped.
        drop_last: bool,
    },
    /// A list of per-group values has the wrong length.
    #[error("{what}: expected one value per layer group ({expected}), got {got}")]
    GroupCount {
        /// What was given per group.
        what: &'static str,
        /// Number of layer groups.
        expected: usize,
        /// Number of values.
        got: usize,
    },
    /// A plot could not be drawn.
    #[error("{path}: cannot draw plot: {message}")]
    Plot {
        /// The PNG.
        path: PathBuf,
        /// The plotting library's message.
        message: String,
    },
    /// A callback stopped the run with an error of its own.
    #[error("callback `{name}`: {message}")]
    Callback {
        /// The callback.
        name: String,
        /// Its message.
        message: String,
    },
}

/// What is wrong with a checkpoint or an export bundle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointProblem {
    /// No manifest: the save did not complete.
    #[error("no manifest (incomplete save)")]
    MissingManifest,
    /// A file listed by the manifest is missing.
    #[error("file `{file}` listed in the manifest is missing")]
    MissingFile {
        /// The file.
        file: String,
    },
    /// A file's SHA-256 differs from the manifest's: it is corrupted.
    #[error("file `{file}` is corrupted (SHA-256 {got}, manifest says {expected})")]
    Corrupted {
        /// The file.
        file: String,
        /// The manifest's hash.
        expected: String,
        /// The file's hash.
        got: String,
    },
    /// The format version is not one this build reads.
    #[error("format version {got}, this build reads {expected}")]
    Version {
        /// Supported version.
        expected: u32,
        /// The file's version.
        got: u32,
    },
    /// The class vocabulary differs from the learner's.
    #[error("class vocabulary differs: checkpoint has {got:?}, learner has {expected:?}")]
    Vocabulary {
        /// The learner's classes.
        expected: Vec<String>,
        /// The checkpoint's classes.
        got: Vec<String>,
    },
    /// The architecture differs from the learner's.
    #[error("architecture differs: checkpoint has {got}, learner has {expected}")]
    Architecture {
        /// The learner's.
        expected: String,
        /// The checkpoint's.
        got: String,
    },
    /// A weight tensor holds NaN or infinite values.
    #[error("tensor `{tensor}` holds NaN or infinite values")]
    NonFiniteWeights {
        /// The tensor's path in the model.
        tensor: String,
    },
    /// The file is not a fastburn bundle or is cut short.
    #[error("not a fastburn export bundle or truncated: {reason}")]
    BadBundle {
        /// What failed.
        reason: String,
    },
    /// A JSON file could not be parsed.
    #[error("cannot parse `{file}`: {message}")]
    Json {
        /// The file.
        file: String,
        /// serde_json's message.
        message: String,
    },
    /// No checkpoint found in the folder.
    #[error("no complete checkpoint found")]
    NoCheckpoint,
    /// No complete checkpoint of the named run in the folder.
    #[error("no complete checkpoint of run `{run}` (runs found: {found:?})")]
    NoCheckpointOfRun {
        /// The run asked for.
        run: String,
        /// The runs whose checkpoints the folder holds.
        found: Vec<String>,
    },
    /// The folder holds checkpoints of several runs and the resume did not name one.
    #[error("checkpoints of several runs ({runs:?}): name the run to resume")]
    SeveralRuns {
        /// The runs found.
        runs: Vec<String>,
    },
    /// The manifest's file list is not exactly the checkpoint's files (empty, a file
    /// missing from it, an unknown or path-like name).
    #[error("manifest lists {got:?}, a checkpoint holds exactly {expected:?}")]
    FileList {
        /// The files a checkpoint holds.
        expected: Vec<String>,
        /// The manifest's list.
        got: Vec<String>,
    },
    /// A value in `state.json` or a bundle's metadata is out of its range.
    #[error("`{key}` is {value} ({expected})")]
    State {
        /// The key.
        key: &'static str,
        /// The value found.
        value: String,
        /// What is accepted.
        expected: &'static str,
    },
    /// Two files of one checkpoint disagree (manifest vs `state.json`).
    #[error("`{field}` differs between manifest.json and state.json")]
    Inconsistent {
        /// The field.
        field: &'static str,
    },
}

/// A shorthand for `Result<T, fastburn_learner::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn metric(name: impl Into<String>, source: fastburn_metrics::Error) -> Self {
        Error::Metric {
            name: name.into(),
            source,
        }
    }

    pub(crate) fn record(path: impl Into<PathBuf>, e: impl std::fmt::Display) -> Self {
        Error::Record {
            path: path.into(),
            message: e.to_string(),
        }
    }
}
