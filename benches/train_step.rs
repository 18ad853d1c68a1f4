//! Training step and inference throughput of ResNet-18/34 (fastai head, 17 classes) at 64
//! and 128 px on the default backend, through the same [`fastburn::bench::measure`] as
//! `fastburn bench`.
//!
//! ```text
//! cargo bench --bench train_step
//! ```
//! `scripts/bench_pytorch.py` measures PyTorch on the same steps; see docs/performance.md.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fastburn::bench::{BenchConfig, measure};
use fastburn::device::DeviceChoice;
use fastburn::models::Arch;

const BS: usize = 16;

fn steps(c: &mut Criterion) {
    let device = DeviceChoice::Auto.device().expect("a backend");
    let mut group = c.benchmark_group("resnet");
    group.sample_size(10);
    group.throughput(Throughput::Elements(BS as u64));
    for arch in [Arch::ResNet18, Arch::ResNet34] {
        for size in [64usize, 128] {
            let cfg = BenchConfig {
                warmup: 0,
                ..BenchConfig::new(arch, size, BS, 1)
            };
            // One timed training step and one inference pass per criterion iteration.
            group.bench_function(format!("{arch}_{size}px_train_and_infer_bs{BS}"), |b| {
                b.iter(|| measure(&cfg, &device).expect("a valid bench configuration"))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, steps);
criterion_main!(benches);
