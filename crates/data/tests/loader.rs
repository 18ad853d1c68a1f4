//! The loader: same batches and augmentation for any number of workers, bounded prefetch,
//! errors and panics surfacing in order (reliability goals 6, 19–21).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fastburn_data::synth::SynthConfig;
use fastburn_data::{
    AugOn, AugPolicy, CpuBatch, CsvConfig, DataLoader, DecodeOptions, Error, ImageDataset,
    ItemList, LoaderConfig, OnError, Task, Transforms, load_rgb_with,
};

fn dataset(n: usize, dir: &Path) -> ItemList {
    SynthConfig::new(dir.to_path_buf())
        .with_n(n)
        .with_size(32)
        .generate()
        .unwrap();
    CsvConfig::new(dir.join("labels.csv"), dir.join("train-jpg"))
        .load()
        .unwrap()
}

fn collect(dl: &DataLoader, epoch: usize) -> Vec<CpuBatch> {
    dl.epoch(epoch).collect::<Result<Vec<_>, _>>().unwrap()
}

#[test]
fn batches_are_identical_for_any_number_of_workers() {
    let dir = tempfile::tempdir().unwrap();
    let list = dataset(23, dir.path());
    let tfms = Transforms::new(24).with_aug(Some(AugPolicy::top_down()));
    let ds = ImageDataset::new(list, tfms, 7);
    let cfg = LoaderConfig::new()
        .with_batch_size(5)
        .with_shuffle(true)
        .with_seed(3);
    let reference = collect(&DataLoader::new(ds.clone(), cfg.clone().with_workers(0)), 1);
    assert_eq!(
        reference.iter().map(CpuBatch::len).collect::<Vec<_>>(),
        vec![5, 5, 5, 5, 3]
    );
    for workers in [1, 2, 3] {
        let dl = DataLoader::new(
            ds.clone(),
            cfg.clone().with_workers(workers).with_prefetch(2),
        );
        let got = collect(&dl, 1);
        assert_eq!(got.len(), reference.len());
        for (a, b) in got.iter().zip(&reference) {
            assert_eq!(a.indices, b.indices, "{workers} workers");
            assert_eq!(a.images, b.images, "{workers} workers: pixels differ");
            assert_eq!(a.targets, b.targets);
        }
    }
    // Each epoch has its own order and augmentation; the same epoch is repeatable.
    let dl = DataLoader::new(ds, cfg.with_workers(2));
    let e2 = collect(&dl, 2);
    assert_ne!(e2[0].indices, reference[0].indices);
    assert_eq!(collect(&dl, 2)[0].images, e2[0].images);
    let mut all: Vec<usize> = e2.iter().flat_map(|b| b.indices.clone()).collect();
    all.sort_unstable();
    assert_eq!(all, (0..23).collect::<Vec<_>>());
}

#[test]
fn drop_last_and_in_order_loading() {
    let dir = tempfile::tempdir().unwrap();
    let ds = ImageDataset::new(dataset(10, dir.path()), Transforms::new(16), 0);
    let dl = DataLoader::new(
        ds,
        LoaderConfig::new().with_batch_size(4).with_drop_last(true),
    );
    assert_eq!(dl.num_batches(), 2);
    let b = collect(&dl, 0);
    assert_eq!(b[0].indices, vec![0, 1, 2, 3]);
    assert_eq!(b.len(), 2);
}

#[test]
fn prefetch_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let ds = ImageDataset::new(dataset(40, dir.path()), Transforms::new(16), 0);
    for prefetch in [1, 3] {
        let dl = DataLoader::new(
            ds.clone(),
            LoaderConfig::new()
                .with_batch_size(2)
                .with_workers(3)
                .with_prefetch(prefetch),
        );
        let mut it = dl.epoch(0);
        let mut n = 0;
        while let Some(b) = it.next() {
            b.unwrap();
            n += 1;
            // A slow consumer: workers would race ahead if nothing bounded them.
            std::thread::sleep(Duration::from_millis(5));
            assert!(
                it.max_in_flight() <= prefetch,
                "{} > {prefetch}",
                it.max_in_flight()
            );
        }
        assert_eq!(n, 20);
        assert_eq!(it.delivered(), 40);
    }
}

fn failing_decoder(bad: &'static str, panic: bool) -> fastburn_data::DecodeFn {
    Arc::new(move |p: &Path, o: &DecodeOptions| {
        if p.file_stem().and_then(|s| s.to_str()) == Some(bad) {
            if panic {
                panic!("injected panic decoding {}", p.display());
            }
            return Err(Error::Truncated {
                path: p.to_path_buf(),
                format: fastburn_data::ImageFormat::Jpeg,
            });
        }
        load_rgb_with(p, o).map(|d| d.image)
    })
}

#[test]
fn a_worker_error_or_panic_surfaces_as_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let list = dataset(12, dir.path());
    for panic in [false, true] {
        for workers in [0, 2] {
            let ds = ImageDataset::new(list.clone(), Transforms::new(16), 0)
                .with_decoder(failing_decoder("train_6", panic));
            let dl = DataLoader::new(
                ds,
                LoaderConfig::new().with_batch_size(4).with_workers(workers),
            );
            let t0 = Instant::now();
            let results: Vec<_> = dl.epoch(0).collect();
            assert!(t0.elapsed() < Duration::from_secs(10));
            // Batch 0 is fine, batch 1 (items 4..8) fails, and the epoch ends there.
            assert_eq!(results.len(), 2, "panic={panic} workers={workers}");
            assert!(results[0].is_ok());
            let err = results[1].as_ref().unwrap_err();
            assert!(matches!(err, Error::Worker { batch: 1, .. }), "{err}");
            assert!(err.to_string().contains("train_6"), "{err}");
            if panic {
                assert!(err.to_string().contains("panicked"), "{err}");
            }
        }
    }
}

#[test]
fn skipping_bad_items_is_opt_in_counted_and_capped() {
    let dir = tempfile::tempdir().unwrap();
    let list = dataset(12, dir.path());
    let ds = ImageDataset::new(list, Transforms::new(16), 0)
        .with_decoder(failing_decoder("train_6", false));
    let dl = DataLoader::new(
        ds.clone(),
        LoaderConfig::new()
            .with_batch_size(4)
            .with_workers(2)
            .with_on_error(OnError::Skip { max: 1 }),
    );
    let mut it = dl.epoch(0);
    let batches: Vec<CpuBatch> = it.by_ref().collect::<Result<_, _>>().unwrap();
    assert_eq!(batches.iter().map(CpuBatch::len).sum::<usize>(), 11);
    assert_eq!(it.skipped(), 1);
    assert_eq!(it.delivered(), 12 - it.skipped());
    let strict = DataLoader::new(
        ds,
        LoaderConfig::new()
            .with_batch_size(4)
            .with_on_error(OnError::Skip { max: 0 }),
    );
    let err = strict.epoch(0).find_map(Result::err).unwrap();
    assert!(
        matches!(
            err,
            Error::TooManyBadSamples {
                skipped: 1,
                limit: 0,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn device_augmentation_leaves_raw_pixels_and_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let list = dataset(4, dir.path());
    let task = list.task;
    assert_eq!(task, Task::MultiLabel);
    let tfms = Transforms::new(16)
        .with_aug(Some(AugPolicy::top_down()))
        .with_aug_on(AugOn::Device);
    let dl = DataLoader::new(
        ImageDataset::new(list, tfms.clone(), 5),
        LoaderConfig::new().with_batch_size(4),
    );
    let b = collect(&dl, 0).remove(0);
    assert!(
        b.images.iter().all(|v| (0.0..=1.0).contains(v)),
        "raw [0, 1] pixels"
    );
    assert!(b.params.iter().any(|p| p.matrix != fastburn_data::IDENTITY));
    let batch = b
        .clone()
        .to_device(&burn::tensor::Device::flex(), &tfms, task);
    let v = batch.images.try_into_vec_as::<f32>().unwrap();
    assert!(v.iter().any(|&x| x < 0.0), "normalised on the device");
    assert_eq!(batch.targets.try_into_vec_as::<f32>().unwrap(), b.targets);
}

/// Issue 13 item 11: with `OnError::Skip`, a batch whose every item failed came out empty
/// and reached the model as a NaN loss. It is skipped now, for any number of workers.
#[test]
fn a_batch_whose_items_are_all_skipped_is_not_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let list = dataset(12, dir.path());
    let bad: fastburn_data::DecodeFn = Arc::new(|p: &Path, o: &DecodeOptions| {
        let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        // Items 4..8: the whole of batch 1.
        if ["train_4", "train_5", "train_6", "train_7"].contains(&stem) {
            return Err(Error::Truncated {
                path: p.to_path_buf(),
                format: fastburn_data::ImageFormat::Jpeg,
            });
        }
        load_rgb_with(p, o).map(|d| d.image)
    });
    for workers in [0, 2] {
        let ds = ImageDataset::new(list.clone(), Transforms::new(16), 0).with_decoder(bad.clone());
        let dl = DataLoader::new(
            ds,
            LoaderConfig::new()
                .with_batch_size(4)
                .with_workers(workers)
                .with_on_error(OnError::Skip { max: 10 }),
        );
        let mut it = dl.epoch(0);
        let batches: Vec<CpuBatch> = it.by_ref().collect::<Result<_, _>>().unwrap();
        assert_eq!(
            batches.iter().map(CpuBatch::len).collect::<Vec<_>>(),
            [4, 4],
            "workers={workers}"
        );
        assert_eq!(it.skipped(), 4);
    }
}
