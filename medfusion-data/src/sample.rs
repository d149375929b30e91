//! Single samples of a split, decoded and normalised: what another data pipeline (Burn's
//! `Dataset`, for one) needs to serve items one at a time.

use std::cell::RefCell;

use crate::augment::{Normalization, SampleAugment};
use crate::dataset::{DataSplit, ImageSource, image_len};
use crate::decode::{Scratch, decode_file};
use crate::error::DataError;
use crate::pixels::{ChannelNorm, write_planar, write_sample};

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

/// Reads single samples of a split: decoded and normalised, without augmentation (the
/// per-sample access that other data pipelines, such as Burn's `Dataset`, are built on).
#[derive(Debug, Clone)]
pub struct SampleReader {
    split: DataSplit,
    norm: ChannelNorm,
}

impl SampleReader {
    /// Wraps `split`, normalising images with `normalization`.
    pub fn new(split: DataSplit, normalization: &Normalization) -> Result<Self, DataError> {
        let shape = split.info().image.unwrap_or(crate::ImageShape {
            channels: 1,
            depth: 1,
            height: 1,
            width: 1,
        });
        let norm = ChannelNorm::for_shape(normalization, shape)?;
        Ok(SampleReader { split, norm })
    }

    fn read(&self, index: usize, scratch: &mut Scratch) -> Result<Sample, DataError> {
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
                let mut out = vec![0.0; len];
                match source {
                    ImageSource::Pixels(p) => write_planar(
                        &p[index * len..(index + 1) * len],
                        shape,
                        &SampleAugment::IDENTITY,
                        &self.norm,
                        &mut out,
                    ),
                    ImageSource::Files { paths, max_pixels } => {
                        let view = decode_file(&paths[index], shape, *max_pixels, scratch)?;
                        write_sample(&view, shape, &SampleAugment::IDENTITY, &self.norm, &mut out);
                    }
                }
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

impl SampleReader {
    /// Sample `index` of the split (a thread-local buffer is reused for decoding).
    pub fn get(&self, index: usize) -> Result<Sample, DataError> {
        SCRATCH.with(|s| self.read(index, &mut s.borrow_mut()))
    }

    /// Samples in the split.
    pub fn len(&self) -> usize {
        self.split.len()
    }

    /// Whether the split is empty.
    pub fn is_empty(&self) -> bool {
        self.split.is_empty()
    }

    /// The split read.
    pub fn split(&self) -> &DataSplit {
        &self.split
    }
}
