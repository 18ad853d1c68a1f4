//! Pre-flight check of a labelled dataset: every CSV problem and every bad image, in one
//! report.

use std::fmt;
use std::path::PathBuf;

use crate::decode::{DecodeOptions, load_rgb_with};
use crate::error::{CsvProblems, Error, Result};
use crate::items::{CsvConfig, read_rows};

/// Everything [`verify`] found.
#[derive(Debug)]
pub struct VerifyReport {
    /// The CSV checked.
    pub csv: PathBuf,
    /// Data rows read (good and bad).
    pub rows: usize,
    /// CSV problems, each with its line.
    pub csv_problems: CsvProblems,
    /// Images that exist but fail to decode, each error naming its file, in row order.
    pub image_errors: Vec<Error>,
    /// Images decoded successfully.
    pub images_ok: usize,
}

impl VerifyReport {
    /// True when no row and no image has a problem.
    pub fn is_ok(&self) -> bool {
        self.csv_problems.is_empty() && self.image_errors.is_empty()
    }

    /// Number of problems of any kind.
    pub fn problem_count(&self) -> usize {
        self.csv_problems.total() + self.image_errors.len()
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_ok() {
            return write!(
                f,
                "{}: OK ({} rows, {} images decoded)",
                self.csv.display(),
                self.rows,
                self.images_ok
            );
        }
        write!(
            f,
            "{}: {} problem(s) ({} rows, {} images decoded)",
            self.csv.display(),
            self.problem_count(),
            self.rows,
            self.images_ok
        )?;
        for p in &self.csv_problems.list {
            write!(f, "\n  {}:{p}", self.csv.display())?;
        }
        if self.csv_problems.more > 0 {
            write!(f, "\n  … and {} more CSV problems", self.csv_problems.more)?;
        }
        for e in &self.image_errors {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

/// Checks a labelled dataset: all the CSV checks of [`crate::ItemList::from_csv`], then a
/// full decode of every image the CSV names (in `workers` threads), collecting every
/// problem instead of stopping at the first.
///
/// # Errors
/// Only when the CSV itself cannot be read ([`Error::Io`]); everything else is in the report.
///
/// # Example
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # let img = dir.path().join("img"); std::fs::create_dir(&img).unwrap();
/// image::RgbImage::new(8, 8).save(img.join("good.png"))?;
/// std::fs::write(img.join("bad.png"), b"<html>not an image</html>")?;
/// std::fs::write(dir.path().join("l.csv"), "image_name,tags\ngood,a\nbad,b\nmissing,c\n")?;
/// let cfg = fastburn_data::CsvConfig::new(dir.path().join("l.csv"), img).with_suffix(".png".into());
/// let report = fastburn_data::verify(&cfg, &Default::default(), 2)?;
/// assert!(!report.is_ok());
/// assert_eq!(report.csv_problems.list[0].line, 4); // `missing` has no file
/// assert!(report.image_errors[0].to_string().contains("bad.png"));
/// assert_eq!(report.images_ok, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn verify(cfg: &CsvConfig, decode: &DecodeOptions, workers: usize) -> Result<VerifyReport> {
    let check_files = CsvConfig {
        check_files: true,
        ..cfg.clone()
    };
    let (rows, csv_problems) = read_rows(&check_files)?;
    let paths: Vec<PathBuf> = rows
        .iter()
        .map(|r| cfg.images.join(format!("{}{}", r.name, cfg.suffix)))
        .collect();
    let n = paths.len();
    let workers = workers.max(1).min(n.max(1));
    let mut results: Vec<(usize, Option<Error>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let paths = &paths;
                s.spawn(move || {
                    (w..n)
                        .step_by(workers)
                        .map(|i| (i, load_rgb_with(&paths[i], decode).err()))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("verify worker panicked"))
            .collect()
    });
    results.sort_by_key(|(i, _)| *i);
    let images_ok = results.iter().filter(|(_, e)| e.is_none()).count();
    let image_errors = results.into_iter().filter_map(|(_, e)| e).collect();
    let rows = count_data_rows(cfg)?;
    Ok(VerifyReport {
        csv: cfg.csv.clone(),
        rows,
        csv_problems,
        image_errors,
        images_ok,
    })
}

fn count_data_rows(cfg: &CsvConfig) -> Result<usize> {
    let bytes = std::fs::read(&cfg.csv).map_err(|e| Error::io(&cfg.csv, e))?;
    let n = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(bytes.as_slice())
        .byte_records()
        .count();
    Ok(n)
}
