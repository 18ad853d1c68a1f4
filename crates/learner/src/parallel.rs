//! Data-parallel training on several devices, in the learner's own loop.
//!
//! Each global batch (the loader's batch) is split into one shard per device
//! ([`fastburn_data::shard_sizes`]: equal up to one item, the larger shards first). Replica
//! `k` is the learner's model forked to device `k` at the start of the step; it computes the
//! loss of its shard scaled by `shard items / batch items`, so the sum of the replicas'
//! gradients is the gradient of the whole batch's mean loss. How the gradients meet:
//!
//! - [`Reduce::Gather`] (every backend): each replica's gradients are moved to the learner's
//!   device (`GradientsParams::to_device`) and summed there, as burn-train's
//!   `ExecutionStrategy::multi` does.
//! - [`Reduce::Collective`] (CUDA): Burn's collectives. The replicas' parameters are marked
//!   with `Tensor::set_distributed`, a [`DistributedContext`] runs, and each replica's
//!   `backward()` returns the gradients already summed over all replicas (NCCL); rank 0's
//!   are used. Burn implements collectives on CUDA only (flex, ndarray and wgpu panic), so
//!   [`Reduce::Auto`] picks them only when every device is a CUDA device. A step whose shard
//!   shapes have not all run yet is gathered instead: a CUDA kernel autotuned while a peer
//!   waits in a collective can deadlock (Burn's own DDP tests warm every device first).
//!
//! Either way there is one optimiser, on the learner's device, and it steps once per global
//! batch: learning-rate schedules, gradient clipping and accumulation, callbacks, logging,
//! validation and checkpoints run on the learner's thread exactly as on one device.
//! Validation and prediction run on the learner's device only.
//!
//! BatchNorm: each replica normalises with its own shard's statistics (there is no
//! SyncBatchNorm), so a step on N devices equals a step on one device that runs the N shards
//! separately, not one over the whole batch. The replicas share their running statistics
//! (Burn's `RunningState` is shared between clones): each replica updates them from its
//! shard on its own thread, and the next read averages the updates. Dropout masks are drawn
//! per replica from a seed fixed by (seed, epoch, batch, rank).

use std::collections::HashSet;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::str::FromStr;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use burn::module::{Module, ModuleMapper, Param};
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::distributed::{DistributedConfig, DistributedContext, ReduceOperation};
use burn::tensor::{Device, Tensor};
use fastburn_models::VisionModel;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::loss::Loss;
use crate::step::{self, Forward, Input};

/// How the replicas' gradients are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reduce {
    /// [`Reduce::Collective`] when every device has collectives (CUDA), else
    /// [`Reduce::Gather`].
    #[default]
    Auto,
    /// Gradients moved to the learner's device and summed there (any backend).
    Gather,
    /// Burn's all-reduce through a `DistributedContext` (CUDA devices only).
    Collective,
}

impl FromStr for Reduce {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Reduce::Auto),
            "gather" => Ok(Reduce::Gather),
            "collective" => Ok(Reduce::Collective),
            _ => Err(Error::InvalidConfig {
                key: "reduce",
                value: s.to_string(),
                expected: "auto, gather or collective",
            }),
        }
    }
}

impl std::fmt::Display for Reduce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Reduce::Auto => "auto",
            Reduce::Gather => "gather",
            Reduce::Collective => "collective",
        })
    }
}

/// Whether Burn implements collectives (all-reduce) on `device`: CUDA devices, when the
/// `cuda` feature is compiled in.
///
/// ```
/// use burn::tensor::Device;
/// assert!(!fastburn_learner::has_collectives(&Device::flex()));
/// ```
pub fn has_collectives(device: &Device) -> bool {
    #[cfg(feature = "cuda")]
    {
        let plain = device.clone().without_autodiff();
        (0..64).any(|i| plain == Device::cuda(i))
    }
    #[cfg(not(feature = "cuda"))]
    {
        let _ = device;
        false
    }
}

/// Data-parallel training on several devices: set with
/// [`Learner::set_data_parallel`](crate::Learner::set_data_parallel). The first device is
/// the learner's own (rank 0: the optimiser, validation and checkpoints live there).
///
/// ```
/// use burn::tensor::Device;
/// use fastburn_learner::{DataParallel, Reduce};
/// let dp = DataParallel::new(vec![Device::flex()]);
/// assert_eq!(dp.reduce(), Reduce::Auto);
/// assert_eq!(dp.strategy(), Reduce::Gather); // flex has no collectives
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct DataParallel {
    devices: Vec<Device>,
    reduce: Reduce,
    step_deadline: Duration,
}

impl DataParallel {
    /// Training on `devices` (the learner's device first), gradients combined as
    /// [`Reduce::Auto`] picks, a 600 s step deadline.
    pub fn new(devices: Vec<Device>) -> Self {
        DataParallel {
            devices,
            reduce: Reduce::Auto,
            step_deadline: Duration::from_secs(600),
        }
    }

    /// How the gradients are combined.
    pub fn with_reduce(mut self, reduce: Reduce) -> Self {
        self.reduce = reduce;
        self
    }

    /// How long the learner waits for a replica's part of one step before it gives up with
    /// [`Error::ReplicaTimeout`] (a device that hangs, a peer stuck in a collective).
    pub fn with_step_deadline(mut self, deadline: Duration) -> Self {
        self.step_deadline = deadline;
        self
    }

    /// The devices, rank 0 first.
    pub fn devices(&self) -> &[Device] {
        &self.devices
    }

    /// The reduction asked for.
    pub fn reduce(&self) -> Reduce {
        self.reduce
    }

    /// The step deadline.
    pub fn step_deadline(&self) -> Duration {
        self.step_deadline
    }

    /// Checks what can be checked without a learner: at least one device, no device twice,
    /// and collectives only where every device has them.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming `devices` or `reduce`.
    pub fn check(&self) -> Result<()> {
        let bad = |key, value: String, expected| Error::InvalidConfig {
            key,
            value,
            expected,
        };
        if self.devices.is_empty() {
            return Err(bad("devices", "[]".into(), "at least one device"));
        }
        for (i, d) in self.devices.iter().enumerate() {
            if self.devices[..i].contains(d) {
                return Err(bad(
                    "devices",
                    format!("{} twice", device_label(d)),
                    "distinct devices",
                ));
            }
        }
        if self.strategy() == Reduce::Collective
            && let Some(d) = self.devices.iter().find(|d| !has_collectives(d))
        {
            return Err(bad(
                "reduce",
                format!("collective with {}", device_label(d)),
                "CUDA devices only (Burn implements collectives on CUDA; use gather)",
            ));
        }
        Ok(())
    }

    /// The reduction that runs: [`Reduce::Auto`] resolved (collectives when every device has
    /// them).
    pub fn strategy(&self) -> Reduce {
        match self.reduce {
            Reduce::Auto if self.devices.iter().all(has_collectives) => Reduce::Collective,
            Reduce::Auto => Reduce::Gather,
            r => r,
        }
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// A thread that runs one replica's work, so that each replica always computes on the same
/// thread (Burn's shared BatchNorm statistics are kept per thread). Dropping it closes its
/// queue; the thread ends after its current job and is never joined, so that dropping a
/// learner mid-step (or after a replica hung) cannot block.
struct Worker {
    tx: Sender<Job>,
    _handle: JoinHandle<()>,
}

impl Worker {
    fn spawn(rank: usize) -> Result<Self> {
        let (tx, rx) = mpsc::channel::<Job>();
        let handle = std::thread::Builder::new()
            .name(format!("fastburn-replica-{rank}"))
            .spawn(move || {
                for job in rx {
                    job();
                }
            })
            .map_err(|e| Error::Replica {
                rank,
                device: String::new(),
                message: format!("could not start its thread: {e}"),
            })?;
        Ok(Worker {
            tx,
            _handle: handle,
        })
    }

    /// Runs `f` on the worker; the receiver gets its result, or its panic.
    fn submit<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Receiver<std::thread::Result<T>> {
        let (tx, rx) = mpsc::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(catch_unwind(AssertUnwindSafe(f)));
        });
        // A worker whose thread has ended drops the job, and with it `tx`: the caller sees
        // a disconnected channel.
        let _ = self.tx.send(job);
        rx
    }
}

/// Marks every trainable parameter for Burn's gradient all-reduce.
struct MarkDistributed;

impl ModuleMapper for MarkDistributed {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if !param.is_require_grad() {
            return param;
        }
        let id = param.id;
        param.map(|t| t.set_distributed(id))
    }
}

/// A device as errors name it (without the autodiff wrapper).
pub(crate) fn device_label(device: &Device) -> String {
    format!("{:?}", device.clone().without_autodiff())
}

pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| format!("panicked: {s}"))
        .or_else(|| {
            payload
                .downcast_ref::<String>()
                .map(|s| format!("panicked: {s}"))
        })
        .unwrap_or_else(|| "panicked".into())
}

/// What a worker sends between its forward and backward passes.
type ForwardDone = std::result::Result<f32, String>;

/// The data-parallel state of a learner: its devices, one worker thread per extra device,
/// and the collective context once it runs.
pub(crate) struct Parallel {
    cfg: DataParallel,
    strategy: Reduce,
    devices: Vec<Device>,
    workers: Vec<Worker>,
    context: Option<DistributedContext>,
    warmed: HashSet<Vec<Vec<usize>>>,
    broken: Option<String>,
}

impl std::fmt::Debug for Parallel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parallel")
            .field("devices", &self.devices)
            .field("strategy", &self.strategy)
            .finish()
    }
}

/// One step between its forward and backward passes.
pub(crate) struct Staged {
    /// Rank 0's scaled loss, and its replica when it is not the learner's model.
    rank0: (Tensor<1>, Option<VisionModel>),
    /// The whole batch's loss (the sum of the scaled shard losses).
    pub(crate) value: f32,
    go: Vec<Sender<bool>>,
    grads: Vec<Receiver<std::thread::Result<Option<GradientsParams>>>>,
    collective: bool,
}

impl Parallel {
    /// Checks `cfg` against the learner's device `main` (autodiff) and starts the workers.
    pub(crate) fn new(cfg: DataParallel, main: &Device) -> Result<Self> {
        cfg.check()?;
        let devices: Vec<Device> = cfg.devices.iter().map(|d| d.clone().autodiff()).collect();
        if devices[0] != *main {
            return Err(Error::InvalidConfig {
                key: "devices",
                value: format!("{} first", device_label(&cfg.devices[0])),
                expected: "the learner's own device first (rank 0)",
            });
        }
        let strategy = cfg.strategy();
        let workers = (1..devices.len())
            .map(Worker::spawn)
            .collect::<Result<Vec<_>>>()?;
        Ok(Parallel {
            cfg,
            strategy,
            devices,
            workers,
            context: None,
            warmed: HashSet::new(),
            broken: None,
        })
    }

    pub(crate) fn config(&self) -> &DataParallel {
        &self.cfg
    }

    /// The autodiff devices, rank 0 first.
    pub(crate) fn devices(&self) -> &[Device] {
        &self.devices
    }

    fn device_name(&self, rank: usize) -> String {
        device_label(&self.cfg.devices[rank])
    }

    /// The error of a replica past the step deadline; data-parallel training stops here.
    fn timed_out(&mut self, rank: usize) -> Error {
        let seconds = self.cfg.step_deadline.as_secs();
        self.broken = Some(format!(
            "replica {rank} did not finish a step within {seconds} s"
        ));
        Error::ReplicaTimeout {
            rank,
            device: self.device_name(rank),
            seconds,
        }
    }

    /// Waits for a worker's answer within the step deadline.
    fn wait<T>(&mut self, rank: usize, rx: &Receiver<std::thread::Result<T>>) -> Result<T> {
        match rx.recv_timeout(self.cfg.step_deadline) {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(p)) => Err(Error::Replica {
                rank,
                device: self.device_name(rank),
                message: panic_message(&*p),
            }),
            Err(RecvTimeoutError::Timeout) => Err(self.timed_out(rank)),
            Err(RecvTimeoutError::Disconnected) => Err(Error::Replica {
                rank,
                device: self.device_name(rank),
                message: "its thread ended".into(),
            }),
        }
    }

    /// Forward passes of one step: shard `k` of `shards` on device `k`. Rank 0 runs here,
    /// on the learner's thread, with `model` itself (gather) or a marked fork of it
    /// (collective); the other ranks on their workers, each with a fork of `model`.
    pub(crate) fn forward(
        &mut self,
        model: &VisionModel,
        loss: &Loss,
        shards: Vec<Input>,
        forward: Forward,
        seed: u64,
    ) -> Result<Staged> {
        if let Some(why) = &self.broken {
            return Err(Error::Replica {
                rank: 0,
                device: self.device_name(0),
                message: format!("data-parallel training was abandoned: {why}"),
            });
        }
        let total: usize = shards.iter().map(|s| s.indices.len()).sum();
        let shapes: Vec<Vec<usize>> = shards.iter().map(|s| s.x.dims().to_vec()).collect();
        let all_busy = shards.iter().all(|s| !s.indices.is_empty());
        let collective =
            self.strategy == Reduce::Collective && all_busy && self.warmed.contains(&shapes);
        if collective && self.context.is_none() {
            self.context = Some(DistributedContext::init(
                self.devices.clone(),
                DistributedConfig {
                    all_reduce_op: ReduceOperation::Sum,
                },
            ));
        }
        let scale = |n: usize| (total > 1 && n != total).then(|| n as f64 / total as f64);
        let mut shards = shards.into_iter();
        let first = shards.next().expect("one shard per device");
        let mut go = Vec::new();
        let mut values = Vec::new();
        let mut grads = Vec::new();
        for (k, input) in shards.enumerate() {
            let rank = k + 1;
            let device = self.devices[rank].clone();
            let main = self.devices[0].clone().without_autodiff();
            let (go_tx, go_rx) = mpsc::channel::<bool>();
            let (val_tx, val_rx) = mpsc::channel::<ForwardDone>();
            let (model, loss) = (model.clone(), loss.clone());
            let s = scale(input.indices.len());
            let seed = fastburn_data::splitmix64(seed ^ rank as u64);
            let rx = self.workers[k].submit(move || {
                if input.indices.is_empty() {
                    let _ = val_tx.send(Ok(0.0));
                    return None;
                }
                let run = catch_unwind(AssertUnwindSafe(|| {
                    let mut replica = model.fork(&device);
                    if collective {
                        replica = replica.map(&mut MarkDistributed);
                    }
                    let logits = crate::rng::with_seed(&device, seed, || {
                        step::logits(&replica, input.x, forward)
                    });
                    let mut l = loss.forward(logits, input.y);
                    if let Some(s) = s {
                        l = l.mul_scalar(s);
                    }
                    let v: f32 = l.clone().into_scalar();
                    (replica, l, v)
                }));
                let (replica, l) = match run {
                    Ok((replica, l, v)) => {
                        let _ = val_tx.send(Ok(v));
                        (replica, l)
                    }
                    Err(p) => {
                        let _ = val_tx.send(Err(panic_message(&*p)));
                        return None;
                    }
                };
                // The learner's answer after its `after_loss` callbacks: backward or not.
                if go_rx.recv() != Ok(true) {
                    return None;
                }
                let g = GradientsParams::from_grads(l.backward(), &replica);
                (!collective).then(|| g.to_device(&main, &replica))
            });
            go.push(go_tx);
            values.push(val_rx);
            grads.push(rx);
        }
        // Rank 0 on this thread, while the workers run.
        let rank0 = catch_unwind(AssertUnwindSafe(|| {
            let replica = collective.then(|| {
                model
                    .clone()
                    .fork(&self.devices[0])
                    .map(&mut MarkDistributed)
            });
            let m = replica.as_ref().unwrap_or(model);
            let logits =
                crate::rng::with_seed(&self.devices[0], seed, || step::logits(m, first.x, forward));
            let mut l = loss.forward(logits, first.y);
            if let Some(s) = scale(first.indices.len()) {
                l = l.mul_scalar(s);
            }
            let v: f32 = l.clone().into_scalar();
            (l, replica, v)
        }))
        .map_err(|p| Error::Replica {
            rank: 0,
            device: self.device_name(0),
            message: panic_message(&*p),
        });
        // Every worker answers (or times out) before anything is returned, so no worker is
        // left waiting for a step that was abandoned.
        let mut value = 0.0f32;
        let mut failure = None;
        for (k, rx) in values.iter().enumerate() {
            let rank = k + 1;
            let got = match rx.recv_timeout(self.cfg.step_deadline) {
                Ok(Ok(v)) => Ok(v),
                Ok(Err(message)) => Err(Error::Replica {
                    rank,
                    device: self.device_name(rank),
                    message,
                }),
                Err(RecvTimeoutError::Timeout) => Err(self.timed_out(rank)),
                Err(RecvTimeoutError::Disconnected) => {
                    // The job ended before sending: its panic is in its result.
                    Err(match self.wait(rank, &grads[k]) {
                        Err(e) => e,
                        Ok(_) => Error::Replica {
                            rank,
                            device: self.device_name(rank),
                            message: "ended its forward pass without a loss".into(),
                        },
                    })
                }
            };
            match got {
                Ok(v) => value += v,
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
        }
        let (l0, replica0, v0) = rank0?;
        if let Some(e) = failure {
            return Err(e);
        }
        if !collective {
            // Every device has now run these shapes (and autotuned its kernels for them).
            self.warmed.insert(shapes);
        }
        Ok(Staged {
            rank0: (l0, replica0),
            value: v0 + value,
            go,
            grads,
            collective,
        })
    }

    /// Backward passes of a staged step; the whole batch's gradients, on the learner's
    /// device, keyed by the learner's parameters.
    pub(crate) fn backward(
        &mut self,
        staged: Staged,
        model: &VisionModel,
    ) -> Result<GradientsParams> {
        let Staged {
            rank0: (l0, replica0),
            go,
            grads,
            collective,
            ..
        } = staged;
        for tx in &go {
            let _ = tx.send(true);
        }
        let g0 = catch_unwind(AssertUnwindSafe(|| {
            let replica = replica0.as_ref().unwrap_or(model);
            GradientsParams::from_grads(l0.backward(), replica)
        }))
        .map_err(|p| Error::Replica {
            rank: 0,
            device: self.device_name(0),
            message: panic_message(&*p),
        });
        let mut acc = GradientsAccumulator::<VisionModel>::new();
        let mut failure = None;
        let mut gathered = Vec::new();
        for (k, rx) in grads.iter().enumerate() {
            match self.wait(k + 1, rx) {
                Ok(g) => gathered.push(g),
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
        }
        let g0 = g0?;
        if let Some(e) = failure {
            return Err(e);
        }
        if collective || gathered.iter().all(Option::is_none) {
            // Summed over every replica by the all-reduce, or rank 0's alone.
            return Ok(g0);
        }
        acc.accumulate(model, g0);
        for g in gathered.into_iter().flatten() {
            acc.accumulate(model, g);
        }
        Ok(acc.grads())
    }
}
