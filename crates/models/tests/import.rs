//! Weight import: strictness and typed errors on bad files (reliability goals 15 and 16).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use burn::module::Module;
use burn::store::{BurnToPyTorchAdapter, ModuleSnapshot, SafetensorsStore};
use burn::tensor::{Device, TensorData};
use common::{device, fixture, max_abs_diff, read_safetensors, write_safetensors};
use fastburn_models::{
    Arch, Error, MAX_WEIGHT_FILE_BYTES, ResNet, ResNetConfig, WeightFormat, load_body,
    load_torchvision, sniff_format,
};

fn narrow(arch: Arch, width: usize, d: &Device) -> ResNet {
    ResNetConfig::new(arch)
        .with_base_width(width)
        .with_num_classes(10)
        .init(d)
}

/// The torch-written narrow ResNet-50 state_dict, tensor by tensor.
fn r50_tensors() -> BTreeMap<String, TensorData> {
    read_safetensors(&fixture("resnet50_w4.safetensors"))
}

fn write(dir: &Path, name: &str, tensors: &BTreeMap<String, TensorData>) -> PathBuf {
    let path = dir.join(name);
    write_safetensors(&path, tensors);
    path
}

fn load_r50(path: &Path) -> Result<ResNet, Error> {
    narrow(Arch::ResNet50, 4, &device()).load_weights(path)
}

#[test]
fn formats_are_told_by_magic_bytes_not_extension() {
    assert_eq!(
        sniff_format(fixture("resnet18_w8.pth")).unwrap(),
        WeightFormat::Pytorch
    );
    assert_eq!(
        sniff_format(fixture("resnet50_w4.safetensors")).unwrap(),
        WeightFormat::Safetensors
    );
    // A SafeTensors header 128 bytes long (mod 256) makes the file start with 0x80, a
    // pickle's first byte: still SafeTensors.
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("header128.safetensors");
    let header = format!("{:<128}", r#"{"__metadata__":{"format":"pt"}}"#);
    let mut bytes = 128u64.to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    std::fs::write(&st, &bytes).unwrap();
    assert_eq!(bytes[0], 0x80);
    assert_eq!(sniff_format(&st).unwrap(), WeightFormat::Safetensors);
    // A SafeTensors file named .pth still loads.
    let dir = tempfile::tempdir().unwrap();
    let renamed = dir.path().join("weights.pth");
    std::fs::copy(fixture("resnet50_w4.safetensors"), &renamed).unwrap();
    let a = load_r50(&renamed).unwrap();
    let b = load_r50(&fixture("resnet50_w4.pth")).unwrap();
    assert_eq!(
        max_abs_diff(a.conv1.weight.val(), b.conv1.weight.val()),
        0.0
    );
}

#[test]
fn wrong_shape_is_a_typed_error_naming_file_and_key() {
    let path = fixture("resnet18_w2_bad_shape.safetensors");
    let err = narrow(Arch::ResNet18, 2, &device())
        .load_weights(&path)
        .unwrap_err();
    let msg = err.to_string();
    match err {
        Error::ShapeMismatch {
            path: p,
            key,
            expected,
            got,
        } => {
            assert_eq!(p, path);
            assert_eq!(key, "layer2.0.conv1.weight");
            assert_eq!(expected, vec![4, 2, 3, 3]);
            assert_eq!(got, vec![4, 2, 3, 1]);
        }
        e => panic!("expected ShapeMismatch, got {e:?}"),
    }
    assert!(
        msg.contains("resnet18_w2_bad_shape.safetensors") && msg.contains("layer2.0.conv1.weight")
    );
}

#[test]
fn linear_shapes_are_reported_in_pytorch_layout() {
    // The fixture's fc is 10-way; a 1000-way network expects [1000, 128] (PyTorch's
    // [out, in]), not Burn's transposed [128, 1000].
    let err = ResNetConfig::new(Arch::ResNet50)
        .with_base_width(4)
        .init(&device())
        .load_weights(fixture("resnet50_w4.pth"))
        .unwrap_err();
    match err {
        Error::ShapeMismatch {
            key, expected, got, ..
        } => {
            assert_eq!(key, "fc.bias");
            assert_eq!((expected, got), (vec![1000], vec![10]));
        }
        e => panic!("expected ShapeMismatch, got {e:?}"),
    }
    let dir = tempfile::tempdir().unwrap();
    let mut t = r50_tensors();
    t.remove("fc.bias");
    let path = write(dir.path(), "no_fc_bias.safetensors", &t);
    let err = ResNetConfig::new(Arch::ResNet50)
        .with_base_width(4)
        .with_num_classes(7)
        .init(&device())
        .load_weights(&path)
        .unwrap_err();
    assert!(
        matches!(&err, Error::MissingKeys { keys, .. } if keys == &["fc.bias"]),
        "{err}"
    );
    t.insert("fc.bias".into(), TensorData::new(vec![0f32; 7], [7]));
    let path = write(dir.path(), "fc7.safetensors", &t);
    match ResNetConfig::new(Arch::ResNet50)
        .with_base_width(4)
        .with_num_classes(7)
        .init(&device())
        .load_weights(&path)
        .unwrap_err()
    {
        Error::ShapeMismatch {
            key, expected, got, ..
        } => {
            assert_eq!(key, "fc.weight");
            assert_eq!((expected, got), (vec![7, 128], vec![10, 128]));
        }
        e => panic!("expected ShapeMismatch, got {e:?}"),
    }
}

#[test]
fn missing_keys_are_listed() {
    // ResNet-18 weights into a ResNet-34: its extra blocks are missing.
    let path = fixture("resnet18_w8.pth");
    match narrow(Arch::ResNet34, 8, &device())
        .load_weights(&path)
        .unwrap_err()
    {
        Error::MissingKeys { path: p, keys } => {
            assert_eq!(p, path);
            assert!(keys.contains(&"layer1.2.conv1.weight".to_string()));
            assert!(keys.contains(&"layer3.5.bn2.running_var".to_string()));
            assert!(!keys.iter().any(|k| k.starts_with("layer1.0.")));
            // (3+4+6+3 - 8) extra basic blocks × (2 conv + 2 × 4 BatchNorm tensors)
            assert_eq!(keys.len(), 8 * 10);
        }
        e => panic!("expected MissingKeys, got {e:?}"),
    }
    // One BatchNorm statistic dropped.
    let dir = tempfile::tempdir().unwrap();
    let mut t = r50_tensors();
    t.remove("layer4.1.bn2.running_mean");
    let err = load_r50(&write(dir.path(), "m.safetensors", &t)).unwrap_err();
    assert!(
        matches!(&err, Error::MissingKeys { keys, .. } if keys == &["layer4.1.bn2.running_mean"]),
        "{err}"
    );
}

#[test]
fn unexpected_keys_are_listed() {
    // Bottleneck weights into a basic-block network of the same depth prefix.
    match narrow(Arch::ResNet18, 4, &device())
        .load_weights(fixture("resnet50_w4.pth"))
        .unwrap_err()
    {
        Error::UnexpectedKeys { keys, .. } => {
            assert!(keys.contains(&"layer1.0.conv3.weight".to_string()));
            assert!(keys.contains(&"layer1.0.downsample.0.weight".to_string()));
            assert!(keys.contains(&"layer3.5.bn1.bias".to_string()));
            assert!(!keys.iter().any(|k| k.ends_with("num_batches_tracked")));
        }
        e => panic!("expected UnexpectedKeys, got {e:?}"),
    }
    let dir = tempfile::tempdir().unwrap();
    let mut t = r50_tensors();
    t.insert("head.weight".into(), TensorData::new(vec![1f32; 4], [2, 2]));
    let err = load_r50(&write(dir.path(), "u.safetensors", &t)).unwrap_err();
    assert!(
        matches!(&err, Error::UnexpectedKeys { keys, .. } if keys == &["head.weight"]),
        "{err}"
    );
}

#[test]
fn integer_and_float64_tensors() {
    let dir = tempfile::tempdir().unwrap();
    // Integers where a weight belongs: typed error.
    let mut t = r50_tensors();
    let n = t["layer2.1.conv2.weight"].num_elements();
    let shape = t["layer2.1.conv2.weight"].shape().to_vec();
    t.insert(
        "layer2.1.conv2.weight".into(),
        TensorData::new(vec![1i64; n], shape.clone()),
    );
    match load_r50(&write(dir.path(), "int.safetensors", &t)).unwrap_err() {
        Error::DType { key, got, .. } => {
            assert_eq!(key, "layer2.1.conv2.weight");
            assert!(got.contains("I64"), "{got}");
        }
        e => panic!("expected DType, got {e:?}"),
    }
    // float64 is converted to the model's float32, values intact.
    let mut t = r50_tensors();
    for v in t.values_mut() {
        if v.dtype() == burn::tensor::DType::F32 {
            *v = v.clone().convert::<f64>();
        }
    }
    let model = load_r50(&write(dir.path(), "f64.safetensors", &t)).unwrap();
    let reference = load_r50(&fixture("resnet50_w4.safetensors")).unwrap();
    assert_eq!(
        model.layer3[2].conv2.weight.val().dtype(),
        burn::tensor::DType::F32
    );
    assert_eq!(
        max_abs_diff(
            model.layer3[2].conv2.weight.val(),
            reference.layer3[2].conv2.weight.val()
        ),
        0.0
    );
}

#[test]
fn non_finite_weights_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    for (key, value) in [
        ("layer3.1.bn2.running_var", f32::NAN),
        ("layer1.0.conv1.weight", f32::INFINITY),
    ] {
        let mut t = r50_tensors();
        let mut v: Vec<f32> = t[key].try_to_vec::<f32>().unwrap();
        let shape = t[key].shape().to_vec();
        v[0] = value;
        t.insert(key.into(), TensorData::new(v, shape));
        match load_r50(&write(dir.path(), "nan.safetensors", &t)).unwrap_err() {
            Error::NonFinite { key: k, .. } => assert_eq!(k, key),
            e => panic!("expected NonFinite, got {e:?}"),
        }
    }
}

/// Every cut of a weight file is an error that names the file, never a panic, and fast.
#[test]
fn truncated_files_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["resnet18_w8.pth", "resnet50_w4.safetensors"] {
        let bytes = std::fs::read(fixture(name)).unwrap();
        let arch = if name.starts_with("resnet18") {
            (Arch::ResNet18, 8)
        } else {
            (Arch::ResNet50, 4)
        };
        let n = bytes.len();
        for cut in [0, 1, 8, 64, n / 10, n / 2, 9 * n / 10, n - 100, n - 1] {
            let path = dir.path().join(format!("cut{cut}_{name}"));
            std::fs::write(&path, &bytes[..cut]).unwrap();
            let start = Instant::now();
            let err = narrow(arch.0, arch.1, &device())
                .load_weights(&path)
                .unwrap_err();
            assert!(start.elapsed() < Duration::from_secs(2));
            assert!(
                matches!(
                    err,
                    Error::Read { .. } | Error::UnknownFormat { .. } | Error::CorruptTensor { .. }
                ),
                "{name} cut at {cut}: {err:?}"
            );
            assert!(
                err.to_string().contains(&format!("cut{cut}_{name}")),
                "{err}"
            );
        }
    }
    // A SafeTensors file whose header is intact but whose data stops early.
    let mut t = r50_tensors();
    t.remove("fc.weight");
    let path = write(dir.path(), "short.safetensors", &t);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.truncate(bytes.len() - 4);
    std::fs::write(&path, &bytes).unwrap();
    let err = load_r50(&path).unwrap_err();
    assert!(
        matches!(err, Error::Read { .. } | Error::CorruptTensor { .. }),
        "{err:?}"
    );
    println!("truncated safetensors: {err}");
}

#[test]
fn not_a_weight_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.pth");
    std::fs::write(&path, "this is not a checkpoint").unwrap();
    assert!(matches!(
        load_torchvision(Arch::ResNet18, &path, &device()),
        Err(Error::UnknownFormat { .. })
    ));
    let missing = dir.path().join("absent.pth");
    assert!(matches!(
        load_torchvision(Arch::ResNet18, &missing, &device()),
        Err(Error::Io { path, .. }) if path == missing
    ));
}

#[test]
fn oversized_files_are_refused_before_parsing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.safetensors");
    // Sparse: occupies no disk space.
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(MAX_WEIGHT_FILE_BYTES + 1).unwrap();
    let start = Instant::now();
    match load_torchvision(Arch::ResNet18, &path, &device()) {
        Err(Error::TooLarge { size, limit, .. }) => {
            assert_eq!(
                (size, limit),
                (MAX_WEIGHT_FILE_BYTES + 1, MAX_WEIGHT_FILE_BYTES)
            )
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(start.elapsed() < Duration::from_secs(1));
}

/// Goal 16: a pickle memo bomb (2^40 nodes if expanded) is refused in well under a second.
#[test]
fn pickle_memo_bomb_is_refused_quickly() {
    let path = fixture("memo_bomb.pth");
    let start = Instant::now();
    let err = load_torchvision(Arch::ResNet18, &path, &device()).unwrap_err();
    let elapsed = start.elapsed();
    println!("memo bomb refused in {elapsed:?}: {err}");
    assert!(matches!(err, Error::Read { .. }), "{err:?}");
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
}

#[test]
fn load_body_ignores_only_the_classifier() {
    let d = device();
    let full = narrow(Arch::ResNet50, 4, &d)
        .load_weights(fixture("resnet50_w4.pth"))
        .unwrap();
    // Any fc shape, or none at all.
    let body = ResNetConfig::new(Arch::ResNet50)
        .with_base_width(4)
        .init_body(&d)
        .load_weights(fixture("resnet50_w4.pth"))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut t = r50_tensors();
    t.remove("fc.weight");
    t.remove("fc.bias");
    let no_fc = write(dir.path(), "no_fc.safetensors", &t);
    let body2 = ResNetConfig::new(Arch::ResNet50)
        .with_base_width(4)
        .init_body(&d)
        .load_weights(&no_fc)
        .unwrap();
    let x = burn::tensor::Tensor::<4>::random(
        [1, 3, 64, 64],
        burn::tensor::Distribution::Normal(0.0, 1.0),
        &d,
    );
    let expected = full.into_body().forward(x.clone());
    assert_eq!(max_abs_diff(body.forward(x.clone()), expected.clone()), 0.0);
    assert_eq!(max_abs_diff(body2.forward(x), expected), 0.0);
    // Everything else stays strict.
    t.remove("layer1.0.bn1.weight");
    let err = ResNetConfig::new(Arch::ResNet50)
        .with_base_width(4)
        .init_body(&d)
        .load_weights(write(dir.path(), "m.safetensors", &t))
        .unwrap_err();
    assert!(matches!(&err, Error::MissingKeys { keys, .. } if keys == &["layer1.0.bn1.weight"]));
    // The full-size entry point rejects narrow weights, naming the first mismatch.
    assert!(matches!(
        load_body(Arch::ResNet50, fixture("resnet50_w4.pth"), &d),
        Err(Error::ShapeMismatch { .. })
    ));
}

/// Burn's own exporter (with `BurnToPyTorchAdapter`) writes exactly the keys and layouts the
/// importer expects: a round trip is lossless and strict.
#[test]
fn burn_export_round_trips() {
    let d = device();
    let model = narrow(Arch::ResNet50, 4, &d)
        .load_weights(fixture("resnet50_w4.pth"))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("export.safetensors");
    let mut store = SafetensorsStore::from_file(&path)
        .with_to_adapter(BurnToPyTorchAdapter)
        .overwrite(true);
    model.save_into(&mut store).unwrap();
    let back = narrow(Arch::ResNet50, 4, &d).load_weights(&path).unwrap();
    let x = burn::tensor::Tensor::<4>::random(
        [2, 3, 32, 32],
        burn::tensor::Distribution::Normal(0.0, 1.0),
        &d,
    );
    assert_eq!(max_abs_diff(model.forward(x.clone()), back.forward(x)), 0.0);
    assert_eq!(model.num_params(), back.num_params());
}
