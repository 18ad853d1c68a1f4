//! The history: fastai's `Recorder`, a callback that keeps the epoch rows (losses,
//! metrics, time) and every training iteration (learning rates, momentum, loss).

use std::time::Instant;

use fastburn_metrics::Metric;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::learner::{Callback, Flow, Learner, Phase};

/// One row of the training history (fastai's epoch table).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochLog {
    /// 0-based epoch within the fit.
    pub epoch: usize,
    /// Image size of the data.
    pub size: u32,
    /// Mean training loss of the epoch.
    pub train_loss: f64,
    /// Validation loss.
    pub valid_loss: f64,
    /// Metric values, by name.
    pub metrics: Vec<(String, f64)>,
    /// Wall time of the epoch in seconds.
    pub seconds: f64,
}

impl EpochLog {
    /// A metric's value by name.
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.metrics
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
    }

    /// The value of `metric` (looked up by the metric's own name).
    pub fn metric_of(&self, metric: &dyn Metric) -> Option<f64> {
        self.metric(&metric.name())
    }
}

/// One training iteration as recorded: hyper-parameters in force and the loss.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IterLog {
    /// Iteration within the fit.
    pub iter: usize,
    /// Learning rate of each layer group.
    pub lrs: Vec<f64>,
    /// Momentum / β1.
    pub mom: f64,
    /// The batch loss.
    pub loss: f32,
}

/// fastai's `Recorder` (installed by [`Learner::new`]): computes the validation loss and
/// the metrics in every validation pass, and keeps the epoch rows and the iterations. It
/// runs first (order -25), so every other callback's `after_epoch` sees the new row.
pub struct Recorder {
    metrics: Vec<Box<dyn Metric>>,
    epochs: Vec<EpochLog>,
    iters: Vec<IterLog>,
    t0: Option<Instant>,
    train: (f64, usize),
    valid: (f64, usize),
    values: Vec<(String, f64)>,
}

impl Recorder {
    /// A recorder computing `metrics` on the validation set.
    pub fn new(metrics: Vec<Box<dyn Metric>>) -> Self {
        Recorder {
            metrics,
            epochs: Vec::new(),
            iters: Vec::new(),
            t0: None,
            train: (0.0, 0),
            valid: (0.0, 0),
            values: Vec::new(),
        }
    }

    /// The epoch rows.
    pub fn epochs(&self) -> &[EpochLog] {
        &self.epochs
    }

    /// The iterations.
    pub fn iterations(&self) -> &[IterLog] {
        &self.iters
    }

    /// The metrics' names, in table order.
    pub fn metric_names(&self) -> Vec<String> {
        self.metrics.iter().map(|m| m.name()).collect()
    }

    /// Replaces the metrics.
    pub fn set_metrics(&mut self, metrics: Vec<Box<dyn Metric>>) {
        self.metrics = metrics;
    }

    /// Replaces the history (restoring a checkpoint).
    pub fn set_history(&mut self, epochs: Vec<EpochLog>, iters: Vec<IterLog>) {
        self.epochs = epochs;
        self.iters = iters;
    }

    /// Drops rows and iterations beyond these lengths (the LR finder's restore).
    pub fn truncate(&mut self, epochs: usize, iters: usize) {
        self.epochs.truncate(epochs);
        self.iters.truncate(iters);
    }
}

impl Callback for Recorder {
    fn order(&self) -> i32 {
        -25
    }

    fn before_epoch(&mut self, _l: &mut Learner) -> Result<Flow> {
        self.t0 = Some(Instant::now());
        self.train = (0.0, 0);
        Ok(Flow::Continue)
    }

    fn before_validate(&mut self, l: &mut Learner) -> Result<Flow> {
        if l.state().phase == Phase::Valid {
            self.valid = (0.0, 0);
            for m in &mut self.metrics {
                m.reset();
            }
        }
        Ok(Flow::Continue)
    }

    fn after_loss(&mut self, l: &mut Learner) -> Result<Flow> {
        let s = l.state();
        if s.training
            && let Some(v) = s.loss
        {
            self.iters.push(IterLog {
                iter: s.iter,
                lrs: s.lrs.clone(),
                mom: s.mom,
                loss: v,
            });
            if v.is_finite() {
                self.train.0 += f64::from(v) * s.batch_items as f64;
                self.train.1 += s.batch_items;
            }
        }
        Ok(Flow::Continue)
    }

    fn after_batch(&mut self, l: &mut Learner) -> Result<Flow> {
        if l.state().phase != Phase::Valid {
            return Ok(Flow::Continue);
        }
        let c = l.dls().vocab.len();
        if let Some(out) = l.batch_output() {
            self.valid.0 += out.losses.iter().map(|&v| f64::from(v)).sum::<f64>();
            self.valid.1 += out.losses.len();
            for m in &mut self.metrics {
                let name = m.name();
                m.update(&out.probs, &out.targets, c)
                    .map_err(|e| Error::metric(&name, e))?;
            }
        }
        Ok(Flow::Continue)
    }

    fn after_validate(&mut self, l: &mut Learner) -> Result<Flow> {
        if l.state().phase != Phase::Valid {
            return Ok(Flow::Continue);
        }
        self.values.clear();
        for m in &mut self.metrics {
            let name = m.name();
            let v = m.compute().map_err(|e| Error::metric(&name, e))?;
            self.values.push((name, v));
        }
        Ok(Flow::Continue)
    }

    fn after_epoch(&mut self, l: &mut Learner) -> Result<Flow> {
        self.epochs.push(EpochLog {
            epoch: l.state().epoch,
            size: l.dls().size(),
            train_loss: self.train.0 / self.train.1.max(1) as f64,
            valid_loss: self.valid.0 / self.valid.1.max(1) as f64,
            metrics: std::mem::take(&mut self.values),
            seconds: self.t0.map_or(0.0, |t| t.elapsed().as_secs_f64()),
        });
        Ok(Flow::Continue)
    }
}

impl Learner {
    /// The epoch rows of every fit so far (from the [`Recorder`]; empty without one).
    pub fn history(&self) -> &[EpochLog] {
        self.cb::<Recorder>().map_or(&[], Recorder::epochs)
    }

    /// Every training iteration so far (learning rates, momentum, loss).
    pub fn iterations(&self) -> &[IterLog] {
        self.cb::<Recorder>().map_or(&[], Recorder::iterations)
    }

    /// The metrics' names, in table order.
    pub fn metric_names(&self) -> Vec<String> {
        self.cb::<Recorder>()
            .map(Recorder::metric_names)
            .unwrap_or_default()
    }

    /// Replaces the validation metrics (adding a [`Recorder`] when there is none).
    pub fn set_metrics(&mut self, metrics: Vec<Box<dyn Metric>>) {
        match self.cb_mut::<Recorder>() {
            Some(r) => r.set_metrics(metrics),
            None => self.add_callback(Recorder::new(metrics)),
        }
    }
}
