//! What a dataset's samples look like: the image shape and the parts each sample has.

use serde::{Deserialize, Serialize};

/// The image part of a dataset: channels and spatial size of every (resized) image or
/// volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageShape {
    /// Channels: 1 for grayscale, 3 for RGB.
    pub channels: usize,
    /// Slices: 1 for 2D images, more for volumes (`channels x depth x height x width`).
    #[serde(default = "one")]
    pub depth: usize,
    /// Height in pixels.
    pub height: usize,
    /// Width in pixels.
    pub width: usize,
}

fn one() -> usize {
    1
}

impl ImageShape {
    /// Whether samples are volumes (`depth > 1`).
    pub fn is_volume(&self) -> bool {
        self.depth > 1
    }

    /// Values per sample: `channels * depth * height * width`.
    pub fn len(&self) -> usize {
        self.channels * self.depth * self.height * self.width
    }

    /// Whether a sample holds no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl std::fmt::Display for ImageShape {
    /// `channels x height x width`, as in `3x224x224`, or `channels x depth x height x width`
    /// for volumes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_volume() {
            write!(
                f,
                "{}x{}x{}x{}",
                self.channels, self.depth, self.height, self.width
            )
        } else {
            write!(f, "{}x{}x{}", self.channels, self.height, self.width)
        }
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
