//! The one loop and the fastai semantics it follows: every pass goes through the loop and
//! its callbacks; the optimiser, freezing, SaveBest, drop_last, SGDR warm-up and TTA
//! blends as fastai has them.

mod common;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;
use fastburn_learner::callbacks::{
    GradientClip, Monitor, PlotLosses, Recorder, SaveBestModel, TerminateOnNaN,
};
use fastburn_learner::grads::global_norm;
use fastburn_learner::{
    Callback, Error, Flow, Learner, LrFindConfig, Phase, Preds, Result, Sgdr, TtaBlend,
    batchnorm_group, blend_tta_with,
};

#[test]
fn lr_find_runs_the_callbacks_so_clipping_applies_to_the_sweep() {
    /// Runs after the clip (order 5) and records each gradient's global norm.
    struct Probe(Vec<f64>);
    impl Callback for Probe {
        fn order(&self) -> i32 {
            6
        }
        fn after_backward(&mut self, l: &mut Learner) -> Result<Flow> {
            let model = l.model().clone();
            if let Some(g) = l.grads_mut() {
                self.0.push(global_norm(&model, g));
            }
            Ok(Flow::Continue)
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let mut l = common::learner(dir.path(), 40, 32, 8);
    l.add_callback(GradientClip::Norm(1e-3));
    l.add_callback(Probe(Vec::new()));
    let r = l
        .lr_find(&LrFindConfig {
            num_it: 12,
            ..Default::default()
        })
        .unwrap();
    let norms = &l.cb::<Probe>().unwrap().0;
    assert_eq!(norms.len(), r.lrs.len(), "one backward per sweep batch");
    assert!(norms.iter().all(|&n| n <= 1e-3 * (1.0 + 1e-5)), "{norms:?}");
    // Without the clip the norms are far larger: the probe measures something.
    l.remove_cb::<GradientClip>();
    l.cb_mut::<Probe>().unwrap().0.clear();
    l.lr_find(&LrFindConfig {
        num_it: 4,
        ..Default::default()
    })
    .unwrap();
    assert!(l.cb::<Probe>().unwrap().0.iter().all(|&n| n > 1e-2));
}

#[test]
fn predictions_are_an_evaluation_pass_that_callbacks_see() {
    #[derive(Default)]
    struct Count {
        predict: usize,
        valid: usize,
        train: usize,
    }
    impl Callback for Count {
        fn after_batch(&mut self, l: &mut Learner) -> Result<Flow> {
            match l.state().phase {
                Phase::Predict => {
                    assert!(l.batch_output().is_some());
                    self.predict += 1
                }
                Phase::Valid => self.valid += 1,
                Phase::Train => self.train += 1,
                _ => {}
            }
            Ok(Flow::Continue)
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let mut l = common::learner(dir.path(), 40, 32, 8);
    l.add_callback(Count::default());
    l.fit(1, 1e-3).unwrap();
    let dl = l.dls().valid.clone();
    let preds = l.get_preds(&dl).unwrap();
    let c = l.cb::<Count>().unwrap();
    assert_eq!(
        (c.train, c.valid),
        (4, 1),
        "32 training items in 4 batches, 8 to validate"
    );
    assert_eq!(c.predict, 1);
    assert_eq!(preds.len(), 8);
    // The validation loss of the epoch row is the mean of the prediction pass's losses.
    let row = &l.history()[0];
    assert!((row.valid_loss - preds.mean_loss()).abs() < 1e-6);
}

#[test]
fn callbacks_are_found_and_removed_by_type() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = common::learner(dir.path(), 20, 32, 8);
    assert!(l.cb::<Recorder>().is_some() && l.cb::<TerminateOnNaN>().is_some());
    l.add_callback(PlotLosses::new(dir.path().join("p.png")));
    assert!(l.cb::<PlotLosses>().is_some());
    assert!(l.remove_cb::<PlotLosses>().is_some());
    assert!(l.cb::<PlotLosses>().is_none() && l.remove_cb::<PlotLosses>().is_none());
    assert_eq!(l.metric_names(), ["f2@0.2", "accuracy_multi@0.2"]);
}

#[test]
fn changing_the_frozen_groups_clears_the_optimiser_state_as_fastai() {
    let dir = tempfile::tempdir().unwrap();
    let run = |clear: Option<bool>| {
        let d = dir.path().join(format!("{clear:?}"));
        let mut l = common::learner(&d, 40, 32, 8);
        l.fit(1, 1e-3).unwrap();
        match clear {
            Some(true) => l.unfreeze(), // nothing was frozen: only the state is cleared
            Some(false) => l.opt_mut().clear_state(),
            None => {}
        }
        l.fit(1, 1e-3).unwrap();
        common::weights(&l)
    };
    let unfrozen = run(Some(true));
    assert_eq!(unfrozen.first_difference(&run(Some(false))), None);
    assert!(
        unfrozen.first_difference(&run(None)).is_some(),
        "the state mattered"
    );
}

#[test]
fn save_best_resets_each_fit_and_reloads_the_best_weights() {
    /// Keeps the weights after every epoch.
    struct Snap(Vec<common::Weights>);
    impl Callback for Snap {
        fn order(&self) -> i32 {
            11
        }
        fn after_epoch(&mut self, l: &mut Learner) -> Result<Flow> {
            self.0.push(common::weights(l));
            Ok(Flow::Continue)
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let mut l = common::learner(dir.path(), 40, 32, 8);
    // "Best" = lowest F2: usually an early epoch, so the reload is visible.
    let monitor = Monitor::Metric {
        name: "f2@0.2".into(),
        higher_is_better: false,
    };
    l.add_callback(SaveBestModel::new(
        monitor.clone(),
        dir.path().join("best.bpk"),
    ));
    l.add_callback(Snap(Vec::new()));
    l.fit_one_cycle(3, 1e-2).unwrap();
    let h = l.history();
    let best = (0..3)
        .min_by(|&a, &b| {
            h[a].metric("f2@0.2")
                .unwrap()
                .total_cmp(&h[b].metric("f2@0.2").unwrap())
        })
        .unwrap();
    let snaps = &l.cb::<Snap>().unwrap().0;
    assert_eq!(
        common::weights(&l).first_difference(&snaps[best]),
        None,
        "epoch {best} reloaded"
    );
    // A second fit forgets the first one's best: its first epoch is saved again.
    l.fit(1, 1e-3).unwrap();
    assert_eq!(l.cb::<SaveBestModel>().unwrap().saved_epochs(), [0]);
}

#[test]
fn the_training_loader_drops_its_last_partial_batch() {
    let dir = tempfile::tempdir().unwrap();
    // 44 items: about 35 train, 9 valid; batches of 8.
    let mut l = common::learner(dir.path(), 44, 32, 8);
    let (nt, nv) = (l.dls().train.dataset().len(), l.dls().valid.dataset().len());
    assert!(nt % 8 != 0, "a partial batch exists");
    assert_eq!(
        l.dls().train.num_batches(),
        nt / 8,
        "the partial batch dropped"
    );
    assert_eq!(
        l.dls().valid.num_batches(),
        nv.div_ceil(8),
        "validation keeps every item"
    );
    l.fit(1, 1e-3).unwrap();
    assert_eq!(l.iterations().len(), nt / 8);
}

#[test]
fn an_empty_training_set_is_an_error_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    // 10 items: 8 train, batches of 16 with drop_last: no batch at all.
    let mut l = common::learner(dir.path(), 10, 32, 16);
    let e = l.lr_find(&LrFindConfig::default()).unwrap_err();
    assert!(
        matches!(
            e,
            Error::NoTrainingBatches {
                items: 8,
                batch_size: 16,
                drop_last: true
            }
        ),
        "{e}"
    );
    assert!(matches!(
        l.fit(1, 1e-3).unwrap_err(),
        Error::NoTrainingBatches { .. }
    ));
    assert!(e.to_string().contains("8 items, batch size 16"), "{e}");
}

#[test]
fn sgdr_warmup_runs_a_hundredth_of_the_rate_for_a_twentieth_of_the_first_cycle() {
    let dir = tempfile::tempdir().unwrap();
    // 168 items: 134 train, 33 batches of 4 per epoch; 2 cycles = 3 epochs = 99 iterations.
    let mut l = common::learner(dir.path(), 168, 32, 4);
    let p = Sgdr {
        n_cycles: 2,
        cycle_len: 1,
        cycle_mult: 2,
        warmup: true,
    };
    l.fit_sgdr_with(&p, 0.1).unwrap();
    let it = l.iterations();
    let n = it.len();
    assert_eq!(n, 99);
    let warm = (0..n)
        .take_while(|&i| (it[i].lrs[0] - 1e-3).abs() < 1e-12)
        .count();
    // The first cycle is 33 iterations; 1/20 of it is 1.65: iterations 0 and 1.
    assert_eq!(warm, 2);
    assert!(
        it[2].lrs[0] < 0.1 && it[2].lrs[0] > 0.09,
        "the cosine's clock kept running"
    );
}

#[test]
fn tta_use_max_is_the_elementwise_maximum() {
    let p = |v: Vec<f32>| Preds {
        probs: v,
        targets: vec![0.0; 4],
        losses: vec![0.0; 2],
        indices: vec![0, 1],
        n_classes: 2,
    };
    let out = blend_tta_with(
        &p(vec![0.1, 0.9, 0.5, 0.5]),
        &[p(vec![0.3, 0.2, 0.4, 0.6]), p(vec![0.2, 0.1, 0.7, 0.1])],
        TtaBlend::Max,
    );
    assert_eq!(out.probs, [0.3, 0.9, 0.7, 0.6]);
}

#[test]
fn rank_one_parameters_are_exactly_batchnorm_and_biases() {
    // The weight-decay exemption (fastai's wd_bn_bias = False) is decided by rank.
    let dir = tempfile::tempdir().unwrap();
    let l = common::learner(dir.path(), 10, 32, 4);
    let model = l.model().clone();
    let bn = batchnorm_group(&model);
    struct V<'a> {
        bn: &'a burn::module::ParamGroup,
        path: Vec<String>,
        bad: Vec<String>,
        seen: usize,
    }
    impl ModuleVisitor for V<'_> {
        fn enter_module(&mut self, name: &str, _c: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _n: &str, _c: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            let path = self.path.join(".");
            let is_bn_or_bias = self.bn.matches(&p.id, Some(&path)) || path.ends_with("bias");
            if p.is_require_grad() && (D == 1) != is_bn_or_bias {
                self.bad.push(format!("{path} (rank {D})"));
            }
            self.seen += usize::from(D == 1);
        }
    }
    let mut v = V {
        bn: &bn,
        path: Vec::new(),
        bad: Vec::new(),
        seen: 0,
    };
    model.visit(&mut v);
    assert!(v.seen > 10);
    assert!(v.bad.is_empty(), "{:?}", v.bad);
}
