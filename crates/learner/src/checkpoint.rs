//! Checkpoints that survive being killed mid-save, belong to their run, and resume
//! exactly.
//!
//! A checkpoint is a folder `ckpt-<run>-NNNNNN` (`<run>` = [`Learner::run_id`],
//! `NNNNNN` = epochs completed) holding `model.bpk`, `optim.bpk`, `state.json` (schedule
//! position, history, vocabulary, seeds) and `manifest.json` — written last, with the
//! run, the SHA-256 of every file and a format version. The folder is assembled under a
//! temporary name unique to the run and process and renamed into place, so a kill at any
//! point leaves either the complete new checkpoint or none; the previous one is untouched.
//! A checkpoint with the same name (the same run saving its epoch again) is first renamed
//! aside to `….prev`, which still counts as a checkpoint until the new one is in place, so
//! no moment exists where neither is on disk. Loading verifies every hash and names the
//! corrupted file.
//!
//! Runs never touch each other's checkpoints: a new run in a folder that holds an older
//! run's checkpoints prunes only its own, [`Learner::resume`] resumes the run it is told
//! to ([`ResumeFrom`]), and another process's temporary folder is removed only once that
//! process is gone.

use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleVisitor, Param};
use burn::store::ModuleRecord;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::callbacks::{EpochLog, IterLog, Recorder};
use crate::error::{CheckpointProblem, Error, Result};
use crate::learner::Learner;

/// The checkpoint format this build writes and reads (2: checkpoints carry their run).
pub const FORMAT_VERSION: u32 = 2;

const FILES: [&str; 3] = ["model.bpk", "optim.bpk", "state.json"];

/// `manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// Format version.
    pub format_version: u32,
    /// The run the checkpoint belongs to ([`Learner::run_id`]).
    pub run_id: String,
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
    /// The run.
    pub run_id: String,
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

/// Which run [`Learner::resume`] continues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResumeFrom {
    /// The run with this id ([`Learner::run_id`], also in every checkpoint's folder name
    /// `ckpt-<run>-NNNNNN` and manifest).
    Run(String),
    /// The one run whose checkpoints the folder holds; an error
    /// ([`CheckpointProblem::SeveralRuns`]) when it holds several.
    OnlyRun,
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

/// Reads a weight record and applies it to a model (`f`), turning a panic inside into
/// [`Error::Record`] naming `path`.
///
/// Burn 0.22.1 panics on some malformed records instead of returning its error: a float
/// parameter whose stored dtype is an integer one ("Expected float dtype, got I32", one
/// byte of a burnpack file; found by the `load_bundle` fuzz target). Every file fastburn
/// loads weights from is user input, so the panic is contained like a decoder's.
pub(crate) fn load_record_contained<T>(path: &Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".into());
        Err(Error::Record {
            path: path.to_path_buf(),
            message: format!("Burn's record reader panicked: {message}"),
        })
    })
}

/// A fresh run id: 12 hex digits of a hash of the clock, the process and a counter.
pub(crate) fn new_run_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let seed = format!(
        "{nanos}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    sha256_hex(seed.as_bytes())[..12].to_string()
}

/// What a run id must be.
const RUN_ID_EXPECTED: &str = "1-64 ASCII letters, digits, `-` or `_`";

/// Run ids become folder names: 1–64 ASCII letters, digits, `-` or `_`.
fn run_id_ok(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// [`run_id_ok`] as a typed error.
pub(crate) fn check_run_id(id: &str) -> Result<()> {
    if run_id_ok(id) {
        Ok(())
    } else {
        Err(Error::InvalidConfig {
            key: "run_id",
            value: id.to_string(),
            expected: RUN_ID_EXPECTED,
        })
    }
}

fn ckpt_name(run: &str, epochs_done: usize) -> String {
    format!("ckpt-{run}-{epochs_done:06}")
}

/// Suffix of a checkpoint renamed aside while a new one with its number moves in.
const PREV: &str = ".prev";
/// Prefix of a save in progress: `.tmp-ckpt-<run>-NNNNNN-<pid>`.
const TMP: &str = ".tmp-ckpt-";

/// A checkpoint-named folder.
#[derive(Debug, Clone)]
struct Entry {
    run: String,
    n: usize,
    /// A renamed-aside `.prev` copy.
    prev: bool,
    path: PathBuf,
}

/// Every checkpoint-named folder in `dir`, newest first; for one run and number the
/// checkpoint itself before its `.prev` copy.
fn checkpoint_entries(dir: &Path) -> Vec<Entry> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<Entry> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let rest = name.strip_prefix("ckpt-")?;
            let (rest, prev) = match rest.strip_suffix(PREV) {
                Some(r) => (r, true),
                None => (rest, false),
            };
            let (run, num) = rest.rsplit_once('-')?;
            check_run_id(run).ok()?;
            Some(Entry {
                run: run.to_string(),
                n: num.parse::<usize>().ok()?,
                prev,
                path: e.path(),
            })
        })
        .collect();
    v.sort_by(|a, b| {
        (std::cmp::Reverse(a.n), &a.run, a.prev).cmp(&(std::cmp::Reverse(b.n), &b.run, b.prev))
    });
    v
}

/// Complete-looking checkpoint folders in `dir` of every run, newest first (by epochs
/// completed). A `.prev` folder (left by a save killed while replacing its checkpoint) is
/// listed right after its checkpoint, or alone when that one is missing.
pub fn list_checkpoints(dir: &Path) -> Vec<PathBuf> {
    checkpoint_entries(dir)
        .into_iter()
        .map(|e| e.path)
        .collect()
}

/// The runs whose checkpoints `dir` holds, sorted.
pub fn checkpoint_runs(dir: &Path) -> Vec<String> {
    let mut runs: Vec<String> = checkpoint_entries(dir).into_iter().map(|e| e.run).collect();
    runs.sort();
    runs.dedup();
    runs
}

fn process_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    // Linux (and anything with procfs) can tell; elsewhere assume the writer is alive and
    // leave its folder alone.
    !Path::new("/proc/self").exists() || Path::new(&format!("/proc/{pid}")).exists()
}

/// Keeps the newest `keep` checkpoints of run `run` in `dir` and removes leftovers of its
/// interrupted saves (`.prev` copies whose checkpoint is in place, temporary folders).
/// Other runs' checkpoints are never touched; another process's temporary folder is
/// removed only once that process is gone.
///
/// # Errors
/// [`Error::Io`] when a folder cannot be removed.
pub fn prune(dir: &Path, run: &str, keep: usize) -> Result<()> {
    let entries: Vec<Entry> = checkpoint_entries(dir)
        .into_iter()
        .filter(|e| e.run == run)
        .collect();
    let primaries: std::collections::HashSet<usize> =
        entries.iter().filter(|e| !e.prev).map(|e| e.n).collect();
    let (stale, live): (Vec<_>, Vec<_>) = entries
        .into_iter()
        .partition(|e| e.prev && primaries.contains(&e.n));
    for old in stale.into_iter().chain(live.into_iter().skip(keep)) {
        std::fs::remove_dir_all(&old.path).map_err(|e| Error::io(&old.path, e))?;
    }
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix(TMP) else {
                continue;
            };
            let Some((head, pid)) = rest.rsplit_once('-') else {
                continue;
            };
            let Ok(pid) = pid.parse::<u32>() else {
                continue;
            };
            let ours =
                pid == std::process::id() && head.rsplit_once('-').is_some_and(|(r, _)| r == run);
            if ours || !process_alive(pid) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    Ok(())
}

/// Checks a checkpoint folder: manifest present, version, a valid run id, the file list
/// exactly the checkpoint's files, every file present with its hash. Returns the manifest.
///
/// # Errors
/// [`Error::Checkpoint`] naming the folder and the problem.
pub fn verify_checkpoint(path: &Path) -> Result<Manifest> {
    let bad = |problem| Error::Checkpoint {
        path: path.to_path_buf(),
        problem,
    };
    let mpath = path.join("manifest.json");
    let bytes = match std::fs::read(&mpath) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(bad(CheckpointProblem::MissingManifest));
        }
        Err(e) => return Err(Error::io(&mpath, e)),
    };
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
    // Checked here, not only when the learner takes the id over at the end of
    // `load_checkpoint`: by then the weights and state are in place, and the load failed
    // with the learner half-changed (found with the `load_checkpoint` fuzz target's check
    // that a failed load leaves the learner as it was).
    if !run_id_ok(&manifest.run_id) {
        return Err(bad(CheckpointProblem::State {
            key: "run_id",
            value: manifest.run_id,
            expected: RUN_ID_EXPECTED,
        }));
    }
    let mut listed: Vec<&str> = manifest.files.iter().map(|f| f.0.as_str()).collect();
    listed.sort_unstable();
    let mut expected = FILES.to_vec();
    expected.sort_unstable();
    if listed != expected {
        return Err(bad(CheckpointProblem::FileList {
            expected: expected.iter().map(|f| f.to_string()).collect(),
            got: manifest.files.iter().map(|f| f.0.clone()).collect(),
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
        let run = self.run_id();
        let tmp = dir.join(format!("{TMP}{run}-{done:06}-{}", std::process::id()));
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
            run_id: run.to_string(),
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
        crate::write_atomic(&state_path, &json)?;
        let mut files = Vec::new();
        for f in FILES {
            files.push((f.to_string(), sha256_file(&tmp.join(f))?));
        }
        let manifest = Manifest {
            format_version: FORMAT_VERSION,
            run_id: run.to_string(),
            epochs_done: done,
            classes: self.dls().vocab.classes().to_vec(),
            files,
        };
        let mjson = serde_json::to_vec_pretty(&manifest).expect("manifest serialises");
        crate::write_atomic(&tmp.join("manifest.json"), &mjson)?;
        let fin = dir.join(ckpt_name(run, done));
        let prev = dir.join(format!("{}{PREV}", ckpt_name(run, done)));
        if fin.exists() {
            // Never delete the only good copy. A `.prev` left by an interrupted save may be
            // the good one (when `fin` is corrupt): keep whichever of the two verifies.
            if prev.exists() {
                let drop = if verify_checkpoint(&fin).is_ok() {
                    &prev
                } else {
                    &fin
                };
                std::fs::remove_dir_all(drop).map_err(|e| Error::io(drop, e))?;
            }
            // Move the old one aside (atomic), move the new one in, and only then remove
            // the old one. A kill in between leaves a loadable `.prev`.
            if fin.exists() {
                std::fs::rename(&fin, &prev).map_err(|e| Error::io(&prev, e))?;
            }
        }
        fastburn_fsio::sync_dir(&tmp).map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, &fin).map_err(|e| Error::io(&fin, e))?;
        fastburn_fsio::sync_dir(dir).map_err(|e| Error::io(dir, e))?;
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
        if state.format_version != FORMAT_VERSION {
            return Err(bad(CheckpointProblem::Version {
                expected: FORMAT_VERSION,
                got: state.format_version,
            }));
        }
        for (field, same) in [
            ("run_id", state.run_id == manifest.run_id),
            ("classes", state.classes == manifest.classes),
            ("epochs_done", state.epochs_done == manifest.epochs_done),
        ] {
            if !same {
                return Err(bad(CheckpointProblem::Inconsistent { field }));
            }
        }
        if state.arch != self.config().arch.to_string() {
            return Err(bad(CheckpointProblem::Architecture {
                expected: self.config().arch.to_string(),
                got: state.arch,
            }));
        }
        let model_path = path.join("model.bpk");
        // Read into memory: Burn's file readers are lazy, so a record loaded by path would
        // read its tensors later from a folder that pruning or a resume's repair may have
        // renamed or removed by then.
        let read = |p: &Path| -> Result<burn::tensor::Bytes> {
            let bytes = std::fs::read(p).map_err(|e| Error::io(p, e))?;
            Ok(burn::tensor::Bytes::from_bytes_vec(bytes))
        };
        let model = load_record_contained(&model_path, || {
            let record = ModuleRecord::from_bytes(read(&model_path)?)
                .map_err(|e| Error::record(&model_path, e))?;
            self.model()
                .clone()
                .try_load_record(record)
                .map_err(|e| Error::record(&model_path, e))
        })?;
        if let Some(tensor) = first_non_finite(&model) {
            return Err(Error::Checkpoint {
                path: model_path,
                problem: CheckpointProblem::NonFiniteWeights { tensor },
            });
        }
        let optim_path = path.join("optim.bpk");
        let optim = load_record_contained(&optim_path, || {
            burn::optim::OptimizerRecord::from_bytes(read(&optim_path)?)
                .map_err(|e| Error::record(&optim_path, e))
        })?;
        let state_err = |key: &'static str, value: String, expected: &'static str| {
            bad(CheckpointProblem::State {
                key,
                value,
                expected,
            })
        };
        let groups = self.layer_groups().len();
        if state.frozen > groups {
            return Err(state_err(
                "frozen",
                state.frozen.to_string(),
                "at most the group count",
            ));
        }
        if state.lrs.len() != groups || state.lrs.iter().any(|lr| !lr.is_finite() || *lr < 0.0) {
            return Err(state_err(
                "lrs",
                format!("{:?}", state.lrs),
                "one finite, non-negative rate per layer group",
            ));
        }
        if !state.mom.is_finite() {
            return Err(state_err("mom", state.mom.to_string(), "a finite momentum"));
        }
        if let Some(t) = &state.thresholds
            && !crate::inference::thresholds_ok(t, self.dls().vocab.len())
        {
            return Err(state_err(
                "thresholds",
                format!("{t:?}"),
                crate::inference::THRESHOLDS_EXPECTED,
            ));
        }
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
        // Cannot fail: `verify_checkpoint` checked the id.
        self.set_run_id(&manifest.run_id)?;
        Ok(())
    }

    /// Continues a run: loads the newest complete checkpoint of the run `from` names in
    /// `dir` (skipping incomplete or corrupted ones, each skip reported on stderr), makes
    /// this learner continue that run ([`Learner::run_id`]) and cleans leftovers of the
    /// run's interrupted saves. When the good copy was a `.prev` left by a save killed
    /// while replacing a corrupt checkpoint, it is moved back into place, never deleted.
    /// Returns the folder loaded.
    ///
    /// # Errors
    /// [`Error::Checkpoint`]: [`CheckpointProblem::NoCheckpoint`] /
    /// [`CheckpointProblem::NoCheckpointOfRun`] when none is usable,
    /// [`CheckpointProblem::SeveralRuns`] for [`ResumeFrom::OnlyRun`] over several runs; a
    /// vocabulary or architecture mismatch is an error at once (not skipped).
    pub fn resume(&mut self, dir: &Path, from: &ResumeFrom) -> Result<PathBuf> {
        let runs = checkpoint_runs(dir);
        let run = match from {
            ResumeFrom::Run(id) => {
                check_run_id(id)?;
                id.clone()
            }
            ResumeFrom::OnlyRun => match runs.as_slice() {
                [] => {
                    return Err(Error::Checkpoint {
                        path: dir.to_path_buf(),
                        problem: CheckpointProblem::NoCheckpoint,
                    });
                }
                [one] => one.clone(),
                _ => {
                    return Err(Error::Checkpoint {
                        path: dir.to_path_buf(),
                        problem: CheckpointProblem::SeveralRuns { runs },
                    });
                }
            },
        };
        let entries: Vec<Entry> = checkpoint_entries(dir)
            .into_iter()
            .filter(|e| e.run == run)
            .collect();
        for e in entries {
            match self.load_checkpoint(&e.path) {
                Ok(()) => {
                    let loaded = if e.prev {
                        let primary = dir.join(ckpt_name(&run, e.n));
                        if primary.exists() {
                            std::fs::remove_dir_all(&primary)
                                .map_err(|err| Error::io(&primary, err))?;
                        }
                        std::fs::rename(&e.path, &primary)
                            .map_err(|err| Error::io(&primary, err))?;
                        fastburn_fsio::sync_dir(dir).map_err(|err| Error::io(dir, err))?;
                        primary
                    } else {
                        e.path
                    };
                    prune(dir, &run, usize::MAX)?;
                    return Ok(loaded);
                }
                Err(Error::Checkpoint {
                    problem:
                        p @ (CheckpointProblem::Vocabulary { .. }
                        | CheckpointProblem::Architecture { .. }),
                    path,
                }) => {
                    return Err(Error::Checkpoint { path, problem: p });
                }
                Err(err) => eprintln!("skipping checkpoint: {err}"),
            }
        }
        Err(Error::Checkpoint {
            path: dir.to_path_buf(),
            problem: if runs.contains(&run) {
                CheckpointProblem::NoCheckpoint
            } else {
                CheckpointProblem::NoCheckpointOfRun { run, found: runs }
            },
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
        crate::write_atomic(path, &bytes)?;
        Ok(())
    }

    /// Loads weights saved by [`Learner::save_weights`].
    ///
    /// # Errors
    /// [`Error::Record`] naming the file, or [`Error::Checkpoint`] for non-finite weights.
    pub fn load_weights(&mut self, path: &Path) -> Result<()> {
        let bytes =
            fastburn_fsio::read_capped(path, crate::inference::MAX_BUNDLE_BYTES).map_err(|e| {
                match e {
                    fastburn_fsio::ReadError::Io(e) => Error::io(path, e),
                    e @ fastburn_fsio::ReadError::TooLarge { .. } => Error::record(path, e),
                }
            })?;
        let model = load_record_contained(path, || {
            let record = ModuleRecord::from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes))
                .map_err(|e| Error::record(path, e))?;
            self.model()
                .clone()
                .try_load_record(record)
                .map_err(|e| Error::record(path, e))
        })?;
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
