//! Interpretation: the items the model gets most wrong, and per-label counts.

use fastburn_data::{DataLoader, Task, Vocab};
use fastburn_metrics::{LabelConfusion, ZeroDivision, confusion_per_label};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::inference::tags_of;
use crate::step::Preds;

/// One of the top losses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopLoss {
    /// Dataset index in the loader.
    pub index: usize,
    /// The image's name.
    pub name: String,
    /// Its loss.
    pub loss: f32,
    /// Its true tags.
    pub actual: Vec<String>,
    /// The predicted tags.
    pub predicted: Vec<String>,
}

/// fastai's `plot_top_losses` data: the `k` items with the highest loss, highest first.
pub fn top_losses(
    preds: &Preds,
    dl: &DataLoader,
    vocab: &Vocab,
    thresholds: &[f32],
    task: Task,
    k: usize,
) -> Vec<TopLoss> {
    let mut order: Vec<usize> = (0..preds.len()).collect();
    order.sort_by(|&a, &b| preds.losses[b].total_cmp(&preds.losses[a]));
    let c = preds.n_classes;
    order
        .into_iter()
        .take(k)
        .map(|i| {
            let idx = preds.indices[i];
            let item = &dl.dataset().items()[idx];
            let actual = (0..c)
                .filter(|&j| preds.targets[i * c + j] > 0.5)
                .map(|j| vocab.class(j).to_string())
                .collect();
            TopLoss {
                index: idx,
                name: item.name.clone(),
                loss: preds.losses[i],
                actual,
                predicted: tags_of(preds.row(i), vocab, thresholds, task),
            }
        })
        .collect()
}

/// Per-label counts and scores at the given thresholds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelReport {
    /// The tag.
    pub tag: String,
    /// Confusion counts.
    pub counts: LabelConfusion,
    /// Precision (1 when nothing is predicted).
    pub precision: f64,
    /// Recall (1 when the tag never occurs).
    pub recall: f64,
    /// F2.
    pub f2: f64,
}

/// Confusion counts, precision, recall and F2 of every label.
///
/// # Errors
/// A metric error (shapes, probabilities out of range).
pub fn label_report(preds: &Preds, vocab: &Vocab, thresholds: &[f32]) -> Result<Vec<LabelReport>> {
    let c = preds.n_classes;
    let counts = confusion_per_label(&preds.probs, &preds.targets, c, thresholds)
        .map_err(|e| Error::metric("confusion_per_label", e))?;
    counts
        .into_iter()
        .enumerate()
        .map(|(j, k)| {
            Ok(LabelReport {
                tag: vocab.class(j).to_string(),
                precision: k.precision(ZeroDivision::One),
                recall: k.recall(ZeroDivision::One),
                f2: k
                    .fbeta(2.0, ZeroDivision::One)
                    .map_err(|e| Error::metric("fbeta", e))?,
                counts: k,
            })
        })
        .collect()
}

/// The per-label report as an aligned text table.
pub fn format_label_report(rows: &[LabelReport]) -> String {
    let mut s = format!(
        "{:<20} {:>7} {:>9} {:>9} {:>7} {:>7}\n",
        "tag", "support", "predicted", "precision", "recall", "f2"
    );
    for r in rows {
        s.push_str(&format!(
            "{:<20} {:>7} {:>9} {:>9.3} {:>7.3} {:>7.3}\n",
            r.tag,
            r.counts.support(),
            r.counts.predicted(),
            r.precision,
            r.recall,
            r.f2
        ));
    }
    s
}
