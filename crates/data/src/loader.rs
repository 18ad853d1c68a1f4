//! The parallel, bounded, deterministic data loader.
//!
//! Workers decode and augment whole batches; batch `b` of an epoch always holds the same
//! items with the same augmentation, whatever the number of workers, because the order comes
//! from `(seed, epoch)` and each item's augmentation from `(seed, epoch, index)`. At most
//! `prefetch` batches are produced ahead of the consumer. A failing or panicking worker is
//! an error delivered in order — never a hang and never a silently short epoch.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

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
}

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
#[derive(Debug, Clone)]
pub struct DataLoader {
    dataset: ImageDataset,
    cfg: Arc<LoaderConfig>,
}

impl DataLoader {
    /// A loader over `dataset`.
    ///
    /// # Panics
    /// When `batch_size` or `prefetch` is 0.
    pub fn new(dataset: ImageDataset, cfg: LoaderConfig) -> Self {
        assert!(cfg.batch_size > 0, "batch_size must be at least 1");
        assert!(cfg.prefetch > 0, "prefetch must be at least 1");
        DataLoader {
            dataset,
            cfg: Arc::new(cfg),
        }
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
        }
    }

    /// The same dataset with another configuration.
    pub fn with_config(&self, cfg: LoaderConfig) -> Self {
        DataLoader::new(self.dataset.clone(), cfg)
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
        EpochIter::start(
            self.dataset.clone(),
            self.cfg.clone(),
            epoch,
            self.batches(epoch),
        )
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

/// The batches of one epoch, in order. Yields `Err` once, then ends, when a batch fails.
pub struct EpochIter {
    dataset: ImageDataset,
    cfg: Arc<LoaderConfig>,
    epoch: usize,
    batches: Arc<Vec<Vec<usize>>>,
    shared: Arc<Shared>,
    rx: Option<Receiver<Msg>>,
    pending: HashMap<usize, Result<CpuBatch>>,
    handles: Vec<JoinHandle<()>>,
    done: bool,
    delivered_items: usize,
    first_skip: Arc<Mutex<Option<Error>>>,
}

impl EpochIter {
    fn start(
        dataset: ImageDataset,
        cfg: Arc<LoaderConfig>,
        epoch: usize,
        batches: Vec<Vec<usize>>,
    ) -> Self {
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
        let batches = Arc::new(batches);
        let first_skip = Arc::new(Mutex::new(None));
        let mut it = EpochIter {
            dataset,
            cfg,
            epoch,
            batches,
            shared,
            rx: None,
            pending: HashMap::new(),
            handles: Vec::new(),
            done: false,
            delivered_items: 0,
            first_skip,
        };
        if it.cfg.workers > 0 {
            let (tx, rx) = channel();
            for w in 0..it.cfg.workers {
                let tx: Sender<Msg> = tx.clone();
                let (ds, cfg, shared, batches, fs) = (
                    it.dataset.clone(),
                    it.cfg.clone(),
                    it.shared.clone(),
                    it.batches.clone(),
                    it.first_skip.clone(),
                );
                let handle = std::thread::Builder::new()
                    .name(format!("fastburn-loader-{w}"))
                    .spawn(move || worker(&ds, &cfg, epoch, &batches, &shared, &fs, &tx))
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

    fn stop_workers(&mut self) {
        {
            let mut w = self.shared.window.lock().expect("loader lock");
            w.stop = true;
        }
        self.shared.cond.notify_all();
        self.rx = None;
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }

    fn next_result(&mut self, b: usize) -> Result<CpuBatch> {
        if self.cfg.workers == 0 {
            return build_batch_contained(
                &self.dataset,
                &self.cfg,
                self.epoch,
                &self.batches[b],
                b,
                &self.shared,
                &self.first_skip,
            );
        }
        loop {
            if let Some(r) = self.pending.remove(&b) {
                return r;
            }
            let rx = self.rx.as_ref().expect("receiver present while running");
            match rx.recv_timeout(Duration::from_millis(500)) {
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
                            epoch: self.epoch,
                            message: format!("all workers ended before batch {b} was produced"),
                        });
                    }
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(Error::WorkerDied {
                        epoch: self.epoch,
                        message: format!("workers disconnected before batch {b} was produced"),
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
            if b >= self.batches.len() {
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
        (0, Some(self.batches.len()))
    }
}

impl Drop for EpochIter {
    fn drop(&mut self) {
        self.stop_workers();
    }
}

fn worker(
    ds: &ImageDataset,
    cfg: &LoaderConfig,
    epoch: usize,
    batches: &[Vec<usize>],
    shared: &Shared,
    first_skip: &Mutex<Option<Error>>,
    tx: &Sender<Msg>,
) {
    loop {
        let b = {
            let mut w = shared.window.lock().expect("loader lock");
            while !w.stop && w.next < batches.len() && w.next >= w.consumed + cfg.prefetch {
                w = shared.cond.wait(w).expect("loader lock");
            }
            if w.stop || w.next >= batches.len() {
                return;
            }
            let b = w.next;
            w.next += 1;
            w.in_flight_max = w.in_flight_max.max(w.next - w.consumed);
            b
        };
        let r = build_batch_contained(ds, cfg, epoch, &batches[b], b, shared, first_skip);
        if tx.send((b, r)).is_err() {
            return; // the consumer is gone
        }
    }
}

/// [`build_batch`] with a panic (in augmentation, a custom decoder, anything) turned into
/// [`Error::WorkerDied`], on a worker thread or on the caller's (`workers = 0`) alike.
fn build_batch_contained(
    ds: &ImageDataset,
    cfg: &LoaderConfig,
    epoch: usize,
    indices: &[usize],
    b: usize,
    shared: &Shared,
    first_skip: &Mutex<Option<Error>>,
) -> Result<CpuBatch> {
    catch_unwind(AssertUnwindSafe(|| {
        build_batch(ds, cfg, epoch, indices, b, shared, first_skip)
    }))
    .unwrap_or_else(|p| {
        Err(Error::WorkerDied {
            epoch,
            message: format!("batch {b}: {}", panic_message(p.as_ref())),
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
