//! Datasets and loaders for medfusion, without Burn or an async runtime: the data of the
//! `dataset.*` node types, augmentation, and the multi-worker batch loader the trainer
//! iterates. Pick this crate alone to read medical-imaging datasets into arrays.
//!
//! A dataset node loads (or generates) a [`DatasetSplits`]: three [`DataSplit`]s sharing
//! one [`DatasetMeta`], each cheap to clone and pass between nodes. A trainer wraps a split
//! in a [`BatchLoader`] and asks it for the batches of an epoch, as flat `f32` arrays in
//! host memory ([`HostBatch`]; medfusion-train turns them into tensors):
//!
//! ```
//! use medfusion_data::{BatchLoader, LoaderConfig, SyntheticConfig, generate_synthetic};
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
//! for batch in loader.epoch(0) {
//!     let batch = batch?;
//!     assert_eq!(batch.images.unwrap().len(), batch.labels.len() * 16 * 16);
//! }
//! # Ok::<(), medfusion_data::DataError>(())
//! ```
//!
//! ## Untrusted files
//!
//! Loading never panics and never allocates what a file merely claims:
//!
//! - Folders: symbolic links to folders are not followed unless `follow_symlinks` is set
//!   (then once each, loops skipped); one file reached by two paths (links, hard links) is a
//!   [`DataError::DuplicateFile`] naming both, so no image counts twice or in two splits.
//! - Images: each file's header is checked against `max_image_pixels` (default
//!   [`DEFAULT_MAX_IMAGE_PIXELS`]) before it is decoded ([`DataError::ImageTooLarge`]), and
//!   the decoders' own allocations are limited.
//! - `.npz`: every array's header and shape must fit the bytes the archive holds, and labels
//!   must be class indices `0..K-1`.
//! - Classes: at most [`MAX_CLASSES`] (class folders, distinct CSV labels, `.npz` labels).
//! - Splits: a validation or test split that a fraction above 0 leaves empty (too few
//!   samples) is a [`DataError::EmptySplit`] saying how many samples and which fraction.

#![warn(missing_docs)]

mod augment;
mod dataset;
mod decode;
pub mod dicom;
mod error;
mod export;
mod image_folder;
mod loader;
mod multimodal;
pub mod nifti;
mod npz;
mod pixels;
mod rng;
mod sample;
mod shape;
mod source;
mod split;
mod synthetic;
mod synthetic_render;
mod table;
mod tabular;
mod walk;

pub use augment::{AugmentConfig, Normalization};
pub use dataset::{
    BadImagePolicy, DataSplit, DatasetKind, DatasetMeta, DatasetSplits, FeatureInfo, SplitName,
    SplitSizes,
};
pub use dicom::{DicomConfig, load_dicom};
pub use error::DataError;
pub use export::{ExportReport, ExportedOutput, export_example_data};
pub use image_folder::{
    DEFAULT_MAX_IMAGE_PIXELS, ImageFolderConfig, MAX_CLASSES, load_image_folder,
};
pub use loader::{BatchLoader, EpochBatches, HostBatch, LoaderConfig};
pub use multimodal::{MultimodalConfig, UnmatchedPolicy, load_multimodal};
pub use nifti::{NiftiConfig, load_nifti};
pub use npz::{NpzConfig, load_npz};
pub use sample::{Sample, SampleReader};
pub use shape::{DatasetInfo, ImageShape};
pub use source::{DATASET_NODE_TYPES, DatasetConfig};
pub use synthetic::{SyntheticConfig, SyntheticModality, generate_synthetic};
pub use table::{CsvConfig, load_csv};

#[cfg(test)]
mod tests;
