//! ResNet-18/34/50/101 with torchvision's layout and parameter names (`conv1`, `bn1`,
//! `layer1.0.conv1`, `layer2.0.downsample.0`, `fc`), so weights exchange with PyTorch through
//! safetensors.

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, Linear, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use super::cnn::global_avg_pool;
use super::layers::{batch_norm, conv, linear, norm};

/// The four ResNet depths of torchvision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResNetDepth {
    /// Basic blocks [2, 2, 2, 2].
    R18,
    /// Basic blocks [3, 4, 6, 3].
    R34,
    /// Bottlenecks [3, 4, 6, 3].
    R50,
    /// Bottlenecks [3, 4, 23, 3].
    R101,
}

impl ResNetDepth {
    fn blocks(self) -> [usize; 4] {
        match self {
            ResNetDepth::R18 => [2, 2, 2, 2],
            ResNetDepth::R34 | ResNetDepth::R50 => [3, 4, 6, 3],
            ResNetDepth::R101 => [3, 4, 23, 3],
        }
    }

    fn bottleneck(self) -> bool {
        matches!(self, ResNetDepth::R50 | ResNetDepth::R101)
    }

    /// Width of the pooled features (512 or 2048).
    pub(crate) fn features(self) -> usize {
        if self.bottleneck() { 2048 } else { 512 }
    }
}

/// A layer of a downsampling shortcut (`downsample.0` is the 1x1 convolution, `downsample.1`
/// its batch norm).
#[derive(Module, Debug)]
pub(crate) enum Shortcut {
    /// The 1x1 strided convolution.
    Conv(Conv2d),
    /// Its batch norm.
    Norm(BatchNorm),
}

/// Two 3x3 convolutions (ResNet-18/34).
#[derive(Module, Debug)]
pub(crate) struct BasicBlock {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    downsample: Option<Vec<Shortcut>>,
}

/// 1x1, 3x3 (strided), 1x1 with 4x expansion (ResNet-50/101, torchvision's v1.5).
#[derive(Module, Debug)]
pub(crate) struct Bottleneck {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    conv3: Conv2d,
    bn3: BatchNorm,
    downsample: Option<Vec<Shortcut>>,
}

/// One residual block.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)] // built once; boxing would change the module paths
pub(crate) enum Block {
    /// ResNet-18/34 block.
    Basic(BasicBlock),
    /// ResNet-50/101 block.
    Bottleneck(Bottleneck),
}

/// A ResNet; `fc` is absent when it serves as a fusion backbone.
#[derive(Module, Debug)]
pub struct ResNet {
    conv1: Conv2d,
    bn1: BatchNorm,
    maxpool: MaxPool2d,
    layer1: Vec<Block>,
    layer2: Vec<Block>,
    layer3: Vec<Block>,
    layer4: Vec<Block>,
    fc: Option<Linear>,
}

fn shortcut(input: usize, output: usize, stride: usize, device: &Device) -> Option<Vec<Shortcut>> {
    (stride != 1 || input != output).then(|| {
        vec![
            Shortcut::Conv(conv([input, output], 1, stride, 0, false, device)),
            Shortcut::Norm(batch_norm(output, device)),
        ]
    })
}

impl ResNet {
    /// A ResNet of `depth` for `in_channels` inputs; `classes: None` leaves out `fc`.
    pub(crate) fn new(
        depth: ResNetDepth,
        in_channels: usize,
        classes: Option<usize>,
        device: &Device,
    ) -> ResNet {
        let expansion = if depth.bottleneck() { 4 } else { 1 };
        let mut input = 64;
        let mut stage = |width: usize, count: usize, stride: usize| -> Vec<Block> {
            (0..count)
                .map(|i| {
                    let stride = if i == 0 { stride } else { 1 };
                    let output = width * expansion;
                    let downsample = shortcut(input, output, stride, device);
                    let block = if depth.bottleneck() {
                        Block::Bottleneck(Bottleneck {
                            conv1: conv([input, width], 1, 1, 0, false, device),
                            bn1: batch_norm(width, device),
                            conv2: conv([width, width], 3, stride, 1, false, device),
                            bn2: batch_norm(width, device),
                            conv3: conv([width, output], 1, 1, 0, false, device),
                            bn3: batch_norm(output, device),
                            downsample,
                        })
                    } else {
                        Block::Basic(BasicBlock {
                            conv1: conv([input, width], 3, stride, 1, false, device),
                            bn1: batch_norm(width, device),
                            conv2: conv([width, width], 3, 1, 1, false, device),
                            bn2: batch_norm(width, device),
                            downsample,
                        })
                    };
                    input = output;
                    block
                })
                .collect()
        };
        let [n1, n2, n3, n4] = depth.blocks();
        let layer1 = stage(64, n1, 1);
        let layer2 = stage(128, n2, 2);
        let layer3 = stage(256, n3, 2);
        let layer4 = stage(512, n4, 2);
        ResNet {
            conv1: conv([in_channels, 64], 7, 2, 3, false, device),
            bn1: batch_norm(64, device),
            maxpool: MaxPool2dConfig::new([3, 3])
                .with_strides([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(),
            layer1,
            layer2,
            layer3,
            layer4,
            fc: classes.map(|c| linear(depth.features(), c, device)),
        }
    }

    /// Pooled features, `[batch, 512]` or `[batch, 2048]`.
    /// Input channels.
    pub(crate) fn in_channels(&self) -> usize {
        self.conv1.weight.lazy_shape()[1]
    }

    pub(crate) fn features(&self, x: Tensor<4>) -> Tensor<2> {
        let x = relu(norm(&self.bn1, self.conv1.forward(x)));
        let mut x = self.maxpool.forward(x);
        for layer in [&self.layer1, &self.layer2, &self.layer3, &self.layer4] {
            for block in layer {
                x = block.forward(x);
            }
        }
        global_avg_pool(x)
    }

    /// Logits, or the features when there is no classifier.
    pub(crate) fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let features = self.features(x);
        match &self.fc {
            Some(fc) => fc.forward(features),
            None => features,
        }
    }
}

impl Block {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Block::Basic(b) => {
                let identity = apply_shortcut(b.downsample.as_deref(), x.clone());
                let out = relu(norm(&b.bn1, b.conv1.forward(x)));
                let out = norm(&b.bn2, b.conv2.forward(out));
                relu(out + identity)
            }
            Block::Bottleneck(b) => {
                let identity = apply_shortcut(b.downsample.as_deref(), x.clone());
                let out = relu(norm(&b.bn1, b.conv1.forward(x)));
                let out = relu(norm(&b.bn2, b.conv2.forward(out)));
                let out = norm(&b.bn3, b.conv3.forward(out));
                relu(out + identity)
            }
        }
    }
}

fn apply_shortcut(layers: Option<&[Shortcut]>, mut x: Tensor<4>) -> Tensor<4> {
    for layer in layers.unwrap_or_default() {
        x = match layer {
            Shortcut::Conv(c) => c.forward(x),
            Shortcut::Norm(bn) => norm(bn, x),
        };
    }
    x
}
