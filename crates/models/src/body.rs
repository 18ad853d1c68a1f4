//! The body of a [`VisionModel`](crate::VisionModel): one enum over the supported families,
//! and the [`Backbone`] trait each family implements.
//!
//! # Why an enum (and a trait)
//! Burn 0.22 has no backend generics to hide behind a `Box<dyn Module>`, and a trait object
//! cannot be a `Module` (its `map`/`visit` are generic). An enum is a `Module` like any
//! other, is `Clone`, saves and loads through the same stores, and a `match` sends each call
//! to its family's code. [`transparent_module_enum!`](crate::module_enum) implements
//! `Module` for it *without* the variant's name in parameter paths, so a ResNet body's
//! parameters keep the paths they had before there were other families (`body.conv1.weight`,
//! `body.layer4.1.bn2.running_var`): checkpoints and export bundles written then still load.
//! The [`Backbone`] trait is the contract a family fulfils; [`Body`] only dispatches.
//!
//! # Adding a family
//! One new file (`convnext.rs`) with the body type and its `impl Backbone`, plus one arm in
//! [`Body`] (and its line in the `transparent_module_enum!` list and `each!` below), plus the
//! [`Arch`] variants and their [`Family`]. See docs/architecture.md.

use std::collections::HashSet;
use std::path::Path;

use burn::module::{ParamGroup, ParamId};
use burn::prelude::*;

use crate::module_enum::transparent_module_enum;
use crate::{
    Arch, ChannelAdapt, EfficientNetBody, EfficientNetConfig, Error, Family, LayerSummary,
    MobileNetV2Body, MobileNetV2Config, ResNetBody, ResNetConfig, VisionModelConfig,
};

/// What a model family's body provides to [`VisionModel`](crate::VisionModel): the
/// feature maps, their width for the head, the layer groups, the N-band stem, the summary
/// rows and strict weight loading.
pub trait Backbone: Module + Sized {
    /// Builds the body `cfg` describes (its `arch`, widths and `in_channels`), with the
    /// family's random initialisation.
    ///
    /// # Panics
    /// If `cfg.arch` is not of this family, or on the family's configuration errors.
    fn from_config(cfg: &VisionModelConfig, device: &Device) -> Self;

    /// The architecture, read off the layers (`None` when they match none).
    fn arch(&self) -> Option<Arch>;

    /// Writes this body's own width settings (`base_width` for a ResNet, `width_mult`
    /// otherwise) and input channels into `cfg`.
    fn describe(&self, cfg: VisionModelConfig) -> VisionModelConfig;

    /// Feature maps before pooling.
    ///
    /// # Shapes
    /// - `x`: `[N, in_channels, H, W]`
    /// - output: `[N, out_channels, ⌈H/32⌉, ⌈W/32⌉]`
    fn features(&self, x: Tensor<4>) -> Tensor<4>;

    /// Channels of the feature maps: the head's input width.
    fn out_channels(&self) -> usize;

    /// Input channels of the stem.
    fn in_channels(&self) -> usize;

    /// The stem adapted to `n` input channels (a pretrained RGB stem made 4-band), as
    /// [`ResNet::adapt_in_channels_with`](crate::ResNet::adapt_in_channels_with) does.
    ///
    /// # Panics
    /// If `n` is zero.
    fn adapt_stem(self, n: usize, rule: ChannelAdapt) -> Self;

    /// The body's two layer groups (stem + early layers, late layers); the head is the
    /// model's third. Each holds the ids of everything in its subtree.
    fn groups(&self) -> [ParamGroup; 2];

    /// One summary row per top-level layer (names relative to the body), run on `x` in
    /// eval mode; returns the rows and the feature maps.
    fn summary_rows(
        &self,
        x: Tensor<4>,
        trainable: &HashSet<ParamId>,
    ) -> (Vec<LayerSummary>, Tensor<4>);

    /// Loads torchvision-named weights: a full checkpoint (classifier ignored) or a
    /// body-only one; strict otherwise.
    ///
    /// # Errors
    /// As [`load_torchvision`](crate::load_torchvision).
    fn load(self, path: &Path) -> Result<Self, Error>;
}

/// The body of a [`VisionModel`](crate::VisionModel): one variant per model family.
///
/// Parameter paths are the family's own (no variant name): `conv1.weight` for a ResNet,
/// `features.3.conv.1.0.weight` for a MobileNetV2, `features.2.1.block.2.fc1.weight` for
/// an EfficientNet.
///
/// # Example
/// ```
/// use burn::tensor::{Device, Tensor};
/// use fastburn_models::{Arch, Body, VisionModelConfig};
///
/// let device = Device::flex();
/// let cfg = VisionModelConfig::new(Arch::MobileNetV2, 5).with_width_mult(0.25);
/// let body = Body::init(&cfg, &device);
/// assert_eq!(body.arch(), Some(Arch::MobileNetV2));
/// assert_eq!(body.out_channels(), 1280);
/// let f = body.forward(Tensor::zeros([1, 3, 64, 64], &device));
/// assert_eq!(f.dims(), [1, 1280, 2, 2]);
/// ```
// A few bodies per process: the size difference between variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Body {
    /// A ResNet cut before its pooling.
    ResNet(ResNetBody),
    /// MobileNetV2's `features`.
    MobileNetV2(MobileNetV2Body),
    /// EfficientNet's `features`.
    EfficientNet(EfficientNetBody),
}

transparent_module_enum!(Body {
    ResNet,
    MobileNetV2,
    EfficientNet
});

/// `each!(body, b => expr)`: `expr` with `b` bound to the variant's body.
macro_rules! each {
    ($body:expr, $b:ident => $e:expr) => {
        match $body {
            Body::ResNet($b) => $e,
            Body::MobileNetV2($b) => $e,
            Body::EfficientNet($b) => $e,
        }
    };
}

/// `each_into!(body, b => expr)`: like `each!`, wrapping the result back into its variant.
macro_rules! each_into {
    ($body:expr, $b:ident => $e:expr) => {
        match $body {
            Body::ResNet($b) => Body::ResNet($e),
            Body::MobileNetV2($b) => Body::MobileNetV2($e),
            Body::EfficientNet($b) => Body::EfficientNet($e),
        }
    };
}

impl From<ResNetBody> for Body {
    fn from(b: ResNetBody) -> Self {
        Body::ResNet(b)
    }
}

impl From<MobileNetV2Body> for Body {
    fn from(b: MobileNetV2Body) -> Self {
        Body::MobileNetV2(b)
    }
}

impl From<EfficientNetBody> for Body {
    fn from(b: EfficientNetBody) -> Self {
        Body::EfficientNet(b)
    }
}

impl Body {
    /// The body `cfg` describes (`arch`, `base_width` or `width_mult`, `in_channels`),
    /// randomly initialised.
    ///
    /// # Panics
    /// On the family's configuration errors (a zero width or channel count).
    pub fn init(cfg: &VisionModelConfig, device: &Device) -> Body {
        match cfg.arch.family() {
            Family::ResNet => Body::ResNet(ResNetBody::from_config(cfg, device)),
            Family::MobileNetV2 => Body::MobileNetV2(MobileNetV2Body::from_config(cfg, device)),
            Family::EfficientNet => Body::EfficientNet(EfficientNetBody::from_config(cfg, device)),
        }
    }

    /// The architecture, read off the layers.
    pub fn arch(&self) -> Option<Arch> {
        each!(self, b => b.arch())
    }

    /// Feature maps before pooling.
    ///
    /// # Shapes
    /// - `x`: `[N, in_channels, H, W]`
    /// - output: `[N, out_channels, ⌈H/32⌉, ⌈W/32⌉]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        each!(self, b => b.features(x))
    }

    /// Channels of the feature maps (the head's input).
    pub fn out_channels(&self) -> usize {
        each!(self, b => b.out_channels())
    }

    /// Input channels of the stem.
    pub fn in_channels(&self) -> usize {
        each!(self, b => Backbone::in_channels(b))
    }

    /// The stem adapted to `n` input channels with fastai's rule (a no-op when it already
    /// has `n`).
    ///
    /// # Panics
    /// If `n` is zero.
    pub fn adapt_in_channels(self, n: usize) -> Body {
        self.adapt_in_channels_with(n, ChannelAdapt::Fastai)
    }

    /// The stem adapted to `n` input channels with the given rule.
    ///
    /// # Panics
    /// If `n` is zero.
    pub fn adapt_in_channels_with(self, n: usize, rule: ChannelAdapt) -> Body {
        each_into!(self, b => b.adapt_stem(n, rule))
    }

    /// The body's two layer groups; see [`VisionModel::layer_groups`](crate::VisionModel::layer_groups).
    pub fn groups(&self) -> [ParamGroup; 2] {
        each!(self, b => b.groups())
    }

    /// Writes the body's width settings and input channels into `cfg`.
    pub fn describe(&self, cfg: VisionModelConfig) -> VisionModelConfig {
        each!(self, b => b.describe(cfg))
    }

    /// Summary rows (names relative to the body) and the feature maps.
    pub fn summary_rows(
        &self,
        x: Tensor<4>,
        trainable: &HashSet<ParamId>,
    ) -> (Vec<LayerSummary>, Tensor<4>) {
        each!(self, b => b.summary_rows(x, trainable))
    }

    /// Loads torchvision-named weights into this body (full or body-only file).
    ///
    /// # Errors
    /// As [`load_torchvision`](crate::load_torchvision).
    pub fn load_weights(self, path: impl AsRef<Path>) -> Result<Body, Error> {
        let path = path.as_ref();
        Ok(each_into!(self, b => b.load(path)?))
    }

    /// The ResNet body, if this is one.
    pub fn as_resnet(&self) -> Option<&ResNetBody> {
        match self {
            Body::ResNet(b) => Some(b),
            _ => None,
        }
    }

    /// The MobileNetV2 body, if this is one.
    pub fn as_mobilenet_v2(&self) -> Option<&MobileNetV2Body> {
        match self {
            Body::MobileNetV2(b) => Some(b),
            _ => None,
        }
    }

    /// The EfficientNet body, if this is one.
    pub fn as_efficientnet(&self) -> Option<&EfficientNetBody> {
        match self {
            Body::EfficientNet(b) => Some(b),
            _ => None,
        }
    }
}

/// `cfg.arch`'s configuration for a MobileNetV2 body (RGB stem unless `in_channels` says
/// otherwise).
pub(crate) fn mobilenet_config(cfg: &VisionModelConfig) -> MobileNetV2Config {
    assert_eq!(
        cfg.arch.family(),
        Family::MobileNetV2,
        "not a MobileNetV2 architecture: {}",
        cfg.arch
    );
    MobileNetV2Config::new()
        .with_width_mult(cfg.width_mult)
        .with_in_channels(cfg.in_channels)
}

/// `cfg.arch`'s configuration for an EfficientNet body.
pub(crate) fn efficientnet_config(cfg: &VisionModelConfig) -> EfficientNetConfig {
    assert_eq!(
        cfg.arch,
        Arch::EfficientNetB0,
        "not an EfficientNet architecture: {}",
        cfg.arch
    );
    EfficientNetConfig::new()
        .with_width_mult(cfg.width_mult)
        .with_in_channels(cfg.in_channels)
}

/// `cfg.arch`'s configuration for a ResNet body.
pub(crate) fn resnet_config(cfg: &VisionModelConfig) -> ResNetConfig {
    ResNetConfig::new(cfg.arch)
        .with_in_channels(cfg.in_channels)
        .with_base_width(cfg.base_width)
}

/// The ids of everything in `module`.
pub(crate) fn ids<M: Module>(module: M) -> ParamGroup {
    ParamGroup::ids_from_module(module)
}
