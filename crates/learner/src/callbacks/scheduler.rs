use crate::error::Result;
use crate::learner::Learner;
use crate::learner::{Callback, Flow};
use crate::schedule::FitSchedule;

/// Sets every group's learning rate (and momentum) before each batch from a
/// [`FitSchedule`] at progress `iter / n_iter` (fastai's `ParamScheduler`).
#[derive(Debug, Clone)]
pub struct ParamScheduler {
    sched: FitSchedule,
}

impl ParamScheduler {
    /// A scheduler for one fit.
    pub fn new(sched: FitSchedule) -> Self {
        ParamScheduler { sched }
    }
}

impl Callback for ParamScheduler {
    fn name(&self) -> String {
        "param_scheduler".into()
    }

    fn order(&self) -> i32 {
        -10
    }

    fn before_batch(&mut self, l: &mut Learner) -> Result<Flow> {
        let s = l.state();
        let pos = s.iter as f64 / s.n_iter.max(1) as f64;
        l.set_lrs(self.sched.lrs_at(pos));
        if let Some(m) = &self.sched.mom {
            l.set_momentum(m.at(pos));
        }
        Ok(Flow::Continue)
    }
}
