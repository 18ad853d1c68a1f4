//! fastburn's kernels against Burn's reference operations on random shapes: forward values
//! and every gradient within 1e-5 of the reference's scale, bitwise run-to-run equality.
//!
//! The reference is Burn's own `conv2d` / `BatchNorm` on the same flex device (which the
//! torchvision-parity suite of `fastburn-models` ties to PyTorch).

use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::module::conv2d as burn_conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Distribution, Tensor, TensorData};
use fastburn_kernels::{Activation, accelerated, batch_norm, conv_bn, conv2d, conv2d_residual};
use proptest::prelude::*;

fn device() -> Device {
    Device::flex().autodiff()
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

/// `max |a − b| / max(1, max |b|)`.
fn rel_err(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    a.iter()
        .zip(b)
        .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()))
        / scale
}

fn random<const D: usize>(shape: [usize; D], seed: u64, device: &Device) -> Tensor<D> {
    // A seeded generator independent of Burn's global RNG, so every case is reproducible.
    let n: usize = shape.iter().product();
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let v: Vec<f32> = (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect();
    Tensor::from_data(TensorData::new(v, shape), device)
}

struct ConvCase {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    o: usize,
    k: [usize; 2],
    stride: [usize; 2],
    pad: [(usize, usize); 2],
    bias: bool,
    relu: bool,
}

/// Forward, dx, dw, db of ours and Burn's, as relative errors.
fn conv_errors(case: &ConvCase, seed: u64) -> [f32; 4] {
    let device = device();
    let x = random([case.n, case.c, case.h, case.w], seed, &device);
    let w = random([case.o, case.c, case.k[0], case.k[1]], seed + 1, &device);
    let b = random([case.o], seed + 2, &device);
    let up = random(
        {
            let oh = (case.h + case.pad[0].0 + case.pad[0].1 - case.k[0]) / case.stride[0] + 1;
            let ow = (case.w + case.pad[1].0 + case.pad[1].1 - case.k[1]) / case.stride[1] + 1;
            [case.n, case.o, oh, ow]
        },
        seed + 3,
        &device,
    );
    let opts = ConvOptions {
        stride: case.stride,
        padding: case.pad,
        dilation: [1, 1],
        groups: 1,
    };
    let act = if case.relu {
        Activation::Relu
    } else {
        Activation::Identity
    };
    let run = |ours: bool| {
        let (x, w, b) = (
            x.clone().require_grad(),
            w.clone().require_grad(),
            b.clone().require_grad(),
        );
        let bias = case.bias.then(|| b.clone());
        let y = if ours {
            conv2d(x.clone(), w.clone(), bias, opts.clone(), act)
        } else {
            act.apply(burn_conv2d(x.clone(), w.clone(), bias, opts.clone()))
        };
        let grads = (y.clone() * up.clone()).sum().backward();
        let gb = if case.bias {
            values(b.grad(&grads).unwrap())
        } else {
            vec![]
        };
        (
            values(y),
            values(x.grad(&grads).unwrap()),
            values(w.grad(&grads).unwrap()),
            gb,
        )
    };
    let (y1, dx1, dw1, db1) = run(true);
    let (y0, dx0, dw0, db0) = run(false);
    [
        rel_err(&y1, &y0),
        rel_err(&dx1, &dx0),
        rel_err(&dw1, &dw0),
        if case.bias { rel_err(&db1, &db0) } else { 0.0 },
    ]
}

#[test]
fn the_kernels_are_on_for_flex() {
    assert!(accelerated(&Device::flex()));
    assert!(accelerated(&Device::flex().autodiff()));
}

/// The layers torchvision's ResNets and MobileNets use, at small sizes.
#[test]
fn model_layers_match_burn() {
    let cases = [
        // 7x7 stride 2 stem, pad 3, on an odd size
        ConvCase {
            n: 2,
            c: 3,
            h: 19,
            w: 17,
            o: 8,
            k: [7, 7],
            stride: [2, 2],
            pad: [(3, 3), (3, 3)],
            bias: false,
            relu: false,
        },
        // 3x3 stride 1 and 2
        ConvCase {
            n: 3,
            c: 5,
            h: 9,
            w: 9,
            o: 6,
            k: [3, 3],
            stride: [1, 1],
            pad: [(1, 1), (1, 1)],
            bias: true,
            relu: true,
        },
        ConvCase {
            n: 2,
            c: 4,
            h: 10,
            w: 7,
            o: 8,
            k: [3, 3],
            stride: [2, 2],
            pad: [(1, 1), (1, 1)],
            bias: false,
            relu: true,
        },
        // 1x1 stride 1 and 2 (bottleneck and downsample)
        ConvCase {
            n: 2,
            c: 8,
            h: 6,
            w: 6,
            o: 16,
            k: [1, 1],
            stride: [1, 1],
            pad: [(0, 0), (0, 0)],
            bias: false,
            relu: false,
        },
        ConvCase {
            n: 2,
            c: 8,
            h: 7,
            w: 7,
            o: 4,
            k: [1, 1],
            stride: [2, 2],
            pad: [(0, 0), (0, 0)],
            bias: true,
            relu: false,
        },
        // 1x1 with padding on one side only: the output is larger than the input (a case
        // proptest found: such a conv is not a plain copy of the input)
        ConvCase {
            n: 1,
            c: 1,
            h: 1,
            w: 1,
            o: 1,
            k: [1, 1],
            stride: [1, 1],
            pad: [(0, 1), (0, 0)],
            bias: false,
            relu: false,
        },
        ConvCase {
            n: 2,
            c: 3,
            h: 3,
            w: 2,
            o: 2,
            k: [1, 1],
            stride: [1, 1],
            pad: [(0, 0), (0, 2)],
            bias: true,
            relu: true,
        },
        // batch 1, a 2x2 last-stage map
        ConvCase {
            n: 1,
            c: 16,
            h: 2,
            w: 2,
            o: 16,
            k: [3, 3],
            stride: [1, 1],
            pad: [(1, 1), (1, 1)],
            bias: false,
            relu: true,
        },
    ];
    for (i, case) in cases.iter().enumerate() {
        let errs = conv_errors(case, 100 + i as u64);
        assert!(errs.iter().all(|e| *e < 1e-5), "case {i}: {errs:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    /// Random shapes: odd sizes, every stride and padding in 0..=2, batch from 1.
    #[test]
    fn random_convolutions_match_burn(
        n in 1usize..4, c in 1usize..6, o in 1usize..7,
        h in 1usize..12, w in 1usize..12,
        kh in 1usize..4, kw in 1usize..4,
        sh in 1usize..3, sw in 1usize..3,
        pt in 0usize..3, pb in 0usize..3, pl in 0usize..3, pr in 0usize..3,
        bias in any::<bool>(), relu in any::<bool>(), seed in 0u64..1000,
    ) {
        prop_assume!(h + pt + pb >= kh && w + pl + pr >= kw);
        let case = ConvCase { n, c, h, w, o, k: [kh, kw], stride: [sh, sw], pad: [(pt, pb), (pl, pr)], bias, relu };
        let errs = conv_errors(&case, seed);
        prop_assert!(errs.iter().all(|e| *e < 1e-5), "{errs:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, .. ProptestConfig::default() })]

    /// Wide maps (output rows of 16 and more take row copies instead of a gather table).
    #[test]
    fn random_wide_convolutions_match_burn(
        n in 1usize..3, c in 1usize..4, o in 1usize..5,
        h in 1usize..5, w in 16usize..40,
        kh in 1usize..4, kw in 1usize..8,
        sh in 1usize..3, sw in 1usize..3,
        pt in 0usize..3, pb in 0usize..3, pl in 0usize..4, pr in 0usize..4,
        bias in any::<bool>(), relu in any::<bool>(), seed in 0u64..1000,
    ) {
        prop_assume!(h + pt + pb >= kh && w + pl + pr >= kw);
        prop_assume!((w + pl + pr - kw) / sw + 1 >= 16);
        let case = ConvCase { n, c, h, w, o, k: [kh, kw], stride: [sh, sw], pad: [(pt, pb), (pl, pr)], bias, relu };
        let errs = conv_errors(&case, seed);
        prop_assert!(errs.iter().all(|e| *e < 1e-5), "{errs:?}");
    }
}

/// Forward, dx, dw, db of ours and Burn's for a depthwise convolution (`groups == c`,
/// weight `[c, 1, kh, kw]`).
#[allow(clippy::too_many_arguments)]
fn depthwise_errors(
    n: usize,
    c: usize,
    hw: [usize; 2],
    k: [usize; 2],
    stride: [usize; 2],
    pad: [(usize, usize); 2],
    relu: bool,
    seed: u64,
) -> [f32; 4] {
    let device = device();
    let x = random([n, c, hw[0], hw[1]], seed, &device);
    let w = random([c, 1, k[0], k[1]], seed + 1, &device);
    let b = random([c], seed + 2, &device);
    let opts = ConvOptions {
        stride,
        padding: pad,
        dilation: [1, 1],
        groups: c,
    };
    let oshape = burn_conv2d(x.clone(), w.clone(), None, opts.clone()).dims();
    let up = random(oshape, seed + 3, &device);
    let act = if relu {
        Activation::Relu
    } else {
        Activation::Identity
    };
    let run = |ours: bool| {
        let (x, w, b) = (
            x.clone().require_grad(),
            w.clone().require_grad(),
            b.clone().require_grad(),
        );
        let y = if ours {
            conv2d(x.clone(), w.clone(), Some(b.clone()), opts.clone(), act)
        } else {
            act.apply(burn_conv2d(
                x.clone(),
                w.clone(),
                Some(b.clone()),
                opts.clone(),
            ))
        };
        let grads = (y.clone() * up.clone()).sum().backward();
        [
            values(y),
            values(x.grad(&grads).unwrap()),
            values(w.grad(&grads).unwrap()),
            values(b.grad(&grads).unwrap()),
        ]
    };
    let (a, b) = (run(true), run(false));
    [0, 1, 2, 3].map(|i| rel_err(&a[i], &b[i]))
}

/// MobileNetV2 / EfficientNet-B0 depthwise layers: 3×3 and 5×5, stride 1 and 2.
#[test]
fn depthwise_layers_match_burn() {
    for (i, (k, s, hw, relu)) in [
        (3, 1, 9, true),
        (3, 2, 10, false),
        (5, 1, 7, true),
        (5, 2, 11, false),
        (3, 1, 2, true),
    ]
    .into_iter()
    .enumerate()
    {
        let p = k / 2;
        let errs = depthwise_errors(
            2,
            6,
            [hw, hw],
            [k, k],
            [s, s],
            [(p, p), (p, p)],
            relu,
            500 + i as u64,
        );
        assert!(errs.iter().all(|e| *e < 1e-5), "case {i}: {errs:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, .. ProptestConfig::default() })]

    /// Random depthwise convolutions: odd sizes, strides, asymmetric padding, batch from 1.
    #[test]
    fn random_depthwise_convolutions_match_burn(
        n in 1usize..3, c in 2usize..6, h in 1usize..12, w in 1usize..20,
        kh in 1usize..6, kw in 1usize..6, sh in 1usize..3, sw in 1usize..3,
        pt in 0usize..3, pb in 0usize..3, pl in 0usize..3, pr in 0usize..3,
        relu in any::<bool>(), seed in 0u64..1000,
    ) {
        prop_assume!(h + pt + pb >= kh && w + pl + pr >= kw);
        let errs = depthwise_errors(n, c, [h, w], [kh, kw], [sh, sw], [(pt, pb), (pl, pr)], relu, seed);
        prop_assert!(errs.iter().all(|e| *e < 1e-5), "{errs:?}");
    }
}

/// Chunks of images: a patch matrix larger than one chunk splits the batch, and the
/// weight gradient accumulates across chunks.
#[test]
fn large_batches_split_into_chunks_and_still_match() {
    // k·p = 64·9·(32·32) ≈ 590k floats per image: 7 images per 4M-float chunk, 16 images.
    let case = ConvCase {
        n: 16,
        c: 64,
        h: 32,
        w: 32,
        o: 8,
        k: [3, 3],
        stride: [1, 1],
        pad: [(1, 1), (1, 1)],
        bias: true,
        relu: true,
    };
    let errs = conv_errors(&case, 7);
    assert!(errs.iter().all(|e| *e < 1e-5), "{errs:?}");
}

/// The residual epilogue: values and the gradients of input, weight, bias and residual.
#[test]
fn convolution_with_a_residual_matches_burn() {
    let device = device();
    for (i, (relu, k, stride)) in [(true, 3, 1), (false, 1, 1), (true, 3, 2)]
        .into_iter()
        .enumerate()
    {
        let seed = 300 + 10 * i as u64;
        let x = random([3, 4, 7, 6], seed, &device);
        let w = random([5, 4, k, k], seed + 1, &device);
        let b = random([5], seed + 2, &device);
        let opts = ConvOptions::new([stride, stride], [k / 2, k / 2], [1, 1], 1);
        let oshape = burn_conv2d(x.clone(), w.clone(), None, opts.clone()).dims();
        let r = random(oshape, seed + 3, &device);
        let up = random(oshape, seed + 4, &device);
        let act = if relu {
            Activation::Relu
        } else {
            Activation::Identity
        };
        let run = |ours: bool| {
            let (x, w, b, r) = (
                x.clone().require_grad(),
                w.clone().require_grad(),
                b.clone().require_grad(),
                r.clone().require_grad(),
            );
            let y = if ours {
                conv2d_residual(
                    x.clone(),
                    w.clone(),
                    Some(b.clone()),
                    Some(r.clone()),
                    opts.clone(),
                    act,
                )
            } else {
                act.apply(
                    burn_conv2d(x.clone(), w.clone(), Some(b.clone()), opts.clone()) + r.clone(),
                )
            };
            let grads = (y.clone() * up.clone()).sum().backward();
            [
                values(y),
                values(x.grad(&grads).unwrap()),
                values(w.grad(&grads).unwrap()),
                values(b.grad(&grads).unwrap()),
                values(r.grad(&grads).unwrap()),
            ]
        };
        let (a, b) = (run(true), run(false));
        let errs: Vec<f32> = a.iter().zip(&b).map(|(a, b)| rel_err(a, b)).collect();
        assert!(errs.iter().all(|e| *e < 1e-5), "case {i}: {errs:?}");
    }
}

fn bn_with_stats(c: usize, seed: u64, device: &Device) -> BatchNorm {
    let mut bn = BatchNormConfig::new(c).init(device);
    bn.gamma = Param::from_tensor(random([c], seed, device) + 1.5);
    bn.beta = Param::from_tensor(random([c], seed + 1, device));
    bn
}

#[test]
fn fused_batch_norm_matches_burn_in_training_with_and_without_residual() {
    let device = device();
    for (i, (shape, residual, act)) in [
        ([4, 3, 5, 7], false, Activation::Relu),
        ([2, 6, 4, 4], true, Activation::Relu),
        ([1, 5, 3, 2], false, Activation::Identity),
        ([3, 4, 1, 1], true, Activation::Identity),
    ]
    .into_iter()
    .enumerate()
    {
        let seed = 40 + 10 * i as u64;
        let x = random(shape, seed, &device) * 3.0 + 0.5;
        let r = random(shape, seed + 2, &device);
        let up = random(shape, seed + 3, &device);
        let run = |ours: bool| {
            let bn = bn_with_stats(shape[1], seed + 5, &device);
            let x = x.clone().require_grad();
            let r = r.clone().require_grad();
            let res = residual.then(|| r.clone());
            let y = if ours {
                batch_norm(&bn, x.clone(), res, act)
            } else {
                let y = bn.forward(x.clone());
                act.apply(match res {
                    Some(res) => y + res,
                    None => y,
                })
            };
            let grads = (y.clone() * up.clone()).sum().backward();
            let dr = residual.then(|| values(r.grad(&grads).unwrap()));
            (
                values(y),
                values(x.grad(&grads).unwrap()),
                values(bn.gamma.grad(&grads).unwrap()),
                values(bn.beta.grad(&grads).unwrap()),
                dr,
                values(bn.running_mean.value()),
                values(bn.running_var.value()),
            )
        };
        let a = run(true);
        let b = run(false);
        let errs = [
            rel_err(&a.0, &b.0),
            rel_err(&a.1, &b.1),
            rel_err(&a.2, &b.2),
            rel_err(&a.3, &b.3),
            a.4.as_ref()
                .map_or(0.0, |d| rel_err(d, b.4.as_ref().unwrap())),
            rel_err(&a.5, &b.5),
            rel_err(&a.6, &b.6),
        ];
        assert!(errs.iter().all(|e| *e < 1e-5), "case {i}: {errs:?}");
    }
}

fn conv_module(c: usize, o: usize, k: usize, stride: usize, bias: bool, device: &Device) -> Conv2d {
    Conv2dConfig::new([c, o], [k, k])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(k / 2, k / 2, k / 2, k / 2))
        .with_bias(bias)
        .init(device)
}

/// Eval mode folds BatchNorm into the convolution; the answer is the unfolded one.
#[test]
fn folded_eval_conv_bn_matches_the_unfolded_layers() {
    let device = Device::flex();
    for (i, (k, stride, bias, residual)) in [
        (3, 1, false, false),
        (3, 2, true, false),
        (1, 1, false, true),
        (7, 2, false, false),
    ]
    .into_iter()
    .enumerate()
    {
        let conv = conv_module(4, 6, k, stride, bias, &device);
        let mut bn = bn_with_stats(6, 7 + i as u64, &device);
        bn.running_mean = burn::module::RunningState::new(random([6], 9, &device));
        bn.running_var = burn::module::RunningState::new(random([6], 10, &device).abs() + 0.3);
        let x = random([2, 4, 9, 9], 11 + i as u64, &device);
        let plain = bn.forward(conv.forward(x.clone()));
        let out_shape = plain.dims();
        let r = random(out_shape, 12, &device);
        let res = residual.then(|| r.clone());
        let want = relu(match &res {
            Some(r) => plain + r.clone(),
            None => plain,
        });
        let got = conv_bn(&conv, &bn, x, res, Activation::Relu);
        let err = rel_err(&values(got), &values(want));
        assert!(err < 1e-5, "case {i}: {err}");
    }
}

/// A frozen BatchNorm on a training device (partial fine-tuning): eval-mode statistics,
/// folded into a convolution that still trains. Values and the gradients of the input and
/// the convolution's weight equal the unfolded layers'.
#[test]
fn frozen_batch_norm_folds_and_still_passes_gradients() {
    use burn::module::Module;
    let device = device();
    let conv = conv_module(4, 6, 3, 1, false, &device);
    let mut bn = bn_with_stats(6, 21, &device);
    bn.running_mean = burn::module::RunningState::new(random([6], 22, &device));
    bn.running_var = burn::module::RunningState::new(random([6], 23, &device).abs() + 0.3);
    let bn = bn.freeze();
    let x = random([2, 4, 7, 7], 24, &device);
    let r = random([2, 6, 7, 7], 25, &device);
    let up = random([2, 6, 7, 7], 26, &device);
    let run = |ours: bool| {
        let x = x.clone().require_grad();
        let r = r.clone().require_grad();
        let y = if ours {
            conv_bn(&conv, &bn, x.clone(), Some(r.clone()), Activation::Relu)
        } else {
            relu(bn.forward(conv.forward(x.clone())) + r.clone())
        };
        let grads = (y.clone() * up.clone()).sum().backward();
        [
            values(y),
            values(x.grad(&grads).unwrap()),
            values(conv.weight.grad(&grads).unwrap()),
            values(r.grad(&grads).unwrap()),
        ]
    };
    let (a, b) = (run(true), run(false));
    let errs: Vec<f32> = a.iter().zip(&b).map(|(a, b)| rel_err(a, b)).collect();
    assert!(errs.iter().all(|e| *e < 1e-5), "{errs:?}");
}

/// Same inputs, same bits: the kernels' sums run in a fixed order whatever the threads do.
#[test]
fn kernels_are_bitwise_reproducible() {
    let device = device();
    let run = || {
        let x = random([8, 16, 12, 12], 3, &device).require_grad();
        let w = random([32, 16, 3, 3], 4, &device).require_grad();
        let bn = bn_with_stats(32, 5, &device);
        let y = conv2d(
            x.clone(),
            w.clone(),
            None,
            ConvOptions::new([1, 1], [1, 1], [1, 1], 1),
            Activation::Identity,
        );
        let y = batch_norm(&bn, y, None, Activation::Relu);
        let grads = (y.clone() * y.clone()).sum().backward();
        (
            values(y),
            values(x.grad(&grads).unwrap()),
            values(w.grad(&grads).unwrap()),
        )
    };
    let a = run();
    let b = run();
    assert!(a.0 == b.0 && a.1 == b.1 && a.2 == b.2);
}

/// Options the kernels do not cover (here groups = 2) go to Burn's own op: Burn's answer,
/// bit for bit.
#[test]
fn unsupported_options_fall_back_to_burn() {
    let device = Device::flex();
    let x = Tensor::<4>::random([1, 2, 5, 5], Distribution::Default, &device);
    let w = Tensor::<4>::random([3, 1, 3, 3], Distribution::Default, &device);
    // groups = 2 is not a kernel case.
    let opts = ConvOptions::new([1, 1], [1, 1], [1, 1], 2);
    let w2 = Tensor::cat(vec![w.clone(), w], 0).narrow(0, 0, 4);
    let ours = conv2d(
        x.clone(),
        w2.clone(),
        None,
        opts.clone(),
        Activation::Identity,
    );
    let burns = burn_conv2d(x, w2, None, opts);
    assert_eq!(values(ours), values(burns));
}
