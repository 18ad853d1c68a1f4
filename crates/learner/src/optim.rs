//! Optimisers with schedulable hyper-parameters: SGD with momentum (the Planet recipe) and
//! Adam / AdamW with fastai's defaults.
//!
//! Burn's built-in optimisers fix momentum and β1 at construction; fastai's one-cycle moves
//! them every iteration. These implement Burn's [`Optimizer`] trait (so Burn's
//! `ModuleOptimizer` handles parameter groups, state per parameter and records) and read the
//! current momentum from a shared [`HyperParams`] handle that the scheduler writes.

use std::sync::{Arc, Mutex};

use burn::optim::ModuleOptimizer;
use burn::optim::momentum::{Momentum, MomentumConfig};
use burn::optim::{AdamState, AdaptiveMomentumState, Optimizer, SgdState};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

/// How weight decay is applied.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum WeightDecay {
    /// None.
    None,
    /// Decoupled (fastai's default, AdamW's): `p ← p · (1 − lr·wd)` before the step.
    Decoupled(f64),
    /// Classic L2 (PyTorch's SGD `weight_decay`, fastai 0.7): `g ← g + wd·p`.
    L2(f64),
}

/// Which optimiser, with its hyper-parameters.
///
/// ```
/// use fastburn_learner::{OptimizerConfig, WeightDecay};
/// let sgd = OptimizerConfig::sgd(0.9);            // the Planet lesson's optimiser
/// let adam = OptimizerConfig::adam();             // fastai v2's default
/// assert_eq!(adam, OptimizerConfig::Adam { beta1: 0.9, beta2: 0.99, eps: 1e-5, wd: WeightDecay::Decoupled(0.01) });
/// # let _ = sgd;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum OptimizerConfig {
    /// SGD with (PyTorch-style, undampened) momentum.
    Sgd {
        /// Momentum (0 for plain SGD).
        momentum: f64,
        /// Weight decay.
        wd: WeightDecay,
    },
    /// Adam; with decoupled weight decay this is AdamW.
    Adam {
        /// β1 (scheduled like momentum by one-cycle).
        beta1: f64,
        /// β2.
        beta2: f64,
        /// ε.
        eps: f64,
        /// Weight decay.
        wd: WeightDecay,
    },
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        Self::adam()
    }
}

impl OptimizerConfig {
    /// SGD with `momentum` and fastai's decoupled weight decay 0.01.
    pub fn sgd(momentum: f64) -> Self {
        OptimizerConfig::Sgd {
            momentum,
            wd: WeightDecay::Decoupled(0.01),
        }
    }

    /// fastai v2's Adam: β = (0.9, 0.99), ε = 1e-5, decoupled weight decay 0.01.
    pub fn adam() -> Self {
        OptimizerConfig::Adam {
            beta1: 0.9,
            beta2: 0.99,
            eps: 1e-5,
            wd: WeightDecay::Decoupled(0.01),
        }
    }

    /// The same optimiser with another weight decay.
    pub fn with_wd(self, wd: WeightDecay) -> Self {
        match self {
            OptimizerConfig::Sgd { momentum, .. } => OptimizerConfig::Sgd { momentum, wd },
            OptimizerConfig::Adam {
                beta1, beta2, eps, ..
            } => OptimizerConfig::Adam {
                beta1,
                beta2,
                eps,
                wd,
            },
        }
    }

    /// The momentum (SGD) or β1 (Adam).
    pub fn momentum(&self) -> f64 {
        match self {
            OptimizerConfig::Sgd { momentum, .. } => *momentum,
            OptimizerConfig::Adam { beta1, .. } => *beta1,
        }
    }

    /// Builds the optimiser and the handle through which its momentum is scheduled.
    pub fn init(&self) -> (ModuleOptimizer, HyperParams) {
        let hp = HyperParams::new(self.momentum());
        let optim = match *self {
            OptimizerConfig::Sgd { wd, .. } => {
                ModuleOptimizer::from(SgdMomentum { hp: hp.clone(), wd })
            }
            OptimizerConfig::Adam { beta2, eps, wd, .. } => ModuleOptimizer::from(AdamFastai {
                hp: hp.clone(),
                beta2,
                eps,
                wd,
            }),
        };
        (optim, hp)
    }
}

/// The hyper-parameters a scheduler changes while the optimiser runs (shared handle).
#[derive(Debug, Clone)]
pub struct HyperParams {
    mom: Arc<Mutex<f64>>,
}

impl HyperParams {
    fn new(mom: f64) -> Self {
        HyperParams {
            mom: Arc::new(Mutex::new(mom)),
        }
    }

    /// The current momentum / β1.
    pub fn momentum(&self) -> f64 {
        *self.mom.lock().expect("hyper-parameter lock")
    }

    /// Sets the momentum / β1 used by the following steps.
    pub fn set_momentum(&self, m: f64) {
        *self.mom.lock().expect("hyper-parameter lock") = m;
    }
}

fn decay<const D: usize>(
    wd: WeightDecay,
    lr: f64,
    p: Tensor<D>,
    g: Tensor<D>,
) -> (Tensor<D>, Tensor<D>) {
    match wd {
        WeightDecay::None => (p, g),
        WeightDecay::Decoupled(w) => (p.mul_scalar(1.0 - lr * w), g),
        WeightDecay::L2(w) => {
            let g = g + p.clone().mul_scalar(w);
            (p, g)
        }
    }
}

/// SGD with momentum `v ← m·v + g; p ← p − lr·v` (PyTorch's, dampening 0), momentum read
/// from [`HyperParams`] at every step.
#[derive(Clone)]
pub struct SgdMomentum {
    hp: HyperParams,
    wd: WeightDecay,
}

impl Optimizer for SgdMomentum {
    type State<const D: usize> = SgdState<D>;

    fn step<const D: usize>(
        &self,
        lr: f64,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let m = self.hp.momentum();
        let (tensor, grad) = decay(self.wd, lr, tensor, grad);
        if m == 0.0 {
            return (tensor - grad.mul_scalar(lr), Some(SgdState::new(None)));
        }
        let momentum = Momentum::new(&MomentumConfig::new().with_momentum(m).with_dampening(0.0));
        let (v, ms) = momentum.transform(grad, state.and_then(|s| s.momentum));
        (tensor - v.mul_scalar(lr), Some(SgdState::new(Some(ms))))
    }

    fn to_device<const D: usize>(mut state: Self::State<D>, device: &Device) -> Self::State<D> {
        state.momentum = state.momentum.map(|m| m.to_device(device));
        state
    }
}

/// fastai's Adam step (`average_grad(dampening=True)`, `average_sqr_grad`, `adam_step`):
/// `m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²;
/// p ← p − lr · (m / (1−β1ᵗ)) / (√(v / (1−β2ᵗ)) + ε)`, β1 read from [`HyperParams`].
#[derive(Clone)]
pub struct AdamFastai {
    hp: HyperParams,
    beta2: f64,
    eps: f64,
    wd: WeightDecay,
}

impl Optimizer for AdamFastai {
    type State<const D: usize> = AdamState<D>;

    fn step<const D: usize>(
        &self,
        lr: f64,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let b1 = self.hp.momentum();
        let b2 = self.beta2;
        let (tensor, grad) = decay(self.wd, lr, tensor, grad);
        let (time, m, v) = match state {
            Some(s) => {
                let st = s.momentum;
                (
                    st.time + 1,
                    st.moment_1.mul_scalar(b1) + grad.clone().mul_scalar(1.0 - b1),
                    st.moment_2.mul_scalar(b2) + grad.square().mul_scalar(1.0 - b2),
                )
            }
            None => (
                1,
                grad.clone().mul_scalar(1.0 - b1),
                grad.square().mul_scalar(1.0 - b2),
            ),
        };
        let debias1 = 1.0 - b1.powi(time as i32);
        let debias2 = 1.0 - b2.powi(time as i32);
        let denom = v.clone().div_scalar(debias2).sqrt().add_scalar(self.eps);
        let update = m.clone().div(denom).mul_scalar(lr / debias1);
        (
            tensor - update,
            Some(AdamState::new(AdaptiveMomentumState::new(time, m, v))),
        )
    }

    fn to_device<const D: usize>(mut state: Self::State<D>, device: &Device) -> Self::State<D> {
        state.momentum.moment_1 = state.momentum.moment_1.to_device(device);
        state.momentum.moment_2 = state.momentum.moment_2.to_device(device);
        state
    }
}
