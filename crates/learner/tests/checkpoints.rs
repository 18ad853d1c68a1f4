//! Checkpoints: manifest, corruption detection, kills during saves, NaN stops
//! (reliability goals 12, 13, 15, 17).

mod common;

use fastburn_learner::callbacks::Checkpointer;
use fastburn_learner::{
    Callback, CheckpointProblem, Error, Flow, Learner, Result, list_checkpoints, verify_checkpoint,
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
    assert!(all[0].ends_with("ckpt-000003"));
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
    let loaded = fresh.resume(&ck).unwrap();
    assert!(loaded.ends_with("ckpt-000002"));
    assert_eq!(fresh.state().epochs_done, 2);

    // A missing manifest (a save killed before its end) is skipped the same way.
    std::fs::remove_file(all[1].join("manifest.json")).unwrap();
    let e = fresh.resume(&ck).unwrap_err();
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
    assert!(first.ends_with("ckpt-000001"));
    // The same number again (a new run in an old folder): replaced, nothing left aside.
    let again = l.save_checkpoint(&ck).unwrap();
    assert_eq!(again, first);
    let names = |p: &std::path::Path| {
        let mut v: Vec<String> = std::fs::read_dir(p)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(&ck), ["ckpt-000001"]);

    // The state a kill between the two renames leaves: only `ckpt-000001.prev`.
    let prev = ck.join("ckpt-000001.prev");
    std::fs::rename(&first, &prev).unwrap();
    assert_eq!(list_checkpoints(&ck), std::slice::from_ref(&prev));
    let mut fresh = common::learner(dir.path(), 24, 32, 8);
    assert_eq!(fresh.resume(&ck).unwrap(), prev);
    assert_eq!(fresh.state().epochs_done, 1);
    assert_eq!(common::weights(&fresh), common::weights(&l));
    // With the checkpoint back in place, the stale copy is pruned.
    fresh.save_checkpoint(&ck).unwrap();
    fastburn_learner::prune(&ck, 3).unwrap();
    assert_eq!(names(&ck), ["ckpt-000001"]);
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
    assert!(saved[0].ends_with("ckpt-000001"));
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
        let loaded = l.resume(&dir.path().join("ck")).unwrap();
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
