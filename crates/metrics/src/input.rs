//! Validation of the row-major `[n, n_classes]` inputs shared by every metric.

use crate::error::{Error, Result};

/// The prediction rule of the whole crate: a tag is predicted when its probability is
/// strictly greater than the threshold (fastai 0.7's `preds > thresh`).
#[inline]
pub(crate) fn predicted(prob: f32, threshold: f32) -> bool {
    prob > threshold
}

/// Checks `probs` / `targets` and returns the number of rows (possibly 0).
///
/// Order of checks: `n_classes`, lengths, then every probability, then every target, so
/// the reported cell is the first bad one in row-major order.
pub(crate) fn check_batch(probs: &[f32], targets: &[f32], n_classes: usize) -> Result<usize> {
    if n_classes == 0 {
        return Err(Error::ZeroClasses);
    }
    if !probs.len().is_multiple_of(n_classes) {
        return Err(Error::RaggedInput {
            what: "probs",
            len: probs.len(),
            n_classes,
        });
    }
    if targets.len() != probs.len() {
        return Err(Error::ShapeMismatch {
            what: "targets",
            expected: probs.len(),
            got: targets.len(),
        });
    }
    if let Some(i) = probs.iter().position(|p| !(0.0..=1.0).contains(p)) {
        return Err(Error::InvalidProbability {
            row: i / n_classes,
            col: i % n_classes,
            value: probs[i],
        });
    }
    if let Some(i) = targets.iter().position(|&t| t != 0.0 && t != 1.0) {
        return Err(Error::NotBinaryTarget {
            row: i / n_classes,
            col: i % n_classes,
            value: targets[i],
        });
    }
    Ok(probs.len() / n_classes)
}

/// [`check_batch`] that also rejects an input with no rows.
pub(crate) fn check_nonempty(probs: &[f32], targets: &[f32], n_classes: usize) -> Result<usize> {
    let n = check_batch(probs, targets, n_classes)?;
    if n == 0 {
        return Err(Error::EmptyInput { what: "probs" });
    }
    Ok(n)
}

/// Checks one threshold.
pub(crate) fn check_threshold(value: f32) -> Result<()> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(Error::InvalidThreshold { value })
    }
}

/// Checks a threshold slice: one global value, or one per class.
pub(crate) fn check_thresholds(thresholds: &[f32], n_classes: usize) -> Result<()> {
    if thresholds.len() != 1 && thresholds.len() != n_classes {
        return Err(Error::ShapeMismatch {
            what: "thresholds (1 or n_classes)",
            expected: n_classes,
            got: thresholds.len(),
        });
    }
    thresholds.iter().try_for_each(|&t| check_threshold(t))
}

/// The threshold of column `col`: the global one or the per-class one.
#[inline]
pub(crate) fn threshold_of(thresholds: &[f32], col: usize) -> f32 {
    if thresholds.len() == 1 {
        thresholds[0]
    } else {
        thresholds[col]
    }
}

/// Checks `beta` and returns `beta²`.
pub(crate) fn beta_squared(beta: f64) -> Result<f64> {
    let beta2 = beta * beta;
    if beta >= 0.0 && beta2.is_finite() {
        Ok(beta2)
    } else {
        Err(Error::InvalidBeta { value: beta })
    }
}

/// Checks that every target row is one-hot and returns each row's class.
pub(crate) fn one_hot_classes(targets: &[f32], n_classes: usize) -> Result<Vec<usize>> {
    targets
        .chunks_exact(n_classes)
        .enumerate()
        .map(|(row, t)| {
            let ones = t.iter().filter(|&&v| v == 1.0).count();
            if ones == 1 {
                Ok(t.iter().position(|&v| v == 1.0).unwrap_or(0))
            } else {
                Err(Error::NotOneHot { row, ones })
            }
        })
        .collect()
}

/// Index of the first maximum (NumPy's and PyTorch's `argmax`); `row` is non-empty and
/// free of NaN.
pub(crate) fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &p) in row.iter().enumerate().skip(1) {
        if p > row[best] {
            best = i;
        }
    }
    best
}

/// Checks that every batch of a streaming metric has the same number of classes.
pub(crate) fn check_same_classes(seen: Option<usize>, n_classes: usize) -> Result<()> {
    match seen {
        Some(expected) if expected != n_classes => Err(Error::ShapeMismatch {
            what: "n_classes (differs from earlier batches)",
            expected,
            got: n_classes,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_takes_the_first_maximum() {
        assert_eq!(argmax(&[0.1, 0.4, 0.4, 0.1]), 1);
        assert_eq!(argmax(&[0.5]), 0);
    }

    #[test]
    fn thresholds_are_one_or_per_class() {
        assert!(check_thresholds(&[0.2], 3).is_ok());
        assert!(check_thresholds(&[0.2, 0.3, 0.4], 3).is_ok());
        assert_eq!(
            check_thresholds(&[0.2, 0.3], 3),
            Err(Error::ShapeMismatch {
                what: "thresholds (1 or n_classes)",
                expected: 3,
                got: 2
            })
        );
        assert!(matches!(
            check_thresholds(&[f32::NAN], 3),
            Err(Error::InvalidThreshold { value }) if value.is_nan()
        ));
        assert_eq!(
            check_thresholds(&[0.2, 1.5, 0.3], 3),
            Err(Error::InvalidThreshold { value: 1.5 })
        );
    }
}
