//! The state of a run: what a run store saves and a resumed run starts from.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::value::SavedValue;

/// The version of the [`RunState`] format.
pub const STATE_FORMAT: u32 = 1;

/// Where a node is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeStatus {
    /// Not started.
    Pending,
    /// An attempt is running.
    Running,
    /// Finished; its outputs are saved.
    Succeeded,
    /// Failed after all attempts.
    Failed,
    /// Not run because an upstream node failed or the run was cancelled.
    Skipped,
    /// Not run again: restored from a previous run.
    Restored,
    /// Stopped by cancellation while running.
    Cancelled,
}

impl NodeStatus {
    /// Whether the node's outputs are available.
    pub fn is_done(self) -> bool {
        matches!(self, NodeStatus::Succeeded | NodeStatus::Restored)
    }
}

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Nodes are running.
    Running,
    /// Every node finished.
    Succeeded,
    /// A node failed.
    Failed,
    /// The run was cancelled.
    Cancelled,
}

/// Why the state is being saved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SaveReason {
    /// The run started.
    Started,
    /// A node finished.
    NodeFinished,
    /// A running node saved its progress (for example a training epoch).
    NodeProgress,
    /// A node failed.
    NodeFailed,
    /// Someone asked (signal or command).
    Requested,
    /// The run was cancelled.
    Cancelled,
    /// The run ended.
    Finished,
}

/// Resources a node used while it ran, as a resource observer measured them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ResourceUsage {
    /// Peak resident memory of the process, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_rss_bytes: Option<u64>,
    /// Mean system CPU use, percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_mean_percent: Option<f32>,
    /// Highest system CPU use, percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_max_percent: Option<f32>,
    /// Peak GPU memory in use, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_gpu_memory_bytes: Option<u64>,
}

/// An error as recorded: its message and causes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorRecord {
    /// The error kind (`failed`, `timed_out`, `out_of_memory`, ...).
    pub kind: String,
    /// The message, then each cause.
    pub chain: Vec<String>,
}

/// The state of one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeState {
    /// The node id.
    pub id: String,
    /// The node type.
    pub node_type: String,
    /// Where the node is.
    pub status: NodeStatus,
    /// Attempts made.
    #[serde(default)]
    pub attempts: u32,
    /// When the first attempt started (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// When the node finished (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// Time from start to finish, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_secs: Option<f64>,
    /// The outputs, saved.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub outputs: BTreeMap<String, SavedValue>,
    /// Progress a running node saved, to continue from on resume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<SavedValue>,
    /// How many times the node has saved progress, in this run and the runs it resumed:
    /// how far it got, comparable between checkpoints of one workflow.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub progress_saves: u64,
    /// Where the node's attempt runs outside the engine's process (a job id), while it
    /// runs: a resumed run re-attaches to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle: Option<String>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorRecord>,
    /// Resources it used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<ResourceUsage>,
    /// Summaries of the outputs, for records and reports.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub summary: serde_json::Map<String, serde_json::Value>,
}

impl NodeState {
    /// A node that has not started.
    pub fn pending(id: impl Into<String>, node_type: impl Into<String>) -> NodeState {
        NodeState {
            id: id.into(),
            node_type: node_type.into(),
            status: NodeStatus::Pending,
            attempts: 0,
            started_at: None,
            finished_at: None,
            duration_secs: None,
            outputs: BTreeMap::new(),
            progress: None,
            progress_saves: 0,
            handle: None,
            error: None,
            usage: None,
            summary: serde_json::Map::new(),
        }
    }
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl NodeState {
    /// Keep `saved` as the node's progress, counting it.
    pub(crate) fn record_progress(&mut self, saved: SavedValue) {
        self.progress = Some(saved);
        self.progress_saves += 1;
    }
}

/// The state of a run: saved by a run store, loaded to resume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// The format version ([`STATE_FORMAT`]).
    pub format: u32,
    /// The run's id.
    pub run_id: String,
    /// The workflow's name.
    pub workflow: String,
    /// Where the run is.
    pub status: RunStatus,
    /// When the run started (RFC 3339).
    pub started_at: String,
    /// When the state was taken (RFC 3339).
    pub updated_at: String,
    /// The nodes, in workflow order.
    pub nodes: Vec<NodeState>,
}

impl RunState {
    /// The state of node `id`.
    pub fn node(&self, id: &str) -> Option<&NodeState> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// Every blob of every saved output and progress, as `(node, name, blob)`.
    pub fn blobs(&self) -> impl Iterator<Item = (&str, &str, &crate::value::Blob)> {
        self.nodes.iter().flat_map(|n| {
            n.outputs
                .values()
                .chain(n.progress.iter())
                .flat_map(move |v| {
                    v.blobs
                        .iter()
                        .map(move |(k, b)| (n.id.as_str(), k.as_str(), b))
                })
        })
    }
}

/// `time` as RFC 3339 with milliseconds, UTC.
pub fn timestamp(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}
