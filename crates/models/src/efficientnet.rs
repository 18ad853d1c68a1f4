//! torchvision's EfficientNet-B0 with torchvision's parameter names.
//!
//! The layout follows torchvision's `EfficientNet`: `features.0` is the stem
//! `Conv2dNormActivation`, `features.1` … `features.7` are stages (`nn.Sequential`s) of
//! [`MBConv`] blocks whose layers sit under `block.0`, `block.1`, … (the expansion only where
//! it changes the width), and `features.8` is the last 1×1 convolution. See
//! [`mobilenet`](crate::MobileNetV2Layer) for how the index-only names are produced.

use std::path::Path;

use burn::module::{Flag, Param};
use burn::nn::conv::Conv2d;
use burn::nn::{Dropout, DropoutConfig, Initializer, Linear};
use burn::prelude::*;
use burn::tensor::Distribution;
use burn::tensor::activation::{sigmoid, silu};

use fastburn_kernels::{Activation, conv_bn, conv_forward};

use crate::mobilenet::{
    Act, BnConfig, ConvNorm, FeatureLayer, SeqItem, adapt_stem, classifier_linear, classify, conv,
    conv_norm, conv_norm_forward, first_conv, last_out_channels, run_features, sequential_module,
    split_groups,
};
use crate::module_enum::transparent_module_enum;
use crate::{ChannelAdapt, Error, make_divisible};

/// Configuration of an [`EfficientNet`]: torchvision's `efficientnet_b0(**kwargs)` by
/// default, with the width and depth multipliers as fields.
///
/// `width_mult` scales every layer's channels (rounded to multiples of 8 by
/// [`make_divisible`]) and `depth_mult` every stage's number of blocks (rounded up), as
/// torchvision's `_efficientnet_conf("efficientnet_b0", width_mult, depth_mult)`. With the
/// depth unchanged the parameter names are the same at every width, so a narrow network loads
/// a narrow checkpoint.
///
/// BatchNorm uses PyTorch's defaults (`eps = 1e-5`, `momentum = 0.1`): torchvision's
/// `efficientnet_b0` passes no `norm_layer` (only B5…B7 and the V2s set `eps = 1e-3`).
///
/// # Example
/// ```
/// use burn::tensor::{Device, Tensor};
/// use fastburn_models::{num_parameters, EfficientNetConfig};
///
/// let device = Device::flex();
/// // torchvision's parameter count (construction is lazy: nothing is allocated).
/// assert_eq!(num_parameters(&EfficientNetConfig::new().init(&device)), 5_288_548);
///
/// let model = EfficientNetConfig::new()
///     .with_width_mult(0.25)
///     .with_num_classes(10)
///     .init(&device);
/// assert_eq!(model.out_channels(), 320); // 4 × 80; 1280 at width 1
/// let x = Tensor::zeros([2, 3, 64, 64], &device);
/// assert_eq!(model.features(x.clone()).dims(), [2, 320, 2, 2]);
/// assert_eq!(model.forward(x).dims(), [2, 10]);
/// ```
#[derive(Config, Debug)]
pub struct EfficientNetConfig {
    /// Outputs of the classifier.
    #[config(default = 1000)]
    pub num_classes: usize,
    /// Channel multiplier of every layer (B0: 1.0).
    #[config(default = 1.0)]
    pub width_mult: f64,
    /// Multiplier of every stage's number of blocks (B0: 1.0).
    #[config(default = 1.0)]
    pub depth_mult: f64,
    /// Stochastic depth of the last block; block `i` of `n` drops its residual branch with
    /// probability `stochastic_depth_prob · i / n`, in training only.
    #[config(default = 0.2)]
    pub stochastic_depth_prob: f64,
    /// Dropout before the classifier's linear layer.
    #[config(default = 0.2)]
    pub dropout: f64,
    /// Channels of the input images (3 for RGB; see [`EfficientNet::adapt_in_channels`] to
    /// adapt a pretrained stem instead).
    #[config(default = 3)]
    pub in_channels: usize,
}

/// torchvision's `SqueezeExcitation` with SiLU: `x · sigmoid(fc2(silu(fc1(avgpool(x)))))`.
#[derive(Module, Debug)]
pub struct SqueezeExcitation {
    /// 1×1 convolution (with bias) to the squeeze channels.
    pub fc1: Conv2d,
    /// 1×1 convolution (with bias) back to the input channels.
    pub fc2: Conv2d,
}

impl SqueezeExcitation {
    /// Creates the block with torchvision's initialisation (Kaiming-normal fan-out weights,
    /// zero biases).
    pub fn new(channels: usize, squeeze: usize, device: &Device) -> Self {
        Self {
            fc1: conv(channels, squeeze, 1, 1, 1, true, device),
            fc2: conv(squeeze, channels, 1, 1, 1, true, device),
        }
    }

    /// Rescales each channel of `x` by its excitation.
    ///
    /// # Shapes
    /// - `x`: `[N, C, H, W]`
    /// - output: `[N, C, H, W]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let scale = x.clone().mean_dims(&[2, 3]);
        let scale = silu(conv_forward(&self.fc1, scale, Activation::Identity));
        let scale = sigmoid(conv_forward(&self.fc2, scale, Activation::Identity));
        x * scale
    }
}

impl SeqItem for SqueezeExcitation {}

/// torchvision's `StochasticDepth(p, "row")`: in training, each sample's residual branch is
/// zeroed with probability `p` and the survivors scaled by `1 / (1 − p)`; the identity in
/// eval mode.
///
/// Like Burn's `Dropout` it acts only on an autodiff input with its training flag on
/// (`model.valid()` and `freeze` turn it off), and draws from the device's random generator:
/// seed it (`device.seed(s)`, as the learner does for every step) for reproducible masks.
#[derive(Module, Debug)]
pub struct StochasticDepth {
    /// Probability of dropping a sample's branch.
    pub prob: f64,
    /// Whether training behaviour is enabled for this layer.
    pub training: Param<Flag>,
}

impl StochasticDepth {
    /// # Panics
    /// If `prob` is not in `[0, 1]`.
    pub fn new(prob: f64) -> Self {
        assert!(
            (0.0..=1.0).contains(&prob),
            "drop probability has to be between 0 and 1, but got {prob}"
        );
        Self {
            prob,
            training: Param::from_bool(true),
        }
    }

    /// Whether [`forward`](Self::forward) would drop anything for this input.
    pub fn is_active(&self, x: &Tensor<4>) -> bool {
        self.prob > 0.0 && self.training.is_enabled() && x.device().is_autodiff()
    }

    /// `x · mask / (1 − p)` with one Bernoulli(1 − p) draw per sample in training; `x`
    /// otherwise.
    ///
    /// # Shapes
    /// - `x`: `[N, C, H, W]`
    /// - output: `[N, C, H, W]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        if !self.is_active(&x) {
            return x;
        }
        let survival = 1.0 - self.prob;
        let [n, ..] = x.dims();
        let noise =
            Tensor::<4>::random([n, 1, 1, 1], Distribution::Bernoulli(survival), &x.device());
        let noise = if survival > 0.0 {
            noise.div_scalar(survival)
        } else {
            noise
        };
        x * noise
    }
}

/// torchvision's `MBConv`: 1×1 expansion (only where it changes the width) → depthwise
/// `k×k` → squeeze-excitation → 1×1 projection without activation (SiLU after the others);
/// where the shape allows, the input is added after stochastic depth.
///
/// The layers sit under torchvision's keys `block.0`, `block.1`, … in order
/// (`block.0.0.weight`, `block.2.fc1.bias`, `block.3.1.running_var` with an expansion).
#[derive(Debug, Clone)]
pub struct MBConv {
    /// 1×1 expansion, SiLU (absent when the expanded width equals the input's).
    pub expand: Option<ConvNorm>,
    /// Depthwise convolution carrying the stride, SiLU.
    pub depthwise: ConvNorm,
    /// Squeeze-excitation.
    pub se: SqueezeExcitation,
    /// 1×1 projection to the output channels, no activation.
    pub project: ConvNorm,
    /// Stochastic depth of the residual branch.
    pub stochastic_depth: StochasticDepth,
    /// Whether the input is added to the output (stride 1 and as many outputs as inputs).
    pub use_res_connect: bool,
}

sequential_module!(
    MBConv, "block",
    items: [expand, depthwise, se, project],
    modules: [stochastic_depth],
    plain: [use_res_connect],
);

impl MBConv {
    /// Creates a block as torchvision's `MBConv(MBConvConfig(expand_ratio, kernel, stride,
    /// in, out, 1), stochastic_depth_prob, BatchNorm2d)` with channels already adjusted: the
    /// expanded width is `make_divisible(in · expand_ratio, 8)`, the squeeze width
    /// `max(1, in / 4)`.
    ///
    /// # Panics
    /// If `stride` is not 1 or 2, a size is zero or `stochastic_depth_prob` is not in `[0, 1]`.
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        expand_ratio: usize,
        kernel: usize,
        stride: usize,
        stochastic_depth_prob: f64,
        device: &Device,
    ) -> Self {
        assert!(stride == 1 || stride == 2, "illegal stride value {stride}");
        assert!(
            in_channels > 0 && out_channels > 0 && expand_ratio > 0 && kernel > 0,
            "sizes must be at least 1"
        );
        let bn = BnConfig::TORCH;
        let expanded = make_divisible((in_channels * expand_ratio) as f64, 8);
        Self {
            expand: (expanded != in_channels)
                .then(|| conv_norm(in_channels, expanded, 1, 1, 1, bn, device)),
            depthwise: conv_norm(expanded, expanded, kernel, stride, expanded, bn, device),
            se: SqueezeExcitation::new(expanded, (in_channels / 4).max(1), device),
            project: conv_norm(expanded, out_channels, 1, 1, 1, bn, device),
            stochastic_depth: StochasticDepth::new(stochastic_depth_prob),
            use_res_connect: stride == 1 && in_channels == out_channels,
        }
    }

    /// `x + stochastic_depth(block(x))` where the shapes allow, `block(x)` otherwise.
    ///
    /// # Shapes
    /// - `x`: `[N, C_in, H, W]`
    /// - output: `[N, C_out, ⌈H/stride⌉, ⌈W/stride⌉]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let identity = self.use_res_connect.then(|| x.clone());
        let h = match &self.expand {
            Some(expand) => conv_norm_forward(expand, x, Act::Silu),
            None => x,
        };
        let h = conv_norm_forward(&self.depthwise, h, Act::Silu);
        let h = self.se.forward(h);
        let (conv, bn) = &self.project;
        match identity {
            None => conv_bn(conv, bn, h, None, Activation::Identity),
            Some(x) if self.stochastic_depth.is_active(&h) => {
                let branch = conv_bn(conv, bn, h, None, Activation::Identity);
                self.stochastic_depth.forward(branch) + x
            }
            // No drop: the residual add happens in the projection's epilogue.
            Some(x) => conv_bn(conv, bn, h, Some(x), Activation::Identity),
        }
    }

    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.project.0.weight.lazy_shape()[0]
    }
}

/// One element of EfficientNet's `features`: named by its index only (`features.0.0.weight`,
/// `features.3.1.block.0.0.weight`), like torchvision's `nn.Sequential`.
// The variants differ in size (a convolution vs a block), but there are only a few dozen
// in a network and boxing would complicate the hand-written `Module` impl.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum EfficientNetLayer {
    /// A `Conv2dNormActivation` with SiLU: the stem (`features.0`, 3×3 stride 2) and the last
    /// 1×1 convolution (`features.8`).
    Conv(ConvNorm),
    /// A stage of blocks (`features.1` … `features.7`).
    Stage(Vec<MBConv>),
}

transparent_module_enum!(EfficientNetLayer { Conv, Stage });

impl EfficientNetLayer {
    /// Runs the layer (SiLU after a [`Conv`](Self::Conv)).
    ///
    /// # Shapes
    /// - `x`: `[N, C_in, H, W]`
    /// - output: `[N, C_out, ⌈H/stride⌉, ⌈W/stride⌉]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Self::Conv(cn) => conv_norm_forward(cn, x, Act::Silu),
            Self::Stage(blocks) => blocks.iter().fold(x, |x, b| b.forward(x)),
        }
    }

    /// Output channels.
    ///
    /// # Panics
    /// On an empty stage.
    pub fn out_channels(&self) -> usize {
        match self {
            Self::Conv(cn) => cn.0.weight.lazy_shape()[0],
            Self::Stage(blocks) => blocks.last().expect("a stage has blocks").out_channels(),
        }
    }
}

impl FeatureLayer for EfficientNetLayer {
    const NETWORK: &'static str = "EfficientNet";
    fn run(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward(x)
    }
    fn channels_out(&self) -> usize {
        self.out_channels()
    }
    fn conv_norm(&self) -> Option<&ConvNorm> {
        match self {
            Self::Conv(cn) => Some(cn),
            Self::Stage(_) => None,
        }
    }
    fn conv_norm_mut(&mut self) -> Option<&mut ConvNorm> {
        match self {
            Self::Conv(cn) => Some(cn),
            Self::Stage(_) => None,
        }
    }
}

/// torchvision's EfficientNet (B0 layout): `features` (stem, seven stages of [`MBConv`]s,
/// 1×1 convolution to `out_channels()`), global average pooling, `classifier` (dropout,
/// linear).
///
/// Field paths equal torchvision's `state_dict` keys (`features.0.0.weight`,
/// `features.2.1.block.2.fc1.weight`, `classifier.1.bias`), so torchvision's weights load
/// without remapping ([`EfficientNet::load_weights`]). Build one with
/// [`EfficientNetConfig::init`].
#[derive(Module, Debug)]
pub struct EfficientNet {
    /// The convolutional body, as torchvision's `nn.Sequential`.
    pub features: Vec<EfficientNetLayer>,
    /// Dropout (`classifier.0`) and the linear layer (`classifier.1`).
    pub classifier: (Dropout, Linear),
    /// The `width_mult` the layers were built with (not a parameter: kept so that a
    /// [`VisionModel`](crate::VisionModel) can report the configuration that rebuilds it).
    #[module(skip)]
    pub width_mult: f64,
}

/// An EfficientNet without its classifier: what fastai's `create_body` keeps.
///
/// Same field paths as [`EfficientNet`] minus `classifier.*`, so both a full torchvision
/// checkpoint and a body-only one (just the `features.*` tensors) load into it
/// ([`EfficientNetBody::load_weights`]).
#[derive(Module, Debug)]
pub struct EfficientNetBody {
    /// The convolutional body, as torchvision's `nn.Sequential`.
    pub features: Vec<EfficientNetLayer>,
    /// The `width_mult` the layers were built with (not a parameter: kept so that a
    /// [`VisionModel`](crate::VisionModel) can report the configuration that rebuilds it).
    #[module(skip)]
    pub width_mult: f64,
}

/// One stage of B0 (torchvision's `bneck_conf(expand_ratio, kernel, stride, in, out, n)`).
#[derive(Debug, Clone, Copy)]
struct StageSetting {
    expand_ratio: usize,
    kernel: usize,
    stride: usize,
    input: usize,
    output: usize,
    layers: usize,
}

const fn stage(
    expand_ratio: usize,
    kernel: usize,
    stride: usize,
    input: usize,
    output: usize,
    layers: usize,
) -> StageSetting {
    StageSetting {
        expand_ratio,
        kernel,
        stride,
        input,
        output,
        layers,
    }
}

/// torchvision's `_efficientnet_conf("efficientnet_b0")` before the multipliers.
const EFFICIENTNET_B0: [StageSetting; 7] = [
    stage(1, 3, 1, 32, 16, 1),
    stage(6, 3, 2, 16, 24, 2),
    stage(6, 5, 2, 24, 40, 2),
    stage(6, 3, 2, 40, 80, 3),
    stage(6, 5, 1, 80, 112, 3),
    stage(6, 5, 2, 112, 192, 4),
    stage(6, 3, 1, 192, 320, 1),
];

impl EfficientNetConfig {
    fn channels(&self, c: usize) -> usize {
        make_divisible(c as f64 * self.width_mult, 8)
    }

    fn stages(&self) -> Vec<StageSetting> {
        EFFICIENTNET_B0
            .iter()
            .map(|s| StageSetting {
                input: self.channels(s.input),
                output: self.channels(s.output),
                layers: (s.layers as f64 * self.depth_mult).ceil() as usize,
                ..*s
            })
            .collect()
    }

    /// Channels of the body's output: 4 × the last stage's width (1280 for B0).
    pub fn out_channels(&self) -> usize {
        4 * self.channels(EFFICIENTNET_B0[6].output)
    }

    /// Builds the network with torchvision's initialisation (parameters are created lazily,
    /// on first use): Kaiming-normal fan-out convolutions (PyTorch's fan-out `out · k²`, also
    /// for depthwise ones) with zero biases, BatchNorm weight 1 / bias 0, classifier weight
    /// U(−1/√num_classes, 1/√num_classes) and bias 0.
    ///
    /// # Panics
    /// If `num_classes` or `in_channels` is zero, a multiplier is not a positive finite
    /// number, `dropout` is not in `[0, 1)` or `stochastic_depth_prob` not in `[0, 1]`.
    pub fn init(&self, device: &Device) -> EfficientNet {
        assert!(self.num_classes > 0, "num_classes must be at least 1");
        assert!(
            self.dropout.is_finite() && (0.0..1.0).contains(&self.dropout),
            "dropout must be in [0, 1), got {}",
            self.dropout
        );
        let body = self.init_body(device);
        let range = 1.0 / (self.num_classes as f64).sqrt();
        let classifier = (
            DropoutConfig::new(self.dropout).init(),
            classifier_linear(
                self.out_channels(),
                self.num_classes,
                Initializer::Uniform {
                    min: -range,
                    max: range,
                },
                device,
            ),
        );
        EfficientNet {
            features: body.features,
            width_mult: body.width_mult,
            classifier,
        }
    }

    /// Builds only the body (no classifier; `num_classes` and `dropout` are ignored).
    ///
    /// # Panics
    /// If `in_channels` is zero, a multiplier is not a positive finite number or
    /// `stochastic_depth_prob` is not in `[0, 1]`.
    pub fn init_body(&self, device: &Device) -> EfficientNetBody {
        assert!(self.in_channels > 0, "in_channels must be at least 1");
        for (name, m) in [
            ("width_mult", self.width_mult),
            ("depth_mult", self.depth_mult),
        ] {
            assert!(
                m.is_finite() && m > 0.0,
                "{name} must be a positive number, got {m}"
            );
        }
        assert!(
            (0.0..=1.0).contains(&self.stochastic_depth_prob),
            "stochastic_depth_prob must be in [0, 1], got {}",
            self.stochastic_depth_prob
        );
        let bn = BnConfig::TORCH;
        let stages = self.stages();
        let total: usize = stages.iter().map(|s| s.layers).sum();
        let mut features = vec![EfficientNetLayer::Conv(conv_norm(
            self.in_channels,
            stages[0].input,
            3,
            2,
            1,
            bn,
            device,
        ))];
        let mut block_id = 0;
        for s in &stages {
            let blocks = (0..s.layers)
                .map(|j| {
                    let (input, stride) = if j == 0 {
                        (s.input, s.stride)
                    } else {
                        (s.output, 1)
                    };
                    let p = self.stochastic_depth_prob * block_id as f64 / total as f64;
                    block_id += 1;
                    MBConv::new(input, s.output, s.expand_ratio, s.kernel, stride, p, device)
                })
                .collect();
            features.push(EfficientNetLayer::Stage(blocks));
        }
        let last = stages[stages.len() - 1].output;
        features.push(EfficientNetLayer::Conv(conv_norm(
            last,
            self.out_channels(),
            1,
            1,
            1,
            bn,
            device,
        )));
        EfficientNetBody {
            features,
            width_mult: self.width_mult,
        }
    }
}

impl EfficientNet {
    /// Logits: `classifier(avgpool(features(x)))`.
    ///
    /// # Shapes
    /// - `x`: `[N, in_channels, H, W]` (any size ≥ 1: the pool is adaptive)
    /// - output: `[N, num_classes]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        classify(&self.classifier, self.features(x))
    }

    /// The body's feature maps, before pooling: what a fastai head takes.
    ///
    /// # Shapes
    /// - `x`: `[N, in_channels, H, W]`
    /// - output: `[N, out_channels, ⌈H/32⌉, ⌈W/32⌉]`
    pub fn features(&self, x: Tensor<4>) -> Tensor<4> {
        run_features(&self.features, x)
    }

    /// Channels of [`features`](Self::features)' output (1280 for B0).
    pub fn out_channels(&self) -> usize {
        last_out_channels(&self.features)
    }

    /// Input channels of the stem.
    pub fn in_channels(&self) -> usize {
        first_conv(&self.features).weight.lazy_shape()[1]
    }

    /// Outputs of the classifier.
    pub fn num_classes(&self) -> usize {
        self.classifier.1.weight.lazy_shape()[1]
    }

    /// The first convolution (`features.0.0`).
    pub fn stem_conv(&self) -> &Conv2d {
        first_conv(&self.features)
    }

    /// The network without its classifier, as fastai's `create_body` cuts it.
    pub fn into_body(self) -> EfficientNetBody {
        EfficientNetBody {
            features: self.features,
            width_mult: self.width_mult,
        }
    }

    /// Loads torchvision-named weights (`.pth` or `.safetensors`) into this network,
    /// whatever its configuration; strict as
    /// [`MobileNetV2::load_weights`](crate::MobileNetV2::load_weights).
    ///
    /// # Errors
    /// [`Error::MissingKeys`], [`Error::UnexpectedKeys`], [`Error::ShapeMismatch`], … naming
    /// the file and key.
    pub fn load_weights(self, path: impl AsRef<Path>) -> Result<Self, Error> {
        crate::import::load_into(self, path.as_ref(), &[])
    }

    /// Adapts the stem to `n` input channels with fastai's rule ([`ChannelAdapt::Fastai`]).
    ///
    /// # Panics
    /// If `n` is zero.
    pub fn adapt_in_channels(self, n: usize) -> Self {
        self.adapt_in_channels_with(n, ChannelAdapt::Fastai)
    }

    /// Adapts the stem to `n` input channels with the given rule.
    ///
    /// # Panics
    /// If `n` is zero.
    pub fn adapt_in_channels_with(mut self, n: usize, rule: ChannelAdapt) -> Self {
        adapt_stem(&mut self.features, n, rule);
        self
    }
}

impl EfficientNetBody {
    /// Feature maps before pooling.
    ///
    /// # Shapes
    /// - `x`: `[N, in_channels, H, W]`
    /// - output: `[N, out_channels, ⌈H/32⌉, ⌈W/32⌉]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        run_features(&self.features, x)
    }

    /// Channels of the output (1280 for B0).
    pub fn out_channels(&self) -> usize {
        last_out_channels(&self.features)
    }

    /// Input channels of the stem.
    pub fn in_channels(&self) -> usize {
        first_conv(&self.features).weight.lazy_shape()[1]
    }

    /// Loads torchvision-named weights into this body: a full checkpoint (its
    /// `classifier.*` tensors are ignored) or a body-only one holding just the `features.*`
    /// tensors; strict otherwise.
    ///
    /// # Errors
    /// As [`EfficientNet::load_weights`].
    pub fn load_weights(self, path: impl AsRef<Path>) -> Result<Self, Error> {
        crate::import::load_into(self, path.as_ref(), &["classifier."])
    }

    /// Adapts the stem to `n` input channels with fastai's rule.
    ///
    /// # Panics
    /// If `n` is zero.
    pub fn adapt_in_channels(self, n: usize) -> Self {
        self.adapt_in_channels_with(n, ChannelAdapt::Fastai)
    }

    /// Adapts the stem to `n` input channels with the given rule.
    ///
    /// # Panics
    /// If `n` is zero.
    pub fn adapt_in_channels_with(mut self, n: usize, rule: ChannelAdapt) -> Self {
        adapt_stem(&mut self.features, n, rule);
        self
    }
}

impl crate::Backbone for EfficientNetBody {
    fn from_config(cfg: &crate::VisionModelConfig, device: &Device) -> Self {
        crate::body::efficientnet_config(cfg).init_body(device)
    }

    fn arch(&self) -> Option<crate::Arch> {
        // B0's stage layout (seven stages between the two convolutions); other depth
        // multipliers are not an `Arch`.
        let blocks: Vec<usize> = self
            .features
            .iter()
            .filter_map(|l| match l {
                EfficientNetLayer::Stage(b) => Some(b.len()),
                EfficientNetLayer::Conv(_) => None,
            })
            .collect();
        let b0: Vec<usize> = EFFICIENTNET_B0.iter().map(|s| s.layers).collect();
        (blocks == b0).then_some(crate::Arch::EfficientNetB0)
    }

    fn describe(&self, cfg: crate::VisionModelConfig) -> crate::VisionModelConfig {
        cfg.with_width_mult(self.width_mult)
            .with_in_channels(EfficientNetBody::in_channels(self))
    }

    fn features(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward(x)
    }

    fn out_channels(&self) -> usize {
        EfficientNetBody::out_channels(self)
    }

    fn in_channels(&self) -> usize {
        EfficientNetBody::in_channels(self)
    }

    fn adapt_stem(self, n: usize, rule: ChannelAdapt) -> Self {
        self.adapt_in_channels_with(n, rule)
    }

    /// `features.0–3` (stem and the stages up to 40 channels, stride 8) | `features.4–8`.
    fn groups(&self) -> [burn::module::ParamGroup; 2] {
        split_groups(&self.features, EFFICIENTNET_SPLIT)
    }

    fn summary_rows(
        &self,
        x: Tensor<4>,
        trainable: &std::collections::HashSet<burn::module::ParamId>,
    ) -> (Vec<crate::LayerSummary>, Tensor<4>) {
        crate::summary::sequential_rows(
            &self.features,
            |l, x| l.forward(x),
            |l| match l {
                EfficientNetLayer::Conv(_) => "Conv2dNormActivation".to_string(),
                EfficientNetLayer::Stage(b) => format!("Sequential({} × MBConv)", b.len()),
            },
            x,
            trainable,
        )
    }

    fn load(self, path: &Path) -> Result<Self, Error> {
        self.load_weights(path)
    }
}

/// The first `features` index of EfficientNet's second layer group.
const EFFICIENTNET_SPLIT: usize = 4;
