//! The settings of `train.classifier`, with the guide's names and defaults.

use medfusion_graph::{ConfigIssue, NodeConfig};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::device::DeviceSpec;
use crate::error::{Error, Result};
use crate::model::ModelConfig;

/// Which optimizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// AdamW (decoupled weight decay).
    #[default]
    Adamw,
    /// Adam (L2 weight decay added to the gradient, as PyTorch's `Adam(weight_decay=...)`).
    Adam,
    /// SGD with momentum (`momentum`) and L2 weight decay.
    Sgd,
}

/// Which learning-rate schedule (stepped once per optimizer step).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SchedulerKind {
    /// Linear warm-up over `warmup_epochs`, then cosine annealing to `min_lr`.
    #[default]
    Cosine,
    /// Multiply by `gamma` every `step_size` epochs.
    Step,
    /// Constant.
    None,
}

/// The low-precision dtype of mixed precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AmpDtype {
    /// bfloat16: f32's range, no loss scaling needed.
    #[default]
    Bf16,
    /// float16: dynamic loss scaling.
    F16,
}

/// The `train.classifier` settings (less the augmentation, which the data loader applies).
/// Every field has a default, so `{}` is a valid config.
///
/// This struct is the single source of the node type's config keys: their ranges and
/// defaults are what `medfusion validate` checks and `medfusion nodes train.classifier`
/// lists. Read one from JSON with [`TrainConfig::from_json`], which reports unknown keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(extend("additionalProperties" = false))]
pub struct TrainConfig {
    /// The model: `model` (its name, e.g. `fusion_resnet18`) and the keys that shape it.
    #[serde(flatten)]
    pub model: ModelConfig,
    /// Passes over the training data.
    #[schemars(range(min = 1, max = 100_000))]
    pub epochs: usize,
    /// Samples per micro-batch (per forward/backward).
    #[schemars(range(min = 1, max = 65_536))]
    pub batch_size: usize,
    /// Peak learning rate.
    #[schemars(range(max = 1.0), extend("exclusiveMinimum" = 0.0))]
    pub learning_rate: f64,
    /// The optimizer.
    pub optimizer: OptimizerKind,
    /// SGD momentum.
    #[schemars(range(min = 0.0), extend("exclusiveMaximum" = 1.0))]
    pub momentum: f64,
    /// Weight decay (decoupled for AdamW, L2 for Adam and SGD).
    #[schemars(range(min = 0.0, max = 1.0))]
    pub weight_decay: f64,
    /// Adam and AdamW betas, each in [0, 1).
    pub betas: [f64; 2],
    /// The learning-rate schedule (stepped once per optimizer step).
    pub scheduler: SchedulerKind,
    /// Epochs of linear warm-up before the cosine schedule.
    #[schemars(range(min = 0, max = 100_000))]
    pub warmup_epochs: usize,
    /// Floor of the cosine schedule (below `learning_rate`).
    #[schemars(range(min = 0.0, max = 1.0))]
    pub min_lr: f64,
    /// Epochs between learning-rate drops (step schedule).
    #[schemars(range(min = 1, max = 100_000))]
    pub step_size: usize,
    /// Factor of each learning-rate drop (step schedule).
    #[schemars(range(max = 1.0), extend("exclusiveMinimum" = 0.0))]
    pub gamma: f64,
    /// Mixed precision: f32 master weights, forward and backward in `amp_dtype`.
    pub use_amp: bool,
    /// The low-precision type of mixed precision.
    pub amp_dtype: AmpDtype,
    /// Micro-batches per optimizer step (effective batch = `batch_size` x this).
    #[schemars(range(min = 1, max = 4096))]
    pub gradient_accumulation_steps: usize,
    /// Stop after this many epochs without improvement of `monitor` (unset: never).
    #[schemars(range(min = 1, max = 100_000))]
    pub early_stopping_patience: Option<usize>,
    /// Smallest change of `monitor` that counts as an improvement.
    #[schemars(range(min = 0.0, max = 1e9))]
    pub min_delta: f64,
    /// The metric early stopping and best-model selection follow: `val_loss`, `val_auc`,
    /// `val_accuracy`, `val_f1`, `val_precision`, `val_sensitivity` or `val_specificity`.
    pub monitor: String,
    /// Keep the weights of the best epoch (by `monitor`) as the result.
    pub restore_best: bool,
    /// Epochs between checkpoints (0: none).
    #[schemars(range(min = 0, max = 100_000))]
    pub checkpoint_interval: usize,
    /// Clip the global gradient norm to this value.
    #[schemars(extend("exclusiveMinimum" = 0.0))]
    pub grad_clip: Option<f64>,
    /// Data-loading threads.
    #[schemars(range(min = 0, max = 256))]
    pub num_workers: usize,
    /// Seed of the weights and the data order (default: derived from the workflow's seed and
    /// the node id; 42 when used as a library).
    #[schemars(transform = medfusion_graph::no_default)]
    pub seed: u64,
    /// Where training runs: `auto`, `cpu` or `cuda:N`.
    pub device: DeviceSpec,
    /// Recompute activations in the backward pass instead of keeping them (less memory, more
    /// compute).
    pub activation_checkpointing: bool,
    /// Batches between progress reports.
    #[schemars(range(min = 1, max = 1_000_000))]
    pub log_interval: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            model: ModelConfig::default(),
            epochs: 10,
            batch_size: 32,
            learning_rate: 1e-3,
            optimizer: OptimizerKind::Adamw,
            momentum: 0.9,
            weight_decay: 1e-4,
            betas: [0.9, 0.999],
            scheduler: SchedulerKind::Cosine,
            warmup_epochs: 0,
            min_lr: 0.0,
            step_size: 10,
            gamma: 0.1,
            use_amp: false,
            amp_dtype: AmpDtype::Bf16,
            gradient_accumulation_steps: 1,
            early_stopping_patience: None,
            min_delta: 0.0,
            monitor: "val_loss".to_owned(),
            restore_best: true,
            checkpoint_interval: 1,
            grad_clip: None,
            num_workers: 2,
            seed: 42,
            device: DeviceSpec::Auto,
            activation_checkpointing: false,
            log_interval: 10,
        }
    }
}

impl NodeConfig for TrainConfig {
    /// The rules that join settings; every key's own range is in the struct's schema.
    fn check(&self) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        if self.min_lr >= self.learning_rate {
            issues.push(ConfigIssue::invalid(
                "min_lr",
                format!(
                    "{} must be below `learning_rate` ({})",
                    self.min_lr, self.learning_rate
                ),
            ));
        }
        if self.betas.iter().any(|b| !(0.0..1.0).contains(b)) {
            issues.push(ConfigIssue::invalid(
                "betas",
                format!("{:?}: each beta must be in [0, 1)", self.betas),
            ));
        }
        if self.scheduler == SchedulerKind::Cosine && self.warmup_epochs >= self.epochs {
            issues.push(ConfigIssue::invalid(
                "warmup_epochs",
                format!(
                    "{} leaves no epoch for the cosine schedule (`epochs` is {})",
                    self.warmup_epochs, self.epochs
                ),
            ));
        }
        if let Err(Error::Config { reason, .. }) = Monitor::parse(&self.monitor) {
            issues.push(ConfigIssue::invalid("monitor", reason));
        }
        issues
    }
}

impl TrainConfig {
    /// Reads settings from a JSON map of workflow keys, with every check of
    /// [`validate`](TrainConfig::validate) (unknown keys included).
    pub fn from_json(config: &serde_json::Map<String, serde_json::Value>) -> Result<TrainConfig> {
        medfusion_graph::ConfigSchema::of::<TrainConfig>()
            .parse(config)
            .map_err(Error::from_issues)
    }

    /// The batch loader of these settings over `split` (batch size, seed, workers), shuffled
    /// or not, with `augment` (training data) or none.
    pub fn loader(
        &self,
        split: crate::data::DataSplit,
        shuffle: bool,
        augment: crate::data::AugmentConfig,
    ) -> std::result::Result<crate::data::BatchLoader, crate::data::DataError> {
        crate::data::BatchLoader::new(
            split,
            crate::data::LoaderConfig {
                batch_size: self.batch_size,
                shuffle,
                seed: self.seed,
                num_workers: self.num_workers,
                augment,
                ..crate::data::LoaderConfig::default()
            },
        )
    }

    /// Checks every setting as `medfusion validate` does, naming the first one out of range
    /// or in conflict with another.
    pub fn validate(&self) -> Result<()> {
        medfusion_graph::check_config(self).map_err(Error::from_issues)
    }
}

/// A parsed `monitor` setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Monitor {
    /// `loss` or a metric name of [`crate::metrics::ClassificationMetrics::get`].
    pub(crate) metric: String,
    /// Whether larger is better.
    pub(crate) maximize: bool,
}

impl Monitor {
    pub(crate) fn parse(name: &str) -> Result<Monitor> {
        let metric = name.strip_prefix("val_").unwrap_or(name);
        let known = [
            "loss",
            "accuracy",
            "auc",
            "roc_auc",
            "sensitivity",
            "recall",
            "specificity",
            "precision",
            "f1",
            "log_loss",
        ];
        if !known.contains(&metric) {
            return Err(Error::config(
                "monitor",
                format!(
                    "unknown metric `{name}` (known: val_loss, val_accuracy, val_auc, val_f1, val_precision, val_sensitivity, val_specificity)"
                ),
            ));
        }
        Ok(Monitor {
            metric: metric.to_owned(),
            maximize: !matches!(metric, "loss" | "log_loss"),
        })
    }

    /// The monitored value of an epoch: the training loss when there is no validation data.
    pub(crate) fn read(
        &self,
        train_loss: f64,
        val_loss: Option<f64>,
        val_metrics: &std::collections::BTreeMap<String, f64>,
    ) -> Option<f64> {
        match (val_loss, self.metric.as_str()) {
            (None, _) => Some(train_loss),
            (Some(loss), "loss" | "log_loss") => Some(loss),
            (Some(_), "auc") => val_metrics.get("roc_auc").copied(),
            (Some(_), "recall") => val_metrics.get("sensitivity").copied(),
            (Some(_), name) => val_metrics.get(name).copied(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(value: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        match value {
            serde_json::Value::Object(map) => map,
            other => panic!("not a map: {other}"),
        }
    }

    #[test]
    fn empty_config_takes_the_defaults() {
        let config = TrainConfig::from_json(&map(json!({}))).unwrap();
        assert_eq!(config, TrainConfig::default());
        config.validate().unwrap();
    }

    #[test]
    fn guide_names_parse() {
        let config = TrainConfig::from_json(&map(json!({
            "model": "fusion_cnn", "epochs": 3, "optimizer": "sgd", "scheduler": "step",
            "use_amp": true, "amp_dtype": "f16", "gradient_accumulation_steps": 2,
            "early_stopping_patience": 2, "monitor": "val_auc", "device": "cpu",
            "grad_clip": 1.0, "tabular_hidden": [16]
        })))
        .unwrap();
        assert_eq!(config.model.arch.to_string(), "fusion_cnn");
        assert_eq!(config.model.tabular_hidden, vec![16]);
        assert_eq!(config.optimizer, OptimizerKind::Sgd);
        assert_eq!(config.amp_dtype, AmpDtype::F16);
        config.validate().unwrap();
    }

    #[test]
    fn bad_values_name_the_field() {
        for (json, field) in [
            (json!({"model": "resnet19"}), "model"),
            (json!({"epoch": 3}), "epoch"),
            (json!({"batch_size": 0}), "batch_size"),
            (json!({"learning_rate": -1}), "learning_rate"),
            (json!({"learning_rate": 5}), "learning_rate"),
            (json!({"momentum": 1.0}), "momentum"),
            (json!({"gamma": 0}), "gamma"),
            (json!({"monitor": "val_speed"}), "monitor"),
            (json!({"epochs": 2, "warmup_epochs": 2}), "warmup_epochs"),
            (json!({"grad_clip": 0}), "grad_clip"),
            (json!({"min_lr": 0.01, "learning_rate": 0.001}), "min_lr"),
            (json!({"betas": [0.9, 1.0]}), "betas"),
            (json!({"device": "tpu"}), "device"),
        ] {
            let err = TrainConfig::from_json(&map(json.clone()))
                .unwrap_err()
                .to_string();
            assert!(err.contains(&format!("`{field}`")), "{json}: {err}");
        }
    }

    #[test]
    fn settings_built_in_code_follow_the_same_rules() {
        let config = TrainConfig {
            learning_rate: 2.0,
            ..TrainConfig::default()
        };
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("`learning_rate`"), "{err}");
        assert!(err.contains("(0, 1]"), "{err}");
    }
}
