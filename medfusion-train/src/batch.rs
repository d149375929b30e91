//! The batch every loader produces and every model consumes, and the description of a dataset
//! that models are built from.

use burn::tensor::{Int, Tensor};
use serde::{Deserialize, Serialize};

/// One mini-batch of samples: the image part, the tabular part, or both, and the labels.
///
/// Images are `[batch, channels, height, width]` f32, already normalised; tabular features are
/// `[batch, features]` f32, already standardised (statistics fitted on the training split);
/// labels are class indices in `0..classes`. Image-only, tabular-only and fusion models all
/// take this type and use the parts they need (a model missing a part it needs returns an
/// error naming it).
#[derive(Debug, Clone)]
pub struct Batch {
    /// Images, `[batch, channels, height, width]`, or `None` for tabular-only data.
    pub images: Option<Tensor<4>>,
    /// Tabular features, `[batch, features]`, or `None` for image-only data.
    pub tabular: Option<Tensor<2>>,
    /// Class indices, `[batch]`.
    pub labels: Tensor<1, Int>,
}

impl Batch {
    /// The number of samples in the batch.
    pub fn len(&self) -> usize {
        self.labels.dims()[0]
    }

    /// Whether the batch holds no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The image part of a dataset: channels and spatial size of every (resized) image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageShape {
    /// Channels: 1 for grayscale, 3 for RGB.
    pub channels: usize,
    /// Height in pixels.
    pub height: usize,
    /// Width in pixels.
    pub width: usize,
}

impl std::fmt::Display for ImageShape {
    /// `channels x height x width`, as in `3x224x224`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}x{}", self.channels, self.height, self.width)
    }
}

/// What a model is built for: the classes and the parts each sample has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetInfo {
    /// Number of classes (at least 2).
    pub classes: usize,
    /// Class names in index order, when known (`classes` entries).
    #[serde(default)]
    pub class_names: Vec<String>,
    /// Shape of the images, or `None` when samples have no image.
    pub image: Option<ImageShape>,
    /// Number of tabular features after encoding (one-hot included), or `None` when samples
    /// have no table part.
    pub tabular_features: Option<usize>,
}
