//! Training with Burn for medfusion (skeleton: being filled in by the train and data work).
#![warn(missing_docs)]

mod amp;
mod batch;
mod config;
pub mod data;
mod device;
mod error;
mod eval;
mod fused_adam;
mod hooks;
pub mod metrics;
mod model;
mod optim;
mod resume;
mod runtime;
mod source;
mod state;
mod step;
mod train;
mod trainer;

pub use amp::{LossScaler, Precision, cast_model};
pub use batch::{Batch, DatasetInfo, ImageShape};
pub use config::{AmpDtype, OptimizerKind, SchedulerKind, TrainConfig};
pub use device::DeviceSpec;
pub use error::{Error, Result};
pub use eval::{Predictions, predict};
pub use hooks::{CancelToken, EpochRecord, NoHooks, Progress, TrainHooks};
pub use model::{
    Cnn, Fusion, FusionHead, FusionMode, ImageArch, ImageBackbone, Mlp, Model, ModelConfig,
    ModelKind, ResNet, Vit, VitSize, count_parameters,
};
pub use optim::build_optimizer;
pub use resume::{EarlyStopping, RngState, TrainState, TrainerState};
pub use runtime::tune_allocator;
pub use source::{BatchSource, InMemorySource};
pub use state::{
    load_model_safetensors, load_optimizer_safetensors, model_to_safetensors,
    optimizer_to_safetensors,
};
pub use train::{TrainOutcome, TrainedModel, train, train_on};
pub use trainer::Trainer;
