//! Burn's optimizers and learning-rate schedulers, built from a [`TrainConfig`].

use burn::lr_scheduler::LrSchedulerConfig;
use burn::lr_scheduler::cosine::CosineAnnealingLrSchedulerConfig;
use burn::lr_scheduler::linear::LinearLrSchedulerConfig;
use burn::lr_scheduler::module_lr_scheduler::{ModuleLrScheduler, ModuleLrSchedulerConfig};
use burn::lr_scheduler::sequential::SequentialLrSchedulerConfig;
use burn::lr_scheduler::step::StepLrSchedulerConfig;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{ModuleOptimizer, SgdConfig};

use crate::config::{OptimizerKind, SchedulerKind, TrainConfig};
use crate::error::{Error, Result};
use crate::fused_adam::FusedAdam;

/// Adam's epsilon, as PyTorch (Burn's default is 1e-5).
const ADAM_EPSILON: f32 = 1e-8;

/// The optimizer of `config`: Adam/AdamW fused on the CPU (Burn's kernels elsewhere), Burn's
/// SGD. Gradient clipping is not part of it: the loop clips the global norm.
pub fn build_optimizer(config: &TrainConfig) -> ModuleOptimizer {
    let decay =
        (config.weight_decay > 0.0).then(|| WeightDecayConfig::new(config.weight_decay as f32));
    let [b1, b2] = config.betas.map(|b| b as f32);
    match config.optimizer {
        OptimizerKind::Adamw => {
            FusedAdam::new([b1, b2], ADAM_EPSILON, config.weight_decay as f32, true).into()
        }
        OptimizerKind::Adam => {
            FusedAdam::new([b1, b2], ADAM_EPSILON, config.weight_decay as f32, false).into()
        }
        OptimizerKind::Sgd => SgdConfig::new()
            .with_momentum((config.momentum > 0.0).then(|| {
                MomentumConfig::new()
                    .with_momentum(config.momentum)
                    .with_dampening(0.0)
            }))
            .with_weight_decay(decay)
            .init(),
    }
}

/// A learning-rate schedule stepped once per optimizer step, resumable by its step count.
#[derive(Clone)]
pub(crate) struct Schedule {
    scheduler: ModuleLrScheduler,
    steps: u64,
    last: f64,
}

impl Schedule {
    /// The schedule of `config` for `steps_per_epoch` optimizer steps per epoch.
    pub(crate) fn new(config: &TrainConfig, steps_per_epoch: usize) -> Result<Schedule> {
        let lr = config.learning_rate;
        let total = config.epochs * steps_per_epoch.max(1);
        let base: LrSchedulerConfig = match config.scheduler {
            SchedulerKind::None => LrSchedulerConfig::Constant(lr),
            SchedulerKind::Step => {
                StepLrSchedulerConfig::new(lr, config.step_size * steps_per_epoch.max(1))
                    .with_gamma(config.gamma)
                    .into()
            }
            SchedulerKind::Cosine => {
                let warmup = config.warmup_epochs * steps_per_epoch.max(1);
                let cosine = CosineAnnealingLrSchedulerConfig::new(lr, total - warmup)
                    .with_min_lr(config.min_lr);
                if warmup == 0 {
                    cosine.into()
                } else {
                    let ramp = LinearLrSchedulerConfig::new(lr / warmup as f64, lr, warmup);
                    SequentialLrSchedulerConfig::new(vec![ramp.into(), cosine.into()], vec![warmup])
                        .into()
                }
            }
        };
        let scheduler = ModuleLrSchedulerConfig::new(base)
            .init()
            .map_err(|reason| Error::config("scheduler", reason))?;
        Ok(Schedule {
            scheduler,
            steps: 0,
            last: lr,
        })
    }

    /// The learning rate of the next optimizer step.
    pub(crate) fn next(&mut self) -> f64 {
        self.steps += 1;
        self.last = self.scheduler.step().base();
        self.last
    }

    /// The last learning rate handed out.
    pub(crate) fn current(&self) -> f64 {
        self.last
    }

    /// Optimizer steps taken.
    pub(crate) fn steps(&self) -> u64 {
        self.steps
    }

    /// Advances to `steps` taken (for resuming).
    pub(crate) fn fast_forward(&mut self, steps: u64) {
        while self.steps < steps {
            self.next();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lrs(config: &TrainConfig, steps_per_epoch: usize) -> Vec<f64> {
        let mut s = Schedule::new(config, steps_per_epoch).unwrap();
        (0..config.epochs * steps_per_epoch)
            .map(|_| s.next())
            .collect()
    }

    #[test]
    fn cosine_with_warmup_ramps_then_anneals() {
        let config = TrainConfig {
            epochs: 4,
            warmup_epochs: 1,
            learning_rate: 0.1,
            ..TrainConfig::default()
        };
        let lr = lrs(&config, 4);
        assert!((lr[0] - 0.025).abs() < 1e-9, "{lr:?}");
        assert!(lr[0] < lr[1] && lr[1] < lr[2] && lr[2] < lr[3], "{lr:?}");
        assert!((lr[4] - 0.1).abs() < 1e-9, "{lr:?}");
        assert!(lr[4..].windows(2).all(|w| w[1] <= w[0]), "{lr:?}");
        assert!(lr[15] < 0.01, "{lr:?}");
    }

    #[test]
    fn step_schedule_drops_by_gamma() {
        let config = TrainConfig {
            epochs: 3,
            scheduler: SchedulerKind::Step,
            step_size: 1,
            gamma: 0.5,
            learning_rate: 0.1,
            ..TrainConfig::default()
        };
        let lr = lrs(&config, 2);
        let expected = [0.1, 0.1, 0.05, 0.05, 0.025, 0.025];
        assert!(
            lr.iter().zip(expected).all(|(a, b)| (a - b).abs() < 1e-12),
            "{lr:?}"
        );
    }

    #[test]
    fn fast_forward_matches_stepping() {
        let config = TrainConfig {
            epochs: 3,
            warmup_epochs: 1,
            ..TrainConfig::default()
        };
        let mut a = Schedule::new(&config, 5).unwrap();
        for _ in 0..7 {
            a.next();
        }
        let mut b = Schedule::new(&config, 5).unwrap();
        b.fast_forward(7);
        assert!((a.next() - b.next()).abs() < 1e-15);
    }
}
