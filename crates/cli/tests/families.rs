//! `fastburn train --arch mobilenet_v2 | efficientnet_b0 --pretrained FILE --recipe fine-tune`
//! end to end on tiny synthetic data (32-px chips, `--width-mult 0.25`): the pretrained file
//! is a body-only torchvision state_dict (`features.*`, SafeTensors) written by the test; the
//! run starts frozen, unfreezes, exports, and `fastburn predict` reproduces its submission.

use std::path::{Path, PathBuf};

use fastburn::burn::store::{BurnToPyTorchAdapter, ModuleSnapshot, SafetensorsStore};
use fastburn::burn::tensor::{Device, Tensor};
use fastburn::models::{Arch, Body, EfficientNetConfig, MobileNetV2Config, VisionModelConfig};

const WIDTH_MULT: f64 = 0.25;

mod common;
use common::{assert_status, fastburn, s, text};

/// A freshly initialised body of `arch` saved as torchvision names it, `features.*` only.
fn write_pretrained(arch: Arch, path: &Path) {
    let d = Device::flex();
    let mut store = SafetensorsStore::from_file(path)
        .with_to_adapter(BurnToPyTorchAdapter)
        .overwrite(true);
    match arch {
        Arch::MobileNetV2 => MobileNetV2Config::new()
            .with_width_mult(WIDTH_MULT)
            .init_body(&d)
            .save_into(&mut store),
        Arch::EfficientNetB0 => EfficientNetConfig::new()
            .with_width_mult(WIDTH_MULT)
            .init_body(&d)
            .save_into(&mut store),
        other => panic!("not a mobile family: {other}"),
    }
    .expect("writes the weights");
}

/// `features.0.0.weight`: the stem convolution.
fn stem_weight(body: &Body) -> Tensor<4> {
    use fastburn::models::{EfficientNetLayer, MobileNetV2Layer};
    match body {
        Body::MobileNetV2(b) => match &b.features[0] {
            MobileNetV2Layer::Conv(cn) => cn.0.weight.val(),
            _ => panic!("features.0 is the stem"),
        },
        Body::EfficientNet(b) => match &b.features[0] {
            EfficientNetLayer::Conv(cn) => cn.0.weight.val(),
            _ => panic!("features.0 is the stem"),
        },
        Body::ResNet(_) => panic!("not a mobile body"),
    }
}

fn fine_tune_export_predict(arch: Arch) {
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join(format!("{arch}-features.safetensors"));
    write_pretrained(arch, &weights);
    let run: PathBuf = dir.path().join("run");
    let width = WIDTH_MULT.to_string();
    let name = arch.to_string();
    let out = fastburn(&[
        "train",
        "--out",
        s(&run),
        "--n",
        "40",
        "--n-test",
        "6",
        "--synth-size",
        "32",
        "--arch",
        &name,
        "--width-mult",
        &width,
        "--pretrained",
        s(&weights),
        "--recipe",
        "fine-tune",
        "--sizes",
        "32",
        "--epochs",
        "2",
        "--lr",
        "1e-2",
        "--bs",
        "8",
        "--device",
        "flex",
    ]);
    assert_status(&out, 0);
    let stdout = text(&out.stdout);
    // The head trains first (frozen body), then the whole network.
    let frozen = stdout
        .find("frozen phase of 1 epochs")
        .unwrap_or_else(|| panic!("{arch}: no frozen phase in\n{stdout}"));
    let unfrozen = stdout
        .find("unfrozen phase of 2 epochs")
        .unwrap_or_else(|| panic!("{arch}: no unfrozen phase in\n{stdout}"));
    assert!(frozen < unfrozen, "{stdout}");
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["epochs"].as_array().unwrap().len(), 3, "{metrics}");

    // The bundle rebuilds the same family at the same width, and its body moved away from
    // the pretrained weights once unfrozen (the stem convolution is in the first group).
    let d = Device::flex();
    let inf = fastburn::learner::load_learner(&run.join("model.fbx"), &d).unwrap();
    let cfg = inf.model().config().unwrap();
    assert_eq!((cfg.arch, cfg.width_mult), (arch, WIDTH_MULT));
    let pretrained = VisionModelConfig::new(arch, 1)
        .with_width_mult(WIDTH_MULT)
        .load_body(&weights, &d)
        .unwrap();
    let moved: f32 = (stem_weight(&inf.model().body) - stem_weight(&pretrained))
        .abs()
        .max()
        .into_scalar();
    assert!(moved > 0.0, "{arch}: the stem never trained");

    // predict with TTA reproduces the run's submission.
    let test_dir = run.join("synth").join("test-jpg");
    let sub = dir.path().join("sub.csv");
    let out = fastburn(&[
        "predict",
        "--model",
        s(&run),
        "--images",
        s(&test_dir),
        "--out",
        s(&sub),
        "--tta",
        "--device",
        "flex",
    ]);
    assert_status(&out, 0);
    let predicted = std::fs::read_to_string(&sub).unwrap();
    assert_eq!(predicted.lines().count(), 1 + 6, "{predicted}");
    assert_eq!(
        predicted,
        std::fs::read_to_string(run.join("submission.csv")).unwrap()
    );
}

#[test]
fn mobilenet_v2_fine_tunes_from_a_features_only_file_and_predicts() {
    fine_tune_export_predict(Arch::MobileNetV2);
}

#[test]
fn efficientnet_b0_fine_tunes_from_a_features_only_file_and_predicts() {
    fine_tune_export_predict(Arch::EfficientNetB0);
}

#[test]
fn unknown_arch_lists_every_family() {
    let out = fastburn(&["train", "--arch", "vgg16", "--out", "unused"]);
    assert_status(&out, 2);
    let err = text(&out.stderr);
    for name in ["resnet34", "mobilenet_v2", "efficientnet_b0"] {
        assert!(err.contains(name), "{err}");
    }
}
