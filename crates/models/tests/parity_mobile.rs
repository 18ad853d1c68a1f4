//! MobileNetV2 and EfficientNet-B0: numeric parity with torchvision, against fixtures written
//! by `scripts/fixtures/models_mobile.py` (torch and torchvision versions printed there), and
//! the behaviour torchvision gives them (stochastic depth, initialisation, strict import).
//!
//! For each family: eval-mode logits (running statistics), train-mode logits (batch
//! statistics) and the gradient of the mean cross-entropy with respect to the first
//! convolution's weight (`features.0.0.weight`), all within 1e-4 of torchvision's (computed in
//! float64). The fixtures' networks have `width_mult = 0.25` and torchvision's depth, so
//! every key of the full network is there, with smaller shapes. Dropout and stochastic depth
//! are 0 in the fixtures (torch's random draws cannot be replayed); stochastic depth is
//! tested here behaviourally instead. Run with `--nocapture` to see the measured errors.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use burn::module::{Flag, Module, ModuleVisitor, Param};
use burn::nn::conv::Conv2d;
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use common::{device, fixture, max_abs_diff, read_safetensors, tensor, write_safetensors};
use fastburn_models::{
    EfficientNet, EfficientNetBody, EfficientNetConfig, EfficientNetLayer, Error, MBConv,
    MobileNetV2, MobileNetV2Body, MobileNetV2Config, MobileNetV2Layer, StochasticDepth,
};

const TOL: f32 = 1e-4;

/// Mean cross-entropy, as `torch.nn.functional.cross_entropy`.
fn cross_entropy(logits: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<1> {
    let [n, _] = logits.dims();
    let picked = log_softmax(logits, 1).gather(1, labels.reshape([n as i32, 1]));
    picked.mean().neg()
}

/// What the parity check needs of a network.
trait Net: Module {
    fn logits(&self, x: Tensor<4>) -> Tensor<2>;
    fn stem(&self) -> &Conv2d;
}

impl Net for MobileNetV2 {
    fn logits(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward(x)
    }
    fn stem(&self) -> &Conv2d {
        self.stem_conv()
    }
}

impl Net for EfficientNet {
    fn logits(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward(x)
    }
    fn stem(&self) -> &Conv2d {
        self.stem_conv()
    }
}

struct Measured {
    eval: f32,
    train: f32,
    loss: f32,
    /// max |Δ| of d loss / d features.0.0.weight.
    grad: f32,
    /// max |d loss / d features.0.0.weight| of the reference.
    grad_scale: f32,
}

fn check<M: Net>(name: &str, build: impl Fn(&Device) -> M, io: &Path) -> Measured {
    let io = read_safetensors(io);
    let dev = device();

    // Eval mode: plain device, running statistics.
    let model = build(&dev);
    let x: Tensor<4> = tensor(&io["input"], &dev);
    let eval = max_abs_diff(model.logits(x), tensor(&io["logits_eval"], &dev));

    // Train mode: autodiff device and an autodiff input, batch statistics.
    let ad = dev.clone().autodiff();
    let model = build(&ad);
    let x: Tensor<4> = tensor(&io["input"], &ad);
    let logits = model.logits(x);
    let train = max_abs_diff(logits.clone().inner(), tensor(&io["logits_train"], &dev));
    let labels = Tensor::<1, Int>::from_data(io["labels"].clone(), &ad);
    let loss = cross_entropy(logits, labels);
    let loss_diff = max_abs_diff(loss.clone().inner(), tensor(&io["loss"], &dev));
    let grads = loss.backward();
    let g = model
        .stem()
        .weight
        .grad(&grads)
        .expect("features.0.0.weight has a gradient");
    let g_ref: Tensor<4> = tensor(&io["stem_grad"], &dev);
    let grad_scale = g_ref.clone().abs().max().into_scalar::<f32>();
    let grad = max_abs_diff(g, g_ref);

    println!(
        "{name}: max|Δ| logits eval {eval:.3e}, logits train {train:.3e}, loss {loss_diff:.3e}, stem grad {grad:.3e} (max|grad| {grad_scale:.3e})"
    );
    assert!(eval <= TOL, "{name}: eval logits differ by {eval}");
    assert!(train <= TOL, "{name}: train logits differ by {train}");
    assert!(loss_diff <= TOL, "{name}: loss differs by {loss_diff}");
    Measured {
        eval,
        train,
        loss: loss_diff,
        grad,
        grad_scale,
    }
}

/// The fixture's MobileNetV2: torchvision's `mobilenet_v2(width_mult=0.25, num_classes=10,
/// dropout=0.0)`, weights stored as float16 in a `.pth`.
fn mobilenet_v2_w025(d: &Device) -> MobileNetV2 {
    MobileNetV2Config::new()
        .with_width_mult(0.25)
        .with_num_classes(10)
        .with_dropout(0.0)
        .init(d)
        .load_weights(fixture("mobilenet_v2_w025.pth"))
        .unwrap()
}

/// The fixture's EfficientNet-B0 at width 0.25 (10 classes, no dropout, no stochastic
/// depth), weights stored as float16 in a `.safetensors`.
fn efficientnet_b0_config() -> EfficientNetConfig {
    EfficientNetConfig::new()
        .with_width_mult(0.25)
        .with_num_classes(10)
        .with_dropout(0.0)
        .with_stochastic_depth_prob(0.0)
}

fn efficientnet_b0_w025(d: &Device) -> EfficientNet {
    efficientnet_b0_config()
        .init(d)
        .load_weights(fixture("efficientnet_b0_w025.safetensors"))
        .unwrap()
}

#[test]
fn mobilenet_v2_matches_torchvision() {
    let m = check(
        "mobilenet_v2 (width 0.25, .pth)",
        mobilenet_v2_w025,
        &fixture("mobilenet_v2_w025_io.safetensors"),
    );
    assert!(m.grad <= TOL, "stem gradient differs by {}", m.grad);
    assert!(m.eval.is_finite() && m.train.is_finite() && m.loss.is_finite());
}

#[test]
fn efficientnet_b0_matches_torchvision() {
    let m = check(
        "efficientnet_b0 (width 0.25, .safetensors)",
        efficientnet_b0_w025,
        &fixture("efficientnet_b0_w025_io.safetensors"),
    );
    assert!(m.grad <= TOL, "stem gradient differs by {}", m.grad);
    assert!(m.eval.is_finite() && m.train.is_finite() && m.loss.is_finite());
}

/// The tensors of the EfficientNet fixture, widened to float32 (the test helper writes only
/// 32/64-bit tensors).
fn efficientnet_tensors() -> BTreeMap<String, TensorData> {
    read_safetensors(&fixture("efficientnet_b0_w025.safetensors"))
        .into_iter()
        .map(|(k, t)| {
            let t = if t.dtype().is_float() {
                t.convert::<f32>()
            } else {
                t
            };
            (k, t)
        })
        .collect()
}

#[test]
fn bodies_load_full_and_features_only_checkpoints() {
    let dev = device();
    let dir = tempfile::tempdir().unwrap();
    let io = read_safetensors(&fixture("efficientnet_b0_w025_io.safetensors"));
    let x: Tensor<4> = tensor(&io["input"], &dev);
    let full = efficientnet_b0_w025(&dev);
    let expected = full.features(x.clone());

    // What feature-extractor packages ship: just `features.*`. With BatchNorm's
    // `num_batches_tracked` this file's SafeTensors header is 0x8580 bytes long, so the
    // file starts with 0x80, a pickle's first byte: `sniff_format` reads SafeTensors first.
    let mut tensors = efficientnet_tensors();
    tensors.retain(|k, _| k.starts_with("features."));
    let body_only = dir.path().join("efficientnet_b0_features.safetensors");
    write_safetensors(&body_only, &tensors);
    for path in [
        fixture("efficientnet_b0_w025.safetensors"),
        body_only.clone(),
    ] {
        let body: EfficientNetBody = efficientnet_b0_config()
            .init_body(&dev)
            .load_weights(&path)
            .unwrap();
        assert_eq!(body.out_channels(), 320);
        assert_eq!(max_abs_diff(body.forward(x.clone()), expected.clone()), 0.0);
    }
    // The full network needs its classifier.
    let err = efficientnet_b0_config()
        .init(&dev)
        .load_weights(&body_only)
        .unwrap_err();
    assert!(
        matches!(&err, Error::MissingKeys { keys, .. } if keys == &["classifier.1.bias", "classifier.1.weight"]),
        "{err}"
    );

    // MobileNetV2: the body of the full `.pth` equals the full network's features.
    let io = read_safetensors(&fixture("mobilenet_v2_w025_io.safetensors"));
    let x: Tensor<4> = tensor(&io["input"], &dev);
    let full = mobilenet_v2_w025(&dev);
    let body: MobileNetV2Body = MobileNetV2Config::new()
        .with_width_mult(0.25)
        .init_body(&dev)
        .load_weights(fixture("mobilenet_v2_w025.pth"))
        .unwrap();
    assert_eq!(body.out_channels(), 1280);
    assert_eq!(max_abs_diff(body.forward(x.clone()), full.features(x)), 0.0);
}

#[test]
fn import_errors_name_torchvision_keys() {
    let dev = device();
    let dir = tempfile::tempdir().unwrap();
    let load = |tensors: &BTreeMap<String, TensorData>| {
        let path = dir.path().join("edited.safetensors");
        write_safetensors(&path, tensors);
        efficientnet_b0_config().init(&dev).load_weights(&path)
    };

    let mut missing = efficientnet_tensors();
    missing.remove("features.3.1.block.2.fc1.bias").unwrap();
    let err = load(&missing).unwrap_err();
    assert!(
        matches!(&err, Error::MissingKeys { keys, .. } if keys == &["features.3.1.block.2.fc1.bias"]),
        "{err}"
    );

    let mut extra = efficientnet_tensors();
    let t = extra["features.0.1.weight"].clone();
    extra.insert("features.0.2.weight".into(), t);
    let err = load(&extra).unwrap_err();
    assert!(
        matches!(&err, Error::UnexpectedKeys { keys, .. } if keys == &["features.0.2.weight"]),
        "{err}"
    );

    // A depthwise kernel of the wrong size: 5×5 where B0's fourth stage has 3×3.
    let mut wrong = efficientnet_tensors();
    let key = "features.4.0.block.1.0.weight";
    assert_eq!(wrong[key].shape().to_vec(), vec![96, 1, 3, 3]);
    wrong.insert(
        key.into(),
        TensorData::new(vec![0f32; 96 * 25], [96, 1, 5, 5]),
    );
    match load(&wrong).unwrap_err() {
        Error::ShapeMismatch {
            key: k,
            expected,
            got,
            ..
        } => {
            assert_eq!(k, key);
            assert_eq!(expected, vec![96, 1, 3, 3]);
            assert_eq!(got, vec![96, 1, 5, 5]);
        }
        other => panic!("expected a shape mismatch, got {other}"),
    }

    // The MobileNetV2 checkpoint is not an EfficientNet one.
    let err = efficientnet_b0_config()
        .init(&dev)
        .load_weights(fixture("mobilenet_v2_w025.pth"))
        .unwrap_err();
    assert!(
        matches!(err, Error::MissingKeys { .. } | Error::ShapeMismatch { .. }),
        "{err}"
    );
}

/// A row-wise `[n, c, h, w]` comparison: for each sample, max |a − b|.
fn row_diffs(a: Tensor<4>, b: Tensor<4>) -> Vec<f32> {
    let [n, ..] = a.dims();
    let d: Tensor<2> = (a - b).abs().flatten(1, 3);
    d.max_dim(1)
        .reshape([n])
        .into_data()
        .try_to_vec::<f32>()
        .unwrap()
}

#[test]
fn stochastic_depth_drops_rows_in_training_only() {
    let ad = device().autodiff();
    let x = Tensor::<4>::random([4000, 2, 1, 1], Distribution::Uniform(1.0, 2.0), &ad);
    let p = 0.25;
    let sd = StochasticDepth::new(p);

    // Each row is either zeroed or scaled by 1 / (1 − p); about a fraction p are zeroed.
    ad.seed(7);
    let y = sd.forward(x.clone());
    let kept = row_diffs(y.clone().inner(), x.clone().inner().div_scalar(1.0 - p));
    let dropped = row_diffs(y.clone().inner(), x.clone().inner().mul_scalar(0.0));
    let n_dropped = kept
        .iter()
        .zip(&dropped)
        .map(|(&k, &d)| {
            assert!(k < 1e-6 || d == 0.0, "a row neither kept nor dropped");
            usize::from(d == 0.0)
        })
        .sum::<usize>();
    let rate = n_dropped as f64 / 4000.0;
    // Binomial(4000, 0.25): standard deviation 0.0068.
    assert!((rate - p).abs() < 0.035, "drop rate {rate}");

    // The device's seed fixes the mask.
    ad.seed(7);
    assert_eq!(max_abs_diff(sd.forward(x.clone()).inner(), y.inner()), 0.0);

    // Off in eval mode: a plain input, `valid()`, a frozen layer.
    let plain = x.clone().inner();
    assert_eq!(max_abs_diff(sd.forward(plain.clone()), plain), 0.0);
    assert_eq!(max_abs_diff(sd.valid().forward(x.clone()), x.clone()), 0.0);
    assert_eq!(
        max_abs_diff(sd.clone().freeze().forward(x.clone()), x.clone()),
        0.0
    );
    // p = 1 zeroes every row (no division by zero).
    let all = StochasticDepth::new(1.0).forward(x.clone()).inner();
    assert_eq!(all.abs().max().into_scalar::<f32>(), 0.0);
}

#[test]
fn mbconv_residual_branch_survives_or_drops_per_sample() {
    let ad = device().autodiff();
    let block = MBConv::new(16, 16, 6, 5, 1, 0.5, &ad);
    assert!(block.use_res_connect);
    let mut no_drop = block.clone();
    no_drop.stochastic_depth = StochasticDepth::new(0.0);
    let x = Tensor::<4>::random([64, 16, 6, 6], Distribution::Normal(0.0, 1.0), &ad);

    // Train mode: batch statistics, the same for both (the branch does not depend on the mask).
    let branch = (no_drop.forward(x.clone()) - x.clone()).inner();
    ad.seed(3);
    let y = block.forward(x.clone()).inner();
    let x = x.inner();
    let as_dropped = row_diffs(y.clone(), x.clone());
    let as_kept = row_diffs(y, x.clone() + branch.mul_scalar(2.0));
    let mut n_dropped = 0;
    for (d, k) in as_dropped.iter().zip(&as_kept) {
        assert!(*d < 1e-5 || *k < 1e-4, "row is neither x nor x + 2·branch");
        n_dropped += usize::from(*d < 1e-5);
    }
    assert!((8..=56).contains(&n_dropped), "{n_dropped} of 64 dropped");

    // Eval mode ignores stochastic depth entirely.
    let eval = block.valid();
    let plain = no_drop.valid();
    assert_eq!(max_abs_diff(eval.forward(x.clone()), plain.forward(x)), 0.0);
}

#[test]
fn efficientnet_stochastic_depth_grows_linearly_with_depth() {
    let model = EfficientNetConfig::new()
        .with_width_mult(0.25)
        .init_body(&device());
    let mut probs = Vec::new();
    for layer in &model.features {
        if let EfficientNetLayer::Stage(blocks) = layer {
            probs.extend(blocks.iter().map(|b| b.stochastic_depth.prob));
        }
    }
    // torchvision: block i of 16 gets 0.2 · i / 16.
    assert_eq!(probs.len(), 16);
    for (i, p) in probs.iter().enumerate() {
        assert!((p - 0.2 * i as f64 / 16.0).abs() < 1e-12, "block {i}: {p}");
    }

    // With the default 0.2, eval-mode logits are those of the fixture network (p = 0).
    let dev = device();
    let io = read_safetensors(&fixture("efficientnet_b0_w025_io.safetensors"));
    let x: Tensor<4> = tensor(&io["input"], &dev);
    let with_sd = efficientnet_b0_config()
        .with_stochastic_depth_prob(0.2)
        .init(&dev)
        .load_weights(fixture("efficientnet_b0_w025.safetensors"))
        .unwrap();
    let without = efficientnet_b0_w025(&dev);
    assert_eq!(
        max_abs_diff(with_sd.forward(x.clone()), without.forward(x)),
        0.0
    );
}

/// Sample standard deviation of a parameter.
fn sample_std<const D: usize>(t: Tensor<D>) -> f64 {
    let n = t.shape().num_elements() as f64;
    let t: Tensor<1> = t.flatten(0, D - 1);
    let mean = t.clone().mean().into_scalar::<f32>() as f64;
    let c = t.sub_scalar(mean);
    let sq = (c.clone() * c).sum().into_scalar::<f32>() as f64;
    (sq / (n - 1.0)).sqrt()
}

fn assert_close(what: &str, got: f64, expected: f64, rel: f64) {
    assert!(
        (got - expected).abs() <= rel * expected,
        "{what}: {got} vs {expected}"
    );
}

#[test]
fn initialisation_is_torchvisions() {
    let dev = device();
    let m = MobileNetV2Config::new().init(&dev);
    // kaiming_normal_(mode="fan_out") with PyTorch's fan-out `out · k²`, also for a depthwise
    // convolution (features.17's: 960 channels of 3×3; Burn's own fan-out would be 9).
    let MobileNetV2Layer::InvertedResidual(block) = &m.features[17] else {
        panic!("features.17 is an inverted residual")
    };
    let dw = &block.depthwise.0;
    assert_eq!(dw.weight.dims(), [960, 1, 3, 3]);
    assert_close(
        "depthwise",
        sample_std(dw.weight.val()),
        (2.0f64 / (960.0 * 9.0)).sqrt(),
        0.05,
    );
    let MobileNetV2Layer::Conv((last, bn)) = &m.features[18] else {
        panic!("features.18 is a convolution")
    };
    assert_close(
        "1×1",
        sample_std(last.weight.val()),
        (2.0f64 / 1280.0).sqrt(),
        0.02,
    );
    assert_eq!(bn.gamma.val().min().into_scalar::<f32>(), 1.0);
    assert_eq!(bn.beta.val().abs().max().into_scalar::<f32>(), 0.0);
    assert_eq!((bn.epsilon, bn.momentum), (1e-5, 0.1));
    // Classifier: N(0, 0.01), bias 0.
    let fc = &m.classifier.1;
    assert_close("linear", sample_std(fc.weight.val()), 0.01, 0.02);
    let bias = fc.bias.as_ref().unwrap().val();
    assert_eq!(bias.abs().max().into_scalar::<f32>(), 0.0);

    let e = EfficientNetConfig::new().init(&dev);
    // Classifier: U(−1/√1000, 1/√1000), bias 0.
    let fc = &e.classifier.1;
    let r = 1.0 / 1000f64.sqrt();
    let w = fc.weight.val();
    assert!(w.clone().abs().max().into_scalar::<f32>() as f64 <= r);
    assert_close("linear", sample_std(w), r / 3f64.sqrt(), 0.02);
    let bias = fc.bias.as_ref().unwrap().val();
    assert_eq!(bias.abs().max().into_scalar::<f32>(), 0.0);
    // Squeeze-excitation convolutions have zero biases; every BatchNorm torch's defaults.
    let EfficientNetLayer::Stage(stage) = &e.features[6] else {
        panic!("features.6 is a stage")
    };
    let se = &stage[0].se;
    assert_eq!(se.fc1.weight.dims(), [28, 672, 1, 1]);
    let b = se.fc1.bias.as_ref().unwrap().val();
    assert_eq!(b.abs().max().into_scalar::<f32>(), 0.0);
    let dw = &stage[0].depthwise;
    assert_eq!(dw.0.weight.dims(), [672, 1, 5, 5]);
    assert_close(
        "depthwise",
        sample_std(dw.0.weight.val()),
        (2.0f64 / (672.0 * 25.0)).sqrt(),
        0.05,
    );
    assert_eq!((dw.1.epsilon, dw.1.momentum), (1e-5, 0.1));
}

#[test]
fn four_band_stems_start_out_computing_the_rgb_network() {
    let dev = device();
    let x = Tensor::<4>::random([1, 3, 64, 64], Distribution::Normal(0.0, 1.0), &dev);
    let nir = Tensor::<4>::ones([1, 1, 64, 64], &dev);
    let x4 = Tensor::cat(vec![x.clone(), nir], 1);

    let m = mobilenet_v2_w025(&dev);
    let before = m.forward(x.clone());
    let m = m.adapt_in_channels(4);
    assert_eq!(m.in_channels(), 4);
    assert!(max_abs_diff(m.forward(x4.clone()), before) < 1e-5);

    let e = efficientnet_b0_w025(&dev);
    let before = e.forward(x);
    let e = e.adapt_in_channels(4);
    assert_eq!(e.in_channels(), 4);
    assert!(max_abs_diff(e.forward(x4), before) < 1e-5);
}

/// Counts a module's training flags (on, off) and trainable float parameters.
fn flags_and_trainable<M: Module>(m: &M) -> (usize, usize, usize) {
    #[derive(Default)]
    struct Count(usize, usize, usize);
    impl ModuleVisitor for Count {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.2 += usize::from(param.is_require_grad());
        }
        fn visit_flag(&mut self, flag: &Param<Flag>) {
            match flag.is_enabled() {
                true => self.0 += 1,
                false => self.1 += 1,
            }
        }
    }
    let mut c = Count::default();
    m.visit(&mut c);
    (c.0, c.1, c.2)
}

#[test]
fn records_round_trip_and_freeze_reaches_every_layer() {
    // What checkpoints and `lr_find` do: a record of one model loaded into a fresh one.
    let dev = device();
    let io = read_safetensors(&fixture("efficientnet_b0_w025_io.safetensors"));
    let x: Tensor<4> = tensor(&io["input"], &dev);
    let loaded = efficientnet_b0_w025(&dev);
    let restored = efficientnet_b0_config()
        .init(&dev)
        .load_record(loaded.clone().into_record());
    assert_eq!(
        max_abs_diff(restored.forward(x.clone()), loaded.forward(x.clone())),
        0.0
    );
    let loaded = mobilenet_v2_w025(&dev);
    let restored = MobileNetV2Config::new()
        .with_width_mult(0.25)
        .with_num_classes(10)
        .init(&dev)
        .load_record(loaded.clone().into_record());
    assert_eq!(
        max_abs_diff(restored.forward(x.clone()), loaded.forward(x)),
        0.0
    );

    // `freeze` turns off every BatchNorm (49 in B0), stochastic depth (16) and dropout (1)
    // flag, and every parameter's gradient: the hand-written `Module`s map all children.
    let ad = dev.autodiff();
    let model = EfficientNetConfig::new().with_width_mult(0.25).init(&ad);
    let (on, off, trainable) = flags_and_trainable(&model);
    assert_eq!((on, off), (66, 0));
    assert!(trainable > 0);
    assert_eq!(flags_and_trainable(&model.freeze()), (0, 66, 0));
    let model = MobileNetV2Config::new().with_width_mult(0.25).init(&ad);
    // 52 BatchNorms + dropout.
    assert_eq!(flags_and_trainable(&model.clone().valid()).0, 0);
    assert_eq!(flags_and_trainable(&model.freeze()), (0, 53, 0));
}

/// Full-size torchvision MobileNetV2 and EfficientNet-B0 (seeded random weights, 224×224
/// input), held to 1e-4 on the logits and the loss, and to 1 % of the gradient's largest
/// entry on the stem gradient (as the full-size ResNets in `tests/parity.rs`: with ~1e6
/// activation kinks some always lie within float32 round-off).
///
/// Generate with `python scripts/fixtures/models_mobile.py --full DIR` and run with
/// `FASTBURN_FULL_FIXTURES=DIR cargo test --workspace --features ndarray,wgpu,pretrained,fastburn-fuzz/libfuzzer --test parity_mobile --
/// --ignored`.
#[test]
#[ignore = "needs FASTBURN_FULL_FIXTURES (full-size fixtures, ~35 MB, not committed)"]
fn full_size_mobilenet_v2_and_efficientnet_b0_match_torchvision() {
    let dir = std::env::var_os("FASTBURN_FULL_FIXTURES")
        .expect("set FASTBURN_FULL_FIXTURES to the --full output directory");
    let dir = Path::new(&dir);
    let weights = dir.join("mobilenet_v2.pth");
    let m = check(
        "mobilenet_v2 (full size, .pth)",
        |d: &Device| {
            MobileNetV2Config::new()
                .with_dropout(0.0)
                .init(d)
                .load_weights(&weights)
                .unwrap()
        },
        &dir.join("mobilenet_v2_io.safetensors"),
    );
    assert!(m.grad <= 1e-2 * m.grad_scale, "stem gradient: {}", m.grad);
    let weights = dir.join("efficientnet_b0.pth");
    let m = check(
        "efficientnet_b0 (full size, .pth)",
        |d: &Device| {
            EfficientNetConfig::new()
                .with_dropout(0.0)
                .with_stochastic_depth_prob(0.0)
                .init(d)
                .load_weights(&weights)
                .unwrap()
        },
        &dir.join("efficientnet_b0_io.safetensors"),
    );
    assert!(m.grad <= 1e-2 * m.grad_scale, "stem gradient: {}", m.grad);
}
