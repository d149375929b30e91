//! The training loop: epochs of micro-batches, gradient accumulation, mixed precision, the
//! schedule, validation, early stopping, checkpoints and resume.

use std::collections::BTreeMap;
use std::time::Instant;

use burn::module::Module;
use burn::nn::loss::{CrossEntropyLoss, CrossEntropyLossConfig};
use burn::optim::{GradientsAccumulator, GradientsParams, ModuleOptimizer};
use burn::tensor::Device;

use crate::amp::{LossScaler, Precision};
use crate::batch::DatasetInfo;
use crate::config::{Monitor, TrainConfig};
use crate::device::device_name;
use crate::error::{Error, Result};
use crate::eval::predict;
use crate::hooks::{EpochRecord, Progress, TrainHooks};
use crate::model::{Model, ModelConfig};
use crate::optim::{Schedule, build_optimizer};
use crate::resume::{EarlyStopping, RngState, TrainState, TrainerState};
use crate::source::BatchSource;
use crate::state::{
    load_model_safetensors, load_optimizer_safetensors, model_to_safetensors,
    optimizer_to_safetensors,
};
use crate::step::{micro_step, scale_grads, squared_norm};

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
    config.validate()?;
    if train_data.num_batches() == 0 {
        return Err(Error::config(
            "train_data",
            "the training split has no batches",
        ));
    }
    let mut run = Run::new(device, config, info, train_data.num_batches())?;
    if let Some(state) = resume {
        run.restore(state)?;
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
        let monitored = match (&val_loss, monitor.metric.as_str()) {
            (None, _) => Some(train_loss),
            (Some(loss), "loss" | "log_loss") => Some(*loss),
            (Some(_), "auc") => val_metrics.get("roc_auc").copied(),
            (Some(_), "recall") => val_metrics.get("sensitivity").copied(),
            (Some(_), name) => val_metrics.get(name).copied(),
        };
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
        let last = run.epochs_done == config.epochs || run.early.stopped;
        if config.checkpoint_interval > 0
            && (run.epochs_done % config.checkpoint_interval == 0 || last)
        {
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

/// The mutable state of a run.
struct Run<'c> {
    config: &'c TrainConfig,
    info: DatasetInfo,
    plain: Device,
    autodiff: Device,
    device_name: String,
    model: Model,
    best: Option<Model>,
    optim: ModuleOptimizer,
    schedule: Schedule,
    scaler: LossScaler,
    precision: Precision,
    loss_fn: CrossEntropyLoss,
    early: EarlyStopping,
    history: Vec<EpochRecord>,
    epochs_done: usize,
}

impl<'c> Run<'c> {
    fn new(
        device: &Device,
        config: &'c TrainConfig,
        info: &DatasetInfo,
        batches: usize,
    ) -> Result<Run<'c>> {
        let plain = device.clone().without_autodiff();
        let mut autodiff = plain.clone().autodiff();
        if config.activation_checkpointing {
            autodiff = autodiff.gradient_checkpointing();
        }
        let precision = Precision::from_settings(config.use_amp, config.amp_dtype);
        let steps_per_epoch = batches.div_ceil(config.gradient_accumulation_steps);
        Ok(Run {
            config,
            info: info.clone(),
            device_name: device_name(&plain),
            model: config.model.build(info, &autodiff, config.seed)?,
            best: None,
            optim: build_optimizer(config),
            schedule: Schedule::new(config, steps_per_epoch)?,
            scaler: LossScaler::new(precision),
            precision,
            loss_fn: CrossEntropyLossConfig::new().init(&autodiff),
            early: EarlyStopping::default(),
            history: Vec::new(),
            epochs_done: 0,
            plain,
            autodiff,
        })
    }

    fn restore(&mut self, state: &TrainState) -> Result<()> {
        let t = &state.trainer;
        t.check_compatible(self.config, &self.info)?;
        let mut model = self.config.model.build_uninit(&self.info, &self.autodiff)?;
        load_model_safetensors(&mut model, state.model.clone())?;
        self.optim =
            load_optimizer_safetensors(build_optimizer(self.config), &model, &state.optimizer)?;
        self.model = model;
        self.best = match &state.best_model {
            Some(bytes) => {
                let mut best = self.config.model.build_uninit(&self.info, &self.plain)?;
                load_model_safetensors(&mut best, bytes.clone())?;
                Some(best.valid())
            }
            None => t.early_stopping.best_epoch.map(|_| self.model.valid()),
        };
        self.schedule.fast_forward(t.scheduler_steps);
        self.scaler = t.loss_scaler;
        self.early = t.early_stopping.clone();
        self.history.clone_from(&t.history);
        self.epochs_done = t.epochs_done;
        Ok(())
    }

    fn state(&self) -> Result<TrainState> {
        let best_is_current = self
            .early
            .best_epoch
            .is_some_and(|e| e + 1 == self.epochs_done);
        let best_model = match (&self.best, best_is_current) {
            (Some(best), false) => Some(model_to_safetensors(best)?),
            _ => None,
        };
        Ok(TrainState {
            model: model_to_safetensors(&self.model)?,
            optimizer: optimizer_to_safetensors(&self.optim, &self.model)?,
            best_model,
            trainer: TrainerState {
                format: 1,
                config: self.config.clone(),
                info: self.info.clone(),
                epochs_done: self.epochs_done,
                scheduler_steps: self.schedule.steps(),
                rng: RngState {
                    seed: self.config.seed,
                    next_epoch: self.epochs_done,
                },
                early_stopping: self.early.clone(),
                loss_scaler: self.scaler,
                history: self.history.clone(),
            },
        })
    }

    /// One epoch; returns the mean training loss per sample.
    fn epoch(
        &mut self,
        epoch: usize,
        data: &dyn BatchSource,
        hooks: &mut dyn TrainHooks,
    ) -> Result<f64> {
        let k = self.config.gradient_accumulation_steps;
        let nominal = (k * self.config.batch_size) as f32;
        let batches = data.num_batches();
        let started = Instant::now();
        let mut accumulator = GradientsAccumulator::<Model>::new();
        let mut pending: Option<GradientsParams> = None;
        let (mut in_group, mut group_samples) = (0usize, 0usize);
        let (mut loss_sum, mut loss_samples, mut samples) = (0.0f64, 0usize, 0usize);
        for (index, batch) in data.batches(epoch, &self.autodiff).enumerate() {
            if hooks.is_cancelled() {
                return Err(Error::Cancelled {
                    epoch,
                    batch: index,
                });
            }
            let batch = batch?;
            let n = batch.len();
            // Each micro-batch's mean loss is weighted by its share of the nominal effective
            // batch; a short group is corrected at the step.
            let weight = if k == 1 { 1.0 } else { n as f32 / nominal };
            let factor = weight * self.scaler.scale;
            let fault = hooks.inject_fault(epoch, index);
            let (loss, grads) = micro_step(
                &self.model,
                &batch,
                self.precision,
                &self.loss_fn,
                factor,
                fault,
                &self.device_name,
            )?;
            if loss.is_finite() {
                loss_sum += f64::from(loss) * n as f64;
                loss_samples += n;
            } else if !self.precision.needs_loss_scaling() {
                return Err(Error::NonFiniteLoss {
                    epoch,
                    batch: index,
                    value: loss,
                });
            }
            samples += n;
            if k == 1 {
                pending = Some(grads);
            } else {
                accumulator.accumulate(&self.model, grads);
            }
            in_group += 1;
            group_samples += n;
            if in_group == k {
                let grads = pending.take().unwrap_or_else(|| accumulator.grads());
                self.apply(
                    grads,
                    if k == 1 {
                        1.0
                    } else {
                        nominal / group_samples as f32
                    },
                );
                (in_group, group_samples) = (0, 0);
            }
            if (index + 1) % self.config.log_interval == 0 || index + 1 == batches {
                hooks.on_progress(&Progress {
                    epoch,
                    epochs: self.config.epochs,
                    batch: index + 1,
                    batches,
                    loss: loss_sum / loss_samples.max(1) as f64,
                    samples_per_sec: samples as f64 / started.elapsed().as_secs_f64().max(1e-9),
                    learning_rate: self.schedule.current(),
                });
            }
        }
        if in_group > 0 {
            let grads = pending.take().unwrap_or_else(|| accumulator.grads());
            self.apply(grads, nominal / group_samples as f32);
        }
        Ok(loss_sum / loss_samples.max(1) as f64)
    }

    /// Unscales, checks and clips `grads`, then steps the optimizer (or skips the step on
    /// overflow).
    fn apply(&mut self, grads: GradientsParams, correction: f32) {
        let lr = self.schedule.next();
        let scaling = self.precision.needs_loss_scaling();
        let mut factor = correction / self.scaler.scale;
        if scaling || self.config.grad_clip.is_some() {
            let squared = squared_norm(&grads, &self.model);
            if !self.scaler.update(squared.is_finite(), scaling) {
                tracing::debug!(scale = self.scaler.scale, "gradient overflow: step skipped");
                return;
            }
            if let Some(clip) = self.config.grad_clip {
                let norm = squared.sqrt() * f64::from(factor.abs());
                if norm > clip {
                    factor *= (clip / (norm + 1e-6)) as f32;
                }
            }
        }
        #[allow(clippy::float_cmp)] // exactly 1: nothing to scale
        let grads = if factor == 1.0 {
            grads
        } else {
            scale_grads(grads, &self.model, factor)
        };
        let model = std::mem::replace(&mut self.model, placeholder(&self.plain));
        self.model = self.optim.step(lr, model, grads);
    }
}

/// A stand-in while the model is moved through the optimizer (never used).
fn placeholder(device: &Device) -> Model {
    Model::Mlp(crate::model::Mlp::placeholder(device))
}
