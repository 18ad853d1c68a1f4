//! Resume equals uninterrupted training, bitwise on the CPU (reliability goal 14). Alone in
//! its test binary: dropout draws from the device's process-wide RNG.

mod common;

use fastburn_learner::callbacks::Checkpointer;
use fastburn_learner::{Callback, Flow, Learner, OptimizerConfig, Result, ResumeFrom};

struct StopAfterEpochs(usize);

impl Callback for StopAfterEpochs {
    fn name(&self) -> String {
        "stop".into()
    }
    fn order(&self) -> i32 {
        40 // after the checkpointer
    }
    fn after_epoch(&mut self, l: &mut Learner) -> Result<Flow> {
        Ok(if l.state().epochs_done >= self.0 {
            Flow::CancelFit
        } else {
            Flow::Continue
        })
    }
}

#[test]
fn two_epochs_stop_resume_two_epochs_equals_four_straight() {
    for opt in [OptimizerConfig::adam(), OptimizerConfig::sgd(0.9)] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = common::config(dir.path()).with_opt(opt).with_ps(0.5);
        // Straight.
        let mut a = common::learner_with(dir.path(), 40, 32, 8, cfg.clone());
        a.fit_one_cycle(4, 1e-2).unwrap();
        // Interrupted after 2 epochs (checkpoint written), then a fresh process-like learner.
        let ck = dir.path().join("ck");
        let mut b = common::learner_with(dir.path(), 40, 32, 8, cfg.clone());
        b.add_callback(Checkpointer::new(&ck));
        b.add_callback(StopAfterEpochs(2));
        b.fit_one_cycle(4, 1e-2).unwrap();
        assert_eq!(b.history().len(), 2);
        drop(b);
        let mut c = common::learner_with(dir.path(), 40, 32, 8, cfg);
        let loaded = c.resume(&ck, &ResumeFrom::OnlyRun).unwrap();
        assert!(loaded.ends_with(format!("ckpt-{}-000002", c.run_id())));
        c.fit_one_cycle(4, 1e-2).unwrap();

        assert_eq!(
            common::weights(&a).first_difference(&common::weights(&c)),
            None,
            "{opt:?}: weights differ"
        );
        assert_eq!(
            a.iterations(),
            c.iterations(),
            "{opt:?}: LR / momentum / loss trace differs"
        );
        assert_eq!(a.history().len(), c.history().len());
        for (x, y) in a.history().iter().zip(c.history()) {
            assert_eq!(
                (x.train_loss, x.valid_loss, &x.metrics),
                (y.train_loss, y.valid_loss, &y.metrics)
            );
        }
        // Parameter ids differ between learners, so compare the optimiser states by what
        // they do: one more epoch from each must again give identical weights.
        a.fit(1, 1e-2).unwrap();
        c.fit(1, 1e-2).unwrap();
        assert_eq!(
            common::weights(&a).first_difference(&common::weights(&c)),
            None,
            "{opt:?}: optimiser state differs"
        );
    }
}
