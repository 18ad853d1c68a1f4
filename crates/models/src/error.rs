//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong when importing, verifying or downloading weights.
///
/// Variants carry the file (and, where one is to blame, the tensor key in torchvision's
/// naming) so that a message always says *which* file and *which* tensor.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Tensors the model needs are absent from the file (keys in torchvision's naming).
    #[error("{}: missing {} tensor(s): {}", .path.display(), .keys.len(), list(.keys))]
    MissingKeys {
        /// The weight file.
        path: PathBuf,
        /// The missing keys, sorted.
        keys: Vec<String>,
    },
    /// The file holds tensors the model has no place for (keys in torchvision's naming;
    /// BatchNorm's `num_batches_tracked` never counts as unexpected).
    #[error("{}: {} unexpected tensor(s): {}", .path.display(), .keys.len(), list(.keys))]
    UnexpectedKeys {
        /// The weight file.
        path: PathBuf,
        /// The unexpected keys, sorted.
        keys: Vec<String>,
    },
    /// A tensor's shape disagrees with the model's (both in PyTorch's layout, e.g.
    /// `[out, in]` for a linear weight).
    #[error("{}: tensor `{key}` has shape {got:?}, the model expects {expected:?}", .path.display())]
    ShapeMismatch {
        /// The weight file.
        path: PathBuf,
        /// The tensor key.
        key: String,
        /// Shape the model expects.
        expected: Vec<usize>,
        /// Shape found in the file.
        got: Vec<usize>,
    },
    /// A tensor has a data type the model cannot use (e.g. integers for a weight).
    #[error("{}: tensor `{key}` has data type {got}, expected a float tensor", .path.display())]
    DType {
        /// The weight file.
        path: PathBuf,
        /// The tensor key.
        key: String,
        /// The data type found, as Burn names it.
        got: String,
    },
    /// A tensor's data could not be read (e.g. the file is truncated inside it).
    #[error("{}: cannot read the data of tensor `{key}`: {message}", .path.display())]
    CorruptTensor {
        /// The weight file.
        path: PathBuf,
        /// The tensor key.
        key: String,
        /// What the reader reported.
        message: String,
    },
    /// A loaded tensor holds NaN or infinite values.
    #[error("{}: tensor `{key}` holds NaN or infinite values", .path.display())]
    NonFinite {
        /// The weight file.
        path: PathBuf,
        /// The tensor key.
        key: String,
    },
    /// The file could not be parsed as a PyTorch or SafeTensors file (truncated, corrupt,
    /// a pickle that exceeds the reader's limits, ...).
    #[error("{}: cannot read weights: {source}", .path.display())]
    Read {
        /// The weight file.
        path: PathBuf,
        /// What the reader reported.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The file starts with neither a ZIP (`torch.save`), pickle (legacy `torch.save`) nor
    /// SafeTensors header.
    #[error("{}: not a PyTorch (.pth) or SafeTensors file (magic bytes {magic:02x?})", .path.display())]
    UnknownFormat {
        /// The file.
        path: PathBuf,
        /// Its first bytes.
        magic: Vec<u8>,
    },
    /// The file is larger than [`MAX_WEIGHT_FILE_BYTES`](crate::MAX_WEIGHT_FILE_BYTES).
    #[error("{}: {size} bytes, above the {limit}-byte limit for weight files", .path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A file's SHA-256 does not match the pinned one.
    #[error("{}: SHA-256 {got} does not match the expected {expected}", .path.display())]
    Checksum {
        /// The file (for a download: where it would have been written; nothing is left there).
        path: PathBuf,
        /// The expected hash or hash prefix (hex).
        expected: String,
        /// The full SHA-256 of the bytes (hex).
        got: String,
    },
    /// A download failed; no file is left behind.
    #[error("download of {url} failed: {source}")]
    Download {
        /// The URL.
        url: String,
        /// Why.
        #[source]
        source: DownloadError,
    },
    /// No cache directory: none of `FASTBURN_CACHE`, `XDG_CACHE_HOME`, `HOME` is set.
    #[error("no cache directory: set FASTBURN_CACHE (or XDG_CACHE_HOME / HOME)")]
    NoCacheDir,
    /// A file-system operation failed.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// An input shape the model cannot take (e.g. in [`summary`](crate::summary)).
    #[error("input shape {shape:?} does not fit the {model}: {expected}")]
    InvalidInput {
        /// The shape given, `[N, C, H, W]`.
        shape: [usize; 4],
        /// The model's type.
        model: &'static str,
        /// What would fit.
        expected: String,
    },
}

/// Why a download failed (the source of [`Error::Download`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DownloadError {
    /// The HTTP client failed (connection, TLS, protocol, ...).
    #[error("HTTP client: {0}")]
    Http(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The server answered with a non-success status.
    #[error("HTTP status {0}")]
    Status(u16),
    /// The connection ended before the announced `Content-Length`.
    #[error("interrupted after {got} of {expected} bytes")]
    Truncated {
        /// Announced length.
        expected: u64,
        /// Bytes received.
        got: u64,
    },
    /// The whole transfer took longer than its limit
    /// (`weights::DownloadOptions::total`, feature `pretrained`).
    #[error("the download took longer than {seconds} s")]
    TimedOut {
        /// The limit, seconds.
        seconds: f64,
    },
    /// The body is larger than the download limit.
    #[error("more than {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// Reading the body or writing the temporary file failed.
    #[error("I/O: {0}")]
    Io(#[source] std::io::Error),
}

fn list(keys: &[String]) -> String {
    const SHOWN: usize = 8;
    let mut s = keys
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if keys.len() > SHOWN {
        s.push_str(&format!(", … ({} more)", keys.len() - SHOWN));
    }
    s
}
