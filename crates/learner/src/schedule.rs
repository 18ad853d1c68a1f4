//! Schedules as pure functions of training progress in `[0, 1]` (fastai's `SchedCos`,
//! `SchedLin`, `SchedExp`, `SchedNo`, `combine_scheds`), the one-cycle / SGDR / flat-cos
//! shapes built from them, and learning rates per layer group ([`Lrs`], fastai's `slice`).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One schedule segment: a value as a function of progress `pos ∈ [0, 1]`.
///
/// ```
/// use fastburn_learner::Sched;
/// let cos = Sched::Cos { start: 1.0, end: 0.0 };
/// assert_eq!(cos.at(0.0), 1.0);
/// assert!((cos.at(0.5) - 0.5).abs() < 1e-12);
/// assert!(cos.at(1.0).abs() < 1e-12);
/// let exp = Sched::Exp { start: 1e-7, end: 10.0 };
/// assert!((exp.at(0.5) - (1e-7f64 * 10.0).sqrt()).abs() < 1e-12);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Sched {
    /// Cosine annealing from `start` to `end`.
    Cos {
        /// Value at 0.
        start: f64,
        /// Value at 1.
        end: f64,
    },
    /// Linear from `start` to `end`.
    Lin {
        /// Value at 0.
        start: f64,
        /// Value at 1.
        end: f64,
    },
    /// Exponential (geometric) from `start` to `end`; both must be positive.
    Exp {
        /// Value at 0.
        start: f64,
        /// Value at 1.
        end: f64,
    },
    /// A constant.
    Const(f64),
    /// The part of the cosine annealing from `start` to `end` that begins at fraction
    /// `from` of it: at 0 it is `Cos{start, end}.at(from)`, at 1 it is `end` (SGDR after
    /// fastai 0.7's warm-up, which keeps the cycle's clock running).
    CosFrom {
        /// Value of the whole annealing at 0.
        start: f64,
        /// Value at 1.
        end: f64,
        /// Where in the annealing this part begins, in `[0, 1)`.
        from: f64,
    },
}

impl Sched {
    /// The value at `pos` (clamped to `[0, 1]`).
    pub fn at(&self, pos: f64) -> f64 {
        let p = pos.clamp(0.0, 1.0);
        match *self {
            Sched::Cos { start, end } => {
                start + (1.0 + (std::f64::consts::PI * (1.0 - p)).cos()) * (end - start) / 2.0
            }
            Sched::Lin { start, end } => start + p * (end - start),
            Sched::Exp { start, end } => start * (end / start).powf(p),
            Sched::Const(v) => v,
            Sched::CosFrom { start, end, from } => {
                Sched::Cos { start, end }.at(from + (1.0 - from) * p)
            }
        }
    }

    /// The same shape with both ends multiplied by `k` (how a group with a smaller maximum
    /// learning rate follows the schedule).
    pub fn scaled(&self, k: f64) -> Sched {
        match *self {
            Sched::Cos { start, end } => Sched::Cos {
                start: start * k,
                end: end * k,
            },
            Sched::Lin { start, end } => Sched::Lin {
                start: start * k,
                end: end * k,
            },
            Sched::CosFrom { start, end, from } => Sched::CosFrom {
                start: start * k,
                end: end * k,
                from,
            },
            Sched::Exp { start, end } => Sched::Exp {
                start: start * k,
                end: end * k,
            },
            Sched::Const(v) => Sched::Const(v * k),
        }
    }
}

/// Segments laid end to end over `[0, 1]` (fastai's `combine_scheds`): segment `i` covers a
/// fraction `pcts[i]` of training.
///
/// ```
/// use fastburn_learner::{Combined, Sched};
/// // fastai's one-cycle learning rate: warm up over 25 %, then anneal.
/// let s = Combined::one_cycle_lr(1.0, 25.0, 1e5, 0.25);
/// assert!((s.at(0.0) - 0.04).abs() < 1e-12);
/// assert!((s.at(0.25) - 1.0).abs() < 1e-12);
/// assert!((s.at(1.0) - 1e-5).abs() < 1e-12);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Combined {
    /// Fraction of training covered by each segment (sums to 1).
    pub pcts: Vec<f64>,
    /// The segments.
    pub scheds: Vec<Sched>,
}

impl Combined {
    /// Combines segments.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when the lengths differ, a fraction is negative, or they do not
    /// sum to 1.
    pub fn new(pcts: Vec<f64>, scheds: Vec<Sched>) -> Result<Self> {
        let sum: f64 = pcts.iter().sum();
        if pcts.len() != scheds.len()
            || pcts.is_empty()
            || pcts.iter().any(|p| !(0.0..=1.0).contains(p))
            || (sum - 1.0).abs() > 1e-9
        {
            return Err(Error::InvalidConfig {
                key: "pcts",
                value: format!("{pcts:?}"),
                expected: "one fraction per schedule, each in [0, 1], summing to 1",
            });
        }
        Ok(Combined { pcts, scheds })
    }

    /// A single segment over the whole of training.
    pub fn single(s: Sched) -> Self {
        Combined {
            pcts: vec![1.0],
            scheds: vec![s],
        }
    }

    /// The value at `pos ∈ [0, 1]`.
    pub fn at(&self, pos: f64) -> f64 {
        let p = pos.clamp(0.0, 1.0);
        let mut start = 0.0;
        for (i, (&pct, s)) in self.pcts.iter().zip(&self.scheds).enumerate() {
            let end = start + pct;
            if p < end || i == self.pcts.len() - 1 {
                let local = if pct > 0.0 { (p - start) / pct } else { 1.0 };
                return s.at(local);
            }
            start = end;
        }
        self.scheds.last().map_or(0.0, |s| s.at(1.0))
    }

    /// The same schedule with every value multiplied by `k`.
    pub fn scaled(&self, k: f64) -> Combined {
        Combined {
            pcts: self.pcts.clone(),
            scheds: self.scheds.iter().map(|s| s.scaled(k)).collect(),
        }
    }

    /// fastai's `fit_one_cycle` learning rate: cosine from `max/div` up to `max` over
    /// `pct_start`, then cosine down to `max/div_final`.
    pub fn one_cycle_lr(max: f64, div: f64, div_final: f64, pct_start: f64) -> Combined {
        Combined {
            pcts: vec![pct_start, 1.0 - pct_start],
            scheds: vec![
                Sched::Cos {
                    start: max / div,
                    end: max,
                },
                Sched::Cos {
                    start: max,
                    end: max / div_final,
                },
            ],
        }
    }

    /// fastai's one-cycle momentum: `moms.0 → moms.1` over `pct_start`, then back to
    /// `moms.2`.
    pub fn one_cycle_mom(moms: (f64, f64, f64), pct_start: f64) -> Combined {
        Combined {
            pcts: vec![pct_start, 1.0 - pct_start],
            scheds: vec![
                Sched::Cos {
                    start: moms.0,
                    end: moms.1,
                },
                Sched::Cos {
                    start: moms.1,
                    end: moms.2,
                },
            ],
        }
    }

    /// fastai's `fit_flat_cos`: flat at `max` for `pct_start`, then cosine to
    /// `max/div_final`.
    pub fn flat_cos(max: f64, div_final: f64, pct_start: f64) -> Combined {
        Combined {
            pcts: vec![pct_start, 1.0 - pct_start],
            scheds: vec![
                Sched::Const(max),
                Sched::Cos {
                    start: max,
                    end: max / div_final,
                },
            ],
        }
    }

    /// SGDR: `n_cycles` cosine annealings from `max` to 0, cycle `i` lasting `cycle_len ·
    /// cycle_mult^i` epochs. With `warmup` (fastai 0.7's `CosAnneal`), the first 1/20 of the
    /// first cycle runs at `max / 100` and the cosine then goes on from where its clock is.
    /// Returns the schedule and the total number of epochs.
    ///
    /// ```
    /// // The Planet lesson's fit(lr, 3, cycle_len=1, cycle_mult=2): 1 + 2 + 4 = 7 epochs.
    /// let (s, epochs) = fastburn_learner::Combined::sgdr(0.2, 3, 1, 2, false)?;
    /// assert_eq!(epochs, 7);
    /// assert_eq!(s.pcts, vec![1.0 / 7.0, 2.0 / 7.0, 4.0 / 7.0]);
    /// assert!((s.at(0.0) - 0.2).abs() < 1e-12);          // each cycle restarts at lr
    /// assert!((s.at(1.0 / 7.0) - 0.2).abs() < 1e-12);
    /// assert!(s.at(1.0).abs() < 1e-12);                  // and anneals to 0
    /// // fastai 0.7's warm-up: lr/100 for the first 1/20 of the first cycle.
    /// let (w, _) = fastburn_learner::Combined::sgdr(0.2, 3, 1, 2, true)?;
    /// assert!((w.at(0.0) - 0.002).abs() < 1e-12);
    /// assert!((w.at(0.04 / 7.0) - 0.002).abs() < 1e-12);
    /// let clock = fastburn_learner::Sched::Cos { start: 0.2, end: 0.0 }.at(0.06);
    /// assert!((w.at(0.06 / 7.0) - clock).abs() < 1e-9);
    /// // Too many cycles is an error, not an overflow.
    /// assert!(fastburn_learner::Combined::sgdr(0.2, 65, 1, 2, false).is_err());
    /// # Ok::<(), fastburn_learner::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) when the epochs overflow or
    /// exceed 100 000, or when `n_cycles` or `cycle_len` is 0.
    pub fn sgdr(
        max: f64,
        n_cycles: usize,
        cycle_len: usize,
        cycle_mult: usize,
        warmup: bool,
    ) -> crate::Result<(Combined, usize)> {
        const MAX_EPOCHS: usize = 100_000;
        let bad = |value: String| crate::Error::InvalidConfig {
            key: "sgdr",
            value,
            expected: "at least one cycle of at least one epoch, at most 100000 epochs in all",
        };
        let desc = || format!("{n_cycles} cycles, cycle_len {cycle_len}, cycle_mult {cycle_mult}");
        if n_cycles == 0 || cycle_len == 0 {
            return Err(bad(desc()));
        }
        let mut lens = Vec::with_capacity(n_cycles.min(64));
        let mut total = 0usize;
        for i in 0..n_cycles {
            let len = u32::try_from(i)
                .ok()
                .and_then(|i| cycle_mult.checked_pow(i))
                .and_then(|m| m.checked_mul(cycle_len))
                .filter(|&l| l <= MAX_EPOCHS)
                .ok_or_else(|| bad(desc()))?;
            total += len;
            if total > MAX_EPOCHS {
                return Err(bad(desc()));
            }
            lens.push(len);
        }
        let mut pcts: Vec<f64> = lens.iter().map(|&l| l as f64 / total as f64).collect();
        let mut scheds: Vec<Sched> = lens
            .iter()
            .map(|_| Sched::Cos {
                start: max,
                end: 0.0,
            })
            .collect();
        if warmup {
            let first = pcts[0];
            let w = first / 20.0;
            pcts[0] = first - w;
            pcts.insert(0, w);
            scheds[0] = Sched::CosFrom {
                start: max,
                end: 0.0,
                from: 1.0 / 20.0,
            };
            scheds.insert(0, Sched::Const(max / 100.0));
        }
        Ok((Combined { pcts, scheds }, total))
    }
}

/// Learning rates per layer group: one for all, one each, or fastai's `slice`.
///
/// ```
/// use fastburn_learner::Lrs;
/// // The Planet lesson's discriminative rates [lr/9, lr/3, lr]:
/// assert_eq!(Lrs::PerGroup(vec![0.2 / 9.0, 0.2 / 3.0, 0.2]).resolve(3)?, vec![0.2 / 9.0, 0.2 / 3.0, 0.2]);
/// // slice(1e-4, 1e-2): geometric from the first group to the head.
/// let s = Lrs::Slice { lo: Some(1e-4), hi: 1e-2 }.resolve(3)?;
/// assert!((s[1] - 1e-3).abs() < 1e-15);
/// // slice(hi): hi/10 for the earlier groups, hi for the head.
/// assert_eq!(Lrs::Slice { lo: None, hi: 1e-2 }.resolve(3)?, vec![1e-3, 1e-3, 1e-2]);
/// # Ok::<(), fastburn_learner::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Lrs {
    /// The same rate for every group.
    Single(f64),
    /// One rate per group, from the first (stem) to the head.
    PerGroup(Vec<f64>),
    /// fastai's `slice(lo, hi)` (geometric spread) or `slice(hi)` (`lo: None`).
    Slice {
        /// Rate of the first group; `None` for fastai's `slice(hi)`.
        lo: Option<f64>,
        /// Rate of the head.
        hi: f64,
    },
}

impl From<f64> for Lrs {
    fn from(lr: f64) -> Self {
        Lrs::Single(lr)
    }
}

impl From<Vec<f64>> for Lrs {
    fn from(v: Vec<f64>) -> Self {
        Lrs::PerGroup(v)
    }
}

impl Lrs {
    /// fastai's `slice(lo, hi)`.
    pub fn slice(lo: f64, hi: f64) -> Self {
        Lrs::Slice { lo: Some(lo), hi }
    }

    /// The rates of `n_groups` groups.
    ///
    /// # Errors
    /// [`Error::GroupCount`] when a per-group list has another length;
    /// [`Error::InvalidConfig`] for a non-finite or negative rate.
    pub fn resolve(&self, n_groups: usize) -> Result<Vec<f64>> {
        let v = match self {
            Lrs::Single(lr) => vec![*lr; n_groups],
            Lrs::PerGroup(v) => {
                if v.len() != n_groups {
                    return Err(Error::GroupCount {
                        what: "learning rates",
                        expected: n_groups,
                        got: v.len(),
                    });
                }
                v.clone()
            }
            Lrs::Slice { lo: None, hi } => {
                let mut v = vec![hi / 10.0; n_groups];
                if let Some(last) = v.last_mut() {
                    *last = *hi;
                }
                v
            }
            Lrs::Slice { lo: Some(lo), hi } => even_mults(*lo, *hi, n_groups),
        };
        if v.iter().any(|lr| !lr.is_finite() || *lr < 0.0) {
            return Err(Error::InvalidConfig {
                key: "lr",
                value: format!("{v:?}"),
                expected: "finite, non-negative learning rates",
            });
        }
        Ok(v)
    }

    /// The largest rate (the head's, for a slice).
    pub fn max(&self) -> f64 {
        match self {
            Lrs::Single(lr) => *lr,
            Lrs::PerGroup(v) => v.iter().copied().fold(0.0, f64::max),
            Lrs::Slice { hi, .. } => *hi,
        }
    }
}

/// fastai's `even_mults(start, stop, n)`: `n` values spread geometrically.
pub fn even_mults(start: f64, stop: f64, n: usize) -> Vec<f64> {
    if n <= 1 {
        return vec![stop; n];
    }
    let mult = (stop / start).powf(1.0 / (n - 1) as f64);
    (0..n).map(|i| start * mult.powi(i as i32)).collect()
}

/// The hyper-parameter schedules of one fit: a learning-rate shape per group (each group's
/// shape scaled to its own maximum) and an optional momentum (or Adam β1) schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitSchedule {
    /// Learning rate of each group as a function of progress.
    pub lr: Vec<Combined>,
    /// Momentum / β1 as a function of progress (`None`: the optimiser's own value).
    pub mom: Option<Combined>,
}

impl FitSchedule {
    /// The learning rate of every group at `pos`.
    pub fn lrs_at(&self, pos: f64) -> Vec<f64> {
        self.lr.iter().map(|s| s.at(pos)).collect()
    }

    /// A unit-shaped learning-rate schedule (peak 1) scaled to each group's maximum.
    pub fn per_group(shape: &Combined, maxes: &[f64], mom: Option<Combined>) -> Self {
        FitSchedule {
            lr: maxes.iter().map(|&m| shape.scaled(m)).collect(),
            mom,
        }
    }
}
