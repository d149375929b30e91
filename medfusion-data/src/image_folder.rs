//! `dataset.image_folder`: `root/{train,val,test}/<class>/*.png|jpg|jpeg`, or
//! `root/<class>/*` split by fractions.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use medfusion_graph::{ConfigIssue, NodeConfig};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ImageShape;
use crate::dataset::{
    BadImagePolicy, DatasetKind, DatasetMeta, DatasetSplits, ImageSource, SplitSizes,
};
use crate::decode::{check_decodes, probe};
use crate::error::{DataError, list_some};
use crate::split::{Carving, SplitParts, assemble, check_fractions, stratified_split};
use crate::walk::Walker;

/// Config of `dataset.image_folder`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ImageFolderConfig {
    /// The folder holding `train/`, `val/`, `test/` (or the class folders directly).
    #[schemars(extend("format" = "path", "x-required" = true))]
    pub root: PathBuf,
    /// Side of the square images after resizing.
    #[schemars(range(min = 1, max = 4096))]
    pub image_size: usize,
    /// 1 (grayscale) or 3 (RGB); images are converted as needed.
    #[schemars(range(min = 1, max = 3))]
    pub channels: usize,
    /// Fraction of each class held out for validation when there is no `val/` folder.
    #[schemars(range(min = 0.0), extend("exclusiveMaximum" = 1.0))]
    pub val_fraction: f64,
    /// Fraction of each class held out for test when there is no `test/` folder.
    #[schemars(range(min = 0.0), extend("exclusiveMaximum" = 1.0))]
    pub test_fraction: f64,
    /// Seed of those splits (default: the workflow's).
    #[schemars(transform = medfusion_graph::no_default)]
    pub seed: u64,
    /// What to do with files that cannot be decoded.
    pub on_error: BadImagePolicy,
    /// Class folder names in label order (default: all class folders, sorted).
    pub classes: Vec<String>,
    /// Follow symbolic links to folders (off: they are skipped with a warning, and a split
    /// or class folder that is one is an error). Links are followed once each, loops are
    /// skipped, and a file reached twice is an error naming both paths.
    pub follow_symlinks: bool,
    /// Largest image, in pixels (width x height), checked in each file's header before it is
    /// decoded; a larger one is an error naming the file (with `on_error: skip` too).
    #[schemars(range(min = 1))]
    pub max_image_pixels: u64,
}

impl Default for ImageFolderConfig {
    fn default() -> Self {
        ImageFolderConfig {
            root: PathBuf::new(),
            image_size: 64,
            channels: 1,
            val_fraction: 0.15,
            test_fraction: 0.15,
            seed: 42,
            on_error: BadImagePolicy::Fail,
            classes: Vec::new(),
            follow_symlinks: false,
            max_image_pixels: DEFAULT_MAX_IMAGE_PIXELS,
        }
    }
}

impl NodeConfig for ImageFolderConfig {
    fn check(&self) -> Vec<ConfigIssue> {
        crate::split::image_dataset_issues(
            Some(self.channels),
            self.val_fraction,
            self.test_fraction,
        )
    }
}

/// The default `max_image_pixels` of image datasets: 64 Mpx (8192 x 8192), about 256 MB
/// decoded as RGBA.
pub const DEFAULT_MAX_IMAGE_PIXELS: u64 = 64 * 1024 * 1024;

/// The most classes a dataset may have (class folders, distinct CSV labels, `.npz` label
/// values); more is almost always the wrong column or labels that are not class indices.
pub const MAX_CLASSES: usize = 10_000;

/// Checks the image part of a config.
pub(crate) fn check_image_config(
    image_size: usize,
    channels: usize,
) -> Result<ImageShape, DataError> {
    if !(1..=4096).contains(&image_size) {
        return Err(DataError::config(
            "image_size",
            format!("must be in [1, 4096], got {image_size}"),
        ));
    }
    if channels != 1 && channels != 3 {
        return Err(DataError::config(
            "channels",
            format!("must be 1 or 3, got {channels}"),
        ));
    }
    Ok(ImageShape {
        channels,
        depth: 1,
        height: image_size,
        width: image_size,
    })
}

/// The class sub-folders of `dir`, sorted by name.
fn class_folders(walker: &Walker, dir: &Path) -> Result<Vec<String>, DataError> {
    let classes: Vec<String> = walker
        .folders(dir)?
        .into_iter()
        .filter_map(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_string))
        .collect();
    if classes.len() > MAX_CLASSES {
        return Err(DataError::config(
            "root",
            format!(
                "`{}` has {} class folders, more than the {MAX_CLASSES} classes a dataset may \
                 have; is it the right folder?",
                dir.display(),
                classes.len()
            ),
        ));
    }
    Ok(classes)
}

/// Checks the files per `policy`: headers for `Fail` (the first bad file is the error),
/// full decodes for `Skip` (returns which files to keep, warning about each other one).
pub(crate) fn verify_images(
    paths: &[PathBuf],
    shape: ImageShape,
    policy: BadImagePolicy,
    max_pixels: u64,
) -> Result<Vec<bool>, DataError> {
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .clamp(1, 8);
    let per = paths.len().div_ceil(threads).max(1);
    let results: Vec<Result<(), DataError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = paths
            .chunks(per)
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|p| match policy {
                            BadImagePolicy::Fail => probe(p, max_pixels).map(|_| ()),
                            BadImagePolicy::Skip => check_decodes(p, shape, max_pixels),
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let mut keep = Vec::with_capacity(paths.len());
    for result in results {
        match (result, policy) {
            (Ok(()), _) => keep.push(true),
            // Too large is not "unreadable" (to skip): the limit is a setting to raise.
            (Err(e), BadImagePolicy::Fail)
            | (Err(e @ DataError::ImageTooLarge { .. }), BadImagePolicy::Skip) => return Err(e),
            (Err(e), BadImagePolicy::Skip) => {
                tracing::warn!(error = %e, "skipping an unreadable image");
                keep.push(false);
            }
        }
    }
    if keep.len() != paths.len() {
        return Err(DataError::input("images", "an image check thread failed"));
    }
    Ok(keep)
}

/// Images and labels of one split folder (`dir/<class>/...`).
fn scan_split(
    walker: &mut Walker,
    dir: &Path,
    classes: &[String],
    split: &str,
) -> Result<(Vec<PathBuf>, Vec<u32>), DataError> {
    let index: HashMap<&str, u32> = classes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i as u32))
        .collect();
    let found = class_folders(walker, dir)?;
    let unknown: Vec<&String> = found
        .iter()
        .filter(|c| !index.contains_key(c.as_str()))
        .collect();
    if !unknown.is_empty() && split != "train" {
        return Err(DataError::ClassMismatch {
            split: split.to_string(),
            detail: format!("folders not among the classes: {}", list_some(unknown, 10)),
        });
    }
    let (mut paths, mut labels) = (Vec::new(), Vec::new());
    for class in classes {
        let folder = dir.join(class);
        if !walker.is_layout_folder(&folder)? {
            if split == "train" {
                return Err(DataError::MissingFolder { path: folder });
            }
            tracing::warn!(split, class = %class, "class has no folder in this split");
            continue;
        }
        let images = walker.images(&folder)?;
        if images.is_empty() && split == "train" {
            return Err(DataError::NoImages { path: folder });
        }
        labels.extend(std::iter::repeat_n(index[class.as_str()], images.len()));
        paths.extend(images);
    }
    Ok((paths, labels))
}

/// Loads a `dataset.image_folder`.
pub fn load_image_folder(config: &ImageFolderConfig) -> Result<DatasetSplits, DataError> {
    let shape = check_image_config(config.image_size, config.channels)?;
    check_fractions(config.val_fraction, config.test_fraction)?;
    let root = &config.root;
    if root.as_os_str().is_empty() {
        return Err(DataError::config("root", "is required (the image folder)"));
    }
    if !root.is_dir() {
        return Err(DataError::MissingFolder { path: root.clone() });
    }
    let mut walker = Walker::new(config.follow_symlinks);
    let train_dir = root.join("train");
    let layout_split = walker.is_layout_folder(&train_dir)?;
    let class_root = if layout_split {
        train_dir.clone()
    } else {
        root.clone()
    };
    let classes = if config.classes.is_empty() {
        class_folders(&walker, &class_root)?
    } else {
        config.classes.clone()
    };
    if classes.len() > MAX_CLASSES {
        return Err(DataError::config(
            "classes",
            format!(
                "names {} classes, more than the {MAX_CLASSES} a dataset may have",
                classes.len()
            ),
        ));
    }
    if classes.is_empty() {
        return Err(DataError::NoClasses { path: class_root });
    }
    if classes.len() < 2 {
        return Err(DataError::config(
            "root",
            format!(
                "`{}` has one class folder (`{}`); at least 2 are needed",
                class_root.display(),
                classes[0]
            ),
        ));
    }

    // Per split: paths and labels; a missing val/test folder is carved out of train.
    let (train_paths, train_labels) = scan_split(&mut walker, &class_root, &classes, "train")?;
    let mut splits: [(Vec<PathBuf>, Vec<u32>); 3] = [
        (train_paths, train_labels),
        Default::default(),
        Default::default(),
    ];
    let mut carve = [0.0, 0.0];
    for (i, names) in [(1, &["val", "valid", "validation"][..]), (2, &["test"][..])] {
        let mut found = None;
        if layout_split {
            for dir in names.iter().map(|n| root.join(n)) {
                if walker.is_layout_folder(&dir)? {
                    found = Some(dir);
                    break;
                }
            }
        }
        match found {
            Some(dir) => splits[i] = scan_split(&mut walker, &dir, &classes, names[0])?,
            None => {
                carve[i - 1] = if i == 1 {
                    config.val_fraction
                } else {
                    config.test_fraction
                }
            }
        }
    }
    walker.warn_skipped();
    let carving = Carving {
        samples: splits[0].0.len(),
        fractions: carve,
        per_class: true,
    };
    if carve != [0.0, 0.0] {
        let (paths, labels) = std::mem::take(&mut splits[0]);
        let [tr, va, te] =
            stratified_split(&labels, classes.len(), carve[0], carve[1], config.seed);
        let pick = |rows: &[usize]| {
            (
                rows.iter().map(|&r| paths[r].clone()).collect(),
                rows.iter().map(|&r| labels[r]).collect(),
            )
        };
        splits[0] = pick(&tr);
        if carve[0] > 0.0 {
            splits[1] = pick(&va);
        }
        if carve[1] > 0.0 {
            splits[2] = pick(&te);
        }
    }

    let mut out: Vec<SplitParts> = Vec::with_capacity(3);
    for (paths, labels) in splits {
        let keep = verify_images(&paths, shape, config.on_error, config.max_image_pixels)?;
        let (paths, labels): (Vec<PathBuf>, Vec<u32>) = paths
            .into_iter()
            .zip(labels)
            .zip(&keep)
            .filter(|(_, k)| **k)
            .map(|(pl, _)| pl)
            .unzip();
        let ids = paths
            .iter()
            .map(|p| {
                p.strip_prefix(root)
                    .unwrap_or(p)
                    .to_string_lossy()
                    .replace('\\', "/")
            })
            .collect();
        out.push(SplitParts {
            labels,
            ids,
            images: Some(ImageSource::Files {
                paths,
                max_pixels: config.max_image_pixels,
            }),
            tabular: None,
        });
    }
    let meta = DatasetMeta {
        source: root.display().to_string(),
        kind: DatasetKind::Image,
        classes,
        image: Some(shape),
        features: Vec::new(),
        split_sizes: SplitSizes::default(),
    };
    assemble(
        meta,
        out.try_into()
            .map_err(|_| DataError::input("splits", "expected three"))?,
        Some(carving),
    )
}
