//! `DataLoaders`: the training and validation loaders of one dataset, built from one config
//! (fastai's `ImageDataLoaders`).

use std::time::Duration;

use burn::config::Config;

use crate::augment::AugPolicy;
use crate::dataset::{AugOn, ImageDataset, Normalize, Transforms};
use crate::decode::DecodeOptions;
use crate::error::{Error, Result};
use crate::items::{CsvConfig, ItemList, Task, Vocab};
use crate::loader::{DataLoader, LoaderConfig, OnError};
use crate::resize::ResizeMethod;
use crate::split::{Split, Splitter};

/// Everything needed to turn items into training and validation loaders.
#[derive(Config, Debug, PartialEq)]
pub struct DataLoadersConfig {
    /// Image side in pixels.
    pub size: u32,
    /// Items per batch.
    #[config(default = 64)]
    pub batch_size: usize,
    /// Loader threads per loader.
    #[config(default = 2)]
    pub workers: usize,
    /// Batches prepared ahead.
    #[config(default = 2)]
    pub prefetch: usize,
    /// Training augmentation (`None`: none).
    #[config(default = "Some(AugPolicy::fastai())")]
    pub aug: Option<AugPolicy>,
    /// Where augmentation runs.
    #[config(default = "AugOn::Cpu")]
    pub aug_on: AugOn,
    /// Item-level resize.
    #[config(default = "ResizeMethod::Crop")]
    pub resize: ResizeMethod,
    /// Normalisation.
    #[config(default = "Normalize::imagenet()")]
    pub normalize: Normalize,
    /// Seed of shuffling and augmentation.
    #[config(default = 42)]
    pub seed: u64,
    /// Bad-item policy.
    #[config(default = "OnError::Stop")]
    pub on_error: OnError,
    /// Decoder limits.
    #[config(default = "DecodeOptions::default()")]
    pub decode: DecodeOptions,
    /// Longest wait for one batch before the epoch fails with
    /// [`Error::BatchDeadline`] (`None`: no deadline); see
    /// [`LoaderConfig::batch_deadline`].
    #[config(default = "Some(Duration::from_secs(600))")]
    pub batch_deadline: Option<Duration>,
}

/// The training and validation loaders of a dataset.
#[derive(Debug, Clone)]
pub struct DataLoaders {
    /// Shuffled, augmented.
    pub train: DataLoader,
    /// In order, not augmented.
    pub valid: DataLoader,
    /// The class vocabulary (of all rows).
    pub vocab: Vocab,
    /// Single- or multi-label.
    pub task: Task,
    /// Which items train and which validate.
    pub split: Split,
}

impl DataLoadersConfig {
    /// The transforms of the training side.
    pub fn train_transforms(&self) -> Transforms {
        Transforms::new(self.size)
            .with_resize(self.resize)
            .with_aug(self.aug.clone())
            .with_aug_on(self.aug_on)
            .with_normalize(self.normalize.clone())
            .with_decode(self.decode)
    }

    /// The transforms of validation and inference (centre crop, no augmentation; with a
    /// random resized crop in training, fastai's `val_xtra = 0.14`).
    pub fn valid_transforms(&self) -> Transforms {
        let rrc = self
            .aug
            .as_ref()
            .is_some_and(|a| a.random_resized_crop.is_some());
        self.train_transforms()
            .with_aug(None)
            .with_val_xtra(rrc.then_some(0.14))
    }

    /// The loader configuration: the training loader shuffles and drops its last partial
    /// batch (fastai's `drop_last = shuffle`: a one-item batch would reach the head's
    /// BatchNorm1d); the validation loader keeps every item, in order.
    pub fn loader_config(&self, train: bool) -> LoaderConfig {
        LoaderConfig::new()
            .with_batch_size(self.batch_size)
            .with_shuffle(train)
            .with_drop_last(train)
            .with_workers(self.workers)
            .with_prefetch(self.prefetch)
            .with_seed(self.seed)
            .with_on_error(self.on_error)
            .with_batch_deadline(self.batch_deadline)
    }

    /// Checks the settings a user gives: image size 1–8192 px, batch size 1–65536, at
    /// most 256 workers and 1024 prefetched batches, a batch deadline (when set) above 0,
    /// and a valid augmentation policy ([`AugPolicy::validate`]).
    /// [`DataLoadersConfig::from_csv`] calls it; call it before [`DataLoadersConfig::build`]
    /// when building from lists.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the first setting out of range.
    ///
    /// # Example
    /// ```
    /// use std::time::Duration;
    /// use fastburn_data::{DataLoadersConfig, Error};
    ///
    /// assert!(DataLoadersConfig::new(32).validate().is_ok());
    /// assert!(DataLoadersConfig::new(32).with_batch_deadline(None).validate().is_ok());
    /// let zero = DataLoadersConfig::new(32).with_batch_deadline(Some(Duration::ZERO));
    /// assert!(matches!(zero.validate(), Err(Error::InvalidConfig { key: "batch_deadline", .. })));
    /// ```
    pub fn validate(&self) -> Result<()> {
        let check = |ok: bool, key: &'static str, value: String, expected: &'static str| {
            if ok {
                Ok(())
            } else {
                Err(Error::InvalidConfig {
                    key,
                    value,
                    expected,
                })
            }
        };
        check(
            (1..=8192).contains(&self.size),
            "size",
            self.size.to_string(),
            "an image side in 1..=8192 px",
        )?;
        check(
            (1..=65536).contains(&self.batch_size),
            "batch_size",
            self.batch_size.to_string(),
            "in 1..=65536",
        )?;
        check(
            self.workers <= 256,
            "workers",
            self.workers.to_string(),
            "at most 256 loader threads",
        )?;
        check(
            self.prefetch <= 1024,
            "prefetch",
            self.prefetch.to_string(),
            "at most 1024 batches",
        )?;
        check(
            self.batch_deadline.is_none_or(|d| !d.is_zero()),
            "batch_deadline",
            format!("{:?}", self.batch_deadline),
            "a duration above 0, or None for no deadline",
        )?;
        match &self.aug {
            Some(a) => a.validate(),
            None => Ok(()),
        }
    }

    /// Builds the loaders of `list` split by `split`.
    ///
    /// # Panics
    /// When a split index is out of range for `list` (build splits with [`Splitter::split`]).
    pub fn build(&self, list: &ItemList, split: &Split) -> DataLoaders {
        let train = ImageDataset::new(
            list.subset(&split.train),
            self.train_transforms(),
            self.seed,
        );
        let valid = ImageDataset::new(
            list.subset(&split.valid),
            self.valid_transforms(),
            self.seed,
        );
        DataLoaders {
            train: DataLoader::new(train, self.loader_config(true)),
            valid: DataLoader::new(valid, self.loader_config(false)),
            vocab: list.vocab.clone(),
            task: list.task,
            split: split.clone(),
        }
    }

    /// Reads a Planet-style CSV, splits it and builds the loaders: fastai's
    /// `ImageDataLoaders.from_csv` in one call.
    ///
    /// # Errors
    /// An invalid setting ([`DataLoadersConfig::validate`]), CSV problems
    /// ([`crate::Error::Csv`]) or an invalid split.
    ///
    /// # Example
    /// ```
    /// # use fastburn_data::*;
    /// # let dir = tempfile::tempdir().unwrap();
    /// # synth::SynthConfig::new(dir.path().to_path_buf()).with_n(20).with_size(32).generate().unwrap();
    /// let csv = CsvConfig::new(dir.path().join("labels.csv"), dir.path().join("train-jpg"));
    /// let dls = DataLoadersConfig::new(32).with_batch_size(8).from_csv(&csv, &Splitter::default())?;
    /// assert_eq!((dls.train.dataset().len(), dls.valid.dataset().len()), (16, 4));
    /// # Ok::<(), fastburn_data::Error>(())
    /// ```
    pub fn from_csv(&self, csv: &CsvConfig, splitter: &Splitter) -> Result<DataLoaders> {
        self.validate()?;
        let list = csv.load()?;
        let split = splitter.split(list.len())?;
        Ok(self.build(&list, &split))
    }
}

impl DataLoaders {
    /// The same items at another size (progressive resizing: 64 → 128 → 256).
    pub fn with_size(&self, size: u32) -> DataLoaders {
        let resize = |dl: &DataLoader| {
            let t = Transforms {
                size,
                ..dl.dataset().transforms().clone()
            };
            dl.with_dataset(dl.dataset().with_transforms(t))
        };
        DataLoaders {
            train: resize(&self.train),
            valid: resize(&self.valid),
            vocab: self.vocab.clone(),
            task: self.task,
            split: self.split.clone(),
        }
    }

    /// The image side of the loaders.
    pub fn size(&self) -> u32 {
        self.valid.dataset().transforms().size
    }

    /// A loader over other items (a test folder) with the validation transforms, in order.
    pub fn test_loader(&self, list: ItemList) -> DataLoader {
        let ds = self.valid.dataset();
        let list = ItemList {
            vocab: self.vocab.clone(),
            task: self.task,
            ..list
        };
        let ds = ImageDataset::new(list, ds.transforms().clone(), ds.seed());
        DataLoader::new(ds, self.valid.config().clone())
    }
}
