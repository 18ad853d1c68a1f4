//! Per-label confusion counts and the zero-division rule.

use std::ops::{Add, AddAssign};

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::input::{beta_squared, check_batch, check_thresholds, predicted, threshold_of};

/// The value a precision, recall or F-beta takes when its denominator is 0 — scikit-learn's
/// `zero_division` parameter.
///
/// The rule is the same for every average: a ratio whose denominator is 0 takes this value
/// (precision when nothing is predicted, recall when nothing is true, F-beta when nothing is
/// true *and* nothing is predicted). The default, [`ZeroDivision::One`], is the Kaggle
/// convention — "nothing to find and nothing flagged is a perfect score" — and makes
/// [`Average::Samples`](crate::Average::Samples) F-beta equal to Kaggle's Planet metric.
/// It equals scikit-learn's `zero_division=1.0`; [`ZeroDivision::Zero`] equals
/// `zero_division=0.0` (and what scikit-learn's default `"warn"` returns).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum ZeroDivision {
    /// An undefined ratio is 0 (scikit-learn `zero_division=0.0`).
    Zero,
    /// An undefined ratio is 1 (scikit-learn `zero_division=1.0`; Kaggle's convention).
    #[default]
    One,
}

impl ZeroDivision {
    /// The value as a number: 0.0 or 1.0.
    pub fn value(self) -> f64 {
        match self {
            ZeroDivision::Zero => 0.0,
            ZeroDivision::One => 1.0,
        }
    }
}

/// Confusion counts of one label (or one sample, or a sum of them).
///
/// `fn_` counts false negatives (`fn` is a Rust keyword).
///
/// # Example
/// ```
/// use fastburn_metrics::{LabelConfusion, ZeroDivision};
///
/// let c = LabelConfusion { tp: 3, fp: 1, fn_: 2, tn: 4 };
/// assert_eq!(c.precision(ZeroDivision::One), 0.75); // 3 / (3 + 1)
/// assert_eq!(c.recall(ZeroDivision::One), 0.6); // 3 / (3 + 2)
/// // F1 = 2·3 / (2·3 + 2 + 1) = 6 / 9
/// assert!((c.fbeta(1.0, ZeroDivision::One)? - 6.0 / 9.0).abs() < 1e-15);
/// # Ok::<(), fastburn_metrics::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct LabelConfusion {
    /// True positives: predicted and true.
    pub tp: u64,
    /// False positives: predicted, not true.
    pub fp: u64,
    /// False negatives: true, not predicted.
    pub fn_: u64,
    /// True negatives: neither predicted nor true.
    pub tn: u64,
}

impl LabelConfusion {
    /// Counts one decision.
    #[inline]
    pub fn record(&mut self, predicted: bool, truth: bool) {
        match (predicted, truth) {
            (true, true) => self.tp += 1,
            (true, false) => self.fp += 1,
            (false, true) => self.fn_ += 1,
            (false, false) => self.tn += 1,
        }
    }

    /// Number of true positives plus false negatives (scikit-learn's `support`).
    pub fn support(&self) -> u64 {
        self.tp + self.fn_
    }

    /// Number of positive predictions: `tp + fp`.
    pub fn predicted(&self) -> u64 {
        self.tp + self.fp
    }

    /// Number of decisions counted: `tp + fp + fn_ + tn`.
    pub fn total(&self) -> u64 {
        self.tp + self.fp + self.fn_ + self.tn
    }

    /// `tp / (tp + fp)`, or `zero_division` when nothing was predicted.
    pub fn precision(&self, zero_division: ZeroDivision) -> f64 {
        ratio(self.tp, self.predicted(), zero_division)
    }

    /// `tp / (tp + fn_)`, or `zero_division` when nothing is true.
    pub fn recall(&self, zero_division: ZeroDivision) -> f64 {
        ratio(self.tp, self.support(), zero_division)
    }

    /// `(1 + β²)·tp / (β²·(tp + fn_) + tp + fp)`, or `zero_division` when the denominator
    /// is 0 (nothing true and nothing predicted). This is scikit-learn's formula; it equals
    /// the weighted harmonic mean of precision and recall, and 0 when both are 0.
    ///
    /// # Errors
    /// [`Error::InvalidBeta`](crate::Error::InvalidBeta) when `beta` is negative, NaN or
    /// too large for `beta²`.
    pub fn fbeta(&self, beta: f64, zero_division: ZeroDivision) -> Result<f64> {
        Ok(fbeta_from_counts(
            self.tp,
            self.support(),
            self.predicted(),
            beta_squared(beta)?,
            zero_division,
        ))
    }
}

impl Add for LabelConfusion {
    type Output = LabelConfusion;

    fn add(self, rhs: LabelConfusion) -> LabelConfusion {
        LabelConfusion {
            tp: self.tp + rhs.tp,
            fp: self.fp + rhs.fp,
            fn_: self.fn_ + rhs.fn_,
            tn: self.tn + rhs.tn,
        }
    }
}

impl AddAssign for LabelConfusion {
    fn add_assign(&mut self, rhs: LabelConfusion) {
        *self = *self + rhs;
    }
}

/// `num / den`, or the zero-division value when `den == 0`.
#[inline]
pub(crate) fn ratio(num: u64, den: u64, zero_division: ZeroDivision) -> f64 {
    if den == 0 {
        zero_division.value()
    } else {
        num as f64 / den as f64
    }
}

/// scikit-learn's F-beta from counts: `(1 + β²)·tp / (β²·n_true + n_pred)`.
#[inline]
pub(crate) fn fbeta_from_counts(
    tp: u64,
    n_true: u64,
    n_pred: u64,
    beta2: f64,
    zero_division: ZeroDivision,
) -> f64 {
    let denom = beta2 * n_true as f64 + n_pred as f64;
    if denom == 0.0 {
        zero_division.value()
    } else {
        (1.0 + beta2) * tp as f64 / denom
    }
}

/// Confusion counts of every label at the given thresholds.
///
/// `thresholds` holds one global threshold or one per class; a label is predicted when
/// `prob > threshold`.
///
/// # Shapes
/// `probs`, `targets`: row-major `[n, n_classes]`; result: `[n_classes]`.
///
/// # Errors
/// Shape errors ([`Error::ShapeMismatch`](crate::Error::ShapeMismatch),
/// [`Error::RaggedInput`](crate::Error::RaggedInput), [`Error::ZeroClasses`](crate::Error::ZeroClasses)),
/// [`Error::InvalidProbability`](crate::Error::InvalidProbability),
/// [`Error::NotBinaryTarget`](crate::Error::NotBinaryTarget),
/// [`Error::InvalidThreshold`](crate::Error::InvalidThreshold). Zero rows give all-zero
/// counts.
///
/// # Example
/// ```
/// use fastburn_metrics::{LabelConfusion, confusion_per_label};
///
/// let probs = [0.9, 0.1, /* row 2 */ 0.3, 0.6];
/// let targets = [1.0, 1.0, /* row 2 */ 0.0, 0.0];
/// let c = confusion_per_label(&probs, &targets, 2, &[0.5])?;
/// assert_eq!(c[0], LabelConfusion { tp: 1, fp: 0, fn_: 0, tn: 1 });
/// assert_eq!(c[1], LabelConfusion { tp: 0, fp: 1, fn_: 1, tn: 0 });
/// # Ok::<(), fastburn_metrics::Error>(())
/// ```
pub fn confusion_per_label(
    probs: &[f32],
    targets: &[f32],
    n_classes: usize,
    thresholds: &[f32],
) -> Result<Vec<LabelConfusion>> {
    check_batch(probs, targets, n_classes)?;
    check_thresholds(thresholds, n_classes)?;
    let mut counts = vec![LabelConfusion::default(); n_classes];
    for (p_row, t_row) in probs
        .chunks_exact(n_classes)
        .zip(targets.chunks_exact(n_classes))
    {
        for (j, (&p, &t)) in p_row.iter().zip(t_row).enumerate() {
            counts[j].record(predicted(p, threshold_of(thresholds, j)), t == 1.0);
        }
    }
    Ok(counts)
}
