//! The ResNet family: parameter names, sizes, shapes, stem adaptation, configuration.

mod common;

use std::collections::BTreeSet;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Distribution, Tensor};
use common::{device, max_abs_diff};
use fastburn_models::{
    Arch, ChannelAdapt, ResNet, ResNetConfig, VisionModelConfig, num_parameters,
};

/// Every tensor path of a module, as Burn's traversal builds it.
#[derive(Default)]
struct Paths {
    stack: Vec<String>,
    paths: BTreeSet<String>,
}

impl ModuleVisitor for Paths {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.stack.push(name.to_string());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.stack.pop();
    }
    fn visit_float<const D: usize>(&mut self, _: &Param<Tensor<D>>) {
        self.paths.insert(self.stack.join("."));
    }
}

fn paths<M: Module>(m: &M) -> BTreeSet<String> {
    let mut p = Paths::default();
    m.visit(&mut p);
    p.paths
}

/// torchvision's `resnet18().state_dict()` keys without `num_batches_tracked`, with
/// BatchNorm's `weight`/`bias` under Burn's names `gamma`/`beta`.
fn torchvision_resnet18_keys() -> BTreeSet<String> {
    let bn = |p: &str| -> Vec<String> {
        ["gamma", "beta", "running_mean", "running_var"]
            .iter()
            .map(|s| format!("{p}.{s}"))
            .collect()
    };
    let mut keys: BTreeSet<String> = BTreeSet::new();
    keys.insert("conv1.weight".into());
    keys.extend(bn("bn1"));
    for layer in 1..=4 {
        for block in 0..2 {
            let p = format!("layer{layer}.{block}");
            keys.insert(format!("{p}.conv1.weight"));
            keys.extend(bn(&format!("{p}.bn1")));
            keys.insert(format!("{p}.conv2.weight"));
            keys.extend(bn(&format!("{p}.bn2")));
            if layer > 1 && block == 0 {
                keys.insert(format!("{p}.downsample.0.weight"));
                keys.extend(bn(&format!("{p}.downsample.1")));
            }
        }
    }
    keys.insert("fc.weight".into());
    keys.insert("fc.bias".into());
    keys
}

#[test]
fn parameter_paths_are_torchvision_keys() {
    let model = ResNetConfig::new(Arch::ResNet18).init(&device());
    let ours = paths(&model);
    assert_eq!(ours, torchvision_resnet18_keys());
    // torchvision: 122 state_dict entries, 20 of them num_batches_tracked.
    assert_eq!(ours.len(), 102);
    let r50 = paths(&ResNetConfig::new(Arch::ResNet50).init(&device()));
    assert_eq!(r50.len(), 320 - 53);
    for key in [
        "layer1.0.downsample.0.weight",
        "layer1.0.downsample.1.running_var",
        "layer4.2.conv3.weight",
        "layer4.2.bn3.gamma",
    ] {
        assert!(r50.contains(key), "{key}");
    }
}

#[test]
fn parameter_counts_equal_torchvision() {
    // torchvision's `num_params` metadata; construction is lazy, nothing is allocated.
    let expected = [
        (Arch::ResNet18, 11_689_512),
        (Arch::ResNet34, 21_797_672),
        (Arch::ResNet50, 25_557_032),
        (Arch::ResNet101, 44_549_160),
        (Arch::ResNet152, 60_192_808),
    ];
    for (arch, n) in expected {
        let model = ResNetConfig::new(arch).init(&device());
        assert_eq!(num_parameters(&model), n, "{arch}");
        assert_eq!(model.arch(), Some(arch));
        assert_eq!(
            Some(model.into_body().num_features()),
            arch.num_features(64),
            "{arch}"
        );
    }
}

#[test]
fn body_output_is_stride_32_at_any_size() {
    let d = device();
    for arch in [Arch::ResNet18, Arch::ResNet50] {
        let body = ResNetConfig::new(arch).with_base_width(4).init_body(&d);
        let nf = arch.num_features(4).unwrap();
        assert_eq!(body.num_features(), nf);
        for (h, w, oh, ow) in [
            (32, 32, 1, 1),
            (64, 96, 2, 3),
            (33, 47, 2, 2),
            (224, 224, 7, 7),
        ] {
            let y = body.forward(Tensor::zeros([2, 3, h, w], &d));
            assert_eq!(y.dims(), [2, nf, oh, ow], "{arch} at {h}×{w}");
        }
    }
}

#[test]
fn resnet_is_body_then_average_pool_then_fc() {
    let d = device();
    d.seed(3);
    let model = ResNetConfig::new(Arch::ResNet34)
        .with_base_width(4)
        .with_num_classes(5)
        .init(&d);
    let x = Tensor::<4>::random([2, 3, 64, 64], Distribution::Normal(0.0, 1.0), &d);
    let logits = model.forward(x.clone());
    let fc = model.fc.clone();
    let features = model.into_body().forward(x);
    let pooled: Tensor<2> = features.mean_dims(&[2, 3]).flatten(1, 3);
    assert_eq!(max_abs_diff(logits, fc.forward(pooled)), 0.0);
}

fn stem_model(d: &burn::tensor::Device) -> ResNet {
    d.seed(7);
    ResNetConfig::new(Arch::ResNet18)
        .with_base_width(4)
        .with_num_classes(3)
        .init(d)
}

#[test]
fn four_band_stem_starts_as_the_rgb_network() {
    let d = device();
    let rgb = stem_model(&d);
    let x = Tensor::<4>::random([2, 3, 48, 48], Distribution::Normal(0.0, 1.0), &d);
    let nir = Tensor::<4>::random([2, 1, 48, 48], Distribution::Normal(0.0, 1.0), &d);
    let expected = rgb.forward(x.clone());
    let w_rgb = rgb.conv1.weight.val();
    let four = rgb.adapt_in_channels(4);
    assert_eq!(four.in_channels(), 4);
    let w = four.conv1.weight.val();
    assert_eq!(w.dims(), [4, 4, 7, 7]);
    assert_eq!(max_abs_diff(w.clone().slice([0..4, 0..3]), w_rgb), 0.0);
    assert_eq!(w.slice([0..4, 3..4]).abs().max().into_scalar::<f32>(), 0.0);
    let got = four.forward(Tensor::cat(vec![x, nir], 1));
    assert!(max_abs_diff(got, expected) < 1e-5);
}

#[test]
fn one_and_two_band_stems_follow_fastai() {
    let d = device();
    let x = Tensor::<4>::random([2, 1, 40, 40], Distribution::Normal(0.0, 1.0), &d);
    // 1 band: filters summed, so a grey image g computes what (g, g, g) did.
    let rgb = stem_model(&d);
    let expected = rgb.forward(Tensor::cat(vec![x.clone(), x.clone(), x.clone()], 1));
    let grey = rgb.adapt_in_channels(1);
    assert!(max_abs_diff(grey.forward(x.clone()), expected) < 1e-4);
    // 2 bands: the first two filters × 1.5.
    let rgb = stem_model(&d);
    let w = rgb.conv1.weight.val();
    let two = rgb.adapt_in_channels(2);
    let expected = w.slice([0..4, 0..2]).mul_scalar(1.5);
    assert!(max_abs_diff(two.conv1.weight.val(), expected) < 1e-6);
}

#[test]
fn repeat_rule_spreads_the_filters_over_all_bands() {
    let d = device();
    let rgb = stem_model(&d);
    let x = Tensor::<4>::random([2, 3, 40, 40], Distribution::Normal(0.0, 1.0), &d);
    let expected = rgb.forward(x.clone());
    // 6 bands = RGB twice, each filter scaled by 3/6: feeding (x, x) computes what x did.
    let six = rgb.adapt_in_channels_with(6, ChannelAdapt::Repeat);
    let got = six.forward(Tensor::cat(vec![x.clone(), x], 1));
    assert!(max_abs_diff(got, expected) < 1e-4);
}

#[test]
fn adapting_keeps_the_parameter_trainable() {
    let d = device().autodiff();
    let model = ResNetConfig::new(Arch::ResNet18)
        .with_base_width(4)
        .init(&d)
        .adapt_in_channels(4);
    assert!(model.conv1.weight.is_require_grad());
    let loss = model.forward(Tensor::ones([1, 4, 32, 32], &d)).sum();
    let grads = loss.backward();
    let g = model.conv1.weight.grad(&grads).unwrap();
    assert_eq!(g.dims(), [4, 4, 7, 7]);
}

#[test]
fn vision_model_adapts_a_pretrained_body_to_its_channels() {
    let d = device();
    let body = ResNetConfig::new(Arch::ResNet18)
        .with_base_width(4)
        .init_body(&d);
    let model = VisionModelConfig::new(Arch::ResNet18, 5)
        .with_in_channels(4)
        .init_with_body(body, &d);
    assert_eq!(model.body.in_channels(), 4);
    assert_eq!(
        model.forward(Tensor::zeros([2, 4, 32, 32], &d)).dims(),
        [2, 5]
    );
}

#[test]
#[should_panic = "the body's block layout is not resnet34"]
fn a_body_of_another_architecture_is_refused() {
    let d = device();
    let body = ResNetConfig::new(Arch::ResNet18).init_body(&d);
    VisionModelConfig::new(Arch::ResNet34, 5).init_with_body(body, &d);
}

#[test]
#[should_panic = "base_width must be at least 1"]
fn zero_width_panics() {
    ResNetConfig::new(Arch::ResNet18)
        .with_base_width(0)
        .init(&device());
}

#[test]
#[should_panic = "in_channels must be at least 1"]
fn zero_channels_panics() {
    ResNetConfig::new(Arch::ResNet18)
        .with_in_channels(0)
        .init(&device());
}

#[test]
fn arch_names_round_trip() {
    for arch in Arch::ALL {
        assert_eq!(arch.to_string().parse::<Arch>().unwrap(), arch);
        let json = serde_json::to_string(&arch).unwrap();
        assert_eq!(json, format!("\"{arch}\""));
        assert_eq!(serde_json::from_str::<Arch>(&json).unwrap(), arch);
    }
    assert_eq!("ResNet-50".parse::<Arch>().unwrap(), Arch::ResNet50);
    let err = "vgg16".parse::<Arch>().unwrap_err();
    assert!(err.to_string().contains("vgg16"));
    // The config round-trips through JSON with the arch by name.
    let config = ResNetConfig::new(Arch::ResNet101).with_in_channels(4);
    let json = burn::config::config_to_json(&config);
    assert!(json.contains("\"resnet101\""), "{json}");
}
