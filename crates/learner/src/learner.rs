//! The [`Learner`] and its one loop, in fastai's style (`_with_events`): every pass —
//! training, validation, predictions, TTA, the learning-rate finder, precomputing — runs
//! through [`Learner::fit_loop`] or [`Learner::eval_pass`] here, one batch at a time through
//! [`Learner::one_batch`], with the [`Callback`] events around each stage.
//!
//! The loop's state is private to this module; everything else in the crate (policies,
//! the LR finder, precompute, checkpoints, inference, the built-in callbacks) is written
//! against the public methods below.
//!
//! | event | a callback returning … | does |
//! |---|---|---|
//! | `before_fit` | `CancelFit` | skips to `after_fit` |
//! | `before_epoch` | `CancelEpoch` / `CancelFit` | skips the epoch / stops |
//! | `before_train` | `CancelEpoch` | skips the training phase |
//! | `before_batch`, `after_loss` | `CancelBatch` | ends the batch (no step) |
//! | `after_backward` | `SkipStep` | no optimiser step (gradient accumulation) |
//! | any batch event | `CancelEpoch` | ends the phase |
//! | any training-batch event | `CancelFit` | ends training; the epoch validates, then the fit stops |
//! | `before_validate` | `CancelEpoch` | skips validation and `after_epoch` (no row) |
//! | `after_epoch` | `CancelFit` | stops after this epoch |
//!
//! A callback returning a cancel stops the event there: callbacks after it (in `order`)
//! do not see it, as with fastai's exceptions.

use std::any::Any;
use std::path::PathBuf;
use std::sync::Arc;

use burn::config::Config;
use burn::lr_scheduler::module_lr_scheduler::{ModuleLearningRate, ModuleLrScheduler};
use burn::module::{Module, ParamGroup};
use burn::optim::GradientsParams;
use burn::tensor::Device;
use fastburn_data::{DataLoader, DataLoaders, Task};
use fastburn_models::{Arch, VisionModel, VisionModelConfig};

use crate::error::{CheckpointProblem, Error, Result};
use crate::freeze::freeze_to;
use crate::loss::Loss;
use crate::optim::{Optim, OptimizerConfig};
use crate::parallel::{DataParallel, Parallel};
use crate::step::{self, BatchOutput, FeatureCache, Forward, Input, Source};

/// How a learner is built (everything but the data and the weights).
#[derive(Config, Debug)]
pub struct LearnerConfig {
    /// The body's architecture.
    pub arch: Arch,
    /// Base width of a ResNet body (64 = torchvision; smaller for tests and quick runs).
    #[config(default = 64)]
    pub base_width: usize,
    /// Channel multiplier of a MobileNetV2 / EfficientNet body (1.0 = torchvision).
    #[config(default = 1.0)]
    pub width_mult: f64,
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
    /// Keep BatchNorm layers of frozen groups training (fastai v2's `train_bn = True`).
    /// `false` is fastai 0.7's behaviour, which the Planet lesson ran: frozen groups keep
    /// their BatchNorm in evaluation mode (running statistics fixed, γ/β not trained).
    #[config(default = true)]
    pub train_bn: bool,
    /// Decay BatchNorm parameters and biases too (fastai v2's `wd_bn_bias`, default
    /// `false`: they are exempt).
    #[config(default = false)]
    pub wd_bn_bias: bool,
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
            .with_width_mult(self.width_mult)
            .with_in_channels(self.in_channels)
            .with_lin_ftrs(self.lin_ftrs.clone())
            .with_ps(self.ps)
    }
}

/// Which pass the loop is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Phase {
    /// Outside any pass.
    #[default]
    Idle,
    /// Training batches (autodiff device, the optimiser steps).
    Train,
    /// The validation pass of an epoch (the epoch row's loss and metrics).
    Valid,
    /// A prediction pass ([`Learner::get_preds`], TTA).
    Predict,
    /// Building the cache of body activations ([`Learner::precompute`]).
    Features,
}

/// Where the loop is; read by callbacks.
#[derive(Debug, Clone, Default)]
pub struct RunState {
    /// Current epoch within the fit (0-based).
    pub epoch: usize,
    /// Epochs of the current fit.
    pub n_epochs: usize,
    /// Current batch within the pass.
    pub batch: usize,
    /// Training batches per epoch.
    pub n_batches: usize,
    /// Batches of the current pass (training or evaluation).
    pub pass_batches: usize,
    /// Training iteration within the fit (`epoch · n_batches + batch`).
    pub iter: usize,
    /// Training iterations of the fit.
    pub n_iter: usize,
    /// True in the training phase.
    pub training: bool,
    /// The pass.
    pub phase: Phase,
    /// Loss of the current batch (its mean over the batch's items).
    pub loss: Option<f32>,
    /// Items in the current batch.
    pub batch_items: usize,
    /// Exponential moving average of the training loss (β = 0.98, debiased).
    pub smooth_loss: f64,
    /// Learning rate of each group for the current batch.
    pub lrs: Vec<f64>,
    /// Momentum / β1 for the current batch.
    pub mom: f64,
    /// Epochs trained since the learner was built (drives data shuffling and dropout
    /// seeds; saved in checkpoints).
    pub epochs_done: usize,
    /// Un-debiased moving average and its count (reset each fit).
    pub(crate) smooth_raw: f64,
    pub(crate) smooth_n: i32,
    /// The epoch a loaded checkpoint resumes its fit at.
    pub(crate) resume_epoch: Option<usize>,
}

/// What the loop does after a hook returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Go on.
    Continue,
    /// Skip the optimiser step of this batch (from `after_backward`; gradient accumulation).
    SkipStep,
    /// Stop this batch here (no step), go to the next.
    CancelBatch,
    /// Stop this phase (training: validation still runs; `before_validate`: no validation
    /// and no epoch row), go to the next epoch.
    CancelEpoch,
    /// Stop the fit after this point (`after_fit` still runs).
    CancelFit,
}

impl Flow {
    fn rank(self) -> u8 {
        match self {
            Flow::Continue => 0,
            Flow::SkipStep => 1,
            Flow::CancelBatch => 2,
            Flow::CancelEpoch => 3,
            Flow::CancelFit => 4,
        }
    }

    /// The stronger of two flows (`CancelFit` > `CancelEpoch` > `CancelBatch` > `SkipStep`
    /// > `Continue`).
    pub fn max(self, other: Flow) -> Flow {
        if other.rank() > self.rank() {
            other
        } else {
            self
        }
    }

    /// A cancel (`CancelBatch`, `CancelEpoch`, `CancelFit`): the event stops there.
    pub fn is_cancel(self) -> bool {
        self.rank() >= 2
    }
}

/// The hooks, all no-ops by default. Each receives the learner mutably: read its
/// [`state`](Learner::state), change its hyper-parameters, model, or data, and return a
/// [`Flow`]. Callbacks run in ascending [`order`](Callback::order), then in the order they
/// were added; they are found by type ([`Learner::cb`], [`Learner::remove_cb`]).
///
/// ```
/// use fastburn_learner::{Callback, Flow, Learner, Result};
/// /// Stops the fit once the training loss drops below a target.
/// struct StopAt(f32);
/// impl Callback for StopAt {
///     fn after_batch(&mut self, l: &mut Learner) -> Result<Flow> {
///         let s = l.state();
///         Ok(if s.training && s.loss.is_some_and(|x| x < self.0) { Flow::CancelFit } else { Flow::Continue })
///     }
/// }
/// assert_eq!(StopAt(0.1).name(), "StopAt");
/// ```
#[allow(unused_variables)]
pub trait Callback: Send + Any {
    /// A short name for messages (the type's name by default).
    fn name(&self) -> String {
        let full = std::any::type_name::<Self>();
        full.rsplit("::").next().unwrap_or(full).to_string()
    }

    /// Position among callbacks: lower runs first (the recorder runs at -25, the NaN guard
    /// at -20, the parameter scheduler at -10, loggers at 10, checkpoints at 13, early
    /// stopping at 15, progress at 20).
    fn order(&self) -> i32 {
        0
    }

    /// Before the first epoch.
    fn before_fit(&mut self, l: &mut Learner) -> Result<Flow> {
        Ok(Flow::Continue)
    }
    /// After the last epoch (also after a cancelled fit; not after an error).
    fn after_fit(&mut self, l: &mut Learner) -> Result<Flow> {
        Ok(Flow::Continue)
    }
    /// Before each epoch.
    fn before_epoch(&mut self, l: &mut Learner) -> Result<Flow> {
        Ok(Flow::Continue)
    }
    /// After each epoch's validation; the epoch's row is in [`Learner::history`].
    fn after_epoch(&mut self, l: &mut Learner) -> Result<Flow> {
        Ok(Flow::Continue)
    }
    /// Before the training phase of an epoch.
    fn before_train(&mut self, l: &mut Learner) -> Result<Flow> {
        Ok(Flow::Continue)
    }
    /// After the training phase of an epoch.
    fn after_train(&mut self, l: &mut Learner) -> Result<Flow> {
        Ok(Flow::Continue)
    }
    /// Before an evaluation pass (validation, predictions; see [`RunState::phase`]).
    fn before_validate(&mut self, l: &mut Learner) -> Result<Flow> {
        Ok(Flow::Continue)
    }
    /// After an evaluation pass.
    fn after_validate(&mut self, l: &mut Learner) -> Result<Flow> {
        Ok(Flow::Continue)
    }
    /// Before each batch (hyper-parameters are set here).
    fn before_batch(&mut self, l: &mut Learner) -> Result<Flow> {
        Ok(Flow::Continue)
    }
    /// After the loss is computed (its value is in [`RunState::loss`]; in evaluation
    /// passes the batch's predictions are in [`Learner::batch_output`]).
    fn after_loss(&mut self, l: &mut Learner) -> Result<Flow> {
        Ok(Flow::Continue)
    }
    /// After the backward pass (gradients in [`Learner::grads_mut`]).
    fn after_backward(&mut self, l: &mut Learner) -> Result<Flow> {
        Ok(Flow::Continue)
    }
    /// After the optimiser step.
    fn after_step(&mut self, l: &mut Learner) -> Result<Flow> {
        Ok(Flow::Continue)
    }
    /// After each batch.
    fn after_batch(&mut self, l: &mut Learner) -> Result<Flow> {
        Ok(Flow::Continue)
    }
}

/// The hooks, as values (used by [`Learner::run_hook`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Hook {
    BeforeFit,
    AfterFit,
    BeforeEpoch,
    AfterEpoch,
    BeforeTrain,
    AfterTrain,
    BeforeValidate,
    AfterValidate,
    BeforeBatch,
    AfterLoss,
    AfterBackward,
    AfterStep,
    AfterBatch,
}

impl Hook {
    fn call(self, cb: &mut dyn Callback, l: &mut Learner) -> Result<Flow> {
        match self {
            Hook::BeforeFit => cb.before_fit(l),
            Hook::AfterFit => cb.after_fit(l),
            Hook::BeforeEpoch => cb.before_epoch(l),
            Hook::AfterEpoch => cb.after_epoch(l),
            Hook::BeforeTrain => cb.before_train(l),
            Hook::AfterTrain => cb.after_train(l),
            Hook::BeforeValidate => cb.before_validate(l),
            Hook::AfterValidate => cb.after_validate(l),
            Hook::BeforeBatch => cb.before_batch(l),
            Hook::AfterLoss => cb.after_loss(l),
            Hook::AfterBackward => cb.after_backward(l),
            Hook::AfterStep => cb.after_step(l),
            Hook::AfterBatch => cb.after_batch(l),
        }
    }
}

/// A callback's place in the list: present, running (taken out while its hook runs), or
/// removed during a hook.
enum Slot {
    Here(Box<dyn Callback>),
    Running,
    Gone,
}

impl Slot {
    fn get(&self) -> Option<&dyn Callback> {
        match self {
            Slot::Here(c) => Some(c.as_ref()),
            _ => None,
        }
    }
}

/// The learner: a model, its data, the loss, the optimiser, layer groups and callbacks.
///
/// Build it with [`vision_learner`](crate::vision_learner) (or [`Learner::new`] around any
/// [`VisionModel`]); train with [`fit`](Learner::fit),
/// [`fit_one_cycle`](Learner::fit_one_cycle), [`fit_sgdr`](Learner::fit_sgdr),
/// [`fit_flat_cos`](Learner::fit_flat_cos) or [`fine_tune`](Learner::fine_tune); find a
/// learning rate with [`lr_find`](Learner::lr_find); predict with
/// [`get_preds`](Learner::get_preds), [`tta`](Learner::tta), [`predict`](Learner::predict).
pub struct Learner {
    model: Option<VisionModel>,
    dls: DataLoaders,
    device: Device,
    loss: Loss,
    opt: Optim,
    cbs: Vec<Slot>,
    added: Vec<Box<dyn Callback>>,
    hook_depth: usize,
    groups: Vec<ParamGroup>,
    frozen: usize,
    cfg: LearnerConfig,
    state: RunState,
    grads: Option<GradientsParams>,
    out: Option<BatchOutput>,
    features: Option<Arc<FeatureCache>>,
    thresholds: Option<Vec<f32>>,
    run_id: String,
    parallel: Option<Parallel>,
}

impl std::fmt::Debug for Learner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Learner")
            .field("arch", &self.cfg.arch)
            .field("device", &self.device)
            .field("data_parallel", &self.parallel)
            .field("classes", &self.dls.vocab.len())
            .field("frozen_groups", &self.frozen)
            .field("epochs_done", &self.state.epochs_done)
            .field("callbacks", &self.callback_names())
            .finish()
    }
}

impl Learner {
    /// A learner of `model` (moved to `device.autodiff()`) on `dls`, with exactly the
    /// given callbacks; [`Learner::new`] adds the default ones. The loss follows the task
    /// (BCE-with-logits, with `cfg.pos_weight`, or cross-entropy).
    ///
    /// # Errors
    /// [`Error::GroupCount`] when `cfg.pos_weight` has the wrong length.
    pub fn from_parts(
        model: VisionModel,
        dls: DataLoaders,
        cfg: LearnerConfig,
        device: &Device,
        callbacks: Vec<Box<dyn Callback>>,
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
        let opt = Optim::new(cfg.opt, cfg.wd_bn_bias);
        let groups = model.layer_groups();
        let mut learn = Learner {
            model: Some(model),
            dls,
            device,
            loss,
            state: RunState {
                lrs: vec![0.0; groups.len()],
                mom: opt.momentum(),
                ..Default::default()
            },
            opt,
            cbs: Vec::new(),
            added: Vec::new(),
            hook_depth: 0,
            groups,
            frozen: 0,
            cfg,
            grads: None,
            out: None,
            features: None,
            thresholds: None,
            run_id: crate::checkpoint::new_run_id(),
            parallel: None,
        };
        for cb in callbacks {
            learn.add_boxed_callback(cb);
        }
        Ok(learn)
    }

    // ----- accessors -------------------------------------------------------------------

    /// The model.
    pub fn model(&self) -> &VisionModel {
        self.model
            .as_ref()
            .expect("the model is present outside a step")
    }

    /// Replaces the model (e.g. after loading weights): layer groups are recomputed, the
    /// frozen groups stay frozen, and cached activations are dropped (they were the old
    /// body's).
    pub fn set_model(&mut self, model: VisionModel) {
        let model = model.fork(&self.device).train();
        self.groups = model.layer_groups();
        self.model = Some(model);
        self.apply_freeze(self.frozen);
        self.features = None;
    }

    /// Puts back weights of this very model (same parameter ids: a record loaded into
    /// it), keeping the layer groups and the cache of activations.
    pub(crate) fn put_model(&mut self, model: VisionModel) {
        self.model = Some(model);
    }

    /// The data loaders.
    pub fn dls(&self) -> &DataLoaders {
        &self.dls
    }

    /// Trains on several devices from now on (`Some`), or on the learner's device alone
    /// (`None`): each batch is split across the devices, and the optimiser steps once per
    /// batch on the learner's device (see [`DataParallel`] and `docs/scale-out.md`).
    ///
    /// ```
    /// # use fastburn_data::*;
    /// # let dir = tempfile::tempdir().unwrap();
    /// # synth::SynthConfig::new(dir.path().to_path_buf()).with_n(16).with_size(32).generate().unwrap();
    /// use burn::tensor::Device;
    /// use fastburn_learner::{DataParallel, LearnerConfig, Reduce, vision_learner};
    /// use fastburn_models::Arch;
    ///
    /// let csv = CsvConfig::new(dir.path().join("labels.csv"), dir.path().join("train-jpg"));
    /// let dls = DataLoadersConfig::new(32).with_batch_size(8).from_csv(&csv, &Splitter::default())?;
    /// let cfg = LearnerConfig::new(Arch::ResNet18).with_base_width(8).with_path(dir.path().join("run"));
    /// let mut learn = vision_learner(dls, &cfg, None, &Device::flex())?;
    /// learn.quiet();
    /// # #[allow(deprecated)]
    /// let devices = vec![Device::flex(), Device::ndarray()];
    /// learn.set_data_parallel(Some(DataParallel::new(devices).with_reduce(Reduce::Gather)))?;
    /// learn.fit_one_cycle(1, 1e-3)?;
    /// assert_eq!(learn.train_devices().len(), 2);
    /// // The learner's own device must come first.
    /// # #[allow(deprecated)]
    /// let wrong = DataParallel::new(vec![Device::ndarray(), Device::flex()]);
    /// assert!(learn.set_data_parallel(Some(wrong)).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for no device, a first device that is not the learner's,
    /// a device listed twice, or [`Reduce::Collective`](crate::Reduce::Collective) with a
    /// device that has no collectives; [`Error::Replica`] when a worker thread cannot start.
    pub fn set_data_parallel(&mut self, dp: Option<DataParallel>) -> Result<()> {
        self.parallel = match dp {
            Some(dp) => Some(Parallel::new(dp, &self.device)?),
            None => None,
        };
        Ok(())
    }

    /// The data-parallel setting, if any.
    pub fn data_parallel(&self) -> Option<&DataParallel> {
        self.parallel.as_ref().map(Parallel::config)
    }

    /// The devices a training step runs on (autodiff): the learner's alone, or the
    /// data-parallel devices with the learner's first.
    pub fn train_devices(&self) -> Vec<Device> {
        match &self.parallel {
            Some(p) => p.devices().to_vec(),
            None => vec![self.device.clone()],
        }
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

    /// The run this learner's checkpoints belong to: a fresh id when the learner is built,
    /// the resumed run's after [`Learner::resume`]. Checkpoints carry it in their manifest
    /// and folder name, and pruning touches this run's checkpoints only.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Makes the learner continue run `id` (what [`Learner::resume`] does after loading).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] unless `id` is 1–64 ASCII letters, digits, `-` or `_`
    /// (it becomes part of folder names).
    pub fn set_run_id(&mut self, id: &str) -> Result<()> {
        crate::checkpoint::check_run_id(id)?;
        self.run_id = id.to_string();
        Ok(())
    }

    /// The loop's state, to restore it (checkpoints, the LR finder).
    pub(crate) fn state_mut(&mut self) -> &mut RunState {
        &mut self.state
    }

    /// The optimiser.
    pub fn opt(&self) -> &Optim {
        &self.opt
    }

    /// The optimiser, to change or restore its state.
    pub fn opt_mut(&mut self) -> &mut Optim {
        &mut self.opt
    }

    /// The layer groups (fastai's split: stem + early layers, later layers, head).
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

    /// The current evaluation batch's predictions (from `after_loss` to `after_batch` of
    /// an evaluation pass).
    pub fn batch_output(&self) -> Option<&BatchOutput> {
        self.out.as_ref()
    }

    /// Sets the learning rate of every group (what the scheduler does each batch).
    pub fn set_lrs(&mut self, lrs: Vec<f64>) {
        self.state.lrs = lrs;
    }

    /// Sets momentum / β1 (what the scheduler does each batch).
    pub fn set_momentum(&mut self, m: f64) {
        self.opt.set_momentum(m);
        self.state.mom = m;
    }

    /// Thresholds chosen for prediction (by [`Learner::optimize_thresholds`] or set).
    pub fn thresholds(&self) -> Option<&[f32]> {
        self.thresholds.as_deref()
    }

    /// Sets the prediction thresholds (one, or one per class).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] unless `t` holds one threshold or one per class, each in
    /// [0, 1].
    pub fn set_thresholds(&mut self, t: Vec<f32>) -> Result<()> {
        crate::inference::check_thresholds(&t, self.dls.vocab.len())?;
        self.thresholds = Some(t);
        Ok(())
    }

    /// Forgets tuned thresholds (back to the config's).
    pub(crate) fn restore_thresholds(&mut self, t: Option<Vec<f32>>) {
        self.thresholds = t;
    }

    /// The cache of body activations, when one is in use.
    pub fn feature_cache(&self) -> Option<&FeatureCache> {
        self.features.as_deref()
    }

    /// Installs (or drops, with `None`) the cache of body activations.
    pub(crate) fn set_feature_cache(&mut self, cache: Option<FeatureCache>) {
        self.features = cache.map(Arc::new);
    }

    // ----- callbacks -------------------------------------------------------------------

    /// Adds a callback (kept in `order`).
    pub fn add_callback(&mut self, cb: impl Callback + 'static) {
        self.add_boxed_callback(Box::new(cb));
    }

    /// Adds a boxed callback. During a hook, it joins once the hook is done.
    pub fn add_boxed_callback(&mut self, cb: Box<dyn Callback>) {
        if self.hook_depth > 0 {
            self.added.push(cb);
            return;
        }
        let order = cb.order();
        let pos = self
            .cbs
            .iter()
            .position(|c| c.get().is_some_and(|c| c.order() > order))
            .unwrap_or(self.cbs.len());
        self.cbs.insert(pos, Slot::Here(cb));
    }

    /// The first callback of type `T`.
    pub fn cb<T: Callback>(&self) -> Option<&T> {
        self.cbs
            .iter()
            .filter_map(Slot::get)
            .find_map(|c| (c as &dyn Any).downcast_ref::<T>())
    }

    /// The first callback of type `T`, mutably.
    pub fn cb_mut<T: Callback>(&mut self) -> Option<&mut T> {
        self.cbs.iter_mut().find_map(|s| match s {
            Slot::Here(c) => (c.as_mut() as &mut dyn Any).downcast_mut::<T>(),
            _ => None,
        })
    }

    /// Removes the first callback of type `T` and returns it.
    pub fn remove_cb<T: Callback>(&mut self) -> Option<Box<T>> {
        let i = self
            .cbs
            .iter()
            .position(|s| s.get().is_some_and(|c| (c as &dyn Any).is::<T>()))?;
        let slot = if self.hook_depth > 0 {
            std::mem::replace(&mut self.cbs[i], Slot::Gone)
        } else {
            self.cbs.remove(i)
        };
        match slot {
            Slot::Here(c) => (c as Box<dyn Any>).downcast::<T>().ok(),
            _ => None,
        }
    }

    /// Removes every callback of type `T`; returns how many were removed.
    pub fn remove_cbs<T: Callback>(&mut self) -> usize {
        let mut n = 0;
        while self.remove_cb::<T>().is_some() {
            n += 1;
        }
        n
    }

    /// The names of the callbacks, in running order.
    pub fn callback_names(&self) -> Vec<String> {
        self.cbs
            .iter()
            .filter_map(Slot::get)
            .map(Callback::name)
            .collect()
    }

    /// Runs one hook on every callback, in order, and returns the strongest flow. A
    /// callback that cancels ends the event: the ones after it do not run.
    ///
    /// # Errors
    /// The first callback error (the others do not run).
    pub fn run_hook(&mut self, hook: Hook) -> Result<Flow> {
        self.hook_depth += 1;
        let mut flow = Flow::Continue;
        let mut result = Ok(());
        let mut i = 0;
        while i < self.cbs.len() {
            let Slot::Here(mut cb) = std::mem::replace(&mut self.cbs[i], Slot::Running) else {
                i += 1;
                continue;
            };
            let r = hook.call(cb.as_mut(), self);
            if matches!(self.cbs[i], Slot::Running) {
                self.cbs[i] = Slot::Here(cb);
            }
            i += 1;
            match r {
                Ok(f) => {
                    flow = flow.max(f);
                    if f.is_cancel() {
                        break;
                    }
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        self.hook_depth -= 1;
        if self.hook_depth == 0 {
            self.cbs.retain(|s| matches!(s, Slot::Here(_)));
            for cb in std::mem::take(&mut self.added) {
                self.add_boxed_callback(cb);
            }
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

    /// fastai's `freeze_to(n)`: groups `0..n` are frozen, the rest train. As in fastai the
    /// optimiser state is cleared (`opt.clear_state()`: momentum buffers, Adam moments and
    /// step counts). Cached activations are dropped when the body becomes trainable.
    pub fn freeze_to(&mut self, n: usize) {
        self.apply_freeze(n);
        self.opt.clear_state();
    }

    /// Freezes groups `0..n` keeping the optimiser state (restoring a checkpoint).
    pub(crate) fn apply_freeze(&mut self, n: usize) {
        let n = n.min(self.groups.len());
        let model = self.model.take().expect("model present");
        self.model = Some(freeze_to(model, &self.groups, n, self.cfg.train_bn));
        self.frozen = n;
        if n + 1 < self.groups.len() {
            self.features = None;
        }
    }

    // ----- data ------------------------------------------------------------------------

    /// Swaps the data (progressive resizing: 64 → 128 → 256 px), keeping the model and the
    /// optimiser. The class vocabulary must be the same. Cached activations are dropped.
    ///
    /// # Errors
    /// [`Error::Checkpoint`] with [`CheckpointProblem::Vocabulary`] when the vocabularies
    /// differ.
    pub fn set_data(&mut self, dls: DataLoaders) -> Result<()> {
        if dls.vocab != self.dls.vocab {
            return Err(Error::Checkpoint {
                path: self.cfg.path.clone(),
                problem: CheckpointProblem::Vocabulary {
                    expected: self.dls.vocab.classes().to_vec(),
                    got: dls.vocab.classes().to_vec(),
                },
            });
        }
        self.dls = dls;
        self.features = None;
        Ok(())
    }

    // ----- the loop ----------------------------------------------------------------------

    /// The training batches of an epoch: the loader's, or the cached activations'.
    fn train_source(&self) -> Source {
        let tc = self.dls.train.config();
        match &self.features {
            Some(cache) => Source::Cache {
                cache: cache.clone(),
                train: true,
                batch_size: tc.batch_size,
                drop_last: tc.drop_last,
                seed: tc.seed,
                epoch: self.state.epochs_done,
            },
            None => Source::Loader {
                dl: self.dls.train.clone(),
                epoch: self.state.epochs_done,
                view: None,
            },
        }
    }

    /// The validation batches.
    fn valid_source(&self) -> Source {
        match &self.features {
            Some(cache) => Source::Cache {
                cache: cache.clone(),
                train: false,
                batch_size: self.dls.valid.config().batch_size,
                drop_last: false,
                seed: 0,
                epoch: 0,
            },
            None => Source::loader(self.dls.valid.clone()),
        }
    }

    /// fastai's `Learner.fit` without a scheduler: `n_epochs` epochs of training and
    /// validation with the callbacks installed now (the policies add a
    /// [`ParamScheduler`](crate::callbacks::ParamScheduler), the LR finder an
    /// [`LrFinder`](crate::LrFinder)). After a loaded checkpoint of an interrupted fit, it
    /// continues at the checkpoint's next epoch.
    ///
    /// # Errors
    /// [`Error::NoTrainingBatches`] when the training loader yields no batch; a data,
    /// non-finite-loss or callback error. The model keeps the weights of the last completed
    /// step.
    pub fn fit_loop(&mut self, n_epochs: usize) -> Result<()> {
        let source = self.train_source();
        let n_batches = source.num_batches();
        if n_batches == 0 {
            let tc = self.dls.train.config();
            return Err(Error::NoTrainingBatches {
                items: self.dls.train.dataset().len(),
                batch_size: tc.batch_size,
                drop_last: tc.drop_last,
            });
        }
        let start = self.state.resume_epoch.take().unwrap_or(0);
        let s = &mut self.state;
        s.n_epochs = n_epochs;
        s.n_batches = n_batches;
        s.n_iter = n_epochs * n_batches;
        s.iter = start * n_batches;
        s.epoch = start;
        s.smooth_raw = 0.0;
        s.smooth_n = 0;
        let r = self.do_fit(start, n_epochs);
        self.state.phase = Phase::Idle;
        self.state.training = false;
        r
    }

    fn do_fit(&mut self, start: usize, n_epochs: usize) -> Result<()> {
        if self.run_hook(Hook::BeforeFit)? != Flow::CancelFit {
            for epoch in start..n_epochs {
                self.state.epoch = epoch;
                match self.run_hook(Hook::BeforeEpoch)? {
                    Flow::CancelFit => break,
                    Flow::CancelEpoch => continue,
                    _ => {}
                }
                // A fit cancelled during training still validates and records the epoch
                // in progress, then stops.
                let train = self.train_phase()?;
                let valid = self.validate_phase()?;
                if valid == Flow::CancelFit {
                    break;
                }
                let after = if valid == Flow::CancelEpoch {
                    Flow::Continue
                } else {
                    self.run_hook(Hook::AfterEpoch)?
                };
                if train == Flow::CancelFit || after == Flow::CancelFit {
                    break;
                }
            }
        }
        self.run_hook(Hook::AfterFit)?;
        Ok(())
    }

    /// The training phase of one epoch; returns `CancelFit` when the fit must stop.
    fn train_phase(&mut self) -> Result<Flow> {
        self.state.training = true;
        self.state.phase = Phase::Train;
        let flow = match self.run_hook(Hook::BeforeTrain)? {
            Flow::CancelFit => return Ok(Flow::CancelFit),
            Flow::CancelEpoch => Flow::Continue,
            _ => {
                let source = self.train_source();
                self.all_batches(source, Phase::Train)?
            }
        };
        self.state.epochs_done += 1;
        let after = self.run_hook(Hook::AfterTrain)?;
        self.state.training = false;
        Ok(if flow == Flow::CancelFit || after == Flow::CancelFit {
            Flow::CancelFit
        } else {
            Flow::Continue
        })
    }

    /// The validation phase: an evaluation pass over the validation items.
    fn validate_phase(&mut self) -> Result<Flow> {
        let source = self.valid_source();
        self.eval_pass(source, Phase::Valid)
    }

    /// An evaluation pass (`before_validate`, every batch in evaluation mode on the
    /// inference device, `after_validate`). Callbacks see each batch's predictions in
    /// [`Learner::batch_output`]; `phase` tells them what the pass is for.
    ///
    /// # Errors
    /// A data or callback error.
    pub(crate) fn eval_pass(&mut self, source: Source, phase: Phase) -> Result<Flow> {
        let (training, prev_phase) = (self.state.training, self.state.phase);
        self.state.training = false;
        self.state.phase = phase;
        let r = (|| {
            if let f @ (Flow::CancelFit | Flow::CancelEpoch) =
                self.run_hook(Hook::BeforeValidate)?
            {
                return Ok(f);
            }
            let flow = self.all_batches(source, phase)?;
            let after = self.run_hook(Hook::AfterValidate)?;
            Ok(if flow == Flow::CancelFit || after == Flow::CancelFit {
                Flow::CancelFit
            } else {
                Flow::Continue
            })
        })();
        self.state.training = training;
        self.state.phase = prev_phase;
        r
    }

    /// Every batch of `source`, through [`Learner::one_batch`]; returns `CancelFit` when
    /// a callback stopped the fit.
    fn all_batches(&mut self, source: Source, phase: Phase) -> Result<Flow> {
        let train = phase == Phase::Train;
        let forward = match (phase, source.forward()) {
            (Phase::Features, _) => Forward::Body,
            (_, f) => f,
        };
        let devices = if train {
            self.train_devices()
        } else {
            vec![self.inference_device()]
        };
        let eval_model = (!train).then(|| self.model().valid());
        self.state.pass_batches = source.num_batches();
        for (b, shards) in source.sharded_batches(devices, self.dls.task).enumerate() {
            let mut shards = shards?;
            let f = match &eval_model {
                None => self.train_batch(b, shards, forward)?,
                Some(m) => self.eval_batch(m, b, shards.remove(0), forward)?,
            };
            match f {
                Flow::CancelEpoch => return Ok(Flow::Continue),
                Flow::CancelFit => return Ok(Flow::CancelFit),
                _ => {}
            }
        }
        Ok(Flow::Continue)
    }

    /// Runs the batch-start hook; `Some(flow)` ends the batch with that flow.
    fn start_batch(&mut self, b: usize, n: usize) -> Result<Option<Flow>> {
        self.state.batch = b;
        self.state.batch_items = n;
        self.state.loss = None;
        self.out = None;
        Ok(match self.run_hook(Hook::BeforeBatch)? {
            Flow::CancelBatch => Some(Flow::Continue),
            f @ (Flow::CancelEpoch | Flow::CancelFit) => Some(f),
            _ => None,
        })
    }

    /// Ends a batch: `after_batch`, and the flow the phase continues with.
    fn end_batch(&mut self) -> Result<Flow> {
        let f = self.run_hook(Hook::AfterBatch)?;
        self.out = None;
        Ok(match f {
            Flow::CancelEpoch | Flow::CancelFit => f,
            _ => Flow::Continue,
        })
    }

    /// One evaluation batch (fastai's `one_batch` with `training = False`).
    fn eval_batch(
        &mut self,
        model: &VisionModel,
        b: usize,
        input: Input,
        forward: Forward,
    ) -> Result<Flow> {
        if let Some(f) = self.start_batch(b, input.indices.len())? {
            return Ok(f);
        }
        let out = step::eval_batch(model, &self.loss, input, forward);
        let n = out.losses.len();
        self.state.loss = (n > 0)
            .then(|| (out.losses.iter().map(|&l| f64::from(l)).sum::<f64>() / n as f64) as f32);
        self.out = Some(out);
        if let f @ (Flow::CancelEpoch | Flow::CancelFit) = self.run_hook(Hook::AfterLoss)? {
            return Ok(f);
        }
        self.end_batch()
    }

    /// One training batch (fastai's `one_batch`): forward, loss, backward, step, with the
    /// hooks between.
    ///
    /// `shards` holds the batch split across the training devices (one shard on one device
    /// without data parallelism).
    fn train_batch(&mut self, b: usize, mut shards: Vec<Input>, forward: Forward) -> Result<Flow> {
        self.state.iter = self.state.epoch * self.state.n_batches + b;
        let items = shards.iter().map(|s| s.indices.len()).sum();
        if let Some(f) = self.start_batch(b, items)? {
            return Ok(f);
        }
        let model = self.model.take().expect("model present");
        // Dropout masks come from a seed fixed by (seed, epochs done, batch): training is a
        // function of the seed alone, and a resumed run repeats it exactly.
        let step_seed = fastburn_data::item_seed(self.cfg.seed, self.state.epochs_done, b);
        let staged = match &mut self.parallel {
            None => {
                let input = shards.remove(0);
                let logits = crate::rng::with_seed(&self.device, step_seed, || {
                    step::logits(&model, input.x, forward)
                });
                let loss = self.loss.forward(logits, input.y);
                let value: f32 = loss.clone().into_scalar();
                Ok(Step::Single(loss, value))
            }
            Some(p) => p
                .forward(&model, &self.loss, shards, forward, step_seed)
                .map(Step::Parallel),
        };
        self.model = Some(model);
        let staged = staged?;
        let value = match &staged {
            Step::Single(_, v) => *v,
            Step::Parallel(s) => s.value,
        };
        self.state.loss = Some(value);
        if value.is_finite() {
            let s = &mut self.state;
            s.smooth_n += 1;
            s.smooth_raw = 0.98 * s.smooth_raw + 0.02 * f64::from(value);
            s.smooth_loss = s.smooth_raw / (1.0 - 0.98f64.powi(s.smooth_n));
        }
        match self.run_hook(Hook::AfterLoss)? {
            Flow::CancelBatch => return self.end_batch(),
            f @ (Flow::CancelEpoch | Flow::CancelFit) => return Ok(f),
            _ => {}
        }
        let model = self.model.as_ref().expect("model present");
        self.grads = Some(match (staged, &mut self.parallel) {
            (Step::Single(loss, _), _) => GradientsParams::from_grads(loss.backward(), model),
            (Step::Parallel(s), Some(p)) => p.backward(s, model)?,
            (Step::Parallel(_), None) => {
                return Err(Error::InvalidConfig {
                    key: "devices",
                    value: "data parallelism turned off during a step".into(),
                    expected: "set_data_parallel outside a training step (not from after_loss)",
                });
            }
        });
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
            self.model = Some(self.opt.step(lr, model, grads));
            let f = self.run_hook(Hook::AfterStep)?;
            if matches!(f, Flow::CancelEpoch | Flow::CancelFit) {
                return Ok(f);
            }
        }
        self.grads = None;
        self.end_batch()
    }

    /// The learning rate of each parameter: group `i` gets `state.lrs[i]`.
    fn module_lr(&self) -> ModuleLearningRate {
        let lrs = &self.state.lrs;
        let mut sched = ModuleLrScheduler::new(lrs[0]);
        for (g, &lr) in self.groups.iter().zip(lrs).skip(1) {
            sched = sched.with_group(g.clone(), lr);
        }
        sched.step()
    }
}

/// One training step between its forward and backward passes (one lives at a time, on the
/// stack of `train_batch`: its size does not matter).
#[allow(clippy::large_enum_variant)]
enum Step {
    /// On the learner's device: the loss and its value.
    Single(burn::tensor::Tensor<1>, f32),
    /// On several devices.
    Parallel(crate::parallel::Staged),
}

impl Source {
    /// A loader's items in order, as they are (no TTA view).
    pub(crate) fn loader(dl: DataLoader) -> Self {
        Source::Loader {
            dl,
            epoch: 0,
            view: None,
        }
    }
}
