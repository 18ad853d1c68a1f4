//! Streaming metrics: update per batch, compute per epoch.
//!
//! Each accumulator keeps exact sufficient statistics — integer confusion counts, and for
//! [`Average::Samples`] the running sum of per-sample scores plus their number — so the
//! epoch value equals the one-shot function on the concatenated batches (bit for bit: the
//! one-shot functions are a single update of the same accumulators).

use serde::{Deserialize, Serialize};

use crate::accuracy::{count_correct, count_multi_matches, count_top_k};
use crate::confusion::ZeroDivision;
use crate::error::{Error, Result};
use crate::input::{check_batch, check_same_classes};
use crate::prf::{Average, Prf, PrfTally, Scoring};
use crate::ranking::roc_auc_macro;
use crate::threshold::{ThresholdGrid, best_threshold, per_class_thresholds};

/// A metric the learner feeds batch by batch and reads once per epoch.
///
/// `update` validates its batch first and leaves the metric unchanged when it returns an
/// error. Every batch must have the same `n_classes`.
///
/// # Example
/// ```
/// use fastburn_metrics::{FBetaMetric, Metric, f2};
///
/// let probs = [0.9, 0.1, 0.05, /* image 2 */ 0.1, 0.6, 0.7];
/// let targets = [1.0, 1.0, 0.0, /* image 2 */ 0.0, 0.0, 1.0];
/// let mut metric = FBetaMetric::f2();
/// metric.update(&probs[..3], &targets[..3], 3)?; // batch 1: image 1
/// metric.update(&probs[3..], &targets[3..], 3)?; // batch 2: image 2
/// assert_eq!(metric.name(), "f2@0.2");
/// assert_eq!(metric.compute()?, f2(&probs, &targets, 3, 0.2)?); // 25/36
/// metric.reset();
/// assert!(metric.compute().is_err()); // nothing to score
/// # Ok::<(), fastburn_metrics::Error>(())
/// ```
pub trait Metric: Send {
    /// Short, lowercase, stable name for logs (e.g. `"f2@0.2"`, `"accuracy_multi"`).
    fn name(&self) -> String;
    /// Forgets every batch (start of an epoch).
    fn reset(&mut self);
    /// Adds a batch; probs/targets are row-major [n, n_classes].
    ///
    /// # Errors
    /// The input errors of the matching one-shot function, and
    /// [`Error::ShapeMismatch`] when `n_classes` differs from an earlier batch.
    fn update(&mut self, probs: &[f32], targets: &[f32], n_classes: usize) -> Result<()>;
    /// The value over every batch since the last reset.
    ///
    /// # Errors
    /// [`Error::EmptyInput`] when no row was added, and configuration errors (e.g.
    /// [`Error::InvalidBeta`]).
    fn compute(&self) -> Result<f64>;
    /// True when larger is better (for early stopping / save-best).
    fn higher_is_better(&self) -> bool {
        true
    }
}

/// `""` for the fastai default threshold 0.5, `"@t"` for another, `"@per_class"` for
/// per-class thresholds.
fn threshold_suffix(thresholds: &[f32]) -> String {
    match thresholds {
        [t] if *t == 0.5 => String::new(),
        [t] => format!("@{t}"),
        _ => "@per_class".to_owned(),
    }
}

fn average_suffix(average: Average) -> &'static str {
    match average {
        Average::Samples => "",
        Average::Micro => "_micro",
        Average::Macro => "_macro",
        Average::Weighted => "_weighted",
    }
}

/// `"f2"` for a whole `beta` (below 100), `"fbeta(0.5)"` otherwise.
fn fbeta_base(beta: f64) -> String {
    if beta.fract() == 0.0 && (0.0..100.0).contains(&beta) {
        format!("f{beta}")
    } else {
        format!("fbeta({beta})")
    }
}

fn no_batch() -> Error {
    Error::EmptyInput {
        what: "metric (no row since the last reset)",
    }
}

/// Precision, recall and F-beta accumulator shared by the three metrics.
#[derive(Debug, Clone)]
struct PrfMetric {
    scoring: Scoring,
    thresholds: Vec<f32>,
    tally: PrfTally,
}

impl PrfMetric {
    fn new(beta: f64, threshold: f32, average: Average) -> Self {
        PrfMetric {
            scoring: Scoring::new(beta, average),
            thresholds: vec![threshold],
            tally: PrfTally::default(),
        }
    }

    fn update(&mut self, probs: &[f32], targets: &[f32], n_classes: usize) -> Result<()> {
        self.tally
            .add(probs, targets, n_classes, &self.thresholds, &self.scoring)
    }

    fn compute(&self) -> Result<Prf> {
        self.tally.finish(&self.scoring).map_err(|e| match e {
            Error::EmptyInput { .. } => no_batch(),
            e => e,
        })
    }

    fn suffix(&self) -> String {
        format!(
            "{}{}",
            average_suffix(self.scoring.average),
            threshold_suffix(&self.thresholds)
        )
    }
}

/// Streaming F-beta ([`fbeta`](crate::fbeta) over an epoch).
///
/// [`Average::Samples`] streams exactly (the sum of per-image scores and their count);
/// the other averages keep per-label confusion counts.
///
/// # Example
/// Planet's F2 with per-class thresholds from a search:
/// ```
/// use fastburn_metrics::{FBetaMetric, Metric, ThresholdGrid, per_class_thresholds};
///
/// let probs = [0.3, 0.9, /**/ 0.1, 0.6, /**/ 0.3, 0.1, /**/ 0.1, 0.6];
/// let targets = [1.0, 1.0, /**/ 0.0, 0.0, /**/ 1.0, 0.0, /**/ 0.0, 0.0];
/// let tuned = per_class_thresholds(&probs, &targets, 2, 2.0, &ThresholdGrid::wide())?;
/// let mut metric = FBetaMetric::f2().with_thresholds(tuned.thresholds);
/// metric.update(&probs, &targets, 2)?;
/// assert_eq!(metric.name(), "f2@per_class");
/// assert_eq!(metric.compute()?, 1.0); // label 0 needs < 0.3, label 1 needs >= 0.6
/// # Ok::<(), fastburn_metrics::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct FBetaMetric {
    inner: PrfMetric,
}

impl FBetaMetric {
    /// F-beta of multi-label predictions at `threshold` (`prob > threshold`).
    pub fn multilabel(beta: f64, threshold: f32, average: Average) -> Self {
        FBetaMetric {
            inner: PrfMetric::new(beta, threshold, average),
        }
    }

    /// Kaggle's Planet metric as in the lesson: beta 2, samples average, threshold 0.2.
    pub fn f2() -> Self {
        FBetaMetric::multilabel(2.0, 0.2, Average::Samples)
    }

    /// The same metric with another zero-division rule (default [`ZeroDivision::One`]).
    pub fn with_zero_division(mut self, zero_division: ZeroDivision) -> Self {
        self.inner.scoring.zero_division = zero_division;
        self
    }

    /// The same metric with one threshold per class (e.g. from
    /// [`per_class_thresholds`](crate::per_class_thresholds)), or one global threshold.
    /// The length is checked against `n_classes` at each update.
    pub fn with_thresholds(mut self, thresholds: Vec<f32>) -> Self {
        self.inner.thresholds = thresholds;
        self
    }

    /// The metric's scoring (beta, average, zero division).
    pub fn scoring(&self) -> Scoring {
        self.inner.scoring
    }
}

impl Metric for FBetaMetric {
    /// `"f2@0.2"`, `"f1_macro"` (threshold 0.5 is left out), `"fbeta(0.5)_micro@0.3"`.
    fn name(&self) -> String {
        format!(
            "{}{}",
            fbeta_base(self.inner.scoring.beta),
            self.inner.suffix()
        )
    }

    fn reset(&mut self) {
        self.inner.tally = PrfTally::default();
    }

    fn update(&mut self, probs: &[f32], targets: &[f32], n_classes: usize) -> Result<()> {
        self.inner.update(probs, targets, n_classes)
    }

    fn compute(&self) -> Result<f64> {
        self.inner.compute().map(|prf| prf.fbeta)
    }
}

/// Streaming precision ([`precision`](crate::precision) over an epoch).
///
/// # Example
/// ```
/// use fastburn_metrics::{Average, Metric, Precision};
///
/// let mut metric = Precision::multilabel(0.5, Average::Micro);
/// metric.update(&[0.9, 0.8], &[1.0, 0.0], 2)?; // tp 1, fp 1
/// metric.update(&[0.7, 0.1], &[1.0, 1.0], 2)?; // tp 1, fn 1
/// assert_eq!(metric.name(), "precision_micro");
/// assert!((metric.compute()? - 2.0 / 3.0).abs() < 1e-15);
/// # Ok::<(), fastburn_metrics::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Precision {
    inner: PrfMetric,
}

impl Precision {
    /// Precision of multi-label predictions at `threshold`, averaged by `average`.
    pub fn multilabel(threshold: f32, average: Average) -> Self {
        Precision {
            inner: PrfMetric::new(1.0, threshold, average),
        }
    }

    /// The same metric with another zero-division rule (default [`ZeroDivision::One`]).
    pub fn with_zero_division(mut self, zero_division: ZeroDivision) -> Self {
        self.inner.scoring.zero_division = zero_division;
        self
    }
}

impl Metric for Precision {
    /// `"precision"`, `"precision_macro@0.2"`.
    fn name(&self) -> String {
        format!("precision{}", self.inner.suffix())
    }

    fn reset(&mut self) {
        self.inner.tally = PrfTally::default();
    }

    fn update(&mut self, probs: &[f32], targets: &[f32], n_classes: usize) -> Result<()> {
        self.inner.update(probs, targets, n_classes)
    }

    fn compute(&self) -> Result<f64> {
        self.inner.compute().map(|prf| prf.precision)
    }
}

/// Streaming recall ([`recall`](crate::recall) over an epoch).
///
/// # Example
/// ```
/// use fastburn_metrics::{Average, Metric, Recall};
///
/// let mut metric = Recall::multilabel(0.5, Average::Micro);
/// metric.update(&[0.9, 0.8], &[1.0, 0.0], 2)?; // tp 1, fp 1
/// metric.update(&[0.7, 0.1], &[1.0, 1.0], 2)?; // tp 1, fn 1
/// assert!((metric.compute()? - 2.0 / 3.0).abs() < 1e-15);
/// # Ok::<(), fastburn_metrics::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Recall {
    inner: PrfMetric,
}

impl Recall {
    /// Recall of multi-label predictions at `threshold`, averaged by `average`.
    pub fn multilabel(threshold: f32, average: Average) -> Self {
        Recall {
            inner: PrfMetric::new(1.0, threshold, average),
        }
    }

    /// The same metric with another zero-division rule (default [`ZeroDivision::One`]).
    pub fn with_zero_division(mut self, zero_division: ZeroDivision) -> Self {
        self.inner.scoring.zero_division = zero_division;
        self
    }
}

impl Metric for Recall {
    /// `"recall"`, `"recall_micro@0.2"`.
    fn name(&self) -> String {
        format!("recall{}", self.inner.suffix())
    }

    fn reset(&mut self) {
        self.inner.tally = PrfTally::default();
    }

    fn update(&mut self, probs: &[f32], targets: &[f32], n_classes: usize) -> Result<()> {
        self.inner.update(probs, targets, n_classes)
    }

    fn compute(&self) -> Result<f64> {
        self.inner.compute().map(|prf| prf.recall)
    }
}

/// A ratio of two integer counts accumulated over batches.
#[derive(Debug, Clone, Copy, Default)]
struct Counter {
    n_classes: Option<usize>,
    hits: u64,
    total: u64,
}

impl Counter {
    fn add(&mut self, n_classes: usize, (hits, total): (u64, u64)) {
        self.n_classes = Some(n_classes);
        self.hits += hits;
        self.total += total;
    }

    fn ratio(&self) -> Result<f64> {
        if self.total == 0 {
            Err(no_batch())
        } else {
            Ok(self.hits as f64 / self.total as f64)
        }
    }
}

/// Streaming [`accuracy_multi`](crate::accuracy_multi) (fastai's multi-label accuracy).
///
/// # Example
/// ```
/// use fastburn_metrics::{AccuracyMulti, Metric};
///
/// let mut metric = AccuracyMulti::default(); // threshold 0.5
/// metric.update(&[0.9, 0.8, 0.2], &[1.0, 0.0, 0.0], 3)?; // 2 of 3 cells right
/// metric.update(&[0.5, 0.6, 0.1], &[1.0, 1.0, 0.0], 3)?; // 0.5 is not > 0.5: 2 of 3
/// assert_eq!(metric.compute()?, 4.0 / 6.0);
/// # Ok::<(), fastburn_metrics::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct AccuracyMulti {
    threshold: f32,
    counter: Counter,
}

impl AccuracyMulti {
    /// Accuracy of `prob > threshold` against the targets, over all cells.
    pub fn new(threshold: f32) -> Self {
        AccuracyMulti {
            threshold,
            counter: Counter::default(),
        }
    }
}

impl Default for AccuracyMulti {
    /// fastai's default threshold, 0.5.
    fn default() -> Self {
        AccuracyMulti::new(0.5)
    }
}

impl Metric for AccuracyMulti {
    /// `"accuracy_multi"` at 0.5, `"accuracy_multi@0.2"` otherwise.
    fn name(&self) -> String {
        format!("accuracy_multi{}", threshold_suffix(&[self.threshold]))
    }

    fn reset(&mut self) {
        self.counter = Counter::default();
    }

    fn update(&mut self, probs: &[f32], targets: &[f32], n_classes: usize) -> Result<()> {
        check_same_classes(self.counter.n_classes, n_classes)?;
        let counts = count_multi_matches(probs, targets, n_classes, self.threshold)?;
        self.counter.add(n_classes, counts);
        Ok(())
    }

    fn compute(&self) -> Result<f64> {
        self.counter.ratio()
    }
}

/// Streaming [`hamming_loss`](crate::hamming_loss); lower is better.
///
/// # Example
/// ```
/// use fastburn_metrics::{HammingLoss, Metric};
///
/// let mut metric = HammingLoss::new(0.2);
/// metric.update(&[0.9, 0.3, 0.1, 0.1], &[1.0, 0.0, 0.0, 1.0], 4)?; // 2 of 4 cells wrong
/// assert_eq!(metric.compute()?, 0.5);
/// assert!(!metric.higher_is_better());
/// # Ok::<(), fastburn_metrics::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct HammingLoss {
    threshold: f32,
    counter: Counter,
}

impl HammingLoss {
    /// Fraction of cells where `prob > threshold` disagrees with the target.
    pub fn new(threshold: f32) -> Self {
        HammingLoss {
            threshold,
            counter: Counter::default(),
        }
    }
}

impl Default for HammingLoss {
    /// Threshold 0.5.
    fn default() -> Self {
        HammingLoss::new(0.5)
    }
}

impl Metric for HammingLoss {
    /// `"hamming_loss"` at 0.5, `"hamming_loss@0.2"` otherwise.
    fn name(&self) -> String {
        format!("hamming_loss{}", threshold_suffix(&[self.threshold]))
    }

    fn reset(&mut self) {
        self.counter = Counter::default();
    }

    fn update(&mut self, probs: &[f32], targets: &[f32], n_classes: usize) -> Result<()> {
        check_same_classes(self.counter.n_classes, n_classes)?;
        let (matches, cells) = count_multi_matches(probs, targets, n_classes, self.threshold)?;
        self.counter.add(n_classes, (cells - matches, cells));
        Ok(())
    }

    fn compute(&self) -> Result<f64> {
        self.counter.ratio()
    }

    fn higher_is_better(&self) -> bool {
        false
    }
}

/// Streaming single-label [`accuracy`](crate::accuracy) (argmax of one-hot targets).
///
/// # Example
/// ```
/// use fastburn_metrics::{Accuracy, Metric};
///
/// let mut metric = Accuracy::new();
/// metric.update(&[0.7, 0.2, 0.1], &[1.0, 0.0, 0.0], 3)?; // right
/// metric.update(&[0.2, 0.3, 0.5, /**/ 0.1, 0.8, 0.1], &[0.0, 1.0, 0.0, /**/ 0.0, 1.0, 0.0], 3)?;
/// assert_eq!(metric.compute()?, 2.0 / 3.0);
/// # Ok::<(), fastburn_metrics::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Accuracy {
    counter: Counter,
}

impl Accuracy {
    /// A new, empty accuracy.
    pub fn new() -> Self {
        Accuracy::default()
    }
}

impl Metric for Accuracy {
    /// `"accuracy"`.
    fn name(&self) -> String {
        "accuracy".to_owned()
    }

    fn reset(&mut self) {
        self.counter = Counter::default();
    }

    fn update(&mut self, probs: &[f32], targets: &[f32], n_classes: usize) -> Result<()> {
        check_same_classes(self.counter.n_classes, n_classes)?;
        let counts = count_correct(probs, targets, n_classes)?;
        self.counter.add(n_classes, counts);
        Ok(())
    }

    fn compute(&self) -> Result<f64> {
        self.counter.ratio()
    }
}

/// Streaming [`top_k_accuracy`](crate::top_k_accuracy).
///
/// # Example
/// ```
/// use fastburn_metrics::{Metric, TopK};
///
/// let mut metric = TopK::new(2);
/// metric.update(&[0.5, 0.3, 0.2], &[0.0, 1.0, 0.0], 3)?; // 2nd: hit
/// metric.update(&[0.1, 0.2, 0.7], &[1.0, 0.0, 0.0], 3)?; // 3rd: miss
/// assert_eq!((metric.name(), metric.compute()?), ("top_2_accuracy".to_owned(), 0.5));
/// # Ok::<(), fastburn_metrics::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct TopK {
    k: usize,
    counter: Counter,
}

impl TopK {
    /// Top-`k` accuracy of single-label predictions; `k = 0` is reported by `update`.
    pub fn new(k: usize) -> Self {
        TopK {
            k,
            counter: Counter::default(),
        }
    }
}

impl Metric for TopK {
    /// `"top_5_accuracy"`.
    fn name(&self) -> String {
        format!("top_{}_accuracy", self.k)
    }

    fn reset(&mut self) {
        self.counter = Counter::default();
    }

    fn update(&mut self, probs: &[f32], targets: &[f32], n_classes: usize) -> Result<()> {
        check_same_classes(self.counter.n_classes, n_classes)?;
        let counts = count_top_k(probs, targets, n_classes, self.k)?;
        self.counter.add(n_classes, counts);
        Ok(())
    }

    fn compute(&self) -> Result<f64> {
        self.counter.ratio()
    }
}

/// What a [`PredictionStore`] computes at the end of an epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EpochScore {
    /// [`roc_auc_macro`](crate::roc_auc_macro); name `"roc_auc"`.
    RocAucMacro,
    /// The samples F-beta of [`best_threshold`](crate::best_threshold) (fastai 0.7's
    /// `f2` with `opt_th`); name e.g. `"f2_opt"`. Optimistic: see the over-fitting note in
    /// [`per_class_thresholds`](crate::per_class_thresholds).
    BestThreshold {
        /// F-beta's beta.
        beta: f64,
        /// The thresholds searched.
        grid: ThresholdGrid,
    },
    /// The samples F-beta of [`per_class_thresholds`](crate::per_class_thresholds); name
    /// e.g. `"f2_opt_per_class"`. More optimistic still.
    PerClassThresholds {
        /// F-beta's beta.
        beta: f64,
        /// The thresholds searched.
        grid: ThresholdGrid,
    },
}

/// Keeps every probability and target of the epoch to compute what needs them all:
/// ROC-AUC, threshold search, PR curves.
///
/// # Example
/// ```
/// use fastburn_metrics::{Metric, PredictionStore, ThresholdGrid, best_threshold};
///
/// let mut store = PredictionStore::best_threshold(2.0, ThresholdGrid::fastai07());
/// store.update(&[0.9, 0.18, 0.05], &[1.0, 1.0, 0.0], 3)?;
/// store.update(&[0.1, 0.3, 0.7], &[0.0, 0.0, 1.0], 3)?;
/// assert_eq!(store.name(), "f2_opt");
/// assert_eq!(store.n_samples(), 2);
/// let search = best_threshold(store.probs(), store.targets(), 3, 2.0, &ThresholdGrid::fastai07())?;
/// assert_eq!(search.threshold, 0.17); // catches 0.18 in image 1
/// assert_eq!(store.compute()?, search.score);
/// # Ok::<(), fastburn_metrics::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct PredictionStore {
    score: EpochScore,
    n_classes: Option<usize>,
    probs: Vec<f32>,
    targets: Vec<f32>,
}

impl PredictionStore {
    /// A store that computes `score` at the end of the epoch.
    pub fn new(score: EpochScore) -> Self {
        PredictionStore {
            score,
            n_classes: None,
            probs: Vec::new(),
            targets: Vec::new(),
        }
    }

    /// A store reporting macro ROC-AUC.
    pub fn roc_auc() -> Self {
        PredictionStore::new(EpochScore::RocAucMacro)
    }

    /// A store reporting the samples F-beta at the best global threshold of `grid`.
    pub fn best_threshold(beta: f64, grid: ThresholdGrid) -> Self {
        PredictionStore::new(EpochScore::BestThreshold { beta, grid })
    }

    /// A store reporting the samples F-beta at the best per-class thresholds of `grid`.
    pub fn per_class_thresholds(beta: f64, grid: ThresholdGrid) -> Self {
        PredictionStore::new(EpochScore::PerClassThresholds { beta, grid })
    }

    /// What the store computes.
    pub fn score(&self) -> &EpochScore {
        &self.score
    }

    /// Every probability since the last reset, row-major `[n_samples, n_classes]`.
    pub fn probs(&self) -> &[f32] {
        &self.probs
    }

    /// Every target since the last reset, row-major `[n_samples, n_classes]`.
    pub fn targets(&self) -> &[f32] {
        &self.targets
    }

    /// The number of classes, once a batch has been added.
    pub fn n_classes(&self) -> Option<usize> {
        self.n_classes
    }

    /// The number of rows stored.
    pub fn n_samples(&self) -> usize {
        self.n_classes.map_or(0, |c| self.probs.len() / c)
    }
}

impl Metric for PredictionStore {
    /// `"roc_auc"`, `"f2_opt"`, `"f2_opt_per_class"`.
    fn name(&self) -> String {
        match &self.score {
            EpochScore::RocAucMacro => "roc_auc".to_owned(),
            EpochScore::BestThreshold { beta, .. } => format!("{}_opt", fbeta_base(*beta)),
            EpochScore::PerClassThresholds { beta, .. } => {
                format!("{}_opt_per_class", fbeta_base(*beta))
            }
        }
    }

    fn reset(&mut self) {
        self.n_classes = None;
        self.probs.clear();
        self.targets.clear();
    }

    fn update(&mut self, probs: &[f32], targets: &[f32], n_classes: usize) -> Result<()> {
        check_batch(probs, targets, n_classes)?;
        check_same_classes(self.n_classes, n_classes)?;
        self.n_classes = Some(n_classes);
        self.probs.extend_from_slice(probs);
        self.targets.extend_from_slice(targets);
        Ok(())
    }

    fn compute(&self) -> Result<f64> {
        let c = match self.n_classes {
            Some(c) if !self.probs.is_empty() => c,
            _ => return Err(no_batch()),
        };
        let (p, t) = (&self.probs[..], &self.targets[..]);
        match &self.score {
            EpochScore::RocAucMacro => roc_auc_macro(p, t, c),
            EpochScore::BestThreshold { beta, grid } => {
                best_threshold(p, t, c, *beta, grid).map(|r| r.score)
            }
            EpochScore::PerClassThresholds { beta, grid } => {
                per_class_thresholds(p, t, c, *beta, grid).map(|r| r.score)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_short_and_stable() {
        assert_eq!(FBetaMetric::f2().name(), "f2@0.2");
        assert_eq!(
            FBetaMetric::multilabel(1.0, 0.5, Average::Macro).name(),
            "f1_macro"
        );
        assert_eq!(
            FBetaMetric::multilabel(0.5, 0.3, Average::Micro).name(),
            "fbeta(0.5)_micro@0.3"
        );
        assert_eq!(
            FBetaMetric::f2().with_thresholds(vec![0.1, 0.2]).name(),
            "f2@per_class"
        );
        assert_eq!(AccuracyMulti::default().name(), "accuracy_multi");
        assert_eq!(AccuracyMulti::new(0.2).name(), "accuracy_multi@0.2");
        assert_eq!(HammingLoss::default().name(), "hamming_loss");
        assert_eq!(Accuracy::new().name(), "accuracy");
        assert_eq!(TopK::new(5).name(), "top_5_accuracy");
        assert_eq!(
            Precision::multilabel(0.2, Average::Weighted).name(),
            "precision_weighted@0.2"
        );
        assert_eq!(Recall::multilabel(0.5, Average::Samples).name(), "recall");
        assert_eq!(PredictionStore::roc_auc().name(), "roc_auc");
        assert_eq!(
            PredictionStore::per_class_thresholds(2.0, ThresholdGrid::wide()).name(),
            "f2_opt_per_class"
        );
    }

    #[test]
    fn only_hamming_loss_is_lower_is_better() {
        assert!(!HammingLoss::default().higher_is_better());
        assert!(FBetaMetric::f2().higher_is_better());
        assert!(PredictionStore::roc_auc().higher_is_better());
    }

    #[test]
    fn a_failed_update_leaves_the_metric_unchanged() {
        let mut m = FBetaMetric::f2();
        m.update(&[0.9, 0.1], &[1.0, 0.0], 2).unwrap();
        let before = m.compute().unwrap();
        assert!(m.update(&[0.9, f32::NAN], &[1.0, 0.0], 2).is_err());
        assert!(m.update(&[0.9, 0.1], &[1.0, 0.5], 2).is_err());
        assert_eq!(
            m.update(&[0.9, 0.1, 0.2], &[1.0, 0.0, 0.0], 3),
            Err(Error::ShapeMismatch {
                what: "n_classes (differs from earlier batches)",
                expected: 2,
                got: 3
            })
        );
        assert_eq!(m.compute().unwrap(), before);

        let mut acc = AccuracyMulti::default();
        acc.update(&[0.9, 0.1], &[1.0, 0.0], 2).unwrap();
        assert!(acc.update(&[0.9, 0.1, 0.2], &[1.0, 0.0, 0.0], 3).is_err());
        assert_eq!(acc.compute().unwrap(), 1.0);

        let mut store = PredictionStore::roc_auc();
        store.update(&[0.9, 0.1], &[1.0, 0.0], 2).unwrap();
        assert!(store.update(&[2.0, 0.1], &[1.0, 0.0], 2).is_err());
        assert_eq!(store.n_samples(), 1);
    }

    #[test]
    fn per_class_thresholds_with_wrong_length_fail_at_update() {
        let mut m = FBetaMetric::f2().with_thresholds(vec![0.2, 0.3]);
        let err = m.update(&[0.1, 0.2, 0.3], &[0.0, 1.0, 0.0], 3).unwrap_err();
        assert!(matches!(
            err,
            Error::ShapeMismatch {
                expected: 3,
                got: 2,
                ..
            }
        ));
    }

    #[test]
    fn empty_metrics_do_not_compute() {
        let metrics: Vec<Box<dyn Metric>> = vec![
            Box::new(FBetaMetric::f2()),
            Box::new(Precision::multilabel(0.5, Average::Micro)),
            Box::new(Recall::multilabel(0.5, Average::Macro)),
            Box::new(AccuracyMulti::default()),
            Box::new(HammingLoss::default()),
            Box::new(Accuracy::new()),
            Box::new(TopK::new(2)),
            Box::new(PredictionStore::roc_auc()),
        ];
        for m in &metrics {
            assert!(
                matches!(m.compute(), Err(Error::EmptyInput { .. })),
                "{}",
                m.name()
            );
        }
    }
}
