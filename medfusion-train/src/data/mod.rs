//! Datasets and loaders: the data of the `dataset.*` node types, augmentation, and the
//! multi-worker batch loader the trainer iterates.
//!
//! A dataset node loads (or generates) a [`DatasetSplits`]: three [`DataSplit`]s sharing
//! one [`DatasetMeta`], each cheap to clone and pass between nodes. A trainer wraps a split
//! in a [`BatchLoader`] and asks it for the batches of an epoch:
//!
//! ```
//! use medfusion_train::data::{BatchLoader, LoaderConfig, SyntheticConfig, generate_synthetic};
//!
//! let data = generate_synthetic(&SyntheticConfig {
//!     samples: 60,
//!     image_size: 16,
//!     ..SyntheticConfig::default()
//! })?;
//! assert_eq!(data.info().classes, ["benign", "disease_1"]);
//! let loader = BatchLoader::new(
//!     data.train.clone(),
//!     LoaderConfig { batch_size: 8, shuffle: true, seed: 1, ..LoaderConfig::default() },
//! )?;
//! let device = burn::tensor::Device::default();
//! for batch in loader.epoch_on(0, &device) {
//!     let batch = batch?;
//!     assert_eq!(batch.images.unwrap().dims()[1..], [1, 16, 16]);
//! }
//! # Ok::<(), medfusion_train::data::DataError>(())
//! ```

mod augment;
mod burn_compat;
mod dataset;
mod decode;
mod error;
mod export;
mod image_folder;
mod loader;
mod multimodal;
mod npz;
mod pixels;
mod rng;
mod source;
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
pub use export::{ExportReport, ExportedOutput, export_example_data};
pub use image_folder::{ImageFolderConfig, load_image_folder};
pub use loader::{BatchLoader, EpochBatches, HostBatch, LoaderConfig};
pub use multimodal::{MultimodalConfig, UnmatchedPolicy, load_multimodal};
pub use npz::{NpzConfig, load_npz};
pub use source::{DATASET_NODE_TYPES, DatasetConfig};
pub use synthetic::{SyntheticConfig, SyntheticModality, generate_synthetic};
pub use table::{CsvConfig, load_csv};

#[cfg(test)]
mod tests;
