//! `dataset.dicom`: a folder of DICOM files with labels from a CSV, read as a radiologist
//! sees them (Modality LUT, then a window, MONOCHROME1 inverted), split by patient.
//!
//! The readers ([`read_dicom`], [`read_dicom_header`]) and the window transforms
//! ([`WindowSetting`], [`apply_voi`]) are usable alone; [`load_dicom`] builds a dataset from
//! them.

mod read;
mod series;
mod window;
mod write;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use image::{ImageBuffer, Luma, imageops::FilterType};
use medfusion_graph::{ConfigIssue, NodeConfig};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use read::{
    DEFAULT_MAX_DICOM_SAMPLES, DicomHeader, DicomImage, VoiFunction, VoiTable, Window,
    looks_like_dicom, read_dicom, read_dicom_header,
};
pub use series::{SeriesOrder, order_series};
pub use window::{Voi, WindowPreset, WindowSetting, apply_voi};
pub use write::{CtSlice, write_ct_slice};

use crate::ImageShape;
use crate::dataset::{
    BadImagePolicy, DatasetKind, DatasetMeta, DatasetSplits, ImageSource, SplitSizes,
};
use crate::error::{DataError, list_some};
use crate::image_folder::{MAX_CLASSES, check_image_config};
use crate::multimodal::UnmatchedPolicy;
use crate::split::{Carving, SplitParts, assemble, grouped_split};
use crate::tabular::{Column, RawColumn, fit_transform};
use crate::walk::Walker;

/// Which DICOM attribute joins a file to its row of the labels CSV.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DicomKey {
    /// PatientID (CSV column `PatientID` by default).
    #[default]
    PatientId,
    /// StudyInstanceUID (`StudyInstanceUID`).
    StudyInstanceUid,
    /// SeriesInstanceUID (`SeriesInstanceUID`).
    SeriesInstanceUid,
    /// SOPInstanceUID (`SOPInstanceUID`).
    SopInstanceUid,
    /// The file's path relative to `root`, with `/` separators (`path`).
    Path,
}

impl DicomKey {
    /// The CSV column holding the key unless `key_column` says otherwise.
    pub fn default_column(self) -> &'static str {
        match self {
            DicomKey::PatientId => "PatientID",
            DicomKey::StudyInstanceUid => "StudyInstanceUID",
            DicomKey::SeriesInstanceUid => "SeriesInstanceUID",
            DicomKey::SopInstanceUid => "SOPInstanceUID",
            DicomKey::Path => "path",
        }
    }

    fn of(self, header: &DicomHeader, relative: &str) -> Option<String> {
        match self {
            DicomKey::PatientId => header.patient_id.clone(),
            DicomKey::StudyInstanceUid => header.study_uid.clone(),
            DicomKey::SeriesInstanceUid => header.series_uid.clone(),
            DicomKey::SopInstanceUid => header.sop_uid.clone(),
            DicomKey::Path => Some(relative.to_owned()),
        }
    }
}

/// What one sample of `dataset.dicom` is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DicomMode {
    /// Each frame of each file is a 2D image.
    #[default]
    Slice,
    /// Each series is a volume.
    Volume,
}

/// A tabular feature taken from each file's DICOM tags (for fusion models).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DicomFeature {
    /// PatientAge in years (numeric, standardised).
    Age,
    /// PatientSex (one-hot).
    Sex,
    /// Modality (one-hot).
    Modality,
    /// BodyPartExamined (one-hot).
    BodyPart,
}

impl DicomFeature {
    fn name(self) -> &'static str {
        match self {
            DicomFeature::Age => "age",
            DicomFeature::Sex => "sex",
            DicomFeature::Modality => "modality",
            DicomFeature::BodyPart => "body_part",
        }
    }
}

/// Config of `dataset.dicom`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct DicomConfig {
    /// The folder of DICOM files (searched recursively; files without an extension or without
    /// the DICM preamble are tried too, other files are ignored).
    #[schemars(extend("format" = "path", "x-required" = true))]
    pub root: PathBuf,
    /// The CSV file of labels, one row per key.
    #[schemars(extend("format" = "path", "x-required" = true))]
    pub labels: PathBuf,
    /// The attribute joining files to label rows.
    pub key: DicomKey,
    /// The CSV column holding the key (default: `PatientID`, `StudyInstanceUID`,
    /// `SeriesInstanceUID`, `SOPInstanceUID` or `path`, after `key`).
    pub key_column: Option<String>,
    /// The CSV column holding the class.
    pub label_column: String,
    /// Class names in index order (default: the labels found, sorted).
    pub classes: Vec<String>,
    /// The window: `file` (the file's VOI LUT or window; its range without one), `min_max`,
    /// a preset (`lung`, `mediastinum`, `brain`, `bone`, `abdomen`) or `{center, width}`.
    pub window: WindowSetting,
    /// `slice`: every frame of every file is a 2D image. `volume`: each series (files sharing
    /// a SeriesInstanceUID, or a multi-frame file) is stacked in slice order into a volume of
    /// `depth x image_size x image_size`, for the 3D models.
    pub mode: DicomMode,
    /// Slices of a volume after resampling (`mode: volume`).
    #[schemars(range(min = 1, max = 1024))]
    pub depth: usize,
    /// Tabular features from the DICOM tags (`age`, `sex`, `modality`, `body_part`); with
    /// any, the dataset is multimodal.
    pub features: Vec<DicomFeature>,
    /// Side of the square images after resizing.
    #[schemars(range(min = 1, max = 4096))]
    pub image_size: usize,
    /// 1 (grayscale) or 3 (grey repeated; colour files keep their colour).
    #[schemars(range(min = 1, max = 3))]
    pub channels: usize,
    /// Fraction of each class's patients for validation.
    #[schemars(range(min = 0.0), extend("exclusiveMaximum" = 1.0))]
    pub val_fraction: f64,
    /// Fraction of each class's patients for test.
    #[schemars(range(min = 0.0), extend("exclusiveMaximum" = 1.0))]
    pub test_fraction: f64,
    /// Seed of the split (default: the workflow's).
    #[schemars(transform = medfusion_graph::no_default)]
    pub seed: u64,
    /// What to do with files that cannot be read or decoded (an unsupported transfer syntax
    /// included): `fail` names the file, `skip` leaves it out with a warning.
    pub on_error: BadImagePolicy,
    /// What to do with files whose key has no label row.
    pub on_unmatched: UnmatchedPolicy,
    /// Follow symbolic links to folders under `root`.
    pub follow_symlinks: bool,
    /// Most values one file may hold (rows x columns x samples x frames), checked before its
    /// pixels are decoded.
    #[schemars(range(min = 1))]
    pub max_file_values: u64,
}

impl Default for DicomConfig {
    fn default() -> Self {
        DicomConfig {
            root: PathBuf::new(),
            labels: PathBuf::new(),
            key: DicomKey::PatientId,
            key_column: None,
            label_column: "label".into(),
            classes: Vec::new(),
            window: WindowSetting::default(),
            mode: DicomMode::Slice,
            depth: 32,
            features: Vec::new(),
            image_size: 64,
            channels: 1,
            val_fraction: 0.15,
            test_fraction: 0.15,
            seed: 42,
            on_error: BadImagePolicy::Fail,
            on_unmatched: UnmatchedPolicy::Fail,
            follow_symlinks: false,
            max_file_values: DEFAULT_MAX_DICOM_SAMPLES,
        }
    }
}

impl NodeConfig for DicomConfig {
    fn check(&self) -> Vec<ConfigIssue> {
        let mut issues = crate::split::image_dataset_issues(
            Some(self.channels),
            self.val_fraction,
            self.test_fraction,
        );
        if let WindowSetting::Manual { width, .. } = self.window
            && (width.is_nan() || width < 1.0)
        {
            issues.push(ConfigIssue::invalid(
                "window.width",
                format!("must be at least 1, got {width}"),
            ));
        }
        issues
    }
}

/// The label rows: key -> label text, with the line of each key.
struct Labels {
    by_key: HashMap<String, (String, u64)>,
}

fn read_labels(config: &DicomConfig) -> Result<Labels, DataError> {
    let path = &config.labels;
    let csv_err = |e: csv::Error| DataError::Csv {
        path: path.clone(),
        source: e,
    };
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .from_path(path)
        .map_err(csv_err)?;
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
    let key_name = config
        .key_column
        .clone()
        .unwrap_or_else(|| config.key.default_column().to_owned());
    let (key_col, label_col) = (column(&key_name)?, column(&config.label_column)?);
    let mut by_key = HashMap::new();
    for record in reader.records() {
        let record = record.map_err(csv_err)?;
        let line = record.position().map_or(0, csv::Position::line);
        let key = record.get(key_col).unwrap_or("").trim().to_owned();
        let label = record.get(label_col).unwrap_or("").trim().to_owned();
        let bad = |column: &str, value: &str, reason: &str| DataError::BadValue {
            path: path.clone(),
            line,
            column: column.to_owned(),
            value: value.to_owned(),
            reason: reason.to_owned(),
        };
        if key.is_empty() {
            return Err(bad(&key_name, &key, "the key is empty"));
        }
        if label.is_empty() {
            return Err(bad(&config.label_column, &label, "the label is empty"));
        }
        if let Some((other, first)) = by_key.get(&key)
            && *other != label
        {
            return Err(bad(
                &config.label_column,
                &label,
                &format!("`{key}` already has label `{other}` on line {first}"),
            ));
        }
        by_key.entry(key).or_insert((label, line));
    }
    Ok(Labels { by_key })
}

/// One file to read: its header, key and class.
struct Candidate {
    header: DicomHeader,
    relative: String,
    label: u32,
    group: String,
}

/// One image of the dataset (a frame of a file).
struct Slice {
    file: usize,
    id: String,
    pixels: Vec<u8>,
}

/// Reads the series made of `members` (candidate indices) into one volume of `depth x size x
/// size`: slices in order along the normal, each windowed (`min_max` over the whole volume),
/// then resampled trilinearly.
fn read_series(
    candidates: &[Candidate],
    members: &[usize],
    config: &DicomConfig,
    shape: ImageShape,
) -> Result<Vec<u8>, DataError> {
    let headers: Vec<&DicomHeader> = members.iter().map(|&i| &candidates[i].header).collect();
    let order = order_series(&headers);
    let first = headers[0];
    let series = first.series_uid.as_deref().unwrap_or("?");
    if order.by_position && (order.spacing_deviation > 0.1 || !order.duplicates.is_empty()) {
        tracing::warn!(
            series,
            spacing_mm = order.spacing.unwrap_or(0.0),
            deviation = format!("{:.0}%", order.spacing_deviation * 100.0),
            duplicates = order.duplicates.len(),
            "uneven slice spacing"
        );
    } else {
        tracing::debug!(series, slices = members.len(), spacing_mm = ?order.spacing, by_position = order.by_position, "series order");
    }
    let (rows, cols) = (first.rows, first.columns);
    let mut planes: Vec<f32> = Vec::new();
    let mut count = 0usize;
    let min_max = config.window == WindowSetting::Preset(WindowPreset::MinMax);
    for &k in &order.order {
        let c = &candidates[members[k]];
        let image = read_dicom(&c.header.path, config.max_file_values)?;
        let h = &image.header;
        if (h.rows, h.columns, h.samples_per_pixel) != (rows, cols, 1) {
            return Err(DataError::Dicom {
                path: h.path.clone(),
                reason: format!(
                    "is {}x{}x{} in series {series}, whose first slice is {rows}x{cols} greyscale",
                    h.rows, h.columns, h.samples_per_pixel
                ),
            });
        }
        let voi = config.window.voi_for(h, image.voi_table.as_ref());
        for f in 0..h.frames as usize {
            let mut v = image.frame(f).to_vec();
            if !min_max {
                apply_voi(&mut v, &voi, h.is_monochrome1());
            }
            planes.extend(v);
            count += 1;
        }
    }
    if min_max {
        apply_voi(&mut planes, &Voi::MinMax, first.is_monochrome1());
    }
    let resampled = crate::nifti::resample_trilinear(
        &planes,
        [count, rows as usize, cols as usize],
        [shape.depth, shape.height, shape.width],
    );
    Ok(resampled
        .into_iter()
        .map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
        .collect())
}

/// Turns one frame's modality values into the dataset's planar `u8` image of `shape`.
fn frame_to_pixels(
    image: &DicomImage,
    frame: usize,
    setting: &WindowSetting,
    shape: ImageShape,
) -> Vec<u8> {
    let h = &image.header;
    let (rows, cols) = (h.rows, h.columns);
    let values = image.frame(frame);
    // Planes in [0, 1]: one for greyscale, three for colour.
    let planes: Vec<Vec<f32>> = if h.samples_per_pixel == 1 {
        let mut v = values.to_vec();
        let voi = setting.voi_for(h, image.voi_table.as_ref());
        apply_voi(&mut v, &voi, h.is_monochrome1());
        vec![v]
    } else {
        let scale = ((1u64 << h.bits_stored.clamp(1, 16)) - 1) as f32;
        (0..3)
            .map(|c| {
                values
                    .iter()
                    .skip(c)
                    .step_by(3)
                    .map(|v| v / scale)
                    .collect()
            })
            .collect()
    };
    let planes: Vec<Vec<f32>> = match (planes.len(), shape.channels) {
        (1, 3) => vec![planes[0].clone(), planes[0].clone(), planes[0].clone()],
        (3, 1) => vec![
            (0..planes[0].len())
                .map(|i| 0.299 * planes[0][i] + 0.587 * planes[1][i] + 0.114 * planes[2][i])
                .collect(),
        ],
        _ => planes,
    };
    let mut out = Vec::with_capacity(shape.channels * shape.height * shape.width);
    for plane in planes {
        let buffer: ImageBuffer<Luma<f32>, Vec<f32>> =
            ImageBuffer::from_raw(cols, rows, plane).expect("plane of rows x columns");
        let resized = if (cols as usize, rows as usize) == (shape.width, shape.height) {
            buffer
        } else {
            image::imageops::resize(
                &buffer,
                shape.width as u32,
                shape.height as u32,
                FilterType::Triangle,
            )
        };
        out.extend(
            resized
                .into_raw()
                .into_iter()
                .map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8),
        );
    }
    out
}

/// Reads and windows every file, in parallel; returns per file its images or its error.
fn read_all(
    candidates: &[Candidate],
    config: &DicomConfig,
    shape: ImageShape,
) -> Vec<Result<Vec<Vec<u8>>, DataError>> {
    let read_one = |c: &Candidate| -> Result<Vec<Vec<u8>>, DataError> {
        let image = read_dicom(&c.header.path, config.max_file_values)?;
        Ok((0..image.header.frames as usize)
            .map(|f| frame_to_pixels(&image, f, &config.window, shape))
            .collect())
    };
    parallel_map(candidates, read_one)
}

/// `f` over `items` on all cores, results in order (for decoding many files).
pub(crate) fn parallel_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let workers = std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .min(items.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut results: Vec<Option<R>> = (0..items.len()).map(|_| None).collect();
    let slots = std::sync::Mutex::new(&mut results);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= items.len() {
                        break;
                    }
                    let result = f(&items[i]);
                    slots
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)[i] = Some(result);
                }
            });
        }
    });
    // Every index below the length was taken by a worker, and scoped threads are joined.
    results.into_iter().flatten().collect()
}

/// Loads a `dataset.dicom`: every frame of every labelled file becomes an image, and the
/// splits keep each patient's images together.
pub fn load_dicom(config: &DicomConfig) -> Result<DatasetSplits, DataError> {
    let mut shape = check_image_config(config.image_size, config.channels)?;
    if config.mode == DicomMode::Volume {
        if config.channels != 1 {
            return Err(DataError::config(
                "channels",
                "must be 1 with `mode: volume` (volumes are greyscale)",
            ));
        }
        shape.depth = config.depth;
    }
    if let Some(issue) = config.check().into_iter().next() {
        return Err(DataError::from_issues(vec![issue]));
    }
    if config.root.as_os_str().is_empty() {
        return Err(DataError::config("root", "is required (the DICOM folder)"));
    }
    if !config.root.is_dir() {
        return Err(DataError::MissingFolder {
            path: config.root.clone(),
        });
    }
    if config.labels.as_os_str().is_empty() {
        return Err(DataError::config(
            "labels",
            "is required (the CSV of labels)",
        ));
    }
    let labels = read_labels(config)?;

    let mut walker = Walker::new(config.follow_symlinks);
    let labels_file = std::fs::canonicalize(&config.labels).ok();
    let files = walker.files(&config.root, |p| {
        looks_like_dicom(p) && std::fs::canonicalize(p).ok() != labels_file
    })?;
    walker.warn_skipped();
    if files.is_empty() {
        return Err(DataError::NoImages {
            path: config.root.clone(),
        });
    }

    // Headers first: keys, labels, patients.
    let mut class_names: Vec<String> = if config.classes.is_empty() {
        labels
            .by_key
            .values()
            .map(|(l, _)| l.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    } else {
        config.classes.clone()
    };
    if class_names.len() > MAX_CLASSES {
        return Err(DataError::config(
            "labels",
            format!("has {} classes (at most {MAX_CLASSES})", class_names.len()),
        ));
    }
    class_names.dedup();
    let class_of: HashMap<&str, u32> = class_names
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i as u32))
        .collect();
    let (mut candidates, mut unmatched, mut skipped) = (Vec::new(), Vec::new(), 0usize);
    let mut used_keys = BTreeSet::new();
    for path in files {
        let relative = relative_key(&config.root, &path);
        let header = match read_dicom_header(&path) {
            Ok(h) if h.rows > 0 => h,
            // Not an image (a structured report, a DICOMDIR, ...).
            Ok(_) => continue,
            Err(e) if config.on_error == BadImagePolicy::Skip => {
                tracing::warn!(error = %e, "skipping DICOM file");
                skipped += 1;
                continue;
            }
            Err(e) => return Err(e),
        };
        let Some(key) = config.key.of(&header, &relative) else {
            unmatched.push(format!("{relative} (no {})", config.key.default_column()));
            continue;
        };
        let Some((label, line)) = labels.by_key.get(&key) else {
            unmatched.push(format!("{relative} ({key})"));
            continue;
        };
        let Some(&class) = class_of.get(label.as_str()) else {
            return Err(DataError::BadValue {
                path: config.labels.clone(),
                line: *line,
                column: config.label_column.clone(),
                value: label.clone(),
                reason: format!("not one of `classes` ({})", class_names.join(", ")),
            });
        };
        used_keys.insert(key.clone());
        let group = header.patient_id.clone().unwrap_or(key);
        candidates.push(Candidate {
            header,
            relative,
            label: class,
            group,
        });
    }
    if !unmatched.is_empty() {
        match config.on_unmatched {
            UnmatchedPolicy::Fail => {
                return Err(DataError::UnmatchedIds {
                    side: format!("DICOM files under `{}`", config.root.display()),
                    other: format!("label rows of `{}`", config.labels.display()),
                    count: unmatched.len(),
                    examples: list_some(&unmatched, 5),
                });
            }
            UnmatchedPolicy::Drop => tracing::warn!(
                count = unmatched.len(),
                first = %list_some(&unmatched, 5),
                "leaving out DICOM files without a label row"
            ),
        }
    }
    let unused = labels.by_key.len() - used_keys.len();
    if unused > 0 {
        tracing::warn!(count = unused, "label rows without a DICOM file");
    }

    // Pixels, in parallel.
    let mut slices = Vec::new();
    let mut kept = 0usize;
    let mut skip_or_fail = |e: DataError| -> Result<(), DataError> {
        if config.on_error == BadImagePolicy::Skip {
            tracing::warn!(error = %e, "skipping DICOM file");
            skipped += 1;
            Ok(())
        } else {
            Err(e)
        }
    };
    match config.mode {
        DicomMode::Slice => {
            for (i, result) in read_all(&candidates, config, shape).into_iter().enumerate() {
                match result {
                    Ok(frames) => {
                        kept += 1;
                        let c = &candidates[i];
                        slices.extend(frames.into_iter().enumerate().map(|(frame, pixels)| {
                            Slice {
                                file: i,
                                id: if c.header.frames > 1 {
                                    format!("{}#{frame}", c.relative)
                                } else {
                                    c.relative.clone()
                                },
                                pixels,
                            }
                        }));
                    }
                    Err(e) => skip_or_fail(e)?,
                }
            }
        }
        DicomMode::Volume => {
            // A series: the files sharing a SeriesInstanceUID (a file without one is a
            // series of its own).
            let mut series: std::collections::BTreeMap<String, Vec<usize>> =
                std::collections::BTreeMap::new();
            for (i, c) in candidates.iter().enumerate() {
                let uid = c
                    .header
                    .series_uid
                    .clone()
                    .unwrap_or_else(|| c.relative.clone());
                series.entry(uid).or_default().push(i);
            }
            let groups: Vec<(String, Vec<usize>)> = series.into_iter().collect();
            // A series whose files disagree on their label is an error naming both.
            for (uid, members) in &groups {
                if let Some(&other) = members
                    .iter()
                    .find(|&&m| candidates[m].label != candidates[members[0]].label)
                {
                    return Err(DataError::config(
                        "key",
                        format!(
                            "series {uid} has files with different labels (`{}` and `{}`); \
                             key volumes by series or study",
                            candidates[members[0]].relative, candidates[other].relative
                        ),
                    ));
                }
            }
            let results = parallel_map(&groups, |(_, members)| {
                read_series(&candidates, members, config, shape)
            });
            for ((uid, members), result) in groups.iter().zip(results) {
                match result {
                    Ok(pixels) => {
                        kept += members.len();
                        slices.push(Slice {
                            file: members[0],
                            id: uid.clone(),
                            pixels,
                        });
                    }
                    Err(e) => skip_or_fail(e)?,
                }
            }
        }
    }
    if skipped > 0 {
        tracing::warn!(count = skipped, "DICOM files skipped (`on_error: skip`)");
    }
    if slices.is_empty() {
        return Err(DataError::NoImages {
            path: config.root.clone(),
        });
    }

    // Split by patient, stratified by class.
    let labels_of: Vec<u32> = slices.iter().map(|s| candidates[s.file].label).collect();
    let groups: Vec<&str> = slices
        .iter()
        .map(|s| candidates[s.file].group.as_str())
        .collect();
    let ids: Vec<String> = slices.iter().map(|s| s.id.clone()).collect();
    let splits = grouped_split(
        &labels_of,
        &groups,
        class_names.len(),
        config.val_fraction,
        config.test_fraction,
        config.seed,
    );

    let features = (!config.features.is_empty()).then(|| {
        config
            .features
            .iter()
            .map(|&f| Column {
                name: f.name().to_owned(),
                values: match f {
                    DicomFeature::Age => RawColumn::Numeric(
                        slices
                            .iter()
                            .map(|s| candidates[s.file].header.age_years)
                            .collect(),
                    ),
                    _ => RawColumn::Categorical(
                        slices
                            .iter()
                            .map(|s| {
                                let h = &candidates[s.file].header;
                                match f {
                                    DicomFeature::Sex => h.sex.clone(),
                                    DicomFeature::Modality => h.modality.clone(),
                                    _ => h.body_part.clone(),
                                }
                            })
                            .collect(),
                    ),
                },
            })
            .collect::<Vec<_>>()
    });
    let (feature_info, mut tables) = match &features {
        Some(columns) => {
            let rows: Vec<&[usize]> = splits.iter().map(Vec::as_slice).collect();
            let (info, tables) = fit_transform(columns, &splits[0], &rows, 10_000)?;
            (info, tables.into_iter().map(Some).collect())
        }
        None => (Vec::new(), vec![None, None, None]),
    };
    let mut parts: Vec<SplitParts> = Vec::with_capacity(3);
    for (s, rows) in splits.iter().enumerate() {
        let mut part = SplitParts::select(&labels_of, &ids, rows);
        let mut pixels =
            Vec::with_capacity(rows.len() * shape.channels * shape.height * shape.width);
        for &r in rows {
            pixels.extend_from_slice(&slices[r].pixels);
        }
        part.images = Some(ImageSource::Pixels(pixels));
        part.tabular = tables[s].take();
        parts.push(part);
    }
    tracing::info!(
        files = kept,
        images = slices.len(),
        patients = groups.iter().collect::<BTreeSet<_>>().len(),
        "read DICOM dataset"
    );
    let meta = DatasetMeta {
        source: config.root.display().to_string(),
        kind: if features.is_some() {
            DatasetKind::Multimodal
        } else {
            DatasetKind::Image
        },
        classes: class_names,
        image: Some(shape),
        features: feature_info,
        split_sizes: SplitSizes::default(),
    };
    assemble(
        meta,
        parts
            .try_into()
            .map_err(|_| DataError::input("splits", "expected three"))?,
        Some(Carving {
            samples: slices.len(),
            fractions: [config.val_fraction, config.test_fraction],
            per_class: true,
        }),
    )
}

/// The path of `path` relative to `root` with `/` separators (the `path` key).
pub fn relative_key(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}
