//! The body abstraction: ResNet parameter paths (checkpoints, export bundles) unchanged by
//! the `Body` enum; MobileNetV2 and EfficientNet-B0 through `VisionModel` (groups, N-band
//! stems, configuration round trip, summary, weight files with or without the classifier).

use std::collections::BTreeSet;

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::store::{BurnToPyTorchAdapter, ModuleSnapshot, SafetensorsStore};
use burn::tensor::{Device, Distribution, Tensor};
use fastburn_models::{
    Arch, Body, Error, Head, MobileNetV2Config, ResNetBody, ResNetConfig, VisionModel,
    VisionModelConfig, load_body, load_torchvision, num_parameters, summary,
};

fn device() -> Device {
    Device::flex()
}

/// `VisionModel` as it was before there were other families: a ResNet body field.
#[derive(Module, Debug)]
struct LegacyVisionModel {
    body: ResNetBody,
    head: Head,
}

/// Every tensor path of a module (parameters and BatchNorm statistics).
fn paths<M: Module>(m: &M) -> BTreeSet<String> {
    #[derive(Default)]
    struct V {
        path: Vec<String>,
        out: BTreeSet<String>,
    }
    impl ModuleVisitor for V {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, _: &Param<Tensor<D>>) {
            self.out.insert(self.path.join("."));
        }
    }
    let mut v = V::default();
    m.visit(&mut v);
    v.out
}

fn max_abs_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
    (a - b).abs().max().into_scalar()
}

fn resnet18_w4(d: &Device) -> VisionModel {
    VisionModelConfig::new(Arch::ResNet18, 3)
        .with_base_width(4)
        .init(d)
}

#[test]
fn resnet_parameter_paths_are_unchanged_by_the_body_enum() {
    let d = device();
    let model = resnet18_w4(&d);
    let legacy = LegacyVisionModel {
        body: model.body.as_resnet().unwrap().clone(),
        head: model.head.clone(),
    };
    let new_paths = paths(&model);
    assert_eq!(new_paths, paths(&legacy));
    for key in [
        "body.conv1.weight",
        "body.bn1.running_var",
        "body.layer4.1.conv2.weight",
        "head.layers.0.linear.weight",
    ] {
        assert!(new_paths.contains(key), "{key}");
    }
    assert!(new_paths.iter().all(|p| !p.contains("ResNet")));

    // A record written by the old layout (a checkpoint, an export bundle) loads strictly
    // into the new one, and the other way round.
    let x = Tensor::<4>::random([2, 3, 32, 32], Distribution::Normal(0.0, 1.0), &d);
    let fresh = resnet18_w4(&d);
    let before = fresh.forward(x.clone());
    let loaded = fresh.try_load_record(legacy.clone().into_record()).unwrap();
    assert_eq!(
        max_abs_diff(loaded.forward(x.clone()), model.forward(x.clone())),
        0.0
    );
    assert!(max_abs_diff(before, model.forward(x.clone())) > 0.0);
    let old = LegacyVisionModel {
        body: ResNetConfig::new(Arch::ResNet18)
            .with_base_width(4)
            .init_body(&d),
        head: resnet18_w4(&d).head,
    }
    .try_load_record(model.clone().into_record())
    .unwrap();
    assert_eq!(
        max_abs_diff(
            old.head.forward(old.body.forward(x.clone())),
            model.forward(x)
        ),
        0.0
    );
}

#[test]
fn mobile_families_use_torchvision_paths_under_body() {
    let d = device();
    let m = VisionModelConfig::new(Arch::MobileNetV2, 2)
        .with_width_mult(0.25)
        .init(&d);
    let p = paths(&m);
    for key in [
        "body.features.0.0.weight",
        "body.features.0.1.running_mean",
        "body.features.1.conv.0.0.weight",
        "body.features.2.conv.3.beta",
        "body.features.18.1.gamma",
    ] {
        assert!(p.contains(key), "{key}");
    }
    let e = VisionModelConfig::new(Arch::EfficientNetB0, 2)
        .with_width_mult(0.25)
        .init(&d);
    let p = paths(&e);
    for key in [
        "body.features.0.0.weight",
        "body.features.2.1.block.2.fc1.weight",
        "body.features.8.1.running_var",
    ] {
        assert!(p.contains(key), "{key}");
    }
}

/// Whether the parameter at `path` trains (requires a gradient).
fn trains(model: &VisionModel, path: &str) -> bool {
    struct V<'a> {
        path: Vec<String>,
        want: &'a str,
        found: Option<bool>,
    }
    impl ModuleVisitor for V<'_> {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            if self.path.join(".") == self.want {
                self.found = Some(p.is_require_grad());
            }
        }
    }
    let mut v = V {
        path: Vec::new(),
        want: path,
        found: None,
    };
    model.visit(&mut v);
    v.found.unwrap_or_else(|| panic!("no parameter {path}"))
}

/// The ids of every float tensor of a module.
fn ids<M: Module>(m: &M) -> Vec<ParamId> {
    struct V(Vec<ParamId>);
    impl ModuleVisitor for V {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            self.0.push(p.id);
        }
    }
    let mut v = V(Vec::new());
    m.visit(&mut v);
    v.0
}

#[test]
fn layer_groups_cut_each_family_at_stride_8() {
    let d = device().autodiff();
    // (arch, last path of group 0, first path of group 1, last body path); Burn's paths
    // (a BatchNorm's `gamma` is torchvision's `weight`).
    let cases = [
        (
            Arch::MobileNetV2,
            "body.features.6.conv.2.weight",
            "body.features.7.conv.0.0.weight",
            "body.features.18.0.weight",
        ),
        (
            Arch::EfficientNetB0,
            "body.features.3.1.block.3.0.weight",
            "body.features.4.0.block.0.0.weight",
            "body.features.8.0.weight",
        ),
        (
            Arch::ResNet18,
            "body.layer2.1.conv2.weight",
            "body.layer3.0.conv1.weight",
            "body.layer4.1.conv2.weight",
        ),
    ];
    for (arch, last0, first1, last_body) in cases {
        let model = VisionModelConfig::new(arch, 2)
            .with_width_mult(0.25)
            .with_base_width(4)
            .init(&d);
        let groups = model.layer_groups();
        assert_eq!(groups.len(), model.n_groups());
        // fastai's `freeze_to(1)`: group 0 frozen.
        let f1 = model.clone().freeze_group(groups[0].clone());
        assert!(arch == Arch::ResNet18 || !trains(&f1, "body.features.0.0.weight"));
        assert!(!trains(&f1, last0), "{arch}: {last0}");
        assert!(trains(&f1, first1), "{arch}: {first1}");
        assert!(trains(&f1, last_body), "{arch}");
        // fastai's `freeze()`: only the head trains.
        let f2 = f1.freeze_group(groups[1].clone());
        assert!(!trains(&f2, first1) && !trains(&f2, last_body), "{arch}");
        assert!(trains(&f2, "head.layers.0.linear.weight"), "{arch}");
        // The groups cover every tensor exactly once.
        for id in ids(&model) {
            assert_eq!(
                groups.iter().filter(|g| g.matches(&id, None)).count(),
                1,
                "{arch}"
            );
        }
    }
}

#[test]
fn four_band_stems_keep_the_rgb_function() {
    let d = device();
    for arch in [Arch::MobileNetV2, Arch::EfficientNetB0] {
        let cfg = VisionModelConfig::new(arch, 3).with_width_mult(0.25);
        let rgb = cfg.init(&d);
        let four = cfg
            .clone()
            .with_in_channels(4)
            .init_with_body(rgb.body.clone(), &d);
        assert_eq!(four.body.in_channels(), 4);
        let x = Tensor::<4>::random([1, 3, 32, 32], Distribution::Normal(0.0, 1.0), &d);
        let nir = Tensor::<4>::ones([1, 1, 32, 32], &d);
        let a = rgb.body.forward(x.clone());
        let b = four.body.forward(Tensor::cat(vec![x, nir], 1));
        assert!(max_abs_diff(a, b) < 1e-5, "{arch}");
    }
}

#[test]
fn config_is_read_off_the_model() {
    let d = device();
    for arch in [Arch::MobileNetV2, Arch::EfficientNetB0] {
        let cfg = VisionModelConfig::new(arch, 5)
            .with_width_mult(0.5)
            .with_in_channels(4)
            .with_lin_ftrs(vec![16])
            .with_ps(0.25);
        let back = cfg.init(&d).config().unwrap();
        assert_eq!(format!("{back}"), format!("{cfg}"), "{arch}");
    }
}

#[test]
#[should_panic = "the body's block layout is not efficientnet_b0"]
fn a_body_of_another_family_is_refused() {
    let d = device();
    let body = MobileNetV2Config::new().with_width_mult(0.25).init_body(&d);
    VisionModelConfig::new(Arch::EfficientNetB0, 2).init_with_body(body, &d);
}

#[test]
fn summary_rows_per_family() {
    let d = device();
    let m = VisionModelConfig::new(Arch::MobileNetV2, 4)
        .with_width_mult(0.25)
        .init(&d);
    let s = summary(&m, [2, 3, 64, 64], &d).unwrap();
    let names: Vec<&str> = s.layers.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names[0], "body.features.0");
    assert_eq!(names[18], "body.features.18");
    assert_eq!(s.layers[18].output_shape, vec![2, 1280, 2, 2]);
    assert_eq!(s.layers[1].kind, "InvertedResidual");
    assert_eq!(names[19], "head.pool");
    assert_eq!(s.total_params, num_parameters(&m));
    let body_params: usize = s.layers[..19].iter().map(|l| l.params).sum();
    assert_eq!(body_params, num_parameters(&m.body));

    let e = VisionModelConfig::new(Arch::EfficientNetB0, 4)
        .with_width_mult(0.25)
        .init(&d);
    let s = summary(&e, [1, 3, 32, 32], &d).unwrap();
    assert_eq!(s.layers[6].name, "body.features.6");
    assert_eq!(s.layers[6].kind, "Sequential(4 × MBConv)");
    assert_eq!(s.layers[8].output_shape, vec![1, 320, 1, 1]);
    assert_eq!(s.total_params, num_parameters(&e));
}

/// Writes `body` in torchvision's layout, optionally with a classifier of `n` classes.
fn write_torchvision<M: ModuleSnapshot>(m: &M, path: &std::path::Path) {
    let mut store = SafetensorsStore::from_file(path)
        .with_to_adapter(BurnToPyTorchAdapter)
        .overwrite(true);
    m.save_into(&mut store).unwrap();
}

#[test]
fn bodies_load_from_full_and_features_only_files() {
    let d = device();
    let dir = tempfile::tempdir().unwrap();
    let full = MobileNetV2Config::new()
        .with_width_mult(0.25)
        .with_num_classes(7)
        .init(&d);
    let full_path = dir.path().join("full.safetensors");
    write_torchvision(&full, &full_path);
    let body_path = dir.path().join("features.safetensors");
    write_torchvision(&full.clone().into_body(), &body_path);

    let cfg = VisionModelConfig::new(Arch::MobileNetV2, 2).with_width_mult(0.25);
    let x = Tensor::<4>::random([1, 3, 32, 32], Distribution::Normal(0.0, 1.0), &d);
    let expected = full.features(x.clone());
    for p in [&full_path, &body_path] {
        let body = cfg.load_body(p, &d).unwrap();
        assert!(matches!(body, Body::MobileNetV2(_)));
        assert_eq!(max_abs_diff(body.forward(x.clone()), expected.clone()), 0.0);
    }
    // The full network needs its classifier; torchvision's width is 1.0.
    match load_torchvision(Arch::MobileNetV2, &body_path, &d) {
        Err(Error::MissingKeys { keys, .. }) => {
            assert_eq!(keys, ["classifier.1.bias", "classifier.1.weight"])
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        load_body(Arch::MobileNetV2, &full_path, &d),
        Err(Error::ShapeMismatch { key, .. }) if key == "features.0.0.weight"
    ));
    // A ResNet file is not a MobileNetV2 one: the keys say so.
    let resnet_path = dir.path().join("resnet.safetensors");
    write_torchvision(
        &ResNetConfig::new(Arch::ResNet18)
            .with_base_width(4)
            .init_body(&d),
        &resnet_path,
    );
    assert!(matches!(
        cfg.load_body(&resnet_path, &d),
        Err(Error::MissingKeys { keys, .. }) if keys.contains(&"features.0.0.weight".to_string())
    ));
}
