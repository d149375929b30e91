//! From a dataset node's type and config to its loaded splits: the glue a `dataset.*` node
//! executor calls.

use std::path::Path;

use serde_json::Value;

use crate::dataset::DatasetSplits;
use crate::dicom::{DicomConfig, load_dicom};
use crate::error::DataError;
use crate::image_folder::{ImageFolderConfig, load_image_folder};
use crate::multimodal::{MultimodalConfig, load_multimodal};
use crate::nifti::{NiftiConfig, load_nifti};
use crate::npz::{NpzConfig, load_npz};
use crate::synthetic::{SyntheticConfig, generate_synthetic};
use crate::table::{CsvConfig, load_csv};

/// The built-in dataset node types.
pub const DATASET_NODE_TYPES: [&str; 7] = [
    "dataset.synthetic",
    "dataset.image_folder",
    "dataset.npz",
    "dataset.csv",
    "dataset.multimodal",
    "dataset.dicom",
    "dataset.nifti",
];

/// The parsed config of one of the built-in dataset node types.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum DatasetConfig {
    /// `dataset.synthetic`.
    Synthetic(SyntheticConfig),
    /// `dataset.image_folder`.
    ImageFolder(ImageFolderConfig),
    /// `dataset.npz`.
    Npz(NpzConfig),
    /// `dataset.csv`.
    Csv(CsvConfig),
    /// `dataset.multimodal`.
    Multimodal(MultimodalConfig),
    /// `dataset.dicom`.
    Dicom(DicomConfig),
    /// `dataset.nifti`.
    Nifti(NiftiConfig),
}

/// Reads a dataset node's config with every check `medfusion validate` makes.
fn parse<T: medfusion_graph::NodeConfig>(node_type: &str, config: Value) -> Result<T, DataError> {
    let Value::Object(map) = config else {
        return Err(DataError::config(
            "config",
            "must be a map of keys and values",
        ));
    };
    medfusion_graph::ConfigSchema::of::<T>()
        .parse(&map)
        .map_err(|issues| match DataError::from_issues(issues) {
            DataError::InvalidConfig { field, reason, .. } => DataError::InvalidConfig {
                node_type: Some(node_type.to_string()),
                field,
                reason,
            },
            other => other,
        })
}

impl DatasetConfig {
    /// Parses the config object of a node of type `node_type`. Keys left out take their
    /// defaults; `seed`, when the config has none (or `null`), is `default_seed` (the
    /// workflow's seed) if given.
    pub fn from_json(
        node_type: &str,
        config: &Value,
        default_seed: Option<u64>,
    ) -> Result<DatasetConfig, DataError> {
        let mut config = match config {
            Value::Null => Value::Object(serde_json::Map::new()),
            Value::Object(_) => config.clone(),
            _ => {
                return Err(DataError::config(
                    format!("{node_type} config"),
                    "must be an object of keys and values",
                ));
            }
        };
        if let Value::Object(map) = &mut config {
            // Keys set to null mean "use the default".
            map.retain(|_, v| !v.is_null());
            if let Some(seed) = default_seed {
                map.entry("seed").or_insert(Value::from(seed));
            }
        }
        Ok(match node_type {
            "dataset.synthetic" => DatasetConfig::Synthetic(parse(node_type, config)?),
            "dataset.image_folder" => DatasetConfig::ImageFolder(parse(node_type, config)?),
            "dataset.npz" => DatasetConfig::Npz(parse(node_type, config)?),
            "dataset.csv" => DatasetConfig::Csv(parse(node_type, config)?),
            "dataset.multimodal" => DatasetConfig::Multimodal(parse(node_type, config)?),
            "dataset.dicom" => DatasetConfig::Dicom(parse(node_type, config)?),
            "dataset.nifti" => DatasetConfig::Nifti(parse(node_type, config)?),
            other => {
                return Err(DataError::config(
                    "type",
                    format!(
                        "`{other}` is not a dataset node type (known: {})",
                        DATASET_NODE_TYPES.join(", ")
                    ),
                ));
            }
        })
    }

    /// Makes relative file paths relative to `base` (the workflow file's folder).
    pub fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut std::path::PathBuf| {
            if !p.as_os_str().is_empty() && p.is_relative() {
                *p = base.join(&*p);
            }
        };
        match self {
            DatasetConfig::Synthetic(_) => {}
            DatasetConfig::ImageFolder(c) => fix(&mut c.root),
            DatasetConfig::Npz(c) => fix(&mut c.path),
            DatasetConfig::Csv(c) => fix(&mut c.path),
            DatasetConfig::Multimodal(c) => {
                fix(&mut c.images);
                fix(&mut c.table);
            }
            DatasetConfig::Dicom(c) => {
                fix(&mut c.root);
                fix(&mut c.labels);
            }
            DatasetConfig::Nifti(c) => {
                fix(&mut c.root);
                fix(&mut c.labels);
            }
        }
    }

    /// The path the config key `key` holds (`path`, `root`, `images`, `table`), if this kind
    /// of dataset has that key.
    pub fn path_of(&self, key: &str) -> Option<std::path::PathBuf> {
        match (self, key) {
            (DatasetConfig::ImageFolder(c), "root") => Some(c.root.clone()),
            (DatasetConfig::Npz(c), "path") => Some(c.path.clone()),
            (DatasetConfig::Csv(c), "path") => Some(c.path.clone()),
            (DatasetConfig::Multimodal(c), "images") => Some(c.images.clone()),
            (DatasetConfig::Multimodal(c), "table") => Some(c.table.clone()),
            (DatasetConfig::Dicom(c), "root") => Some(c.root.clone()),
            (DatasetConfig::Dicom(c), "labels") => Some(c.labels.clone()),
            (DatasetConfig::Nifti(c), "root") => Some(c.root.clone()),
            (DatasetConfig::Nifti(c), "labels") => Some(c.labels.clone()),
            _ => None,
        }
    }

    /// Loads (or generates) the dataset.
    pub fn load(&self) -> Result<DatasetSplits, DataError> {
        match self {
            DatasetConfig::Synthetic(c) => generate_synthetic(c),
            DatasetConfig::ImageFolder(c) => load_image_folder(c),
            DatasetConfig::Npz(c) => load_npz(c),
            DatasetConfig::Csv(c) => load_csv(c),
            DatasetConfig::Multimodal(c) => load_multimodal(c),
            DatasetConfig::Dicom(c) => load_dicom(c),
            DatasetConfig::Nifti(c) => load_nifti(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn configs_parse_with_defaults_and_the_workflow_seed() {
        let c = DatasetConfig::from_json("dataset.synthetic", &json!({"samples": 100}), Some(7))
            .unwrap();
        let DatasetConfig::Synthetic(s) = c else {
            panic!("synthetic")
        };
        assert_eq!((s.samples, s.seed, s.image_size), (100, 7, 64));
        let c =
            DatasetConfig::from_json("dataset.synthetic", &json!({"seed": 3}), Some(7)).unwrap();
        assert!(matches!(
            c,
            DatasetConfig::Synthetic(SyntheticConfig { seed: 3, .. })
        ));
        let c = DatasetConfig::from_json(
            "dataset.npz",
            &json!({"path": "a.npz", "image_size": null}),
            None,
        )
        .unwrap();
        assert!(matches!(
            c,
            DatasetConfig::Npz(NpzConfig {
                image_size: None,
                ..
            })
        ));
        let data = DatasetConfig::from_json(
            "dataset.synthetic",
            &json!({"samples": 30, "image_size": 8, "tabular_features": 3}),
            None,
        )
        .unwrap()
        .load()
        .unwrap();
        assert_eq!(
            data.info().split_sizes.train
                + data.info().split_sizes.val
                + data.info().split_sizes.test,
            30
        );
    }

    #[test]
    fn relative_paths_follow_the_workflow_folder() {
        let mut c = DatasetConfig::from_json(
            "dataset.multimodal",
            &json!({"images": "imgs", "table": "/abs/t.csv"}),
            None,
        )
        .unwrap();
        c.resolve_paths(Path::new("/work/flows"));
        let DatasetConfig::Multimodal(m) = c else {
            panic!("multimodal")
        };
        assert_eq!(m.images, Path::new("/work/flows/imgs"));
        assert_eq!(m.table, Path::new("/abs/t.csv"));
    }

    #[test]
    fn bad_configs_name_the_node_type_and_key() {
        let err = DatasetConfig::from_json(
            "dataset.csv",
            &json!({"path": "x", "lable_column": "y"}),
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("dataset.csv") && err.contains("lable_column"),
            "{err}"
        );
        let err =
            DatasetConfig::from_json("dataset.image_folder", &json!({"image_size": "big"}), None)
                .unwrap_err()
                .to_string();
        assert!(
            err.contains("dataset.image_folder") && err.contains("big"),
            "{err}"
        );
        let err = DatasetConfig::from_json("dataset.parquet", &json!({}), None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("dataset.parquet") && err.contains("dataset.csv"),
            "{err}"
        );
        assert!(DatasetConfig::from_json("dataset.csv", &json!([1]), None).is_err());
    }
}
