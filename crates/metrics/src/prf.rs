//! Precision, recall and F-beta with scikit-learn's averages.

use serde::{Deserialize, Serialize};

use crate::confusion::{LabelConfusion, ZeroDivision, fbeta_from_counts, ratio};
use crate::error::{Error, Result};
use crate::input::{
    beta_squared, check_batch, check_same_classes, check_thresholds, predicted, threshold_of,
};

/// How per-label or per-sample scores are combined (scikit-learn's `average`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Average {
    /// Score each sample (image) over its labels, then take the mean over samples —
    /// Kaggle's Planet metric and fastai's `FBetaMulti(average='samples')`.
    Samples,
    /// Sum the confusion counts over all labels and samples, then score once.
    Micro,
    /// Score each label, then take the unweighted mean over labels.
    Macro,
    /// Score each label, then take the mean weighted by each label's support (number of
    /// true targets). When no label has any true target, the unweighted mean (as
    /// scikit-learn).
    Weighted,
}

/// Precision, recall and F-beta of one scoring.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Prf {
    /// Averaged precision.
    pub precision: f64,
    /// Averaged recall.
    pub recall: f64,
    /// Averaged F-beta.
    pub fbeta: f64,
}

/// What to compute: `beta`, the [`Average`] and the [`ZeroDivision`] rule.
///
/// # Example
/// ```
/// use fastburn_metrics::{Average, Scoring, ZeroDivision};
///
/// let s = Scoring::new(1.0, Average::Macro).with_zero_division(ZeroDivision::Zero);
/// assert_eq!(s.zero_division, ZeroDivision::Zero);
/// assert_eq!(Scoring::new(2.0, Average::Samples).zero_division, ZeroDivision::One);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scoring {
    /// The F-beta `beta` (recall weighs `beta` times as much as precision); ≥ 0, finite.
    pub beta: f64,
    /// How scores are averaged.
    pub average: Average,
    /// The value of an undefined ratio.
    #[serde(default)]
    pub zero_division: ZeroDivision,
}

impl Scoring {
    /// A scoring with the default zero-division rule ([`ZeroDivision::One`]).
    pub fn new(beta: f64, average: Average) -> Self {
        Scoring {
            beta,
            average,
            zero_division: ZeroDivision::default(),
        }
    }

    /// The same scoring with another zero-division rule.
    pub fn with_zero_division(self, zero_division: ZeroDivision) -> Self {
        Scoring {
            zero_division,
            ..self
        }
    }
}

/// Running sums from which every [`Average`] of precision, recall and F-beta can be
/// computed: per-label counts (micro, macro, weighted) and per-sample score sums (samples).
///
/// A one-shot function is one `add` and one `finish`, so streaming over batches gives
/// bit-identical results.
#[derive(Debug, Clone, Default)]
pub(crate) struct PrfTally {
    n_classes: Option<usize>,
    per_label: Vec<LabelConfusion>,
    /// Sums over samples of precision, recall and F-beta.
    sample_sums: [f64; 3],
    n_samples: u64,
}

impl PrfTally {
    /// Adds a batch; on error the tally is unchanged.
    pub(crate) fn add(
        &mut self,
        probs: &[f32],
        targets: &[f32],
        n_classes: usize,
        thresholds: &[f32],
        scoring: &Scoring,
    ) -> Result<()> {
        let beta2 = beta_squared(scoring.beta)?;
        let n = check_batch(probs, targets, n_classes)?;
        check_thresholds(thresholds, n_classes)?;
        check_same_classes(self.n_classes, n_classes)?;
        if self.n_classes.is_none() {
            self.n_classes = Some(n_classes);
            self.per_label = vec![LabelConfusion::default(); n_classes];
        }
        let zd = scoring.zero_division;
        for (p_row, t_row) in probs
            .chunks_exact(n_classes)
            .zip(targets.chunks_exact(n_classes))
        {
            let mut row = LabelConfusion::default();
            for (j, (&p, &t)) in p_row.iter().zip(t_row).enumerate() {
                let pred = predicted(p, threshold_of(thresholds, j));
                let truth = t == 1.0;
                row.record(pred, truth);
                self.per_label[j].record(pred, truth);
            }
            self.sample_sums[0] += ratio(row.tp, row.predicted(), zd);
            self.sample_sums[1] += ratio(row.tp, row.support(), zd);
            self.sample_sums[2] +=
                fbeta_from_counts(row.tp, row.support(), row.predicted(), beta2, zd);
        }
        self.n_samples += n as u64;
        Ok(())
    }

    /// The averaged scores of everything added.
    ///
    /// The per-sample sums were made with the scoring given to `add`; `scoring` must be the
    /// same (the streaming metrics hold one scoring for both).
    pub(crate) fn finish(&self, scoring: &Scoring) -> Result<Prf> {
        let beta2 = beta_squared(scoring.beta)?;
        if self.n_samples == 0 {
            return Err(Error::EmptyInput { what: "probs" });
        }
        let zd = scoring.zero_division;
        let of = |c: &LabelConfusion| Prf {
            precision: c.precision(zd),
            recall: c.recall(zd),
            fbeta: fbeta_from_counts(c.tp, c.support(), c.predicted(), beta2, zd),
        };
        Ok(match scoring.average {
            Average::Samples => {
                let n = self.n_samples as f64;
                Prf {
                    precision: self.sample_sums[0] / n,
                    recall: self.sample_sums[1] / n,
                    fbeta: self.sample_sums[2] / n,
                }
            }
            Average::Micro => of(&self
                .per_label
                .iter()
                .fold(LabelConfusion::default(), |a, &b| a + b)),
            Average::Macro => weighted_mean(self.per_label.iter().map(|c| (of(c), 1.0))),
            Average::Weighted => {
                if self.per_label.iter().all(|c| c.support() == 0) {
                    weighted_mean(self.per_label.iter().map(|c| (of(c), 1.0)))
                } else {
                    weighted_mean(self.per_label.iter().map(|c| (of(c), c.support() as f64)))
                }
            }
        })
    }
}

/// `Σ w·x / Σ w` of each component.
fn weighted_mean(items: impl Iterator<Item = (Prf, f64)>) -> Prf {
    let (mut p, mut r, mut f, mut w_sum) = (0.0, 0.0, 0.0, 0.0);
    for (x, w) in items {
        p += x.precision * w;
        r += x.recall * w;
        f += x.fbeta * w;
        w_sum += w;
    }
    Prf {
        precision: p / w_sum,
        recall: r / w_sum,
        fbeta: f / w_sum,
    }
}

/// Precision, recall and F-beta in one pass — the general form of [`fbeta`], [`precision`]
/// and [`recall`] (scikit-learn's `precision_recall_fscore_support` with an average).
///
/// `thresholds` holds one global threshold or one per class (e.g. from
/// [`per_class_thresholds`](crate::per_class_thresholds)); a label is predicted when
/// `prob > threshold`.
///
/// # Shapes
/// `probs`, `targets`: row-major `[n, n_classes]`.
///
/// # Errors
/// [`Error::EmptyInput`] when there are no rows, [`Error::InvalidBeta`], and the input
/// errors of [`confusion_per_label`](crate::confusion_per_label).
///
/// # Example
/// ```
/// use fastburn_metrics::{Average, Scoring, precision_recall_fbeta};
///
/// let probs = [0.9, 0.1, 0.05, /* image 2 */ 0.1, 0.6, 0.7];
/// let targets = [1.0, 1.0, 0.0, /* image 2 */ 0.0, 0.0, 1.0];
/// // Micro: tp = 2, fp = 1, fn = 1.
/// let prf = precision_recall_fbeta(&probs, &targets, 3, &[0.2], &Scoring::new(1.0, Average::Micro))?;
/// assert!((prf.precision - 2.0 / 3.0).abs() < 1e-15);
/// assert!((prf.recall - 2.0 / 3.0).abs() < 1e-15);
/// assert!((prf.fbeta - 2.0 / 3.0).abs() < 1e-15);
/// # Ok::<(), fastburn_metrics::Error>(())
/// ```
pub fn precision_recall_fbeta(
    probs: &[f32],
    targets: &[f32],
    n_classes: usize,
    thresholds: &[f32],
    scoring: &Scoring,
) -> Result<Prf> {
    let mut tally = PrfTally::default();
    tally.add(probs, targets, n_classes, thresholds, scoring)?;
    tally.finish(scoring)
}

/// F-beta of thresholded probabilities, with the default zero-division rule
/// ([`ZeroDivision::One`]).
///
/// A label is predicted when `prob > threshold` (strictly, as fastai's `preds > thresh`; a
/// probability equal to the threshold is not a prediction). With [`Average::Samples`] and
/// `beta = 2` this is Kaggle's Planet metric: each image's F2 over its tags, then the mean
/// over images, an image with no true and no predicted tag scoring 1.0 (scikit-learn
/// `fbeta_score(..., average='samples', zero_division=1.0)`). Use
/// [`precision_recall_fbeta`] for another zero-division rule or per-class thresholds.
///
/// Thresholds: 0.2 for Planet-style F2 (the lesson's value, see [`f2`]), 0.5 elsewhere.
///
/// # Shapes
/// `probs`, `targets`: row-major `[n, n_classes]`, probabilities (after sigmoid/softmax)
/// and 0/1 targets.
///
/// # Errors
/// [`Error::EmptyInput`], [`Error::InvalidBeta`], [`Error::InvalidThreshold`], and the
/// input errors ([`Error::ShapeMismatch`], [`Error::RaggedInput`], [`Error::ZeroClasses`],
/// [`Error::InvalidProbability`], [`Error::NotBinaryTarget`]).
///
/// # Example
/// ```
/// use fastburn_metrics::{Average, fbeta};
///
/// let probs = [0.9, 0.1, 0.05, /* image 2 */ 0.1, 0.6, 0.7];
/// let targets = [1.0, 1.0, 0.0, /* image 2 */ 0.0, 0.0, 1.0];
/// // Macro F1 at 0.5: label 0 → 1, label 1 (fn + fp) → 0, label 2 → 1; mean 2/3.
/// let f1 = fbeta(&probs, &targets, 3, 1.0, 0.5, Average::Macro)?;
/// assert!((f1 - 2.0 / 3.0).abs() < 1e-15);
/// # Ok::<(), fastburn_metrics::Error>(())
/// ```
pub fn fbeta(
    probs: &[f32],
    targets: &[f32],
    n_classes: usize,
    beta: f64,
    threshold: f32,
    average: Average,
) -> Result<f64> {
    precision_recall_fbeta(
        probs,
        targets,
        n_classes,
        &[threshold],
        &Scoring::new(beta, average),
    )
    .map(|prf| prf.fbeta)
}

/// Kaggle's Planet metric: [`fbeta`] with `beta = 2` and [`Average::Samples`] (mean over
/// images of each image's F2; an image with nothing true and nothing predicted scores 1).
/// The lesson uses `threshold = 0.2`.
///
/// # Errors
/// As [`fbeta`].
///
/// # Example
/// Two images, three tags, threshold 0.2:
/// - image 1: true {0, 1}, predicted {0} → tp = 1, fp = 0, fn = 1 → F2 = 5·1 / (4·2 + 1) = 5/9;
/// - image 2: true {2}, predicted {1, 2} → tp = 1, fp = 1, fn = 0 → F2 = 5·1 / (4·1 + 2) = 5/6;
///
/// mean (5/9 + 5/6) / 2 = 25/36 ≈ 0.6944.
/// ```
/// use fastburn_metrics::f2;
///
/// let probs = [0.9, 0.1, 0.05, /* image 2 */ 0.1, 0.6, 0.7];
/// let targets = [1.0, 1.0, 0.0, /* image 2 */ 0.0, 0.0, 1.0];
/// let score = f2(&probs, &targets, 3, 0.2)?;
/// assert!((score - 25.0 / 36.0).abs() < 1e-12);
/// # Ok::<(), fastburn_metrics::Error>(())
/// ```
pub fn f2(probs: &[f32], targets: &[f32], n_classes: usize, threshold: f32) -> Result<f64> {
    fbeta(probs, targets, n_classes, 2.0, threshold, Average::Samples)
}

/// Precision of thresholded probabilities (`prob > threshold`), averaged by `average`, an
/// undefined ratio (nothing predicted) counting 1 ([`ZeroDivision::One`]).
///
/// # Errors
/// As [`fbeta`].
///
/// # Example
/// ```
/// use fastburn_metrics::{Average, precision};
///
/// let probs = [0.9, 0.1, 0.05, /* image 2 */ 0.1, 0.6, 0.7];
/// let targets = [1.0, 1.0, 0.0, /* image 2 */ 0.0, 0.0, 1.0];
/// // Samples: image 1 predicts {0} (1/1), image 2 predicts {1, 2} (1/2).
/// assert_eq!(precision(&probs, &targets, 3, 0.2, Average::Samples)?, 0.75);
/// # Ok::<(), fastburn_metrics::Error>(())
/// ```
pub fn precision(
    probs: &[f32],
    targets: &[f32],
    n_classes: usize,
    threshold: f32,
    average: Average,
) -> Result<f64> {
    precision_recall_fbeta(
        probs,
        targets,
        n_classes,
        &[threshold],
        &Scoring::new(1.0, average),
    )
    .map(|prf| prf.precision)
}

/// Recall of thresholded probabilities (`prob > threshold`), averaged by `average`, an
/// undefined ratio (nothing true) counting 1 ([`ZeroDivision::One`]).
///
/// # Errors
/// As [`fbeta`].
///
/// # Example
/// ```
/// use fastburn_metrics::{Average, recall};
///
/// let probs = [0.9, 0.1, 0.05, /* image 2 */ 0.1, 0.6, 0.7];
/// let targets = [1.0, 1.0, 0.0, /* image 2 */ 0.0, 0.0, 1.0];
/// // Samples: image 1 finds 1 of {0, 1}, image 2 finds its only tag.
/// assert_eq!(recall(&probs, &targets, 3, 0.2, Average::Samples)?, 0.75);
/// # Ok::<(), fastburn_metrics::Error>(())
/// ```
pub fn recall(
    probs: &[f32],
    targets: &[f32],
    n_classes: usize,
    threshold: f32,
    average: Average,
) -> Result<f64> {
    precision_recall_fbeta(
        probs,
        targets,
        n_classes,
        &[threshold],
        &Scoring::new(1.0, average),
    )
    .map(|prf| prf.recall)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROBS: [f32; 6] = [0.9, 0.1, 0.05, 0.1, 0.6, 0.7];
    const TARGETS: [f32; 6] = [1.0, 1.0, 0.0, 0.0, 0.0, 1.0];

    #[test]
    fn empty_image_counts_as_one_like_kaggle() {
        // Image 2 has no true tag and no prediction at 0.5.
        let probs = [0.9, 0.1, 0.2, 0.3];
        let targets = [1.0, 0.0, 0.0, 0.0];
        let s = Scoring::new(2.0, Average::Samples);
        let one = precision_recall_fbeta(&probs, &targets, 2, &[0.5], &s).unwrap();
        assert_eq!(one.fbeta, 1.0);
        let zero = precision_recall_fbeta(
            &probs,
            &targets,
            2,
            &[0.5],
            &s.with_zero_division(ZeroDivision::Zero),
        )
        .unwrap();
        assert_eq!(zero.fbeta, 0.5);
    }

    #[test]
    fn weighted_uses_support() {
        // Label 0: support 1, F1 1; label 1: support 1, F1 0; label 2: support 1, F1 1.
        let f = fbeta(&PROBS, &TARGETS, 3, 1.0, 0.5, Average::Weighted).unwrap();
        assert!((f - 2.0 / 3.0).abs() < 1e-15);
        // Two true targets on label 0 weigh it twice.
        let targets = [1.0, 0.0, 0.0, 1.0, 0.0, 1.0];
        let probs = [0.9, 0.0, 0.0, 0.1, 0.0, 0.9];
        let f = fbeta(&probs, &targets, 3, 1.0, 0.5, Average::Weighted).unwrap();
        // Label 0: tp 1, fn 1 → F1 2/3, weight 2; label 2: F1 1, weight 1; label 1 weight 0.
        assert!((f - (2.0 * 2.0 / 3.0 + 1.0) / 3.0).abs() < 1e-15);
    }

    #[test]
    fn beta_zero_is_precision() {
        let p = precision(&PROBS, &TARGETS, 3, 0.2, Average::Macro).unwrap();
        let f0 = fbeta(&PROBS, &TARGETS, 3, 0.0, 0.2, Average::Macro).unwrap();
        assert_eq!(p, f0);
    }

    #[test]
    fn invalid_beta_is_an_error() {
        for beta in [-1.0, f64::NAN, f64::INFINITY, 1e200] {
            let err = fbeta(&PROBS, &TARGETS, 3, beta, 0.2, Average::Samples).unwrap_err();
            assert!(matches!(err, Error::InvalidBeta { .. }), "{beta}: {err}");
        }
    }
}
