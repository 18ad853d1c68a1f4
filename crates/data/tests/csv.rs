//! Labels CSV: layouts, line endings, vocabulary, task detection, and every problem reported
//! with its line (reliability goals 7–10).

use std::path::{Path, PathBuf};

use fastburn_data::{
    CsvConfig, CsvProblemKind, Error, ItemList, LabelKind, Task, UnsafeName, Vocab,
};

/// A temp dir with an image folder holding empty files for `names`.
fn setup(names: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("train-jpg");
    std::fs::create_dir(&img).unwrap();
    for n in names {
        std::fs::write(img.join(format!("{n}.jpg")), b"x").unwrap();
    }
    (dir, img)
}

fn load(dir: &Path, img: &Path, csv: &[u8]) -> Result<ItemList, Error> {
    let p = dir.join("labels.csv");
    std::fs::write(&p, csv).unwrap();
    CsvConfig::new(p, img.to_path_buf()).load()
}

fn problems(r: Result<ItemList, Error>) -> Vec<(u64, CsvProblemKind)> {
    match r {
        Err(Error::Csv { problems, .. }) => problems
            .list
            .into_iter()
            .map(|p| (p.line, p.kind))
            .collect(),
        other => panic!("expected a CSV error, got {other:?}"),
    }
}

#[test]
fn bom_crlf_and_lf_parse_identically() {
    let (dir, img) = setup(&["a", "b", "c"]);
    let lf = b"image_name,tags\na,clear primary\nb,haze\nc,\n".to_vec();
    let crlf = b"image_name,tags\r\na,clear primary\r\nb,haze\r\nc,\r\n".to_vec();
    let mut bom = vec![0xEF, 0xBB, 0xBF];
    bom.extend_from_slice(&crlf);
    let a = load(dir.path(), &img, &lf).unwrap();
    let b = load(dir.path(), &img, &crlf).unwrap();
    let c = load(dir.path(), &img, &bom).unwrap();
    let strip = |l: ItemList| {
        l.items
            .into_iter()
            .map(|i| (i.name, i.labels))
            .collect::<Vec<_>>()
    };
    assert_eq!(a.vocab, b.vocab);
    assert_eq!(a.vocab, c.vocab);
    assert_eq!(a.vocab.classes(), &["clear", "haze", "primary"]);
    assert!(!a.vocab.classes().iter().any(|t| t.contains('\r')));
    let sa = strip(a);
    assert_eq!(sa, strip(b));
    assert_eq!(sa, strip(c));
}

#[test]
fn whitespace_runs_never_make_empty_tags_and_empty_cell_is_empty_set() {
    let (dir, img) = setup(&["a", "b", "c"]);
    let list = load(
        dir.path(),
        &img,
        b"image_name,tags\na,  clear \t  primary  \nb,   \nc,\n",
    )
    .unwrap();
    assert_eq!(list.vocab.classes(), &["clear", "primary"]);
    assert_eq!(list.items[0].labels, vec![0, 1]);
    assert!(list.items[1].labels.is_empty());
    assert!(list.items[2].labels.is_empty());
    assert_eq!(list.task, Task::MultiLabel);
}

#[test]
fn vocab_is_sorted_and_taken_from_all_rows() {
    let (dir, img) = setup(&["a", "b", "c", "d", "e"]);
    let list = load(
        dir.path(),
        &img,
        b"image_name,tags\na,water\nb,clear\nc,clear\nd,clear\ne,blow_down\n",
    )
    .unwrap();
    assert_eq!(list.vocab.classes(), &["blow_down", "clear", "water"]);
    // A tag seen in one row only (whichever side of a split it lands) has an index.
    let split = fastburn_data::Split::from_valid_indices(5, &[4]).unwrap();
    let valid = list.subset(&split.valid);
    assert_eq!(valid.items[0].labels, vec![0]);
    assert_eq!(valid.vocab.len(), 3);
}

#[test]
fn single_label_detection_follows_fastai_07() {
    let (dir, img) = setup(&["a", "b"]);
    let single = load(dir.path(), &img, b"image_name,tags\na,cat\nb,dog\n").unwrap();
    assert_eq!(single.task, Task::SingleLabel);
    let multi = load(dir.path(), &img, b"image_name,tags\na,cat dog\nb,dog\n").unwrap();
    assert_eq!(multi.task, Task::MultiLabel);
    // Override.
    let p = dir.path().join("labels.csv");
    std::fs::write(&p, b"image_name,tags\na,cat\nb,dog\n").unwrap();
    let forced = CsvConfig::new(p.clone(), img.clone())
        .with_label_kind(LabelKind::Multi)
        .load()
        .unwrap();
    assert_eq!(forced.task, Task::MultiLabel);
    std::fs::write(&p, b"image_name,tags\na,cat dog\nb,\n").unwrap();
    let err = CsvConfig::new(p, img)
        .with_label_kind(LabelKind::Single)
        .load();
    assert_eq!(
        problems(err),
        vec![
            (2, CsvProblemKind::NotSingleLabel { tags: 2 }),
            (3, CsvProblemKind::NotSingleLabel { tags: 0 })
        ]
    );
}

#[test]
fn paths_follow_the_planet_layout() {
    let (dir, img) = setup(&["train_0"]);
    let list = load(dir.path(), &img, b"image_name,tags\ntrain_0,clear\n").unwrap();
    assert_eq!(list.items[0].path, img.join("train_0.jpg"));
    assert_eq!(list.items[0].line, Some(2));
    // Another suffix.
    std::fs::write(img.join("x.png"), b"x").unwrap();
    let p = dir.path().join("l.csv");
    std::fs::write(&p, "image_name,tags\nx,a\n").unwrap();
    let list = CsvConfig::new(p, img.clone())
        .with_suffix(".png".into())
        .load()
        .unwrap();
    assert_eq!(list.items[0].path, img.join("x.png"));
}

#[test]
fn every_problem_is_reported_together_with_its_line() {
    let (dir, img) = setup(&["ok", "dup", "two"]);
    let mut csv = b"image_name,tags\n".to_vec();
    csv.extend_from_slice(b"ok,clear\n"); // 2: fine
    csv.extend_from_slice(b"dup,clear\n"); // 3: fine (first)
    csv.extend_from_slice(b"dup,haze\n"); // 4: duplicate
    csv.extend_from_slice(b"two,a,b\n"); // 5: field count
    csv.extend_from_slice(b"../etc/passwd,a\n"); // 6: parent dir
    csv.extend_from_slice(b"/abs,a\n"); // 7: absolute
    csv.extend_from_slice(b"sub/x,a\n"); // 8: separator
    csv.extend_from_slice(b"missing,a\n"); // 9: no file
    csv.extend_from_slice(b"bad\xff\xfe,a\n"); // 10: invalid UTF-8
    csv.extend_from_slice(b",a\n"); // 11: empty name
    csv.extend_from_slice(b"..,a\n"); // 12: parent dir
    let p = problems(load(dir.path(), &img, &csv));
    let lines: Vec<u64> = p.iter().map(|(l, _)| *l).collect();
    assert_eq!(lines, vec![4, 5, 6, 7, 8, 9, 10, 11, 12], "{p:#?}");
    assert!(matches!(
        &p[0].1,
        CsvProblemKind::DuplicateName { first_line: 3, .. }
    ));
    assert_eq!(
        p[1].1,
        CsvProblemKind::FieldCount {
            expected: 2,
            got: 3
        }
    );
    assert!(matches!(
        &p[2].1,
        CsvProblemKind::UnsafeName {
            reason: UnsafeName::ParentDir,
            ..
        }
    ));
    assert!(matches!(
        &p[3].1,
        CsvProblemKind::UnsafeName {
            reason: UnsafeName::Absolute,
            ..
        }
    ));
    assert!(matches!(
        &p[4].1,
        CsvProblemKind::UnsafeName {
            reason: UnsafeName::Separator,
            ..
        }
    ));
    assert!(
        matches!(&p[5].1, CsvProblemKind::MissingImage { path } if path.ends_with("missing.jpg"))
    );
    assert_eq!(p[6].1, CsvProblemKind::InvalidUtf8 { column: 0 });
    assert_eq!(p[7].1, CsvProblemKind::EmptyName);
    assert!(matches!(
        &p[8].1,
        CsvProblemKind::UnsafeName {
            reason: UnsafeName::ParentDir,
            ..
        }
    ));
}

#[test]
fn the_error_message_names_the_file_and_each_line() {
    let (dir, img) = setup(&[]);
    let err = load(dir.path(), &img, b"image_name,tags\nnope,a\n").unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("labels.csv"), "{msg}");
    assert!(msg.contains("line 2"), "{msg}");
    assert!(msg.contains("nope.jpg"), "{msg}");
    assert_eq!(err.path(), Some(dir.path().join("labels.csv").as_path()));
}

#[test]
fn missing_columns_and_empty_files() {
    let (dir, img) = setup(&["a"]);
    let p = problems(load(dir.path(), &img, b"name,labels\na,b\n"));
    assert_eq!(p.len(), 2);
    assert!(
        matches!(&p[0].1, CsvProblemKind::MissingColumn { column, .. } if column == "image_name")
    );
    assert!(matches!(&p[1].1, CsvProblemKind::MissingColumn { column, .. } if column == "tags"));
    assert_eq!(
        problems(load(dir.path(), &img, b"")),
        vec![(1, CsvProblemKind::Empty)]
    );
    // Header only: no rows, so no class to learn — a typed error naming the file.
    assert!(matches!(
        load(dir.path(), &img, b"image_name,tags\n"),
        Err(Error::NoClasses { rows: 0, .. })
    ));
    // Invalid UTF-8 in the header.
    let p = problems(load(dir.path(), &img, b"image_name,ta\xffgs\na,b\n"));
    assert!(p.contains(&(1, CsvProblemKind::InvalidUtf8 { column: 1 })));
}

#[test]
fn columns_may_come_in_any_order_with_extra_columns() {
    let (dir, img) = setup(&["a"]);
    let list = load(dir.path(), &img, b"tags,extra,image_name\nhaze clear,x,a\n").unwrap();
    assert_eq!(list.items[0].name, "a");
    assert_eq!(list.vocab.classes(), &["clear", "haze"]);
}

#[test]
fn problems_are_capped_but_counted() {
    let (dir, img) = setup(&[]);
    let mut csv = String::from("image_name,tags\n");
    for i in 0..1500 {
        csv.push_str(&format!("m{i},a\n"));
    }
    match load(dir.path(), &img, csv.as_bytes()) {
        Err(Error::Csv { problems, .. }) => {
            assert_eq!(problems.list.len(), fastburn_data::CsvProblems::CAP);
            assert_eq!(problems.total(), 1500);
            assert!(problems.to_string().contains("and 500 more"));
        }
        other => panic!("{other:?}"),
    }
}

#[cfg(unix)]
#[test]
fn symlinks_out_of_the_image_folder_are_rejected() {
    let (dir, img) = setup(&["inside"]);
    let outside = dir.path().join("secret.jpg");
    std::fs::write(&outside, b"x").unwrap();
    std::os::unix::fs::symlink(&outside, img.join("escape.jpg")).unwrap();
    std::os::unix::fs::symlink(img.join("inside.jpg"), img.join("alias.jpg")).unwrap();
    let p = problems(load(
        dir.path(),
        &img,
        b"image_name,tags\ninside,a\nescape,a\nalias,a\n",
    ));
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].0, 3);
    assert!(matches!(&p[0].1, CsvProblemKind::SymlinkEscapes { .. }));
}

#[test]
fn folder_layout_and_test_folder() {
    let dir = tempfile::tempdir().unwrap();
    for (split, class, file) in [
        ("train", "cat", "1.jpg"),
        ("train", "cat", "2.JPG"),
        ("train", "dog", "3.png"),
        ("train", "dog", "notes.txt"),
        ("valid", "cat", "4.jpg"),
        ("valid", "zebra", "5.jpg"),
    ] {
        let d = dir.path().join(split).join(class);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(file), b"x").unwrap();
    }
    let (list, split) = ItemList::from_folder(dir.path(), "train", "valid").unwrap();
    // A class only present in `valid` is in the vocabulary.
    assert_eq!(list.vocab.classes(), &["cat", "dog", "zebra"]);
    assert_eq!(list.len(), 5);
    assert_eq!(split.train, vec![0, 1, 2]);
    assert_eq!(split.valid, vec![3, 4]);
    assert_eq!(list.items[4].labels, vec![2]);
    assert_eq!(list.task, Task::SingleLabel);

    let missing = ItemList::from_folder(dir.path(), "nope", "valid").unwrap_err();
    assert!(matches!(missing, Error::Folder { .. }), "{missing}");

    let test =
        ItemList::from_test_folder(dir.path().join("valid"), &list.vocab, list.task).unwrap();
    assert_eq!(
        test.items
            .iter()
            .map(|i| i.name.as_str())
            .collect::<Vec<_>>(),
        vec!["4", "5"]
    );
    assert!(test.items.iter().all(|i| i.labels.is_empty()));
    let empty = tempfile::tempdir().unwrap();
    assert!(matches!(
        ItemList::from_test_folder(empty.path(), &Vocab::default(), Task::MultiLabel),
        Err(Error::NoImages { .. })
    ));
}

#[test]
fn multi_hot_and_tags_round_trip() {
    let vocab = Vocab::new(["road", "clear", "water"]);
    let labels = vec![0, 2];
    assert_eq!(vocab.multi_hot(&labels), vec![1.0, 0.0, 1.0]);
    assert_eq!(vocab.tags(&labels), "clear water");
    let json = serde_json_round_trip(&vocab);
    assert_eq!(json, vocab);
}

fn serde_json_round_trip(v: &Vocab) -> Vocab {
    let s = serde_json::to_string(v).unwrap();
    assert_eq!(s, r#"["clear","road","water"]"#);
    serde_json::from_str(&s).unwrap()
}

/// Issue 13 item 6: a CSV whose rows carry no tag reached the model builder and panicked
/// ("n_in and n_out must be at least 1").
#[test]
fn a_csv_without_any_tag_is_a_typed_error_naming_the_file() {
    let (dir, img) = setup(&["a", "b"]);
    match load(dir.path(), &img, b"image_name,tags\na,\nb,   \n") {
        Err(Error::NoClasses { path, rows }) => {
            assert!(path.ends_with("labels.csv"));
            assert_eq!(rows, 2);
        }
        other => panic!("{other:?}"),
    }
    let e = load(dir.path(), &img, b"image_name,tags\n").unwrap_err();
    assert!(e.to_string().contains("labels.csv"), "{e}");
}

/// Issue 13 item 10: `a.jpg` and `a.png`, or `x/1.jpg` and `y/1.jpg`, in one test folder
/// gave two submission rows for one name.
#[test]
fn a_test_folder_with_two_images_of_one_name_is_refused() {
    for files in [["a.jpg", "a.png"], ["x/1.jpg", "y/1.jpg"]] {
        let dir = tempfile::tempdir().unwrap();
        for f in files {
            let p = dir.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, b"x").unwrap();
        }
        match ItemList::from_test_folder(dir.path(), &Vocab::default(), Task::MultiLabel) {
            Err(Error::Folder {
                reason: fastburn_data::FolderProblem::DuplicateStem { name, .. },
                ..
            }) => assert!(files[0].ends_with(&format!("{name}.jpg"))),
            other => panic!("{files:?}: {other:?}"),
        }
    }
}

/// Issue 13 item 13: the CSV was read whole without a cap. A sparse file over the cap is
/// refused from its size, before any byte is read.
#[test]
fn a_csv_over_the_size_cap_is_refused_without_reading_it() {
    let (dir, img) = setup(&["a"]);
    let p = dir.path().join("labels.csv");
    std::fs::File::create(&p)
        .unwrap()
        .set_len(fastburn_data::MAX_CSV_BYTES + 1)
        .unwrap();
    match CsvConfig::new(p, img).load() {
        Err(Error::FileTooLarge { path, size, limit }) => {
            assert!(path.ends_with("labels.csv"));
            assert_eq!((size, limit), (limit + 1, fastburn_data::MAX_CSV_BYTES));
        }
        other => panic!("{other:?}"),
    }
}
