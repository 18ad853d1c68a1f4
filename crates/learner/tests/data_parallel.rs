//! Data-parallel training on two distinct CPU devices (flex and ndarray) through the public
//! API: the gathered gradients are the batch's, rank 0 alone is the plain learner, bad
//! settings are refused, and a failing replica is an error, not a hang.
#![allow(deprecated)] // Device::ndarray: Burn deprecates the backend, not the device

mod common;

use std::time::{Duration, Instant};

use burn::tensor::Device;
use fastburn_learner::callbacks::GradientAccumulation;
use fastburn_learner::{DataParallel, Error, LearnerConfig, OptimizerConfig, Reduce};

/// The narrow test learner without dropout (dropout masks are drawn per replica) and with
/// plain SGD (linear in the gradient, so backend rounding is not amplified as Adam's
/// normalisation would amplify it for near-zero gradients).
fn cfg(dir: &std::path::Path) -> LearnerConfig {
    common::config(dir)
        .with_ps(0.0)
        .with_opt(OptimizerConfig::sgd(0.9))
}

fn two_devices() -> DataParallel {
    DataParallel::new(vec![Device::flex(), Device::ndarray()]).with_reduce(Reduce::Gather)
}

/// The trainable parameters (BatchNorm running statistics left out: see below).
fn trainable(w: &common::Weights) -> Vec<(String, Vec<f32>)> {
    w.0.iter()
        .filter(|(n, _)| !n.ends_with("running_mean") && !n.ends_with("running_var"))
        .cloned()
        .collect()
}

/// The change of every trainable parameter from `before` to `after`, flattened.
fn update(after: &common::Weights, before: &common::Weights) -> Vec<f64> {
    trainable(after)
        .iter()
        .zip(trainable(before))
        .flat_map(|((_, a), (_, b))| {
            a.iter()
                .zip(b)
                .map(|(x, y)| f64::from(*x) - f64::from(y))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// ‖a − b‖ / ‖b‖.
fn rel(a: &[f64], b: &[f64]) -> f64 {
    let d: f64 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
    let n: f64 = b.iter().map(|y| y * y).sum();
    (d / n).sqrt()
}

/// `epochs` epochs of one step each (8 training items) on [flex, ndarray] (batch 8: 4 items
/// per device) and on one device running the same shards one after the other (batch 4 with
/// gradient accumulation over 2 batches: the optimiser steps with the mean of the two
/// shards' gradients, each shard normalised by its own BatchNorm statistics, which is what
/// the data-parallel step computes). Returns the relative difference of the two updates.
fn sharded_vs_accumulated(epochs: usize) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let mut dp = common::learner_with(dir.path(), 10, 32, 8, cfg(dir.path()));
    let mut reference = common::learner_with(dir.path(), 10, 32, 4, cfg(dir.path()));
    let start = common::weights(&dp);
    assert_eq!(start, common::weights(&reference), "same start");
    dp.set_data_parallel(Some(two_devices())).unwrap();
    reference.add_callback(GradientAccumulation::new(2));
    dp.fit(epochs, 1e-2).unwrap();
    reference.fit(epochs, 1e-2).unwrap();
    let (a, b) = (
        update(&common::weights(&dp), &start),
        update(&common::weights(&reference), &start),
    );
    assert!(b.iter().any(|&x| x != 0.0), "the reference trained");
    rel(&a, &b)
}

/// One step on two devices is the step of its shards on one device: the gathered gradient
/// is the batch's (flex and ndarray round differently: measured 1e-6 relative or less).
#[test]
fn a_step_on_two_devices_is_the_step_of_its_shards_on_one() {
    let d = sharded_vs_accumulated(1);
    println!("one step: relative difference of the updates {d:.2e}");
    assert!(d < 1e-4, "{d}");
}

/// Records the gradient the optimiser gets at each step, flattened.
struct RecordGrads(std::sync::Arc<std::sync::Mutex<Vec<Vec<f64>>>>);

impl fastburn_learner::Callback for RecordGrads {
    fn name(&self) -> String {
        "record_grads".into()
    }
    fn order(&self) -> i32 {
        5 // after gradient accumulation (4): the gradient of the step
    }
    fn after_backward(
        &mut self,
        l: &mut fastburn_learner::Learner,
    ) -> fastburn_learner::Result<fastburn_learner::Flow> {
        if let Some(g) = l.take_grads() {
            let mut all = Vec::new();
            for (id, rank) in fastburn_learner::grads::trainable_params(l.model()) {
                let v = match rank {
                    1 => g.get::<1>(id).map(|t| t.try_into_vec_as::<f32>().unwrap()),
                    2 => g.get::<2>(id).map(|t| t.try_into_vec_as::<f32>().unwrap()),
                    4 => g.get::<4>(id).map(|t| t.try_into_vec_as::<f32>().unwrap()),
                    _ => None,
                };
                all.extend(v.unwrap_or_default().into_iter().map(f64::from));
            }
            self.0.lock().unwrap().push(all);
            l.set_grads(Some(g));
        }
        Ok(fastburn_learner::Flow::Continue)
    }
}

/// Over several steps every replica starts each step from the learner's parameters: at each
/// step the gathered gradient is the accumulated shard gradient of a one-device learner
/// given the same weights. (Comparing the two trajectories instead would measure this tiny
/// network's sensitivity: flex and ndarray alone, each on one device, drift from 4e-5 to
/// 4e-3 relative in three steps.)
#[test]
fn replicas_do_not_drift_over_several_steps() {
    let dir = tempfile::tempdir().unwrap();
    let mut dp = common::learner_with(dir.path(), 10, 32, 8, cfg(dir.path()));
    let mut reference = common::learner_with(dir.path(), 10, 32, 4, cfg(dir.path()));
    dp.set_data_parallel(Some(two_devices())).unwrap();
    let (a, b) = (Default::default(), Default::default());
    dp.add_callback(RecordGrads(std::sync::Arc::clone(&a)));
    reference.add_callback(GradientAccumulation::new(2));
    reference.add_callback(RecordGrads(std::sync::Arc::clone(&b)));
    for _ in 0..3 {
        reference.set_model(dp.model().clone());
        dp.fit(1, 1e-2).unwrap();
        reference.fit(1, 1e-2).unwrap();
    }
    let (a, b) = (a.lock().unwrap(), b.lock().unwrap());
    assert_eq!((a.len(), b.len()), (3, 3));
    for (s, (ga, gb)) in a.iter().zip(b.iter()).enumerate() {
        let d = rel(ga, gb);
        println!("step {s}: relative difference of the gradients {d:.2e}");
        assert!(d < 1e-4, "step {s}: {d}");
    }
}

/// A learner whose every training batch is its first half twice (a batch transform): each
/// shard of two then has the whole batch's BatchNorm statistics.
fn doubled_halves(dir: &std::path::Path) -> fastburn_learner::Learner {
    let mut dls = common::data(dir, 10, 32, 8);
    dls.train = dls.train.with_batch_transform(std::sync::Arc::new(|_, b| {
        let h = b.len() / 2;
        let item = 3 * (b.size as usize).pow(2);
        let (c, n) = (b.classes, b.len());
        b.images.copy_within(0..h * item, h * item);
        b.targets.copy_within(0..h * c, h * c);
        for i in h..n {
            b.indices[i] = b.indices[i - h];
            b.params[i] = b.params[i - h];
            b.labels[i] = b.labels[i - h].clone();
        }
    }));
    let mut l = fastburn_learner::vision_learner(dls, &cfg(dir), None, &Device::flex()).unwrap();
    l.quiet();
    l
}

/// On two devices each replica normalises its shard with the shard's own BatchNorm
/// statistics (there is no SyncBatchNorm), so a sharded step differs from the whole batch on
/// one device; that is the only difference: when both shards are the same items (so each
/// shard's statistics are the batch's), the two agree to rounding. How large the difference
/// is on real batches is printed (docs/scale-out.md reports it).
#[test]
fn against_the_full_batch_on_one_device_only_batchnorm_statistics_differ() {
    let dir = tempfile::tempdir().unwrap();
    let mut dp = doubled_halves(dir.path());
    let mut full = doubled_halves(dir.path());
    let start = common::weights(&dp);
    dp.set_data_parallel(Some(two_devices())).unwrap();
    dp.fit(1, 1e-2).unwrap();
    full.fit(1, 1e-2).unwrap();
    let same_stats = rel(
        &update(&common::weights(&dp), &start),
        &update(&common::weights(&full), &start),
    );
    println!("one step, shards with the batch's statistics: relative difference {same_stats:.2e}");
    assert!(same_stats < 1e-4, "{same_stats}");

    let mut dp = common::learner_with(dir.path(), 10, 32, 8, cfg(dir.path()));
    let mut full = common::learner_with(dir.path(), 10, 32, 8, cfg(dir.path()));
    dp.set_data_parallel(Some(two_devices())).unwrap();
    dp.fit(1, 1e-2).unwrap();
    full.fit(1, 1e-2).unwrap();
    let distinct = rel(
        &update(&common::weights(&dp), &start),
        &update(&common::weights(&full), &start),
    );
    println!("one step, 4 distinct items per shard (32 px): relative difference {distinct:.2e}");
    assert!(distinct > 100.0 * same_stats, "{distinct} vs {same_stats}");
}

/// One device through the data-parallel path is the plain learner, bit for bit.
#[test]
fn one_device_through_the_parallel_path_is_the_plain_learner() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = common::learner(dir.path(), 20, 32, 8);
    let mut b = common::learner(dir.path(), 20, 32, 8);
    a.set_data_parallel(Some(DataParallel::new(vec![Device::flex()])))
        .unwrap();
    a.fit_one_cycle(1, 1e-2).unwrap();
    b.fit_one_cycle(1, 1e-2).unwrap();
    assert_eq!(common::weights(&a), common::weights(&b));
    assert_eq!(a.history()[0].valid_loss, b.history()[0].valid_loss);
}

/// A batch smaller than the device count leaves the last replicas without items: they sit
/// the step out, and training goes on (no hang waiting for them).
#[test]
fn a_last_batch_smaller_than_the_device_count_trains() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = common::learner_with(dir.path(), 10, 32, 1, cfg(dir.path())); // batches of 1
    l.set_data_parallel(Some(two_devices())).unwrap();
    l.fit(1, 0.01).unwrap();
    assert_eq!(l.history().len(), 1);
    assert!(l.history()[0].train_loss.is_finite());
}

#[test]
fn bad_settings_are_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = common::learner(dir.path(), 12, 32, 4);
    let key = |e: Error| match e {
        Error::InvalidConfig { key, .. } => key,
        e => panic!("{e}"),
    };
    let refuse = |l: &mut fastburn_learner::Learner, dp: DataParallel| {
        key(l.set_data_parallel(Some(dp)).unwrap_err())
    };
    assert_eq!(refuse(&mut l, DataParallel::new(vec![])), "devices");
    assert_eq!(
        refuse(
            &mut l,
            DataParallel::new(vec![Device::ndarray(), Device::flex()])
        ),
        "devices"
    );
    assert_eq!(
        refuse(
            &mut l,
            DataParallel::new(vec![Device::flex(), Device::flex()])
        ),
        "devices"
    );
    // Burn has collectives on CUDA only.
    assert_eq!(
        refuse(&mut l, two_devices().with_reduce(Reduce::Collective)),
        "reduce"
    );
    assert_eq!(
        two_devices().with_reduce(Reduce::Auto).strategy(),
        Reduce::Gather
    );
    assert!(l.data_parallel().is_none());
    assert_eq!(l.train_devices().len(), 1);
    assert_eq!("Gather".parse::<Reduce>().unwrap(), Reduce::Gather);
    assert!("ring".parse::<Reduce>().is_err());
}

/// A replica whose device fails (a wgpu adapter that does not exist) ends the fit with
/// `Error::Replica` naming rank 1, promptly; the learner keeps the weights it had and trains
/// on again once data parallelism is turned off.
#[test]
fn a_failing_replica_is_an_error_not_a_hang() {
    use burn::tensor::DeviceKind;
    let dir = tempfile::tempdir().unwrap();
    let mut l = common::learner(dir.path(), 12, 32, 4);
    let before = common::weights(&l);
    let bad = Device::wgpu(DeviceKind::DiscreteGpu(97));
    l.set_data_parallel(Some(
        DataParallel::new(vec![Device::flex(), bad])
            .with_reduce(Reduce::Gather)
            .with_step_deadline(Duration::from_secs(120)),
    ))
    .unwrap();
    let t = Instant::now();
    let err = l.fit(1, 1e-2).unwrap_err();
    println!("{err} after {:?}", t.elapsed());
    match &err {
        Error::Replica { rank, device, .. } => {
            assert_eq!(*rank, 1);
            assert!(
                device.contains("97") || device.to_lowercase().contains("wgpu"),
                "{device}"
            );
        }
        e => panic!("expected Error::Replica, got {e:?}"),
    }
    assert_eq!(common::weights(&l), before, "no step was taken");
    l.set_data_parallel(None).unwrap();
    l.fit(1, 1e-2).unwrap();
    assert_ne!(common::weights(&l), before);
}

/// Schedules step once per global batch: one-cycle on two devices logs the learning rates,
/// momenta and iteration count of the same fit on one device, and one loss per global batch.
#[test]
fn schedules_step_once_per_global_batch() {
    let dir = tempfile::tempdir().unwrap();
    let mut dp = common::learner(dir.path(), 20, 32, 8); // 16 train items: 2 batches
    let mut one = common::learner(dir.path(), 20, 32, 8);
    dp.set_data_parallel(Some(two_devices())).unwrap();
    dp.fit_one_cycle(2, 1e-2).unwrap();
    one.fit_one_cycle(2, 1e-2).unwrap();
    let (a, b) = (dp.iterations(), one.iterations());
    assert_eq!(a.len(), 4);
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert_eq!((x.iter, &x.lrs, x.mom), (y.iter, &y.lrs, y.mom));
        assert!(x.loss.is_finite());
    }
    assert_eq!(dp.state().n_iter, one.state().n_iter);
}

/// The finder and precompute go through the same loop: on two devices the finder still
/// restores weights and BatchNorm statistics bitwise, and a precomputed fit trains the head
/// on cached activations sharded across the devices.
#[test]
fn lr_find_and_precompute_run_on_two_devices() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = common::learner(dir.path(), 40, 32, 8);
    l.set_data_parallel(Some(two_devices())).unwrap();
    l.fit(1, 1e-3).unwrap();
    let before = common::weights(&l);
    let r = l
        .lr_find(&fastburn_learner::LrFindConfig {
            num_it: 10,
            ..Default::default()
        })
        .unwrap();
    assert!(!r.lrs.is_empty());
    assert_eq!(
        common::weights(&l).first_difference(&before),
        None,
        "weights and BatchNorm statistics restored bitwise"
    );
    l.freeze();
    l.precompute().unwrap();
    let head0 = common::weights(&l);
    l.fit(1, 1e-2).unwrap();
    assert!(l.is_precomputed());
    assert_ne!(common::weights(&l), head0, "the head trained on the cache");
    assert_eq!(l.history().len(), 2);
}
