//! Training behaviour: loss falls, freezing keeps BatchNorm training, schedules equal their
//! closed forms, callbacks act.

mod common;

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use fastburn_learner::callbacks::{EarlyStopping, GradientClip, Monitor};
use fastburn_learner::{
    Callback, Combined, Flow, Learner, Lrs, OneCycle, OptimizerConfig, Result, Sched, WeightDecay,
    grads,
};

#[test]
fn loss_falls_on_learnable_data() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::config(dir.path()).with_base_width(8);
    let mut l = common::learner_with(dir.path(), 160, 32, 16, cfg);
    l.fit_one_cycle(8, 2e-2).unwrap();
    let h = l.history();
    assert_eq!(h.len(), 8);
    let show: Vec<String> = h
        .iter()
        .map(|e| {
            format!(
                "{:.3}/{:.3}/{:.3}",
                e.train_loss, e.valid_loss, e.metrics[0].1
            )
        })
        .collect();
    eprintln!("train/valid/f2 per epoch: {}", show.join(" "));
    let (first, last) = (&h[0], &h[7]);
    assert!(last.train_loss < 0.5 * first.train_loss, "{show:?}");
    assert!(last.valid_loss < 0.5 * first.valid_loss, "{show:?}");
    let f2 = last.metric("f2@0.2").unwrap();
    assert!(
        f2 > first.metric("f2@0.2").unwrap() + 0.1 && f2 > 0.6,
        "{show:?}"
    );
}

/// Ids and values of the params inside a BatchNorm and outside, for one path prefix.
fn collect(l: &Learner, prefix: &str) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    struct V<'a> {
        prefix: &'a str,
        path: Vec<String>,
        conv: Vec<f32>,
        bn_affine: Vec<f32>,
        bn_stats: Vec<f32>,
    }
    impl ModuleVisitor for V<'_> {
        fn enter_module(&mut self, name: &str, _c: &str) {
            self.path.push(name.into());
        }
        fn exit_module(&mut self, _n: &str, _c: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            let path = self.path.join(".");
            if !path.starts_with(self.prefix) {
                return;
            }
            let v = p.val().try_into_vec_as::<f32>().unwrap();
            if path.contains("running") {
                self.bn_stats.extend(v);
            } else if path.contains("bn") && (path.ends_with("gamma") || path.ends_with("beta")) {
                self.bn_affine.extend(v);
            } else if path.contains("conv") {
                self.conv.extend(v);
            }
        }
    }
    let mut v = V {
        prefix,
        path: vec![],
        conv: vec![],
        bn_affine: vec![],
        bn_stats: vec![],
    };
    l.model().visit(&mut v);
    (v.conv, v.bn_affine, v.bn_stats)
}

#[test]
fn a_frozen_group_keeps_its_weights_while_batchnorm_trains() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = common::learner(dir.path(), 24, 32, 8);
    l.freeze();
    assert_eq!(l.frozen_groups(), 2);
    let (conv0, aff0, stats0) = collect(&l, "body.layer1");
    let head0: Vec<f32> = collect_head(&l);
    l.fit(1, 1e-2).unwrap();
    let (conv1, aff1, stats1) = collect(&l, "body.layer1");
    assert!(!conv0.is_empty() && !aff0.is_empty() && !stats0.is_empty());
    assert_eq!(conv0, conv1, "a frozen conv changed");
    assert_ne!(
        aff0, aff1,
        "train_bn: BatchNorm affine parameters of a frozen group train"
    );
    assert_ne!(
        stats0, stats1,
        "train_bn: BatchNorm running statistics update"
    );
    assert_ne!(head0, collect_head(&l), "the head trains");

    // With train_bn off the frozen group is frozen completely.
    let dir2 = tempfile::tempdir().unwrap();
    let mut l = common::learner_with(
        dir2.path(),
        24,
        32,
        8,
        common::config(dir2.path()).with_train_bn(false),
    );
    l.freeze();
    let (c0, a0, s0) = collect(&l, "body.layer1");
    l.fit(1, 1e-2).unwrap();
    let (c1, a1, s1) = collect(&l, "body.layer1");
    assert_eq!((c0, a0, s0), (c1, a1, s1));

    // Unfreezing trains everything.
    l.unfreeze();
    let (c0, _, _) = collect(&l, "body.layer1");
    l.fit(1, 1e-2).unwrap();
    assert_ne!(c0, collect(&l, "body.layer1").0);
}

fn collect_head(l: &Learner) -> Vec<f32> {
    let mut out = Vec::new();
    struct V<'a>(&'a mut Vec<f32>);
    impl ModuleVisitor for V<'_> {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            self.0.extend(p.val().try_into_vec_as::<f32>().unwrap());
        }
    }
    l.model().head.visit(&mut V(&mut out));
    out
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * a.abs().max(b.abs()).max(1e-30)
}

#[test]
fn sgdr_trace_equals_the_closed_form() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = common::learner(dir.path(), 24, 32, 8); // 20 train items: 2 full batches/epoch
    let lr = 0.02;
    let per_group = vec![lr / 9.0, lr / 3.0, lr];
    l.fit_sgdr(3, 1, 2, Lrs::PerGroup(per_group.clone()))
        .unwrap();
    let its = l.iterations();
    let nb = 2;
    assert_eq!(its.len(), 7 * nb, "1 + 2 + 4 = 7 epochs");
    assert_eq!(l.history().len(), 7);
    let starts = [0usize, 1, 3]; // cycles start at epochs 0, 1, 3
    for (k, it) in its.iter().enumerate() {
        let epoch_pos = k as f64 / nb as f64;
        let (c, len) = if epoch_pos < 1.0 {
            (0, 1.0)
        } else if epoch_pos < 3.0 {
            (1, 2.0)
        } else {
            (2, 4.0)
        };
        let local = (epoch_pos - starts[c] as f64) / len;
        for (g, &max) in per_group.iter().enumerate() {
            let want = max * (1.0 + (std::f64::consts::PI * local).cos()) / 2.0;
            assert!(
                close(it.lrs[g], want) || (it.lrs[g] - want).abs() < 1e-15,
                "iter {k} group {g}: {} vs {want}",
                it.lrs[g]
            );
        }
    }
    // Each cycle restarts at the maximum.
    assert!(close(its[nb].lrs[2], lr) && close(its[3 * nb].lrs[2], lr));
}

#[test]
fn one_cycle_trace_equals_the_closed_form_for_lr_and_momentum() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = common::learner_with(
        dir.path(),
        24,
        32,
        6, // 20 items: 3 full batches per epoch
        common::config(dir.path()).with_opt(OptimizerConfig::sgd(0.9)),
    );
    let (lo, hi) = (1e-4, 1e-2);
    l.fit_one_cycle(2, Lrs::slice(lo, hi)).unwrap();
    let its = l.iterations();
    let n = its.len();
    assert_eq!(n, 6);
    let groups = [lo, (lo * hi).sqrt(), hi];
    let p = OneCycle::default();
    for (k, it) in its.iter().enumerate() {
        let pos = k as f64 / n as f64;
        for (g, &max) in groups.iter().enumerate() {
            // Closed form written out, not through Combined.
            let want = if pos < p.pct_start {
                let t = pos / p.pct_start;
                max / 25.0
                    + (1.0 + (std::f64::consts::PI * (1.0 - t)).cos()) * (max - max / 25.0) / 2.0
            } else {
                let t = (pos - p.pct_start) / (1.0 - p.pct_start);
                max + (1.0 + (std::f64::consts::PI * (1.0 - t)).cos()) * (max / 1e5 - max) / 2.0
            };
            assert!(
                (it.lrs[g] - want).abs() <= 1e-12 * max,
                "iter {k} group {g}: {} vs {want}",
                it.lrs[g]
            );
        }
        let mom = if pos < p.pct_start {
            let t = pos / p.pct_start;
            0.95 + (1.0 + (std::f64::consts::PI * (1.0 - t)).cos()) * (0.85 - 0.95) / 2.0
        } else {
            let t = (pos - p.pct_start) / (1.0 - p.pct_start);
            0.85 + (1.0 + (std::f64::consts::PI * (1.0 - t)).cos()) * (0.95 - 0.85) / 2.0
        };
        assert!(
            (it.mom - mom).abs() < 1e-12,
            "iter {k}: momentum {} vs {mom}",
            it.mom
        );
    }
    // Discriminative rates: the groups keep their ratio at every iteration.
    for it in its {
        assert!(close(it.lrs[2] / it.lrs[0], hi / lo));
    }
}

#[test]
fn a_group_with_zero_learning_rate_does_not_move() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = common::learner_with(
        dir.path(),
        24,
        32,
        8,
        common::config(dir.path()).with_opt(OptimizerConfig::sgd(0.0).with_wd(WeightDecay::None)),
    );
    let (conv0, _, _) = collect(&l, "body.layer1");
    let head0 = collect_head(&l);
    l.fit(1, Lrs::PerGroup(vec![0.0, 0.0, 1e-2])).unwrap();
    assert_eq!(conv0, collect(&l, "body.layer1").0);
    assert_ne!(head0, collect_head(&l));
}

#[test]
fn schedules_are_pure_functions() {
    let c = Combined::new(
        vec![0.3, 0.7],
        vec![
            Sched::Lin {
                start: 0.0,
                end: 1.0,
            },
            Sched::Const(2.0),
        ],
    )
    .unwrap();
    assert_eq!(c.at(0.15), 0.5);
    assert_eq!(c.at(0.5), 2.0);
    assert!(Combined::new(vec![0.5], vec![Sched::Const(1.0)]).is_err());
    assert_eq!(
        Lrs::PerGroup(vec![1.0]).resolve(3).unwrap_err().to_string(),
        "learning rates: expected one value per layer group (3), got 1"
    );
}

/// Every gradient present in `g`, read back to the host in f64, by parameter path.
fn grad_values(l: &Learner, g: &GradientsParams) -> Vec<(String, Vec<f64>)> {
    struct V<'a> {
        g: &'a GradientsParams,
        path: Vec<String>,
        out: Vec<(String, Vec<f64>)>,
    }
    impl ModuleVisitor for V<'_> {
        fn enter_module(&mut self, name: &str, _c: &str) {
            self.path.push(name.into());
        }
        fn exit_module(&mut self, _n: &str, _c: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            if let Some(t) = self.g.get::<D>(p.id) {
                let v: Vec<f64> = t.into_data().iter::<f64>().collect();
                self.out.push((self.path.join("."), v));
            }
        }
    }
    let mut v = V {
        g,
        path: Vec::new(),
        out: Vec::new(),
    };
    l.model().visit(&mut v);
    v.out
}

/// The global L2 norm of gradients read back with [`grad_values`], summed in f64.
fn l2_norm(grads: &[(String, Vec<f64>)]) -> f64 {
    grads
        .iter()
        .flat_map(|(_, v)| v.iter())
        .map(|x| x * x)
        .sum::<f64>()
        .sqrt()
}

/// `max |got − want| ≤ rel · max |want| + abs`, per tensor; panics naming the first one
/// that differs.
fn assert_close(got: &[f64], want: &[f64], rel: f64, abs: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    let diff = got
        .iter()
        .zip(want)
        .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        diff <= rel * scale + abs,
        "{what}: differs by {diff:e} (scale {scale:e})"
    );
}

type Grads = Vec<(String, Vec<f64>)>;
type Shared<T> = std::sync::Arc<std::sync::Mutex<T>>;

/// Reads every gradient back at `after_backward`, at `order` (and the clipper's own norm).
struct ReadGrads {
    order: i32,
    seen: Shared<Vec<(Grads, f64)>>,
}

impl Callback for ReadGrads {
    fn name(&self) -> String {
        format!("read_grads_{}", self.order)
    }
    fn order(&self) -> i32 {
        self.order
    }
    fn after_backward(&mut self, l: &mut Learner) -> Result<Flow> {
        if let Some(mut g) = l.take_grads() {
            let own = grads::global_norm(l.model(), &mut g);
            self.seen.lock().unwrap().push((grad_values(l, &g), own));
            l.set_grads(Some(g));
        }
        Ok(Flow::Continue)
    }
}

/// Goal 18, measured independently of the clipper: every gradient is read back before
/// (order 4) and after (order 6) the clipper (order 5), the global L2 norm is summed here in
/// f64, and clipping must bring it to exactly `c` by scaling every element of every gradient
/// by the same factor `c / norm`.
#[test]
fn gradient_clipping_by_norm_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = common::learner(dir.path(), 24, 32, 6); // 20 items: 3 full batches
    let c = 0.05;
    let before: Shared<Vec<(Grads, f64)>> = Default::default();
    let after: Shared<Vec<(Grads, f64)>> = Default::default();
    l.add_callback(GradientClip::Norm(c));
    l.add_callback(ReadGrads {
        order: 4,
        seen: before.clone(),
    });
    l.add_callback(ReadGrads {
        order: 6,
        seen: after.clone(),
    });
    l.fit(1, 1e-3).unwrap();
    let (before, after) = (before.lock().unwrap(), after.lock().unwrap());
    assert_eq!(before.len(), 3);
    assert_eq!(after.len(), 3);
    for ((g0, _), (g1, own)) in before.iter().zip(after.iter()) {
        let (n0, n1) = (l2_norm(g0), l2_norm(g1));
        assert!(
            n0 > 2.0 * c,
            "the norm {n0} must be above {c} for clipping to act"
        );
        assert!(
            (n1 - c).abs() < 1e-5 * c,
            "global norm {n1} after clipping at {c}"
        );
        // The clipper's own measure agrees (kept from the earlier form of this test).
        assert!(
            (own - c).abs() < 1e-5 * c,
            "global norm {own} after clipping at {c}"
        );
        assert_eq!(g0.len(), g1.len(), "every gradient is kept");
        assert!(g0.len() > 10);
        let k = c / n0;
        for ((name0, v0), (name1, v1)) in g0.iter().zip(g1) {
            assert_eq!(name0, name1);
            let want: Vec<f64> = v0.iter().map(|x| x * k).collect();
            assert_close(v1, &want, 1e-5, 1e-12, name0);
        }
    }
}

/// Gradient accumulation as documented: `k` micro-batches step once with the **mean** of
/// their gradients. For the mean loss over equal-sized micro-batches that is the gradient
/// of one batch of `k · bs` items wherever items do not interact; BatchNorm couples the
/// items of a batch, so the expectation is built from the gradients each micro-batch really
/// produced (read back before the accumulator, order 3), and checked twice: the gradient the
/// optimiser receives (order 6), and the weights after a plain SGD step (no momentum, no
/// weight decay): `w1 = w0 − lr · (g1 + g2) / 2`.
#[test]
fn gradient_accumulation_steps_once_per_group_of_batches() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::config(dir.path()).with_opt(OptimizerConfig::sgd(0.0));
    let mut l = common::learner_with(dir.path(), 40, 32, 8, cfg); // 32 train items: 4 batches
    let lr = 0.1;
    /// At order 6: the gradient the optimiser will get, and the weights before the step.
    /// After the step: the weights after it.
    #[derive(Default)]
    struct Log {
        raw: Vec<Grads>,
        steps: Vec<(Vec<Grads>, Grads, Grads, Grads)>,
        pending: Option<(Grads, Grads)>,
    }
    struct Raw(Shared<Log>);
    impl Callback for Raw {
        fn name(&self) -> String {
            "raw".into()
        }
        fn order(&self) -> i32 {
            3 // before the accumulator (4)
        }
        fn after_backward(&mut self, l: &mut Learner) -> Result<Flow> {
            let g = l.take_grads().expect("gradients after backward");
            self.0.lock().unwrap().raw.push(grad_values(l, &g));
            l.set_grads(Some(g));
            Ok(Flow::Continue)
        }
    }
    struct Stepped(Shared<Log>, f64);
    impl Callback for Stepped {
        fn name(&self) -> String {
            "stepped".into()
        }
        fn order(&self) -> i32 {
            6 // after the accumulator
        }
        fn after_backward(&mut self, l: &mut Learner) -> Result<Flow> {
            // `None` while the accumulator holds the gradients (no step follows).
            if let Some(g) = l.take_grads() {
                let v = grad_values(l, &g);
                let w0 = weights_of(l, &v);
                self.0.lock().unwrap().pending = Some((v, w0));
                l.set_grads(Some(g));
            }
            Ok(Flow::Continue)
        }
        fn after_step(&mut self, l: &mut Learner) -> Result<Flow> {
            assert!(
                l.state().lrs.iter().all(|&x| x == self.1),
                "{:?}",
                l.state().lrs
            );
            let mut log = self.0.lock().unwrap();
            let (acc, w0) = log
                .pending
                .take()
                .expect("a step follows a released gradient");
            let w1 = weights_of(l, &acc);
            let raw = std::mem::take(&mut log.raw);
            log.steps.push((raw, acc, w0, w1));
            Ok(Flow::Continue)
        }
    }
    /// The trainable weights named in `g`, in its order.
    fn weights_of(l: &Learner, g: &Grads) -> Grads {
        let all = common::weights(l).0;
        g.iter()
            .map(|(name, _)| {
                let w = &all.iter().find(|(n, _)| n == name).expect("a weight").1;
                (name.clone(), w.iter().map(|&x| f64::from(x)).collect())
            })
            .collect()
    }
    let log: Shared<Log> = Default::default();
    l.add_callback(fastburn_learner::callbacks::GradientAccumulation::new(2));
    l.add_callback(Raw(log.clone()));
    l.add_callback(Stepped(log.clone(), lr));
    l.fit(1, lr).unwrap();
    let log = log.lock().unwrap();
    assert_eq!(log.steps.len(), 2, "one step per two batches");
    for (raw, acc, w0, w1) in &log.steps {
        assert_eq!(raw.len(), 2, "two micro-batches per step");
        assert_eq!(acc.len(), raw[0].len(), "every gradient is accumulated");
        assert!(acc.len() > 10);
        let mut moved = 0.0f64;
        for (i, (name, g)) in acc.iter().enumerate() {
            let (a, b) = (&raw[0][i], &raw[1][i]);
            assert!(a.0 == *name && b.0 == *name);
            let mean: Vec<f64> = a.1.iter().zip(&b.1).map(|(x, y)| (x + y) / 2.0).collect();
            assert_close(g, &mean, 1e-5, 1e-12, name);
            let update: Vec<f64> = w0[i].1.iter().zip(&w1[i].1).map(|(x, y)| x - y).collect();
            let want: Vec<f64> = mean.iter().map(|m| lr * m).collect();
            let w_scale = w0[i].1.iter().fold(0.0f64, |m, x| m.max(x.abs()));
            assert_close(&update, &want, 1e-4, 4e-7 * w_scale.max(1e-3), name);
            moved = moved.max(want.iter().fold(0.0, |m, x| m.max(x.abs())));
        }
        assert!(
            moved > 1e-3,
            "the step moved the weights measurably ({moved})"
        );
    }
}

#[test]
fn callbacks_can_cancel_and_early_stopping_stops() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = common::learner(dir.path(), 24, 32, 6); // 20 items: 3 full batches
    struct StopAfter(usize);
    impl Callback for StopAfter {
        fn name(&self) -> String {
            "stop".into()
        }
        fn after_batch(&mut self, l: &mut Learner) -> Result<Flow> {
            // Batch events fire in validation too (as in fastai): act on training batches.
            Ok(if l.state().training && l.state().iter + 1 >= self.0 {
                Flow::CancelFit
            } else {
                Flow::Continue
            })
        }
    }
    l.add_callback(StopAfter(4));
    l.fit(5, 1e-3).unwrap();
    assert_eq!(l.iterations().len(), 4);
    assert_eq!(
        l.history().len(),
        2,
        "the epoch in progress still validates"
    );
    l.remove_cb::<StopAfter>();
    // Patience 1 on a loss that cannot improve with lr 0.
    l.add_callback(EarlyStopping::new(Monitor::ValidLoss, 1, 0.0));
    let before = l.history().len();
    l.fit(6, 0.0).unwrap();
    assert_eq!(
        l.history().len() - before,
        2,
        "stops after one epoch without improvement"
    );
}
