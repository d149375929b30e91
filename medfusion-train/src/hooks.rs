//! What the training loop tells its caller, and what it asks: progress, cancellation,
//! per-epoch history and checkpoints.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

use crate::resume::TrainState;

/// A progress report, sent every `log_interval` batches and at the end of each epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// The epoch (0-based).
    pub epoch: usize,
    /// Epochs in the run.
    pub epochs: usize,
    /// Batches done in this epoch.
    pub batch: usize,
    /// Batches per epoch.
    pub batches: usize,
    /// Mean training loss of the epoch so far.
    pub loss: f64,
    /// Training throughput since the start of the epoch.
    pub samples_per_sec: f64,
    /// The current learning rate.
    pub learning_rate: f64,
}

/// One epoch of the history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// The epoch (0-based).
    pub epoch: usize,
    /// Mean training loss (per sample).
    pub train_loss: f64,
    /// Mean validation loss, when there is validation data.
    pub val_loss: Option<f64>,
    /// Validation metrics by name (`accuracy`, `roc_auc`, `f1`, ...; undefined ones left out).
    pub val_metrics: BTreeMap<String, f64>,
    /// The learning rate at the end of the epoch.
    pub learning_rate: f64,
    /// Wall time of the epoch, validation included.
    pub seconds: f64,
    /// Optimizer steps skipped this epoch because gradients overflowed (f16).
    pub skipped_steps: u64,
    /// The loss scale at the end of the epoch (1 unless f16).
    pub loss_scale: f32,
    /// Whether the monitored metric improved (this epoch is the best so far).
    pub improved: bool,
}

/// Callbacks of the training loop. Every method has a default that does nothing.
pub trait TrainHooks {
    /// A progress report (every `log_interval` batches).
    fn on_progress(&mut self, _progress: &Progress) {}

    /// Checked before every batch; `true` stops training with [`crate::Error::Cancelled`].
    fn is_cancelled(&self) -> bool {
        false
    }

    /// An epoch finished (after validation).
    fn on_epoch(&mut self, _record: &EpochRecord) {}

    /// Every `checkpoint_interval` epochs (and after the last epoch): the full resumable
    /// state. An error here stops training with [`crate::Error::Hook`].
    fn on_checkpoint(
        &mut self,
        _state: &TrainState,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        Ok(())
    }

    /// Checked after every epoch: `true` saves a checkpoint now (through
    /// [`on_checkpoint`](TrainHooks::on_checkpoint)) even between `checkpoint_interval`s,
    /// for checkpoints requested while a run is going.
    fn checkpoint_requested(&self) -> bool {
        false
    }

    /// Checked after every epoch (after [`on_epoch`](TrainHooks::on_epoch)): `true` ends
    /// training there, as early stopping does (a tuning study pruning a weak trial).
    fn should_stop(&mut self) -> bool {
        false
    }

    /// Called after every optimizer step with the model (on the autodiff device): the model
    /// to go on with, for constraints on the weights such as the zeros of a pruned model.
    fn after_step(&mut self, model: crate::model::Model) -> crate::model::Model {
        model
    }

    /// Fault injection for tests: a message to make the step at (`epoch`, `batch`) fail with,
    /// as if the backend had panicked with it (for example "out of memory").
    fn inject_fault(&mut self, _epoch: usize, _batch: usize) -> Option<String> {
        None
    }
}

/// Hooks that do nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHooks;

impl TrainHooks for NoHooks {}

/// A cancellation flag shared between the caller and the loop.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A token not cancelled yet.
    pub fn new() -> CancelToken {
        CancelToken::default()
    }

    /// Asks the loop to stop before its next batch.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether [`cancel`](Self::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

impl TrainHooks for CancelToken {
    fn is_cancelled(&self) -> bool {
        CancelToken::is_cancelled(self)
    }
}
