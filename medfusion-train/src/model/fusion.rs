//! Fusion models: an image backbone and a tabular encoder joined by a fusion head.

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::activation::{relu, sigmoid};
use burn::tensor::{Device, Tensor};

use super::Images;
use super::cnn::Cnn;
use super::layers::linear;
use super::mlp::Mlp;
use super::resnet::ResNet;
use super::swin::Swin;
use super::vit::Vit;
use super::volume::{Cnn3d, ResNet3d};

/// The image part of a fusion model (classifier left out).
#[derive(Module, Debug)]
pub enum ImageBackbone {
    /// The benchmark CNN.
    Cnn(Cnn),
    /// A ResNet.
    ResNet(ResNet),
    /// A vision transformer.
    Vit(Vit),
    /// A Swin Transformer.
    Swin(Swin),
    /// The 3D CNN (volumes).
    Cnn3d(Cnn3d),
    /// ResNet-18 in 3D (volumes).
    ResNet3d(ResNet3d),
}

impl ImageBackbone {
    /// Pooled features, or `None` when `x` is 2D for a 3D backbone or the other way round.
    pub(crate) fn features(&self, x: Images) -> Option<Tensor<2>> {
        Some(match (self, x) {
            (ImageBackbone::Cnn(m), Images::Planar(x)) => m.features(x),
            (ImageBackbone::ResNet(m), Images::Planar(x)) => m.features(x),
            (ImageBackbone::Vit(m), Images::Planar(x)) => m.features(x),
            (ImageBackbone::Swin(m), Images::Planar(x)) => m.features(x),
            (ImageBackbone::Cnn3d(m), Images::Volumes(x)) => m.features(x),
            (ImageBackbone::ResNet3d(m), Images::Volumes(x)) => m.features(x),
            _ => return None,
        })
    }

    /// Whether the backbone reads volumes.
    pub(crate) fn is_volume(&self) -> bool {
        matches!(self, ImageBackbone::Cnn3d(_) | ImageBackbone::ResNet3d(_))
    }

    /// Input channels.
    pub(crate) fn in_channels(&self) -> usize {
        match self {
            ImageBackbone::Cnn(b) => b.in_channels(),
            ImageBackbone::ResNet(b) => b.in_channels(),
            ImageBackbone::Vit(b) => b.in_channels(),
            ImageBackbone::Swin(b) => b.in_channels(),
            ImageBackbone::Cnn3d(b) => b.in_channels(),
            ImageBackbone::ResNet3d(b) => b.in_channels(),
        }
    }
}

/// Concatenation: `fc(relu(hidden([image; tabular])))`.
#[derive(Module, Debug)]
pub struct ConcatHead {
    hidden: Linear,
    fc: Linear,
}

/// Gated fusion: each modality projected to the fusion width, mixed per feature by a sigmoid
/// gate computed from both: `g * relu(P_i image) + (1 - g) * relu(P_t tabular)`.
#[derive(Module, Debug)]
pub struct GatedHead {
    image_proj: Linear,
    tabular_proj: Linear,
    gate: Linear,
    fc: Linear,
}

/// How the two feature vectors are combined.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)] // built once; boxing would change the module paths
pub enum FusionHead {
    /// Concatenation then an MLP.
    Concat(ConcatHead),
    /// A learned gate between the projected modalities.
    Gated(GatedHead),
}

impl FusionHead {
    pub(crate) fn concat(
        image: usize,
        tabular: usize,
        width: usize,
        classes: usize,
        device: &Device,
    ) -> Self {
        FusionHead::Concat(ConcatHead {
            hidden: linear(image + tabular, width, device),
            fc: linear(width, classes, device),
        })
    }

    pub(crate) fn gated(
        image: usize,
        tabular: usize,
        width: usize,
        classes: usize,
        device: &Device,
    ) -> Self {
        FusionHead::Gated(GatedHead {
            image_proj: linear(image, width, device),
            tabular_proj: linear(tabular, width, device),
            gate: linear(image + tabular, width, device),
            fc: linear(width, classes, device),
        })
    }

    fn forward(&self, image: Tensor<2>, tabular: Tensor<2>) -> Tensor<2> {
        match self {
            FusionHead::Concat(h) => {
                let joint = Tensor::cat(vec![image, tabular], 1);
                h.fc.forward(relu(h.hidden.forward(joint)))
            }
            FusionHead::Gated(h) => {
                let joint = Tensor::cat(vec![image.clone(), tabular.clone()], 1);
                let gate = sigmoid(h.gate.forward(joint));
                let zi = relu(h.image_proj.forward(image));
                let zt = relu(h.tabular_proj.forward(tabular));
                let fused = zt.clone() + gate * (zi - zt);
                h.fc.forward(fused)
            }
        }
    }
}

/// Image backbone + tabular encoder + fusion head.
#[derive(Module, Debug)]
pub struct Fusion {
    image: ImageBackbone,
    tabular: Mlp,
    head: FusionHead,
}

impl Fusion {
    pub(crate) fn new(image: ImageBackbone, tabular: Mlp, head: FusionHead) -> Fusion {
        Fusion {
            image,
            tabular,
            head,
        }
    }

    pub(crate) fn image(&self) -> &ImageBackbone {
        &self.image
    }

    pub(crate) fn tabular(&self) -> &Mlp {
        &self.tabular
    }

    /// Logits, or `None` when the images' rank does not suit the backbone.
    pub(crate) fn forward(&self, images: Images, tabular: Tensor<2>) -> Option<Tensor<2>> {
        let image = self.image.features(images)?;
        let tabular = self.tabular.features(tabular);
        Some(self.head.forward(image, tabular))
    }
}
