//! What a dataset's samples look like: the image shape and the parts each sample has.

use serde::{Deserialize, Serialize};

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
