//! Parity with scikit-learn on the committed fixture set.
//!
//! `tests/fixtures/sklearn_metrics.json` is written by `scripts/fixtures/metrics_sklearn.py`
//! (run by hand; see its header for the versions). Every value must agree within 1e-6;
//! confusion counts, thresholds and the grid must agree exactly.

use std::collections::HashMap;

use fastburn_metrics::{
    Accuracy, AccuracyMulti, Average, FBetaMetric, HammingLoss, Metric, Precision, PredictionStore,
    Recall, Result, Scoring, ThresholdGrid, TopK, ZeroDivision, accuracy, accuracy_multi,
    best_threshold, confusion_per_label, fbeta, hamming_loss, label_column, pr_curve, precision,
    precision_recall_fbeta, recall, roc_auc_macro, roc_auc_per_label, top_k_accuracy,
};
use serde::Deserialize;

const TOLERANCE: f64 = 1e-6;
const FIXTURE: &str = include_str!("fixtures/sklearn_metrics.json");

#[derive(Deserialize)]
struct Fixture {
    sklearn: String,
    numpy: String,
    grids: HashMap<String, Vec<f64>>,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    n_classes: usize,
    probs: Vec<f64>,
    targets: Vec<f64>,
    thresholded: Vec<Thresholded>,
    single_label_scores: Option<SingleLabel>,
    roc_auc_per_label: Vec<Option<f64>>,
    roc_auc_macro: Option<f64>,
    pr_curves: Vec<Curve>,
    best_threshold: Vec<Best>,
}

#[derive(Deserialize)]
struct Thresholded {
    threshold: f64,
    hamming_loss: f64,
    accuracy_multi: f64,
    /// `[tp, fp, fn, tn]` per label.
    confusion: Vec<[u64; 4]>,
    scores: Vec<Scores>,
}

#[derive(Deserialize)]
struct Scores {
    zero_division: f64,
    precision: HashMap<String, f64>,
    recall: HashMap<String, f64>,
    fbeta: Vec<FBetaRow>,
}

#[derive(Deserialize)]
struct FBetaRow {
    beta: f64,
    #[serde(flatten)]
    by_average: HashMap<String, f64>,
}

#[derive(Deserialize)]
struct SingleLabel {
    accuracy: f64,
    top_k: Vec<TopKValue>,
}

#[derive(Deserialize)]
struct TopKValue {
    k: usize,
    value: f64,
}

#[derive(Deserialize)]
struct Curve {
    label: usize,
    thresholds: Vec<f64>,
    precision: Vec<f64>,
    recall: Vec<f64>,
}

#[derive(Deserialize)]
struct Best {
    beta: f64,
    grid: String,
    threshold: f64,
    score: f64,
}

const AVERAGES: [(Average, &str); 4] = [
    (Average::Samples, "samples"),
    (Average::Micro, "micro"),
    (Average::Macro, "macro"),
    (Average::Weighted, "weighted"),
];

/// Collects every comparison, so one run reports all mismatches and the largest |Δ|.
#[derive(Default)]
struct Checker {
    failures: Vec<String>,
    compared: usize,
    max_delta: f64,
    max_at: String,
}

impl Checker {
    fn close(&mut self, case: &str, what: impl Fn() -> String, got: Result<f64>, want: f64) {
        self.compared += 1;
        match got {
            Ok(got) => {
                let delta = (got - want).abs();
                if delta > self.max_delta {
                    self.max_delta = delta;
                    self.max_at = format!("{case}: {}", what());
                }
                if delta.is_nan() || delta > TOLERANCE {
                    self.failures
                        .push(format!("{case}: {}: got {got}, sklearn {want}", what()));
                }
            }
            Err(e) => self
                .failures
                .push(format!("{case}: {}: error {e}, sklearn {want}", what())),
        }
    }

    fn exact<T: PartialEq + std::fmt::Debug>(
        &mut self,
        case: &str,
        what: impl FnOnce() -> String,
        got: T,
        want: T,
    ) {
        self.compared += 1;
        if got != want {
            self.failures
                .push(format!("{case}: {}: got {got:?}, sklearn {want:?}", what()));
        }
    }
}

fn f32s(values: &[f64]) -> Vec<f32> {
    // The fixture holds float32 values widened to float64. serde_json's default float
    // parser may land one float64 ulp away, but rounding to float32 recovers the value.
    values.iter().map(|&v| v as f32).collect()
}

fn zero_division(value: f64) -> ZeroDivision {
    if value == 0.0 {
        ZeroDivision::Zero
    } else {
        assert_eq!(value, 1.0);
        ZeroDivision::One
    }
}

/// Streams `probs` / `targets` through `metric` in batches of `rows` rows.
fn streamed(
    metric: &mut dyn Metric,
    probs: &[f32],
    targets: &[f32],
    c: usize,
    rows: usize,
) -> Result<f64> {
    metric.reset();
    for (p, t) in probs.chunks(rows * c).zip(targets.chunks(rows * c)) {
        metric.update(p, t, c)?;
    }
    metric.compute()
}

fn check_case(case: &Case, grids: &HashMap<String, ThresholdGrid>, ck: &mut Checker) {
    let name = case.name.as_str();
    let c = case.n_classes;
    let probs = f32s(&case.probs);
    let targets = f32s(&case.targets);

    for th in &case.thresholded {
        let t = th.threshold as f32;
        for scores in &th.scores {
            let zd = zero_division(scores.zero_division);
            for (average, key) in AVERAGES {
                let pr = precision_recall_fbeta(
                    &probs,
                    &targets,
                    c,
                    &[t],
                    &Scoring::new(1.0, average).with_zero_division(zd),
                );
                let label = |m: &str| format!("{m}({key}, zero_division={zd:?})@{t}");
                ck.close(
                    name,
                    || label("precision"),
                    pr.clone().map(|x| x.precision),
                    scores.precision[key],
                );
                ck.close(
                    name,
                    || label("recall"),
                    pr.map(|x| x.recall),
                    scores.recall[key],
                );
                let batches = 7;
                ck.close(
                    name,
                    || label("Precision metric"),
                    streamed(
                        &mut Precision::multilabel(t, average).with_zero_division(zd),
                        &probs,
                        &targets,
                        c,
                        batches,
                    ),
                    scores.precision[key],
                );
                ck.close(
                    name,
                    || label("Recall metric"),
                    streamed(
                        &mut Recall::multilabel(t, average).with_zero_division(zd),
                        &probs,
                        &targets,
                        c,
                        batches,
                    ),
                    scores.recall[key],
                );
                if zd == ZeroDivision::One {
                    // The shortcuts use the default rule.
                    ck.close(
                        name,
                        || label("precision()"),
                        precision(&probs, &targets, c, t, average),
                        scores.precision[key],
                    );
                    ck.close(
                        name,
                        || label("recall()"),
                        recall(&probs, &targets, c, t, average),
                        scores.recall[key],
                    );
                }
                for row in &scores.fbeta {
                    let beta = row.beta;
                    let want = row.by_average[key];
                    let label =
                        |m: &str| format!("{m}(beta={beta}, {key}, zero_division={zd:?})@{t}");
                    let scoring = Scoring::new(beta, average).with_zero_division(zd);
                    ck.close(
                        name,
                        || label("fbeta"),
                        precision_recall_fbeta(&probs, &targets, c, &[t], &scoring)
                            .map(|x| x.fbeta),
                        want,
                    );
                    ck.close(
                        name,
                        || label("FBetaMetric"),
                        streamed(
                            &mut FBetaMetric::multilabel(beta, t, average).with_zero_division(zd),
                            &probs,
                            &targets,
                            c,
                            batches,
                        ),
                        want,
                    );
                    if zd == ZeroDivision::One {
                        ck.close(
                            name,
                            || label("fbeta()"),
                            fbeta(&probs, &targets, c, beta, t, average),
                            want,
                        );
                    }
                }
            }
        }
        ck.close(
            name,
            || format!("hamming_loss@{t}"),
            hamming_loss(&probs, &targets, c, t),
            th.hamming_loss,
        );
        ck.close(
            name,
            || format!("HammingLoss metric@{t}"),
            streamed(&mut HammingLoss::new(t), &probs, &targets, c, 3),
            th.hamming_loss,
        );
        ck.close(
            name,
            || format!("accuracy_multi@{t}"),
            accuracy_multi(&probs, &targets, c, t),
            th.accuracy_multi,
        );
        ck.close(
            name,
            || format!("AccuracyMulti metric@{t}"),
            streamed(&mut AccuracyMulti::new(t), &probs, &targets, c, 3),
            th.accuracy_multi,
        );
        let want: Vec<[u64; 4]> = th.confusion.clone();
        let got: Vec<[u64; 4]> = confusion_per_label(&probs, &targets, c, &[t])
            .expect("valid input")
            .iter()
            .map(|l| [l.tp, l.fp, l.fn_, l.tn])
            .collect();
        ck.exact(name, || format!("confusion_per_label@{t}"), got, want);
    }

    if let Some(single) = &case.single_label_scores {
        ck.close(
            name,
            || "accuracy".into(),
            accuracy(&probs, &targets, c),
            single.accuracy,
        );
        ck.close(
            name,
            || "Accuracy metric".into(),
            streamed(&mut Accuracy::new(), &probs, &targets, c, 5),
            single.accuracy,
        );
        for tk in &single.top_k {
            let k = tk.k;
            ck.close(
                name,
                || format!("top_k_accuracy(k={k})"),
                top_k_accuracy(&probs, &targets, c, k),
                tk.value,
            );
            ck.close(
                name,
                || format!("TopK metric(k={k})"),
                streamed(&mut TopK::new(k), &probs, &targets, c, 5),
                tk.value,
            );
        }
    }

    let auc = roc_auc_per_label(&probs, &targets, c).expect("valid input");
    for (j, (got, want)) in auc.iter().zip(&case.roc_auc_per_label).enumerate() {
        match (got, want) {
            (Some(g), Some(w)) => ck.close(name, || format!("roc_auc label {j}"), Ok(*g), *w),
            _ => ck.exact(
                name,
                || format!("roc_auc label {j} defined"),
                got.is_some(),
                want.is_some(),
            ),
        }
    }
    ck.exact(
        name,
        || "roc_auc labels".into(),
        auc.len(),
        case.roc_auc_per_label.len(),
    );
    match case.roc_auc_macro {
        Some(want) => {
            ck.close(
                name,
                || "roc_auc_macro".into(),
                roc_auc_macro(&probs, &targets, c),
                want,
            );
            ck.close(
                name,
                || "PredictionStore roc_auc".into(),
                streamed(&mut PredictionStore::roc_auc(), &probs, &targets, c, 4),
                want,
            );
        }
        None => ck.exact(
            name,
            || "roc_auc_macro undefined".into(),
            roc_auc_macro(&probs, &targets, c).is_err(),
            true,
        ),
    }

    for curve in &case.pr_curves {
        let j = curve.label;
        let points =
            pr_curve(&label_column(&probs, c, j), &label_column(&targets, c, j)).expect("valid");
        ck.exact(
            name,
            || format!("pr_curve label {j} thresholds"),
            points.iter().map(|p| p.threshold).collect::<Vec<_>>(),
            f32s(&curve.thresholds),
        );
        for (i, p) in points.iter().enumerate().take(curve.precision.len()) {
            ck.close(
                name,
                || format!("pr_curve label {j} precision[{i}]"),
                Ok(p.precision),
                curve.precision[i],
            );
            ck.close(
                name,
                || format!("pr_curve label {j} recall[{i}]"),
                Ok(p.recall),
                curve.recall[i],
            );
        }
    }

    for best in &case.best_threshold {
        let grid = &grids[&best.grid];
        let label = |m: &str| format!("{m}(beta={}, grid={})", best.beta, best.grid);
        match best_threshold(&probs, &targets, c, best.beta, grid) {
            Ok(got) => {
                ck.exact(
                    name,
                    || label("best_threshold threshold"),
                    got.threshold,
                    best.threshold as f32,
                );
                ck.close(
                    name,
                    || label("best_threshold score"),
                    Ok(got.score),
                    best.score,
                );
            }
            Err(e) => ck
                .failures
                .push(format!("{name}: {}: error {e}", label("best_threshold"))),
        }
        ck.close(
            name,
            || label("PredictionStore best_threshold"),
            streamed(
                &mut PredictionStore::best_threshold(best.beta, grid.clone()),
                &probs,
                &targets,
                c,
                6,
            ),
            best.score,
        );
    }
}

#[test]
fn matches_sklearn_within_1e_6() {
    let fixture: Fixture = serde_json::from_str(FIXTURE).expect("fixture parses");
    assert_eq!(fixture.cases.len(), 9, "fixture cases");

    let grids: HashMap<String, ThresholdGrid> = [
        ("wide".to_owned(), ThresholdGrid::wide()),
        ("fastai07".to_owned(), ThresholdGrid::fastai07()),
    ]
    .into();
    for (name, grid) in &grids {
        let theirs = &fixture.grids[name];
        assert_eq!(
            grid.values(),
            f32s(theirs),
            "grid {name} differs from the script's"
        );
    }

    let mut ck = Checker::default();
    for case in &fixture.cases {
        check_case(case, &grids, &mut ck);
    }
    println!(
        "sklearn {} / numpy {}: {} comparisons, max |Δ| = {:e} ({})",
        fixture.sklearn, fixture.numpy, ck.compared, ck.max_delta, ck.max_at
    );
    assert!(
        ck.failures.is_empty(),
        "{} of {} comparisons differ from scikit-learn:\n{}",
        ck.failures.len(),
        ck.compared,
        ck.failures.join("\n")
    );
    assert!(ck.compared > 2000, "only {} comparisons", ck.compared);
}
