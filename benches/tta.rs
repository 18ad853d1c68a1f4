//! TTA throughput: the 8 dihedral views of a validation loader, on the device.
//!
//! ```text
//! cargo bench --bench tta
//! ```

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fastburn::data::synth::SynthConfig;
use fastburn::data::{CsvConfig, DataLoadersConfig, Splitter};
use fastburn::device::DeviceChoice;
use fastburn::learner::{LearnerConfig, Tta, vision_learner};
use fastburn::models::Arch;

fn tta(c: &mut Criterion) {
    let dir = std::env::temp_dir().join("fastburn-bench-tta");
    if !dir.join("labels.csv").is_file() {
        SynthConfig::new(dir.clone())
            .with_n(80)
            .with_size(64)
            .generate()
            .expect("synthetic data");
    }
    let csv = CsvConfig::new(dir.join("labels.csv"), dir.join("train-jpg"));
    let dls = DataLoadersConfig::new(64)
        .with_batch_size(16)
        .from_csv(&csv, &Splitter::default())
        .expect("loaders");
    let device = DeviceChoice::Auto.device().expect("a backend");
    let learn =
        vision_learner(dls, &LearnerConfig::new(Arch::ResNet18), None, &device).expect("learner");
    let inf = learn.inference();
    let valid = learn.dls().valid.clone();
    let n = valid.dataset().len();
    let mut group = c.benchmark_group("tta");
    group.sample_size(10);
    group.throughput(Throughput::Elements(n as u64));
    group.bench_function("resnet18_64px_dihedral_8_views", |b| {
        b.iter(|| inf.tta(&valid, Tta::Dihedral, 0.25).expect("tta"))
    });
    group.finish();
}

criterion_group!(benches, tta);
criterion_main!(benches);
