//! fastai's learning-rate finder: an exponential sweep of the learning rate over a few
//! batches, recording the smoothed loss, stopping when it diverges, and restoring the
//! learner afterwards. Suggestions follow fastai v2 (`valley`, `minimum`, `steep`,
//! `slide`).

use std::path::Path;

use burn::module::Module;
use burn::optim::GradientsParams;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::learner::Learner;
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

impl Learner {
    /// fastai's `lr_find`: trains for up to `num_it` batches with the learning rate of every
    /// group growing exponentially from `start` to `end`, records the smoothed loss, stops
    /// when it exceeds 4× its best (or turns NaN), then restores the weights, the optimiser
    /// state, the BatchNorm statistics and the history exactly as they were.
    ///
    /// # Errors
    /// A data error. (A diverging loss is the expected end of a sweep, not an error.)
    pub fn lr_find(&mut self, cfg: &LrFindConfig) -> Result<LrFind> {
        let record = self.model().clone().into_record();
        let optim_record = self.optim.to_record();
        let mom = self.hp.momentum();
        let lrs_before = self.state.lrs.clone();
        let sched = Sched::Exp {
            start: cfg.start,
            end: cfg.end,
        };
        let n_groups = self.groups.len();
        let (mut lrs, mut losses, mut raw) = (Vec::new(), Vec::new(), Vec::new());
        let (mut avg, mut best) = (0.0f64, f64::INFINITY);
        let loader = self.dls.train.clone();
        let tfms = loader.dataset().transforms().clone();
        let task = self.dls.task;
        let mut it = 0usize;
        let mut data_epoch = 1usize << 40;
        let result: Result<()> = (|| {
            'sweep: loop {
                for cpu in loader.epoch(data_epoch) {
                    if it >= cfg.num_it {
                        break 'sweep;
                    }
                    let batch = cpu?.to_device(&self.device, &tfms, task);
                    let lr = sched.at(it as f64 / cfg.num_it.max(1) as f64);
                    self.state.lrs = vec![lr; n_groups];
                    let model = self.model.take().expect("model present");
                    let seed = fastburn_data::item_seed(self.cfg.seed, data_epoch, it);
                    let logits =
                        crate::rng::with_seed(&self.device, seed, || model.forward(batch.images));
                    let loss = self.loss.forward(logits, batch.targets);
                    let v: f32 = loss.clone().into_scalar();
                    if !v.is_finite() {
                        self.model = Some(model);
                        break 'sweep;
                    }
                    let grads = GradientsParams::from_grads(loss.backward(), &model);
                    let mlr = {
                        self.model = Some(model);
                        self.module_lr()
                    };
                    let model = self.model.take().expect("model present");
                    self.model = Some(self.optim.step(mlr, model, grads));
                    avg = 0.98 * avg + 0.02 * f64::from(v);
                    let smooth = avg / (1.0 - 0.98f64.powi(it as i32 + 1));
                    lrs.push(lr);
                    losses.push(smooth);
                    raw.push(v);
                    it += 1;
                    best = best.min(smooth);
                    if cfg.stop_div && smooth > 4.0 * best {
                        break 'sweep;
                    }
                }
                data_epoch += 1;
            }
            Ok(())
        })();
        // Restore everything, whatever happened.
        let model = self.model.take().expect("model present");
        self.model = Some(model.load_record(record));
        let (fresh, hp) = self.opt_cfg.init();
        self.optim = fresh.load_record(optim_record);
        self.hp = hp;
        self.set_momentum(mom);
        self.state.lrs = lrs_before;
        let n = self.frozen;
        self.freeze_to(n);
        result?;
        let (tl, tloss) = trimmed(&lrs, &losses, cfg.num_it);
        let suggestions = Suggest::ALL
            .iter()
            .filter_map(|&s| suggest(&tl, &tloss, s).map(|v| (s, v)))
            .collect();
        Ok(LrFind {
            lrs,
            losses,
            raw,
            num_it: cfg.num_it,
            suggestions,
        })
    }
}
