//! fastburn's kernels layer: where convolution and BatchNorm speed lives, so model code just
//! calls a convolution.
//!
//! # Crate map
//! | item | what it does |
//! | --- | --- |
//! | [`conv2d`] | Burn's `conv2d` signature plus an [`Activation`] epilogue |
//! | [`conv2d_residual`] | the same with a residual added in the epilogue |
//! | [`conv_forward`] | a `Conv2d` module's forward through [`conv2d`] |
//! | [`batch_norm`] | a `BatchNorm` module's forward, fused with a residual add and ReLU |
//! | [`conv_bn`] | conv → BatchNorm → (+ residual) → activation: in training the convolution and the fused BatchNorm pass, in eval mode BatchNorm folded into the convolution's weights |
//! | [`accelerated`] | whether a device runs these kernels or Burn's own ops |
//! | [`enabled`], [`set_enabled`] | the process-wide switch (`FASTBURN_KERNELS=off`), for measuring against Burn's ops |
//! | `cpu` | the kernels over plain `f32` slices (feature `flex`) |
//! | `ext` | the Burn backend extension that reaches them (feature `flex`) |
//!
//! On Burn's flex backend (feature `flex`), `f32` tensors go to the kernels here: a batched
//! im2col + GEMM convolution with both gradients written by hand, and a BatchNorm pass that
//! computes statistics, normalisation, residual add and ReLU in two sweeps (and two back).
//! Every other backend (wgpu, ndarray, a flex tensor in another dtype) gets Burn's own
//! operations with the same meaning, so one model runs everywhere and the results agree to
//! rounding.
//!
//! # Why its own crate
//! The kernels need the `gemm` and `rayon` crates and Burn's `extension` feature, which no
//! other fastburn crate needs, and they are tested and benchmarked against Burn's reference
//! operations without any model around them. Models and learner only see [`conv2d`],
//! [`batch_norm`] and [`conv_bn`].
//!
//! # Features
//! - `flex`: compile the kernels for Burn's flex backend. Without it every function here
//!   is Burn's own composition.
//!
//! # Example
//! ```
//! use burn::tensor::{Device, Distribution, Tensor};
//! use burn::tensor::ops::ConvOptions;
//! use fastburn_kernels::{Activation, conv2d};
//!
//! let device = Device::flex();
//! let x = Tensor::<4>::random([2, 3, 9, 9], Distribution::Default, &device);
//! let w = Tensor::<4>::random([4, 3, 3, 3], Distribution::Default, &device);
//! let opts = ConvOptions::new([2, 2], [1, 1], [1, 1], 1);
//! let ours = conv2d(x.clone(), w.clone(), None, opts.clone(), Activation::Relu);
//! let burns = burn::tensor::activation::relu(burn::tensor::module::conv2d(x, w, None, opts));
//! assert_eq!(ours.dims(), [2, 4, 5, 5]);
//! let diff = (ours - burns).abs().max().into_scalar::<f32>();
//! assert!(diff < 1e-5, "{diff}");
//! ```
#![warn(missing_docs)]

use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, PaddingConfig2d};
use burn::tensor::module::conv2d as burn_conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{DType, Device, Tensor, activation::relu};
use std::sync::atomic::{AtomicU8, Ordering};

#[cfg(feature = "flex")]
pub mod cpu;
#[cfg(feature = "flex")]
pub mod ext;

/// An activation applied where a kernel writes its output (the GEMM epilogue, the
/// BatchNorm pass), instead of as a separate pass over the tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Activation {
    /// No activation.
    #[default]
    Identity,
    /// `max(0, x)`.
    Relu,
}

impl Activation {
    /// Applies the activation with Burn's ops (the fallback path).
    pub fn apply<const D: usize>(self, x: Tensor<D>) -> Tensor<D> {
        match self {
            Activation::Identity => x,
            Activation::Relu => relu(x),
        }
    }
}

/// 0: not read yet, 1: on, 2: off.
static ENABLED: AtomicU8 = AtomicU8::new(0);

/// Whether the kernels are switched on: by default yes, unless the environment variable
/// `FASTBURN_KERNELS` is `off` (or `0`) when first asked. Turning them off runs Burn's own
/// operations everywhere: the same answers to rounding, at Burn's speed. It exists to
/// measure the kernels against Burn's ops in one binary and one run.
pub fn enabled() -> bool {
    match ENABLED.load(Ordering::Relaxed) {
        1 => true,
        2 => false,
        _ => {
            let off = std::env::var("FASTBURN_KERNELS")
                .is_ok_and(|v| matches!(v.to_ascii_lowercase().as_str(), "off" | "0" | "false"));
            set_enabled(!off);
            !off
        }
    }
}

/// Switches the kernels on or off for the whole process (see [`enabled`]).
///
/// ```
/// use burn::tensor::Device;
/// fastburn_kernels::set_enabled(false);
/// assert!(!fastburn_kernels::accelerated(&Device::flex()));
/// fastburn_kernels::set_enabled(true);
/// assert_eq!(fastburn_kernels::accelerated(&Device::flex()), cfg!(feature = "flex"));
/// ```
pub fn set_enabled(on: bool) {
    ENABLED.store(if on { 1 } else { 2 }, Ordering::Relaxed);
}

/// Whether `device` runs fastburn's kernels (flex, with or without autodiff, when the
/// `flex` feature is on and the kernels are [`enabled`]) rather than Burn's own operations.
///
/// ```
/// use burn::tensor::Device;
/// assert_eq!(fastburn_kernels::accelerated(&Device::flex()), cfg!(feature = "flex"));
/// assert_eq!(fastburn_kernels::accelerated(&Device::flex().autodiff()), cfg!(feature = "flex"));
/// ```
pub fn accelerated(device: &Device) -> bool {
    #[cfg(feature = "flex")]
    {
        enabled()
            && matches!(
                device.clone().inner().as_dispatch(),
                burn::backend::DispatchDevice::Flex(_)
            )
    }
    #[cfg(not(feature = "flex"))]
    {
        let _ = device;
        false
    }
}

fn fast<const D: usize>(x: &Tensor<D>) -> bool {
    x.dtype() == DType::F32 && accelerated(&x.device())
}

/// `act(conv2d(x, weight, bias, options))`, with Burn's `conv2d` meaning.
///
/// On an [`accelerated`] device, for `dilation == 1` and either `groups == 1` or a depthwise
/// convolution (`groups == channels`, one filter per channel) this is fastburn's kernel
/// (forward, and both gradients under autodiff); anything else is Burn's `conv2d` followed
/// by the activation.
///
/// # Shapes
/// - `x`: `[n, c, h, w]`; `weight`: `[o, c, kh, kw]`; `bias`: `[o]`
/// - output: `[n, o, (h + pad − kh)/stride + 1, (w + pad − kw)/stride + 1]`
///
/// # Panics
/// As Burn's `conv2d`: if the channels of `x` and `weight` differ, or the padded input is
/// smaller than the kernel.
pub fn conv2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    options: ConvOptions<2>,
    act: Activation,
) -> Tensor<4> {
    conv2d_residual(x, weight, bias, None, options, act)
}

/// `act(conv2d(x, weight, bias, options) + residual)`: [`conv2d`] with a residual added in
/// the epilogue, before the activation.
///
/// # Shapes
/// As [`conv2d`]; `residual` has the output's shape.
pub fn conv2d_residual(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    residual: Option<Tensor<4>>,
    options: ConvOptions<2>,
    act: Activation,
) -> Tensor<4> {
    #[cfg(feature = "flex")]
    let [_, c, ..] = x.dims();
    #[cfg(feature = "flex")]
    let [o, cw, ..] = weight.dims();
    // Dense, or depthwise with one filter per channel (MobileNet's and EfficientNet's).
    #[cfg(feature = "flex")]
    let depthwise = options.groups == c && c > 1 && o == c && cw == 1;
    #[cfg(feature = "flex")]
    if fast(&x) && (options.groups == 1 || depthwise) && options.dilation == [1, 1] {
        use burn::backend::Dispatch;
        let has_bias = bias.is_some();
        let bias = bias.unwrap_or_else(|| Tensor::zeros([o], &weight.device()));
        let args = ext::ConvArgs {
            stride: options.stride,
            padding: options.padding,
            act,
            has_bias,
            depthwise,
        };
        let (x, w, b) = (
            x.into_dispatch(),
            weight.into_dispatch(),
            bias.into_dispatch(),
        );
        return Tensor::from_dispatch(match residual {
            None => <Dispatch as ext::KernelBackend>::fb_conv2d(x, w, b, args),
            Some(r) => {
                <Dispatch as ext::KernelBackend>::fb_conv2d_add(x, w, b, r.into_dispatch(), args)
            }
        });
    }
    let y = burn_conv2d(x, weight, bias, options);
    act.apply(match residual {
        Some(r) => y + r,
        None => y,
    })
}

/// The `ConvOptions` of a `Conv2d` module, or `None` for `Same` padding (which
/// [`conv_forward`] leaves to Burn).
fn conv_options(conv: &Conv2d) -> Option<ConvOptions<2>> {
    let padding = match conv.padding {
        PaddingConfig2d::Valid => [(0, 0), (0, 0)],
        PaddingConfig2d::Explicit(top, left, bottom, right) => [(top, bottom), (left, right)],
        _ => return None,
    };
    Some(ConvOptions {
        stride: conv.stride,
        padding,
        dilation: conv.dilation,
        groups: conv.groups,
    })
}

/// `act(conv.forward(x))` through [`conv2d`].
///
/// # Shapes
/// As `Conv2d::forward`.
pub fn conv_forward(conv: &Conv2d, x: Tensor<4>, act: Activation) -> Tensor<4> {
    match conv_options(conv) {
        Some(options) => conv2d(
            x,
            conv.weight.val(),
            conv.bias.as_ref().map(|b| b.val()),
            options,
            act,
        ),
        None => act.apply(conv.forward(x)),
    }
}

/// Whether `bn` normalises with batch statistics: Burn's own rule (an autodiff device and a
/// layer whose training flag is on; a frozen layer uses its running statistics).
fn training(bn: &BatchNorm, x: &Tensor<4>) -> bool {
    x.device().is_autodiff() && bn.training.is_enabled()
}

/// `act(bn.forward(x) + residual)`, with Burn's BatchNorm semantics: batch statistics and a
/// running-statistics update (momentum, biased variance) in training, running statistics
/// otherwise.
///
/// In training on an [`accelerated`] device it is one fused kernel, forward and backward.
///
/// # Shapes
/// `x` and `residual`: `[n, c, h, w]`; output the same.
pub fn batch_norm(
    bn: &BatchNorm,
    x: Tensor<4>,
    residual: Option<Tensor<4>>,
    act: Activation,
) -> Tensor<4> {
    #[cfg(feature = "flex")]
    if training(bn, &x) && fast(&x) {
        use burn::backend::Dispatch;
        let args = ext::NormArgs {
            epsilon: bn.epsilon,
            act,
        };
        let (g, b) = (
            bn.gamma.val().into_dispatch(),
            bn.beta.val().into_dispatch(),
        );
        let (y, mean, var) = match residual {
            None => <Dispatch as ext::KernelBackend>::fb_bn_train(x.into_dispatch(), g, b, args),
            Some(r) => <Dispatch as ext::KernelBackend>::fb_bn_add_train(
                x.into_dispatch(),
                g,
                b,
                r.into_dispatch(),
                args,
            ),
        };
        let (y, mean, var) = (
            Tensor::<4>::from_dispatch(y),
            Tensor::<1>::from_dispatch(mean),
            Tensor::<1>::from_dispatch(var),
        );
        update_running_stats(bn, mean, var, &y.device());
        return y;
    }
    let y = bn.forward(x);
    act.apply(match residual {
        Some(r) => y + r,
        None => y,
    })
}

/// Burn's running-statistics update, `r ← (1 − momentum)·r + momentum·batch`.
#[cfg(feature = "flex")]
fn update_running_stats(bn: &BatchNorm, mean: Tensor<1>, var: Tensor<1>, device: &Device) {
    let m = bn.momentum;
    let running_mean = bn.running_mean.value_sync().to_device(device);
    let running_var = bn.running_var.value_sync().to_device(device);
    let running_mean = running_mean
        .mul_scalar(1.0 - m)
        .add(mean.detach().mul_scalar(m));
    let running_var = running_var
        .mul_scalar(1.0 - m)
        .add(var.detach().mul_scalar(m));
    bn.running_mean.update(running_mean.detach());
    bn.running_var.update(running_var.detach());
}

/// `act(bn(conv(x)) + residual)`: a convolution, its BatchNorm, an optional residual add and
/// an activation — the unit of a ResNet block.
///
/// - In training (see [`batch_norm`]): the convolution, then one fused BatchNorm pass.
/// - In eval mode (`model.valid()`, a plain device, or a frozen BatchNorm): BatchNorm is
///   folded into the convolution, `w' = w·γ/√(var+ε)`, `b' = β − mean·γ/√(var+ε)`, and the
///   activation runs in the GEMM epilogue: one pass instead of three. PyTorch's eager mode
///   does not fold.
///
/// The result equals `act(bn.forward(conv.forward(x)) + residual)` to rounding on every
/// backend.
///
/// # Example
/// ```
/// use burn::nn::conv::Conv2dConfig;
/// use burn::nn::{BatchNormConfig, PaddingConfig2d};
/// use burn::tensor::{Device, Distribution, Tensor, activation::relu};
/// use fastburn_kernels::{Activation, conv_bn};
///
/// let device = Device::flex();
/// let conv = Conv2dConfig::new([3, 8], [3, 3])
///     .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
///     .with_bias(false)
///     .init(&device);
/// let bn = BatchNormConfig::new(8).init(&device);
/// let x = Tensor::<4>::random([2, 3, 8, 8], Distribution::Default, &device);
/// let fused = conv_bn(&conv, &bn, x.clone(), None, Activation::Relu); // eval: folded
/// let plain = relu(bn.forward(conv.forward(x)));
/// assert!((fused - plain).abs().max().into_scalar::<f32>() < 1e-5);
/// ```
pub fn conv_bn(
    conv: &Conv2d,
    bn: &BatchNorm,
    x: Tensor<4>,
    residual: Option<Tensor<4>>,
    act: Activation,
) -> Tensor<4> {
    if training(bn, &x) || !fast(&x) {
        let y = conv_forward(conv, x, Activation::Identity);
        return batch_norm(bn, y, residual, act);
    }
    let Some(options) = conv_options(conv) else {
        return batch_norm(bn, conv.forward(x), residual, act);
    };
    let device = x.device();
    let [o, ..] = conv.weight.lazy_shape().dims::<4>();
    let mean = bn.running_mean.value().to_device(&device);
    let var = bn.running_var.value().to_device(&device);
    let scale = bn.gamma.val() / (var + bn.epsilon).sqrt();
    let mut shift = bn.beta.val() - mean * scale.clone();
    if let Some(b) = &conv.bias {
        shift = shift + b.val() * scale.clone();
    }
    let weight = conv.weight.val() * scale.reshape([o, 1, 1, 1]);
    conv2d_residual(x, weight, Some(shift), residual, options, act)
}
