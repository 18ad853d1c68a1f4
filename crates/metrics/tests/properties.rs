//! Property tests: ranges, identities, streaming = one-shot, threshold search invariants.

use fastburn_metrics::{
    Accuracy, AccuracyMulti, Average, FBetaMetric, HammingLoss, Metric, Precision, PredictionStore,
    Recall, Scoring, ThresholdGrid, TopK, ZeroDivision, accuracy, accuracy_multi, best_threshold,
    fbeta, hamming_loss, per_class_thresholds, precision_recall_fbeta, roc_auc_macro,
    roc_auc_per_label, top_k_accuracy,
};
use proptest::prelude::*;
use proptest::sample::select;

const AVERAGES: [Average; 4] = [
    Average::Samples,
    Average::Micro,
    Average::Macro,
    Average::Weighted,
];

/// A probability: mostly uniform, often exactly a threshold or an end point (ties).
fn prob() -> impl Strategy<Value = f32> {
    prop_oneof![
        3 => 0.0f32..=1.0,
        1 => select(vec![0.0f32, 0.2, 0.5, 1.0]),
    ]
}

/// Multi-label data: `(n_classes, probs, targets)`, row-major.
fn multilabel() -> impl Strategy<Value = (usize, Vec<f32>, Vec<f32>)> {
    (1usize..24, 1usize..7).prop_flat_map(|(n, c)| {
        (
            Just(c),
            prop::collection::vec(prob(), n * c),
            prop::collection::vec(any::<bool>().prop_map(f32::from), n * c),
        )
    })
}

/// Single-label data: `(n_classes, probs, one-hot targets)`.
fn single_label() -> impl Strategy<Value = (usize, Vec<f32>, Vec<f32>)> {
    (1usize..24, 2usize..7).prop_flat_map(|(n, c)| {
        (
            Just(c),
            prop::collection::vec(prob(), n * c),
            prop::collection::vec(0..c, n).prop_map(move |classes| {
                let mut t = vec![0.0f32; classes.len() * c];
                for (r, &j) in classes.iter().enumerate() {
                    t[r * c + j] = 1.0;
                }
                t
            }),
        )
    })
}

fn threshold() -> impl Strategy<Value = f32> {
    select(vec![0.0f32, 0.2, 0.5, 0.7, 1.0])
}

fn zero_division() -> impl Strategy<Value = ZeroDivision> {
    select(vec![ZeroDivision::Zero, ZeroDivision::One])
}

/// Row cut points for splitting `n` rows into batches (possibly empty ones).
fn cuts() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(0usize..30, 0..4)
}

/// Feeds the rows to `metric` in batches split at `cuts` and computes.
fn streamed(
    metric: &mut dyn Metric,
    probs: &[f32],
    targets: &[f32],
    c: usize,
    cuts: &[usize],
) -> f64 {
    let n = probs.len() / c;
    let mut bounds: Vec<usize> = cuts.iter().map(|&k| k.min(n)).collect();
    bounds.push(0);
    bounds.push(n);
    bounds.sort_unstable();
    metric.reset();
    for w in bounds.windows(2) {
        let (a, b) = (w[0] * c, w[1] * c);
        metric
            .update(&probs[a..b], &targets[a..b], c)
            .expect("valid batch");
    }
    metric.compute().expect("rows were added")
}

proptest! {
    #[test]
    fn fbeta_precision_recall_are_in_0_1(
        (c, probs, targets) in multilabel(),
        t in threshold(),
        beta in select(vec![0.0, 0.5, 1.0, 2.0, 3.5]),
        zd in zero_division(),
    ) {
        for average in AVERAGES {
            let s = Scoring::new(beta, average).with_zero_division(zd);
            let prf = precision_recall_fbeta(&probs, &targets, c, &[t], &s).unwrap();
            for v in [prf.precision, prf.recall, prf.fbeta] {
                prop_assert!((0.0..=1.0).contains(&v), "{average:?}: {v}");
            }
        }
    }

    #[test]
    fn micro_f1_is_the_harmonic_mean_of_micro_precision_and_recall(
        (c, probs, targets) in multilabel(),
        t in threshold(),
        zd in zero_division(),
    ) {
        let s = Scoring::new(1.0, Average::Micro).with_zero_division(zd);
        let prf = precision_recall_fbeta(&probs, &targets, c, &[t], &s).unwrap();
        let (p, r) = (prf.precision, prf.recall);
        let harmonic = if p + r > 0.0 { 2.0 * p * r / (p + r) } else { 0.0 };
        prop_assert!((prf.fbeta - harmonic).abs() < 1e-12, "{prf:?}");
    }

    #[test]
    fn perfect_predictions_score_one(
        (c, _probs, targets) in multilabel(),
        beta in select(vec![0.5, 1.0, 2.0]),
    ) {
        let probs: Vec<f32> = targets.iter().map(|&t| if t == 1.0 { 0.9 } else { 0.1 }).collect();
        prop_assert_eq!(fbeta(&probs, &targets, c, beta, 0.5, Average::Samples).unwrap(), 1.0);
        prop_assert_eq!(accuracy_multi(&probs, &targets, c, 0.5).unwrap(), 1.0);
        prop_assert_eq!(hamming_loss(&probs, &targets, c, 0.5).unwrap(), 0.0);
    }

    #[test]
    fn hamming_loss_complements_accuracy_multi(
        (c, probs, targets) in multilabel(),
        t in threshold(),
    ) {
        let acc = accuracy_multi(&probs, &targets, c, t).unwrap();
        let loss = hamming_loss(&probs, &targets, c, t).unwrap();
        prop_assert!((acc + loss - 1.0).abs() < 1e-15);
    }

    #[test]
    fn streaming_prf_equals_one_shot(
        (c, probs, targets) in multilabel(),
        cuts in cuts(),
        t in threshold(),
        zd in zero_division(),
    ) {
        for average in AVERAGES {
            let one_shot = precision_recall_fbeta(
                &probs, &targets, c, &[t], &Scoring::new(2.0, average).with_zero_division(zd),
            ).unwrap();
            let mut f = FBetaMetric::multilabel(2.0, t, average).with_zero_division(zd);
            let mut p = Precision::multilabel(t, average).with_zero_division(zd);
            let mut r = Recall::multilabel(t, average).with_zero_division(zd);
            // Exactly equal: the accumulators hold integer counts and per-row sums added in
            // the same order as the one-shot function.
            prop_assert_eq!(streamed(&mut f, &probs, &targets, c, &cuts), one_shot.fbeta);
            prop_assert_eq!(streamed(&mut p, &probs, &targets, c, &cuts), one_shot.precision);
            prop_assert_eq!(streamed(&mut r, &probs, &targets, c, &cuts), one_shot.recall);
        }
    }

    #[test]
    fn streaming_counts_equal_one_shot(
        (c, probs, targets) in multilabel(),
        cuts in cuts(),
        t in threshold(),
    ) {
        prop_assert_eq!(
            streamed(&mut AccuracyMulti::new(t), &probs, &targets, c, &cuts),
            accuracy_multi(&probs, &targets, c, t).unwrap()
        );
        prop_assert_eq!(
            streamed(&mut HammingLoss::new(t), &probs, &targets, c, &cuts),
            hamming_loss(&probs, &targets, c, t).unwrap()
        );
    }

    #[test]
    fn streaming_single_label_equals_one_shot(
        (c, probs, targets) in single_label(),
        cuts in cuts(),
        k in 1usize..5,
    ) {
        prop_assert_eq!(
            streamed(&mut Accuracy::new(), &probs, &targets, c, &cuts),
            accuracy(&probs, &targets, c).unwrap()
        );
        prop_assert_eq!(
            streamed(&mut TopK::new(k), &probs, &targets, c, &cuts),
            top_k_accuracy(&probs, &targets, c, k).unwrap()
        );
    }

    #[test]
    fn top_k_grows_with_k_and_reaches_one(
        (c, probs, targets) in single_label(),
    ) {
        let mut last = 0.0;
        for k in 1..=c {
            let v = top_k_accuracy(&probs, &targets, c, k).unwrap();
            prop_assert!(v >= last);
            last = v;
        }
        prop_assert_eq!(last, 1.0);
    }

    #[test]
    fn prediction_store_equals_one_shot(
        (c, probs, targets) in multilabel(),
        cuts in cuts(),
    ) {
        let grid = ThresholdGrid::fastai07();
        let search = best_threshold(&probs, &targets, c, 2.0, &grid).unwrap();
        let mut store = PredictionStore::best_threshold(2.0, grid);
        prop_assert_eq!(streamed(&mut store, &probs, &targets, c, &cuts), search.score);
        prop_assert_eq!(store.probs(), &probs[..]);
        prop_assert_eq!(store.targets(), &targets[..]);
        if let Ok(auc) = roc_auc_macro(&probs, &targets, c) {
            let mut store = PredictionStore::roc_auc();
            prop_assert_eq!(streamed(&mut store, &probs, &targets, c, &cuts), auc);
        }
    }

    #[test]
    fn threshold_search_returns_grid_values_and_per_class_is_no_worse(
        (c, probs, targets) in multilabel(),
        beta in select(vec![1.0, 2.0]),
        fine in any::<bool>(),
    ) {
        let grid = if fine { ThresholdGrid::wide() } else { ThresholdGrid::fastai07() };
        let global = best_threshold(&probs, &targets, c, beta, &grid).unwrap();
        prop_assert!(grid.values().contains(&global.threshold));
        // Its score is the samples F-beta at that threshold, and no grid value beats it.
        let at = |t: &[f32]| precision_recall_fbeta(
            &probs, &targets, c, t, &Scoring::new(beta, Average::Samples),
        ).unwrap().fbeta;
        prop_assert_eq!(global.score, at(&[global.threshold]));
        for &t in grid.values() {
            prop_assert!(at(&[t]) <= global.score + 1e-12);
        }

        let per_class = per_class_thresholds(&probs, &targets, c, beta, &grid).unwrap();
        prop_assert_eq!(per_class.thresholds.len(), c);
        prop_assert!(per_class.thresholds.iter().all(|t| grid.values().contains(t)));
        prop_assert!(per_class.score >= global.score);
        prop_assert_eq!(per_class.score, at(&per_class.thresholds));
    }

    #[test]
    fn roc_auc_is_in_0_1_and_mirrors_when_targets_flip(
        (c, probs, targets) in multilabel(),
    ) {
        let auc = roc_auc_per_label(&probs, &targets, c).unwrap();
        let flipped: Vec<f32> = targets.iter().map(|&t| 1.0 - t).collect();
        let auc_flipped = roc_auc_per_label(&probs, &flipped, c).unwrap();
        for (a, b) in auc.iter().zip(&auc_flipped) {
            prop_assert_eq!(a.is_some(), b.is_some());
            if let (Some(a), Some(b)) = (a, b) {
                prop_assert!((0.0..=1.0).contains(a));
                prop_assert!((a + b - 1.0).abs() < 1e-12, "{a} {b}");
            }
        }
    }
}
