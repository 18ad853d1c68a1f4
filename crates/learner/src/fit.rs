//! The training policies, each a few lines over [`Learner::fit_schedule`] (the loop plus a
//! [`ParamScheduler`]): constant, one-cycle, SGDR, flat-cos, `fine_tune`.

use serde::{Deserialize, Serialize};

use crate::callbacks::ParamScheduler;
use crate::error::{Error, Result};
use crate::learner::Learner;
use crate::schedule::{Combined, FitSchedule, Lrs};

impl Learner {
    /// fastai v2's `fit`: `epochs` epochs at constant learning rate(s).
    ///
    /// # Errors
    /// As [`Learner::fit_schedule`].
    pub fn fit(&mut self, epochs: usize, lr: impl Into<Lrs>) -> Result<()> {
        let lrs = lr.into().resolve(self.layer_groups().len())?;
        let shape = Combined::single(crate::Sched::Const(1.0));
        self.fit_schedule(epochs, FitSchedule::per_group(&shape, &lrs, None))
    }

    /// fastai's `fit_one_cycle(epochs, lr_max)` with its defaults: `div = 25`,
    /// `div_final = 1e5`, `pct_start = 0.25`, `moms = (0.95, 0.85, 0.95)`.
    ///
    /// # Errors
    /// As [`Learner::fit_schedule`].
    pub fn fit_one_cycle(&mut self, epochs: usize, lr_max: impl Into<Lrs>) -> Result<()> {
        self.fit_one_cycle_with(epochs, lr_max, &OneCycle::default())
    }

    /// [`Learner::fit_one_cycle`] with explicit parameters.
    ///
    /// # Errors
    /// As [`Learner::fit_schedule`].
    pub fn fit_one_cycle_with(
        &mut self,
        epochs: usize,
        lr_max: impl Into<Lrs>,
        p: &OneCycle,
    ) -> Result<()> {
        let maxes = lr_max.into().resolve(self.layer_groups().len())?;
        let shape = Combined::one_cycle_lr(1.0, p.div, p.div_final, p.pct_start);
        let mom = Combined::one_cycle_mom(p.moms, p.pct_start);
        self.fit_schedule(epochs, FitSchedule::per_group(&shape, &maxes, Some(mom)))
    }

    /// SGDR (fastai 0.7's `fit(lr, n_cycles, cycle_len, cycle_mult)`): `n_cycles` cosine
    /// annealings from `lr` to 0, cycle `i` lasting `cycle_len · cycle_mult^i` epochs,
    /// without a warm-up (see [`Learner::fit_sgdr_with`]).
    ///
    /// # Errors
    /// As [`Learner::fit_sgdr_with`].
    pub fn fit_sgdr(
        &mut self,
        n_cycles: usize,
        cycle_len: usize,
        cycle_mult: usize,
        lr: impl Into<Lrs>,
    ) -> Result<()> {
        self.fit_sgdr_with(
            &Sgdr {
                n_cycles,
                cycle_len,
                cycle_mult,
                warmup: false,
            },
            lr,
        )
    }

    /// SGDR with every fastai 0.7 option, including its lr/100 warm-up over the first
    /// 1/20 of the first cycle.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) for a cycle count whose epochs
    /// overflow (see [`Combined::sgdr`]); otherwise as [`Learner::fit_schedule`].
    pub fn fit_sgdr_with(&mut self, p: &Sgdr, lr: impl Into<Lrs>) -> Result<()> {
        let maxes = lr.into().resolve(self.layer_groups().len())?;
        let (shape, epochs) = Combined::sgdr(1.0, p.n_cycles, p.cycle_len, p.cycle_mult, p.warmup)?;
        self.fit_schedule(epochs, FitSchedule::per_group(&shape, &maxes, None))
    }

    /// fastai's `fit_flat_cos`: flat at `lr` for `pct_start` (0.75) of training, then
    /// cosine to `lr / div_final` (1e5).
    ///
    /// # Errors
    /// As [`Learner::fit_schedule`].
    pub fn fit_flat_cos(&mut self, epochs: usize, lr: impl Into<Lrs>) -> Result<()> {
        let maxes = lr.into().resolve(self.layer_groups().len())?;
        let shape = Combined::flat_cos(1.0, 1e5, 0.75);
        self.fit_schedule(epochs, FitSchedule::per_group(&shape, &maxes, None))
    }

    /// fastai's `fine_tune(epochs, base_lr)`: `freeze_epochs` one-cycle epochs with the
    /// body frozen (`pct_start = 0.99`), then unfreeze and `epochs` one-cycle epochs with
    /// `slice(base_lr / 2 / lr_mult, base_lr / 2)`.
    ///
    /// # Errors
    /// As [`Learner::fit_schedule`].
    pub fn fine_tune(&mut self, epochs: usize, base_lr: f64, p: &FineTune) -> Result<()> {
        for phase in p.phases(epochs, base_lr) {
            phase.run(self)?;
        }
        Ok(())
    }

    /// Runs `epochs` epochs under `sched`, applied each batch by a [`ParamScheduler`]
    /// callback. All the policies above are this plus a schedule.
    ///
    /// # Errors
    /// A data error, a non-finite loss ([`Error::NonFiniteLoss`]), a metric or callback
    /// error. The model keeps the weights of the last completed step.
    pub fn fit_schedule(&mut self, epochs: usize, sched: FitSchedule) -> Result<()> {
        if sched.lr.len() != self.layer_groups().len() {
            return Err(Error::GroupCount {
                what: "schedules",
                expected: self.layer_groups().len(),
                got: sched.lr.len(),
            });
        }
        self.add_callback(ParamScheduler::new(sched));
        let r = self.fit_loop(epochs);
        self.remove_cb::<ParamScheduler>();
        r
    }
}

/// fastai 0.7's SGDR settings (`fit(lr, n_cycles, cycle_len, cycle_mult)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sgdr {
    /// Number of cosine cycles.
    pub n_cycles: usize,
    /// Epochs of the first cycle.
    pub cycle_len: usize,
    /// Each cycle is this many times longer than the one before.
    pub cycle_mult: usize,
    /// fastai 0.7's warm-up: lr/100 over the first 1/20 of the first cycle.
    pub warmup: bool,
}

/// fastai's `fit_one_cycle` parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OneCycle {
    /// Start at `lr_max / div`.
    pub div: f64,
    /// End at `lr_max / div_final`.
    pub div_final: f64,
    /// Fraction of training spent warming up.
    pub pct_start: f64,
    /// Momentum at start, at the peak learning rate, and at the end.
    pub moms: (f64, f64, f64),
}

impl Default for OneCycle {
    fn default() -> Self {
        OneCycle {
            div: 25.0,
            div_final: 1e5,
            pct_start: 0.25,
            moms: (0.95, 0.85, 0.95),
        }
    }
}

/// fastai's `fine_tune` parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FineTune {
    /// Frozen epochs first.
    pub freeze_epochs: usize,
    /// Ratio between the head's and the first group's learning rate once unfrozen.
    pub lr_mult: f64,
    /// One-cycle warm-up fraction of the unfrozen phase.
    pub pct_start: f64,
    /// One-cycle `div` of the unfrozen phase.
    pub div: f64,
}

impl FineTune {
    /// The two fits `fine_tune(epochs, base_lr)` runs, in order: `freeze_epochs` frozen
    /// one-cycle epochs at `slice(base_lr)` with `pct_start = 0.99`, then `epochs` unfrozen
    /// ones at `slice(base_lr / 2 / lr_mult, base_lr / 2)`. A caller that must resume
    /// between (or inside) them runs the phases itself.
    ///
    /// ```
    /// use fastburn_learner::{FineTune, Lrs};
    /// let [frozen, unfrozen] = FineTune::default().phases(5, 2e-3);
    /// assert!(frozen.frozen && !unfrozen.frozen);
    /// assert_eq!((frozen.epochs, unfrozen.epochs), (1, 5));
    /// assert_eq!(frozen.params.pct_start, 0.99);
    /// assert_eq!(unfrozen.lrs, Lrs::slice(1e-3 / 100.0, 1e-3));
    /// ```
    pub fn phases(&self, epochs: usize, base_lr: f64) -> [CycleFit; 2] {
        let base = base_lr / 2.0;
        [
            CycleFit {
                frozen: true,
                epochs: self.freeze_epochs,
                lrs: Lrs::Slice {
                    lo: None,
                    hi: base_lr,
                },
                params: OneCycle {
                    pct_start: 0.99,
                    ..OneCycle::default()
                },
            },
            CycleFit {
                frozen: false,
                epochs,
                lrs: Lrs::slice(base / self.lr_mult, base),
                params: OneCycle {
                    pct_start: self.pct_start,
                    div: self.div,
                    ..OneCycle::default()
                },
            },
        ]
    }
}

/// One one-cycle fit of a multi-fit policy ([`FineTune::phases`]): whether the body is
/// frozen for it, its epochs, learning rates and one-cycle parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct CycleFit {
    /// `freeze()` before the fit (`false`: `unfreeze()`).
    pub frozen: bool,
    /// Epochs.
    pub epochs: usize,
    /// Learning rates.
    pub lrs: Lrs,
    /// One-cycle parameters.
    pub params: OneCycle,
}

impl CycleFit {
    /// Freezes or unfreezes (clearing the optimiser state, as fastai does) and fits.
    ///
    /// # Errors
    /// As [`Learner::fit_one_cycle_with`].
    pub fn run(&self, learn: &mut Learner) -> Result<()> {
        if self.frozen {
            learn.freeze();
        } else {
            learn.unfreeze();
        }
        self.fit(learn)
    }

    /// The fit alone, leaving the freezing as it is (a resumed fit).
    ///
    /// # Errors
    /// As [`Learner::fit_one_cycle_with`].
    pub fn fit(&self, learn: &mut Learner) -> Result<()> {
        learn.fit_one_cycle_with(self.epochs, self.lrs.clone(), &self.params)
    }
}

impl Default for FineTune {
    fn default() -> Self {
        FineTune {
            freeze_epochs: 1,
            lr_mult: 100.0,
            pct_start: 0.3,
            div: 5.0,
        }
    }
}
