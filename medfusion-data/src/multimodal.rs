//! `dataset.multimodal`: images and a CSV table joined by an id column.
//!
//! Each table row names its image either through `id_column` (matched against image file
//! stems anywhere under `images`) or through `image_column` (a path relative to
//! `images`). Labels, splits and features come from the table, as for `dataset.csv`.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use medfusion_graph::{ConfigIssue, NodeConfig};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::dataset::{
    BadImagePolicy, DatasetKind, DatasetMeta, DatasetSplits, ImageSource, SplitSizes,
};
use crate::error::{DataError, list_some};
use crate::image_folder::{DEFAULT_MAX_IMAGE_PIXELS, check_image_config, verify_images};
use crate::split::assemble;
use crate::table::{CsvConfig, prepare, read_table};
use crate::walk::Walker;

/// What to do with table rows whose image cannot be found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum UnmatchedPolicy {
    /// Stop with an error listing the unmatched ids.
    #[default]
    Fail,
    /// Leave those rows out, with a warning.
    Drop,
}

/// Config of `dataset.multimodal` (the table keys are those of [`CsvConfig`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct MultimodalConfig {
    /// The folder holding the images (searched recursively).
    #[schemars(extend("format" = "path", "x-required" = true))]
    pub images: PathBuf,
    /// The CSV file: labels, features, ids, splits.
    #[schemars(extend("format" = "path", "x-required" = true))]
    pub table: PathBuf,
    /// The column of sample ids, matched against image file names without extension.
    pub id_column: String,
    /// A column of image paths relative to `images`, used instead of matching ids (ids
    /// then come from `id_column` when the table has it).
    pub image_column: Option<String>,
    /// The column holding the class.
    pub label_column: String,
    /// The feature columns (default: every column not named elsewhere).
    pub feature_columns: Vec<String>,
    /// Columns to one-hot encode even though they hold numbers.
    pub categorical_columns: Vec<String>,
    /// Columns to leave out.
    pub drop_columns: Vec<String>,
    /// A column saying `train`, `val` or `test` per row.
    pub split_column: Option<String>,
    /// Fraction of each class for validation, without a split column.
    #[schemars(range(min = 0.0), extend("exclusiveMaximum" = 1.0))]
    pub val_fraction: f64,
    /// Fraction of each class for test, without a split column.
    #[schemars(range(min = 0.0), extend("exclusiveMaximum" = 1.0))]
    pub test_fraction: f64,
    /// Seed of the split (default: the workflow's).
    #[schemars(transform = medfusion_graph::no_default)]
    pub seed: u64,
    /// The field separator.
    pub delimiter: char,
    /// Cell texts that mean "missing".
    pub missing_values: Vec<String>,
    /// Most distinct values a categorical column may have.
    #[schemars(range(min = 1, max = 100_000))]
    pub max_categories: usize,
    /// Class names in index order (default: the labels found, sorted).
    pub classes: Vec<String>,
    /// Side of the square images after resizing.
    #[schemars(range(min = 1, max = 4096))]
    pub image_size: usize,
    /// 1 (grayscale) or 3 (RGB).
    #[schemars(range(min = 1, max = 3))]
    pub channels: usize,
    /// What to do with images that cannot be decoded (`skip` drops their rows).
    pub on_error: BadImagePolicy,
    /// What to do with rows without an image.
    pub on_unmatched: UnmatchedPolicy,
    /// Follow symbolic links to folders under `images` (off: they are skipped with a
    /// warning). Links are followed once each, loops are skipped, and a file reached twice is
    /// an error naming both paths.
    pub follow_symlinks: bool,
    /// Largest image, in pixels (width x height), checked in each file's header before it is
    /// decoded; a larger one is an error naming the file (with `on_error: skip` too).
    #[schemars(range(min = 1))]
    pub max_image_pixels: u64,
}

impl Default for MultimodalConfig {
    fn default() -> Self {
        let csv = CsvConfig::default();
        MultimodalConfig {
            images: PathBuf::new(),
            table: PathBuf::new(),
            id_column: "id".into(),
            image_column: None,
            label_column: csv.label_column,
            feature_columns: Vec::new(),
            categorical_columns: Vec::new(),
            drop_columns: Vec::new(),
            split_column: None,
            val_fraction: csv.val_fraction,
            test_fraction: csv.test_fraction,
            seed: csv.seed,
            delimiter: csv.delimiter,
            missing_values: csv.missing_values,
            max_categories: csv.max_categories,
            classes: Vec::new(),
            image_size: 64,
            channels: 1,
            on_error: BadImagePolicy::Fail,
            on_unmatched: UnmatchedPolicy::Fail,
            follow_symlinks: false,
            max_image_pixels: DEFAULT_MAX_IMAGE_PIXELS,
        }
    }
}

impl NodeConfig for MultimodalConfig {
    fn check(&self) -> Vec<ConfigIssue> {
        crate::split::image_dataset_issues(
            Some(self.channels),
            self.val_fraction,
            self.test_fraction,
        )
    }
}

impl MultimodalConfig {
    /// The table part as a [`CsvConfig`] (`id_column` left out when `has_id` is false).
    fn csv(&self, has_id: bool) -> CsvConfig {
        CsvConfig {
            path: self.table.clone(),
            label_column: self.label_column.clone(),
            id_column: has_id.then(|| self.id_column.clone()),
            feature_columns: self.feature_columns.clone(),
            categorical_columns: self.categorical_columns.clone(),
            drop_columns: self.drop_columns.clone(),
            split_column: self.split_column.clone(),
            val_fraction: self.val_fraction,
            test_fraction: self.test_fraction,
            seed: self.seed,
            delimiter: self.delimiter,
            missing_values: self.missing_values.clone(),
            max_categories: self.max_categories,
            classes: self.classes.clone(),
        }
    }
}

/// Loads a `dataset.multimodal`.
pub fn load_multimodal(config: &MultimodalConfig) -> Result<DatasetSplits, DataError> {
    let shape = check_image_config(config.image_size, config.channels)?;
    if config.images.as_os_str().is_empty() {
        return Err(DataError::config(
            "images",
            "is required (the image folder)",
        ));
    }
    if !config.images.is_dir() {
        return Err(DataError::MissingFolder {
            path: config.images.clone(),
        });
    }
    if config.table.as_os_str().is_empty() {
        return Err(DataError::config("table", "is required (the CSV file)"));
    }
    let table = read_table(&config.csv(false))?;
    let has_id = table.header.contains(&config.id_column);
    let (key_col, by_stem) = match &config.image_column {
        Some(c) => (table.column(c)?, false),
        None => (table.column(&config.id_column)?, true),
    };
    // The image column names files, not features.
    let mut csv = config.csv(has_id);
    if let Some(c) = &config.image_column
        && !csv.drop_columns.contains(c)
    {
        csv.drop_columns.push(c.clone());
    }

    // Image files by stem (a stem found twice is ambiguous, reported only if used).
    let mut stems: HashMap<String, PathBuf> = HashMap::new();
    let mut ambiguous: HashSet<String> = HashSet::new();
    let mut all_images = Vec::new();
    if by_stem {
        let mut walker = Walker::new(config.follow_symlinks);
        all_images = walker.images(&config.images)?;
        walker.warn_skipped();
        for path in &all_images {
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            if stems.insert(stem.clone(), path.clone()).is_some() {
                ambiguous.insert(stem);
            }
        }
    }

    let (mut rows, mut paths, mut unmatched) = (Vec::new(), Vec::new(), Vec::new());
    for (r, row) in table.rows.iter().enumerate() {
        let key = &row[key_col];
        if by_stem && ambiguous.contains(key) {
            return Err(DataError::config(
                "images",
                format!(
                    "several images are named `{key}` (any extension, any sub-folder); set `image_column` to say which"
                ),
            ));
        }
        let path = if by_stem {
            stems.get(key).cloned()
        } else {
            Some(config.images.join(key)).filter(|p| p.is_file())
        };
        match path {
            Some(p) => {
                rows.push(r);
                paths.push(p);
            }
            None => unmatched.push(key.clone()),
        }
    }
    if !unmatched.is_empty() {
        match config.on_unmatched {
            UnmatchedPolicy::Fail => {
                return Err(DataError::UnmatchedIds {
                    side: "table".into(),
                    other: format!("images under `{}`", config.images.display()),
                    count: unmatched.len(),
                    examples: list_some(&unmatched, 5),
                });
            }
            UnmatchedPolicy::Drop => tracing::warn!(
                count = unmatched.len(),
                first = %list_some(&unmatched, 5),
                "dropping table rows without an image"
            ),
        }
    }
    if by_stem {
        let used: HashSet<&PathBuf> = paths.iter().collect();
        let extra: Vec<String> = all_images
            .iter()
            .filter(|p| !used.contains(p))
            .map(|p| {
                p.strip_prefix(&config.images)
                    .unwrap_or(p)
                    .display()
                    .to_string()
            })
            .collect();
        if !extra.is_empty() {
            tracing::warn!(count = extra.len(), first = %list_some(&extra, 5), "images without a table row are not used");
        }
    }

    // Unreadable images: an error, or their rows dropped.
    let keep = verify_images(&paths, shape, config.on_error, config.max_image_pixels)?;
    let (rows, paths): (Vec<usize>, Vec<PathBuf>) = rows
        .into_iter()
        .zip(paths)
        .zip(&keep)
        .filter(|(_, k)| **k)
        .map(|(rp, _)| rp)
        .unzip();

    let prepared = prepare(&csv, &table, Some(&rows))?;
    let parts: Vec<_> = prepared
        .splits
        .into_iter()
        .map(|(positions, mut part)| {
            part.images = Some(ImageSource::Files {
                paths: positions.iter().map(|&i| paths[i].clone()).collect(),
                max_pixels: config.max_image_pixels,
            });
            part
        })
        .collect();
    let meta = DatasetMeta {
        source: format!("{} + {}", config.images.display(), config.table.display()),
        kind: DatasetKind::Multimodal,
        classes: prepared.classes,
        image: Some(shape),
        features: prepared.features,
        split_sizes: SplitSizes::default(),
    };
    assemble(
        meta,
        parts
            .try_into()
            .map_err(|_| DataError::input("splits", "expected three"))?,
        prepared.carving,
    )
}
