//! Checkpoints that survive being killed mid-save, and resuming that repeats training
//! exactly.
//!
//! A checkpoint is a folder `ckpt-NNNNNN` (`NNNNNN` = epochs completed) holding
//! `model.bpk`, `optim.bpk`, `state.json` (schedule position, history, vocabulary, seeds)
//! and `manifest.json` — written last, with the SHA-256 of every file and a format
//! version. The folder is assembled under a temporary name and renamed into place, so a
//! kill at any point leaves either the complete new checkpoint or none; the previous one is
//! untouched. A checkpoint with the same number (a new run over an old folder) is first
//! renamed aside to `ckpt-NNNNNN.prev`, which still counts as a checkpoint until the new
//! one is in place, so no moment exists where neither is on disk. Loading verifies every
//! hash and names the corrupted file.

use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleVisitor, Param};
use burn::store::ModuleRecord;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::callbacks::{EpochLog, IterLog, Recorder};
use crate::error::{CheckpointProblem, Error, Result};
use crate::learner::Learner;

/// The checkpoint format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

const FILES: [&str; 3] = ["model.bpk", "optim.bpk", "state.json"];

/// `manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// Format version.
    pub format_version: u32,
    /// Epochs completed when saved.
    pub epochs_done: usize,
    /// Class vocabulary.
    pub classes: Vec<String>,
    /// `(file, sha256 hex)` of every file of the set.
    pub files: Vec<(String, String)>,
}

/// `state.json`: everything besides the tensors needed to continue exactly.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CheckpointState {
    /// Format version.
    pub format_version: u32,
    /// Architecture, as text.
    pub arch: String,
    /// Class vocabulary.
    pub classes: Vec<String>,
    /// The next epoch of the interrupted fit.
    pub next_epoch: usize,
    /// Epochs of that fit.
    pub n_epochs: usize,
    /// Epochs completed since the learner was built.
    pub epochs_done: usize,
    /// Seed.
    pub seed: u64,
    /// Frozen groups.
    pub frozen: usize,
    /// Learning rates in force.
    pub lrs: Vec<f64>,
    /// Momentum in force.
    pub mom: f64,
    /// Loss smoothing state.
    pub smooth: (f64, i32, f64),
    /// Epoch history.
    pub history: Vec<EpochLog>,
    /// Iteration log.
    pub iters: Vec<IterLog>,
    /// Prediction thresholds.
    pub thresholds: Option<Vec<f32>>,
}

/// SHA-256 of a file, hex.
///
/// # Errors
/// [`Error::Io`] naming the file.
pub fn sha256_file(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    Ok(sha256_hex(&bytes))
}

/// SHA-256 of bytes, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn ckpt_name(epochs_done: usize) -> String {
    format!("ckpt-{epochs_done:06}")
}

/// Suffix of a checkpoint renamed aside while a new one with its number moves in.
const PREV: &str = ".prev";

/// `(epochs done, is a renamed-aside .prev copy, path)` of every checkpoint-named folder.
fn checkpoint_entries(dir: &Path) -> Vec<(usize, bool, PathBuf)> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<(usize, bool, PathBuf)> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let rest = name.strip_prefix("ckpt-")?;
            let (num, prev) = match rest.strip_suffix(PREV) {
                Some(num) => (num, true),
                None => (rest, false),
            };
            Some((num.parse::<usize>().ok()?, prev, e.path()))
        })
        .collect();
    // Newest first; for one number the checkpoint itself before its `.prev` copy.
    v.sort_by_key(|e| (std::cmp::Reverse(e.0), e.1));
    v
}

/// Complete-looking checkpoint folders in `dir`, newest first (by epochs completed). A
/// `ckpt-NNNNNN.prev` folder (left by a save killed while replacing `ckpt-NNNNNN`) is
/// listed right after its number's checkpoint, or alone when that one is missing.
pub fn list_checkpoints(dir: &Path) -> Vec<PathBuf> {
    checkpoint_entries(dir)
        .into_iter()
        .map(|(_, _, p)| p)
        .collect()
}

/// Keeps the newest `keep` checkpoints in `dir` and removes leftovers of interrupted saves
/// (temporary folders, and `.prev` copies whose checkpoint is in place).
///
/// # Errors
/// [`Error::Io`] when a folder cannot be removed.
pub fn prune(dir: &Path, keep: usize) -> Result<()> {
    let entries = checkpoint_entries(dir);
    let primaries: std::collections::HashSet<usize> =
        entries.iter().filter(|e| !e.1).map(|e| e.0).collect();
    let (stale, live): (Vec<_>, Vec<_>) = entries
        .into_iter()
        .partition(|(n, prev, _)| *prev && primaries.contains(n));
    for (_, _, old) in stale.into_iter().chain(live.into_iter().skip(keep)) {
        std::fs::remove_dir_all(&old).map_err(|e| Error::io(&old, e))?;
    }
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with(".tmp-ckpt-") {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    Ok(())
}

/// Checks a checkpoint folder: manifest present, version, every file present with its
/// hash. Returns the manifest.
///
/// # Errors
/// [`Error::Checkpoint`] naming the folder and the problem.
pub fn verify_checkpoint(path: &Path) -> Result<Manifest> {
    let bad = |problem| Error::Checkpoint {
        path: path.to_path_buf(),
        problem,
    };
    let mpath = path.join("manifest.json");
    let bytes = std::fs::read(&mpath).map_err(|_| bad(CheckpointProblem::MissingManifest))?;
    let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| {
        bad(CheckpointProblem::Json {
            file: "manifest.json".into(),
            message: e.to_string(),
        })
    })?;
    if manifest.format_version != FORMAT_VERSION {
        return Err(bad(CheckpointProblem::Version {
            expected: FORMAT_VERSION,
            got: manifest.format_version,
        }));
    }
    for (file, expected) in &manifest.files {
        let p = path.join(file);
        if !p.is_file() {
            return Err(bad(CheckpointProblem::MissingFile { file: file.clone() }));
        }
        let got = sha256_file(&p)?;
        if &got != expected {
            return Err(bad(CheckpointProblem::Corrupted {
                file: file.clone(),
                expected: expected.clone(),
                got,
            }));
        }
    }
    Ok(manifest)
}

/// The name of the first float parameter holding NaN or infinity.
pub fn first_non_finite<M: Module>(model: &M) -> Option<String> {
    struct V {
        path: Vec<String>,
        found: Option<String>,
    }
    impl ModuleVisitor for V {
        fn enter_module(&mut self, name: &str, _c: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _n: &str, _c: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            if self.found.is_none() {
                let finite: bool = p.val().is_finite().all().into_scalar();
                if !finite {
                    self.found = Some(self.path.join("."));
                }
            }
        }
    }
    let mut v = V {
        path: Vec::new(),
        found: None,
    };
    model.visit(&mut v);
    v.found
}

impl Learner {
    /// Writes a complete checkpoint into `dir` (see the module docs) and returns its folder.
    ///
    /// # Errors
    /// [`Error::Io`] / [`Error::Record`] naming the file; the previous checkpoints are left
    /// intact.
    pub fn save_checkpoint(&self, dir: &Path) -> Result<PathBuf> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let st = self.state();
        let done = st.epochs_done;
        let tmp = dir.join(format!(".tmp-ckpt-{done:06}-{}", std::process::id()));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
        }
        std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let model_path = tmp.join("model.bpk");
        self.model()
            .clone()
            .into_record()
            .save(&model_path)
            .map_err(|e| Error::record(&model_path, e))?;
        let optim_path = tmp.join("optim.bpk");
        self.opt()
            .save(&optim_path)
            .map_err(|e| Error::record(&optim_path, e))?;
        let next_epoch = st.epoch + 1;
        let state = CheckpointState {
            format_version: FORMAT_VERSION,
            arch: self.config().arch.to_string(),
            classes: self.dls().vocab.classes().to_vec(),
            next_epoch,
            n_epochs: st.n_epochs,
            epochs_done: done,
            seed: self.config().seed,
            frozen: self.frozen_groups(),
            lrs: st.lrs.clone(),
            mom: st.mom,
            smooth: (st.smooth_raw, st.smooth_n, st.smooth_loss),
            history: self.history().to_vec(),
            iters: self.iterations().to_vec(),
            thresholds: self.thresholds().map(<[f32]>::to_vec),
        };
        let state_path = tmp.join("state.json");
        let json = serde_json::to_vec_pretty(&state).expect("state serialises");
        fastburn_data::write_atomic(&state_path, &json)?;
        let mut files = Vec::new();
        for f in FILES {
            files.push((f.to_string(), sha256_file(&tmp.join(f))?));
        }
        let manifest = Manifest {
            format_version: FORMAT_VERSION,
            epochs_done: done,
            classes: self.dls().vocab.classes().to_vec(),
            files,
        };
        let mjson = serde_json::to_vec_pretty(&manifest).expect("manifest serialises");
        fastburn_data::write_atomic(&tmp.join("manifest.json"), &mjson)?;
        let fin = dir.join(ckpt_name(done));
        let prev = dir.join(format!("{}{PREV}", ckpt_name(done)));
        if fin.exists() {
            // Never delete the only copy: move it aside (atomic), move the new one in, and
            // only then remove the old one. A kill in between leaves a loadable `.prev`.
            if prev.exists() {
                std::fs::remove_dir_all(&prev).map_err(|e| Error::io(&prev, e))?;
            }
            std::fs::rename(&fin, &prev).map_err(|e| Error::io(&prev, e))?;
        }
        std::fs::rename(&tmp, &fin).map_err(|e| Error::io(&fin, e))?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        if prev.exists() {
            std::fs::remove_dir_all(&prev).map_err(|e| Error::io(&prev, e))?;
        }
        Ok(fin)
    }

    /// Loads a checkpoint folder written by [`Learner::save_checkpoint`]: weights, optimiser
    /// state, history and schedule position. The next `fit*` call with the same arguments
    /// continues the interrupted fit from its next epoch.
    ///
    /// # Errors
    /// [`Error::Checkpoint`] naming the folder and what is wrong (incomplete, corrupted file,
    /// wrong vocabulary or architecture, non-finite weights), [`Error::Record`] naming a file
    /// Burn cannot read.
    pub fn load_checkpoint(&mut self, path: &Path) -> Result<()> {
        let manifest = verify_checkpoint(path)?;
        let bad = |problem| Error::Checkpoint {
            path: path.to_path_buf(),
            problem,
        };
        if manifest.classes != self.dls().vocab.classes() {
            return Err(bad(CheckpointProblem::Vocabulary {
                expected: self.dls().vocab.classes().to_vec(),
                got: manifest.classes,
            }));
        }
        let sbytes = std::fs::read(path.join("state.json")).map_err(|e| Error::io(path, e))?;
        let state: CheckpointState = serde_json::from_slice(&sbytes).map_err(|e| {
            bad(CheckpointProblem::Json {
                file: "state.json".into(),
                message: e.to_string(),
            })
        })?;
        if state.arch != self.config().arch.to_string() {
            return Err(bad(CheckpointProblem::Architecture {
                expected: self.config().arch.to_string(),
                got: state.arch,
            }));
        }
        let model_path = path.join("model.bpk");
        let record = ModuleRecord::load(&model_path).map_err(|e| Error::record(&model_path, e))?;
        let model = self
            .model()
            .clone()
            .try_load_record(record)
            .map_err(|e| Error::record(&model_path, e))?;
        if let Some(tensor) = first_non_finite(&model) {
            return Err(Error::Checkpoint {
                path: model_path,
                problem: CheckpointProblem::NonFiniteWeights { tensor },
            });
        }
        let optim_path = path.join("optim.bpk");
        let optim = burn::optim::OptimizerRecord::load(&optim_path)
            .map_err(|e| Error::record(&optim_path, e))?;
        self.set_model(model);
        self.apply_freeze(state.frozen);
        self.opt_mut().load_record(optim);
        self.set_momentum(state.mom);
        self.set_lrs(state.lrs);
        let st = self.state_mut();
        st.epochs_done = state.epochs_done;
        (st.smooth_raw, st.smooth_n, st.smooth_loss) = state.smooth;
        st.resume_epoch = (state.next_epoch < state.n_epochs).then_some(state.next_epoch);
        match self.cb_mut::<Recorder>() {
            Some(r) => r.set_history(state.history, state.iters),
            None => {
                let mut r = Recorder::new(Vec::new());
                r.set_history(state.history, state.iters);
                self.add_callback(r);
            }
        }
        self.restore_thresholds(state.thresholds);
        Ok(())
    }

    /// Loads the newest complete checkpoint in `dir`, skipping incomplete or corrupted ones
    /// (each skip is reported on stderr), and cleans leftovers of interrupted saves.
    /// Returns the folder loaded.
    ///
    /// # Errors
    /// [`Error::Checkpoint`] with [`CheckpointProblem::NoCheckpoint`] when none is usable;
    /// a vocabulary or architecture mismatch is an error at once (not skipped).
    pub fn resume(&mut self, dir: &Path) -> Result<PathBuf> {
        for ckpt in list_checkpoints(dir) {
            match self.load_checkpoint(&ckpt) {
                Ok(()) => {
                    let _ = prune(dir, usize::MAX);
                    return Ok(ckpt);
                }
                Err(Error::Checkpoint {
                    problem:
                        p @ (CheckpointProblem::Vocabulary { .. }
                        | CheckpointProblem::Architecture { .. }),
                    path,
                }) => {
                    return Err(Error::Checkpoint { path, problem: p });
                }
                Err(e) => eprintln!("skipping checkpoint: {e}"),
            }
        }
        Err(Error::Checkpoint {
            path: dir.to_path_buf(),
            problem: CheckpointProblem::NoCheckpoint,
        })
    }

    /// Saves the weights alone (burnpack), atomically.
    ///
    /// # Errors
    /// [`Error::Record`] / [`Error::Io`] naming the file.
    pub fn save_weights(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let bytes = self
            .model()
            .clone()
            .into_record()
            .into_bytes()
            .map_err(|e| Error::record(path, e))?;
        fastburn_data::write_atomic(path, &bytes)?;
        Ok(())
    }

    /// Loads weights saved by [`Learner::save_weights`].
    ///
    /// # Errors
    /// [`Error::Record`] naming the file, or [`Error::Checkpoint`] for non-finite weights.
    pub fn load_weights(&mut self, path: &Path) -> Result<()> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let record = ModuleRecord::from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes))
            .map_err(|e| Error::record(path, e))?;
        let model = self
            .model()
            .clone()
            .try_load_record(record)
            .map_err(|e| Error::record(path, e))?;
        if let Some(tensor) = first_non_finite(&model) {
            return Err(Error::Checkpoint {
                path: path.to_path_buf(),
                problem: CheckpointProblem::NonFiniteWeights { tensor },
            });
        }
        self.set_model(model);
        Ok(())
    }
}
