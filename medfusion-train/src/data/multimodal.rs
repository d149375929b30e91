//! `dataset.multimodal`: images and a CSV table joined by an id column.
//!
//! Each table row names its image either through `id_column` (matched against image file
//! stems anywhere under `images`) or through `image_column` (a path relative to
//! `images`). Labels, splits and features come from the table, as for `dataset.csv`.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::data::dataset::{
    BadImagePolicy, DatasetKind, DatasetMeta, DatasetSplits, ImageSource, SplitSizes,
};
use crate::data::error::{DataError, list_some};
use crate::data::image_folder::{check_image_config, verify_images, walk_images};
use crate::data::split::assemble;
use crate::data::table::{CsvConfig, prepare, read_table};

/// What to do with table rows whose image cannot be found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnmatchedPolicy {
    /// Stop with an error listing the unmatched ids.
    #[default]
    Fail,
    /// Leave those rows out, with a warning.
    Drop,
}

/// Config of `dataset.multimodal`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MultimodalConfig {
    /// The folder holding the images (searched recursively).
    pub images: PathBuf,
    /// The table: labels, features, ids, splits.
    pub table: CsvConfig,
    /// A table column of image paths relative to `images` (default: match `table.id_column`
    /// against image file names without extension).
    pub image_column: Option<String>,
    /// Side of the square images after resizing.
    pub image_size: usize,
    /// 1 (grayscale) or 3 (RGB).
    pub channels: usize,
    /// What to do with images that cannot be decoded (`skip` drops their rows).
    pub on_error: BadImagePolicy,
    /// What to do with rows without an image.
    pub on_unmatched: UnmatchedPolicy,
}

impl Default for MultimodalConfig {
    fn default() -> Self {
        MultimodalConfig {
            images: PathBuf::new(),
            table: CsvConfig::default(),
            image_column: None,
            image_size: 224,
            channels: 3,
            on_error: BadImagePolicy::Fail,
            on_unmatched: UnmatchedPolicy::Fail,
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
    let table = read_table(&config.table)?;
    let (key_col, by_stem) = match (&config.image_column, &config.table.id_column) {
        (Some(c), _) => (table.column(c)?, false),
        (None, Some(c)) => (table.column(c)?, true),
        (None, None) => {
            return Err(DataError::config(
                "table.id_column",
                "is required to join rows to images (or set `image_column`)",
            ));
        }
    };

    // Image files by stem (a stem found twice is ambiguous, reported only if used).
    let mut stems: HashMap<String, PathBuf> = HashMap::new();
    let mut ambiguous: HashSet<String> = HashSet::new();
    let mut all_images = Vec::new();
    if by_stem {
        all_images = walk_images(&config.images)?;
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
    let keep = verify_images(&paths, shape, config.on_error)?;
    let (rows, paths): (Vec<usize>, Vec<PathBuf>) = rows
        .into_iter()
        .zip(paths)
        .zip(&keep)
        .filter(|(_, k)| **k)
        .map(|(rp, _)| rp)
        .unzip();

    let prepared = prepare(&config.table, &table, Some(&rows))?;
    let parts: Vec<_> = prepared
        .splits
        .into_iter()
        .map(|(positions, mut part)| {
            part.images = Some(ImageSource::Files(
                positions.iter().map(|&i| paths[i].clone()).collect(),
            ));
            part
        })
        .collect();
    let meta = DatasetMeta {
        source: format!(
            "{} + {}",
            config.images.display(),
            config.table.path.display()
        ),
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
    )
}
