//! `dataset.nifti`: NIfTI-1 volumes (`.nii`, `.nii.gz`) with labels from a CSV, resampled to a
//! fixed shape (trilinear), intensity-normalised, as volumes or sliced into 2D images.
//!
//! [`read_nifti`] and [`resample_trilinear`] are usable alone. Volumes are used in voxel
//! order (no reorientation): the file's third axis is depth, the second height, the first
//! width, so `[z][y][x]` in memory.

use std::collections::{BTreeSet, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};

use medfusion_graph::{ConfigIssue, NodeConfig};
use ndarray::ShapeBuilder;
use nifti::{IntoNdArray, NiftiObject, ReaderOptions};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ImageShape;
use crate::dataset::{
    BadImagePolicy, DatasetKind, DatasetMeta, DatasetSplits, ImageSource, SplitSizes,
};
use crate::error::{DataError, list_some};
use crate::image_folder::MAX_CLASSES;
use crate::multimodal::UnmatchedPolicy;
use crate::split::{Carving, SplitParts, assemble, grouped_split};
use crate::walk::Walker;

/// Most values one file may hold by default (checked from its header before reading it).
pub const DEFAULT_MAX_NIFTI_VALUES: u64 = 512 * 1024 * 1024;

/// A NIfTI volume in memory.
#[derive(Debug, Clone, PartialEq)]
pub struct NiftiVolume {
    /// The file.
    pub path: PathBuf,
    /// Voxels along the file's axes 1, 2 and 3 (x, y, z).
    pub dims: [usize; 3],
    /// Voxel size along x, y and z (`pixdim[1..4]`, in the file's units, usually mm).
    pub spacing: [f32; 3],
    /// Values after `scl_slope` and `scl_inter`, `[z][y][x]` (x fastest).
    pub values: Vec<f32>,
}

fn nifti_error(path: &Path, reason: impl std::fmt::Display) -> DataError {
    DataError::Nifti {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// The first four bytes of the header (gzip undone), for telling NIfTI-2 apart.
fn sizeof_hdr(path: &Path) -> Option<[u8; 4]> {
    let file = std::fs::File::open(path).ok()?;
    let mut head = [0u8; 4];
    let gz = path
        .file_name()
        .is_some_and(|n| n.to_string_lossy().to_ascii_lowercase().ends_with(".gz"));
    if gz {
        flate2::read::GzDecoder::new(file)
            .read_exact(&mut head)
            .ok()?;
    } else {
        let mut file = file;
        file.read_exact(&mut head).ok()?;
    }
    Some(head)
}

/// Reads a 3D NIfTI-1 volume (a 4D file with one volume is accepted), applying the scaling.
pub fn read_nifti(path: &Path, max_values: u64) -> Result<NiftiVolume, DataError> {
    if let Some(head) = sizeof_hdr(path)
        && (i32::from_le_bytes(head) == 540 || i32::from_be_bytes(head) == 540)
    {
        return Err(nifti_error(
            path,
            "is NIfTI-2, which is not supported (save it as NIfTI-1, e.g. with nibabel's \
             `Nifti1Image`)",
        ));
    }
    let object = ReaderOptions::new()
        .read_file(path)
        .map_err(|e| nifti_error(path, e))?;
    let header = object.header().clone();
    let rank = usize::from(header.dim[0]);
    let dim = |i: usize| usize::from(header.dim[i]);
    if !(3..=7).contains(&rank) || (4..=rank).any(|i| dim(i) > 1) {
        return Err(nifti_error(
            path,
            format!(
                "has {rank} dimensions {:?}; one 3D volume is supported",
                &header.dim[1..=rank.clamp(1, 7)]
            ),
        ));
    }
    let dims = [dim(1), dim(2), dim(3)];
    let count = dims.iter().map(|&d| d as u64).product::<u64>();
    if count == 0 || count > max_values {
        return Err(nifti_error(
            path,
            format!(
                "holds {}x{}x{} voxels ({count}); expected 1 to {max_values}",
                dims[0], dims[1], dims[2]
            ),
        ));
    }
    let array = object
        .into_volume()
        .into_ndarray::<f32>()
        .map_err(|e| nifti_error(path, e))?;
    let shape = array.shape().to_vec();
    if shape.len() < 3 || shape[..3] != dims {
        return Err(nifti_error(
            path,
            format!("decoded shape {shape:?} does not match its header {dims:?}"),
        ));
    }
    // Trailing axes are 1 long (checked above): index them at 0.
    let mut index = vec![0usize; shape.len()];
    let mut values = Vec::with_capacity(count as usize);
    for z in 0..dims[2] {
        for y in 0..dims[1] {
            for x in 0..dims[0] {
                index[..3].copy_from_slice(&[x, y, z]);
                values.push(array[index.as_slice()]);
            }
        }
    }
    if values.iter().any(|v| !v.is_finite()) {
        return Err(nifti_error(path, "holds NaN or infinite values"));
    }
    Ok(NiftiVolume {
        path: path.to_path_buf(),
        dims,
        spacing: [header.pixdim[1], header.pixdim[2], header.pixdim[3]],
        values,
    })
}

/// Resamples a `[depth][height][width]` volume to `to` by trilinear interpolation (voxel
/// centres aligned, edges repeated).
pub fn resample_trilinear(values: &[f32], from: [usize; 3], to: [usize; 3]) -> Vec<f32> {
    if from == to {
        return values.to_vec();
    }
    // Per output index along one axis: the two source indices and the weight of the second.
    let axis = |n_in: usize, n_out: usize| -> Vec<(usize, usize, f32)> {
        (0..n_out)
            .map(|o| {
                let s = ((o as f64 + 0.5) * n_in as f64 / n_out as f64 - 0.5)
                    .clamp(0.0, (n_in - 1) as f64);
                let i0 = s.floor() as usize;
                let i1 = (i0 + 1).min(n_in - 1);
                (i0, i1, (s - i0 as f64) as f32)
            })
            .collect()
    };
    let (zs, ys, xs) = (
        axis(from[0], to[0]),
        axis(from[1], to[1]),
        axis(from[2], to[2]),
    );
    let at = |z: usize, y: usize, x: usize| values[(z * from[1] + y) * from[2] + x];
    let mut out = Vec::with_capacity(to.iter().product());
    for &(z0, z1, wz) in &zs {
        for &(y0, y1, wy) in &ys {
            for &(x0, x1, wx) in &xs {
                let lerp = |a: f32, b: f32, w: f32| a + (b - a) * w;
                let plane = |z| {
                    lerp(
                        lerp(at(z, y0, x0), at(z, y0, x1), wx),
                        lerp(at(z, y1, x0), at(z, y1, x1), wx),
                        wy,
                    )
                };
                out.push(lerp(plane(z0), plane(z1), wz));
            }
        }
    }
    out
}

/// How intensities are brought into `[0, 1]` (then stored as 256 grey levels).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum IntensityNorm {
    /// Clip to the 0.5th and 99.5th percentiles of the volume, then scale to `[0, 1]`.
    #[default]
    Percentile,
    /// Subtract the volume's mean, divide by its standard deviation, then map -3..3 to
    /// `[0, 1]`.
    Zscore,
    /// The volume's minimum to maximum.
    MinMax,
}

impl IntensityNorm {
    /// Maps `values` into `[0, 1]` in place.
    pub fn apply(self, values: &mut [f32]) {
        let (lo, hi) = match self {
            IntensityNorm::Percentile => {
                let mut sorted = values.to_vec();
                sorted.sort_by(f32::total_cmp);
                let pick = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
                (pick(0.005), pick(0.995))
            }
            IntensityNorm::Zscore => {
                let n = values.len().max(1) as f64;
                let mean = values.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
                let var = values
                    .iter()
                    .map(|&v| (f64::from(v) - mean).powi(2))
                    .sum::<f64>()
                    / n;
                let sd = var.sqrt().max(1e-12);
                ((mean - 3.0 * sd) as f32, (mean + 3.0 * sd) as f32)
            }
            IntensityNorm::MinMax => values
                .iter()
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                    (lo.min(v), hi.max(v))
                }),
        };
        let range = hi - lo;
        for v in values.iter_mut() {
            *v = if range > 0.0 {
                ((*v - lo) / range).clamp(0.0, 1.0)
            } else {
                0.0
            };
        }
    }
}

/// Whether to keep volumes or cut them into 2D images.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SliceAxis {
    /// Keep volumes (for the 3D models).
    #[default]
    None,
    /// One image per slice along the file's third axis (axial for RAS-ordered files).
    Z,
    /// One image per slice along the second axis (coronal for RAS-ordered files).
    Y,
    /// One image per slice along the first axis (sagittal for RAS-ordered files).
    X,
}

/// Config of `dataset.nifti`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct NiftiConfig {
    /// The folder of `.nii` / `.nii.gz` files (searched recursively).
    #[schemars(extend("format" = "path", "x-required" = true))]
    pub root: PathBuf,
    /// The CSV file of labels.
    #[schemars(extend("format" = "path", "x-required" = true))]
    pub labels: PathBuf,
    /// The CSV column naming each volume: its file name without `.nii`/`.nii.gz`, or its
    /// path relative to `root`.
    pub id_column: String,
    /// The CSV column holding the class.
    pub label_column: String,
    /// A CSV column grouping volumes (a patient): a group's volumes stay in one split.
    pub group_column: Option<String>,
    /// Class names in index order (default: the labels found, sorted).
    pub classes: Vec<String>,
    /// The shape volumes are resampled to: `[depth, height, width]`.
    pub volume_size: [usize; 3],
    /// How intensities are normalised, per volume.
    pub intensity: IntensityNorm,
    /// `none` keeps volumes; `z`, `y` or `x` cuts each volume into 2D images along that axis.
    pub slice_axis: SliceAxis,
    /// Fraction of each class's groups for validation.
    #[schemars(range(min = 0.0), extend("exclusiveMaximum" = 1.0))]
    pub val_fraction: f64,
    /// Fraction of each class's groups for test.
    #[schemars(range(min = 0.0), extend("exclusiveMaximum" = 1.0))]
    pub test_fraction: f64,
    /// Seed of the split (default: the workflow's).
    #[schemars(transform = medfusion_graph::no_default)]
    pub seed: u64,
    /// What to do with files that cannot be read: `fail` names the file, `skip` leaves it out.
    pub on_error: BadImagePolicy,
    /// What to do with files without a label row.
    pub on_unmatched: UnmatchedPolicy,
    /// Follow symbolic links to folders under `root`.
    pub follow_symlinks: bool,
    /// Most voxels one file may hold.
    #[schemars(range(min = 1))]
    pub max_file_values: u64,
}

impl Default for NiftiConfig {
    fn default() -> Self {
        NiftiConfig {
            root: PathBuf::new(),
            labels: PathBuf::new(),
            id_column: "id".into(),
            label_column: "label".into(),
            group_column: None,
            classes: Vec::new(),
            volume_size: [32, 64, 64],
            intensity: IntensityNorm::Percentile,
            slice_axis: SliceAxis::None,
            val_fraction: 0.15,
            test_fraction: 0.15,
            seed: 42,
            on_error: BadImagePolicy::Fail,
            on_unmatched: UnmatchedPolicy::Fail,
            follow_symlinks: false,
            max_file_values: DEFAULT_MAX_NIFTI_VALUES,
        }
    }
}

impl NodeConfig for NiftiConfig {
    fn check(&self) -> Vec<ConfigIssue> {
        let mut issues = crate::split::fraction_issues(self.val_fraction, self.test_fraction);
        if self.volume_size.iter().any(|&d| !(1..=1024).contains(&d)) {
            issues.push(ConfigIssue::invalid(
                "volume_size",
                format!("each side must be 1 to 1024, got {:?}", self.volume_size),
            ));
        }
        issues
    }
}

#[allow(clippy::case_sensitive_file_extension_comparisons)] // lowercased first
fn is_nifti(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    name.ends_with(".nii") || name.ends_with(".nii.gz")
}

/// The file name without `.nii` / `.nii.gz`.
#[allow(clippy::case_sensitive_file_extension_comparisons)] // lowercased first
fn stem(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let lower = name.to_ascii_lowercase();
    let cut = if lower.ends_with(".nii.gz") {
        7
    } else if lower.ends_with(".nii") {
        4
    } else {
        0
    };
    name[..name.len() - cut].to_owned()
}

/// One label row.
struct Row {
    label: String,
    group: Option<String>,
    line: u64,
}

fn read_rows(config: &NiftiConfig) -> Result<HashMap<String, Row>, DataError> {
    let path = &config.labels;
    let csv_err = |e: csv::Error| DataError::Csv {
        path: path.clone(),
        source: e,
    };
    let mut reader = csv::Reader::from_path(path).map_err(csv_err)?;
    let header = reader.headers().map_err(csv_err)?.clone();
    let column = |name: &str| {
        header
            .iter()
            .position(|h| h.trim() == name)
            .ok_or_else(|| DataError::MissingColumn {
                path: path.clone(),
                column: name.to_owned(),
                available: header.iter().collect::<Vec<_>>().join(", "),
            })
    };
    let id = column(&config.id_column)?;
    let label = column(&config.label_column)?;
    let group = config.group_column.as_deref().map(column).transpose()?;
    let mut rows = HashMap::new();
    for record in reader.records() {
        let record = record.map_err(csv_err)?;
        let line = record.position().map_or(0, csv::Position::line);
        let cell = |i: usize| record.get(i).unwrap_or("").trim().to_owned();
        let (key, value) = (cell(id), cell(label));
        if key.is_empty() || value.is_empty() {
            return Err(DataError::BadValue {
                path: path.clone(),
                line,
                column: if key.is_empty() {
                    config.id_column.clone()
                } else {
                    config.label_column.clone()
                },
                value: String::new(),
                reason: "is empty".into(),
            });
        }
        if let Some(previous) = rows.get(&key) {
            let Row { line: first, .. } = previous;
            return Err(DataError::BadValue {
                path: path.clone(),
                line,
                column: config.id_column.clone(),
                value: key,
                reason: format!("is also on line {first}"),
            });
        }
        rows.insert(
            key,
            Row {
                label: value,
                group: group.map(cell).filter(|g| !g.is_empty()),
                line,
            },
        );
    }
    Ok(rows)
}

/// Loads a `dataset.nifti`.
#[allow(clippy::many_single_char_names)] // d, h, w and x, y, z as in the NIfTI standard
pub fn load_nifti(config: &NiftiConfig) -> Result<DatasetSplits, DataError> {
    if let Some(issue) = config.check().into_iter().next() {
        return Err(DataError::from_issues(vec![issue]));
    }
    for (key, path, what) in [
        ("root", &config.root, "the NIfTI folder"),
        ("labels", &config.labels, "the CSV of labels"),
    ] {
        if path.as_os_str().is_empty() {
            return Err(DataError::config(key, format!("is required ({what})")));
        }
    }
    if !config.root.is_dir() {
        return Err(DataError::MissingFolder {
            path: config.root.clone(),
        });
    }
    let rows = read_rows(config)?;
    let mut walker = Walker::new(config.follow_symlinks);
    let files = walker.files(&config.root, is_nifti)?;
    walker.warn_skipped();
    if files.is_empty() {
        return Err(DataError::NoImages {
            path: config.root.clone(),
        });
    }
    let classes: Vec<String> = if config.classes.is_empty() {
        rows.values()
            .map(|r| r.label.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    } else {
        config.classes.clone()
    };
    if classes.len() > MAX_CLASSES {
        return Err(DataError::config(
            "labels",
            format!("has {} classes (at most {MAX_CLASSES})", classes.len()),
        ));
    }
    let class_of: HashMap<&str, u32> = classes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i as u32))
        .collect();

    // Match files to rows by stem or relative path.
    let mut matched = Vec::new();
    let mut unmatched = Vec::new();
    for path in files {
        let relative = crate::dicom::relative_key(&config.root, &path);
        let key = [stem(&path), relative.clone()]
            .into_iter()
            .find(|k| rows.contains_key(k));
        match key {
            Some(k) => matched.push((path, relative, k)),
            None => unmatched.push(relative),
        }
    }
    if !unmatched.is_empty() {
        match config.on_unmatched {
            UnmatchedPolicy::Fail => {
                return Err(DataError::UnmatchedIds {
                    side: format!("NIfTI files under `{}`", config.root.display()),
                    other: format!("label rows of `{}`", config.labels.display()),
                    count: unmatched.len(),
                    examples: list_some(&unmatched, 5),
                });
            }
            UnmatchedPolicy::Drop => tracing::warn!(
                count = unmatched.len(),
                first = %list_some(&unmatched, 5),
                "leaving out NIfTI files without a label row"
            ),
        }
    }

    let [d, h, w] = config.volume_size;
    let (shape, per_volume) = match config.slice_axis {
        SliceAxis::None => (
            ImageShape {
                channels: 1,
                depth: d,
                height: h,
                width: w,
            },
            1,
        ),
        SliceAxis::Z => (
            ImageShape {
                channels: 1,
                depth: 1,
                height: h,
                width: w,
            },
            d,
        ),
        SliceAxis::Y => (
            ImageShape {
                channels: 1,
                depth: 1,
                height: d,
                width: w,
            },
            h,
        ),
        SliceAxis::X => (
            ImageShape {
                channels: 1,
                depth: 1,
                height: d,
                width: h,
            },
            w,
        ),
    };

    // Read, resample and normalise (in parallel), then cut into samples.
    let read_one = |path: &Path| -> Result<Vec<u8>, DataError> {
        let volume = read_nifti(path, config.max_file_values)?;
        let [x, y, z] = volume.dims;
        let mut v = resample_trilinear(&volume.values, [z, y, x], config.volume_size);
        config.intensity.apply(&mut v);
        Ok(v.into_iter().map(|v| (v * 255.0).round() as u8).collect())
    };
    let results = crate::dicom::parallel_map(&matched, |(path, ..)| read_one(path));
    let (mut labels, mut ids, mut groups, mut pixels) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut skipped = 0;
    for ((_, relative, key), result) in matched.iter().zip(results) {
        let volume = match result {
            Ok(v) => v,
            Err(e) if config.on_error == BadImagePolicy::Skip => {
                tracing::warn!(error = %e, "skipping NIfTI file");
                skipped += 1;
                continue;
            }
            Err(e) => return Err(e),
        };
        let row = &rows[key];
        let Some(&class) = class_of.get(row.label.as_str()) else {
            return Err(DataError::BadValue {
                path: config.labels.clone(),
                line: row.line,
                column: config.label_column.clone(),
                value: row.label.clone(),
                reason: format!("not one of `classes` ({})", classes.join(", ")),
            });
        };
        let group = row.group.clone().unwrap_or_else(|| key.clone());
        for s in 0..per_volume {
            labels.push(class);
            groups.push(group.clone());
            ids.push(if per_volume == 1 {
                relative.clone()
            } else {
                format!("{relative}#{s}")
            });
            match config.slice_axis {
                SliceAxis::None => pixels.extend_from_slice(&volume),
                SliceAxis::Z => pixels.extend_from_slice(&volume[s * h * w..(s + 1) * h * w]),
                SliceAxis::Y => {
                    for z in 0..d {
                        let start = (z * h + s) * w;
                        pixels.extend_from_slice(&volume[start..start + w]);
                    }
                }
                SliceAxis::X => {
                    for z in 0..d {
                        for y in 0..h {
                            pixels.push(volume[(z * h + y) * w + s]);
                        }
                    }
                }
            }
        }
    }
    if skipped > 0 {
        tracing::warn!(count = skipped, "NIfTI files skipped (`on_error: skip`)");
    }
    if labels.is_empty() {
        return Err(DataError::NoImages {
            path: config.root.clone(),
        });
    }
    let group_refs: Vec<&str> = groups.iter().map(String::as_str).collect();
    let splits = grouped_split(
        &labels,
        &group_refs,
        classes.len(),
        config.val_fraction,
        config.test_fraction,
        config.seed,
    );
    let len = shape.len();
    let parts: Vec<SplitParts> = splits
        .iter()
        .map(|rows| {
            let mut part = SplitParts::select(&labels, &ids, rows);
            let mut p = Vec::with_capacity(rows.len() * len);
            for &r in rows {
                p.extend_from_slice(&pixels[r * len..(r + 1) * len]);
            }
            part.images = Some(ImageSource::Pixels(p));
            part
        })
        .collect();
    let meta = DatasetMeta {
        source: config.root.display().to_string(),
        kind: DatasetKind::Image,
        classes,
        image: Some(shape),
        features: Vec::new(),
        split_sizes: SplitSizes::default(),
    };
    assemble(
        meta,
        parts
            .try_into()
            .map_err(|_| DataError::input("splits", "expected three"))?,
        Some(Carving {
            samples: labels.len(),
            fractions: [config.val_fraction, config.test_fraction],
            per_class: true,
        }),
    )
}

/// Writes a `[depth][height][width]` grey volume as NIfTI-1 (`.nii` or `.nii.gz` by the
/// name), with `spacing` (x, y, z in mm), atomically.
pub fn write_nifti(
    path: &Path,
    values: &[u8],
    [d, h, w]: [usize; 3],
    spacing: [f32; 3],
) -> Result<(), DataError> {
    if values.len() != d * h * w {
        return Err(DataError::input(
            "NIfTI volume",
            format!("{} values for {d}x{h}x{w}", values.len()),
        ));
    }
    // NIfTI's first axis varies fastest: an [x, y, z] array in Fortran order.
    let array = ndarray::Array3::from_shape_vec((w, h, d).f(), values.to_vec())
        .map_err(|e| DataError::input("NIfTI volume", e.to_string()))?;
    let header = nifti::NiftiHeader {
        pixdim: [1.0, spacing[0], spacing[1], spacing[2], 1.0, 1.0, 1.0, 1.0],
        xyzt_units: 2, // millimetres
        sform_code: 1,
        srow_x: [spacing[0], 0.0, 0.0, 0.0],
        srow_y: [0.0, spacing[1], 0.0, 0.0],
        srow_z: [0.0, 0.0, spacing[2], 0.0],
        ..nifti::NiftiHeader::default()
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // The temporary keeps the extension, which tells the writer whether to compress.
    let tmp = path.with_file_name(format!(".tmp-{name}"));
    nifti::writer::WriterOptions::new(&tmp)
        .reference_header(&header)
        .write_nifti(&array)
        .map_err(|e| DataError::Write {
            path: path.to_path_buf(),
            source: std::io::Error::other(e.to_string()),
        })?;
    std::fs::rename(&tmp, path).map_err(|source| DataError::Write {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resampling_keeps_constants_and_interpolates_ramps() {
        let flat = vec![3.0; 2 * 3 * 4];
        assert!(
            resample_trilinear(&flat, [2, 3, 4], [5, 6, 7])
                .iter()
                .all(|&v| (v - 3.0).abs() < 1e-6)
        );
        // A ramp along x stays a ramp, within the source's range.
        let ramp: Vec<f32> = (0..8).map(|x| x as f32).collect();
        let up = resample_trilinear(&ramp, [1, 1, 8], [1, 1, 16]);
        assert!(up.windows(2).all(|w| w[1] >= w[0]));
        assert!((up[0] - 0.0).abs() < 1e-6 && (up[15] - 7.0).abs() < 1e-6);
        let down = resample_trilinear(&ramp, [1, 1, 8], [1, 1, 4]);
        assert_eq!(down, [0.5, 2.5, 4.5, 6.5]);
    }

    #[test]
    fn intensity_norms_land_in_zero_one() {
        for norm in [
            IntensityNorm::Percentile,
            IntensityNorm::Zscore,
            IntensityNorm::MinMax,
        ] {
            let mut v: Vec<f32> = (0..1000).map(|i| (i as f32).sqrt()).collect();
            norm.apply(&mut v);
            assert!(v.iter().all(|x| (0.0..=1.0).contains(x)), "{norm:?}");
            assert!(v.windows(2).all(|w| w[1] >= w[0]), "{norm:?}");
        }
        let mut flat = vec![2.0; 10];
        IntensityNorm::MinMax.apply(&mut flat);
        assert!(flat.iter().all(|&x| x == 0.0));
    }

    #[test]
    fn stems_drop_both_extensions() {
        assert_eq!(stem(Path::new("a/b/case-1.nii.gz")), "case-1");
        assert_eq!(stem(Path::new("case-2.NII")), "case-2");
        assert!(is_nifti(Path::new("x.nii.gz")) && !is_nifti(Path::new("x.csv")));
    }
}
