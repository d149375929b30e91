//! Crash-safe, incremental checkpoints for medfusion workflows.
//!
//! A [`CheckpointManager`] keeps the checkpoints of workflows in one directory, in the
//! layout users of the original engine know:
//!
//! ```text
//! checkpoint_dir/<workflow_id>_<YYYYMMDD_HHMMSS>[_<n>]/
//!   workflow.json   state.json   manifest.json
//!   models/<node>_model.safetensors  <node>_optimizer.safetensors
//!          <node>_history.json       <node>_state.json
//! ```
//!
//! - **Atomic**: a save writes into a hidden temporary directory beside the target,
//!   fsyncs every file and directory, writes `manifest.json` (format version, every
//!   file's size and xxh3-128 checksum) last, renames the directory into place and
//!   fsyncs the parent. A process killed at any moment leaves either the whole
//!   checkpoint or none of it; leftovers are removed by the next save or prune and are
//!   never listed. Loading verifies sizes and checksums and names the file that differs.
//! - **Tensors as safetensors** ([`TensorSet`]): plain files that Python's
//!   `safetensors.numpy.load_file` and PyTorch read as they are; nothing executable.
//! - **Incremental**: tensor files are stored once by content in `.objects/` and hard
//!   linked into each checkpoint, so an unchanged model is not written again. Rotation
//!   removes a stored file only when no checkpoint links to it.
//! - **Rotation**: the newest [`max_checkpoints`](CheckpointManager::max_checkpoints)
//!   (default 5) per workflow, optionally also the best by a metric
//!   ([`keep_best`](CheckpointManager::keep_best)); the only valid one is never removed.
//! - **Background saves** ([`CheckpointManager::save_async`]): one writer thread with a
//!   bounded queue; every failure reaches a [`SaveHandle`] or
//!   [`flush`](CheckpointManager::flush).
//!
//! Ids (workflow, node, checkpoint) must be path-safe ([`validate_id`]); symbolic links
//! inside the checkpoint directory are never followed.
//!
//! ```
//! use medfusion_checkpoint::{Checkpoint, CheckpointManager, NodeState, Tensor, TensorSet};
//! use serde_json::json;
//!
//! # fn main() -> Result<(), medfusion_checkpoint::Error> {
//! let dir = tempfile::tempdir().unwrap();
//! let manager = CheckpointManager::new(dir.path()).max_checkpoints(3);
//!
//! let model = TensorSet::new()
//!     .with("fc.weight", Tensor::from_vec([2, 3], vec![0.5f32; 6])?)
//!     .with("fc.bias", Tensor::from_vec([2], vec![0.0f32, 1.0])?);
//! let checkpoint = Checkpoint::new(json!({"name": "demo"}), json!({"done": ["data"]}))
//!     .with_node("train", NodeState::new().with_model(model).with_state(json!({"epoch": 4})))
//!     .with_metric("val_loss", 0.25);
//! let saved = manager.save("demo", &checkpoint)?;
//! assert!(saved.info.id.starts_with("demo_"));
//!
//! // A second save of the same weights writes no tensor bytes.
//! let again = manager.save("demo", &checkpoint)?;
//! assert!(again.bytes_reused > 0);
//! assert!(again.bytes_written < saved.bytes_written);
//!
//! let resumed = manager.resume_workflow("demo")?.expect("a checkpoint was saved");
//! assert_eq!(resumed.info.id, again.info.id);
//! assert_eq!(resumed.checkpoint, checkpoint);
//! # Ok(())
//! # }
//! ```
//!
//! ## Feature flags
//!
//! None: the crate has no optional parts, and depends on neither tokio, Burn nor
//! sysinfo.
#![warn(missing_docs)]

mod checkpoint;
mod error;
mod fs;
mod ids;
mod manager;
mod manifest;
mod prune;
mod save;
mod tensor;
mod tensor_set;
mod writer;

pub use checkpoint::{
    Checkpoint, CheckpointInfo, FileInfo, FileKind, LoadedCheckpoint, NodeState, PruneReport,
    SaveReport,
};
pub use error::{Corruption, Error, Result};
pub use ids::{MAX_ID_LEN, validate_id};
pub use manager::{CheckpointManager, Goal};
pub use tensor::{Dtype, Element, Tensor};
pub use tensor_set::TensorSet;
pub use writer::SaveHandle;
