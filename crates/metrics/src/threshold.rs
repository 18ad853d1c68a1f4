//! Threshold search on validation predictions: one global threshold (fastai 0.7's `opt_th`)
//! or one per class (coordinate ascent).
//!
//! # Over-fitting
//! A threshold tuned on a set and scored on that same set over-estimates the score: the
//! search picks whatever happens to suit those particular images. fastai 0.7's lesson
//! reported exactly that (its `f2` took the best threshold in 0.17–0.23 on the validation
//! set), and per-class thresholds — `n_classes` free parameters instead of one — over-fit
//! more, most of all for rare labels with a handful of positives. Tune on one split and
//! report on another; with only a validation set, cross-fit it: tune on one half, score
//! the other half, and swap (see [`per_class_thresholds`] for a 2-fold example). Keep the
//! grid coarse (0.01 steps) and prefer the global threshold when the two folds disagree.

use serde::{Deserialize, Serialize};

use crate::confusion::{ZeroDivision, fbeta_from_counts};
use crate::error::{Error, Result};
use crate::input::{beta_squared, check_nonempty, check_threshold, predicted};

/// The largest number of coordinate-ascent sweeps [`per_class_thresholds`] makes (it stops
/// earlier when a sweep changes nothing).
pub const PER_CLASS_MAX_SWEEPS: usize = 5;

/// Scores closer than this count as equal in a threshold search (then the smaller
/// threshold wins).
///
/// Two different prediction sets can have mathematically equal samples F-beta whose
/// floating-point sums differ in the last bits; without a tolerance the winner would depend
/// on summation order (NumPy's pairwise sum and ours disagree). Genuine differences
/// between two mean scores over `n` images are far larger (about `1/n²` at least).
pub const SCORE_TIE_TOLERANCE: f64 = 1e-12;

/// The candidate thresholds of a search: sorted, distinct values in `[0, 1]`.
///
/// - [`ThresholdGrid::wide`] (the [`Default`]): 0.05, 0.06, …, 0.95 — 91 values.
/// - [`ThresholdGrid::fastai07`]: 0.17, 0.18, …, 0.23 — fastai 0.7's
///   `opt_th(start=0.17, end=0.24, step=0.01)`, i.e. `np.arange(0.17, 0.24, 0.01)`.
///
/// A value `k/100` is `(k as f64 / 100.0) as f32`, the same `f32` as NumPy's
/// `np.float32(k / 100)`, so grids match the fixture script's bit for bit.
///
/// # Example
/// ```
/// use fastburn_metrics::ThresholdGrid;
///
/// let grid = ThresholdGrid::fastai07();
/// assert_eq!(grid.values(), &[0.17, 0.18, 0.19, 0.2, 0.21, 0.22, 0.23]);
/// assert_eq!(ThresholdGrid::default().values().len(), 91);
/// let custom = ThresholdGrid::new(vec![0.5, 0.3, 0.5])?;
/// assert_eq!(custom.values(), &[0.3, 0.5]);
/// # Ok::<(), fastburn_metrics::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Vec<f32>", into = "Vec<f32>")]
pub struct ThresholdGrid {
    values: Vec<f32>,
}

impl ThresholdGrid {
    /// A grid of the given values, sorted and deduplicated.
    ///
    /// # Errors
    /// [`Error::EmptyGrid`] for no values, [`Error::InvalidThreshold`] for a value that is
    /// NaN or outside `[0, 1]`.
    pub fn new(values: impl Into<Vec<f32>>) -> Result<Self> {
        let mut values = values.into();
        if values.is_empty() {
            return Err(Error::EmptyGrid);
        }
        values.iter().try_for_each(|&v| check_threshold(v))?;
        values.sort_by(f32::total_cmp);
        values.dedup_by(|a, b| a == b);
        Ok(ThresholdGrid { values })
    }

    /// `from/100, (from+1)/100, …, to/100`.
    ///
    /// # Errors
    /// [`Error::EmptyGrid`] when `from > to`, [`Error::InvalidThreshold`] when `to > 100`.
    pub fn hundredths(from: u32, to: u32) -> Result<Self> {
        if from > to {
            return Err(Error::EmptyGrid);
        }
        ThresholdGrid::new(
            (from..=to)
                .map(|k| (f64::from(k) / 100.0) as f32)
                .collect::<Vec<_>>(),
        )
    }

    /// 0.05 to 0.95 in steps of 0.01 (91 values): wide enough for any sigmoid output.
    pub fn wide() -> Self {
        ThresholdGrid::hundredths(5, 95).expect("0.05..=0.95 is a valid grid")
    }

    /// 0.17 to 0.23 in steps of 0.01 (7 values): fastai 0.7's `opt_th` grid for Planet.
    pub fn fastai07() -> Self {
        ThresholdGrid::hundredths(17, 23).expect("0.17..=0.23 is a valid grid")
    }

    /// The candidate thresholds, ascending.
    pub fn values(&self) -> &[f32] {
        &self.values
    }
}

impl Default for ThresholdGrid {
    fn default() -> Self {
        ThresholdGrid::wide()
    }
}

impl TryFrom<Vec<f32>> for ThresholdGrid {
    type Error = Error;

    fn try_from(values: Vec<f32>) -> Result<Self> {
        ThresholdGrid::new(values)
    }
}

impl From<ThresholdGrid> for Vec<f32> {
    fn from(grid: ThresholdGrid) -> Vec<f32> {
        grid.values
    }
}

/// The best global threshold and its score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ThresholdResult {
    /// The threshold (a grid value).
    pub threshold: f32,
    /// Samples F-beta at that threshold, on the data searched.
    pub score: f64,
}

/// The best per-class thresholds found and their score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerClassResult {
    /// One threshold per class (grid values); pass them to
    /// [`precision_recall_fbeta`](crate::precision_recall_fbeta) or
    /// [`FBetaMetric::with_thresholds`](crate::FBetaMetric::with_thresholds).
    pub thresholds: Vec<f32>,
    /// Samples F-beta with those thresholds, on the data searched.
    pub score: f64,
}

/// Per-row counts of a samples-F-beta search: true tags (fixed), true positives and
/// predictions (depend on the thresholds).
struct Rows<'a> {
    probs: &'a [f32],
    targets: &'a [f32],
    n_classes: usize,
    n_true: Vec<u64>,
    beta2: f64,
}

impl Rows<'_> {
    /// Samples F-beta (zero division 1) from per-row counts; the same arithmetic as
    /// [`fbeta`](crate::fbeta), so equal scores are bit-identical.
    fn score(&self, mut counts: impl FnMut(usize) -> (u64, u64)) -> f64 {
        let mut sum = 0.0;
        for (r, &n_true) in self.n_true.iter().enumerate() {
            let (tp, n_pred) = counts(r);
            sum += fbeta_from_counts(tp, n_true, n_pred, self.beta2, ZeroDivision::One);
        }
        sum / self.n_true.len() as f64
    }

    /// `(tp, predicted)` contribution of cell `(r, j)` at threshold `t`.
    #[inline]
    fn cell(&self, r: usize, j: usize, t: f32) -> (u64, u64) {
        let i = r * self.n_classes + j;
        let pred = predicted(self.probs[i], t);
        (u64::from(pred && self.targets[i] == 1.0), u64::from(pred))
    }
}

fn rows<'a>(probs: &'a [f32], targets: &'a [f32], n_classes: usize, beta: f64) -> Result<Rows<'a>> {
    let beta2 = beta_squared(beta)?;
    check_nonempty(probs, targets, n_classes)?;
    let n_true = targets
        .chunks_exact(n_classes)
        .map(|row| row.iter().filter(|&&t| t == 1.0).count() as u64)
        .collect();
    Ok(Rows {
        probs,
        targets,
        n_classes,
        n_true,
        beta2,
    })
}

/// The global threshold that maximises samples F-beta (Kaggle's Planet metric for
/// `beta = 2`) over a grid — fastai 0.7's `opt_th`.
///
/// Scores are [`fbeta`](crate::fbeta) with [`Average::Samples`](crate::Average::Samples)
/// (an image with nothing true and nothing predicted scores 1). Ties go to the smallest
/// threshold (as `np.argmax` over an ascending grid), scores within
/// [`SCORE_TIE_TOLERANCE`] counting as tied. Read the module's note on over-fitting: the
/// score is optimistic on the data searched.
///
/// # Errors
/// [`Error::InvalidBeta`], [`Error::EmptyInput`], and the input errors of
/// [`fbeta`](crate::fbeta).
///
/// # Example
/// ```
/// use fastburn_metrics::{ThresholdGrid, best_threshold, f2};
///
/// let probs = [0.9, 0.25, 0.05, /* image 2 */ 0.1, 0.15, 0.7];
/// let targets = [1.0, 1.0, 0.0, /* image 2 */ 0.0, 0.0, 1.0];
/// // Any threshold in [0.15, 0.25) makes both images perfect; 0.15 is the smallest.
/// let best = best_threshold(&probs, &targets, 3, 2.0, &ThresholdGrid::wide())?;
/// assert_eq!((best.threshold, best.score), (0.15, 1.0));
/// assert_eq!(f2(&probs, &targets, 3, best.threshold)?, best.score);
/// # Ok::<(), fastburn_metrics::Error>(())
/// ```
pub fn best_threshold(
    probs: &[f32],
    targets: &[f32],
    n_classes: usize,
    beta: f64,
    grid: &ThresholdGrid,
) -> Result<ThresholdResult> {
    let rows = rows(probs, targets, n_classes, beta)?;
    let mut best: Option<ThresholdResult> = None;
    for &t in grid.values() {
        let score = rows.score(|r| {
            (0..n_classes).fold((0, 0), |(tp, np), j| {
                let (a, b) = rows.cell(r, j, t);
                (tp + a, np + b)
            })
        });
        if best.is_none_or(|b| score > b.score + SCORE_TIE_TOLERANCE) {
            best = Some(ThresholdResult {
                threshold: t,
                score,
            });
        }
    }
    best.ok_or(Error::EmptyGrid)
}

/// One threshold per class maximising samples F-beta, by coordinate ascent.
///
/// Starts from [`best_threshold`] for every class, then sweeps the classes in order: for
/// class `j` every grid value is tried with the other thresholds fixed, and the best is
/// kept only if it improves the score by more than [`SCORE_TIE_TOLERANCE`] (ties between
/// improving values go to the smallest). Sweeps repeat until one changes nothing, at most [`PER_CLASS_MAX_SWEEPS`].
/// The result's score is therefore ≥ the global search's, and every threshold is a grid
/// value. Each sweep costs `O(n_classes · grid · n)`.
///
/// # Over-fitting
/// The score is measured on the data searched and over-estimates what the thresholds will
/// do on new images: tune on one split and report on another. With a single validation
/// set, cross-fit as below.
///
/// # Errors
/// As [`best_threshold`].
///
/// # Example
/// Two-fold cross-fitting: tune on fold A, score on fold B, and swap. Tuned on A, the
/// thresholds `[0.4, 0.2]` make A perfect (1.0) but score only 43/72 ≈ 0.597 on B; tuned
/// on B, `[0.1, 0.1]` score 11/12 on both. The honest estimate is the mean of the held-out
/// scores, (43/72 + 11/12) / 2 = 109/144 ≈ 0.757 — not the tuned 1.0 or 11/12.
/// ```
/// use fastburn_metrics::{
///     Average, Scoring, ThresholdGrid, per_class_thresholds, precision_recall_fbeta,
/// };
///
/// let c = 2;
/// let fold_a = (
///     [0.9, 0.3, /**/ 0.6, 0.1, /**/ 0.4, 0.35, /**/ 0.2, 0.8],
///     [1.0, 1.0, /**/ 1.0, 0.0, /**/ 0.0, 1.0, /**/ 0.0, 1.0],
/// );
/// let fold_b = (
///     [0.7, 0.5, /**/ 0.3, 0.2, /**/ 0.8, 0.1, /**/ 0.25, 0.4],
///     [1.0, 0.0, /**/ 0.0, 1.0, /**/ 1.0, 0.0, /**/ 1.0, 1.0],
/// );
/// let grid = ThresholdGrid::wide();
/// let f2 = Scoring::new(2.0, Average::Samples);
///
/// let tuned_a = per_class_thresholds(&fold_a.0, &fold_a.1, c, 2.0, &grid)?;
/// assert_eq!((tuned_a.thresholds.as_slice(), tuned_a.score), (&[0.4, 0.2][..], 1.0));
/// let on_b = precision_recall_fbeta(&fold_b.0, &fold_b.1, c, &tuned_a.thresholds, &f2)?;
///
/// let tuned_b = per_class_thresholds(&fold_b.0, &fold_b.1, c, 2.0, &grid)?;
/// assert_eq!(tuned_b.thresholds, vec![0.1, 0.1]);
/// let on_a = precision_recall_fbeta(&fold_a.0, &fold_a.1, c, &tuned_b.thresholds, &f2)?;
///
/// assert!((on_b.fbeta - 43.0 / 72.0).abs() < 1e-12); // far below the tuned 1.0
/// assert!((on_a.fbeta - 11.0 / 12.0).abs() < 1e-12);
/// let cross_fitted = (on_b.fbeta + on_a.fbeta) / 2.0;
/// assert!((cross_fitted - 109.0 / 144.0).abs() < 1e-12);
/// # Ok::<(), fastburn_metrics::Error>(())
/// ```
pub fn per_class_thresholds(
    probs: &[f32],
    targets: &[f32],
    n_classes: usize,
    beta: f64,
    grid: &ThresholdGrid,
) -> Result<PerClassResult> {
    let global = best_threshold(probs, targets, n_classes, beta, grid)?;
    let rows = rows(probs, targets, n_classes, beta)?;
    let n = rows.n_true.len();
    let mut thresholds = vec![global.threshold; n_classes];
    let mut score = global.score;
    // Per-row (tp, predicted) at the current thresholds.
    let mut counts: Vec<(u64, u64)> = (0..n)
        .map(|r| {
            (0..n_classes).fold((0, 0), |(tp, np), j| {
                let (a, b) = rows.cell(r, j, thresholds[j]);
                (tp + a, np + b)
            })
        })
        .collect();
    let mut base = vec![(0u64, 0u64); n];
    for _ in 0..PER_CLASS_MAX_SWEEPS {
        let mut changed = false;
        for (j, threshold) in thresholds.iter_mut().enumerate() {
            for ((r, b), cnt) in base.iter_mut().enumerate().zip(&counts) {
                let (a, p) = rows.cell(r, j, *threshold);
                *b = (cnt.0 - a, cnt.1 - p);
            }
            let mut best = (*threshold, score);
            for &t in grid.values() {
                if t == *threshold {
                    continue;
                }
                let s = rows.score(|r| {
                    let (a, p) = rows.cell(r, j, t);
                    (base[r].0 + a, base[r].1 + p)
                });
                if s > best.1 + SCORE_TIE_TOLERANCE {
                    best = (t, s);
                }
            }
            if best.0 != *threshold {
                *threshold = best.0;
                score = best.1;
                changed = true;
                for ((r, b), cnt) in base.iter().enumerate().zip(counts.iter_mut()) {
                    let (a, p) = rows.cell(r, j, best.0);
                    *cnt = (b.0 + a, b.1 + p);
                }
            }
        }
        if !changed {
            break;
        }
    }
    Ok(PerClassResult { thresholds, score })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grids_are_hundredths() {
        let wide = ThresholdGrid::wide();
        assert_eq!(wide.values().len(), 91);
        assert_eq!(wide.values()[0], 0.05);
        assert_eq!(wide.values()[90], 0.95);
        assert_eq!(ThresholdGrid::hundredths(3, 2), Err(Error::EmptyGrid));
        assert_eq!(
            ThresholdGrid::hundredths(90, 101),
            Err(Error::InvalidThreshold { value: 1.01 })
        );
        assert_eq!(ThresholdGrid::new(Vec::new()), Err(Error::EmptyGrid));
    }

    #[test]
    fn grid_deserialisation_validates() {
        let grid: ThresholdGrid = serde_json::from_str("[0.3, 0.1]").unwrap();
        assert_eq!(grid.values(), &[0.1, 0.3]);
        assert!(serde_json::from_str::<ThresholdGrid>("[]").is_err());
        assert!(serde_json::from_str::<ThresholdGrid>("[2.0]").is_err());
    }

    #[test]
    fn per_class_improves_on_a_label_that_needs_its_own_threshold() {
        // Label 0's positives sit at 0.3, label 1's negatives at 0.6: no single threshold
        // separates both, two do.
        let probs = [
            0.3, 0.9, /**/ 0.1, 0.6, /**/ 0.3, 0.1, /**/ 0.1, 0.6,
        ];
        let targets = [
            1.0, 1.0, /**/ 0.0, 0.0, /**/ 1.0, 0.0, /**/ 0.0, 0.0,
        ];
        let grid = ThresholdGrid::wide();
        let global = best_threshold(&probs, &targets, 2, 1.0, &grid).unwrap();
        assert!(global.score < 1.0);
        let per_class = per_class_thresholds(&probs, &targets, 2, 1.0, &grid).unwrap();
        assert_eq!(per_class.score, 1.0);
        assert!(per_class.thresholds[0] < 0.3 && per_class.thresholds[1] >= 0.6);
    }
}
