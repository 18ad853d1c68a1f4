//! Checkpoints: manifest, corruption detection, kills during saves, NaN stops
//! (reliability goals 12, 13, 15, 17).

mod common;

use fastburn_learner::callbacks::Checkpointer;
use fastburn_learner::{
    Callback, CheckpointProblem, Error, Flow, Learner, Result, ResumeFrom, checkpoint_runs,
    list_checkpoints, prune, verify_checkpoint,
};

#[test]
fn a_checkpoint_is_a_verified_set() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = common::learner(dir.path(), 24, 32, 8);
    let ck = dir.path().join("ck");
    l.add_callback(Checkpointer::new(&ck).keep(2));
    l.fit(3, 1e-3).unwrap();
    let all = list_checkpoints(&ck);
    assert_eq!(all.len(), 2, "keeps the last 2");
    assert!(all[0].ends_with(format!("ckpt-{}-000003", l.run_id())));
    let m = verify_checkpoint(&all[0]).unwrap();
    assert_eq!(m.epochs_done, 3);
    assert_eq!(m.classes, l.dls().vocab.classes());
    assert_eq!(m.files.len(), 3);

    // Corrupt the optimiser file of the newest: detected and named; resume falls back.
    let opt = all[0].join("optim.bpk");
    let mut b = std::fs::read(&opt).unwrap();
    let k = b.len() / 2;
    b[k] ^= 1;
    std::fs::write(&opt, b).unwrap();
    match verify_checkpoint(&all[0]) {
        Err(Error::Checkpoint {
            problem: CheckpointProblem::Corrupted { file, .. },
            ..
        }) => assert_eq!(file, "optim.bpk"),
        other => panic!("{other:?}"),
    }
    let mut fresh = common::learner(dir.path(), 24, 32, 8);
    let loaded = fresh.resume(&ck, &ResumeFrom::OnlyRun).unwrap();
    assert!(loaded.ends_with(format!("ckpt-{}-000002", l.run_id())));
    assert_eq!(
        fresh.run_id(),
        l.run_id(),
        "the resumed learner continues the run"
    );
    assert_eq!(fresh.state().epochs_done, 2);

    // A missing manifest (a save killed before its end) is skipped the same way.
    std::fs::remove_file(all[1].join("manifest.json")).unwrap();
    let e = fresh.resume(&ck, &ResumeFrom::OnlyRun).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Checkpoint {
                problem: CheckpointProblem::NoCheckpoint,
                ..
            }
        ),
        "{e}"
    );
}

/// Saving over a checkpoint with the same number never leaves a moment with neither: the old
/// one is renamed aside to `.prev` first. A kill right after that rename leaves only the
/// `.prev` copy, which resume must load; the next save cleans it up.
#[test]
fn replacing_a_checkpoint_never_leaves_none() {
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("ck");
    let mut l = common::learner(dir.path(), 24, 32, 8);
    l.fit(1, 1e-3).unwrap();
    let first = l.save_checkpoint(&ck).unwrap();
    let name = format!("ckpt-{}-000001", l.run_id());
    assert!(first.ends_with(&name));
    // The same run and number again: replaced, nothing left aside.
    let again = l.save_checkpoint(&ck).unwrap();
    assert_eq!(again, first);
    assert_eq!(dir_names(&ck), std::slice::from_ref(&name));

    // The state a kill between the two renames leaves: only the `.prev` copy. Resume loads
    // it and moves it back into place.
    let prev = ck.join(format!("{name}.prev"));
    std::fs::rename(&first, &prev).unwrap();
    assert_eq!(list_checkpoints(&ck), std::slice::from_ref(&prev));
    let mut fresh = common::learner(dir.path(), 24, 32, 8);
    assert_eq!(fresh.resume(&ck, &ResumeFrom::OnlyRun).unwrap(), first);
    assert_eq!(fresh.state().epochs_done, 1);
    assert_eq!(common::weights(&fresh), common::weights(&l));
    assert_eq!(dir_names(&ck), std::slice::from_ref(&name));
    fresh.save_checkpoint(&ck).unwrap();
    prune(&ck, fresh.run_id(), 3).unwrap();
    assert_eq!(dir_names(&ck), [name]);
}

#[test]
fn wrong_vocabulary_and_truncated_weights_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = common::learner(dir.path(), 24, 32, 8);
    let ck = l.save_checkpoint(&dir.path().join("ck")).unwrap();
    // Another vocabulary.
    let other = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(other.path().join("data/train-jpg")).unwrap();
    for i in 0..6 {
        let (img, _) = fastburn_data::synth::chip(32, i);
        img.save(other.path().join(format!("data/train-jpg/o{i}.jpg")))
            .unwrap();
    }
    let rows: String = (0..6)
        .map(|i| format!("o{i},{}\n", if i % 2 == 0 { "alpha" } else { "beta gamma" }))
        .collect();
    std::fs::write(
        other.path().join("data/labels.csv"),
        format!("image_name,tags\n{rows}"),
    )
    .unwrap();
    let mut m = common::learner(other.path(), 6, 32, 2);
    match m.load_checkpoint(&ck) {
        Err(Error::Checkpoint {
            problem: CheckpointProblem::Vocabulary { .. },
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    // Truncated weights with a matching (rewritten) manifest: Burn's reader error names the file.
    let model = ck.join("model.bpk");
    let b = std::fs::read(&model).unwrap();
    std::fs::write(&model, &b[..b.len() / 3]).unwrap();
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ck.join("manifest.json")).unwrap()).unwrap();
    manifest["files"][0][1] =
        serde_json::Value::String(fastburn_learner::sha256_file(&model).unwrap());
    std::fs::write(
        ck.join("manifest.json"),
        serde_json::to_vec(&manifest).unwrap(),
    )
    .unwrap();
    let e = l.load_checkpoint(&ck).unwrap_err();
    assert!(e.to_string().contains("model.bpk"), "{e}");
}

#[test]
fn nan_weights_in_a_checkpoint_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = common::learner(dir.path(), 24, 32, 8);
    let mut model = l.model().clone();
    let w = model.head.layers[0].linear.weight.clone();
    model.head.layers[0].linear.weight = w.map(|t| t.mul_scalar(f32::NAN));
    l.set_model(model);
    let ck = l.save_checkpoint(&dir.path().join("ck")).unwrap();
    let mut fresh = common::learner(dir.path(), 24, 32, 8);
    match fresh.load_checkpoint(&ck) {
        Err(Error::Checkpoint {
            problem: CheckpointProblem::NonFiniteWeights { tensor },
            path,
        }) => {
            assert_eq!(tensor, "head.layers.0.linear.weight");
            assert!(path.ends_with("model.bpk"));
        }
        other => panic!("{other:?}"),
    }
}

struct PoisonAt(usize);

impl Callback for PoisonAt {
    fn name(&self) -> String {
        "poison".into()
    }
    fn before_batch(&mut self, l: &mut Learner) -> Result<Flow> {
        if l.state().iter == self.0 {
            let mut model = l.model().clone();
            let w = model.head.layers[1].linear.weight.clone();
            model.head.layers[1].linear.weight = w.map(|t| t.mul_scalar(f32::INFINITY));
            l.set_model(model);
        }
        Ok(Flow::Continue)
    }
}

#[test]
fn a_nan_loss_stops_in_that_step_with_no_checkpoint_after_it() {
    let dir = tempfile::tempdir().unwrap();
    // 20 training items in batches of 6: 3 full batches per epoch (the partial one dropped).
    let mut l = common::learner(dir.path(), 24, 32, 6);
    let ck = dir.path().join("ck");
    l.add_callback(Checkpointer::new(&ck).keep(10));
    l.add_callback(PoisonAt(4)); // epoch 1, batch 1
    match l.fit(3, 1e-3) {
        Err(Error::NonFiniteLoss {
            epoch,
            iteration,
            batch,
            ..
        }) => {
            assert_eq!((epoch, iteration, batch), (1, 4, 1));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(l.iterations().len(), 5, "stopped in step 4");
    let saved = list_checkpoints(&ck);
    assert_eq!(saved.len(), 1, "only the checkpoint of epoch 0");
    assert!(saved[0].ends_with(format!("ckpt-{}-000001", l.run_id())));
}

/// The child half of the kill test: saves checkpoints in a loop until killed.
#[test]
#[ignore = "run as a child process by killed_saves_always_leave_a_loadable_checkpoint"]
fn child_saving_checkpoints_forever() {
    let Ok(dir) = std::env::var("FASTBURN_KILL_TEST_DIR") else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let mut l = common::learner(&dir, 24, 32, 8);
    l.set_run_id("kill-test").unwrap();
    let ck = dir.join("ck");
    l.add_callback(Checkpointer::new(&ck).keep(3));
    loop {
        l.fit(1, 1e-3).unwrap();
        std::fs::write(dir.join("saved"), l.state().epochs_done.to_string()).unwrap();
    }
}

#[test]
fn killed_saves_always_leave_a_loadable_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    // Prepare the data once so the child only trains and saves.
    common::data(dir.path(), 24, 32, 8);
    let exe = std::env::current_exe().unwrap();
    let mut kills = 0;
    for round in 0..6u64 {
        // Each round waits for a save of its own child (the marker of the last round would
        // let the kill land before any save).
        let _ = std::fs::remove_file(dir.path().join("saved"));
        let mut child = std::process::Command::new(&exe)
            .args([
                "--exact",
                "child_saving_checkpoints_forever",
                "--ignored",
                "--nocapture",
            ])
            .env("FASTBURN_KILL_TEST_DIR", dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Wait for the first save, then kill at a varying moment.
        let t0 = std::time::Instant::now();
        while !dir.path().join("saved").exists() && t0.elapsed().as_secs() < 60 {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        std::thread::sleep(std::time::Duration::from_millis(37 * round + 5));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
        let mut l = common::learner(dir.path(), 24, 32, 8);
        let loaded = l
            .resume(&dir.path().join("ck"), &ResumeFrom::Run("kill-test".into()))
            .unwrap();
        verify_checkpoint(&loaded).unwrap();
        assert!(l.state().epochs_done >= 1);
    }
    assert_eq!(kills, 6);
    // Leftover temporary folders were cleaned by resume.
    let leftovers = std::fs::read_dir(dir.path().join("ck"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(".tmp")
        })
        .count();
    assert_eq!(leftovers, 0);
}

/// Writes `file` of checkpoint `ck` after `edit` and puts its new hash in the manifest, so
/// only the edit is wrong.
fn rewrite(ck: &std::path::Path, file: &str, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = ck.join(file);
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
    if file != "manifest.json" {
        let hash = fastburn_learner::sha256_file(&path).unwrap();
        let mpath = ck.join("manifest.json");
        let mut m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&mpath).unwrap()).unwrap();
        for f in m["files"].as_array_mut().unwrap() {
            if f[0] == file {
                f[1] = serde_json::Value::String(hash.clone());
            }
        }
        std::fs::write(&mpath, serde_json::to_vec(&m).unwrap()).unwrap();
    }
}

fn dir_names(p: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(p)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Issue 13 item 1: a new run in a folder holding an older run's checkpoints used to prune
/// its own first checkpoint right after writing it (the old run's were newer by number), and
/// resume took the old run's newest silently.
#[test]
fn a_new_run_in_an_old_runs_folder_keeps_both_and_resume_names_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("ck");
    let mut old = common::learner(dir.path(), 24, 32, 8);
    old.add_callback(Checkpointer::new(&ck).keep(2));
    old.fit(3, 1e-3).unwrap();
    let old_run = old.run_id().to_string();
    let mut new = common::learner(dir.path(), 24, 32, 8);
    assert_ne!(
        new.run_id(),
        old_run,
        "every learner starts a run of its own"
    );
    new.add_callback(Checkpointer::new(&ck).keep(2));
    new.fit(1, 1e-3).unwrap();
    let new_run = new.run_id().to_string();
    assert_eq!(
        dir_names(&ck),
        {
            let mut v = vec![
                format!("ckpt-{old_run}-000002"),
                format!("ckpt-{old_run}-000003"),
                format!("ckpt-{new_run}-000001"),
            ];
            v.sort();
            v
        },
        "each run keeps its own last 2"
    );
    let mut runs = vec![old_run.clone(), new_run.clone()];
    runs.sort();
    assert_eq!(checkpoint_runs(&ck), runs);

    let mut r = common::learner(dir.path(), 24, 32, 8);
    match r.resume(&ck, &ResumeFrom::OnlyRun) {
        Err(Error::Checkpoint {
            problem: CheckpointProblem::SeveralRuns { runs: found },
            ..
        }) => assert_eq!(found, runs),
        other => panic!("{other:?}"),
    }
    let loaded = r.resume(&ck, &ResumeFrom::Run(new_run.clone())).unwrap();
    assert!(loaded.ends_with(format!("ckpt-{new_run}-000001")));
    assert_eq!((r.state().epochs_done, r.run_id()), (1, new_run.as_str()));
    assert_eq!(common::weights(&r), common::weights(&new));
    let loaded = r.resume(&ck, &ResumeFrom::Run(old_run.clone())).unwrap();
    assert!(loaded.ends_with(format!("ckpt-{old_run}-000003")));
    match r.resume(&ck, &ResumeFrom::Run("nosuchrun".into())) {
        Err(Error::Checkpoint {
            problem: CheckpointProblem::NoCheckpointOfRun { run, found },
            ..
        }) => assert_eq!((run.as_str(), found), ("nosuchrun", runs)),
        other => panic!("{other:?}"),
    }
    assert!(r.set_run_id("../x").is_err(), "run ids become folder names");
}

/// Issue 13 item 2: when `ckpt-N` was corrupt and `ckpt-N.prev` good, resume loaded the
/// `.prev` copy and then pruned it as stale, leaving only the corrupt one.
#[test]
fn resume_keeps_the_good_prev_copy_when_the_checkpoint_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("ck");
    let mut l = common::learner(dir.path(), 24, 32, 8);
    l.fit(1, 1e-3).unwrap();
    let first = l.save_checkpoint(&ck).unwrap();
    let prev = ck.join(format!(
        "{}.prev",
        first.file_name().unwrap().to_string_lossy()
    ));
    std::fs::create_dir(&prev).unwrap();
    for f in std::fs::read_dir(&first).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), prev.join(f.file_name())).unwrap();
    }
    let opt = first.join("optim.bpk");
    let mut b = std::fs::read(&opt).unwrap();
    b[10] ^= 0xff;
    std::fs::write(&opt, b).unwrap();
    assert!(verify_checkpoint(&first).is_err());

    let mut fresh = common::learner(dir.path(), 24, 32, 8);
    let loaded = fresh.resume(&ck, &ResumeFrom::OnlyRun).unwrap();
    assert_eq!(loaded, first, "the good copy is moved into place");
    verify_checkpoint(&first).unwrap();
    assert!(!prev.exists());
    assert_eq!(common::weights(&fresh), common::weights(&l));
    // And again: it is still there.
    let mut again = common::learner(dir.path(), 24, 32, 8);
    again.resume(&ck, &ResumeFrom::OnlyRun).unwrap();
}

/// Issue 13 item 3: prune removed every `.tmp-ckpt-*` folder, so two trainers on one folder
/// deleted each other's saves in progress.
#[test]
fn prune_leaves_saves_in_progress_of_other_processes_and_runs() {
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("ck");
    let l = common::learner(dir.path(), 24, 32, 8);
    l.save_checkpoint(&ck).unwrap();
    let me = std::process::id();
    let other_run_here = ck.join(format!(".tmp-ckpt-other-000001-{me}"));
    let my_leftover = ck.join(format!(".tmp-ckpt-{}-000001-{me}", l.run_id()));
    let live = ck.join(".tmp-ckpt-other-000001-1"); // pid 1 is alive in every namespace
    let dead = ck.join(format!(".tmp-ckpt-other-000001-{}", u32::MAX));
    for d in [&other_run_here, &my_leftover, &live, &dead] {
        std::fs::create_dir(d).unwrap();
    }
    prune(&ck, l.run_id(), 5).unwrap();
    assert!(other_run_here.exists(), "another run of this process");
    assert!(live.exists(), "another live process");
    assert!(!my_leftover.exists(), "this run's leftover");
    if std::path::Path::new("/proc/self").exists() {
        assert!(!dead.exists(), "a dead process's leftover");
    }
}

/// Issue 13 item 4: an empty file list passed verification, names were joined unchecked
/// (`../x`), and `state.json`'s version was never read; out-of-range state values came in
/// unchecked too.
#[test]
fn a_manifest_lists_exactly_the_checkpoint_files_and_the_state_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = common::learner(dir.path(), 24, 32, 8);
    let ck = l.save_checkpoint(&dir.path().join("ck")).unwrap();
    let backup: Vec<(std::path::PathBuf, Vec<u8>)> = std::fs::read_dir(&ck)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect();
    let restore = || {
        for (p, b) in &backup {
            std::fs::write(p, b).unwrap();
        }
    };
    let problem = |l: &mut Learner| match l.load_checkpoint(&ck) {
        Err(Error::Checkpoint { problem, .. }) => problem,
        other => panic!("{other:?}"),
    };
    rewrite(&ck, "manifest.json", |m| m["files"] = serde_json::json!([]));
    assert!(matches!(
        problem(&mut l),
        CheckpointProblem::FileList { .. }
    ));
    restore();
    std::fs::write(dir.path().join("x"), b"outside").unwrap();
    let outside = fastburn_learner::sha256_file(&dir.path().join("x")).unwrap();
    rewrite(&ck, "manifest.json", |m| {
        m["files"].as_array_mut().unwrap()[0] = serde_json::json!(["../../x", outside]);
    });
    assert!(matches!(
        problem(&mut l),
        CheckpointProblem::FileList { .. }
    ));
    restore();
    rewrite(&ck, "state.json", |s| s["format_version"] = 99.into());
    assert!(matches!(
        problem(&mut l),
        CheckpointProblem::Version { got: 99, .. }
    ));
    restore();
    rewrite(&ck, "state.json", |s| {
        s["thresholds"] = serde_json::json!([0.1, 0.2]);
    });
    assert!(matches!(
        problem(&mut l),
        CheckpointProblem::State {
            key: "thresholds",
            ..
        }
    ));
    restore();
    rewrite(&ck, "state.json", |s| s["frozen"] = 99.into());
    assert!(matches!(
        problem(&mut l),
        CheckpointProblem::State { key: "frozen", .. }
    ));
    restore();
    rewrite(&ck, "state.json", |s| s["run_id"] = "someone-else".into());
    assert!(matches!(
        problem(&mut l),
        CheckpointProblem::Inconsistent { field: "run_id" }
    ));
    restore();
    l.load_checkpoint(&ck).unwrap();
}
