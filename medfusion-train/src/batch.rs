//! The batch every loader produces and every model consumes.

use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::data::HostBatch;

/// One mini-batch of samples: the image part, the tabular part, or both, and the labels.
///
/// Images are `[batch, channels, height, width]` f32, already normalised; tabular features are
/// `[batch, features]` f32, already standardised (statistics fitted on the training split);
/// labels are class indices in `0..classes`. Image-only, tabular-only and fusion models all
/// take this type and use the parts they need (a model missing a part it needs returns an
/// error naming it).
#[derive(Debug, Clone)]
pub struct Batch {
    /// Images, `[batch, channels, height, width]`, or `None` for tabular-only data and
    /// volumes.
    pub images: Option<Tensor<4>>,
    /// Volumes, `[batch, channels, depth, height, width]`, for datasets of volumes.
    pub volumes: Option<Tensor<5>>,
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

    /// Moves a loader's host batch onto `device` as tensors.
    pub fn from_host(host: HostBatch, device: &Device) -> Batch {
        let n = host.len();
        let (mut images, mut volumes) = (None, None);
        if let (Some(v), Some(s)) = (host.images, host.image_shape) {
            if s.is_volume() {
                volumes = Some(Tensor::<5>::from_data(
                    TensorData::new(v, [n, s.channels, s.depth, s.height, s.width]),
                    device,
                ));
            } else {
                images = Some(Tensor::<4>::from_data(
                    TensorData::new(v, [n, s.channels, s.height, s.width]),
                    device,
                ));
            }
        }
        let tabular = host
            .tabular
            .map(|v| Tensor::<2>::from_data(TensorData::new(v, [n, host.features]), device));
        let labels: Vec<i64> = host.labels.iter().map(|&l| i64::from(l)).collect();
        Batch {
            images,
            volumes,
            tabular,
            labels: Tensor::<1, Int>::from_data(TensorData::new(labels, [n]), device),
        }
    }
}
