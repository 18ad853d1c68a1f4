//! torchvision's ResNets (v1.5) with torchvision's parameter names.

use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Initializer, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::module::max_pool2d;
use burn::tensor::ops::MaxPoolOptions;

use fastburn_kernels::{Activation, conv_bn};

use crate::Arch;

/// Configuration of a [`ResNet`]: the architecture plus the few sizes that vary.
///
/// With the defaults it is torchvision's ImageNet network (3 input channels, base width 64,
/// 1000 classes). `base_width` scales every stage (`w, 2w, 4w, 8w` channels, times 4 after a
/// bottleneck) without changing the parameter names; small widths make fast test networks.
///
/// # Example
/// ```
/// use burn::tensor::{Device, Tensor};
/// use fastburn_models::{num_parameters, Arch, ResNetConfig};
///
/// let device = Device::flex();
/// // torchvision's parameter counts; construction is lazy, so this allocates nothing.
/// assert_eq!(num_parameters(&ResNetConfig::new(Arch::ResNet18).init(&device)), 11_689_512);
/// assert_eq!(num_parameters(&ResNetConfig::new(Arch::ResNet34).init(&device)), 21_797_672);
/// assert_eq!(num_parameters(&ResNetConfig::new(Arch::ResNet50).init(&device)), 25_557_032);
///
/// // A narrow 4-band network for a quick forward pass.
/// let model = ResNetConfig::new(Arch::ResNet18)
///     .with_in_channels(4)
///     .with_base_width(8)
///     .with_num_classes(17)
///     .init(&device);
/// let logits = model.forward(Tensor::zeros([2, 4, 64, 64], &device));
/// assert_eq!(logits.dims(), [2, 17]);
/// ```
#[derive(Config, Debug)]
pub struct ResNetConfig {
    /// Depth and block type.
    pub arch: Arch,
    /// Outputs of `fc`.
    #[config(default = 1000)]
    pub num_classes: usize,
    /// Channels of the input images (3 for RGB, 4 for RGB + near-infrared, ...).
    #[config(default = 3)]
    pub in_channels: usize,
    /// Channels of the stem and of `layer1`'s block width (torchvision: 64).
    #[config(default = 64)]
    pub base_width: usize,
}

/// One residual block, basic or bottleneck, with torchvision's field names.
///
/// A basic block has `conv1` (3×3, carrying the stride), `conv2` (3×3) and no `conv3`; a
/// bottleneck has `conv1` (1×1), `conv2` (3×3, carrying the stride, torchvision's "v1.5"),
/// and `conv3` (1×1, ×4 channels). `downsample` (1×1 conv + BatchNorm, keys `downsample.0.*`
/// and `downsample.1.*`) is present where the shape of the identity path changes.
///
/// One struct rather than an enum: a `Module` enum would add the variant name to every
/// parameter path, and `Option` adds nothing.
#[derive(Module, Debug)]
pub struct Block {
    /// First convolution.
    pub conv1: Conv2d,
    /// BatchNorm after `conv1`.
    pub bn1: BatchNorm,
    /// Second convolution (3×3).
    pub conv2: Conv2d,
    /// BatchNorm after `conv2`.
    pub bn2: BatchNorm,
    /// Third convolution (bottleneck only).
    pub conv3: Option<Conv2d>,
    /// BatchNorm after `conv3` (bottleneck only).
    pub bn3: Option<BatchNorm>,
    /// Projection of the identity path where its shape changes.
    pub downsample: Option<(Conv2d, BatchNorm)>,
}

impl Block {
    /// Creates a block the way torchvision's `_make_layer` does.
    ///
    /// `planes` is the block's width; the output has `planes · expansion` channels.
    pub fn new(
        in_channels: usize,
        planes: usize,
        stride: usize,
        bottleneck: bool,
        device: &Device,
    ) -> Self {
        let expansion = if bottleneck { 4 } else { 1 };
        let out = planes * expansion;
        let downsample = (stride != 1 || in_channels != out).then(|| {
            (
                conv(in_channels, out, 1, stride, device),
                BatchNormConfig::new(out).init(device),
            )
        });
        if bottleneck {
            Self {
                conv1: conv(in_channels, planes, 1, 1, device),
                bn1: BatchNormConfig::new(planes).init(device),
                conv2: conv(planes, planes, 3, stride, device),
                bn2: BatchNormConfig::new(planes).init(device),
                conv3: Some(conv(planes, out, 1, 1, device)),
                bn3: Some(BatchNormConfig::new(out).init(device)),
                downsample,
            }
        } else {
            Self {
                conv1: conv(in_channels, planes, 3, stride, device),
                bn1: BatchNormConfig::new(planes).init(device),
                conv2: conv(planes, planes, 3, 1, device),
                bn2: BatchNormConfig::new(planes).init(device),
                conv3: None,
                bn3: None,
                downsample,
            }
        }
    }

    /// Whether this is a bottleneck block.
    pub fn is_bottleneck(&self) -> bool {
        self.conv3.is_some()
    }

    /// Output channels.
    pub fn out_channels(&self) -> usize {
        let last = self.conv3.as_ref().unwrap_or(&self.conv2);
        last.weight.lazy_shape()[0]
    }

    /// `relu(residual(x) + identity(x))`.
    ///
    /// Each convolution goes with its BatchNorm (and the ReLU, and the residual add of the
    /// last one) through [`conv_bn`]: the kernels layer decides how that runs (fused
    /// BatchNorm in training, BatchNorm folded into the weights in eval mode).
    ///
    /// # Shapes
    /// - `x`: `[N, C_in, H, W]`
    /// - output: `[N, C_out, ⌈H/stride⌉, ⌈W/stride⌉]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let identity = match &self.downsample {
            Some((conv, bn)) => conv_bn(conv, bn, x.clone(), None, Activation::Identity),
            None => x.clone(),
        };
        let out = conv_bn(&self.conv1, &self.bn1, x, None, Activation::Relu);
        match (&self.conv3, &self.bn3) {
            (Some(conv3), Some(bn3)) => {
                let out = conv_bn(&self.conv2, &self.bn2, out, None, Activation::Relu);
                conv_bn(conv3, bn3, out, Some(identity), Activation::Relu)
            }
            _ => conv_bn(
                &self.conv2,
                &self.bn2,
                out,
                Some(identity),
                Activation::Relu,
            ),
        }
    }
}

/// A torchvision ResNet: stem, four stages of [`Block`]s, average pool and `fc`.
///
/// Field names equal torchvision's `state_dict` keys (`conv1`, `bn1`, `layer1.0.conv1`, …,
/// `layer2.0.downsample.0`, `fc`), so torchvision weights load without key remapping
/// ([`load_torchvision`](crate::load_torchvision)). Build one with [`ResNetConfig::init`].
#[derive(Module, Debug)]
pub struct ResNet {
    /// Stem convolution, 7×7 stride 2, no bias.
    pub conv1: Conv2d,
    /// Stem BatchNorm.
    pub bn1: BatchNorm,
    /// Stage 1 (stride 1 after the stem's max pool).
    pub layer1: Vec<Block>,
    /// Stage 2 (stride 2).
    pub layer2: Vec<Block>,
    /// Stage 3 (stride 2).
    pub layer3: Vec<Block>,
    /// Stage 4 (stride 2).
    pub layer4: Vec<Block>,
    /// Classifier on the average-pooled features.
    pub fc: Linear,
}

/// A ResNet cut before its pooling: what fastai's `create_body` keeps.
///
/// Same field names as [`ResNet`] minus `fc`, so torchvision weights load into it directly
/// ([`load_body`](crate::load_body)).
#[derive(Module, Debug)]
pub struct ResNetBody {
    /// Stem convolution, 7×7 stride 2, no bias.
    pub conv1: Conv2d,
    /// Stem BatchNorm.
    pub bn1: BatchNorm,
    /// Stage 1.
    pub layer1: Vec<Block>,
    /// Stage 2.
    pub layer2: Vec<Block>,
    /// Stage 3.
    pub layer3: Vec<Block>,
    /// Stage 4.
    pub layer4: Vec<Block>,
}

/// How [`ResNet::adapt_in_channels_with`] turns a stem trained on `c` channels into one for
/// `n` channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChannelAdapt {
    /// fastai's `_load_pretrained_weights`: `n = 1` sums the filters over the channels;
    /// `1 < n < c` keeps the first `n` and scales them by `c / n` (×1.5 for 2 of 3);
    /// `n > c` keeps the `c` pretrained filters and zeroes the extra channels, so the network
    /// starts out computing exactly what it did on the first `c` bands.
    #[default]
    Fastai,
    /// timm's `adapt_input_conv` for `n > c`: the `c` filters repeated cyclically and scaled by
    /// `c / n`, so every band contributes from the start (same as `Fastai` for `n < c`).
    Repeat,
}

impl ResNetConfig {
    /// Builds the network (parameters are initialised lazily, on first use, like
    /// torchvision: Kaiming-normal fan-out convolutions, BatchNorm weight 1 / bias 0,
    /// PyTorch's default `Linear` init).
    ///
    /// # Panics
    /// If `num_classes`, `in_channels` or `base_width` is zero, or `arch` is not a ResNet.
    pub fn init(&self, device: &Device) -> ResNet {
        assert!(self.num_classes > 0, "num_classes must be at least 1");
        let body = self.init_body(device);
        let fc = LinearConfig::new(body.num_features(), self.num_classes).init(device);
        ResNet {
            conv1: body.conv1,
            bn1: body.bn1,
            layer1: body.layer1,
            layer2: body.layer2,
            layer3: body.layer3,
            layer4: body.layer4,
            fc,
        }
    }

    /// Builds only the body (no `fc`; `num_classes` is ignored).
    ///
    /// # Panics
    /// If `in_channels` or `base_width` is zero, or `arch` is not a ResNet.
    pub fn init_body(&self, device: &Device) -> ResNetBody {
        let (Some([n1, n2, n3, n4]), Some(expansion)) = (self.arch.layers(), self.arch.expansion())
        else {
            panic!(
                "ResNetConfig needs a ResNet architecture, got {}",
                self.arch
            );
        };
        assert!(self.in_channels > 0, "in_channels must be at least 1");
        assert!(self.base_width > 0, "base_width must be at least 1");
        let w = self.base_width;
        let bottleneck = self.arch.is_bottleneck();
        let conv1 = Conv2dConfig::new([self.in_channels, w], [7, 7])
            .with_stride([2, 2])
            .with_padding(PaddingConfig2d::Explicit(3, 3, 3, 3))
            .with_bias(false)
            .with_initializer(conv_initializer())
            .init(device);
        let mut in_ch = w;
        let mut stage = |planes: usize, blocks: usize, stride: usize| -> Vec<Block> {
            (0..blocks)
                .map(|i| {
                    let block = Block::new(
                        in_ch,
                        planes,
                        if i == 0 { stride } else { 1 },
                        bottleneck,
                        device,
                    );
                    in_ch = planes * expansion;
                    block
                })
                .collect()
        };
        let layer1 = stage(w, n1, 1);
        let layer2 = stage(2 * w, n2, 2);
        let layer3 = stage(4 * w, n3, 2);
        let layer4 = stage(8 * w, n4, 2);
        ResNetBody {
            conv1,
            bn1: BatchNormConfig::new(w).init(device),
            layer1,
            layer2,
            layer3,
            layer4,
        }
    }
}

/// torchvision: `kaiming_normal_(mode="fan_out", nonlinearity="relu")`.
fn conv_initializer() -> Initializer {
    Initializer::KaimingNormal {
        gain: std::f64::consts::SQRT_2,
        fan_out_only: true,
    }
}

fn conv(in_ch: usize, out_ch: usize, kernel: usize, stride: usize, device: &Device) -> Conv2d {
    let pad = kernel / 2;
    Conv2dConfig::new([in_ch, out_ch], [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .with_bias(false)
        .with_initializer(conv_initializer())
        .init(device)
}

/// conv1 → bn1 → ReLU → 3×3 max pool (stride 2, padding 1).
pub(crate) fn stem(conv1: &Conv2d, bn1: &BatchNorm, x: Tensor<4>) -> Tensor<4> {
    maxpool(conv_bn(conv1, bn1, x, None, Activation::Relu))
}

pub(crate) fn maxpool(x: Tensor<4>) -> Tensor<4> {
    max_pool2d(
        x,
        MaxPoolOptions::new([3, 3])
            .with_stride([2, 2])
            .with_padding([1, 1]),
    )
}

pub(crate) fn stage(blocks: &[Block], x: Tensor<4>) -> Tensor<4> {
    blocks.iter().fold(x, |x, b| b.forward(x))
}

fn infer_arch(layers: [&[Block]; 4]) -> Option<Arch> {
    let counts = layers.map(|l| l.len());
    let bottleneck = layers[0].first()?.is_bottleneck();
    Arch::ALL
        .into_iter()
        .find(|a| a.layers() == Some(counts) && a.is_bottleneck() == bottleneck)
}

fn conv_in_channels(conv: &Conv2d) -> usize {
    conv.weight.lazy_shape()[1]
}

/// Replaces a stem convolution's weight `[out, c, kh, kw]` by one for `n` input channels.
pub(crate) fn adapt_conv(conv: Conv2d, n: usize, rule: ChannelAdapt) -> Conv2d {
    assert!(n > 0, "in_channels must be at least 1");
    let c = conv_in_channels(&conv);
    if n == c {
        return conv;
    }
    let Conv2d {
        weight,
        bias,
        stride,
        kernel_size,
        dilation,
        groups,
        padding,
    } = conv;
    let weight: Param<Tensor<4>> = weight.map(|w| {
        let require_grad = w.is_require_grad();
        let w = w.detach();
        let [out, _, kh, kw] = w.dims();
        let scale = c as f64 / n as f64;
        let new = if n == 1 {
            w.sum_dim(1)
        } else if n < c {
            w.slice(s![.., 0..n]).mul_scalar(scale)
        } else {
            match rule {
                ChannelAdapt::Fastai => {
                    let zeros = Tensor::zeros([out, n - c, kh, kw], &w.device());
                    Tensor::cat(vec![w, zeros], 1)
                }
                ChannelAdapt::Repeat => {
                    let reps = n.div_ceil(c);
                    Tensor::cat(vec![w; reps], 1)
                        .slice(s![.., 0..n])
                        .mul_scalar(scale)
                }
            }
        };
        let new = new.detach();
        if require_grad {
            new.require_grad()
        } else {
            new
        }
    });
    Conv2d {
        weight,
        bias,
        stride,
        kernel_size,
        dilation,
        groups,
        padding,
    }
}

impl ResNet {
    /// Logits.
    ///
    /// # Shapes
    /// - `x`: `[N, in_channels, H, W]`, `H, W ≥ 32` (any size: the pool is adaptive)
    /// - output: `[N, num_classes]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = stem(&self.conv1, &self.bn1, x);
        let x = stage(&self.layer1, x);
        let x = stage(&self.layer2, x);
        let x = stage(&self.layer3, x);
        let x = stage(&self.layer4, x);
        let pooled: Tensor<2> = x.mean_dims(&[2, 3]).flatten(1, 3);
        self.fc.forward(pooled)
    }

    /// The network cut before its pooling (drops `fc`), as fastai's `create_body` does.
    pub fn into_body(self) -> ResNetBody {
        ResNetBody {
            conv1: self.conv1,
            bn1: self.bn1,
            layer1: self.layer1,
            layer2: self.layer2,
            layer3: self.layer3,
            layer4: self.layer4,
        }
    }

    /// The architecture, inferred from the block counts and type (`None` for a hand-built
    /// network that matches none).
    pub fn arch(&self) -> Option<Arch> {
        infer_arch([&self.layer1, &self.layer2, &self.layer3, &self.layer4])
    }

    /// Input channels of the stem.
    pub fn in_channels(&self) -> usize {
        conv_in_channels(&self.conv1)
    }

    /// Outputs of `fc`.
    pub fn num_classes(&self) -> usize {
        self.fc.weight.lazy_shape()[1]
    }

    /// Adapts the stem to `n` input channels with fastai's rule ([`ChannelAdapt::Fastai`]):
    /// a pretrained RGB network then accepts 4-band (or 1-band) images.
    ///
    /// # Example
    /// The fourth band starts with zero weights, so on the first three bands the adapted
    /// network computes exactly what the RGB one did:
    /// ```
    /// use burn::tensor::{Device, Distribution, Tensor};
    /// use fastburn_models::{Arch, ResNetConfig};
    ///
    /// let device = Device::flex();
    /// let rgb = ResNetConfig::new(Arch::ResNet18).with_base_width(4).init(&device);
    /// let x = Tensor::<4>::random([1, 3, 32, 32], Distribution::Normal(0.0, 1.0), &device);
    /// let before = rgb.forward(x.clone());
    ///
    /// let nir = Tensor::<4>::ones([1, 1, 32, 32], &device);
    /// let four_band = rgb.adapt_in_channels(4);
    /// assert_eq!(four_band.in_channels(), 4);
    /// let after = four_band.forward(Tensor::cat(vec![x, nir], 1));
    /// let diff: f32 = (after - before).abs().max().into_scalar();
    /// assert!(diff < 1e-5);
    /// ```
    ///
    /// # Panics
    /// If `n` is zero.
    pub fn adapt_in_channels(self, n: usize) -> ResNet {
        self.adapt_in_channels_with(n, ChannelAdapt::Fastai)
    }

    /// Adapts the stem to `n` input channels with the given rule.
    ///
    /// # Panics
    /// If `n` is zero.
    pub fn adapt_in_channels_with(mut self, n: usize, rule: ChannelAdapt) -> ResNet {
        self.conv1 = adapt_conv(self.conv1, n, rule);
        self
    }
}

impl ResNetBody {
    /// Feature maps before pooling.
    ///
    /// # Shapes
    /// - `x`: `[N, in_channels, H, W]`
    /// - output: `[N, num_features, ⌈H/32⌉, ⌈W/32⌉]` (for H, W multiples of 32: `H/32, W/32`)
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = stem(&self.conv1, &self.bn1, x);
        let x = stage(&self.layer1, x);
        let x = stage(&self.layer2, x);
        let x = stage(&self.layer3, x);
        stage(&self.layer4, x)
    }

    /// Channels of the output (512 for ResNet-18/34, 2048 for ResNet-50/101/152 at base
    /// width 64).
    pub fn num_features(&self) -> usize {
        self.layer4
            .last()
            .or(self.layer3.last())
            .or(self.layer2.last())
            .or(self.layer1.last())
            .map(Block::out_channels)
            .unwrap_or_else(|| self.conv1.weight.lazy_shape()[0])
    }

    /// The architecture, inferred from the block counts and type.
    pub fn arch(&self) -> Option<Arch> {
        infer_arch([&self.layer1, &self.layer2, &self.layer3, &self.layer4])
    }

    /// Input channels of the stem.
    pub fn in_channels(&self) -> usize {
        conv_in_channels(&self.conv1)
    }

    /// Channels of the stem (torchvision's base width, 64).
    pub fn base_width(&self) -> usize {
        self.conv1.weight.lazy_shape()[0]
    }

    /// Adapts the stem to `n` input channels with fastai's rule; see
    /// [`ResNet::adapt_in_channels`].
    ///
    /// # Panics
    /// If `n` is zero.
    pub fn adapt_in_channels(self, n: usize) -> ResNetBody {
        self.adapt_in_channels_with(n, ChannelAdapt::Fastai)
    }

    /// Adapts the stem to `n` input channels with the given rule.
    ///
    /// # Panics
    /// If `n` is zero.
    pub fn adapt_in_channels_with(mut self, n: usize, rule: ChannelAdapt) -> ResNetBody {
        self.conv1 = adapt_conv(self.conv1, n, rule);
        self
    }
}

impl crate::Backbone for ResNetBody {
    fn from_config(cfg: &crate::VisionModelConfig, device: &Device) -> Self {
        crate::body::resnet_config(cfg).init_body(device)
    }

    fn arch(&self) -> Option<Arch> {
        ResNetBody::arch(self)
    }

    fn describe(&self, cfg: crate::VisionModelConfig) -> crate::VisionModelConfig {
        cfg.with_base_width(self.base_width())
            .with_in_channels(ResNetBody::in_channels(self))
    }

    fn features(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward(x)
    }

    fn out_channels(&self) -> usize {
        self.num_features()
    }

    fn in_channels(&self) -> usize {
        ResNetBody::in_channels(self)
    }

    fn adapt_stem(self, n: usize, rule: ChannelAdapt) -> Self {
        self.adapt_in_channels_with(n, rule)
    }

    /// fastai's ResNet split: stem (`conv1`, `bn1`) + `layer1` + `layer2` | `layer3` +
    /// `layer4`.
    fn groups(&self) -> [burn::module::ParamGroup; 2] {
        use crate::body::ids;
        let stem = ids(self.conv1.clone())
            .fuse(&ids(self.bn1.clone()))
            .fuse(&ids(self.layer1.clone()))
            .fuse(&ids(self.layer2.clone()));
        let late = ids(self.layer3.clone()).fuse(&ids(self.layer4.clone()));
        [stem, late]
    }

    fn summary_rows(
        &self,
        x: Tensor<4>,
        trainable: &std::collections::HashSet<burn::module::ParamId>,
    ) -> (Vec<crate::LayerSummary>, Tensor<4>) {
        let mut rows = crate::summary::Rows::new("", trainable);
        let x = crate::summary::body_rows(
            &mut rows,
            &self.conv1,
            &self.bn1,
            [&self.layer1, &self.layer2, &self.layer3, &self.layer4],
            x,
        );
        (rows.rows, x)
    }

    fn load(self, path: &std::path::Path) -> Result<Self, crate::Error> {
        self.load_weights(path)
    }
}
