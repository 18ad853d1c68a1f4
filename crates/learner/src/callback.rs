//! Callbacks: hooks into every stage of training that can observe and act (change
//! hyper-parameters, edit gradients, skip a step, cancel a batch, an epoch or the fit).

use crate::error::Result;
use crate::learner::Learner;

/// What the loop does after a hook returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Go on.
    Continue,
    /// Skip the optimiser step of this batch (from `after_backward`; gradient accumulation).
    SkipStep,
    /// Stop this batch here (no step), go to the next.
    CancelBatch,
    /// Stop this epoch's training (validation still runs), go to the next epoch.
    CancelEpoch,
    /// Stop the fit after this point (`after_fit` still runs).
    CancelFit,
}

impl Flow {
    /// The stronger of two flows (`CancelFit` > `CancelEpoch` > `CancelBatch` > `SkipStep`
    /// > `Continue`).
    pub fn max(self, other: Flow) -> Flow {
        fn rank(f: Flow) -> u8 {
            match f {
                Flow::Continue => 0,
                Flow::SkipStep => 1,
                Flow::CancelBatch => 2,
                Flow::CancelEpoch => 3,
                Flow::CancelFit => 4,
            }
        }
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}

/// The hooks, all no-ops by default. Each receives the learner mutably: read its
/// [`state`](Learner::state), change its hyper-parameters, model, or data, and return a
/// [`Flow`]. Callbacks run in ascending [`order`](Callback::order), then in the order they
/// were added.
///
/// ```
/// use fastburn_learner::{Callback, Flow, Learner, Result};
/// /// Stops the fit once the training loss drops below a target.
/// struct StopAt(f32);
/// impl Callback for StopAt {
///     fn name(&self) -> String { "stop_at".into() }
///     fn after_batch(&mut self, l: &mut Learner) -> Result<Flow> {
///         Ok(if l.state().loss.is_some_and(|x| x < self.0) { Flow::CancelFit } else { Flow::Continue })
///     }
/// }
/// ```
#[allow(unused_variables)]
pub trait Callback: Send {
    /// A short name (used to find and remove it).
    fn name(&self) -> String;

    /// Position among callbacks: lower runs first (the parameter scheduler runs at -10,
    /// loggers at 10, progress at 20).
    fn order(&self) -> i32 {
        0
    }

    /// Before the first epoch.
    fn before_fit(&mut self, l: &mut Learner) -> Result<Flow> {
        Ok(Flow::Continue)
    }
    /// After the last epoch (also after a cancelled fit; not after an error).
    fn after_fit(&mut self, l: &mut Learner) -> Result<Flow> {
        Ok(Flow::Continue)
    }
    /// Before each epoch.
    fn before_epoch(&mut self, l: &mut Learner) -> Result<Flow> {
        Ok(Flow::Continue)
    }
    /// After each epoch's validation; the epoch's row is in [`Learner::history`].
    fn after_epoch(&mut self, l: &mut Learner) -> Result<Flow> {
        Ok(Flow::Continue)
    }
    /// Before the training phase of an epoch.
    fn before_train(&mut self, l: &mut Learner) -> Result<Flow> {
        Ok(Flow::Continue)
    }
    /// After the training phase of an epoch.
    fn after_train(&mut self, l: &mut Learner) -> Result<Flow> {
        Ok(Flow::Continue)
    }
    /// Before the validation phase.
    fn before_validate(&mut self, l: &mut Learner) -> Result<Flow> {
        Ok(Flow::Continue)
    }
    /// After the validation phase (the metrics are computed).
    fn after_validate(&mut self, l: &mut Learner) -> Result<Flow> {
        Ok(Flow::Continue)
    }
    /// Before each training batch (hyper-parameters are set here).
    fn before_batch(&mut self, l: &mut Learner) -> Result<Flow> {
        Ok(Flow::Continue)
    }
    /// After the loss is computed (its value is in [`RunState::loss`](crate::RunState)).
    fn after_loss(&mut self, l: &mut Learner) -> Result<Flow> {
        Ok(Flow::Continue)
    }
    /// After the backward pass (gradients in [`Learner::grads_mut`]).
    fn after_backward(&mut self, l: &mut Learner) -> Result<Flow> {
        Ok(Flow::Continue)
    }
    /// After the optimiser step.
    fn after_step(&mut self, l: &mut Learner) -> Result<Flow> {
        Ok(Flow::Continue)
    }
    /// After each training batch.
    fn after_batch(&mut self, l: &mut Learner) -> Result<Flow> {
        Ok(Flow::Continue)
    }
}

/// The hooks, as values (used by [`Learner::run_hook`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Hook {
    BeforeFit,
    AfterFit,
    BeforeEpoch,
    AfterEpoch,
    BeforeTrain,
    AfterTrain,
    BeforeValidate,
    AfterValidate,
    BeforeBatch,
    AfterLoss,
    AfterBackward,
    AfterStep,
    AfterBatch,
}

impl Hook {
    pub(crate) fn call(self, cb: &mut dyn Callback, l: &mut Learner) -> Result<Flow> {
        match self {
            Hook::BeforeFit => cb.before_fit(l),
            Hook::AfterFit => cb.after_fit(l),
            Hook::BeforeEpoch => cb.before_epoch(l),
            Hook::AfterEpoch => cb.after_epoch(l),
            Hook::BeforeTrain => cb.before_train(l),
            Hook::AfterTrain => cb.after_train(l),
            Hook::BeforeValidate => cb.before_validate(l),
            Hook::AfterValidate => cb.after_validate(l),
            Hook::BeforeBatch => cb.before_batch(l),
            Hook::AfterLoss => cb.after_loss(l),
            Hook::AfterBackward => cb.after_backward(l),
            Hook::AfterStep => cb.after_step(l),
            Hook::AfterBatch => cb.after_batch(l),
        }
    }
}
