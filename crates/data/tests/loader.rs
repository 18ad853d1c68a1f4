//! The loader: same batches and augmentation for any number of workers, bounded prefetch,
//! errors and panics surfacing in order (reliability goals 6, 19–21).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};

use fastburn_data::synth::SynthConfig;
use fastburn_data::{
    AugOn, AugPolicy, BatchPos, BatchTransform, CpuBatch, CsvConfig, DataLoader, DecodeFn,
    DecodeOptions, Error, ImageDataset, ItemList, LoaderConfig, OnError, Task, Transforms,
    load_rgb_with,
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

/// Goal 20, measured by the test itself rather than by the loader's own counter: the
/// decoder counts every item it produces, the consumer counts every item it has taken, and
/// at every decode the difference is at most `prefetch` batches plus the one being handed
/// over (the loader marks a batch consumed just before the consumer receives it).
#[test]
fn prefetch_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let list = dataset(40, dir.path());
    let bs = 2;
    for prefetch in [1, 3] {
        let produced = Arc::new(AtomicUsize::new(0));
        let consumed = Arc::new(AtomicUsize::new(0));
        let max_gap = Arc::new(AtomicUsize::new(0));
        let counting: DecodeFn = {
            let (produced, consumed, max_gap) =
                (produced.clone(), consumed.clone(), max_gap.clone());
            Arc::new(move |p: &Path, o: &DecodeOptions| {
                let image = load_rgb_with(p, o).map(|d| d.image);
                let n = produced.fetch_add(1, SeqCst) + 1;
                max_gap.fetch_max(n.saturating_sub(consumed.load(SeqCst)), SeqCst);
                image
            })
        };
        let ds = ImageDataset::new(list.clone(), Transforms::new(16), 0).with_decoder(counting);
        let dl = DataLoader::new(
            ds,
            LoaderConfig::new()
                .with_batch_size(bs)
                .with_workers(3)
                .with_prefetch(prefetch),
        );
        let mut it = dl.epoch(0);
        let mut n = 0;
        while let Some(b) = it.next() {
            consumed.fetch_add(b.unwrap().len(), SeqCst);
            n += 1;
            // A slow consumer: workers would race ahead if nothing bounded them.
            std::thread::sleep(Duration::from_millis(10));
            assert!(
                it.max_in_flight() <= prefetch,
                "{} > {prefetch}",
                it.max_in_flight()
            );
        }
        assert_eq!(n, 20);
        assert_eq!(it.delivered(), 40);
        assert_eq!(produced.load(SeqCst), 40, "every item decoded once");
        let gap = max_gap.load(SeqCst);
        assert!(
            gap <= (prefetch + 1) * bs,
            "prefetch {prefetch}: {gap} items produced and not consumed"
        );
        if prefetch > 1 {
            assert!(gap > bs, "the workers never ran ahead (gap {gap})");
        }
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

/// Goal 21 for a panic outside the per-item guard (here in a batch transform, not in
/// decoding): the epoch delivers the batches before it, then a typed error naming the
/// batch, then ends — within seconds, for any number of workers — and the next epoch
/// loads in full.
#[test]
fn a_panic_outside_decoding_ends_the_epoch_with_worker_died_naming_the_batch() {
    let dir = tempfile::tempdir().unwrap();
    let list = dataset(12, dir.path());
    let boom: BatchTransform = Arc::new(|pos: BatchPos, _b: &mut CpuBatch| {
        if pos == (BatchPos { epoch: 0, batch: 1 }) {
            panic!("injected panic in a batch transform");
        }
    });
    for workers in [0, 2] {
        let dl = DataLoader::new(
            ImageDataset::new(list.clone(), Transforms::new(16), 0),
            LoaderConfig::new().with_batch_size(4).with_workers(workers),
        )
        .with_batch_transform(boom.clone());
        let t0 = Instant::now();
        let results: Vec<_> = dl.epoch(0).collect();
        assert!(t0.elapsed() < Duration::from_secs(5), "workers={workers}");
        assert_eq!(
            results.len(),
            2,
            "workers={workers}: batch 0, then the error"
        );
        assert_eq!(results[0].as_ref().unwrap().indices, [0, 1, 2, 3]);
        let err = results[1].as_ref().unwrap_err();
        assert!(
            matches!(
                err,
                Error::WorkerDied {
                    epoch: 0,
                    batch: 1,
                    ..
                }
            ),
            "workers={workers}: {err}"
        );
        assert!(
            err.to_string()
                .contains("injected panic in a batch transform"),
            "{err}"
        );
        let next: Vec<usize> = collect(&dl, 1).iter().map(CpuBatch::len).collect();
        assert_eq!(next, [4, 4, 4], "workers={workers}: the loader still works");
    }
}

/// Issue 13 item 13: a batch that is not delivered within `batch_deadline` is an error
/// naming it, instead of an endless wait.
#[test]
fn a_batch_past_its_deadline_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let list = dataset(12, dir.path());
    let stall = |d: Duration| -> BatchTransform {
        Arc::new(move |pos: BatchPos, _b: &mut CpuBatch| {
            if pos.batch == 1 {
                std::thread::sleep(d);
            }
        })
    };
    let loader = |workers: usize, deadline: Option<Duration>, t: BatchTransform| {
        DataLoader::new(
            ImageDataset::new(list.clone(), Transforms::new(16), 0),
            LoaderConfig::new()
                .with_batch_size(4)
                .with_workers(workers)
                .with_batch_deadline(deadline),
        )
        .with_batch_transform(t)
    };
    let check = |results: &[Result<CpuBatch, Error>], deadline: Duration, what: &str| {
        assert_eq!(results.len(), 2, "{what}: batch 0, then the error");
        assert!(results[0].is_ok(), "{what}");
        let err = results[1].as_ref().unwrap_err();
        assert!(
            matches!(err, Error::BatchDeadline { epoch: 0, batch: 1, deadline: d } if *d == deadline),
            "{what}: {err}"
        );
        assert!(err.to_string().contains("batch 1"), "{err}");
    };
    // Workers: the consumer stops waiting at the deadline, long before the stall ends (the
    // stuck worker is left to finish on its own; collecting also drops the iterator).
    let deadline = Duration::from_millis(300);
    let t0 = Instant::now();
    let results: Vec<_> = loader(2, Some(deadline), stall(Duration::from_secs(8)))
        .epoch(0)
        .collect();
    let took = t0.elapsed();
    check(&results, deadline, "workers=2");
    assert!(took < Duration::from_secs(4), "waited {took:?}");
    // On the calling thread the batch cannot be interrupted: it is the same error once the
    // batch returns.
    let deadline = Duration::from_millis(100);
    let results: Vec<_> = loader(0, Some(deadline), stall(Duration::from_millis(400)))
        .epoch(0)
        .collect();
    check(&results, deadline, "workers=0");
    // Control: the same slow batch is delivered without a deadline and under the default.
    assert_eq!(
        LoaderConfig::new().batch_deadline,
        Some(Duration::from_secs(600))
    );
    for (workers, deadline) in [
        (2, None),
        (0, None),
        (2, LoaderConfig::new().batch_deadline),
    ] {
        let dl = loader(workers, deadline, stall(Duration::from_millis(400)));
        assert_eq!(collect(&dl, 0).len(), 3, "workers={workers} {deadline:?}");
    }
}

#[test]
#[should_panic = "batch_deadline must be above 0 (None: no deadline)"]
fn a_zero_batch_deadline_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ds = ImageDataset::new(dataset(2, dir.path()), Transforms::new(16), 0);
    DataLoader::new(
        ds,
        LoaderConfig::new().with_batch_deadline(Some(Duration::ZERO)),
    );
}
