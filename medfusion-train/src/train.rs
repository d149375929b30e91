//! The training loop: epochs of micro-batches, gradient accumulation, mixed precision, the
//! schedule, validation, early stopping, checkpoints and resume.

use std::collections::BTreeMap;
use std::time::Instant;

use burn::module::Module;
use burn::tensor::Device;

use crate::config::{Monitor, TrainConfig};
use crate::data::DatasetInfo;
use crate::error::{Error, Result};
use crate::eval::predict;
use crate::hooks::{EpochRecord, TrainHooks};
use crate::model::{Model, ModelConfig};
use crate::resume::TrainState;
use crate::source::BatchSource;
use crate::state::{load_model_safetensors, model_to_safetensors};
use crate::trainer::Trainer;

/// A trained model with what it needs to be rebuilt: the `model` output of `train.classifier`.
#[derive(Debug, Clone)]
pub struct TrainedModel {
    /// The model settings.
    pub config: ModelConfig,
    /// The data it was built for (classes, image shape, tabular features).
    pub info: DatasetInfo,
    /// The model, in inference mode (no autodiff).
    pub model: Model,
}

impl TrainedModel {
    /// The weights as safetensors bytes (PyTorch names).
    pub fn to_safetensors(&self) -> Result<Vec<u8>> {
        // Safetensors has no int8-with-scales type: quantized weights are written as the f32
        // values they stand for (quantizing them again gives the same int8 weights back).
        if crate::compress::is_quantized(&self.model) {
            return model_to_safetensors(&crate::compress::dequantize(&self.model));
        }
        model_to_safetensors(&self.model)
    }

    /// Rebuilds a model from its settings and safetensors weights, on `device`.
    pub fn from_safetensors(
        config: ModelConfig,
        info: DatasetInfo,
        bytes: Vec<u8>,
        device: &Device,
    ) -> Result<TrainedModel> {
        let mut model = config.build_uninit(&info, device)?;
        load_model_safetensors(&mut model, bytes)?;
        Ok(TrainedModel {
            config,
            info,
            model: model.valid(),
        })
    }
}

impl TrainedModel {
    /// An error ([`Error::ModelInput`]) unless data described by `data` fits this model: the
    /// number of classes, and the image shape and tabular features of the parts it uses, as
    /// it was trained on them. A sentence says what differs ("the model expects images of
    /// 3x64x64 but the data has 1x32x32").
    pub fn check_data(&self, data: &DatasetInfo) -> Result<()> {
        let bad = |reason: String| {
            Err(Error::ModelInput {
                model: self.config.arch.to_string(),
                reason,
            })
        };
        let trained = &self.info;
        if data.classes != trained.classes {
            return bad(format!(
                "the model was trained for {} classes but the data has {}",
                trained.classes, data.classes
            ));
        }
        if self.config.arch.uses_images() {
            match (trained.image, data.image) {
                (Some(m), Some(d)) if m != d => {
                    return bad(format!(
                        "the model expects images of {m} but the data has {d} (set the dataset's \
                         `image_size` and `channels` as in training)"
                    ));
                }
                (Some(m), None) => {
                    return bad(format!(
                        "the model expects images of {m} but the data has none"
                    ));
                }
                _ => {}
            }
        }
        if self.config.arch.uses_tabular() && data.tabular_features != trained.tabular_features {
            let count = |n: Option<usize>| n.map_or_else(|| "none".to_owned(), |n| n.to_string());
            return bad(format!(
                "the model expects {} tabular features but the data has {} (are the table's \
                 columns and categories the same as in training?)",
                count(trained.tabular_features),
                count(data.tabular_features)
            ));
        }
        Ok(())
    }
}

/// What [`train`] returns.
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    /// The final model (the best epoch's when `restore_best` and there was an improvement).
    pub model: TrainedModel,
    /// One record per epoch, resumed epochs included.
    pub history: Vec<EpochRecord>,
    /// Whether early stopping ended the run.
    pub stopped_early: bool,
    /// The epoch with the best monitored value.
    pub best_epoch: Option<usize>,
    /// The state after the last epoch.
    pub state: TrainState,
}

/// Trains on the device of `config.device` (see [`train_on`]).
pub fn train(
    config: &TrainConfig,
    info: &DatasetInfo,
    train_data: &dyn BatchSource,
    val_data: Option<&dyn BatchSource>,
    hooks: &mut dyn TrainHooks,
    resume: Option<&TrainState>,
) -> Result<TrainOutcome> {
    config.validate()?;
    let device = config.device.resolve()?;
    train_on(&device, config, info, train_data, val_data, hooks, resume)
}

/// Trains a model of `config.model` for `info` on `device` (a plain device; autodiff is added
/// here), continuing from `resume` when given.
pub fn train_on(
    device: &Device,
    config: &TrainConfig,
    info: &DatasetInfo,
    train_data: &dyn BatchSource,
    val_data: Option<&dyn BatchSource>,
    hooks: &mut dyn TrainHooks,
    resume: Option<&TrainState>,
) -> Result<TrainOutcome> {
    run_loop(
        device, config, info, train_data, val_data, hooks, resume, None,
    )
}

/// Trains `config.epochs` more epochs starting from the weights of `start` (fresh optimizer
/// and schedule): fine-tuning, e.g. of a pruned model (whose zeros the hooks' `after_step`
/// can keep).
pub fn fine_tune(
    device: &Device,
    config: &TrainConfig,
    info: &DatasetInfo,
    start: &Model,
    train_data: &dyn BatchSource,
    val_data: Option<&dyn BatchSource>,
    hooks: &mut dyn TrainHooks,
) -> Result<TrainOutcome> {
    run_loop(
        device,
        config,
        info,
        train_data,
        val_data,
        hooks,
        None,
        Some(start),
    )
}

#[allow(clippy::too_many_arguments)]
fn run_loop(
    device: &Device,
    config: &TrainConfig,
    info: &DatasetInfo,
    train_data: &dyn BatchSource,
    val_data: Option<&dyn BatchSource>,
    hooks: &mut dyn TrainHooks,
    resume: Option<&TrainState>,
    start: Option<&Model>,
) -> Result<TrainOutcome> {
    config.validate()?;
    if train_data.num_batches() == 0 {
        return Err(Error::config(
            "train_data",
            "the training data has no samples",
        ));
    }
    if val_data.is_some_and(|v| v.num_batches() == 0) {
        return Err(Error::config(
            "val_data",
            "the validation data has no samples (an empty split?); pass none to train without \
             validation",
        ));
    }
    let mut run = Trainer::new(device, config, info, train_data.num_batches())?;
    if let Some(model) = start {
        run.start_from(model)?;
    }
    if let Some(state) = resume {
        run.resume(state)?;
    }
    let monitor = Monitor::parse(&config.monitor)?;
    if val_data.is_none() && monitor.metric != "loss" {
        tracing::warn!(
            "`monitor: {}` needs validation data; following the training loss",
            config.monitor
        );
    }
    while run.epochs_done < config.epochs && !run.early.stopped {
        let epoch = run.epochs_done;
        let started = Instant::now();
        let skipped_before = run.scaler.skipped_steps;
        let train_loss = run.epoch(epoch, train_data, hooks)?;
        let (val_loss, val_metrics) = match val_data {
            Some(val) => {
                let predictions = predict(&run.model, val, &run.plain)?;
                let metrics = predictions.metrics(&info.class_names)?;
                let names = [
                    "accuracy",
                    "roc_auc",
                    "sensitivity",
                    "specificity",
                    "precision",
                    "f1",
                ];
                let values = names
                    .iter()
                    .filter_map(|n| metrics.get(n).map(|v| ((*n).to_owned(), v)))
                    .collect();
                (Some(predictions.loss), values)
            }
            None => (None, BTreeMap::new()),
        };
        let monitored = monitor.read(train_loss, val_loss, &val_metrics);
        let maximize = monitor.maximize && val_loss.is_some();
        let improved = run
            .early
            .observe(epoch, monitored, maximize, config.min_delta);
        if improved {
            run.best = Some(run.model.valid());
        }
        run.early.check_patience(config.early_stopping_patience);
        let record = EpochRecord {
            epoch,
            train_loss,
            val_loss,
            val_metrics,
            learning_rate: run.schedule.current(),
            seconds: started.elapsed().as_secs_f64(),
            skipped_steps: run.scaler.skipped_steps - skipped_before,
            loss_scale: run.scaler.scale,
            improved,
        };
        hooks.on_epoch(&record);
        run.history.push(record);
        run.epochs_done += 1;
        if hooks.should_stop() {
            break;
        }
        let last = run.epochs_done == config.epochs || run.early.stopped;
        let due = config.checkpoint_interval > 0
            && (run.epochs_done % config.checkpoint_interval == 0 || last);
        if due || hooks.checkpoint_requested() {
            let state = run.state()?;
            hooks.on_checkpoint(&state).map_err(|source| Error::Hook {
                hook: "on_checkpoint",
                source,
            })?;
        }
    }
    let state = run.state()?;
    let final_model = match (&run.best, config.restore_best) {
        (Some(best), true) => best.clone(),
        _ => run.model.valid(),
    };
    Ok(TrainOutcome {
        model: TrainedModel {
            config: config.model.clone(),
            info: info.clone(),
            model: final_model,
        },
        history: run.history.clone(),
        stopped_early: run.early.stopped,
        best_epoch: run.early.best_epoch,
        state,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send<T: Send>() {}
    fn sync<T: Sync>() {}

    #[test]
    fn outputs_can_cross_threads() {
        send::<crate::Trainer>();
        send::<TrainedModel>();
        sync::<TrainedModel>();
        send::<TrainOutcome>();
        sync::<TrainState>();
    }
}
