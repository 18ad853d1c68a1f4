//! The backend extension: [`KernelBackend`], implemented for Burn's flex backend and, with a
//! hand-written backward pass, for `Autodiff<Flex>`.
//!
//! `#[backend_extension]` generates the `Dispatch` routing; it derives no gradients, so each
//! operation registers its own [`Backward`] step here. Backends that are not listed (wgpu,
//! ndarray) never reach this trait: [`crate::accelerated`] sends them to Burn's own ops.

use burn::backend::AutodiffBackend;
use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, NodeGuard, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, DType, Flex, TensorMetadata, backend_extension};
use burn::tensor::{Shape, TensorData};

use crate::Activation;
use crate::cpu::conv::{ConvGeom, Wanted, conv2d_backward, conv2d_forward, residual_grad};
use crate::cpu::depthwise;
use crate::cpu::norm::{NormGeom, bn_train_backward, bn_train_forward};

/// The non-tensor arguments of [`KernelBackend::fb_conv2d`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvArgs {
    /// Stride `[h, w]`.
    pub stride: [usize; 2],
    /// Padding `[(top, bottom), (left, right)]`.
    pub padding: [(usize, usize); 2],
    /// Activation applied in the GEMM epilogue.
    pub act: Activation,
    /// Whether the `bias` tensor is a real bias (`false`: it is ignored).
    pub has_bias: bool,
    /// Depthwise (`groups == channels`, weight `[c, 1, kh, kw]`) rather than dense.
    pub depthwise: bool,
}

impl ConvArgs {
    fn geometry(&self, x: &FlexTensor, w: &FlexTensor) -> ConvGeom {
        if self.depthwise {
            depthwise::geometry(dims4(x), dims4(w), self.stride, self.padding)
        } else {
            ConvGeom::new(dims4(x), dims4(w), self.stride, self.padding)
        }
    }
}

/// The non-tensor arguments of the BatchNorm operations.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NormArgs {
    /// BatchNorm's ε.
    pub epsilon: f64,
    /// Activation after the (optional) residual add.
    pub act: Activation,
}

/// fastburn's kernels as a Burn backend extension.
///
/// Every input is `f32`; [`crate::accelerated`] checks that before calling.
#[backend_extension(Flex, Autodiff)]
pub trait KernelBackend: Backend {
    /// `act(conv2d(x, weight) + bias)`: no groups, no dilation.
    ///
    /// # Shapes
    /// `x [n, c, h, w]`, `weight [o, c, kh, kw]`, `bias [o]` → `[n, o, oh, ow]`.
    fn fb_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        args: ConvArgs,
    ) -> FloatTensor<Self>;

    /// `act(conv2d(x, weight) + bias + residual)`: a residual block's last convolution with
    /// its BatchNorm folded in (eval mode).
    ///
    /// # Shapes
    /// As [`fb_conv2d`](KernelBackend::fb_conv2d); `residual` has the output's shape.
    fn fb_conv2d_add(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        residual: FloatTensor<Self>,
        args: ConvArgs,
    ) -> FloatTensor<Self>;

    /// Training-mode BatchNorm + activation: `(y, batch mean, biased batch variance)`.
    fn fb_bn_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        args: NormArgs,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// Training-mode BatchNorm, plus `residual`, then the activation.
    fn fb_bn_add_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        residual: FloatTensor<Self>,
        args: NormArgs,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

/// A contiguous `f32` view of a flex tensor (copied only if it is a strided view).
fn contiguous(t: FlexTensor) -> FlexTensor {
    assert_eq!(t.dtype(), DType::F32, "fastburn kernels take f32 tensors");
    if t.as_slice::<f32>().is_some() {
        t
    } else {
        t.to_contiguous()
    }
}

fn values(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>().expect("contiguous f32 tensor")
}

fn dims4(t: &FlexTensor) -> [usize; 4] {
    let s = t.shape();
    assert_eq!(s.num_dims(), 4, "expected a 4-d tensor, got {s:?}");
    [s[0], s[1], s[2], s[3]]
}

fn flex(values: Vec<f32>, shape: impl Into<Shape>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape.into()))
}

fn norm_geom(x: &FlexTensor) -> NormGeom {
    let s = x.shape();
    let (n, c) = (s[0], s[1]);
    let p = s.num_elements().checked_div(n * c).unwrap_or(0);
    NormGeom { n, c, p }
}

fn conv_forward(
    x: FlexTensor,
    w: FlexTensor,
    b: FlexTensor,
    residual: Option<FlexTensor>,
    args: ConvArgs,
) -> FlexTensor {
    let (x, w, b) = (contiguous(x), contiguous(w), contiguous(b));
    let residual = residual.map(contiguous);
    let g = args.geometry(&x, &w);
    let bias = args.has_bias.then(|| values(&b));
    let r = residual.as_ref().map(values);
    let forward = if args.depthwise {
        depthwise::forward
    } else {
        conv2d_forward
    };
    flex(
        forward(&g, values(&x), values(&w), bias, r, args.act),
        g.out_shape(),
    )
}

fn bn_forward(
    x: FlexTensor,
    gamma: FlexTensor,
    beta: FlexTensor,
    residual: Option<FlexTensor>,
    args: NormArgs,
) -> (FlexTensor, FlexTensor, FlexTensor) {
    let (x, gamma, beta) = (contiguous(x), contiguous(gamma), contiguous(beta));
    let residual = residual.map(contiguous);
    let g = norm_geom(&x);
    let (y, mean, var) = bn_train_forward(
        &g,
        values(&x),
        values(&gamma),
        values(&beta),
        residual.as_ref().map(values),
        args.epsilon,
        args.act,
    );
    (flex(y, x.shape()), flex(mean, [g.c]), flex(var, [g.c]))
}

impl KernelBackend for Flex {
    fn fb_conv2d(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        args: ConvArgs,
    ) -> FlexTensor {
        conv_forward(x, weight, bias, None, args)
    }

    fn fb_conv2d_add(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        residual: FlexTensor,
        args: ConvArgs,
    ) -> FlexTensor {
        conv_forward(x, weight, bias, Some(residual), args)
    }

    fn fb_bn_train(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        args: NormArgs,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        bn_forward(x, gamma, beta, None, args)
    }

    fn fb_bn_add_train(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        residual: FlexTensor,
        args: NormArgs,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        bn_forward(x, gamma, beta, Some(residual), args)
    }
}

/// Backward step of [`KernelBackend::fb_conv2d`] (`N = 3`: input, weight, bias) and
/// [`KernelBackend::fb_conv2d_add`] (`N = 4`: and the residual): saves the input, the weight
/// and (after a ReLU epilogue) the output, whose sign masks the gradient.
#[derive(Debug)]
struct ConvBackward<const N: usize>;

impl<const N: usize> Backward<Flex, N> for ConvBackward<N> {
    type State = (FlexTensor, FlexTensor, Option<FlexTensor>, ConvArgs);

    fn backward(self, ops: Ops<Self::State, N>, grads: &mut Gradients, _: &mut Checkpointer) {
        let mut parents = ops.parents.into_iter();
        let (node_x, node_w, node_b) = (
            parents.next().flatten(),
            parents.next().flatten(),
            parents.next().flatten(),
        );
        let node_r = parents.next().flatten();
        let grad = contiguous(grads.consume::<Flex>(&ops.node));
        let (x, w, y, args) = ops.state;
        let wanted = Wanted {
            x: node_x.is_some(),
            weight: node_w.is_some(),
            bias: node_b.is_some() && args.has_bias,
        };
        let g = args.geometry(&x, &w);
        let y = y.map(contiguous);
        if let Some(node) = node_r {
            let dr = residual_grad(values(&grad), y.as_ref().map(values));
            grads.register::<Flex>(node.id, flex(dr, g.out_shape()));
        }
        let backward = if args.depthwise {
            depthwise::backward
        } else {
            conv2d_backward
        };
        let (dx, dw, db) = backward(
            &g,
            values(&x),
            values(&w),
            values(&grad),
            y.as_ref().map(values),
            wanted,
        );
        if let (Some(node), Some(dx)) = (node_x, dx) {
            grads.register::<Flex>(node.id, flex(dx, x.shape()));
        }
        if let (Some(node), Some(dw)) = (node_w, dw) {
            grads.register::<Flex>(node.id, flex(dw, w.shape()));
        }
        if let Some(node) = node_b {
            let db = db.unwrap_or_else(|| vec![0.0; g.o]);
            grads.register::<Flex>(node.id, flex(db, [g.o]));
        }
    }
}

/// Backward step of the BatchNorm operations: saves the input, γ, the batch statistics and
/// (after a ReLU) the output.
#[derive(Debug)]
struct NormBackward<const N: usize>;

type NormState = (
    FlexTensor,
    FlexTensor,
    FlexTensor,
    FlexTensor,
    Option<FlexTensor>,
    NormArgs,
);

impl<const N: usize> Backward<Flex, N> for NormBackward<N> {
    type State = NormState;

    fn backward(self, ops: Ops<Self::State, N>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = contiguous(grads.consume::<Flex>(&ops.node));
        let (x, gamma, mean, var, y, args) = ops.state;
        let g = norm_geom(&x);
        let y = y.map(contiguous);
        let parents = ops.parents;
        let want_residual = N == 4 && parents[3].is_some();
        let (dx, dgamma, dbeta, dres) = bn_train_backward(
            &g,
            values(&x),
            values(&gamma),
            values(&mean),
            values(&var),
            args.epsilon,
            values(&grad),
            y.as_ref().map(values),
            want_residual,
        );
        let shape = x.shape();
        let mut outs = [
            Some(flex(dx, shape.clone())),
            Some(flex(dgamma, [g.c])),
            Some(flex(dbeta, [g.c])),
            dres.map(|d| flex(d, shape)),
        ]
        .into_iter();
        for parent in parents {
            let out = outs.next().flatten();
            if let (Some(node), Some(out)) = (parent, out) {
                grads.register::<Flex>(node.id, out);
            }
        }
    }
}

/// Records a convolution (`N = 3`) or a convolution with a residual (`N = 4`) on the tape.
fn conv_autodiff<C: CheckpointStrategy, const N: usize>(
    nodes: [NodeGuard; N],
    x: FlexTensor,
    w: FlexTensor,
    b: FlexTensor,
    residual: Option<FlexTensor>,
    args: ConvArgs,
) -> FloatTensor<Autodiff<Flex, C>> {
    match ConvBackward::<N>
        .prepare::<C>(nodes)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let (x, w) = (contiguous(x), contiguous(w));
            let out = conv_forward(x.clone(), w.clone(), b, residual, args);
            let y = (args.act == Activation::Relu).then(|| out.clone());
            prep.finish((x, w, y, args), out)
        }
        OpsKind::UnTracked(prep) => prep.finish(conv_forward(x, w, b, residual, args)),
    }
}

type NormOutputs<C> = (
    FloatTensor<Autodiff<Flex, C>>,
    FloatTensor<Autodiff<Flex, C>>,
    FloatTensor<Autodiff<Flex, C>>,
);

/// Records a training BatchNorm (`N = 3`) or one with a residual (`N = 4`) on the tape; the
/// batch statistics come back untracked.
fn bn_autodiff<C: CheckpointStrategy, const N: usize>(
    nodes: [NodeGuard; N],
    x: FlexTensor,
    gamma: FlexTensor,
    beta: FlexTensor,
    residual: Option<FlexTensor>,
    args: NormArgs,
) -> NormOutputs<C> {
    let (x, gamma) = (contiguous(x), contiguous(gamma));
    let (y, mean, var) = bn_forward(x.clone(), gamma.clone(), beta, residual, args);
    let out = match NormBackward::<N>
        .prepare::<C>(nodes)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let saved = (args.act == Activation::Relu).then(|| y.clone());
            prep.finish((x, gamma, mean.clone(), var.clone(), saved, args), y)
        }
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    (
        out,
        Autodiff::<Flex, C>::from_inner(mean),
        Autodiff::<Flex, C>::from_inner(var),
    )
}

impl<C: CheckpointStrategy> KernelBackend for Autodiff<Flex, C> {
    fn fb_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        args: ConvArgs,
    ) -> FloatTensor<Self> {
        let nodes = [x.node(), weight.node(), bias.node()];
        let (x, w, b) = (
            x.into_primitive(),
            weight.into_primitive(),
            bias.into_primitive(),
        );
        conv_autodiff::<C, 3>(nodes, x, w, b, None, args)
    }

    fn fb_conv2d_add(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        residual: FloatTensor<Self>,
        args: ConvArgs,
    ) -> FloatTensor<Self> {
        let nodes = [x.node(), weight.node(), bias.node(), residual.node()];
        let (x, w, b) = (
            x.into_primitive(),
            weight.into_primitive(),
            bias.into_primitive(),
        );
        conv_autodiff::<C, 4>(nodes, x, w, b, Some(residual.into_primitive()), args)
    }

    fn fb_bn_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        args: NormArgs,
    ) -> NormOutputs<C> {
        let nodes = [x.node(), gamma.node(), beta.node()];
        let (x, g, b) = (
            x.into_primitive(),
            gamma.into_primitive(),
            beta.into_primitive(),
        );
        bn_autodiff::<C, 3>(nodes, x, g, b, None, args)
    }

    fn fb_bn_add_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        residual: FloatTensor<Self>,
        args: NormArgs,
    ) -> NormOutputs<C> {
        let nodes = [x.node(), gamma.node(), beta.node(), residual.node()];
        let (x, g, b) = (
            x.into_primitive(),
            gamma.into_primitive(),
            beta.into_primitive(),
        );
        bn_autodiff::<C, 4>(nodes, x, g, b, Some(residual.into_primitive()), args)
    }
}
