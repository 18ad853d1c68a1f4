#![warn(missing_docs)]
//! # fastburn
//!
//! fastai's image-classification recipe in pure Rust, on [Burn](https://burn.dev): the same
//! code trains on a GPU (wgpu) or a CPU (flex, ndarray), picked at run time by a
//! [`Device`](burn::tensor::Device).
//!
//! This crate is the facade: it re-exports the workspace's crates as modules and forwards
//! the backend features.
//!
//! ## Crate map
//! - [`data`] — CSV / folder datasets, validation, splits, decoding, the resize cache,
//!   augmentation (CPU and on-device), the parallel loader, `show_batch`, synthetic data.
//! - [`kernels`] — the CPU kernels layer: batched convolution with both gradients, fused
//!   BatchNorm + ReLU, BatchNorm folded into convolutions in eval mode (flex backend; every
//!   other backend runs Burn's own ops).
//! - [`models`] — torchvision-compatible ResNets, the fastai head, layer groups, weights.
//! - [`metrics`] — F-beta (Kaggle's samples-averaged F2), accuracy, thresholds, ROC-AUC.
//! - [`learner`] — the training loop: `lr_find`, SGDR, one-cycle, `fine_tune`, freezing,
//!   discriminative learning rates, callbacks, checkpoints, TTA, prediction.
//! - [`mod@bench`] — training / inference throughput of a model (`fastburn bench`).
//! - [`device`] — pick a backend from `auto|flex|ndarray|wgpu`.
//! - [`recipe`] — the Planet recipe end to end ([`recipe::PlanetRecipe`]): what the
//!   `planet` example and `fastburn train` run.
//! - [`prelude`] — the names most programs use.
//!
//! ## Features
//! - `flex` (default): Burn's pure-Rust CPU backend.
//! - `ndarray`: Burn's older CPU backend (much slower on convolutions; kept for users who
//!   ask for it).
//! - `wgpu`: GPUs through Vulkan / Metal / DX12 (and Mesa's lavapipe on CPU-only machines).
//! - `pretrained`: download torchvision weights (HTTPS client).

pub use burn;
pub use fastburn_data as data;
pub use fastburn_kernels as kernels;
pub use fastburn_learner as learner;
pub use fastburn_metrics as metrics;
pub use fastburn_models as models;

pub mod bench;
pub mod device;
mod error;
pub mod recipe;

pub use error::{Error, Result};

/// The Planet lesson in fastburn, step by step (`docs/guide.md`; its code blocks are
/// compiled as doctests).
#[doc = include_str!("../docs/guide.md")]
pub mod guide {}

/// README.md's code blocks, compiled with the doctests so the tour cannot go stale.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// The names most programs use.
pub mod prelude {
    pub use crate::data::{
        AugPolicy, CsvConfig, DataLoaders, DataLoadersConfig, ItemList, Splitter, Task, Vocab,
    };
    pub use crate::device::{DeviceChoice, DeviceSpec};
    pub use crate::learner::{
        DataParallel, Learner, LearnerConfig, LrFindConfig, Lrs, OptimizerConfig, Suggest, Tta,
        load_learner, vision_learner,
    };
    pub use crate::metrics::{Average, FBetaMetric, ThresholdGrid, f2, fbeta};
    pub use crate::models::Arch;
    pub use crate::recipe::PlanetRecipe;
    pub use burn::tensor::{Device, Tensor};
}
