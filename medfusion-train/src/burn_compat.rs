//! Our splits through Burn's own data pipeline: a `Dataset` of decoded samples and a
//! `Batcher` that stacks them, for code built around `burn::data::dataloader`.
//!
//! The trainer uses [`BatchLoader`](crate::data::BatchLoader) instead (see its module docs
//! for why); this adapter exists for interoperability and for the `data_load` benchmark,
//! which measures both.

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::{Dataset, DatasetError};
use burn::tensor::Device;

use crate::Batch;
use crate::data::{DataError, DataSplit, HostBatch, Normalization, Sample, SampleReader};

/// A split as a Burn [`Dataset`]: `get` decodes and normalises one sample (no augmentation).
#[derive(Debug, Clone)]
pub struct BurnSampleDataset {
    reader: SampleReader,
}

impl BurnSampleDataset {
    /// Wraps `split`, normalising images with `normalization`.
    pub fn new(split: DataSplit, normalization: &Normalization) -> Result<Self, DataError> {
        Ok(BurnSampleDataset {
            reader: SampleReader::new(split, normalization)?,
        })
    }
}

impl Dataset<Sample> for BurnSampleDataset {
    fn get(&self, index: usize) -> Result<Sample, DatasetError> {
        self.reader.get(index).map_err(DatasetError::new)
    }

    fn len(&self) -> usize {
        self.reader.len()
    }
}

/// Stacks [`Sample`]s into a [`Batch`] (Burn's `Batcher`).
#[derive(Debug, Clone)]
pub struct SampleBatcher {
    image_shape: Option<crate::data::ImageShape>,
    features: usize,
}

impl SampleBatcher {
    /// A batcher for samples of `split`.
    pub fn new(split: &DataSplit) -> SampleBatcher {
        SampleBatcher {
            image_shape: split
                .info()
                .image
                .filter(|_| split.info().kind.has_images()),
            features: split.info().tabular_features(),
        }
    }
}

impl Batcher<Sample, Batch> for SampleBatcher {
    fn batch(&self, items: Vec<Sample>, device: &Device) -> Batch {
        let concat = |part: fn(&Sample) -> Option<&Vec<f32>>| -> Option<Vec<f32>> {
            let mut out = Vec::new();
            for item in &items {
                out.extend_from_slice(part(item)?);
            }
            Some(out)
        };
        let images = concat(|s| s.image.as_ref());
        let tabular = concat(|s| s.features.as_ref());
        let host = HostBatch {
            indices: items.iter().map(|s| s.index).collect(),
            image_shape: self.image_shape.filter(|_| images.is_some()),
            images,
            features: self.features,
            tabular,
            labels: items.iter().map(|s| s.label).collect(),
        };
        Batch::from_host(host, device)
    }
}
