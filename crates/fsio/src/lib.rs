//! File helpers every fastburn crate shares: writes that are atomic and durable, and reads
//! with a size cap.
//!
//! [`write_atomic`] writes into a temporary file unique to the call (in the target's
//! folder, so the rename cannot cross file systems), flushes it to disk, renames it over
//! the target and then flushes the folder, so after a crash the target holds either the
//! old bytes or the new ones, never a mix, and a returned `Ok` survives a power cut. Two
//! threads or processes writing the same target never share a temporary file.
//!
//! ```
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("metrics.json");
//! fastburn_fsio::write_atomic(&path, b"{}").unwrap();
//! assert_eq!(std::fs::read(&path).unwrap(), b"{}");
//! assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary left");
//! let err = fastburn_fsio::read_capped(&path, 1).unwrap_err();
//! assert!(matches!(err, fastburn_fsio::ReadError::TooLarge { size: 2, limit: 1 }));
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::io::{Read, Write};
use std::path::Path;

/// Writes `bytes` to `path` atomically and durably (see the crate docs). The folder must
/// exist.
///
/// # Errors
/// The I/O error of the step that failed; the target is then untouched and the temporary
/// file removed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    sync_dir(dir)
}

/// Flushes a folder's entries (a rename or a new file in it) to disk. A no-op where the
/// platform cannot open folders (Windows).
///
/// # Errors
/// The I/O error of `fsync`.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    match std::fs::File::open(dir) {
        Ok(d) => match d.sync_all() {
            // Some file systems refuse fsync on a folder; the data itself is synced.
            Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => Ok(()),
            other => other,
        },
        Err(_) if cfg!(windows) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Why [`read_capped`] failed.
#[derive(Debug)]
pub enum ReadError {
    /// The file could not be opened or read.
    Io(std::io::Error),
    /// The file holds more than the cap.
    TooLarge {
        /// Its size in bytes (at least `limit + 1`).
        size: u64,
        /// The cap in bytes.
        limit: u64,
    },
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Io(e) => e.fmt(f),
            ReadError::TooLarge { size, limit } => {
                write!(f, "file is {size} bytes, over the {limit}-byte limit")
            }
        }
    }
}

impl std::error::Error for ReadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReadError::Io(e) => Some(e),
            ReadError::TooLarge { .. } => None,
        }
    }
}

/// Reads a whole file, refusing one larger than `limit` bytes without reading (or
/// allocating) more than `limit + 1` bytes, even when the file grows while it is read.
///
/// # Errors
/// [`ReadError::Io`], or [`ReadError::TooLarge`].
pub fn read_capped(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    let f = std::fs::File::open(path).map_err(ReadError::Io)?;
    let len = f.metadata().map_err(ReadError::Io)?.len();
    if len > limit {
        return Err(ReadError::TooLarge { size: len, limit });
    }
    let mut out = Vec::with_capacity(len as usize);
    f.take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(ReadError::Io)?;
    if out.len() as u64 > limit {
        return Err(ReadError::TooLarge {
            size: out.len() as u64,
            limit,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_writers_of_one_target_never_clash() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.json");
        std::thread::scope(|s| {
            for t in 0..8u8 {
                let path = &path;
                s.spawn(move || {
                    for _ in 0..50 {
                        write_atomic(path, &[t; 4096]).unwrap();
                    }
                });
            }
        });
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 4096);
        assert!(
            bytes.iter().all(|&b| b == bytes[0]),
            "one writer's bytes, whole"
        );
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file left behind");
    }

    #[test]
    fn a_failed_write_leaves_the_target_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a");
        write_atomic(&path, b"old").unwrap();
        // Renaming a file over a non-empty folder fails.
        let blocked = dir.path().join("b");
        std::fs::create_dir(&blocked).unwrap();
        std::fs::write(blocked.join("x"), b"x").unwrap();
        assert!(write_atomic(&blocked, b"new").is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn read_capped_reads_up_to_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, [7u8; 100]).unwrap();
        assert_eq!(read_capped(&path, 100).unwrap().len(), 100);
        assert!(matches!(
            read_capped(&path, 99),
            Err(ReadError::TooLarge {
                size: 100,
                limit: 99
            })
        ));
        assert!(matches!(
            read_capped(&dir.path().join("missing"), 10),
            Err(ReadError::Io(_))
        ));
    }
}
