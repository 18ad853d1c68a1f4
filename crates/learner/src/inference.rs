//! Inference: predictions over loaders, TTA, single-image `predict`, thresholds, the Kaggle
//! submission, and the export bundle from which prediction works without training data.

use std::io::Write;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, Device};
use fastburn_data::{
    AugOn, AugPolicy, CsvConfig, DataLoader, DecodeOptions, Dihedral, ImageDataset, ItemList,
    LoaderConfig, Task, Transforms, Vocab,
};
use fastburn_metrics::{ThresholdGrid, best_threshold, per_class_thresholds};
use fastburn_models::{Arch, VisionModel, VisionModelConfig};
use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::callbacks::GatherPreds;
use crate::checkpoint::{first_non_finite, load_record_contained, sha256_hex};
use crate::error::{CheckpointProblem, Error, Result};
use crate::learner::{Learner, Phase};
use crate::loss::Loss;
use crate::step::{Forward, Input, Preds, Source, eval_batch};

/// Test-time augmentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Tta {
    /// `n` passes with the training augmentation (fastai's `tta(n=4)`).
    Augment {
        /// Number of augmented passes.
        n: usize,
    },
    /// The 8 dihedral views, averaged (exact for satellite imagery).
    Dihedral,
}

/// A model ready to predict: weights in evaluation mode, the vocabulary, the transforms.
#[derive(Debug, Clone)]
pub struct Inference {
    model: VisionModel,
    device: Device,
    loss: Loss,
    vocab: Vocab,
    task: Task,
    tfms: Transforms,
    train_aug: Option<AugPolicy>,
    thresholds: Vec<f32>,
    meta: ModelMeta,
}

/// What is needed to rebuild the model of an export bundle: the
/// [`VisionModelConfig`] read off the model itself ([`VisionModel::config`]), less the
/// class count (the bundle's vocabulary).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelMeta {
    /// Architecture.
    pub arch: Arch,
    /// Base width (ResNets).
    pub base_width: usize,
    /// Channel multiplier (MobileNetV2, EfficientNet; bundles written before this field:
    /// 1.0).
    #[serde(default = "one")]
    pub width_mult: f64,
    /// Input channels.
    pub in_channels: usize,
    /// Head hidden widths.
    pub lin_ftrs: Vec<usize>,
    /// Head dropout.
    pub ps: f64,
    /// Concat pool in the head (bundles written before this field: `true`).
    #[serde(default = "yes")]
    pub concat_pool: bool,
}

fn yes() -> bool {
    true
}

fn one() -> f64 {
    1.0
}

impl ModelMeta {
    /// The description of `model`; `None` when its body is not a known architecture.
    pub fn of(model: &VisionModel) -> Option<Self> {
        let c = model.config()?;
        Some(ModelMeta {
            arch: c.arch,
            base_width: c.base_width,
            width_mult: c.width_mult,
            in_channels: c.in_channels,
            lin_ftrs: c.lin_ftrs,
            ps: c.ps,
            concat_pool: c.concat_pool,
        })
    }

    /// The configuration of the model, for `n_classes` outputs.
    pub fn model_config(&self, n_classes: usize) -> VisionModelConfig {
        VisionModelConfig::new(self.arch, n_classes)
            .with_base_width(self.base_width)
            .with_width_mult(self.width_mult)
            .with_in_channels(self.in_channels)
            .with_lin_ftrs(self.lin_ftrs.clone())
            .with_ps(self.ps)
            .with_concat_pool(self.concat_pool)
    }
}

/// The passes of TTA over `dl`: `(loader, epoch, dihedral view)` for each augmented pass
/// (the plain pass is `dl` itself). Shared by [`Learner::tta`] and [`Inference::tta`].
fn tta_sources(dl: &DataLoader, mode: Tta, train_aug: Option<&AugPolicy>) -> Vec<Source> {
    let base = dl.dataset().transforms().clone();
    match mode {
        Tta::Augment { n } => {
            let policy = train_aug.cloned().unwrap_or_else(AugPolicy::fastai);
            let t = base.with_aug(Some(policy)).with_aug_on(AugOn::Device);
            let aug = dl.with_dataset(dl.dataset().with_transforms(t));
            (0..n)
                .map(|pass| Source::Loader {
                    dl: aug.clone(),
                    epoch: pass + 1,
                    view: None,
                })
                .collect()
        }
        Tta::Dihedral => {
            let t = base
                .with_aug(Some(AugPolicy::none()))
                .with_aug_on(AugOn::Device);
            let raw = dl.with_dataset(dl.dataset().with_transforms(t));
            Dihedral::ALL
                .into_iter()
                .map(|d| Source::Loader {
                    dl: raw.clone(),
                    epoch: 0,
                    view: Some(d),
                })
                .collect()
        }
    }
}

/// How TTA combines the augmented passes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum TtaBlend {
    /// fastai's `beta · plain + (1 − beta) · mean(augmented)` (`beta = 0.25` in fastai).
    Mean {
        /// Weight of the plain pass.
        beta: f64,
    },
    /// fastai's `use_max=True`: the element-wise maximum over the plain and the augmented
    /// passes.
    Max,
}

/// The JSON part of an export bundle.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportMeta {
    /// Bundle format version.
    pub format_version: u32,
    /// The model.
    pub model: ModelMeta,
    /// Class vocabulary.
    pub classes: Vec<String>,
    /// Single- or multi-label.
    pub task: Task,
    /// Inference transforms (size, resize, normalisation, decoder limits).
    pub transforms: Transforms,
    /// The training augmentation (for TTA).
    pub train_aug: Option<AugPolicy>,
    /// Thresholds (one, or one per class).
    pub thresholds: Vec<f32>,
}

/// What thresholds must be.
pub(crate) const THRESHOLDS_EXPECTED: &str = "one threshold, or one per class, each in [0, 1]";

/// One threshold or one per class, each a number in [0, 1].
pub(crate) fn thresholds_ok(t: &[f32], n_classes: usize) -> bool {
    (t.len() == 1 || t.len() == n_classes) && t.iter().all(|x| (0.0..=1.0).contains(x))
}

/// [`thresholds_ok`] as a typed error.
pub(crate) fn check_thresholds(t: &[f32], n_classes: usize) -> Result<()> {
    if thresholds_ok(t, n_classes) {
        Ok(())
    } else {
        Err(Error::InvalidConfig {
            key: "thresholds",
            value: format!("{t:?} for {n_classes} classes"),
            expected: THRESHOLDS_EXPECTED,
        })
    }
}

/// Largest accepted bundle (4 GiB: a ResNet-152 is 0.25 GiB).
pub const MAX_BUNDLE_BYTES: u64 = 4 << 30;

impl ExportMeta {
    /// Checks everything a bundle's metadata controls before anything is built from it:
    /// a sorted vocabulary without duplicates (the order of the logits), thresholds that fit
    /// it, model sizes in range, and transforms that do not raise the decoder's limits
    /// above the defaults or ask for absurd image sizes.
    ///
    /// # Errors
    /// [`CheckpointProblem::State`] naming the first key out of range.
    pub fn validate(&self) -> std::result::Result<(), CheckpointProblem> {
        let bad = |key: &'static str, value: String, expected: &'static str| {
            Err(CheckpointProblem::State {
                key,
                value,
                expected,
            })
        };
        let c = &self.classes;
        if c.is_empty() || c.windows(2).any(|w| w[0] >= w[1]) || c.iter().any(|n| n.is_empty()) {
            return bad(
                "classes",
                format!("{c:?}"),
                "one or more non-empty names, sorted, without duplicates",
            );
        }
        if !thresholds_ok(&self.thresholds, c.len()) {
            return bad(
                "thresholds",
                format!("{:?}", self.thresholds),
                THRESHOLDS_EXPECTED,
            );
        }
        let m = &self.model;
        if !(1..=1024).contains(&m.base_width) {
            return bad("model.base_width", m.base_width.to_string(), "in 1..=1024");
        }
        if !fastburn_models::valid_width_mult(m.width_mult) {
            return bad(
                "model.width_mult",
                m.width_mult.to_string(),
                "a channel multiplier in (0, 8]",
            );
        }
        if !(1..=64).contains(&m.in_channels) {
            return bad("model.in_channels", m.in_channels.to_string(), "in 1..=64");
        }
        if m.lin_ftrs.len() > 8 || m.lin_ftrs.iter().any(|w| !(1..=65536).contains(w)) {
            return bad(
                "model.lin_ftrs",
                format!("{:?}", m.lin_ftrs),
                "at most 8 widths, each in 1..=65536",
            );
        }
        if !(m.ps.is_finite() && (0.0..1.0).contains(&m.ps)) {
            return bad(
                "model.ps",
                m.ps.to_string(),
                "a dropout probability in [0, 1)",
            );
        }
        let t = &self.transforms;
        if !(1..=8192).contains(&t.size) {
            return bad("transforms.size", t.size.to_string(), "in 1..=8192 px");
        }
        let n = &t.normalize;
        if n.mean.iter().chain(&n.std).any(|v| !v.is_finite()) || n.std.iter().any(|v| *v <= 0.0) {
            return bad(
                "transforms.normalize",
                format!("{n:?}"),
                "finite means and positive standard deviations",
            );
        }
        let d = &t.decode;
        let lim = DecodeOptions::default();
        if d.max_width > lim.max_width
            || d.max_height > lim.max_height
            || d.max_pixels > lim.max_pixels
            || d.max_file_bytes > lim.max_file_bytes
        {
            return bad(
                "transforms.decode",
                format!("{d:?}"),
                "limits no higher than the decoder's defaults",
            );
        }
        if let Some(x) = t.val_xtra
            && !(x.is_finite() && (0.0..=1.0).contains(&x))
        {
            return bad("transforms.val_xtra", x.to_string(), "in [0, 1]");
        }
        for (key, aug) in [
            ("transforms.aug", t.aug.as_ref()),
            ("train_aug", self.train_aug.as_ref()),
        ] {
            if let Some(a) = aug
                && let Err(e) = a.validate()
            {
                return bad(key, e.to_string(), "a valid augmentation policy");
            }
        }
        Ok(())
    }
}

/// One image's prediction.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// Predicted tags (probability above its threshold), in vocabulary order.
    pub tags: Vec<String>,
    /// Probability of every class, in vocabulary order.
    pub probs: Vec<f32>,
}

const MAGIC: &[u8; 16] = b"FASTBURN-EXPORT\0";
const EXPORT_VERSION: u32 = 1;

/// Combines a plain pass with augmented passes as `blend` says.
///
/// # Panics
/// When the passes have different lengths.
pub fn blend_tta_with(plain: &Preds, passes: &[Preds], blend: TtaBlend) -> Preds {
    match blend {
        TtaBlend::Mean { beta } => blend_tta(plain, passes, beta),
        TtaBlend::Max => {
            let mut out = plain.clone();
            for q in passes {
                for (p, &v) in out.probs.iter_mut().zip(&q.probs) {
                    *p = p.max(v);
                }
            }
            out
        }
    }
}

/// Combines a plain pass with augmented passes as fastai: `beta · plain + (1 − beta) ·
/// mean(augmented)`.
///
/// # Panics
/// When the passes have different lengths.
pub fn blend_tta(plain: &Preds, passes: &[Preds], beta: f64) -> Preds {
    let mut out = plain.clone();
    if passes.is_empty() {
        return out;
    }
    let k = passes.len() as f64;
    for (i, p) in out.probs.iter_mut().enumerate() {
        let mean: f64 = passes.iter().map(|q| f64::from(q.probs[i])).sum::<f64>() / k;
        *p = (beta * f64::from(*p) + (1.0 - beta) * mean) as f32;
    }
    out
}

/// The tags of one row of probabilities: class `c` when `prob > threshold[c]` (one
/// threshold for all when a single one is given); for single-label data, the arg-max.
pub fn tags_of(probs: &[f32], vocab: &Vocab, thresholds: &[f32], task: Task) -> Vec<String> {
    match task {
        Task::SingleLabel => probs
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| vec![vocab.class(i).to_string()])
            .unwrap_or_default(),
        Task::MultiLabel => probs
            .iter()
            .enumerate()
            .filter(|(c, p)| {
                // One threshold for all, or one per class; the setters and loaders refuse
                // any other length, and a missing one reads as "never predicted".
                let t = if thresholds.len() == 1 {
                    thresholds[0]
                } else {
                    thresholds.get(*c).copied().unwrap_or(f32::INFINITY)
                };
                **p > t
            })
            .map(|(c, _)| vocab.class(c).to_string())
            .collect(),
    }
}

/// Writes a Kaggle submission (`image_name,tags`, one row per image, in the given order)
/// atomically.
///
/// # Errors
/// [`Error::InvalidConfig`] when `names` and `preds` disagree in length; [`Error::Io`]
/// naming the file.
pub fn write_submission(
    path: &Path,
    names: &[String],
    preds: &Preds,
    vocab: &Vocab,
    thresholds: &[f32],
    task: Task,
) -> Result<()> {
    if names.len() != preds.len() {
        return Err(Error::InvalidConfig {
            key: "names",
            value: format!("{} names for {} predictions", names.len(), preds.len()),
            expected: "one name per prediction",
        });
    }
    let mut w = csv::Writer::from_writer(Vec::new());
    let io = |e: csv::Error| Error::io(path, std::io::Error::other(e));
    w.write_record(["image_name", "tags"]).map_err(io)?;
    for (i, name) in names.iter().enumerate() {
        let tags = tags_of(preds.row(i), vocab, thresholds, task).join(" ");
        w.write_record([name.as_str(), tags.as_str()]).map_err(io)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| Error::io(path, std::io::Error::other(e.to_string())))?;
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    crate::write_atomic(path, &bytes)?;
    Ok(())
}

impl Inference {
    /// The vocabulary.
    pub fn vocab(&self) -> &Vocab {
        &self.vocab
    }

    /// The task.
    pub fn task(&self) -> Task {
        self.task
    }

    /// The inference transforms.
    pub fn transforms(&self) -> &Transforms {
        &self.tfms
    }

    /// The thresholds.
    pub fn thresholds(&self) -> &[f32] {
        &self.thresholds
    }

    /// Sets the thresholds: one for every class, or one per class.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for another length or a value outside [0, 1].
    pub fn set_thresholds(&mut self, t: Vec<f32>) -> Result<()> {
        check_thresholds(&t, self.vocab.len())?;
        self.thresholds = t;
        Ok(())
    }

    /// The model (evaluation mode).
    pub fn model(&self) -> &VisionModel {
        &self.model
    }

    /// The device.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// A loader over `list` with the inference transforms, in order.
    pub fn loader(&self, list: ItemList, batch_size: usize, workers: usize) -> DataLoader {
        let list = ItemList {
            vocab: self.vocab.clone(),
            task: self.task,
            ..list
        };
        DataLoader::new(
            ImageDataset::new(list, self.tfms.clone(), 0),
            LoaderConfig::new()
                .with_batch_size(batch_size)
                .with_workers(workers),
        )
    }

    /// Probabilities, targets and losses over a loader, in its order.
    ///
    /// # Errors
    /// A data error.
    pub fn get_preds(&self, dl: &DataLoader) -> Result<Preds> {
        self.preds_of(Source::loader(dl.clone()))
    }

    /// A pass without a learner: the same batch sources and the same evaluation step as
    /// the learner's loop, with no callbacks.
    fn preds_of(&self, source: Source) -> Result<Preds> {
        let mut preds = Preds::empty(self.vocab.len());
        for input in source.batches(self.device.clone(), self.task) {
            let input: Input = input?;
            preds.push_output(eval_batch(&self.model, &self.loss, input, Forward::Full));
        }
        Ok(preds)
    }

    /// The plain pass and the augmented passes of TTA over `dl`'s items (in order).
    ///
    /// # Errors
    /// A data error.
    pub fn tta_passes(&self, dl: &DataLoader, mode: Tta) -> Result<(Preds, Vec<Preds>)> {
        let plain = self.get_preds(dl)?;
        let passes = tta_sources(dl, mode, self.train_aug.as_ref())
            .into_iter()
            .map(|s| self.preds_of(s))
            .collect::<Result<_>>()?;
        Ok((plain, passes))
    }

    /// fastai's `tta`: `beta · plain + (1 − beta) · mean(augmented passes)` (`beta = 0.25`
    /// in fastai).
    ///
    /// # Errors
    /// A data error.
    pub fn tta(&self, dl: &DataLoader, mode: Tta, beta: f64) -> Result<Preds> {
        self.tta_with(dl, mode, TtaBlend::Mean { beta })
    }

    /// TTA with either of fastai's blends (mean with `beta`, or `use_max`).
    ///
    /// # Errors
    /// A data error.
    pub fn tta_with(&self, dl: &DataLoader, mode: Tta, blend: TtaBlend) -> Result<Preds> {
        let (plain, passes) = self.tta_passes(dl, mode)?;
        Ok(blend_tta_with(&plain, &passes, blend))
    }

    /// Predicts one image file.
    ///
    /// # Errors
    /// A decode error naming the file.
    pub fn predict(&self, path: &Path) -> Result<Prediction> {
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let list = ItemList {
            items: vec![fastburn_data::Item {
                name,
                path: path.to_path_buf(),
                labels: vec![],
                line: None,
            }],
            vocab: self.vocab.clone(),
            task: self.task,
        };
        let preds = self.get_preds(&self.loader(list, 1, 0))?;
        let probs = preds.row(0).to_vec();
        Ok(Prediction {
            tags: tags_of(&probs, &self.vocab, &self.thresholds, self.task),
            probs,
        })
    }

    /// Predicts every image of a folder (sorted by name), optionally with TTA (β = 0.25).
    /// Returns the image names (file stems) and the predictions.
    ///
    /// # Errors
    /// [`fastburn_data::Error::NoImages`] for an empty folder; decode errors naming files.
    pub fn predict_folder(
        &self,
        dir: &Path,
        tta: Option<Tta>,
        batch_size: usize,
        workers: usize,
    ) -> Result<(Vec<String>, Preds)> {
        let tta = tta.map(|t| (t, TtaBlend::Mean { beta: 0.25 }));
        self.predict_folder_with(dir, tta, batch_size, workers)
    }

    /// [`Inference::predict_folder`] with a choice of TTA blend.
    ///
    /// # Errors
    /// As [`Inference::predict_folder`].
    pub fn predict_folder_with(
        &self,
        dir: &Path,
        tta: Option<(Tta, TtaBlend)>,
        batch_size: usize,
        workers: usize,
    ) -> Result<(Vec<String>, Preds)> {
        let list = ItemList::from_test_folder(dir, &self.vocab, self.task)?;
        let names = list.items.iter().map(|i| i.name.clone()).collect();
        let dl = self.loader(list, batch_size, workers);
        let preds = match tta {
            Some((mode, blend)) => self.tta_with(&dl, mode, blend)?,
            None => self.get_preds(&dl)?,
        };
        Ok((names, preds))
    }

    /// Writes the export bundle: one file holding the weights, the architecture, the
    /// vocabulary, the transforms (size, normalisation) and the thresholds, with a SHA-256
    /// trailer; written atomically.
    ///
    /// # Errors
    /// [`Error::Record`] / [`Error::Io`] naming the file.
    pub fn export(&self, path: &Path) -> Result<()> {
        let meta = ExportMeta {
            format_version: EXPORT_VERSION,
            model: self.meta.clone(),
            classes: self.vocab.classes().to_vec(),
            task: self.task,
            transforms: self.tfms.clone(),
            train_aug: self.train_aug.clone(),
            thresholds: self.thresholds.clone(),
        };
        let json = serde_json::to_vec(&meta).expect("export meta serialises");
        let weights = self
            .model
            .clone()
            .into_record()
            .into_bytes()
            .map_err(|e| Error::record(path, e))?;
        let mut out = Vec::with_capacity(json.len() + weights.len() + 64);
        out.write_all(MAGIC).expect("in-memory write");
        out.extend_from_slice(&EXPORT_VERSION.to_le_bytes());
        out.extend_from_slice(&(json.len() as u64).to_le_bytes());
        out.extend_from_slice(&json);
        out.extend_from_slice(&(weights.len() as u64).to_le_bytes());
        out.extend_from_slice(&weights);
        let digest: [u8; 32] = sha2::Sha256::digest(&out).into();
        out.extend_from_slice(&digest);
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        crate::write_atomic(path, &out)?;
        Ok(())
    }
}

/// fastai's `load_learner`: reads an export bundle onto `device` (no autodiff needed).
///
/// # Errors
/// [`Error::Checkpoint`] naming the file when it is not a bundle, is truncated, fails its
/// checksum, or holds non-finite weights; [`Error::Record`] when the weights do not fit the
/// architecture.
pub fn load_learner(path: &Path, device: &Device) -> Result<Inference> {
    let bad = |reason: String| Error::Checkpoint {
        path: path.to_path_buf(),
        problem: CheckpointProblem::BadBundle { reason },
    };
    let bytes = fastburn_fsio::read_capped(path, MAX_BUNDLE_BYTES).map_err(|e| match e {
        fastburn_fsio::ReadError::Io(e) => Error::io(path, e),
        e @ fastburn_fsio::ReadError::TooLarge { .. } => bad(e.to_string()),
    })?;
    if bytes.len() < 16 + 4 + 8 + 8 + 32 || &bytes[..16] != MAGIC {
        return Err(bad("missing the fastburn export header".into()));
    }
    let (body, trailer) = bytes.split_at(bytes.len() - 32);
    let got = sha256_hex(body);
    let expected: String = trailer.iter().map(|b| format!("{b:02x}")).collect();
    if got != expected {
        return Err(Error::Checkpoint {
            path: path.to_path_buf(),
            problem: CheckpointProblem::Corrupted {
                file: path.display().to_string(),
                expected,
                got,
            },
        });
    }
    let version = u32::from_le_bytes(body[16..20].try_into().expect("4 bytes"));
    if version != EXPORT_VERSION {
        return Err(Error::Checkpoint {
            path: path.to_path_buf(),
            problem: CheckpointProblem::Version {
                expected: EXPORT_VERSION,
                got: version,
            },
        });
    }
    let read_len = |at: usize| -> Result<usize> {
        let b = body
            .get(at..at + 8)
            .ok_or_else(|| bad("length field past the end".into()))?;
        let n = u64::from_le_bytes(b.try_into().expect("8 bytes"));
        usize::try_from(n).map_err(|_| bad("length does not fit in memory".into()))
    };
    let json_len = read_len(20)?;
    let json = body
        .get(28..28usize.saturating_add(json_len))
        .ok_or_else(|| bad("metadata past the end".into()))?;
    let meta: ExportMeta = serde_json::from_slice(json).map_err(|e| Error::Checkpoint {
        path: path.to_path_buf(),
        problem: CheckpointProblem::Json {
            file: "metadata".into(),
            message: e.to_string(),
        },
    })?;
    meta.validate().map_err(|problem| Error::Checkpoint {
        path: path.to_path_buf(),
        problem,
    })?;
    let w_at = 28 + json_len;
    let w_len = read_len(w_at)?;
    let weights = body
        .get(w_at + 8..(w_at + 8).saturating_add(w_len))
        .ok_or_else(|| bad("weights past the end".into()))?;
    let model = load_record_contained(path, || {
        let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(weights.to_vec()))
            .map_err(|e| Error::record(path, e))?;
        meta.model
            .model_config(meta.classes.len())
            .init(device)
            .try_load_record(record)
            .map_err(|e| Error::record(path, e))
    })?;
    if let Some(tensor) = first_non_finite(&model) {
        return Err(Error::Checkpoint {
            path: path.to_path_buf(),
            problem: CheckpointProblem::NonFiniteWeights { tensor },
        });
    }
    let task = meta.task;
    Ok(Inference {
        model: model.valid(),
        device: device.clone(),
        loss: Loss::for_task(task),
        vocab: Vocab::new(meta.classes),
        task,
        tfms: meta.transforms,
        train_aug: meta.train_aug,
        thresholds: meta.thresholds,
        meta: meta.model,
    })
}

impl Learner {
    /// A snapshot for prediction: the current weights in evaluation mode, the vocabulary,
    /// the validation transforms and the thresholds (0.2 / the tuned ones).
    ///
    /// # Panics
    /// When the model's body is not a known architecture (every model a learner builds is).
    pub fn inference(&self) -> Inference {
        let cfg = self.config();
        Inference {
            model: self.model().valid(),
            device: self.inference_device(),
            loss: self.loss_fn().clone(),
            vocab: self.dls().vocab.clone(),
            task: self.dls().task,
            tfms: self.dls().valid.dataset().transforms().clone(),
            train_aug: self.dls().train.dataset().transforms().aug.clone(),
            thresholds: self
                .thresholds()
                .map(<[f32]>::to_vec)
                .unwrap_or_else(|| vec![cfg.threshold]),
            meta: ModelMeta::of(self.model()).expect("a learner's model has a known body"),
        }
    }

    /// Probabilities, targets and per-item losses over a loader (in its order), with the
    /// model in evaluation mode: an evaluation pass of the loop with a [`GatherPreds`]
    /// (callbacks see its batches with [`Phase::Predict`]).
    ///
    /// # Errors
    /// A data or callback error.
    pub fn get_preds(&mut self, dl: &DataLoader) -> Result<Preds> {
        self.preds_of(Source::loader(dl.clone()))
    }

    fn preds_of(&mut self, source: Source) -> Result<Preds> {
        self.add_callback(GatherPreds::new(Phase::Predict));
        let r = self.eval_pass(source, Phase::Predict);
        let g = self
            .remove_cb::<GatherPreds>()
            .expect("the gatherer stays installed during its pass");
        r?;
        Ok(g.into_preds(self.dls().vocab.len()))
    }

    /// TTA through the loop: the plain pass and each augmented pass (as
    /// [`Inference::tta_passes`]), blended as `blend` says.
    ///
    /// # Errors
    /// A data or callback error.
    pub fn tta_with(&mut self, dl: &DataLoader, mode: Tta, blend: TtaBlend) -> Result<Preds> {
        let plain = self.get_preds(dl)?;
        let aug = self.dls().train.dataset().transforms().aug.clone();
        let mut passes = Vec::new();
        for s in tta_sources(dl, mode, aug.as_ref()) {
            passes.push(self.preds_of(s)?);
        }
        Ok(blend_tta_with(&plain, &passes, blend))
    }

    /// fastai's `tta` with the current model: `beta · plain + (1 − beta) · mean`.
    ///
    /// # Errors
    /// A data or callback error.
    pub fn tta(&mut self, dl: &DataLoader, mode: Tta, beta: f64) -> Result<Preds> {
        self.tta_with(dl, mode, TtaBlend::Mean { beta })
    }

    /// [`Inference::predict`] with the current model.
    ///
    /// # Errors
    /// A decode error naming the file.
    pub fn predict(&self, path: &Path) -> Result<Prediction> {
        self.inference().predict(path)
    }

    /// [`Inference::export`] with the current model.
    ///
    /// # Errors
    /// As [`Inference::export`].
    pub fn export(&self, path: &Path) -> Result<()> {
        self.inference().export(path)
    }

    /// Searches the best global threshold for the samples-averaged F-beta on `preds`
    /// (validation predictions), and optionally per-class thresholds from there; keeps
    /// them for prediction and returns them with the score. Tuned on the validation set,
    /// the score over-estimates; see `fastburn_metrics::per_class_thresholds`.
    ///
    /// # Errors
    /// A metric error (e.g. empty predictions).
    pub fn optimize_thresholds(
        &mut self,
        preds: &Preds,
        beta: f64,
        grid: &ThresholdGrid,
        per_class: bool,
    ) -> Result<(Vec<f32>, f64)> {
        let c = preds.n_classes;
        let (t, score) = if per_class {
            let r = per_class_thresholds(&preds.probs, &preds.targets, c, beta, grid)
                .map_err(|e| Error::metric("per_class_thresholds", e))?;
            (r.thresholds, r.score)
        } else {
            let r = best_threshold(&preds.probs, &preds.targets, c, beta, grid)
                .map_err(|e| Error::metric("best_threshold", e))?;
            (vec![r.threshold], r.score)
        };
        self.set_thresholds(t.clone())?;
        Ok((t, score))
    }
}

/// Reads a submission back with the strict CSV reader (for checks): names and tags.
///
/// # Errors
/// A CSV error listing every problem.
pub fn read_submission(path: &Path) -> Result<ItemList> {
    let cfg = CsvConfig::new(path.to_path_buf(), PathBuf::from(".")).with_check_files(false);
    Ok(cfg.load()?)
}
