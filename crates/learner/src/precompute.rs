//! Precomputed activations (fastai 0.7's `precompute=True`): with the body frozen, its
//! output for every image is computed once (no augmentation) and the head trains on the
//! cached features, skipping the body's forward and backward passes entirely.

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use fastburn_data::{DataLoader, splitmix64};
use fastburn_models::VisionModel;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::error::Result;
use crate::learner::{Learner, Preds};
use crate::loss::Loss;

/// Cached body activations of the training and validation items.
#[derive(Debug, Clone)]
pub struct Precomputed {
    shape: [usize; 3],
    n_classes: usize,
    train_x: Vec<f32>,
    train_y: Vec<f32>,
    valid_x: Vec<f32>,
    valid_y: Vec<f32>,
    valid_idx: Vec<usize>,
}

/// What [`Learner::precompute`] computed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PrecomputeReport {
    /// Training items cached.
    pub train_items: usize,
    /// Validation items cached.
    pub valid_items: usize,
    /// Feature shape per item `[channels, h, w]`.
    pub feature_shape: [usize; 3],
    /// Seconds spent.
    pub seconds: f64,
}

/// Features, targets, dataset indices and the per-item feature shape.
type Features = (Vec<f32>, Vec<f32>, Vec<usize>, [usize; 3]);

fn features(
    model: &VisionModel,
    dl: &DataLoader,
    device: &Device,
    task: fastburn_data::Task,
) -> Result<Features> {
    let body = model.body.valid();
    let tfms = dl.dataset().transforms().clone();
    let (mut x, mut y, mut idx) = (Vec::new(), Vec::new(), Vec::new());
    let mut shape = [0usize; 3];
    for cpu in dl.epoch(0) {
        let batch = cpu?.to_device(device, &tfms, task);
        let f = body.forward(batch.images);
        let [_, c, h, w] = f.dims();
        shape = [c, h, w];
        x.extend(f.try_into_vec_as::<f32>().expect("features read back"));
        y.extend(
            batch
                .targets
                .try_into_vec_as::<f32>()
                .expect("targets read back"),
        );
        idx.extend(batch.indices);
    }
    Ok((x, y, idx, shape))
}

impl Precomputed {
    pub(crate) fn num_batches(&self, bs: usize, drop_last: bool) -> usize {
        let n = self.train_len();
        if drop_last { n / bs } else { n.div_ceil(bs) }
    }

    fn train_len(&self) -> usize {
        self.train_y.len() / self.n_classes.max(1)
    }

    fn item_len(&self) -> usize {
        self.shape.iter().product()
    }

    /// The epoch's shuffled batches of cached features, on `device`.
    pub(crate) fn train_batches(
        &self,
        bs: usize,
        drop_last: bool,
        seed: u64,
        epoch: usize,
        device: &Device,
    ) -> Vec<(Tensor<4>, Tensor<2>)> {
        let n = self.train_len();
        let mut order: Vec<usize> = (0..n).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(splitmix64(seed ^ 0x5052_4543) ^ epoch as u64);
        order.shuffle(&mut rng);
        let (k, c) = (self.item_len(), self.n_classes);
        order
            .chunks(bs)
            .filter(|ch| !drop_last || ch.len() == bs)
            .map(|ch| {
                let mut x = Vec::with_capacity(ch.len() * k);
                let mut y = Vec::with_capacity(ch.len() * c);
                for &i in ch {
                    x.extend_from_slice(&self.train_x[i * k..(i + 1) * k]);
                    y.extend_from_slice(&self.train_y[i * c..(i + 1) * c]);
                }
                let [fc, fh, fw] = self.shape;
                (
                    Tensor::<4>::from_data(TensorData::new(x, [ch.len(), fc, fh, fw]), device),
                    Tensor::<2>::from_data(TensorData::new(y, [ch.len(), c]), device),
                )
            })
            .collect()
    }

    /// Predictions of the head on the cached validation features.
    pub(crate) fn valid_preds(&self, model: &VisionModel, loss: &Loss, device: &Device) -> Preds {
        let head = model.head.valid();
        let (k, c) = (self.item_len(), self.n_classes);
        let n = self.valid_y.len() / c.max(1);
        let mut preds = Preds::empty(c);
        let bs = 256;
        for start in (0..n).step_by(bs) {
            let end = (start + bs).min(n);
            let [fc, fh, fw] = self.shape;
            let x = Tensor::<4>::from_data(
                TensorData::new(
                    self.valid_x[start * k..end * k].to_vec(),
                    [end - start, fc, fh, fw],
                ),
                device,
            );
            let y = Tensor::<2>::from_data(
                TensorData::new(self.valid_y[start * c..end * c].to_vec(), [end - start, c]),
                device,
            );
            let logits = head.forward(x);
            let losses = loss.per_item(logits.clone(), y.clone());
            preds.push(
                loss.activation(logits)
                    .try_into_vec_as::<f32>()
                    .expect("read back"),
                y.try_into_vec_as::<f32>().expect("read back"),
                losses.try_into_vec_as::<f32>().expect("read back"),
                self.valid_idx[start..end].to_vec(),
            );
        }
        preds
    }
}

impl Learner {
    /// fastai 0.7's `precompute=True`: freezes the body (if it is not), runs it once over the
    /// training and validation items without augmentation, and caches the activations; the
    /// following fits train only the head, on the cache. The cache is dropped automatically
    /// by [`Learner::unfreeze`] / [`Learner::freeze_to`] (body trainable again) and by
    /// [`Learner::set_data`] (new data), or explicitly by [`Learner::clear_precompute`].
    ///
    /// BatchNorm layers of the body do not train while features are cached (the body does not
    /// run), as in fastai.
    ///
    /// # Example
    /// ```
    /// use burn::tensor::Device;
    /// use fastburn_data::synth::SynthConfig;
    /// use fastburn_data::{CsvConfig, DataLoadersConfig, Splitter};
    /// use fastburn_learner::{LearnerConfig, vision_learner};
    /// use fastburn_models::Arch;
    ///
    /// let dir = tempfile::tempdir()?;
    /// SynthConfig::new(dir.path().into()).with_n(24).with_size(32).with_n_test(0).generate()?;
    /// let csv = CsvConfig::new(dir.path().join("labels.csv"), dir.path().join("train-jpg"));
    /// let dls = DataLoadersConfig::new(32).with_batch_size(8).with_workers(0)
    ///     .from_csv(&csv, &Splitter::default())?;
    /// let cfg = LearnerConfig::new(Arch::ResNet18).with_base_width(4).with_path(dir.path().join("run"));
    /// let mut learn = vision_learner(dls, &cfg, None, &Device::flex())?;
    /// learn.quiet();
    ///
    /// let rep = learn.precompute()?;                // freezes the body, caches its outputs once
    /// assert_eq!((rep.train_items, rep.valid_items), (20, 4));
    /// assert_eq!(rep.feature_shape, [32, 1, 1]);    // layer4 of a width-4 ResNet-18 at 32 px
    /// learn.fit(2, 1e-2)?;                          // the head trains on the cache
    /// assert!(learn.is_precomputed());
    /// learn.unfreeze();                             // the body trains again: cache dropped
    /// assert!(!learn.is_precomputed());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// `cargo run --release --example precompute` measures the speed-up on a ResNet-34.
    ///
    /// # Errors
    /// A data error.
    pub fn precompute(&mut self) -> Result<PrecomputeReport> {
        let t0 = std::time::Instant::now();
        if self.frozen + 1 < self.groups.len() {
            self.freeze();
        }
        let device = self.inference_device();
        let task = self.dls.task;
        let train_plain =
            self.dls
                .train
                .with_dataset(
                    self.dls.train.dataset().with_transforms(
                        self.dls.train.dataset().transforms().clone().with_aug(None),
                    ),
                )
                .with_config(self.dls.train.config().clone().with_shuffle(false));
        let (train_x, train_y, _, shape) = features(self.model(), &train_plain, &device, task)?;
        let (valid_x, valid_y, valid_idx, vshape) =
            features(self.model(), &self.dls.valid, &device, task)?;
        let shape = if shape == [0, 0, 0] { vshape } else { shape };
        let n_classes = self.dls.vocab.len();
        let report = PrecomputeReport {
            train_items: train_y.len() / n_classes.max(1),
            valid_items: valid_y.len() / n_classes.max(1),
            feature_shape: shape,
            seconds: t0.elapsed().as_secs_f64(),
        };
        self.precomputed = Some(Precomputed {
            shape,
            n_classes,
            train_x,
            train_y,
            valid_x,
            valid_y,
            valid_idx,
        });
        Ok(report)
    }

    /// Whether cached activations are in use.
    pub fn is_precomputed(&self) -> bool {
        self.precomputed.is_some()
    }

    /// Drops the cached activations.
    pub fn clear_precompute(&mut self) {
        self.precomputed = None;
    }
}
