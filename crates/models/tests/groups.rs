//! Layer groups: fastai's three-way ResNet split as Burn `ParamGroup`s.

mod common;

use burn::module::{Flag, Module, ModuleVisitor, Param, ParamId};
use burn::optim::{GradientsParams, SgdConfig};
use burn::tensor::{Distribution, Tensor};
use common::{device, max_abs_diff};
use fastburn_models::{Arch, VisionModel, VisionModelConfig, num_parameters};

/// (id, path) of every float tensor and flag.
#[derive(Default)]
struct Ids {
    stack: Vec<String>,
    ids: Vec<(ParamId, String)>,
}

impl ModuleVisitor for Ids {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.stack.push(name.to_string());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.stack.pop();
    }
    fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
        self.ids.push((p.id, self.stack.join(".")));
    }
    fn visit_flag(&mut self, f: &Param<Flag>) {
        self.ids.push((f.id, self.stack.join(".")));
    }
}

fn all_ids(m: &VisionModel) -> Vec<(ParamId, String)> {
    let mut v = Ids::default();
    m.visit(&mut v);
    v.ids
}

fn expected_group(path: &str) -> usize {
    let stem = ["body.conv1.", "body.bn1.", "body.layer1.", "body.layer2."];
    if stem.iter().any(|p| path.starts_with(p)) {
        0
    } else if path.starts_with("body.layer3.") || path.starts_with("body.layer4.") {
        1
    } else {
        assert!(path.starts_with("head."), "{path}");
        2
    }
}

#[test]
fn groups_partition_every_id_exactly_once() {
    for arch in [Arch::ResNet18, Arch::ResNet50] {
        let model = VisionModelConfig::new(arch, 17)
            .with_base_width(4)
            .init(&device());
        let groups = model.layer_groups();
        assert_eq!(groups.len(), model.n_groups());
        let ids = all_ids(&model);
        // Parameters, running statistics and training flags.
        assert!(ids.iter().any(|(_, p)| p.ends_with("running_var")));
        assert!(ids.iter().any(|(_, p)| p.ends_with("training")));
        for (id, path) in &ids {
            let member: Vec<usize> = (0..3)
                .filter(|&g| groups[g].matches(id, Some(path)))
                .collect();
            assert_eq!(member, vec![expected_group(path)], "{arch} {path}");
        }
    }
}

/// fastai's `freeze()`: with groups 0 and 1 frozen, one SGD step changes the head only; the
/// frozen BatchNorms keep their running statistics.
#[test]
fn a_frozen_group_is_unchanged_by_a_step() {
    let ad = device().autodiff();
    ad.seed(1);
    let model = VisionModelConfig::new(Arch::ResNet18, 3)
        .with_base_width(4)
        .init(&ad);
    let groups = model.layer_groups();
    let model = model
        .freeze_group(groups[0].clone())
        .freeze_group(groups[1].clone());
    let before = model.valid();
    let x = Tensor::<4>::random([4, 3, 32, 32], Distribution::Normal(0.0, 1.0), &ad);
    let loss = model.forward(x).powi_scalar(2).mean();
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    let mut optim = SgdConfig::new().init();
    let after = optim.step(0.1, model, grads).valid();

    let unchanged = |a: Tensor<4>, b: Tensor<4>| max_abs_diff(a, b) == 0.0;
    assert!(unchanged(
        before.body.as_resnet().unwrap().conv1.weight.val(),
        after.body.as_resnet().unwrap().conv1.weight.val()
    ));
    assert!(unchanged(
        before.body.as_resnet().unwrap().layer4[1]
            .conv2
            .weight
            .val(),
        after.body.as_resnet().unwrap().layer4[1].conv2.weight.val()
    ));
    assert_eq!(
        max_abs_diff(
            before.body.as_resnet().unwrap().layer3[0]
                .bn1
                .running_mean
                .value(),
            after.body.as_resnet().unwrap().layer3[0]
                .bn1
                .running_mean
                .value()
        ),
        0.0
    );
    let head_change = max_abs_diff(
        before.head.layers[1].linear.weight.val(),
        after.head.layers[1].linear.weight.val(),
    );
    assert!(head_change > 0.0);
}

#[test]
fn group_sizes_add_up() {
    let model = VisionModelConfig::new(Arch::ResNet34, 17).init(&device());
    let b = model.body.as_resnet().unwrap();
    let g0 = num_parameters(&b.conv1)
        + num_parameters(&b.bn1)
        + num_parameters(&b.layer1)
        + num_parameters(&b.layer2);
    let g1 = num_parameters(&b.layer3) + num_parameters(&b.layer4);
    let g2 = num_parameters(&model.head);
    assert_eq!(g0 + g1 + g2, num_parameters(&model));
    // ResNet-34 without fc: 21,797,672 − 513,000.
    assert_eq!(g0 + g1, 21_797_672 - 513_000);
}
