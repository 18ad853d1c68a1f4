//! Bad input gives a typed error with its context — never a panic.

use fastburn_metrics::{
    Accuracy, Average, Error, FBetaMetric, LabelConfusion, Metric, PredictionStore, Scoring,
    ThresholdGrid, TopK, accuracy, accuracy_multi, best_threshold, confusion_per_label, f2, fbeta,
    hamming_loss, per_class_thresholds, pr_curve, precision, precision_recall_fbeta, recall,
    roc_auc_macro, roc_auc_per_label, top_k_accuracy,
};

type Scorer = fn(&[f32], &[f32], usize) -> Result<f64, Error>;

/// Every one-shot function that takes `[n, n_classes]` probabilities and targets.
fn scorers() -> Vec<(&'static str, Scorer)> {
    vec![
        ("fbeta", |p, t, c| fbeta(p, t, c, 1.0, 0.5, Average::Macro)),
        ("f2", |p, t, c| f2(p, t, c, 0.2)),
        ("precision", |p, t, c| {
            precision(p, t, c, 0.5, Average::Micro)
        }),
        ("recall", |p, t, c| recall(p, t, c, 0.5, Average::Weighted)),
        ("precision_recall_fbeta", |p, t, c| {
            precision_recall_fbeta(p, t, c, &[0.5], &Scoring::new(2.0, Average::Samples))
                .map(|x| x.fbeta)
        }),
        ("accuracy_multi", |p, t, c| accuracy_multi(p, t, c, 0.5)),
        ("hamming_loss", |p, t, c| hamming_loss(p, t, c, 0.5)),
        ("accuracy", accuracy),
        ("top_k_accuracy", |p, t, c| top_k_accuracy(p, t, c, 1)),
        ("roc_auc_per_label", |p, t, c| {
            roc_auc_per_label(p, t, c).map(|v| v.len() as f64)
        }),
        ("roc_auc_macro", roc_auc_macro),
        ("best_threshold", |p, t, c| {
            best_threshold(p, t, c, 2.0, &ThresholdGrid::fastai07()).map(|r| r.score)
        }),
        ("per_class_thresholds", |p, t, c| {
            per_class_thresholds(p, t, c, 2.0, &ThresholdGrid::fastai07()).map(|r| r.score)
        }),
        ("confusion_per_label", |p, t, c| {
            confusion_per_label(p, t, c, &[0.5]).map(|v| v.len() as f64)
        }),
        ("FBetaMetric", |p, t, c| {
            let mut m = FBetaMetric::f2();
            m.update(p, t, c)?;
            m.compute()
        }),
        ("PredictionStore", |p, t, c| {
            let mut m = PredictionStore::roc_auc();
            m.update(p, t, c)?;
            m.compute()
        }),
    ]
}

const P: [f32; 4] = [0.9, 0.1, 0.2, 0.7];
const T: [f32; 4] = [1.0, 0.0, 0.0, 1.0];

#[test]
fn shape_mismatch_is_reported_with_lengths() {
    for (name, f) in scorers() {
        assert_eq!(
            f(&P, &T[..2], 2),
            Err(Error::ShapeMismatch {
                what: "targets",
                expected: 4,
                got: 2
            }),
            "{name}"
        );
        assert_eq!(
            f(&P[..3], &T[..3], 2),
            Err(Error::RaggedInput {
                what: "probs",
                len: 3,
                n_classes: 2
            }),
            "{name}"
        );
        assert_eq!(f(&P, &T, 0), Err(Error::ZeroClasses), "{name}");
    }
}

#[test]
fn nan_and_out_of_range_probabilities_are_errors() {
    for bad in [f32::NAN, f32::INFINITY, -0.5, 1.5, 3.0] {
        let mut p = P;
        p[3] = bad;
        for (name, f) in scorers() {
            match f(&p, &T, 2) {
                Err(Error::InvalidProbability {
                    row: 1,
                    col: 1,
                    value,
                }) => {
                    assert!(value.to_bits() == bad.to_bits(), "{name}: {value}");
                }
                other => panic!("{name} with prob {bad}: {other:?}"),
            }
        }
    }
}

#[test]
fn non_binary_targets_are_errors() {
    for bad in [0.5, -1.0, 2.0, f32::NAN] {
        let mut t = T;
        t[2] = bad;
        for (name, f) in scorers() {
            match f(&P, &t, 2) {
                Err(Error::NotBinaryTarget {
                    row: 1,
                    col: 0,
                    value,
                }) => {
                    assert!(value.to_bits() == bad.to_bits(), "{name}: {value}");
                }
                other => panic!("{name} with target {bad}: {other:?}"),
            }
        }
    }
}

#[test]
fn empty_input_is_an_error() {
    for (name, f) in scorers() {
        if name == "confusion_per_label" {
            continue; // counts of nothing are well defined, checked below
        }
        assert!(
            matches!(f(&[], &[], 3), Err(Error::EmptyInput { .. })),
            "{name}: {:?}",
            f(&[], &[], 3)
        );
    }
    assert!(matches!(pr_curve(&[], &[]), Err(Error::EmptyInput { .. })));
    let counts = confusion_per_label(&[], &[], 3, &[0.5]).unwrap();
    assert_eq!(counts, vec![LabelConfusion::default(); 3]);
}

#[test]
fn invalid_thresholds_beta_and_k_are_errors() {
    for t in [f32::NAN, -0.1, 1.1] {
        assert!(matches!(
            fbeta(&P, &T, 2, 2.0, t, Average::Samples),
            Err(Error::InvalidThreshold { .. })
        ));
        assert!(matches!(
            accuracy_multi(&P, &T, 2, t),
            Err(Error::InvalidThreshold { .. })
        ));
        assert!(matches!(
            ThresholdGrid::new(vec![0.2, t]),
            Err(Error::InvalidThreshold { .. })
        ));
    }
    assert_eq!(
        fbeta(&P, &T, 2, -2.0, 0.5, Average::Micro),
        Err(Error::InvalidBeta { value: -2.0 })
    );
    assert_eq!(
        best_threshold(&P, &T, 2, -1.0, &ThresholdGrid::wide()),
        Err(Error::InvalidBeta { value: -1.0 })
    );
    assert_eq!(top_k_accuracy(&P, &T, 2, 0), Err(Error::InvalidK { k: 0 }));
    let mut m = TopK::new(0);
    assert_eq!(m.update(&P, &T, 2), Err(Error::InvalidK { k: 0 }));
}

#[test]
fn single_label_metrics_reject_multi_hot_rows() {
    let t = [1.0, 1.0, 0.0, 1.0];
    assert_eq!(
        accuracy(&P, &t, 2),
        Err(Error::NotOneHot { row: 0, ones: 2 })
    );
    let mut m = Accuracy::new();
    assert_eq!(
        m.update(&P, &t, 2),
        Err(Error::NotOneHot { row: 0, ones: 2 })
    );
}

#[test]
fn errors_print_their_context() {
    let e = fbeta(&P, &T[..2], 2, 2.0, 0.2, Average::Samples).unwrap_err();
    assert_eq!(e.to_string(), "targets: expected 4 values, got 2");
    let mut p = P;
    p[1] = f32::NAN;
    let e = f2(&p, &T, 2, 0.2).unwrap_err();
    assert_eq!(
        e.to_string(),
        "probs[0, 1] = NaN is not a probability in [0, 1]"
    );
}
