//! fastai's learning-rate finder: an exponential sweep of the learning rate over a few
//! batches, recording the smoothed loss, stopping when it diverges, and restoring the
//! learner afterwards. Suggestions follow fastai v2 (`valley`, `minimum`, `steep`,
//! `slide`).

use std::path::Path;

use burn::module::Module;
use burn::optim::OptimizerRecord;
use burn::store::ModuleRecord;
use serde::{Deserialize, Serialize};

use crate::callbacks::Recorder;
use crate::error::{Error, Result};
use crate::learner::{Callback, Flow, Learner};
use crate::plot::{LinePlot, Marker, Series};
use crate::schedule::Sched;

/// A suggestion rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Suggest {
    /// The middle of the longest descending stretch of the loss curve (fastai's default).
    Valley,
    /// The learning rate at the minimum loss, divided by 10.
    Minimum,
    /// The steepest descent.
    Steep,
    /// fastai's `slide`: the left end of the region where the loss gradient is flat, scanning
    /// from the right.
    Slide,
}

impl Suggest {
    /// All rules.
    pub const ALL: [Suggest; 4] = [
        Suggest::Valley,
        Suggest::Minimum,
        Suggest::Steep,
        Suggest::Slide,
    ];

    /// A short lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Suggest::Valley => "valley",
            Suggest::Minimum => "minimum",
            Suggest::Steep => "steep",
            Suggest::Slide => "slide",
        }
    }
}

/// [`Learner::lr_find`]'s settings (fastai's defaults).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LrFindConfig {
    /// First learning rate.
    pub start: f64,
    /// Last learning rate.
    pub end: f64,
    /// Iterations of the sweep.
    pub num_it: usize,
    /// Stop once the smoothed loss exceeds 4× its best.
    pub stop_div: bool,
}

impl Default for LrFindConfig {
    fn default() -> Self {
        LrFindConfig {
            start: 1e-7,
            end: 10.0,
            num_it: 100,
            stop_div: true,
        }
    }
}

/// The result of a sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LrFind {
    /// Learning rate of each iteration.
    pub lrs: Vec<f64>,
    /// Smoothed loss (EMA β = 0.98, debiased) of each iteration.
    pub losses: Vec<f64>,
    /// Raw batch losses.
    pub raw: Vec<f32>,
    /// The configured number of iterations (fastai trims `num_it / 10` points at the start).
    pub num_it: usize,
    /// Suggestions, one per rule that found one.
    pub suggestions: Vec<(Suggest, f64)>,
}

impl LrFind {
    /// The suggestion of a rule.
    pub fn suggestion(&self, s: Suggest) -> Option<f64> {
        self.suggestions
            .iter()
            .find(|(r, _)| *r == s)
            .map(|(_, v)| *v)
    }

    /// fastai's default (`valley`), falling back to `minimum`.
    pub fn suggested(&self) -> Option<f64> {
        self.suggestion(Suggest::Valley)
            .or_else(|| self.suggestion(Suggest::Minimum))
    }

    /// Saves fastai's plot: smoothed loss against the learning rate on a log axis, without
    /// the first and last 5 points, suggestions marked.
    ///
    /// # Errors
    /// [`crate::Error::Plot`] / [`crate::Error::Io`] naming `path`.
    pub fn plot(&self, path: &Path) -> Result<()> {
        let n = self.lrs.len();
        let (a, b) = if n > 10 { (5, n - 5) } else { (0, n) };
        let points: Vec<(f64, f64)> = self.lrs[a..b]
            .iter()
            .copied()
            .zip(self.losses[a..b].iter().copied())
            .collect();
        let markers = self
            .suggestions
            .iter()
            .map(|(s, lr)| Marker {
                label: format!("{}: {lr:.2e}", s.name()),
                x: *lr,
                y: interp_log(&self.lrs, &self.losses, *lr),
            })
            .collect();
        LinePlot {
            title: "learning rate finder".into(),
            x_label: "learning rate (log scale)".into(),
            y_label: "loss (smoothed)".into(),
            log_x: true,
            series: vec![Series {
                label: "loss".into(),
                points,
            }],
            markers,
        }
        .save(path)
    }
}

/// Linear interpolation of `ys` at `x` on a log-x scale.
fn interp_log(xs: &[f64], ys: &[f64], x: f64) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    let lx = x.log10();
    for i in 1..xs.len() {
        let (a, b) = (xs[i - 1].log10(), xs[i].log10());
        if (a..=b).contains(&lx) && b > a {
            let t = (lx - a) / (b - a);
            return ys[i - 1] + t * (ys[i] - ys[i - 1]);
        }
    }
    if lx < xs[0].log10() {
        ys[0]
    } else {
        ys[ys.len() - 1]
    }
}

/// The points fastai's suggestion functions see: the first `num_it / 10` and the last 5
/// dropped.
pub fn trimmed(lrs: &[f64], losses: &[f64], num_it: usize) -> (Vec<f64>, Vec<f64>) {
    let start = num_it / 10;
    let end = lrs.len().saturating_sub(5);
    if start >= end {
        return (lrs.to_vec(), losses.to_vec());
    }
    (lrs[start..end].to_vec(), losses[start..end].to_vec())
}

/// A suggestion rule on an `(lr, loss)` curve (already trimmed); `None` when the curve is
/// too short.
///
/// ```
/// use fastburn_learner::{Suggest, suggest};
/// // A synthetic curve: flat, then descending between 1e-4 and 1e-2, then exploding.
/// let lrs: Vec<f64> = (0..60).map(|i| 1e-7 * 10f64.powf(i as f64 / 7.5)).collect();
/// let losses: Vec<f64> = lrs.iter().map(|&lr: &f64| {
///     let x = lr.log10();
///     if x < -4.0 { 1.0 } else if x < -2.0 { 1.0 - 0.4 * (x + 4.0) } else { 0.2 + 3.0 * (x + 2.0).powi(2) }
/// }).collect();
/// let valley = suggest(&lrs, &losses, Suggest::Valley).unwrap();
/// assert!((1e-4..1e-2).contains(&valley), "{valley}");
/// ```
pub fn suggest(lrs: &[f64], losses: &[f64], rule: Suggest) -> Option<f64> {
    let n = losses.len().min(lrs.len());
    if n < 2 {
        return None;
    }
    match rule {
        Suggest::Minimum => {
            let i = (0..n).min_by(|&a, &b| losses[a].total_cmp(&losses[b]))?;
            Some(lrs[i] / 10.0)
        }
        Suggest::Steep => {
            let mut best = (f64::INFINITY, 0);
            for i in 0..n - 1 {
                let g = (losses[i + 1] - losses[i]) / (lrs[i + 1].ln() - lrs[i].ln());
                if g < best.0 {
                    best = (g, i);
                }
            }
            Some(lrs[best.1])
        }
        Suggest::Valley => {
            // Longest decreasing subsequence ending at each point (fastai's `valley`).
            let mut lds = vec![1usize; n];
            // As in fastai, `max_start` may be -1 when the whole prefix descends.
            let (mut max_start, mut max_end) = (0isize, 0usize);
            for i in 1..n {
                for j in 0..i {
                    if losses[i] < losses[j] && lds[i] < lds[j] + 1 {
                        lds[i] = lds[j] + 1;
                    }
                    if lds[max_end] < lds[i] {
                        max_end = i;
                        max_start = max_end as isize - lds[max_end] as isize;
                    }
                }
            }
            let sections = (max_end as isize - max_start) as f64 / 3.0;
            let idx = max_start + sections as isize + (sections / 2.0) as isize;
            Some(lrs[idx.clamp(0, n as isize - 1) as usize])
        }
        Suggest::Slide => {
            let (lr_diff, thresh) = (15usize.min(n - 1), 0.005);
            // np.gradient: central differences inside, one-sided at the ends.
            let grad: Vec<f64> = (0..n)
                .map(|i| {
                    if i == 0 {
                        losses[1] - losses[0]
                    } else if i == n - 1 {
                        losses[n - 1] - losses[n - 2]
                    } else {
                        (losses[i + 1] - losses[i - 1]) / 2.0
                    }
                })
                .collect();
            let mut r = n as isize - 1;
            let mut l = r - lr_diff as isize;
            let mut local = lrs[l.max(0) as usize];
            while l >= 0 && (grad[r as usize] - grad[l as usize]).abs() > thresh {
                local = lrs[l as usize];
                r -= 1;
                l -= 1;
            }
            Some(local)
        }
    }
}

/// What the finder puts back in `after_fit`.
struct Saved {
    model: ModuleRecord,
    opt: OptimizerRecord,
    mom: f64,
    lrs: Vec<f64>,
    epochs_done: usize,
    smooth: (f64, i32, f64),
    frozen: usize,
    history: (usize, usize),
}

/// fastai's `LRFinder` callback: sets every group's learning rate on an exponential
/// schedule from `start` to `end` over `num_it` batches, records the smoothed loss, stops
/// the fit when it exceeds 4× its best (or turns non-finite) or after `num_it` batches,
/// skips validation, and in `after_fit` puts back the weights, the optimiser state, the
/// momentum, the learning rates, the BatchNorm statistics, the frozen groups and the
/// history as they were. Every other callback runs as in a fit: gradient clipping and
/// accumulation apply to the sweep.
pub struct LrFinder {
    cfg: LrFindConfig,
    sched: Sched,
    lrs: Vec<f64>,
    losses: Vec<f64>,
    raw: Vec<f32>,
    best: f64,
    saved: Option<Saved>,
}

impl LrFinder {
    /// A finder with these settings.
    pub fn new(cfg: LrFindConfig) -> Self {
        LrFinder {
            sched: Sched::Exp {
                start: cfg.start,
                end: cfg.end,
            },
            cfg,
            lrs: Vec::new(),
            losses: Vec::new(),
            raw: Vec::new(),
            best: f64::INFINITY,
            saved: None,
        }
    }

    /// The sweep so far, with fastai's suggestions.
    pub fn result(&self) -> LrFind {
        let (tl, tloss) = trimmed(&self.lrs, &self.losses, self.cfg.num_it);
        let suggestions = Suggest::ALL
            .iter()
            .filter_map(|&s| suggest(&tl, &tloss, s).map(|v| (s, v)))
            .collect();
        LrFind {
            lrs: self.lrs.clone(),
            losses: self.losses.clone(),
            raw: self.raw.clone(),
            num_it: self.cfg.num_it,
            suggestions,
        }
    }

    /// Puts the learner back as it was before the sweep (idempotent).
    pub fn restore(&mut self, l: &mut Learner) {
        let Some(s) = self.saved.take() else {
            return;
        };
        let model = l.model().clone().load_record(s.model);
        l.put_model(model);
        l.opt_mut().load_record(s.opt);
        l.set_momentum(s.mom);
        l.set_lrs(s.lrs);
        l.apply_freeze(s.frozen);
        let st = l.state_mut();
        st.epochs_done = s.epochs_done;
        (st.smooth_raw, st.smooth_n, st.smooth_loss) = s.smooth;
        if let Some(r) = l.cb_mut::<Recorder>() {
            r.truncate(s.history.0, s.history.1);
        }
    }
}

impl Callback for LrFinder {
    /// Before the NaN guard (-20): a diverging loss ends the sweep, it is not an error.
    fn order(&self) -> i32 {
        -30
    }

    fn before_fit(&mut self, l: &mut Learner) -> Result<Flow> {
        let st = l.state();
        self.saved = Some(Saved {
            model: l.model().clone().into_record(),
            opt: l.opt().to_record(),
            mom: l.opt().momentum(),
            lrs: st.lrs.clone(),
            epochs_done: st.epochs_done,
            smooth: (st.smooth_raw, st.smooth_n, st.smooth_loss),
            frozen: l.frozen_groups(),
            history: (l.history().len(), l.iterations().len()),
        });
        Ok(Flow::Continue)
    }

    fn before_batch(&mut self, l: &mut Learner) -> Result<Flow> {
        if !l.state().training {
            return Ok(Flow::Continue);
        }
        let it = self.lrs.len();
        let lr = self.sched.at(it as f64 / self.cfg.num_it.max(1) as f64);
        let n = l.layer_groups().len();
        l.set_lrs(vec![lr; n]);
        Ok(Flow::Continue)
    }

    fn after_loss(&mut self, l: &mut Learner) -> Result<Flow> {
        let s = l.state();
        Ok(match s.loss {
            Some(v) if s.training && !v.is_finite() => Flow::CancelFit,
            _ => Flow::Continue,
        })
    }

    fn after_batch(&mut self, l: &mut Learner) -> Result<Flow> {
        let s = l.state();
        if !s.training {
            return Ok(Flow::Continue);
        }
        let smooth = s.smooth_loss;
        self.lrs.push(s.lrs[0]);
        self.losses.push(smooth);
        self.raw.push(s.loss.unwrap_or(f32::NAN));
        self.best = self.best.min(smooth);
        let diverged = self.cfg.stop_div && smooth > 4.0 * self.best;
        Ok(if diverged || self.lrs.len() >= self.cfg.num_it {
            Flow::CancelFit
        } else {
            Flow::Continue
        })
    }

    fn before_validate(&mut self, _l: &mut Learner) -> Result<Flow> {
        Ok(Flow::CancelEpoch)
    }

    fn after_fit(&mut self, l: &mut Learner) -> Result<Flow> {
        self.restore(l);
        Ok(Flow::Continue)
    }
}

impl Learner {
    /// fastai's `lr_find`: a fit with an [`LrFinder`] (and without a scheduler) of up to
    /// `num_it` batches with the learning rate of every group growing exponentially from
    /// `start` to `end`; it records the smoothed loss, stops when it exceeds 4× its best
    /// (or turns NaN), then restores the weights, the optimiser state, the BatchNorm
    /// statistics and the history exactly as they were. The callbacks installed run during
    /// the sweep (gradient clipping, accumulation, the progress bar).
    ///
    /// # Errors
    /// [`Error::NoTrainingBatches`] for an empty training loader; a data or callback error
    /// (the learner is restored then too). A diverging loss is the expected end of a sweep,
    /// not an error.
    pub fn lr_find(&mut self, cfg: &LrFindConfig) -> Result<LrFind> {
        let n_batches = self.dls().train.num_batches();
        if n_batches == 0 {
            let tc = self.dls().train.config();
            return Err(Error::NoTrainingBatches {
                items: self.dls().train.dataset().len(),
                batch_size: tc.batch_size,
                drop_last: tc.drop_last,
            });
        }
        let epochs = cfg.num_it / n_batches + 1;
        // A checkpoint's resume point belongs to the fit it interrupted, not to the sweep.
        let resume = self.state_mut().resume_epoch.take();
        self.add_callback(LrFinder::new(*cfg));
        let r = self.fit_loop(epochs);
        self.state_mut().resume_epoch = resume;
        let mut finder = self
            .remove_cb::<LrFinder>()
            .expect("the finder stays installed during its fit");
        finder.restore(self);
        r?;
        Ok(finder.result())
    }
}
