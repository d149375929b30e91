//! Tests of the loaders on small files of the real formats, written into temp dirs.

mod csv;
mod export;
mod hardening;
mod image_folder;
mod loader;
mod multimodal;
mod npz;
mod synthetic;

use std::io::Write;
use std::path::Path;

use image::{DynamicImage, GrayImage, ImageFormat, Luma, Rgb, RgbImage};

/// Writes a `size`x`size` grey PNG filled with `value`.
pub(super) fn write_grey_png(path: &Path, size: u32, value: u8) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    GrayImage::from_pixel(size, size, Luma([value]))
        .save_with_format(path, ImageFormat::Png)
        .unwrap();
}

/// Writes a `w`x`h` RGB image (PNG or JPEG by extension) filled with `rgb`.
pub(super) fn write_rgb(path: &Path, w: u32, h: u32, rgb: [u8; 3]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    DynamicImage::ImageRgb8(RgbImage::from_pixel(w, h, Rgb(rgb)))
        .save(path)
        .unwrap();
}

/// Writes a text file.
pub(super) fn write_text(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::File::create(path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
}

/// One array of an `.npz` archive: name, shape, and data (u8 or i64).
pub(super) enum NpyArray<'a> {
    U8(&'a str, Vec<u64>, Vec<u8>),
    I64(&'a str, Vec<u64>, Vec<i64>),
    F32(&'a str, Vec<u64>, Vec<f32>),
}

/// Writes an `.npz` through the crate's own writer (the one `medfusion example-data` uses).
pub(super) fn write_npz(path: &Path, arrays: &[NpyArray<'_>]) {
    let file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut npz = crate::export::NpzWriter::new(file);
    for array in arrays {
        match array {
            NpyArray::U8(name, shape, data) => npz.array(name, shape, data),
            NpyArray::I64(name, shape, data) => npz.array(name, shape, data),
            NpyArray::F32(name, shape, data) => npz.array(name, shape, data),
        }
        .unwrap();
    }
    npz.finish().unwrap().flush().unwrap();
}

/// Raw intensity (0..=255) back from a value normalised with mean 0.5, std 0.5.
pub(super) fn raw(v: f32) -> u8 {
    ((v * 0.5 + 0.5) * 255.0).round() as u8
}
