//! 2-D convolution on `f32` NCHW slices: forward, input gradient and weight gradient.
//!
//! Every pass is one GEMM over *batch × positions* (in chunks that keep the patch matrix
//! near [`COL_BUDGET`] floats), not one per image, so the GEMM's long side stays long on
//! the small maps of a network's last stages. The patch matrix is Caffe's `im2col` layout,
//! `[C·KH·KW, images·OH·OW]`: each row is one (channel, kernel tap), and for stride 1 a row
//! of it is a shifted copy of an input row, so building it is a few `memcpy`s per row.
//!
//! - forward: `Y[O, cols] = W[O, K] · col[K, cols]`, then one pass that scatters to NCHW and
//!   applies the bias and the activation (the epilogue);
//! - weight gradient: `dW[O, K] += dY[O, cols] · col[K, cols]ᵀ`, accumulated over chunks;
//! - input gradient: `dcol[K, cols] = Wᵀ · dY`, then `col2im` adds each tap back into its
//!   input position, one (image, channel) plane per task so no two tasks write one place.
//!
//! Everything runs on rayon's pool; the GEMMs use the `gemm` crate's own rayon split. The
//! results do not depend on the number of threads: every output element is summed in a
//! fixed order (GEMM tiles split `M`/`N`, never `K`; chunks accumulate in order).

use rayon::prelude::*;

use super::{Activation, gemm_parallelism, scratch};

/// Floats of patch matrix per chunk (16 MiB): big enough that a chunk's GEMM has at least
/// ~900 columns at the widest layers, small enough to stay in the last-level cache's
/// neighbourhood and to bound the extra memory a convolution needs.
pub const COL_BUDGET: usize = 1 << 22;

/// The geometry of one convolution: input `[n, c, h, w]`, weight `[o, c, kh, kw]`,
/// stride, padding `(top, bottom, left, right)`, output `[n, o, oh, ow]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeom {
    /// Images.
    pub n: usize,
    /// Input channels.
    pub c: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Output channels.
    pub o: usize,
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Vertical stride.
    pub sh: usize,
    /// Horizontal stride.
    pub sw: usize,
    /// Padding above.
    pub pt: usize,
    /// Padding to the left.
    pub pl: usize,
    /// Output height.
    pub oh: usize,
    /// Output width.
    pub ow: usize,
}

impl ConvGeom {
    /// The geometry of `x [n, c, h, w]` convolved with `weight [o, c, kh, kw]`.
    ///
    /// `padding` is `[(top, bottom), (left, right)]`, as in Burn's `ConvOptions`.
    ///
    /// # Panics
    /// If the channel counts differ, a stride is zero, or the padded input is smaller than
    /// the kernel.
    pub fn new(
        x: [usize; 4],
        weight: [usize; 4],
        stride: [usize; 2],
        padding: [(usize, usize); 2],
    ) -> Self {
        let [n, c, h, w] = x;
        let [o, cw, kh, kw] = weight;
        assert_eq!(c, cw, "input has {c} channels, the weight expects {cw}");
        assert!(stride[0] > 0 && stride[1] > 0, "stride must be non-zero");
        let [(pt, pb), (pl, pr)] = padding;
        assert!(
            h + pt + pb >= kh && w + pl + pr >= kw,
            "padded input {}x{} is smaller than the kernel {kh}x{kw}",
            h + pt + pb,
            w + pl + pr
        );
        let oh = (h + pt + pb - kh) / stride[0] + 1;
        let ow = (w + pl + pr - kw) / stride[1] + 1;
        Self {
            n,
            c,
            h,
            w,
            o,
            kh,
            kw,
            sh: stride[0],
            sw: stride[1],
            pt,
            pl,
            oh,
            ow,
        }
    }

    /// Rows of the patch matrix: `c · kh · kw`.
    pub fn k(&self) -> usize {
        self.c * self.kh * self.kw
    }

    /// Output positions per image.
    pub fn p(&self) -> usize {
        self.oh * self.ow
    }

    /// Output shape `[n, o, oh, ow]`.
    pub fn out_shape(&self) -> [usize; 4] {
        [self.n, self.o, self.oh, self.ow]
    }

    /// Images per chunk.
    fn chunk(&self) -> usize {
        (COL_BUDGET / (self.k() * self.p()).max(1)).clamp(1, self.n.max(1))
    }

    /// Whether the patch matrix of one image is the image itself (1×1, stride 1, no padding).
    fn is_pointwise(&self) -> bool {
        self.kh == 1
            && self.kw == 1
            && self.sh == 1
            && self.sw == 1
            && self.pt == 0
            && self.pl == 0
            && self.oh == self.h
            && self.ow == self.w
    }

    /// For kernel column `kj`, the output columns `[lo, hi)` that read inside the input,
    /// and the input column of `lo`.
    fn col_range(&self, kj: usize) -> (usize, usize, isize) {
        range(self.ow, self.w, self.sw, kj, self.pl)
    }
}

/// Outputs `[lo, hi)` of a dimension whose input index `i = o·s + k − p` is in `[0, len)`,
/// and the input index of `lo`.
pub(crate) fn range(out: usize, len: usize, s: usize, k: usize, p: usize) -> (usize, usize, isize) {
    let off = k as isize - p as isize; // i = o*s + off
    let lo = if off >= 0 {
        0
    } else {
        ((-off) as usize).div_ceil(s)
    };
    // largest o with o*s + off <= len - 1
    let last = len as isize - 1 - off;
    let hi = if last < 0 {
        0
    } else {
        (last as usize / s + 1).min(out)
    };
    let lo = lo.min(hi);
    (lo, hi, lo as isize * s as isize + off)
}

/// Planes (or rows) per rayon task, so that each task has at least ~16 k floats of work.
pub(crate) fn min_len(elems_per_item: usize) -> usize {
    (16_384 / elems_per_item.max(1)).max(1)
}

/// Output rows shorter than this use a gather table rather than row copies.
const SHORT_ROW: usize = 16;

/// For each kernel tap, the input offset (`ih·w + iw`) each output position reads, or −1
/// where it reads padding: `[kh·kw][oh·ow]`.
fn tap_table(g: &ConvGeom) -> Vec<i32> {
    let p = g.p();
    let mut t = vec![-1i32; g.kh * g.kw * p];
    for ki in 0..g.kh {
        for kj in 0..g.kw {
            let row = &mut t[(ki * g.kw + kj) * p..][..p];
            for oh in 0..g.oh {
                let ih = (oh * g.sh + ki) as isize - g.pt as isize;
                if ih < 0 || ih >= g.h as isize {
                    continue;
                }
                for ow in 0..g.ow {
                    let iw = (ow * g.sw + kj) as isize - g.pl as isize;
                    if iw >= 0 && iw < g.w as isize {
                        row[oh * g.ow + ow] = (ih as usize * g.w + iw as usize) as i32;
                    }
                }
            }
        }
    }
    t
}

/// How the patch matrix is built: row copies, or a gather table for short rows.
enum Patches {
    /// 1×1, stride 1, no padding: the patch matrix of an image is the image.
    Pointwise,
    /// Row copies (long output rows).
    Rows,
    /// Gather through [`tap_table`].
    Table(Vec<i32>),
}

impl Patches {
    fn of(g: &ConvGeom) -> Self {
        if g.is_pointwise() {
            Patches::Pointwise
        } else if g.ow < SHORT_ROW {
            Patches::Table(tap_table(g))
        } else {
            Patches::Rows
        }
    }
}

/// Builds the patch matrix of images `[n0, n0 + nb)` into `col` (`[k, nb·p]`, row-major).
fn im2col(g: &ConvGeom, how: &Patches, x: &[f32], n0: usize, nb: usize, col: &mut [f32]) {
    let cols = nb * g.p();
    col[..g.k() * cols]
        .par_chunks_mut(cols)
        .with_min_len(min_len(cols))
        .enumerate()
        .for_each(|(r, row)| im2col_row(g, how, x, n0, nb, r, row));
}

multiversion! {
fn im2col_row(
    g: &ConvGeom,
    how: &Patches,
    x: &[f32],
    n0: usize,
    nb: usize,
    r: usize,
    row: &mut [f32],
) {
    let (p, hw, kk) = (g.p(), g.h * g.w, g.kh * g.kw);
    let (c, tap) = (r / kk, r % kk);
    let (ki, kj) = (tap / g.kw, tap % g.kw);
    let (h_lo, h_hi, ih0) = range(g.oh, g.h, g.sh, ki, g.pt);
    let (w_lo, w_hi, iw0) = g.col_range(kj);
    for i in 0..nb {
        let plane = &x[((n0 + i) * g.c + c) * hw..][..hw];
        let out = &mut row[i * p..(i + 1) * p];
        match how {
            Patches::Pointwise => out.copy_from_slice(plane),
            Patches::Table(t) => {
                let t = &t[tap * p..][..p];
                for (o, &at) in out.iter_mut().zip(t) {
                    // SAFETY: `tap_table` writes only offsets `ih·w + iw` with `ih < h` and
                    // `iw < w`, i.e. below `h·w == plane.len()`, or −1.
                    *o = if at >= 0 { unsafe { *plane.get_unchecked(at as usize) } } else { 0.0 };
                }
            }
            Patches::Rows => {
                zero_row(&mut out[..h_lo * g.ow]);
                zero_row(&mut out[h_hi * g.ow..]);
                for oh in h_lo..h_hi {
                    let ih = (ih0 + ((oh - h_lo) * g.sh) as isize) as usize;
                    let src = &plane[ih * g.w..(ih + 1) * g.w];
                    let dst = &mut out[oh * g.ow..(oh + 1) * g.ow];
                    zero_row(&mut dst[..w_lo]);
                    zero_row(&mut dst[w_hi..]);
                    let iw0 = iw0 as usize;
                    if g.sw == 1 {
                        copy_row(&mut dst[w_lo..w_hi], &src[iw0..iw0 + (w_hi - w_lo)]);
                    } else {
                        let src = src[iw0..].iter().step_by(g.sw);
                        for (d, s) in dst[w_lo..w_hi].iter_mut().zip(src) {
                            *d = *s;
                        }
                    }
                }
            }
        }
    }
}
}

/// `dst.copy_from_slice(src)` for the short rows of a feature map (a few dozen floats):
/// fixed-size block copies that compile to inline vector moves, where `copy_from_slice`
/// would call `memcpy` once per row.
#[inline(always)]
fn copy_row(dst: &mut [f32], src: &[f32]) {
    assert_eq!(dst.len(), src.len());
    let mut d = dst.chunks_exact_mut(16);
    let mut s = src.chunks_exact(16);
    for (d, s) in (&mut d).zip(&mut s) {
        let d: &mut [f32; 16] = d.try_into().expect("16 floats");
        *d = s.try_into().expect("16 floats");
    }
    let (d, s) = (d.into_remainder(), s.remainder());
    let mut d4 = d.chunks_exact_mut(4);
    let mut s4 = s.chunks_exact(4);
    for (d, s) in (&mut d4).zip(&mut s4) {
        let d: &mut [f32; 4] = d.try_into().expect("4 floats");
        *d = s.try_into().expect("4 floats");
    }
    // At most three left: explicit stores, which LLVM does not turn back into a call.
    let (d, s) = (d4.into_remainder(), s4.remainder());
    if !d.is_empty() {
        d[0] = s[0];
    }
    if d.len() > 1 {
        d[1] = s[1];
    }
    if d.len() > 2 {
        d[2] = s[2];
    }
}

/// `dst.fill(0.0)` for the few padding columns or rows of a patch row, without a `memset`
/// call per row.
#[inline(always)]
fn zero_row(dst: &mut [f32]) {
    let mut d = dst.chunks_exact_mut(4);
    for d in &mut d {
        let d: &mut [f32; 4] = d.try_into().expect("4 floats");
        *d = [0.0; 4];
    }
    let d = d.into_remainder();
    if !d.is_empty() {
        d[0] = 0.0;
    }
    if d.len() > 1 {
        d[1] = 0.0;
    }
    if d.len() > 2 {
        d[2] = 0.0;
    }
}

/// Adds the patch-matrix gradient `dcol` (`[k, nb·p]`) of images `[n0, n0 + nb)` into their
/// input gradient `dx` (`[nb, c, h, w]`, this chunk only).
fn col2im(g: &ConvGeom, how: &Patches, dcol: &[f32], nb: usize, dx: &mut [f32]) {
    let hw = g.h * g.w;
    dx[..nb * g.c * hw]
        .par_chunks_mut(hw)
        .with_min_len(min_len(hw * g.kh * g.kw))
        .enumerate()
        .for_each(|(plane_idx, plane)| col2im_plane(g, how, dcol, nb, plane_idx, plane));
}

multiversion! {
fn col2im_plane(
    g: &ConvGeom,
    how: &Patches,
    dcol: &[f32],
    nb: usize,
    plane_idx: usize,
    plane: &mut [f32],
) {
    let (p, kk) = (g.p(), g.kh * g.kw);
    let cols = nb * p;
    let (i, c) = (plane_idx / g.c, plane_idx % g.c);
    if let Patches::Pointwise = how {
        plane.copy_from_slice(&dcol[c * cols + i * p..][..p]);
        return;
    }
    plane.fill(0.0);
    for tap in 0..kk {
        let row = &dcol[(c * kk + tap) * cols + i * p..][..p];
        if let Patches::Table(t) = how {
            for (v, &at) in row.iter().zip(&t[tap * p..][..p]) {
                if at >= 0 {
                    plane[at as usize] += v;
                }
            }
            continue;
        }
        let (ki, kj) = (tap / g.kw, tap % g.kw);
        let (h_lo, h_hi, ih0) = range(g.oh, g.h, g.sh, ki, g.pt);
        let (w_lo, w_hi, iw0) = g.col_range(kj);
        let iw0 = iw0 as usize;
        for oh in h_lo..h_hi {
            let ih = (ih0 + ((oh - h_lo) * g.sh) as isize) as usize;
            let src = &row[oh * g.ow + w_lo..oh * g.ow + w_hi];
            let dst = &mut plane[ih * g.w..(ih + 1) * g.w];
            if g.sw == 1 {
                for (d, s) in dst[iw0..iw0 + src.len()].iter_mut().zip(src) {
                    *d += s;
                }
            } else {
                for (d, s) in dst[iw0..].iter_mut().step_by(g.sw).zip(src) {
                    *d += s;
                }
            }
        }
    }
}
}

/// `dst[m, n] = lhs[m, k] · rhs[k, n]` (or `+=` with `accumulate`), all row-major slices given
/// with their strides `(row stride, column stride)`.
#[allow(clippy::too_many_arguments)]
fn matmul(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    dst_rs: usize,
    lhs: &[f32],
    (lhs_rs, lhs_cs): (usize, usize),
    rhs: &[f32],
    (rhs_rs, rhs_cs): (usize, usize),
    accumulate: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for r in 0..m {
                dst[r * dst_rs..r * dst_rs + n].fill(0.0);
            }
        }
        return;
    }
    assert!(dst.len() >= (m - 1) * dst_rs + n);
    assert!(lhs.len() > (m - 1) * lhs_rs + (k - 1) * lhs_cs);
    assert!(rhs.len() > (k - 1) * rhs_rs + (n - 1) * rhs_cs);
    // SAFETY: the asserts above keep every index the GEMM touches inside the slices; `dst`
    // does not alias `lhs` or `rhs` (it is borrowed mutably).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm_parallelism(m, n, k),
        );
    }
}

/// Forward convolution: `act(x ⋆ weight + bias [+ residual])`, NCHW in and out.
///
/// `x` is `[n, c, h, w]`, `weight` `[o, c, kh, kw]`, `bias` `[o]` if given, `residual` the
/// output's shape if given; the result is `[n, o, oh, ow]`, contiguous. Bias, residual and
/// activation are applied in the pass that writes the GEMM's result out (the epilogue).
pub fn conv2d_forward(
    g: &ConvGeom,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    residual: Option<&[f32]>,
    act: Activation,
) -> Vec<f32> {
    let (k, p, o) = (g.k(), g.p(), g.o);
    assert_eq!(x.len(), g.n * g.c * g.h * g.w, "input length");
    assert_eq!(weight.len(), o * k, "weight length");
    let mut y = vec![0.0f32; g.n * o * p];
    if let Some(r) = residual {
        assert_eq!(r.len(), y.len(), "residual length");
    }
    if g.n == 0 || p == 0 || o == 0 {
        return y;
    }
    let chunk = g.chunk();
    let how = Patches::of(g);
    let mut col = scratch(k * chunk * p);
    let mut buf = scratch(if chunk > 1 { o * chunk * p } else { 0 });
    for n0 in (0..g.n).step_by(chunk) {
        let nb = chunk.min(g.n - n0);
        let cols = nb * p;
        im2col(g, &how, x, n0, nb, &mut col);
        let out = &mut y[n0 * o * p..(n0 + nb) * o * p];
        if nb == 1 {
            // One image: the GEMM's `[o, p]` result is already the NCHW plane set.
            matmul(
                o,
                cols,
                k,
                out,
                cols,
                weight,
                (k, 1),
                &col,
                (cols, 1),
                false,
            );
            out.par_chunks_mut(p)
                .with_min_len(min_len(p))
                .enumerate()
                .for_each(|(oc, plane)| {
                    let b = bias.map_or(0.0, |b| b[oc]);
                    let r = residual.map(|r| &r[(n0 * o + oc) * p..][..p]);
                    epilogue_in_place(plane, b, r, act);
                });
        } else {
            matmul(
                o,
                cols,
                k,
                &mut buf,
                cols,
                weight,
                (k, 1),
                &col,
                (cols, 1),
                false,
            );
            let buf = &buf;
            out.par_chunks_mut(p)
                .with_min_len(min_len(p))
                .enumerate()
                .for_each(|(idx, plane)| {
                    let (i, oc) = (idx / o, idx % o);
                    let b = bias.map_or(0.0, |b| b[oc]);
                    let src = &buf[oc * cols + i * p..][..p];
                    let r = residual.map(|r| &r[((n0 + i) * o + oc) * p..][..p]);
                    epilogue(plane, src, b, r, act);
                });
        }
    }
    y
}

multiversion! {
fn epilogue(dst: &mut [f32], src: &[f32], b: f32, r: Option<&[f32]>, act: Activation) {
    match (r, act) {
        (None, Activation::Identity) => dst.iter_mut().zip(src).for_each(|(d, s)| *d = s + b),
        (None, Activation::Relu) => dst.iter_mut().zip(src).for_each(|(d, s)| *d = (s + b).max(0.0)),
        (Some(r), Activation::Identity) => dst
            .iter_mut()
            .zip(src.iter().zip(r))
            .for_each(|(d, (s, rv))| *d = s + b + rv),
        (Some(r), Activation::Relu) => dst
            .iter_mut()
            .zip(src.iter().zip(r))
            .for_each(|(d, (s, rv))| *d = (s + b + rv).max(0.0)),
    }
}
}

multiversion! {
fn epilogue_in_place(dst: &mut [f32], b: f32, r: Option<&[f32]>, act: Activation) {
    match (r, act) {
        (None, Activation::Identity) if b == 0.0 => {}
        (None, Activation::Identity) => dst.iter_mut().for_each(|d| *d += b),
        (None, Activation::Relu) => dst.iter_mut().for_each(|d| *d = (*d + b).max(0.0)),
        (Some(r), Activation::Identity) => dst.iter_mut().zip(r).for_each(|(d, rv)| *d = *d + b + rv),
        (Some(r), Activation::Relu) => dst
            .iter_mut()
            .zip(r)
            .for_each(|(d, rv)| *d = (*d + b + rv).max(0.0)),
    }
}
}

/// What [`conv2d_backward`] computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Wanted {
    /// The input gradient.
    pub x: bool,
    /// The weight gradient.
    pub weight: bool,
    /// The bias gradient.
    pub bias: bool,
}

/// Gradients of a convolution (see [`Wanted`]): `(dx [n, c, h, w], dweight [o, c, kh, kw],
/// dbias [o])`, each `None` when not wanted.
///
/// `grad` is the gradient of the output `[n, o, oh, ow]`. With `relu_output = Some(y)` the
/// forward pass applied ReLU and returned `y`: the gradient is masked to where `y > 0`
/// first.
pub type ConvGrads = (Option<Vec<f32>>, Option<Vec<f32>>, Option<Vec<f32>>);

/// Backward pass of [`conv2d_forward`]; see [`ConvGrads`].
pub fn conv2d_backward(
    g: &ConvGeom,
    x: &[f32],
    weight: &[f32],
    grad: &[f32],
    relu_output: Option<&[f32]>,
    wanted: Wanted,
) -> ConvGrads {
    let (k, p, o) = (g.k(), g.p(), g.o);
    assert_eq!(grad.len(), g.n * o * p, "output-gradient length");
    if let Some(y) = relu_output {
        assert_eq!(y.len(), grad.len(), "output length");
    }
    let mut dx = wanted.x.then(|| vec![0.0f32; g.n * g.c * g.h * g.w]);
    let mut dw = wanted.weight.then(|| vec![0.0f32; o * k]);
    let mut db = wanted.bias.then(|| vec![0.0f32; o]);
    if g.n == 0 || p == 0 || o == 0 || !(wanted.x || wanted.weight || wanted.bias) {
        return (dx, dw, db);
    }
    let chunk = g.chunk();
    let how = Patches::of(g);
    let mut dy_t = scratch(o * chunk * p);
    let mut col = scratch(if wanted.weight { k * chunk * p } else { 0 });
    let mut dcol = scratch(if wanted.x { k * chunk * p } else { 0 });
    for (step, n0) in (0..g.n).step_by(chunk).enumerate() {
        let nb = chunk.min(g.n - n0);
        let cols = nb * p;
        // dY of this chunk as [o, nb·p], masked by the ReLU of the forward pass.
        dy_t[..o * cols]
            .par_chunks_mut(cols)
            .with_min_len(min_len(cols))
            .enumerate()
            .for_each(|(oc, row)| gather_grad(g, grad, relu_output, n0, nb, oc, row));
        let dy_t = &dy_t[..o * cols];
        if let Some(db) = db.as_mut() {
            // Sum in a fixed order: per chunk, then chunks in order.
            db.par_iter_mut().enumerate().for_each(|(oc, d)| {
                *d += dy_t[oc * cols..(oc + 1) * cols].iter().sum::<f32>();
            });
        }
        if let Some(dw) = dw.as_mut() {
            im2col(g, &how, x, n0, nb, &mut col);
            // dW[o, k] += dY[o, cols] · col[k, cols]ᵀ
            matmul(
                o,
                k,
                cols,
                dw,
                k,
                dy_t,
                (cols, 1),
                &col,
                (1, cols),
                step > 0,
            );
        }
        if let Some(dx) = dx.as_mut() {
            // dcol[k, cols] = Wᵀ[k, o] · dY[o, cols]
            matmul(
                k,
                cols,
                o,
                &mut dcol,
                cols,
                weight,
                (1, k),
                dy_t,
                (cols, 1),
                false,
            );
            let hw = g.c * g.h * g.w;
            col2im(g, &how, &dcol, nb, &mut dx[n0 * hw..(n0 + nb) * hw]);
        }
    }
    (dx, dw, db)
}

multiversion! {
/// Row `oc` of the chunk's output gradient as `[nb·p]`, masked where the ReLU was off.
fn gather_grad(
    g: &ConvGeom,
    grad: &[f32],
    relu_output: Option<&[f32]>,
    n0: usize,
    nb: usize,
    oc: usize,
    row: &mut [f32],
) {
    let p = g.p();
    for i in 0..nb {
        let at = ((n0 + i) * g.o + oc) * p;
        let dst = &mut row[i * p..(i + 1) * p];
        let src = &grad[at..at + p];
        match relu_output {
            Some(y) => dst
                .iter_mut()
                .zip(src.iter().zip(&y[at..at + p]))
                .for_each(|(d, (gv, yv))| *d = if *yv > 0.0 { *gv } else { 0.0 }),
            None => dst.copy_from_slice(src),
        }
    }
}
}

/// The gradient of a residual added before the activation: `grad`, masked where the ReLU
/// output `y` is not positive.
pub fn residual_grad(grad: &[f32], relu_output: Option<&[f32]>) -> Vec<f32> {
    match relu_output {
        None => grad.to_vec(),
        Some(y) => {
            let mut out = vec![0.0f32; grad.len()];
            out.par_chunks_mut(16_384)
                .zip(grad.par_chunks(16_384).zip(y.par_chunks(16_384)))
                .for_each(|(o, (gv, yv))| mask(o, gv, yv));
            out
        }
    }
}

multiversion! {
fn mask(out: &mut [f32], grad: &[f32], y: &[f32]) {
    out.iter_mut()
        .zip(grad.iter().zip(y))
        .for_each(|(o, (gv, yv))| *o = if *yv > 0.0 { *gv } else { 0.0 });
}
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct definition of a convolution, the reference for the fast path.
    fn naive(g: &ConvGeom, x: &[f32], w: &[f32]) -> Vec<f32> {
        let mut y = vec![0.0; g.n * g.o * g.p()];
        for n in 0..g.n {
            for o in 0..g.o {
                for oh in 0..g.oh {
                    for ow in 0..g.ow {
                        let mut s = 0.0f64;
                        for c in 0..g.c {
                            for ki in 0..g.kh {
                                for kj in 0..g.kw {
                                    let ih = (oh * g.sh + ki) as isize - g.pt as isize;
                                    let iw = (ow * g.sw + kj) as isize - g.pl as isize;
                                    if ih < 0 || iw < 0 || ih >= g.h as isize || iw >= g.w as isize
                                    {
                                        continue;
                                    }
                                    let xv =
                                        x[((n * g.c + c) * g.h + ih as usize) * g.w + iw as usize];
                                    let wv = w[((o * g.c + c) * g.kh + ki) * g.kw + kj];
                                    s += xv as f64 * wv as f64;
                                }
                            }
                        }
                        y[((n * g.o + o) * g.oh + oh) * g.ow + ow] = s as f32;
                    }
                }
            }
        }
        y
    }

    fn seq(len: usize, seed: u32) -> Vec<f32> {
        (0..len)
            .map(|i| {
                (((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8) % 1000) as f32
                    / 500.0
                    - 1.0
            })
            .collect()
    }

    #[test]
    fn range_matches_brute_force() {
        for out in 0..6 {
            for len in 1..7 {
                for s in 1..4 {
                    for k in 0..4 {
                        for p in 0..4 {
                            let inside: Vec<usize> = (0..out)
                                .filter(|o| {
                                    let i = (o * s + k) as isize - p as isize;
                                    i >= 0 && i < len as isize
                                })
                                .collect();
                            let (lo, hi, i0) = range(out, len, s, k, p);
                            // the valid outputs form one interval
                            assert_eq!(
                                inside,
                                (lo..hi).collect::<Vec<_>>(),
                                "{out} {len} {s} {k} {p}"
                            );
                            if lo < hi {
                                assert_eq!(i0, (lo * s + k) as isize - p as isize);
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn forward_matches_the_definition_with_asymmetric_padding_and_chunks() {
        // 3 images of 2 channels, 5x7, 3x2 kernel, stride (2, 1), padding (1, 0) x (2, 1).
        let g = ConvGeom::new([3, 2, 5, 7], [4, 2, 3, 2], [2, 1], [(1, 0), (2, 1)]);
        let x = seq(3 * 2 * 5 * 7, 1);
        let w = seq(4 * 2 * 3 * 2, 7);
        let want = naive(&g, &x, &w);
        let got = conv2d_forward(&g, &x, &w, None, None, Activation::Identity);
        for (a, b) in got.iter().zip(&want) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }
}
