#![warn(missing_docs)]
//! # fastburn-data
//!
//! Image classification data for fastburn, with fastai's semantics: from a labels CSV (or
//! an ImageNet-style folder tree) to checked items, decoded and augmented images, and
//! normalised NCHW batches on any Burn device.
//!
//! ## Crate map
//! - Items and labels: [`CsvConfig`] / [`ItemList::from_csv`] (Planet layout),
//!   [`ItemList::from_folder`] (ImageNet layout), [`ItemList::from_test_folder`]; [`Vocab`]
//!   (sorted classes of all rows), [`Task`] and [`LabelKind`] (fastai 0.7's single/multi-label
//!   rule).
//! - Checks: every CSV problem with its line ([`Error::Csv`]), and [`verify`] for a full
//!   pre-flight report including a decode of every image.
//! - Splits: [`Split::random_pct`] (NumPy-identical permutation, as fastai's
//!   `get_cv_idxs`), [`Split::from_valid_indices`], [`Split::kfold`]; [`Splitter`].
//! - Decoding: [`load_rgb`] / [`load_rgb_with`] — format by magic bytes, limits before
//!   allocation, strict truncation, panics contained, Pillow-identical CMYK conversion.
//! - Resizing: [`resize_rgb`], [`presize`], and the [`ResizeCacheConfig`] resize cache
//!   (fastai's `data.resize(sz * 1.3)`).
//! - Augmentation: [`AugPolicy`] (fastai defaults, [`AugPolicy::top_down`] for Planet) draws
//!   [`AugParams`]; [`augment_cpu`] (per item) and [`augment_batch`] (one fused resampling per
//!   batch on the device) apply them with the same semantics; [`Dihedral`] is exact.
//! - Loading: [`ImageDataset`] + [`Transforms`], the parallel, bounded, deterministic
//!   [`DataLoader`] (a [`BatchTransform`] on its threads; a per-batch deadline,
//!   [`LoaderConfig::batch_deadline`]), [`DataLoadersConfig`] → [`DataLoaders`];
//!   [`CpuBatch::to_device`] → [`Batch`] (ImageNet-normalised tensors).
//! - Looking: [`show_batch`] writes a PNG grid with the tags beneath.
//! - Synthetic data: [`synth`] writes a Planet-like dataset from a seed.
//!
//! ## Features
//! This crate compiles no backend itself; tensors go to whatever [`burn::tensor::Device`] the
//! caller passes (the `fastburn` facade forwards `flex`, `ndarray` and `wgpu`).

mod augment;
mod batch;
mod cache;
mod dataloaders;
mod dataset;
mod decode;
mod error;
mod items;
mod loader;
mod resize;
mod show;
mod split;
pub mod synth;
mod verify;

pub use augment::{
    AugParams, AugPolicy, Dihedral, FlipMode, IDENTITY, Lighting, LightingMode, Mat3, PadMode,
    RandomResizedCrop, apply_mat, augment_cpu, homography, logit, mat_mul, reflect_coord, rotation,
    warp, zoom,
};
pub use batch::{Batch, augment_batch, normalize_tensor};
pub use cache::{CacheReport, ResizeCacheConfig};
pub use dataloaders::{DataLoaders, DataLoadersConfig};
pub use dataset::{
    AugOn, DecodeFn, ImageDataset, Normalize, Sample, Transforms, default_decoder, item_seed,
    splitmix64,
};
pub use decode::{
    DecodeOptions, Decoded, contain_panics, decode_rgb, load_rgb, load_rgb_with, sniff_format,
};
pub use error::{
    CsvProblem, CsvProblemKind, CsvProblems, Error, FolderProblem, ImageFormat, Result, UnsafeName,
};
pub use items::{
    CsvConfig, IMAGE_EXTENSIONS, Item, ItemList, LabelKind, MAX_CSV_BYTES, Task, Vocab, split_tags,
};
pub use loader::{
    BatchPos, BatchTransform, CpuBatch, DataLoader, EpochIter, LoaderConfig, OnError, shard_sizes,
};
pub use resize::{ResizeFilter, ResizeMethod, presize, resize_rgb, short_side_size};
pub use show::{ShowConfig, batch_images, draw_text, planar_to_rgb, render_grid, show_batch};
pub use split::{Split, Splitter, numpy_permutation};
pub use synth::{write_atomic, write_jpeg_atomic};
pub use verify::{VerifyReport, verify};

/// Re-exported so that users name the same `image` types as fastburn.
pub use image;
