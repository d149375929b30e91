//! What a checkpoint holds, and what is known about a saved one.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::SystemTime;

use serde_json::Value;

use crate::tensor_set::TensorSet;

/// The content of one checkpoint: the workflow, the run's state and each node's state.
///
/// The workflow and run state are opaque JSON to this crate (the engine defines them).
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Checkpoint {
    /// The workflow definition, written to `workflow.json`.
    pub workflow: Value,
    /// The run's state (completed nodes, outputs, ...), written to `state.json`.
    pub state: Value,
    /// Per node id: its tensors and JSON state, written under `models/`.
    pub nodes: BTreeMap<String, NodeState>,
    /// Named metrics (validation loss, accuracy, ...), kept in the manifest and used to
    /// keep the best checkpoint (see [`CheckpointManager::keep_best`](crate::CheckpointManager::keep_best)).
    pub metrics: BTreeMap<String, f64>,
    /// Saved by a run that has done no work yet (see [`provisional`](Self::provisional)).
    pub provisional: bool,
    /// Progress marks: per key (a node id, say), a counter of the work this checkpoint
    /// holds (see [`with_progress`](Self::with_progress)).
    pub progress: BTreeMap<String, u64>,
}

impl Checkpoint {
    /// A checkpoint of `workflow` in run state `state`, with no node state yet.
    pub fn new(workflow: Value, state: Value) -> Self {
        Checkpoint {
            workflow,
            state,
            ..Checkpoint::default()
        }
    }

    /// Add (or replace) the state of node `id`.
    pub fn with_node(mut self, id: impl Into<String>, node: NodeState) -> Self {
        self.nodes.insert(id.into(), node);
        self
    }

    /// Record a metric.
    pub fn with_metric(mut self, name: impl Into<String>, value: f64) -> Self {
        self.metrics.insert(name.into(), value);
        self
    }

    /// Mark the checkpoint provisional: saved by a run that has not done any work yet
    /// (it has just started, or failed before finishing anything), so it holds nothing
    /// that the checkpoints before it lack.
    ///
    /// A provisional checkpoint is a real one: it is listed, loaded and resumed from like
    /// any other. But it never pushes older checkpoints out: saving it prunes nothing, it
    /// does not count toward
    /// [`max_checkpoints`](crate::CheckpointManager::max_checkpoints), and it is removed
    /// by the first rotation after a newer checkpoint that is not provisional (unless a
    /// progress mark or [`keep_best`](crate::CheckpointManager::keep_best) keeps it).
    pub fn provisional(mut self) -> Self {
        self.provisional = true;
        self
    }

    /// Record a progress mark: `value` counts the work of `key` this checkpoint holds
    /// (for example `key` a node id and `value` the epochs it has finished, or
    /// `u64::MAX` once the node is done). Values of one key must grow with the work.
    ///
    /// Rotation never removes the newest checkpoint holding the highest value of any
    /// key, so work saved once is not lost to newer checkpoints that hold less of it (a
    /// run that restarted a node from scratch and failed, say). This comes on top of
    /// the newest [`max_checkpoints`](crate::CheckpointManager::max_checkpoints) and the
    /// [`keep_best`](crate::CheckpointManager::keep_best) one.
    pub fn with_progress(mut self, key: impl Into<String>, value: u64) -> Self {
        self.progress.insert(key.into(), value);
        self
    }
}

/// The saved state of one node; every part is optional.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct NodeState {
    /// Model weights: `models/<node>_model.safetensors`.
    pub model: Option<TensorSet>,
    /// Optimizer state: `models/<node>_optimizer.safetensors`.
    pub optimizer: Option<TensorSet>,
    /// Training history (losses, metrics per epoch): `models/<node>_history.json`.
    pub history: Option<Value>,
    /// Anything else needed to resume the node (epoch, scheduler, RNG, early
    /// stopping): `models/<node>_state.json`.
    pub state: Option<Value>,
}

impl NodeState {
    /// A node state with nothing in it yet.
    pub fn new() -> Self {
        NodeState::default()
    }

    /// Set the model weights.
    pub fn with_model(mut self, model: TensorSet) -> Self {
        self.model = Some(model);
        self
    }

    /// Set the optimizer state.
    pub fn with_optimizer(mut self, optimizer: TensorSet) -> Self {
        self.optimizer = Some(optimizer);
        self
    }

    /// Set the training history.
    pub fn with_history(mut self, history: Value) -> Self {
        self.history = Some(history);
        self
    }

    /// Set the free-form node state.
    pub fn with_state(mut self, state: Value) -> Self {
        self.state = Some(state);
        self
    }
}

/// What one file of a checkpoint holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FileKind {
    /// `workflow.json`.
    Workflow,
    /// `state.json`.
    State,
    /// `models/<node>_model.safetensors`.
    Model,
    /// `models/<node>_optimizer.safetensors`.
    Optimizer,
    /// `models/<node>_history.json`.
    History,
    /// `models/<node>_state.json`.
    NodeState,
}

impl FileKind {
    /// The file's path inside the checkpoint directory (`node` is ignored for
    /// [`Workflow`](FileKind::Workflow) and [`State`](FileKind::State)).
    pub fn relative_path(self, node: &str) -> String {
        match self {
            FileKind::Workflow => "workflow.json".to_string(),
            FileKind::State => "state.json".to_string(),
            FileKind::Model => format!("models/{node}_model.safetensors"),
            FileKind::Optimizer => format!("models/{node}_optimizer.safetensors"),
            FileKind::History => format!("models/{node}_history.json"),
            FileKind::NodeState => format!("models/{node}_state.json"),
        }
    }

    /// Whether the file belongs to a node.
    pub fn is_per_node(self) -> bool {
        !matches!(self, FileKind::Workflow | FileKind::State)
    }

    /// Whether the file is a safetensors file (content-addressed, shared between
    /// checkpoints when unchanged).
    pub fn is_tensors(self) -> bool {
        matches!(self, FileKind::Model | FileKind::Optimizer)
    }
}

/// One file listed in a checkpoint's manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FileInfo {
    /// Path relative to the checkpoint directory, `/`-separated.
    pub path: String,
    /// What the file holds.
    pub kind: FileKind,
    /// The node it belongs to, for per-node files.
    pub node: Option<String>,
    /// Size in bytes.
    pub size: u64,
    /// xxh3-128 of the content, 32 lowercase hex digits.
    pub checksum: String,
}

/// A checkpoint on disk with a valid manifest (its files not yet verified).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct CheckpointInfo {
    /// The directory name, `<workflow_id>_<YYYYMMDD_HHMMSS>[_<n>]`: what
    /// [`CheckpointManager::load`](crate::CheckpointManager::load) takes.
    pub id: String,
    /// The workflow it belongs to.
    pub workflow_id: String,
    /// The checkpoint's directory.
    pub path: PathBuf,
    /// Position among the workflow's checkpoints: larger is newer.
    pub sequence: u64,
    /// When the save started.
    pub created: SystemTime,
    /// The same moment as RFC 3339 in UTC.
    pub created_rfc3339: String,
    /// The metrics saved with it.
    pub metrics: BTreeMap<String, f64>,
    /// Whether it was saved [provisional](Checkpoint::provisional).
    pub provisional: bool,
    /// Its [progress marks](Checkpoint::with_progress).
    pub progress: BTreeMap<String, u64>,
    /// Every file, as the manifest lists it.
    pub files: Vec<FileInfo>,
}

impl CheckpointInfo {
    /// The bytes of all its files (files shared with other checkpoints included).
    pub fn size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    /// The ids of the nodes with saved state, sorted.
    pub fn nodes(&self) -> Vec<&str> {
        let mut nodes: Vec<&str> = self
            .files
            .iter()
            .filter_map(|f| f.node.as_deref())
            .collect();
        nodes.sort_unstable();
        nodes.dedup();
        nodes
    }
}

/// A checkpoint read back and verified.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct LoadedCheckpoint {
    /// Where it was and what its manifest says.
    pub info: CheckpointInfo,
    /// Its content.
    pub checkpoint: Checkpoint,
}

/// What a save did.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SaveReport {
    /// The new checkpoint.
    pub info: CheckpointInfo,
    /// Bytes written to disk by this save (files and manifest).
    pub bytes_written: u64,
    /// Bytes of unchanged tensor files taken from earlier checkpoints (or from another
    /// file of this save with the same content) instead of written.
    pub bytes_reused: u64,
    /// Checkpoints of the workflow removed by rotation after the save.
    pub pruned: Vec<String>,
}

/// What a prune did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PruneReport {
    /// Checkpoint ids kept, oldest first.
    pub kept: Vec<String>,
    /// Checkpoint ids removed.
    pub removed: Vec<String>,
    /// Stored tensor files no checkpoint used any more, removed.
    pub objects_removed: usize,
    /// Leftovers of interrupted saves or prunes, removed.
    pub leftovers_removed: usize,
}
