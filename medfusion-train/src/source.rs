//! Where the loop gets its batches: the data module's [`BatchLoader`], or batches in memory.

use burn::tensor::Device;

use crate::batch::Batch;
use crate::data::BatchLoader;
use crate::error::{Error, Result};

/// A source of batches, one deterministic sequence per epoch.
pub trait BatchSource {
    /// Batches per epoch.
    fn num_batches(&self) -> usize;

    /// The batches of `epoch` as tensors on `device`; the same epoch gives the same batches
    /// (resuming relies on it).
    fn batches<'a>(
        &'a self,
        epoch: usize,
        device: &Device,
    ) -> Box<dyn Iterator<Item = Result<Batch>> + 'a>;
}

impl BatchSource for BatchLoader {
    fn num_batches(&self) -> usize {
        BatchLoader::num_batches(self)
    }

    fn batches<'a>(
        &'a self,
        epoch: usize,
        device: &Device,
    ) -> Box<dyn Iterator<Item = Result<Batch>> + 'a> {
        let device = device.clone();
        Box::new(
            self.epoch(epoch as u64)
                .map(move |b| b.map(|b| Batch::from_host(b, &device)).map_err(Error::from)),
        )
    }
}

/// Batches held in memory, replayed in the same order every epoch (tests, benchmarks, small
/// data).
#[derive(Debug, Clone, Default)]
pub struct InMemorySource {
    batches: Vec<Batch>,
}

impl InMemorySource {
    /// A source replaying `batches`.
    pub fn new(batches: Vec<Batch>) -> InMemorySource {
        InMemorySource { batches }
    }
}

impl BatchSource for InMemorySource {
    fn num_batches(&self) -> usize {
        self.batches.len()
    }

    fn batches<'a>(
        &'a self,
        _epoch: usize,
        device: &Device,
    ) -> Box<dyn Iterator<Item = Result<Batch>> + 'a> {
        let device = device.clone();
        Box::new(self.batches.iter().map(move |b| {
            Ok(Batch {
                images: b.images.clone().map(|t| t.to_device(&device)),
                volumes: b.volumes.clone().map(|t| t.to_device(&device)),
                tabular: b.tabular.clone().map(|t| t.to_device(&device)),
                labels: b.labels.clone().to_device(&device),
            })
        }))
    }
}
