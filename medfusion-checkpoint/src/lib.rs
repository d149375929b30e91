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
//! checkpoint_dir/.objects/  .locks/  .lock      (the store, run locks, the save lock)
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
//!   linked into each checkpoint, so an unchanged model is not written again. A stored
//!   file is checked against its checksum before a save links it (once per manager
//!   while it is unchanged), and written again if damaged: the new checkpoint gets a
//!   good copy, older ones keep theirs. Rotation removes a stored file only when no
//!   checkpoint links to it.
//! - **Rotation** keeps, per workflow, the union of:
//!   - the newest [`max_checkpoints`](CheckpointManager::max_checkpoints) (default 5)
//!     that are not [provisional](Checkpoint::provisional); the only valid one is never
//!     removed;
//!   - the provisional checkpoints newer than all of those. A provisional checkpoint is
//!     saved by a run that has done no work yet; saving one prunes nothing;
//!   - the best by a metric, if asked ([`keep_best`](CheckpointManager::keep_best));
//!   - for each [progress mark](Checkpoint::with_progress) key, the newest checkpoint
//!     holding its highest value (the newest holding work that every newer one lacks).
//!
//!   So runs that fail early, however many, never rotate away the work of earlier ones.
//! - **Background saves** ([`CheckpointManager::save_async`]): one writer thread with a
//!   bounded queue; every failure reaches a [`SaveHandle`] or
//!   [`flush`](CheckpointManager::flush).
//! - **Inspection that hides nothing**: [`inspect`](CheckpointManager::inspect) reports
//!   every folder named like a checkpoint, those without a valid manifest too, each
//!   verified file by file, with the other checkpoints sharing each damaged file;
//!   [`resume_workflow_report`](CheckpointManager::resume_workflow_report) says which
//!   newer checkpoints resuming passed over, and why.
//! - **One run per workflow**: [`lock_workflow`](CheckpointManager::lock_workflow) takes
//!   an `flock` on `.locks/<workflow_id>.lock`; a second run fails at once, naming the
//!   process holding it, and the lock goes with its process however that ends.
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
mod inspect;
mod lock;
mod manager;
mod manifest;
mod objects;
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
pub use inspect::{BadFile, CheckpointReport, CheckpointStatus, ResumeReport, SkippedCheckpoint};
pub use lock::WorkflowLock;
pub use manager::{CheckpointManager, Goal};
pub use tensor::{Dtype, Element, Tensor};
pub use tensor_set::TensorSet;
pub use writer::SaveHandle;
