//! Throughput measurement (`fastburn bench`, the criterion benches): training and inference throughput of a model on random data.
//!
//! A training step is what the learner does per batch — forward, BCE-with-logits loss,
//! backward, an SGD-with-momentum step — on `device.autodiff()`; inference is a forward
//! pass of `model.valid()` on the plain device. Every iteration reads a scalar back, so
//! asynchronous backends (wgpu) are timed with their work done, and the device is
//! synchronised before each clock is read.

use std::fmt;
use std::time::Instant;

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Distribution, Tensor};
use fastburn_learner::{Loss, OptimizerConfig};
use fastburn_models::{Arch, VisionModel, VisionModelConfig};

use crate::{Error, Result};

/// What to measure.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchConfig {
    /// Architecture.
    pub arch: Arch,
    /// Base width of the body.
    pub base_width: usize,
    /// Number of classes.
    pub classes: usize,
    /// Input side in pixels (at least 32).
    pub size: usize,
    /// Batch size.
    pub batch_size: usize,
    /// Timed iterations of each of training and inference.
    pub iters: usize,
    /// Untimed iterations before each.
    pub warmup: usize,
    /// Seed of the weights and the batch.
    pub seed: u64,
}

impl BenchConfig {
    /// A configuration with one warm-up iteration and seed 0.
    pub fn new(arch: Arch, size: usize, batch_size: usize, iters: usize) -> Self {
        BenchConfig {
            arch,
            base_width: 64,
            classes: 17,
            size,
            batch_size,
            iters,
            warmup: 1,
            seed: 0,
        }
    }
}

/// Throughputs measured by [`measure`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BenchResult {
    /// Training images per second (forward + loss + backward + optimiser step).
    pub train_img_s: f64,
    /// Inference images per second (evaluation-mode forward).
    pub infer_img_s: f64,
    /// Mean training loss over the timed iterations (finite when the model computes).
    pub mean_loss: f64,
}

impl fmt::Display for BenchResult {
    /// The line `fastburn bench` prints: `train_img_s=21.4 infer_img_s=60.2`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "train_img_s={:.1} infer_img_s={:.1}",
            self.train_img_s, self.infer_img_s
        )
    }
}

/// Runs `warmup` untimed then `iters` timed training steps, then the same for inference,
/// on a random batch; returns images per second for each.
///
/// # Errors
/// [`Error::InvalidArgument`] naming the field when `iters`, `batch_size`, `classes` or
/// `base_width` is 0 or `size` is under 32. (A backend that runs out of device memory
/// panics inside Burn; that is not caught here.)
///
/// # Example
/// ```
/// use fastburn_models::Arch;
/// use fastburn::bench::{BenchConfig, measure};
/// let cfg = BenchConfig { base_width: 4, warmup: 0, ..BenchConfig::new(Arch::ResNet18, 32, 2, 1) };
/// let r = measure(&cfg, &burn::tensor::Device::flex())?;
/// assert!(r.train_img_s > 0.0 && r.infer_img_s > 0.0 && r.mean_loss.is_finite());
/// let bad = BenchConfig { size: 16, ..cfg };
/// assert!(measure(&bad, &burn::tensor::Device::flex()).is_err());
/// # Ok::<(), fastburn::Error>(())
/// ```
pub fn measure(cfg: &BenchConfig, device: &Device) -> Result<BenchResult> {
    let check = |ok: bool, key: &'static str, value: usize, expected: &'static str| {
        if ok {
            Ok(())
        } else {
            Err(Error::InvalidArgument {
                key,
                value: value.to_string(),
                expected,
            })
        }
    };
    check(
        cfg.iters > 0,
        "iters",
        cfg.iters,
        "at least 1 timed iteration",
    )?;
    check(
        cfg.batch_size > 0,
        "batch_size",
        cfg.batch_size,
        "at least 1",
    )?;
    check(cfg.classes > 0, "classes", cfg.classes, "at least 1")?;
    check(
        cfg.base_width > 0,
        "base_width",
        cfg.base_width,
        "at least 1",
    )?;
    check(cfg.size >= 32, "size", cfg.size, "at least 32 px")?;
    let plain = device.clone().without_autodiff();
    let ad = plain.clone().autodiff();
    let (n, s, c) = (cfg.batch_size, cfg.size, cfg.classes);

    ad.seed(cfg.seed);
    let mut model = VisionModelConfig::new(cfg.arch, c)
        .with_base_width(cfg.base_width)
        .init(&ad);
    let (mut optim, _hp) = OptimizerConfig::sgd(0.9).init(false);
    let loss_fn = Loss::BceWithLogits { pos_weight: None };
    let x = Tensor::<4>::random([n, 3, s, s], Distribution::Normal(0.0, 1.0), &ad);
    let y = Tensor::<2>::random([n, c], Distribution::Bernoulli(0.5), &ad);
    let lr = 1e-3;

    let mut step = |model: VisionModel| -> (VisionModel, f32) {
        let logits = model.forward(x.clone());
        let loss = loss_fn.forward(logits, y.clone());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let model = optim.step(lr, model, grads);
        (model, loss.into_scalar::<f32>())
    };
    for _ in 0..cfg.warmup {
        model = step(model).0;
    }
    let _ = plain.sync();
    let t0 = Instant::now();
    let mut loss_sum = 0.0f64;
    for _ in 0..cfg.iters {
        let (m, l) = step(model);
        model = m;
        loss_sum += f64::from(l);
    }
    let _ = plain.sync();
    let train_s = t0.elapsed().as_secs_f64();

    let eval = model.valid();
    let xv = Tensor::<4>::random([n, 3, s, s], Distribution::Normal(0.0, 1.0), &plain);
    let infer = || eval.forward(xv.clone()).sum().into_scalar::<f32>();
    for _ in 0..cfg.warmup {
        infer();
    }
    let _ = plain.sync();
    let t1 = Instant::now();
    for _ in 0..cfg.iters {
        infer();
    }
    let _ = plain.sync();
    let infer_s = t1.elapsed().as_secs_f64();

    let images = (n * cfg.iters) as f64;
    Ok(BenchResult {
        train_img_s: images / train_s.max(1e-9),
        infer_img_s: images / infer_s.max(1e-9),
        mean_loss: loss_sum / cfg.iters as f64,
    })
}
