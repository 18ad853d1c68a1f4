//! Depthwise 2-D convolution (`groups == channels`, one filter per channel: MobileNet's and
//! EfficientNet's 3×3 and 5×5 layers) on `f32` NCHW slices, forward and both gradients.
//!
//! There is no GEMM to make here (each output sums only `kh·kw` products), so each pass is
//! a direct loop over one (image, channel) plane per task: for each kernel tap, a row of
//! outputs reads a row of inputs at a fixed shift, which vectorises for stride 1. The
//! weight gradient is one task per channel, summing over the images in order, so results
//! do not depend on the number of threads.

use rayon::prelude::*;

use super::Activation;
use super::conv::{ConvGeom, Wanted, min_len, range, residual_grad};

/// The geometry of a depthwise convolution of `x [n, c, h, w]` by `weight [c, 1, kh, kw]`.
///
/// # Panics
/// If `weight` is not `[c, 1, kh, kw]`, a stride is zero or the padded input is smaller
/// than the kernel.
pub fn geometry(
    x: [usize; 4],
    weight: [usize; 4],
    stride: [usize; 2],
    padding: [(usize, usize); 2],
) -> ConvGeom {
    let [_, c, _, _] = x;
    let [o, one, kh, kw] = weight;
    assert!(
        o == c && one == 1,
        "a depthwise weight for {c} channels is [{c}, 1, kh, kw], got [{o}, {one}, {kh}, {kw}]"
    );
    let mut g = ConvGeom::new(x, [c, c, kh, kw], stride, padding);
    g.o = c;
    g
}

/// For every tap: `(tap, h_lo, h_hi, ih0, w_lo, w_hi, iw0)`, the output rows and columns
/// that read inside the input and the input row and column of the first of them.
fn taps(g: &ConvGeom) -> Vec<(usize, usize, usize, usize, usize, usize, usize)> {
    let mut v = Vec::with_capacity(g.kh * g.kw);
    for ki in 0..g.kh {
        for kj in 0..g.kw {
            let (h_lo, h_hi, ih0) = range(g.oh, g.h, g.sh, ki, g.pt);
            let (w_lo, w_hi, iw0) = range(g.ow, g.w, g.sw, kj, g.pl);
            if h_lo < h_hi && w_lo < w_hi {
                v.push((
                    ki * g.kw + kj,
                    h_lo,
                    h_hi,
                    ih0 as usize,
                    w_lo,
                    w_hi,
                    iw0 as usize,
                ));
            }
        }
    }
    v
}

/// Forward: `act(depthwise(x, weight) + bias [+ residual])`, `[n, c, oh, ow]`.
pub fn forward(
    g: &ConvGeom,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    residual: Option<&[f32]>,
    act: Activation,
) -> Vec<f32> {
    let (hw, p) = (g.h * g.w, g.p());
    assert_eq!(x.len(), g.n * g.c * hw, "input length");
    assert_eq!(weight.len(), g.c * g.kh * g.kw, "weight length");
    let mut y = vec![0.0f32; g.n * g.c * p];
    if let Some(r) = residual {
        assert_eq!(r.len(), y.len(), "residual length");
    }
    if p == 0 {
        return y;
    }
    let taps = taps(g);
    let kk = g.kh * g.kw;
    y.par_chunks_mut(p)
        .with_min_len(min_len(p * kk))
        .enumerate()
        .for_each(|(idx, out)| {
            let c = idx % g.c;
            let plane = &x[idx * hw..][..hw];
            let w = &weight[c * kk..][..kk];
            out.fill(bias.map_or(0.0, |b| b[c]));
            forward_plane(g, &taps, plane, w, out);
            let r = residual.map(|r| &r[idx * p..][..p]);
            finish(out, r, act);
        });
    y
}

type Tap = (usize, usize, usize, usize, usize, usize, usize);

multiversion! {
fn forward_plane(g: &ConvGeom, taps: &[Tap], plane: &[f32], w: &[f32], out: &mut [f32]) {
    for &(tap, h_lo, h_hi, ih0, w_lo, w_hi, iw0) in taps {
        let wv = w[tap];
        for oh in h_lo..h_hi {
            let ih = ih0 + (oh - h_lo) * g.sh;
            let src = &plane[ih * g.w + iw0..(ih + 1) * g.w];
            let dst = &mut out[oh * g.ow + w_lo..oh * g.ow + w_hi];
            if g.sw == 1 {
                dst.iter_mut().zip(src).for_each(|(d, s)| *d += wv * s);
            } else {
                dst.iter_mut()
                    .zip(src.iter().step_by(g.sw))
                    .for_each(|(d, s)| *d += wv * s);
            }
        }
    }
}
}

multiversion! {
fn finish(out: &mut [f32], r: Option<&[f32]>, act: Activation) {
    if let Some(r) = r {
        out.iter_mut().zip(r).for_each(|(o, rv)| *o += rv);
    }
    if act == Activation::Relu {
        out.iter_mut().for_each(|o| *o = o.max(0.0));
    }
}
}

/// Gradients of [`forward`]: `(dx, dweight [c, 1, kh, kw], dbias [c])` as wanted; `grad`
/// is masked by `relu_output > 0` first when the forward pass applied ReLU.
pub fn backward(
    g: &ConvGeom,
    x: &[f32],
    weight: &[f32],
    grad: &[f32],
    relu_output: Option<&[f32]>,
    wanted: Wanted,
) -> super::conv::ConvGrads {
    let (hw, p, kk) = (g.h * g.w, g.p(), g.kh * g.kw);
    assert_eq!(grad.len(), g.n * g.c * p, "output-gradient length");
    let masked;
    let grad = match relu_output {
        Some(y) => {
            masked = residual_grad(grad, Some(y));
            &masked[..]
        }
        None => grad,
    };
    let taps = taps(g);
    let dx = wanted.x.then(|| {
        let mut dx = vec![0.0f32; g.n * g.c * hw];
        if p > 0 {
            dx.par_chunks_mut(hw)
                .with_min_len(min_len(p * kk))
                .enumerate()
                .for_each(|(idx, plane)| {
                    let w = &weight[(idx % g.c) * kk..][..kk];
                    input_grad_plane(g, &taps, &grad[idx * p..][..p], w, plane);
                });
        }
        dx
    });
    let dw = wanted.weight.then(|| {
        let per_channel: Vec<Vec<f32>> = (0..g.c)
            .into_par_iter()
            .with_min_len(min_len(g.n * p * kk))
            .map(|c| {
                let mut acc = vec![0.0f64; kk];
                for n in 0..g.n {
                    let idx = n * g.c + c;
                    weight_grad_plane(
                        g,
                        &taps,
                        &grad[idx * p..][..p],
                        &x[idx * hw..][..hw],
                        &mut acc,
                    );
                }
                acc.into_iter().map(|v| v as f32).collect()
            })
            .collect();
        per_channel.concat()
    });
    let db = wanted.bias.then(|| {
        (0..g.c)
            .into_par_iter()
            .map(|c| {
                (0..g.n)
                    .map(|n| {
                        grad[(n * g.c + c) * p..][..p]
                            .iter()
                            .map(|&v| v as f64)
                            .sum::<f64>()
                    })
                    .sum::<f64>() as f32
            })
            .collect()
    });
    (dx, dw, db)
}

multiversion! {
fn input_grad_plane(g: &ConvGeom, taps: &[Tap], grad: &[f32], w: &[f32], plane: &mut [f32]) {
    for &(tap, h_lo, h_hi, ih0, w_lo, w_hi, iw0) in taps {
        let wv = w[tap];
        for oh in h_lo..h_hi {
            let ih = ih0 + (oh - h_lo) * g.sh;
            let src = &grad[oh * g.ow + w_lo..oh * g.ow + w_hi];
            let dst = &mut plane[ih * g.w + iw0..(ih + 1) * g.w];
            if g.sw == 1 {
                dst.iter_mut().zip(src).for_each(|(d, s)| *d += wv * s);
            } else {
                dst.iter_mut()
                    .step_by(g.sw)
                    .zip(src)
                    .for_each(|(d, s)| *d += wv * s);
            }
        }
    }
}
}

multiversion! {
fn weight_grad_plane(g: &ConvGeom, taps: &[Tap], grad: &[f32], plane: &[f32], acc: &mut [f64]) {
    for &(tap, h_lo, h_hi, ih0, w_lo, w_hi, iw0) in taps {
        let mut lanes = [0.0f32; 8];
        let mut tail = 0.0f32;
        for oh in h_lo..h_hi {
            let ih = ih0 + (oh - h_lo) * g.sh;
            let gs = &grad[oh * g.ow + w_lo..oh * g.ow + w_hi];
            let xs = &plane[ih * g.w + iw0..(ih + 1) * g.w];
            if g.sw == 1 {
                let (gc, xc) = (gs.chunks_exact(8), xs[..gs.len()].chunks_exact(8));
                let rest = gc.remainder().iter().zip(xc.remainder());
                for (a, b) in gc.zip(xc) {
                    for l in 0..8 {
                        lanes[l] += a[l] * b[l];
                    }
                }
                tail += rest.map(|(a, b)| a * b).sum::<f32>();
            } else {
                tail += gs.iter().zip(xs.iter().step_by(g.sw)).map(|(a, b)| a * b).sum::<f32>();
            }
        }
        acc[tap] += lanes.iter().map(|&v| v as f64).sum::<f64>() + tail as f64;
    }
}
}
