//! Training with Burn for medfusion (skeleton: being filled in by the train and data work).
#![warn(missing_docs)]

mod amp;
mod batch;
mod config;
mod device;
mod error;
mod eval;
mod hooks;
mod model;
mod optim;
mod resume;
mod runtime;
mod source;
mod state;
mod step;
mod train;
mod trainer;
pub mod data;
pub mod metrics;

pub use batch::{Batch, DatasetInfo, ImageShape};
pub use amp::{LossScaler, Precision, cast_model};
pub use config::{AmpDtype, OptimizerKind, SchedulerKind, TrainConfig};
pub use device::DeviceSpec;
pub use eval::{Predictions, predict};
pub use hooks::{CancelToken, EpochRecord, NoHooks, Progress, TrainHooks};
pub use runtime::tune_allocator;
pub use resume::{EarlyStopping, RngState, TrainState, TrainerState};
pub use source::{BatchSource, InMemorySource};
pub use state::{
    load_model_safetensors, load_optimizer_safetensors, model_to_safetensors,
    optimizer_to_safetensors,
};
pub use train::{TrainOutcome, TrainedModel, train, train_on};
pub use trainer::Trainer;
pub use error::{Error, Result};
pub use model::{
    Cnn, Fusion, FusionHead, FusionMode, ImageArch, ImageBackbone, Mlp, Model, ModelConfig,
    ModelKind, ResNet, Vit, VitSize, count_parameters,
};
