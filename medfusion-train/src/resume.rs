//! The resumable state of a training run, handed to the checkpoint hook and taken back by
//! [`crate::train`] to continue a run.

use serde::{Deserialize, Serialize};

use crate::amp::LossScaler;
use crate::config::TrainConfig;
use crate::data::DatasetInfo;
use crate::error::{Error, Result};
use crate::hooks::EpochRecord;
use crate::model::ModelConfig;

/// Everything a killed run needs to continue and end with the same weights.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainState {
    /// Model weights and batch-norm statistics: safetensors bytes, PyTorch names
    /// (`<node>_model.safetensors`).
    pub model: Vec<u8>,
    /// Optimizer state: safetensors bytes, tensors named `<param path>/<field>`, scalars in the
    /// metadata (`<node>_optimizer.safetensors`).
    pub optimizer: Vec<u8>,
    /// Weights of the best epoch so far when they differ from `model` (for `restore_best`).
    pub best_model: Option<Vec<u8>>,
    /// Epoch, scheduler, RNG, early-stopping and loss-scale state, and the history.
    pub trainer: TrainerState,
}

impl TrainState {
    /// The trainer state as JSON (`state.json`-style).
    pub fn trainer_json(&self) -> Result<String> {
        serde_json::to_string_pretty(&self.trainer).map_err(|e| Error::State {
            part: "trainer",
            reason: e.to_string(),
        })
    }

    /// Reassembles a state from its saved parts.
    pub fn from_parts(
        model: Vec<u8>,
        optimizer: Vec<u8>,
        best_model: Option<Vec<u8>>,
        trainer_json: &str,
    ) -> Result<TrainState> {
        let trainer = serde_json::from_str(trainer_json).map_err(|e| Error::State {
            part: "trainer",
            reason: e.to_string(),
        })?;
        Ok(TrainState {
            model,
            optimizer,
            best_model,
            trainer,
        })
    }
}

/// The serde part of [`TrainState`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Format version of this structure.
    pub format: u32,
    /// The settings of the run (a resumed run may change `batch_size` and
    /// `gradient_accumulation_steps`, for example after running out of memory, but not the
    /// model).
    pub config: TrainConfig,
    /// What the model was built for.
    pub info: DatasetInfo,
    /// Epochs completed; the next epoch to run.
    pub epochs_done: usize,
    /// Optimizer steps attempted (the scheduler's position).
    pub scheduler_steps: u64,
    /// Random state. The loop draws nothing itself: weights come from `seed` and the data
    /// order of epoch `e` from (`seed`, `e`), so the next epoch fixes everything.
    pub rng: RngState,
    /// Early stopping and best-epoch tracking.
    pub early_stopping: EarlyStopping,
    /// Dynamic loss scaling (f16).
    pub loss_scaler: LossScaler,
    /// One record per completed epoch.
    pub history: Vec<EpochRecord>,
}

/// Where the run's randomness stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RngState {
    /// The run's seed.
    pub seed: u64,
    /// The epoch whose data order comes next.
    pub next_epoch: usize,
}

/// Early-stopping state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EarlyStopping {
    /// Best value of the monitored metric so far.
    pub best: Option<f64>,
    /// The epoch it was reached.
    pub best_epoch: Option<usize>,
    /// Epochs since the last improvement.
    pub bad_epochs: usize,
    /// Whether patience ran out.
    pub stopped: bool,
}

impl EarlyStopping {
    /// Records `value` of epoch `epoch`; returns whether it is an improvement.
    pub(crate) fn observe(
        &mut self,
        epoch: usize,
        value: Option<f64>,
        maximize: bool,
        min_delta: f64,
    ) -> bool {
        let improved = match (value, self.best) {
            (Some(v), _) if !v.is_finite() => false,
            (Some(_), None) => true,
            (Some(v), Some(best)) => {
                if maximize {
                    v > best + min_delta
                } else {
                    v < best - min_delta
                }
            }
            (None, _) => false,
        };
        if improved {
            self.best = value;
            self.best_epoch = Some(epoch);
            self.bad_epochs = 0;
        } else {
            self.bad_epochs += 1;
        }
        improved
    }

    /// Whether patience (if any) has run out.
    pub(crate) fn check_patience(&mut self, patience: Option<usize>) -> bool {
        if let Some(p) = patience
            && self.bad_epochs >= p
        {
            self.stopped = true;
        }
        self.stopped
    }
}

impl TrainerState {
    /// Checks that this state can continue a run of `config` on data described by `info`.
    pub(crate) fn check_compatible(&self, config: &TrainConfig, info: &DatasetInfo) -> Result<()> {
        let bad = |reason: String| {
            Err(Error::State {
                part: "trainer",
                reason,
            })
        };
        if self.format != 1 {
            return bad(format!("unknown state format {}", self.format));
        }
        if self.config.model != config.model {
            return bad(format!(
                "it was saved for model `{}`, this run trains `{}`",
                self.config.model.arch, config.model.arch
            ));
        }
        let (a, b) = (&self.info, info);
        if a.classes != b.classes || a.image != b.image || a.tabular_features != b.tabular_features
        {
            return bad(
                "it was saved for data of another shape (classes, image size or tabular features)"
                    .into(),
            );
        }
        Ok(())
    }

    /// The model settings of the saved run.
    pub fn model_config(&self) -> &ModelConfig {
        &self.config.model
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn early_stopping_counts_epochs_without_improvement() {
        let mut es = EarlyStopping::default();
        assert!(es.observe(0, Some(1.0), false, 0.1));
        assert!(!es.observe(1, Some(0.95), false, 0.1));
        assert!(!es.check_patience(Some(2)));
        assert!(!es.observe(2, Some(f64::NAN), false, 0.1));
        assert!(es.check_patience(Some(2)));
        assert_eq!(es.best_epoch, Some(0));

        let mut es = EarlyStopping::default();
        assert!(es.observe(0, Some(0.5), true, 0.0));
        assert!(es.observe(1, Some(0.6), true, 0.0));
        assert!(!es.observe(2, None, true, 0.0));
        assert_eq!(
            (es.best, es.best_epoch, es.bad_epochs),
            (Some(0.6), Some(1), 1)
        );
        assert!(!es.check_patience(None));
    }
}
