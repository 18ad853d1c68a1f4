//! Precomputed activations (fastai 0.7's `precompute=True`): with the body frozen, its
//! output for every image is computed once (no augmentation) by an evaluation pass of the
//! loop, and the following fits train the head on the cached features — another batch
//! source of the same loop, skipping the body's forward and backward passes entirely.

use crate::callbacks::GatherPreds;
use crate::error::Result;
use crate::learner::{Learner, Phase};
use crate::step::{FeatureCache, FeatureSet, Source};

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

impl Learner {
    /// The body activations of every item of `dl`, in order: an evaluation pass that
    /// stops after the body, with the batches gathered.
    fn body_features(&mut self, dl: fastburn_data::DataLoader) -> Result<(FeatureSet, [usize; 3])> {
        self.add_callback(GatherPreds::new(Phase::Features));
        let r = self.eval_pass(Source::loader(dl), Phase::Features);
        let g = self
            .remove_cb::<GatherPreds>()
            .expect("the gatherer stays installed during its pass");
        r?;
        Ok(FeatureSet::from_outputs(g.into_outputs()))
    }

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
        if self.frozen_groups() + 1 < self.layer_groups().len() {
            self.freeze();
        }
        self.set_feature_cache(None);
        let train = &self.dls().train;
        let train_plain = train
            .with_dataset(
                train
                    .dataset()
                    .with_transforms(train.dataset().transforms().clone().with_aug(None)),
            )
            .with_config(
                train
                    .config()
                    .clone()
                    .with_shuffle(false)
                    .with_drop_last(false),
            );
        let valid = self.dls().valid.clone();
        let (train, shape) = self.body_features(train_plain)?;
        let (valid, vshape) = self.body_features(valid)?;
        let shape = if shape == [0, 0, 0] { vshape } else { shape };
        let cache = FeatureCache {
            shape,
            n_classes: self.dls().vocab.len(),
            train,
            valid,
        };
        let report = PrecomputeReport {
            train_items: cache.train_len(),
            valid_items: cache.valid_len(),
            feature_shape: shape,
            seconds: t0.elapsed().as_secs_f64(),
        };
        self.set_feature_cache(Some(cache));
        Ok(report)
    }

    /// Whether cached activations are in use.
    pub fn is_precomputed(&self) -> bool {
        self.feature_cache().is_some()
    }

    /// Drops the cached activations.
    pub fn clear_precompute(&mut self) {
        self.set_feature_cache(None);
    }
}
