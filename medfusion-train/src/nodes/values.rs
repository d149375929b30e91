//! The values this crate's nodes pass along: dataset splits and trained models, with how
//! each is saved and restored for resumed runs.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use burn::tensor::Device;
use medfusion_exec::{BoxError, PortValue, SavedValue, Value};
use medfusion_graph::PortType;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::data::DatasetInfo;
use crate::data::{DataSplit, DatasetConfig, DatasetSplits, SplitName};
use crate::device::DeviceSpec;
use crate::hooks::EpochRecord;
use crate::model::ModelConfig;
use crate::train::TrainedModel;

/// Codec of saved dataset splits.
pub(crate) const DATASET_CODEC: &str = "medfusion.dataset";
/// Codec of saved trained models.
pub(crate) const MODEL_CODEC: &str = "medfusion.model";

/// How a dataset was made: enough to make it again (generation and loading are
/// deterministic), so a resumed run restores it without storing the samples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct DatasetSource {
    pub(crate) node_type: String,
    pub(crate) config: serde_json::Value,
    pub(crate) workflow_seed: u64,
    pub(crate) base_dir: PathBuf,
}

impl DatasetSource {
    pub(crate) fn load(&self) -> Result<DatasetSplits, BoxError> {
        let mut config =
            DatasetConfig::from_json(&self.node_type, &self.config, Some(self.workflow_seed))?;
        config.resolve_paths(&self.base_dir);
        Ok(config.load()?)
    }
}

/// One split of a dataset, on a dataset port.
#[derive(Debug, Clone)]
pub struct DatasetValue {
    pub(crate) port_type: PortType,
    pub(crate) split: DataSplit,
    pub(crate) source: Arc<DatasetSource>,
}

impl DatasetValue {
    /// The samples.
    pub fn split(&self) -> &DataSplit {
        &self.split
    }
}

fn split_name(name: SplitName) -> &'static str {
    name.as_str()
}

impl PortValue for DatasetValue {
    fn port_type(&self) -> PortType {
        self.port_type.clone()
    }

    fn summary(&self) -> serde_json::Value {
        let meta = self.split.info();
        let info = meta.model_info();
        json!({
            "split": split_name(self.split.name()),
            "samples": self.split.len(),
            "classes": info.class_names,
            "class_counts": self.split.class_counts(),
            "image": info.image.map(|s| [s.channels, s.height, s.width]),
            "tabular_features": info.tabular_features,
        })
    }

    fn save(&self) -> Result<SavedValue, BoxError> {
        Ok(SavedValue::json(
            DATASET_CODEC,
            json!({
                "port_type": self.port_type.name(),
                "split": split_name(self.split.name()),
                "source": *self.source,
            }),
        ))
    }
}

/// Restores dataset splits; the three splits of one dataset are loaded once.
#[derive(Default)]
pub(crate) struct DatasetCodec {
    loaded: Mutex<HashMap<String, DatasetSplits>>,
}

impl medfusion_exec::ValueCodec for DatasetCodec {
    fn restore(&self, saved: &SavedValue) -> Result<Value, BoxError> {
        let source: DatasetSource = serde_json::from_value(saved.data["source"].clone())?;
        let key = serde_json::to_string(&source)?;
        let splits = {
            let mut loaded = self.loaded.lock().map_err(|_| "dataset cache poisoned")?;
            if let Some(s) = loaded.get(&key) {
                s.clone()
            } else {
                let s = source.load()?;
                loaded.insert(key, s.clone());
                s
            }
        };
        let name = match saved.data["split"].as_str() {
            Some("train") => SplitName::Train,
            Some("val") => SplitName::Val,
            Some("test") => SplitName::Test,
            other => return Err(format!("unknown split {other:?}").into()),
        };
        let port_type = saved.data["port_type"]
            .as_str()
            .unwrap_or("dataset.multimodal");
        Ok(Value::new(DatasetValue {
            port_type: port_type.parse().unwrap_or(PortType::MultimodalDataset),
            split: splits.split(name).clone(),
            source: Arc::new(source),
        }))
    }
}

/// A trained model on a model port, with its training history.
#[derive(Debug, Clone)]
pub struct ModelValue {
    /// The training node that made it.
    pub node: String,
    /// The model and what it was built for.
    pub trained: TrainedModel,
    /// One record per epoch.
    pub history: Vec<EpochRecord>,
    /// The epoch whose weights these are, when the best was kept.
    pub best_epoch: Option<usize>,
    /// Whether early stopping ended training.
    pub stopped_early: bool,
    /// Where the model lives.
    pub device: Device,
    /// How the weights were quantized, for a model of `compress.quantize` (its weights are
    /// saved as f32 and quantized again when restored).
    pub quantization: Option<crate::compress::QuantizeConfig>,
}

#[derive(Serialize, Deserialize)]
struct SavedModel {
    node: String,
    config: ModelConfig,
    info: DatasetInfo,
    history: Vec<EpochRecord>,
    best_epoch: Option<usize>,
    stopped_early: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    quantization: Option<crate::compress::QuantizeConfig>,
}

impl PortValue for ModelValue {
    fn port_type(&self) -> PortType {
        PortType::Model
    }

    fn summary(&self) -> serde_json::Value {
        json!({
            "model": self.trained.config.arch.to_string(),
            "parameters": crate::model::count_parameters(&self.trained.model),
            "classes": self.trained.info.class_names,
            "epochs": self.history.len(),
            "best_epoch": self.best_epoch,
            "stopped_early": self.stopped_early,
            "quantization": self.quantization,
            "history": self.history,
        })
    }

    fn save(&self) -> Result<SavedValue, BoxError> {
        let meta = SavedModel {
            node: self.node.clone(),
            config: self.trained.config.clone(),
            info: self.trained.info.clone(),
            history: self.history.clone(),
            best_epoch: self.best_epoch,
            stopped_early: self.stopped_early,
            quantization: self.quantization,
        };
        Ok(SavedValue::json(MODEL_CODEC, serde_json::to_value(meta)?)
            .with_blob("model.safetensors", self.trained.to_safetensors()?.into()))
    }
}

/// Restores trained models onto the CPU.
pub(crate) fn restore_model(saved: &SavedValue) -> Result<Value, BoxError> {
    let meta: SavedModel = serde_json::from_value(saved.data.clone())?;
    let bytes = saved
        .blobs
        .get("model.safetensors")
        .ok_or("the model's weights are missing")?;
    let device = DeviceSpec::Cpu.resolve()?;
    let mut trained =
        TrainedModel::from_safetensors(meta.config, meta.info, bytes.to_vec(), &device)?;
    if let Some(q) = &meta.quantization {
        trained.model = crate::compress::quantize(&trained.model, q).0;
    }
    Ok(Value::new(ModelValue {
        node: meta.node,
        trained,
        history: meta.history,
        best_epoch: meta.best_epoch,
        stopped_early: meta.stopped_early,
        device,
        quantization: meta.quantization,
    }))
}
