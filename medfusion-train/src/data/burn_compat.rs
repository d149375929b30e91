//! Our splits through Burn's own data pipeline: a `Dataset` of decoded samples and a
//! `Batcher` that stacks them, for code built around `burn::data::dataloader`.
//!
//! The trainer uses [`BatchLoader`](crate::data::BatchLoader) instead (see its module docs
//! for why); this adapter exists for interoperability and for the `data_load` benchmark,
//! which measures both.

use std::cell::RefCell;

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::{Dataset, DatasetError};
use burn::tensor::Device;

use crate::Batch;
use crate::data::augment::{Normalization, SampleAugment};
use crate::data::dataset::{DataSplit, ImageSource, image_len};
use crate::data::decode::{Scratch, decode_file};
use crate::data::error::DataError;
use crate::data::loader::HostBatch;
use crate::data::pixels::{ChannelNorm, PixelView, write_sample};

/// One decoded, normalised sample (Burn's dataset item).
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Position in the split.
    pub index: usize,
    /// The image, `[channels, height, width]` flattened.
    pub image: Option<Vec<f32>>,
    /// The standardised features.
    pub features: Option<Vec<f32>>,
    /// The class index.
    pub label: u32,
}

/// A split as a Burn [`Dataset`]: `get` decodes and normalises one sample (no augmentation).
#[derive(Debug, Clone)]
pub struct BurnSampleDataset {
    split: DataSplit,
    norm: ChannelNorm,
}

impl BurnSampleDataset {
    /// Wraps `split`, normalising images with `normalization`.
    pub fn new(split: DataSplit, normalization: &Normalization) -> Result<Self, DataError> {
        let channels = split.info().image.map_or(1, |s| s.channels);
        let stats = (0..channels)
            .map(|c| normalization.channel(c, channels))
            .collect::<Result<_, _>>()?;
        Ok(BurnSampleDataset {
            split,
            norm: ChannelNorm { stats },
        })
    }

    fn sample(&self, index: usize, scratch: &mut Scratch) -> Result<Sample, DataError> {
        let data = self.split.data();
        if index >= data.labels.len() {
            return Err(DataError::input(
                "index",
                format!("{index} is past the {} samples", data.labels.len()),
            ));
        }
        let image = match (&data.images, data.info.image) {
            (Some(source), Some(shape)) => {
                let len = image_len(shape);
                let view = match source {
                    ImageSource::Pixels(p) => PixelView::planar(
                        &p[index * len..(index + 1) * len],
                        shape.width,
                        shape.height,
                    ),
                    ImageSource::Files { paths, max_pixels } => {
                        decode_file(&paths[index], shape, *max_pixels, scratch)?
                    }
                };
                let mut out = vec![0.0; len];
                write_sample(&view, shape, &SampleAugment::IDENTITY, &self.norm, &mut out);
                Some(out)
            }
            _ => None,
        };
        Ok(Sample {
            index,
            image,
            features: self.split.features(index).map(<[f32]>::to_vec),
            label: data.labels[index],
        })
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

impl Dataset<Sample> for BurnSampleDataset {
    fn get(&self, index: usize) -> Result<Sample, DatasetError> {
        SCRATCH
            .with(|s| self.sample(index, &mut s.borrow_mut()))
            .map_err(DatasetError::new)
    }

    fn len(&self) -> usize {
        self.split.len()
    }
}

/// Stacks [`Sample`]s into a [`Batch`] (Burn's `Batcher`).
#[derive(Debug, Clone)]
pub struct SampleBatcher {
    image_shape: Option<crate::ImageShape>,
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
        HostBatch {
            indices: items.iter().map(|s| s.index).collect(),
            image_shape: self.image_shape.filter(|_| images.is_some()),
            images,
            features: self.features,
            tabular,
            labels: items.iter().map(|s| s.label).collect(),
        }
        .to_batch(device)
    }
}
