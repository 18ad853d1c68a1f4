//! Freezing layer groups with fastai's `train_bn` semantics.
//!
//! Burn's `Module::freeze_group` also switches BatchNorm to evaluation (running statistics
//! stop updating). fastai keeps BatchNorm layers of frozen groups training — their affine
//! parameters learn and their running statistics update — which matters when a pretrained
//! body meets a new domain. Here the non-BatchNorm parameters of frozen groups stop
//! receiving gradients (`set_require_grad_group`, which leaves the training flags alone), and
//! the BatchNorm ones keep them unless `train_bn` is off, in which case the group is frozen
//! completely.

use burn::module::{Module, ModuleVisitor, Param, ParamGroup, ParamId};
use burn::tensor::Tensor;
use fastburn_models::VisionModel;

/// Collects the ids of every parameter that lives inside a BatchNorm module.
#[derive(Default)]
struct BnIds {
    depth_in_bn: usize,
    stack: Vec<bool>,
    ids: Vec<ParamId>,
}

impl ModuleVisitor for BnIds {
    fn enter_module(&mut self, _name: &str, container_type: &str) {
        let is_bn = container_type.ends_with(":BatchNorm");
        self.stack.push(is_bn);
        if is_bn {
            self.depth_in_bn += 1;
        }
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        if self.stack.pop() == Some(true) {
            self.depth_in_bn -= 1;
        }
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if self.depth_in_bn > 0 {
            self.ids.push(param.id);
        }
    }
}

/// The ids of all BatchNorm parameters (γ, β, running statistics) of a module.
pub fn batchnorm_group<M: Module>(module: &M) -> ParamGroup {
    let mut v = BnIds::default();
    module.visit(&mut v);
    ParamGroup::from_ids(v.ids)
}

/// Freezes the first `n` layer groups (fastai's `freeze_to(n)`), unfreezing the rest.
/// With `train_bn`, BatchNorm layers in frozen groups keep training.
pub fn freeze_to(
    model: VisionModel,
    groups: &[ParamGroup],
    n: usize,
    train_bn: bool,
) -> VisionModel {
    // Start from everything trainable, flags on.
    let mut model = model.unfreeze().set_require_grad(true);
    if n == 0 {
        return model;
    }
    let mut frozen = groups[0].clone();
    for g in &groups[1..n.min(groups.len())] {
        frozen = frozen.fuse(g);
    }
    if train_bn {
        let bn = batchnorm_group(&model);
        model = model.set_require_grad_group(frozen.exclude(bn), false);
    } else {
        model = model.freeze_group(frozen);
    }
    model
}

/// Whether every float parameter of `group` requires a gradient (`Some(true)`), none does
/// (`Some(false)`), or they differ (`None`).
pub fn group_trainable<M: Module>(model: &M, group: &ParamGroup) -> Option<bool> {
    struct V<'a> {
        group: &'a ParamGroup,
        seen: Option<bool>,
        mixed: bool,
        path: Vec<String>,
    }
    impl ModuleVisitor for V<'_> {
        fn enter_module(&mut self, name: &str, _c: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _c: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            let path = self.path.join(".");
            if self.group.matches(&p.id, Some(&path)) {
                let rg = p.is_require_grad();
                match self.seen {
                    None => self.seen = Some(rg),
                    Some(s) if s != rg => self.mixed = true,
                    _ => {}
                }
            }
        }
    }
    let mut v = V {
        group,
        seen: None,
        mixed: false,
        path: Vec::new(),
    };
    model.visit(&mut v);
    if v.mixed { None } else { v.seen }
}
