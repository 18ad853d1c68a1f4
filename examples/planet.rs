//! The main job: the Planet recipe end to end on the embedded synthetic Planet-like data
//! (or on real data with `--csv FILE --images DIR`).
//!
//! ```text
//! cargo run --release --example planet
//! cargo run --release --example planet -- --csv ../shared/data/planet_tiny/labels.csv \
//!     --images ../shared/data/planet_tiny/train-jpg --sizes 64
//! cargo run --release --example planet --features wgpu -- --device wgpu
//! cargo run --release --example planet --features pretrained -- --pretrained imagenet
//! ```
//! Options: `--out DIR` (default `target/planet-run`), `--device auto|flex|ndarray|wgpu`,
//! `--arch resnet18|resnet34|…`, `--width N`, `--pretrained none|FILE|imagenet`,
//! `--sizes 64,128`, `--epochs N`, `--lr auto|FLOAT`, `--bs N`, `--n N` (synthetic chips),
//! `--recipe sgdr|one-cycle|fine-tune`, `--no-tta`.

use std::path::PathBuf;
use std::process::ExitCode;

use fastburn::recipe::{PlanetRecipe, Policy, Pretrained};

fn parse() -> Result<PlanetRecipe, String> {
    let mut r = PlanetRecipe::new(PathBuf::from("target/planet-run"));
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        let bad = |v: &str| format!("invalid value for {flag}: {v}");
        match flag.as_str() {
            "--out" => r.out = value()?.into(),
            "--csv" => r.csv = Some(value()?.into()),
            "--images" => r.images = Some(value()?.into()),
            "--test-images" => r.test_images = Some(value()?.into()),
            "--suffix" => r.suffix = value()?,
            "--device" => {
                let v = value()?;
                r.device = v.parse().map_err(|e| format!("{e}"))?;
            }
            "--arch" => {
                let v = value()?;
                r.arch = v.parse().map_err(|_| bad(&v))?;
            }
            "--width" => {
                let v = value()?;
                r.base_width = v.parse().map_err(|_| bad(&v))?;
            }
            "--pretrained" => r.pretrained = value()?.parse::<Pretrained>().expect("infallible"),
            "--sizes" => {
                let v = value()?;
                r.sizes = v
                    .split(',')
                    .map(|s| s.trim().parse().map_err(|_| bad(&v)))
                    .collect::<Result<_, _>>()?;
            }
            "--epochs" => {
                let v = value()?;
                r.epochs = v.parse().map_err(|_| bad(&v))?;
            }
            "--lr" => {
                let v = value()?;
                r.lr = if v == "auto" {
                    None
                } else {
                    Some(v.parse().map_err(|_| bad(&v))?)
                };
            }
            "--bs" => {
                let v = value()?;
                r.batch_size = v.parse().map_err(|_| bad(&v))?;
            }
            "--n" => {
                let v = value()?;
                r.synth_n = v.parse().map_err(|_| bad(&v))?;
            }
            "--recipe" => {
                let v = value()?;
                r.policy = v.parse::<Policy>().map_err(|e| e.to_string())?;
            }
            "--no-tta" => r.tta = false,
            "--help" | "-h" => return Err(String::new()),
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(r)
}

fn main() -> ExitCode {
    let recipe = match parse() {
        Ok(r) => r,
        Err(msg) => {
            if !msg.is_empty() {
                eprintln!("error: {msg}");
            }
            eprintln!(
                "usage: cargo run --release --example planet -- [--csv FILE --images DIR] [--out DIR] [--device auto|flex|ndarray|wgpu] [--arch resnet34] [--pretrained none|FILE|imagenet] [--sizes 64,128] [--epochs N] [--lr auto|FLOAT] [--bs N] [--recipe sgdr|one-cycle|fine-tune] [--no-tta]"
            );
            return ExitCode::from(2);
        }
    };
    match recipe.run() {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
