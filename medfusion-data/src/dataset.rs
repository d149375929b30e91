//! Loaded datasets: their metadata and their splits, cheap to share between nodes.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::DataError;
use crate::{DatasetInfo, ImageShape};

/// What a dataset holds per sample besides its label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DatasetKind {
    /// An image per sample.
    Image,
    /// A row of numeric features per sample.
    Tabular,
    /// An image and a row of features per sample.
    Multimodal,
}

impl DatasetKind {
    /// The workflow port type that carries this kind (`dataset.image`, ...).
    pub fn port_type(self) -> &'static str {
        match self {
            DatasetKind::Image => "dataset.image",
            DatasetKind::Tabular => "dataset.tabular",
            DatasetKind::Multimodal => "dataset.multimodal",
        }
    }

    /// Whether samples carry an image.
    pub fn has_images(self) -> bool {
        matches!(self, DatasetKind::Image | DatasetKind::Multimodal)
    }

    /// Whether samples carry a row of features.
    pub fn has_tabular(self) -> bool {
        matches!(self, DatasetKind::Tabular | DatasetKind::Multimodal)
    }
}

/// One of the three splits every dataset node produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SplitName {
    /// Training data.
    Train,
    /// Validation data (early stopping, model selection).
    Val,
    /// Held-out test data.
    Test,
}

impl SplitName {
    /// All splits in order.
    pub const ALL: [SplitName; 3] = [SplitName::Train, SplitName::Val, SplitName::Test];

    /// The name used in folders, ports and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            SplitName::Train => "train",
            SplitName::Val => "val",
            SplitName::Test => "test",
        }
    }
}

impl fmt::Display for SplitName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Values per image or volume (`channels * depth * height * width`).
pub(crate) fn image_len(shape: ImageShape) -> usize {
    shape.len()
}

/// How the raw table columns became the standardised features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureInfo {
    /// The feature's name (`column` or `column=value` for one-hot columns).
    pub name: String,
    /// Mean subtracted, fitted on the training split.
    pub mean: f32,
    /// Standard deviation divided by, fitted on the training split (1 when constant).
    pub std: f32,
}

/// Sample counts per split.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitSizes {
    /// Training samples.
    pub train: usize,
    /// Validation samples.
    pub val: usize,
    /// Test samples.
    pub test: usize,
}

/// Everything known about a loaded dataset: what a trainer needs before it sees a batch,
/// and where the data came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetMeta {
    /// Where it came from (`synthetic`, a folder, a file).
    pub source: String,
    /// Images, table rows or both.
    pub kind: DatasetKind,
    /// Class names; labels are indices into this list.
    pub classes: Vec<String>,
    /// Image shape (channels first), when samples carry images.
    pub image: Option<ImageShape>,
    /// Tabular features (after one-hot encoding), empty without a table.
    pub features: Vec<FeatureInfo>,
    /// Samples per split.
    pub split_sizes: SplitSizes,
}

impl DatasetMeta {
    /// What a model is built for (classes, image shape, feature count).
    pub fn model_info(&self) -> DatasetInfo {
        DatasetInfo {
            classes: self.classes.len(),
            class_names: self.classes.clone(),
            image: self.image,
            tabular_features: self.kind.has_tabular().then_some(self.features.len()),
        }
    }

    /// The number of classes.
    pub fn num_classes(&self) -> usize {
        self.classes.len()
    }

    /// The number of tabular features per sample (0 without a table).
    pub fn tabular_features(&self) -> usize {
        self.features.len()
    }
}

/// What to do with an image file that cannot be decoded.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum BadImagePolicy {
    /// Stop with an error naming the file.
    #[default]
    Fail,
    /// Check every file while loading, leave out the bad ones with a warning each.
    Skip,
}

/// Where a split's images come from.
#[derive(Debug)]
pub(crate) enum ImageSource {
    /// Decoded pixels, planar (CHW) `u8`, one block of `shape.len()` per sample.
    Pixels(Vec<u8>),
    /// Image files, decoded (and resized) each time a batch needs them.
    Files {
        /// One file per sample.
        paths: Vec<PathBuf>,
        /// The largest image to decode, in pixels (the dataset's `max_image_pixels`).
        max_pixels: u64,
    },
}

/// The samples of one split.
#[derive(Debug)]
pub(crate) struct SplitData {
    pub(crate) name: SplitName,
    pub(crate) info: Arc<DatasetMeta>,
    pub(crate) labels: Vec<u32>,
    pub(crate) ids: Vec<String>,
    pub(crate) images: Option<ImageSource>,
    /// Standardised features, row-major, `labels.len() * info.tabular_features()`.
    pub(crate) tabular: Option<Vec<f32>>,
}

/// One split of a dataset: what flows from a dataset node to training and evaluation.
///
/// Cloning is cheap (an [`Arc`]); the samples are shared, never copied.
#[derive(Debug, Clone)]
pub struct DataSplit {
    inner: Arc<SplitData>,
}

impl DataSplit {
    /// Wraps split data after checking that its parts agree in length.
    pub(crate) fn new(data: SplitData) -> Result<DataSplit, DataError> {
        let n = data.labels.len();
        let what = || format!("split `{}` of `{}`", data.name, data.info.source);
        if data.ids.len() != n {
            return Err(DataError::input(what(), "ids and labels differ in length"));
        }
        if let Some(&bad) = data
            .labels
            .iter()
            .find(|&&l| l as usize >= data.info.classes.len())
        {
            return Err(DataError::input(
                what(),
                format!(
                    "label {bad} is not below the {} classes",
                    data.info.classes.len()
                ),
            ));
        }
        match (&data.images, data.info.image) {
            (Some(ImageSource::Pixels(p)), Some(shape)) if p.len() != n * image_len(shape) => {
                return Err(DataError::input(
                    what(),
                    "pixel buffer does not match the samples",
                ));
            }
            (Some(ImageSource::Files { paths, .. }), _) if paths.len() != n => {
                return Err(DataError::input(
                    what(),
                    "image paths and labels differ in length",
                ));
            }
            (Some(_), None) | (None, Some(_)) => {
                return Err(DataError::input(what(), "images and image shape disagree"));
            }
            _ => {}
        }
        if let Some(t) = &data.tabular
            && t.len() != n * data.info.tabular_features()
        {
            return Err(DataError::input(
                what(),
                "feature rows do not match the samples",
            ));
        }
        Ok(DataSplit {
            inner: Arc::new(data),
        })
    }

    /// Which split this is.
    pub fn name(&self) -> SplitName {
        self.inner.name
    }

    /// The dataset's metadata (shared by its three splits).
    pub fn info(&self) -> &DatasetMeta {
        &self.inner.info
    }

    /// The dataset's metadata as a shared handle.
    pub fn info_arc(&self) -> Arc<DatasetMeta> {
        Arc::clone(&self.inner.info)
    }

    /// The number of samples.
    pub fn len(&self) -> usize {
        self.inner.labels.len()
    }

    /// Whether the split has no samples.
    pub fn is_empty(&self) -> bool {
        self.inner.labels.is_empty()
    }

    /// Class index of every sample.
    pub fn labels(&self) -> &[u32] {
        &self.inner.labels
    }

    /// A stable id per sample (file stem, id column, or `<split>-<index>`).
    pub fn ids(&self) -> &[String] {
        &self.inner.ids
    }

    /// Samples per class.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.info().num_classes()];
        for &l in self.labels() {
            counts[l as usize] += 1;
        }
        counts
    }

    /// The standardised features of sample `index`, when the split has a table.
    pub fn features(&self, index: usize) -> Option<&[f32]> {
        let f = self.info().tabular_features();
        self.inner
            .tabular
            .as_deref()
            .and_then(|t| t.get(index * f..(index + 1) * f))
    }

    /// The path of sample `index`'s image, for datasets read from files.
    pub fn image_path(&self, index: usize) -> Option<&std::path::Path> {
        match &self.inner.images {
            Some(ImageSource::Files { paths, .. }) => paths.get(index).map(PathBuf::as_path),
            _ => None,
        }
    }

    /// An error when the split has no samples ([`DataError::EmptySplit`], saying how many
    /// samples the other splits hold), for a consumer that needs samples.
    pub fn require_samples(&self) -> Result<(), DataError> {
        if !self.is_empty() {
            return Ok(());
        }
        let sizes = self.info().split_sizes;
        Err(DataError::EmptySplit {
            dataset: self.info().source.clone(),
            split: self.name().as_str().to_owned(),
            reason: format!(
                "the dataset's {} samples are {} train, {} val and {} test; use a split that \
                 has samples, or give the dataset a {} split (a folder, a split column value or \
                 a fraction above 0)",
                sizes.train + sizes.val + sizes.test,
                sizes.train,
                sizes.val,
                sizes.test,
                self.name()
            ),
        })
    }

    pub(crate) fn data(&self) -> &SplitData {
        &self.inner
    }
}

/// The three splits a dataset node outputs, with their shared metadata.
#[derive(Debug, Clone)]
pub struct DatasetSplits {
    /// Training split.
    pub train: DataSplit,
    /// Validation split.
    pub val: DataSplit,
    /// Test split.
    pub test: DataSplit,
}

impl DatasetSplits {
    /// The metadata shared by the splits.
    pub fn info(&self) -> &DatasetMeta {
        self.train.info()
    }

    /// The split called `name`.
    pub fn split(&self, name: SplitName) -> &DataSplit {
        match name {
            SplitName::Train => &self.train,
            SplitName::Val => &self.val,
            SplitName::Test => &self.test,
        }
    }
}
