//! `dataset.csv`: a table with a label column and feature columns.
//!
//! Numeric columns are standardised, text columns one-hot encoded, missing cells imputed
//! (training mean or mode), every statistic fitted on the training split only. Splits come
//! from a split column or from stratified fractions.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;

use medfusion_graph::{ConfigIssue, NodeConfig};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::dataset::{DatasetKind, DatasetMeta, DatasetSplits, FeatureInfo, SplitSizes};
use crate::error::{DataError, list_some};
use crate::image_folder::MAX_CLASSES;
use crate::split::{Carving, SplitParts, assemble, check_fractions, stratified_split};
use crate::tabular::{Column, RawColumn, fit_transform};

/// Config of `dataset.csv` (the table part of `dataset.multimodal` too).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct CsvConfig {
    /// The CSV file (with a header row).
    #[schemars(extend("format" = "path", "x-required" = true))]
    pub path: PathBuf,
    /// The column holding class labels (any text; numbers sort numerically).
    pub label_column: String,
    /// A column of unique sample ids (default: `row-<line>`).
    pub id_column: Option<String>,
    /// The feature columns (default: every column not named elsewhere).
    pub feature_columns: Vec<String>,
    /// Columns to one-hot encode even though they hold numbers (codes, for example).
    pub categorical_columns: Vec<String>,
    /// Columns to leave out.
    pub drop_columns: Vec<String>,
    /// A column saying `train`, `val` (or `valid`, `validation`) or `test` per row.
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
    /// The field separator (one character).
    pub delimiter: char,
    /// Cell texts that mean "missing" (compared after trimming).
    pub missing_values: Vec<String>,
    /// Most distinct values a categorical column may have.
    #[schemars(range(min = 1, max = 100_000))]
    pub max_categories: usize,
    /// Class names in index order (default: the labels found, sorted).
    pub classes: Vec<String>,
}

impl Default for CsvConfig {
    fn default() -> Self {
        CsvConfig {
            path: PathBuf::new(),
            label_column: "label".into(),
            id_column: None,
            feature_columns: Vec::new(),
            categorical_columns: Vec::new(),
            drop_columns: Vec::new(),
            split_column: None,
            val_fraction: 0.15,
            test_fraction: 0.15,
            seed: 42,
            delimiter: ',',
            missing_values: ["", "NA", "N/A", "NaN", "nan", "null", "NULL", "None", "?"]
                .map(String::from)
                .to_vec(),
            max_categories: 50,
            classes: Vec::new(),
        }
    }
}

impl NodeConfig for CsvConfig {
    fn check(&self) -> Vec<ConfigIssue> {
        crate::split::fraction_issues(self.val_fraction, self.test_fraction)
    }
}

/// A CSV file read into memory.
pub(crate) struct Table {
    pub(crate) path: PathBuf,
    pub(crate) header: Vec<String>,
    pub(crate) rows: Vec<Vec<String>>,
    /// The 1-based file line of each row.
    pub(crate) lines: Vec<u64>,
}

impl Table {
    /// The index of `column`, or an error listing the columns there are.
    pub(crate) fn column(&self, column: &str) -> Result<usize, DataError> {
        self.header
            .iter()
            .position(|h| h == column)
            .ok_or_else(|| DataError::MissingColumn {
                path: self.path.clone(),
                column: column.to_string(),
                available: list_some(&self.header, 30),
            })
    }

    fn bad(&self, row: usize, col: usize, reason: impl Into<String>) -> DataError {
        DataError::BadValue {
            path: self.path.clone(),
            line: self.lines[row],
            column: self.header[col].clone(),
            value: self.rows[row][col].clone(),
            reason: reason.into(),
        }
    }
}

/// Reads `config.path`.
pub(crate) fn read_table(config: &CsvConfig) -> Result<Table, DataError> {
    let path = &config.path;
    if path.as_os_str().is_empty() {
        return Err(DataError::config("path", "is required (the CSV file)"));
    }
    let delimiter = u8::try_from(config.delimiter)
        .map_err(|_| DataError::config("delimiter", "must be one ASCII character"))?;
    let csv_err = |source| DataError::Csv {
        path: path.clone(),
        source,
    };
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .trim(csv::Trim::All)
        .from_path(path)
        .map_err(|e| {
            if e.is_io_error() {
                DataError::io(path, std::io::Error::from(e))
            } else {
                csv_err(e)
            }
        })?;
    let header: Vec<String> = reader
        .headers()
        .map_err(csv_err)?
        .iter()
        .map(str::to_string)
        .collect();
    let mut seen = HashSet::new();
    if let Some(dup) = header.iter().find(|h| !seen.insert(h.as_str())) {
        return Err(DataError::config(
            "path",
            format!("`{}` has two columns named `{dup}`", path.display()),
        ));
    }
    let (mut rows, mut lines) = (Vec::new(), Vec::new());
    for record in reader.records() {
        let record = record.map_err(csv_err)?;
        lines.push(record.position().map_or(0, csv::Position::line));
        rows.push(record.iter().map(str::to_string).collect());
    }
    Ok(Table {
        path: path.clone(),
        header,
        rows,
        lines,
    })
}

/// Labels, ids, splits and encoded features of the rows `keep` of a table.
pub(crate) struct Prepared {
    pub(crate) classes: Vec<String>,
    pub(crate) features: Vec<FeatureInfo>,
    /// Per split: (positions in `keep`, labels, ids, encoded rows).
    pub(crate) splits: Vec<(Vec<usize>, SplitParts)>,
    /// How val and test were carved out, without a split column.
    pub(crate) carving: Option<Carving>,
}

fn split_of(table: &Table, row: usize, col: usize) -> Result<usize, DataError> {
    match table.rows[row][col].to_ascii_lowercase().as_str() {
        "train" | "training" => Ok(0),
        "val" | "valid" | "validation" | "dev" => Ok(1),
        "test" | "testing" => Ok(2),
        _ => Err(table.bad(row, col, "split must be `train`, `val` or `test`")),
    }
}

/// Resolves classes, splits and features for the table rows `keep` (all rows: `None`).
pub(crate) fn prepare(
    config: &CsvConfig,
    table: &Table,
    keep: Option<&[usize]>,
) -> Result<Prepared, DataError> {
    check_fractions(config.val_fraction, config.test_fraction)?;
    let all: Vec<usize> = (0..table.rows.len()).collect();
    let keep = keep.unwrap_or(&all);
    let label_col = table.column(&config.label_column)?;
    let id_col = config
        .id_column
        .as_deref()
        .map(|c| table.column(c))
        .transpose()?;
    let split_col = config
        .split_column
        .as_deref()
        .map(|c| table.column(c))
        .transpose()?;
    let missing: HashSet<&str> = config.missing_values.iter().map(String::as_str).collect();

    // Classes: as configured, or the sorted labels (numerically when all are integers).
    for &r in keep {
        if missing.contains(table.rows[r][label_col].as_str()) {
            return Err(table.bad(r, label_col, "the label is missing"));
        }
    }
    let classes = if config.classes.is_empty() {
        let found: BTreeSet<&str> = keep
            .iter()
            .map(|&r| table.rows[r][label_col].as_str())
            .collect();
        let mut classes: Vec<String> = found.into_iter().map(str::to_string).collect();
        if classes.iter().all(|c| c.parse::<i64>().is_ok()) {
            classes.sort_by_key(|c| c.parse::<i64>().unwrap_or_default());
        }
        classes
    } else {
        config.classes.clone()
    };
    if classes.len() > MAX_CLASSES {
        return Err(DataError::config(
            if config.classes.is_empty() {
                "label_column"
            } else {
                "classes"
            },
            format!(
                "`{}` holds {} distinct labels, more than the {MAX_CLASSES} classes a dataset may \
                 have; is it the label column?",
                config.label_column,
                classes.len()
            ),
        ));
    }
    if classes.len() < 2 {
        return Err(DataError::config(
            "label_column",
            format!(
                "`{}` holds {} class(es); at least 2 are needed",
                config.label_column,
                classes.len()
            ),
        ));
    }
    let index: HashMap<&str, u32> = classes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i as u32))
        .collect();
    let labels = keep
        .iter()
        .map(|&r| {
            index
                .get(table.rows[r][label_col].as_str())
                .copied()
                .ok_or_else(|| {
                    table.bad(
                        r,
                        label_col,
                        format!("not one of the classes ({})", list_some(&classes, 10)),
                    )
                })
        })
        .collect::<Result<Vec<u32>, _>>()?;
    let ids = match id_col {
        Some(c) => {
            let mut seen = HashSet::new();
            keep.iter()
                .map(|&r| {
                    let id = &table.rows[r][c];
                    if id.is_empty() || !seen.insert(id.as_str()) {
                        return Err(table.bad(r, c, "ids must be present and unique"));
                    }
                    Ok(id.clone())
                })
                .collect::<Result<Vec<_>, _>>()?
        }
        None => keep
            .iter()
            .map(|&r| format!("row-{}", table.lines[r]))
            .collect(),
    };

    // Splits: positions into `keep`.
    let split_rows: [Vec<usize>; 3] = match split_col {
        Some(c) => {
            let mut out: [Vec<usize>; 3] = Default::default();
            for (i, &r) in keep.iter().enumerate() {
                out[split_of(table, r, c)?].push(i);
            }
            out
        }
        None => stratified_split(
            &labels,
            classes.len(),
            config.val_fraction,
            config.test_fraction,
            config.seed,
        ),
    };
    let carving = split_col.is_none().then_some(Carving {
        samples: keep.len(),
        fractions: [config.val_fraction, config.test_fraction],
        per_class: true,
    });

    let columns = feature_columns(
        config,
        table,
        keep,
        &[Some(label_col), id_col, split_col],
        &missing,
    )?;
    let (features, encoded) = fit_transform(
        &columns,
        &split_rows[0],
        &[&split_rows[0], &split_rows[1], &split_rows[2]],
        config.max_categories,
    )?;
    let splits = split_rows
        .into_iter()
        .zip(encoded)
        .map(|(rows, table)| {
            let mut parts = SplitParts::select(&labels, &ids, &rows);
            parts.tabular = Some(table);
            (rows, parts)
        })
        .collect();
    Ok(Prepared {
        classes,
        features,
        splits,
        carving,
    })
}

/// The raw feature columns over the rows `keep`.
fn feature_columns(
    config: &CsvConfig,
    table: &Table,
    keep: &[usize],
    reserved: &[Option<usize>],
    missing: &HashSet<&str>,
) -> Result<Vec<Column>, DataError> {
    let dropped = config
        .drop_columns
        .iter()
        .map(|c| table.column(c))
        .collect::<Result<HashSet<_>, _>>()?;
    let categorical = config
        .categorical_columns
        .iter()
        .map(|c| table.column(c))
        .collect::<Result<HashSet<_>, _>>()?;
    let chosen: Vec<usize> = if config.feature_columns.is_empty() {
        (0..table.header.len())
            .filter(|c| !dropped.contains(c) && !reserved.contains(&Some(*c)))
            .collect()
    } else {
        config
            .feature_columns
            .iter()
            .map(|c| table.column(c))
            .collect::<Result<_, _>>()?
    };
    if chosen.is_empty() {
        return Err(DataError::config(
            "feature_columns",
            format!("no feature columns left in `{}`", table.path.display()),
        ));
    }
    Ok(chosen
        .into_iter()
        .map(|c| {
            let cells = || {
                keep.iter().map(move |&r| {
                    let v = table.rows[r][c].as_str();
                    (!missing.contains(v)).then_some(v)
                })
            };
            let numeric = !categorical.contains(&c)
                && cells()
                    .flatten()
                    .all(|v| v.parse::<f64>().is_ok_and(f64::is_finite));
            let values = if numeric {
                RawColumn::Numeric(cells().map(|v| v.and_then(|v| v.parse().ok())).collect())
            } else {
                RawColumn::Categorical(cells().map(|v| v.map(str::to_string)).collect())
            };
            Column {
                name: table.header[c].clone(),
                values,
            }
        })
        .collect())
}

/// Loads a `dataset.csv`.
pub fn load_csv(config: &CsvConfig) -> Result<DatasetSplits, DataError> {
    let table = read_table(config)?;
    let prepared = prepare(config, &table, None)?;
    let meta = DatasetMeta {
        source: config.path.display().to_string(),
        kind: DatasetKind::Tabular,
        classes: prepared.classes,
        image: None,
        features: prepared.features,
        split_sizes: SplitSizes::default(),
    };
    let parts: Vec<SplitParts> = prepared.splits.into_iter().map(|(_, p)| p).collect();
    assemble(
        meta,
        parts
            .try_into()
            .map_err(|_| DataError::input("splits", "expected three"))?,
        prepared.carving,
    )
}
