//! Items: image paths with their labels, read from a Planet-style CSV, an ImageNet-style
//! folder tree, or an unlabelled test folder.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::config::Config;
use serde::{Deserialize, Serialize};

use crate::error::{CsvProblemKind, CsvProblems, Error, FolderProblem, Result, UnsafeName};
use crate::split::Split;

/// The sorted class vocabulary of a dataset.
///
/// Classes are sorted (byte order) and unique; a class's index is its position. The
/// vocabulary is taken from **all** rows of a dataset, training and validation alike, so a tag
/// that only occurs in validation rows still has an index.
///
/// # Example
/// ```
/// use fastburn_data::Vocab;
/// let vocab = Vocab::new(["water", "clear", "primary", "clear"]);
/// assert_eq!(vocab.classes(), &["clear", "primary", "water"]);
/// assert_eq!(vocab.index_of("primary"), Some(1));
/// assert_eq!(vocab.multi_hot(&[0, 2]), vec![1.0, 0.0, 1.0]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(from = "Vec<String>", into = "Vec<String>")]
pub struct Vocab {
    classes: Vec<String>,
    index: HashMap<String, usize>,
}

impl From<Vec<String>> for Vocab {
    fn from(classes: Vec<String>) -> Self {
        Vocab::new(classes)
    }
}

impl From<Vocab> for Vec<String> {
    fn from(v: Vocab) -> Self {
        v.classes
    }
}

impl Vocab {
    /// Builds a sorted, de-duplicated vocabulary from any class names.
    pub fn new<I, S>(classes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut classes: Vec<String> = classes.into_iter().map(Into::into).collect();
        classes.sort();
        classes.dedup();
        let index = classes
            .iter()
            .enumerate()
            .map(|(i, c)| (c.clone(), i))
            .collect();
        Vocab { classes, index }
    }

    /// The classes, sorted.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// Number of classes.
    pub fn len(&self) -> usize {
        self.classes.len()
    }

    /// True when there is no class.
    pub fn is_empty(&self) -> bool {
        self.classes.is_empty()
    }

    /// The index of a class, if it is in the vocabulary.
    pub fn index_of(&self, class: &str) -> Option<usize> {
        self.index.get(class).copied()
    }

    /// The class at an index.
    ///
    /// # Panics
    /// When `index >= self.len()`.
    pub fn class(&self, index: usize) -> &str {
        &self.classes[index]
    }

    /// Multi-hot encoding of a set of class indices (`1.0` at each index, `0.0` elsewhere).
    ///
    /// # Panics
    /// When an index is `>= self.len()`.
    pub fn multi_hot(&self, labels: &[usize]) -> Vec<f32> {
        let mut v = vec![0.0; self.len()];
        for &l in labels {
            v[l] = 1.0;
        }
        v
    }

    /// The names of a set of class indices, joined by a space (the Planet `tags` format).
    pub fn tags(&self, labels: &[usize]) -> String {
        labels
            .iter()
            .map(|&l| self.classes[l].as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Whether each image has exactly one label (softmax) or any number (sigmoid).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Task {
    /// Exactly one class per image: softmax + cross-entropy, class-index targets.
    SingleLabel,
    /// Any number of classes per image: sigmoid + binary cross-entropy, multi-hot targets.
    MultiLabel,
}

/// How to decide the [`Task`] of a labelled dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum LabelKind {
    /// fastai 0.7's rule: single-label when every row has exactly one tag, else multi-label.
    #[default]
    Auto,
    /// Force single-label; a row without exactly one tag is an error naming its line.
    Single,
    /// Force multi-label.
    Multi,
}

impl LabelKind {
    /// Resolves the task for a set of label counts per row.
    ///
    /// ```
    /// use fastburn_data::{LabelKind, Task};
    /// assert_eq!(LabelKind::Auto.resolve([1, 1, 1]), Task::SingleLabel);
    /// assert_eq!(LabelKind::Auto.resolve([1, 2, 1]), Task::MultiLabel);
    /// assert_eq!(LabelKind::Auto.resolve([1, 0]), Task::MultiLabel);
    /// assert_eq!(LabelKind::Multi.resolve([1, 1]), Task::MultiLabel);
    /// ```
    pub fn resolve(self, counts: impl IntoIterator<Item = usize>) -> Task {
        match self {
            LabelKind::Single => Task::SingleLabel,
            LabelKind::Multi => Task::MultiLabel,
            LabelKind::Auto => {
                let mut any = false;
                for c in counts {
                    any = true;
                    if c != 1 {
                        return Task::MultiLabel;
                    }
                }
                if any {
                    Task::SingleLabel
                } else {
                    Task::MultiLabel
                }
            }
        }
    }
}

/// One image and its labels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// The image's name (Planet's `image_name`: file name without suffix).
    pub name: String,
    /// The image file.
    pub path: PathBuf,
    /// Class indices into the dataset's [`Vocab`], ascending; empty for unlabelled items.
    pub labels: Vec<usize>,
    /// The CSV line the item came from, when it came from a CSV.
    pub line: Option<u64>,
}

/// Items with their vocabulary and task: the labelled (or unlabelled) contents of a dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemList {
    /// The items, in file (CSV row or sorted path) order.
    pub items: Vec<Item>,
    /// The sorted class vocabulary of all rows.
    pub vocab: Vocab,
    /// Single- or multi-label.
    pub task: Task,
}

/// Where and how to read a Planet-style labels CSV (`image_name,tags`).
#[derive(Config, Debug)]
pub struct CsvConfig {
    /// The labels file (`train_v2.csv`, `labels.csv`).
    pub csv: PathBuf,
    /// The folder holding the images (`train-jpg`).
    pub images: PathBuf,
    /// Suffix appended to each name to make its file name.
    #[config(default = "\".jpg\".to_string()")]
    pub suffix: String,
    /// Single-/multi-label decision.
    #[config(default = "LabelKind::Auto")]
    pub label_kind: LabelKind,
    /// The column holding image names.
    #[config(default = "\"image_name\".to_string()")]
    pub name_column: String,
    /// The column holding space-separated tags.
    #[config(default = "\"tags\".to_string()")]
    pub tags_column: String,
    /// Check that each row's image exists (and is not a symbolic link leaving the folder).
    #[config(default = true)]
    pub check_files: bool,
}

impl CsvConfig {
    /// Reads the CSV. See [`ItemList::from_csv`].
    ///
    /// # Errors
    /// As [`ItemList::from_csv`].
    pub fn load(&self) -> Result<ItemList> {
        ItemList::from_csv(self)
    }
}

/// Checks an image name read from a CSV: it must name a file directly inside the image
/// folder.
pub(crate) fn check_name(name: &str) -> std::result::Result<(), CsvProblemKind> {
    if name.is_empty() {
        return Err(CsvProblemKind::EmptyName);
    }
    let unsafe_name = |reason| {
        Err(CsvProblemKind::UnsafeName {
            name: name.to_string(),
            reason,
        })
    };
    if name.chars().any(char::is_control) {
        return unsafe_name(UnsafeName::Control);
    }
    if name.starts_with('/') || name.starts_with('\\') || Path::new(name).is_absolute() {
        return unsafe_name(UnsafeName::Absolute);
    }
    let b = name.as_bytes();
    if b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':' {
        return unsafe_name(UnsafeName::Absolute);
    }
    if name == ".." || name.split(['/', '\\']).any(|c| c == "..") {
        return unsafe_name(UnsafeName::ParentDir);
    }
    if name.contains(['/', '\\']) {
        return unsafe_name(UnsafeName::Separator);
    }
    Ok(())
}

/// Checks that `path` (a file directly inside `root`) exists and, when it is a symbolic
/// link, that it resolves inside `root`.
pub(crate) fn check_file_in(
    path: &Path,
    root_canonical: Option<&Path>,
) -> std::result::Result<(), CsvProblemKind> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(_) => {
            return Err(CsvProblemKind::MissingImage {
                path: path.to_path_buf(),
            });
        }
    };
    if meta.file_type().is_symlink() {
        let target = match std::fs::canonicalize(path) {
            Ok(t) => t,
            Err(_) => {
                return Err(CsvProblemKind::MissingImage {
                    path: path.to_path_buf(),
                });
            }
        };
        if let Some(root) = root_canonical
            && !target.starts_with(root)
        {
            return Err(CsvProblemKind::SymlinkEscapes {
                path: path.to_path_buf(),
                target,
            });
        }
        if !target.is_file() {
            return Err(CsvProblemKind::MissingImage {
                path: path.to_path_buf(),
            });
        }
    } else if !meta.is_file() {
        return Err(CsvProblemKind::MissingImage {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// Strips a UTF-8 byte-order mark.
fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(bytes)
}

/// Splits a tags cell on runs of whitespace: never an empty tag, and an empty cell is an
/// empty set.
///
/// ```
/// assert_eq!(fastburn_data::split_tags("  clear \t primary  "), vec!["clear", "primary"]);
/// assert!(fastburn_data::split_tags("   ").is_empty());
/// ```
pub fn split_tags(cell: &str) -> Vec<&str> {
    cell.split_whitespace().collect()
}

/// A CSV row that passed the checks.
pub(crate) struct Row {
    pub(crate) line: u64,
    pub(crate) name: String,
    pub(crate) tags: Vec<String>,
}

/// Reads and checks every row; rows with problems are left out and their problems listed.
/// Largest labels CSV read (1 GiB; Planet's `train_v2.csv` is 1.4 MB), checked before reading.
pub const MAX_CSV_BYTES: u64 = 1 << 30;

pub(crate) fn read_rows(cfg: &CsvConfig) -> Result<(Vec<Row>, CsvProblems)> {
    let bytes = fastburn_fsio::read_capped(&cfg.csv, MAX_CSV_BYTES).map_err(|e| match e {
        fastburn_fsio::ReadError::Io(e) => Error::io(&cfg.csv, e),
        fastburn_fsio::ReadError::TooLarge { size, limit } => Error::FileTooLarge {
            path: cfg.csv.clone(),
            size,
            limit,
        },
    })?;
    let root_canonical = std::fs::canonicalize(&cfg.images).ok();
    let mut problems = CsvProblems::default();
    let rows = parse_rows(&bytes, cfg, root_canonical.as_deref(), &mut problems);
    if cfg.label_kind == LabelKind::Single {
        for r in &rows {
            if r.tags.len() != 1 {
                problems.push(
                    r.line,
                    CsvProblemKind::NotSingleLabel { tags: r.tags.len() },
                );
            }
        }
    }
    problems.sort();
    Ok((rows, problems))
}

impl ItemList {
    /// Reads a Planet-style labels CSV (`image_name,tags`; tags separated by whitespace).
    ///
    /// A UTF-8 byte-order mark, CRLF and LF line ends give identical results; runs of
    /// whitespace never create an empty tag; an empty tags cell is an empty label set. The
    /// vocabulary is the sorted set of all tags of all rows.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be read; [`Error::Csv`] listing **every** problem
    /// (capped at [`CsvProblems::CAP`]) with its line: missing columns, wrong field counts,
    /// invalid UTF-8, empty / unsafe (`/`, `..`, absolute) / duplicate names, missing image
    /// files, symbolic links out of the image folder, and — when single-label is forced — rows
    /// without exactly one tag; [`Error::NoClasses`] when no row carries a tag.
    ///
    /// # Example
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # std::fs::create_dir(dir.path().join("img")).unwrap();
    /// # for n in ["a", "b"] { std::fs::write(dir.path().join("img").join(format!("{n}.jpg")), b"").unwrap(); }
    /// std::fs::write(dir.path().join("labels.csv"), "image_name,tags\na,clear primary\nb,haze\n")?;
    /// let cfg = fastburn_data::CsvConfig::new(dir.path().join("labels.csv"), dir.path().join("img"));
    /// let list = fastburn_data::ItemList::from_csv(&cfg)?;
    /// assert_eq!(list.vocab.classes(), &["clear", "haze", "primary"]);
    /// assert_eq!(list.items[0].labels, vec![0, 2]);
    /// assert_eq!(list.task, fastburn_data::Task::MultiLabel);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_csv(cfg: &CsvConfig) -> Result<ItemList> {
        let (rows, problems) = read_rows(cfg)?;
        if !problems.is_empty() {
            return Err(Error::Csv {
                path: cfg.csv.clone(),
                problems,
            });
        }

        let vocab = Vocab::new(rows.iter().flat_map(|r| r.tags.iter().cloned()));
        if vocab.is_empty() {
            return Err(Error::NoClasses {
                path: cfg.csv.clone(),
                rows: rows.len(),
            });
        }
        let task = cfg.label_kind.resolve(rows.iter().map(|r| r.tags.len()));
        let items = rows
            .into_iter()
            .map(|r| {
                let mut labels: Vec<usize> = r
                    .tags
                    .iter()
                    .map(|t| vocab.index_of(t).expect("tag is in the vocabulary"))
                    .collect();
                labels.sort_unstable();
                labels.dedup();
                Item {
                    path: cfg.images.join(format!("{}{}", r.name, cfg.suffix)),
                    name: r.name,
                    labels,
                    line: Some(r.line),
                }
            })
            .collect();
        Ok(ItemList { items, vocab, task })
    }

    /// Reads an ImageNet-style folder tree: `root/train/<class>/*` and `root/valid/<class>/*`
    /// (images found recursively below each class folder, by extension, sorted by path).
    /// Returns the items of both folders and the split the folders define. The vocabulary is
    /// the sorted union of the class folders of both.
    ///
    /// # Errors
    /// [`Error::Folder`] when `train` is missing, a class name is not UTF-8, or a symbolic
    /// link leaves `root`; [`Error::NoImages`] when no image is found; [`Error::Io`] on read
    /// errors.
    ///
    /// # Example
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// for (split, class, file) in [("train", "cat", "1.jpg"), ("train", "dog", "2.png"), ("valid", "dog", "3.jpg")] {
    ///     let d = dir.path().join(split).join(class);
    ///     std::fs::create_dir_all(&d)?;
    ///     std::fs::write(d.join(file), b"")?;
    /// }
    /// let (list, split) = fastburn_data::ItemList::from_folder(dir.path(), "train", "valid")?;
    /// assert_eq!(list.vocab.classes(), &["cat", "dog"]);
    /// assert_eq!(list.task, fastburn_data::Task::SingleLabel);
    /// assert_eq!((split.train.len(), split.valid.len()), (2, 1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_folder(
        root: impl AsRef<Path>,
        train: &str,
        valid: &str,
    ) -> Result<(ItemList, Split)> {
        let root = root.as_ref();
        let root_canonical = std::fs::canonicalize(root).map_err(|e| Error::io(root, e))?;
        let train_dir = root.join(train);
        if !train_dir.is_dir() {
            return Err(Error::Folder {
                path: root.to_path_buf(),
                reason: FolderProblem::MissingSplit(if train == "train" {
                    "train"
                } else {
                    "train (as configured)"
                }),
            });
        }
        let valid_dir = root.join(valid);
        let mut per_split: Vec<Vec<(String, PathBuf)>> = Vec::new();
        for dir in [&train_dir, &valid_dir] {
            let mut found = Vec::new();
            if dir.is_dir() {
                for class_dir in sorted_entries(dir)? {
                    if !class_dir.is_dir() {
                        continue;
                    }
                    check_inside(&class_dir, &root_canonical)?;
                    let class = class_dir
                        .file_name()
                        .and_then(|n| n.to_str())
                        .ok_or_else(|| Error::Folder {
                            path: class_dir.clone(),
                            reason: FolderProblem::NonUtf8Name,
                        })?
                        .to_string();
                    let mut files = Vec::new();
                    collect_images(&class_dir, &root_canonical, &mut files)?;
                    found.extend(files.into_iter().map(|f| (class.clone(), f)));
                }
            }
            per_split.push(found);
        }
        let vocab = Vocab::new(per_split.iter().flatten().map(|(c, _)| c.clone()));
        if per_split.iter().all(Vec::is_empty) {
            return Err(Error::NoImages {
                path: root.to_path_buf(),
                looked_for: "train/<class>/* and valid/<class>/* image files",
            });
        }
        let mut items = Vec::new();
        let mut train_idx = Vec::new();
        let mut valid_idx = Vec::new();
        for (s, found) in per_split.into_iter().enumerate() {
            for (class, path) in found {
                let idx = items.len();
                if s == 0 {
                    train_idx.push(idx);
                } else {
                    valid_idx.push(idx);
                }
                items.push(Item {
                    name: file_stem(&path),
                    labels: vec![vocab.index_of(&class).expect("class is in vocab")],
                    path,
                    line: None,
                });
            }
        }
        let list = ItemList {
            items,
            vocab,
            task: Task::SingleLabel,
        };
        Ok((
            list,
            Split {
                train: train_idx,
                valid: valid_idx,
            },
        ))
    }

    /// Lists an unlabelled folder of images (Planet's `test-jpg`), sorted by file name, with
    /// the training vocabulary and task so that predictions can be named.
    ///
    /// # Errors
    /// [`Error::NoImages`] when the folder holds no image; [`Error::Io`] on read errors;
    /// [`Error::Folder`] for symbolic links leaving the folder, or two images with one name
    /// (file stem), which would give two submission rows.
    pub fn from_test_folder(dir: impl AsRef<Path>, vocab: &Vocab, task: Task) -> Result<ItemList> {
        let dir = dir.as_ref();
        let root_canonical = std::fs::canonicalize(dir).map_err(|e| Error::io(dir, e))?;
        let mut files = Vec::new();
        collect_images(dir, &root_canonical, &mut files)?;
        if files.is_empty() {
            return Err(Error::NoImages {
                path: dir.to_path_buf(),
                looked_for: "image files (.jpg, .jpeg, .png, .tif, .tiff)",
            });
        }
        // A submission has one row per image name (the file stem): two files with one stem
        // (`a.jpg` and `a.png`, or `x/1.jpg` and `y/1.jpg`) would give two rows.
        let mut seen: HashMap<String, PathBuf> = HashMap::new();
        let mut items = Vec::with_capacity(files.len());
        for path in files {
            let name = file_stem(&path);
            if let Some(first) = seen.get(&name) {
                return Err(Error::Folder {
                    path: dir.to_path_buf(),
                    reason: FolderProblem::DuplicateStem {
                        name,
                        first: first.clone(),
                        second: path,
                    },
                });
            }
            seen.insert(name.clone(), path.clone());
            items.push(Item {
                name,
                path,
                labels: Vec::new(),
                line: None,
            });
        }
        Ok(ItemList {
            items,
            vocab: vocab.clone(),
            task,
        })
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when there is no item.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The items at the given indices (e.g. one side of a [`Split`]), with the same vocabulary
    /// and task.
    ///
    /// # Panics
    /// When an index is out of range.
    pub fn subset(&self, indices: &[usize]) -> ItemList {
        ItemList {
            items: indices.iter().map(|&i| self.items[i].clone()).collect(),
            vocab: self.vocab.clone(),
            task: self.task,
        }
    }

    /// How many items carry each class, in vocabulary order.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.vocab.len()];
        for it in &self.items {
            for &l in &it.labels {
                counts[l] += 1;
            }
        }
        counts
    }
}

/// 1-based line numbers of CSV records, counted from their byte offsets.
///
/// The CSV reader's own `Position::line` is where it began reading a record: before the `\n`
/// of a CRLF line end and before skipped blank lines, so every row of a CRLF file came out
/// one line early (found by the `parse_csv` fuzz target's CRLF-equals-LF check). A line
/// ends at `\n`, `\r\n` or a lone `\r`, the reader's record terminators.
struct LineCounter<'a> {
    bytes: &'a [u8],
    /// Offset counted up to, and the line there.
    at: usize,
    line: u64,
}

impl<'a> LineCounter<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        LineCounter {
            bytes,
            at: 0,
            line: 1,
        }
    }

    /// The line of the record the reader reports at byte `offset`: the line of the first byte
    /// from there that is not a line end. Offsets come in increasing order; an earlier one
    /// is counted from the start.
    fn line_at(&mut self, offset: u64) -> u64 {
        let b = self.bytes;
        let mut start = usize::try_from(offset).map_or(b.len(), |o| o.min(b.len()));
        while start < b.len() && matches!(b[start], b'\r' | b'\n') {
            start += 1;
        }
        if start < self.at {
            (self.at, self.line) = (0, 1);
        }
        let at = self.at;
        let ends = b[at..start]
            .iter()
            .enumerate()
            .filter(|&(i, &c)| c == b'\n' || (c == b'\r' && b.get(at + i + 1) != Some(&b'\n')))
            .count();
        self.line += ends as u64;
        self.at = start;
        self.line
    }
}

fn parse_rows(
    bytes: &[u8],
    cfg: &CsvConfig,
    root_canonical: Option<&Path>,
    problems: &mut CsvProblems,
) -> Vec<Row> {
    let body = strip_bom(bytes);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(body);
    let mut lines = LineCounter::new(body);
    let mut records = reader.byte_records();
    let header = match records.next() {
        None => {
            problems.push(1, CsvProblemKind::Empty);
            return Vec::new();
        }
        Some(Err(e)) => {
            problems.push(
                1,
                CsvProblemKind::Read {
                    message: e.to_string(),
                },
            );
            return Vec::new();
        }
        Some(Ok(h)) => h,
    };
    let header_line = header.position().map_or(1, |p| lines.line_at(p.byte()));
    let mut columns = Vec::with_capacity(header.len());
    for (i, f) in header.iter().enumerate() {
        match std::str::from_utf8(f) {
            Ok(s) => columns.push(s.trim().to_string()),
            Err(_) => {
                problems.push(header_line, CsvProblemKind::InvalidUtf8 { column: i });
                columns.push(String::new());
            }
        }
    }
    let find = |name: &str| columns.iter().position(|c| c == name);
    let (name_col, tags_col) = (find(&cfg.name_column), find(&cfg.tags_column));
    for (col, found) in [(&cfg.name_column, name_col), (&cfg.tags_column, tags_col)] {
        if found.is_none() {
            problems.push(
                header_line,
                CsvProblemKind::MissingColumn {
                    column: col.clone(),
                    found: columns.clone(),
                },
            );
        }
    }
    let (Some(name_col), Some(tags_col)) = (name_col, tags_col) else {
        return Vec::new();
    };

    let mut rows = Vec::new();
    let mut first_seen: HashMap<String, u64> = HashMap::new();
    // The line of the last record read: an error without a position (an I/O error) is
    // reported on the line after it, never as "line 0".
    let mut last_line = header_line;
    for rec in records {
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                let line = e
                    .position()
                    .map_or(last_line + 1, |p| lines.line_at(p.byte()));
                let io = matches!(e.kind(), csv::ErrorKind::Io(_));
                problems.push(
                    line,
                    CsvProblemKind::Read {
                        message: e.to_string(),
                    },
                );
                if io {
                    // The rest of the file cannot be read.
                    break;
                }
                continue;
            }
        };
        let line = rec
            .position()
            .map_or(last_line + 1, |p| lines.line_at(p.byte()));
        last_line = line;
        // A blank line is skipped by the CSV reader; a line of only whitespace is one field.
        if rec.len() == 1 && rec[0].iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if rec.len() != columns.len() {
            problems.push(
                line,
                CsvProblemKind::FieldCount {
                    expected: columns.len(),
                    got: rec.len(),
                },
            );
            continue;
        }
        let mut fields = Vec::with_capacity(rec.len());
        let mut bad = false;
        for (i, f) in rec.iter().enumerate() {
            match std::str::from_utf8(f) {
                Ok(s) => fields.push(s),
                Err(_) => {
                    problems.push(line, CsvProblemKind::InvalidUtf8 { column: i });
                    bad = true;
                    fields.push("");
                }
            }
        }
        if bad {
            continue;
        }
        let name = fields[name_col].trim();
        if let Err(kind) = check_name(name) {
            problems.push(line, kind);
            continue;
        }
        if let Some(&first_line) = first_seen.get(name) {
            problems.push(
                line,
                CsvProblemKind::DuplicateName {
                    name: name.to_string(),
                    first_line,
                },
            );
            continue;
        }
        first_seen.insert(name.to_string(), line);
        if cfg.check_files {
            let path = cfg.images.join(format!("{name}{}", cfg.suffix));
            if let Err(kind) = check_file_in(&path, root_canonical) {
                problems.push(line, kind);
                continue;
            }
        }
        rows.push(Row {
            line,
            name: name.to_string(),
            tags: split_tags(fields[tags_col])
                .into_iter()
                .map(str::to_string)
                .collect(),
        });
    }
    rows
}

/// The file extensions treated as images when listing folders.
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "tif", "tiff"];

fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

fn file_stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        out.push(e.map_err(|e| Error::io(dir, e))?.path());
    }
    out.sort();
    Ok(out)
}

fn check_inside(path: &Path, root_canonical: &Path) -> Result<()> {
    let is_link = std::fs::symlink_metadata(path)
        .map(|m| m.file_type().is_symlink())
        .unwrap_or(false);
    if is_link {
        let target = std::fs::canonicalize(path).map_err(|e| Error::io(path, e))?;
        if !target.starts_with(root_canonical) {
            return Err(Error::Folder {
                path: path.to_path_buf(),
                reason: FolderProblem::SymlinkEscapes(target),
            });
        }
    }
    Ok(())
}

/// Collects image files below `dir` recursively, sorted by path.
fn collect_images(dir: &Path, root_canonical: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for p in sorted_entries(dir)? {
        check_inside(&p, root_canonical)?;
        // Recurse into real folders only: a linked folder could form a cycle.
        let real_dir = std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir());
        if real_dir {
            collect_images(&p, root_canonical, out)?;
        } else if p.is_file() && has_image_extension(&p) {
            out.push(p);
        }
    }
    Ok(())
}
