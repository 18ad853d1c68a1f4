//! Backend parity: the same convnet gives the same answer on every compiled backend.
//!
//! Reference: flex (the default CPU backend). Every other compiled backend — ndarray and
//! wgpu (Mesa's lavapipe in CI) — gets identical weights and inputs and must agree within
//! the tolerance stated per check. Build with `--features ndarray,wgpu` (CI uses
//! `--all-features`) for the comparisons to run; with flex alone the suite only checks
//! that flex agrees with itself after a round trip through a record.
//!
//! Tolerances, and why:
//! - single layers and a forward pass: 1e-4 relative to the output's scale (max |Δ| /
//!   max(1, max |ref|)). Backends sum in different orders (blocked GEMM, im2col, GPU
//!   reductions) and f32 carries ~7 digits, so a few ulps of each of the ~100–600-term dot
//!   products of a narrow ResNet add up to ~1e-6–1e-5; 1e-4 leaves a margin without hiding a
//!   wrong kernel (a bug shows up at 1e-2 or more);
//! - gradients: 1e-3 relative — a backward pass chains twice as many reductions and
//!   divides by batch statistics;
//! - 20 optimiser steps: 1e-2 relative on the loss trajectory — differences compound
//!   through the updates (SGD with momentum), and the check is that training follows the
//!   same path, not bit equality.

use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::conv::Conv2dConfig;
use burn::nn::pool::{AdaptiveAvgPool2dConfig, MaxPool2dConfig};
use burn::nn::{BatchNormConfig, DropoutConfig, LinearConfig, PaddingConfig2d};
use burn::tensor::{Device, Tensor, TensorData};
use fastburn::data::{AugParams, AugPolicy, LightingMode, PadMode, augment_batch};
use fastburn::models::{Arch, VisionModel, VisionModelConfig};
use rand::{RngExt, SeedableRng};

/// The backends compiled into this test build, reference (flex) first.
fn backends() -> Vec<(&'static str, Device)> {
    #[allow(unused_mut)] // only the flex entry when no other backend is compiled in
    let mut v = vec![("flex", Device::flex())];
    #[cfg(feature = "ndarray")]
    #[allow(deprecated)]
    v.push(("ndarray", Device::ndarray()));
    #[cfg(feature = "wgpu")]
    match fastburn::device::DeviceChoice::Wgpu.device() {
        Ok(d) => v.push(("wgpu", d)),
        Err(e) => {
            // CI installs lavapipe; a machine without any Vulkan driver says so and goes on.
            eprintln!("wgpu compiled in but unusable here ({e}): skipping its parity checks");
        }
    }
    v
}

fn random(shape: &[usize], seed: u64) -> Vec<f32> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..shape.iter().product::<usize>())
        .map(|_| rng.random_range(-1.0f32..1.0))
        .collect()
}

fn t4(data: &[f32], shape: [usize; 4], device: &Device) -> Tensor<4> {
    Tensor::from_data(TensorData::new(data.to_vec(), shape), device)
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.try_into_vec_as::<f32>().expect("read back")
}

/// Max |Δ| relative to the reference's scale.
fn rel_diff(reference: &[f32], other: &[f32]) -> f32 {
    assert_eq!(reference.len(), other.len(), "shapes differ");
    let scale = reference.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    reference
        .iter()
        .zip(other)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max)
        / scale
}

/// Runs `check` on every backend and compares each with the reference.
fn compare(name: &str, tol: f32, check: impl Fn(&Device) -> Vec<f32>) {
    let bs = backends();
    let reference = check(&bs[0].1);
    assert!(
        reference.iter().all(|v| v.is_finite()),
        "{name}: reference not finite"
    );
    for (backend, device) in &bs[1..] {
        let got = check(device);
        let d = rel_diff(&reference, &got);
        eprintln!("parity {name:<28} {backend:<8} max rel |Δ| = {d:.2e} (tolerance {tol:.0e})");
        assert!(
            d <= tol,
            "backend `{backend}`, check `{name}`: largest relative difference {d:.3e} > {tol:.0e}"
        );
    }
}

#[test]
fn layers_agree() {
    let x = random(&[2, 4, 12, 12], 1);
    compare("conv2d 3x3 stride 2", 1e-4, |d| {
        let conv = Conv2dConfig::new([4, 6], [3, 3])
            .with_stride([2, 2])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1));
        let conv = fastburn::learner::rng::with_seed(&Device::flex(), 3, || {
            let c = conv.init(&Device::flex());
            fastburn::learner::rng::materialize(&c);
            c
        });
        values(conv.fork(d).forward(t4(&x, [2, 4, 12, 12], d)))
    });
    compare("batchnorm eval", 1e-4, |d| {
        let bn = BatchNormConfig::new(4).init(d);
        values(bn.forward(t4(&x, [2, 4, 12, 12], d)))
    });
    compare("batchnorm train (batch stats)", 1e-4, |d| {
        let ad = d.clone().autodiff();
        let bn = BatchNormConfig::new(4).init(&ad);
        values(bn.forward(t4(&x, [2, 4, 12, 12], &ad)).without_autodiff())
    });
    compare("max pool 3x3 s2", 1e-6, |d| {
        let pool = MaxPool2dConfig::new([3, 3])
            .with_strides([2, 2])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init();
        values(pool.forward(t4(&x, [2, 4, 12, 12], d)))
    });
    compare("concat pool (max ‖ avg)", 1e-5, |d| {
        let x = t4(&x, [2, 4, 12, 12], d);
        let avg = AdaptiveAvgPool2dConfig::new([1, 1])
            .init()
            .forward(x.clone());
        values(Tensor::cat(vec![x.max_dims(&[2, 3]), avg], 1))
    });
    compare("linear", 1e-4, |d| {
        let lin = fastburn::learner::rng::with_seed(&Device::flex(), 4, || {
            let l = LinearConfig::new(48, 7).init(&Device::flex());
            fastburn::learner::rng::materialize(&l);
            l
        });
        let x = Tensor::<2>::from_data(TensorData::new(random(&[3, 48], 5), [3, 48]), d);
        values(lin.fork(d).forward(x))
    });
    compare("dropout in eval is identity", 0.0, |d| {
        let drop = DropoutConfig::new(0.5).init();
        values(drop.forward(t4(&x, [2, 4, 12, 12], d)))
    });
}

fn narrow_model() -> VisionModel {
    fastburn::learner::rng::with_seed(&Device::flex(), 7, || {
        let m = VisionModelConfig::new(Arch::ResNet18, 5)
            .with_base_width(4)
            .with_lin_ftrs(vec![16])
            .with_ps(0.0)
            .init(&Device::flex());
        fastburn::learner::rng::materialize(&m);
        m
    })
}

#[test]
fn narrow_resnet_forward_and_gradients_agree() {
    let model = narrow_model();
    let x = random(&[2, 3, 40, 40], 11);
    compare("resnet18/4 forward, eval", 1e-4, |d| {
        values(
            model
                .clone()
                .fork(d)
                .valid()
                .forward(t4(&x, [2, 3, 40, 40], d)),
        )
    });
    compare("resnet18/4 forward, train", 1e-4, |d| {
        let ad = d.clone().autodiff();
        values(
            model
                .clone()
                .fork(&ad)
                .train()
                .forward(t4(&x, [2, 3, 40, 40], &ad))
                .without_autodiff(),
        )
    });
    compare("resnet18/4 all gradients", 1e-3, |d| {
        let ad = d.clone().autodiff();
        let m = model.clone().fork(&ad).train();
        let loss = m.forward(t4(&x, [2, 3, 40, 40], &ad)).square().mean();
        let grads = loss.backward();
        struct G<'a>(&'a burn::tensor::Gradients, Vec<f32>);
        impl ModuleVisitor for G<'_> {
            fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
                if let Some(g) = p.grad(self.0) {
                    self.1.extend(g.try_into_vec_as::<f32>().expect("grad"));
                }
            }
        }
        let mut v = G(&grads, Vec::new());
        m.visit(&mut v);
        assert!(!v.1.is_empty());
        v.1
    });
}

#[test]
fn on_device_augmentation_agrees() {
    let policy = AugPolicy::fastai().with_max_rotate(30.0);
    let params: Vec<AugParams> = (0..3)
        .map(|s| policy.sample(&mut rand_chacha::ChaCha8Rng::seed_from_u64(s)))
        .collect();
    let x: Vec<f32> = random(&[3, 3, 20, 20], 21)
        .iter()
        .map(|v| (v + 1.0) / 2.0)
        .collect();
    compare("augment_batch (grid sample)", 1e-4, |d| {
        values(augment_batch(
            t4(&x, [3, 3, 20, 20], d),
            &params,
            PadMode::Reflection,
            LightingMode::Logit,
        ))
    });
}

#[test]
fn twenty_optimiser_steps_follow_the_same_trajectory() {
    use fastburn::data::synth::SynthConfig;
    use fastburn::data::{CsvConfig, DataLoadersConfig, Splitter};
    use fastburn::learner::{Learner, LearnerConfig, OptimizerConfig};

    let dir = tempfile::tempdir().unwrap();
    SynthConfig::new(dir.path().to_path_buf())
        .with_n(40)
        .with_size(32)
        .generate()
        .unwrap();
    let csv = CsvConfig::new(dir.path().join("labels.csv"), dir.path().join("train-jpg"));
    let dls = DataLoadersConfig::new(32)
        .with_batch_size(8)
        .with_workers(0)
        .with_aug(Some(AugPolicy::top_down())) // on the CPU: identical inputs everywhere
        .from_csv(&csv, &Splitter::default())
        .unwrap();
    let cfg = LearnerConfig::new(Arch::ResNet18)
        .with_base_width(4)
        .with_lin_ftrs(vec![16])
        .with_ps(0.0) // dropout masks come from each backend's own RNG
        .with_opt(OptimizerConfig::sgd(0.9))
        .with_path(dir.path().join("run"));
    let model = narrow_model();
    let model = VisionModelConfig::new(Arch::ResNet18, dls.vocab.len())
        .with_base_width(4)
        .with_lin_ftrs(vec![16])
        .with_ps(0.0)
        .init_with_body(model.body, &Device::flex());
    fastburn::learner::rng::materialize(&model);
    compare("20 SGD steps: loss trajectory", 1e-2, |d| {
        let mut l = Learner::new(model.clone(), dls.clone(), cfg.clone(), d).unwrap();
        l.quiet();
        l.fit(5, 1e-2).unwrap(); // 32 training items / 8 = 4 steps per epoch
        let losses: Vec<f32> = l.iterations().iter().map(|i| i.loss).collect();
        assert_eq!(losses.len(), 20);
        losses
    });
}
