//! The tabular encoder: linear layers with optional batch norm and ReLU.

use burn::module::Module;
use burn::nn::{BatchNorm, Linear};
use burn::tensor::Device;
use burn::tensor::Tensor;
use burn::tensor::activation::relu;

use super::layers::{batch_norm, linear, norm};

/// One hidden layer.
#[derive(Module, Debug)]
pub(crate) struct MlpLayer {
    linear: Linear,
    bn: Option<BatchNorm>,
}

/// A multi-layer perceptron; `fc` is absent when it serves as the tabular encoder of a fusion
/// model.
#[derive(Module, Debug)]
pub struct Mlp {
    layers: Vec<MlpLayer>,
    fc: Option<Linear>,
}

impl Mlp {
    /// Hidden layers of widths `hidden` over `features` inputs.
    pub(crate) fn new(
        features: usize,
        hidden: &[usize],
        batch_norm_layers: bool,
        classes: Option<usize>,
        device: &Device,
    ) -> Mlp {
        let mut width = features;
        let layers = hidden
            .iter()
            .map(|&h| {
                let layer = MlpLayer {
                    linear: linear(width, h, device),
                    bn: batch_norm_layers.then(|| batch_norm(h, device)),
                };
                width = h;
                layer
            })
            .collect();
        Mlp {
            layers,
            fc: classes.map(|c| linear(width, c, device)),
        }
    }

    /// An MLP without layers, a stand-in while a model is moved (holds no tensors).
    pub(crate) fn placeholder(_device: &Device) -> Mlp {
        Mlp {
            layers: Vec::new(),
            fc: None,
        }
    }

    /// The number of input features.
    pub(crate) fn in_features(&self) -> usize {
        match self.layers.first() {
            Some(layer) => layer.linear.weight.lazy_shape()[0],
            None => self.fc.as_ref().map_or(0, |fc| fc.weight.lazy_shape()[0]),
        }
    }

    /// The last hidden layer's output, `[batch, hidden.last()]`.
    pub(crate) fn features(&self, mut x: Tensor<2>) -> Tensor<2> {
        for layer in &self.layers {
            x = layer.linear.forward(x);
            if let Some(bn) = &layer.bn {
                x = norm(bn, x);
            }
            x = relu(x);
        }
        x
    }

    /// Logits, or the features when there is no classifier.
    pub(crate) fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let features = self.features(x);
        match &self.fc {
            Some(fc) => fc.forward(features),
            None => features,
        }
    }
}
