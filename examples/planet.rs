//! The main job: the Planet recipe end to end on the embedded synthetic Planet-like data
//! (or on real data with `--csv FILE --images DIR`).
//!
//! ```text
//! cargo run --release --example planet
//! cargo run --release --example planet -- --csv ../shared/data/planet_tiny/labels.csv \
//!     --images ../shared/data/planet_tiny/train-jpg --sizes 64
//! cargo run --release --example planet --features wgpu -- --device wgpu
//! cargo run --release --example planet --features pretrained -- --pretrained imagenet
//! cargo run --release --example planet -- --help
//! cargo run --release --example planet -- --resume      # continue a killed run in --out
//! ```
//! The flags are [`fastburn::recipe::RecipeArgs`], the very definition `fastburn train`
//! uses; `--out DIR` defaults to `target/planet-run`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use fastburn::recipe::{PlanetRecipe, RecipeArgs};

/// The Planet recipe on the synthetic set (or on a CSV and its images).
#[derive(Debug, Parser)]
#[command(name = "planet")]
struct Cli {
    /// The run folder: model.fbx, metrics.json, history.csv/json, losses.png, lr_find.png,
    /// submission.csv; recipe.json, run.json and checkpoints/ to resume from.
    #[arg(long, default_value = "target/planet-run")]
    out: PathBuf,
    /// Continue the run in --out that stopped before it finished, from its newest
    /// checkpoint, with the settings it was started with.
    #[arg(long, conflicts_with = "RecipeArgs")]
    resume: bool,
    /// The recipe.
    #[command(flatten)]
    recipe: RecipeArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let run = if cli.resume {
        PlanetRecipe::resume(&cli.out)
    } else {
        cli.recipe.to_recipe(cli.out).and_then(|r| r.run())
    };
    match run {
        Ok(report) => {
            if cli.recipe.quiet {
                println!("{}", report.summary_line());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
