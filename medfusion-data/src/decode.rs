//! Decoding image files into reusable buffers.
//!
//! PNGs at the target size take a fast path: the `png` crate decodes straight into a
//! buffer that is reused from sample to sample, and the batch writer reads it through a
//! strided view (no conversion copy). Anything else (JPEG, other sizes, RGB to grey) goes
//! through the `image` crate's conversions and its antialiased resize.

use std::io::{Cursor, Read};
use std::path::Path;

use image::{DynamicImage, ImageBuffer, imageops::FilterType};

use crate::ImageShape;
use crate::error::DataError;
use crate::pixels::PixelView;

const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// Buffers one worker reuses for every image it decodes.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    file: Vec<u8>,
    pixels: Vec<u8>,
}

/// The file extensions taken as images (compared lowercase).
pub(crate) const IMAGE_EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// Whether `path` has an image extension.
pub(crate) fn is_image_file(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

fn decode_error(path: &Path, source: impl std::error::Error + Send + Sync + 'static) -> DataError {
    DataError::Decode {
        path: path.to_path_buf(),
        source: Box::new(source),
    }
}

/// An error unless a `width` x `height` image is within `max_pixels`.
fn check_size(path: &Path, width: u32, height: u32, max_pixels: u64) -> Result<(), DataError> {
    if u64::from(width) * u64::from(height) > max_pixels {
        return Err(DataError::ImageTooLarge {
            path: path.to_path_buf(),
            width: width.into(),
            height: height.into(),
            limit: max_pixels,
        });
    }
    Ok(())
}

/// The `image` crate's limits for images of at most `max_pixels`: what the decoder may
/// allocate (16-bit RGBA, 8 bytes a pixel, plus room for its own tables).
fn image_limits(max_pixels: u64) -> image::Limits {
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(max_pixels.saturating_mul(8).saturating_add(64 << 20));
    limits
}

/// Decodes the image at `path` and returns a view of it at `shape`'s size and channels;
/// an image larger than `max_pixels` (by its header) is an error, before anything is
/// decoded.
pub(crate) fn decode_file<'s>(
    path: &Path,
    shape: ImageShape,
    max_pixels: u64,
    scratch: &'s mut Scratch,
) -> Result<PixelView<'s>, DataError> {
    scratch.file.clear();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_end(&mut scratch.file))
        .map_err(|e| DataError::io(path, e))?;
    decode_bytes(path, shape, max_pixels, scratch)
}

/// Decodes `scratch.file` (the bytes of `path`).
fn decode_bytes<'s>(
    path: &Path,
    shape: ImageShape,
    max_pixels: u64,
    scratch: &'s mut Scratch,
) -> Result<PixelView<'s>, DataError> {
    let image = if scratch.file.starts_with(PNG_SIGNATURE) {
        let (width, height, samples) =
            decode_png(path, &scratch.file, max_pixels, &mut scratch.pixels)?;
        let needs_luma = shape.channels == 1 && samples >= 3;
        if (width, height) == (shape.width, shape.height) && !needs_luma {
            let len = width * height * samples;
            return Ok(PixelView::interleaved(
                &scratch.pixels[..len],
                width,
                height,
                samples,
            ));
        }
        png_to_dynamic(
            path,
            width,
            height,
            samples,
            std::mem::take(&mut scratch.pixels),
        )?
    } else {
        decode_other(path, &scratch.file, max_pixels)?
    };
    let (w, h) = (shape.width as u32, shape.height as u32);
    let resize = |img: DynamicImage| {
        if (img.width(), img.height()) == (w, h) {
            img
        } else {
            img.resize_exact(w, h, FilterType::Triangle)
        }
    };
    scratch.pixels = if shape.channels == 1 {
        resize(image).into_luma8().into_raw()
    } else {
        resize(image).into_rgb8().into_raw()
    };
    Ok(PixelView::interleaved(
        &scratch.pixels,
        shape.width,
        shape.height,
        shape.channels,
    ))
}

/// Decodes a JPEG (or any other format the `image` crate was built with), turned upright
/// as its EXIF orientation says (phone photos of skin lesions often carry one).
fn decode_other(path: &Path, bytes: &[u8], max_pixels: u64) -> Result<DynamicImage, DataError> {
    use image::ImageDecoder;
    let err = |e| decode_error(path, e);
    let mut reader = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| err(image::ImageError::IoError(e)))?;
    reader.limits(image_limits(max_pixels));
    let mut decoder = reader.into_decoder().map_err(err)?;
    let (width, height) = decoder.dimensions();
    check_size(path, width, height, max_pixels)?;
    let orientation = decoder.orientation().map_err(err)?;
    let mut image = DynamicImage::from_decoder(decoder).map_err(err)?;
    image.apply_orientation(orientation);
    Ok(image)
}

/// Decodes a PNG into `out` as 8-bit samples; returns width, height and samples per pixel.
fn decode_png(
    path: &Path,
    bytes: &[u8],
    max_pixels: u64,
    out: &mut Vec<u8>,
) -> Result<(usize, usize, usize), DataError> {
    // The decoder's own buffers (chunks, rows) stay below what the image may need; the
    // output goes to `out`, sized below only after the header's size is checked.
    let limit = usize::try_from(max_pixels.saturating_mul(8).saturating_add(64 << 20));
    let mut decoder = png::Decoder::new_with_limits(
        Cursor::new(bytes),
        png::Limits {
            bytes: limit.unwrap_or(usize::MAX),
        },
    );
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().map_err(|e| decode_error(path, e))?;
    let (width, height) = (reader.info().width, reader.info().height);
    check_size(path, width, height, max_pixels)?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| decode_error(path, std::io::Error::other("image too large")))?;
    if out.len() < size {
        out.resize(size, 0);
    }
    let info = reader.next_frame(out).map_err(|e| decode_error(path, e))?;
    let samples = info.color_type.samples();
    Ok((info.width as usize, info.height as usize, samples))
}

fn png_to_dynamic(
    path: &Path,
    width: usize,
    height: usize,
    samples: usize,
    mut pixels: Vec<u8>,
) -> Result<DynamicImage, DataError> {
    pixels.truncate(width * height * samples);
    let (w, h) = (width as u32, height as u32);
    let bad = || {
        decode_error(
            path,
            std::io::Error::other("decoded buffer has the wrong size"),
        )
    };
    Ok(match samples {
        1 => DynamicImage::ImageLuma8(ImageBuffer::from_raw(w, h, pixels).ok_or_else(bad)?),
        2 => DynamicImage::ImageLumaA8(ImageBuffer::from_raw(w, h, pixels).ok_or_else(bad)?),
        3 => DynamicImage::ImageRgb8(ImageBuffer::from_raw(w, h, pixels).ok_or_else(bad)?),
        _ => DynamicImage::ImageRgba8(ImageBuffer::from_raw(w, h, pixels).ok_or_else(bad)?),
    })
}

/// Reads just enough of `path` to check that it is an image it can decode (its header),
/// no larger than `max_pixels`; returns its width and height.
pub(crate) fn probe(path: &Path, max_pixels: u64) -> Result<(u32, u32), DataError> {
    let mut reader = image::ImageReader::open(path)
        .map_err(|e| DataError::io(path, e))?
        .with_guessed_format()
        .map_err(|e| DataError::io(path, e))?;
    reader.limits(image_limits(max_pixels));
    let (width, height) = reader
        .into_dimensions()
        .map_err(|e| decode_error(path, e))?;
    check_size(path, width, height, max_pixels)?;
    Ok((width, height))
}

/// Decodes `path` in full (used to weed out bad files when they are to be skipped).
pub(crate) fn check_decodes(
    path: &Path,
    shape: ImageShape,
    max_pixels: u64,
) -> Result<(), DataError> {
    let mut scratch = Scratch::default();
    decode_file(path, shape, max_pixels, &mut scratch).map(|_| ())
}

/// Decodes in-memory image bytes (for tests and tools) into a view at `shape`.
#[cfg(test)]
pub(crate) fn decode_memory<'s>(
    bytes: &[u8],
    shape: ImageShape,
    scratch: &'s mut Scratch,
) -> Result<PixelView<'s>, DataError> {
    scratch.file.clear();
    scratch.file.extend_from_slice(bytes);
    decode_bytes(Path::new("<memory>"), shape, u64::MAX, scratch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{GrayImage, ImageFormat, Luma, Rgb, RgbImage};

    fn encode(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    fn shape(channels: usize, size: usize) -> ImageShape {
        ImageShape {
            channels,
            depth: 1,
            height: size,
            width: size,
        }
    }

    fn pixel(view: &PixelView<'_>, c: usize, y: usize, x: usize) -> u8 {
        view.data[c * view.channel_stride + y * view.row_stride + x * view.pixel_stride]
    }

    #[test]
    fn grey_png_at_size_is_read_without_conversion() {
        let img = GrayImage::from_fn(4, 4, |x, y| Luma([(x * 10 + y) as u8]));
        let bytes = encode(&DynamicImage::ImageLuma8(img), ImageFormat::Png);
        let mut scratch = Scratch::default();
        let view = decode_memory(&bytes, shape(3, 4), &mut scratch).unwrap();
        assert_eq!(view.channel_stride, 0, "grey read as RGB without a copy");
        assert_eq!(pixel(&view, 2, 1, 3), 31);
    }

    #[test]
    fn rgb_png_to_grey_uses_luma() {
        let img = RgbImage::from_pixel(2, 2, Rgb([255, 0, 0]));
        let bytes = encode(&DynamicImage::ImageRgb8(img), ImageFormat::Png);
        let mut scratch = Scratch::default();
        let view = decode_memory(&bytes, shape(1, 2), &mut scratch).unwrap();
        let v = pixel(&view, 0, 0, 0);
        assert!((50..=80).contains(&v), "red has luma near 54-76, got {v}");
    }

    #[test]
    fn jpeg_is_decoded_and_resized() {
        let img = RgbImage::from_pixel(16, 8, Rgb([200, 100, 50]));
        let bytes = encode(&DynamicImage::ImageRgb8(img), ImageFormat::Jpeg);
        let mut scratch = Scratch::default();
        let view = decode_memory(&bytes, shape(3, 4), &mut scratch).unwrap();
        assert_eq!((view.width, view.height), (4, 4));
        let (r, g, b) = (
            pixel(&view, 0, 2, 2),
            pixel(&view, 1, 2, 2),
            pixel(&view, 2, 2, 2),
        );
        assert!(r.abs_diff(200) < 8 && g.abs_diff(100) < 8 && b.abs_diff(50) < 8);
    }

    #[test]
    fn jpeg_exif_orientation_is_applied() {
        use image::ImageEncoder;
        // 8x4: dark left half, bright right half.
        let img = GrayImage::from_fn(8, 4, |x, _| Luma([if x < 4 { 20 } else { 230 }]));
        // A big-endian TIFF block with one IFD entry: Orientation (0x0112) = 3 (180 degrees).
        let exif = [
            b"MM\0*\0\0\0\x08".as_slice(),
            &[0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 3, 0, 0, 0, 0, 0, 0],
        ]
        .concat();
        let mut bytes = Vec::new();
        let mut encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 95);
        encoder.set_exif_metadata(exif).unwrap();
        encoder
            .write_image(img.as_raw(), 8, 4, image::ExtendedColorType::L8)
            .unwrap();
        let mut scratch = Scratch::default();
        let view = decode_memory(&bytes, shape(1, 4), &mut scratch).unwrap();
        // Turned upright (180 degrees): bright on the left now.
        assert!(pixel(&view, 0, 1, 0) > 200, "{}", pixel(&view, 0, 1, 0));
        assert!(pixel(&view, 0, 1, 3) < 50, "{}", pixel(&view, 0, 1, 3));
    }

    #[test]
    fn sixteen_bit_png_is_stripped_to_eight() {
        let img = ImageBuffer::<Luma<u16>, _>::from_pixel(3, 3, Luma([0xABCD]));
        let bytes = encode(&DynamicImage::ImageLuma16(img), ImageFormat::Png);
        let mut scratch = Scratch::default();
        let view = decode_memory(&bytes, shape(1, 3), &mut scratch).unwrap();
        assert_eq!(pixel(&view, 0, 1, 1), 0xAB);
    }

    #[test]
    fn truncated_png_names_the_file() {
        let img = GrayImage::from_pixel(8, 8, Luma([9]));
        let bytes = encode(&DynamicImage::ImageLuma8(img), ImageFormat::Png);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broken.png");
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        let err = check_decodes(&path, shape(1, 8), u64::MAX).unwrap_err();
        assert!(matches!(err, DataError::Decode { .. }), "{err:?}");
        assert!(err.to_string().contains("broken.png"), "{err}");
        let not_image = dir.path().join("notes.png");
        std::fs::write(&not_image, b"hello").unwrap();
        assert!(
            check_decodes(&not_image, shape(1, 8), u64::MAX)
                .unwrap_err()
                .to_string()
                .contains("notes.png")
        );
    }
}
