//! Accuracies: multi-label (element-wise), Hamming loss, single-label and top-k.

use crate::error::{Error, Result};
use crate::input::{
    argmax, check_batch, check_nonempty, check_threshold, one_hot_classes, predicted,
};

/// Counts the cells where `(prob > threshold) == target`; returns `(matches, cells)`.
pub(crate) fn count_multi_matches(
    probs: &[f32],
    targets: &[f32],
    n_classes: usize,
    threshold: f32,
) -> Result<(u64, u64)> {
    check_threshold(threshold)?;
    check_batch(probs, targets, n_classes)?;
    let matches = probs
        .iter()
        .zip(targets)
        .filter(|&(&p, &t)| predicted(p, threshold) == (t == 1.0))
        .count();
    Ok((matches as u64, probs.len() as u64))
}

/// Counts the rows whose true class is among the `k` highest probabilities (ties as
/// scikit-learn, see [`top_k_accuracy`]); returns `(hits, rows)`.
pub(crate) fn count_top_k(
    probs: &[f32],
    targets: &[f32],
    n_classes: usize,
    k: usize,
) -> Result<(u64, u64)> {
    if k == 0 {
        return Err(Error::InvalidK { k });
    }
    check_batch(probs, targets, n_classes)?;
    let classes = one_hot_classes(targets, n_classes)?;
    let hits = probs
        .chunks_exact(n_classes)
        .zip(&classes)
        .filter(|&(row, &j)| {
            let pj = row[j];
            // Rank of class j in a stable ascending sort read backwards: every larger
            // score, and every equal score at a higher index, comes first.
            let ahead = row
                .iter()
                .enumerate()
                .filter(|&(i, &p)| p > pj || (p == pj && i > j))
                .count();
            ahead < k
        })
        .count();
    Ok((hits as u64, classes.len() as u64))
}

/// Counts the rows whose first maximum probability is the true class; returns
/// `(correct, rows)`.
pub(crate) fn count_correct(
    probs: &[f32],
    targets: &[f32],
    n_classes: usize,
) -> Result<(u64, u64)> {
    check_batch(probs, targets, n_classes)?;
    let classes = one_hot_classes(targets, n_classes)?;
    let correct = probs
        .chunks_exact(n_classes)
        .zip(&classes)
        .filter(|&(row, &j)| argmax(row) == j)
        .count();
    Ok((correct as u64, classes.len() as u64))
}

/// fastai's `accuracy_multi`: the fraction of all `n × n_classes` cells where
/// `(prob > threshold) == target`. fastai's default threshold is 0.5. fastai applies the
/// sigmoid itself (`sigmoid=True`); here `probs` are already probabilities.
///
/// # Shapes
/// `probs`, `targets`: row-major `[n, n_classes]`.
///
/// # Errors
/// [`Error::EmptyInput`], [`Error::InvalidThreshold`] and the input errors of
/// [`fbeta`](crate::fbeta).
///
/// # Example
/// ```
/// use fastburn_metrics::accuracy_multi;
///
/// let probs = [0.9, 0.1, 0.05, /* image 2 */ 0.1, 0.6, 0.7];
/// let targets = [1.0, 1.0, 0.0, /* image 2 */ 0.0, 0.0, 1.0];
/// // At 0.5 the wrong cells are (0, 1) and (1, 1): 4 of 6 right.
/// assert_eq!(accuracy_multi(&probs, &targets, 3, 0.5)?, 4.0 / 6.0);
/// # Ok::<(), fastburn_metrics::Error>(())
/// ```
pub fn accuracy_multi(
    probs: &[f32],
    targets: &[f32],
    n_classes: usize,
    threshold: f32,
) -> Result<f64> {
    check_nonempty(probs, targets, n_classes)?;
    let (matches, cells) = count_multi_matches(probs, targets, n_classes, threshold)?;
    Ok(matches as f64 / cells as f64)
}

/// Hamming loss: the fraction of cells where `(prob > threshold) != target`
/// (scikit-learn's `hamming_loss` on the thresholded predictions; `1 - accuracy_multi`).
///
/// # Errors
/// As [`accuracy_multi`].
///
/// # Example
/// ```
/// use fastburn_metrics::hamming_loss;
///
/// let probs = [0.9, 0.1, 0.05, /* image 2 */ 0.1, 0.6, 0.7];
/// let targets = [1.0, 1.0, 0.0, /* image 2 */ 0.0, 0.0, 1.0];
/// assert_eq!(hamming_loss(&probs, &targets, 3, 0.5)?, 2.0 / 6.0);
/// # Ok::<(), fastburn_metrics::Error>(())
/// ```
pub fn hamming_loss(
    probs: &[f32],
    targets: &[f32],
    n_classes: usize,
    threshold: f32,
) -> Result<f64> {
    check_nonempty(probs, targets, n_classes)?;
    let (matches, cells) = count_multi_matches(probs, targets, n_classes, threshold)?;
    Ok((cells - matches) as f64 / cells as f64)
}

/// Single-label accuracy: the fraction of rows whose `argmax(probs)` is the true class.
///
/// Targets are one-hot rows. Ties in `probs` go to the first maximum (NumPy's and
/// PyTorch's `argmax`).
///
/// # Shapes
/// `probs`, `targets`: row-major `[n, n_classes]`.
///
/// # Errors
/// [`Error::NotOneHot`] for a target row without exactly one 1, [`Error::EmptyInput`],
/// and the input errors of [`fbeta`](crate::fbeta).
///
/// # Example
/// ```
/// use fastburn_metrics::accuracy;
///
/// let probs = [0.7, 0.2, 0.1, /* row 2 */ 0.3, 0.3, 0.4, /* row 3 */ 0.5, 0.5, 0.0];
/// let targets = [1.0, 0.0, 0.0, /* row 2 */ 0.0, 1.0, 0.0, /* row 3 */ 1.0, 0.0, 0.0];
/// // Row 1 right, row 2 wrong, row 3 right (the tie goes to the first class).
/// assert_eq!(accuracy(&probs, &targets, 3)?, 2.0 / 3.0);
/// # Ok::<(), fastburn_metrics::Error>(())
/// ```
pub fn accuracy(probs: &[f32], targets: &[f32], n_classes: usize) -> Result<f64> {
    check_nonempty(probs, targets, n_classes)?;
    let (correct, rows) = count_correct(probs, targets, n_classes)?;
    Ok(correct as f64 / rows as f64)
}

/// Top-k accuracy: the fraction of rows whose true class is among the `k` highest
/// probabilities (scikit-learn's `top_k_accuracy_score`).
///
/// Ties are broken as scikit-learn does (a stable ascending sort read backwards): among
/// equal probabilities the class with the *higher* index ranks first. So with ties,
/// `top_k_accuracy(.., 1)` can differ from [`accuracy`], whose `argmax` takes the first
/// maximum. `k ≥ n_classes` gives 1.0.
///
/// # Errors
/// [`Error::InvalidK`] for `k = 0`, and the errors of [`accuracy`].
///
/// # Example
/// ```
/// use fastburn_metrics::top_k_accuracy;
///
/// let probs = [0.5, 0.3, 0.2, /* row 2 */ 0.1, 0.2, 0.7];
/// let targets = [0.0, 1.0, 0.0, /* row 2 */ 1.0, 0.0, 0.0];
/// // Class 1 is 2nd in row 1; class 0 is 3rd in row 2.
/// assert_eq!(top_k_accuracy(&probs, &targets, 3, 2)?, 0.5);
/// assert_eq!(top_k_accuracy(&probs, &targets, 3, 3)?, 1.0);
/// # Ok::<(), fastburn_metrics::Error>(())
/// ```
pub fn top_k_accuracy(probs: &[f32], targets: &[f32], n_classes: usize, k: usize) -> Result<f64> {
    check_nonempty(probs, targets, n_classes)?;
    let (hits, rows) = count_top_k(probs, targets, n_classes, k)?;
    Ok(hits as f64 / rows as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probability_at_the_threshold_is_not_a_prediction() {
        // prob == threshold is "not predicted": right for target 0, wrong for target 1.
        assert_eq!(
            accuracy_multi(&[0.2, 0.2], &[0.0, 1.0], 2, 0.2).unwrap(),
            0.5
        );
    }

    #[test]
    fn top_k_ties_rank_the_higher_index_first() {
        // Three-way tie: order 2, 1, 0.
        let probs = [0.3, 0.3, 0.3];
        assert_eq!(top_k_accuracy(&probs, &[0.0, 0.0, 1.0], 3, 1).unwrap(), 1.0);
        assert_eq!(top_k_accuracy(&probs, &[1.0, 0.0, 0.0], 3, 2).unwrap(), 0.0);
        assert_eq!(accuracy(&probs, &[1.0, 0.0, 0.0], 3).unwrap(), 1.0);
    }

    #[test]
    fn single_label_needs_one_hot_rows() {
        let err = accuracy(&[0.5, 0.5, 0.5, 0.5], &[1.0, 0.0, 1.0, 1.0], 2).unwrap_err();
        assert_eq!(err, Error::NotOneHot { row: 1, ones: 2 });
        let err = top_k_accuracy(&[0.5, 0.5], &[0.0, 0.0], 2, 1).unwrap_err();
        assert_eq!(err, Error::NotOneHot { row: 0, ones: 0 });
        let err = top_k_accuracy(&[0.5, 0.5], &[0.0, 1.0], 2, 0).unwrap_err();
        assert_eq!(err, Error::InvalidK { k: 0 });
    }
}
