//! Data-pipeline throughput: 256-px JPEG on disk → decode → resize to 64 / 128 → top-down
//! augmentation → normalised planar batch, with 1 and 2 loader workers.
//!
//! ```text
//! cargo bench --bench data_pipeline
//! ```
//! `scripts/bench_torchvision.py` measures the same pipeline with PIL + torchvision; see
//! `docs/performance.md`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fastburn::data::synth::SynthConfig;
use fastburn::data::{AugPolicy, CsvConfig, DataLoader, ImageDataset, LoaderConfig, Transforms};

const N: usize = 128;

fn pipeline(c: &mut Criterion) {
    let dir = std::env::temp_dir().join("fastburn-bench-data-256");
    if !dir.join("labels.csv").is_file() {
        SynthConfig::new(dir.clone())
            .with_n(N)
            .with_size(256)
            .generate()
            .expect("generating the benchmark images");
    }
    let list = CsvConfig::new(dir.join("labels.csv"), dir.join("train-jpg"))
        .load()
        .expect("reading the benchmark labels");
    let mut group = c.benchmark_group("data_pipeline");
    group.throughput(Throughput::Elements(N as u64));
    group.sample_size(10);
    for size in [64u32, 128] {
        for workers in [1usize, 2] {
            let tfms = Transforms::new(size).with_aug(Some(AugPolicy::top_down()));
            let ds = ImageDataset::new(list.clone(), tfms, 42);
            let dl = DataLoader::new(
                ds,
                LoaderConfig::new()
                    .with_batch_size(32)
                    .with_shuffle(true)
                    .with_workers(workers),
            );
            let mut epoch = 0;
            group.bench_function(format!("{size}px_{workers}workers"), |b| {
                b.iter(|| {
                    epoch += 1;
                    let n: usize = dl.epoch(epoch).map(|b| b.expect("batch").len()).sum();
                    assert_eq!(n, N);
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
