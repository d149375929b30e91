//! Training-step throughput on synthetic batches: the figure `medfusion bench train` prints
//! (the GPU workload of WORKLOADS.md section 7, and the same on the CPU).

use std::time::Instant;

use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use serde::Serialize;

use crate::batch::Batch;
use crate::config::{AmpDtype, OptimizerKind, SchedulerKind, TrainConfig};
use crate::data::{DatasetInfo, ImageShape};
use crate::error::{Error, Result};
use crate::model::ModelConfig;
use crate::trainer::Trainer;

/// What to measure.
#[derive(Debug, Clone)]
pub struct StepBench {
    /// The model.
    pub model: ModelConfig,
    /// Samples per step.
    pub batch: usize,
    /// Square image side.
    pub image_size: usize,
    /// Image channels.
    pub channels: usize,
    /// Classes.
    pub classes: usize,
    /// Untimed steps first.
    pub warmup: usize,
    /// Timed steps.
    pub steps: usize,
    /// Mixed precision.
    pub use_amp: bool,
    /// The low-precision type of mixed precision.
    pub amp_dtype: AmpDtype,
    /// Adam's learning rate.
    pub learning_rate: f64,
}

/// What was measured.
#[derive(Debug, Clone, Serialize)]
pub struct StepBenchResult {
    /// Training samples per second over the timed steps.
    pub samples_per_s: f64,
    /// Mean wall time of one step (forward, backward, optimizer, loss read back), ms.
    pub ms_per_step: f64,
    /// The loss of the first warm-up step.
    pub first_loss: f32,
    /// The loss of the last timed step.
    pub last_loss: f32,
    /// Steps skipped because the f16 gradients overflowed.
    pub skipped_steps: u64,
    /// The loss scale at the end (1 without f16).
    pub loss_scale: f32,
    /// Whether every loss was finite.
    pub all_finite: bool,
}

/// Train `bench.model` on one fixed random batch (Adam, no schedule) and time the steps;
/// `on_step` is called after every step with its index, for progress and sampling.
///
/// Like training, it changes no process-wide setting: to measure what `medfusion run`
/// trains at, call [`crate::tune_allocator`] (and, for CUDA, [`crate::configure_kernel_cache`])
/// first, as the `medfusion` binary does.
pub fn bench_steps(
    bench: &StepBench,
    device: &Device,
    on_step: &mut dyn FnMut(usize),
) -> Result<StepBenchResult> {
    if bench.steps == 0 || bench.batch == 0 {
        return Err(Error::config(
            "steps",
            "the benchmark needs at least one step of one sample",
        ));
    }
    let info = DatasetInfo {
        classes: bench.classes,
        class_names: Vec::new(),
        image: Some(ImageShape {
            channels: bench.channels,
            depth: 1,
            height: bench.image_size,
            width: bench.image_size,
        }),
        tabular_features: None,
    };
    let config = TrainConfig {
        model: bench.model.clone(),
        batch_size: bench.batch,
        learning_rate: bench.learning_rate,
        optimizer: OptimizerKind::Adam,
        weight_decay: 0.0,
        scheduler: SchedulerKind::None,
        use_amp: bench.use_amp,
        amp_dtype: bench.amp_dtype,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(device, &config, &info, 1)?;
    let device = trainer.device().clone();
    let labels: Vec<i64> = (0..bench.batch as i64)
        .map(|i| (i * 7 + 3) % bench.classes as i64)
        .collect();
    let batch = Batch {
        volumes: None,
        images: Some(Tensor::random(
            [
                bench.batch,
                bench.channels,
                bench.image_size,
                bench.image_size,
            ],
            Distribution::Normal(0.0, 1.0),
            &device,
        )),
        tabular: None,
        labels: Tensor::<1, Int>::from_data(TensorData::new(labels, [bench.batch]), &device),
    };
    let mut first_loss = f32::NAN;
    let mut all_finite = true;
    for i in 0..bench.warmup {
        let loss = trainer.step(&batch)?;
        if i == 0 {
            first_loss = loss;
        }
        all_finite &= loss.is_finite();
        on_step(i);
    }
    let started = Instant::now();
    let mut last_loss = f32::NAN;
    for i in 0..bench.steps {
        last_loss = trainer.step(&batch)?;
        if first_loss.is_nan() {
            first_loss = last_loss;
        }
        all_finite &= last_loss.is_finite();
        on_step(bench.warmup + i);
    }
    let seconds = started.elapsed().as_secs_f64();
    let scaler = trainer.loss_scaler();
    Ok(StepBenchResult {
        samples_per_s: (bench.batch * bench.steps) as f64 / seconds,
        ms_per_step: 1000.0 * seconds / bench.steps as f64,
        first_loss,
        last_loss,
        skipped_steps: scaler.skipped_steps,
        loss_scale: scaler.scale,
        all_finite,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tiny_cnn_step_benchmark_runs_and_its_loss_falls() {
        let bench = StepBench {
            model: "cnn".parse().unwrap(),
            batch: 4,
            image_size: 16,
            channels: 1,
            classes: 2,
            warmup: 2,
            steps: 20,
            use_amp: false,
            amp_dtype: AmpDtype::Bf16,
            learning_rate: 1e-3,
        };
        let mut calls = 0;
        let result = bench_steps(&bench, &Device::flex(), &mut |_| calls += 1).unwrap();
        assert_eq!(calls, 22);
        assert!(result.all_finite);
        assert!(result.last_loss < result.first_loss, "{result:?}");
        assert!(result.samples_per_s > 0.0);
    }
}
