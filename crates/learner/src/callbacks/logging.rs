use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::learner::Learner;
use crate::learner::{Callback, Flow};
use crate::plot::{LinePlot, Series};

fn ensure_parent(path: &std::path::Path) -> Result<()> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    Ok(())
}

/// Writes the history as CSV after every epoch (`epoch,size,train_loss,valid_loss,<metrics>,
/// seconds`), atomically — fastai's `CSVLogger`.
#[derive(Debug, Clone)]
pub struct CsvLogger {
    path: PathBuf,
}

impl CsvLogger {
    /// Logs to `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        CsvLogger { path: path.into() }
    }
}

impl Callback for CsvLogger {
    fn name(&self) -> String {
        "csv_logger".into()
    }

    fn order(&self) -> i32 {
        10
    }

    fn after_epoch(&mut self, l: &mut Learner) -> Result<Flow> {
        let h = l.history();
        let mut names: Vec<String> = Vec::new();
        for row in h {
            for (n, _) in &row.metrics {
                if !names.contains(n) {
                    names.push(n.clone());
                }
            }
        }
        let mut out = String::from("epoch,size,train_loss,valid_loss");
        for n in &names {
            out.push(',');
            out.push_str(n);
        }
        out.push_str(",seconds\n");
        for row in h {
            out.push_str(&format!(
                "{},{},{},{}",
                row.epoch, row.size, row.train_loss, row.valid_loss
            ));
            for n in &names {
                out.push(',');
                if let Some(v) = row.metric(n) {
                    out.push_str(&v.to_string());
                }
            }
            out.push_str(&format!(",{:.3}\n", row.seconds));
        }
        ensure_parent(&self.path)?;
        crate::write_atomic(&self.path, out.as_bytes())?;
        Ok(Flow::Continue)
    }
}

/// Writes the history as JSON after every epoch, atomically.
#[derive(Debug, Clone)]
pub struct JsonLogger {
    path: PathBuf,
}

impl JsonLogger {
    /// Logs to `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        JsonLogger { path: path.into() }
    }
}

impl Callback for JsonLogger {
    fn name(&self) -> String {
        "json_logger".into()
    }

    fn order(&self) -> i32 {
        10
    }

    fn after_epoch(&mut self, l: &mut Learner) -> Result<Flow> {
        let json = serde_json::to_vec_pretty(l.history()).expect("history serialises");
        ensure_parent(&self.path)?;
        crate::write_atomic(&self.path, &json)?;
        Ok(Flow::Continue)
    }
}

/// Plots the training loss per iteration and the epoch losses and metrics to a PNG after
/// every epoch (fastai's `ShowGraph`, as a file).
#[derive(Debug, Clone)]
pub struct PlotLosses {
    path: PathBuf,
}

impl PlotLosses {
    /// Plots to `path` (a PNG).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        PlotLosses { path: path.into() }
    }
}

/// The loss/metric plot of a learner's history.
pub fn history_plot(l: &Learner) -> LinePlot {
    let iters = l.iterations();
    let per_epoch = (iters.len() as f64 / l.history().len().max(1) as f64).max(1.0);
    let mut series = vec![Series {
        label: "train loss (batch)".into(),
        points: iters
            .iter()
            .enumerate()
            .map(|(i, it)| (i as f64 / per_epoch, f64::from(it.loss)))
            .collect(),
    }];
    let hist = l.history();
    series.push(Series {
        label: "valid loss".into(),
        points: hist
            .iter()
            .enumerate()
            .map(|(i, h)| ((i + 1) as f64, h.valid_loss))
            .collect(),
    });
    if let Some(first) = hist.first() {
        for (name, _) in &first.metrics {
            series.push(Series {
                label: name.clone(),
                points: hist
                    .iter()
                    .enumerate()
                    .filter_map(|(i, h)| h.metric(name).map(|v| ((i + 1) as f64, v)))
                    .collect(),
            });
        }
    }
    LinePlot {
        title: "training".into(),
        x_label: "epoch".into(),
        y_label: "loss / metric".into(),
        log_x: false,
        series,
        markers: Vec::new(),
    }
}

impl Callback for PlotLosses {
    fn name(&self) -> String {
        "plot_losses".into()
    }

    fn order(&self) -> i32 {
        10
    }

    fn after_epoch(&mut self, l: &mut Learner) -> Result<Flow> {
        history_plot(l).save(&self.path)?;
        Ok(Flow::Continue)
    }
}
