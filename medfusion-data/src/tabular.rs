//! Turning raw table columns into standardised features, fitted on the training rows only:
//! numeric columns are imputed with the training mean and standardised; categorical
//! columns are imputed with the training mode and one-hot encoded (values never seen in
//! training encode as all zeros).

use std::collections::{BTreeMap, BTreeSet};

use crate::dataset::FeatureInfo;
use crate::error::DataError;

/// One raw column over every row of the table (all splits).
#[derive(Debug, Clone)]
pub(crate) enum RawColumn {
    /// Numbers; `None` is missing.
    Numeric(Vec<Option<f64>>),
    /// Category names; `None` is missing.
    Categorical(Vec<Option<String>>),
}

/// A named raw column.
#[derive(Debug, Clone)]
pub(crate) struct Column {
    pub(crate) name: String,
    pub(crate) values: RawColumn,
}

/// How one raw column maps to features, as fitted on the training rows.
enum Encoder {
    Numeric {
        mean: f64,
        std: f64,
    },
    OneHot {
        categories: Vec<String>,
        mode: String,
    },
}

/// Fits encoders on `train` rows and encodes the rows of each split in `splits`.
///
/// Returns the features' descriptions and, per split, its rows flattened (row-major).
pub(crate) fn fit_transform(
    columns: &[Column],
    train: &[usize],
    splits: &[&[usize]],
    max_categories: usize,
) -> Result<(Vec<FeatureInfo>, Vec<Vec<f32>>), DataError> {
    let mut encoders = Vec::with_capacity(columns.len());
    let mut features = Vec::new();
    for column in columns {
        let encoder = fit(column, train, max_categories)?;
        match &encoder {
            Encoder::Numeric { mean, std } => features.push(FeatureInfo {
                name: column.name.clone(),
                mean: *mean as f32,
                std: *std as f32,
            }),
            Encoder::OneHot { categories, .. } => {
                features.extend(categories.iter().map(|c| FeatureInfo {
                    name: format!("{}={c}", column.name),
                    mean: 0.0,
                    std: 1.0,
                }));
            }
        }
        encoders.push(encoder);
    }
    let width = features.len();
    let outputs = splits
        .iter()
        .map(|rows| {
            let mut out = Vec::with_capacity(rows.len() * width);
            for &row in *rows {
                for (column, encoder) in columns.iter().zip(&encoders) {
                    encode(column, encoder, row, &mut out);
                }
            }
            out
        })
        .collect();
    Ok((features, outputs))
}

fn fit(column: &Column, train: &[usize], max_categories: usize) -> Result<Encoder, DataError> {
    match &column.values {
        RawColumn::Numeric(values) => {
            let seen: Vec<f64> = train.iter().filter_map(|&r| values[r]).collect();
            if seen.is_empty() {
                return Err(DataError::config(
                    format!("columns.{}", column.name),
                    "has no value in the training split; drop the column",
                ));
            }
            let n = seen.len() as f64;
            let mean = seen.iter().sum::<f64>() / n;
            let var = seen.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
            let std = if var.sqrt() > 1e-12 { var.sqrt() } else { 1.0 };
            Ok(Encoder::Numeric { mean, std })
        }
        RawColumn::Categorical(values) => {
            let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
            for &r in train {
                if let Some(v) = &values[r] {
                    *counts.entry(v.as_str()).or_default() += 1;
                }
            }
            if counts.is_empty() {
                return Err(DataError::config(
                    format!("columns.{}", column.name),
                    "has no value in the training split; drop the column",
                ));
            }
            if counts.len() > max_categories {
                return Err(DataError::config(
                    format!("columns.{}", column.name),
                    format!(
                        "is categorical with {} distinct values (more than max_categories = \
                         {max_categories}); is it an id? name it in `id_column` or `drop_columns`",
                        counts.len()
                    ),
                ));
            }
            // Ties go to the first name in sorted order, so the mode is deterministic.
            let mode = counts
                .iter()
                .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
                .map(|(k, _)| (*k).to_string())
                .unwrap_or_default();
            let categories: BTreeSet<&str> = counts.keys().copied().collect();
            Ok(Encoder::OneHot {
                categories: categories.into_iter().map(str::to_string).collect(),
                mode,
            })
        }
    }
}

fn encode(column: &Column, encoder: &Encoder, row: usize, out: &mut Vec<f32>) {
    match (&column.values, encoder) {
        (RawColumn::Numeric(values), Encoder::Numeric { mean, std }) => {
            let v = values[row].unwrap_or(*mean);
            out.push(((v - mean) / std) as f32);
        }
        (RawColumn::Categorical(values), Encoder::OneHot { categories, mode }) => {
            let v = values[row].as_deref().unwrap_or(mode);
            out.extend(categories.iter().map(|c| if c == v { 1.0 } else { 0.0 }));
        }
        _ => unreachable!("encoders are fitted per column kind"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(name: &str, v: &[Option<f64>]) -> Column {
        Column {
            name: name.into(),
            values: RawColumn::Numeric(v.to_vec()),
        }
    }

    fn categorical(name: &str, v: &[Option<&str>]) -> Column {
        Column {
            name: name.into(),
            values: RawColumn::Categorical(v.iter().map(|s| s.map(str::to_string)).collect()),
        }
    }

    #[test]
    fn standardisation_uses_training_rows_only() {
        // Train rows 0..3 hold 1, 2, 3 (mean 2, std sqrt(2/3)); row 3 (test) holds 100.
        let cols = [numeric(
            "x",
            &[Some(1.0), Some(2.0), Some(3.0), Some(100.0)],
        )];
        let (features, out) = fit_transform(&cols, &[0, 1, 2], &[&[0, 1, 2], &[3]], 10).unwrap();
        let std = (2.0f64 / 3.0).sqrt();
        assert_eq!(features[0].name, "x");
        assert!((f64::from(features[0].mean) - 2.0).abs() < 1e-6);
        assert!((f64::from(features[0].std) - std).abs() < 1e-6);
        assert!((f64::from(out[0][0]) + 1.0 / std).abs() < 1e-5);
        assert!((f64::from(out[1][0]) - 98.0 / std).abs() < 1e-3);
    }

    #[test]
    fn missing_numbers_get_the_training_mean() {
        let cols = [numeric("x", &[Some(2.0), Some(4.0), None, None])];
        let (_, out) = fit_transform(&cols, &[0, 1, 2], &[&[2], &[3]], 10).unwrap();
        assert_eq!(out[0], [0.0]);
        assert_eq!(out[1], [0.0]);
    }

    #[test]
    fn categories_are_one_hot_with_mode_and_unknowns() {
        let cols = [categorical(
            "sex",
            &[Some("f"), Some("m"), Some("f"), None, Some("x")],
        )];
        let (features, out) = fit_transform(&cols, &[0, 1, 2], &[&[0, 1, 3, 4]], 10).unwrap();
        let names: Vec<_> = features.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["sex=f", "sex=m"]);
        // f, m, missing -> mode f, unseen x -> zeros.
        assert_eq!(out[0], [1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn constant_columns_do_not_divide_by_zero() {
        let cols = [numeric("c", &[Some(5.0), Some(5.0)])];
        let (features, out) = fit_transform(&cols, &[0, 1], &[&[0, 1]], 10).unwrap();
        assert!((features[0].std - 1.0).abs() < f32::EPSILON);
        assert_eq!(out[0], [0.0, 0.0]);
    }

    #[test]
    fn id_like_and_empty_columns_are_reported_by_name() {
        let ids: Vec<String> = (0..20).map(|i| format!("p{i}")).collect();
        let cols = [categorical(
            "patient",
            &ids.iter().map(|s| Some(s.as_str())).collect::<Vec<_>>(),
        )];
        let train: Vec<usize> = (0..20).collect();
        let err = fit_transform(&cols, &train, &[&train], 5)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("columns.patient") && err.contains("id_column"),
            "{err}"
        );
        let cols = [numeric("empty", &[None, None])];
        let err = fit_transform(&cols, &[0, 1], &[&[0]], 5)
            .unwrap_err()
            .to_string();
        assert!(err.contains("columns.empty"), "{err}");
    }
}
