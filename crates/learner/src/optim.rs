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
/// // fastai's SGD has no weight decay unless asked for (v2 and 0.7 alike).
/// assert_eq!(sgd, OptimizerConfig::Sgd { momentum: 0.9, wd: WeightDecay::None });
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
    /// SGD with `momentum` and no weight decay (fastai's `SGD(wd=0.)`, in v2 and 0.7; add
    /// one with [`OptimizerConfig::with_wd`]).
    pub fn sgd(momentum: f64) -> Self {
        OptimizerConfig::Sgd {
            momentum,
            wd: WeightDecay::None,
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
    /// `wd_bn_bias = false` (fastai v2's default) exempts BatchNorm parameters and biases
    /// from weight decay: see [`SgdMomentum`].
    pub fn init(&self, wd_bn_bias: bool) -> (ModuleOptimizer, HyperParams) {
        let hp = HyperParams::new(self.momentum());
        let optim = match *self {
            OptimizerConfig::Sgd { wd, .. } => ModuleOptimizer::from(SgdMomentum {
                hp: hp.clone(),
                wd,
                wd_bn_bias,
            }),
            OptimizerConfig::Adam { beta2, eps, wd, .. } => ModuleOptimizer::from(AdamFastai {
                hp: hp.clone(),
                beta2,
                eps,
                wd,
                wd_bn_bias,
            }),
        };
        (optim, hp)
    }
}

/// The learner's optimiser: Burn's [`ModuleOptimizer`] (state per parameter, records)
/// around [`SgdMomentum`] or [`AdamFastai`], with the handle that schedules its momentum.
///
/// ```
/// use fastburn_learner::{Optim, OptimizerConfig};
/// let mut opt = Optim::new(OptimizerConfig::adam(), false);
/// opt.set_momentum(0.85);
/// opt.clear_state(); // fastai's `opt.clear_state()`: moments and step counts go, β1 stays
/// assert_eq!(opt.momentum(), 0.85);
/// ```
pub struct Optim {
    cfg: OptimizerConfig,
    wd_bn_bias: bool,
    inner: ModuleOptimizer,
    hp: HyperParams,
}

impl std::fmt::Debug for Optim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Optim")
            .field("cfg", &self.cfg)
            .field("wd_bn_bias", &self.wd_bn_bias)
            .field("momentum", &self.hp.momentum())
            .finish()
    }
}

impl Optim {
    /// A fresh optimiser (no state yet).
    pub fn new(cfg: OptimizerConfig, wd_bn_bias: bool) -> Self {
        let (inner, hp) = cfg.init(wd_bn_bias);
        Optim {
            cfg,
            wd_bn_bias,
            inner,
            hp,
        }
    }

    /// Its configuration.
    pub fn config(&self) -> OptimizerConfig {
        self.cfg
    }

    /// Whether BatchNorm parameters and biases are decayed too.
    pub fn wd_bn_bias(&self) -> bool {
        self.wd_bn_bias
    }

    /// The momentum / β1 of the next step.
    pub fn momentum(&self) -> f64 {
        self.hp.momentum()
    }

    /// Sets the momentum / β1 of the following steps.
    pub fn set_momentum(&mut self, m: f64) {
        self.hp.set_momentum(m);
    }

    /// One step of every parameter that has a gradient, at its group's learning rate.
    pub fn step<M: burn::module::Module>(
        &mut self,
        lr: burn::lr_scheduler::module_lr_scheduler::ModuleLearningRate,
        model: M,
        grads: burn::optim::GradientsParams,
    ) -> M {
        self.inner.step(lr, model, grads)
    }

    /// Forgets every parameter's state (momentum buffers, Adam moments and step counts),
    /// keeping the configuration and the current momentum: fastai's `opt.clear_state()`.
    pub fn clear_state(&mut self) {
        let m = self.momentum();
        *self = Optim::new(self.cfg, self.wd_bn_bias);
        self.set_momentum(m);
    }

    /// The state, as a Burn record.
    pub fn to_record(&self) -> burn::optim::OptimizerRecord {
        self.inner.to_record()
    }

    /// Replaces the state with a record's (the current momentum stays).
    pub fn load_record(&mut self, record: burn::optim::OptimizerRecord) {
        let m = self.momentum();
        let (fresh, hp) = self.cfg.init(self.wd_bn_bias);
        self.inner = fresh.load_record(record);
        self.hp = hp;
        self.set_momentum(m);
    }

    /// Writes the state to a burnpack file.
    ///
    /// # Errors
    /// Burn's record error.
    pub fn save(&self, path: &std::path::Path) -> Result<(), burn::store::RecordError> {
        self.inner.save(path)
    }

    /// Reads the state from a burnpack file.
    ///
    /// # Errors
    /// Burn's record error; the state is unchanged then.
    pub fn load(&mut self, path: &std::path::Path) -> Result<(), burn::store::RecordError> {
        let record = burn::optim::OptimizerRecord::load(path)?;
        self.load_record(record);
        Ok(())
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

/// Whether a parameter of rank `D` is decayed. In every fastburn model the parameters of
/// rank 1 are exactly the BatchNorm affine parameters and the biases (convolution and
/// linear weights have rank 4 and 2; a test walks each model to keep it so), which fastai
/// v2's default `wd_bn_bias = False` exempts from weight decay.
fn decays<const D: usize>(wd_bn_bias: bool) -> bool {
    wd_bn_bias || D > 1
}

/// SGD with momentum `v ← m·v + g; p ← p − lr·v` (PyTorch's, dampening 0), momentum read
/// from [`HyperParams`] at every step. Weight decay applies to every parameter when
/// `wd_bn_bias`, else not to BatchNorm parameters and biases (the rank-1 parameters).
#[derive(Clone)]
pub struct SgdMomentum {
    hp: HyperParams,
    wd: WeightDecay,
    wd_bn_bias: bool,
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
        let wd = if decays::<D>(self.wd_bn_bias) {
            self.wd
        } else {
            WeightDecay::None
        };
        let (tensor, grad) = decay(wd, lr, tensor, grad);
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
/// p ← p − lr · (m / (1−β1ᵗ)) / (√(v / (1−β2ᵗ)) + ε)`, β1 read from [`HyperParams`];
/// weight decay as [`SgdMomentum`]'s.
#[derive(Clone)]
pub struct AdamFastai {
    hp: HyperParams,
    beta2: f64,
    eps: f64,
    wd: WeightDecay,
    wd_bn_bias: bool,
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
        let wd = if decays::<D>(self.wd_bn_bias) {
            self.wd
        } else {
            WeightDecay::None
        };
        let (tensor, grad) = decay(wd, lr, tensor, grad);
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
