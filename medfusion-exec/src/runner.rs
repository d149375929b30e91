//! Where a node's attempts run: in this process (the default), or elsewhere through an
//! [`AttemptRunner`] (a batch job on a cluster, another process), while the engine still
//! decides what runs when, retries, times out, resumes and reports.

use std::sync::Arc;

use medfusion_graph::{Node, NodeSpec, Plan};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::attempt::{AttemptGate, AttemptWork};
use crate::context::{Inputs, NodeContext, NodeMessage, Outputs, ResourceGrant, RunShared};
use crate::error::NodeError;
use crate::event::{Emitter, EventSink};
use crate::executor::BoxFuture;
use crate::registry::Registry;
use crate::value::SavedValue;

/// Runs a node's attempts somewhere else than this process.
///
/// The engine hands the runner each attempt of the nodes it [`takes`](Self::takes) as a
/// [`NodeContext`]: its config (with any retry change), its inputs (save them with
/// [`Value::save`](crate::Value::save) to ship them), the progress to continue from
/// ([`NodeContext::resume_state`]) and the handle an interrupted run recorded
/// ([`NodeContext::handle`]). While the attempt runs, the runner reports its progress
/// ([`NodeContext::progress_with`]), the progress it saved ([`NodeContext::save_progress`]),
/// a handle to find it again ([`NodeContext::record_handle`], a job id) and the resources it
/// used ([`NodeContext::report_usage`]) through the context. The future ends when the attempt
/// has ended; when [`NodeContext::cancelled`] fires (Ctrl-C, a timeout) the runner stops the
/// attempt (cancels the job) and returns.
pub trait AttemptRunner: Send + Sync + 'static {
    /// Whether this runner runs the attempts of `node` (else they run in this process).
    fn takes(&self, node: &Node, spec: &NodeSpec) -> bool;

    /// Run one attempt of the node of `ctx`, elsewhere, to its end.
    fn run(&self, ctx: NodeContext) -> BoxFuture<'static, Result<Outputs, NodeError>>;
}

/// One attempt of a node to run in this process outside an engine run: what `medfusion
/// node-exec` runs for a runner on the other side (a cluster job).
#[derive(Debug)]
pub struct DetachedAttempt {
    /// The run the attempt belongs to.
    pub run_id: String,
    /// The node's index in the plan.
    pub node: usize,
    /// The attempt's number, from 1.
    pub attempt: u32,
    /// The node's config for this attempt.
    pub config: serde_json::Map<String, serde_json::Value>,
    /// The values on its inputs, by port, in edge order.
    pub inputs: Vec<(String, Vec<crate::Value>)>,
    /// Progress to continue from.
    pub resume: Option<SavedValue>,
}

/// Run one attempt of node `attempt.node` of `plan` here, with the executor `registry` has
/// for its type: events go to `sinks`, each progress the node saves to `on_progress`, and
/// `cancel` stops it (the body sees it as a cancelled run, saves and returns). Returns once
/// the body and any blocking work it started have returned.
pub async fn run_detached(
    registry: &Registry,
    plan: Arc<Plan>,
    attempt: DetachedAttempt,
    sinks: Vec<Arc<dyn EventSink>>,
    cancel: CancellationToken,
    mut on_progress: impl FnMut(SavedValue) + Send,
) -> Result<Outputs, NodeError> {
    let node = plan.node(attempt.node);
    let exec = registry.executor(&node.node_type).ok_or_else(|| {
        NodeError::msg(format!(
            "node `{}`: no executor for node type `{}`",
            node.id, node.node_type
        ))
    })?;
    let exec = Arc::clone(exec);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let ids = (0..plan.len())
        .map(|i| Arc::from(plan.node(i).id.as_str()))
        .collect();
    let shared = Arc::new(RunShared {
        plan,
        ids,
        emitter: Emitter::new(sinks),
        messages: tx,
        checkpoint_generation: Arc::default(),
        run_id: Arc::from(attempt.run_id.as_str()),
        registry: registry.clone(),
    });
    let mut inputs = Inputs::default();
    for (port, values) in attempt.inputs {
        for value in values {
            inputs.push(&port, value);
        }
    }
    let gate = Arc::new(AttemptGate::default());
    gate.set(attempt.attempt);
    let work = AttemptWork::new();
    let ctx = NodeContext {
        shared: Arc::clone(&shared),
        index: attempt.node,
        attempt: attempt.attempt,
        config: Arc::new(attempt.config),
        inputs: Arc::new(inputs),
        cancel,
        grant: Arc::new(ResourceGrant::default()),
        resume: attempt.resume.map(Arc::new),
        seen_checkpoint: Arc::default(),
        last_progress: Arc::default(),
        work: work.clone(),
        gate: Arc::clone(&gate),
        handle: None,
        usage: Arc::default(),
    };
    let result = {
        let body = exec.execute_boxed(ctx);
        tokio::pin!(body);
        loop {
            tokio::select! {
                result = &mut body => break result,
                Some(message) = rx.recv() => {
                    if let NodeMessage::Progress { saved, .. } = message {
                        on_progress(saved);
                    }
                }
            }
        }
    };
    work.idle().await;
    drop(shared);
    while let Ok(message) = rx.try_recv() {
        if let NodeMessage::Progress { saved, .. } = message {
            on_progress(saved);
        }
    }
    result
}
