//! The checkpoint manager as the engine's run store, and loading a checkpoint to resume.

use anyhow::{Context as _, bail};
use medfusion_checkpoint::{Checkpoint, CheckpointManager, LoadedCheckpoint, NodeState, TensorSet};
use medfusion_exec::{BoxError, ResumeFrom, RunState, RunStore, SaveReason, SavedValue};
use medfusion_graph::Workflow;

/// Blob names a node's saved values may use: each maps to one file of the checkpoint
/// layout (`models/<node>_model.safetensors`, ...).
const MODEL: &str = "model.safetensors";
const OPTIMIZER: &str = "optimizer.safetensors";
const HISTORY: &str = "history.json";
const STATE: &str = "state.json";

/// Saves run states as checkpoints of one workflow.
///
/// Until the run has done some work (a node finished in this run, or a node saved progress
/// beyond what the run started from), its checkpoints are provisional: they rotate nothing
/// away and do not count toward `--max-checkpoints`, so runs that fail at once (a missing
/// file, a wrong device) cannot push out the checkpoints that hold real progress.
pub(crate) struct CheckpointStore {
    manager: std::sync::Arc<CheckpointManager>,
    workflow_id: String,
    /// What each node's saved progress was when the run started (by node id).
    started_with: std::sync::Mutex<Option<StartingProgress>>,
    did_work: std::sync::atomic::AtomicBool,
}

/// What identifies a node's saved progress: its data and the sizes of its files.
type ProgressKey = (serde_json::Value, std::collections::BTreeMap<String, u64>);

/// Each node's progress when the run started, by node id.
type StartingProgress = Vec<(String, Option<ProgressKey>)>;

fn progress_key(node: &medfusion_exec::NodeState) -> Option<ProgressKey> {
    node.progress
        .as_ref()
        .map(|p| (p.data.clone(), p.blob_sizes.clone()))
}

impl CheckpointStore {
    pub(crate) fn new(
        manager: std::sync::Arc<CheckpointManager>,
        workflow_id: impl Into<String>,
    ) -> CheckpointStore {
        CheckpointStore {
            manager,
            workflow_id: workflow_id.into(),
            started_with: std::sync::Mutex::new(None),
            did_work: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Whether the run whose state this is has done work since it started.
    fn did_work(&self, state: &RunState) -> bool {
        use std::sync::atomic::Ordering;
        if self.did_work.load(Ordering::Acquire) {
            return true;
        }
        let mut started = self
            .started_with
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let start = started.get_or_insert_with(|| {
            state
                .nodes
                .iter()
                .map(|n| (n.id.clone(), progress_key(n)))
                .collect()
        });
        let worked = state.nodes.iter().any(|n| {
            let before = start.iter().find(|(id, _)| *id == n.id).map(|(_, p)| p);
            let new_progress = n.progress.is_some() && before != Some(&progress_key(n));
            n.status == medfusion_exec::NodeStatus::Succeeded || new_progress
        });
        if worked {
            self.did_work.store(true, Ordering::Release);
        }
        worked
    }
}

/// How far each node got, as the checkpoint's progress marks: a finished node counts
/// highest, a running one by the progress it saved (epochs, for training nodes).
fn progress_marks(state: &RunState) -> impl Iterator<Item = (&str, u64)> {
    state.nodes.iter().filter_map(|n| {
        if n.status.is_done() {
            Some((n.id.as_str(), u64::MAX))
        } else {
            n.progress.as_ref().map(|p| {
                (
                    n.id.as_str(),
                    p.data
                        .get("epochs_done")
                        .and_then(serde_json::Value::as_u64)
                        .unwrap_or(0)
                        + 1,
                )
            })
        }
    })
}

fn to_checkpoint(workflow: &Workflow, state: &RunState) -> Result<Checkpoint, BoxError> {
    let mut checkpoint = Checkpoint::new(
        serde_json::to_value(workflow)?,
        serde_json::to_value(state)?,
    );
    for node in &state.nodes {
        let mut files = NodeState::new();
        let mut any = false;
        // Progress first, so a finished node's outputs win if both name a file.
        for value in node.progress.iter().chain(node.outputs.values()) {
            for (name, blob) in &value.blobs {
                any = true;
                match name.as_str() {
                    MODEL => files.model = Some(tensors(blob)?),
                    OPTIMIZER => files.optimizer = Some(tensors(blob)?),
                    HISTORY => files.history = Some(serde_json::from_slice(blob)?),
                    STATE => files.state = Some(serde_json::from_slice(blob)?),
                    other => {
                        return Err(format!(
                            "node `{}` saved a file `{other}`, which the checkpoint layout has no place for \
                             (expected {MODEL}, {OPTIMIZER}, {HISTORY} or {STATE})",
                            node.id
                        )
                        .into());
                    }
                }
            }
        }
        if any {
            checkpoint = checkpoint.with_node(node.id.clone(), files);
        }
    }
    Ok(checkpoint)
}

fn tensors(blob: &[u8]) -> Result<TensorSet, BoxError> {
    Ok(TensorSet::from_safetensors(blob.to_vec())?)
}

impl RunStore for CheckpointStore {
    fn save(
        &self,
        workflow: &Workflow,
        state: &RunState,
        _reason: SaveReason,
    ) -> Result<String, BoxError> {
        let mut checkpoint = to_checkpoint(workflow, state)?;
        for (node, mark) in progress_marks(state) {
            checkpoint = checkpoint.with_progress(node, mark);
        }
        if !self.did_work(state) {
            checkpoint = checkpoint.provisional();
        }
        let report = self.manager.save(&self.workflow_id, &checkpoint)?;
        Ok(report.info.id)
    }
}

fn fill_blobs(value: &mut SavedValue, files: Option<&NodeState>, node: &str) -> anyhow::Result<()> {
    for name in value.blob_sizes.keys().cloned().collect::<Vec<_>>() {
        let files =
            files.with_context(|| format!("the checkpoint has no files for node `{node}`"))?;
        let bytes: Vec<u8> = match name.as_str() {
            MODEL => files
                .model
                .as_ref()
                .map(TensorSet::to_safetensors)
                .transpose()?,
            OPTIMIZER => files
                .optimizer
                .as_ref()
                .map(TensorSet::to_safetensors)
                .transpose()?,
            HISTORY => files.history.as_ref().map(serde_json::to_vec).transpose()?,
            STATE => files.state.as_ref().map(serde_json::to_vec).transpose()?,
            _ => None,
        }
        .with_context(|| format!("the checkpoint lacks `{name}` of node `{node}`"))?;
        value.blobs.insert(name, bytes.into());
    }
    Ok(())
}

/// The run to resume from a loaded checkpoint: its state with every saved file in place.
pub(crate) fn resume_from(loaded: LoadedCheckpoint) -> anyhow::Result<ResumeFrom> {
    let id = &loaded.info.id;
    let mut state: RunState = serde_json::from_value(loaded.checkpoint.state)
        .with_context(|| format!("checkpoint `{id}` has a state.json this version cannot read"))?;
    if state.format != medfusion_exec::STATE_FORMAT {
        bail!(
            "checkpoint `{id}` has state format {}, this version reads {}",
            state.format,
            medfusion_exec::STATE_FORMAT
        );
    }
    let workflow: Workflow =
        serde_json::from_value(loaded.checkpoint.workflow).with_context(|| {
            format!("checkpoint `{id}` has a workflow.json this version cannot read")
        })?;
    for node in &mut state.nodes {
        let files = loaded.checkpoint.nodes.get(&node.id);
        for value in node.outputs.values_mut().chain(node.progress.iter_mut()) {
            fill_blobs(value, files, &node.id)?;
        }
    }
    Ok(ResumeFrom { state, workflow })
}

/// Load the checkpoint to resume: `latest` (the newest valid one of `workflow_id`) or a
/// checkpoint id or path.
pub(crate) fn load_for_resume(
    manager: &CheckpointManager,
    workflow_id: &str,
    which: &str,
) -> anyhow::Result<LoadedCheckpoint> {
    if which == "latest" {
        let report = manager
            .resume_workflow_report(workflow_id)
            .with_context(|| format!("cannot read the checkpoints of `{workflow_id}`"))?;
        for skipped in &report.skipped {
            errln!(
                "warning: skipped checkpoint {}: {}",
                skipped.id,
                crate::output::chain_text(&skipped.reason)
            );
        }
        return report.loaded.with_context(|| {
            format!(
                "no valid checkpoint of workflow `{workflow_id}` in `{}`",
                manager.dir().display()
            )
        });
    }
    // A path to a checkpoint folder works too.
    let id = std::path::Path::new(which)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(which);
    manager
        .load(id)
        .with_context(|| format!("cannot load checkpoint `{which}`"))
}
