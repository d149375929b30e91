//! A training run step by step; [`crate::train`] drives it through whole epochs.

use std::time::Instant;

use burn::module::Module;
use burn::nn::loss::{CrossEntropyLoss, CrossEntropyLossConfig};
use burn::optim::{GradientsAccumulator, GradientsParams, ModuleOptimizer};
use burn::tensor::Device;

use crate::amp::{LossScaler, Precision};
use crate::batch::Batch;
use crate::config::TrainConfig;
use crate::data::DatasetInfo;
use crate::device::device_name;
use crate::error::{Error, Result};
use crate::hooks::{EpochRecord, Progress, TrainHooks};
use crate::model::{Mlp, Model};
use crate::optim::{Schedule, build_optimizer};
use crate::resume::{EarlyStopping, RngState, TrainState, TrainerState};
use crate::source::BatchSource;
use crate::state::{
    load_model_safetensors, load_optimizer_safetensors, model_to_safetensors,
    optimizer_to_safetensors,
};
use crate::step::{micro_step, scale_grads, squared_norm};

/// The model, optimizer, schedule, loss scaler and early-stopping state of a run, with
/// gradient accumulation across [`step`](Trainer::step) calls. Benchmarks and custom loops
/// can drive it directly.
pub struct Trainer {
    pub(crate) config: TrainConfig,
    pub(crate) info: DatasetInfo,
    pub(crate) plain: Device,
    autodiff: Device,
    device_name: String,
    pub(crate) model: Model,
    pub(crate) best: Option<Model>,
    optim: ModuleOptimizer,
    pub(crate) schedule: Schedule,
    pub(crate) scaler: LossScaler,
    precision: Precision,
    loss_fn: CrossEntropyLoss,
    pub(crate) early: EarlyStopping,
    pub(crate) history: Vec<EpochRecord>,
    pub(crate) epochs_done: usize,
    accumulator: GradientsAccumulator<Model>,
    pending: Option<GradientsParams>,
    in_group: usize,
    group_samples: usize,
}

impl Trainer {
    /// A fresh run of `config` on `device` (autodiff is added here) for data described by
    /// `info`, with `batches` micro-batches per epoch (for the schedule).
    pub fn new(
        device: &Device,
        config: &TrainConfig,
        info: &DatasetInfo,
        batches: usize,
    ) -> Result<Trainer> {
        config.validate()?;
        let plain = device.clone().without_autodiff();
        let mut autodiff = plain.clone().autodiff();
        if config.activation_checkpointing {
            autodiff = autodiff.gradient_checkpointing();
        }
        let precision = Precision::from_settings(config.use_amp, config.amp_dtype);
        if precision != Precision::F32 && plain == Device::flex() {
            tracing::warn!(
                "mixed precision on the CPU backend: Burn's CPU kernels have no native bf16 \
                 arithmetic (bf16 convolutions convert to f32 and back), so expect steps no \
                 faster than plain f32"
            );
        }
        let steps_per_epoch = batches.div_ceil(config.gradient_accumulation_steps);
        Ok(Trainer {
            config: config.clone(),
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
            accumulator: GradientsAccumulator::new(),
            pending: None,
            in_group: 0,
            group_samples: 0,
            plain,
            autodiff,
        })
    }

    /// The device batches must be on for [`step`](Self::step) (the autodiff device).
    pub fn device(&self) -> &Device {
        &self.autodiff
    }

    /// The master model (f32, on the autodiff device).
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The loss scaler (scale 1 unless f16).
    pub fn loss_scaler(&self) -> &LossScaler {
        &self.scaler
    }

    /// Continues from a saved state (weights, optimizer, schedule, loss scale, history).
    pub fn resume(&mut self, state: &TrainState) -> Result<()> {
        let t = &state.trainer;
        t.check_compatible(&self.config, &self.info)?;
        let mut model = self.config.model.build_uninit(&self.info, &self.autodiff)?;
        load_model_safetensors(&mut model, state.model.clone())?;
        self.optim =
            load_optimizer_safetensors(build_optimizer(&self.config), &model, &state.optimizer)?;
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

    /// The full resumable state now.
    pub fn state(&self) -> Result<TrainState> {
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

    /// Forward and backward of one micro-batch (on [`device`](Self::device)); every
    /// `gradient_accumulation_steps` calls the optimizer steps. Returns the batch's mean
    /// loss (not finite when an f16 step overflowed).
    pub fn step(&mut self, batch: &Batch) -> Result<f32> {
        self.step_with_fault(batch, None)
    }

    /// Steps the optimizer on the micro-batches accumulated so far, if any (the end of an
    /// epoch whose batch count is not a multiple of the accumulation steps).
    pub fn finish_group(&mut self) {
        if self.in_group > 0 {
            let nominal = (self.config.gradient_accumulation_steps * self.config.batch_size) as f32;
            let grads = self
                .pending
                .take()
                .unwrap_or_else(|| self.accumulator.grads());
            self.apply(grads, nominal / self.group_samples as f32);
            (self.in_group, self.group_samples) = (0, 0);
        }
    }

    fn step_with_fault(&mut self, batch: &Batch, fault: Option<String>) -> Result<f32> {
        let k = self.config.gradient_accumulation_steps;
        let nominal = (k * self.config.batch_size) as f32;
        let n = batch.len();
        // Each micro-batch's mean loss is weighted by its share of the nominal effective
        // batch; a group of another size is corrected at the step.
        let weight = if k == 1 { 1.0 } else { n as f32 / nominal };
        let factor = weight * self.scaler.scale;
        let (loss, grads) = micro_step(
            &self.model,
            batch,
            self.precision,
            &self.loss_fn,
            factor,
            fault,
            &self.device_name,
        )?;
        if k == 1 {
            self.pending = Some(grads);
        } else {
            self.accumulator.accumulate(&self.model, grads);
        }
        self.in_group += 1;
        self.group_samples += n;
        if self.in_group == k {
            let grads = self
                .pending
                .take()
                .unwrap_or_else(|| self.accumulator.grads());
            let correction = if k == 1 {
                1.0
            } else {
                nominal / self.group_samples as f32
            };
            self.apply(grads, correction);
            (self.in_group, self.group_samples) = (0, 0);
        }
        Ok(loss)
    }

    /// One epoch over `data`; returns the mean training loss per sample.
    pub(crate) fn epoch(
        &mut self,
        epoch: usize,
        data: &dyn BatchSource,
        hooks: &mut dyn TrainHooks,
    ) -> Result<f64> {
        let batches = data.num_batches();
        let started = Instant::now();
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
            let loss = self.step_with_fault(&batch, hooks.inject_fault(epoch, index))?;
            if self.in_group == 0 {
                self.after_step(hooks);
            }
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
        if self.in_group > 0 {
            self.finish_group();
            self.after_step(hooks);
        }
        Ok(loss_sum / loss_samples.max(1) as f64)
    }

    /// Lets the hooks change the weights after an optimizer step.
    fn after_step(&mut self, hooks: &mut dyn TrainHooks) {
        let model = std::mem::replace(&mut self.model, Model::Mlp(Mlp::placeholder(&self.plain)));
        self.model = hooks.after_step(model);
    }

    /// Starts from the weights of `model` (any device; quantized weights as their f32
    /// values) instead of a fresh initialisation: fine-tuning.
    pub fn start_from(&mut self, model: &Model) -> Result<()> {
        let bytes = if crate::compress::is_quantized(model) {
            model_to_safetensors(&crate::compress::dequantize(model))?
        } else {
            model_to_safetensors(model)?
        };
        let mut fresh = self.config.model.build_uninit(&self.info, &self.autodiff)?;
        load_model_safetensors(&mut fresh, bytes)?;
        self.model = fresh;
        Ok(())
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
        // Move the model through the optimizer (an empty stand-in meanwhile), so its tensors
        // have one owner and can be updated in place.
        let model = std::mem::replace(&mut self.model, Model::Mlp(Mlp::placeholder(&self.plain)));
        self.model = self.optim.step(lr, model, grads);
    }
}
