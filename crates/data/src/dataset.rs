//! An image dataset: items + the per-item pipeline (decode → presize → augment → normalise).

use std::path::Path;
use std::sync::Arc;

use burn::config::Config;
use image::RgbImage;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::augment::{AugParams, AugPolicy, augment_cpu};
use crate::decode::{DecodeOptions, contain_panics, load_rgb_with};
use crate::error::Result;
use crate::items::{Item, ItemList, Task, Vocab};
use crate::resize::{ResizeFilter, ResizeMethod, presize, resize_rgb};

/// Per-channel normalisation `(x − mean) / std` of values in `[0, 1]`.
///
/// ```
/// let n = fastburn_data::Normalize::imagenet();
/// let mut px = vec![0.485, 0.456, 0.406]; // one pixel, planar
/// n.apply(&mut px, 1);
/// assert!(px.iter().all(|v| v.abs() < 1e-6));
/// ```
#[derive(Config, Debug, PartialEq)]
pub struct Normalize {
    /// Channel means.
    #[config(default = "[0.485, 0.456, 0.406]")]
    pub mean: [f32; 3],
    /// Channel standard deviations.
    #[config(default = "[0.229, 0.224, 0.225]")]
    pub std: [f32; 3],
}

impl Normalize {
    /// ImageNet's statistics (torchvision's pretrained models expect them).
    pub fn imagenet() -> Self {
        Normalize::new()
    }

    /// Normalises planar `[3, plane]` values in place.
    pub fn apply(&self, planar: &mut [f32], plane: usize) {
        for c in 0..3 {
            let (m, s) = (self.mean[c], self.std[c]);
            for v in &mut planar[c * plane..(c + 1) * plane] {
                *v = (*v - m) / s;
            }
        }
    }

    /// Undoes [`Normalize::apply`].
    pub fn invert(&self, planar: &mut [f32], plane: usize) {
        for c in 0..3 {
            let (m, s) = (self.mean[c], self.std[c]);
            for v in &mut planar[c * plane..(c + 1) * plane] {
                *v = *v * s + m;
            }
        }
    }
}

/// Where batch augmentation runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum AugOn {
    /// In the loader's worker threads, per item (the default on CPU backends).
    #[default]
    Cpu,
    /// On the device, one fused resampling per batch ([`crate::augment_batch`]); workers only
    /// decode and presize.
    Device,
}

/// The per-item pipeline: what size, how to get there, and which augmentation.
#[derive(Config, Debug, PartialEq)]
pub struct Transforms {
    /// Output side in pixels (square).
    pub size: u32,
    /// How a non-square image becomes square.
    #[config(default = "ResizeMethod::Crop")]
    pub resize: ResizeMethod,
    /// Resampling filter of the presize step.
    #[config(default = "ResizeFilter::Bilinear")]
    pub filter: ResizeFilter,
    /// Augmentation of training items; `None` for validation and inference.
    #[config(default = "None")]
    pub aug: Option<AugPolicy>,
    /// Where augmentation runs.
    #[config(default = "AugOn::Cpu")]
    pub aug_on: AugOn,
    /// Normalisation.
    #[config(default = "Normalize::imagenet()")]
    pub normalize: Normalize,
    /// Decoder limits.
    #[config(default = "DecodeOptions::default()")]
    pub decode: DecodeOptions,
    /// fastai's `val_xtra` for items without augmentation whose training policy has a
    /// [`RandomResizedCrop`](crate::RandomResizedCrop): the whole image is resized to
    /// `size + ⌈size · xtra / 8⌉ · 8` and its centre `size × size` kept.
    /// [`DataLoadersConfig`](crate::DataLoadersConfig) sets 0.14 (fastai's) on the
    /// validation transforms of such a policy.
    #[config(default = "None")]
    pub val_xtra: Option<f64>,
}

/// A function that decodes an image file (replaceable to read other formats or to inject
/// failures in tests).
pub type DecodeFn = Arc<dyn Fn(&Path, &DecodeOptions) -> Result<RgbImage> + Send + Sync>;

/// The default decoder: [`load_rgb_with`].
pub fn default_decoder() -> DecodeFn {
    Arc::new(|p: &Path, o: &DecodeOptions| load_rgb_with(p, o).map(|d| d.image))
}

/// One prepared item.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Planar `[3, size, size]` values: normalised when augmentation ran on the CPU (or none
    /// was asked for), raw `[0, 1]` when it is left to the device.
    pub pixels: Vec<f32>,
    /// The parameters still to apply on the device (identity when done on the CPU).
    pub params: AugParams,
    /// Label indices.
    pub labels: Vec<usize>,
}

/// SplitMix64's finaliser: a well-mixed 64-bit hash of a 64-bit input.
pub fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The RNG seed of item `index` in `epoch`: it depends on nothing else, so the augmentation
/// of an item is the same whatever the batch order or the number of workers.
pub fn item_seed(seed: u64, epoch: usize, index: usize) -> u64 {
    splitmix64(splitmix64(splitmix64(seed) ^ epoch as u64) ^ index as u64)
}

/// Items + transforms: `get(i, epoch)` decodes, presizes, augments and normalises item `i`.
#[derive(Clone)]
pub struct ImageDataset {
    items: Arc<Vec<Item>>,
    vocab: Vocab,
    task: Task,
    tfms: Arc<Transforms>,
    seed: u64,
    decoder: DecodeFn,
}

impl std::fmt::Debug for ImageDataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageDataset")
            .field("len", &self.items.len())
            .field("classes", &self.vocab.len())
            .field("task", &self.task)
            .field("tfms", &self.tfms)
            .field("seed", &self.seed)
            .finish()
    }
}

impl ImageDataset {
    /// A dataset over `list` with transforms `tfms`; `seed` drives augmentation.
    pub fn new(list: ItemList, tfms: Transforms, seed: u64) -> Self {
        ImageDataset {
            items: Arc::new(list.items),
            vocab: list.vocab,
            task: list.task,
            tfms: Arc::new(tfms),
            seed,
            decoder: default_decoder(),
        }
    }

    /// Replaces the decoder.
    pub fn with_decoder(mut self, decoder: DecodeFn) -> Self {
        self.decoder = decoder;
        self
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The items.
    pub fn items(&self) -> &[Item] {
        &self.items
    }

    /// The vocabulary.
    pub fn vocab(&self) -> &Vocab {
        &self.vocab
    }

    /// Single- or multi-label.
    pub fn task(&self) -> Task {
        self.task
    }

    /// The transforms.
    pub fn transforms(&self) -> &Transforms {
        &self.tfms
    }

    /// The augmentation seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The same items with other transforms (progressive resizing, TTA).
    pub fn with_transforms(&self, tfms: Transforms) -> Self {
        ImageDataset {
            tfms: Arc::new(tfms),
            ..self.clone()
        }
    }

    /// Decodes and presizes item `index` (no augmentation): `size × size` RGB.
    ///
    /// # Errors
    /// A decode error naming the file (panics in the decoder are contained).
    ///
    /// # Panics
    /// When `index >= len()` (a programming error).
    pub fn load_presized(&self, index: usize, crop_pos: (f64, f64)) -> Result<RgbImage> {
        self.load_with(index, |img, t| match t.val_xtra {
            Some(x) if t.aug.is_none() => {
                let s = f64::from(t.size);
                let fin = s + ((s * x) / 8.0).ceil() * 8.0;
                let f = s / fin;
                let (w, h) = (f64::from(img.width()), f64::from(img.height()));
                let b = (w * (1.0 - f) / 2.0, h * (1.0 - f) / 2.0, w * f, h * f);
                resize_rgb(img, t.size, t.size, t.filter, Some(b))
            }
            _ => presize(img, t.size, t.resize, crop_pos, t.filter),
        })
    }

    /// Decodes item `index` and makes it `size × size` with `f`.
    fn load_with(
        &self,
        index: usize,
        f: impl FnOnce(&RgbImage, &Transforms) -> RgbImage,
    ) -> Result<RgbImage> {
        let item = &self.items[index];
        let t = &self.tfms;
        contain_panics(&item.path, || {
            let img = (self.decoder)(&item.path, &t.decode)?;
            Ok(f(&img, t))
        })
    }

    /// Prepares item `index` for `epoch`: decode, presize (random crop position when
    /// augmenting) — or, with a [`RandomResizedCrop`](crate::RandomResizedCrop) in the
    /// policy, crop a random box of the *decoded* image and resize it (fastai's item
    /// transform) — draw the other augmentation parameters from the item's own seed, apply
    /// them when augmentation runs on the CPU, normalise.
    ///
    /// # Errors
    /// As [`ImageDataset::load_presized`].
    ///
    /// # Panics
    /// When `index >= len()`.
    pub fn get(&self, index: usize, epoch: usize) -> Result<Sample> {
        let t = &self.tfms;
        let item = &self.items[index];
        let mut rng = ChaCha8Rng::seed_from_u64(item_seed(self.seed, epoch, index));
        let (img, params) = match &t.aug {
            Some(policy) => {
                let pos = (rng.random::<f64>(), rng.random::<f64>());
                let img = match &policy.random_resized_crop {
                    Some(rrc) => self.load_with(index, |img, t| {
                        let b = rrc.sample_box(&mut rng, img.width(), img.height());
                        resize_rgb(img, t.size, t.size, t.filter, Some(b))
                    })?,
                    None => self.load_presized(index, pos)?,
                };
                (img, policy.sample(&mut rng))
            }
            None => (
                self.load_presized(index, (0.5, 0.5))?,
                AugParams::identity(),
            ),
        };
        let s = t.size;
        let plane = (s * s) as usize;
        let mut pixels = vec![0.0f32; 3 * plane];
        let pad = t.aug.as_ref().map(|a| a.pad).unwrap_or_default();
        let on_device = t.aug_on == AugOn::Device && t.aug.is_some();
        if on_device {
            augment_cpu(&img, &AugParams::identity(), s, s, pad, &mut pixels);
        } else {
            contain_panics(&item.path, || {
                augment_cpu(&img, &params, s, s, pad, &mut pixels);
                Ok(())
            })?;
            t.normalize.apply(&mut pixels, plane);
        }
        Ok(Sample {
            pixels,
            params: if on_device {
                params
            } else {
                AugParams::identity()
            },
            labels: item.labels.clone(),
        })
    }
}
