//! Shared fixtures: a small synthetic Planet-like dataset and a narrow learner.
#![allow(dead_code)]

use std::path::Path;

use burn::tensor::Device;
use fastburn_data::synth::SynthConfig;
use fastburn_data::{AugPolicy, CsvConfig, DataLoaders, DataLoadersConfig, Splitter};
use fastburn_learner::{Learner, LearnerConfig, vision_learner};
use fastburn_models::Arch;

pub fn data(dir: &Path, n: usize, size: u32, bs: usize) -> DataLoaders {
    let data = dir.join("data");
    if !data.join("labels.csv").is_file() {
        SynthConfig::new(data.clone())
            .with_n(n)
            .with_size(size)
            .with_n_test(4)
            .generate()
            .unwrap();
    }
    let csv = CsvConfig::new(data.join("labels.csv"), data.join("train-jpg"));
    DataLoadersConfig::new(size)
        .with_batch_size(bs)
        .with_workers(0)
        .with_aug(Some(AugPolicy::top_down()))
        .from_csv(&csv, &Splitter::default())
        .unwrap()
}

pub fn config(dir: &Path) -> LearnerConfig {
    LearnerConfig::new(Arch::ResNet18)
        .with_base_width(4)
        .with_lin_ftrs(vec![16])
        .with_path(dir.join("run"))
}

pub fn learner(dir: &Path, n: usize, size: u32, bs: usize) -> Learner {
    learner_with(dir, n, size, bs, config(dir))
}

pub fn learner_with(dir: &Path, n: usize, size: u32, bs: usize, cfg: LearnerConfig) -> Learner {
    let mut l = vision_learner(data(dir, n, size, bs), &cfg, None, &Device::flex()).unwrap();
    l.quiet();
    l
}

/// Every float parameter of the model (BatchNorm statistics included) with its path, in
/// visiting order.
pub fn weights(l: &Learner) -> Weights {
    use burn::module::{Module, ModuleVisitor, Param};
    use burn::tensor::Tensor;
    struct V(Vec<(String, Vec<f32>)>, Vec<String>);
    impl ModuleVisitor for V {
        fn enter_module(&mut self, name: &str, _c: &str) {
            self.1.push(name.to_string());
        }
        fn exit_module(&mut self, _n: &str, _c: &str) {
            self.1.pop();
        }
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            self.0
                .push((self.1.join("."), p.val().try_into_vec_as::<f32>().unwrap()));
        }
    }
    let mut v = V(Vec::new(), Vec::new());
    l.model().visit(&mut v);
    Weights(v.0)
}

/// Named parameter values; `==` is bitwise, and a mismatch names the first differing tensor.
#[derive(Clone, PartialEq)]
pub struct Weights(pub Vec<(String, Vec<f32>)>);

impl std::fmt::Debug for Weights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} tensors", self.0.len())
    }
}

impl Weights {
    /// The first tensor that differs from `other`, with its largest difference.
    pub fn first_difference(&self, other: &Weights) -> Option<(String, f32)> {
        for ((n, a), (_, b)) in self.0.iter().zip(&other.0) {
            if a != b {
                let d = a
                    .iter()
                    .zip(b)
                    .map(|(x, y)| (x - y).abs())
                    .fold(0.0, f32::max);
                return Some((n.clone(), d));
            }
        }
        None
    }
}
