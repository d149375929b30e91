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
use crate::data::dataset::{
    DatasetKind, DatasetMeta, DatasetSplits, ImageSource, SplitSizes, image_len,
};
use crate::data::error::{DataError, list_some};
use crate::data::image_folder::check_image_config;
use crate::data::split::{SplitParts, assemble, check_fractions, stratified_split};

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
        let mut issues = Vec::new();
        if let Some(c) = self.channels
            && c == 2
        {
            issues.push(ConfigIssue::invalid(
                "channels",
                "must be 1 (grayscale) or 3 (RGB), not 2",
            ));
        }
        issues.extend(crate::data::split::fraction_issues(
            self.val_fraction,
            self.test_fraction,
        ));
        issues
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
}

impl Archive {
    fn open(path: &Path) -> Result<Archive, DataError> {
        let file = File::open(path).map_err(|e| DataError::io(path, e))?;
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
        let entry = self
            .zip
            .by_name(&format!("{array}.npy"))
            .map_err(|e| npz_err(Box::new(e)))?;
        let npy = NpyFile::new(entry).map_err(|e| npz_err(Box::new(e)))?;
        if npy.order() == npyz::Order::Fortran {
            return Err(bad_array(
                &path,
                array,
                "is stored in Fortran order; save it in C order (np.ascontiguousarray)",
            ));
        }
        Ok(npy)
    }

    fn images(&mut self, array: &str) -> Result<RawImages, DataError> {
        let path = self.path.clone();
        let npy = self.array(array)?;
        let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
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
            [n, h, w] => (n, h, w, 1),
            [n, h, w, c] if matches!(c, 1 | 3 | 4) => (n, h, w, c),
            _ => {
                return Err(bad_array(
                    &path,
                    array,
                    format!("has shape {shape:?}; expected N×H×W or N×H×W×C with C 1, 3 or 4"),
                ));
            }
        };
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

    fn labels(&mut self, array: &str) -> Result<Vec<i64>, DataError> {
        let path = self.path.clone();
        let npy = self.array(array)?;
        let shape: Vec<u64> = npy.shape().to_vec();
        if !matches!(shape[..], [_] | [_, 1]) {
            return Err(bad_array(
                &path,
                array,
                format!(
                    "has shape {shape:?}; expected N or N×1 class indices (multi-label targets are not supported)"
                ),
            ));
        }
        let npyz::DType::Plain(ty) = npy.dtype() else {
            return Err(bad_array(&path, array, "must be a plain integer array"));
        };
        let err = |e: std::io::Error| e.to_string();
        let values: Result<Vec<i64>, String> = match (ty.type_char(), ty.size_field()) {
            (TypeChar::Uint, 1) => npy
                .into_vec::<u8>()
                .map(|v| v.into_iter().map(i64::from).collect())
                .map_err(err),
            (TypeChar::Uint, 2) => npy
                .into_vec::<u16>()
                .map(|v| v.into_iter().map(i64::from).collect())
                .map_err(err),
            (TypeChar::Uint, 4) => npy
                .into_vec::<u32>()
                .map(|v| v.into_iter().map(i64::from).collect())
                .map_err(err),
            (TypeChar::Uint, 8) => npy
                .into_vec::<u64>()
                .map(|v| v.into_iter().map(|x| x as i64).collect())
                .map_err(err),
            (TypeChar::Int, 1) => npy
                .into_vec::<i8>()
                .map(|v| v.into_iter().map(i64::from).collect())
                .map_err(err),
            (TypeChar::Int, 2) => npy
                .into_vec::<i16>()
                .map(|v| v.into_iter().map(i64::from).collect())
                .map_err(err),
            (TypeChar::Int, 4) => npy
                .into_vec::<i32>()
                .map(|v| v.into_iter().map(i64::from).collect())
                .map_err(err),
            (TypeChar::Int, 8) => npy.into_vec::<i64>().map_err(err),
            _ => Err(format!(
                "must hold integer class indices, found dtype `{ty}`"
            )),
        };
        let values = values.map_err(|reason| bad_array(&path, array, reason))?;
        if let Some(bad) = values.iter().find(|&&v| v < 0) {
            return Err(bad_array(
                &path,
                array,
                format!("holds the negative label {bad}"),
            ));
        }
        Ok(values)
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
    let mut loaded: Vec<Option<(RawImages, Vec<i64>)>> = Vec::new();
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
    let num_classes = (max_label + 1).max(2) as usize;
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
                labels: labels.iter().map(|&v| v as u32).collect(),
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
    )
}
