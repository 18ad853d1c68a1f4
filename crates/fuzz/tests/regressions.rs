//! Replays every committed fuzz input through its target: the seed corpus
//! (`corpus/<target>/`) and the fuzzer's findings (`regressions/<target>/`). A panic, an
//! undocumented error or a broken invariant fails the test, naming the file; a contained
//! decoder panic passes only for a file named `contained-*` (a dependency bug recorded in
//! the README).
//!
//! `FASTBURN_FUZZ_WRITE_SEEDS=1` makes `seeds_load` rewrite `corpus/*/` from
//! [`fastburn_fuzz::seeds`] (after a format change).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use fastburn_fuzz::{Outcome, Target, run, seeds};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The input files of `dir`, sorted; notes (`README*`) and dotfiles are not inputs.
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .map(|e| e.expect("readable folder").path())
        .filter(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
            p.is_file() && name.is_some_and(|n| !n.starts_with('.') && !n.starts_with("README"))
        })
        .collect();
    v.sort();
    v
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic".into())
}

/// Replays every input of `target`; returns how many ran.
fn replay(target: Target) -> usize {
    let mut failures = Vec::new();
    let mut n = 0;
    for kind in ["corpus", "regressions"] {
        for file in inputs(&root().join(kind).join(target.name())) {
            n += 1;
            let data = std::fs::read(&file).expect("readable input");
            let name = file.file_name().unwrap().to_string_lossy().into_owned();
            match catch_unwind(AssertUnwindSafe(|| run(target, &data))) {
                Ok(Outcome::ContainedPanic(m)) if !name.starts_with("contained-") => failures.push(
                    format!("{}: the decoder panicked (contained): {m}", file.display()),
                ),
                Ok(_) => {}
                Err(p) => failures.push(format!("{}: {}", file.display(), panic_text(&*p))),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {n} inputs of `{}` break the contract:\n{}",
        failures.len(),
        target.name(),
        failures.join("\n")
    );
    n
}

#[test]
fn decode_image() {
    assert!(replay(Target::DecodeImage) >= 3);
}

#[test]
fn parse_csv() {
    assert!(replay(Target::ParseCsv) >= 3);
}

#[test]
fn load_checkpoint() {
    assert!(replay(Target::LoadCheckpoint) >= 1);
}

#[test]
fn load_bundle() {
    assert!(replay(Target::LoadBundle) >= 1);
}

/// The seeds built from today's formats reach the deep end of each target (accepted, bar
/// the CSV seed made of problems), and the committed corpus still holds them: a format
/// change that makes the corpus stale fails here (rewrite it with
/// `FASTBURN_FUZZ_WRITE_SEEDS=1`).
#[test]
fn seeds_load() {
    let write = std::env::var_os("FASTBURN_FUZZ_WRITE_SEEDS").is_some();
    for target in Target::ALL {
        let dir = root().join("corpus").join(target.name());
        for (name, bytes) in seeds::of(target) {
            let expected_accepted = name != "problems.csv";
            let outcome = run(target, &bytes);
            assert_eq!(
                outcome == Outcome::Accepted,
                expected_accepted,
                "seed {name} of `{}`: {outcome:?}",
                target.name()
            );
            let file = dir.join(&name);
            if write {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&file, &bytes).unwrap();
            }
            let committed = std::fs::read(&file).unwrap_or_else(|e| {
                panic!(
                    "{}: {e} (run with FASTBURN_FUZZ_WRITE_SEEDS=1)",
                    file.display()
                )
            });
            assert_eq!(
                run(target, &committed) == Outcome::Accepted,
                expected_accepted,
                "committed seed {} is stale (run with FASTBURN_FUZZ_WRITE_SEEDS=1)",
                file.display()
            );
        }
    }
}
