//! The settings of `train.classifier`, with the guide's names and defaults.

use serde::{Deserialize, Serialize};

use crate::device::DeviceSpec;
use crate::error::{Error, Result};
use crate::model::{ModelConfig, ModelKind, deserialize_model};

/// Which optimizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AmpDtype {
    /// bfloat16: f32's range, no loss scaling needed.
    #[default]
    Bf16,
    /// float16: dynamic loss scaling.
    F16,
}

/// The `train.classifier` settings. Every field has a default, so `{}` is a valid config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// The model: a name (`fusion_resnet18`) or a map of [`ModelConfig`] fields.
    #[serde(deserialize_with = "deserialize_model")]
    pub model: ModelConfig,
    /// Passes over the training data.
    pub epochs: usize,
    /// Samples per micro-batch (per forward/backward).
    pub batch_size: usize,
    /// Peak learning rate.
    pub learning_rate: f64,
    /// `adamw`, `adam` or `sgd`.
    pub optimizer: OptimizerKind,
    /// SGD momentum.
    pub momentum: f64,
    /// Weight decay (decoupled for AdamW, L2 for Adam and SGD).
    pub weight_decay: f64,
    /// Adam/AdamW betas.
    pub betas: [f64; 2],
    /// `cosine`, `step` or `none`.
    pub scheduler: SchedulerKind,
    /// Epochs of linear warm-up before the cosine schedule.
    pub warmup_epochs: usize,
    /// Floor of the cosine schedule.
    pub min_lr: f64,
    /// Epochs between learning-rate drops of the step schedule.
    pub step_size: usize,
    /// Factor of each drop of the step schedule.
    pub gamma: f64,
    /// Mixed precision: f32 master weights, forward and backward in `amp_dtype`.
    pub use_amp: bool,
    /// `bf16` or `f16`.
    pub amp_dtype: AmpDtype,
    /// Micro-batches per optimizer step (effective batch = `batch_size` x this).
    pub gradient_accumulation_steps: usize,
    /// Stop after this many epochs without improvement of `monitor` (unset: never).
    pub early_stopping_patience: Option<usize>,
    /// Smallest change of `monitor` that counts as an improvement.
    pub min_delta: f64,
    /// The metric early stopping and best-model selection follow: `val_loss`, or `val_` and a
    /// metric name (`val_accuracy`, `val_auc`, `val_f1`, ...).
    pub monitor: String,
    /// Keep the weights of the best epoch (by `monitor`) as the result.
    pub restore_best: bool,
    /// Epochs between checkpoints (0: none).
    pub checkpoint_interval: usize,
    /// Clip the global gradient norm to this value.
    pub grad_clip: Option<f64>,
    /// Data-loading threads (used by the loader, not by the loop).
    pub num_workers: usize,
    /// Seed of the weights and of the data order.
    pub seed: u64,
    /// `auto`, `cpu` or `cuda:N`.
    pub device: DeviceSpec,
    /// Recompute activations in the backward pass instead of keeping them (less memory, more
    /// compute): Burn's autodiff checkpointing.
    pub activation_checkpointing: bool,
    /// Batches between progress reports.
    pub log_interval: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            model: ModelConfig::new(ModelKind::Fusion(crate::model::ImageArch::ResNet18)),
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

impl TrainConfig {
    /// Checks every setting, naming the first one out of range.
    pub fn validate(&self) -> Result<()> {
        self.model.validate()?;
        let positive = |field: &str, v: usize| {
            if v == 0 {
                Err(Error::config(field, "must be at least 1"))
            } else {
                Ok(())
            }
        };
        positive("epochs", self.epochs)?;
        positive("batch_size", self.batch_size)?;
        positive(
            "gradient_accumulation_steps",
            self.gradient_accumulation_steps,
        )?;
        positive("log_interval", self.log_interval)?;
        if !(self.learning_rate > 0.0 && self.learning_rate <= 1.0) {
            return Err(Error::config(
                "learning_rate",
                format!("{} is not in (0, 1]", self.learning_rate),
            ));
        }
        if !(self.min_lr >= 0.0 && self.min_lr < self.learning_rate) {
            return Err(Error::config(
                "min_lr",
                "must be at least 0 and below `learning_rate`",
            ));
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return Err(Error::config("momentum", "must be in [0, 1)"));
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return Err(Error::config(
                "weight_decay",
                "must be a finite number >= 0",
            ));
        }
        if self.betas.iter().any(|b| !(0.0..1.0).contains(b)) {
            return Err(Error::config("betas", "each beta must be in [0, 1)"));
        }
        if self.scheduler == SchedulerKind::Step {
            positive("step_size", self.step_size)?;
            if !(self.gamma > 0.0 && self.gamma <= 1.0) {
                return Err(Error::config("gamma", "must be in (0, 1]"));
            }
        }
        if self.scheduler == SchedulerKind::Cosine && self.warmup_epochs >= self.epochs {
            return Err(Error::config(
                "warmup_epochs",
                format!(
                    "{} leaves no epoch for the cosine schedule (epochs: {})",
                    self.warmup_epochs, self.epochs
                ),
            ));
        }
        if !(self.min_delta >= 0.0 && self.min_delta.is_finite()) {
            return Err(Error::config("min_delta", "must be a finite number >= 0"));
        }
        if let Some(clip) = self.grad_clip
            && !(clip > 0.0 && clip.is_finite())
        {
            return Err(Error::config("grad_clip", "must be a finite number > 0"));
        }
        Monitor::parse(&self.monitor)?;
        Ok(())
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_takes_the_defaults() {
        let config: TrainConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(config, TrainConfig::default());
        config.validate().unwrap();
    }

    #[test]
    fn guide_names_parse() {
        let config: TrainConfig = serde_json::from_str(
            r#"{"model": "fusion_cnn", "epochs": 3, "optimizer": "sgd", "scheduler": "step",
                "use_amp": true, "amp_dtype": "f16", "gradient_accumulation_steps": 2,
                "early_stopping_patience": 2, "monitor": "val_auc", "device": "cpu",
                "grad_clip": 1.0}"#,
        )
        .unwrap();
        assert_eq!(config.model.arch.to_string(), "fusion_cnn");
        assert_eq!(config.optimizer, OptimizerKind::Sgd);
        assert_eq!(config.amp_dtype, AmpDtype::F16);
        config.validate().unwrap();
        let map: TrainConfig =
            serde_json::from_str(r#"{"model": {"arch": "mlp", "tabular_hidden": [16]}}"#).unwrap();
        assert_eq!(map.model.tabular_hidden, vec![16]);
    }

    #[test]
    fn bad_values_name_the_field() {
        let err = serde_json::from_str::<TrainConfig>(r#"{"model": "resnet19"}"#).unwrap_err();
        assert!(
            err.to_string().contains("unknown model `resnet19`"),
            "{err}"
        );
        let err = serde_json::from_str::<TrainConfig>(r#"{"epoch": 3}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `epoch`"), "{err}");
        for (json, field) in [
            (r#"{"batch_size": 0}"#, "batch_size"),
            (r#"{"learning_rate": -1}"#, "learning_rate"),
            (r#"{"monitor": "val_speed"}"#, "monitor"),
            (r#"{"epochs": 2, "warmup_epochs": 2}"#, "warmup_epochs"),
            (r#"{"grad_clip": 0}"#, "grad_clip"),
        ] {
            let config: TrainConfig = serde_json::from_str(json).unwrap();
            let err = config.validate().unwrap_err().to_string();
            assert!(err.contains(&format!("`{field}`")), "{json}: {err}");
        }
    }
}
