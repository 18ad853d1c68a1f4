//! fastai's `create_head`.

use burn::nn::{
    BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Initializer, Linear, LinearConfig,
};
use burn::prelude::*;
use burn::tensor::activation::relu;

/// Configuration of a [`Head`], following fastai's `create_head(nf, n_out, lin_ftrs, ps,
/// concat_pool, bn_final)`.
///
/// With the defaults the head is, for `n_in = nf` body features:
/// concat pool (max ‖ avg → `2·nf`) → flatten → BatchNorm1d(2·nf) → dropout(ps/2) →
/// linear(2·nf → 512, no bias) → ReLU → BatchNorm1d(512) → dropout(ps) → linear(512 → n_out,
/// no bias). As in fastai v2 (`LinBnDrop(bias = not bn)`), a linear layer that follows a
/// BatchNorm has no bias; its BatchNorms start at weight 1, bias 1e-3; the linear weights are
/// Kaiming-normal (fan-in, gain √2) — the body keeps its own initialisation.
///
/// # Example
/// ```
/// use burn::tensor::{Device, Tensor};
/// use fastburn_models::{num_parameters, HeadConfig};
///
/// let device = Device::flex();
/// let head = HeadConfig::new(512, 17).init(&device);
/// // fastai's head for ResNet-34 on Planet's 17 tags:
/// // BN(1024) 2048 + linear 1024·512 + BN(512) 1024 + linear 512·17
/// assert_eq!(num_parameters(&head), 2048 + 1024 * 512 + 1024 + 512 * 17);
/// let logits = head.forward(Tensor::ones([2, 512, 2, 2], &device));
/// assert_eq!(logits.dims(), [2, 17]);
/// ```
#[derive(Config, Debug)]
pub struct HeadConfig {
    /// Channels of the body's output (`nf`).
    pub n_in: usize,
    /// Number of outputs (classes).
    pub n_out: usize,
    /// Widths of the hidden linear layers.
    #[config(default = "vec![512]")]
    pub lin_ftrs: Vec<usize>,
    /// fastai's `ps`: dropout `ps/2` before each hidden linear layer, `ps` before the last.
    #[config(default = 0.5)]
    pub ps: f64,
    /// Concat pool (max ‖ avg, doubling the features) rather than average pool alone.
    #[config(default = true)]
    pub concat_pool: bool,
    /// A final BatchNorm1d on the outputs (momentum 0.01, as fastai).
    #[config(default = false)]
    pub bn_final: bool,
}

/// BatchNorm1d → dropout → linear (no bias) → optional ReLU: fastai's `LinBnDrop`.
#[derive(Module, Debug)]
pub struct LinBnDrop {
    /// Batch norm over the input features.
    pub bn: BatchNorm,
    /// Dropout (absent when its probability is 0).
    pub dropout: Option<Dropout>,
    /// The linear layer.
    pub linear: Linear,
    /// Whether a ReLU follows the linear layer.
    pub relu: bool,
}

impl LinBnDrop {
    /// # Shapes
    /// - `x`: `[N, in]`
    /// - output: `[N, out]`
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let x = self.bn.forward(x);
        let x = match &self.dropout {
            Some(d) => d.forward(x),
            None => x,
        };
        let x = self.linear.forward(x);
        if self.relu { relu(x) } else { x }
    }
}

/// The classifier on top of a body; see [`HeadConfig`].
#[derive(Module, Debug)]
pub struct Head {
    /// The `LinBnDrop` layers, hidden ones first.
    pub layers: Vec<LinBnDrop>,
    /// Optional final BatchNorm1d.
    pub bn_final: Option<BatchNorm>,
    /// Concat pool (max ‖ avg) or average pool.
    pub concat_pool: bool,
}

/// fastai's `BatchNorm(nf, ndim=1)`: weight 1, bias 1e-3.
fn fastai_bn(n: usize, device: &Device) -> BatchNorm {
    let mut bn = BatchNormConfig::new(n).init(device);
    bn.beta = Initializer::Constant { value: 1e-3 }.init([n], device);
    bn
}

impl HeadConfig {
    /// Builds the head.
    ///
    /// # Panics
    /// If a size is zero or `ps` is not in `[0, 1)`.
    pub fn init(&self, device: &Device) -> Head {
        assert!(
            self.n_in > 0 && self.n_out > 0,
            "n_in and n_out must be at least 1"
        );
        assert!(
            self.lin_ftrs.iter().all(|&n| n > 0),
            "lin_ftrs must all be at least 1"
        );
        assert!(
            self.ps.is_finite() && (0.0..1.0).contains(&self.ps),
            "ps must be in [0, 1), got {}",
            self.ps
        );
        let pooled = if self.concat_pool {
            2 * self.n_in
        } else {
            self.n_in
        };
        let mut sizes = vec![pooled];
        sizes.extend(&self.lin_ftrs);
        sizes.push(self.n_out);
        let n_layers = sizes.len() - 1;
        let layers = sizes
            .windows(2)
            .enumerate()
            .map(|(i, w)| {
                let last = i + 1 == n_layers;
                let p = if last { self.ps } else { self.ps / 2.0 };
                LinBnDrop {
                    bn: fastai_bn(w[0], device),
                    dropout: (p > 0.0).then(|| DropoutConfig::new(p).init()),
                    linear: LinearConfig::new(w[0], w[1])
                        .with_bias(false)
                        .with_initializer(Initializer::KaimingNormal {
                            gain: std::f64::consts::SQRT_2,
                            fan_out_only: false,
                        })
                        .init(device),
                    relu: !last,
                }
            })
            .collect();
        let bn_final = self.bn_final.then(|| {
            BatchNormConfig::new(self.n_out)
                .with_momentum(0.01)
                .init(device)
        });
        Head {
            layers,
            bn_final,
            concat_pool: self.concat_pool,
        }
    }
}

/// fastai's `AdaptiveConcatPool2d` to size 1, flattened: `[max ‖ avg]`.
pub(crate) fn pool(x: Tensor<4>, concat: bool) -> Tensor<2> {
    let avg = x.clone().mean_dims(&[2, 3]);
    let pooled = if concat {
        Tensor::cat(vec![x.max_dims(&[2, 3]), avg], 1)
    } else {
        avg
    };
    pooled.flatten(1, 3)
}

impl Head {
    /// Logits from body features.
    ///
    /// # Shapes
    /// - `features`: `[N, n_in, h, w]` (any `h, w ≥ 1`)
    /// - output: `[N, n_out]`
    pub fn forward(&self, features: Tensor<4>) -> Tensor<2> {
        let x = pool(features, self.concat_pool);
        self.forward_pooled(x)
    }

    /// The head after pooling (the part that holds parameters).
    ///
    /// # Shapes
    /// - `pooled`: `[N, 2·n_in]` (or `[N, n_in]` without concat pool)
    /// - output: `[N, n_out]`
    pub fn forward_pooled(&self, pooled: Tensor<2>) -> Tensor<2> {
        let x = self.layers.iter().fold(pooled, |x, l| l.forward(x));
        match &self.bn_final {
            Some(bn) => bn.forward(x),
            None => x,
        }
    }
}
