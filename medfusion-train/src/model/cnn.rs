//! The small convolutional network of the benchmarks (WORKLOADS.md section 6).

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, Linear};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use super::layers::{batch_norm, conv, linear, norm};

/// Channels and strides of the four 3x3 convolutions.
const STAGES: [(usize, usize); 4] = [(32, 1), (64, 2), (128, 2), (128, 2)];

/// One convolution, batch norm and ReLU.
#[derive(Module, Debug)]
pub(crate) struct ConvBlock {
    conv: Conv2d,
    bn: BatchNorm,
}

/// Four conv/BN/ReLU blocks, global average pooling and an optional linear classifier
/// (241,218 parameters for one channel and two classes).
#[derive(Module, Debug)]
pub struct Cnn {
    features: Vec<ConvBlock>,
    fc: Option<Linear>,
}

impl Cnn {
    /// The network for `in_channels` inputs; `classes: None` builds the feature extractor only.
    pub(crate) fn new(in_channels: usize, classes: Option<usize>, device: &Device) -> Cnn {
        let mut channels = in_channels;
        let features = STAGES
            .iter()
            .map(|&(out, stride)| {
                let block = ConvBlock {
                    conv: conv([channels, out], 3, stride, 1, true, device),
                    bn: batch_norm(out, device),
                };
                channels = out;
                block
            })
            .collect();
        Cnn {
            features,
            fc: classes.map(|c| linear(Self::FEATURES, c, device)),
        }
    }

    /// Width of the pooled features.
    pub(crate) const FEATURES: usize = 128;

    /// Input channels.
    pub(crate) fn in_channels(&self) -> usize {
        self.features[0].conv.weight.lazy_shape()[1]
    }

    /// Pooled features, `[batch, 128]`.
    pub(crate) fn features(&self, mut x: Tensor<4>) -> Tensor<2> {
        for block in &self.features {
            x = relu(norm(&block.bn, block.conv.forward(x)));
        }
        global_avg_pool(x)
    }

    /// Logits (the classifier must exist).
    pub(crate) fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let features = self.features(x);
        match &self.fc {
            Some(fc) => fc.forward(features),
            None => features,
        }
    }
}

/// Mean over the spatial dimensions: `[n, c, h, w]` to `[n, c]`.
#[allow(clippy::many_single_char_names)]
pub(crate) fn global_avg_pool(x: Tensor<4>) -> Tensor<2> {
    let [n, c, h, w] = x.dims();
    x.reshape([n, c, h * w]).mean_dim(2).reshape([n, c])
}
