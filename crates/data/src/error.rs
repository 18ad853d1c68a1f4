//! The data crate's error type.

use std::fmt;
use std::path::PathBuf;

/// Everything that can go wrong while reading labels, decoding images, caching, augmenting
/// or loading batches.
///
/// Every variant that comes from the user's files names the file (and the line, for CSV
/// problems), so that a message can be acted on without a debugger.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file or folder could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The labels CSV has one or more problems; all of them are listed (capped at
    /// [`CsvProblems::CAP`]).
    #[error("{path}: {problems}")]
    Csv {
        /// The CSV file.
        path: PathBuf,
        /// Every problem found, each with its line number.
        problems: CsvProblems,
    },
    /// The file is empty (0 bytes).
    #[error("{path}: empty file (0 bytes)")]
    EmptyFile {
        /// The image file.
        path: PathBuf,
    },
    /// The file's first bytes are not those of a supported image format.
    #[error("{path}: unsupported image format (file starts with {magic})")]
    UnsupportedFormat {
        /// The image file.
        path: PathBuf,
        /// The first bytes, in hexadecimal.
        magic: String,
    },
    /// The file is larger than [`DecodeOptions::max_file_bytes`](crate::DecodeOptions).
    #[error("{path}: file is {size} bytes, above the limit of {limit} bytes")]
    FileTooLarge {
        /// The file (an image, or a labels CSV).
        path: PathBuf,
        /// Its size in bytes.
        size: u64,
        /// The configured limit.
        limit: u64,
    },
    /// The image's declared dimensions exceed the configured limits; nothing was allocated
    /// for its pixels.
    #[error(
        "{path}: image declares {width}×{height} pixels, above the limit \
         ({max_width}×{max_height}, {max_pixels} pixels)"
    )]
    DimensionLimit {
        /// The image file.
        path: PathBuf,
        /// Declared width.
        width: u64,
        /// Declared height.
        height: u64,
        /// Largest accepted width.
        max_width: u32,
        /// Largest accepted height.
        max_height: u32,
        /// Largest accepted width × height.
        max_pixels: u64,
    },
    /// The image data ends before the image does (strict decoding, as Pillow's default).
    #[error("{path}: image file is truncated ({format:?} data ends early)")]
    Truncated {
        /// The image file.
        path: PathBuf,
        /// Its format.
        format: ImageFormat,
    },
    /// The decoder rejected the data.
    #[error("{path}: cannot decode {format:?} image: {source}")]
    Decode {
        /// The image file.
        path: PathBuf,
        /// Its format.
        format: ImageFormat,
        /// The decoder's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The decoder (or an augmentation) panicked; the panic was contained.
    #[error("{path}: decoder panicked: {message}")]
    Panic {
        /// The image file.
        path: PathBuf,
        /// The panic's message.
        message: String,
    },
    /// An image could not be encoded or written (synthetic data, resize cache, `show_batch`).
    #[error("{path}: cannot encode image: {source}")]
    Encode {
        /// The destination.
        path: PathBuf,
        /// The encoder's error.
        #[source]
        source: image::ImageError,
    },
    /// A labels CSV whose rows carry no tag at all: nothing to classify.
    #[error(
        "{path}: no row carries a tag ({rows} rows), so there is no class to learn; \
         the tags column holds each image's labels, separated by spaces"
    )]
    NoClasses {
        /// The CSV file.
        path: PathBuf,
        /// Rows read.
        rows: usize,
    },
    /// A folder expected to hold images (or class sub-folders) holds none.
    #[error("{path}: no images found (looked for {looked_for})")]
    NoImages {
        /// The folder.
        path: PathBuf,
        /// What was looked for.
        looked_for: &'static str,
    },
    /// A class folder of an ImageNet-style layout is unusable.
    #[error("{path}: {reason}")]
    Folder {
        /// The folder or file.
        path: PathBuf,
        /// Why it cannot be used.
        reason: FolderProblem,
    },
    /// A configuration value is out of its range.
    #[error("invalid value for `{key}`: {value} ({expected})")]
    InvalidConfig {
        /// The configuration key.
        key: &'static str,
        /// The value given.
        value: String,
        /// What is accepted.
        expected: &'static str,
    },
    /// An index (split, fold, item) is out of range.
    #[error("index {index} is out of range for `{what}` of length {len}")]
    IndexOutOfRange {
        /// What was indexed.
        what: &'static str,
        /// The index.
        index: usize,
        /// The length.
        len: usize,
    },
    /// The same index was given twice where each must be unique.
    #[error("index {index} appears more than once in `{what}`")]
    DuplicateIndex {
        /// What was indexed.
        what: &'static str,
        /// The index.
        index: usize,
    },
    /// A loader worker failed while preparing a batch.
    #[error("loader worker failed on batch {batch} (epoch {epoch}): {source}")]
    Worker {
        /// The epoch.
        epoch: usize,
        /// The batch index within the epoch.
        batch: usize,
        /// The underlying error.
        #[source]
        source: Box<Error>,
    },
    /// A loader worker panicked outside the per-item guard (in a
    /// [`BatchTransform`](crate::BatchTransform), say), or vanished.
    #[error("loader worker died on batch {batch} (epoch {epoch}): {message}")]
    WorkerDied {
        /// The epoch.
        epoch: usize,
        /// The batch index within the epoch that was not produced.
        batch: usize,
        /// What is known (the panic's message).
        message: String,
    },
    /// A batch was not delivered within the loader's
    /// [`batch_deadline`](crate::LoaderConfig::batch_deadline): a worker is stuck (a hung
    /// read, a decoder or transform that does not return) or far too slow.
    #[error(
        "batch {batch} (epoch {epoch}) was not delivered within the loader's batch deadline \
         of {deadline:?}; a loader worker is stuck or far too slow"
    )]
    BatchDeadline {
        /// The epoch.
        epoch: usize,
        /// The batch index within the epoch.
        batch: usize,
        /// The configured deadline.
        deadline: std::time::Duration,
    },
    /// Bad samples were skipped (opt-in) and their number passed the configured limit.
    #[error("{skipped} bad samples skipped this epoch, above the limit of {limit}; first: {first}")]
    TooManyBadSamples {
        /// How many were skipped.
        skipped: usize,
        /// The configured limit.
        limit: usize,
        /// The first failure.
        first: Box<Error>,
    },
}

/// A shorthand for `Result<T, fastburn_data::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// The file this error is about, when there is one.
    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            Error::Io { path, .. }
            | Error::Csv { path, .. }
            | Error::EmptyFile { path }
            | Error::UnsupportedFormat { path, .. }
            | Error::FileTooLarge { path, .. }
            | Error::DimensionLimit { path, .. }
            | Error::Truncated { path, .. }
            | Error::Decode { path, .. }
            | Error::Panic { path, .. }
            | Error::Encode { path, .. }
            | Error::NoImages { path, .. }
            | Error::NoClasses { path, .. }
            | Error::Folder { path, .. } => Some(path),
            Error::Worker { source, .. } => source.path(),
            Error::TooManyBadSamples { first, .. } => first.path(),
            _ => None,
        }
    }
}

/// Image formats recognised by their magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum ImageFormat {
    /// JPEG (`FF D8 FF`).
    Jpeg,
    /// PNG (`89 50 4E 47 0D 0A 1A 0A`).
    Png,
    /// TIFF (`II*\0` or `MM\0*`).
    Tiff,
}

/// Why a folder of an ImageNet-style layout cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FolderProblem {
    /// The `train` (or `valid`) sub-folder is missing.
    MissingSplit(&'static str),
    /// A class name is not valid UTF-8.
    NonUtf8Name,
    /// A symbolic link points outside the dataset folder.
    SymlinkEscapes(PathBuf),
    /// Two images of a test folder have one name (file stem), so a submission would hold
    /// two rows for it.
    DuplicateStem {
        /// The shared name.
        name: String,
        /// The first file.
        first: PathBuf,
        /// The second file.
        second: PathBuf,
    },
}

impl fmt::Display for FolderProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FolderProblem::MissingSplit(s) => write!(f, "missing the `{s}` sub-folder"),
            FolderProblem::NonUtf8Name => f.write_str("name is not valid UTF-8"),
            FolderProblem::SymlinkEscapes(t) => {
                write!(
                    f,
                    "symbolic link points outside the dataset: {}",
                    t.display()
                )
            }
            FolderProblem::DuplicateStem {
                name,
                first,
                second,
            } => write!(
                f,
                "two images share the name `{name}` ({} and {}); a submission needs one row \
                 per name",
                first.display(),
                second.display()
            ),
        }
    }
}

/// One problem found in a labels CSV, with the 1-based line it is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvProblem {
    /// 1-based line number in the file (the header is line 1).
    pub line: u64,
    /// What is wrong.
    pub kind: CsvProblemKind,
}

/// What is wrong with one CSV line.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CsvProblemKind {
    /// The file has no header line at all.
    Empty,
    /// A required column is missing from the header.
    MissingColumn {
        /// The column's name.
        column: String,
        /// The header's columns, as found.
        found: Vec<String>,
    },
    /// A row has a different number of fields than the header.
    FieldCount {
        /// Fields in the header.
        expected: usize,
        /// Fields in this row.
        got: usize,
    },
    /// A field is not valid UTF-8.
    InvalidUtf8 {
        /// The 0-based column.
        column: usize,
    },
    /// The image name is empty.
    EmptyName,
    /// The image name could escape the image folder.
    UnsafeName {
        /// The name as written.
        name: String,
        /// Why it is refused.
        reason: UnsafeName,
    },
    /// An image name is repeated.
    DuplicateName {
        /// The name.
        name: String,
        /// The line where it first appears.
        first_line: u64,
    },
    /// The row's image file does not exist.
    MissingImage {
        /// The path that was looked for.
        path: PathBuf,
    },
    /// The row's image is a symbolic link pointing outside the image folder.
    SymlinkEscapes {
        /// The link.
        path: PathBuf,
        /// Where it points.
        target: PathBuf,
    },
    /// Single-label was forced but the row does not have exactly one tag.
    NotSingleLabel {
        /// How many tags the row has.
        tags: usize,
    },
    /// The CSV reader failed (I/O while reading).
    Read {
        /// The reader's message.
        message: String,
    },
}

/// Why an image name is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnsafeName {
    /// Contains `/` or `\`.
    Separator,
    /// Is or contains a `..` component.
    ParentDir,
    /// Is an absolute path (or a drive prefix).
    Absolute,
    /// Contains a NUL or control character.
    Control,
}

impl fmt::Display for CsvProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: ", self.line)?;
        match &self.kind {
            CsvProblemKind::Empty => f.write_str("the file is empty (no header line)"),
            CsvProblemKind::MissingColumn { column, found } => {
                write!(f, "missing column `{column}` (header has {found:?})")
            }
            CsvProblemKind::FieldCount { expected, got } => {
                write!(f, "expected {expected} fields, found {got}")
            }
            CsvProblemKind::InvalidUtf8 { column } => {
                write!(f, "field {} is not valid UTF-8", column + 1)
            }
            CsvProblemKind::EmptyName => f.write_str("empty image name"),
            CsvProblemKind::UnsafeName { name, reason } => {
                let why = match reason {
                    UnsafeName::Separator => "contains a path separator",
                    UnsafeName::ParentDir => "contains `..`",
                    UnsafeName::Absolute => "is an absolute path",
                    UnsafeName::Control => "contains a control character",
                };
                write!(f, "image name {name:?} {why}")
            }
            CsvProblemKind::DuplicateName { name, first_line } => {
                write!(
                    f,
                    "duplicate image name {name:?} (first on line {first_line})"
                )
            }
            CsvProblemKind::MissingImage { path } => {
                write!(f, "image file not found: {}", path.display())
            }
            CsvProblemKind::SymlinkEscapes { path, target } => write!(
                f,
                "{} is a symbolic link outside the image folder (to {})",
                path.display(),
                target.display()
            ),
            CsvProblemKind::NotSingleLabel { tags } => {
                write!(
                    f,
                    "single-label data needs exactly one tag per row, found {tags}"
                )
            }
            CsvProblemKind::Read { message } => write!(f, "read error: {message}"),
        }
    }
}

/// All problems found in one CSV file, in line order, capped at [`CsvProblems::CAP`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CsvProblems {
    /// The problems kept (at most [`CsvProblems::CAP`]).
    pub list: Vec<CsvProblem>,
    /// How many more were found but not kept.
    pub more: usize,
}

impl CsvProblems {
    /// The most problems kept in [`CsvProblems::list`].
    pub const CAP: usize = 1000;

    pub(crate) fn push(&mut self, line: u64, kind: CsvProblemKind) {
        if self.list.len() < Self::CAP {
            self.list.push(CsvProblem { line, kind });
        } else {
            self.more += 1;
        }
    }

    /// Total number of problems found (kept and not kept).
    pub fn total(&self) -> usize {
        self.list.len() + self.more
    }

    /// True when no problem was found.
    pub fn is_empty(&self) -> bool {
        self.total() == 0
    }

    pub(crate) fn sort(&mut self) {
        self.list.sort_by_key(|p| p.line);
    }
}

impl fmt::Display for CsvProblems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} problem(s) in the labels file", self.total())?;
        for p in &self.list {
            write!(f, "\n  {p}")?;
        }
        if self.more > 0 {
            write!(f, "\n  … and {} more", self.more)?;
        }
        Ok(())
    }
}
