//! The batch loader: a split in, [`Batch`]es out, built by worker threads ahead of use.
//!
//! Why not Burn's `DataLoader`: its workers each own a fixed slice of the data and their
//! batches arrive in whatever order the threads finish, so the order of batches (and so
//! the trained weights) changes with the number of workers and with timing; its shuffle
//! state lives inside the loader, so a resumed run cannot ask for "the order of epoch 7";
//! and its `Batcher` cannot report a decoding error. Here batch `b` of an epoch is built
//! by worker `b % n` and handed out in order through per-worker bounded queues (the
//! prefetch), the shuffle is a function of (seed, epoch), and each sample's augmentation a
//! function of (seed, epoch, sample). The same seed gives the same batches with 0, 1 or 8
//! workers, which the resume-equivalence guarantee of training relies on. (Burn's loader
//! still works on our splits through [`BurnSampleDataset`](crate::BurnSampleDataset).)

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use serde::{Deserialize, Serialize};

use crate::ImageShape;
use crate::augment::{AugmentConfig, Normalization, SampleAugment};
use crate::dataset::{DataSplit, ImageSource, image_len};
use crate::decode::{Scratch, decode_file};
use crate::error::DataError;
use crate::pixels::{ChannelNorm, write_planar, write_sample};
use crate::rng::SplitMix64;

/// How batches are drawn from a split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoaderConfig {
    /// Samples per batch (the last batch may be smaller unless `drop_last`).
    pub batch_size: usize,
    /// Whether to visit samples in a new random order every epoch.
    pub shuffle: bool,
    /// Seed of the shuffle and of the augmentations.
    pub seed: u64,
    /// Threads building batches ahead of use (0: build them on the calling thread).
    pub num_workers: usize,
    /// Batches each worker may have ready and waiting.
    pub prefetch: usize,
    /// Whether to leave out a last, smaller batch.
    pub drop_last: bool,
    /// Random transformations of the images.
    pub augment: AugmentConfig,
    /// Image normalisation after the transformations.
    pub normalization: Normalization,
}

impl Default for LoaderConfig {
    fn default() -> Self {
        LoaderConfig {
            batch_size: 32,
            shuffle: false,
            seed: 0,
            num_workers: 2,
            prefetch: 2,
            drop_last: false,
            augment: AugmentConfig::default(),
            normalization: Normalization::default(),
        }
    }
}

/// One batch in host memory, before it becomes tensors.
#[derive(Debug, Clone, PartialEq)]
pub struct HostBatch {
    /// Positions of the samples in the split (for ids and per-sample outputs).
    pub indices: Vec<usize>,
    /// Images, `[len, channels, height, width]` flattened, normalised.
    pub images: Option<Vec<f32>>,
    /// The shape of one image.
    pub image_shape: Option<ImageShape>,
    /// Features, `[len, features]` flattened, standardised.
    pub tabular: Option<Vec<f32>>,
    /// Features per sample.
    pub features: usize,
    /// Class indices.
    pub labels: Vec<u32>,
}

impl HostBatch {
    /// Samples in the batch.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// What workers share for one epoch.
struct Plan {
    split: DataSplit,
    config: LoaderConfig,
    norm: ChannelNorm,
    order: Vec<usize>,
    epoch: u64,
    stop: AtomicBool,
}

impl Plan {
    fn num_batches(&self) -> usize {
        let (n, b) = (self.order.len(), self.config.batch_size);
        if self.config.drop_last {
            n / b
        } else {
            n.div_ceil(b)
        }
    }

    fn build(&self, batch: usize, scratch: &mut Scratch) -> Result<HostBatch, DataError> {
        let b = self.config.batch_size;
        let end = ((batch + 1) * b).min(self.order.len());
        let indices = self.order[batch * b..end].to_vec();
        fill(
            &self.split,
            &indices,
            &self.config,
            &self.norm,
            self.epoch,
            scratch,
        )
    }
}

/// Builds the batch of `indices` (positions in `split`).
fn fill(
    split: &DataSplit,
    indices: &[usize],
    config: &LoaderConfig,
    norm: &ChannelNorm,
    epoch: u64,
    scratch: &mut Scratch,
) -> Result<HostBatch, DataError> {
    let data = split.data();
    let shape = data.info.image;
    let images = match (&data.images, shape) {
        (Some(source), Some(shape)) => {
            let len = image_len(shape);
            let mut out = vec![0.0f32; indices.len() * len];
            let identity = config.augment.is_identity();
            for (slot, &i) in out.chunks_exact_mut(len).zip(indices) {
                let aug = if identity {
                    SampleAugment::IDENTITY
                } else {
                    config
                        .augment
                        .draw(&mut SplitMix64::derive(config.seed, &[epoch, i as u64]))
                };
                match source {
                    ImageSource::Pixels(p) => {
                        write_planar(&p[i * len..(i + 1) * len], shape, &aug, norm, slot);
                    }
                    ImageSource::Files { paths, max_pixels } => {
                        let view = decode_file(&paths[i], shape, *max_pixels, scratch)?;
                        write_sample(&view, shape, &aug, norm, slot);
                    }
                }
            }
            Some(out)
        }
        _ => None,
    };
    let features = data.info.tabular_features();
    let tabular = data.tabular.as_ref().map(|t| {
        let mut out = Vec::with_capacity(indices.len() * features);
        for &i in indices {
            out.extend_from_slice(&t[i * features..(i + 1) * features]);
        }
        out
    });
    Ok(HostBatch {
        indices: indices.to_vec(),
        images,
        image_shape: shape.filter(|_| data.images.is_some()),
        tabular,
        features,
        labels: indices.iter().map(|&i| data.labels[i]).collect(),
    })
}

/// Draws batches from one split; see the module docs for the guarantees.
#[derive(Debug, Clone)]
pub struct BatchLoader {
    split: DataSplit,
    config: LoaderConfig,
    norm: ChannelNorm,
}

impl BatchLoader {
    /// A loader over `split`, checking the config against the split.
    pub fn new(split: DataSplit, config: LoaderConfig) -> Result<BatchLoader, DataError> {
        if config.batch_size == 0 {
            return Err(DataError::config("batch_size", "must be at least 1"));
        }
        if config.prefetch == 0 {
            return Err(DataError::config("prefetch", "must be at least 1"));
        }
        config.augment.validate()?;
        let shape = split.info().image.unwrap_or(ImageShape {
            channels: 1,
            depth: 1,
            height: 1,
            width: 1,
        });
        let norm = ChannelNorm::for_shape(&config.normalization, shape)?;
        Ok(BatchLoader {
            split,
            config,
            norm,
        })
    }

    /// The split this loader reads.
    pub fn split(&self) -> &DataSplit {
        &self.split
    }

    /// The loader's config.
    pub fn config(&self) -> &LoaderConfig {
        &self.config
    }

    /// Batches per epoch.
    pub fn num_batches(&self) -> usize {
        let (n, b) = (self.split.len(), self.config.batch_size);
        if self.config.drop_last {
            n / b
        } else {
            n.div_ceil(b)
        }
    }

    /// The order in which epoch `epoch` visits the samples (positions in the split).
    pub fn order(&self, epoch: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.split.len()).collect();
        if self.config.shuffle {
            SplitMix64::derive(self.config.seed, &[0x5_4FF1E, epoch]).shuffle(&mut order);
        }
        order
    }

    /// The batches of epoch `epoch`, in host memory.
    pub fn epoch(&self, epoch: u64) -> EpochBatches {
        let plan = Arc::new(Plan {
            split: self.split.clone(),
            config: self.config.clone(),
            norm: self.norm.clone(),
            order: self.order(epoch),
            epoch,
            stop: AtomicBool::new(false),
        });
        let total = plan.num_batches();
        let workers = self.config.num_workers.min(total);
        let mut queues = Vec::with_capacity(workers);
        let mut handles = Vec::with_capacity(workers);
        for w in 0..workers {
            let (tx, rx) = sync_channel(self.config.prefetch);
            let shared = Arc::clone(&plan);
            let spawned = std::thread::Builder::new()
                .name(format!("medfusion-data-{w}"))
                .spawn(move || work(&shared, w, workers, &tx));
            if let Ok(handle) = spawned {
                queues.push(rx);
                handles.push(handle);
            } else {
                // No thread to be had: stop the ones started and build batches inline.
                plan.stop.store(true, Ordering::Relaxed);
                queues.clear();
                for handle in handles.drain(..) {
                    let _ = handle.join();
                }
                plan.stop.store(false, Ordering::Relaxed);
                tracing::warn!("cannot start data loader threads; loading on the caller's thread");
                break;
            }
        }
        EpochBatches {
            plan,
            next: 0,
            total,
            queues,
            handles,
            scratch: Scratch::default(),
            failed: false,
        }
    }
}

fn work(plan: &Plan, worker: usize, workers: usize, tx: &SyncSender<Result<HostBatch, DataError>>) {
    let mut scratch = Scratch::default();
    let mut batch = worker;
    while batch < plan.num_batches() && !plan.stop.load(Ordering::Relaxed) {
        let result = plan.build(batch, &mut scratch);
        let failed = result.is_err();
        if tx.send(result).is_err() || failed {
            return;
        }
        batch += workers;
    }
}

/// The batches of one epoch, in order; dropping it stops the workers.
pub struct EpochBatches {
    plan: Arc<Plan>,
    next: usize,
    total: usize,
    queues: Vec<Receiver<Result<HostBatch, DataError>>>,
    handles: Vec<JoinHandle<()>>,
    scratch: Scratch,
    failed: bool,
}

impl EpochBatches {
    /// Batches still to come.
    pub fn remaining(&self) -> usize {
        if self.failed {
            0
        } else {
            self.total - self.next
        }
    }
}

impl Iterator for EpochBatches {
    type Item = Result<HostBatch, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.next >= self.total {
            return None;
        }
        let b = self.next;
        self.next += 1;
        let result = if self.queues.is_empty() {
            self.plan.build(b, &mut self.scratch)
        } else {
            let w = b % self.queues.len();
            self.queues[w]
                .recv()
                .unwrap_or(Err(DataError::WorkerFailed { worker: w }))
        };
        self.failed = result.is_err();
        Some(result)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining(), Some(self.remaining()))
    }
}

impl Drop for EpochBatches {
    fn drop(&mut self) {
        self.plan.stop.store(true, Ordering::Relaxed);
        // Dropping the receivers wakes workers blocked on a full queue.
        self.queues.clear();
        for handle in self.handles.drain(..) {
            let _ = handle.join();
        }
    }
}

impl std::fmt::Debug for EpochBatches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EpochBatches")
            .field("epoch", &self.plan.epoch)
            .field("next", &self.next)
            .field("total", &self.total)
            .field("workers", &self.handles.len())
            .finish_non_exhaustive()
    }
}
