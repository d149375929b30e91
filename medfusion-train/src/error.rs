//! The crate's error type.

use crate::data::DataError;

/// Everything that can go wrong while building, training or evaluating a model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting is out of range or contradicts another one.
    #[error("invalid training setting `{field}`: {reason}")]
    Config {
        /// The setting's name, as written in the workflow file.
        field: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The model needs a part of the sample that the data does not have (or has a different
    /// shape).
    #[error("model `{model}` cannot run on this data: {reason}")]
    ModelInput {
        /// The model's name.
        model: String,
        /// What is missing or mismatched.
        reason: String,
    },

    /// The requested device cannot be used.
    #[error("device `{device}` is not usable: {reason}")]
    Device {
        /// The device as the user wrote it.
        device: String,
        /// Why it cannot be used (for CUDA: "no usable CUDA driver ...").
        reason: String,
    },

    /// The device ran out of memory. The engine can retry with a smaller micro-batch and more
    /// accumulation steps (the same effective batch).
    #[error(
        "out of memory on `{device}` at batch size {batch_size} (hint: halve `batch_size` and \
         double `gradient_accumulation_steps`)"
    )]
    OutOfMemory {
        /// The device that ran out.
        device: String,
        /// The micro-batch size that did not fit.
        batch_size: usize,
        /// The backend's message.
        detail: String,
    },

    /// The loss became NaN or infinite (outside mixed-precision loss scaling, which skips such
    /// steps itself).
    #[error("loss is not finite at epoch {epoch}, batch {batch}: {value}")]
    NonFiniteLoss {
        /// The epoch (0-based).
        epoch: usize,
        /// The batch within the epoch (0-based).
        batch: usize,
        /// The loss value.
        value: f32,
    },

    /// Training was cancelled through its token.
    #[error("training cancelled at epoch {epoch}, batch {batch}")]
    Cancelled {
        /// The epoch (0-based).
        epoch: usize,
        /// The batch within the epoch (0-based).
        batch: usize,
    },

    /// The data loader failed.
    #[error("loading data failed")]
    Data(#[from] DataError),

    /// A saved training state cannot be read or does not fit the model.
    #[error("cannot restore training state ({part}): {reason}")]
    State {
        /// Which part: `model`, `optimizer` or `trainer`.
        part: &'static str,
        /// What is wrong.
        reason: String,
    },

    /// A hook returned an error (for example a checkpoint that could not be written).
    #[error("training hook `{hook}` failed")]
    Hook {
        /// The hook's name.
        hook: &'static str,
        /// The hook's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// The backend failed in a way not covered above.
    #[error("backend failure on `{device}`: {detail}")]
    Backend {
        /// The device.
        device: String,
        /// The backend's message.
        detail: String,
    },
}

impl Error {
    /// Shorthand for [`Error::Config`].
    pub(crate) fn config(field: &str, reason: impl Into<String>) -> Error {
        Error::Config {
            field: field.to_owned(),
            reason: reason.into(),
        }
    }

    /// The first of the problems a config check found, as [`Error::Config`].
    pub(crate) fn from_issues(issues: Vec<medfusion_graph::ConfigIssue>) -> Error {
        let first = issues.into_iter().next();
        Error::Config {
            field: first
                .as_ref()
                .map(|i| i.key().to_owned())
                .unwrap_or_default(),
            reason: first.map(|i| i.reason()).unwrap_or_default(),
        }
    }

    /// Whether this is [`Error::OutOfMemory`] (the engine's cue to shrink the micro-batch).
    pub fn is_out_of_memory(&self) -> bool {
        matches!(self, Error::OutOfMemory { .. })
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
