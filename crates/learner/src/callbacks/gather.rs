//! fastai's `GatherPredsCallback`: collects every evaluated batch of a pass.

use crate::error::Result;
use crate::learner::{Callback, Flow, Learner, Phase};
use crate::step::{BatchOutput, Preds};

/// Collects the predictions (or, while precomputing, the body activations) of every batch
/// of the evaluation passes of one phase. [`Learner::get_preds`] is an evaluation pass with
/// this callback added.
pub struct GatherPreds {
    phase: Phase,
    outs: Vec<BatchOutput>,
}

impl GatherPreds {
    /// Gathers the batches of passes of `phase`.
    pub fn new(phase: Phase) -> Self {
        GatherPreds {
            phase,
            outs: Vec::new(),
        }
    }

    /// The batches gathered, in order.
    pub fn into_outputs(self) -> Vec<BatchOutput> {
        self.outs
    }

    /// The predictions gathered.
    pub fn into_preds(self, n_classes: usize) -> Preds {
        let mut p = Preds::empty(n_classes);
        for o in self.outs {
            p.push_output(o);
        }
        p
    }
}

impl Callback for GatherPreds {
    fn order(&self) -> i32 {
        -24
    }

    fn after_batch(&mut self, l: &mut Learner) -> Result<Flow> {
        if l.state().phase == self.phase
            && let Some(out) = l.batch_output()
        {
            self.outs.push(out.clone());
        }
        Ok(Flow::Continue)
    }
}
