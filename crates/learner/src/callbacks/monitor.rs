use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::callbacks::EpochLog;
use crate::error::{Error, Result};
use crate::learner::Learner;
use crate::learner::{Callback, Flow};

/// A quantity watched across epochs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Monitor {
    /// Validation loss (lower is better).
    ValidLoss,
    /// Training loss (lower is better).
    TrainLoss,
    /// A metric by name (e.g. `"f2@0.2"`).
    Metric {
        /// The metric's name in the history.
        name: String,
        /// Whether larger values are better.
        higher_is_better: bool,
    },
}

impl Monitor {
    /// A metric where higher is better.
    pub fn metric(name: impl Into<String>) -> Self {
        Monitor::Metric {
            name: name.into(),
            higher_is_better: true,
        }
    }

    /// The value in an epoch row.
    pub fn value(&self, log: &EpochLog) -> Option<f64> {
        match self {
            Monitor::ValidLoss => Some(log.valid_loss),
            Monitor::TrainLoss => Some(log.train_loss),
            Monitor::Metric { name, .. } => log.metric(name),
        }
    }

    /// True when `new` improves on `best` by more than `min_delta`.
    pub fn improves(&self, new: f64, best: Option<f64>, min_delta: f64) -> bool {
        let Some(best) = best else {
            return new.is_finite();
        };
        match self {
            Monitor::Metric {
                higher_is_better: true,
                ..
            } => new > best + min_delta,
            _ => new < best - min_delta,
        }
    }
}

/// Stops the fit when the monitored value has not improved by more than `min_delta` for
/// `patience` epochs (fastai's `EarlyStoppingCallback`).
#[derive(Debug, Clone)]
pub struct EarlyStopping {
    monitor: Monitor,
    patience: usize,
    min_delta: f64,
    best: Option<f64>,
    wait: usize,
    stopped_at: Option<usize>,
}

impl EarlyStopping {
    /// Watches `monitor`.
    pub fn new(monitor: Monitor, patience: usize, min_delta: f64) -> Self {
        EarlyStopping {
            monitor,
            patience,
            min_delta,
            best: None,
            wait: 0,
            stopped_at: None,
        }
    }

    /// The epoch after which the fit was stopped, if it was.
    pub fn stopped_at(&self) -> Option<usize> {
        self.stopped_at
    }
}

impl Callback for EarlyStopping {
    fn name(&self) -> String {
        "early_stopping".into()
    }

    fn order(&self) -> i32 {
        15
    }

    fn before_fit(&mut self, _l: &mut Learner) -> Result<Flow> {
        self.best = None;
        self.wait = 0;
        self.stopped_at = None;
        Ok(Flow::Continue)
    }

    fn after_epoch(&mut self, l: &mut Learner) -> Result<Flow> {
        let Some(log) = l.history().last() else {
            return Ok(Flow::Continue);
        };
        let v = self.monitor.value(log).ok_or_else(|| Error::Callback {
            name: "early_stopping".into(),
            message: format!("no value for {:?} in the epoch row", self.monitor),
        })?;
        if self.monitor.improves(v, self.best, self.min_delta) {
            self.best = Some(v);
            self.wait = 0;
        } else {
            self.wait += 1;
            if self.wait >= self.patience {
                self.stopped_at = Some(log.epoch);
                return Ok(Flow::CancelFit);
            }
        }
        Ok(Flow::Continue)
    }
}

/// Saves the model (weights only, burnpack, atomic) whenever the monitored value improves,
/// and loads the best weights back at the end of the fit (fastai's `SaveModelCallback`,
/// `at_end = False`): the best value is forgotten at the start of every fit, so each fit
/// ends on its own best epoch. [`SaveBestModel::keep_last`] leaves the last weights in
/// place instead.
#[derive(Debug, Clone)]
pub struct SaveBestModel {
    monitor: Monitor,
    path: PathBuf,
    best: Option<f64>,
    saved_epochs: Vec<usize>,
    reload: bool,
}

impl SaveBestModel {
    /// Saves to `path` (a `.bpk` file).
    pub fn new(monitor: Monitor, path: impl Into<PathBuf>) -> Self {
        SaveBestModel {
            monitor,
            path: path.into(),
            best: None,
            saved_epochs: Vec::new(),
            reload: true,
        }
    }

    /// Keeps the last weights at the end of the fit (the best stay on disk).
    pub fn keep_last(mut self) -> Self {
        self.reload = false;
        self
    }

    /// The best value of the current (or last) fit.
    pub fn best(&self) -> Option<f64> {
        self.best
    }

    /// The epochs (within their fits) whose weights were saved.
    pub fn saved_epochs(&self) -> &[usize] {
        &self.saved_epochs
    }
}

impl Callback for SaveBestModel {
    fn name(&self) -> String {
        "save_best_model".into()
    }

    fn order(&self) -> i32 {
        12
    }

    fn before_fit(&mut self, _l: &mut Learner) -> Result<Flow> {
        self.best = None;
        self.saved_epochs.clear();
        Ok(Flow::Continue)
    }

    fn after_epoch(&mut self, l: &mut Learner) -> Result<Flow> {
        let Some(log) = l.history().last() else {
            return Ok(Flow::Continue);
        };
        if let Some(v) = self.monitor.value(log)
            && self.monitor.improves(v, self.best, 0.0)
        {
            self.best = Some(v);
            l.save_weights(&self.path)?;
            self.saved_epochs.push(log.epoch);
        }
        Ok(Flow::Continue)
    }

    fn after_fit(&mut self, l: &mut Learner) -> Result<Flow> {
        if self.reload && !self.saved_epochs.is_empty() {
            l.load_weights(&self.path)?;
        }
        Ok(Flow::Continue)
    }
}

/// Writes a complete checkpoint (model, optimiser, schedule position, history, vocabulary;
/// manifest last) into `dir` after every `every` epochs and keeps the run's last `keep`
/// (other runs' checkpoints in `dir` are left alone).
#[derive(Debug, Clone)]
pub struct Checkpointer {
    dir: PathBuf,
    every: usize,
    keep: usize,
}

impl Checkpointer {
    /// Checkpoints into `dir` after every epoch, keeping the last 2.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Checkpointer {
            dir: dir.into(),
            every: 1,
            keep: 2,
        }
    }

    /// Every `n` epochs.
    pub fn every(mut self, n: usize) -> Self {
        self.every = n.max(1);
        self
    }

    /// Keep the last `n` complete checkpoints.
    pub fn keep(mut self, n: usize) -> Self {
        self.keep = n.max(1);
        self
    }
}

impl Callback for Checkpointer {
    fn name(&self) -> String {
        "checkpointer".into()
    }

    /// Before early stopping (15), so the epoch that stops the fit is saved too.
    fn order(&self) -> i32 {
        13
    }

    fn after_epoch(&mut self, l: &mut Learner) -> Result<Flow> {
        if l.state().epochs_done.is_multiple_of(self.every) {
            l.save_checkpoint(&self.dir)?;
            crate::checkpoint::prune(&self.dir, l.run_id(), self.keep)?;
        }
        Ok(Flow::Continue)
    }
}
