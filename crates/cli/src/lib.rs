#![warn(missing_docs)]
//! # fastburn-cli
//!
//! The `fastburn` command line: fastai's Planet recipe from a shell. Every subcommand is a
//! thin layer over public calls of the [`fastburn`] crates; `train` runs
//! [`fastburn::recipe::PlanetRecipe`] and nothing else.
//!
//! ## Subcommands
//! | command | what it does |
//! | --- | --- |
//! | `synth --out DIR [--n 1000] [--n-test 0] [--size 128] [--seed 42]` | writes a synthetic Planet-format dataset: `labels.csv` + `train-jpg/` (+ `test-jpg/`, `test_labels.csv`) |
//! | `verify --csv FILE --images DIR [--suffix .jpg]` | checks every CSV row and decodes every image; exit 0 with a one-line summary, or exit 2 listing each bad line and file |
//! | `train [--csv FILE --images DIR] --out RUN_DIR [--arch resnet34] [--sizes 64,128] [--epochs N] [--recipe one-cycle\|sgdr\|fine-tune] [--lr auto\|FLOAT] [--tta] …` | the recipe; writes `model.fbx`, `metrics.json`, `history.csv/json`, `losses.png`, `lr_find.png` (with `--lr auto`), `recipe.json`, `submission.csv` (with test images). Without `--csv`/`--images` it trains on the synthetic set (`--n` chips) |
//! | `predict --model RUN_DIR --images DIR --out sub.csv [--tta] [--threshold F]` | predicts a folder with an export bundle; writes `image_name,tags` |
//! | `lr-find --csv FILE --images DIR [--size 64] [--out lr_find.png]` | the learning-rate finder: suggestions on stdout, plot to `--out` |
//! | `show-batch --csv FILE --images DIR [--aug top-down\|fastai\|none] --out grid.png` | a PNG grid of an augmented training batch with its tags |
//! | `summary --arch resnet34 --size 64 [--classes 17] [--width 64]` | the layer table and parameter counts |
//! | `bench --arch resnet34 --size 64 --bs 64 --iters 5 --device flex` | prints `train_img_s=… infer_img_s=…` (see [`bench::measure`]) |
//!
//! Every subcommand has `--help`; `fastburn --version` prints the version. `--device` takes
//! `auto`, `flex`, `ndarray` or `wgpu` (those compiled in: features `flex` (default),
//! `ndarray`, `wgpu`; `pretrained` enables `--pretrained imagenet`).
//!
//! ## Exit status
//! 0 on success; 2 when the flags or the input (CSV, images, weights, model bundle) are at
//! fault; 1 when the run itself fails. The error is one `error: …` line on stderr, with the
//! details (every bad line and file for `verify`) on the following lines.
//!
//! ## Example session
//! ```text
//! $ fastburn synth --out data --n 1000 --n-test 200 --size 128
//! $ fastburn verify --csv data/labels.csv --images data/train-jpg
//! data/labels.csv: OK (1000 rows, 1000 images decoded)
//! $ fastburn show-batch --csv data/labels.csv --images data/train-jpg --size 128 --out grid.png
//! $ fastburn lr-find --csv data/labels.csv --images data/train-jpg --arch resnet18 --width 16
//! $ fastburn train --csv data/labels.csv --images data/train-jpg --test-images data/test-jpg \
//!       --out run --arch resnet18 --width 16 --sizes 64,128 --recipe one-cycle --epochs 3 \
//!       --lr auto --tta
//! $ fastburn predict --model run --images data/test-jpg --tta --out submission.csv
//! $ fastburn summary --arch resnet34 --size 64
//! $ fastburn bench --arch resnet34 --size 64 --bs 64 --iters 5 --device flex
//! train_img_s=21.4 infer_img_s=60.2
//! ```

pub mod args;
pub mod bench;
pub mod commands;
pub mod error;

pub use args::{Cli, Command};
pub use error::CliError;

/// Runs a parsed command line.
///
/// # Errors
/// The subcommand's [`CliError`]; [`CliError::exit_code`] says which exit status it maps to.
pub fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Synth(a) => commands::synth(&a),
        Command::Verify(a) => commands::verify(&a),
        Command::Train(a) => commands::train(&a),
        Command::Predict(a) => commands::predict(&a),
        Command::LrFind(a) => commands::lr_find(&a),
        Command::ShowBatch(a) => commands::show_batch(&a),
        Command::Summary(a) => commands::summary_cmd(&a),
        Command::Bench(a) => commands::bench(&a),
    }
}
