//! Training with Burn for medfusion: datasets and loaders, models, the training loop with
//! mixed precision, gradient accumulation, early stopping and resumable state, evaluation
//! and metrics.
//!
//! - Data ([`data`]): `dataset.*` node types produce [`data::DatasetSplits`]; a
//!   [`data::BatchLoader`] turns a split into [`Batch`]es (images `[n, c, h, w]`, tabular
//!   `[n, f]`, labels), and is a [`BatchSource`] for the loop.
//! - Models: [`ModelConfig`] names one of ResNet-18/34/50/101 (torchvision layout and
//!   parameter names), ViT small/base, the benchmark CNN, a tabular MLP or a fusion of an
//!   image backbone and the MLP (concatenation or gated), and builds a [`Model`] for a
//!   [`DatasetInfo`]. Every model takes the same [`Batch`].
//! - Training: [`train`] runs a [`TrainConfig`] (the guide's `train.classifier` settings)
//!   with [`TrainHooks`] for progress, cancellation, per-epoch history and checkpoints; the
//!   checkpoint hook gets a [`TrainState`] (weights and optimizer state as safetensors bytes,
//!   the rest as JSON), and passing it back to [`train`] continues the run to the same
//!   weights. [`Trainer`] exposes single steps.
//! - Mixed precision: f32 master weights, forward and backward in bf16 or f16 on a cast
//!   copy ([`cast_model`]), dynamic loss scaling for f16 ([`LossScaler`]).
//! - Evaluation: [`predict`] gives per-sample probabilities and the loss; [`metrics`]
//!   computes accuracy, ROC AUC, sensitivity, specificity, precision, F1 and the confusion
//!   matrix from them.
//! - Errors: one [`Error`]; running out of device memory is [`Error::OutOfMemory`], so a
//!   caller can halve `batch_size` and double `gradient_accumulation_steps`.
//!
//! ```
//! use medfusion_train::data::{generate_synthetic, BatchLoader, LoaderConfig, SyntheticConfig};
//! use medfusion_train::{predict, train, NoHooks, TrainConfig};
//!
//! let splits = generate_synthetic(&SyntheticConfig {
//!     samples: 96,
//!     image_size: 16,
//!     ..SyntheticConfig::default()
//! })?;
//! let info = splits.info().model_info();
//! let loader = |split, shuffle| {
//!     let config = LoaderConfig { batch_size: 16, shuffle, num_workers: 0, ..LoaderConfig::default() };
//!     BatchLoader::new(splits.split(split).clone(), config)
//! };
//! use medfusion_train::data::SplitName::{Train, Val};
//! let (train_data, val_data) = (loader(Train, true)?, loader(Val, false)?);
//!
//! let config: TrainConfig = serde_json::from_str(
//!     r#"{"model": "fusion_cnn", "epochs": 2, "batch_size": 16, "device": "cpu"}"#,
//! )?;
//! let outcome = train(&config, &info, &train_data, Some(&val_data), &mut NoHooks, None)?;
//! assert_eq!(outcome.history.len(), 2);
//!
//! let predictions = predict(&outcome.model.model, &val_data, &burn::tensor::Device::flex())?;
//! let metrics = predictions.metrics(&info.class_names)?;
//! assert_eq!(metrics.samples, val_data.split().len());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Process state
//!
//! The crate leaves the process as it found it: loading data, resolving a device,
//! registering the node types, building a [`Trainer`] and training change no process-wide
//! setting and read no environment variable. Two settings make training faster, and the
//! application opts into them by calling, early in `main`:
//!
//! - [`tune_allocator`]: glibc's `mallopt` keeps buffers of up to 32 MiB on the heap and up
//!   to 1 GiB of freed heap (fewer page faults per step; the process keeps its peak heap).
//!   Call it before starting threads; it is never undone.
//! - [`configure_kernel_cache`]: CubeCL's global runtime configuration, with its on-disk
//!   cache of compiled GPU kernels on (`cuda` builds; a no-op otherwise). Call it before the
//!   first GPU use (before [`DeviceSpec::resolve`] of a CUDA or `auto` device); CubeCL reads
//!   its configuration once.
//!
//! The `medfusion` binary calls both (the kernel cache unless `MEDFUSION_KERNEL_CACHE=0`).
//!
//! ## Feature flags
//!
//! - `cuda`: the CUDA backend (`burn/cuda`, kernels compiled by NVRTC through
//!   `cubecl-cuda`'s `cpp` feature). `device: cuda:N` then checks for a usable driver and
//!   NVRTC before touching the GPU, and reports "no usable CUDA driver ..." otherwise.
//!   Without the feature the CPU backend (Burn's `flex`) is the only one.
//! - `test-gpu`: a marker for tests that need a GPU (no code).
#![warn(missing_docs)]

mod amp;
mod batch;
mod bench;
mod burn_compat;
pub mod compress;
mod config;
pub mod data;
mod device;
mod error;
mod eval;
mod fused_adam;
mod hooks;
pub mod metrics;
mod model;
pub mod nodes;
mod optim;
mod resume;
mod runtime;
mod source;
mod state;
mod step;
mod train;
mod trainer;
pub mod tune;

pub use amp::{LossScaler, Precision, cast_model};
pub use batch::Batch;
pub use bench::{StepBench, StepBenchResult, bench_steps};
pub use config::{AmpDtype, OptimizerKind, SchedulerKind, TrainConfig};
pub use device::DeviceSpec;
pub use error::{Error, Result};
pub use eval::{Predictions, forward_latency, predict};
pub use hooks::{CancelToken, EpochRecord, NoHooks, Progress, TrainHooks};
pub use medfusion_data::{DatasetInfo, ImageShape};
pub use model::{
    Cnn, Cnn3d, Fusion, FusionHead, FusionMode, ImageArch, ImageBackbone, Images, Mlp, Model,
    ModelConfig, ModelKind, ResNet, ResNet3d, Swin, SwinSize, Vit, VitSize, count_parameters,
};
pub use optim::build_optimizer;
pub use resume::{EarlyStopping, RngState, TrainState, TrainerState};
pub use runtime::{configure_kernel_cache, tune_allocator};
pub use source::{BatchSource, InMemorySource};
pub use state::{
    load_model_safetensors, load_optimizer_safetensors, model_to_safetensors,
    optimizer_to_safetensors,
};
pub use train::{TrainOutcome, TrainedModel, fine_tune, train, train_on};
pub use trainer::Trainer;
