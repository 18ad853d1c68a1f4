//! The parallel, bounded, deterministic data loader.
//!
//! Workers decode and augment whole batches; batch `b` of an epoch always holds the same
//! items with the same augmentation, whatever the number of workers, because the order comes
//! from `(seed, epoch)` and each item's augmentation from `(seed, epoch, index)`. At most
//! `prefetch` batches are produced ahead of the consumer. A failing or panicking worker is
//! an error delivered in order — never a hang and never a silently short epoch — and a batch
//! that does not arrive within [`LoaderConfig::batch_deadline`] is an error too.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use burn::config::Config;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::augment::AugParams;
use crate::dataset::{ImageDataset, splitmix64};
use crate::decode::panic_message;
use crate::error::{Error, Result};

/// What the loader does with an item that fails to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum OnError {
    /// Stop the epoch with the error (default; run `verify` first to list every bad file).
    #[default]
    Stop,
    /// Drop bad items from their batch, count them ([`EpochIter::skipped`]), and stop with
    /// [`Error::TooManyBadSamples`] once more than `max` were skipped in one epoch.
    Skip {
        /// Largest number of skipped items per epoch.
        max: usize,
    },
}

/// Batching, shuffling, parallelism and prefetch of a [`DataLoader`].
#[derive(Config, Debug, PartialEq)]
pub struct LoaderConfig {
    /// Items per batch.
    #[config(default = 64)]
    pub batch_size: usize,
    /// Shuffle every epoch (from `(seed, epoch)`).
    #[config(default = false)]
    pub shuffle: bool,
    /// Drop the last incomplete batch.
    #[config(default = false)]
    pub drop_last: bool,
    /// Worker threads (0: load in the calling thread).
    #[config(default = 2)]
    pub workers: usize,
    /// Largest number of batches produced and not yet consumed.
    #[config(default = 2)]
    pub prefetch: usize,
    /// Shuffle seed.
    #[config(default = 42)]
    pub seed: u64,
    /// Bad-item policy.
    #[config(default = "OnError::Stop")]
    pub on_error: OnError,
    /// Longest the consumer waits for one batch before the epoch ends with
    /// [`Error::BatchDeadline`] naming it (`None`: wait forever). The default, ten minutes,
    /// is far above any healthy batch and turns a stuck worker (a hung network read, a
    /// decoder that never returns) into an error instead of a hang. The clock starts when
    /// the consumer asks for the batch, so a slow consumer never trips it. With
    /// `workers = 0` the batch is built on the calling thread, which cannot be
    /// interrupted: a batch that took longer is the same error, raised when it returns.
    #[config(default = "Some(Duration::from_secs(600))")]
    pub batch_deadline: Option<Duration>,
}

/// A batch in host memory, ready to go to a device.
#[derive(Debug, Clone)]
pub struct CpuBatch {
    /// Dataset indices of the items, in batch order.
    pub indices: Vec<usize>,
    /// Planar images `[n, 3, size, size]`.
    pub images: Vec<f32>,
    /// Side of each image.
    pub size: u32,
    /// Augmentation still to run on the device, per item.
    pub params: Vec<AugParams>,
    /// Multi-hot targets `[n, classes]`.
    pub targets: Vec<f32>,
    /// Number of classes.
    pub classes: usize,
    /// Label indices per item.
    pub labels: Vec<Vec<usize>>,
}

impl CpuBatch {
    /// Number of items.
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// True when the batch holds no item.
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// Splits the batch into `n` consecutive shards whose sizes differ by at most one, the
    /// larger ones first ([`shard_sizes`]): data-parallel training gives shard `k` to device
    /// `k`. With fewer items than shards the last shards are empty.
    ///
    /// ```
    /// # use fastburn_data::*;
    /// let batch = CpuBatch {
    ///     indices: vec![10, 11, 12],
    ///     images: (0..3 * 3 * 2 * 2).map(|v| v as f32).collect(),
    ///     size: 2,
    ///     params: vec![AugParams::identity(); 3],
    ///     targets: vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0],
    ///     classes: 2,
    ///     labels: vec![vec![0], vec![1], vec![0, 1]],
    /// };
    /// let shards = batch.clone().split(2);
    /// assert_eq!(shards[0].indices, [10, 11]);
    /// assert_eq!(shards[1].indices, [12]);
    /// assert_eq!(shards[1].images, batch.images[2 * 12..]);
    /// assert_eq!(shards[1].targets, [1.0, 1.0]);
    /// assert_eq!(shards[1].labels, [vec![0, 1]]);
    /// assert!(batch.split(4)[3].is_empty());
    /// ```
    ///
    /// # Panics
    /// When `n` is 0.
    pub fn split(self, n: usize) -> Vec<CpuBatch> {
        let item = 3 * (self.size as usize) * (self.size as usize);
        let mut out = Vec::with_capacity(n);
        let mut start = 0;
        for len in shard_sizes(self.len(), n) {
            let end = start + len;
            out.push(CpuBatch {
                indices: self.indices[start..end].to_vec(),
                images: self.images[start * item..end * item].to_vec(),
                size: self.size,
                params: self.params[start..end].to_vec(),
                targets: self.targets[start * self.classes..end * self.classes].to_vec(),
                classes: self.classes,
                labels: self.labels[start..end].to_vec(),
            });
            start = end;
        }
        out
    }
}

/// The sizes of `n` consecutive shards of `total` items: equal up to one, the larger first
/// (`shard_sizes(10, 4) == [3, 3, 2, 2]`), as PyTorch's `DataParallel` scatters a batch.
///
/// ```
/// assert_eq!(fastburn_data::shard_sizes(10, 4), [3, 3, 2, 2]);
/// assert_eq!(fastburn_data::shard_sizes(2, 3), [1, 1, 0]);
/// ```
///
/// # Panics
/// When `n` is 0.
pub fn shard_sizes(total: usize, n: usize) -> Vec<usize> {
    assert!(n > 0, "at least one shard");
    (0..n)
        .map(|k| total / n + usize::from(k < total % n))
        .collect()
}

/// Where a batch sits in the run: what a [`BatchTransform`] is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BatchPos {
    /// The epoch.
    pub epoch: usize,
    /// The batch index within the epoch.
    pub batch: usize,
}

/// A function run on every assembled (non-empty) batch, on the thread that built it, before
/// the batch is delivered: host-side batch transforms such as label smoothing or custom
/// statistics (fastai's `after_batch`, on the CPU). Set with
/// [`DataLoader::with_batch_transform`].
///
/// It is deterministic when it depends only on the batch and its [`BatchPos`] (not on the
/// thread or the time): batches then stay identical for any number of workers. A panic in
/// it is contained and ends the epoch with [`Error::WorkerDied`] naming the batch.
pub type BatchTransform = Arc<dyn Fn(BatchPos, &mut CpuBatch) + Send + Sync>;

/// A data loader over an [`ImageDataset`].
///
/// ```
/// # use fastburn_data::*;
/// # let dir = tempfile::tempdir().unwrap();
/// # synth::SynthConfig::new(dir.path().to_path_buf()).with_n(10).with_size(32).generate().unwrap();
/// let list = CsvConfig::new(dir.path().join("labels.csv"), dir.path().join("train-jpg")).load()?;
/// let ds = ImageDataset::new(list, Transforms::new(32), 42);
/// let dl = DataLoader::new(ds, LoaderConfig::new().with_batch_size(4).with_shuffle(true));
/// let sizes: Vec<usize> = dl.epoch(0).map(|b| b.map(|b| b.len())).collect::<Result<_>>()?;
/// assert_eq!(sizes, vec![4, 4, 2]);
/// # Ok::<(), fastburn_data::Error>(())
/// ```
#[derive(Clone)]
pub struct DataLoader {
    dataset: ImageDataset,
    cfg: Arc<LoaderConfig>,
    transform: Option<BatchTransform>,
}

impl std::fmt::Debug for DataLoader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataLoader")
            .field("dataset", &self.dataset)
            .field("cfg", &self.cfg)
            .field("batch_transform", &self.transform.is_some())
            .finish()
    }
}

impl DataLoader {
    /// A loader over `dataset`.
    ///
    /// # Panics
    /// When `batch_size` or `prefetch` is 0, or `batch_deadline` is `Some(0)`.
    pub fn new(dataset: ImageDataset, cfg: LoaderConfig) -> Self {
        assert!(cfg.batch_size > 0, "batch_size must be at least 1");
        assert!(cfg.prefetch > 0, "prefetch must be at least 1");
        assert!(
            cfg.batch_deadline.is_none_or(|d| !d.is_zero()),
            "batch_deadline must be above 0 (None: no deadline)"
        );
        DataLoader {
            dataset,
            cfg: Arc::new(cfg),
            transform: None,
        }
    }

    /// The same loader with `transform` run on every batch before it is delivered (see
    /// [`BatchTransform`]); it replaces any earlier one and is kept by
    /// [`DataLoader::with_dataset`] and [`DataLoader::with_config`].
    ///
    /// # Example
    /// Label smoothing of multi-hot targets, on the loader's threads:
    /// ```
    /// # use fastburn_data::*;
    /// # use std::sync::Arc;
    /// # let dir = tempfile::tempdir().unwrap();
    /// # synth::SynthConfig::new(dir.path().to_path_buf()).with_n(6).with_size(32).generate().unwrap();
    /// let list = CsvConfig::new(dir.path().join("labels.csv"), dir.path().join("train-jpg")).load()?;
    /// let ds = ImageDataset::new(list, Transforms::new(16), 42);
    /// let smooth: BatchTransform = Arc::new(|_pos: BatchPos, b: &mut CpuBatch| {
    ///     b.targets.iter_mut().for_each(|t| *t = 0.05 + 0.9 * *t);
    /// });
    /// let dl = DataLoader::new(ds, LoaderConfig::new().with_batch_size(4)).with_batch_transform(smooth);
    /// for batch in dl.epoch(0) {
    ///     assert!(batch?.targets.iter().all(|&t| t == 0.05 || t == 0.95));
    /// }
    /// # Ok::<(), fastburn_data::Error>(())
    /// ```
    pub fn with_batch_transform(mut self, transform: BatchTransform) -> Self {
        self.transform = Some(transform);
        self
    }

    /// The dataset.
    pub fn dataset(&self) -> &ImageDataset {
        &self.dataset
    }

    /// The configuration.
    pub fn config(&self) -> &LoaderConfig {
        &self.cfg
    }

    /// The same loader over another dataset (e.g. new transforms).
    pub fn with_dataset(&self, dataset: ImageDataset) -> Self {
        DataLoader {
            dataset,
            cfg: self.cfg.clone(),
            transform: self.transform.clone(),
        }
    }

    /// The same dataset with another configuration.
    ///
    /// # Panics
    /// As [`DataLoader::new`].
    pub fn with_config(&self, cfg: LoaderConfig) -> Self {
        DataLoader {
            transform: self.transform.clone(),
            ..DataLoader::new(self.dataset.clone(), cfg)
        }
    }

    /// Number of batches per epoch.
    pub fn num_batches(&self) -> usize {
        let (n, bs) = (self.dataset.len(), self.cfg.batch_size);
        if self.cfg.drop_last {
            n / bs
        } else {
            n.div_ceil(bs)
        }
    }

    /// The item order of `epoch`: a permutation seeded by `(seed, epoch)` when shuffling, else
    /// `0..n`.
    pub fn order(&self, epoch: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.dataset.len()).collect();
        if self.cfg.shuffle {
            let mut rng =
                ChaCha8Rng::seed_from_u64(splitmix64(self.cfg.seed ^ 0x5348_5546) ^ epoch as u64);
            order.shuffle(&mut rng);
        }
        order
    }

    /// The batches (item indices) of `epoch`.
    pub fn batches(&self, epoch: usize) -> Vec<Vec<usize>> {
        let order = self.order(epoch);
        let bs = self.cfg.batch_size;
        order
            .chunks(bs)
            .filter(|c| !self.cfg.drop_last || c.len() == bs)
            .map(<[usize]>::to_vec)
            .collect()
    }

    /// Iterates over the batches of `epoch`. Workers start at once; dropping the iterator
    /// stops and joins them.
    pub fn epoch(&self, epoch: usize) -> EpochIter {
        EpochIter::start(Job {
            ds: self.dataset.clone(),
            cfg: self.cfg.clone(),
            transform: self.transform.clone(),
            epoch,
            batches: Arc::new(self.batches(epoch)),
        })
    }
}

struct Window {
    next: usize,
    consumed: usize,
    stop: bool,
    in_flight_max: usize,
}

struct Shared {
    window: Mutex<Window>,
    cond: Condvar,
    skipped: AtomicUsize,
}

type Msg = (usize, Result<CpuBatch>);

/// What the threads of one epoch share read-only.
#[derive(Clone)]
struct Job {
    ds: ImageDataset,
    cfg: Arc<LoaderConfig>,
    transform: Option<BatchTransform>,
    epoch: usize,
    batches: Arc<Vec<Vec<usize>>>,
}

/// How often a waiting consumer checks that the workers are alive.
const POLL: Duration = Duration::from_millis(500);

/// The batches of one epoch, in order. Yields `Err` once, then ends, when a batch fails.
pub struct EpochIter {
    job: Job,
    shared: Arc<Shared>,
    rx: Option<Receiver<Msg>>,
    pending: HashMap<usize, Result<CpuBatch>>,
    handles: Vec<JoinHandle<()>>,
    done: bool,
    delivered_items: usize,
    first_skip: Arc<Mutex<Option<Error>>>,
}

impl EpochIter {
    fn start(job: Job) -> Self {
        let shared = Arc::new(Shared {
            window: Mutex::new(Window {
                next: 0,
                consumed: 0,
                stop: false,
                in_flight_max: 0,
            }),
            cond: Condvar::new(),
            skipped: AtomicUsize::new(0),
        });
        let mut it = EpochIter {
            job,
            shared,
            rx: None,
            pending: HashMap::new(),
            handles: Vec::new(),
            done: false,
            delivered_items: 0,
            first_skip: Arc::new(Mutex::new(None)),
        };
        if it.job.cfg.workers > 0 {
            let (tx, rx) = channel();
            for w in 0..it.job.cfg.workers {
                let tx: Sender<Msg> = tx.clone();
                let (job, shared, fs) = (it.job.clone(), it.shared.clone(), it.first_skip.clone());
                let handle = std::thread::Builder::new()
                    .name(format!("fastburn-loader-{w}"))
                    .spawn(move || worker(&job, &shared, &fs, &tx))
                    .expect("spawning a loader thread");
                it.handles.push(handle);
            }
            it.rx = Some(rx);
        }
        it
    }

    /// Items skipped so far this epoch (with [`OnError::Skip`]).
    pub fn skipped(&self) -> usize {
        self.shared.skipped.load(Ordering::SeqCst)
    }

    /// Items delivered so far this epoch.
    pub fn delivered(&self) -> usize {
        self.delivered_items
    }

    /// The most batches that were produced (or being produced) and not yet consumed at any
    /// moment; never above `prefetch`.
    pub fn max_in_flight(&self) -> usize {
        self.shared
            .window
            .lock()
            .expect("loader lock")
            .in_flight_max
    }

    /// Tells the workers to stop and disconnects them.
    fn signal_stop(&mut self) {
        {
            let mut w = self.shared.window.lock().expect("loader lock");
            w.stop = true;
        }
        self.shared.cond.notify_all();
        self.rx = None;
    }

    fn stop_workers(&mut self) {
        self.signal_stop();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }

    /// Stops the workers without joining them: one is stuck (past the batch deadline), and
    /// joining it could hang. Each exits at its next batch boundary (its send fails).
    fn abandon_workers(&mut self) {
        self.signal_stop();
        self.handles.clear();
    }

    fn deadline_error(&self, b: usize, deadline: Duration) -> Error {
        Error::BatchDeadline {
            epoch: self.job.epoch,
            batch: b,
            deadline,
        }
    }

    fn next_result(&mut self, b: usize) -> Result<CpuBatch> {
        let started = Instant::now();
        let deadline = self.job.cfg.batch_deadline;
        if self.job.cfg.workers == 0 {
            let r = build_batch_contained(&self.job, b, &self.shared, &self.first_skip);
            return match deadline {
                Some(d) if r.is_ok() && started.elapsed() > d => Err(self.deadline_error(b, d)),
                _ => r,
            };
        }
        loop {
            if let Some(r) = self.pending.remove(&b) {
                return r;
            }
            let wait = match deadline {
                Some(d) => {
                    let left = d.saturating_sub(started.elapsed());
                    if left.is_zero() {
                        self.abandon_workers();
                        return Err(self.deadline_error(b, d));
                    }
                    left.min(POLL)
                }
                None => POLL,
            };
            let rx = self.rx.as_ref().expect("receiver present while running");
            match rx.recv_timeout(wait) {
                Ok((i, r)) => {
                    self.pending.insert(i, r);
                }
                Err(RecvTimeoutError::Timeout) => {
                    if self.handles.iter().all(JoinHandle::is_finished) {
                        // Drain anything sent just before the workers ended.
                        while let Ok((i, r)) = rx.try_recv() {
                            self.pending.insert(i, r);
                        }
                        if let Some(r) = self.pending.remove(&b) {
                            return r;
                        }
                        return Err(Error::WorkerDied {
                            epoch: self.job.epoch,
                            batch: b,
                            message: "all workers ended before the batch was produced".into(),
                        });
                    }
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(Error::WorkerDied {
                        epoch: self.job.epoch,
                        batch: b,
                        message: "workers disconnected before the batch was produced".into(),
                    });
                }
            }
        }
    }
}

impl Iterator for EpochIter {
    type Item = Result<CpuBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        loop {
            let b = self.shared.window.lock().expect("loader lock").consumed;
            if b >= self.job.batches.len() {
                self.done = true;
                self.stop_workers();
                return None;
            }
            let r = self.next_result(b);
            {
                let mut w = self.shared.window.lock().expect("loader lock");
                w.consumed += 1;
            }
            self.shared.cond.notify_all();
            return match r {
                // Every item of this batch was skipped (`OnError::Skip`): an empty batch
                // would reach the model as a NaN loss, so go on to the next one.
                Ok(batch) if batch.is_empty() => continue,
                Ok(batch) => {
                    self.delivered_items += batch.len();
                    Some(Ok(batch))
                }
                Err(e) => {
                    self.done = true;
                    self.stop_workers();
                    Some(Err(e))
                }
            };
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.job.batches.len()))
    }
}

impl Drop for EpochIter {
    fn drop(&mut self) {
        self.stop_workers();
    }
}

fn worker(job: &Job, shared: &Shared, first_skip: &Mutex<Option<Error>>, tx: &Sender<Msg>) {
    let n = job.batches.len();
    loop {
        let b = {
            let mut w = shared.window.lock().expect("loader lock");
            while !w.stop && w.next < n && w.next >= w.consumed + job.cfg.prefetch {
                w = shared.cond.wait(w).expect("loader lock");
            }
            if w.stop || w.next >= n {
                return;
            }
            let b = w.next;
            w.next += 1;
            w.in_flight_max = w.in_flight_max.max(w.next - w.consumed);
            b
        };
        let r = build_batch_contained(job, b, shared, first_skip);
        if tx.send((b, r)).is_err() {
            return; // the consumer is gone
        }
    }
}

/// [`build_batch`] and the [`BatchTransform`], with a panic (in augmentation, a custom
/// decoder, the transform, anything) turned into [`Error::WorkerDied`], on a worker thread
/// or on the caller's (`workers = 0`) alike.
fn build_batch_contained(
    job: &Job,
    b: usize,
    shared: &Shared,
    first_skip: &Mutex<Option<Error>>,
) -> Result<CpuBatch> {
    let epoch = job.epoch;
    catch_unwind(AssertUnwindSafe(|| {
        let mut batch = build_batch(
            &job.ds,
            &job.cfg,
            epoch,
            &job.batches[b],
            b,
            shared,
            first_skip,
        )?;
        if let Some(t) = &job.transform
            && !batch.is_empty()
        {
            t(BatchPos { epoch, batch: b }, &mut batch);
        }
        Ok(batch)
    }))
    .unwrap_or_else(|p| {
        Err(Error::WorkerDied {
            epoch,
            batch: b,
            message: panic_message(p.as_ref()),
        })
    })
}

fn build_batch(
    ds: &ImageDataset,
    cfg: &LoaderConfig,
    epoch: usize,
    indices: &[usize],
    b: usize,
    shared: &Shared,
    first_skip: &Mutex<Option<Error>>,
) -> Result<CpuBatch> {
    let size = ds.transforms().size;
    let classes = ds.vocab().len();
    let plane = 3 * (size * size) as usize;
    let mut out = CpuBatch {
        indices: Vec::with_capacity(indices.len()),
        images: Vec::with_capacity(indices.len() * plane),
        size,
        params: Vec::with_capacity(indices.len()),
        targets: Vec::with_capacity(indices.len() * classes),
        classes,
        labels: Vec::with_capacity(indices.len()),
    };
    for &i in indices {
        match ds.get(i, epoch) {
            Ok(s) => {
                out.indices.push(i);
                out.images.extend_from_slice(&s.pixels);
                out.params.push(s.params);
                out.targets.extend(ds.vocab().multi_hot(&s.labels));
                out.labels.push(s.labels);
            }
            Err(e) => match cfg.on_error {
                OnError::Stop => {
                    return Err(Error::Worker {
                        epoch,
                        batch: b,
                        source: Box::new(e),
                    });
                }
                OnError::Skip { max } => {
                    let n = shared.skipped.fetch_add(1, Ordering::SeqCst) + 1;
                    let mut first = first_skip.lock().expect("loader lock");
                    if n > max {
                        let first = first.take().unwrap_or(e);
                        return Err(Error::TooManyBadSamples {
                            skipped: n,
                            limit: max,
                            first: Box::new(first),
                        });
                    }
                    if first.is_none() {
                        *first = Some(e);
                    }
                }
            },
        }
    }
    Ok(out)
}
