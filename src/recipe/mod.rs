//! The Planet recipe end to end, as one call: what `cargo run --example planet` and
//! `fastburn train` run.
//!
//! Data (a CSV + image folder, or the embedded synthetic Planet-like set) → seeded split →
//! resize cache → `lr_find` (plot saved) → for each image size, progressive resizing on
//! the same learner with the chosen policy: one-cycle (the default, fastai v2's), SGDR
//! cycles (`cycle_len = 1, cycle_mult = 2`, the lesson's: with pretrained weights, frozen
//! first and then unfrozen with `[lr/9, lr/3, lr]`) or `fine_tune` — then the threshold
//! search (the lesson's `opt_th` grid 0.17–0.23 as the headline, a wide 0.05–0.95 search
//! beside it), TTA, a per-label report, a Kaggle submission for the held-out images, the
//! export bundle, and `metrics.json`.
//!
//! Every step is a public call of the `data`, `learner` and `metrics` crates; this module
//! only strings them together and writes the artefacts.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::config::Config;
use burn::tensor::Device;
use fastburn_data::synth::SynthConfig;
use fastburn_data::{
    AugOn, AugPolicy, CsvConfig, DataLoaders, DataLoadersConfig, ItemList, ResizeCacheConfig,
    Split, Splitter, load_rgb,
};
use fastburn_learner::callbacks::{Checkpointer, CsvLogger, JsonLogger, PlotLosses};
use fastburn_learner::{
    CheckpointProblem, DataParallel, FineTune, Learner, LearnerConfig, LrFindConfig, Lrs, OneCycle,
    OptimizerConfig, Reduce, ResumeFrom, Sgdr, Suggest, Tta, TtaBlend, format_label_report,
    label_report, vision_learner, write_submission,
};
use fastburn_metrics::{FBetaMetric, ThresholdGrid, best_threshold, f2};
use fastburn_models::{Arch, Body, Family};
use serde::{Deserialize, Serialize};

use crate::device::{DeviceChoice, DeviceSpec};
use crate::error::{Error, Result};

mod args;
pub use args::{LrArg, OptArg, RecipeArgs, SuggestArg};

/// The training schedule of each image size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
pub enum Policy {
    /// `fit_sgdr(cycles, 1, 2, lr)` per stage (the Planet lesson).
    Sgdr,
    /// `fit_one_cycle(epochs, lr)` per size (fastai v2's from-scratch default).
    OneCycle,
    /// `fine_tune(epochs, lr)` per size.
    FineTune,
}

impl std::str::FromStr for Policy {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "sgdr" => Ok(Policy::Sgdr),
            "one-cycle" | "onecycle" => Ok(Policy::OneCycle),
            "fine-tune" | "finetune" => Ok(Policy::FineTune),
            _ => Err(Error::InvalidArgument {
                key: "recipe",
                value: s.to_string(),
                expected: "one-cycle, sgdr or fine-tune",
            }),
        }
    }
}

/// A width setting of the recipe ([`PlanetRecipe::base_width`], [`PlanetRecipe::width_mult`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WidthField {
    BaseWidth,
    WidthMult,
}

impl WidthField {
    /// Its name in `recipe.json`.
    pub(crate) fn recipe_key(self) -> &'static str {
        match self {
            WidthField::BaseWidth => "base_width",
            WidthField::WidthMult => "width_mult",
        }
    }

    /// Its command-line flag.
    pub(crate) fn flag(self) -> &'static str {
        match self {
            WidthField::BaseWidth => "--width",
            WidthField::WidthMult => "--width-mult",
        }
    }
}

/// Where pretrained weights come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Pretrained {
    /// Train from scratch.
    None,
    /// A torchvision `.pth` or `.safetensors` file of the architecture.
    File(PathBuf),
    /// torchvision's ImageNet weights, downloaded once into the cache (feature `pretrained`).
    ImageNet,
}

impl Pretrained {
    /// The pretrained body of `arch` at torchvision's width (torchvision's layout, classifier
    /// dropped), or `None` for [`Pretrained::None`]; see [`Pretrained::body_at`].
    ///
    /// ```
    /// use fastburn::models::Arch;
    /// use fastburn::recipe::Pretrained;
    /// let device = burn::tensor::Device::flex();
    /// assert!(Pretrained::None.body(Arch::ResNet18, &device)?.is_none());
    /// let missing = Pretrained::File("no/such/resnet18.pth".into());
    /// assert!(missing.body(Arch::ResNet18, &device).unwrap_err().to_string().contains("no/such"));
    /// # Ok::<(), fastburn::Error>(())
    /// ```
    ///
    /// # Errors
    /// The weights file is unreadable or does not fit `arch`; `ImageNet` without the
    /// `pretrained` feature; a failed or corrupt download.
    pub fn body(&self, arch: Arch, device: &Device) -> Result<Option<Body>> {
        self.body_at(arch, 1.0, device)
    }

    /// The pretrained body of `arch`, or `None` for [`Pretrained::None`]. A
    /// [`File`](Pretrained::File) may hold a full torchvision state_dict or only the body's
    /// tensors (`features.*`); a MobileNetV2 / EfficientNet file is read at `width_mult`
    /// (a ResNet file at torchvision's base width 64, ImageNet weights at torchvision's
    /// widths). The recipe and the CLI load weights through this.
    ///
    /// # Errors
    /// As [`Pretrained::body`].
    pub fn body_at(&self, arch: Arch, width_mult: f64, device: &Device) -> Result<Option<Body>> {
        match self {
            Pretrained::None => Ok(None),
            Pretrained::File(path) => Ok(Some(
                fastburn_models::VisionModelConfig::new(arch, 1)
                    .with_width_mult(width_mult)
                    .load_body(path, device)?,
            )),
            Pretrained::ImageNet => {
                #[cfg(feature = "pretrained")]
                {
                    let w = fastburn_models::weights::Weights::default_for(arch);
                    Ok(Some(fastburn_models::weights::pretrained_body(w, device)?))
                }
                #[cfg(not(feature = "pretrained"))]
                {
                    let _ = (arch, width_mult, device);
                    Err(Error::InvalidArgument {
                        key: "pretrained",
                        value: "imagenet".into(),
                        expected: "`none` or a weights file; downloading ImageNet weights needs a build with `--features pretrained`",
                    })
                }
            }
        }
    }
}

impl std::str::FromStr for Pretrained {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Ok(match s {
            "none" | "" => Pretrained::None,
            "imagenet" => Pretrained::ImageNet,
            path => Pretrained::File(PathBuf::from(path)),
        })
    }
}

/// Every setting of the recipe; defaults are the README's main job (the synthetic set on a
/// 2-core CPU within minutes).
#[derive(Config, Debug)]
pub struct PlanetRecipe {
    /// The run folder: plots, logs, the export bundle, `metrics.json`, the submission.
    pub out: PathBuf,
    /// Labels CSV (`image_name,tags`); `None` uses the synthetic set.
    #[config(default = "None")]
    pub csv: Option<PathBuf>,
    /// Image folder of the CSV.
    #[config(default = "None")]
    pub images: Option<PathBuf>,
    /// File suffix of the images.
    #[config(default = "\".jpg\".to_string()")]
    pub suffix: String,
    /// Held-out images for the submission (the synthetic set has its own).
    #[config(default = "None")]
    pub test_images: Option<PathBuf>,
    /// Folder of the generated synthetic set (cached there between runs).
    #[config(default = "PathBuf::from(\"target/planet-synth/data\")")]
    pub synth_dir: PathBuf,
    /// Synthetic chips (labelled).
    #[config(default = 1000)]
    pub synth_n: usize,
    /// Synthetic held-out chips.
    #[config(default = 200)]
    pub synth_test: usize,
    /// Synthetic chip side.
    #[config(default = 128)]
    pub synth_size: u32,
    /// Architecture.
    #[config(default = "Arch::ResNet18")]
    pub arch: Arch,
    /// Base width of a ResNet (64 = torchvision; smaller trains faster from scratch).
    #[config(default = 64)]
    pub base_width: usize,
    /// Channel multiplier of a MobileNetV2 / EfficientNet (1.0 = torchvision; also the
    /// width a pretrained file of theirs is read at).
    #[config(default = 1.0)]
    pub width_mult: f64,
    /// Pretrained weights.
    #[config(default = "Pretrained::None")]
    pub pretrained: Pretrained,
    /// Image sizes, trained in order on the same learner (progressive resizing).
    #[config(default = "vec![64, 128]")]
    pub sizes: Vec<u32>,
    /// Schedule per size.
    #[config(default = "Policy::OneCycle")]
    pub policy: Policy,
    /// SGDR only: fastai 0.7's warm-up (lr/100 over the first 1/20 of the first cycle).
    #[config(default = false)]
    pub sgdr_warmup: bool,
    /// SGDR cycles per stage, or epochs per size for one-cycle / fine-tune. 8 one-cycle
    /// epochs per size: the synthetic main job then trains (F2@0.2 0.90 with its best
    /// threshold at 0.21) in about 5 minutes on 2 cores; 3 left it untrained.
    #[config(default = 8)]
    pub epochs: usize,
    /// Learning rate; `None` runs `lr_find` and takes the `suggest` rule's suggestion.
    #[config(default = "None")]
    pub lr: Option<f64>,
    /// The LR finder's rule when `lr` is `None`; `None` picks by the start: fastai's
    /// default `valley` with pretrained weights, `minimum` (the LR of the lowest loss / 10,
    /// fastai v1's rule of thumb) from scratch. From scratch the sweep itself trains the
    /// network, so the loss falls over four decades and `valley` (the middle of the longest
    /// descent) lands near 7e-4, where the synthetic main job stayed at F2@0.2 0.47 after 6
    /// epochs; `minimum` gave 3e-2 and 0.90. A deliberate difference from fastai, documented
    /// in docs/guide.md ("Where fastburn differs from fastai").
    #[config(default = "None")]
    pub suggest: Option<Suggest>,
    /// fastai v2's `train_bn`: BatchNorm of frozen groups trains (`false`: fastai 0.7's
    /// frozen BatchNorm, as the lesson ran).
    #[config(default = true)]
    pub train_bn: bool,
    /// Batch size.
    #[config(default = 64)]
    pub batch_size: usize,
    /// Validation fraction.
    #[config(default = 0.2)]
    pub valid_pct: f64,
    /// Seed of split, augmentation, initialisation and dropout.
    #[config(default = 42)]
    pub seed: u64,
    /// Backend.
    #[config(default = "DeviceChoice::Auto")]
    pub device: DeviceChoice,
    /// Data-parallel training on these devices, the learner's first (`device` is then not
    /// used); empty: one device. See docs/scale-out.md.
    #[config(default = "Vec::new()")]
    pub devices: Vec<DeviceSpec>,
    /// How the replicas' gradients are combined on several devices.
    #[config(default = "Reduce::Auto")]
    pub reduce: Reduce,
    /// Test-time augmentation (the 8 dihedral views) for the final scores and the
    /// submission.
    #[config(default = true)]
    pub tta: bool,
    /// TTA takes the maximum over the views (fastai's `use_max`) instead of the 0.25 / 0.75
    /// mean.
    #[config(default = false)]
    pub tta_max: bool,
    /// Loader threads.
    #[config(default = 2)]
    pub workers: usize,
    /// The optimiser (`None`: SGD with momentum 0.9 — the lesson's — when pretrained,
    /// fastai v2's Adam from scratch).
    #[config(default = "None")]
    pub opt: Option<OptimizerConfig>,
    /// Use the resize cache (fastai's `data.resize(sz * 1.3)`) when images are larger.
    #[config(default = true)]
    pub resize_cache: bool,
    /// Print stage headings and the report.
    #[config(default = true)]
    pub verbose: bool,
}

/// One epoch row of `metrics.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRow {
    /// Epoch across the whole run.
    pub epoch: usize,
    /// Image size.
    pub size: u32,
    /// Training loss.
    pub train_loss: f64,
    /// Validation loss.
    pub valid_loss: f64,
    /// Validation F2 (samples-averaged) at the metric threshold 0.2.
    pub valid_f2: f64,
    /// Seconds.
    pub seconds: f64,
}

/// `metrics.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecipeReport {
    /// Validation F2 at the best threshold of the lesson's grid (`opt_th`: 0.17 … 0.23),
    /// the number comparable with the lesson's.
    pub valid_f2: f64,
    /// That threshold (used for TTA, the submission and the bundle).
    pub threshold: f32,
    /// Validation F2 at the best threshold of a wide search (0.05 … 0.95).
    pub valid_f2_wide: f64,
    /// That threshold: far from 0.2 means the probabilities are not calibrated yet.
    pub threshold_wide: f32,
    /// Validation F2 at 0.2 (the threshold of the training metric).
    #[serde(rename = "valid_f2_at_0.2")]
    pub valid_f2_at_02: f64,
    /// Validation F2 with dihedral TTA at `threshold`.
    pub valid_f2_tta: Option<f64>,
    /// Wall time of training (all fits), seconds.
    pub train_seconds: f64,
    /// Wall time of the whole recipe, seconds.
    pub total_seconds: f64,
    /// The learning rate used.
    pub lr: f64,
    /// Architecture.
    pub arch: String,
    /// Backend.
    pub device: String,
    /// Whether pretrained weights were used.
    pub pretrained: bool,
    /// Training and validation items.
    pub items: (usize, usize),
    /// Held-out images in the submission.
    pub submission_rows: usize,
    /// Every epoch.
    pub epochs: Vec<EpochRow>,
}

impl RecipeReport {
    /// The one-line summary printed at the end.
    pub fn summary_line(&self) -> String {
        let tta = self
            .valid_f2_tta
            .map_or_else(|| "no TTA".to_string(), |v| format!("with TTA {v:.4}"));
        format!(
            "valid F2={:.4} (threshold {:.2}), {tta}; F2@0.2={:.4}; wide search {:.4} at {:.2}; {} epochs in {:.0} s on {}",
            self.valid_f2,
            self.threshold,
            self.valid_f2_at_02,
            self.valid_f2_wide,
            self.threshold_wide,
            self.epochs.len(),
            self.train_seconds,
            self.device
        )
    }
}

macro_rules! say {
    ($cfg:expr, $($arg:tt)*) => {
        if $cfg.verbose {
            println!($($arg)*);
        }
    };
}

/// `run.json`: what a resumed run needs besides the recipe and the checkpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunProgress {
    /// Format of this file (1).
    pub format_version: u32,
    /// The learner's run id: its checkpoints in `RUN_DIR/checkpoints` carry it.
    pub run_id: String,
    /// The learning rate chosen (by `lr_find` or given), so a resume does not sweep again.
    pub lr: f64,
}

/// One fit of the recipe's plan ([`PlanetRecipe::plan`]).
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedFit {
    /// Index of the image size in [`PlanetRecipe::sizes`].
    pub stage: usize,
    /// The image size.
    pub size: u32,
    /// `Some(true)`: `freeze()` before the fit; `Some(false)`: `unfreeze()`; `None`: leave
    /// the groups as they are.
    pub freeze: Option<bool>,
    /// The schedule.
    pub schedule: PlannedSchedule,
    /// Epochs of the fit.
    pub epochs: usize,
    /// The heading printed before it.
    pub heading: String,
}

/// The schedule of a [`PlannedFit`].
#[derive(Debug, Clone, PartialEq)]
pub enum PlannedSchedule {
    /// `fit_one_cycle_with(epochs, lrs, params)`.
    OneCycle {
        /// Maximum learning rates.
        lrs: Lrs,
        /// One-cycle parameters.
        params: OneCycle,
    },
    /// `fit_sgdr_with(sgdr, lrs)`.
    Sgdr {
        /// Cycles.
        sgdr: Sgdr,
        /// Learning rates.
        lrs: Lrs,
    },
}

impl PlannedFit {
    /// Freezes as planned (unless `resumed`: a fit continued from a checkpoint keeps the
    /// freezing and optimiser state the checkpoint restored) and fits.
    fn run(&self, learn: &mut Learner, resumed: bool) -> Result<()> {
        if !resumed {
            match self.freeze {
                Some(true) => learn.freeze(),
                Some(false) => learn.unfreeze(),
                None => {}
            }
        }
        match &self.schedule {
            PlannedSchedule::OneCycle { lrs, params } => {
                learn.fit_one_cycle_with(self.epochs, lrs.clone(), params)?
            }
            PlannedSchedule::Sgdr { sgdr, lrs } => learn.fit_sgdr_with(sgdr, lrs.clone())?,
        }
        Ok(())
    }
}

/// The files of a run folder the recipe reads back to resume.
const RECIPE_FILE: &str = "recipe.json";
const PROGRESS_FILE: &str = "run.json";
/// Where `fastburn train` keeps its checkpoints inside the run folder.
pub const CHECKPOINT_DIR: &str = "checkpoints";

impl PlanetRecipe {
    /// Runs the recipe and writes its artefacts into `out`. A complete checkpoint is
    /// written into `out/checkpoints` after every epoch (the run's last two are kept), with
    /// `recipe.json` and `run.json` beside them, so a killed run continues with
    /// [`PlanetRecipe::resume`].
    ///
    /// # Errors
    /// Any data, model, learner or device error, naming the file or setting at fault.
    pub fn run(&self) -> Result<RecipeReport> {
        self.run_inner(false)
    }

    /// Continues the run in `dir` that was stopped before it finished (killed, crashed,
    /// power lost): reads its `recipe.json` and `run.json`, loads the newest complete
    /// checkpoint of that run from `dir/checkpoints` and carries on from the epoch after
    /// it, at its image size, with the learning rate the run had chosen. On the CPU the
    /// result is the uninterrupted run's: data order, augmentation and dropout depend only
    /// on the seed and the epoch. Prints which run, epoch and size stage it resumes.
    ///
    /// Killed before its first checkpoint, the run starts its training again (with the
    /// learning rate in `run.json`, or a new `lr_find` when even that was not written).
    /// A finished run is evaluated again from its last checkpoint.
    ///
    /// # Errors
    /// [`Error::NotARunFolder`] without `recipe.json`, [`Error::RunFile`] for a malformed
    /// one; a checkpoint that belongs to another vocabulary or architecture; otherwise as
    /// [`PlanetRecipe::run`].
    pub fn resume(dir: &Path) -> Result<RecipeReport> {
        let path = dir.join(RECIPE_FILE);
        if !path.is_file() {
            return Err(Error::NotARunFolder {
                path: dir.to_path_buf(),
            });
        }
        let bytes = fastburn_fsio::read_capped(&path, 1 << 20).map_err(|e| match e {
            fastburn_fsio::ReadError::Io(e) => Error::io(&path, e),
            e => Error::io(&path, std::io::Error::other(e)),
        })?;
        let recipe: PlanetRecipe =
            serde_json::from_slice(&bytes).map_err(|source| Error::RunFile {
                path: path.clone(),
                source,
            })?;
        // The folder may have moved since: its artefacts go where it is now.
        let recipe = PlanetRecipe {
            out: dir.to_path_buf(),
            ..recipe
        };
        recipe.run_inner(true)
    }

    /// The fits the recipe runs at learning rate `lr`, in order: per image size, one
    /// one-cycle fit; or SGDR (frozen then unfrozen with `[lr/9, lr/3, lr]` when
    /// `pretrained`); or `fine_tune`'s two phases ([`FineTune::phases`]).
    ///
    /// ```
    /// use fastburn::recipe::{PlanetRecipe, Policy};
    /// let r = PlanetRecipe::new("run".into()).with_sizes(vec![64, 128]).with_epochs(3);
    /// let plan = r.plan(1e-2, false)?;
    /// assert_eq!(plan.iter().map(|f| (f.size, f.epochs)).collect::<Vec<_>>(), [(64, 3), (128, 3)]);
    /// // SGDR with 3 cycles of 1, 2, 4 epochs, frozen then unfrozen per size.
    /// let sgdr = r.with_policy(Policy::Sgdr).plan(1e-2, true)?;
    /// assert_eq!(sgdr.len(), 4);
    /// assert!(sgdr.iter().all(|f| f.epochs == 7));
    /// assert_eq!(sgdr[0].freeze, Some(true));
    /// assert_eq!(sgdr[1].freeze, Some(false));
    /// # Ok::<(), fastburn::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`fastburn_learner::Error::InvalidConfig`] for SGDR cycles whose epochs overflow.
    pub fn plan(&self, lr: f64, pretrained: bool) -> Result<Vec<PlannedFit>> {
        let n = self.epochs;
        let sgdr = Sgdr {
            n_cycles: n,
            cycle_len: 1,
            cycle_mult: 2,
            warmup: self.sgdr_warmup,
        };
        let sgdr_epochs = || -> Result<usize> {
            Ok(fastburn_learner::Combined::sgdr(1.0, n, 1, 2, self.sgdr_warmup)?.1)
        };
        let mut plan = Vec::new();
        for (stage, &size) in self.sizes.iter().enumerate() {
            let fit = |freeze, schedule, epochs, heading| PlannedFit {
                stage,
                size,
                freeze,
                schedule,
                epochs,
                heading,
            };
            match self.policy {
                Policy::Sgdr if pretrained => {
                    plan.push(fit(
                        Some(true),
                        PlannedSchedule::Sgdr {
                            sgdr,
                            lrs: Lrs::Single(lr),
                        },
                        sgdr_epochs()?,
                        format!("{size} px, frozen: fit_sgdr({n} cycles, cycle_len 1, cycle_mult 2), lr {lr:.2e}"),
                    ));
                    plan.push(fit(
                        Some(false),
                        PlannedSchedule::Sgdr {
                            sgdr,
                            lrs: Lrs::PerGroup(vec![lr / 9.0, lr / 3.0, lr]),
                        },
                        sgdr_epochs()?,
                        format!("{size} px, unfrozen: fit_sgdr({n} cycles), lrs [lr/9, lr/3, lr]"),
                    ));
                }
                Policy::Sgdr => plan.push(fit(
                    None,
                    PlannedSchedule::Sgdr {
                        sgdr,
                        lrs: Lrs::Single(lr),
                    },
                    sgdr_epochs()?,
                    format!(
                        "{size} px: fit_sgdr({n} cycles, cycle_len 1, cycle_mult 2), lr {lr:.2e}"
                    ),
                )),
                Policy::OneCycle => plan.push(fit(
                    None,
                    PlannedSchedule::OneCycle {
                        lrs: Lrs::Single(lr),
                        params: OneCycle::default(),
                    },
                    n,
                    format!("{size} px: fit_one_cycle({n}, {lr:.2e})"),
                )),
                Policy::FineTune => {
                    for phase in FineTune::default().phases(n, lr) {
                        let what = if phase.frozen { "frozen" } else { "unfrozen" };
                        plan.push(fit(
                            Some(phase.frozen),
                            PlannedSchedule::OneCycle {
                                lrs: phase.lrs,
                                params: phase.params,
                            },
                            phase.epochs,
                            format!(
                                "{size} px: fine_tune({n}, {lr:.2e}), {what} phase of {} epochs",
                                phase.epochs
                            ),
                        ));
                    }
                }
            }
        }
        Ok(plan)
    }

    /// The width settings this architecture ignores or its weights cannot have: a ResNet's
    /// `base_width` ≠ 64 with pretrained weights, `width_mult` ≠ 1 on a ResNet, `base_width`
    /// ≠ 64 on MobileNetV2 / EfficientNet, ImageNet weights at `width_mult` ≠ 1. Returns the
    /// field at fault, its value and what it must be.
    pub(crate) fn width_problem(&self) -> Option<(WidthField, String, &'static str)> {
        let resnet = self.arch.family() == Family::ResNet;
        if resnet && self.width_mult != 1.0 {
            return Some((
                WidthField::WidthMult,
                self.width_mult.to_string(),
                "1.0 for a ResNet (its width is the base width)",
            ));
        }
        if !resnet && self.base_width != 64 {
            return Some((
                WidthField::BaseWidth,
                self.base_width.to_string(),
                "64 for mobilenet_v2 / efficientnet_b0 (their width is the width multiplier)",
            ));
        }
        if resnet && self.base_width != 64 && self.pretrained != Pretrained::None {
            return Some((
                WidthField::BaseWidth,
                self.base_width.to_string(),
                "64 with pretrained ResNet weights (torchvision's width)",
            ));
        }
        if self.pretrained == Pretrained::ImageNet && self.width_mult != 1.0 {
            return Some((
                WidthField::WidthMult,
                self.width_mult.to_string(),
                "1.0 with ImageNet weights (torchvision publishes only that width)",
            ));
        }
        None
    }

    fn run_inner(&self, resume: bool) -> Result<RecipeReport> {
        let t_all = Instant::now();
        if let Some((field, value, expected)) = self.width_problem() {
            return Err(Error::InvalidArgument {
                key: field.recipe_key(),
                value,
                expected,
            });
        }
        if self.sizes.is_empty() || self.sizes.iter().any(|&s| s < 32) {
            return Err(Error::InvalidArgument {
                key: "sizes",
                value: format!("{:?}", self.sizes),
                expected: "one or more image sizes of at least 32 px",
            });
        }
        // The devices first: one that is missing or not compiled in writes nothing.
        let devices = self
            .devices
            .iter()
            .map(|d| d.device())
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let device = match devices.first() {
            Some(d) => d.clone(),
            None => self.device.device()?,
        };
        let parallel = (!devices.is_empty())
            .then(|| DataParallel::new(devices.clone()).with_reduce(self.reduce));
        if let Some(dp) = &parallel {
            dp.check()?;
        }
        let device_name = if devices.len() > 1
            && let Some(dp) = &parallel
        {
            let names: Vec<String> = self.devices.iter().map(ToString::to_string).collect();
            format!("{} (data-parallel, {})", names.join(", "), dp.strategy())
        } else {
            device_label(self.device, &device)
        };
        std::fs::create_dir_all(&self.out).map_err(|e| Error::io(&self.out, e))?;
        if !resume {
            // First, so that a run killed at any later point can be resumed.
            write_out(&self.out.join(RECIPE_FILE), format!("{self}").as_bytes())?;
        }
        say!(self, "device: {device_name}");

        // Data.
        let (csv, test_dir) = self.dataset()?;
        let list = csv.load()?;
        let split = Splitter::random_pct(self.valid_pct, self.seed)?.split(list.len())?;
        say!(
            self,
            "{} images ({} train, {} valid), {} tags, {:?}",
            list.len(),
            split.train.len(),
            split.valid.len(),
            list.vocab.len(),
            list.task
        );

        // Model.
        let pretrained_body = self
            .pretrained
            .body_at(self.arch, self.width_mult, &device)?;
        let is_pretrained = pretrained_body.is_some();
        let opt = self.opt.unwrap_or(if is_pretrained {
            OptimizerConfig::sgd(0.9)
        } else {
            OptimizerConfig::adam()
        });
        if is_pretrained {
            say!(
                self,
                "pretrained {}: the head trains first, then the whole network",
                self.arch
            );
        } else {
            say!(
                self,
                "no pretrained weights: the whole {} (width {}) trains from scratch",
                self.arch,
                self.base_width
            );
        }
        let lcfg = LearnerConfig::new(self.arch)
            .with_base_width(self.base_width)
            .with_width_mult(self.width_mult)
            .with_train_bn(self.train_bn)
            .with_opt(opt)
            .with_seed(self.seed)
            .with_path(self.out.clone());
        let mut size = self.sizes[0];
        let dls = self.loaders(&list, &split, size, &device)?;
        let mut learn = vision_learner(dls, &lcfg, pretrained_body, &device)?;
        if parallel.is_some() {
            learn.set_data_parallel(parallel)?;
        }
        learn.add_callback(CsvLogger::new(self.out.join("history.csv")));
        learn.add_callback(JsonLogger::new(self.out.join("history.json")));
        learn.add_callback(PlotLosses::new(self.out.join("losses.png")));
        if !self.verbose {
            learn.quiet();
        }

        // Where a resumed run stands: its learning rate and its newest checkpoint.
        let ckpt_dir = self.out.join(CHECKPOINT_DIR);
        let progress_path = self.out.join(PROGRESS_FILE);
        let progress = if resume && progress_path.is_file() {
            let bytes = std::fs::read(&progress_path).map_err(|e| Error::io(&progress_path, e))?;
            let p: RunProgress =
                serde_json::from_slice(&bytes).map_err(|source| Error::RunFile {
                    path: progress_path.clone(),
                    source,
                })?;
            learn.set_run_id(&p.run_id)?;
            match learn.resume(&ckpt_dir, &ResumeFrom::Run(p.run_id.clone())) {
                Ok(path) => {
                    println!(
                        "resuming run {} from {} ({} epochs done)",
                        p.run_id,
                        path.display(),
                        learn.state().epochs_done
                    );
                }
                Err(fastburn_learner::Error::Checkpoint {
                    problem:
                        CheckpointProblem::NoCheckpoint | CheckpointProblem::NoCheckpointOfRun { .. },
                    ..
                }) => println!(
                    "resuming run {}: no checkpoint was written yet, training starts from its first epoch",
                    p.run_id
                ),
                Err(e) => return Err(e.into()),
            }
            Some(p)
        } else {
            if resume {
                println!(
                    "resuming {}: the run stopped before its learning rate was chosen, so it starts over",
                    self.out.display()
                );
            }
            None
        };

        // Learning rate.
        let lr = match (&progress, self.lr) {
            (Some(p), _) => p.lr,
            (None, Some(lr)) => lr,
            (None, None) => {
                let suggest = self.suggest.unwrap_or(if is_pretrained {
                    fastburn_learner::Suggest::Valley
                } else {
                    fastburn_learner::Suggest::Minimum
                });
                say!(self, "lr_find: sweeping the learning rate…");
                let r = learn.lr_find(&LrFindConfig::default())?;
                r.plot(&self.out.join("lr_find.png"))?;
                let lr = r
                    .suggestion(suggest)
                    .or_else(|| r.suggested())
                    .unwrap_or(1e-3)
                    .clamp(1e-5, 1.0);
                say!(
                    self,
                    "lr_find: valley {:.2e}, steep {:.2e}, minimum {:.2e} → lr {lr:.2e} ({}; plot: {})",
                    r.suggestion(fastburn_learner::Suggest::Valley)
                        .unwrap_or(f64::NAN),
                    r.suggestion(fastburn_learner::Suggest::Steep)
                        .unwrap_or(f64::NAN),
                    r.suggestion(fastburn_learner::Suggest::Minimum)
                        .unwrap_or(f64::NAN),
                    suggest.name(),
                    self.out.join("lr_find.png").display()
                );
                lr
            }
        };
        if progress.is_none() {
            let p = RunProgress {
                format_version: 1,
                run_id: learn.run_id().to_string(),
                lr,
            };
            let json = serde_json::to_vec_pretty(&p).expect("run.json serialises");
            write_out(&progress_path, &json)?;
        }
        learn.add_callback(Checkpointer::new(&ckpt_dir));

        // Training, fit by fit; a resumed run skips the fits its checkpoint completed and
        // continues the one it stopped in.
        let t_train = Instant::now();
        let plan = self.plan(lr, is_pretrained)?;
        let total: usize = plan.iter().map(|f| f.epochs).sum();
        let done = learn.state().epochs_done;
        let mut start = 0;
        for (i, fit) in plan.iter().enumerate() {
            let end = start + fit.epochs;
            if done >= end {
                start = end;
                continue;
            }
            if fit.size != size {
                size = fit.size;
                learn.set_data(self.loaders(&list, &split, size, &device)?)?;
            }
            let resumed = done > start;
            if done > 0 && done < end && done >= start {
                println!(
                    "resuming at epoch {} of {total}: size stage {} of {} ({} px), fit {} of {}, its epoch {} of {}",
                    done + 1,
                    fit.stage + 1,
                    self.sizes.len(),
                    fit.size,
                    i + 1,
                    plan.len(),
                    done - start + 1,
                    fit.epochs
                );
            }
            say!(self, "\n== {}", fit.heading);
            fit.run(&mut learn, resumed)?;
            start = end;
        }
        if done > 0 && done >= total {
            println!("all {total} epochs of the run were done: evaluating its last checkpoint");
        }
        let last = *self.sizes.last().expect("sizes checked non-empty");
        if size != last {
            // A finished run resumed: evaluate at the last size, as the run did.
            learn.set_data(self.loaders(&list, &split, last, &device)?)?;
        }
        let train_seconds = t_train.elapsed().as_secs_f64();

        // Thresholds, TTA, report.
        let valid = learn.dls().valid.clone();
        let preds = learn.get_preds(&valid)?;
        let c = preds.n_classes;
        let at02 = f2(&preds.probs, &preds.targets, c, 0.2).map_err(metric)?;
        let wide = best_threshold(&preds.probs, &preds.targets, c, 2.0, &ThresholdGrid::wide())
            .map_err(metric)?;
        let (thr, best) =
            learn.optimize_thresholds(&preds, 2.0, &ThresholdGrid::fastai07(), false)?;
        let threshold = thr[0];
        let mut inf = learn.inference();
        inf.set_thresholds(vec![threshold])?;
        let blend = if self.tta_max {
            TtaBlend::Max
        } else {
            TtaBlend::Mean { beta: 0.25 }
        };
        let tta_score = if self.tta {
            let tp = inf.tta_with(&valid, Tta::Dihedral, blend)?;
            Some(f2(&tp.probs, &tp.targets, c, threshold).map_err(metric)?)
        } else {
            None
        };
        let rows = label_report(&preds, inf.vocab(), &[threshold])?;
        say!(
            self,
            "\nper-label report (validation, threshold {threshold:.2}):\n{}",
            format_label_report(&rows)
        );

        // Submission and export.
        let mut submission_rows = 0;
        if let Some(dir) = test_dir {
            let (names, tp) = inf.predict_folder_with(
                &dir,
                self.tta.then_some((Tta::Dihedral, blend)),
                self.batch_size,
                self.workers,
            )?;
            let path = self.out.join("submission.csv");
            write_submission(&path, &names, &tp, inf.vocab(), &[threshold], inf.task())?;
            submission_rows = names.len();
            say!(
                self,
                "submission: {} ({} images)",
                path.display(),
                names.len()
            );
        }
        inf.export(&self.out.join("model.fbx"))?;

        let f2_metric = FBetaMetric::f2().with_thresholds(vec![lcfg.threshold]);
        let epochs = learn
            .history()
            .iter()
            .enumerate()
            .map(|(i, h)| EpochRow {
                epoch: i,
                size: h.size,
                train_loss: h.train_loss,
                valid_loss: h.valid_loss,
                valid_f2: h.metric_of(&f2_metric).unwrap_or(f64::NAN),
                seconds: h.seconds,
            })
            .collect();
        let report = RecipeReport {
            valid_f2: best,
            threshold,
            valid_f2_wide: wide.score,
            threshold_wide: wide.threshold,
            valid_f2_at_02: at02,
            valid_f2_tta: tta_score,
            train_seconds,
            total_seconds: t_all.elapsed().as_secs_f64(),
            lr,
            arch: self.arch.to_string(),
            device: device_name,
            pretrained: is_pretrained,
            items: (split.train.len(), split.valid.len()),
            submission_rows,
            epochs,
        };
        let json = serde_json::to_vec_pretty(&report).expect("report serialises");
        write_out(&self.out.join("metrics.json"), &json)?;
        say!(self, "\n{}", report.summary_line());
        Ok(report)
    }

    /// The labels CSV (generating the synthetic set when none is given) and the held-out
    /// folder.
    fn dataset(&self) -> Result<(CsvConfig, Option<PathBuf>)> {
        match (&self.csv, &self.images) {
            (Some(csv), Some(images)) => Ok((
                CsvConfig::new(csv.clone(), images.clone()).with_suffix(self.suffix.clone()),
                self.test_images.clone(),
            )),
            (Some(_), None) | (None, Some(_)) => Err(Error::InvalidArgument {
                key: "csv/images",
                value: "only one of them".into(),
                expected: "both --csv and --images, or neither (synthetic data)",
            }),
            (None, None) => {
                let dir = &self.synth_dir;
                let synth = SynthConfig::new(dir.clone())
                    .with_n(self.synth_n)
                    .with_n_test(self.synth_test)
                    .with_size(self.synth_size)
                    .with_seed(self.seed)
                    .with_workers(self.workers.max(1));
                let stamp = dir.join("synth.json");
                let want = format!("{synth}");
                let cached = std::fs::read_to_string(&stamp).is_ok_and(|s| s == want)
                    && dir.join("labels.csv").is_file();
                if cached {
                    say!(
                        self,
                        "synthetic Planet-like data: cached in {}",
                        dir.display()
                    );
                } else {
                    let t0 = Instant::now();
                    synth.generate()?;
                    write_out(&stamp, want.as_bytes())?;
                    say!(
                        self,
                        "synthetic Planet-like data: {} + {} chips of {} px written to {} in {:.1} s",
                        self.synth_n,
                        self.synth_test,
                        self.synth_size,
                        dir.display(),
                        t0.elapsed().as_secs_f64()
                    );
                }
                let test = (self.synth_test > 0).then(|| dir.join("test-jpg"));
                Ok((
                    CsvConfig::new(dir.join("labels.csv"), dir.join("train-jpg")),
                    test,
                ))
            }
        }
    }

    /// Loaders at `size`, through the resize cache when the images are larger than needed.
    fn loaders(
        &self,
        list: &ItemList,
        split: &Split,
        size: u32,
        device: &Device,
    ) -> Result<DataLoaders> {
        let mut list = list.clone();
        if self.resize_cache
            && let Some(first) = list.items.first()
        {
            let (w, h) = load_rgb(&first.path)?.dimensions();
            let target = (f64::from(size) * 1.3) as u32;
            if w.min(h) > target {
                let cache = ResizeCacheConfig::for_size(self.out.join("cache"), size)
                    .with_workers(self.workers.max(1));
                let (cached, rep) = cache.apply(&list)?;
                say!(
                    self,
                    "resize cache at {} px: {} written, {} reused",
                    cache.short_side,
                    rep.written,
                    rep.reused
                );
                list = cached;
            }
        }
        let on_gpu = !DeviceChoice::of(device).is_cpu();
        let cfg = DataLoadersConfig::new(size)
            .with_batch_size(self.batch_size)
            .with_workers(self.workers)
            .with_aug(Some(AugPolicy::top_down()))
            .with_aug_on(if on_gpu { AugOn::Device } else { AugOn::Cpu })
            .with_seed(self.seed);
        cfg.validate()?;
        Ok(cfg.build(&list, split))
    }
}

fn metric(e: fastburn_metrics::Error) -> Error {
    Error::Learner(fastburn_learner::Error::Metric {
        name: "f2".into(),
        source: e,
    })
}

/// A short name of the backend a device runs on.
pub fn device_label(choice: DeviceChoice, device: &Device) -> String {
    let name = DeviceChoice::of(device);
    if choice == DeviceChoice::Auto {
        format!("{name} (auto)")
    } else {
        name.to_string()
    }
}

/// Checks that every path of a run folder the CLI contract promises exists.
pub fn run_artefacts(out: &Path) -> Vec<PathBuf> {
    [
        "metrics.json",
        "model.fbx",
        "history.csv",
        "history.json",
        "losses.png",
        "recipe.json",
    ]
    .iter()
    .map(|f| out.join(f))
    .collect()
}

/// An artefact of the run, written atomically; a failure is the run's ([`Error::Io`]).
fn write_out(path: &Path, bytes: &[u8]) -> Result<()> {
    fastburn_fsio::write_atomic(path, bytes).map_err(|e| Error::io(path, e))
}
