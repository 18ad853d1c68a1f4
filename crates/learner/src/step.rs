//! What one pass of the loop reads and what one evaluated batch gives back: batch sources
//! (a data loader, or cached body activations) and the single forward → loss / activation
//! → read-back path of evaluation, shared by the learner's loop and by [`Inference`]
//! (crate::Inference).

use std::sync::Arc;

use burn::tensor::{Device, Tensor, TensorData};
use fastburn_data::{AugParams, DataLoader, Dihedral, Task, splitmix64};
use fastburn_models::VisionModel;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::error::{Error, Result};
use crate::loss::Loss;

/// Which part of the model a batch goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forward {
    /// Images through body and head.
    Full,
    /// Cached body activations through the head only (precompute).
    Head,
    /// Images through the body only; the activations are the output (building the cache).
    Body,
}

/// One batch on its device.
pub struct Input {
    /// Images, or body activations for [`Forward::Head`].
    pub x: Tensor<4>,
    /// Targets `[n, classes]`.
    pub y: Tensor<2>,
    /// Dataset indices of the items.
    pub indices: Vec<usize>,
}

/// What an evaluated batch gives back, read back to the host once.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BatchOutput {
    /// Probabilities `[n, c]` (empty for [`Forward::Body`]).
    pub probs: Vec<f32>,
    /// Targets `[n, c]`.
    pub targets: Vec<f32>,
    /// Per-item losses (empty for [`Forward::Body`]).
    pub losses: Vec<f32>,
    /// Dataset indices.
    pub indices: Vec<usize>,
    /// Body activations and their per-item shape `[c, h, w]` ([`Forward::Body`] only).
    pub features: Option<(Vec<f32>, [usize; 3])>,
}

/// Logits of a batch through the part of `model` that `forward` names (not `Body`).
pub(crate) fn logits(model: &VisionModel, x: Tensor<4>, forward: Forward) -> Tensor<2> {
    match forward {
        Forward::Head => model.head.forward(x),
        Forward::Full | Forward::Body => model.forward(x),
    }
}

/// The one evaluation step: forward, per-item loss and activation, one read-back. `model`
/// is in evaluation mode (`.valid()`) on the device of `input`.
pub fn eval_batch(model: &VisionModel, loss: &Loss, input: Input, forward: Forward) -> BatchOutput {
    let read = |t: Tensor<2>| t.try_into_vec_as::<f32>().expect("read back");
    if forward == Forward::Body {
        let f = model.body.forward(input.x);
        let [_, c, h, w] = f.dims();
        return BatchOutput {
            probs: Vec::new(),
            targets: read(input.y),
            losses: Vec::new(),
            indices: input.indices,
            features: Some((
                f.try_into_vec_as::<f32>().expect("features read back"),
                [c, h, w],
            )),
        };
    }
    let logits = logits(model, input.x, forward);
    let losses = loss.per_item(logits.clone(), input.y.clone());
    BatchOutput {
        probs: read(loss.activation(logits)),
        targets: read(input.y),
        losses: losses.try_into_vec_as::<f32>().expect("losses read back"),
        indices: input.indices,
        features: None,
    }
}

/// Cached body activations of the training and validation items (fastai 0.7's
/// `precompute=True`), built by [`Learner::precompute`](crate::Learner::precompute).
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureCache {
    pub(crate) shape: [usize; 3],
    pub(crate) n_classes: usize,
    pub(crate) train: FeatureSet,
    pub(crate) valid: FeatureSet,
}

/// Activations, targets and dataset indices of one split.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct FeatureSet {
    pub(crate) x: Vec<f32>,
    pub(crate) y: Vec<f32>,
    pub(crate) idx: Vec<usize>,
}

impl FeatureSet {
    pub(crate) fn from_outputs(outs: Vec<BatchOutput>) -> (Self, [usize; 3]) {
        let mut set = FeatureSet::default();
        let mut shape = [0; 3];
        for o in outs {
            if let Some((f, s)) = o.features {
                set.x.extend(f);
                shape = s;
            }
            set.y.extend(o.targets);
            set.idx.extend(o.indices);
        }
        (set, shape)
    }
}

impl FeatureCache {
    /// Feature shape per item `[channels, h, w]`.
    pub fn feature_shape(&self) -> [usize; 3] {
        self.shape
    }

    /// Cached training items.
    pub fn train_len(&self) -> usize {
        self.train.idx.len()
    }

    /// Cached validation items.
    pub fn valid_len(&self) -> usize {
        self.valid.idx.len()
    }

    fn item_len(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Where a pass takes its batches from.
#[derive(Clone)]
pub(crate) enum Source {
    /// A loader's epoch `epoch`; `view` replaces every item's augmentation with one
    /// dihedral view (TTA).
    Loader {
        dl: DataLoader,
        epoch: usize,
        view: Option<Dihedral>,
    },
    /// Cached activations: the training split (shuffled per epoch, `drop_last` as the
    /// loader's) or the validation split (in order).
    Cache {
        cache: Arc<FeatureCache>,
        train: bool,
        batch_size: usize,
        drop_last: bool,
        seed: u64,
        epoch: usize,
    },
}

impl Source {
    /// The batches of the pass, created on `device`.
    pub(crate) fn batches(
        self,
        device: Device,
        task: Task,
    ) -> Box<dyn Iterator<Item = Result<Input>>> {
        Box::new(
            self.sharded_batches(vec![device], task)
                .map(|b| b.map(|mut shards| shards.remove(0))),
        )
    }

    /// The batches of the pass, each split into one shard per device
    /// ([`fastburn_data::shard_sizes`]), shard `k` created on `devices[k]`.
    pub(crate) fn sharded_batches(
        self,
        devices: Vec<Device>,
        task: Task,
    ) -> Box<dyn Iterator<Item = Result<Vec<Input>>>> {
        match self {
            Source::Loader { dl, epoch, view } => {
                let tfms = dl.dataset().transforms().clone();
                Box::new(dl.epoch(epoch).map(move |cpu| {
                    let mut cpu = cpu?;
                    if let Some(d) = view {
                        cpu.params = vec![AugParams::dihedral(d); cpu.len()];
                    }
                    let shards = if devices.len() == 1 {
                        vec![cpu]
                    } else {
                        cpu.split(devices.len())
                    };
                    shards
                        .into_iter()
                        .zip(&devices)
                        .enumerate()
                        .map(|(rank, (cpu, device))| {
                            // A device that fails to take its shard (a GPU lost mid-run) is
                            // that replica's error, not a panic of the loop.
                            let upload = || {
                                let b = cpu.to_device(device, &tfms, task);
                                Input {
                                    x: b.images,
                                    y: b.targets,
                                    indices: b.indices,
                                }
                            };
                            if devices.len() == 1 {
                                return Ok(upload());
                            }
                            std::panic::catch_unwind(std::panic::AssertUnwindSafe(upload)).map_err(
                                |p| Error::Replica {
                                    rank,
                                    device: crate::parallel::device_label(device),
                                    message: crate::parallel::panic_message(&*p),
                                },
                            )
                        })
                        .collect()
                }))
            }
            Source::Cache {
                cache,
                train,
                batch_size,
                drop_last,
                seed,
                epoch,
            } => {
                let set = if train { &cache.train } else { &cache.valid };
                let mut order: Vec<usize> = (0..set.idx.len()).collect();
                if train {
                    let mut rng =
                        ChaCha8Rng::seed_from_u64(splitmix64(seed ^ 0x5052_4543) ^ epoch as u64);
                    order.shuffle(&mut rng);
                }
                let bs = batch_size.max(1);
                let chunks: Vec<Vec<usize>> = order
                    .chunks(bs)
                    .filter(|ch| !(train && drop_last) || ch.len() == bs)
                    .map(<[usize]>::to_vec)
                    .collect();
                Box::new(chunks.into_iter().map(move |ch| {
                    let set = if train { &cache.train } else { &cache.valid };
                    let (k, c) = (cache.item_len(), cache.n_classes);
                    let [fc, fh, fw] = cache.shape;
                    let mut start = 0;
                    let mut shards = Vec::with_capacity(devices.len());
                    for (len, device) in fastburn_data::shard_sizes(ch.len(), devices.len())
                        .into_iter()
                        .zip(&devices)
                    {
                        let part = &ch[start..start + len];
                        start += len;
                        let mut x = Vec::with_capacity(len * k);
                        let mut y = Vec::with_capacity(len * c);
                        let mut indices = Vec::with_capacity(len);
                        for &i in part {
                            x.extend_from_slice(&set.x[i * k..(i + 1) * k]);
                            y.extend_from_slice(&set.y[i * c..(i + 1) * c]);
                            indices.push(set.idx[i]);
                        }
                        shards.push(Input {
                            x: Tensor::<4>::from_data(
                                TensorData::new(x, [len, fc, fh, fw]),
                                device,
                            ),
                            y: Tensor::<2>::from_data(TensorData::new(y, [len, c]), device),
                            indices,
                        });
                    }
                    Ok(shards)
                }))
            }
        }
    }

    /// Batches of the pass (training sources: the optimiser steps per epoch).
    pub(crate) fn num_batches(&self) -> usize {
        match self {
            Source::Loader { dl, .. } => dl.num_batches(),
            Source::Cache {
                cache,
                train,
                batch_size,
                drop_last,
                ..
            } => {
                let n = if *train {
                    cache.train_len()
                } else {
                    cache.valid_len()
                };
                let bs = (*batch_size).max(1);
                if *train && *drop_last {
                    n / bs
                } else {
                    n.div_ceil(bs)
                }
            }
        }
    }

    /// What the batches go through.
    pub(crate) fn forward(&self) -> Forward {
        match self {
            Source::Loader { .. } => Forward::Full,
            Source::Cache { .. } => Forward::Head,
        }
    }
}
/// Predictions over a set of items.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Preds {
    /// Probabilities `[n, c]` (sigmoid or softmax).
    pub probs: Vec<f32>,
    /// Targets `[n, c]` (multi-hot / one-hot; zeros for unlabelled items).
    pub targets: Vec<f32>,
    /// Per-item losses.
    pub losses: Vec<f32>,
    /// Dataset indices.
    pub indices: Vec<usize>,
    /// Number of classes.
    pub n_classes: usize,
}

impl Preds {
    /// No predictions yet.
    pub fn empty(n_classes: usize) -> Self {
        Preds {
            n_classes,
            ..Default::default()
        }
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// Appends a batch.
    pub fn push(
        &mut self,
        probs: Vec<f32>,
        targets: Vec<f32>,
        losses: Vec<f32>,
        indices: Vec<usize>,
    ) {
        self.probs.extend(probs);
        self.targets.extend(targets);
        self.losses.extend(losses);
        self.indices.extend(indices);
    }

    /// Mean of the per-item losses.
    pub fn mean_loss(&self) -> f64 {
        self.losses.iter().map(|&l| f64::from(l)).sum::<f64>() / self.losses.len().max(1) as f64
    }

    /// The probabilities of item `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.probs[i * self.n_classes..(i + 1) * self.n_classes]
    }
}

impl Preds {
    /// Appends an evaluated batch.
    pub fn push_output(&mut self, out: BatchOutput) {
        self.push(out.probs, out.targets, out.losses, out.indices);
    }
}
