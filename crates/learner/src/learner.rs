//! The [`Learner`]: model + data + loss + optimiser + metrics + callbacks, and the loop.

use std::path::PathBuf;
use std::time::Instant;

use burn::config::Config;
use burn::lr_scheduler::module_lr_scheduler::{ModuleLearningRate, ModuleLrScheduler};
use burn::module::{Module, ParamGroup};
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor, TensorData};
use fastburn_data::{Batch, CpuBatch, DataLoader, DataLoaders, Task};
use fastburn_metrics::{Accuracy, AccuracyMulti, FBetaMetric, Metric};
use fastburn_models::{Arch, VisionModel, VisionModelConfig};
use serde::{Deserialize, Serialize};

use crate::callback::{Callback, Flow, Hook};
use crate::callbacks::{ParamScheduler, TerminateOnNaN};
use crate::error::{Error, Result};
use crate::freeze::freeze_to;
use crate::loss::Loss;
use crate::optim::{HyperParams, OptimizerConfig};
use crate::precompute::Precomputed;
use crate::schedule::{Combined, FitSchedule, Lrs};

/// How a learner is built (everything but the data and the weights).
#[derive(Config, Debug)]
pub struct LearnerConfig {
    /// The body's architecture.
    pub arch: Arch,
    /// Base width of the body (64 = torchvision; smaller for tests and quick runs).
    #[config(default = 64)]
    pub base_width: usize,
    /// Input channels.
    #[config(default = 3)]
    pub in_channels: usize,
    /// Head hidden widths (fastai: `[512]`).
    #[config(default = "vec![512]")]
    pub lin_ftrs: Vec<usize>,
    /// Head dropout (fastai's `ps`).
    #[config(default = 0.5)]
    pub ps: f64,
    /// The optimiser.
    #[config(default = "OptimizerConfig::adam()")]
    pub opt: OptimizerConfig,
    /// Per-class weight of positive examples (multi-label only).
    #[config(default = "None")]
    pub pos_weight: Option<Vec<f32>>,
    /// Keep BatchNorm layers of frozen groups training (fastai's `train_bn`).
    #[config(default = true)]
    pub train_bn: bool,
    /// Threshold of the default multi-label metrics (F2 and accuracy).
    #[config(default = 0.2)]
    pub threshold: f32,
    /// Seed of model initialisation and of dropout.
    #[config(default = 42)]
    pub seed: u64,
    /// Folder for the learner's outputs (plots, logs, checkpoints).
    #[config(default = "PathBuf::from(\"fastburn-run\")")]
    pub path: PathBuf,
}

impl LearnerConfig {
    /// The model configuration this learner builds.
    pub fn model_config(&self, n_classes: usize) -> VisionModelConfig {
        VisionModelConfig::new(self.arch, n_classes)
            .with_base_width(self.base_width)
            .with_in_channels(self.in_channels)
            .with_lin_ftrs(self.lin_ftrs.clone())
            .with_ps(self.ps)
    }
}

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

/// Where the loop is; read by callbacks.
#[derive(Debug, Clone, Default)]
pub struct RunState {
    /// Current epoch within the fit (0-based).
    pub epoch: usize,
    /// Epochs of the current fit.
    pub n_epochs: usize,
    /// Current training batch within the epoch.
    pub batch: usize,
    /// Training batches per epoch.
    pub n_batches: usize,
    /// Training iteration within the fit (`epoch · n_batches + batch`).
    pub iter: usize,
    /// Training iterations of the fit.
    pub n_iter: usize,
    /// True in the training phase, false while validating.
    pub training: bool,
    /// Loss of the current batch.
    pub loss: Option<f32>,
    /// Exponential moving average of the training loss (β = 0.98, debiased).
    pub smooth_loss: f64,
    /// Learning rate of each group for the current batch.
    pub lrs: Vec<f64>,
    /// Momentum / β1 for the current batch.
    pub mom: f64,
    /// Epochs completed since the learner was built (drives data shuffling and dropout
    /// seeds; saved in checkpoints).
    pub epochs_done: usize,
    /// Un-debiased moving average and its count (reset each fit).
    pub(crate) smooth_raw: f64,
    pub(crate) smooth_n: i32,
}

pub(crate) struct ResumePoint {
    pub(crate) epoch: usize,
}

/// The learner.
///
/// Build it with [`vision_learner`] (or [`Learner::new`] around any [`VisionModel`]); train
/// with [`fit`](Learner::fit), [`fit_one_cycle`](Learner::fit_one_cycle),
/// [`fit_sgdr`](Learner::fit_sgdr), [`fit_flat_cos`](Learner::fit_flat_cos) or
/// [`fine_tune`](Learner::fine_tune); find a learning rate with
/// [`lr_find`](Learner::lr_find); predict with [`get_preds`](Learner::get_preds),
/// [`tta`](Learner::tta), [`predict`](Learner::predict).
pub struct Learner {
    pub(crate) model: Option<VisionModel>,
    pub(crate) dls: DataLoaders,
    pub(crate) device: Device,
    pub(crate) loss: Loss,
    pub(crate) opt_cfg: OptimizerConfig,
    pub(crate) optim: ModuleOptimizer,
    pub(crate) hp: HyperParams,
    pub(crate) metrics: Vec<Box<dyn Metric>>,
    pub(crate) callbacks: Vec<Box<dyn Callback>>,
    pub(crate) groups: Vec<ParamGroup>,
    pub(crate) frozen: usize,
    pub(crate) cfg: LearnerConfig,
    pub(crate) state: RunState,
    pub(crate) history: Vec<EpochLog>,
    pub(crate) iters: Vec<IterLog>,
    pub(crate) grads: Option<GradientsParams>,
    pub(crate) precomputed: Option<Precomputed>,
    pub(crate) resume: Option<ResumePoint>,
    pub(crate) thresholds: Option<Vec<f32>>,
}

impl std::fmt::Debug for Learner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Learner")
            .field("arch", &self.cfg.arch)
            .field("device", &self.device)
            .field("classes", &self.dls.vocab.len())
            .field("frozen_groups", &self.frozen)
            .field("epochs_done", &self.state.epochs_done)
            .finish()
    }
}

/// fastai's `vision_learner`: a [`VisionModel`] of `cfg.arch` for the data's classes,
/// trained on `device.autodiff()`. With a pretrained `body` the model starts frozen (only the
/// head trains), as in fastai.
///
/// # Example
/// ```
/// # use fastburn_data::*;
/// # let dir = tempfile::tempdir().unwrap();
/// # synth::SynthConfig::new(dir.path().to_path_buf()).with_n(16).with_size(32).generate().unwrap();
/// use burn::tensor::Device;
/// use fastburn_learner::{LearnerConfig, vision_learner};
/// use fastburn_models::Arch;
///
/// let csv = CsvConfig::new(dir.path().join("labels.csv"), dir.path().join("train-jpg"));
/// let dls = DataLoadersConfig::new(32).with_batch_size(8).from_csv(&csv, &Splitter::default())?;
/// let cfg = LearnerConfig::new(Arch::ResNet18).with_base_width(8).with_path(dir.path().join("run"));
/// let mut learn = vision_learner(dls, &cfg, None, &Device::flex())?;
/// learn.quiet();
/// learn.fit_one_cycle(1, 1e-3)?;
/// assert_eq!(learn.history().len(), 1);
/// assert!(learn.history()[0].metric("f2@0.2").is_some());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// None today beyond configuration problems; kept fallible for weight loading.
pub fn vision_learner(
    dls: DataLoaders,
    cfg: &LearnerConfig,
    body: Option<fastburn_models::ResNetBody>,
    device: &Device,
) -> Result<Learner> {
    let ad = device.clone().autodiff();
    let mcfg = cfg.model_config(dls.vocab.len());
    let pretrained = body.is_some();
    let model = crate::rng::with_seed(&ad, cfg.seed, || {
        let m = match body {
            Some(b) => mcfg.init_with_body(b.fork(&ad), &ad),
            None => mcfg.init(&ad),
        };
        crate::rng::materialize(&m);
        m
    });
    let mut learn = Learner::new(model, dls, cfg.clone(), &ad)?;
    if pretrained {
        learn.freeze();
    }
    Ok(learn)
}

impl Learner {
    /// A learner around an existing model (moved to `device.autodiff()`).
    ///
    /// # Errors
    /// [`Error::GroupCount`] when `cfg.pos_weight` has the wrong length.
    pub fn new(
        model: VisionModel,
        dls: DataLoaders,
        cfg: LearnerConfig,
        device: &Device,
    ) -> Result<Self> {
        let device = device.clone().autodiff();
        // `fork` keeps a tensor's autodiff context; `train` turns gradient tracking on for a
        // model that was built on (or loaded to) a plain device.
        let model = model.fork(&device).train();
        let n_classes = dls.vocab.len();
        let loss = match dls.task {
            Task::MultiLabel => {
                if let Some(pw) = &cfg.pos_weight
                    && pw.len() != n_classes
                {
                    return Err(Error::GroupCount {
                        what: "pos_weight (one per class)",
                        expected: n_classes,
                        got: pw.len(),
                    });
                }
                Loss::BceWithLogits {
                    pos_weight: cfg.pos_weight.clone(),
                }
            }
            Task::SingleLabel => Loss::CrossEntropy,
        };
        let metrics: Vec<Box<dyn Metric>> = match dls.task {
            Task::MultiLabel => vec![
                Box::new(FBetaMetric::f2().with_thresholds(vec![cfg.threshold])),
                Box::new(AccuracyMulti::new(cfg.threshold)),
            ],
            Task::SingleLabel => vec![Box::new(Accuracy::new())],
        };
        let (optim, hp) = cfg.opt.init();
        let groups = model.layer_groups();
        let n_groups = groups.len();
        let mut learn = Learner {
            model: Some(model),
            dls,
            device,
            loss,
            opt_cfg: cfg.opt,
            optim,
            hp,
            metrics,
            callbacks: Vec::new(),
            groups,
            frozen: 0,
            cfg,
            state: RunState {
                lrs: vec![0.0; n_groups],
                ..Default::default()
            },
            history: Vec::new(),
            iters: Vec::new(),
            grads: None,
            precomputed: None,
            resume: None,
            thresholds: None,
        };
        learn.state.mom = learn.hp.momentum();
        learn.add_callback(TerminateOnNaN);
        learn.add_callback(crate::callbacks::ProgressBar::new());
        learn.add_callback(crate::callbacks::EpochTable::new());
        Ok(learn)
    }

    // ----- accessors -------------------------------------------------------------------

    /// The model.
    pub fn model(&self) -> &VisionModel {
        self.model
            .as_ref()
            .expect("the model is present outside a step")
    }

    /// Replaces the model (e.g. after loading weights); layer groups are recomputed.
    pub fn set_model(&mut self, model: VisionModel) {
        let model = model.fork(&self.device).train();
        self.groups = model.layer_groups();
        self.model = Some(model);
        let n = self.frozen;
        self.freeze_to(n);
    }

    /// The data loaders.
    pub fn dls(&self) -> &DataLoaders {
        &self.dls
    }

    /// The training device (autodiff).
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The same device without autodiff (validation, inference).
    pub fn inference_device(&self) -> Device {
        self.device.clone().without_autodiff()
    }

    /// The loss.
    pub fn loss_fn(&self) -> &Loss {
        &self.loss
    }

    /// The configuration.
    pub fn config(&self) -> &LearnerConfig {
        &self.cfg
    }

    /// The loop's state.
    pub fn state(&self) -> &RunState {
        &self.state
    }

    /// The epoch rows of every fit so far.
    pub fn history(&self) -> &[EpochLog] {
        &self.history
    }

    /// Every training iteration so far (learning rates, momentum, loss).
    pub fn iterations(&self) -> &[IterLog] {
        &self.iters
    }

    /// The layer groups (stem + early layers, later layers, head).
    pub fn layer_groups(&self) -> &[ParamGroup] {
        &self.groups
    }

    /// Number of frozen groups (0 = all trainable).
    pub fn frozen_groups(&self) -> usize {
        self.frozen
    }

    /// The gradients of the current batch (in `after_backward`), to inspect or change.
    pub fn grads_mut(&mut self) -> Option<&mut GradientsParams> {
        self.grads.as_mut()
    }

    /// Replaces the gradients of the current batch.
    pub fn set_grads(&mut self, grads: Option<GradientsParams>) {
        self.grads = grads;
    }

    /// Takes the gradients of the current batch out.
    pub fn take_grads(&mut self) -> Option<GradientsParams> {
        self.grads.take()
    }

    /// Sets the learning rate of every group (what the scheduler does each batch).
    pub fn set_lrs(&mut self, lrs: Vec<f64>) {
        self.state.lrs = lrs;
    }

    /// Sets momentum / β1 (what the scheduler does each batch).
    pub fn set_momentum(&mut self, m: f64) {
        self.hp.set_momentum(m);
        self.state.mom = m;
    }

    /// Thresholds chosen for prediction (by [`Learner::optimize_thresholds`] or set).
    pub fn thresholds(&self) -> Option<&[f32]> {
        self.thresholds.as_deref()
    }

    /// Sets the prediction thresholds (one, or one per class).
    pub fn set_thresholds(&mut self, t: Vec<f32>) {
        self.thresholds = Some(t);
    }

    /// The metrics' names, in table order.
    pub fn metric_names(&self) -> Vec<String> {
        self.metrics.iter().map(|m| m.name()).collect()
    }

    /// Replaces the metrics.
    pub fn set_metrics(&mut self, metrics: Vec<Box<dyn Metric>>) {
        self.metrics = metrics;
    }

    // ----- callbacks -------------------------------------------------------------------

    /// Adds a callback (kept in `order`).
    pub fn add_callback(&mut self, cb: impl Callback + 'static) {
        self.add_boxed_callback(Box::new(cb));
    }

    /// Adds a boxed callback.
    pub fn add_boxed_callback(&mut self, cb: Box<dyn Callback>) {
        let order = cb.order();
        let pos = self
            .callbacks
            .iter()
            .position(|c| c.order() > order)
            .unwrap_or(self.callbacks.len());
        self.callbacks.insert(pos, cb);
    }

    /// Removes the callbacks with this name; returns how many were removed.
    pub fn remove_callback(&mut self, name: &str) -> usize {
        let before = self.callbacks.len();
        self.callbacks.retain(|c| c.name() != name);
        before - self.callbacks.len()
    }

    /// The names of the callbacks, in running order.
    pub fn callback_names(&self) -> Vec<String> {
        self.callbacks.iter().map(|c| c.name()).collect()
    }

    /// Removes the progress bar and the printed table (tests, libraries).
    pub fn quiet(&mut self) {
        self.remove_callback("progress");
        self.remove_callback("epoch_table");
    }

    /// Runs one hook on every callback, in order; returns the strongest flow.
    ///
    /// # Errors
    /// The first callback error (the others do not run).
    pub fn run_hook(&mut self, hook: Hook) -> Result<Flow> {
        let mut cbs = std::mem::take(&mut self.callbacks);
        let mut flow = Flow::Continue;
        let mut result = Ok(());
        for cb in cbs.iter_mut() {
            match hook.call(cb.as_mut(), self) {
                Ok(f) => flow = flow.max(f),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        // Callbacks added during the hook are kept too.
        let added = std::mem::replace(&mut self.callbacks, cbs);
        for cb in added {
            self.add_boxed_callback(cb);
        }
        result.map(|_| flow)
    }

    // ----- freezing --------------------------------------------------------------------

    /// fastai's `freeze()`: only the last group (the head) trains — plus BatchNorm layers
    /// everywhere when `train_bn` (the default).
    pub fn freeze(&mut self) {
        let n = self.groups.len() - 1;
        self.freeze_to(n);
    }

    /// fastai's `unfreeze()`: every group trains.
    pub fn unfreeze(&mut self) {
        self.freeze_to(0);
    }

    /// fastai's `freeze_to(n)`: groups `0..n` are frozen, the rest train. Cached
    /// precomputed activations are dropped when the body becomes trainable.
    pub fn freeze_to(&mut self, n: usize) {
        let n = n.min(self.groups.len());
        let model = self.model.take().expect("model present");
        self.model = Some(freeze_to(model, &self.groups, n, self.cfg.train_bn));
        self.frozen = n;
        if n + 1 < self.groups.len() {
            self.precomputed = None;
        }
    }

    // ----- data ------------------------------------------------------------------------

    /// Swaps the data (progressive resizing: 64 → 128 → 256 px), keeping the model and the
    /// optimiser. The class vocabulary must be the same.
    ///
    /// # Errors
    /// [`Error::Checkpoint`] with [`CheckpointProblem::Vocabulary`](crate::CheckpointProblem)
    /// when the vocabularies differ.
    pub fn set_data(&mut self, dls: DataLoaders) -> Result<()> {
        if dls.vocab != self.dls.vocab {
            return Err(Error::Checkpoint {
                path: self.cfg.path.clone(),
                problem: crate::error::CheckpointProblem::Vocabulary {
                    expected: self.dls.vocab.classes().to_vec(),
                    got: dls.vocab.classes().to_vec(),
                },
            });
        }
        self.dls = dls;
        self.precomputed = None;
        Ok(())
    }

    // ----- policies --------------------------------------------------------------------

    /// fastai v2's `fit`: `epochs` epochs at constant learning rate(s).
    ///
    /// # Errors
    /// As [`Learner::fit_schedule`].
    pub fn fit(&mut self, epochs: usize, lr: impl Into<Lrs>) -> Result<()> {
        let lrs = lr.into().resolve(self.groups.len())?;
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
        let maxes = lr_max.into().resolve(self.groups.len())?;
        let shape = Combined::one_cycle_lr(1.0, p.div, p.div_final, p.pct_start);
        let mom = Combined::one_cycle_mom(p.moms, p.pct_start);
        self.fit_schedule(epochs, FitSchedule::per_group(&shape, &maxes, Some(mom)))
    }

    /// SGDR (fastai 0.7's `fit(lr, n_cycles, cycle_len, cycle_mult)`): `n_cycles` cosine
    /// annealings from `lr` to 0, cycle `i` lasting `cycle_len · cycle_mult^i` epochs.
    ///
    /// # Errors
    /// As [`Learner::fit_schedule`].
    pub fn fit_sgdr(
        &mut self,
        n_cycles: usize,
        cycle_len: usize,
        cycle_mult: usize,
        lr: impl Into<Lrs>,
    ) -> Result<()> {
        let maxes = lr.into().resolve(self.groups.len())?;
        let (shape, epochs) = Combined::sgdr(1.0, n_cycles, cycle_len, cycle_mult);
        self.fit_schedule(epochs, FitSchedule::per_group(&shape, &maxes, None))
    }

    /// fastai's `fit_flat_cos`: flat at `lr` for `pct_start` (0.75) of training, then
    /// cosine to `lr / div_final` (1e5).
    ///
    /// # Errors
    /// As [`Learner::fit_schedule`].
    pub fn fit_flat_cos(&mut self, epochs: usize, lr: impl Into<Lrs>) -> Result<()> {
        let maxes = lr.into().resolve(self.groups.len())?;
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
        self.freeze();
        self.fit_one_cycle_with(
            p.freeze_epochs,
            Lrs::Slice {
                lo: None,
                hi: base_lr,
            },
            &OneCycle {
                pct_start: 0.99,
                ..OneCycle::default()
            },
        )?;
        let base = base_lr / 2.0;
        self.unfreeze();
        self.fit_one_cycle_with(
            epochs,
            Lrs::slice(base / p.lr_mult, base),
            &OneCycle {
                pct_start: p.pct_start,
                div: p.div,
                ..OneCycle::default()
            },
        )
    }

    /// Runs `epochs` epochs under `sched`, applied each batch by a [`ParamScheduler`]
    /// callback. All the policies above are this plus a schedule.
    ///
    /// # Errors
    /// A data error, a non-finite loss ([`Error::NonFiniteLoss`]), a metric or callback
    /// error. The model keeps the weights of the last completed step.
    pub fn fit_schedule(&mut self, epochs: usize, sched: FitSchedule) -> Result<()> {
        if sched.lr.len() != self.groups.len() {
            return Err(Error::GroupCount {
                what: "schedules",
                expected: self.groups.len(),
                got: sched.lr.len(),
            });
        }
        self.add_callback(ParamScheduler::new(sched));
        let r = self.fit_loop(epochs);
        self.remove_callback("param_scheduler");
        r
    }

    fn fit_loop(&mut self, n_epochs: usize) -> Result<()> {
        let n_batches = match &self.precomputed {
            Some(p) => p.num_batches(
                self.dls.train.config().batch_size,
                self.dls.train.config().drop_last,
            ),
            None => self.dls.train.num_batches(),
        };
        let start = self.resume.take().map_or(0, |r| r.epoch);
        self.state.n_epochs = n_epochs;
        self.state.n_batches = n_batches;
        self.state.n_iter = n_epochs * n_batches;
        self.state.iter = start * n_batches;
        self.state.epoch = start;
        self.state.smooth_raw = 0.0;
        self.state.smooth_n = 0;
        if self.run_hook(Hook::BeforeFit)? == Flow::CancelFit {
            self.run_hook(Hook::AfterFit)?;
            return Ok(());
        }
        let mut cancel_fit = false;
        for epoch in start..n_epochs {
            self.state.epoch = epoch;
            let t0 = Instant::now();
            match self.run_hook(Hook::BeforeEpoch)? {
                Flow::CancelFit => break,
                Flow::CancelEpoch => continue,
                _ => {}
            }
            let (train_loss, flow) = self.train_epoch()?;
            if flow == Flow::CancelFit {
                cancel_fit = true;
            }
            self.run_hook(Hook::BeforeValidate)?;
            let (valid_loss, metrics) = self.validate_epoch()?;
            self.state.training = false;
            self.run_hook(Hook::AfterValidate)?;
            self.history.push(EpochLog {
                epoch,
                size: self.dls.size(),
                train_loss,
                valid_loss,
                metrics,
                seconds: t0.elapsed().as_secs_f64(),
            });
            self.state.epochs_done += 1;
            if self.run_hook(Hook::AfterEpoch)? == Flow::CancelFit || cancel_fit {
                break;
            }
        }
        self.run_hook(Hook::AfterFit)?;
        Ok(())
    }

    /// The training phase of one epoch: returns the mean training loss and the strongest
    /// flow a callback asked for.
    fn train_epoch(&mut self) -> Result<(f64, Flow)> {
        self.state.training = true;
        match self.run_hook(Hook::BeforeTrain)? {
            Flow::CancelFit => return Ok((f64::NAN, Flow::CancelFit)),
            Flow::CancelEpoch => return Ok((f64::NAN, Flow::Continue)),
            _ => {}
        }
        let data_epoch = self.state.epochs_done;
        let (mut sum, mut count) = (0.0f64, 0usize);
        let mut flow_out = Flow::Continue;
        if let Some(pre) = self.precomputed.take() {
            let batches = pre.train_batches(
                self.dls.train.config().batch_size,
                self.dls.train.config().drop_last,
                self.dls.train.config().seed,
                data_epoch,
                &self.device,
            );
            for (b, (x, y)) in batches.into_iter().enumerate() {
                let f = self.train_step(
                    b,
                    StepInput {
                        x,
                        y,
                        features: true,
                    },
                    &mut sum,
                    &mut count,
                );
                match f {
                    Err(e) => {
                        self.precomputed = Some(pre);
                        return Err(e);
                    }
                    Ok(Flow::CancelEpoch) => break,
                    Ok(Flow::CancelFit) => {
                        flow_out = Flow::CancelFit;
                        break;
                    }
                    Ok(_) => {}
                }
            }
            self.precomputed = Some(pre);
        } else {
            let loader = self.dls.train.clone();
            let tfms = loader.dataset().transforms().clone();
            let task = self.dls.task;
            for (b, cpu) in loader.epoch(data_epoch).enumerate() {
                let batch = cpu?.to_device(&self.device, &tfms, task);
                match self.train_step(
                    b,
                    StepInput {
                        x: batch.images,
                        y: batch.targets,
                        features: false,
                    },
                    &mut sum,
                    &mut count,
                )? {
                    Flow::CancelEpoch => break,
                    Flow::CancelFit => {
                        flow_out = Flow::CancelFit;
                        break;
                    }
                    _ => {}
                }
            }
        }
        let f = self.run_hook(Hook::AfterTrain)?;
        Ok((sum / count.max(1) as f64, flow_out.max(f)))
    }

    fn train_step(
        &mut self,
        b: usize,
        input: StepInput,
        sum: &mut f64,
        count: &mut usize,
    ) -> Result<Flow> {
        self.state.batch = b;
        self.state.iter = self.state.epoch * self.state.n_batches + b;
        self.state.loss = None;
        if let f @ (Flow::CancelBatch | Flow::CancelEpoch | Flow::CancelFit) =
            self.run_hook(Hook::BeforeBatch)?
        {
            return Ok(if f == Flow::CancelBatch {
                Flow::Continue
            } else {
                f
            });
        }
        let model = self.model.take().expect("model present");
        // Dropout masks come from a seed fixed by (seed, epochs done, batch): training is a
        // function of the seed alone, and a resumed run repeats it exactly.
        let step_seed = fastburn_data::item_seed(self.cfg.seed, self.state.epochs_done, b);
        let n = input.x.dims()[0];
        let targets = input.y;
        let logits = crate::rng::with_seed(&self.device, step_seed, || {
            if input.features {
                model.head.forward(input.x)
            } else {
                model.forward(input.x)
            }
        });
        let loss = self.loss.forward(logits, targets);
        let value: f32 = loss.clone().into_scalar();
        self.state.loss = Some(value);
        if value.is_finite() {
            self.state.smooth_n += 1;
            self.state.smooth_raw = 0.98 * self.state.smooth_raw + 0.02 * f64::from(value);
            self.state.smooth_loss =
                self.state.smooth_raw / (1.0 - 0.98f64.powi(self.state.smooth_n));
            *sum += f64::from(value) * n as f64;
            *count += n;
        }
        self.iters.push(IterLog {
            iter: self.state.iter,
            lrs: self.state.lrs.clone(),
            mom: self.state.mom,
            loss: value,
        });
        self.model = Some(model);
        if let f @ (Flow::CancelBatch | Flow::CancelEpoch | Flow::CancelFit) =
            self.run_hook(Hook::AfterLoss)?
        {
            return Ok(if f == Flow::CancelBatch {
                Flow::Continue
            } else {
                f
            });
        }
        let grads = GradientsParams::from_grads(loss.backward(), self.model());
        self.grads = Some(grads);
        let flow = self.run_hook(Hook::AfterBackward)?;
        if matches!(flow, Flow::CancelEpoch | Flow::CancelFit) {
            self.grads = None;
            return Ok(flow);
        }
        if flow == Flow::Continue
            && let Some(grads) = self.grads.take()
        {
            let lr = self.module_lr();
            let model = self.model.take().expect("model present");
            self.model = Some(self.optim.step(lr, model, grads));
            let f = self.run_hook(Hook::AfterStep)?;
            if matches!(f, Flow::CancelEpoch | Flow::CancelFit) {
                return Ok(f);
            }
        }
        self.grads = None;
        let f = self.run_hook(Hook::AfterBatch)?;
        Ok(match f {
            Flow::CancelEpoch | Flow::CancelFit => f,
            _ => Flow::Continue,
        })
    }

    /// The learning rate of each parameter: group `i` gets `state.lrs[i]`.
    pub(crate) fn module_lr(&self) -> ModuleLearningRate {
        let lrs = &self.state.lrs;
        let mut sched = ModuleLrScheduler::new(lrs[0]);
        for (g, &lr) in self.groups.iter().zip(lrs).skip(1) {
            sched = sched.with_group(g.clone(), lr);
        }
        sched.step()
    }

    /// Validation: mean loss over the validation items and the metrics.
    fn validate_epoch(&mut self) -> Result<(f64, Vec<(String, f64)>)> {
        for m in &mut self.metrics {
            m.reset();
        }
        let preds = match &self.precomputed {
            Some(pre) => pre.valid_preds(self.model(), &self.loss, &self.inference_device()),
            None => {
                let dl = self.dls.valid.clone();
                self.get_preds(&dl)?
            }
        };
        let c = preds.n_classes;
        let mut out = Vec::new();
        for m in &mut self.metrics {
            let name = m.name();
            m.update(&preds.probs, &preds.targets, c)
                .map_err(|e| Error::metric(&name, e))?;
            out.push((
                name.clone(),
                m.compute().map_err(|e| Error::metric(&name, e))?,
            ));
        }
        Ok((preds.mean_loss(), out))
    }

    // ----- prediction ------------------------------------------------------------------

    /// Probabilities, targets and per-item losses over a loader (in its order), with the
    /// model in evaluation mode.
    ///
    /// # Errors
    /// A data error.
    pub fn get_preds(&self, dl: &DataLoader) -> Result<Preds> {
        let device = self.inference_device();
        let model = self.model().valid();
        let tfms = dl.dataset().transforms().clone();
        let mut preds = Preds::empty(self.dls.vocab.len());
        for cpu in dl.epoch(0) {
            let batch = cpu?.to_device(&device, &tfms, self.dls.task);
            self.push_preds(&model, batch, &mut preds);
        }
        Ok(preds)
    }

    /// Adds a batch's predictions to `preds`.
    pub(crate) fn push_preds(&self, model: &VisionModel, batch: Batch, preds: &mut Preds) {
        let logits = model.forward(batch.images);
        let losses = self.loss.per_item(logits.clone(), batch.targets.clone());
        let probs = self.loss.activation(logits);
        preds.push(
            probs
                .try_into_vec_as::<f32>()
                .expect("probabilities read back"),
            batch
                .targets
                .try_into_vec_as::<f32>()
                .expect("targets read back"),
            losses.try_into_vec_as::<f32>().expect("losses read back"),
            batch.indices,
        );
    }

    /// Predictions of a batch already on the inference device.
    pub fn predict_batch(&self, images: Tensor<4>) -> Vec<f32> {
        let model = self.model().valid();
        let logits = model.forward(images);
        self.loss
            .activation(logits)
            .try_into_vec_as::<f32>()
            .expect("probabilities read back")
    }

    /// A CPU batch to the inference device.
    pub fn to_inference_batch(&self, cpu: CpuBatch, dl: &DataLoader) -> Batch {
        cpu.to_device(
            &self.inference_device(),
            dl.dataset().transforms(),
            self.dls.task,
        )
    }

    /// Creates an `[n, c]` tensor on the inference device (helper for callers).
    pub fn tensor2(&self, data: Vec<f32>, n: usize, c: usize) -> Tensor<2> {
        Tensor::<2>::from_data(TensorData::new(data, [n, c]), &self.inference_device())
    }
}

/// A training batch: images (or cached body features) and targets.
struct StepInput {
    x: Tensor<4>,
    y: Tensor<2>,
    /// `x` holds body activations: only the head runs.
    features: bool,
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

/// Predictions over a set of items.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Preds {
    /// Probabilities `[n, c]` (sigmoid or softmax).
    pub probs: Vec<f32>,
    /// Targets `[n, c]` (multi-hot / one-hot; zeros for unlabelled items).
    pub targets: Vec<f32>,
    /// Per-item losses.
    pub losses: Vec<f32>,
    /// Dataset indices.
    pub indices: Vec<usize>,
    /// Number of classes.
    pub n_classes: usize,
}

impl Preds {
    /// No predictions yet.
    pub fn empty(n_classes: usize) -> Self {
        Preds {
            n_classes,
            ..Default::default()
        }
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// Appends a batch.
    pub fn push(
        &mut self,
        probs: Vec<f32>,
        targets: Vec<f32>,
        losses: Vec<f32>,
        indices: Vec<usize>,
    ) {
        self.probs.extend(probs);
        self.targets.extend(targets);
        self.losses.extend(losses);
        self.indices.extend(indices);
    }

    /// Mean of the per-item losses.
    pub fn mean_loss(&self) -> f64 {
        self.losses.iter().map(|&l| f64::from(l)).sum::<f64>() / self.losses.len().max(1) as f64
    }

    /// The probabilities of item `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.probs[i * self.n_classes..(i + 1) * self.n_classes]
    }
}
