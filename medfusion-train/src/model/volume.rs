//! 3D models for volumes (`[batch, channels, depth, height, width]`): a 3D version of the
//! benchmark CNN, and ResNet-18 in 3D with MedicalNet's parameter names (`conv1`, `bn1`,
//! `layer1.0.conv1`, `layer2.0.downsample.0`, `fc`), so its weights exchange with PyTorch
//! through safetensors.
//!
//! The stem follows torchvision's `r3d_18`: a 3x7x7 convolution striding 1 in depth and 2 in
//! the plane, no max pooling (volumes are short in depth), then four stages of basic blocks
//! of 3x3x3 convolutions, striding 2 in every dimension from the second stage.

use burn::module::Module;
use burn::nn::conv::{Conv3d, Conv3dConfig};
use burn::nn::{BatchNorm, Linear, PaddingConfig3d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use super::layers::{batch_norm, linear, norm};

/// A 3D convolution with explicit padding.
fn conv3d(
    channels: [usize; 2],
    kernel: [usize; 3],
    stride: [usize; 3],
    pad: [usize; 3],
    bias: bool,
    device: &Device,
) -> Conv3d {
    Conv3dConfig::new(channels, kernel)
        .with_stride(stride)
        .with_padding(PaddingConfig3d::Explicit(pad[0], pad[1], pad[2]))
        .with_bias(bias)
        .init(device)
}

/// Mean over depth, height and width: `[n, c, d, h, w]` to `[n, c]`.
#[allow(clippy::many_single_char_names)]
pub(crate) fn global_avg_pool3d(x: Tensor<5>) -> Tensor<2> {
    let [n, c, d, h, w] = x.dims();
    x.reshape([n, c, d * h * w]).mean_dim(2).reshape([n, c])
}

/// One 3D convolution, batch norm and ReLU.
#[derive(Module, Debug)]
pub(crate) struct ConvBlock3d {
    conv: Conv3d,
    bn: BatchNorm,
}

/// The benchmark CNN in 3D: four 3x3x3 conv/BN/ReLU blocks (32, 64, 128, 128 channels, the
/// last three striding 2), global average pooling and an optional linear classifier.
#[derive(Module, Debug)]
pub struct Cnn3d {
    features: Vec<ConvBlock3d>,
    fc: Option<Linear>,
}

impl Cnn3d {
    /// Width of the pooled features.
    pub(crate) const FEATURES: usize = 128;

    /// The network for `in_channels` inputs; `classes: None` builds the feature extractor only.
    pub(crate) fn new(in_channels: usize, classes: Option<usize>, device: &Device) -> Cnn3d {
        let mut channels = in_channels;
        let features = [(32, 1), (64, 2), (128, 2), (128, 2)]
            .iter()
            .map(|&(out, stride)| {
                let block = ConvBlock3d {
                    conv: conv3d([channels, out], [3; 3], [stride; 3], [1; 3], true, device),
                    bn: batch_norm(out, device),
                };
                channels = out;
                block
            })
            .collect();
        Cnn3d {
            features,
            fc: classes.map(|c| linear(Self::FEATURES, c, device)),
        }
    }

    /// Input channels.
    pub(crate) fn in_channels(&self) -> usize {
        self.features[0].conv.weight.lazy_shape()[1]
    }

    /// Pooled features, `[batch, 128]`.
    pub(crate) fn features(&self, mut x: Tensor<5>) -> Tensor<2> {
        for block in &self.features {
            x = relu(norm(&block.bn, block.conv.forward(x)));
        }
        global_avg_pool3d(x)
    }

    /// Logits (or the features without a classifier).
    pub(crate) fn forward(&self, x: Tensor<5>) -> Tensor<2> {
        let features = self.features(x);
        match &self.fc {
            Some(fc) => fc.forward(features),
            None => features,
        }
    }
}

/// A 1x1x1 convolution and batch norm matching a block's output (`downsample.0`, `.1`).
#[derive(Module, Debug)]
pub(crate) enum Shortcut3d {
    Conv(Conv3d),
    Norm(BatchNorm),
}

/// Two 3x3x3 conv/BN pairs with a residual connection.
#[derive(Module, Debug)]
pub(crate) struct BasicBlock3d {
    conv1: Conv3d,
    bn1: BatchNorm,
    conv2: Conv3d,
    bn2: BatchNorm,
    downsample: Option<Vec<Shortcut3d>>,
}

impl BasicBlock3d {
    fn new(input: usize, output: usize, stride: usize, device: &Device) -> BasicBlock3d {
        BasicBlock3d {
            conv1: conv3d([input, output], [3; 3], [stride; 3], [1; 3], false, device),
            bn1: batch_norm(output, device),
            conv2: conv3d([output, output], [3; 3], [1; 3], [1; 3], false, device),
            bn2: batch_norm(output, device),
            downsample: (stride != 1 || input != output).then(|| {
                vec![
                    Shortcut3d::Conv(conv3d(
                        [input, output],
                        [1; 3],
                        [stride; 3],
                        [0; 3],
                        false,
                        device,
                    )),
                    Shortcut3d::Norm(batch_norm(output, device)),
                ]
            }),
        }
    }

    fn forward(&self, x: Tensor<5>) -> Tensor<5> {
        let mut identity = x.clone();
        for layer in self.downsample.as_deref().unwrap_or_default() {
            identity = match layer {
                Shortcut3d::Conv(c) => c.forward(identity),
                Shortcut3d::Norm(bn) => norm(bn, identity),
            };
        }
        let out = relu(norm(&self.bn1, self.conv1.forward(x)));
        let out = norm(&self.bn2, self.conv2.forward(out));
        relu(out + identity)
    }
}

/// ResNet-18 in 3D (33.2M parameters for one channel and two classes).
#[derive(Module, Debug)]
pub struct ResNet3d {
    conv1: Conv3d,
    bn1: BatchNorm,
    layer1: Vec<BasicBlock3d>,
    layer2: Vec<BasicBlock3d>,
    layer3: Vec<BasicBlock3d>,
    layer4: Vec<BasicBlock3d>,
    fc: Option<Linear>,
}

impl ResNet3d {
    /// Width of the pooled features.
    pub(crate) const FEATURES: usize = 512;

    /// ResNet-18 3D for `in_channels`; `classes: None` builds the feature extractor only.
    pub(crate) fn new(in_channels: usize, classes: Option<usize>, device: &Device) -> ResNet3d {
        let mut input = 64;
        let mut stage = |width: usize, stride: usize| -> Vec<BasicBlock3d> {
            let blocks = vec![
                BasicBlock3d::new(input, width, stride, device),
                BasicBlock3d::new(width, width, 1, device),
            ];
            input = width;
            blocks
        };
        let (layer1, layer2, layer3, layer4) =
            (stage(64, 1), stage(128, 2), stage(256, 2), stage(512, 2));
        ResNet3d {
            conv1: conv3d(
                [in_channels, 64],
                [3, 7, 7],
                [1, 2, 2],
                [1, 3, 3],
                false,
                device,
            ),
            bn1: batch_norm(64, device),
            layer1,
            layer2,
            layer3,
            layer4,
            fc: classes.map(|c| linear(Self::FEATURES, c, device)),
        }
    }

    /// Input channels.
    pub(crate) fn in_channels(&self) -> usize {
        self.conv1.weight.lazy_shape()[1]
    }

    /// Pooled features, `[batch, 512]`.
    pub(crate) fn features(&self, x: Tensor<5>) -> Tensor<2> {
        let mut x = relu(norm(&self.bn1, self.conv1.forward(x)));
        for layer in [&self.layer1, &self.layer2, &self.layer3, &self.layer4] {
            for block in layer {
                x = block.forward(x);
            }
        }
        global_avg_pool3d(x)
    }

    /// Logits (or the features without a classifier).
    pub(crate) fn forward(&self, x: Tensor<5>) -> Tensor<2> {
        let features = self.features(x);
        match &self.fc {
            Some(fc) => fc.forward(features),
            None => features,
        }
    }
}
