//! Built-in callbacks: the recorder (history and metrics), gathering predictions, the
//! parameter scheduler, progress bars and the epoch table, CSV / JSON logs and plots, early
//! stopping, save-best-model, checkpoints, NaN guard, gradient clipping and accumulation.
//! The LR finder's callback is [`LrFinder`](crate::LrFinder).

mod gather;
mod grads;
mod logging;
mod monitor;
mod progress;
mod recorder;
mod scheduler;

pub use gather::GatherPreds;
pub use grads::{GradientAccumulation, GradientClip, TerminateOnNaN};
pub use logging::{CsvLogger, JsonLogger, PlotLosses, history_plot};
pub use monitor::{Checkpointer, EarlyStopping, Monitor, SaveBestModel};
pub use progress::{EpochTable, ProgressBar, table_header, table_row};
pub use recorder::{EpochLog, IterLog, Recorder};
pub use scheduler::ParamScheduler;
