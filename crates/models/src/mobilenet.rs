//! torchvision's MobileNetV2 with torchvision's parameter names, and the pieces it shares
//! with [`EfficientNet`](crate::EfficientNet): `Conv2dNormActivation` ([`ConvNorm`]),
//! `_make_divisible` ([`make_divisible`]) and the naming of `nn.Sequential` children.
//!
//! # How the names come out as torchvision's
//! torchvision builds these networks from `nn.Sequential`s whose children are numbered and
//! of different kinds: `features.0` is a `Conv2dNormActivation` (keys `features.0.0.weight`,
//! `features.0.1.running_mean`, …), `features.1` … `features.17` are inverted residuals
//! (`features.2.conv.0.0.weight`, …, `features.2.conv.2.weight`, `features.2.conv.3.bias`).
//! Burn names a `Vec` element or a tuple element by its index and a struct field by its
//! name, and `#[derive(Module)]` on an enum adds the variant's name to every path. So:
//! - a `Conv2dNormActivation` is the tuple [`ConvNorm`] `(Conv2d, BatchNorm)` (`0`, `1`);
//! - a `Sequential` of mixed layers is a `Vec` of an enum whose `Module` implementation is
//!   *transparent* (no variant name in the path): [`MobileNetV2Layer`];
//! - a block whose `Sequential` has an optional first layer ([`InvertedResidual::expand`])
//!   has typed fields and a `Module` implementation that numbers the present ones
//!   `conv.0`, `conv.1`, … in order, as `nn.Sequential` does.
//!
//! These implementations differ from the derived ones only in the names they hand to
//! visitors and mappers; everything else (devices, training flags, `valid`, records)
//! delegates to the children.

use std::path::Path;

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Initializer, Linear, LinearConfig,
    PaddingConfig2d,
};
use burn::prelude::*;
use burn::tensor::activation::{relu6, silu};

use fastburn_kernels::{Activation, conv_bn};

use crate::module_enum::transparent_module_enum;
use crate::{ChannelAdapt, Error};

/// torchvision's `Conv2dNormActivation` without its (parameter-free) activation: a
/// convolution without bias (`0.weight`) and its BatchNorm (`1.weight`, `1.bias`,
/// `1.running_mean`, `1.running_var`).
///
/// The activation is the family's: ReLU6 in MobileNetV2, SiLU in EfficientNet, none on an
/// EfficientNet block's projection.
pub type ConvNorm = (Conv2d, BatchNorm);

/// Whether `m` is a usable channel multiplier (`width_mult`) for MobileNetV2 and
/// EfficientNet: finite, above 0 and at most 8. The CLI, the recipe and export bundles
/// check flags and files with it.
///
/// ```
/// use fastburn_models::valid_width_mult;
/// assert!(valid_width_mult(1.0) && valid_width_mult(0.25) && valid_width_mult(8.0));
/// assert!(!valid_width_mult(0.0) && !valid_width_mult(8.5) && !valid_width_mult(f64::NAN));
/// ```
pub fn valid_width_mult(m: f64) -> bool {
    m.is_finite() && m > 0.0 && m <= 8.0
}

/// torchvision's (and TensorFlow's) `_make_divisible`: `v` rounded to the nearest multiple
/// of `divisor`, at least `divisor`, and never more than 10 % below `v`.
///
/// This is how a `width_mult` turns into channel counts in MobileNetV2 and EfficientNet.
///
/// # Example
/// ```
/// use fastburn_models::make_divisible;
///
/// assert_eq!(make_divisible(32.0 * 0.25, 8), 8);
/// assert_eq!(make_divisible(16.0 * 0.25, 8), 8); // at least the divisor
/// assert_eq!(make_divisible(40.0 * 0.25, 8), 16); // 8 would be 20 % below 10
/// assert_eq!(make_divisible(96.0 * 1.4, 8), 136);
/// ```
///
/// # Panics
/// If `divisor` is zero.
pub fn make_divisible(v: f64, divisor: usize) -> usize {
    assert!(divisor > 0, "divisor must be at least 1");
    let d = divisor as f64;
    // Python: `max(min_value, int(v + divisor / 2) // divisor * divisor)`.
    let rounded = ((v + d / 2.0).trunc() as usize) / divisor * divisor;
    let mut new_v = rounded.max(divisor);
    if (new_v as f64) < 0.9 * v {
        new_v += divisor;
    }
    new_v
}

/// Configuration of a [`MobileNetV2`], as torchvision's `mobilenet_v2(**kwargs)`.
///
/// The defaults are torchvision's ImageNet network (1000 classes, width 1.0). `width_mult`
/// scales every layer's channels (rounded by [`make_divisible`] to `round_nearest`) without
/// changing the parameter names, so narrow networks load narrow checkpoints; the last
/// convolution keeps `1280 · max(1, width_mult)` channels, as in torchvision.
///
/// # Example
/// ```
/// use burn::tensor::{Device, Tensor};
/// use fastburn_models::{num_parameters, MobileNetV2Config};
///
/// let device = Device::flex();
/// // torchvision's parameter count (construction is lazy: nothing is allocated).
/// assert_eq!(num_parameters(&MobileNetV2Config::new().init(&device)), 3_504_872);
///
/// let model = MobileNetV2Config::new()
///     .with_width_mult(0.25)
///     .with_num_classes(10)
///     .init(&device);
/// assert_eq!(model.out_channels(), 1280);
/// let x = Tensor::zeros([2, 3, 64, 64], &device);
/// assert_eq!(model.features(x.clone()).dims(), [2, 1280, 2, 2]);
/// assert_eq!(model.forward(x).dims(), [2, 10]);
/// ```
#[derive(Config, Debug)]
pub struct MobileNetV2Config {
    /// Outputs of the classifier.
    #[config(default = 1000)]
    pub num_classes: usize,
    /// Channel multiplier of every layer.
    #[config(default = 1.0)]
    pub width_mult: f64,
    /// Channel counts are rounded to multiples of this (1 turns rounding off).
    #[config(default = 8)]
    pub round_nearest: usize,
    /// Dropout before the classifier's linear layer.
    #[config(default = 0.2)]
    pub dropout: f64,
    /// Channels of the input images (3 for RGB; see [`MobileNetV2::adapt_in_channels`] to
    /// adapt a pretrained stem instead).
    #[config(default = 3)]
    pub in_channels: usize,
}

/// torchvision's `InvertedResidual`: 1×1 expansion (absent when the expand ratio is 1) →
/// 3×3 depthwise → 1×1 linear projection, each followed by BatchNorm, ReLU6 after the
/// first two; the input is added where the shape allows.
///
/// The parameters sit under torchvision's keys `conv.0`, `conv.1`, …: the present layers
/// in order, `expand` and `depthwise` as `Conv2dNormActivation`s (`conv.0.0.weight`,
/// `conv.0.1.bias`), the projection flat (`conv.2.weight`, `conv.3.weight` with an
/// expansion, `conv.1.weight`, `conv.2.weight` without).
#[derive(Debug, Clone)]
pub struct InvertedResidual {
    /// 1×1 expansion to `hidden = in · expand_ratio` channels, ReLU6 (absent for ratio 1).
    pub expand: Option<ConvNorm>,
    /// 3×3 depthwise convolution (`groups = hidden`) carrying the stride, ReLU6.
    pub depthwise: ConvNorm,
    /// 1×1 projection to the output channels (no activation).
    pub project: Conv2d,
    /// BatchNorm after the projection.
    pub project_bn: BatchNorm,
    /// Whether the input is added to the output (stride 1 and as many outputs as inputs).
    pub use_res_connect: bool,
}

/// Whether a layer of a torchvision `nn.Sequential` is there: an absent `Option` takes no
/// index, as a layer torchvision does not append.
pub(crate) trait SeqItem {
    /// Whether the layer exists.
    fn present(&self) -> bool {
        true
    }
}

impl<T> SeqItem for Option<T> {
    fn present(&self) -> bool {
        self.is_some()
    }
}
impl SeqItem for Conv2d {}
impl SeqItem for BatchNorm {}
impl<A, B> SeqItem for (A, B) {}

/// Implements `Module` for a struct whose fields `$item`s are the children of one torchvision
/// `nn.Sequential` named `$seq`: present items are named `$seq.0`, `$seq.1`, … in field
/// order. `$module`s are further children under their own names; `$plain`s are not modules.
macro_rules! sequential_module {
    (
        $ty:ident, $seq:literal,
        items: [$($item:ident),+ $(,)?],
        modules: [$($module:ident),* $(,)?],
        plain: [$($plain:ident),* $(,)?] $(,)?
    ) => {
        impl burn::module::Module for $ty {
            fn collect_devices(&self, devices: burn::module::Devices) -> burn::module::Devices {
                $(let devices = burn::module::Module::collect_devices(&self.$item, devices);)+
                $(let devices = burn::module::Module::collect_devices(&self.$module, devices);)*
                devices
            }

            fn fork(self, device: &burn::tensor::Device) -> Self {
                Self {
                    $($item: burn::module::Module::fork(self.$item, device),)+
                    $($module: burn::module::Module::fork(self.$module, device),)*
                    $($plain: self.$plain,)*
                }
            }

            fn to_device(self, device: &burn::tensor::Device) -> Self {
                Self {
                    $($item: burn::module::Module::to_device(self.$item, device),)+
                    $($module: burn::module::Module::to_device(self.$module, device),)*
                    $($plain: self.$plain,)*
                }
            }

            #[allow(unused_assignments)]
            fn visit<V: burn::module::ModuleVisitor>(&self, visitor: &mut V) {
                const CONTAINER: &str = concat!("Struct:", stringify!($ty));
                visitor.enter_module($seq, CONTAINER);
                let mut index = 0usize;
                $(
                    if $crate::mobilenet::SeqItem::present(&self.$item) {
                        let name = index.to_string();
                        visitor.enter_module(&name, "Sequential");
                        burn::module::Module::visit(&self.$item, visitor);
                        visitor.exit_module(&name, "Sequential");
                        index += 1;
                    }
                )+
                visitor.exit_module($seq, CONTAINER);
                $(
                    visitor.enter_module(stringify!($module), CONTAINER);
                    burn::module::Module::visit(&self.$module, visitor);
                    visitor.exit_module(stringify!($module), CONTAINER);
                )*
            }

            #[allow(unused_assignments)]
            fn map<M: burn::module::ModuleMapper>(self, mapper: &mut M) -> Self {
                const CONTAINER: &str = concat!("Struct:", stringify!($ty));
                mapper.enter_module($seq, CONTAINER);
                let mut index = 0usize;
                $(
                    let $item = if $crate::mobilenet::SeqItem::present(&self.$item) {
                        let name = index.to_string();
                        mapper.enter_module(&name, "Sequential");
                        let mapped = burn::module::Module::map(self.$item, mapper);
                        mapper.exit_module(&name, "Sequential");
                        index += 1;
                        mapped
                    } else {
                        self.$item
                    };
                )+
                mapper.exit_module($seq, CONTAINER);
                $(
                    mapper.enter_module(stringify!($module), CONTAINER);
                    let $module = burn::module::Module::map(self.$module, mapper);
                    mapper.exit_module(stringify!($module), CONTAINER);
                )*
                Self {
                    $($item,)+
                    $($module,)*
                    $($plain: self.$plain,)*
                }
            }

            fn valid(&self) -> Self {
                Self {
                    $($item: burn::module::Module::valid(&self.$item),)+
                    $($module: burn::module::Module::valid(&self.$module),)*
                    $($plain: self.$plain.clone(),)*
                }
            }

            fn train(self) -> Self {
                Self {
                    $($item: burn::module::Module::train(self.$item),)+
                    $($module: burn::module::Module::train(self.$module),)*
                    $($plain: self.$plain,)*
                }
            }

            fn materialize(self) -> Self {
                Self {
                    $($item: burn::module::Module::materialize(self.$item),)+
                    $($module: burn::module::Module::materialize(self.$module),)*
                    $($plain: self.$plain,)*
                }
            }
        }

        impl burn::module::ModuleDisplayDefault for $ty {
            fn content(
                &self,
                content: burn::module::Content,
            ) -> Option<burn::module::Content> {
                content
                    .set_top_level_type(stringify!($ty))
                    $(.add(stringify!($item), &self.$item))+
                    $(.add(stringify!($module), &self.$module))*
                    $(.add_debug_attribute(stringify!($plain), &self.$plain))*
                    .optional()
            }

            fn num_params(&self) -> usize {
                burn::module::Module::num_params(self)
            }
        }

        impl burn::module::ModuleDisplay for $ty {}

        impl core::fmt::Display for $ty {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                let text = burn::module::ModuleDisplay::format(self, Default::default());
                f.write_str(&text)
            }
        }
    };
}
pub(crate) use sequential_module;

sequential_module!(
    InvertedResidual, "conv",
    items: [expand, depthwise, project, project_bn],
    modules: [],
    plain: [use_res_connect],
);

/// One element of MobileNetV2's `features`: named by its index only (`features.0.0.weight`,
/// `features.1.conv.0.0.weight`), like torchvision's `nn.Sequential`.
// The variants differ in size (a convolution vs a block), but there are only a few dozen
// in a network and boxing would complicate the hand-written `Module` impl.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum MobileNetV2Layer {
    /// A `Conv2dNormActivation` with ReLU6: the stem (`features.0`, 3×3 stride 2) and the
    /// last 1×1 convolution (`features.18`).
    Conv(ConvNorm),
    /// An inverted residual block (`features.1` … `features.17`).
    InvertedResidual(InvertedResidual),
}

transparent_module_enum!(MobileNetV2Layer {
    Conv,
    InvertedResidual
});

/// torchvision's MobileNetV2: `features` (stem, 17 inverted residuals, 1×1 convolution to
/// `out_channels()`), global average pooling, `classifier` (dropout, linear).
///
/// Field paths equal torchvision's `state_dict` keys (`features.0.0.weight`,
/// `features.3.conv.1.0.weight`, `classifier.1.weight`), so torchvision's weights load
/// without remapping ([`MobileNetV2::load_weights`]). Build one with
/// [`MobileNetV2Config::init`].
#[derive(Module, Debug)]
pub struct MobileNetV2 {
    /// The convolutional body, as torchvision's `nn.Sequential`.
    pub features: Vec<MobileNetV2Layer>,
    /// Dropout (`classifier.0`) and the linear layer (`classifier.1`).
    pub classifier: (Dropout, Linear),
    /// The `width_mult` the layers were built with (not a parameter: kept so that a
    /// [`VisionModel`](crate::VisionModel) can report the configuration that rebuilds it).
    #[module(skip)]
    pub width_mult: f64,
}

/// A MobileNetV2 without its classifier: what fastai's `create_body` keeps.
///
/// Same field paths as [`MobileNetV2`] minus `classifier.*`, so both a full torchvision
/// checkpoint and a body-only one (just the `features.*` tensors) load into it
/// ([`MobileNetV2Body::load_weights`]).
#[derive(Module, Debug)]
pub struct MobileNetV2Body {
    /// The convolutional body, as torchvision's `nn.Sequential`.
    pub features: Vec<MobileNetV2Layer>,
    /// The `width_mult` the layers were built with (not a parameter: kept so that a
    /// [`VisionModel`](crate::VisionModel) can report the configuration that rebuilds it).
    #[module(skip)]
    pub width_mult: f64,
}

/// `(t, c, n, s)`: expand ratio, output channels, repeats, stride of the first repeat.
const MOBILENET_V2_SETTING: [(usize, usize, usize, usize); 7] = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
];

impl MobileNetV2Config {
    /// Channels of the body's output (the last convolution): `1280 · max(1, width_mult)`,
    /// rounded; 1280 for every width up to 1.
    pub fn out_channels(&self) -> usize {
        make_divisible(1280.0 * self.width_mult.max(1.0), self.round_nearest)
    }

    /// Builds the network with torchvision's initialisation (parameters are created lazily,
    /// on first use): Kaiming-normal fan-out convolutions (with PyTorch's fan-out of a
    /// depthwise convolution, `out · k²`), BatchNorm weight 1 / bias 0, classifier weight
    /// N(0, 0.01) and bias 0.
    ///
    /// # Panics
    /// If `num_classes`, `in_channels` or `round_nearest` is zero, `width_mult` is not a
    /// positive finite number, or `dropout` is not in `[0, 1)`.
    pub fn init(&self, device: &Device) -> MobileNetV2 {
        assert!(self.num_classes > 0, "num_classes must be at least 1");
        assert!(
            self.dropout.is_finite() && (0.0..1.0).contains(&self.dropout),
            "dropout must be in [0, 1), got {}",
            self.dropout
        );
        let body = self.init_body(device);
        let classifier = (
            DropoutConfig::new(self.dropout).init(),
            classifier_linear(
                self.out_channels(),
                self.num_classes,
                Initializer::Normal {
                    mean: 0.0,
                    std: 0.01,
                },
                device,
            ),
        );
        MobileNetV2 {
            features: body.features,
            width_mult: body.width_mult,
            classifier,
        }
    }

    /// Builds only the body (no classifier; `num_classes` and `dropout` are ignored).
    ///
    /// # Panics
    /// If `in_channels` or `round_nearest` is zero or `width_mult` is not a positive finite
    /// number.
    pub fn init_body(&self, device: &Device) -> MobileNetV2Body {
        assert!(self.in_channels > 0, "in_channels must be at least 1");
        assert!(self.round_nearest > 0, "round_nearest must be at least 1");
        assert!(
            self.width_mult.is_finite() && self.width_mult > 0.0,
            "width_mult must be a positive number, got {}",
            self.width_mult
        );
        let bn = BnConfig::TORCH;
        let divisible = |c: f64| make_divisible(c * self.width_mult, self.round_nearest);
        let mut input = divisible(32.0);
        let mut features = vec![MobileNetV2Layer::Conv(conv_norm(
            self.in_channels,
            input,
            3,
            2,
            1,
            bn,
            device,
        ))];
        for (t, c, n, s) in MOBILENET_V2_SETTING {
            let output = divisible(c as f64);
            for i in 0..n {
                let stride = if i == 0 { s } else { 1 };
                features.push(MobileNetV2Layer::InvertedResidual(InvertedResidual::new(
                    input, output, stride, t, device,
                )));
                input = output;
            }
        }
        features.push(MobileNetV2Layer::Conv(conv_norm(
            input,
            self.out_channels(),
            1,
            1,
            1,
            bn,
            device,
        )));
        MobileNetV2Body {
            features,
            width_mult: self.width_mult,
        }
    }
}

impl InvertedResidual {
    /// Creates a block as torchvision's `InvertedResidual(inp, oup, stride, expand_ratio)`.
    ///
    /// # Panics
    /// If `stride` is not 1 or 2, or a size is zero.
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        stride: usize,
        expand_ratio: usize,
        device: &Device,
    ) -> Self {
        assert!(
            stride == 1 || stride == 2,
            "stride should be 1 or 2 instead of {stride}"
        );
        assert!(
            in_channels > 0 && out_channels > 0 && expand_ratio > 0,
            "channels and expand_ratio must be at least 1"
        );
        let bn = BnConfig::TORCH;
        let hidden = in_channels * expand_ratio;
        Self {
            expand: (expand_ratio != 1)
                .then(|| conv_norm(in_channels, hidden, 1, 1, 1, bn, device)),
            depthwise: conv_norm(hidden, hidden, 3, stride, hidden, bn, device),
            project: conv(hidden, out_channels, 1, 1, 1, false, device),
            project_bn: bn.init(out_channels, device),
            use_res_connect: stride == 1 && in_channels == out_channels,
        }
    }

    /// `x + block(x)` where the shapes allow, `block(x)` otherwise.
    ///
    /// # Shapes
    /// - `x`: `[N, C_in, H, W]`
    /// - output: `[N, C_out, ⌈H/stride⌉, ⌈W/stride⌉]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let identity = self.use_res_connect.then(|| x.clone());
        let h = match &self.expand {
            Some(expand) => conv_norm_forward(expand, x, Act::Relu6),
            None => x,
        };
        let h = conv_norm_forward(&self.depthwise, h, Act::Relu6);
        conv_bn(
            &self.project,
            &self.project_bn,
            h,
            identity,
            Activation::Identity,
        )
    }

    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.project.weight.lazy_shape()[0]
    }
}

impl MobileNetV2Layer {
    /// Runs the layer (ReLU6 after a [`Conv`](Self::Conv)).
    ///
    /// # Shapes
    /// - `x`: `[N, C_in, H, W]`
    /// - output: `[N, C_out, ⌈H/stride⌉, ⌈W/stride⌉]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Self::Conv(cn) => conv_norm_forward(cn, x, Act::Relu6),
            Self::InvertedResidual(block) => block.forward(x),
        }
    }

    /// Output channels.
    pub fn out_channels(&self) -> usize {
        match self {
            Self::Conv(cn) => cn.0.weight.lazy_shape()[0],
            Self::InvertedResidual(block) => block.out_channels(),
        }
    }
}

impl FeatureLayer for MobileNetV2Layer {
    const NETWORK: &'static str = "MobileNetV2";
    fn run(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward(x)
    }
    fn channels_out(&self) -> usize {
        self.out_channels()
    }
    fn conv_norm(&self) -> Option<&ConvNorm> {
        match self {
            Self::Conv(cn) => Some(cn),
            Self::InvertedResidual(_) => None,
        }
    }
    fn conv_norm_mut(&mut self) -> Option<&mut ConvNorm> {
        match self {
            Self::Conv(cn) => Some(cn),
            Self::InvertedResidual(_) => None,
        }
    }
}

impl MobileNetV2 {
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

    /// Channels of [`features`](Self::features)' output (1280 at `width_mult ≤ 1`).
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
    pub fn into_body(self) -> MobileNetV2Body {
        MobileNetV2Body {
            features: self.features,
            width_mult: self.width_mult,
        }
    }

    /// Loads torchvision-named weights (`.pth` or `.safetensors`) into this network,
    /// whatever its configuration (a narrow network loads a narrow checkpoint). Strict: every
    /// key must be present with its shape, and nothing else may be (`num_batches_tracked`
    /// aside).
    ///
    /// # Errors
    /// As [`load_torchvision`](crate::load_torchvision): [`Error::MissingKeys`],
    /// [`Error::UnexpectedKeys`], [`Error::ShapeMismatch`], … naming the file and key.
    pub fn load_weights(self, path: impl AsRef<Path>) -> Result<Self, Error> {
        crate::import::load_into(self, path.as_ref(), &[])
    }

    /// Adapts the stem to `n` input channels with fastai's rule ([`ChannelAdapt::Fastai`]),
    /// as [`ResNet::adapt_in_channels`](crate::ResNet::adapt_in_channels) does.
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

impl MobileNetV2Body {
    /// Feature maps before pooling.
    ///
    /// # Shapes
    /// - `x`: `[N, in_channels, H, W]`
    /// - output: `[N, out_channels, ⌈H/32⌉, ⌈W/32⌉]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        run_features(&self.features, x)
    }

    /// Channels of the output (1280 at `width_mult ≤ 1`).
    pub fn out_channels(&self) -> usize {
        last_out_channels(&self.features)
    }

    /// Input channels of the stem.
    pub fn in_channels(&self) -> usize {
        first_conv(&self.features).weight.lazy_shape()[1]
    }

    /// Loads torchvision-named weights into this body: a full checkpoint (its
    /// `classifier.*` tensors are ignored, whatever their shape) or a body-only one holding
    /// just the `features.*` tensors; strict otherwise.
    ///
    /// # Errors
    /// As [`MobileNetV2::load_weights`].
    pub fn load_weights(self, path: impl AsRef<Path>) -> Result<Self, Error> {
        crate::import::load_into(self, path.as_ref(), &["classifier."])
    }

    /// Adapts the stem to `n` input channels with fastai's rule; see
    /// [`MobileNetV2::adapt_in_channels`].
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

// ---------------------------------------------------------------------------------------
// Pieces shared with EfficientNet.

/// A layer of a torchvision `features` list whose first layer is the stem
/// `Conv2dNormActivation` (MobileNetV2's and EfficientNet's): what the helpers below need.
pub(crate) trait FeatureLayer: Module {
    /// The network, for the panics of a malformed list.
    const NETWORK: &'static str;
    /// Runs the layer.
    fn run(&self, x: Tensor<4>) -> Tensor<4>;
    /// Output channels.
    fn channels_out(&self) -> usize;
    /// The `(conv, bn)` pair when the layer is a `Conv2dNormActivation`.
    fn conv_norm_mut(&mut self) -> Option<&mut ConvNorm>;
    /// The same, read-only.
    fn conv_norm(&self) -> Option<&ConvNorm>;
}

pub(crate) fn run_features<L: FeatureLayer>(features: &[L], x: Tensor<4>) -> Tensor<4> {
    features.iter().fold(x, |x, layer| layer.run(x))
}

pub(crate) fn last_out_channels<L: FeatureLayer>(features: &[L]) -> usize {
    features
        .last()
        .unwrap_or_else(|| panic!("{} has features", L::NETWORK))
        .channels_out()
}

pub(crate) fn first_conv<L: FeatureLayer>(features: &[L]) -> &Conv2d {
    match features.first().and_then(FeatureLayer::conv_norm) {
        Some(cn) => &cn.0,
        None => panic!("{}'s features.0 must be its stem convolution", L::NETWORK),
    }
}

pub(crate) fn adapt_stem<L: FeatureLayer>(features: &mut [L], n: usize, rule: ChannelAdapt) {
    match features.first_mut().and_then(FeatureLayer::conv_norm_mut) {
        Some(cn) => {
            let conv = cn.0.clone();
            cn.0 = crate::resnet::adapt_conv(conv, n, rule);
        }
        None => panic!("{}'s features.0 must be its stem convolution", L::NETWORK),
    }
}

/// The two layer groups of a `features` list cut before index `cut`.
pub(crate) fn split_groups<L: FeatureLayer + Clone>(
    features: &[L],
    cut: usize,
) -> [burn::module::ParamGroup; 2] {
    let cut = cut.min(features.len());
    [
        crate::body::ids(features[..cut].to_vec()),
        crate::body::ids(features[cut..].to_vec()),
    ]
}

/// BatchNorm's `eps` and `momentum`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BnConfig {
    pub eps: f64,
    pub momentum: f64,
}

impl BnConfig {
    /// `nn.BatchNorm2d`'s defaults, which torchvision's MobileNetV2 and EfficientNet-B0…B4
    /// use (B5…B7 and V2 pass `eps=1e-3`).
    pub const TORCH: BnConfig = BnConfig {
        eps: 1e-5,
        momentum: 0.1,
    };

    pub fn init(self, channels: usize, device: &Device) -> BatchNorm {
        BatchNormConfig::new(channels)
            .with_epsilon(self.eps)
            .with_momentum(self.momentum)
            .init(device)
    }
}

/// The activation after a [`ConvNorm`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Act {
    Relu6,
    Silu,
}

/// `act(bn(conv(x)))` through the kernels layer (BatchNorm folded into the convolution in
/// eval mode, fused in training; depthwise convolutions take the depthwise kernel).
pub(crate) fn conv_norm_forward(cn: &ConvNorm, x: Tensor<4>, act: Act) -> Tensor<4> {
    let y = conv_bn(&cn.0, &cn.1, x, None, Activation::Identity);
    match act {
        Act::Relu6 => relu6(y),
        Act::Silu => silu(y),
    }
}

/// A convolution with torchvision's initialisation: `kaiming_normal_(mode="fan_out")`, i.e.
/// N(0, 2 / (out · k²)) — PyTorch's fan-out does not divide by the groups, Burn's
/// `KaimingNormal` does, hence the explicit standard deviation — and a zero bias.
pub(crate) fn conv(
    in_ch: usize,
    out_ch: usize,
    kernel: usize,
    stride: usize,
    groups: usize,
    bias: bool,
    device: &Device,
) -> Conv2d {
    let pad = (kernel - 1) / 2;
    let std = (2.0 / (out_ch * kernel * kernel) as f64).sqrt();
    let mut conv = Conv2dConfig::new([in_ch, out_ch], [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .with_groups(groups)
        .with_bias(false)
        .with_initializer(Initializer::Normal { mean: 0.0, std })
        .init(device);
    if bias {
        conv.bias = Some(Initializer::Zeros.init([out_ch], device));
    }
    conv
}

/// torchvision's `Conv2dNormActivation(in, out, kernel, stride, groups)` (padding
/// `(kernel − 1) / 2`, no bias).
pub(crate) fn conv_norm(
    in_ch: usize,
    out_ch: usize,
    kernel: usize,
    stride: usize,
    groups: usize,
    bn: BnConfig,
    device: &Device,
) -> ConvNorm {
    (
        conv(in_ch, out_ch, kernel, stride, groups, false, device),
        bn.init(out_ch, device),
    )
}

/// A classifier's linear layer: `weight_init` for the weight, zero bias.
pub(crate) fn classifier_linear(
    d_in: usize,
    d_out: usize,
    weight_init: Initializer,
    device: &Device,
) -> Linear {
    let mut linear = LinearConfig::new(d_in, d_out)
        .with_initializer(weight_init)
        .init(device);
    linear.bias = Some(Initializer::Zeros.init([d_out], device));
    linear
}

/// `classifier(flatten(avgpool(x)))` with `classifier = (dropout, linear)`.
pub(crate) fn classify(classifier: &(Dropout, Linear), x: Tensor<4>) -> Tensor<2> {
    let pooled: Tensor<2> = x.mean_dims(&[2, 3]).flatten(1, 3);
    classifier.1.forward(classifier.0.forward(pooled))
}

impl crate::Backbone for MobileNetV2Body {
    fn from_config(cfg: &crate::VisionModelConfig, device: &Device) -> Self {
        crate::body::mobilenet_config(cfg).init_body(device)
    }

    fn arch(&self) -> Option<crate::Arch> {
        Some(crate::Arch::MobileNetV2)
    }

    fn describe(&self, cfg: crate::VisionModelConfig) -> crate::VisionModelConfig {
        cfg.with_width_mult(self.width_mult)
            .with_in_channels(MobileNetV2Body::in_channels(self))
    }

    fn features(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward(x)
    }

    fn out_channels(&self) -> usize {
        MobileNetV2Body::out_channels(self)
    }

    fn in_channels(&self) -> usize {
        MobileNetV2Body::in_channels(self)
    }

    fn adapt_stem(self, n: usize, rule: ChannelAdapt) -> Self {
        self.adapt_in_channels_with(n, rule)
    }

    /// `features.0–6` (stem and the blocks up to 32 channels, stride 8) | `features.7–18`.
    fn groups(&self) -> [burn::module::ParamGroup; 2] {
        split_groups(&self.features, MOBILENET_V2_SPLIT)
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
                MobileNetV2Layer::Conv(_) => "Conv2dNormActivation".to_string(),
                MobileNetV2Layer::InvertedResidual(_) => "InvertedResidual".to_string(),
            },
            x,
            trainable,
        )
    }

    fn load(self, path: &Path) -> Result<Self, Error> {
        self.load_weights(path)
    }
}

/// The first `features` index of MobileNetV2's second layer group.
const MOBILENET_V2_SPLIT: usize = 7;
