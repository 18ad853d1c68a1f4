//! Numeric parity with torchvision, against fixtures written by
//! `scripts/fixtures/models_resnet.py` (torch and torchvision versions printed there).
//!
//! For each network: eval-mode logits (running statistics), train-mode logits (batch
//! statistics) and the gradient of the mean cross-entropy with respect to `conv1.weight`
//! after one backward pass, all within 1e-4 of torchvision's (computed in float64; the
//! full-size gradient has a relative tolerance, see the ignored test). Run with
//! `--nocapture` to see the measured errors.

mod common;

use std::path::Path;

use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor};
use common::{device, fixture, max_abs_diff, read_safetensors, tensor};
use fastburn_models::{Arch, ResNet, ResNetConfig, load_torchvision};

const TOL: f32 = 1e-4;

/// Mean cross-entropy, as `torch.nn.functional.cross_entropy`.
fn cross_entropy(logits: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<1> {
    let [n, _] = logits.dims();
    let picked = log_softmax(logits, 1).gather(1, labels.reshape([n as i32, 1]));
    picked.mean().neg()
}

struct Measured {
    eval: f32,
    train: f32,
    loss: f32,
    /// max |Δ| of d loss / d conv1.weight.
    grad: f32,
    /// max |d loss / d conv1.weight| of the reference.
    grad_scale: f32,
}

fn check(name: &str, build: impl Fn(&Device) -> ResNet, io: &Path) -> Measured {
    let io = read_safetensors(io);
    let dev = device();

    // Eval mode: plain device, running statistics.
    let model = build(&dev);
    let x: Tensor<4> = tensor(&io["input"], &dev);
    let eval = max_abs_diff(model.forward(x), tensor(&io["logits_eval"], &dev));

    // Train mode: autodiff device and an autodiff input, batch statistics.
    let ad = dev.clone().autodiff();
    let model = build(&ad);
    let x: Tensor<4> = tensor(&io["input"], &ad);
    let logits = model.forward(x);
    let train = max_abs_diff(logits.clone().inner(), tensor(&io["logits_train"], &dev));
    let labels = Tensor::<1, Int>::from_data(io["labels"].clone(), &ad);
    let loss = cross_entropy(logits, labels);
    let loss_diff = max_abs_diff(loss.clone().inner(), tensor(&io["loss"], &dev));
    let grads = loss.backward();
    let g = model
        .conv1
        .weight
        .grad(&grads)
        .expect("conv1.weight has a gradient");
    let g_ref: Tensor<4> = tensor(&io["conv1_grad"], &dev);
    let grad_scale = g_ref.clone().abs().max().into_scalar::<f32>();
    let grad = max_abs_diff(g, g_ref);

    println!(
        "{name}: max|Δ| logits eval {eval:.3e}, logits train {train:.3e}, loss {loss_diff:.3e}, conv1 grad {grad:.3e} (max|grad| {grad_scale:.3e})"
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

fn narrow(arch: Arch, width: usize, file: &'static str) -> impl Fn(&Device) -> ResNet {
    move |d: &Device| {
        ResNetConfig::new(arch)
            .with_base_width(width)
            .with_num_classes(10)
            .init(d)
            .load_weights(fixture(file))
            .unwrap()
    }
}

fn assert_grad(m: &Measured, tol: f32) {
    assert!(m.grad <= tol, "conv1 gradient differs by {}", m.grad);
}

#[test]
fn resnet18_basic_blocks_match_torchvision_pth() {
    let m = check(
        "resnet18 (width 8, .pth)",
        narrow(Arch::ResNet18, 8, "resnet18_w8.pth"),
        &fixture("resnet18_w8_io.safetensors"),
    );
    assert_grad(&m, TOL);
}

#[test]
fn resnet50_bottlenecks_match_torchvision_pth() {
    let m = check(
        "resnet50 (width 4, .pth)",
        narrow(Arch::ResNet50, 4, "resnet50_w4.pth"),
        &fixture("resnet50_w4_io.safetensors"),
    );
    assert_grad(&m, TOL);
}

#[test]
fn resnet50_bottlenecks_match_torchvision_safetensors() {
    let m = check(
        "resnet50 (width 4, .safetensors)",
        narrow(Arch::ResNet50, 4, "resnet50_w4.safetensors"),
        &fixture("resnet50_w4_io.safetensors"),
    );
    assert_grad(&m, TOL);
    assert!(m.eval.is_finite() && m.train.is_finite() && m.loss.is_finite());
}

#[test]
fn pth_and_safetensors_load_identical_weights() {
    let dev = device();
    let a = narrow(Arch::ResNet50, 4, "resnet50_w4.pth")(&dev);
    let b = narrow(Arch::ResNet50, 4, "resnet50_w4.safetensors")(&dev);
    assert_eq!(
        max_abs_diff(a.fc.weight.val(), b.fc.weight.val()),
        0.0,
        "fc.weight"
    );
    let (ra, rb) = (&a.layer3[5].bn3, &b.layer3[5].bn3);
    let (ra, rb) = (ra.as_ref().unwrap(), rb.as_ref().unwrap());
    assert_eq!(
        max_abs_diff(ra.running_var.value(), rb.running_var.value()),
        0.0
    );
    assert_eq!(max_abs_diff(ra.gamma.val(), rb.gamma.val()), 0.0);
}

/// Full-size torchvision ResNet-18 and ResNet-34 (seeded random weights, 224×224 input).
///
/// Logits (eval and train mode) and the loss are held to 1e-4 as for the narrow networks.
/// The gradient is held to 1 % of its largest entry instead: at this size (≈1e6 ReLU and
/// max-pool decisions) some pre-activation always lies within float32 round-off of a kink,
/// and float32 implementations that sum in different orders route its gradient differently.
/// Measured on the ResNet-34 fixture: perturbing the input by a relative 1e-6 changes
/// torchvision's own *float64* gradient by 1.5e-3, about as much as this crate's float32
/// gradient differs from it (1.6e-3; ResNet-18: 9.7e-5), while the logits agree to 2e-6.
///
/// Generate with `python scripts/fixtures/models_resnet.py --full DIR` and run with
/// `FASTBURN_FULL_FIXTURES=DIR cargo test -p fastburn-models --test parity -- --ignored`.
#[test]
#[ignore = "needs FASTBURN_FULL_FIXTURES (full-size fixtures, ~130 MB, not committed)"]
fn full_size_resnet18_and_34_match_torchvision() {
    let dir = std::env::var_os("FASTBURN_FULL_FIXTURES")
        .expect("set FASTBURN_FULL_FIXTURES to the --full output directory");
    let dir = Path::new(&dir);
    for arch in [Arch::ResNet18, Arch::ResNet34] {
        let weights = dir.join(format!("{arch}.pth"));
        let m = check(
            &format!("{arch} (full size, .pth)"),
            |d: &Device| {
                load_torchvision(arch, &weights, d)
                    .unwrap()
                    .into_resnet()
                    .unwrap()
            },
            &dir.join(format!("{arch}_io.safetensors")),
        );
        assert_grad(&m, 1e-2 * m.grad_scale);
    }
}
