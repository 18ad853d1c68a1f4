//! `verify`: one report listing every bad line and file.

use fastburn_data::{CsvConfig, CsvProblemKind, Error, verify};

#[test]
fn verify_lists_every_bad_line_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("img");
    std::fs::create_dir(&img).unwrap();
    image::RgbImage::new(4, 4)
        .save(img.join("good.png"))
        .unwrap();
    std::fs::write(img.join("html.png"), b"<html></html>").unwrap();
    std::fs::write(img.join("empty.png"), b"").unwrap();
    let mut png = Vec::new();
    image::RgbImage::new(32, 32)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    std::fs::write(img.join("cut.png"), &png[..png.len() / 2]).unwrap();
    std::fs::write(
        dir.path().join("l.csv"),
        "image_name,tags\ngood,a\nhtml,b\nempty,a\nmissing,a\ncut,a\ngood,a\nx,y,z\n",
    )
    .unwrap();
    let cfg = CsvConfig::new(dir.path().join("l.csv"), img).with_suffix(".png".into());
    let report = verify(&cfg, &Default::default(), 2).unwrap();
    assert!(!report.is_ok());
    assert_eq!(report.rows, 7);
    let lines: Vec<u64> = report.csv_problems.list.iter().map(|p| p.line).collect();
    assert_eq!(lines, vec![5, 7, 8]);
    assert!(matches!(
        report.csv_problems.list[0].kind,
        CsvProblemKind::MissingImage { .. }
    ));
    assert!(matches!(
        report.csv_problems.list[1].kind,
        CsvProblemKind::DuplicateName { .. }
    ));
    assert_eq!(report.image_errors.len(), 3);
    assert!(matches!(
        report.image_errors[0],
        Error::UnsupportedFormat { .. }
    ));
    assert!(matches!(report.image_errors[1], Error::EmptyFile { .. }));
    assert!(matches!(report.image_errors[2], Error::Truncated { .. }));
    assert_eq!(report.images_ok, 1);
    assert_eq!(report.problem_count(), 6);
    let text = report.to_string();
    for needle in [
        "line 5",
        "line 7",
        "line 8",
        "html.png",
        "empty.png",
        "cut.png",
        "missing.png",
    ] {
        assert!(text.contains(needle), "report lacks {needle}:\n{text}");
    }
}
