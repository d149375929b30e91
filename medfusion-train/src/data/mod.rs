//! Datasets and loaders: the data of the `dataset.*` node types, augmentation, and the
//! multi-worker batch loader the trainer iterates.

mod augment;
mod burn_compat;
mod dataset;
mod decode;
mod error;
mod image_folder;
mod loader;
mod multimodal;
mod npz;
mod pixels;
mod rng;
mod split;
mod synthetic;
mod synthetic_render;
mod table;
mod tabular;

pub use augment::{AugmentConfig, Normalization};
pub use burn_compat::{BurnSampleDataset, Sample, SampleBatcher};
pub use dataset::{
    BadImagePolicy, DataSplit, DatasetKind, DatasetMeta, DatasetSplits, FeatureInfo, SplitName,
    SplitSizes,
};
pub use error::DataError;
pub use image_folder::{ImageFolderConfig, load_image_folder};
pub use loader::{BatchLoader, EpochBatches, HostBatch, LoaderConfig};
pub use multimodal::{MultimodalConfig, UnmatchedPolicy, load_multimodal};
pub use npz::{NpzConfig, load_npz};
pub use synthetic::{SyntheticConfig, SyntheticModality, generate_synthetic};
pub use table::{CsvConfig, load_csv};

#[cfg(test)]
mod tests;
