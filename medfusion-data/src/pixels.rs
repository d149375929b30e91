//! Writing one image into its slot of a batch: layout change, flips, rotation, intensity
//! jitter and normalisation in a single pass from `u8` pixels to `f32`.

use crate::ImageShape;
use crate::augment::SampleAugment;
use crate::dataset::image_len;

/// A borrowed `u8` image of any layout, addressed by strides.
///
/// Planar (CHW) and interleaved (HWC) buffers, grey images read as RGB (channel stride 0)
/// and RGBA read as RGB (pixel stride 4) are all views of the decoded buffer, not copies.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PixelView<'a> {
    pub(crate) data: &'a [u8],
    pub(crate) width: usize,
    pub(crate) height: usize,
    pub(crate) channel_stride: usize,
    pub(crate) row_stride: usize,
    pub(crate) pixel_stride: usize,
}

impl<'a> PixelView<'a> {
    /// A planar (CHW) view of `channels` planes.
    pub(crate) fn planar(data: &'a [u8], width: usize, height: usize) -> PixelView<'a> {
        PixelView {
            data,
            width,
            height,
            channel_stride: width * height,
            row_stride: width,
            pixel_stride: 1,
        }
    }

    /// An interleaved (HWC) view of an image with `samples` values per pixel, reading
    /// channel `c` as value `c` (`samples` 1 or 2 repeat the grey value for every channel).
    pub(crate) fn interleaved(
        data: &'a [u8],
        width: usize,
        height: usize,
        samples: usize,
    ) -> PixelView<'a> {
        PixelView {
            data,
            width,
            height,
            channel_stride: usize::from(samples >= 3),
            row_stride: width * samples,
            pixel_stride: samples,
        }
    }

    #[inline]
    fn at(&self, c: usize, y: usize, x: usize) -> u8 {
        self.data[c * self.channel_stride + y * self.row_stride + x * self.pixel_stride]
    }

    /// Bilinear sample at `(x, y)`, coordinates clamped to the image (edges repeat).
    #[inline]
    fn bilinear(&self, c: usize, x: f32, y: f32) -> f32 {
        let max_x = (self.width - 1) as f32;
        let max_y = (self.height - 1) as f32;
        let x = x.clamp(0.0, max_x);
        let y = y.clamp(0.0, max_y);
        let (x0, y0) = (x.floor() as usize, y.floor() as usize);
        let (x1, y1) = ((x0 + 1).min(self.width - 1), (y0 + 1).min(self.height - 1));
        let (fx, fy) = (x - x0 as f32, y - y0 as f32);
        let top = f32::from(self.at(c, y0, x0)) * (1.0 - fx) + f32::from(self.at(c, y0, x1)) * fx;
        let bottom =
            f32::from(self.at(c, y1, x0)) * (1.0 - fx) + f32::from(self.at(c, y1, x1)) * fx;
        top * (1.0 - fy) + bottom * fy
    }
}

/// Per-channel normalisation constants.
#[derive(Debug, Clone)]
pub(crate) struct ChannelNorm {
    /// `(mean, std)` per output channel.
    pub(crate) stats: Vec<(f32, f32)>,
}

impl ChannelNorm {
    /// The statistics of `shape`'s channels from `normalization`: one entry per channel, or
    /// per channel and slice for volumes (channel-major, as volumes are laid out).
    pub(crate) fn for_shape(
        normalization: &crate::augment::Normalization,
        shape: ImageShape,
    ) -> Result<ChannelNorm, crate::error::DataError> {
        let mut stats = Vec::with_capacity(shape.channels * shape.depth);
        for c in 0..shape.channels {
            let stat = normalization.channel(c, shape.channels)?;
            stats.extend(std::iter::repeat_n(stat, shape.depth));
        }
        Ok(ChannelNorm { stats })
    }
}

/// Writes one planar sample (`data`: an image, or a volume's slices) of `shape` into `out`:
/// volumes slice by slice with the same flips, rotation and intensity change, then the slice
/// order reversed when `aug.dflip`. `norm` comes from [`ChannelNorm::for_shape`].
pub(crate) fn write_planar(
    data: &[u8],
    shape: ImageShape,
    aug: &SampleAugment,
    norm: &ChannelNorm,
    out: &mut [f32],
) {
    let planes = ImageShape {
        channels: shape.channels * shape.depth,
        depth: 1,
        ..shape
    };
    let view = PixelView::planar(data, shape.width, shape.height);
    write_sample(&view, planes, aug, norm, out);
    if aug.dflip && shape.depth > 1 {
        let plane = shape.height * shape.width;
        for channel in out.chunks_exact_mut(shape.depth * plane) {
            for d in 0..shape.depth / 2 {
                let (front, back) = channel.split_at_mut((shape.depth - 1 - d) * plane);
                front[d * plane..(d + 1) * plane].swap_with_slice(&mut back[..plane]);
            }
        }
    }
}

/// Writes `view` (already at `shape`'s size) into `out` (`image_len(shape)` values, CHW),
/// transformed by `aug` and normalised by `norm`.
pub(crate) fn write_sample(
    view: &PixelView<'_>,
    shape: ImageShape,
    aug: &SampleAugment,
    norm: &ChannelNorm,
    out: &mut [f32],
) {
    debug_assert_eq!(out.len(), image_len(shape));
    debug_assert_eq!((view.width, view.height), (shape.width, shape.height));
    let (w, h) = (shape.width, shape.height);
    for (c, plane) in out.chunks_exact_mut(shape.height * shape.width).enumerate() {
        let (mean, std) = norm.stats[c];
        if let Some((cos, sin)) = aug.rotation {
            rotate_plane(view, c, aug, cos, sin, mean, 1.0 / std, plane);
            continue;
        }
        let table = aug.table(mean, std);
        for (y, row) in plane.chunks_exact_mut(w).enumerate() {
            let sy = if aug.vflip { h - 1 - y } else { y };
            let start = c * view.channel_stride + sy * view.row_stride;
            let src = &view.data[start..=start + (w - 1) * view.pixel_stride];
            match (aug.hflip, view.pixel_stride) {
                (false, 1) => {
                    for (o, &p) in row.iter_mut().zip(src) {
                        *o = table[usize::from(p)];
                    }
                }
                (false, stride) => {
                    for (o, p) in row.iter_mut().zip(src.iter().step_by(stride)) {
                        *o = table[usize::from(*p)];
                    }
                }
                (true, stride) => {
                    for (o, p) in row.iter_mut().rev().zip(src.iter().step_by(stride)) {
                        *o = table[usize::from(*p)];
                    }
                }
            }
        }
    }
}

/// One channel through flips and a rotation about the centre, sampled bilinearly.
#[allow(clippy::too_many_arguments)]
fn rotate_plane(
    view: &PixelView<'_>,
    c: usize,
    aug: &SampleAugment,
    cos: f32,
    sin: f32,
    mean: f32,
    inv_std: f32,
    plane: &mut [f32],
) {
    let (w, h) = (view.width, view.height);
    let (cx, cy) = ((w as f32 - 1.0) * 0.5, (h as f32 - 1.0) * 0.5);
    for (y, row) in plane.chunks_exact_mut(w).enumerate() {
        let dy = y as f32 - cy;
        for (x, o) in row.iter_mut().enumerate() {
            let dx = x as f32 - cx;
            // Inverse map: where in the (flipped) source this output pixel comes from.
            let mut sx = cos * dx + sin * dy + cx;
            let mut sy = -sin * dx + cos * dy + cy;
            if aug.hflip {
                sx = (w as f32 - 1.0) - sx;
            }
            if aug.vflip {
                sy = (h as f32 - 1.0) - sy;
            }
            *o = aug.intensity(view.bilinear(c, sx, sy), mean, inv_std);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(c: usize) -> ChannelNorm {
        ChannelNorm {
            stats: vec![(0.0, 1.0); c],
        }
    }

    fn shape(c: usize, h: usize, w: usize) -> ImageShape {
        ImageShape {
            channels: c,
            depth: 1,
            height: h,
            width: w,
        }
    }

    fn raw(v: f32) -> u8 {
        (v * 255.0).round() as u8
    }

    #[test]
    fn interleaved_rgb_becomes_planar() {
        // 2x1 RGB: pixel 0 = (10, 20, 30), pixel 1 = (40, 50, 60).
        let data = [10u8, 20, 30, 40, 50, 60];
        let view = PixelView::interleaved(&data, 2, 1, 3);
        let mut out = vec![0.0; 6];
        write_sample(
            &view,
            shape(3, 1, 2),
            &SampleAugment::IDENTITY,
            &norm(3),
            &mut out,
        );
        let got: Vec<u8> = out.iter().map(|&v| raw(v)).collect();
        assert_eq!(got, [10, 40, 20, 50, 30, 60]);
    }

    #[test]
    fn grey_is_repeated_and_alpha_ignored() {
        let data = [7u8, 255, 9, 0]; // grey+alpha, 2x1
        let view = PixelView::interleaved(&data, 2, 1, 2);
        let mut out = vec![0.0; 6];
        write_sample(
            &view,
            shape(3, 1, 2),
            &SampleAugment::IDENTITY,
            &norm(3),
            &mut out,
        );
        let got: Vec<u8> = out.iter().map(|&v| raw(v)).collect();
        assert_eq!(got, [7, 9, 7, 9, 7, 9]);
    }

    #[test]
    fn volumes_are_written_slice_by_slice_and_depth_flips_reverse_them() {
        // 1 channel, 3 slices of 2x2, slice d filled with 10 * (d + 1).
        let shape = ImageShape {
            channels: 1,
            depth: 3,
            height: 2,
            width: 2,
        };
        let data: Vec<u8> = (0..3).flat_map(|d| [10 * (d + 1); 4]).collect();
        let norm = ChannelNorm::for_shape(
            &crate::augment::Normalization {
                mean: vec![0.0],
                std: vec![1.0 / 255.0],
            },
            shape,
        )
        .unwrap();
        assert_eq!(norm.stats.len(), 3);
        let mut out = vec![0.0; 12];
        write_planar(&data, shape, &SampleAugment::IDENTITY, &norm, &mut out);
        let firsts: Vec<f32> = out.chunks(4).map(|p| p[0].round()).collect();
        assert_eq!(firsts, [10.0, 20.0, 30.0]);
        let flip = SampleAugment {
            dflip: true,
            ..SampleAugment::IDENTITY
        };
        write_planar(&data, shape, &flip, &norm, &mut out);
        let firsts: Vec<f32> = out.chunks(4).map(|p| p[0].round()).collect();
        assert_eq!(firsts, [30.0, 20.0, 10.0]);
    }

    #[test]
    fn flips_mirror_rows_and_columns() {
        let data = [1u8, 2, 3, 4, 5, 6]; // 3 wide, 2 high, planar grey
        let view = PixelView::planar(&data, 3, 2);
        let mut out = vec![0.0; 6];
        let aug = SampleAugment {
            hflip: true,
            ..SampleAugment::IDENTITY
        };
        write_sample(&view, shape(1, 2, 3), &aug, &norm(1), &mut out);
        assert_eq!(
            out.iter().map(|&v| raw(v)).collect::<Vec<_>>(),
            [3, 2, 1, 6, 5, 4]
        );
        let aug = SampleAugment {
            vflip: true,
            ..SampleAugment::IDENTITY
        };
        write_sample(&view, shape(1, 2, 3), &aug, &norm(1), &mut out);
        assert_eq!(
            out.iter().map(|&v| raw(v)).collect::<Vec<_>>(),
            [4, 5, 6, 1, 2, 3]
        );
    }

    #[test]
    fn quarter_turn_rotates_exactly_and_flip_composes() {
        // 3x3 with distinct values; a 90 degree rotation is exact on the pixel grid.
        let data: Vec<u8> = (1..=9).collect();
        let view = PixelView::planar(&data, 3, 3);
        let mut out = vec![0.0; 9];
        let aug = SampleAugment {
            rotation: Some((0.0, 1.0)),
            ..SampleAugment::IDENTITY
        };
        write_sample(&view, shape(1, 3, 3), &aug, &norm(1), &mut out);
        let got: Vec<u8> = out.iter().map(|&v| raw(v)).collect();
        // out(x, y) = src(cx + dy, cy - dx): the top row reads the source's left column
        // from the bottom up.
        assert_eq!(got, [7, 4, 1, 8, 5, 2, 9, 6, 3]);
        // An identity rotation (cos 1, sin 0) with the rotate path equals the fast path.
        let aug = SampleAugment {
            rotation: Some((1.0, 0.0)),
            hflip: true,
            ..SampleAugment::IDENTITY
        };
        let mut slow = vec![0.0; 9];
        write_sample(&view, shape(1, 3, 3), &aug, &norm(1), &mut slow);
        let fast_aug = SampleAugment {
            hflip: true,
            ..SampleAugment::IDENTITY
        };
        let mut fast = vec![0.0; 9];
        write_sample(&view, shape(1, 3, 3), &fast_aug, &norm(1), &mut fast);
        for (a, b) in slow.iter().zip(&fast) {
            assert!((a - b).abs() < 1e-6);
        }
    }
}
