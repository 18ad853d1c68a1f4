//! Losses chosen from the task: binary cross-entropy with logits for multi-label data
//! (optionally with a per-class positive weight), softmax cross-entropy for single-label.

use burn::tensor::activation::{log_sigmoid, log_softmax, sigmoid, softmax};
use burn::tensor::{Tensor, TensorData};
use fastburn_data::Task;
use serde::{Deserialize, Serialize};

/// The loss of a learner.
///
/// ```
/// use burn::tensor::{Device, Tensor};
/// use fastburn_learner::Loss;
/// let device = Device::flex();
/// let logits = Tensor::<2>::from_floats([[0.0, 2.0]], &device);
/// let targets = Tensor::<2>::from_floats([[1.0, 0.0]], &device);
/// let l: f32 = Loss::BceWithLogits { pos_weight: None }.forward(logits, targets).into_scalar();
/// // mean(−log σ(0), −log(1 − σ(2))) = (0.6931 + 2.1269) / 2
/// assert!((l - 1.41).abs() < 1e-3);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Loss {
    /// Sigmoid + binary cross-entropy, averaged over all elements (PyTorch's
    /// `BCEWithLogitsLoss`). `pos_weight[c]` multiplies the positive term of class `c`.
    BceWithLogits {
        /// Per-class weight of positive examples.
        pos_weight: Option<Vec<f32>>,
    },
    /// Softmax cross-entropy against one-hot targets, averaged over the batch.
    CrossEntropy,
}

impl Loss {
    /// The loss fastai picks for a task.
    pub fn for_task(task: Task) -> Self {
        match task {
            Task::MultiLabel => Loss::BceWithLogits { pos_weight: None },
            Task::SingleLabel => Loss::CrossEntropy,
        }
    }

    /// The mean loss of a batch (`[n, c]` logits and multi-hot / one-hot targets).
    pub fn forward(&self, logits: Tensor<2>, targets: Tensor<2>) -> Tensor<1> {
        self.per_item(logits, targets).mean()
    }

    /// The loss of each item, `[n]`.
    pub fn per_item(&self, logits: Tensor<2>, targets: Tensor<2>) -> Tensor<1> {
        let [n, c] = logits.dims();
        match self {
            Loss::BceWithLogits { pos_weight } => {
                // (1 − y)·x + w_y · softplus(−x), with w_y = 1 + (pw − 1)·y.
                let neg_log_sig = log_sigmoid(logits.clone()).neg();
                let weight = match pos_weight {
                    Some(pw) => {
                        let pw = Tensor::<1>::from_data(
                            TensorData::new(pw.clone(), [pw.len()]),
                            &logits.device(),
                        )
                        .reshape([1, c]);
                        (pw - 1.0) * targets.clone() + 1.0
                    }
                    None => targets.ones_like(),
                };
                let l = (targets.neg() + 1.0) * logits + weight * neg_log_sig;
                l.mean_dim(1).reshape([n])
            }
            Loss::CrossEntropy => (log_softmax(logits, 1) * targets)
                .sum_dim(1)
                .neg()
                .reshape([n]),
        }
    }

    /// Logits to probabilities: sigmoid for BCE, softmax for cross-entropy.
    pub fn activation(&self, logits: Tensor<2>) -> Tensor<2> {
        match self {
            Loss::BceWithLogits { .. } => sigmoid(logits),
            Loss::CrossEntropy => softmax(logits, 1),
        }
    }
}
