//! What a node body gets: its config, inputs, progress reporting, cancellation and grant.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use medfusion_graph::{NodeConfig, Plan};
use serde_json::{Map, Value as Json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::attempt::{AttemptGate, AttemptWork};
use crate::error::NodeError;
use crate::event::{Emitter, EventKind};
use crate::value::{PortValue, SavedValue, Value};

/// The resources granted to a running node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceGrant {
    /// The GPU indices this node holds (no other node holds them meanwhile).
    pub gpus: Vec<u32>,
}

/// Messages from running nodes to the engine.
#[derive(Debug)]
pub(crate) enum NodeMessage {
    /// Progress saved by attempt `attempt` of node `node`.
    Progress {
        node: usize,
        attempt: u32,
        saved: SavedValue,
    },
    /// The blocking work of an attempt a node gave up on (a stuck one) has returned: the
    /// GPUs it kept reserved can be given out again.
    Returned,
    /// Attempt `attempt` of node `node` runs where `handle` finds it (a job id).
    Handle {
        node: usize,
        attempt: u32,
        handle: String,
    },
}

/// Shared by every node of one run.
pub(crate) struct RunShared {
    pub(crate) plan: Arc<Plan>,
    pub(crate) ids: Vec<Arc<str>>,
    pub(crate) emitter: Emitter,
    pub(crate) messages: mpsc::UnboundedSender<NodeMessage>,
    /// Bumped on each manual checkpoint request.
    pub(crate) checkpoint_generation: Arc<AtomicU64>,
    /// The run's id.
    pub(crate) run_id: Arc<str>,
    /// The node types and value codecs (to restore values an attempt sent back).
    pub(crate) registry: crate::registry::Registry,
}

/// The inputs of one node: each connected input port with its value(s), in edge order.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    ports: Vec<(String, Vec<Value>)>,
}

impl Inputs {
    pub(crate) fn push(&mut self, port: &str, value: Value) {
        match self.ports.iter_mut().find(|(p, _)| p == port) {
            Some((_, values)) => values.push(value),
            None => self.ports.push((port.to_string(), vec![value])),
        }
    }

    /// The values on `port` (several when the port takes several edges).
    pub fn all(&self, port: &str) -> &[Value] {
        self.ports
            .iter()
            .find(|(p, _)| p == port)
            .map_or(&[], |(_, v)| v.as_slice())
    }

    /// The connected ports and their values.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[Value])> {
        self.ports.iter().map(|(p, v)| (p.as_str(), v.as_slice()))
    }
}

/// The outputs a node body returns, by output port.
#[derive(Debug, Clone, Default)]
pub struct Outputs {
    pub(crate) values: Vec<(String, Value)>,
}

impl Outputs {
    /// No outputs.
    pub fn new() -> Outputs {
        Outputs::default()
    }

    /// Set the value of an output port.
    pub fn with(mut self, port: impl Into<String>, value: impl PortValue) -> Outputs {
        self.insert(port, Value::new(value));
        self
    }

    /// Set the value of an output port.
    pub fn insert(&mut self, port: impl Into<String>, value: Value) {
        let port = port.into();
        self.values.retain(|(p, _)| *p != port);
        self.values.push((port, value));
    }

    /// The value of an output port.
    pub fn get(&self, port: &str) -> Option<&Value> {
        self.values.iter().find(|(p, _)| p == port).map(|(_, v)| v)
    }
}

/// Everything a node body gets from the engine. Cheap to clone: move a clone into a
/// blocking thread.
///
/// A context belongs to one attempt. Its cancellation token is that attempt's: it is
/// cancelled when the run is cancelled and when the attempt times out, and the engine
/// then waits for the attempt's [`run_blocking`](NodeContext::run_blocking) work to return
/// before it retries the node or gives its GPUs to another node. Threads a body starts
/// itself are not tracked: join them before returning. Progress reported through a
/// context whose attempt is no longer the node's current one is dropped.
#[derive(Clone)]
pub struct NodeContext {
    pub(crate) shared: Arc<RunShared>,
    pub(crate) index: usize,
    pub(crate) attempt: u32,
    pub(crate) config: Arc<Map<String, Json>>,
    pub(crate) inputs: Arc<Inputs>,
    pub(crate) cancel: CancellationToken,
    pub(crate) grant: Arc<ResourceGrant>,
    pub(crate) resume: Option<Arc<SavedValue>>,
    pub(crate) seen_checkpoint: Arc<AtomicU64>,
    /// The last progress this node saved, for a retry to continue from.
    pub(crate) last_progress: Arc<std::sync::Mutex<Option<Arc<SavedValue>>>>,
    /// The blocking work this attempt started.
    pub(crate) work: AttemptWork,
    /// Which attempt of the node may report.
    pub(crate) gate: Arc<AttemptGate>,
    /// Where an interrupted run left this node's attempt running (a job id), if anywhere.
    pub(crate) handle: Option<Arc<str>>,
    /// The resources the attempt reported it used (a runner's job measures its own).
    pub(crate) usage: Arc<std::sync::Mutex<Option<crate::state::ResourceUsage>>>,
}

impl NodeContext {
    /// The node id.
    pub fn id(&self) -> &str {
        &self.shared.ids[self.index]
    }

    /// The node type.
    pub fn node_type(&self) -> &str {
        &self.shared.plan.node(self.index).node_type
    }

    /// The node as the workflow wrote it.
    pub fn node(&self) -> &medfusion_graph::Node {
        self.shared.plan.node(self.index)
    }

    /// The whole plan the node is part of.
    pub fn plan(&self) -> &Arc<Plan> {
        &self.shared.plan
    }

    /// The run's id.
    pub fn run_id(&self) -> &str {
        &self.shared.run_id
    }

    /// The resources the node asks for: its `resources`, else its type's defaults.
    pub fn resources(&self) -> medfusion_graph::Resources {
        self.shared.plan.resources(self.index)
    }

    /// A value as it was before it was saved (an attempt that ran elsewhere sends its
    /// outputs back saved), through the codec registered for it.
    pub fn restore(&self, saved: &SavedValue) -> Result<Value, crate::error::BoxError> {
        let codec = self.shared.registry.codec(&saved.codec).ok_or_else(|| {
            format!(
                "no codec `{}` is registered to restore the value",
                saved.codec
            )
        })?;
        codec.restore(saved)
    }

    /// Where an interrupted run left this node's attempt running (what a runner recorded
    /// with [`record_handle`](Self::record_handle), such as a job id): a runner re-attaches
    /// to it instead of starting the attempt again, if it still runs.
    pub fn handle(&self) -> Option<&str> {
        self.handle.as_deref()
    }

    /// Record where this attempt runs (a job id), saved with the run state so that a
    /// resumed run can find it again.
    pub fn record_handle(&self, handle: impl Into<String>) {
        let message = NodeMessage::Handle {
            node: self.index,
            attempt: self.attempt,
            handle: handle.into(),
        };
        self.gate.report(self.attempt, || {
            // The receiver lives as long as the run.
            let _ = self.shared.messages.send(message);
        });
    }

    /// Report the resources the attempt used, measured where it ran (instead of this
    /// process's resource observer).
    pub fn report_usage(&self, usage: crate::state::ResourceUsage) {
        if let Ok(mut slot) = self.usage.lock() {
            *slot = Some(usage);
        }
    }

    /// This attempt's number, from 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The node's config with its spec's defaults (and any retry changes) applied.
    pub fn config(&self) -> &Map<String, Json> {
        &self.config
    }

    /// The config read into the node type's typed settings `T`, after the same checks
    /// `validate` made (keys, types, ranges, then `T`'s own rules).
    pub fn config_as<T: NodeConfig>(&self) -> Result<T, NodeError> {
        let spec = self.shared.plan.spec(self.index);
        spec.config.parse(&self.config).map_err(|issues| {
            let text: Vec<String> = issues.iter().map(ToString::to_string).collect();
            NodeError::msg(format!("node `{}`: {}", self.id(), text.join("; ")))
                .kind_of(crate::error::NodeErrorKind::InvalidInput)
        })
    }

    /// The seed for this node: its `seed` config if set, else one derived from the
    /// workflow's seed and the node id (stable across runs).
    pub fn seed(&self) -> u64 {
        if let Some(seed) = self.config.get("seed").and_then(Json::as_u64) {
            return seed;
        }
        let base = self.shared.plan.workflow().seed.unwrap_or(0);
        // FNV-1a over the id, mixed with the workflow seed: stable across Rust versions.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ base;
        for b in self.id().bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        h
    }

    /// The workflow's seed (0 when it sets none).
    pub fn workflow_seed(&self) -> u64 {
        self.shared.plan.workflow().seed.unwrap_or(0)
    }

    /// Whether an edge of the workflow reads output `port` of this node: a node can skip
    /// making an output nobody reads (checksums of a large folder, say).
    pub fn output_is_read(&self, port: &str) -> bool {
        self.shared
            .plan
            .read_outputs(self.index)
            .iter()
            .any(|p| p == port)
    }

    /// All inputs.
    pub fn inputs(&self) -> &Inputs {
        &self.inputs
    }

    /// The one value on input `port`.
    pub fn input(&self, port: &str) -> Result<&Value, NodeError> {
        self.inputs.all(port).first().ok_or_else(|| {
            NodeError::msg(format!(
                "node `{}` has no value on input `{port}`",
                self.id()
            ))
            .kind_of(crate::error::NodeErrorKind::InvalidInput)
        })
    }

    /// The value on input `port`, as `T`.
    pub fn input_as<T: PortValue>(&self, port: &str) -> Result<&T, NodeError> {
        let value = self.input(port)?;
        value.downcast_ref::<T>().ok_or_else(|| {
            NodeError::msg(format!(
                "node `{}`: input `{port}` holds {value:?}, not the {} this node type reads",
                self.id(),
                std::any::type_name::<T>()
            ))
            .kind_of(crate::error::NodeErrorKind::InvalidInput)
        })
    }

    /// Report progress (`fraction` from 0 to 1 when known).
    pub fn progress(&self, fraction: Option<f32>, message: impl Into<String>) {
        self.progress_with(fraction, message, Map::new());
    }

    /// Report progress with figures (loss, accuracy, samples/s...). Dropped when this
    /// attempt is no longer the node's current one.
    pub fn progress_with(
        &self,
        fraction: Option<f32>,
        message: impl Into<String>,
        metrics: Map<String, Json>,
    ) {
        self.gate.report(self.attempt, || {
            self.shared.emitter.emit(EventKind::NodeProgress {
                node: self.shared.ids[self.index].clone(),
                attempt: self.attempt,
                fraction,
                message: message.into(),
                metrics,
            });
        });
    }

    /// Whether this attempt must stop at the next safe point: the run is being cancelled
    /// or the attempt timed out.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Completes when this attempt must stop (the run is cancelled or the attempt timed
    /// out).
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await;
    }

    /// This attempt's cancellation token, for threads that poll it.
    pub fn cancel_token(&self) -> &CancellationToken {
        &self.cancel
    }

    /// The resources granted to this node.
    pub fn grant(&self) -> &ResourceGrant {
        &self.grant
    }

    /// Progress saved by an earlier attempt or run of this node, to continue from.
    pub fn resume_state(&self) -> Option<&SavedValue> {
        self.resume.as_deref()
    }

    /// Save progress (for example the state after an epoch) so that a later attempt or a
    /// resumed run can continue from it. The engine stores it with the run state. Saving
    /// after being told to stop is fine; progress of an attempt that is no longer the
    /// node's current one is dropped.
    pub fn save_progress(&self, saved: SavedValue) {
        let current = self.gate.report(self.attempt, || {
            self.seen_checkpoint.store(
                self.shared.checkpoint_generation.load(Ordering::Acquire),
                Ordering::Release,
            );
            if let Ok(mut last) = self.last_progress.lock() {
                *last = Some(Arc::new(saved.clone()));
            }
            // The receiver lives as long as the run.
            let _ = self.shared.messages.send(NodeMessage::Progress {
                node: self.index,
                attempt: self.attempt,
                saved,
            });
        });
        if !current {
            tracing::warn!(
                node = self.id(),
                attempt = self.attempt,
                "dropped progress saved by a stale attempt"
            );
        }
    }

    /// Whether someone asked for a checkpoint since this node last saved progress: save
    /// at the next safe point.
    pub fn checkpoint_requested(&self) -> bool {
        self.shared.checkpoint_generation.load(Ordering::Acquire)
            > self.seen_checkpoint.load(Ordering::Acquire)
    }

    /// Run CPU-heavy or blocking work off the async workers, so events and cancellation
    /// stay responsive.
    ///
    /// The engine keeps count of this work: when the attempt times out or the run is
    /// cancelled, it waits for `f` to return (poll [`is_cancelled`](Self::is_cancelled))
    /// before it retries the node or frees the node's GPUs, even though the future
    /// awaiting it is dropped.
    pub async fn run_blocking<R, F>(&self, f: F) -> Result<R, NodeError>
    where
        F: FnOnce() -> Result<R, NodeError> + Send + 'static,
        R: Send + 'static,
    {
        // Moved into the thread: dropped when `f` returns or unwinds, or with the closure
        // if the runtime shuts down before it runs.
        let guard = self.work.enter();
        let task = move || {
            let _guard = guard;
            f()
        };
        match tokio::task::spawn_blocking(task).await {
            Ok(result) => result,
            Err(e) if e.is_panic() => Err(NodeError::msg(format!(
                "node `{}` panicked: {}",
                self.id(),
                panic_message(&*e.into_panic())
            ))),
            Err(_) => Err(NodeError::cancelled()),
        }
    }
}

impl std::fmt::Debug for NodeContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeContext")
            .field("node", &self.id())
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(ToString::to_string)
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string())
}
