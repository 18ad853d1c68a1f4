//! Training-mode BatchNorm fused with an optional residual add and ReLU, on `f32` NCHW slices.
//!
//! Forward, per channel: `mean`, biased `var` (two passes, sums in `f64`), then one pass
//! `y = act(γ·(x − mean)/√(var + ε) + β [+ residual])`. Backward, with `g = dy` masked where
//! the ReLU was off: `dβ = Σg`, `dγ = Σg·x̂`, `dx = γ/√(var+ε) · (g − mean(g) − x̂·mean(g·x̂))`,
//! and the residual's gradient is `g` itself. Burn's own `batch_norm_train` computes the same
//! from a dozen tensor operations, each a pass over the activation.

use rayon::prelude::*;

use super::Activation;
use super::conv::min_len;

/// Shape of a BatchNorm input seen as `[n, c, p]` (`p` = product of the spatial sizes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NormGeom {
    /// Images.
    pub n: usize,
    /// Channels.
    pub c: usize,
    /// Positions per image and channel.
    pub p: usize,
}

impl NormGeom {
    /// Values per channel.
    pub fn m(&self) -> usize {
        self.n * self.p
    }

    fn len(&self) -> usize {
        self.n * self.c * self.p
    }
}

/// Sum of a slice in 16 independent `f32` lanes (vectorises), reduced in `f64`.
#[inline(always)]
fn lane_sum(v: &[f32], f: impl Fn(f32) -> f32) -> f64 {
    let mut acc = [0.0f32; 16];
    let chunks = v.chunks_exact(16);
    let rest = chunks.remainder();
    for ch in chunks {
        for l in 0..16 {
            acc[l] += f(ch[l]);
        }
    }
    acc.iter().map(|&a| a as f64).sum::<f64>() + rest.iter().map(|&r| f(r) as f64).sum::<f64>()
}

/// Per-channel batch mean and biased variance.
pub fn batch_stats(g: &NormGeom, x: &[f32]) -> (Vec<f32>, Vec<f32>) {
    assert_eq!(x.len(), g.len(), "input length");
    let m = g.m().max(1) as f64;
    let stats: Vec<(f32, f32)> = (0..g.c)
        .into_par_iter()
        .with_min_len(min_len(g.m()))
        .map(|c| channel_stats(g, x, c, m))
        .collect();
    stats.into_iter().unzip()
}

multiversion! {
fn channel_stats(g: &NormGeom, x: &[f32], c: usize, m: f64) -> (f32, f32) {
    let planes = (0..g.n).map(|n| &x[(n * g.c + c) * g.p..][..g.p]);
    let mean = planes.clone().map(|v| lane_sum(v, |a| a)).sum::<f64>() / m;
    let mf = mean as f32;
    let var = planes
        .map(|v| lane_sum(v, |a| (a - mf) * (a - mf)))
        .sum::<f64>()
        / m;
    (mf, var as f32)
}
}

/// Training forward: returns `(y, mean, var)` (`var` biased, what running statistics take).
pub fn bn_train_forward(
    g: &NormGeom,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    residual: Option<&[f32]>,
    epsilon: f64,
    act: Activation,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (mean, var) = batch_stats(g, x);
    let (scale, shift): (Vec<f32>, Vec<f32>) = (0..g.c)
        .map(|c| {
            let inv = 1.0 / ((var[c] as f64 + epsilon).sqrt());
            let s = gamma[c] as f64 * inv;
            (s as f32, (beta[c] as f64 - mean[c] as f64 * s) as f32)
        })
        .unzip();
    let y = affine(g, x, &scale, &shift, residual, act);
    (y, mean, var)
}

/// `act(x·scale[c] + shift[c] [+ residual])`: BatchNorm in eval mode with folded statistics.
pub fn affine(
    g: &NormGeom,
    x: &[f32],
    scale: &[f32],
    shift: &[f32],
    residual: Option<&[f32]>,
    act: Activation,
) -> Vec<f32> {
    assert_eq!(x.len(), g.len(), "input length");
    if let Some(r) = residual {
        assert_eq!(r.len(), g.len(), "residual length");
    }
    let mut y = vec![0.0f32; g.len()];
    if g.p == 0 {
        return y;
    }
    y.par_chunks_mut(g.p)
        .with_min_len(min_len(g.p))
        .enumerate()
        .for_each(|(idx, out)| {
            let c = idx % g.c;
            let src = &x[idx * g.p..][..g.p];
            let r = residual.map(|r| &r[idx * g.p..][..g.p]);
            affine_plane(out, src, scale[c], shift[c], r, act);
        });
    y
}

multiversion! {
fn affine_plane(out: &mut [f32], src: &[f32], a: f32, b: f32, r: Option<&[f32]>, act: Activation) {
    match (r, act) {
        (None, Activation::Identity) => out.iter_mut().zip(src).for_each(|(o, v)| *o = v * a + b),
        (None, Activation::Relu) => out
            .iter_mut()
            .zip(src)
            .for_each(|(o, v)| *o = (v * a + b).max(0.0)),
        (Some(r), Activation::Identity) => out
            .iter_mut()
            .zip(src.iter().zip(r))
            .for_each(|(o, (v, rv))| *o = v * a + b + rv),
        (Some(r), Activation::Relu) => out
            .iter_mut()
            .zip(src.iter().zip(r))
            .for_each(|(o, (v, rv))| *o = (v * a + b + rv).max(0.0)),
    }
}
}

multiversion! {
/// `Σg` and `Σg·(x − mu)` over one plane, `g` masked where `y ≤ 0` (16 lanes, vectorises).
fn plane_sums(x: &[f32], grad: &[f32], y: Option<&[f32]>, mu: f32) -> (f64, f64) {
    let mut a = [0.0f32; 16];
    let mut b = [0.0f32; 16];
    let mut tail = (0.0f64, 0.0f64);
    match y {
        Some(y) => {
            let (xc, gc, yc) = (
                x.chunks_exact(16),
                grad.chunks_exact(16),
                y.chunks_exact(16),
            );
            let rest = (xc.remainder(), gc.remainder(), yc.remainder());
            for ((xs, gs), ys) in xc.zip(gc).zip(yc) {
                for l in 0..16 {
                    let gv = if ys[l] > 0.0 { gs[l] } else { 0.0 };
                    a[l] += gv;
                    b[l] += gv * (xs[l] - mu);
                }
            }
            for ((xv, gv), yv) in rest.0.iter().zip(rest.1).zip(rest.2) {
                let gv = if *yv > 0.0 { *gv } else { 0.0 };
                tail.0 += gv as f64;
                tail.1 += (gv * (xv - mu)) as f64;
            }
        }
        None => {
            let (xc, gc) = (x.chunks_exact(16), grad.chunks_exact(16));
            let rest = (xc.remainder(), gc.remainder());
            for (xs, gs) in xc.zip(gc) {
                for l in 0..16 {
                    a[l] += gs[l];
                    b[l] += gs[l] * (xs[l] - mu);
                }
            }
            for (xv, gv) in rest.0.iter().zip(rest.1) {
                tail.0 += *gv as f64;
                tail.1 += (gv * (xv - mu)) as f64;
            }
        }
    }
    (
        a.iter().map(|&v| v as f64).sum::<f64>() + tail.0,
        b.iter().map(|&v| v as f64).sum::<f64>() + tail.1,
    )
}
}

multiversion! {
/// `dx = c1·x + c0 + k·g` (and `dres = g`) over one plane, `g` masked where `y ≤ 0`.
#[allow(clippy::too_many_arguments)]
fn plane_dx(
    dx: &mut [f32],
    dres: Option<&mut [f32]>,
    x: &[f32],
    grad: &[f32],
    y: Option<&[f32]>,
    k: f32,
    c1: f32,
    c0: f32,
) {
    match (y, dres) {
        (Some(y), None) => dx
            .iter_mut()
            .zip(x.iter().zip(grad.iter().zip(y)))
            .for_each(|(d, (xv, (gv, yv)))| {
                let gv = if *yv > 0.0 { *gv } else { 0.0 };
                *d = k * gv + c1 * xv + c0;
            }),
        (Some(y), Some(dr)) => dx
            .iter_mut()
            .zip(dr.iter_mut())
            .zip(x.iter().zip(grad.iter().zip(y)))
            .for_each(|((d, r), (xv, (gv, yv)))| {
                let gv = if *yv > 0.0 { *gv } else { 0.0 };
                *d = k * gv + c1 * xv + c0;
                *r = gv;
            }),
        (None, None) => dx
            .iter_mut()
            .zip(x.iter().zip(grad))
            .for_each(|(d, (xv, gv))| *d = k * gv + c1 * xv + c0),
        (None, Some(dr)) => dx
            .iter_mut()
            .zip(dr.iter_mut())
            .zip(x.iter().zip(grad))
            .for_each(|((d, r), (xv, gv))| {
                *d = k * gv + c1 * xv + c0;
                *r = *gv;
            }),
    }
}
}

/// Gradients of [`bn_train_forward`]: `(dx, dgamma, dbeta, dresidual)`; the residual's
/// gradient is `Some` when `want_residual`.
#[allow(clippy::too_many_arguments)]
pub fn bn_train_backward(
    g: &NormGeom,
    x: &[f32],
    gamma: &[f32],
    mean: &[f32],
    var: &[f32],
    epsilon: f64,
    grad: &[f32],
    relu_output: Option<&[f32]>,
    want_residual: bool,
) -> (Vec<f32>, Vec<f32>, Vec<f32>, Option<Vec<f32>>) {
    assert_eq!(grad.len(), g.len(), "gradient length");
    assert_eq!(x.len(), g.len(), "input length");
    let m = g.m().max(1) as f64;
    let inv: Vec<f64> = var
        .iter()
        .map(|&v| 1.0 / (v as f64 + epsilon).sqrt())
        .collect();
    let plane = |idx: usize| idx * g.p..(idx + 1) * g.p;
    // Σg and Σg·x̂ per channel.
    let sums: Vec<(f64, f64)> = (0..g.c)
        .into_par_iter()
        .with_min_len(min_len(g.m()))
        .map(|c| {
            let (mut sg, mut sgx) = (0.0f64, 0.0f64);
            for n in 0..g.n {
                let r = plane(n * g.c + c);
                let (a, b) = plane_sums(
                    &x[r.clone()],
                    &grad[r.clone()],
                    relu_output.map(|y| &y[r]),
                    mean[c],
                );
                sg += a;
                sgx += b;
            }
            (sg, sgx * inv[c])
        })
        .collect();
    let dbeta: Vec<f32> = sums.iter().map(|s| s.0 as f32).collect();
    let dgamma: Vec<f32> = sums.iter().map(|s| s.1 as f32).collect();
    // dx = γ·inv·(g − mean(g) − x̂·mean(g·x̂)) = k·g + c1·x + c0.
    let coef: Vec<(f32, f32, f32)> = (0..g.c)
        .map(|c| {
            let k = gamma[c] as f64 * inv[c];
            let (mg, mgx) = (sums[c].0 / m, sums[c].1 / m);
            let c1 = -k * inv[c] * mgx;
            let c0 = -k * mg - c1 * mean[c] as f64;
            (k as f32, c1 as f32, c0 as f32)
        })
        .collect();
    let mut dx = vec![0.0f32; g.len()];
    let mut dres = want_residual.then(|| vec![0.0f32; g.len()]);
    if g.p > 0 {
        let body = |idx: usize, out: &mut [f32], dr: Option<&mut [f32]>| {
            let (k, c1, c0) = coef[idx % g.c];
            let r = plane(idx);
            plane_dx(
                out,
                dr,
                &x[r.clone()],
                &grad[r.clone()],
                relu_output.map(|y| &y[r]),
                k,
                c1,
                c0,
            );
        };
        match dres.as_mut() {
            Some(dr) => dx
                .par_chunks_mut(g.p)
                .zip(dr.par_chunks_mut(g.p))
                .with_min_len(min_len(g.p))
                .enumerate()
                .for_each(|(idx, (out, dr))| body(idx, out, Some(dr))),
            None => dx
                .par_chunks_mut(g.p)
                .with_min_len(min_len(g.p))
                .enumerate()
                .for_each(|(idx, out)| body(idx, out, None)),
        }
    }
    (dx, dgamma, dbeta, dres)
}
