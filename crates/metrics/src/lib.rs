#![warn(missing_docs)]
//! # fastburn-metrics
//!
//! Kaggle-correct classification metrics for fastburn, checked against scikit-learn:
//! F-beta (Planet's F2), precision, recall, accuracies, threshold search and ROC-AUC. The
//! crate has no Burn dependency; it scores plain slices.
//!
//! ## Data layout
//! Every metric takes `probs: &[f32]` and `targets: &[f32]`, both row-major
//! `[n, n_classes]`: probabilities already passed through sigmoid (multi-label) or softmax
//! (single-label), and 0/1 targets (multi-hot, or one-hot for single-label metrics).
//! Inputs are validated — lengths, probabilities in `[0, 1]` (NaN and logits are
//! rejected), binary targets — and problems come back as [`Error`]; nothing panics on user
//! data. Numerics are `f64` inside.
//!
//! ## Conventions
//! - **Prediction rule:** a label is predicted when `prob > threshold` — strictly, like
//!   fastai 0.7's `preds > thresh`. A probability equal to the threshold is *not* a
//!   prediction.
//! - **Zero division:** a precision, recall or F-beta whose denominator is 0 takes the
//!   [`ZeroDivision`] value, by default 1 (scikit-learn's `zero_division=1.0`). For
//!   [`Average::Samples`] this is Kaggle's rule: an image with no true tag and no predicted
//!   tag scores 1.0; an image with tags but no correct prediction scores 0.
//! - **Thresholds:** 0.2 for Planet-style F2 (the lesson's value, [`f2`],
//!   [`FBetaMetric::f2`]), 0.5 elsewhere (fastai's `accuracy_multi`).
//!
//! ## Crate map
//! - Threshold metrics: [`fbeta`], [`f2`], [`precision`], [`recall`], and the general
//!   [`precision_recall_fbeta`] (per-class thresholds, any [`Scoring`]) with
//!   [`Average`] (`Samples`, `Micro`, `Macro`, `Weighted`) and [`ZeroDivision`].
//! - Accuracies: [`accuracy_multi`] (fastai), [`hamming_loss`], single-label [`accuracy`]
//!   and [`top_k_accuracy`].
//! - Threshold search: [`best_threshold`] (fastai 0.7's `opt_th`) and
//!   [`per_class_thresholds`] over a [`ThresholdGrid`] ([`ThresholdGrid::wide`],
//!   [`ThresholdGrid::fastai07`]); read the over-fitting note in [`per_class_thresholds`].
//! - Interpretation: [`confusion_per_label`] → [`LabelConfusion`], [`pr_curve`] →
//!   [`PrPoint`], [`label_column`].
//! - Ranking: [`roc_auc_per_label`], [`roc_auc_macro`].
//! - Streaming (what the learner uses): the [`Metric`] trait and [`FBetaMetric`],
//!   [`Precision`], [`Recall`], [`AccuracyMulti`], [`HammingLoss`], [`Accuracy`], [`TopK`],
//!   and [`PredictionStore`] (keeps the epoch's predictions for an [`EpochScore`]).
//!
//! ## Features
//! None. The only dependencies are `serde` (configs and results serialise) and `thiserror`.
//!
//! ## Example
//! Kaggle's Planet metric for two images (worked out in [`f2`]):
//! ```
//! use fastburn_metrics::{Average, FBetaMetric, Metric, f2, fbeta};
//!
//! let probs = [0.9, 0.1, 0.05, /* image 2 */ 0.1, 0.6, 0.7];
//! let targets = [1.0, 1.0, 0.0, /* image 2 */ 0.0, 0.0, 1.0];
//! let score = f2(&probs, &targets, 3, 0.2)?;
//! assert!((score - 25.0 / 36.0).abs() < 1e-12);
//! assert_eq!(score, fbeta(&probs, &targets, 3, 2.0, 0.2, Average::Samples)?);
//!
//! let mut metric = FBetaMetric::f2();
//! metric.update(&probs, &targets, 3)?;
//! assert_eq!(metric.compute()?, score);
//! # Ok::<(), fastburn_metrics::Error>(())
//! ```

mod accuracy;
mod confusion;
mod error;
mod input;
mod prf;
mod ranking;
mod streaming;
pub mod threshold;

pub use accuracy::{accuracy, accuracy_multi, hamming_loss, top_k_accuracy};
pub use confusion::{LabelConfusion, ZeroDivision, confusion_per_label};
pub use error::{Error, Result};
pub use prf::{Average, Prf, Scoring, f2, fbeta, precision, precision_recall_fbeta, recall};
pub use ranking::{PrPoint, label_column, pr_curve, roc_auc_macro, roc_auc_per_label};
pub use streaming::{
    Accuracy, AccuracyMulti, EpochScore, FBetaMetric, HammingLoss, Metric, Precision,
    PredictionStore, Recall, TopK,
};
pub use threshold::{
    PER_CLASS_MAX_SWEEPS, PerClassResult, SCORE_TIE_TOLERANCE, ThresholdGrid, ThresholdResult,
    best_threshold, per_class_thresholds,
};
