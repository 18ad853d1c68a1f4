//! Building a learner: [`vision_learner`] (fastai's) and [`Learner::new`] with fastai's
//! default callbacks and metrics, from the public [`Learner::from_parts`].

use burn::module::Module;
use burn::tensor::Device;
use fastburn_data::{DataLoaders, Task};
use fastburn_metrics::{Accuracy, AccuracyMulti, FBetaMetric, Metric};
use fastburn_models::VisionModel;

use crate::callbacks::{EpochTable, ProgressBar, Recorder, TerminateOnNaN};
use crate::error::{Error, Result};
use crate::learner::{Callback, Learner, LearnerConfig};

/// fastai's default metrics for a task: for multi-label data F2 (samples-averaged, the
/// Kaggle score) and accuracy at `threshold`; for single-label data accuracy.
pub fn default_metrics(task: Task, threshold: f32) -> Vec<Box<dyn Metric>> {
    match task {
        Task::MultiLabel => vec![
            Box::new(FBetaMetric::f2().with_thresholds(vec![threshold])),
            Box::new(AccuracyMulti::new(threshold)),
        ],
        Task::SingleLabel => vec![Box::new(Accuracy::new())],
    }
}

/// The callbacks every learner starts with (fastai's `default_cbs` plus the NaN guard):
/// the [`Recorder`] with `metrics`, [`TerminateOnNaN`], the [`ProgressBar`] and the
/// printed [`EpochTable`] ([`Learner::quiet`] removes the last two).
pub fn default_callbacks(metrics: Vec<Box<dyn Metric>>) -> Vec<Box<dyn Callback>> {
    vec![
        Box::new(Recorder::new(metrics)),
        Box::new(TerminateOnNaN),
        Box::new(ProgressBar::new()),
        Box::new(EpochTable::new()),
    ]
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
/// [`Error::InvalidConfig`] when the data has no class (the head needs at least one
/// output) or a setting is out of range.
pub fn vision_learner(
    dls: DataLoaders,
    cfg: &LearnerConfig,
    body: Option<fastburn_models::Body>,
    device: &Device,
) -> Result<Learner> {
    if dls.vocab.is_empty() {
        return Err(Error::InvalidConfig {
            key: "classes",
            value: "0".into(),
            expected: "data with at least one class",
        });
    }
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
    /// A learner around an existing model (moved to `device.autodiff()`), with
    /// [`default_callbacks`] and [`default_metrics`] at `cfg.threshold`.
    ///
    /// # Errors
    /// As [`Learner::from_parts`].
    pub fn new(
        model: VisionModel,
        dls: DataLoaders,
        cfg: LearnerConfig,
        device: &Device,
    ) -> Result<Self> {
        let metrics = default_metrics(dls.task, cfg.threshold);
        Learner::from_parts(model, dls, cfg, device, default_callbacks(metrics))
    }

    /// Removes the progress bar and the printed table (tests, libraries).
    pub fn quiet(&mut self) {
        self.remove_cbs::<ProgressBar>();
        self.remove_cbs::<EpochTable>();
    }
}
