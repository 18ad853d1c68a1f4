//! Whole-model gradient operations: global norm, scaling, clamping.

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;

/// The id and rank of every float parameter that requires a gradient.
pub fn trainable_params<M: Module>(model: &M) -> Vec<(ParamId, usize)> {
    struct V(Vec<(ParamId, usize)>);
    impl ModuleVisitor for V {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            if p.is_require_grad() {
                self.0.push((p.id, D));
            }
        }
    }
    let mut v = V(Vec::new());
    model.visit(&mut v);
    v.0
}

macro_rules! with_rank {
    ($rank:expr, $d:ident, $body:block) => {
        match $rank {
            1 => {
                const $d: usize = 1;
                $body
            }
            2 => {
                const $d: usize = 2;
                $body
            }
            3 => {
                const $d: usize = 3;
                $body
            }
            4 => {
                const $d: usize = 4;
                $body
            }
            5 => {
                const $d: usize = 5;
                $body
            }
            _ => {}
        }
    };
}

/// Applies `f` to every gradient present, replacing it.
pub fn map_grads<M: Module>(
    model: &M,
    grads: &mut GradientsParams,
    f: &mut dyn FnMut(GradTensor) -> GradTensor,
) {
    for (id, rank) in trainable_params(model) {
        with_rank!(rank, D, {
            if let Some(g) = grads.remove::<D>(id) {
                let out = f(GradTensor::from_tensor(g));
                grads.register::<D>(id, out.into_tensor::<D>());
            }
        });
    }
}

/// A gradient of any rank, flattened for rank-independent arithmetic.
pub struct GradTensor {
    flat: Tensor<1>,
    shape: Vec<usize>,
}

impl GradTensor {
    fn from_tensor<const D: usize>(t: Tensor<D>) -> Self {
        let shape = t.dims().to_vec();
        let n: usize = shape.iter().product();
        GradTensor {
            flat: t.reshape([n]),
            shape,
        }
    }

    fn into_tensor<const D: usize>(self) -> Tensor<D> {
        let mut dims = [0usize; D];
        dims.copy_from_slice(&self.shape);
        self.flat.reshape(dims)
    }

    /// The flat values.
    pub fn flat(&self) -> &Tensor<1> {
        &self.flat
    }

    /// Replaces the values (same number of elements).
    pub fn with_flat(self, flat: Tensor<1>) -> Self {
        GradTensor {
            flat,
            shape: self.shape,
        }
    }
}

/// The global L2 norm of all gradients (over every parameter, as PyTorch's
/// `clip_grad_norm_`).
pub fn global_norm<M: Module>(model: &M, grads: &mut GradientsParams) -> f64 {
    let mut sq = 0.0f64;
    map_grads(model, grads, &mut |g| {
        let s: f32 = g.flat().clone().square().sum().into_scalar();
        sq += f64::from(s);
        g
    });
    sq.sqrt()
}

/// Multiplies every gradient by `k`.
pub fn scale_grads<M: Module>(model: &M, grads: &mut GradientsParams, k: f64) {
    map_grads(model, grads, &mut |g| {
        let f = g.flat().clone().mul_scalar(k);
        g.with_flat(f)
    });
}

/// Clips by global norm: when the norm exceeds `max_norm`, scales all gradients so that it
/// equals `max_norm`. Returns the norm before clipping.
pub fn clip_grad_norm<M: Module>(model: &M, grads: &mut GradientsParams, max_norm: f64) -> f64 {
    let norm = global_norm(model, grads);
    if norm > max_norm && norm > 0.0 {
        scale_grads(model, grads, max_norm / norm);
    }
    norm
}

/// Clamps every gradient element to `[-value, value]`.
pub fn clip_grad_value<M: Module>(model: &M, grads: &mut GradientsParams, value: f64) {
    map_grads(model, grads, &mut |g| {
        let f = g.flat().clone().clamp(-value, value);
        g.with_flat(f)
    });
}
