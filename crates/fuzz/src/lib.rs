#![warn(missing_docs)]
//! # fastburn-fuzz
//!
//! Fuzz targets for the files fastburn reads from users and the network: images, labels
//! CSVs, checkpoints and export bundles (reliability goal 22). Each target is a plain
//! function from bytes to an [`Outcome`] that feeds the bytes to the real public entry
//! point and **panics when the entry point breaks its documented contract** (it panics, or
//! its error is of a kind its docs do not list, or its result breaks an invariant). The
//! same functions run
//!
//! - under libFuzzer, in the binaries `fuzz_targets/<target>.rs` (feature `libfuzzer`,
//!   built with coverage instrumentation by `scripts/fuzz.sh`), and
//! - under `cargo test`, in `tests/regressions.rs`, which replays the seed corpus
//!   (`corpus/<target>/`) and every crash the fuzzer found (`regressions/<target>/`).
//!
//! ## Crate map
//! | item | entry point it drives |
//! | --- | --- |
//! | [`decode_image`] | [`fastburn_data::decode_rgb`], strict, then lenient for a truncated JPEG |
//! | [`parse_csv`] | [`fastburn_data::ItemList::from_csv`] over a folder with real, missing and linked images; CRLF / BOM variants must give the same table |
//! | [`load_checkpoint`] | [`fastburn_learner::verify_checkpoint`], [`fastburn_learner::Learner::load_checkpoint`] (and [`fastburn_learner::Learner::resume`] when it loads) |
//! | [`load_bundle`] | [`fastburn_learner::load_learner`], as given and with its checksum repaired |
//! | [`Target`], [`run`] | the four by name |
//! | [`libfuzzer`] | the binaries' glue: strict, or going on past contained panics |
//! | [`seeds`] | the seed inputs, built from the current formats |
//!
//! ## Features
//! - `libfuzzer`: the libFuzzer binaries (`libfuzzer-sys`, which compiles libFuzzer's C++).
//!
//! ## Contained panics
//! Image decoders and Burn's record reader are not promised to be panic-free, so fastburn
//! runs them under `catch_unwind` and reports a typed error ([`fastburn_data::Error::Panic`],
//! [`fastburn_learner::Error::Record`]). That is the documented contract, so the targets
//! return [`Outcome::ContainedPanic`] rather than failing; the regression test accepts it
//! only for files named `contained-*` (a dependency bug recorded in the README), and the
//! libFuzzer binaries report each new panic location (see [`libfuzzer`]).

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use burn::tensor::Device;
use fastburn_data::{CsvConfig, DecodeOptions, ImageFormat, ItemList, LabelKind};
use fastburn_learner::{Learner, LearnerConfig, ResumeFrom, sha256_hex};

/// What a target's entry point did with an input that kept its contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The input was accepted.
    Accepted,
    /// The input was refused with a documented, typed error (its message).
    Rejected(String),
    /// A dependency panicked and fastburn turned the panic into its typed error (the
    /// message): an image decoder ([`fastburn_data::Error::Panic`]) or Burn's record reader
    /// ([`fastburn_learner::Error::Record`] saying so).
    ContainedPanic(String),
}

/// The four fuzz targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// [`decode_image`].
    DecodeImage,
    /// [`parse_csv`].
    ParseCsv,
    /// [`load_checkpoint`].
    LoadCheckpoint,
    /// [`load_bundle`].
    LoadBundle,
}

impl Target {
    /// Every target.
    pub const ALL: [Target; 4] = [
        Target::DecodeImage,
        Target::ParseCsv,
        Target::LoadCheckpoint,
        Target::LoadBundle,
    ];

    /// The target's name: its binary, and its folders under `corpus/` and `regressions/`.
    pub fn name(self) -> &'static str {
        match self {
            Target::DecodeImage => "decode_image",
            Target::ParseCsv => "parse_csv",
            Target::LoadCheckpoint => "load_checkpoint",
            Target::LoadBundle => "load_bundle",
        }
    }
}

/// Runs `target` on `data`.
///
/// # Panics
/// When the entry point breaks its contract (see the target's function).
pub fn run(target: Target, data: &[u8]) -> Outcome {
    match target {
        Target::DecodeImage => decode_image(data),
        Target::ParseCsv => parse_csv(data),
        Target::LoadCheckpoint => load_checkpoint(data),
        Target::LoadBundle => load_bundle(data),
    }
}

// ----- libFuzzer glue --------------------------------------------------------------------

/// What the libFuzzer binaries run (`fuzz_targets/*.rs`), in two modes chosen by the
/// environment variable `FASTBURN_FUZZ_CONTAINED`.
///
/// - unset (strict): every panic ends the run with a crash input, even one fastburn
///   contains, because libFuzzer's panic hook aborts at the panic.
/// - `allow`: a panic that fastburn contains ([`Outcome::ContainedPanic`]) does not stop the
///   run, so a known dependency bug does not end every run after a minute; the first input
///   for each new panic location is written to `$FASTBURN_FUZZ_CONTAINED_DIR` as
///   `contained-<location>` (`scripts/fuzz.sh` picks it up). A panic that escapes still
///   aborts, after printing its message and location.
pub mod libfuzzer {
    use std::cell::RefCell;
    use std::collections::HashSet;
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::sync::OnceLock;

    use super::{Outcome, Target};

    static ALLOW: OnceLock<bool> = OnceLock::new();

    thread_local! {
        /// The last panic's `location: message`, recorded by the hook in `allow` mode.
        static LAST: RefCell<Option<(String, String)>> = const { RefCell::new(None) };
        static SEEN: RefCell<HashSet<String>> = RefCell::new(HashSet::new());
    }

    /// Called once before fuzzing (after libFuzzer installed its aborting hook).
    pub fn init() {
        let allow = std::env::var("FASTBURN_FUZZ_CONTAINED").is_ok_and(|v| v == "allow");
        ALLOW.get_or_init(|| allow);
        if allow {
            std::panic::set_hook(Box::new(|info| {
                let location = info
                    .location()
                    .map_or_else(|| "unknown".to_string(), ToString::to_string);
                let message = crate::panic_text(info.payload());
                LAST.with(|l| *l.borrow_mut() = Some((location, message)));
            }));
        }
    }

    /// Runs `target` on one input.
    pub fn run(target: Target, data: &[u8]) {
        if !ALLOW.get().copied().unwrap_or(false) {
            let _ = crate::run(target, data);
            return;
        }
        match catch_unwind(AssertUnwindSafe(|| crate::run(target, data))) {
            Ok(Outcome::ContainedPanic(_)) => {
                let (location, message) = LAST
                    .with(|l| l.borrow_mut().take())
                    .unwrap_or_else(|| ("unknown".into(), String::new()));
                if SEEN.with(|s| s.borrow_mut().insert(location.clone())) {
                    eprintln!("fastburn-fuzz: contained panic at {location}: {message}");
                    if let Some(dir) = std::env::var_os("FASTBURN_FUZZ_CONTAINED_DIR") {
                        let path = std::path::Path::new(&dir)
                            .join(format!("contained-{}", slug(&location)));
                        if !path.exists() {
                            let _ = std::fs::write(path, data);
                        }
                    }
                }
            }
            Ok(_) => {}
            Err(_) => {
                if let Some((location, message)) = LAST.with(|l| l.borrow_mut().take()) {
                    eprintln!("fastburn-fuzz: panicked at {location}:\n{message}");
                }
                std::process::abort();
            }
        }
    }

    /// `crate-1.2.3/src/x.rs:10:5` from a panic location under Cargo's registry, as a file
    /// name: `crate-1.2.3-src-x.rs-10`.
    fn slug(location: &str) -> String {
        let short = location
            .rsplit_once("/registry/src/")
            .and_then(|(_, rest)| rest.split_once('/').map(|(_, p)| p))
            .unwrap_or(location);
        let short = short.rsplit_once(':').map_or(short, |(head, _column)| head);
        short
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' {
                    c
                } else {
                    '-'
                }
            })
            .collect()
    }
}

/// A panic payload's text.
fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".into())
}

// ----- scratch space ---------------------------------------------------------------------

/// A folder of this thread's own, alive as long as the thread (the fuzzer runs on one).
fn scratch() -> PathBuf {
    thread_local! {
        static DIR: tempfile::TempDir = tempfile::Builder::new()
            .prefix("fastburn-fuzz-")
            .tempdir()
            .expect("a temporary folder for the fuzz inputs");
    }
    DIR.with(|d| d.path().to_path_buf())
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("harness: writing {path:?}: {e}"));
}

fn fresh_dir(path: &Path) {
    if path.exists() {
        std::fs::remove_dir_all(path).unwrap_or_else(|e| panic!("harness: clearing {path:?}: {e}"));
    }
    std::fs::create_dir_all(path).unwrap_or_else(|e| panic!("harness: creating {path:?}: {e}"));
}

// ----- images ----------------------------------------------------------------------------

/// The decoder limits the image target uses: the defaults' checks with smaller numbers
/// (2048 px a side, 2 megapixels, 16 MiB), so that a header declaring a large image costs
/// the fuzzer milliseconds, not seconds. The limit logic is the same for any numbers.
pub fn fuzz_decode_options() -> DecodeOptions {
    DecodeOptions {
        max_width: 2048,
        max_height: 2048,
        max_pixels: 2 * 1024 * 1024,
        max_file_bytes: 16 * 1024 * 1024,
        strict: true,
    }
}

/// Decodes `data` as an image file with [`fastburn_data::decode_rgb`] (strict), and a
/// JPEG the strict decoder calls truncated once more leniently.
///
/// Contract checked: `Ok`, or one of the errors `decode_rgb` documents, naming the path;
/// an accepted image has the format its magic bytes announce, fits the limits, and is
/// truncated only when decoded leniently.
///
/// # Panics
/// When the contract is broken.
pub fn decode_image(data: &[u8]) -> Outcome {
    let path = Path::new("fuzz/input.img");
    let strict = fuzz_decode_options();
    match decode_checked(data, path, &strict) {
        (_, true) if fastburn_data::sniff_format(data) == Some(ImageFormat::Jpeg) => {
            let lenient = DecodeOptions {
                strict: false,
                ..strict
            };
            decode_checked(data, path, &lenient).0
        }
        (outcome, _) => outcome,
    }
}

/// Decodes and checks the result; the flag says the error was [`fastburn_data::Error::Truncated`].
fn decode_checked(data: &[u8], path: &Path, opts: &DecodeOptions) -> (Outcome, bool) {
    use fastburn_data::Error as E;
    match fastburn_data::decode_rgb(data, path, opts) {
        Ok(d) => {
            let (w, h) = d.image.dimensions();
            assert!(w > 0 && h > 0, "accepted an empty {w}x{h} image");
            assert!(
                w <= opts.max_width
                    && h <= opts.max_height
                    && u64::from(w) * u64::from(h) <= opts.max_pixels,
                "accepted a {w}x{h} image past the limits {opts:?}"
            );
            assert_eq!(
                Some(d.format),
                fastburn_data::sniff_format(data),
                "format differs from the magic bytes"
            );
            assert!(
                !(opts.strict && d.truncated),
                "strict decoding accepted a truncated image"
            );
            (Outcome::Accepted, false)
        }
        Err(E::Panic { message, .. }) => (Outcome::ContainedPanic(message), false),
        Err(
            e @ (E::Io { .. }
            | E::EmptyFile { .. }
            | E::FileTooLarge { .. }
            | E::UnsupportedFormat { .. }
            | E::DimensionLimit { .. }
            | E::Truncated { .. }
            | E::Decode { .. }),
        ) => {
            assert_eq!(e.path(), Some(path), "error does not name the file: {e}");
            let truncated = matches!(e, E::Truncated { .. });
            (Outcome::Rejected(e.to_string()), truncated)
        }
        Err(e) => panic!("decode_rgb returned an undocumented error: {e:?}"),
    }
}

// ----- labels CSV ------------------------------------------------------------------------

/// The image folder the CSV target reads against: `a`, `b`, `c` and `img_1` exist, `inside`
/// is a link to `a.jpg`, `escape` a link out of the folder, `dangling` a link to nothing,
/// and `folder.jpg` a folder.
fn csv_images() -> PathBuf {
    thread_local! {
        static IMAGES: PathBuf = {
            let root = scratch().join("csv");
            let images = root.join("images");
            fresh_dir(&images);
            for n in ["a", "b", "c", "img_1"] {
                write(&images.join(format!("{n}.jpg")), b"not decoded here");
            }
            write(&root.join("outside.jpg"), b"outside the image folder");
            std::fs::create_dir_all(images.join("folder.jpg")).expect("harness: a folder");
            #[cfg(unix)]
            {
                use std::os::unix::fs::symlink;
                symlink(images.join("a.jpg"), images.join("inside.jpg")).expect("harness: link");
                symlink(root.join("outside.jpg"), images.join("escape.jpg"))
                    .expect("harness: link");
                symlink(root.join("missing.jpg"), images.join("dangling.jpg"))
                    .expect("harness: link");
            }
            images
        };
    }
    IMAGES.with(Clone::clone)
}

/// What a CSV read gave, comparable across line-ending variants: the items, or the
/// problems with the reader's own messages (which hold byte offsets) left out.
#[derive(Debug, PartialEq)]
enum CsvResult {
    Items(ItemList),
    Problems(Vec<(u64, String)>),
    Other(String),
}

fn read_csv(bytes: &[u8], kind: LabelKind, check_files: bool) -> CsvResult {
    use fastburn_data::{CsvProblemKind, Error as E};
    let images = csv_images();
    let csv = images
        .parent()
        .expect("images has a parent")
        .join("labels.csv");
    write(&csv, bytes);
    let cfg = CsvConfig::new(csv.clone(), images.clone())
        .with_label_kind(kind)
        .with_check_files(check_files);
    match ItemList::from_csv(&cfg) {
        Ok(list) => {
            check_items(&list, &images);
            CsvResult::Items(list)
        }
        Err(E::Csv { path, problems }) => {
            assert_eq!(path, csv, "CSV error names another file");
            assert!(!problems.is_empty(), "a CSV error without problems");
            assert!(
                problems.list.len() <= fastburn_data::CsvProblems::CAP,
                "more problems kept than the cap"
            );
            assert!(
                problems.list.windows(2).all(|w| w[0].line <= w[1].line),
                "problems not in line order"
            );
            CsvResult::Problems(
                problems
                    .list
                    .iter()
                    .map(|p| {
                        assert!(p.line >= 1, "problem on line 0: {p}");
                        let kind = match &p.kind {
                            CsvProblemKind::Read { .. } => "read error".to_string(),
                            k => format!("{k:?}"),
                        };
                        (p.line, kind)
                    })
                    .collect(),
            )
        }
        Err(e @ E::NoClasses { .. }) => {
            assert_eq!(
                e.path(),
                Some(csv.as_path()),
                "error names another file: {e}"
            );
            CsvResult::Other(e.to_string())
        }
        Err(e) => panic!("from_csv returned an undocumented error: {e:?}"),
    }
}

fn check_items(list: &ItemList, images: &Path) {
    let classes = list.vocab.classes();
    assert!(!classes.is_empty(), "accepted a CSV without classes");
    assert!(
        classes.windows(2).all(|w| w[0] < w[1]),
        "vocabulary not sorted and unique: {classes:?}"
    );
    assert!(
        classes
            .iter()
            .all(|c| !c.is_empty() && !c.chars().any(char::is_whitespace)),
        "empty or blank tag in {classes:?}"
    );
    let mut names = std::collections::HashSet::new();
    for item in &list.items {
        assert!(names.insert(&item.name), "duplicate name {:?}", item.name);
        assert_eq!(
            item.path.parent(),
            Some(images),
            "item {:?} leaves the image folder",
            item.name
        );
        assert!(
            item.labels.windows(2).all(|w| w[0] < w[1]),
            "labels not ascending: {:?}",
            item.labels
        );
        assert!(
            item.labels.iter().all(|&l| l < classes.len()),
            "label out of the vocabulary"
        );
        assert!(
            item.line.is_some_and(|l| l >= 2),
            "item without its line: {item:?}"
        );
    }
}

/// Reads `data` as a labels CSV with [`fastburn_data::ItemList::from_csv`]: with image
/// checks and the task decided from the rows, then forced single-label without image
/// checks.
///
/// Contract checked: `Ok`, [`fastburn_data::Error::Csv`] (problems in line order, none
/// on line 0, capped) or [`fastburn_data::Error::NoClasses`], naming the file; an accepted
/// list has a sorted vocabulary without empty tags, unique names inside the image folder
/// and labels within the vocabulary. Goal 8: the same bytes with a UTF-8 byte-order mark,
/// and (for files without `\r` or quotes) with CRLF line ends, give the same result.
/// Goal 7: in such a file an item's line is the line holding its name.
///
/// # Panics
/// When the contract is broken.
pub fn parse_csv(data: &[u8]) -> Outcome {
    let first = read_csv(data, LabelKind::Auto, true);
    if !data.starts_with(&[0xEF, 0xBB, 0xBF]) {
        let mut bom = vec![0xEF, 0xBB, 0xBF];
        bom.extend_from_slice(data);
        assert_eq!(
            read_csv(&bom, LabelKind::Auto, true),
            first,
            "a byte-order mark changes the result"
        );
    }
    if !data.iter().any(|&b| b == b'\r' || b == b'"') {
        let mut crlf = Vec::with_capacity(data.len() * 2);
        for &b in data {
            if b == b'\n' {
                crlf.push(b'\r');
            }
            crlf.push(b);
        }
        assert_eq!(
            read_csv(&crlf, LabelKind::Auto, true),
            first,
            "CRLF line ends change the result"
        );
    }
    // Goal 7: an item's line is the line that holds its name (checked where lines are
    // simple: LF only, no quoted fields).
    if let CsvResult::Items(list) = &first
        && !data.iter().any(|&b| b == b'\r' || b == b'"')
    {
        let body = data.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(data);
        let lines: Vec<&[u8]> = body.split(|&b| b == b'\n').collect();
        for item in &list.items {
            let line = item.line.expect("checked in check_items");
            let text = usize::try_from(line - 1).ok().and_then(|i| lines.get(i));
            assert!(
                text.is_some_and(|t| find(t, item.name.as_bytes()).is_some()),
                "item {:?} reported on line {line}, which does not hold it",
                item.name
            );
        }
    }
    if let CsvResult::Items(list) = read_csv(data, LabelKind::Single, false) {
        assert!(
            list.items.iter().all(|i| i.labels.len() == 1),
            "forced single-label accepted a row without exactly one tag"
        );
    }
    match first {
        CsvResult::Items(_) => Outcome::Accepted,
        CsvResult::Problems(p) => Outcome::Rejected(format!("{} problem(s)", p.len())),
        CsvResult::Other(m) => Outcome::Rejected(m),
    }
}

// ----- checkpoints -----------------------------------------------------------------------

/// The separator between the files of a checkpoint input (see [`load_checkpoint`]).
pub const PART_SEPARATOR: &[u8] = b"\n#fastburn-fuzz-part#\n";

/// The files of a checkpoint input, in order.
pub const CHECKPOINT_PARTS: [&str; 4] = ["manifest.json", "state.json", "model.bpk", "optim.bpk"];

/// The small learner the checkpoint target loads into, and its data folder (kept alive).
struct Fixture {
    learner: Option<Learner>,
    dls: fastburn_data::DataLoaders,
}

/// The learner the checkpoint and bundle targets use: ResNet-18 at base width 1 with a
/// 4-wide head over 10 synthetic 16-pixel images, so a checkpoint is a few tens of KB.
fn fixture_config(dir: &Path) -> LearnerConfig {
    LearnerConfig::new(fastburn_models::Arch::ResNet18)
        .with_base_width(1)
        .with_lin_ftrs(vec![4])
        .with_seed(7)
        .with_path(dir.join("run"))
}

fn fixture_dls() -> fastburn_data::DataLoaders {
    let data = scratch().join("data");
    if !data.join("labels.csv").is_file() {
        fastburn_data::synth::SynthConfig::new(data.clone())
            .with_n(10)
            .with_size(16)
            .with_workers(1)
            .generate()
            .expect("harness: synthetic data");
    }
    let csv = CsvConfig::new(data.join("labels.csv"), data.join("train-jpg"));
    fastburn_data::DataLoadersConfig::new(16)
        .with_batch_size(4)
        .with_workers(0)
        .from_csv(&csv, &fastburn_data::Splitter::default())
        .expect("harness: data loaders")
}

fn new_learner(dls: &fastburn_data::DataLoaders) -> Learner {
    let mut l = fastburn_learner::vision_learner(
        dls.clone(),
        &fixture_config(&scratch()),
        None,
        &Device::flex(),
    )
    .expect("harness: learner");
    l.quiet();
    l.set_run_id("fuzz").expect("harness: run id");
    l
}

/// Runs `f` on this thread's fixture learner; `fresh` rebuilds it first.
fn with_learner<T>(fresh: bool, f: impl FnOnce(&mut Learner) -> T) -> T {
    thread_local! {
        static FIXTURE: RefCell<Option<Fixture>> = const { RefCell::new(None) };
    }
    FIXTURE.with(|cell| {
        let mut slot = cell.borrow_mut();
        let fx = slot.get_or_insert_with(|| Fixture {
            learner: None,
            dls: fixture_dls(),
        });
        if fresh || fx.learner.is_none() {
            fx.learner = Some(new_learner(&fx.dls));
        }
        f(fx.learner.as_mut().expect("just built"))
    })
}

/// What `load_checkpoint` may change, compared after a failed load.
#[derive(Debug, PartialEq)]
struct Snapshot {
    run_id: String,
    epochs_done: usize,
    frozen: usize,
    lrs: Vec<f64>,
    mom: u64,
    history: usize,
    iterations: usize,
    thresholds: Option<Vec<f32>>,
}

fn snapshot(l: &Learner) -> Snapshot {
    Snapshot {
        run_id: l.run_id().to_string(),
        epochs_done: l.state().epochs_done,
        frozen: l.frozen_groups(),
        lrs: l.state().lrs.clone(),
        mom: l.state().mom.to_bits(),
        history: l.history().len(),
        iterations: l.iterations().len(),
        thresholds: l.thresholds().map(<[f32]>::to_vec),
    }
}

/// Splits a checkpoint input into its files and fills in the hashes: `data` is
/// `manifest.json`, `state.json`, `model.bpk` and `optim.bpk` joined by
/// [`PART_SEPARATOR`] (missing trailing parts are missing files), and `@model.bpk`,
/// `@optim.bpk`, `@state.json` in the manifest become the SHA-256 of those parts, so the
/// fuzzer gets past the hash check to the parsers behind it.
pub fn checkpoint_files(data: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let mut parts: Vec<&[u8]> = Vec::new();
    let mut rest = data;
    while parts.len() + 1 < CHECKPOINT_PARTS.len() {
        match find(rest, PART_SEPARATOR) {
            Some(at) => {
                parts.push(&rest[..at]);
                rest = &rest[at + PART_SEPARATOR.len()..];
            }
            None => break,
        }
    }
    parts.push(rest);
    let mut files: Vec<(&'static str, Vec<u8>)> = CHECKPOINT_PARTS
        .iter()
        .zip(&parts)
        .map(|(name, bytes)| (*name, bytes.to_vec()))
        .collect();
    let mut manifest = files[0].1.clone();
    for (name, bytes) in &files[1..] {
        let token = format!("@{name}");
        manifest = replace(&manifest, token.as_bytes(), sha256_hex(bytes).as_bytes());
    }
    files[0].1 = manifest;
    files
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn replace(hay: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hay.len());
    let mut rest = hay;
    while let Some(at) = find(rest, from) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(to);
        rest = &rest[at + from.len()..];
    }
    out.extend_from_slice(rest);
    out
}

/// Writes the checkpoint input `data` (see [`checkpoint_files`]) as a checkpoint folder
/// and loads it: [`fastburn_learner::verify_checkpoint`], then
/// [`fastburn_learner::Learner::load_checkpoint`] into a small learner, and when that
/// succeeds [`fastburn_learner::Learner::resume`] over the folder.
///
/// Contract checked: `Ok`, or [`fastburn_learner::Error::Checkpoint`] /
/// [`fastburn_learner::Error::Record`] / [`fastburn_learner::Error::Io`] naming the folder
/// or a file in it; a checkpoint that fails verification does not load; a failed load
/// leaves the learner as it was (run, epochs, freezing, rates, history, thresholds).
///
/// # Panics
/// When the contract is broken.
pub fn load_checkpoint(data: &[u8]) -> Outcome {
    let outcome = load_checkpoint_checked(data);
    sweep_autodiff_graph();
    outcome
}

/// Runs a one-element backward pass so that Burn's autodiff frees the graph entries of
/// tracked tensors no longer alive. Burn sweeps them only during a backward pass; a training
/// run does one every step, but the fuzzer loads thousands of checkpoints (each loaded or
/// built model registers ~80-500 KB of entries) without one and would hit its memory limit
/// within two minutes.
fn sweep_autodiff_graph() {
    let x = burn::tensor::Tensor::<1>::ones([1], &Device::flex().autodiff()).require_grad();
    let _ = x.sum().backward();
}

fn load_checkpoint_checked(data: &[u8]) -> Outcome {
    let root = scratch().join("ckpts");
    fresh_dir(&root);
    let dir = root.join("ckpt-fuzz-000001");
    std::fs::create_dir_all(&dir).expect("harness: checkpoint folder");
    for (name, bytes) in checkpoint_files(data) {
        write(&dir.join(name), &bytes);
    }
    let verified = fastburn_learner::verify_checkpoint(&dir);
    if let Err(e) = &verified {
        check_learner_error(e, &dir, "verify_checkpoint");
    }
    let loaded = with_learner(false, |l| {
        let before = snapshot(l);
        let r = l.load_checkpoint(&dir);
        if r.is_err() {
            assert_eq!(
                snapshot(l),
                before,
                "a failed load_checkpoint changed the learner ({r:?})"
            );
        }
        r
    });
    match loaded {
        Ok(()) => {
            assert!(
                verified.is_ok(),
                "loaded a checkpoint that fails verification: {verified:?}"
            );
            let resumed = with_learner(true, |l| l.resume(&root, &ResumeFrom::OnlyRun));
            assert_eq!(
                resumed.as_deref().ok(),
                Some(dir.as_path()),
                "resume does not load the checkpoint load_checkpoint loads: {resumed:?}"
            );
            // The next input starts from a learner that has loaded nothing.
            with_learner(true, |_| ());
            Outcome::Accepted
        }
        Err(e) => {
            check_learner_error(&e, &dir, "load_checkpoint");
            learner_outcome(&e)
        }
    }
}

/// The outcome of a learner error: a contained panic when the learner caught one in Burn's
/// record reader (its message says so), else a rejection.
fn learner_outcome(e: &fastburn_learner::Error) -> Outcome {
    match e {
        fastburn_learner::Error::Record { message, .. }
            if message.starts_with("Burn's record reader panicked") =>
        {
            Outcome::ContainedPanic(message.clone())
        }
        e => Outcome::Rejected(e.to_string()),
    }
}

/// A learner error is one of the documented kinds and names `at` or a file in it.
fn check_learner_error(e: &fastburn_learner::Error, at: &Path, what: &str) {
    use fastburn_learner::Error as E;
    let path = match e {
        E::Checkpoint { path, .. } | E::Record { path, .. } | E::Io { path, .. } => path,
        e => panic!("{what} returned an undocumented error: {e:?}"),
    };
    assert!(
        path == at || path.parent() == Some(at),
        "{what}: error names {path:?}, not {at:?} or a file in it: {e}"
    );
}

// ----- export bundles --------------------------------------------------------------------

/// Loads `data` as an export bundle with [`fastburn_learner::load_learner`], once as given
/// and once with its SHA-256 trailer recomputed (so the fuzzer reaches the header,
/// metadata and weight parsers behind the checksum).
///
/// Contract checked: `Ok`, or [`fastburn_learner::Error::Checkpoint`] /
/// [`fastburn_learner::Error::Record`] / [`fastburn_learner::Error::Io`] naming the file;
/// an accepted bundle has a sorted, non-empty vocabulary and thresholds that fit it.
///
/// # Panics
/// When the contract is broken.
pub fn load_bundle(data: &[u8]) -> Outcome {
    let path = scratch().join("model.fastburn");
    let as_given = load_bundle_checked(data, &path);
    if data.len() < 32 {
        return as_given;
    }
    let (body, _) = data.split_at(data.len() - 32);
    let mut fixed = body.to_vec();
    fixed.extend_from_slice(&sha256_bytes(body));
    if fixed == data {
        return as_given;
    }
    load_bundle_checked(&fixed, &path)
}

fn sha256_bytes(bytes: &[u8]) -> [u8; 32] {
    let hex = sha256_hex(bytes);
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex digest");
    }
    out
}

fn load_bundle_checked(data: &[u8], path: &Path) -> Outcome {
    write(path, data);
    match fastburn_learner::load_learner(path, &Device::flex()) {
        Ok(inf) => {
            let classes = inf.vocab().classes();
            assert!(
                !classes.is_empty() && classes.windows(2).all(|w| w[0] < w[1]),
                "accepted a bundle with vocabulary {classes:?}"
            );
            let t = inf.thresholds();
            assert!(
                (t.len() == 1 || t.len() == classes.len())
                    && t.iter().all(|x| (0.0..=1.0).contains(x)),
                "accepted a bundle with thresholds {t:?}"
            );
            Outcome::Accepted
        }
        Err(e) => {
            use fastburn_learner::Error as E;
            match &e {
                E::Checkpoint { path: p, .. }
                | E::Record { path: p, .. }
                | E::Io { path: p, .. } => {
                    assert_eq!(p, path, "error names another file: {e}");
                }
                e => panic!("load_learner returned an undocumented error: {e:?}"),
            }
            learner_outcome(&e)
        }
    }
}

// ----- seeds -----------------------------------------------------------------------------

/// Seed inputs built from the current formats (the committed `corpus/` holds their output;
/// `tests/regressions.rs` checks that they are still accepted).
pub mod seeds {
    use super::*;

    /// A 4×3 PNG, a 16×16 baseline JPEG, an 8×8 grey JPEG and a 16×16 TIFF.
    pub fn images() -> Vec<(&'static str, Vec<u8>)> {
        use image::ImageEncoder;
        let rgb = image::RgbImage::from_fn(16, 16, |x, y| {
            image::Rgb([(x * 16) as u8, (y * 16) as u8, ((x + y) * 8) as u8])
        });
        let mut png = Vec::new();
        image::codecs::png::PngEncoder::new(&mut png)
            .write_image(
                &image::RgbImage::from_pixel(4, 3, image::Rgb([255, 0, 0])),
                4,
                3,
                image::ExtendedColorType::Rgb8,
            )
            .expect("PNG encodes");
        let mut jpg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpg, 80)
            .write_image(&rgb, 16, 16, image::ExtendedColorType::Rgb8)
            .expect("JPEG encodes");
        let grey = image::GrayImage::from_fn(8, 8, |x, y| image::Luma([((x ^ y) * 32) as u8]));
        let mut gjpg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut gjpg, 75)
            .write_image(&grey, 8, 8, image::ExtendedColorType::L8)
            .expect("JPEG encodes");
        let mut tif = std::io::Cursor::new(Vec::new());
        image::codecs::tiff::TiffEncoder::new(&mut tif)
            .write_image(&rgb, 16, 16, image::ExtendedColorType::Rgb8)
            .expect("TIFF encodes");
        vec![
            ("red-4x3.png", png),
            ("rgb-16.jpg", jpg),
            ("grey-8.jpg", gjpg),
            ("rgb-16.tif", tif.into_inner()),
            ("cmyk-8.jpg", cmyk_jpeg()),
        ]
    }

    /// An 8×8 four-component (Adobe CMYK) baseline JPEG, the kind Planet's chips are, written
    /// by hand: one DC-only block per component, every coefficient 0.
    pub fn cmyk_jpeg() -> Vec<u8> {
        let mut j = vec![0xFF, 0xD8];
        // APP14 "Adobe", version 100, no flags, transform 0 (CMYK, not YCCK).
        j.extend_from_slice(&[0xFF, 0xEE, 0x00, 0x0E]);
        j.extend_from_slice(b"Adobe\x00\x64\x00\x00\x00\x00\x00");
        // One quantisation table of ones.
        j.extend_from_slice(&[0xFF, 0xDB, 0x00, 0x43, 0x00]);
        j.extend_from_slice(&[1; 64]);
        // Baseline frame: 8×8, four components, no subsampling, table 0.
        j.extend_from_slice(&[0xFF, 0xC0, 0x00, 0x14, 8, 0, 8, 0, 8, 4]);
        for id in 1..=4 {
            j.extend_from_slice(&[id, 0x11, 0]);
        }
        // DC and AC Huffman tables with one 1-bit code each: DC category 0, AC end-of-block.
        for class in [0x00, 0x10] {
            j.extend_from_slice(&[0xFF, 0xC4, 0x00, 0x14, class, 1]);
            j.extend_from_slice(&[0; 15]);
            j.push(0);
        }
        j.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x0E, 4]);
        for id in 1..=4 {
            j.extend_from_slice(&[id, 0x00]);
        }
        j.extend_from_slice(&[0, 63, 0]);
        // Per component "DC 0, end of block": eight zero bits.
        j.push(0x00);
        j.extend_from_slice(&[0xFF, 0xD9]);
        j
    }

    /// Labels CSVs over the CSV target's image folder.
    pub fn csvs() -> Vec<(&'static str, Vec<u8>)> {
        vec![
            (
                "multi.csv",
                b"image_name,tags\na,clear primary\nb,haze\nc,\nimg_1,clear  water\n".to_vec(),
            ),
            ("single.csv", b"image_name,tags\na,cat\nb,dog\ninside,cat\n".to_vec()),
            (
                "problems.csv",
                b"\xEF\xBB\xBFimage_name,tags\r\na,x\r\n../a,y\r\nmissing,z\r\nescape,x\r\na,y\r\n\"b\",\"q\nr\"\r\nc,x,extra\r\n"
                    .to_vec(),
            ),
        ]
    }

    /// A checkpoint of the fixture learner in the checkpoint target's input format, its
    /// manifest's hashes replaced by the `@file` placeholders.
    pub fn checkpoint() -> Vec<u8> {
        let dir = scratch().join("seed-ckpt");
        fresh_dir(&dir);
        let saved = with_learner(true, |l| l.save_checkpoint(&dir)).expect("checkpoint saves");
        let read = |name: &str| std::fs::read(saved.join(name)).expect("checkpoint file");
        let mut manifest = read("manifest.json");
        for name in &CHECKPOINT_PARTS[1..] {
            let hash = sha256_hex(&read(name));
            manifest = replace(&manifest, hash.as_bytes(), format!("@{name}").as_bytes());
        }
        let mut out = manifest;
        for name in &CHECKPOINT_PARTS[1..] {
            out.extend_from_slice(PART_SEPARATOR);
            out.extend_from_slice(&read(name));
        }
        out
    }

    /// An export bundle of the fixture learner.
    pub fn bundle() -> Vec<u8> {
        let path = scratch().join("seed.fastburn");
        with_learner(true, |l| l.export(&path)).expect("bundle exports");
        std::fs::read(&path).expect("bundle file")
    }

    /// Every seed of `target`, named.
    pub fn of(target: Target) -> Vec<(String, Vec<u8>)> {
        let named =
            |v: Vec<(&str, Vec<u8>)>| v.into_iter().map(|(n, b)| (n.to_string(), b)).collect();
        match target {
            Target::DecodeImage => named(images()),
            Target::ParseCsv => named(csvs()),
            Target::LoadCheckpoint => vec![("checkpoint.bin".to_string(), checkpoint())],
            Target::LoadBundle => vec![("bundle.fastburn".to_string(), bundle())],
        }
    }
}
