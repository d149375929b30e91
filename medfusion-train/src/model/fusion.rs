//! Fusion models: an image backbone and a tabular encoder joined by a fusion head.

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::activation::{relu, sigmoid};
use burn::tensor::{Device, Tensor};

use super::cnn::Cnn;
use super::layers::linear;
use super::mlp::Mlp;
use super::resnet::ResNet;
use super::vit::Vit;

/// The image part of a fusion model (classifier left out).
#[derive(Module, Debug)]
pub enum ImageBackbone {
    /// The benchmark CNN.
    Cnn(Cnn),
    /// A ResNet.
    ResNet(ResNet),
    /// A vision transformer.
    Vit(Vit),
}

impl ImageBackbone {
    pub(crate) fn features(&self, x: Tensor<4>) -> Tensor<2> {
        match self {
            ImageBackbone::Cnn(m) => m.features(x),
            ImageBackbone::ResNet(m) => m.features(x),
            ImageBackbone::Vit(m) => m.features(x),
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

    pub(crate) fn forward(&self, images: Tensor<4>, tabular: Tensor<2>) -> Tensor<2> {
        let image = self.image.features(images);
        let tabular = self.tabular.features(tabular);
        self.head.forward(image, tabular)
    }
}
