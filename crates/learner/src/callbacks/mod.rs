//! Built-in callbacks: the parameter scheduler, progress bars and the epoch table, CSV /
//! JSON logs and plots, early stopping, save-best-model, checkpoints, NaN guard, gradient
//! clipping and accumulation.

mod grads;
mod logging;
mod monitor;
mod progress;
mod scheduler;

pub use grads::{GradientAccumulation, GradientClip, TerminateOnNaN};
pub use logging::{CsvLogger, JsonLogger, PlotLosses};
pub use monitor::{Checkpointer, EarlyStopping, Monitor, SaveBestModel};
pub use progress::{EpochTable, ProgressBar};
pub use scheduler::ParamScheduler;
