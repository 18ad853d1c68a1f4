//! fastai's head: structure, numbers by hand, initialisation, train/eval behaviour.

mod common;

use burn::module::{Module, Param};
use burn::tensor::{Distribution, Tensor, TensorData};
use common::{device, max_abs_diff};
use fastburn_models::{Arch, HeadConfig, VisionModelConfig, num_parameters};

#[test]
fn default_head_is_fastai_create_head() {
    let head = HeadConfig::new(512, 17).init(&device());
    assert!(head.concat_pool);
    assert_eq!(head.layers.len(), 2);
    let (a, b) = (&head.layers[0], &head.layers[1]);
    assert_eq!(a.bn.gamma.dims(), [1024]);
    assert_eq!(a.dropout.as_ref().unwrap().prob, 0.25);
    assert_eq!(a.linear.weight.dims(), [1024, 512]);
    assert!(a.linear.bias.is_none() && a.relu);
    assert_eq!(b.bn.gamma.dims(), [512]);
    assert_eq!(b.dropout.as_ref().unwrap().prob, 0.5);
    assert_eq!(b.linear.weight.dims(), [512, 17]);
    assert!(b.linear.bias.is_none() && !b.relu);
    assert!(head.bn_final.is_none());
    // fastai's BatchNorm init: weight 1, bias 1e-3.
    let beta: Vec<f32> = a.bn.beta.val().try_into_vec_as().unwrap();
    assert!(beta.iter().all(|&v| v == 1e-3));
    // Planet's ResNet-34 head: 1024·2 + 1024·512 + 512·2 + 512·17.
    assert_eq!(num_parameters(&head), 2048 + 524_288 + 1024 + 8704);
}

#[test]
fn options_change_the_layers() {
    let d = device();
    let head = HeadConfig::new(64, 3)
        .with_lin_ftrs(vec![32, 16])
        .with_ps(0.2)
        .with_concat_pool(false)
        .with_bn_final(true)
        .init(&d);
    let sizes: Vec<[usize; 2]> = head.layers.iter().map(|l| l.linear.weight.dims()).collect();
    assert_eq!(sizes, vec![[64, 32], [32, 16], [16, 3]]);
    let probs: Vec<f64> = head
        .layers
        .iter()
        .map(|l| l.dropout.as_ref().unwrap().prob)
        .collect();
    assert_eq!(probs, vec![0.1, 0.1, 0.2]);
    assert_eq!(head.bn_final.as_ref().unwrap().momentum, 0.01);
    let no_dropout = HeadConfig::new(8, 2).with_ps(0.0).init(&d);
    assert!(no_dropout.layers.iter().all(|l| l.dropout.is_none()));
}

/// Eval mode, computed by hand: concat pool → BN(running 0/1, γ 1, β 1e-3) → linear → ReLU →
/// BN → linear.
#[test]
fn eval_forward_matches_hand_computation() {
    let d = device();
    let mut head = HeadConfig::new(1, 1).with_lin_ftrs(vec![2]).init(&d);
    // features [1, 1, 2, 2] = [[1, 2], [3, 6]]: max 6, mean 3 → pooled [6, 3]
    let x = Tensor::<4>::from_data(TensorData::new(vec![1f32, 2., 3., 6.], [1, 1, 2, 2]), &d);
    head.layers[0].linear.weight = Param::from_data(
        TensorData::new(vec![1f32, -1., 0.5, 3.], [2, 2]), // [in, out]
        &d,
    );
    head.layers[1].linear.weight = Param::from_data(TensorData::new(vec![2f32, -3.], [2, 1]), &d);
    let y: Vec<f32> = head.forward(x).try_into_vec_as().unwrap();

    let s = 1.0 / (1.0f64 + 1e-5).sqrt();
    let bn = |v: f64| v * s + 1e-3;
    let (p0, p1) = (bn(6.0), bn(3.0));
    let h0 = (p0 * 1.0 + p1 * 0.5).max(0.0);
    let h1 = (p1 * 3.0 - p0).max(0.0);
    let expected = bn(h0) * 2.0 + bn(h1) * -3.0;
    assert!(
        (y[0] as f64 - expected).abs() < 1e-5,
        "{} vs {expected}",
        y[0]
    );
}

#[test]
fn head_linear_layers_are_kaiming_normal() {
    let d = device();
    d.seed(11);
    let head = HeadConfig::new(1024, 2000).with_lin_ftrs(vec![]).init(&d);
    // One linear 2048 → 2000: std √(2 / fan_in) = √(2/2048).
    let w: Vec<f32> = head.layers[0]
        .linear
        .weight
        .val()
        .try_into_vec_as()
        .unwrap();
    let n = w.len() as f64;
    let mean = w.iter().map(|&v| v as f64).sum::<f64>() / n;
    let std = (w.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
    let expected = (2.0f64 / 2048.0).sqrt();
    assert!(mean.abs() < 1e-3, "{mean}");
    assert!((std / expected - 1.0).abs() < 0.01, "{std} vs {expected}");
}

#[test]
fn dropout_and_batch_statistics_only_in_train_mode() {
    let d = device();
    let ad = d.clone().autodiff();
    ad.seed(5);
    let head = HeadConfig::new(16, 4).init(&ad);
    let x = Tensor::<4>::random([8, 16, 3, 3], Distribution::Normal(0.0, 1.0), &ad);
    let train_a = head.forward(x.clone());
    let train_b = head.forward(x.clone());
    // Dropout draws a new mask each time.
    assert!(max_abs_diff(train_a.inner(), train_b.inner()) > 1e-3);
    // `valid()` is deterministic; without dropout, train mode is too, and still differs from
    // eval (batch statistics vs running statistics).
    let eval = head.valid();
    let xe = x.clone().inner();
    assert_eq!(
        max_abs_diff(eval.forward(xe.clone()), eval.forward(xe.clone())),
        0.0
    );
    let head0 = HeadConfig::new(16, 4).with_ps(0.0).init(&ad);
    let t1 = head0.forward(x.clone()).inner();
    let t2 = head0.forward(x).inner();
    assert_eq!(max_abs_diff(t1.clone(), t2), 0.0);
    assert!(max_abs_diff(t1, head0.valid().forward(xe)) > 1e-3);
}

#[test]
fn vision_model_works_at_every_progressive_size() {
    let d = device();
    let model = VisionModelConfig::new(Arch::ResNet50, 3)
        .with_base_width(4)
        .init(&d);
    for size in [32, 48, 64, 100, 128] {
        let y = model.forward(Tensor::zeros([2, 3, size, size], &d));
        assert_eq!(y.dims(), [2, 3], "{size}");
        assert!(y.is_finite().all().into_scalar::<bool>());
    }
    // The head sees 2·nf features: nf = 8·4·4 = 128 for a width-4 ResNet-50.
    assert_eq!(model.head.layers[0].bn.gamma.dims(), [256]);
}
