//! `fastburn train` checkpoints every epoch and `fastburn train --resume RUN_DIR` continues a
//! run killed with SIGKILL in the middle of an epoch, ending with the numbers of the run
//! that was never interrupted (CPU, flex: training is a function of the seed alone).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use fastburn_cli::Cli;

mod common;
use common::{BIN, s, text};

/// Two sizes of two one-cycle epochs each, on 96 synthetic 32-px chips (9 batches an
/// epoch: long enough to be killed inside one), without TTA.
const ARGS: &[&str] = &[
    "--n",
    "96",
    "--n-test",
    "4",
    "--synth-size",
    "32",
    "--arch",
    "resnet18",
    "--width",
    "8",
    "--sizes",
    "32,40",
    "--epochs",
    "2",
    "--recipe",
    "one-cycle",
    "--lr",
    "2e-3",
    "--bs",
    "8",
    "--no-tta",
    "--quiet",
];

#[track_caller]
fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
}

fn train(out: &Path, devices: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(["train", "--out", s(out)])
        .args(ARGS)
        .args(devices);
    cmd
}

fn read_json(path: &Path) -> serde_json::Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).expect("valid JSON")
}

/// `(epochs done, folder)` of each complete checkpoint in `RUN_DIR/checkpoints`.
fn checkpoints(run: &Path) -> Vec<(usize, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(run.join("checkpoints")) else {
        return Vec::new();
    };
    let mut v: Vec<(usize, PathBuf)> = entries
        .filter_map(|e| {
            let path = e.ok()?.path();
            let name = path.file_name()?.to_str()?.to_string();
            if !name.starts_with("ckpt-") || name.ends_with(".prev") {
                return None;
            }
            let n = name.rsplit('-').next()?.parse().ok()?;
            path.join("manifest.json").is_file().then_some((n, path))
        })
        .collect();
    v.sort();
    v
}

/// The numbers of `metrics.json` that do not depend on the clock.
fn numbers(metrics: &serde_json::Value) -> serde_json::Value {
    let mut m = metrics.clone();
    let o = m.as_object_mut().expect("an object");
    for k in ["train_seconds", "total_seconds"] {
        assert!(o.remove(k).is_some(), "{k} missing");
    }
    for row in o["epochs"].as_array_mut().expect("epochs") {
        row.as_object_mut().unwrap().remove("seconds");
    }
    m
}

#[test]
fn a_run_killed_mid_epoch_resumes_to_the_uninterrupted_numbers() {
    let (device, _) = killed_run_resumes(&["--device", "flex"]);
    assert_eq!(device, "flex");
}

/// The same on two devices (data-parallel, gathered): checkpoints and resume work as on one,
/// and `recipe.json` carries the devices to the resumed run.
#[test]
fn a_data_parallel_run_killed_mid_epoch_resumes_to_the_uninterrupted_numbers() {
    let (device, recipe) = killed_run_resumes(&["--devices", "flex,ndarray"]);
    assert_eq!(device, "flex, ndarray (data-parallel, gather)");
    assert_eq!(recipe["devices"], serde_json::json!(["flex", "ndarray"]));
    assert_eq!(recipe["reduce"], "auto");
}

/// Runs the reference and the killed-and-resumed run on `devices`; returns the device the
/// resumed run reports in `metrics.json`, and its `recipe.json`.
fn killed_run_resumes(devices: &[&str]) -> (String, serde_json::Value) {
    let tmp = tempfile::Builder::new()
        .prefix("fastburn-resume-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();

    // The reference: never interrupted. It checkpoints every epoch and keeps the last two.
    let reference = tmp.path().join("reference");
    let out = train(&reference, devices).output().unwrap();
    assert_ok(&out);
    let expected = read_json(&reference.join("metrics.json"));
    assert_eq!(expected["epochs"].as_array().unwrap().len(), 4);
    let kept: Vec<usize> = checkpoints(&reference).iter().map(|c| c.0).collect();
    assert_eq!(kept, [3, 4], "one checkpoint an epoch, the last two kept");
    for f in ["recipe.json", "run.json"] {
        assert!(reference.join(f).is_file(), "{f}");
    }

    // The same run, SIGKILLed inside its first fit (epoch 2 of 4, at 32 px) as soon as the
    // checkpoint of epoch 1 is complete: the resume continues that fit in its middle, then
    // changes size as the reference did.
    let killed = tmp.path().join("killed");
    let mut child = train(&killed, devices)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !checkpoints(&killed).iter().any(|c| c.0 == 1) {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the run ended ({status}) before it could be killed");
        }
        assert!(t0.elapsed() < Duration::from_secs(600), "no checkpoint");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert!(!status.success(), "{status}");
    assert!(
        !killed.join("metrics.json").exists(),
        "the kill came after the run finished"
    );
    let newest = checkpoints(&killed).last().unwrap().0;
    assert!((1..4).contains(&newest), "{newest}");

    // Resume: nothing but the folder.
    let out = Command::new(BIN)
        .args(["train", "--resume", s(&killed)])
        .output()
        .unwrap();
    assert_ok(&out);
    let stdout = text(&out.stdout);
    let run_id = read_json(&killed.join("run.json"))["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        stdout.contains(&format!("resuming run {run_id} from ")),
        "{stdout}"
    );
    // Two one-cycle fits of 2 epochs: 32 px, then 40 px.
    let (stage, px, fit) = if newest < 2 { (1, 32, 1) } else { (2, 40, 2) };
    assert!(
        stdout.contains(&format!(
            "resuming at epoch {} of 4: size stage {stage} of 2 ({px} px), fit {fit} of 2, its epoch {} of 2",
            newest + 1,
            newest % 2 + 1
        )),
        "{stdout}"
    );
    if newest != 1 {
        eprintln!("note: the kill landed after epoch {newest}, not inside the first fit");
    }
    let got = read_json(&killed.join("metrics.json"));
    assert_eq!(numbers(&got), numbers(&expected));
    // The resumed run kept checkpointing under its own run id.
    let kept: Vec<usize> = checkpoints(&killed).iter().map(|c| c.0).collect();
    assert_eq!(kept, [3, 4]);
    assert!(
        checkpoints(&killed)
            .iter()
            .all(|(_, p)| p.to_string_lossy().contains(&run_id))
    );
    for f in ["model.fbx", "history.csv", "submission.csv"] {
        assert!(killed.join(f).is_file(), "{f}");
    }
    let lines = |p: &Path| {
        std::fs::read_to_string(p.join("history.csv"))
            .unwrap()
            .lines()
            .count()
    };
    assert_eq!(
        lines(&killed),
        lines(&reference),
        "history.csv: one row an epoch"
    );
    (
        got["device"].as_str().unwrap().to_string(),
        read_json(&killed.join("recipe.json")),
    )
}

#[test]
fn resume_of_a_folder_that_is_no_run_exits_2_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["train", "--resume", s(dir.path())])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains(s(dir.path())) && err.contains("not a run folder"),
        "{err}"
    );
    // A recipe.json that is not one is named too.
    std::fs::write(dir.path().join("recipe.json"), b"{\"out\": 3}").unwrap();
    let out = Command::new(BIN)
        .args(["train", "--resume", s(dir.path())])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("recipe.json"));
}

#[test]
fn resume_takes_no_other_recipe_flag() {
    for extra in [&["--out", "x"][..], &["--epochs", "3"], &["--lr", "1e-3"]] {
        let mut args = vec!["fastburn", "train", "--resume", "run"];
        args.extend_from_slice(extra);
        let err = Cli::try_parse_from(&args).expect_err("a conflict");
        assert_eq!(
            err.kind(),
            clap::error::ErrorKind::ArgumentConflict,
            "{args:?}: {err}"
        );
    }
    assert!(Cli::try_parse_from(["fastburn", "train", "--resume", "run"]).is_ok());
    // Without --resume, --out is required.
    let err = Cli::try_parse_from(["fastburn", "train"]).expect_err("missing --out");
    assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument);
}
