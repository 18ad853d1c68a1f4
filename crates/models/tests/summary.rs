//! `summary`: fastai's `learn.summary()` table.

mod common;

use burn::module::Module;
use common::device;
use fastburn_models::{Arch, ResNetConfig, VisionModelConfig, num_parameters, summary};

#[test]
fn vision_model_summary_rows_shapes_and_counts() {
    let d = device();
    let model = VisionModelConfig::new(Arch::ResNet34, 17)
        .with_base_width(8)
        .init(&d);
    let s = summary(&model, [2, 3, 64, 64], &d).unwrap();
    let names: Vec<&str> = s.layers.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "body.conv1",
            "body.bn1",
            "body.relu",
            "body.maxpool",
            "body.layer1",
            "body.layer2",
            "body.layer3",
            "body.layer4",
            "head.pool",
            "head.flatten",
            "head.layers.0.bn",
            "head.layers.0.dropout",
            "head.layers.0.linear",
            "head.layers.0.relu",
            "head.layers.1.bn",
            "head.layers.1.dropout",
            "head.layers.1.linear",
        ]
    );
    let row = |n: &str| s.layers.iter().find(|l| l.name == n).unwrap();
    assert_eq!(row("body.conv1").output_shape, [2, 8, 32, 32]);
    assert_eq!(row("body.conv1").params, 8 * 3 * 7 * 7);
    assert_eq!(row("body.bn1").params, 16);
    assert_eq!(row("body.maxpool").output_shape, [2, 8, 16, 16]);
    assert_eq!(row("body.layer2").output_shape, [2, 16, 8, 8]);
    assert_eq!(row("body.layer4").output_shape, [2, 64, 2, 2]);
    assert_eq!(row("head.pool").output_shape, [2, 128, 1, 1]);
    assert_eq!(row("head.flatten").output_shape, [2, 128]);
    assert_eq!(row("head.layers.0.linear").output_shape, [2, 512]);
    assert_eq!(row("head.layers.0.linear").params, 128 * 512);
    assert_eq!(row("head.layers.1.linear").output_shape, [2, 17]);
    assert_eq!(
        s.layers.iter().map(|l| l.params).sum::<usize>(),
        s.total_params
    );
    assert_eq!(s.total_params, num_parameters(&model));
    assert_eq!(s.trainable_params, s.total_params);
    assert_eq!(row("body.layer3").kind, "Sequential(6 × BasicBlock)");

    let text = s.to_string();
    println!("{text}");
    assert!(text.starts_with("VisionModel (Input shape: 2 x 3 x 64 x 64)"));
    assert!(text.contains(&format!("Total params: {}", group3(s.total_params))));
    assert!(text.contains("Total non-trainable params: 0"));
    assert!(text.contains("body.layer4 (Sequential(3 × BasicBlock))"));
}

fn group3(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[test]
fn frozen_groups_show_as_not_trainable() {
    let d = device();
    let model = VisionModelConfig::new(Arch::ResNet18, 4)
        .with_base_width(4)
        .init(&d.clone().autodiff());
    let groups = model.layer_groups();
    let model = model
        .freeze_group(groups[0].clone())
        .freeze_group(groups[1].clone());
    let s = summary(&model, [1, 3, 32, 32], &d).unwrap();
    let head = num_parameters(&model.head);
    assert_eq!(s.trainable_params, head);
    for l in &s.layers {
        if l.params > 0 {
            assert_eq!(l.trainable(), l.name.starts_with("head."), "{}", l.name);
        }
    }
    let text = s.to_string();
    assert!(text.contains(&format!(
        "Total non-trainable params: {}",
        group3(s.total_params - head)
    )));
}

#[test]
fn summary_does_not_change_the_model() {
    let d = device().autodiff();
    let model = VisionModelConfig::new(Arch::ResNet18, 4)
        .with_base_width(4)
        .init(&d);
    let before: Vec<f32> = model
        .body
        .as_resnet()
        .unwrap()
        .bn1
        .running_mean
        .value()
        .try_into_vec_as()
        .unwrap();
    summary(&model, [2, 3, 32, 32], &d).unwrap();
    let after: Vec<f32> = model
        .body
        .as_resnet()
        .unwrap()
        .bn1
        .running_mean
        .value()
        .try_into_vec_as()
        .unwrap();
    assert_eq!(before, after);
    assert!(
        model
            .body
            .as_resnet()
            .unwrap()
            .conv1
            .weight
            .is_require_grad()
    );
}

#[test]
fn full_size_resnet_summary_counts_torchvision_parameters() {
    let d = device();
    let model = ResNetConfig::new(Arch::ResNet34).init(&d);
    let s = summary(&model, [1, 3, 64, 64], &d).unwrap();
    assert_eq!(s.total_params, 21_797_672);
    let fc = s.layers.last().unwrap();
    assert_eq!(
        (fc.name.as_str(), fc.output_shape.as_slice()),
        ("fc", &[1, 1000][..])
    );
    assert_eq!(s.layers[s.layers.len() - 3].output_shape, [1, 512, 1, 1]);
    // Burn's own count includes the BatchNorm running statistics.
    assert!(model.num_params() > s.total_params);
    let body = ResNetConfig::new(Arch::ResNet50).init_body(&d);
    let s = summary(&body, [1, 3, 64, 64], &d).unwrap();
    assert_eq!(s.total_params, 25_557_032 - 2048 * 1000 - 1000);
    assert_eq!(s.layers.last().unwrap().output_shape, [1, 2048, 2, 2]);
}

#[test]
fn inputs_the_model_cannot_take_are_typed_errors() {
    use fastburn_models::Error;
    let d = device();
    let model = VisionModelConfig::new(Arch::ResNet18, 4)
        .with_base_width(4)
        .init(&d);
    for (shape, why) in [
        ([1, 3, 31, 64], "32 px"),
        ([1, 3, 64, 8], "32 px"),
        ([0, 3, 64, 64], "at least one image"),
        ([1, 4, 64, 64], "3 input channels"),
    ] {
        match summary(&model, shape, &d) {
            Err(e @ Error::InvalidInput { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains(why) && msg.contains("VisionModel"), "{msg}");
                assert!(msg.contains(&format!("{shape:?}")), "{msg}");
            }
            other => panic!("{shape:?}: expected InvalidInput, got {other:?}"),
        }
    }
    let body = ResNetConfig::new(Arch::ResNet18)
        .with_base_width(4)
        .with_in_channels(4)
        .init_body(&d);
    assert!(
        summary(&body, [1, 4, 32, 32], &d).is_ok(),
        "4-band stems are fine"
    );
    assert!(summary(&body, [1, 3, 32, 32], &d).is_err());
}
