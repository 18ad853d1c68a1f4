//! One function per subcommand: check the flags, call the library, print the result.

use std::path::{Path, PathBuf};
use std::time::Instant;

use fastburn::burn::tensor::Device;
use fastburn::data::synth::SynthConfig;
use fastburn::data::{
    AugOn, AugPolicy, CsvConfig, DataLoadersConfig, DecodeOptions, ShowConfig, Splitter,
};
use fastburn::device::DeviceChoice;
use fastburn::learner::{
    LearnerConfig, LrFindConfig, OptimizerConfig, Suggest, Tta, load_learner, vision_learner,
    write_submission,
};
use fastburn::models::{VisionModelConfig, summary};
use fastburn::recipe::PlanetRecipe;

use crate::args::{
    BenchArgs, DataArgs, KernelsArg, LrFindArgs, PredictArgs, ShowBatchArgs, SummaryArgs,
    SynthArgs, TrainArgs, VerifyArgs,
};
use crate::bench::{BenchConfig, measure};
use crate::error::CliError;

type Result<T, E = CliError> = std::result::Result<T, E>;

impl DataArgs {
    /// The CSV reader's configuration.
    pub fn csv_config(&self) -> CsvConfig {
        CsvConfig::new(self.csv.clone(), self.images.clone()).with_suffix(self.suffix.clone())
    }
}

/// `fastburn synth`.
///
/// # Errors
/// A bad flag, or a file that cannot be written.
pub fn synth(a: &SynthArgs) -> Result<()> {
    CliError::check(a.n > 0, "--n", a.n, "at least 1 chip")?;
    check_size(a.size as usize, 16)?;
    CliError::check(
        (1..=100).contains(&a.quality),
        "--quality",
        a.quality,
        "1 to 100",
    )?;
    let t0 = Instant::now();
    let s = SynthConfig::new(a.out.clone())
        .with_n(a.n)
        .with_n_test(a.n_test)
        .with_size(a.size)
        .with_seed(a.seed)
        .with_quality(a.quality)
        .with_workers(a.workers.max(1))
        .generate()?;
    println!(
        "wrote {} chips of {} px to {} (labels: {})",
        a.n,
        a.size,
        s.images.display(),
        s.labels_csv.display()
    );
    if let (Some(images), Some(csv)) = (&s.test_images, &s.test_labels_csv) {
        println!(
            "wrote {} held-out chips to {} (labels: {})",
            a.n_test,
            images.display(),
            csv.display()
        );
    }
    println!("in {:.1} s", t0.elapsed().as_secs_f64());
    Ok(())
}

/// `fastburn verify`: the one-line OK summary on stdout, or [`CliError::Verify`] with the
/// full report.
///
/// # Errors
/// [`CliError::Verify`] listing every problem; the CSV cannot be read.
pub fn verify(a: &VerifyArgs) -> Result<()> {
    let report =
        fastburn::data::verify(&a.data.csv_config(), &DecodeOptions::default(), a.workers)?;
    if report.is_ok() {
        println!("{report}");
        Ok(())
    } else {
        Err(CliError::Verify(Box::new(report)))
    }
}

/// The recipe `fastburn train` runs for these flags.
///
/// # Errors
/// A bad flag.
pub fn train_recipe(a: &TrainArgs) -> Result<PlanetRecipe> {
    let out = a.out.clone().ok_or(CliError::InvalidFlag {
        flag: "--out",
        value: "none".into(),
        expected: "a run folder (required unless --resume)",
    })?;
    Ok(a.recipe.to_recipe(out)?)
}

/// `fastburn train`: runs [`PlanetRecipe::run`], or [`PlanetRecipe::resume`] with
/// `--resume RUN_DIR`.
///
/// # Errors
/// A bad flag; any error of the recipe.
pub fn train(a: &TrainArgs) -> Result<()> {
    let (report, out) = match &a.resume {
        Some(dir) => (PlanetRecipe::resume(dir)?, dir.clone()),
        None => {
            let recipe = train_recipe(a)?;
            (recipe.run()?, recipe.out)
        }
    };
    if a.recipe.quiet {
        println!("{}", report.summary_line());
    } else {
        println!("run folder: {}", out.display());
    }
    Ok(())
}

/// The export bundle a `--model` flag names: `DIR/model.fbx` for a folder, else the file.
pub fn bundle_path(model: &Path) -> PathBuf {
    if model.is_dir() {
        model.join("model.fbx")
    } else {
        model.to_path_buf()
    }
}

/// `fastburn predict`.
///
/// # Errors
/// A bad flag; a missing or corrupted bundle; an empty or unreadable image folder; the
/// submission cannot be written.
pub fn predict(a: &PredictArgs) -> Result<()> {
    CliError::check(a.bs > 0, "--bs", a.bs, "at least 1")?;
    if let Some(t) = a.threshold {
        CliError::check(
            (0.0..=1.0).contains(&t),
            "--threshold",
            t,
            "a probability between 0 and 1",
        )?;
    }
    let bundle = bundle_path(&a.model);
    CliError::check(
        bundle.is_file(),
        "--model",
        bundle.display(),
        "a run folder holding model.fbx, or a model bundle file",
    )?;
    let device = a.device.device()?;
    let mut inf = load_learner(&bundle, &device)?;
    if let Some(t) = a.threshold {
        inf.set_thresholds(vec![t])?;
    }
    let tta = a.tta.then_some(Tta::Dihedral);
    let (names, preds) = inf.predict_folder(&a.images, tta, a.bs, a.workers)?;
    write_submission(
        &a.out,
        &names,
        &preds,
        inf.vocab(),
        inf.thresholds(),
        inf.task(),
    )?;
    println!(
        "wrote {} predictions to {}{}",
        names.len(),
        a.out.display(),
        if a.tta { " (dihedral TTA)" } else { "" }
    );
    Ok(())
}

/// Where augmentation runs on `device`: on the device for GPUs, per item on CPUs (as the
/// recipe does).
fn aug_on(device: &Device) -> AugOn {
    if DeviceChoice::of(device).is_cpu() {
        AugOn::Cpu
    } else {
        AugOn::Device
    }
}

fn create_parent(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).map_err(|e| fastburn::data::Error::Io {
            path: dir.to_path_buf(),
            source: e,
        })?;
    }
    Ok(())
}

/// `fastburn lr-find`.
///
/// # Errors
/// A bad flag; data, weights or device errors; the plot cannot be written.
pub fn lr_find(a: &LrFindArgs) -> Result<()> {
    CliError::check(a.bs > 0, "--bs", a.bs, "at least 1")?;
    check_size(a.size as usize, 32)?;
    CliError::check(a.width > 0, "--width", a.width, "at least 1")?;
    CliError::check(
        a.start > 0.0 && a.start.is_finite(),
        "--start",
        a.start,
        "a positive learning rate",
    )?;
    CliError::check(
        a.end > a.start && a.end.is_finite(),
        "--end",
        a.end,
        "a learning rate above --start",
    )?;
    CliError::check(a.num_it >= 2, "--num-it", a.num_it, "at least 2 iterations")?;
    CliError::check(
        a.valid_pct > 0.0 && a.valid_pct < 1.0,
        "--valid-pct",
        a.valid_pct,
        "a fraction strictly between 0 and 1",
    )?;
    let device = a.device.device()?;
    let list = a.data.csv_config().load()?;
    let split = Splitter::random_pct(a.valid_pct, a.seed)?.split(list.len())?;
    let dcfg = DataLoadersConfig::new(a.size)
        .with_batch_size(a.bs)
        .with_workers(a.workers)
        .with_aug(Some(AugPolicy::top_down()))
        .with_aug_on(aug_on(&device))
        .with_seed(a.seed);
    dcfg.validate()?;
    let dls = dcfg.build(&list, &split);
    CliError::check(
        fastburn::models::valid_width_mult(a.width_mult),
        "--width-mult",
        a.width_mult,
        "a channel multiplier in (0, 8]",
    )?;
    let body = a.pretrained.body_at(a.arch, a.width_mult, &device)?;
    let opt = a
        .opt
        .map(OptimizerConfig::from)
        .unwrap_or(if body.is_some() {
            OptimizerConfig::sgd(0.9)
        } else {
            OptimizerConfig::adam()
        });
    create_parent(&a.out)?;
    let dir = a
        .out
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let lcfg = LearnerConfig::new(a.arch)
        .with_base_width(a.width)
        .with_width_mult(a.width_mult)
        .with_opt(opt)
        .with_seed(a.seed)
        .with_path(dir);
    let mut learn = vision_learner(dls, &lcfg, body, &device)?;
    learn.quiet();
    let r = learn.lr_find(&LrFindConfig {
        start: a.start,
        end: a.end,
        num_it: a.num_it,
        stop_div: true,
    })?;
    r.plot(&a.out)?;
    println!(
        "lr_find: {} iterations, lr {:.1e} to {:.1e}",
        r.lrs.len(),
        r.lrs.first().copied().unwrap_or(a.start),
        r.lrs.last().copied().unwrap_or(a.start)
    );
    for s in Suggest::ALL {
        match r.suggestion(s) {
            Some(v) => println!("{:<8} {v:.2e}", s.name()),
            None => println!("{:<8} -", s.name()),
        }
    }
    println!("plot: {}", a.out.display());
    Ok(())
}

/// `fastburn show-batch`.
///
/// # Errors
/// A bad flag; data errors; the PNG cannot be written.
pub fn show_batch(a: &ShowBatchArgs) -> Result<()> {
    CliError::check(a.bs > 0, "--bs", a.bs, "at least 1")?;
    CliError::check(a.cols > 0, "--cols", a.cols, "at least 1")?;
    check_size(a.size as usize, 8)?;
    CliError::check(
        (0.0..1.0).contains(&a.valid_pct),
        "--valid-pct",
        a.valid_pct,
        "a fraction from 0 up to (not including) 1",
    )?;
    let list = a.data.csv_config().load()?;
    let split = Splitter::random_pct(a.valid_pct, a.seed)?.split(list.len())?;
    let dcfg = DataLoadersConfig::new(a.size)
        .with_batch_size(a.bs)
        .with_workers(1)
        .with_aug(a.aug.policy())
        .with_aug_on(AugOn::Cpu)
        .with_seed(a.seed);
    dcfg.validate()?;
    let dls = dcfg.build(&list, &split);
    create_parent(&a.out)?;
    dls.train.show_batch(
        &a.out,
        &ShowConfig::new().with_cols(a.cols).with_max_items(a.bs),
    )?;
    println!("wrote {}", a.out.display());
    Ok(())
}

/// `fastburn summary`.
///
/// # Errors
/// A bad flag or an unavailable device.
pub fn summary_cmd(a: &SummaryArgs) -> Result<()> {
    check_size(a.size, 32)?;
    CliError::check(a.classes > 0, "--classes", a.classes, "at least 1")?;
    CliError::check(a.width > 0, "--width", a.width, "at least 1")?;
    CliError::check(a.bs > 0, "--bs", a.bs, "at least 1")?;
    CliError::check(
        fastburn::models::valid_width_mult(a.width_mult),
        "--width-mult",
        a.width_mult,
        "a channel multiplier in (0, 8]",
    )?;
    let device = a.device.device()?;
    let model = VisionModelConfig::new(a.arch, a.classes)
        .with_base_width(a.width)
        .with_width_mult(a.width_mult)
        .init(&device);
    println!("{}", summary(&model, [a.bs, 3, a.size, a.size], &device)?);
    Ok(())
}

/// `fastburn bench`: one line, `train_img_s=… infer_img_s=…`.
///
/// # Errors
/// A bad flag or an unavailable device.
pub fn bench(a: &BenchArgs) -> Result<()> {
    check_size(a.size, 32)?;
    CliError::check(a.bs > 0, "--bs", a.bs, "at least 1")?;
    CliError::check(a.iters > 0, "--iters", a.iters, "at least 1")?;
    CliError::check(a.classes > 0, "--classes", a.classes, "at least 1")?;
    CliError::check(a.width > 0, "--width", a.width, "at least 1")?;
    let device = a.device.device()?;
    fastburn::kernels::set_enabled(a.kernels == KernelsArg::On);
    let cfg = BenchConfig {
        arch: a.arch,
        base_width: a.width,
        classes: a.classes,
        size: a.size,
        batch_size: a.bs,
        iters: a.iters,
        warmup: a.warmup,
        seed: a.seed,
    };
    println!("{}", measure(&cfg, &device)?);
    Ok(())
}

/// `--size`: an image side from `min` (what the command can work with) to 4096 pixels (a
/// larger one only exhausts memory).
fn check_size(size: usize, min: usize) -> Result<()> {
    let expected = match min {
        8 => "8 to 4096 pixels",
        16 => "16 to 4096 pixels",
        _ => "32 to 4096 pixels",
    };
    CliError::check((min..=4096).contains(&size), "--size", size, expected)
}
