//! Body + head: the transfer-learning model, and its layer groups.

use burn::module::ParamGroup;
use burn::prelude::*;

use crate::{Arch, Body, Head, HeadConfig};

/// Configuration of a [`VisionModel`]: fastai's `vision_learner` model, a [`Body`] (a
/// ResNet cut before its pooling, MobileNetV2's or EfficientNet's `features`) plus
/// [`create_head`](HeadConfig).
///
/// The body's width is `base_width` for a ResNet and `width_mult` for the other families;
/// the other field is ignored.
///
/// # Example
/// ```
/// use burn::tensor::{Device, Tensor};
/// use fastburn_models::{Arch, VisionModelConfig};
///
/// let device = Device::flex();
/// let model = VisionModelConfig::new(Arch::ResNet18, 17)
///     .with_base_width(8)
///     .init(&device);
/// // Any input size ≥ 32 px works: progressive resizing changes it between stages.
/// for size in [32, 64, 96] {
///     let logits = model.forward(Tensor::zeros([2, 3, size, size], &device));
///     assert_eq!(logits.dims(), [2, 17]);
/// }
/// assert_eq!(model.n_groups(), 3);
///
/// let mobile = VisionModelConfig::new(Arch::MobileNetV2, 17)
///     .with_width_mult(0.25)
///     .init(&device);
/// assert_eq!(mobile.forward(Tensor::zeros([2, 3, 32, 32], &device)).dims(), [2, 17]);
/// ```
#[derive(Config, Debug)]
pub struct VisionModelConfig {
    /// Architecture of the body.
    pub arch: Arch,
    /// Number of outputs.
    pub n_classes: usize,
    /// Input channels (a pretrained 3-channel body is adapted by
    /// [`init_with_body`](Self::init_with_body)).
    #[config(default = 3)]
    pub in_channels: usize,
    /// Base width of a ResNet body (torchvision: 64; ignored by the other families).
    #[config(default = 64)]
    pub base_width: usize,
    /// Channel multiplier of a MobileNetV2 / EfficientNet body (torchvision: 1.0; ignored
    /// by ResNets).
    #[config(default = 1.0)]
    pub width_mult: f64,
    /// Hidden layer widths of the head.
    #[config(default = "vec![512]")]
    pub lin_ftrs: Vec<usize>,
    /// Dropout of the head (fastai's `ps`).
    #[config(default = 0.5)]
    pub ps: f64,
    /// Concat pool in the head.
    #[config(default = true)]
    pub concat_pool: bool,
}

/// A body and a head; see [`VisionModelConfig`].
#[derive(Module, Debug)]
pub struct VisionModel {
    /// The body: a ResNet cut before its pooling, or another family's `features`.
    pub body: Body,
    /// fastai's head.
    pub head: Head,
}

impl VisionModelConfig {
    /// The head's configuration for a body with `n_in` output channels.
    pub fn head_config(&self, n_in: usize) -> HeadConfig {
        HeadConfig::new(n_in, self.n_classes)
            .with_lin_ftrs(self.lin_ftrs.clone())
            .with_ps(self.ps)
            .with_concat_pool(self.concat_pool)
    }

    /// A model with a randomly initialised body (torchvision's init) and head.
    ///
    /// # Panics
    /// On a zero size or `ps` outside `[0, 1)`.
    pub fn init(&self, device: &Device) -> VisionModel {
        self.init_with_body(Body::init(self, device), device)
    }

    /// Loads the body of `arch` at this configuration's width (RGB stem) from a
    /// torchvision-named file — a full checkpoint or a body-only one — ready for
    /// [`init_with_body`](Self::init_with_body), which adapts the stem to `in_channels`.
    /// [`load_body`](crate::load_body) does the same at torchvision's width.
    ///
    /// # Errors
    /// As [`load_torchvision`](crate::load_torchvision).
    pub fn load_body(
        &self,
        path: impl AsRef<std::path::Path>,
        device: &Device,
    ) -> Result<Body, crate::Error> {
        let rgb = self.clone().with_in_channels(3);
        Body::init(&rgb, device).load_weights(path)
    }

    /// A model around a given (typically pretrained, see [`load_body`](crate::load_body))
    /// body, with a fresh head. If the body's stem has another number of input channels than
    /// `in_channels`, it is adapted with fastai's rule
    /// ([`ChannelAdapt::Fastai`](crate::ChannelAdapt::Fastai)), as fastai's `create_body`
    /// does. `base_width` and `width_mult` are ignored: the body has its own.
    ///
    /// # Panics
    /// If the body's architecture is not `arch` (family, block counts or type differ), or
    /// on a zero size or `ps` outside `[0, 1)`.
    pub fn init_with_body(&self, body: impl Into<Body>, device: &Device) -> VisionModel {
        let body = body.into();
        assert_eq!(
            body.arch(),
            Some(self.arch),
            "the body's block layout is not {}",
            self.arch
        );
        let body = body.adapt_in_channels(self.in_channels);
        let head = self.head_config(body.out_channels()).init(device);
        VisionModel { body, head }
    }
}

impl VisionModel {
    /// The configuration that rebuilds this very model (read off its layers, not copied
    /// from the configuration it was made with: a pretrained body keeps its own width, an
    /// adapted stem its channels); `None` when the body's block layout is not a known
    /// architecture.
    ///
    /// ```
    /// use burn::tensor::Device;
    /// use fastburn_models::{Arch, VisionModelConfig};
    /// let cfg = VisionModelConfig::new(Arch::ResNet34, 5).with_base_width(8).with_in_channels(4)
    ///     .with_lin_ftrs(vec![32, 16]).with_ps(0.3).with_concat_pool(false);
    /// let model = cfg.init(&Device::flex());
    /// let back = model.config().unwrap();
    /// assert_eq!(format!("{back}"), format!("{cfg}"));
    /// ```
    pub fn config(&self) -> Option<VisionModelConfig> {
        let arch = self.body.arch()?;
        let layers = &self.head.layers;
        let last = layers.last()?;
        let out = |l: &crate::LinBnDrop| l.linear.weight.dims()[1];
        let ps = last.dropout.as_ref().map_or(0.0, |d| d.prob);
        let cfg = VisionModelConfig::new(arch, out(last));
        Some(
            self.body
                .describe(cfg)
                .with_lin_ftrs(layers[..layers.len() - 1].iter().map(out).collect())
                .with_ps(ps)
                .with_concat_pool(self.head.concat_pool),
        )
    }

    /// Logits.
    ///
    /// # Shapes
    /// - `x`: `[N, in_channels, H, W]`, `H, W ≥ 32`
    /// - output: `[N, n_classes]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.head.forward(self.body.forward(x))
    }

    /// fastai's split into three layer groups, as Burn [`ParamGroup`]s: 0 = stem and early
    /// layers, 1 = late layers, 2 = head. Per family ([`Backbone::groups`](crate::Backbone::groups)):
    ///
    /// | family | group 0 | group 1 |
    /// | --- | --- | --- |
    /// | ResNet | `conv1`, `bn1`, `layer1`, `layer2` | `layer3`, `layer4` |
    /// | MobileNetV2 | `features.0`–`features.6` (to 32 channels, stride 8) | `features.7`–`features.18` |
    /// | EfficientNet-B0 | `features.0`–`features.3` (to 40 channels, stride 8) | `features.4`–`features.8` |
    ///
    /// The cut sits at stride 8 in every family, where fastai's ResNet split puts it.
    ///
    /// Each group holds the ids of *everything* in its subtree — trainable parameters,
    /// BatchNorm running statistics and the BatchNorm / Dropout training flags — so the groups
    /// partition all ids of the model exactly once, and `freeze_group(groups[i])` freezes a
    /// group completely (BatchNorm included; keep BatchNorm trainable, fastai's
    /// `train_bn=True`, with `set_require_grad_group`, which leaves flags alone). Optimisers
    /// only ever see the trainable parameters, so per-group learning rates are unaffected by
    /// the extra ids.
    ///
    /// Groups are id-based: they stay valid across optimiser steps and record loads, but a
    /// model that is rebuilt (new ids) needs its groups recomputed.
    ///
    /// # Example
    /// ```
    /// use burn::module::Module;
    /// use burn::tensor::Device;
    /// use fastburn_models::{Arch, VisionModelConfig};
    ///
    /// let device = Device::flex().autodiff();
    /// let model = VisionModelConfig::new(Arch::ResNet18, 2).with_base_width(4).init(&device);
    /// let groups = model.layer_groups();
    /// // fastai's `freeze()`: train only the last group.
    /// let model = model
    ///     .freeze_group(groups[0].clone())
    ///     .freeze_group(groups[1].clone());
    /// let body = model.body.as_resnet().unwrap();
    /// assert!(!body.conv1.weight.is_require_grad());
    /// assert!(!body.layer4[1].conv2.weight.is_require_grad());
    /// assert!(model.head.layers[0].linear.weight.is_require_grad());
    /// ```
    pub fn layer_groups(&self) -> Vec<ParamGroup> {
        let [stem, late] = self.body.groups();
        let head = ParamGroup::ids_from_module(self.head.clone());
        vec![stem, late, head]
    }

    /// Number of layer groups (3).
    pub fn n_groups(&self) -> usize {
        3
    }
}
