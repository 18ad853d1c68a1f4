//! The command line's flags (clap derive): one struct per subcommand.
//!
//! Defaults equal the library's (`PlanetRecipe`, `SynthConfig`, `LrFindConfig`, …) so that
//! `fastburn train --out run` runs exactly `PlanetRecipe::new("run")` with the synthetic
//! set under `RUN_DIR/synth`. `train`'s flags are the library's [`RecipeArgs`], the same
//! definition the example parses.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use fastburn::data::AugPolicy;
use fastburn::device::DeviceChoice;
use fastburn::models::Arch;
use fastburn::recipe::Pretrained;

/// fastai's image-classification recipe in pure Rust, on Burn.
#[derive(Debug, Parser)]
#[command(name = "fastburn", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a synthetic Planet-format dataset (labels.csv + train-jpg/).
    Synth(SynthArgs),
    /// Check a labels CSV and decode every image it names; exit 2 listing every problem.
    Verify(VerifyArgs),
    /// Train with the Planet recipe and write the run folder (model.fbx, metrics.json, …).
    Train(Box<TrainArgs>),
    /// Predict a folder of images with an exported model and write a submission CSV.
    Predict(PredictArgs),
    /// Run the learning-rate finder, print its suggestions and save its plot.
    LrFind(LrFindArgs),
    /// Save a PNG grid of a training batch (augmented) with its tags.
    ShowBatch(ShowBatchArgs),
    /// Print the layer table and parameter counts of a model.
    Summary(SummaryArgs),
    /// Measure training and inference throughput (images per second) on random data.
    Bench(BenchArgs),
}

/// `fastburn synth`.
#[derive(Debug, Args)]
pub struct SynthArgs {
    /// Output folder (labels.csv, train-jpg/, and test-jpg/ + test_labels.csv with --n-test).
    #[arg(long)]
    pub out: PathBuf,
    /// Number of labelled chips.
    #[arg(long, default_value_t = 1000)]
    pub n: usize,
    /// Number of held-out chips (test-jpg/, their tags in test_labels.csv).
    #[arg(long, default_value_t = 0)]
    pub n_test: usize,
    /// Side of each chip in pixels (at least 16).
    #[arg(long, default_value_t = 128)]
    pub size: u32,
    /// Seed: the same seed writes byte-identical files.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// JPEG quality (1-100).
    #[arg(long, default_value_t = 90)]
    pub quality: u8,
    /// Worker threads.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
}

/// A labels CSV and its image folder.
#[derive(Debug, Args)]
pub struct DataArgs {
    /// Labels CSV (`image_name,tags`).
    #[arg(long)]
    pub csv: PathBuf,
    /// Folder of the images the CSV names.
    #[arg(long)]
    pub images: PathBuf,
    /// Suffix appended to each image name to make its file name.
    #[arg(long, default_value = ".jpg")]
    pub suffix: String,
}

/// `fastburn verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The dataset.
    #[command(flatten)]
    pub data: DataArgs,
    /// Decoding threads.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
}

pub use fastburn::recipe::{LrArg, OptArg, RecipeArgs, SuggestArg};

/// The training augmentation shown by `show-batch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AugArg {
    /// Dihedral flips, rotation, zoom, lighting (satellite imagery; what `train` uses).
    TopDown,
    /// fastai v2's `aug_transforms()` defaults (horizontal flips only).
    Fastai,
    /// No augmentation.
    None,
}

impl AugArg {
    /// The augmentation policy (`None` for no augmentation).
    pub fn policy(self) -> Option<AugPolicy> {
        match self {
            AugArg::TopDown => Some(AugPolicy::top_down()),
            AugArg::Fastai => Some(AugPolicy::fastai()),
            AugArg::None => None,
        }
    }
}

/// `fastburn train`: the recipe's flags ([`RecipeArgs`], shared with
/// `cargo run --example planet`) and the run folder.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// The run folder: model.fbx, metrics.json, history.csv/json, losses.png, lr_find.png,
    /// submission.csv; recipe.json, run.json and checkpoints/ (one per epoch, the last two
    /// kept) to resume from.
    #[arg(long, required_unless_present = "resume")]
    pub out: Option<PathBuf>,
    /// Continue the run in RUN_DIR that stopped before it finished (killed, crashed): from
    /// its newest checkpoint, with the settings it was started with (RUN_DIR/recipe.json).
    /// Takes no other flag.
    #[arg(long, value_name = "RUN_DIR", conflicts_with_all = ["out", "RecipeArgs"])]
    pub resume: Option<PathBuf>,
    /// The recipe.
    #[command(flatten)]
    pub recipe: RecipeArgs,
}

/// `fastburn predict`.
#[derive(Debug, Args)]
pub struct PredictArgs {
    /// A run folder holding model.fbx, or an export bundle file.
    #[arg(long)]
    pub model: PathBuf,
    /// Folder of images to predict (every JPEG / PNG / TIFF in it).
    #[arg(long)]
    pub images: PathBuf,
    /// The submission CSV to write (`image_name,tags`).
    #[arg(long)]
    pub out: PathBuf,
    /// Test-time augmentation: average the 8 dihedral views.
    #[arg(long)]
    pub tta: bool,
    /// Probability above which a tag is predicted [default: the bundle's tuned threshold].
    #[arg(long)]
    pub threshold: Option<f32>,
    /// Backend: auto, flex, ndarray, wgpu or cuda.
    #[arg(long, default_value = "auto")]
    pub device: DeviceChoice,
    /// Batch size.
    #[arg(long, default_value_t = 64)]
    pub bs: usize,
    /// Loader threads.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
}

/// `fastburn lr-find`.
#[derive(Debug, Args)]
pub struct LrFindArgs {
    /// The dataset.
    #[command(flatten)]
    pub data: DataArgs,
    /// Architecture.
    #[arg(long, default_value = "resnet18")]
    pub arch: Arch,
    /// Base width of a ResNet body.
    #[arg(long, default_value_t = 64)]
    pub width: usize,
    /// Channel multiplier of a mobilenet_v2 / efficientnet_b0 body.
    #[arg(long, default_value_t = 1.0)]
    pub width_mult: f64,
    /// Pretrained weights: `none`, a weights file, or `imagenet` (feature `pretrained`);
    /// with weights the body is frozen during the sweep, as fastai does.
    #[arg(long, default_value = "none")]
    pub pretrained: Pretrained,
    /// Image size.
    #[arg(long, default_value_t = 64)]
    pub size: u32,
    /// Batch size.
    #[arg(long, default_value_t = 64)]
    pub bs: usize,
    /// Optimiser [default: sgd with pretrained weights, adam from scratch].
    #[arg(long, value_enum)]
    pub opt: Option<OptArg>,
    /// Fraction of the images held out (not used by the sweep).
    #[arg(long, default_value_t = 0.2)]
    pub valid_pct: f64,
    /// Seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Backend: auto, flex, ndarray, wgpu or cuda.
    #[arg(long, default_value = "auto")]
    pub device: DeviceChoice,
    /// Loader threads.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// The plot to write.
    #[arg(long, default_value = "lr_find.png")]
    pub out: PathBuf,
    /// First learning rate of the sweep.
    #[arg(long, default_value_t = 1e-7)]
    pub start: f64,
    /// Last learning rate of the sweep.
    #[arg(long, default_value_t = 10.0)]
    pub end: f64,
    /// Iterations of the sweep (it stops earlier when the loss diverges).
    #[arg(long, default_value_t = 100)]
    pub num_it: usize,
}

/// `fastburn show-batch`.
#[derive(Debug, Args)]
pub struct ShowBatchArgs {
    /// The dataset.
    #[command(flatten)]
    pub data: DataArgs,
    /// Image size.
    #[arg(long, default_value_t = 128)]
    pub size: u32,
    /// Images shown (the first training batch).
    #[arg(long, default_value_t = 16)]
    pub bs: usize,
    /// Augmentation applied to the training batch.
    #[arg(long, value_enum, default_value_t = AugArg::TopDown)]
    pub aug: AugArg,
    /// Tiles per row.
    #[arg(long, default_value_t = 4)]
    pub cols: usize,
    /// Fraction of the images held out (not shown).
    #[arg(long, default_value_t = 0.2)]
    pub valid_pct: f64,
    /// Seed of the split, shuffle and augmentation.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// The PNG to write.
    #[arg(long)]
    pub out: PathBuf,
}

/// `fastburn summary`.
#[derive(Debug, Args)]
pub struct SummaryArgs {
    /// Architecture.
    #[arg(long, default_value = "resnet34")]
    pub arch: Arch,
    /// Input image size (at least 32).
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Number of classes of the head.
    #[arg(long, default_value_t = 17)]
    pub classes: usize,
    /// Base width of a ResNet body.
    #[arg(long, default_value_t = 64)]
    pub width: usize,
    /// Channel multiplier of a mobilenet_v2 / efficientnet_b0 body.
    #[arg(long, default_value_t = 1.0)]
    pub width_mult: f64,
    /// Batch size of the summary's input.
    #[arg(long, default_value_t = 1)]
    pub bs: usize,
    /// Backend the forward pass runs on.
    #[arg(long, default_value = "flex")]
    pub device: DeviceChoice,
}

/// `fastburn bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Architecture.
    #[arg(long, default_value = "resnet34")]
    pub arch: Arch,
    /// Input image size (at least 32).
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Batch size.
    #[arg(long, default_value_t = 64)]
    pub bs: usize,
    /// Timed iterations (each of training and inference).
    #[arg(long, default_value_t = 5)]
    pub iters: usize,
    /// Untimed iterations first.
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// Base width of the body.
    #[arg(long, default_value_t = 64)]
    pub width: usize,
    /// Number of classes of the head.
    #[arg(long, default_value_t = 17)]
    pub classes: usize,
    /// Backend: auto, flex, ndarray, wgpu or cuda.
    #[arg(long, default_value = "flex")]
    pub device: DeviceChoice,
    /// Seed of the weights and the random batch.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// fastburn's CPU kernels (`on`), or Burn's own operations (`off`, to measure the
    /// kernels against them in one binary; the same as `FASTBURN_KERNELS=off`).
    #[arg(long, value_enum, default_value = "on")]
    pub kernels: KernelsArg,
}

/// Whether fastburn's kernels run (`fastburn bench --kernels`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KernelsArg {
    /// fastburn's kernels where the backend has them (flex).
    On,
    /// Burn's own operations everywhere.
    Off,
}
