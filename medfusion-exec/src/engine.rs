//! The engine: configuration, starting runs, and what a run returns.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use medfusion_graph::Plan;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::context::Outputs;
use crate::error::Error;
use crate::event::{Emitter, EventSink};
use crate::registry::Registry;
use crate::resume::{Decision, ResumeFrom};
use crate::scheduler::Scheduler;
use crate::state::RunState;
use crate::store::{ResourceObserver, RunStore};
use crate::value::Value;

/// What happens to the rest of a run when a node fails for good.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FailurePolicy {
    /// Cancel running nodes and start no more.
    #[default]
    FailFast,
    /// Skip what depends on the failed node; finish the independent branches.
    Continue,
}

pub(crate) struct EngineInner {
    pub(crate) registry: Registry,
    pub(crate) max_parallel: usize,
    pub(crate) gpus: u32,
    pub(crate) policy: FailurePolicy,
    pub(crate) store: Option<Arc<dyn RunStore>>,
    pub(crate) observer: Option<Arc<dyn ResourceObserver>>,
    pub(crate) sinks: Vec<Arc<dyn EventSink>>,
    pub(crate) cancel_grace: Duration,
    pub(crate) stuck_limit: Duration,
    pub(crate) retry_backoff: Duration,
    pub(crate) runner: Option<Arc<dyn crate::runner::AttemptRunner>>,
}

/// Runs plans: nodes start as soon as their inputs are ready, up to `max_parallel` at a
/// time and never holding more GPUs than there are.
///
/// ```
/// use medfusion_exec::{Engine, Registry, RunOptions};
/// use medfusion_graph::{Workflow, validate};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let registry = Registry::with_builtins();
/// let workflow = Workflow::parse_sniffed(
///     "name: hello\nnodes:\n  - { id: a, type: util.value, config: { value: 42 } }\n\
///      \x20 - { id: b, type: util.noop }\nedges:\n  - { from: a.out, to: b.in }\n",
/// )?;
/// let plan = validate(workflow, registry.catalog())?;
/// let engine = Engine::builder(registry).max_parallel(2).build();
/// let report = engine.run(plan, RunOptions::default()).await;
/// assert!(report.is_success());
/// assert_eq!(report.output("b", "out").unwrap().summary(), 42);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct Engine {
    inner: Arc<EngineInner>,
}

/// Configures an [`Engine`].
pub struct EngineBuilder {
    inner: EngineInner,
}

impl Engine {
    /// Start configuring an engine for the node types of `registry`.
    pub fn builder(registry: Registry) -> EngineBuilder {
        let cpus = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        EngineBuilder {
            inner: EngineInner {
                registry,
                max_parallel: cpus,
                gpus: 0,
                policy: FailurePolicy::FailFast,
                store: None,
                observer: None,
                sinks: Vec::new(),
                cancel_grace: Duration::from_secs(10),
                stuck_limit: Duration::from_mins(5),
                retry_backoff: Duration::from_secs(1),
                runner: None,
            },
        }
    }

    /// The node types this engine runs.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// What a resumed run of `plan` would do with each node, without running anything
    /// (for `--explain`).
    pub fn explain_resume(&self, plan: &Plan, from: &ResumeFrom) -> Vec<Decision> {
        crate::resume::decide(plan, from, |i| {
            crate::scheduler::restore_outputs(&self.inner.registry, plan, from, i).map(|_| ())
        })
    }

    /// Start running `plan` on the current tokio runtime and return a handle to it.
    pub fn start(&self, plan: Plan, options: RunOptions) -> Result<RunHandle, Error> {
        let cancel = options.cancel.clone().unwrap_or_default();
        let checkpoint = Arc::new(Notify::new());
        let scheduler = Scheduler::new(
            Arc::clone(&self.inner),
            plan,
            options,
            cancel.clone(),
            Arc::clone(&checkpoint),
        )?;
        let emitter = scheduler.emitter();
        let generation = scheduler.checkpoint_generation();
        let task = tokio::spawn(scheduler.run());
        Ok(RunHandle {
            cancel,
            checkpoint,
            generation,
            emitter,
            task,
        })
    }

    /// Run `plan` to the end.
    pub async fn run(&self, plan: Plan, options: RunOptions) -> RunReport {
        match self.start(plan, options) {
            Ok(handle) => handle.wait().await,
            Err(error) => RunReport::not_started(error),
        }
    }
}

impl EngineBuilder {
    /// Run at most `n` nodes at a time (default: the number of CPUs).
    pub fn max_parallel(mut self, n: usize) -> EngineBuilder {
        self.inner.max_parallel = n.max(1);
        self
    }

    /// The number of GPU slots (default 0). A node holding GPUs waits for free ones.
    pub fn gpus(mut self, n: u32) -> EngineBuilder {
        self.inner.gpus = n;
        self
    }

    /// What a failure does to the rest of the run (default [`FailurePolicy::FailFast`]).
    pub fn failure_policy(mut self, policy: FailurePolicy) -> EngineBuilder {
        self.inner.policy = policy;
        self
    }

    /// Save run states here (after each node, on failure and on request).
    pub fn store(mut self, store: Arc<dyn RunStore>) -> EngineBuilder {
        self.inner.store = Some(store);
        self
    }

    /// Tell this observer when nodes start and finish, to record their resource use.
    pub fn observer(mut self, observer: Arc<dyn ResourceObserver>) -> EngineBuilder {
        self.inner.observer = Some(observer);
        self
    }

    /// Send every event to `sink`.
    pub fn subscribe(mut self, sink: Arc<dyn EventSink>) -> EngineBuilder {
        self.inner.sinks.push(sink);
        self
    }

    /// How long a node attempt told to stop (the run is cancelled, or the attempt timed
    /// out) may take to return by itself, saving its progress, before it is reported stuck
    /// with an [`EventKind::NodeStuck`](crate::EventKind::NodeStuck) event (default 10 s).
    /// A cancelled run then ends without waiting longer.
    pub fn cancel_grace(mut self, grace: Duration) -> EngineBuilder {
        self.inner.cancel_grace = grace;
        self
    }

    /// How long, from its timeout, the engine waits for a timed-out attempt's blocking
    /// work to return before the node gives up on it (default 5 min; at least
    /// `cancel_grace`).
    ///
    /// Until that work returns, the node's GPUs are not handed to any other node and the
    /// node is not retried: a GPU is never shared with a stale attempt that still runs on
    /// it. Past the limit the node fails with [`NodeErrorKind::Stuck`](crate::NodeErrorKind)
    /// (no retry), and its GPU slots stay reserved until the work returns; nodes that can
    /// only run on them fail instead of waiting forever.
    pub fn stuck_limit(mut self, limit: Duration) -> EngineBuilder {
        self.inner.stuck_limit = limit;
        self
    }

    /// Run the attempts of the nodes `runner` takes through it (a cluster's jobs) instead of
    /// in this process; the engine still schedules, retries, times out and resumes them.
    pub fn runner(mut self, runner: Arc<dyn crate::runner::AttemptRunner>) -> EngineBuilder {
        self.inner.runner = Some(runner);
        self
    }

    /// The wait before a first retry when a node sets no `retry_backoff` (default 1 s).
    pub fn retry_backoff(mut self, backoff: Duration) -> EngineBuilder {
        self.inner.retry_backoff = backoff;
        self
    }

    /// The engine.
    pub fn build(self) -> Engine {
        Engine {
            inner: Arc::new(self.inner),
        }
    }
}

/// How to run a plan.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// The run's id (default: the workflow name and the start time).
    pub run_id: Option<String>,
    /// Continue this saved run: finished nodes are restored, not run again.
    pub resume: Option<ResumeFrom>,
    /// Cancel the run through this token (default: a new one, see [`RunHandle::cancel`]).
    pub cancel: Option<CancellationToken>,
}

/// A running run.
pub struct RunHandle {
    cancel: CancellationToken,
    checkpoint: Arc<Notify>,
    generation: Arc<std::sync::atomic::AtomicU64>,
    emitter: Emitter,
    task: JoinHandle<RunReport>,
}

impl RunHandle {
    /// Stop the run: running nodes are told to stop, its state is saved.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// The run's cancellation token.
    pub fn cancel_token(&self) -> &CancellationToken {
        &self.cancel
    }

    /// Save the run state now, and ask running nodes to save their progress at their
    /// next safe point.
    pub fn request_checkpoint(&self) {
        self.checkpoint_requester().request();
    }

    /// A handle that requests checkpoints, for a signal handler or another task.
    pub fn checkpoint_requester(&self) -> CheckpointRequester {
        CheckpointRequester {
            generation: Arc::clone(&self.generation),
            notify: Arc::clone(&self.checkpoint),
            emitter: self.emitter.clone(),
        }
    }

    /// Publish events into the run's event stream (for example resource alerts).
    pub fn emitter(&self) -> &Emitter {
        &self.emitter
    }

    /// Wait for the run to end.
    pub async fn wait(self) -> RunReport {
        match self.task.await {
            Ok(report) => report,
            Err(e) => RunReport::not_started(Error::Store {
                source: format!("the engine task stopped: {e}").into(),
            }),
        }
    }
}

/// Requests checkpoints of a running run (see [`RunHandle::request_checkpoint`]).
#[derive(Clone)]
pub struct CheckpointRequester {
    generation: Arc<std::sync::atomic::AtomicU64>,
    notify: Arc<Notify>,
    emitter: Emitter,
}

impl CheckpointRequester {
    /// Save the run state now, and ask running nodes to save their progress at their
    /// next safe point.
    pub fn request(&self) {
        self.emitter
            .emit(crate::event::EventKind::CheckpointRequested);
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.notify.notify_one();
    }
}

/// How a run ended: its final state, its error if it failed, and the outputs in memory.
#[derive(Debug)]
pub struct RunReport {
    /// The final state (also saved to the run store, when there is one).
    pub state: Option<RunState>,
    /// Why the run failed, if it did.
    pub error: Option<Error>,
    pub(crate) ids: Vec<String>,
    pub(crate) outputs: Vec<Option<Outputs>>,
}

impl RunReport {
    fn not_started(error: Error) -> RunReport {
        RunReport {
            state: None,
            error: Some(error),
            ids: Vec::new(),
            outputs: Vec::new(),
        }
    }

    /// Whether every node finished.
    pub fn is_success(&self) -> bool {
        self.error.is_none()
    }

    /// The value a node produced on an output port.
    pub fn output(&self, node: &str, port: &str) -> Option<&Value> {
        let i = self.ids.iter().position(|id| id == node)?;
        self.outputs.get(i)?.as_ref()?.get(port)
    }

    /// The run's result: `Ok(state)` or the error.
    pub fn into_result(self) -> Result<RunState, Error> {
        match (self.error, self.state) {
            (Some(e), _) => Err(e),
            (None, Some(state)) => Ok(state),
            (None, None) => Err(Error::Cancelled),
        }
    }
}
