//! Swin Transformer (Liu et al. 2021) as torchvision's `swin_t` and `swin_b`: patch embedding,
//! four stages of blocks with windowed self-attention (shifted every other block) and a learned
//! relative position bias, patch merging between stages, a final layer norm and a linear head.
//!
//! Parameter names follow torchvision (`features.0.0` the patch convolution, `features.0.2` its
//! norm, `features.1.0.attn.qkv`, `features.1.0.attn.relative_position_bias_table`,
//! `features.1.0.mlp.0`, `features.2.reduction`, `norm`, `head`), so weights exchange with
//! PyTorch through safetensors. Stochastic depth (torchvision's training-time regulariser) is
//! left out.

use burn::module::{Module, Param};
use burn::nn::conv::Conv2d;
use burn::nn::{Identity, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::activation::{gelu, softmax};
use burn::tensor::{Device, Int, Tensor, TensorData};

use super::layers::{conv, linear};

/// A Swin size: embedding width, blocks and heads per stage, window side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SwinSize {
    /// Channels after the patch embedding (doubled by every merge).
    pub embed: usize,
    /// Blocks per stage.
    pub depths: [usize; 4],
    /// Attention heads per stage.
    pub heads: [usize; 4],
    /// Window side in tokens.
    pub window: usize,
}

impl SwinSize {
    /// Swin-T (`swin_t`): 96 wide, 2-2-6-2 blocks, 28.3M parameters at 1000 classes.
    pub const TINY: SwinSize = SwinSize {
        embed: 96,
        depths: [2, 2, 6, 2],
        heads: [3, 6, 12, 24],
        window: 7,
    };

    /// Swin-B (`swin_b`): 128 wide, 2-2-18-2 blocks, 87.8M parameters at 1000 classes.
    pub const BASE: SwinSize = SwinSize {
        embed: 128,
        depths: [2, 2, 18, 2],
        heads: [4, 8, 16, 32],
        window: 7,
    };

    /// Width of the pooled features.
    pub fn features(self) -> usize {
        self.embed * 8
    }
}

fn layer_norm(width: usize, device: &Device) -> LayerNorm {
    LayerNormConfig::new(width).with_epsilon(1e-5).init(device)
}

/// Windowed multi-head self-attention with a relative position bias.
#[derive(Module, Debug)]
pub(crate) struct WindowAttention {
    qkv: Linear,
    proj: Linear,
    relative_position_bias_table: Param<Tensor<2>>,
    heads: usize,
    window: usize,
}

/// A part of the block's MLP (`mlp.0` and `mlp.3` are the linear layers, as in torchvision's
/// `Linear, GELU, Dropout, Linear, Dropout`).
#[derive(Module, Debug)]
pub(crate) enum MlpPart {
    /// A linear layer.
    Linear(Linear),
    /// GELU or dropout (no parameters).
    Other(Identity),
}

/// One Swin block: norm, (shifted) window attention, residual; norm, MLP, residual.
#[derive(Module, Debug)]
pub(crate) struct SwinBlock {
    norm1: LayerNorm,
    attn: WindowAttention,
    norm2: LayerNorm,
    mlp: Vec<MlpPart>,
    shift: usize,
}

/// Halves the resolution and doubles the width: 2x2 neighbours concatenated, normed, reduced.
#[derive(Module, Debug)]
pub(crate) struct PatchMerging {
    norm: LayerNorm,
    reduction: Linear,
}

/// A part of the patch embedding (`features.0.0` convolution, `.1` permute, `.2` norm).
#[derive(Module, Debug)]
pub(crate) enum EmbedPart {
    /// The 4x4 stride-4 convolution.
    Conv(Conv2d),
    /// The permute to channels-last (no parameters).
    Permute(Identity),
    /// The layer norm.
    Norm(LayerNorm),
}

/// One entry of `features`.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)] // built once; boxing would change the module paths
pub(crate) enum SwinStage {
    /// The patch embedding.
    Embed(Vec<EmbedPart>),
    /// A stage of blocks.
    Blocks(Vec<SwinBlock>),
    /// A patch merging.
    Merge(PatchMerging),
}

/// The Swin Transformer.
#[derive(Module, Debug)]
pub struct Swin {
    features: Vec<SwinStage>,
    norm: LayerNorm,
    head: Option<Linear>,
}

/// `index[i * n + j]` = the bias table row for tokens `i` and `j` of a `window x window` window.
fn relative_position_index(window: usize) -> Vec<i64> {
    let n = window * window;
    let side = 2 * window - 1;
    let mut index = Vec::with_capacity(n * n);
    for i in 0..n {
        for j in 0..n {
            let (hi, wi) = (i / window, i % window);
            let (hj, wj) = (j / window, j % window);
            let dh = hi + window - 1 - hj;
            let dw = wi + window - 1 - wj;
            index.push((dh * side + dw) as i64);
        }
    }
    index
}

/// The shifted-window mask: 0 within a region, -100 across regions, `[windows, n, n]`.
fn shift_mask(height: usize, width: usize, window: usize, shift: usize) -> Vec<f32> {
    // Region id of every position: three bands along each axis.
    let band = |x: usize, len: usize| {
        if x < len - window {
            0
        } else if x < len - shift {
            1
        } else {
            2
        }
    };
    let (wh, ww) = (height / window, width / window);
    let n = window * window;
    let mut mask = Vec::with_capacity(wh * ww * n * n);
    for a in 0..wh {
        for b in 0..ww {
            let ids: Vec<usize> = (0..n)
                .map(|t| {
                    let (y, x) = (a * window + t / window, b * window + t % window);
                    band(y, height) * 3 + band(x, width)
                })
                .collect();
            for i in 0..n {
                for j in 0..n {
                    mask.push(if ids[i] == ids[j] { 0.0 } else { -100.0 });
                }
            }
        }
    }
    mask
}

impl WindowAttention {
    fn new(dim: usize, heads: usize, window: usize, device: &Device) -> WindowAttention {
        let side = 2 * window - 1;
        WindowAttention {
            qkv: linear(dim, 3 * dim, device),
            proj: linear(dim, dim, device),
            relative_position_bias_table: Param::from_tensor(Tensor::zeros(
                [side * side, heads],
                device,
            )),
            heads,
            window,
        }
    }

    /// Attention over the windows of `x` (`[b, h, w, c]`), shifted by `shift` tokens.
    #[allow(clippy::many_single_char_names)]
    fn forward(&self, x: Tensor<4>, shift: usize) -> Tensor<4> {
        let [b, h, w, c] = x.dims();
        let ws = self.window;
        let device = x.device();
        // Pad to whole windows (zeros at the bottom and right).
        let (ph, pw) = (h.div_ceil(ws) * ws, w.div_ceil(ws) * ws);
        let dtype = x.dtype();
        let mut x = x;
        if pw > w {
            let zeros = Tensor::<4>::zeros([b, h, pw - w, c], &device).cast(dtype);
            x = Tensor::cat(vec![x, zeros], 2);
        }
        if ph > h {
            let zeros = Tensor::<4>::zeros([b, ph - h, pw, c], &device).cast(dtype);
            x = Tensor::cat(vec![x, zeros], 1);
        }
        // No shift when one window covers the map.
        let (sh, sw) = (
            if ws >= ph { 0 } else { shift },
            if ws >= pw { 0 } else { shift },
        );
        let shifted = sh + sw > 0;
        if shifted {
            x = x.roll(&[-(sh as i64), -(sw as i64)], &[1, 2]);
        }
        let (nh, nw) = (ph / ws, pw / ws);
        let windows = nh * nw;
        let n = ws * ws;
        let x = x
            .reshape([b, nh, ws, nw, ws, c])
            .permute([0, 1, 3, 2, 4, 5])
            .reshape([b * windows, n, c]);
        let head_dim = c / self.heads;
        let qkv = self
            .qkv
            .forward(x)
            .reshape([b * windows, n, 3, self.heads, head_dim])
            .permute([2, 0, 3, 1, 4]);
        let part = |i: usize| qkv.clone().narrow(0, i, 1).squeeze_dim::<4>(0);
        let (q, k, v) = (part(0), part(1), part(2));
        let q = q * (head_dim as f64).powf(-0.5);
        let mut attn = q.matmul(k.swap_dims(2, 3));
        let index = Tensor::<1, Int>::from_data(
            TensorData::new(relative_position_index(ws), [n * n]),
            &device,
        );
        let bias = self
            .relative_position_bias_table
            .val()
            .select(0, index)
            .reshape([n, n, self.heads])
            .permute([2, 0, 1])
            .unsqueeze_dim::<4>(0);
        let dtype = attn.dtype();
        attn = attn + bias.cast(dtype);
        if shifted {
            let mask = Tensor::<3>::from_data(
                TensorData::new(shift_mask(ph, pw, ws, sh.max(sw)), [windows, n, n]),
                &device,
            )
            .cast(dtype);
            attn = (attn.reshape([b, windows, self.heads, n, n])
                + mask.unsqueeze_dim::<4>(1).unsqueeze_dim::<5>(0))
            .reshape([b * windows, self.heads, n, n]);
        }
        let attn = softmax(attn, 3);
        let x = attn.matmul(v).swap_dims(1, 2).reshape([b * windows, n, c]);
        let x = self.proj.forward(x);
        let mut x = x
            .reshape([b, nh, nw, ws, ws, c])
            .permute([0, 1, 3, 2, 4, 5])
            .reshape([b, ph, pw, c]);
        if shifted {
            x = x.roll(&[sh as i64, sw as i64], &[1, 2]);
        }
        if ph > h || pw > w {
            x = x.slice([0..b, 0..h, 0..w, 0..c]);
        }
        x
    }
}

impl SwinBlock {
    fn new(dim: usize, heads: usize, window: usize, shift: usize, device: &Device) -> SwinBlock {
        SwinBlock {
            norm1: layer_norm(dim, device),
            attn: WindowAttention::new(dim, heads, window, device),
            norm2: layer_norm(dim, device),
            mlp: vec![
                MlpPart::Linear(linear(dim, 4 * dim, device)),
                MlpPart::Other(Identity::new()),
                MlpPart::Other(Identity::new()),
                MlpPart::Linear(linear(4 * dim, dim, device)),
                MlpPart::Other(Identity::new()),
            ],
            shift,
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = x.clone() + self.attn.forward(self.norm1.forward(x), self.shift);
        let mut y = self.norm2.forward(x.clone());
        let mut first = true;
        for part in &self.mlp {
            if let MlpPart::Linear(l) = part {
                y = l.forward(y);
                if first {
                    y = gelu(y);
                    first = false;
                }
            }
        }
        x + y
    }
}

impl PatchMerging {
    fn new(dim: usize, device: &Device) -> PatchMerging {
        PatchMerging {
            norm: layer_norm(4 * dim, device),
            reduction: LinearConfig::new(4 * dim, 2 * dim)
                .with_bias(false)
                .init(device),
        }
    }

    #[allow(clippy::many_single_char_names)]
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, h, w, c] = x.dims();
        let mut x = x;
        // Pad to even sides.
        if w % 2 == 1 {
            let zeros = Tensor::<4>::zeros([b, h, 1, c], &x.device()).cast(x.dtype());
            x = Tensor::cat(vec![x, zeros], 2);
        }
        let w = w.div_ceil(2) * 2;
        if h % 2 == 1 {
            let zeros = Tensor::<4>::zeros([b, 1, w, c], &x.device()).cast(x.dtype());
            x = Tensor::cat(vec![x, zeros], 1);
        }
        let h = h.div_ceil(2) * 2;
        let (h2, w2) = (h / 2, w / 2);
        let grid = x.reshape([b, h2, 2, w2, 2, c]);
        // torchvision's order: (row 0, col 0), (1, 0), (0, 1), (1, 1).
        let pick = |dy: usize, dx: usize| {
            grid.clone()
                .slice([0..b, 0..h2, dy..dy + 1, 0..w2, dx..dx + 1, 0..c])
                .reshape([b, h2, w2, c])
        };
        let x = Tensor::cat(vec![pick(0, 0), pick(1, 0), pick(0, 1), pick(1, 1)], 3);
        self.reduction.forward(self.norm.forward(x))
    }
}

impl Swin {
    /// Swin of `size` for `channels` inputs; `classes: None` builds the feature extractor.
    pub(crate) fn new(
        size: SwinSize,
        channels: usize,
        classes: Option<usize>,
        device: &Device,
    ) -> Swin {
        let mut features = vec![SwinStage::Embed(vec![
            EmbedPart::Conv(conv([channels, size.embed], 4, 4, 0, true, device)),
            EmbedPart::Permute(Identity::new()),
            EmbedPart::Norm(layer_norm(size.embed, device)),
        ])];
        let mut dim = size.embed;
        for stage in 0..4 {
            let blocks = (0..size.depths[stage])
                .map(|i| {
                    let shift = if i % 2 == 0 { 0 } else { size.window / 2 };
                    SwinBlock::new(dim, size.heads[stage], size.window, shift, device)
                })
                .collect();
            features.push(SwinStage::Blocks(blocks));
            if stage < 3 {
                features.push(SwinStage::Merge(PatchMerging::new(dim, device)));
                dim *= 2;
            }
        }
        Swin {
            features,
            norm: layer_norm(dim, device),
            head: classes.map(|c| linear(dim, c, device)),
        }
    }

    /// Input channels.
    pub(crate) fn in_channels(&self) -> usize {
        match self.features.first() {
            Some(SwinStage::Embed(parts)) => parts
                .iter()
                .find_map(|p| match p {
                    EmbedPart::Conv(c) => Some(c.weight.lazy_shape()[1]),
                    _ => None,
                })
                .unwrap_or(0),
            _ => 0,
        }
    }

    /// Width of the pooled features.
    pub(crate) fn feature_width(&self) -> usize {
        self.norm.gamma.lazy_shape()[0]
    }

    /// Pooled features, `[batch, 8 * embed]`.
    #[allow(clippy::many_single_char_names)]
    pub(crate) fn features(&self, images: Tensor<4>) -> Tensor<2> {
        let mut x: Option<Tensor<4>> = None;
        for stage in &self.features {
            x = Some(match stage {
                SwinStage::Embed(parts) => {
                    // [b, c, h, w] -> [b, h/4, w/4, embed], normed.
                    let mut y = images.clone();
                    for part in parts {
                        y = match part {
                            EmbedPart::Conv(c) => c.forward(y),
                            EmbedPart::Permute(_) => y.permute([0, 2, 3, 1]),
                            EmbedPart::Norm(n) => n.forward(y),
                        };
                    }
                    y
                }
                SwinStage::Blocks(blocks) => {
                    let mut y = x.take().unwrap_or_else(|| images.clone());
                    for block in blocks {
                        y = block.forward(y);
                    }
                    y
                }
                SwinStage::Merge(m) => m.forward(x.take().unwrap_or_else(|| images.clone())),
            });
        }
        let x = self.norm.forward(x.unwrap_or(images));
        let [b, h, w, c] = x.dims();
        x.reshape([b, h * w, c]).mean_dim(1).reshape([b, c])
    }

    /// Logits (or the features without a head).
    pub(crate) fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let features = self.features(x);
        match &self.head {
            Some(head) => head.forward(features),
            None => features,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_positions_cover_the_table() {
        let index = relative_position_index(7);
        assert_eq!(index.len(), 49 * 49);
        assert_eq!(index.iter().copied().max(), Some(13 * 13 - 1));
        assert_eq!(index.iter().copied().min(), Some(0));
        // A token and itself: the centre of the table.
        assert_eq!(index[0], 6 * 13 + 6);
    }

    #[test]
    fn the_shift_mask_separates_the_wrapped_regions() {
        // A 4x4 map of 2x2 windows shifted by 1: the last window mixes four regions.
        let mask = shift_mask(4, 4, 2, 1);
        let n = 4;
        let window = |k: usize| &mask[k * n * n..(k + 1) * n * n];
        assert!(window(0).iter().all(|&m| m == 0.0));
        assert_eq!(window(3).iter().filter(|&&m| m == 0.0).count(), 4);
    }
}
