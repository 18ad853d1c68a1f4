//! The resize cache, `show_batch` and the synthetic dataset.

use fastburn_data::synth::{PLANET_TAGS, SynthConfig, chip};
use fastburn_data::{
    AugPolicy, CacheReport, CsvConfig, DataLoader, ImageDataset, LoaderConfig, ResizeCacheConfig,
    ShowConfig, Transforms, load_rgb, verify,
};

#[test]
fn resize_cache_writes_once_reuses_and_notices_changes() {
    let dir = tempfile::tempdir().unwrap();
    SynthConfig::new(dir.path().join("d"))
        .with_n(6)
        .with_size(96)
        .generate()
        .unwrap();
    let list = CsvConfig::new(
        dir.path().join("d/labels.csv"),
        dir.path().join("d/train-jpg"),
    )
    .load()
    .unwrap();
    let cache = ResizeCacheConfig::for_size(dir.path().join("cache"), 32); // 41 px
    let (cached, r1) = cache.apply(&list).unwrap();
    assert_eq!(
        r1,
        CacheReport {
            written: 6,
            reused: 0
        }
    );
    for it in &cached.items {
        assert!(it.path.starts_with(dir.path().join("cache/41")));
        assert_eq!(load_rgb(&it.path).unwrap().dimensions(), (41, 41));
    }
    let (again, r2) = cache.apply(&list).unwrap();
    assert_eq!(
        r2,
        CacheReport {
            written: 0,
            reused: 6
        }
    );
    assert_eq!(again, cached);
    // Rewriting a source changes its key (size / mtime): only that copy is redone.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let (img, _) = chip(80, 99);
    img.save(&list.items[2].path).unwrap();
    let (_, r3) = cache.apply(&list).unwrap();
    assert_eq!(
        r3,
        CacheReport {
            written: 1,
            reused: 5
        }
    );
    // No temporary files are left behind.
    let leftovers = std::fs::read_dir(dir.path().join("cache/41"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".tmp")
        })
        .count();
    assert_eq!(leftovers, 0);
    // A dataset reading from the cache works like the original.
    let ds = ImageDataset::new(cached, Transforms::new(32), 0);
    assert_eq!(ds.get(0, 0).unwrap().pixels.len(), 3 * 32 * 32);
}

#[test]
fn show_batch_writes_a_png_grid() {
    let dir = tempfile::tempdir().unwrap();
    SynthConfig::new(dir.path().to_path_buf())
        .with_n(6)
        .with_size(32)
        .generate()
        .unwrap();
    let list = CsvConfig::new(dir.path().join("labels.csv"), dir.path().join("train-jpg"))
        .load()
        .unwrap();
    let tfms = Transforms::new(32).with_aug(Some(AugPolicy::top_down()));
    let dl = DataLoader::new(
        ImageDataset::new(list, tfms, 1),
        LoaderConfig::new().with_batch_size(6),
    );
    let out = dir.path().join("grid.png");
    dl.show_batch(&out, &ShowConfig::new().with_cols(3))
        .unwrap();
    let grid = load_rgb(&out).unwrap();
    // 3 columns of 128-px tiles (32-px images enlarged) plus padding; two rows with captions.
    assert_eq!(grid.width(), 3 * (128 + 4) + 4);
    assert!(grid.height() > 2 * 128);
    // Captions are drawn in black beneath the first tile.
    let caption_row =
        (128 + 4 + 4..128 + 4 + 14).any(|y| (4..132).any(|x| grid.get_pixel(x, y).0 == [0, 0, 0]));
    assert!(caption_row, "no caption text found");
}

#[test]
fn synth_is_deterministic_and_planet_like() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let sa = SynthConfig::new(a.path().to_path_buf())
        .with_n(300)
        .with_size(32)
        .with_n_test(5)
        .generate()
        .unwrap();
    let sb = SynthConfig::new(b.path().to_path_buf())
        .with_n(300)
        .with_size(32)
        .with_n_test(5)
        .with_workers(1)
        .generate()
        .unwrap();
    assert_eq!(sa.tag_counts, sb.tag_counts);
    for f in [
        "labels.csv",
        "train-jpg/train_17.jpg",
        "test-jpg/test_3.jpg",
        "test_labels.csv",
    ] {
        assert_eq!(
            std::fs::read(a.path().join(f)).unwrap(),
            std::fs::read(b.path().join(f)).unwrap(),
            "{f} differs"
        );
    }
    let count = |t: &str| sa.tag_counts[PLANET_TAGS.iter().position(|x| *x == t).unwrap()];
    // Exactly one weather tag per chip.
    let weather = ["clear", "partly_cloudy", "haze", "cloudy"].map(count);
    assert_eq!(weather.iter().sum::<usize>(), 300);
    // Planet-like frequencies (Planet: clear 70 %, primary 93 %, agriculture 30 %, water 18 %).
    assert!((180..240).contains(&count("clear")), "{}", count("clear"));
    assert!(
        (250..300).contains(&count("primary")),
        "{}",
        count("primary")
    );
    assert!(
        (60..120).contains(&count("agriculture")),
        "{}",
        count("agriculture")
    );
    assert!((30..85).contains(&count("water")), "{}", count("water"));
    // Cloudy chips carry no land tag.
    let list = CsvConfig::new(a.path().join("labels.csv"), a.path().join("train-jpg"))
        .load()
        .unwrap();
    let cloudy = list.vocab.index_of("cloudy").unwrap();
    for it in &list.items {
        if it.labels.contains(&cloudy) {
            assert_eq!(it.labels, vec![cloudy], "{}", it.name);
        }
    }
    // The files are valid: verify finds nothing wrong.
    let report = verify(
        &CsvConfig::new(a.path().join("labels.csv"), a.path().join("train-jpg")),
        &Default::default(),
        2,
    )
    .unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.images_ok, 300);
}

/// The cues are shapes, not colours: a classifier on mean colour alone cannot find roads.
#[test]
fn synthetic_roads_are_not_separable_by_mean_colour() {
    let road = PLANET_TAGS.iter().position(|t| *t == "road").unwrap();
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for seed in 0..400u64 {
        let (img, tags) = chip(48, seed);
        let n = f64::from(img.width() * img.height());
        let mean: Vec<f64> = (0..3)
            .map(|c| img.pixels().map(|p| f64::from(p.0[c])).sum::<f64>() / n)
            .collect();
        if tags.contains(&road) {
            with.push(mean)
        } else {
            without.push(mean)
        }
    }
    assert!(with.len() > 20);
    // Best single-channel threshold, any direction: balanced accuracy stays low.
    let mut best = 0.0f64;
    for c in 0..3 {
        let mut all: Vec<f64> = with.iter().chain(&without).map(|m| m[c]).collect();
        all.sort_by(f64::total_cmp);
        for t in all {
            let tpr = with.iter().filter(|m| m[c] > t).count() as f64 / with.len() as f64;
            let tnr = without.iter().filter(|m| m[c] <= t).count() as f64 / without.len() as f64;
            best = best.max((tpr + tnr) / 2.0).max(1.0 - (tpr + tnr) / 2.0);
        }
    }
    eprintln!("best balanced accuracy of a mean-colour threshold for `road`: {best:.3}");
    assert!(best < 0.8, "{best}");
}
