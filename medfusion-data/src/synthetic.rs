//! `dataset.synthetic`: a deterministic medical-like image + clinical table generator.
//!
//! Every sample shows a lesion on a textured, tissue-like background, and comes with a
//! row of clinical features. Class 0 is "benign": a faint, smooth, round lesion and
//! unremarkable labs. A case of class `k >= 1` shows its disease in the image (a larger,
//! brighter, heterogeneous, irregular lesion, with a class-specific look), in the table
//! (older age, a raised `marker_k`), or in both, drawn per case (`image_share`,
//! `both_share`). So an image-only model misses the cases that only the table reveals and
//! the other way round, while a fusion model sees both: that is what the generator exists
//! to show. `difficulty` (0 to 1) narrows the gap between benign and diseased looks and
//! adds noise. The lesion diameter also appears in the table (measured with noise), tying
//! the two modalities together as in real records.

use medfusion_graph::{ConfigIssue, NodeConfig};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ImageShape;
use crate::dataset::{DatasetKind, DatasetMeta, DatasetSplits, ImageSource, SplitSizes, image_len};
use crate::error::DataError;
use crate::split::{Carving, SplitParts, assemble};
use crate::synthetic_render::{Case, column_names, render_image, render_row};
use crate::tabular::{Column, RawColumn, fit_transform};

/// Which parts of the generated samples a `dataset.synthetic` node outputs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SyntheticModality {
    /// Images and table rows.
    #[default]
    Multimodal,
    /// Images only (the same samples, for single-modality baselines).
    Image,
    /// Table rows only.
    Tabular,
}

/// Config of `dataset.synthetic`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SyntheticConfig {
    /// Samples over all splits (at least 3 per class).
    #[schemars(range(min = 10, max = 10_000_000))]
    pub samples: usize,
    /// Image side in pixels (images are square, grayscale).
    #[schemars(range(min = 8, max = 1024))]
    pub image_size: usize,
    /// Slices per sample: 1 for 2D images, more for volumes of `depth x image_size x
    /// image_size` with an ellipsoidal lesion (for the 3D models).
    #[schemars(range(min = 1, max = 512))]
    pub depth: usize,
    /// Table columns: age, lesion diameter, one marker per disease class, then distractors
    /// (at least `classes` + 1).
    #[schemars(range(min = 0, max = 1024))]
    pub tabular_features: usize,
    /// Number of classes (class 0 is benign).
    #[schemars(range(min = 2, max = 100))]
    pub classes: usize,
    /// Relative class frequencies, e.g. `[0.7, 0.3]` (default: equal).
    pub class_balance: Vec<f64>,
    /// Fraction of samples in the validation split.
    #[schemars(range(min = 0.0), extend("exclusiveMaximum" = 1.0))]
    pub val_fraction: f64,
    /// Fraction of samples in the test split.
    #[schemars(range(min = 0.0), extend("exclusiveMaximum" = 1.0))]
    pub test_fraction: f64,
    /// Seed of generation and splitting (default: the workflow's): the same seed and config
    /// give the same dataset, byte for byte.
    #[schemars(transform = medfusion_graph::no_default)]
    pub seed: u64,
    /// 0 (easy) to 1 (hard): how far diseased cases stand out, and how noisy images are.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub difficulty: f64,
    /// Of diseased cases that show in one modality only, the share shown in the image.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub image_share: f64,
    /// Share of diseased cases that show in both modalities.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub both_share: f64,
    /// Which parts of the same samples to give (for single-modality baselines).
    pub modality: SyntheticModality,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        SyntheticConfig {
            samples: 2000,
            image_size: 64,
            depth: 1,
            tabular_features: 8,
            classes: 2,
            class_balance: Vec::new(),
            val_fraction: 0.15,
            test_fraction: 0.15,
            seed: 42,
            difficulty: 0.5,
            image_share: 0.5,
            both_share: 0.1,
            modality: SyntheticModality::Multimodal,
        }
    }
}

impl NodeConfig for SyntheticConfig {
    fn check(&self) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        if self.samples < 3 * self.classes {
            issues.push(ConfigIssue::invalid(
                "samples",
                format!(
                    "must be at least 3 per class ({} for {} classes)",
                    3 * self.classes,
                    self.classes
                ),
            ));
        }
        let min_features = self.classes + 1;
        if self.tabular_features < min_features {
            issues.push(ConfigIssue::invalid(
                "tabular_features",
                format!(
                    "must be at least {min_features} for {} classes (age, lesion diameter and \
                     one marker per disease class)",
                    self.classes
                ),
            ));
        }
        if !self.class_balance.is_empty() && self.class_balance.len() != self.classes {
            issues.push(ConfigIssue::invalid(
                "class_balance",
                format!(
                    "has {} weights for {} classes",
                    self.class_balance.len(),
                    self.classes
                ),
            ));
        } else if self
            .class_balance
            .iter()
            .any(|w| !(w.is_finite() && *w > 0.0))
        {
            issues.push(ConfigIssue::invalid(
                "class_balance",
                "weights must be positive",
            ));
        }
        issues.extend(crate::split::fraction_issues(
            self.val_fraction,
            self.test_fraction,
        ));
        issues
    }
}

impl SyntheticConfig {
    /// Checks every key as `medfusion validate` does, naming the first one out of range.
    pub fn validate(&self) -> Result<(), DataError> {
        medfusion_graph::check_config(self).map_err(DataError::from_issues)
    }

    fn weights(&self) -> Vec<f64> {
        if self.class_balance.is_empty() {
            vec![1.0; self.classes]
        } else {
            self.class_balance.clone()
        }
    }
}

/// Splits `n` into per-class counts proportional to `weights` (largest remainder).
fn apportion(n: usize, weights: &[f64]) -> Vec<usize> {
    let total: f64 = weights.iter().sum();
    let exact: Vec<f64> = weights.iter().map(|w| n as f64 * w / total).collect();
    let mut counts: Vec<usize> = exact.iter().map(|e| e.floor() as usize).collect();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|&a, &b| (exact[b] - exact[b].floor()).total_cmp(&(exact[a] - exact[a].floor())));
    let missing = n - counts.iter().sum::<usize>();
    for &k in order.iter().take(missing) {
        counts[k] += 1;
    }
    counts
}

/// The generated samples before they are split up and standardised: what
/// [`generate_synthetic`] assembles and the example-data export writes to files.
pub(crate) struct Drawn {
    /// One case per sample, train cases first, then val, then test.
    pub(crate) cases: Vec<Case>,
    /// The split of each case (0 train, 1 val, 2 test).
    pub(crate) split_of: Vec<usize>,
    /// Grey pixels, `image_size * image_size` per case, row-major.
    pub(crate) pixels: Vec<u8>,
    /// The raw (unstandardised) table row of each case, in [`column_names`] order.
    pub(crate) rows: Vec<Vec<f64>>,
}

/// The class names: `benign`, then `disease_1`, `disease_2`, ...
pub(crate) fn class_names(config: &SyntheticConfig) -> Vec<String> {
    (0..config.classes)
        .map(|k| {
            if k == 0 {
                "benign".to_string()
            } else {
                format!("disease_{k}")
            }
        })
        .collect()
}

/// The id of case `index` (its position over all splits).
pub(crate) fn case_id(index: usize) -> String {
    format!("case-{index:05}")
}

/// Draws every case of `config` and renders its image and table row.
pub(crate) fn draw_samples(config: &SyntheticConfig) -> Result<Drawn, DataError> {
    config.validate()?;
    let n_val = (config.samples as f64 * config.val_fraction).round() as usize;
    let n_test = (config.samples as f64 * config.test_fraction).round() as usize;
    let sizes = [config.samples - n_val - n_test, n_val, n_test];
    let weights = config.weights();

    // Labels per split (class proportions kept in each), then one case per sample.
    let mut cases = Vec::with_capacity(config.samples);
    let mut split_of = Vec::with_capacity(config.samples);
    for (split, &size) in sizes.iter().enumerate() {
        let mut labels: Vec<u32> = apportion(size, &weights)
            .iter()
            .enumerate()
            .flat_map(|(k, &c)| std::iter::repeat_n(k as u32, c))
            .collect();
        crate::rng::SplitMix64::derive(config.seed, &[0x5E_1AB, split as u64]).shuffle(&mut labels);
        for label in labels {
            let index = cases.len() as u64;
            cases.push(Case::draw(config, label, index));
            split_of.push(split);
        }
    }

    let shape = ImageShape {
        channels: 1,
        depth: config.depth,
        height: config.image_size,
        width: config.image_size,
    };

    // Images are rendered in parallel; each case has its own random stream, so the result
    // does not depend on the number of threads.
    let mut pixels = vec![0u8; cases.len() * image_len(shape)];
    let mut diameters = vec![0.0f64; cases.len()];
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(8);
    let per = cases.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        for ((chunk_cases, chunk_pixels), chunk_diam) in cases
            .chunks(per)
            .zip(pixels.chunks_mut(per * image_len(shape)))
            .zip(diameters.chunks_mut(per))
        {
            scope.spawn(move || {
                for ((case, out), d) in chunk_cases
                    .iter()
                    .zip(chunk_pixels.chunks_exact_mut(image_len(shape)))
                    .zip(chunk_diam.iter_mut())
                {
                    *d = render_image(case, config, out);
                }
            });
        }
    });

    // Raw table rows (the lesion diameter comes from the image).
    let rows: Vec<Vec<f64>> = cases
        .iter()
        .zip(&diameters)
        .map(|(case, &d)| render_row(case, config, d))
        .collect();
    Ok(Drawn {
        cases,
        split_of,
        pixels,
        rows,
    })
}

/// Generates the dataset described by `config`.
pub fn generate_synthetic(config: &SyntheticConfig) -> Result<DatasetSplits, DataError> {
    let Drawn {
        cases,
        split_of,
        pixels,
        rows,
    } = draw_samples(config)?;
    let shape = ImageShape {
        channels: 1,
        depth: config.depth,
        height: config.image_size,
        width: config.image_size,
    };
    let with_images = config.modality != SyntheticModality::Tabular;
    let with_table = config.modality != SyntheticModality::Image;

    // Standardisation fitted on the training rows.
    let columns: Vec<Column> = column_names(config)
        .into_iter()
        .enumerate()
        .map(|(j, name)| Column {
            name,
            values: RawColumn::Numeric(rows.iter().map(|r| Some(r[j])).collect()),
        })
        .collect();
    let split_rows: Vec<Vec<usize>> = (0..3)
        .map(|s| (0..cases.len()).filter(|&i| split_of[i] == s).collect())
        .collect();
    let (features, tables) = fit_transform(
        &columns,
        &split_rows[0],
        &[&split_rows[0], &split_rows[1], &split_rows[2]],
        usize::MAX,
    )?;

    let kind = match config.modality {
        SyntheticModality::Multimodal => DatasetKind::Multimodal,
        SyntheticModality::Image => DatasetKind::Image,
        SyntheticModality::Tabular => DatasetKind::Tabular,
    };
    let info = DatasetMeta {
        source: "synthetic".into(),
        kind,
        classes: class_names(config),
        image: with_images.then_some(shape),
        features: if with_table { features } else { Vec::new() },
        split_sizes: SplitSizes::default(),
    };
    let mut tables = tables.into_iter();
    let parts = split_rows.iter().map(|rows| {
        let table = tables.next().unwrap_or_default();
        let mut split_pixels = Vec::new();
        if with_images {
            split_pixels.reserve(rows.len() * image_len(shape));
            for &i in rows {
                split_pixels
                    .extend_from_slice(&pixels[i * image_len(shape)..(i + 1) * image_len(shape)]);
            }
        }
        SplitParts {
            labels: rows.iter().map(|&i| cases[i].label).collect(),
            ids: rows.iter().map(|&i| case_id(i)).collect(),
            images: with_images.then_some(ImageSource::Pixels(split_pixels)),
            tabular: with_table.then_some(table),
        }
    });
    let parts: Vec<SplitParts> = parts.collect();
    let parts: [SplitParts; 3] = parts.try_into().expect("three splits");
    let carving = Carving {
        samples: config.samples,
        fractions: [config.val_fraction, config.test_fraction],
        per_class: false,
    };
    assemble(info, parts, Some(carving))
}
