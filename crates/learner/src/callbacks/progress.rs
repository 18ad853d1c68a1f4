use std::io::IsTerminal;

use indicatif::{ProgressBar as Bar, ProgressDrawTarget, ProgressStyle};

use crate::error::Result;
use crate::learner::{Callback, Flow};
use crate::learner::{Learner, Phase};

/// Progress bars per fit (epochs) and per epoch (batches, with the smoothed loss), on
/// stderr; hidden when stderr is not a terminal (fastai's `ProgressCallback`).
pub struct ProgressBar {
    epochs: Option<Bar>,
    batches: Option<Bar>,
    visible: bool,
}

impl ProgressBar {
    /// Visible when stderr is a terminal.
    pub fn new() -> Self {
        ProgressBar {
            epochs: None,
            batches: None,
            visible: std::io::stderr().is_terminal(),
        }
    }

    fn bar(&self, len: usize, template: &str) -> Bar {
        let target = if self.visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = Bar::with_draw_target(Some(len as u64), target);
        bar.set_style(
            ProgressStyle::with_template(template)
                .expect("a valid progress template")
                .progress_chars("█▉▊▋▌▍▎▏ "),
        );
        bar
    }
}

impl Default for ProgressBar {
    fn default() -> Self {
        Self::new()
    }
}

impl Callback for ProgressBar {
    fn name(&self) -> String {
        "progress".into()
    }

    fn order(&self) -> i32 {
        20
    }

    fn before_fit(&mut self, l: &mut Learner) -> Result<Flow> {
        let s = l.state();
        let bar = self.bar(s.n_epochs, "epoch {pos}/{len} [{bar:30}] {elapsed_precise}");
        bar.set_position(s.epoch as u64);
        self.epochs = Some(bar);
        Ok(Flow::Continue)
    }

    fn before_train(&mut self, l: &mut Learner) -> Result<Flow> {
        let bar = self.bar(
            l.state().n_batches,
            "  {pos}/{len} [{bar:30}] {msg} {elapsed}<{eta}",
        );
        self.batches = Some(bar);
        Ok(Flow::Continue)
    }

    fn before_validate(&mut self, l: &mut Learner) -> Result<Flow> {
        let what = match l.state().phase {
            Phase::Valid => "valid",
            Phase::Features => "precompute",
            _ => "predict",
        };
        let bar = self.bar(
            l.state().pass_batches,
            &format!("  {what} {{pos}}/{{len}} [{{bar:30}}] {{elapsed}}<{{eta}}"),
        );
        self.batches = Some(bar);
        Ok(Flow::Continue)
    }

    fn after_validate(&mut self, _l: &mut Learner) -> Result<Flow> {
        if let Some(b) = self.batches.take() {
            b.finish_and_clear();
        }
        Ok(Flow::Continue)
    }

    fn after_batch(&mut self, l: &mut Learner) -> Result<Flow> {
        if let Some(b) = &self.batches {
            b.inc(1);
            if l.state().training {
                b.set_message(format!("loss {:.4}", l.state().smooth_loss));
            }
        }
        Ok(Flow::Continue)
    }

    fn after_train(&mut self, _l: &mut Learner) -> Result<Flow> {
        if let Some(b) = self.batches.take() {
            b.finish_and_clear();
        }
        Ok(Flow::Continue)
    }

    fn after_epoch(&mut self, _l: &mut Learner) -> Result<Flow> {
        if let Some(b) = &self.epochs {
            b.inc(1);
        }
        Ok(Flow::Continue)
    }

    fn after_fit(&mut self, _l: &mut Learner) -> Result<Flow> {
        if let Some(b) = self.epochs.take() {
            b.finish_and_clear();
        }
        Ok(Flow::Continue)
    }
}

/// Prints fastai's epoch table on stdout: a header per fit, then one row per epoch
/// (`epoch train_loss valid_loss <metrics…> time`).
#[derive(Debug, Default)]
pub struct EpochTable {
    printed_header: bool,
}

impl EpochTable {
    /// A table printer.
    pub fn new() -> Self {
        EpochTable::default()
    }
}

/// The header and one formatted row of the table (exposed for loggers and tests).
pub fn table_header(metrics: &[String]) -> String {
    let mut h = format!("{:<6} {:>10} {:>10}", "epoch", "train_loss", "valid_loss");
    for m in metrics {
        h.push_str(&format!(" {:>w$}", m, w = m.len().max(10)));
    }
    h.push_str(&format!(" {:>8}", "time"));
    h
}

/// One row of the table.
pub fn table_row(log: &crate::callbacks::EpochLog) -> String {
    let mut r = format!(
        "{:<6} {:>10.6} {:>10.6}",
        log.epoch, log.train_loss, log.valid_loss
    );
    for (name, v) in &log.metrics {
        r.push_str(&format!(" {:>w$.6}", v, w = name.len().max(10)));
    }
    let secs = log.seconds.round() as u64;
    r.push_str(&format!(" {:>5}:{:02}", secs / 60, secs % 60));
    r
}

impl Callback for EpochTable {
    fn name(&self) -> String {
        "epoch_table".into()
    }

    fn order(&self) -> i32 {
        10
    }

    fn before_fit(&mut self, _l: &mut Learner) -> Result<Flow> {
        self.printed_header = false;
        Ok(Flow::Continue)
    }

    fn after_epoch(&mut self, l: &mut Learner) -> Result<Flow> {
        let Some(log) = l.history().last() else {
            return Ok(Flow::Continue);
        };
        if !self.printed_header {
            let names: Vec<String> = log.metrics.iter().map(|(n, _)| n.clone()).collect();
            println!("{}", table_header(&names));
            self.printed_header = true;
        }
        println!("{}", table_row(log));
        Ok(Flow::Continue)
    }
}
