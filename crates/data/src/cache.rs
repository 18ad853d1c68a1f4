//! The resize cache: fastai's `data.resize(int(sz * 1.3))`.
//!
//! Big source images are decoded and shrunk once; training then reads the small copies.
//! Each copy is keyed on the source's path, size and modification time and on the target,
//! written atomically, and reused on the next run while the key matches.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use burn::config::Config;
use sha2::{Digest, Sha256};

use crate::decode::{DecodeOptions, load_rgb_with};
use crate::error::{Error, Result};
use crate::items::ItemList;
use crate::resize::{ResizeFilter, resize_rgb, short_side_size};
use crate::synth::write_jpeg_atomic;

/// Where and how large to cache.
#[derive(Config, Debug, PartialEq)]
pub struct ResizeCacheConfig {
    /// The cache folder (a sub-folder per target size is created).
    pub dir: PathBuf,
    /// The shorter side of the cached copies; larger images are shrunk to it, smaller ones
    /// are kept at their size.
    pub short_side: u32,
    /// JPEG quality of the copies.
    #[config(default = 95)]
    pub quality: u8,
    /// Resampling filter.
    #[config(default = "ResizeFilter::Area")]
    pub filter: ResizeFilter,
    /// Worker threads.
    #[config(default = 2)]
    pub workers: usize,
    /// Decoder limits for the sources.
    #[config(default = "DecodeOptions::default()")]
    pub decode: DecodeOptions,
}

/// What [`ResizeCacheConfig::apply`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheReport {
    /// Copies written in this call.
    pub written: usize,
    /// Valid copies found and reused.
    pub reused: usize,
}

impl ResizeCacheConfig {
    /// fastai's rule: cache at `int(size * 1.3)`, so that random crops and zooms at `size`
    /// still have pixels to spare.
    ///
    /// ```
    /// let c = fastburn_data::ResizeCacheConfig::for_size("tmp".into(), 64);
    /// assert_eq!(c.short_side, 83);
    /// ```
    pub fn for_size(dir: PathBuf, size: u32) -> Self {
        ResizeCacheConfig::new(dir, (f64::from(size) * 1.3) as u32)
    }

    /// The cache file for a source image (whether or not it exists yet).
    ///
    /// # Errors
    /// [`Error::Io`] when the source cannot be examined.
    pub fn cached_path(&self, source: &Path) -> Result<PathBuf> {
        let meta = std::fs::metadata(source).map_err(|e| Error::io(source, e))?;
        let canonical = std::fs::canonicalize(source).map_err(|e| Error::io(source, e))?;
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        let mut h = Sha256::new();
        h.update(canonical.as_os_str().as_encoded_bytes());
        h.update([0]);
        h.update(meta.len().to_le_bytes());
        h.update(mtime.to_le_bytes());
        h.update(self.short_side.to_le_bytes());
        h.update([self.quality]);
        h.update(format!("{:?}", self.filter).as_bytes());
        let digest = h.finalize();
        let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        let stem = source
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(self
            .dir
            .join(self.short_side.to_string())
            .join(format!("{stem}-{hex}.jpg")))
    }

    /// Caches every item's image and returns the list pointing at the copies.
    ///
    /// # Errors
    /// The first decode / write error, naming its file; copies written before it stay valid.
    ///
    /// # Example
    /// ```
    /// # use fastburn_data::*;
    /// # let dir = tempfile::tempdir().unwrap();
    /// # synth::SynthConfig::new(dir.path().join("d")).with_n(4).with_size(64).generate().unwrap();
    /// let list = CsvConfig::new(dir.path().join("d/labels.csv"), dir.path().join("d/train-jpg")).load()?;
    /// let cache = ResizeCacheConfig::new(dir.path().join("cache"), 32);
    /// let (cached, report) = cache.apply(&list)?;
    /// assert_eq!(report, CacheReport { written: 4, reused: 0 });
    /// assert_eq!(load_rgb(&cached.items[0].path)?.dimensions(), (32, 32));
    /// let (_, again) = cache.apply(&list)?;
    /// assert_eq!(again, CacheReport { written: 0, reused: 4 });
    /// # Ok::<(), fastburn_data::Error>(())
    /// ```
    pub fn apply(&self, list: &ItemList) -> Result<(ItemList, CacheReport)> {
        if self.short_side == 0 {
            return Err(Error::InvalidConfig {
                key: "short_side",
                value: "0".into(),
                expected: "at least 1 pixel",
            });
        }
        let sub = self.dir.join(self.short_side.to_string());
        std::fs::create_dir_all(&sub).map_err(|e| Error::io(&sub, e))?;
        let (written, reused) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let n = list.items.len();
        let workers = self.workers.max(1).min(n.max(1));
        let results: Vec<Result<Vec<(usize, PathBuf)>>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..workers)
                .map(|w| {
                    let (written, reused) = (&written, &reused);
                    s.spawn(move || {
                        let mut out = Vec::new();
                        for i in (w..n).step_by(workers) {
                            let src = &list.items[i].path;
                            let dst = self.cached_path(src)?;
                            if dst.is_file() {
                                reused.fetch_add(1, Ordering::Relaxed);
                            } else {
                                self.write_copy(src, &dst)?;
                                written.fetch_add(1, Ordering::Relaxed);
                            }
                            out.push((i, dst));
                        }
                        Ok(out)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("resize-cache worker panicked"))
                .collect()
        });
        let mut cached = list.clone();
        for r in results {
            for (i, p) in r? {
                cached.items[i].path = p;
            }
        }
        Ok((
            cached,
            CacheReport {
                written: written.into_inner(),
                reused: reused.into_inner(),
            },
        ))
    }

    fn write_copy(&self, src: &Path, dst: &Path) -> Result<()> {
        let img = load_rgb_with(src, &self.decode)?.image;
        let (w, h) = img.dimensions();
        let small = if w.min(h) > self.short_side {
            let (tw, th) = short_side_size(w, h, self.short_side);
            resize_rgb(&img, tw, th, self.filter, None)
        } else {
            img
        };
        write_jpeg_atomic(&small, dst, self.quality)
    }
}
