//! Batches as tensors on a device, and the batched on-device augmentation.

use burn::tensor::ops::{GridSampleOptions, GridSamplePaddingMode, InterpolateMode};
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::augment::{AugParams, LightingMode, PadMode};
use crate::dataset::{AugOn, Normalize, Transforms};
use crate::items::Task;
use crate::loader::CpuBatch;

/// A batch on a device: NCHW images and targets.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Normalised images `[n, 3, size, size]`.
    pub images: Tensor<4>,
    /// Multi-hot targets `[n, classes]` (for single-label data: one-hot).
    pub targets: Tensor<2>,
    /// Class indices `[n]` for single-label data.
    pub classes: Option<Tensor<1, Int>>,
    /// Dataset indices of the items.
    pub indices: Vec<usize>,
    /// Label indices per item.
    pub labels: Vec<Vec<usize>>,
}

impl Batch {
    /// Number of items.
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }
}

impl CpuBatch {
    /// Moves the batch to `device`, running the pending on-device augmentation and the
    /// normalisation when the transforms ask for [`AugOn::Device`].
    ///
    /// For training, pass the autodiff device (`device.autodiff()`), so the batch lives where
    /// the model trains.
    ///
    /// # Example
    /// ```
    /// # use fastburn_data::*;
    /// # let dir = tempfile::tempdir().unwrap();
    /// # synth::SynthConfig::new(dir.path().to_path_buf()).with_n(4).with_size(32).generate().unwrap();
    /// let list = CsvConfig::new(dir.path().join("labels.csv"), dir.path().join("train-jpg")).load()?;
    /// let (task, classes) = (list.task, list.vocab.len());
    /// let tfms = Transforms::new(32).with_aug(Some(AugPolicy::top_down())).with_aug_on(AugOn::Device);
    /// let dl = DataLoader::new(ImageDataset::new(list, tfms.clone(), 42), LoaderConfig::new().with_batch_size(4));
    /// let cpu = dl.epoch(0).next().unwrap()?;
    /// let batch = cpu.to_device(&burn::tensor::Device::flex(), &tfms, task);
    /// assert_eq!(batch.images.dims(), [4, 3, 32, 32]);
    /// assert_eq!(batch.targets.dims(), [4, classes]);
    /// # Ok::<(), fastburn_data::Error>(())
    /// ```
    pub fn to_device(self, device: &Device, tfms: &Transforms, task: Task) -> Batch {
        let n = self.len();
        let s = self.size as usize;
        let mut images = Tensor::<4>::from_data(TensorData::new(self.images, [n, 3, s, s]), device);
        if tfms.aug_on == AugOn::Device
            && let Some(policy) = &tfms.aug
        {
            images = augment_batch(images, &self.params, policy.pad, policy.lighting);
            images = normalize_tensor(images, &tfms.normalize);
        }
        let targets =
            Tensor::<2>::from_data(TensorData::new(self.targets, [n, self.classes]), device);
        let classes = match task {
            Task::SingleLabel => {
                let idx: Vec<i64> = self
                    .labels
                    .iter()
                    .map(|l| l.first().copied().unwrap_or(0) as i64)
                    .collect();
                Some(Tensor::<1, Int>::from_data(
                    TensorData::new(idx, [n]),
                    device,
                ))
            }
            Task::MultiLabel => None,
        };
        Batch {
            images,
            targets,
            classes,
            indices: self.indices,
            labels: self.labels,
        }
    }
}

/// `(x − mean) / std` per channel on the device.
pub fn normalize_tensor(images: Tensor<4>, n: &Normalize) -> Tensor<4> {
    let device = images.device();
    let mean = Tensor::<1>::from_data(TensorData::new(n.mean.to_vec(), [3]), &device)
        .reshape([1, 3, 1, 1]);
    let std =
        Tensor::<1>::from_data(TensorData::new(n.std.to_vec(), [3]), &device).reshape([1, 3, 1, 1]);
    (images - mean) / std
}

/// The batched augmentation: every image of `images` (`[n, 3, h, w]`, values in `[0, 1]`) is
/// resampled once through its own matrix — all affine and warp steps composed — with bilinear
/// interpolation and `pad`, then lit. The sampling grid is computed on the device (one batched
/// matrix product), so a GPU does the whole step.
///
/// Same semantics as [`crate::augment_cpu`] for the same parameters (the two agree to float
/// rounding; tested).
///
/// # Panics
/// When `params.len()` differs from the batch size.
pub fn augment_batch(
    images: Tensor<4>,
    params: &[AugParams],
    pad: PadMode,
    lighting: LightingMode,
) -> Tensor<4> {
    let [n, _, h, w] = images.dims();
    assert_eq!(params.len(), n, "one AugParams per image");
    let device = images.device();
    let identity = params.iter().all(|p| p.matrix == crate::augment::IDENTITY);
    let mut out = if identity {
        images
    } else {
        // Base grid: (x, y, 1) at each output pixel centre, [1, h*w, 3].
        let mut base = Vec::with_capacity(h * w * 3);
        for i in 0..h {
            let y = (2.0 * i as f32 + 1.0) / h as f32 - 1.0;
            for j in 0..w {
                let x = (2.0 * j as f32 + 1.0) / w as f32 - 1.0;
                base.extend_from_slice(&[x, y, 1.0]);
            }
        }
        let base = Tensor::<3>::from_data(TensorData::new(base, [1, h * w, 3]), &device);
        // Transposed matrices [n, 3, 3] so that base @ Mᵀ maps every point.
        let mut mats = Vec::with_capacity(n * 9);
        for p in params {
            for c in 0..3 {
                for r in 0..3 {
                    mats.push(p.matrix[r][c] as f32);
                }
            }
        }
        let mats = Tensor::<3>::from_data(TensorData::new(mats, [n, 3, 3]), &device);
        let mapped = base.expand([n, h * w, 3]).matmul(mats); // [n, h*w, 3]
        let xy = mapped.clone().slice_dim(2, 0..2) / mapped.slice_dim(2, 2..3);
        let grid = xy.reshape([n, h, w, 2]);
        let mode = match pad {
            PadMode::Reflection => GridSamplePaddingMode::Reflection,
            PadMode::Border => GridSamplePaddingMode::Border,
            PadMode::Zeros => GridSamplePaddingMode::Zeros,
        };
        let opts = GridSampleOptions::new(InterpolateMode::Bilinear)
            .with_padding_mode(mode)
            .with_align_corners(false);
        images.grid_sample_2d(grid, opts)
    };
    let lit: Vec<_> = params.iter().map(|p| p.lighting).collect();
    if lit.iter().any(Option::is_some) {
        let (mut b, mut c, mut on) = (Vec::new(), Vec::new(), Vec::new());
        for l in &lit {
            match l {
                Some(l) => {
                    b.push(l.brightness as f32);
                    c.push(l.contrast as f32);
                    on.push(1.0f32);
                }
                None => {
                    b.push(match lighting {
                        LightingMode::Logit => 0.5,
                        LightingMode::Linear => 0.0,
                    });
                    c.push(1.0);
                    on.push(0.0);
                }
            }
        }
        let col = |v: Vec<f32>| {
            Tensor::<1>::from_data(TensorData::new(v, [n]), &device).reshape([n, 1, 1, 1])
        };
        let (b, c, on) = (col(b), col(c), col(on));
        let changed = match lighting {
            LightingMode::Logit => {
                let x = out.clone().clamp(1e-7, 1.0 - 1e-7);
                let logit_x = (x.clone() / (x.neg() + 1.0)).log();
                let bb = b.clamp(1e-7, 1.0 - 1e-7);
                let logit_b = (bb.clone() / (bb.neg() + 1.0)).log();
                burn::tensor::activation::sigmoid((logit_x + logit_b) * c)
            }
            LightingMode::Linear => {
                let mu = out.clone().mean_dims(&[1, 2, 3]);
                ((out.clone() - mu.clone()) * c + mu + b).clamp(0.0, 1.0)
            }
        };
        out = changed * on.clone() + out * (on.neg() + 1.0);
    }
    out
}
