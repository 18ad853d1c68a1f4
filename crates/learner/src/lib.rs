#![warn(missing_docs)]
//! # fastburn-learner
//!
//! fastai's training loop on Burn 0.22: a small [`Learner`] (model + data + loss +
//! optimiser + metrics + callbacks) and the public mid-level pieces the one-liners are made
//! of.
//!
//! ## Crate map
//! - Building: [`vision_learner`], [`LearnerConfig`], [`Learner::new`]; losses from the
//!   task ([`Loss`]); optimisers with schedulable momentum ([`OptimizerConfig`]: SGD with
//!   momentum, Adam/AdamW with fastai's defaults).
//! - Schedules (pure functions of progress in `[0, 1]`): [`Sched`], [`Combined`]
//!   (`combine_scheds`, one-cycle, SGDR, flat-cos), [`FitSchedule`]; learning rates per
//!   layer group: [`Lrs`] (single, per group, fastai's `slice`).
//! - Policies, each a few lines over [`Learner::fit_schedule`]: [`Learner::fit`],
//!   [`Learner::fit_one_cycle`], [`Learner::fit_sgdr`], [`Learner::fit_flat_cos`],
//!   [`Learner::fine_tune`]; [`Learner::lr_find`] with [`Suggest`] rules and a plot.
//! - Freezing with fastai's `train_bn`: [`Learner::freeze`], [`Learner::freeze_to`],
//!   [`Learner::unfreeze`]; progressive resizing with [`Learner::set_data`]; cached body
//!   activations with [`Learner::precompute`].
//! - Callbacks ([`Callback`], [`Flow`]): [`callbacks`] — scheduler, progress bars, epoch
//!   table, CSV/JSON logs, loss plot, early stopping, save-best-model, checkpoints,
//!   terminate-on-NaN, gradient clipping and accumulation.
//! - Checkpoints and exact resume: [`Learner::save_checkpoint`], [`Learner::resume`].
//! - Inference: [`Learner::get_preds`], [`Inference`] (TTA, `predict`, folders), thresholds
//!   ([`Learner::optimize_thresholds`]), [`write_submission`], the export bundle
//!   ([`Learner::export`], [`load_learner`]); interpretation ([`top_losses`],
//!   [`label_report`]).
//!
//! ## Train and evaluation modes
//! Burn decides per call: BatchNorm and Dropout train when their input lives on an autodiff
//! device. The learner trains on `device.autodiff()` and validates / predicts with
//! `model.valid()` on the plain device.

mod build;
pub mod callbacks;
mod checkpoint;
mod error;
mod fit;
mod freeze;
pub mod grads;
mod inference;
mod interpret;
mod learner;
mod loss;
mod lr_find;
mod optim;
mod parallel;
mod plot;
mod precompute;
pub mod rng;
mod schedule;
mod step;

pub use build::{default_callbacks, default_metrics, vision_learner};
pub use callbacks::{EpochLog, IterLog};
pub use checkpoint::{
    CheckpointState, FORMAT_VERSION, Manifest, ResumeFrom, checkpoint_runs, first_non_finite,
    list_checkpoints, prune, sha256_file, sha256_hex, verify_checkpoint,
};
pub use error::{CheckpointProblem, Error, Result};
pub use fit::{CycleFit, FineTune, OneCycle, Sgdr};
pub use freeze::{batchnorm_group, freeze_to, group_trainable};
pub use inference::{
    ExportMeta, Inference, MAX_BUNDLE_BYTES, ModelMeta, Prediction, Tta, TtaBlend, blend_tta,
    blend_tta_with, load_learner, read_submission, tags_of, write_submission,
};
pub use interpret::{LabelReport, TopLoss, format_label_report, label_report, top_losses};
pub use learner::{Callback, Flow, Hook, Learner, LearnerConfig, Phase, RunState};
pub use loss::Loss;
pub use lr_find::{LrFind, LrFindConfig, LrFinder, Suggest, suggest, trimmed};
pub use optim::{AdamFastai, HyperParams, Optim, OptimizerConfig, SgdMomentum, WeightDecay};
pub use parallel::{DataParallel, Reduce, has_collectives};
pub use plot::{LinePlot, Marker, Series, tick_label};
pub use precompute::PrecomputeReport;
pub use schedule::{Combined, FitSchedule, Lrs, Sched, even_mults};
pub use step::{BatchOutput, FeatureCache, Forward, Preds, eval_batch};

/// [`fastburn_fsio::write_atomic`] with the error as this crate's [`Error::Io`] (a run
/// failure, not the user's input).
pub(crate) fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    fastburn_fsio::write_atomic(path, bytes).map_err(|e| Error::io(path, e))
}
