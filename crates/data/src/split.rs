//! Train/validation splits: seeded random percentage (fastai's `get_cv_idxs`), explicit
//! validation indices, and k-fold.

use rand_mt::Mt;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Indices of the training and validation items, each ascending.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Split {
    /// Training item indices, ascending.
    pub train: Vec<usize>,
    /// Validation item indices, ascending.
    pub valid: Vec<usize>,
}

/// NumPy's legacy `np.random.seed(seed); np.random.permutation(n)`, bit for bit.
///
/// The generator is MT19937 seeded with `init_genrand(seed)`; the shuffle is NumPy's
/// Fisher–Yates with masked rejection sampling. This is what fastai 0.7's `get_cv_idxs` uses,
/// so a dataset split with the same seed puts the same images in the validation set as the
/// Planet lesson did.
///
/// ```
/// // np.random.seed(42); np.random.permutation(10) -> [8 1 5 0 7 2 9 4 3 6]
/// assert_eq!(fastburn_data::numpy_permutation(10, 42), vec![8, 1, 5, 0, 7, 2, 9, 4, 3, 6]);
/// ```
pub fn numpy_permutation(n: usize, seed: u32) -> Vec<usize> {
    let mut rng = Mt::new(seed);
    let mut v: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = bounded(&mut rng, i as u64) as usize;
        v.swap(i, j);
    }
    v
}

/// NumPy's legacy `random_interval(max)`: a uniform integer in `0..=max`.
fn bounded(rng: &mut Mt, max: u64) -> u64 {
    if max == 0 {
        return 0;
    }
    let mut mask = max;
    mask |= mask >> 1;
    mask |= mask >> 2;
    mask |= mask >> 4;
    mask |= mask >> 8;
    mask |= mask >> 16;
    mask |= mask >> 32;
    if max <= 0xFFFF_FFFF {
        loop {
            let v = u64::from(rng.next_u32()) & mask;
            if v <= max {
                return v;
            }
        }
    }
    loop {
        let v = ((u64::from(rng.next_u32()) << 32) | u64::from(rng.next_u32())) & mask;
        if v <= max {
            return v;
        }
    }
}

impl Split {
    /// fastai's random split: `int(valid_pct * n)` items of a seeded permutation go to
    /// validation (fastai 0.7's `get_cv_idxs(n, val_pct=valid_pct, seed=seed)`; default in
    /// fastburn: `valid_pct = 0.2`, `seed = 42`).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when `valid_pct` is not in `[0, 1)`.
    ///
    /// ```
    /// let s = fastburn_data::Split::random_pct(10, 0.2, 42)?;
    /// assert_eq!(s.valid, vec![1, 8]);
    /// assert_eq!(s.train.len(), 8);
    /// # Ok::<(), fastburn_data::Error>(())
    /// ```
    pub fn random_pct(n: usize, valid_pct: f64, seed: u32) -> Result<Split> {
        if !(0.0..1.0).contains(&valid_pct) {
            return Err(Error::InvalidConfig {
                key: "valid_pct",
                value: valid_pct.to_string(),
                expected: "a fraction in [0, 1)",
            });
        }
        let n_valid = (valid_pct * n as f64) as usize;
        let perm = numpy_permutation(n, seed);
        Ok(Self::from_mask(n, &perm[..n_valid]))
    }

    /// A split with the given validation indices; every other item trains.
    ///
    /// # Errors
    /// [`Error::IndexOutOfRange`] or [`Error::DuplicateIndex`].
    pub fn from_valid_indices(n: usize, valid: &[usize]) -> Result<Split> {
        let mut seen = vec![false; n];
        for &i in valid {
            if i >= n {
                return Err(Error::IndexOutOfRange {
                    what: "validation indices",
                    index: i,
                    len: n,
                });
            }
            if seen[i] {
                return Err(Error::DuplicateIndex {
                    what: "validation indices",
                    index: i,
                });
            }
            seen[i] = true;
        }
        Ok(Self::from_mask(n, valid))
    }

    /// Fold `fold` of `k`: the seeded permutation is cut into `k` contiguous folds (the first
    /// `n % k` folds one item larger, as scikit-learn's `KFold`), and fold `fold` validates.
    /// The `k` validation sets partition the items.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when `k < 2` or `k > n`; [`Error::IndexOutOfRange`] when
    /// `fold >= k`.
    pub fn kfold(n: usize, k: usize, fold: usize, seed: u32) -> Result<Split> {
        if k < 2 || k > n {
            return Err(Error::InvalidConfig {
                key: "k",
                value: k.to_string(),
                expected: "2 <= k <= number of items",
            });
        }
        if fold >= k {
            return Err(Error::IndexOutOfRange {
                what: "folds",
                index: fold,
                len: k,
            });
        }
        let perm = numpy_permutation(n, seed);
        let (base, extra) = (n / k, n % k);
        let start = fold * base + fold.min(extra);
        let len = base + usize::from(fold < extra);
        Ok(Self::from_mask(n, &perm[start..start + len]))
    }

    fn from_mask(n: usize, valid: &[usize]) -> Split {
        let mut is_valid = vec![false; n];
        for &i in valid {
            is_valid[i] = true;
        }
        let (mut train, mut valid) = (Vec::new(), Vec::new());
        for (i, v) in is_valid.into_iter().enumerate() {
            if v { valid.push(i) } else { train.push(i) }
        }
        Split { train, valid }
    }
}

/// How to choose the validation items, as a value (for configs and the CLI).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Splitter {
    /// [`Split::random_pct`].
    RandomPct {
        /// Fraction of items that validate.
        valid_pct: f64,
        /// Permutation seed.
        seed: u32,
    },
    /// [`Split::from_valid_indices`].
    ValidIndices(Vec<usize>),
    /// [`Split::kfold`].
    KFold {
        /// Number of folds.
        k: usize,
        /// The fold that validates.
        fold: usize,
        /// Permutation seed.
        seed: u32,
    },
}

impl Default for Splitter {
    /// fastai's default: 20 % with seed 42.
    fn default() -> Self {
        Splitter::RandomPct {
            valid_pct: 0.2,
            seed: 42,
        }
    }
}

impl Splitter {
    /// fastai's random split with a run's 64-bit seed: NumPy's permutation takes a 32-bit
    /// seed, so a larger one is refused rather than silently truncated.
    ///
    /// ```
    /// use fastburn_data::Splitter;
    /// assert!(Splitter::random_pct(0.2, 42).is_ok());
    /// assert!(Splitter::random_pct(0.2, 1 << 32).is_err());
    /// ```
    ///
    /// # Errors
    /// [`crate::Error::InvalidConfig`] naming `seed` when it does not fit 32 bits.
    pub fn random_pct(valid_pct: f64, seed: u64) -> Result<Splitter> {
        let seed = u32::try_from(seed).map_err(|_| crate::Error::InvalidConfig {
            key: "seed",
            value: seed.to_string(),
            expected: "at most 4294967295 (the split is NumPy's 32-bit-seeded permutation)",
        })?;
        Ok(Splitter::RandomPct { valid_pct, seed })
    }

    /// Splits `n` items.
    ///
    /// # Errors
    /// As the [`Split`] constructor it stands for.
    pub fn split(&self, n: usize) -> Result<Split> {
        match self {
            Splitter::RandomPct { valid_pct, seed } => Split::random_pct(n, *valid_pct, *seed),
            Splitter::ValidIndices(v) => Split::from_valid_indices(n, v),
            Splitter::KFold { k, fold, seed } => Split::kfold(n, *k, *fold, *seed),
        }
    }
}
