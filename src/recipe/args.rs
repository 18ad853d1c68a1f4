//! The recipe's flags, defined once (clap derive) for `fastburn train` and for
//! `cargo run --example planet`, so the two cannot drift: both flatten [`RecipeArgs`] and
//! build the recipe with [`RecipeArgs::to_recipe`].

use std::path::PathBuf;
use std::str::FromStr;

use clap::{Args, ValueEnum};
use fastburn_learner::{OptimizerConfig, Suggest};
use fastburn_models::Arch;

use super::{PlanetRecipe, Policy, Pretrained};
use crate::device::{DeviceChoice, DeviceSpec};
use crate::error::{Error, Result};
use fastburn_learner::Reduce;

/// The learning rate: `auto` runs the learning-rate finder and takes its suggestion.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LrArg {
    /// Run `lr_find` first.
    Auto,
    /// A fixed (maximum) learning rate.
    Fixed(f64),
}

impl FromStr for LrArg {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("auto") {
            return Ok(LrArg::Auto);
        }
        match s.parse::<f64>() {
            Ok(v) if v.is_finite() && v > 0.0 => Ok(LrArg::Fixed(v)),
            _ => Err(format!(
                "`{s}` is not `auto` or a positive number (e.g. 1e-3)"
            )),
        }
    }
}

impl LrArg {
    /// The recipe's `lr` field: `None` for `auto`.
    pub fn to_recipe(self) -> Option<f64> {
        match self {
            LrArg::Auto => None,
            LrArg::Fixed(v) => Some(v),
        }
    }
}

/// The optimiser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OptArg {
    /// fastai v2's Adam (β = 0.9, 0.99; decoupled weight decay 0.01).
    Adam,
    /// SGD with momentum 0.9 and no weight decay (the Planet lesson's).
    Sgd,
}

impl From<OptArg> for OptimizerConfig {
    fn from(o: OptArg) -> OptimizerConfig {
        match o {
            OptArg::Adam => OptimizerConfig::adam(),
            OptArg::Sgd => OptimizerConfig::sgd(0.9),
        }
    }
}

/// The LR finder's rule for `--lr auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SuggestArg {
    /// `minimum` from scratch, `valley` with pretrained weights (see `PlanetRecipe::suggest`).
    Auto,
    /// fastai's default: the middle of the longest descent.
    Valley,
    /// The steepest descent.
    Steep,
    /// A tenth of the minimum's learning rate.
    Minimum,
    /// fastai's `slide`.
    Slide,
}

impl From<SuggestArg> for Option<Suggest> {
    fn from(s: SuggestArg) -> Option<Suggest> {
        match s {
            SuggestArg::Auto => None,
            SuggestArg::Valley => Some(Suggest::Valley),
            SuggestArg::Steep => Some(Suggest::Steep),
            SuggestArg::Minimum => Some(Suggest::Minimum),
            SuggestArg::Slide => Some(Suggest::Slide),
        }
    }
}

/// Every flag of the recipe but the run folder. Defaults equal [`PlanetRecipe`]'s.
#[derive(Debug, Clone, Args)]
pub struct RecipeArgs {
    /// Labels CSV (`image_name,tags`); without --csv and --images the synthetic set is used.
    #[arg(long, requires = "images")]
    pub csv: Option<PathBuf>,
    /// Image folder of the CSV.
    #[arg(long, requires = "csv")]
    pub images: Option<PathBuf>,
    /// Suffix appended to each image name to make its file name.
    #[arg(long, default_value = ".jpg")]
    pub suffix: String,
    /// Held-out images: predicted into RUN_DIR/submission.csv at the end (the synthetic set
    /// has its own).
    #[arg(long, requires = "csv")]
    pub test_images: Option<PathBuf>,
    /// Architecture: resnet18, resnet34, resnet50, resnet101, resnet152, mobilenet_v2 or
    /// efficientnet_b0.
    #[arg(long, default_value = "resnet18")]
    pub arch: Arch,
    /// Base width of a ResNet body (64 = torchvision; smaller trains faster from scratch).
    #[arg(long, default_value_t = 64)]
    pub width: usize,
    /// Channel multiplier of a mobilenet_v2 / efficientnet_b0 body (1.0 = torchvision; a
    /// pretrained file is read at this width).
    #[arg(long, default_value_t = 1.0)]
    pub width_mult: f64,
    /// Pretrained weights: `none`, a torchvision .pth / .safetensors file, or `imagenet`
    /// (download; needs a build with `--features pretrained`).
    #[arg(long, default_value = "none")]
    pub pretrained: Pretrained,
    /// Image sizes trained in order on the same model (progressive resizing), each ≥ 32.
    #[arg(long, value_delimiter = ',', default_values_t = [64u32, 128])]
    pub sizes: Vec<u32>,
    /// Epochs per size (one-cycle, fine-tune) or SGDR cycles per stage (sgdr).
    #[arg(long, default_value_t = 8)]
    pub epochs: usize,
    /// Schedule per size.
    #[arg(long, value_enum, default_value_t = Policy::OneCycle)]
    pub recipe: Policy,
    /// SGDR only: fastai 0.7's warm-up (lr/100 over the first 1/20 of the first cycle).
    #[arg(long)]
    pub sgdr_warmup: bool,
    /// Learning rate, or `auto` to run the learning-rate finder (plot: RUN_DIR/lr_find.png).
    #[arg(long, default_value = "auto")]
    pub lr: LrArg,
    /// The finder's rule for `--lr auto`.
    #[arg(long, value_enum, default_value_t = SuggestArg::Auto)]
    pub suggest: SuggestArg,
    /// Optimiser [default: sgd with pretrained weights, adam from scratch].
    #[arg(long, value_enum)]
    pub opt: Option<OptArg>,
    /// Keep BatchNorm of frozen groups in evaluation mode (fastai 0.7, the lesson's
    /// behaviour; fastai v2 trains it: `train_bn`).
    #[arg(long)]
    pub frozen_bn: bool,
    /// Batch size.
    #[arg(long, default_value_t = 64)]
    pub bs: usize,
    /// Fraction of the labelled images that validate.
    #[arg(long, default_value_t = 0.2)]
    pub valid_pct: f64,
    /// Seed of the split, augmentation, initialisation and dropout.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Backend: auto, flex, ndarray, wgpu or cuda.
    #[arg(long, default_value = "auto")]
    pub device: DeviceChoice,
    /// Data-parallel training on several devices, comma-separated, the learner's first:
    /// `cuda:0,cuda:1`, `flex,ndarray` (each batch is split across them; see
    /// docs/scale-out.md).
    #[arg(long, value_delimiter = ',', conflicts_with = "device")]
    pub devices: Vec<DeviceSpec>,
    /// How the devices' gradients meet: auto (collectives on CUDA, else gather), gather, or
    /// collective.
    #[arg(long, default_value = "auto", requires = "devices")]
    pub reduce: Reduce,
    /// Test-time augmentation (the 8 dihedral views) for the final score and submission:
    /// on by default; `--no-tta` turns it off.
    #[arg(long, overrides_with = "no_tta")]
    pub tta: bool,
    /// No test-time augmentation.
    #[arg(long)]
    pub no_tta: bool,
    /// TTA takes the maximum over the views instead of fastai's 0.25 / 0.75 mean (fastai's
    /// `use_max`).
    #[arg(long)]
    pub tta_max: bool,
    /// Loader threads.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Do not pre-shrink large images into RUN_DIR/cache.
    #[arg(long)]
    pub no_resize_cache: bool,
    /// Print only the final summary line.
    #[arg(long, short)]
    pub quiet: bool,
    /// Synthetic set: number of labelled chips.
    #[arg(long, default_value_t = 1000, conflicts_with = "csv")]
    pub n: usize,
    /// Synthetic set: number of held-out chips (predicted into submission.csv).
    #[arg(long, default_value_t = 200, conflicts_with = "csv")]
    pub n_test: usize,
    /// Synthetic set: chip side in pixels.
    #[arg(long, default_value_t = 128, conflicts_with = "csv")]
    pub synth_size: u32,
    /// Synthetic set: where it is written (and reused when its settings match)
    /// [default: RUN_DIR/synth].
    #[arg(long, conflicts_with = "csv")]
    pub synth_dir: Option<PathBuf>,
}

fn check(ok: bool, key: &'static str, value: impl ToString, expected: &'static str) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument {
            key,
            value: value.to_string(),
            expected,
        })
    }
}

impl RecipeArgs {
    /// The recipe these flags ask for, writing into `out`.
    ///
    /// ```
    /// use clap::Parser;
    /// use fastburn::recipe::{PlanetRecipe, RecipeArgs};
    /// #[derive(Parser)]
    /// struct Cli {
    ///     #[command(flatten)]
    ///     recipe: RecipeArgs,
    /// }
    /// // No flags: exactly the library's defaults.
    /// let r = Cli::parse_from(["x"]).recipe.to_recipe("run".into())?;
    /// let d = PlanetRecipe::new("run".into()).with_synth_dir("run/synth".into());
    /// assert_eq!(format!("{r}"), format!("{d}"));
    /// let bad = Cli::parse_from(["x", "--bs", "0"]).recipe.to_recipe("run".into());
    /// assert!(bad.unwrap_err().to_string().contains("--bs"));
    /// # Ok::<(), fastburn::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the flag whose value is out of range.
    pub fn to_recipe(&self, out: PathBuf) -> Result<PlanetRecipe> {
        let a = self;
        check(a.bs > 0, "--bs", a.bs, "at least 1")?;
        check(
            a.devices
                .iter()
                .enumerate()
                .all(|(i, d)| !a.devices[..i].contains(d)),
            "--devices",
            a.devices
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(","),
            "distinct devices",
        )?;
        check(a.epochs > 0, "--epochs", a.epochs, "at least 1")?;
        check(a.width > 0, "--width", a.width, "at least 1")?;
        check(
            fastburn_models::valid_width_mult(a.width_mult),
            "--width-mult",
            a.width_mult,
            "a channel multiplier in (0, 8]",
        )?;
        check(
            a.valid_pct > 0.0 && a.valid_pct < 1.0,
            "--valid-pct",
            a.valid_pct,
            "a fraction strictly between 0 and 1",
        )?;
        check(
            !a.sizes.is_empty() && a.sizes.iter().all(|&s| s >= 32),
            "--sizes",
            format!("{:?}", a.sizes),
            "comma-separated image sizes of at least 32 px, e.g. 64,128",
        )?;
        if a.csv.is_none() {
            check(a.n >= 2, "--n", a.n, "at least 2 synthetic chips")?;
            check(
                a.synth_size >= 16,
                "--synth-size",
                a.synth_size,
                "at least 16 pixels",
            )?;
        }
        let recipe = PlanetRecipe::new(out.clone())
            .with_csv(a.csv.clone())
            .with_images(a.images.clone())
            .with_suffix(a.suffix.clone())
            .with_test_images(a.test_images.clone())
            .with_synth_dir(a.synth_dir.clone().unwrap_or_else(|| out.join("synth")))
            .with_synth_n(a.n)
            .with_synth_test(a.n_test)
            .with_synth_size(a.synth_size)
            .with_arch(a.arch)
            .with_base_width(a.width)
            .with_width_mult(a.width_mult)
            .with_pretrained(a.pretrained.clone())
            .with_sizes(a.sizes.clone())
            .with_policy(a.recipe)
            .with_sgdr_warmup(a.sgdr_warmup)
            .with_epochs(a.epochs)
            .with_lr(a.lr.to_recipe())
            .with_suggest(a.suggest.into())
            .with_opt(a.opt.map(Into::into))
            .with_train_bn(!a.frozen_bn)
            .with_batch_size(a.bs)
            .with_valid_pct(a.valid_pct)
            .with_seed(a.seed)
            .with_device(a.device)
            .with_devices(a.devices.clone())
            .with_reduce(a.reduce)
            .with_tta(a.tta || !a.no_tta)
            .with_tta_max(a.tta_max)
            .with_workers(a.workers)
            .with_resize_cache(!a.no_resize_cache)
            .with_verbose(!a.quiet);
        if let Some((field, value, expected)) = recipe.width_problem() {
            return Err(Error::InvalidArgument {
                key: field.flag(),
                value,
                expected,
            });
        }
        Ok(recipe)
    }
}
