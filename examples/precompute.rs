//! fastai 0.7's `precompute=True`, measured: with the body frozen, one epoch of the head
//! on images (the body runs forward every batch) against one epoch on cached activations.
//!
//! ```text
//! cargo run --release --example precompute
//! cargo run --release --example precompute -- --arch resnet18 --n 200 --size 64 --epochs 2
//! ```
//! Options: `--arch resnet34` (default), `--n 400` synthetic chips, `--size 64`,
//! `--epochs 1`, `--bs 64`, `--device auto|flex|ndarray|wgpu`.
//! The body has random weights here (no download); speed does not depend on them, and
//! with `load_body` the same calls train a head on torchvision's weights.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use fastburn::data::synth::SynthConfig;
use fastburn::data::{AugPolicy, CsvConfig, DataLoadersConfig, Splitter};
use fastburn::device::DeviceChoice;
use fastburn::learner::{LearnerConfig, OptimizerConfig, vision_learner};
use fastburn::models::Arch;

struct Args {
    arch: Arch,
    n: usize,
    size: u32,
    epochs: usize,
    bs: usize,
    device: DeviceChoice,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        arch: Arch::ResNet34,
        n: 400,
        size: 64,
        epochs: 1,
        bs: 64,
        device: DeviceChoice::Auto,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let v = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = || format!("invalid value for {flag}: {v}");
        match flag.as_str() {
            "--arch" => a.arch = v.parse().map_err(|_| bad())?,
            "--n" => a.n = v.parse().map_err(|_| bad())?,
            "--size" => a.size = v.parse().map_err(|_| bad())?,
            "--epochs" => a.epochs = v.parse().map_err(|_| bad())?,
            "--bs" => a.bs = v.parse().map_err(|_| bad())?,
            "--device" => a.device = v.parse().map_err(|e| format!("{e}"))?,
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(a)
}

fn run(a: &Args) -> Result<(), fastburn::Error> {
    let dir = PathBuf::from(format!("target/precompute-synth-{}", a.n));
    if !dir.join("labels.csv").is_file() {
        SynthConfig::new(dir.clone())
            .with_n(a.n)
            .with_size(a.size.max(64))
            .generate()?;
    }
    let csv = CsvConfig::new(dir.join("labels.csv"), dir.join("train-jpg"));
    let dls = DataLoadersConfig::new(a.size)
        .with_batch_size(a.bs)
        .with_aug(Some(AugPolicy::top_down()))
        .from_csv(&csv, &Splitter::default())?;
    let device = a.device.device()?;
    let cfg = LearnerConfig::new(a.arch)
        .with_opt(OptimizerConfig::sgd(0.9))
        .with_path(PathBuf::from("target/precompute-run"));
    let mut learn = vision_learner(dls, &cfg, None, &device)?;
    learn.quiet();
    learn.freeze();

    let t = Instant::now();
    learn.fit(a.epochs, 1e-2)?;
    let on_images = t.elapsed().as_secs_f64();

    let rep = learn.precompute()?;
    let t = Instant::now();
    learn.fit(a.epochs, 1e-2)?;
    let on_cache = t.elapsed().as_secs_f64();
    assert!(learn.is_precomputed(), "the second fit ran on the cache");

    println!(
        "{} at {} px, {} train + {} valid images, {} frozen epoch(s) of the head:",
        a.arch, a.size, rep.train_items, rep.valid_items, a.epochs
    );
    println!("  on images (body forward every batch): {on_images:.2} s");
    println!(
        "  on cached activations {:?}: {on_cache:.3} s ({:.0}× faster), after {:.2} s to compute the cache once",
        rep.feature_shape,
        on_images / on_cache.max(1e-9),
        rep.seconds
    );
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(msg) => {
            eprintln!("error: {msg}");
            eprintln!(
                "usage: cargo run --release --example precompute -- [--arch resnet34] [--n 400] [--size 64] [--epochs 1] [--bs 64] [--device auto|flex|ndarray|wgpu]"
            );
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
