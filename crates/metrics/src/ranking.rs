//! Threshold-free scores: ROC-AUC and precision-recall curves.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::input::check_nonempty;

/// One column (label) of a row-major `[n, n_classes]` buffer, e.g. to pass one label's
/// probabilities and targets to [`pr_curve`].
///
/// Returns an empty vector when `label >= n_classes` or `n_classes == 0`; a trailing
/// partial row is ignored.
///
/// # Example
/// ```
/// use fastburn_metrics::label_column;
///
/// let probs = [0.1, 0.2, /* row 2 */ 0.3, 0.4];
/// assert_eq!(label_column(&probs, 2, 1), vec![0.2, 0.4]);
/// ```
pub fn label_column(values: &[f32], n_classes: usize, label: usize) -> Vec<f32> {
    if label >= n_classes {
        return Vec::new();
    }
    values
        .chunks_exact(n_classes)
        .map(|row| row[label])
        .collect()
}

/// Sorts `(score, is_positive)` pairs by descending score and returns the groups of equal
/// scores as `(score, positives, negatives)`, highest score first.
fn score_groups(scores: &[f32], positive: impl Fn(usize) -> bool) -> Vec<(f32, u64, u64)> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    // Scores are validated probabilities (no NaN), so `partial_cmp` is a total order here,
    // and -0.0 stays equal to 0.0.
    order.sort_by(|&a, &b| {
        scores[b]
            .partial_cmp(&scores[a])
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let mut groups: Vec<(f32, u64, u64)> = Vec::new();
    for i in order {
        let s = scores[i];
        let (pos, neg) = if positive(i) { (1, 0) } else { (0, 1) };
        match groups.last_mut() {
            Some(g) if g.0 == s => {
                g.1 += pos;
                g.2 += neg;
            }
            _ => groups.push((s, pos, neg)),
        }
    }
    groups
}

/// ROC-AUC of one label: the probability that a random positive scores higher than a
/// random negative, ties counting one half (the trapezoidal area under scikit-learn's
/// ROC curve). `None` when the label has only one class.
fn auc_of(scores: &[f32], positive: impl Fn(usize) -> bool) -> Option<f64> {
    let groups = score_groups(scores, positive);
    let (mut area, mut neg_below, mut n_pos) = (0.0f64, 0u64, 0u64);
    // Walk from the lowest score up: a positive beats every negative below it.
    for &(_, pos, neg) in groups.iter().rev() {
        area += pos as f64 * (neg_below as f64 + 0.5 * neg as f64);
        neg_below += neg;
        n_pos += pos;
    }
    if n_pos == 0 || neg_below == 0 {
        None
    } else {
        Some(area / (n_pos as f64 * neg_below as f64))
    }
}

/// ROC-AUC of each label; `None` for a label whose targets are all 0 or all 1, where
/// the AUC is undefined (scikit-learn raises there).
///
/// Ties between a positive and a negative count one half, which equals the trapezoidal
/// area under scikit-learn's `roc_curve`.
///
/// # Shapes
/// `probs`, `targets`: row-major `[n, n_classes]`; result: `[n_classes]`.
///
/// # Errors
/// [`Error::EmptyInput`] and the input errors of [`fbeta`](crate::fbeta).
///
/// # Example
/// ```
/// use fastburn_metrics::roc_auc_per_label;
///
/// let probs = [0.9, 0.5, /* row 2 */ 0.4, 0.5, /* row 3 */ 0.6, 0.1];
/// let targets = [1.0, 1.0, /* row 2 */ 0.0, 1.0, /* row 3 */ 1.0, 1.0];
/// // Label 0: both positives (0.9, 0.6) beat the negative 0.4; label 1 has no negative.
/// assert_eq!(roc_auc_per_label(&probs, &targets, 2)?, vec![Some(1.0), None]);
/// # Ok::<(), fastburn_metrics::Error>(())
/// ```
pub fn roc_auc_per_label(
    probs: &[f32],
    targets: &[f32],
    n_classes: usize,
) -> Result<Vec<Option<f64>>> {
    check_nonempty(probs, targets, n_classes)?;
    Ok((0..n_classes)
        .map(|j| {
            let scores = label_column(probs, n_classes, j);
            let truth = label_column(targets, n_classes, j);
            auc_of(&scores, |i| truth[i] == 1.0)
        })
        .collect())
}

/// Macro ROC-AUC: the mean of [`roc_auc_per_label`] over the labels where it is defined
/// (labels with only one class are skipped, not counted as 0 or 0.5).
///
/// # Errors
/// [`Error::AucUndefined`] when no label has both classes, and the errors of
/// [`roc_auc_per_label`].
///
/// # Example
/// ```
/// use fastburn_metrics::roc_auc_macro;
///
/// let probs = [0.9, 0.5, /* row 2 */ 0.4, 0.5, /* row 3 */ 0.6, 0.1];
/// let targets = [1.0, 1.0, /* row 2 */ 0.0, 0.0, /* row 3 */ 1.0, 1.0];
/// // Label 0: 1.0. Label 1: positives 0.5 and 0.1 vs negative 0.5 → (0.5 + 0) / 2 = 0.25.
/// assert_eq!(roc_auc_macro(&probs, &targets, 2)?, 0.625);
/// # Ok::<(), fastburn_metrics::Error>(())
/// ```
pub fn roc_auc_macro(probs: &[f32], targets: &[f32], n_classes: usize) -> Result<f64> {
    let defined: Vec<f64> = roc_auc_per_label(probs, targets, n_classes)?
        .into_iter()
        .flatten()
        .collect();
    if defined.is_empty() {
        return Err(Error::AucUndefined { n_classes });
    }
    Ok(defined.iter().sum::<f64>() / defined.len() as f64)
}

/// One point of a precision-recall curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PrPoint {
    /// A distinct probability of the label; the point predicts every sample whose
    /// probability is `>= threshold` (scikit-learn's curve convention).
    pub threshold: f32,
    /// Precision of that prediction.
    pub precision: f64,
    /// Recall of that prediction (1.0 everywhere when the label has no positive, as
    /// scikit-learn).
    pub recall: f64,
}

/// The precision-recall curve of one label: one point per distinct probability, in
/// increasing threshold order — scikit-learn's `precision_recall_curve` without its final
/// `(precision 1, recall 0)` sentinel.
///
/// Note the curve's convention: a point at `threshold = t` predicts `prob >= t`, as
/// scikit-learn's curve does. With the crate's rule (`prob > threshold`), the same
/// predictions come from any threshold in `[previous point's threshold, t)`.
///
/// # Shapes
/// `probs_of_label`, `targets_of_label`: `[n]` (one column, see [`label_column`]).
///
/// # Errors
/// [`Error::EmptyInput`] and the input errors of [`fbeta`](crate::fbeta) (with one class).
///
/// # Example
/// ```
/// use fastburn_metrics::pr_curve;
///
/// let curve = pr_curve(&[0.1, 0.4, 0.35, 0.8], &[0.0, 0.0, 1.0, 1.0])?;
/// let t: Vec<f32> = curve.iter().map(|p| p.threshold).collect();
/// assert_eq!(t, vec![0.1, 0.35, 0.4, 0.8]);
/// // At 0.35: predicted {0.35, 0.4, 0.8}, two of them positive.
/// assert_eq!((curve[1].precision, curve[1].recall), (2.0 / 3.0, 1.0));
/// assert_eq!((curve[3].precision, curve[3].recall), (1.0, 0.5));
/// # Ok::<(), fastburn_metrics::Error>(())
/// ```
pub fn pr_curve(probs_of_label: &[f32], targets_of_label: &[f32]) -> Result<Vec<PrPoint>> {
    check_nonempty(probs_of_label, targets_of_label, 1)?;
    let groups = score_groups(probs_of_label, |i| targets_of_label[i] == 1.0);
    let n_pos: u64 = groups.iter().map(|g| g.1).sum();
    let (mut tp, mut fp) = (0u64, 0u64);
    let mut points: Vec<PrPoint> = groups
        .iter()
        .map(|&(threshold, pos, neg)| {
            tp += pos;
            fp += neg;
            PrPoint {
                threshold,
                precision: tp as f64 / (tp + fp) as f64,
                recall: if n_pos == 0 {
                    1.0
                } else {
                    tp as f64 / n_pos as f64
                },
            }
        })
        .collect();
    points.reverse();
    Ok(points)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_count_one_half() {
        let auc = roc_auc_per_label(&[0.5, 0.5], &[1.0, 0.0], 1).unwrap();
        assert_eq!(auc, vec![Some(0.5)]);
    }

    #[test]
    fn macro_auc_needs_one_defined_label() {
        let err = roc_auc_macro(&[0.5, 0.5], &[1.0, 1.0], 1).unwrap_err();
        assert_eq!(err, Error::AucUndefined { n_classes: 1 });
    }

    #[test]
    fn curve_without_positives_has_recall_one() {
        let curve = pr_curve(&[0.2, 0.7], &[0.0, 0.0]).unwrap();
        assert!(curve.iter().all(|p| p.recall == 1.0 && p.precision == 0.0));
    }

    #[test]
    fn label_column_out_of_range_is_empty() {
        assert!(label_column(&[0.1, 0.2], 2, 2).is_empty());
        assert!(label_column(&[0.1, 0.2], 0, 0).is_empty());
    }
}
