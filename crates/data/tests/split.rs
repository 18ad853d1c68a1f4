//! Splits: NumPy-identical permutations (so the validation set equals fastai's), index
//! splits and k-fold.

use fastburn_data::{Error, Split, Splitter, numpy_permutation};

#[test]
fn permutation_equals_numpy_legacy_permutation() {
    let fixture: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/numpy_permutation.json")).unwrap();
    for case in fixture["cases"].as_array().unwrap() {
        let n = case["n"].as_u64().unwrap() as usize;
        let seed = case["seed"].as_u64().unwrap() as u32;
        let perm = numpy_permutation(n, seed);
        let head: Vec<usize> = serde_json::from_value(case["head"].clone()).unwrap();
        assert_eq!(&perm[..head.len()], &head[..], "n={n} seed={seed}");
        let weighted: i64 = perm.iter().enumerate().map(|(i, &p)| (i * p) as i64).sum();
        assert_eq!(
            weighted,
            case["weighted_sum"].as_i64().unwrap(),
            "n={n} seed={seed}"
        );
    }
}

#[test]
fn planet_validation_set_equals_fastai_get_cv_idxs() {
    let fixture: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/numpy_permutation.json")).unwrap();
    let p = &fixture["planet"];
    let n = p["n"].as_u64().unwrap() as usize;
    let split = Split::random_pct(n, 0.2, 42).unwrap();
    assert_eq!(split.valid.len() as u64, p["n_val"].as_u64().unwrap());
    assert_eq!(
        split.valid.iter().sum::<usize>() as u64,
        p["sum_valid"].as_u64().unwrap()
    );
    let first: Vec<usize> = serde_json::from_value(p["first_100"].clone()).unwrap();
    assert!(first.iter().all(|i| split.valid.binary_search(i).is_ok()));
    assert_eq!(split.train.len() + split.valid.len(), n);
}

#[test]
fn random_split_is_a_seeded_partition() {
    let a = Split::random_pct(1000, 0.2, 42).unwrap();
    assert_eq!(a, Split::random_pct(1000, 0.2, 42).unwrap());
    assert_ne!(a, Split::random_pct(1000, 0.2, 43).unwrap());
    assert_eq!(a.valid.len(), 200);
    let mut all: Vec<usize> = a.train.iter().chain(&a.valid).copied().collect();
    all.sort_unstable();
    assert_eq!(all, (0..1000).collect::<Vec<_>>());
    assert!(a.train.windows(2).all(|w| w[0] < w[1]));
    assert!(matches!(
        Split::random_pct(10, 1.0, 0),
        Err(Error::InvalidConfig {
            key: "valid_pct",
            ..
        })
    ));
    assert!(Split::random_pct(10, f64::NAN, 0).is_err());
}

#[test]
fn explicit_indices() {
    let s = Split::from_valid_indices(5, &[3, 1]).unwrap();
    assert_eq!(s.valid, vec![1, 3]);
    assert_eq!(s.train, vec![0, 2, 4]);
    assert!(matches!(
        Split::from_valid_indices(5, &[5]),
        Err(Error::IndexOutOfRange {
            index: 5,
            len: 5,
            ..
        })
    ));
    assert!(matches!(
        Split::from_valid_indices(5, &[1, 1]),
        Err(Error::DuplicateIndex { index: 1, .. })
    ));
}

#[test]
fn kfold_validation_sets_partition_the_items() {
    let (n, k) = (23, 5);
    let mut seen = vec![0; n];
    let mut sizes = Vec::new();
    for fold in 0..k {
        let s = Split::kfold(n, k, fold, 42).unwrap();
        sizes.push(s.valid.len());
        for &i in &s.valid {
            seen[i] += 1;
        }
        assert_eq!(s.train.len() + s.valid.len(), n);
    }
    assert!(seen.iter().all(|&c| c == 1));
    assert_eq!(sizes, vec![5, 5, 5, 4, 4]);
    assert!(Split::kfold(n, 1, 0, 42).is_err());
    assert!(Split::kfold(n, 5, 5, 42).is_err());
    assert_eq!(
        Splitter::KFold {
            k: 5,
            fold: 2,
            seed: 42
        }
        .split(n)
        .unwrap(),
        Split::kfold(n, 5, 2, 42).unwrap()
    );
    assert_eq!(Splitter::default().split(10).unwrap().valid, vec![1, 8]);
}
