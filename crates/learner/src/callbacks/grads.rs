use burn::optim::GradientsParams;

use crate::error::{Error, Result};
use crate::grads::{clip_grad_norm, clip_grad_value, scale_grads, trainable_params};
use crate::learner::Learner;
use crate::learner::{Callback, Flow};

/// Stops training in the step where the loss becomes NaN or infinite, with an error naming
/// the epoch and iteration (installed by default). Nothing runs after it in that step: no
/// backward, no optimiser step, no checkpoint.
#[derive(Debug, Clone, Copy, Default)]
pub struct TerminateOnNaN;

impl Callback for TerminateOnNaN {
    fn name(&self) -> String {
        "terminate_on_nan".into()
    }

    fn order(&self) -> i32 {
        -20
    }

    fn after_loss(&mut self, l: &mut Learner) -> Result<Flow> {
        let s = l.state();
        match s.loss {
            Some(v) if !v.is_finite() => Err(Error::NonFiniteLoss {
                epoch: s.epoch,
                iteration: s.iter,
                batch: s.batch,
                loss: v,
            }),
            _ => Ok(Flow::Continue),
        }
    }
}

/// Gradient clipping over the whole model: by global L2 norm (PyTorch's
/// `clip_grad_norm_`: afterwards the norm is at most `c`, exactly `c` when it was larger) or
/// by value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GradientClip {
    /// Scale all gradients so their global norm is at most this.
    Norm(f64),
    /// Clamp every gradient element to `±` this.
    Value(f64),
}

impl Callback for GradientClip {
    fn name(&self) -> String {
        "gradient_clip".into()
    }

    fn order(&self) -> i32 {
        5
    }

    fn after_backward(&mut self, l: &mut Learner) -> Result<Flow> {
        let Some(mut grads) = l.take_grads() else {
            return Ok(Flow::Continue);
        };
        match *self {
            GradientClip::Norm(c) => {
                clip_grad_norm(l.model(), &mut grads, c);
            }
            GradientClip::Value(c) => clip_grad_value(l.model(), &mut grads, c),
        }
        l.set_grads(Some(grads));
        Ok(Flow::Continue)
    }
}

/// Gradient accumulation: sums the gradients of `steps` batches and steps once with their
/// mean, so `steps` batches of `bs` train like one batch of `steps · bs` (fastai's
/// `GradientAccumulation`). A last incomplete group at the end of an epoch is discarded.
pub struct GradientAccumulation {
    steps: usize,
    count: usize,
    acc: Option<GradientsParams>,
}

impl GradientAccumulation {
    /// Accumulate over `steps` batches (≥ 1).
    pub fn new(steps: usize) -> Self {
        GradientAccumulation {
            steps: steps.max(1),
            count: 0,
            acc: None,
        }
    }
}

impl Callback for GradientAccumulation {
    fn name(&self) -> String {
        "gradient_accumulation".into()
    }

    fn order(&self) -> i32 {
        4
    }

    fn before_epoch(&mut self, _l: &mut Learner) -> Result<Flow> {
        self.count = 0;
        self.acc = None;
        Ok(Flow::Continue)
    }

    fn after_backward(&mut self, l: &mut Learner) -> Result<Flow> {
        let Some(grads) = l.take_grads() else {
            return Ok(Flow::Continue);
        };
        let mut acc = match self.acc.take() {
            None => grads,
            Some(mut acc) => {
                let model = l.model();
                add_into(model, &mut acc, grads);
                acc
            }
        };
        self.count += 1;
        if self.count < self.steps {
            self.acc = Some(acc);
            return Ok(Flow::SkipStep);
        }
        scale_grads(l.model(), &mut acc, 1.0 / self.steps as f64);
        self.count = 0;
        l.set_grads(Some(acc));
        Ok(Flow::Continue)
    }
}

fn add_into<M: burn::module::Module>(
    model: &M,
    acc: &mut GradientsParams,
    mut other: GradientsParams,
) {
    for (id, rank) in trainable_params(model) {
        macro_rules! add {
            ($d:literal) => {{
                if let Some(g) = other.remove::<$d>(id) {
                    let sum = match acc.remove::<$d>(id) {
                        Some(a) => a + g,
                        None => g,
                    };
                    acc.register::<$d>(id, sum);
                }
            }};
        }
        match rank {
            1 => add!(1),
            2 => add!(2),
            3 => add!(3),
            4 => add!(4),
            _ => {}
        }
    }
}
