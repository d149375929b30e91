//! Vision transformer: patch embedding, class token, learned positional embedding, pre-norm
//! transformer encoder (Burn's), final layer norm.

use burn::module::{Module, Param};
use burn::nn::conv::Conv2d;
use burn::nn::transformer::{
    TransformerEncoder, TransformerEncoderConfig, TransformerEncoderInput,
};
use burn::nn::{LayerNorm, LayerNormConfig, Linear};
use burn::tensor::{Device, Tensor};

use super::layers::{conv, linear};

/// The shape of a ViT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VitSize {
    /// Patch side in pixels.
    pub patch: usize,
    /// Embedding width.
    pub dim: usize,
    /// Encoder layers.
    pub depth: usize,
    /// Attention heads.
    pub heads: usize,
    /// Hidden width of the feed-forward blocks.
    pub mlp: usize,
}

impl VitSize {
    /// ViT-Base/16: 12 layers, 768 wide, 12 heads, MLP 3072 (86M parameters at 224 px).
    pub const BASE: VitSize = VitSize {
        patch: 16,
        dim: 768,
        depth: 12,
        heads: 12,
        mlp: 3072,
    };

    /// A small ViT for the CPU: 6 layers, 192 wide, 3 heads, MLP 768 (DeiT-Tiny's widths at
    /// half the depth), patch 8 (8x8 tokens at 64 px).
    pub const SMALL: VitSize = VitSize {
        patch: 8,
        dim: 192,
        depth: 6,
        heads: 3,
        mlp: 768,
    };
}

/// A vision transformer; `head` is absent when it serves as a fusion backbone.
#[derive(Module, Debug)]
pub struct Vit {
    conv_proj: Conv2d,
    class_token: Param<Tensor<3>>,
    pos_embedding: Param<Tensor<3>>,
    encoder: TransformerEncoder,
    norm: LayerNorm,
    head: Option<Linear>,
    patch: usize,
}

impl Vit {
    /// A ViT for `channels` x `height` x `width` images (sides divisible by the patch).
    pub(crate) fn new(
        size: VitSize,
        channels: usize,
        [height, width]: [usize; 2],
        classes: Option<usize>,
        device: &Device,
    ) -> Vit {
        let tokens = (height / size.patch) * (width / size.patch) + 1;
        Vit {
            conv_proj: conv(
                [channels, size.dim],
                size.patch,
                size.patch,
                0,
                true,
                device,
            ),
            class_token: Param::from_tensor(Tensor::zeros([1, 1, size.dim], device)),
            pos_embedding: Param::from_tensor(Tensor::zeros([1, tokens, size.dim], device)),
            encoder: TransformerEncoderConfig::new(size.dim, size.mlp, size.heads, size.depth)
                .with_dropout(0.0)
                .with_norm_first(true)
                .with_layer_norm_eps(1e-6)
                .init(device),
            norm: LayerNormConfig::new(size.dim)
                .with_epsilon(1e-6)
                .init(device),
            head: classes.map(|c| linear(size.dim, c, device)),
            patch: size.patch,
        }
    }

    /// Width of the class-token features.
    pub(crate) fn feature_width(&self) -> usize {
        self.class_token.lazy_shape()[2]
    }

    /// Tokens (patches + class token) the positional embedding was built for.
    pub(crate) fn tokens(&self) -> usize {
        self.pos_embedding.lazy_shape()[1]
    }

    /// The patch side.
    /// Input channels.
    pub(crate) fn in_channels(&self) -> usize {
        self.conv_proj.weight.lazy_shape()[1]
    }

    pub(crate) fn patch(&self) -> usize {
        self.patch
    }

    /// The class token's features after the final norm, `[batch, dim]`.
    #[allow(clippy::many_single_char_names)]
    pub(crate) fn features(&self, x: Tensor<4>) -> Tensor<2> {
        let x = self.conv_proj.forward(x);
        let [n, d, h, w] = x.dims();
        let x = x.reshape([n, d, h * w]).swap_dims(1, 2);
        let cls = self.class_token.val().expand([n, 1, d]);
        let x = Tensor::cat(vec![cls, x], 1) + self.pos_embedding.val();
        let x = self.encoder.forward(TransformerEncoderInput::new(x));
        let x = self.norm.forward(x);
        x.slice([0..n, 0..1, 0..d]).reshape([n, d])
    }

    /// Logits, or the features when there is no head.
    pub(crate) fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let features = self.features(x);
        match &self.head {
            Some(head) => head.forward(features),
            None => features,
        }
    }
}
