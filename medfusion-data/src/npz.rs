//! `dataset.npz`: MedMNIST-style NumPy archives (`train_images`, `train_labels`, `val_*`,
//! `test_*`; images `uint8` N×H×W or N×H×W×C, labels N or N×1).

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageBuffer, imageops::FilterType};
use medfusion_graph::{ConfigIssue, NodeConfig};
use npyz::{NpyFile, TypeChar};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ImageShape;
use crate::dataset::{DatasetKind, DatasetMeta, DatasetSplits, ImageSource, SplitSizes, image_len};
use crate::error::{DataError, list_some};
use crate::image_folder::{MAX_CLASSES, check_image_config};
use crate::split::{Carving, SplitParts, assemble, check_fractions, stratified_split};

/// Config of `dataset.npz`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct NpzConfig {
    /// The `.npz` archive.
    #[schemars(extend("format" = "path", "x-required" = true))]
    pub path: PathBuf,
    /// Side of the square images after resizing (default: the archive's own size).
    #[schemars(range(min = 1, max = 4096))]
    pub image_size: Option<usize>,
    /// 1 or 3 channels (default: the archive's own).
    #[schemars(range(min = 1, max = 3))]
    pub channels: Option<usize>,
    /// Class names in label order (default: `0`, `1`, ...).
    pub classes: Vec<String>,
    /// Fraction of train held out for validation when the archive has no `val_*` arrays.
    #[schemars(range(min = 0.0), extend("exclusiveMaximum" = 1.0))]
    pub val_fraction: f64,
    /// Fraction of train held out for test when the archive has no `test_*` arrays.
    #[schemars(range(min = 0.0), extend("exclusiveMaximum" = 1.0))]
    pub test_fraction: f64,
    /// Seed of those splits (default: the workflow's).
    #[schemars(transform = medfusion_graph::no_default)]
    pub seed: u64,
}

impl Default for NpzConfig {
    fn default() -> Self {
        NpzConfig {
            path: PathBuf::new(),
            image_size: None,
            channels: None,
            classes: Vec::new(),
            val_fraction: 0.15,
            test_fraction: 0.15,
            seed: 42,
        }
    }
}

impl NodeConfig for NpzConfig {
    fn check(&self) -> Vec<ConfigIssue> {
        crate::split::image_dataset_issues(self.channels, self.val_fraction, self.test_fraction)
    }
}

fn bad_array(path: &Path, array: &str, reason: impl Into<String>) -> DataError {
    DataError::BadArray {
        path: path.to_path_buf(),
        array: array.to_string(),
        reason: reason.into(),
    }
}

/// Images as stored: interleaved (HWC) `u8`.
struct RawImages {
    data: Vec<u8>,
    count: usize,
    height: usize,
    width: usize,
    samples: usize,
}

struct Archive {
    path: PathBuf,
    zip: zip::ZipArchive<BufReader<File>>,
    names: Vec<String>,
    /// The archive's size in bytes (no entry can hold more compressed data).
    file_len: u64,
}

/// The most an entry may inflate relative to its compressed size: deflate's limit is about
/// 1032 to 1, so an archive claiming more is damaged or malicious.
const MAX_INFLATE_RATIO: u64 = 1100;

/// The longest `.npy` header accepted (NumPy itself reads at most 10,000 bytes).
const MAX_NPY_HEADER: u64 = 65_536;

/// Integers of any width as `i128`, to check them as labels.
fn wide<T: Into<i128>>(v: Vec<T>) -> Vec<i128> {
    v.into_iter().map(Into::into).collect()
}

/// `a×b×c` for messages.
fn dims(shape: &[u64]) -> String {
    shape
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join("×")
}

impl Archive {
    fn open(path: &Path) -> Result<Archive, DataError> {
        let file = File::open(path).map_err(|e| DataError::io(path, e))?;
        let file_len = file.metadata().map_err(|e| DataError::io(path, e))?.len();
        let zip = zip::ZipArchive::new(BufReader::new(file)).map_err(|e| DataError::Npz {
            path: path.to_path_buf(),
            source: Box::new(e),
        })?;
        let names = zip
            .file_names()
            .map(|n| n.map(|n| n.trim_end_matches(".npy").to_string()))
            .collect::<Result<_, _>>()
            .map_err(|e| DataError::Npz {
                path: path.to_path_buf(),
                source: Box::new(e),
            })?;
        Ok(Archive {
            path: path.to_path_buf(),
            zip,
            names,
            file_len,
        })
    }

    fn has(&self, array: &str) -> bool {
        self.names.iter().any(|n| n == array)
    }

    fn bad(&self, array: &str, reason: impl Into<String>) -> DataError {
        bad_array(&self.path, array, reason)
    }

    fn array(&mut self, array: &str) -> Result<NpyFile<impl Read + '_>, DataError> {
        if !self.has(array) {
            let mut names = self.names.clone();
            names.sort();
            return Err(DataError::MissingArray {
                path: self.path.clone(),
                array: array.to_string(),
                available: list_some(names, 20),
            });
        }
        let path = self.path.clone();
        let npz_err = |e: Box<dyn std::error::Error + Send + Sync>| DataError::Npz {
            path: path.clone(),
            source: e,
        };
        let file_len = self.file_len;
        let mut entry = self
            .zip
            .by_name(&format!("{array}.npy"))
            .map_err(|e| npz_err(Box::new(e)))?;
        // What the archive's directory claims, bounded by what deflate can do with the bytes
        // the file holds: nothing below reads or allocates more than this.
        let ratio = if entry.compression() == zip::CompressionMethod::Stored {
            1
        } else {
            MAX_INFLATE_RATIO
        };
        let possible = entry
            .compressed_size()
            .min(file_len)
            .saturating_mul(ratio)
            .saturating_add(4096);
        let size = entry.size();
        if size > possible {
            return Err(bad_array(
                &path,
                array,
                format!(
                    "the archive claims it inflates to {size} bytes from {} compressed bytes, \
                     more than is possible (a damaged or forged archive)",
                    entry.compressed_size()
                ),
            ));
        }
        // The header's length, checked before the reader allocates a buffer of that size.
        let mut prefix = vec![0u8; 10];
        entry
            .read_exact(&mut prefix)
            .map_err(|e| npz_err(Box::new(e)))?;
        let header_len = if prefix[6] >= 2 {
            let mut more = [0u8; 2];
            entry
                .read_exact(&mut more)
                .map_err(|e| npz_err(Box::new(e)))?;
            prefix.extend_from_slice(&more);
            u64::from(u32::from_le_bytes([prefix[8], prefix[9], more[0], more[1]]))
        } else {
            u64::from(u16::from_le_bytes([prefix[8], prefix[9]]))
        };
        let header_bytes = prefix.len() as u64 + header_len;
        if header_len > MAX_NPY_HEADER || header_bytes > size {
            return Err(bad_array(
                &path,
                array,
                format!(
                    "has a header of {header_len} bytes in an entry of {size}; is it a NumPy \
                     array?"
                ),
            ));
        }
        let npy = NpyFile::new(std::io::Cursor::new(prefix).chain(entry))
            .map_err(|e| npz_err(Box::new(e)))?;
        if npy.order() == npyz::Order::Fortran {
            return Err(bad_array(
                &path,
                array,
                "is stored in Fortran order; save it in C order (np.ascontiguousarray)",
            ));
        }
        // The shape must fit the bytes there are, before anything is allocated for it.
        let item = npy.dtype().num_bytes().unwrap_or(1).max(1) as u64;
        let values = npy.shape().iter().try_fold(1u64, |n, &d| n.checked_mul(d));
        let available = size - header_bytes;
        match values.and_then(|v| v.checked_mul(item)) {
            Some(bytes) if bytes <= available => {}
            _ => {
                return Err(bad_array(
                    &path,
                    array,
                    format!(
                        "claims the shape {} ({} values of {item} byte(s) each), but the archive \
                         holds {available} bytes for it (a damaged or forged file)",
                        dims(npy.shape()),
                        values.map_or_else(|| "too many".to_owned(), |v| v.to_string())
                    ),
                ));
            }
        }
        Ok(npy)
    }

    fn images(&mut self, array: &str) -> Result<RawImages, DataError> {
        let path = self.path.clone();
        let npy = self.array(array)?;
        let shape: Vec<u64> = npy.shape().to_vec();
        let dtype = npy.dtype();
        let npyz::DType::Plain(ty) = &dtype else {
            return Err(bad_array(&path, array, "must be a plain uint8 array"));
        };
        if ty.type_char() != TypeChar::Uint || ty.size_field() != 1 {
            return Err(bad_array(
                &path,
                array,
                format!("must hold uint8 pixels, found dtype `{ty}`"),
            ));
        }
        let (count, height, width, samples) = match shape[..] {
            [n, h, w] if h > 0 && w > 0 => (n, h, w, 1),
            [n, h, w, c] if h > 0 && w > 0 && matches!(c, 1 | 3 | 4) => (n, h, w, c),
            _ => {
                return Err(bad_array(
                    &path,
                    array,
                    format!(
                        "has shape {}; expected N×H×W or N×H×W×C with H, W above 0 and C 1, 3 \
                         or 4",
                        dims(&shape)
                    ),
                ));
            }
        };
        // The shape fits the archive's bytes (checked in `array`), so these fit in memory.
        let [count, height, width, samples] = [count, height, width, samples].map(|d| d as usize);
        let data = npy
            .into_vec::<u8>()
            .map_err(|e| bad_array(&path, array, e.to_string()))?;
        Ok(RawImages {
            data,
            count,
            height,
            width,
            samples,
        })
    }

    /// Class indices, each checked to be in 0..MAX_CLASSES.
    fn labels(&mut self, array: &str) -> Result<Vec<u32>, DataError> {
        let path = self.path.clone();
        let npy = self.array(array)?;
        let shape: Vec<u64> = npy.shape().to_vec();
        if !matches!(shape[..], [_] | [_, 1]) {
            return Err(bad_array(
                &path,
                array,
                format!(
                    "has shape {}; expected N or N×1 class indices (multi-label targets are not \
                     supported)",
                    dims(&shape)
                ),
            ));
        }
        let npyz::DType::Plain(ty) = npy.dtype() else {
            return Err(bad_array(&path, array, "must be a plain integer array"));
        };
        let err = |e: std::io::Error| e.to_string();
        let values: Result<Vec<i128>, String> = match (ty.type_char(), ty.size_field()) {
            (TypeChar::Uint, 1) => npy.into_vec::<u8>().map(wide).map_err(err),
            (TypeChar::Uint, 2) => npy.into_vec::<u16>().map(wide).map_err(err),
            (TypeChar::Uint, 4) => npy.into_vec::<u32>().map(wide).map_err(err),
            (TypeChar::Uint, 8) => npy.into_vec::<u64>().map(wide).map_err(err),
            (TypeChar::Int, 1) => npy.into_vec::<i8>().map(wide).map_err(err),
            (TypeChar::Int, 2) => npy.into_vec::<i16>().map(wide).map_err(err),
            (TypeChar::Int, 4) => npy.into_vec::<i32>().map(wide).map_err(err),
            (TypeChar::Int, 8) => npy.into_vec::<i64>().map(wide).map_err(err),
            _ => Err(format!(
                "must hold integer class indices, found dtype `{ty}`"
            )),
        };
        let values = values.map_err(|reason| bad_array(&path, array, reason))?;
        values
            .into_iter()
            .map(|v| match u32::try_from(v) {
                Ok(label) if (label as usize) < MAX_CLASSES => Ok(label),
                _ if v < 0 => Err(bad_array(
                    &path,
                    array,
                    format!("labels must be 0..K-1 class indices, found the negative label {v}"),
                )),
                _ => Err(bad_array(
                    &path,
                    array,
                    format!(
                        "labels must be 0..K-1 class indices with K at most {MAX_CLASSES}, found \
                         the label {v}"
                    ),
                )),
            })
            .collect()
    }
}

/// Converts interleaved images to planar `u8` at `shape` (resizing and converting colour
/// through the `image` crate when needed).
fn to_planar(raw: &RawImages, shape: ImageShape) -> Vec<u8> {
    let len = image_len(shape);
    let per = raw.height * raw.width * raw.samples;
    let mut out = vec![0u8; raw.count * len];
    let plane = shape.height * shape.width;
    for (src, dst) in raw.data.chunks_exact(per).zip(out.chunks_exact_mut(len)) {
        let direct = (raw.height, raw.width) == (shape.height, shape.width)
            && (shape.channels == 3 || raw.samples < 3);
        let converted;
        let (pixels, samples) = if direct {
            (src, raw.samples)
        } else {
            let (w, h) = (raw.width as u32, raw.height as u32);
            let v = src.to_vec();
            let img = match raw.samples {
                1 => ImageBuffer::from_raw(w, h, v).map(DynamicImage::ImageLuma8),
                3 => ImageBuffer::from_raw(w, h, v).map(DynamicImage::ImageRgb8),
                _ => ImageBuffer::from_raw(w, h, v).map(DynamicImage::ImageRgba8),
            }
            .expect("chunk length matches the image size");
            let img = img.resize_exact(
                shape.width as u32,
                shape.height as u32,
                FilterType::Triangle,
            );
            converted = if shape.channels == 1 {
                img.into_luma8().into_raw()
            } else {
                img.into_rgb8().into_raw()
            };
            (&converted[..], shape.channels)
        };
        for c in 0..shape.channels {
            let sc = if samples >= 3 { c } else { 0 };
            for (i, o) in dst[c * plane..(c + 1) * plane].iter_mut().enumerate() {
                *o = pixels[i * samples + sc];
            }
        }
    }
    out
}

/// Loads a `dataset.npz`.
pub fn load_npz(config: &NpzConfig) -> Result<DatasetSplits, DataError> {
    check_fractions(config.val_fraction, config.test_fraction)?;
    if config.path.as_os_str().is_empty() {
        return Err(DataError::config("path", "is required (the .npz archive)"));
    }
    let mut archive = Archive::open(&config.path)?;
    let mut loaded: Vec<Option<(RawImages, Vec<u32>)>> = Vec::new();
    for split in ["train", "val", "test"] {
        let (img, lab) = (format!("{split}_images"), format!("{split}_labels"));
        if split != "train" && !archive.has(&img) && !archive.has(&lab) {
            loaded.push(None);
            continue;
        }
        let images = archive.images(&img)?;
        let labels = archive.labels(&lab)?;
        if labels.len() != images.count {
            return Err(archive.bad(
                &lab,
                format!("has {} labels for {} images", labels.len(), images.count),
            ));
        }
        loaded.push(Some((images, labels)));
    }
    let native = loaded[0]
        .as_ref()
        .map(|(i, _)| (i.height, i.width, i.samples))
        .unwrap_or_default();
    for (split, entry) in ["train", "val", "test"].iter().zip(&loaded) {
        if let Some((i, _)) = entry
            && (i.height, i.width, i.samples) != native
        {
            return Err(archive.bad(
                &format!("{split}_images"),
                "has a different image shape than `train_images`",
            ));
        }
    }
    let channels = config.channels.unwrap_or(if native.2 >= 3 { 3 } else { 1 });
    let mut shape = check_image_config(config.image_size.unwrap_or(native.0.max(1)), channels)?;
    if config.image_size.is_none() {
        (shape.height, shape.width) = (native.0, native.1);
    }

    let max_label = loaded
        .iter()
        .flatten()
        .flat_map(|(_, l)| l.iter())
        .copied()
        .max()
        .unwrap_or(0);
    // Labels are below MAX_CLASSES (checked as they are read).
    let num_classes = (max_label as usize + 1).max(2);
    let classes = if config.classes.is_empty() {
        (0..num_classes).map(|k| k.to_string()).collect()
    } else if config.classes.len() < max_label as usize + 1 {
        return Err(DataError::config(
            "classes",
            format!(
                "names {} classes, but the labels go up to {max_label}",
                config.classes.len()
            ),
        ));
    } else if config.classes.len() > MAX_CLASSES {
        return Err(DataError::config(
            "classes",
            format!(
                "names {} classes, more than the {MAX_CLASSES} a dataset may have",
                config.classes.len()
            ),
        ));
    } else {
        config.classes.clone()
    };

    // Per split: planar pixels, labels and ids (`<split>-<row>` of the archive); missing
    // splits come out of train.
    let len = image_len(shape);
    let mut splits: Vec<SplitParts> = ["train", "val", "test"]
        .iter()
        .zip(&loaded)
        .map(|(name, e)| match e {
            Some((images, labels)) => SplitParts {
                ids: (0..labels.len()).map(|i| format!("{name}-{i}")).collect(),
                labels: labels.clone(),
                images: Some(ImageSource::Pixels(to_planar(images, shape))),
                tabular: None,
            },
            None => SplitParts {
                images: Some(ImageSource::Pixels(Vec::new())),
                ..SplitParts::default()
            },
        })
        .collect();
    let carve = [
        if loaded[1].is_none() {
            config.val_fraction
        } else {
            0.0
        },
        if loaded[2].is_none() {
            config.test_fraction
        } else {
            0.0
        },
    ];
    let carving = Carving {
        samples: splits[0].labels.len(),
        fractions: carve,
        per_class: true,
    };
    if carve != [0.0, 0.0] {
        let train = std::mem::take(&mut splits[0]);
        let Some(ImageSource::Pixels(pixels)) = &train.images else {
            unreachable!("npz splits hold pixels")
        };
        let rows = stratified_split(
            &train.labels,
            classes.len(),
            carve[0],
            carve[1],
            config.seed,
        );
        for (s, rows) in rows.iter().enumerate() {
            if s == 0 || carve[s - 1] > 0.0 {
                let mut part = SplitParts::select(&train.labels, &train.ids, rows);
                part.images = Some(ImageSource::Pixels(
                    rows.iter()
                        .flat_map(|&r| pixels[r * len..(r + 1) * len].iter().copied())
                        .collect(),
                ));
                splits[s] = part;
            }
        }
    }
    let meta = DatasetMeta {
        source: config.path.display().to_string(),
        kind: DatasetKind::Image,
        classes,
        image: Some(shape),
        features: Vec::new(),
        split_sizes: SplitSizes::default(),
    };
    assemble(
        meta,
        splits
            .try_into()
            .map_err(|_| DataError::input("splits", "expected three"))?,
        Some(carving),
    )
}
