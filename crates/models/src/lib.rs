#![warn(missing_docs)]
//! # fastburn-models
//!
//! torchvision's ResNets, MobileNetV2 and EfficientNet-B0 on [Burn](https://burn.dev) with
//! torchvision's parameter names, strict weight import, fastai's transfer-learning head and
//! layer groups.
//!
//! ## Crate map
//! - [`Arch`] — `resnet18` … `resnet152`, `mobilenet_v2`, `efficientnet_b0` as one enum
//!   (parses from the CLI's names); [`Family`] groups them.
//! - [`Body`] — the body of a [`VisionModel`]: one variant per family, each implementing
//!   [`Backbone`] (feature width, layer groups, N-band stem, summary rows, weight loading).
//! - [`ResNetConfig`] → [`ResNet`] (stem, `layer1..4` of [`Block`]s, `fc`) and
//!   [`ResNetBody`] (cut before the pooling). One constructor for every depth; input
//!   channels and base width configurable; [`ResNet::adapt_in_channels`] turns a pretrained
//!   RGB stem into an N-band one as fastai does ([`ChannelAdapt`]).
//! - [`MobileNetV2Config`] → [`MobileNetV2`] / [`MobileNetV2Body`] and
//!   [`EfficientNetConfig`] → [`EfficientNet`] / [`EfficientNetBody`], with `width_mult`.
//! - [`load_torchvision`] (→ [`Network`]), [`load_body`] (→ [`Body`]),
//!   [`ResNet::load_weights`] — `.pth` / `.safetensors` import that rejects missing, unexpected, mis-shaped, non-float, unreadable and non-finite
//!   tensors with a typed [`Error`] naming the file and key.
//! - [`HeadConfig`] → [`Head`] — fastai's `create_head`; [`VisionModelConfig`] →
//!   [`VisionModel`] = body + head, with [`VisionModel::layer_groups`] (fastai's three-group
//!   split as Burn `ParamGroup`s).
//! - [`summary`] — fastai's `learn.summary()` table; [`num_parameters`].
//! - [`weights`] — torchvision's checkpoints as typed enums (`weights::ResNet34::ImageNet1kV1`)
//!   with URL, SHA-256 prefix and accuracy; checksums and the cache directory; downloads
//!   with the `pretrained` feature.
//!
//! ## Features
//! - `pretrained` (off by default): `weights::fetch`, `weights::pretrained` and
//!   `weights::download` — an HTTPS client (ureq + rustls) with a progress bar
//!   (indicatif), writing into [`weights::cache_dir`] atomically after checking the
//!   SHA-256. Without it nothing in this crate touches the network.
//!
//! ## Train and eval mode
//! As everywhere in Burn 0.22, BatchNorm and dropout use their training behaviour only when
//! the model lives on an autodiff device (`device.autodiff()`) *and* the input is an autodiff
//! tensor; `model.valid()` (or plain inputs) gives eval mode. In train mode BatchNorm
//! normalises with the batch statistics exactly like PyTorch (tested to 1e-4 against
//! torchvision), but Burn updates `running_var` with the *biased* batch variance where
//! PyTorch uses the unbiased one (factor `n/(n-1)`, `n` = N·H·W values per channel).
//!
//! ## Parity with torchvision
//! `tests/parity.rs` loads state_dicts written by torchvision (`scripts/fixtures/models_resnet.py`,
//! torch 2.15, torchvision 0.29) with randomised BatchNorm statistics and compares with
//! torchvision's outputs computed in float64. Measured max |Δ| (tolerance 1e-4):
//!
//! | network (input 2×3×64×64) | eval logits | train logits | ∂loss/∂conv1.weight |
//! | --- | --- | --- | --- |
//! | ResNet-18 layout, width 8 (`.pth`) | 9.5e-7 | 3.9e-7 | 1.3e-6 |
//! | ResNet-50 layout, width 4 (`.pth`, `.safetensors`) | 1.6e-6 | 1.5e-6 | 8.6e-6 |
//! | ResNet-18, full size, 224×224 (ignored test) | 1.0e-6 | 9.5e-7 | 9.7e-5 |
//! | ResNet-34, full size, 224×224 (ignored test) | 1.6e-6 | 1.1e-6 | 1.6e-3 (0.65 % of max) |
//!
//! The full-size gradient is as close as float32 can be: perturbing the input by a relative
//! 1e-6 moves torchvision's own float64 gradient by as much (ReLU and max-pool kinks).
//!
//! ## Example
//! ```
//! use burn::tensor::{Device, Tensor};
//! use fastburn_models::{Arch, VisionModelConfig};
//!
//! let device = Device::flex();
//! // In practice: `load_body(Arch::ResNet34, path, &device)?` and `init_with_body`.
//! let model = VisionModelConfig::new(Arch::ResNet34, 17)
//!     .with_in_channels(4)
//!     .with_base_width(8)
//!     .init(&device);
//! let logits = model.forward(Tensor::zeros([2, 4, 64, 64], &device));
//! assert_eq!(logits.dims(), [2, 17]);
//! ```

mod arch;
mod body;
mod efficientnet;
mod error;
mod head;
mod import;
mod mobilenet;
mod module_enum;
mod resnet;
mod summary;
mod vision;
pub mod weights;

pub use arch::{Arch, Family, ParseArchError};
pub use body::{Backbone, Body};
pub use efficientnet::{
    EfficientNet, EfficientNetBody, EfficientNetConfig, EfficientNetLayer, MBConv,
    SqueezeExcitation, StochasticDepth,
};
pub use error::{DownloadError, Error};
pub use head::{Head, HeadConfig, LinBnDrop};
pub use import::{
    MAX_WEIGHT_FILE_BYTES, Network, WeightFormat, load_body, load_torchvision, sniff_format,
};
pub use mobilenet::{
    ConvNorm, InvertedResidual, MobileNetV2, MobileNetV2Body, MobileNetV2Config, MobileNetV2Layer,
    make_divisible, valid_width_mult,
};
pub use resnet::{Block, ChannelAdapt, ResNet, ResNetBody, ResNetConfig};
pub use summary::{LayerSummary, Summarize, Summary, num_parameters, summary};
pub use vision::{VisionModel, VisionModelConfig};
