//! The scheduler: a ready queue fed by dependency counters, run by one coordinator task.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use medfusion_graph::Plan;
use serde_json::{Map, Value as Json};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::attempt::{AttemptGate, AttemptWork};
use crate::context::{Inputs, NodeContext, NodeMessage, Outputs, ResourceGrant, RunShared};
use crate::engine::{EngineInner, FailurePolicy, RunOptions, RunReport};
use crate::error::{Error, NodeError};
use crate::event::{Emitter, EventKind, SkipReason};
use crate::executor::DynExecutor;
use crate::registry::Registry;
use crate::resume::{Decision, ResumeFrom, continues_progress, decide};
use crate::saver::Saver;
use crate::state::{
    ErrorRecord, NodeState, NodeStatus, RunState, RunStatus, STATE_FORMAT, SaveReason, timestamp,
};
use crate::value::{SavedValue, Value};

/// Restore the saved outputs of node `i` of a resumed run.
pub(crate) fn restore_outputs(
    registry: &Registry,
    plan: &Plan,
    from: &ResumeFrom,
    i: usize,
) -> Result<Outputs, String> {
    let id = &plan.node(i).id;
    let saved = from
        .state
        .node(id)
        .ok_or_else(|| format!("`{id}` is not in the saved run"))?;
    let mut outputs = Outputs::new();
    for (port, value) in &saved.outputs {
        let codec = registry
            .codec(&value.codec)
            .ok_or_else(|| format!("no codec `{}` for output `{port}`", value.codec))?;
        if !value.blobs_complete() {
            return Err(format!("the data of output `{port}` is missing"));
        }
        let restored = codec
            .restore(value)
            .map_err(|e| format!("output `{port}`: {e}"))?;
        outputs.insert(port.clone(), restored);
    }
    Ok(outputs)
}

/// One finished node task.
struct Completion {
    node: usize,
    attempts: u32,
    started: SystemTime,
    elapsed: f64,
    result: Result<Done, NodeError>,
    usage: Option<crate::state::ResourceUsage>,
    /// The blocking work of an attempt the node gave up waiting for: the node's GPUs stay
    /// reserved until it returns.
    stuck: Option<AttemptWork>,
}

struct Done {
    outputs: Outputs,
    saved: BTreeMap<String, SavedValue>,
    summary: Map<String, Json>,
}

pub(crate) struct Scheduler {
    engine: Arc<EngineInner>,
    shared: Arc<RunShared>,
    executors: Vec<Arc<dyn DynExecutor>>,
    cancel: CancellationToken,
    checkpoint: Arc<Notify>,
    messages: mpsc::UnboundedReceiver<NodeMessage>,
    state: Arc<Mutex<RunState>>,
    status: Vec<NodeStatus>,
    remaining: Vec<u32>,
    outputs: Vec<Option<Outputs>>,
    resume_progress: Vec<Option<Arc<SavedValue>>>,
    restored: Vec<bool>,
    ready: VecDeque<usize>,
    free_gpus: Vec<u32>,
    granted: Vec<Vec<u32>>,
    /// GPUs of nodes whose stuck attempt still ran when the node gave up on it, with that
    /// attempt's work: no other node gets them until the work returns.
    drained: Vec<(usize, Vec<u32>, AttemptWork)>,
    /// The latest attempt of each node that reported progress.
    progress_attempt: Vec<u32>,
    failed: Vec<(String, Error)>,
    resumed: bool,
}

impl Scheduler {
    pub(crate) fn new(
        engine: Arc<EngineInner>,
        plan: Plan,
        options: RunOptions,
        cancel: CancellationToken,
        checkpoint: Arc<Notify>,
    ) -> Result<Scheduler, Error> {
        let n = plan.len();
        let mut executors = Vec::with_capacity(n);
        for i in 0..n {
            let node = plan.node(i);
            let exec =
                engine
                    .registry
                    .executor(&node.node_type)
                    .ok_or_else(|| Error::NoExecutor {
                        node: node.id.clone(),
                        node_type: node.node_type.clone(),
                    })?;
            executors.push(Arc::clone(exec));
        }
        let now = timestamp(SystemTime::now());
        let run_id = options.run_id.unwrap_or_else(|| {
            let ms = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis());
            format!("{}-{ms}", plan.workflow().name)
        });
        let mut state = RunState {
            format: STATE_FORMAT,
            run_id,
            workflow: plan.workflow().name.clone(),
            status: RunStatus::Running,
            started_at: now.clone(),
            updated_at: now,
            nodes: (0..n)
                .map(|i| NodeState::pending(&plan.node(i).id, &plan.node(i).node_type))
                .collect(),
        };
        let mut outputs: Vec<Option<Outputs>> = (0..n).map(|_| None).collect();
        let mut resume_progress = vec![None; n];
        let mut restored = vec![false; n];
        let resumed = options.resume.is_some();
        if let Some(from) = options.resume {
            state.run_id.clone_from(&from.state.run_id);
            state.started_at.clone_from(&from.state.started_at);
            let mut restored_outputs: Vec<Option<Outputs>> = (0..n).map(|_| None).collect();
            let decisions = decide(&plan, &from, |i| {
                let out = restore_outputs(&engine.registry, &plan, &from, i)?;
                restored_outputs[i] = Some(out);
                Ok(())
            });
            for (i, decision) in decisions.iter().enumerate() {
                let Some(saved) = from.state.node(&plan.node(i).id) else {
                    continue;
                };
                if *decision == Decision::Restore {
                    outputs[i] = restored_outputs[i].take();
                    restored[i] = true;
                    state.nodes[i] = NodeState {
                        status: NodeStatus::Restored,
                        ..saved.clone()
                    };
                } else if continues_progress(decision) {
                    resume_progress[i] = saved.progress.clone().map(Arc::new);
                    state.nodes[i].progress.clone_from(&saved.progress);
                    state.nodes[i].progress_saves = saved.progress_saves;
                    state.nodes[i].handle.clone_from(&saved.handle);
                }
            }
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let emitter = Emitter::new(engine.sinks.clone());
        let ids: Vec<Arc<str>> = (0..n)
            .map(|i| Arc::from(plan.node(i).id.as_str()))
            .collect();
        let remaining = (0..n)
            .map(|i| {
                plan.dependencies(i)
                    .iter()
                    .filter(|&&d| !restored[d])
                    .count() as u32
            })
            .collect();
        let run_id: Arc<str> = Arc::from(state.run_id.as_str());
        let shared = Arc::new(RunShared {
            plan: Arc::new(plan),
            ids,
            emitter,
            messages: tx,
            checkpoint_generation: Arc::new(AtomicU64::new(0)),
            run_id,
            registry: engine.registry.clone(),
        });
        let status = state.nodes.iter().map(|s| s.status).collect();
        Ok(Scheduler {
            free_gpus: (0..engine.gpus).rev().collect(),
            granted: vec![Vec::new(); n],
            drained: Vec::new(),
            progress_attempt: vec![0; n],
            engine,
            shared,
            executors,
            cancel,
            checkpoint,
            messages: rx,
            state: Arc::new(Mutex::new(state)),
            status,
            remaining,
            outputs,
            resume_progress,
            restored,
            ready: VecDeque::new(),
            failed: Vec::new(),
            resumed,
        })
    }

    pub(crate) fn emitter(&self) -> Emitter {
        self.shared.emitter.clone()
    }

    pub(crate) fn checkpoint_generation(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.shared.checkpoint_generation)
    }

    fn plan(&self) -> &Plan {
        &self.shared.plan
    }

    fn with_state<R>(&self, f: impl FnOnce(&mut RunState) -> R) -> R {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut state)
    }

    pub(crate) async fn run(mut self) -> RunReport {
        let started = Instant::now();
        let plan = Arc::clone(&self.shared.plan);
        let n = plan.len();
        let emitter = self.shared.emitter.clone();
        emitter.emit(EventKind::RunStarted {
            run_id: self.with_state(|s| s.run_id.clone()),
            workflow: plan.workflow().name.clone(),
            nodes: n,
            resumed: self.resumed,
        });
        let mut saver = self.engine.store.as_ref().map(|store| {
            Saver::start(
                Arc::clone(store),
                plan.workflow().clone(),
                Arc::clone(&self.state),
                emitter.clone(),
            )
        });
        for i in (0..n).filter(|&i| self.restored[i]) {
            emitter.emit(EventKind::NodeSkipped {
                node: self.shared.ids[i].clone(),
                reason: SkipReason::Restored,
            });
        }
        for &i in plan.order() {
            if !self.restored[i] && self.remaining[i] == 0 {
                self.ready.push_back(i);
            }
        }
        if let Some(s) = &saver {
            s.request(SaveReason::Started);
        }

        let mut tasks: JoinSet<Completion> = JoinSet::new();
        let mut task_node: HashMap<tokio::task::Id, usize> = HashMap::new();
        let mut stopping = false;
        loop {
            if !stopping {
                self.dispatch(&mut tasks, &mut task_node);
            }
            if tasks.is_empty() {
                break;
            }
            tokio::select! {
                biased;
                joined = tasks.join_next_with_id() => {
                    let Some(joined) = joined else { continue };
                    let completion = match joined {
                        Ok((id, c)) => { task_node.remove(&id); c }
                        Err(e) => {
                            let node = task_node.remove(&e.id()).unwrap_or_default();
                            let message = if e.is_panic() {
                                format!("node `{}` panicked: {}", self.shared.ids[node],
                                    crate::context::panic_message(&*e.into_panic()))
                            } else {
                                format!("node `{}` was aborted", self.shared.ids[node])
                            };
                            Completion { node, attempts: 1, started: SystemTime::now(), elapsed: 0.0,
                                result: Err(NodeError::msg(message)), usage: None, stuck: None }
                        }
                    };
                    if self.complete(completion, saver.as_ref()) {
                        stopping = true;
                        self.cancel.cancel();
                    }
                }
                Some(message) = self.messages.recv() => match message {
                    NodeMessage::Progress { node, attempt, saved } => {
                        if self.accepts_progress(node, attempt) {
                            self.with_state(|s| s.nodes[node].record_progress(saved));
                            if let Some(s) = &saver { s.request(SaveReason::NodeProgress); }
                        }
                    }
                    // The loop's next dispatch takes the GPUs back.
                    NodeMessage::Returned => {}
                    NodeMessage::Handle { node, attempt, handle } => {
                        if self.accepts_progress(node, attempt) {
                            self.with_state(|s| s.nodes[node].handle = Some(handle));
                            if let Some(s) = &saver { s.request(SaveReason::NodeProgress); }
                        }
                    }
                },
                () = self.checkpoint.notified() => {
                    if let Some(s) = &saver { s.request(SaveReason::Requested); }
                }
                () = self.cancel.cancelled(), if !stopping => {
                    stopping = true;
                }
            }
        }
        // Late progress messages of finished nodes.
        while let Ok(message) = self.messages.try_recv() {
            if let NodeMessage::Progress {
                node,
                attempt,
                saved,
            } = message
                && self.accepts_progress(node, attempt)
            {
                self.with_state(|s| s.nodes[node].record_progress(saved));
            }
        }

        // Whatever never started was skipped.
        let cancelled = self.cancel.is_cancelled() && self.failed.is_empty();
        for i in 0..n {
            if self.status[i] == NodeStatus::Pending {
                self.status[i] = NodeStatus::Skipped;
                self.with_state(|s| s.nodes[i].status = NodeStatus::Skipped);
                emitter.emit(EventKind::NodeSkipped {
                    node: self.shared.ids[i].clone(),
                    reason: SkipReason::Cancelled,
                });
            }
        }
        let (status, error) = if !self.failed.is_empty() {
            (RunStatus::Failed, Some(self.run_error()))
        } else if cancelled {
            (RunStatus::Cancelled, Some(Error::Cancelled))
        } else {
            (RunStatus::Succeeded, None)
        };
        self.with_state(|s| {
            s.status = status;
            s.updated_at = timestamp(SystemTime::now());
        });
        if let Some(s) = saver.take() {
            s.request(if cancelled {
                SaveReason::Cancelled
            } else {
                SaveReason::Finished
            });
            s.finish().await;
        }
        emitter.emit(EventKind::RunFinished {
            status,
            duration_secs: started.elapsed().as_secs_f64(),
        });
        let state = self.with_state(|s| s.clone());
        RunReport {
            state: Some(state),
            error,
            ids: self.shared.ids.iter().map(ToString::to_string).collect(),
            outputs: std::mem::take(&mut self.outputs),
        }
    }

    /// Whether progress saved by `attempt` of `node` goes into the run state: not once the
    /// node succeeded (its outputs replace its progress), nor from an older attempt than
    /// one already heard from (the attempt gate stops stale ones at the source; this keeps
    /// the state right whatever order messages come in).
    fn accepts_progress(&mut self, node: usize, attempt: u32) -> bool {
        if self.status[node].is_done() || attempt < self.progress_attempt[node] {
            return false;
        }
        self.progress_attempt[node] = attempt;
        true
    }

    /// Free the GPUs of stuck attempts that have returned since.
    fn reclaim(&mut self) {
        let (back, still): (Vec<_>, Vec<_>) = std::mem::take(&mut self.drained)
            .into_iter()
            .partition(|(_, _, work)| work.running() == 0);
        self.drained = still;
        for (node, gpus, _) in back {
            tracing::info!(
                node = %self.shared.ids[node],
                ?gpus,
                "the stuck attempt returned; its GPUs are free again"
            );
            self.free_gpus.extend(gpus);
        }
    }

    fn run_error(&mut self) -> Error {
        let mut failed = std::mem::take(&mut self.failed);
        if failed.len() == 1 {
            return failed.pop().map_or(Error::Cancelled, |(_, e)| e);
        }
        let ids = failed.iter().map(|(id, _)| id.clone()).collect();
        let first = failed
            .into_iter()
            .next()
            .map_or(Error::Cancelled, |(_, e)| e);
        Error::NodesFailed {
            failed: ids,
            source: Box::new(first),
        }
    }

    /// Start ready nodes while the parallel limit and free GPUs allow.
    fn dispatch(
        &mut self,
        tasks: &mut JoinSet<Completion>,
        task_node: &mut HashMap<tokio::task::Id, usize>,
    ) {
        self.reclaim();
        while tasks.len() < self.engine.max_parallel {
            let free = self.free_gpus.len() as u32;
            let Some(pos) = self
                .ready
                .iter()
                .position(|&i| self.plan().resources(i).gpus <= free)
            else {
                // Nodes that can never get their GPUs fail instead of waiting forever.
                if tasks.is_empty()
                    && let Some(i) = self.ready.pop_front()
                {
                    let c = Completion {
                        node: i,
                        attempts: 0,
                        started: SystemTime::now(),
                        elapsed: 0.0,
                        result: Err(self.no_gpus(i)),
                        usage: None,
                        stuck: None,
                    };
                    if self.complete(c, None) {
                        return;
                    }
                    continue;
                }
                return;
            };
            let Some(i) = self.ready.remove(pos) else {
                return;
            };
            let need = self.plan().resources(i).gpus as usize;
            let gpus = self.free_gpus.split_off(self.free_gpus.len() - need);
            self.granted[i].clone_from(&gpus);
            self.status[i] = NodeStatus::Running;
            let handle = tasks.spawn(self.node_task(i, ResourceGrant { gpus }));
            task_node.insert(handle.id(), i);
        }
    }

    /// Why node `i` cannot get its GPUs while nothing else runs.
    fn no_gpus(&self, i: usize) -> NodeError {
        let need = self.plan().resources(i).gpus;
        let s = if need == 1 { "" } else { "s" };
        if need <= self.engine.gpus && !self.drained.is_empty() {
            let holders: Vec<String> = self
                .drained
                .iter()
                .map(|(n, gpus, _)| format!("`{}` (GPU {gpus:?})", self.shared.ids[*n]))
                .collect();
            return NodeError::msg(format!(
                "needs {need} GPU{s} but only {} of the engine's {} are free: the stuck attempt \
                 of {} still runs and keeps its GPUs",
                self.free_gpus.len(),
                self.engine.gpus,
                holders.join(", ")
            ));
        }
        NodeError::msg(format!(
            "needs {need} GPU{s} but the engine has {} (set the number of GPU slots, e.g. `--gpus`)",
            self.engine.gpus
        ))
        .kind_of(crate::error::NodeErrorKind::InvalidInput)
    }

    /// The task running node `i`: attempts with retries, timeouts and cancellation.
    fn node_task(
        &self,
        i: usize,
        grant: ResourceGrant,
    ) -> impl Future<Output = Completion> + Send + 'static {
        let plan = self.plan();
        let mut inputs = Inputs::default();
        for binding in plan.inputs(i) {
            if let Some(value) = self.outputs[binding.from_node]
                .as_ref()
                .and_then(|o| o.get(&binding.from_port))
            {
                inputs.push(&binding.port, value.clone());
            }
        }
        let node = plan.node(i);
        let runner = self
            .engine
            .runner
            .as_ref()
            .filter(|r| r.takes(node, plan.spec(i)))
            .cloned();
        let handle = self.with_state(|s| s.nodes[i].handle.clone());
        let job = Job {
            runner,
            handle: handle.map(|h| Arc::from(h.as_str())),
            shared: Arc::clone(&self.shared),
            engine: Arc::clone(&self.engine),
            exec: Arc::clone(&self.executors[i]),
            index: i,
            inputs: Arc::new(inputs),
            grant: Arc::new(grant),
            cancel: self.cancel.child_token(),
            resume: self.resume_progress[i].clone(),
            retries: node.retries.unwrap_or(0),
            backoff: node
                .retry_backoff
                .map_or(self.engine.retry_backoff, |d| d.0),
            timeout: node.timeout.map(|d| d.0),
            config: Arc::new(plan.config(i).clone()),
        };
        job.run()
    }

    /// Record a finished node; returns whether the run must stop (fail fast).
    fn complete(&mut self, c: Completion, saver: Option<&Saver>) -> bool {
        let i = c.node;
        let id = Arc::clone(&self.shared.ids[i]);
        let gpus = std::mem::take(&mut self.granted[i]);
        match c.stuck {
            // A GPU is never handed to another node while a stale attempt still runs on
            // it: the slots come back when that attempt's blocking work returns.
            Some(work) if !gpus.is_empty() => {
                tracing::warn!(
                    node = %id,
                    ?gpus,
                    "the node's GPUs stay reserved until its stuck attempt returns"
                );
                self.drained.push((i, gpus, work.clone()));
                // Wakes the scheduler when the work returns.
                let messages = self.shared.messages.clone();
                tokio::spawn(async move {
                    work.idle().await;
                    // A finished run no longer listens.
                    let _ = messages.send(NodeMessage::Returned);
                });
            }
            _ => self.free_gpus.extend(gpus),
        }
        let finished = SystemTime::now();
        let started_at = timestamp(c.started);
        match c.result {
            Ok(done) => {
                self.status[i] = NodeStatus::Succeeded;
                self.shared.emitter.emit(EventKind::NodeFinished {
                    node: Arc::clone(&id),
                    duration_secs: c.elapsed,
                    outputs: done.summary.clone(),
                });
                self.with_state(|s| {
                    let node = &mut s.nodes[i];
                    node.status = NodeStatus::Succeeded;
                    node.handle = None;
                    node.attempts = c.attempts;
                    node.started_at = Some(started_at);
                    node.finished_at = Some(timestamp(finished));
                    node.duration_secs = Some(c.elapsed);
                    node.outputs = done.saved;
                    node.progress = None;
                    node.error = None;
                    node.usage = c.usage;
                    node.summary = done.summary;
                });
                self.outputs[i] = Some(done.outputs);
                for &d in self.shared.plan.dependents(i) {
                    self.remaining[d] -= 1;
                    if self.remaining[d] == 0 && self.status[d] == NodeStatus::Pending {
                        self.ready.push_back(d);
                    }
                }
                if let Some(s) = saver {
                    s.request(SaveReason::NodeFinished);
                }
                false
            }
            Err(error) if error.is_cancelled() => {
                self.status[i] = NodeStatus::Cancelled;
                self.with_state(|s| {
                    let node = &mut s.nodes[i];
                    node.status = NodeStatus::Cancelled;
                    node.handle = None;
                    node.attempts = c.attempts;
                    node.started_at = Some(started_at);
                    node.usage = c.usage;
                });
                false
            }
            Err(error) => {
                self.status[i] = NodeStatus::Failed;
                let chain = error.chain();
                self.shared.emitter.emit(EventKind::NodeFailed {
                    node: Arc::clone(&id),
                    attempts: c.attempts,
                    error: chain.clone(),
                });
                let kind = format!("{:?}", error.kind()).to_lowercase();
                self.with_state(|s| {
                    let node = &mut s.nodes[i];
                    node.status = NodeStatus::Failed;
                    node.handle = None;
                    node.attempts = c.attempts;
                    node.started_at = Some(started_at);
                    node.finished_at = Some(timestamp(finished));
                    node.duration_secs = Some(c.elapsed);
                    node.error = Some(ErrorRecord { kind, chain });
                    node.usage = c.usage;
                });
                self.failed.push((
                    id.to_string(),
                    Error::NodeFailed {
                        node: id.to_string(),
                        attempts: c.attempts,
                        source: error,
                    },
                ));
                if let Some(s) = saver {
                    s.request(SaveReason::NodeFailed);
                }
                match self.engine.policy {
                    FailurePolicy::FailFast => true,
                    FailurePolicy::Continue => {
                        let downstream = self.shared.plan.downstream_of([i]);
                        for (d, &down) in downstream.iter().enumerate() {
                            if down && d != i && self.status[d] == NodeStatus::Pending {
                                self.status[d] = NodeStatus::Skipped;
                                self.ready.retain(|&r| r != d);
                                self.with_state(|s| s.nodes[d].status = NodeStatus::Skipped);
                                self.shared.emitter.emit(EventKind::NodeSkipped {
                                    node: Arc::clone(&self.shared.ids[d]),
                                    reason: SkipReason::UpstreamFailed,
                                });
                            }
                        }
                        false
                    }
                }
            }
        }
    }
}

/// Everything one node task needs.
struct Job {
    /// Runs the attempts elsewhere, when the engine's runner takes the node.
    runner: Option<Arc<dyn crate::runner::AttemptRunner>>,
    /// Where an interrupted run left the node's attempt running (for the first attempt).
    handle: Option<Arc<str>>,
    shared: Arc<RunShared>,
    engine: Arc<EngineInner>,
    exec: Arc<dyn DynExecutor>,
    index: usize,
    inputs: Arc<Inputs>,
    grant: Arc<ResourceGrant>,
    cancel: CancellationToken,
    resume: Option<Arc<SavedValue>>,
    retries: u32,
    backoff: std::time::Duration,
    timeout: Option<std::time::Duration>,
    config: Arc<Map<String, Json>>,
}

/// How one attempt ended.
struct AttemptEnd {
    result: Result<Outputs, NodeError>,
    /// The attempt's blocking work, when it still runs after the engine gave up waiting.
    stuck: Option<AttemptWork>,
}

impl Job {
    async fn run(mut self) -> Completion {
        let started = SystemTime::now();
        let clock = Instant::now();
        let scope = self
            .engine
            .observer
            .as_ref()
            .map(|o| o.node_started(&self.shared.ids[self.index]));
        let seen_checkpoint = Arc::new(AtomicU64::new(0));
        let last_progress = Arc::new(Mutex::new(self.resume.clone()));
        let gate = Arc::new(AttemptGate::default());
        let usage = Arc::new(Mutex::new(None));
        let mut stuck;
        let mut attempt = 1;
        let result = loop {
            // The previous attempt has returned (or the node gives up below): from now on
            // only this one reports.
            gate.set(attempt);
            self.shared.emitter.emit(EventKind::NodeStarted {
                node: Arc::clone(&self.shared.ids[self.index]),
                attempt,
            });
            let ctx = NodeContext {
                shared: Arc::clone(&self.shared),
                index: self.index,
                attempt,
                config: Arc::clone(&self.config),
                inputs: Arc::clone(&self.inputs),
                // Cancelled with the run, and on its own when the attempt times out.
                cancel: self.cancel.child_token(),
                grant: Arc::clone(&self.grant),
                resume: self.resume.clone(),
                seen_checkpoint: Arc::clone(&seen_checkpoint),
                last_progress: Arc::clone(&last_progress),
                work: AttemptWork::new(),
                gate: Arc::clone(&gate),
                // Only the first attempt may find what an interrupted run left running.
                handle: if attempt == 1 {
                    self.handle.clone()
                } else {
                    None
                },
                usage: Arc::clone(&usage),
            };
            let end = self.attempt(ctx).await;
            stuck = end.stuck;
            match end.result {
                Ok(outputs) => break self.finish(outputs).await,
                Err(e) if e.is_cancelled() || self.cancel.is_cancelled() => {
                    break Err(if e.is_cancelled() {
                        e
                    } else {
                        NodeError::cancelled()
                    });
                }
                Err(e) if attempt <= self.retries && e.is_retryable() => {
                    let delay = self.backoff.saturating_mul(1 << (attempt - 1).min(16));
                    self.shared.emitter.emit(EventKind::NodeRetrying {
                        node: Arc::clone(&self.shared.ids[self.index]),
                        attempt,
                        delay_secs: delay.as_secs_f64(),
                        error: e.chain(),
                    });
                    if let Some(patch) = e.retry_config() {
                        let mut config = (*self.config).clone();
                        config.extend(patch.clone());
                        self.config = Arc::new(config);
                    }
                    // A retry continues from the progress the failed attempt saved, if any.
                    if let Ok(last) = last_progress.lock() {
                        self.resume.clone_from(&last);
                    }
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = self.cancel.cancelled() => break Err(NodeError::cancelled()),
                    }
                    attempt += 1;
                }
                Err(e) => break Err(e),
            }
        };
        // Context clones kept past the node (and a stuck attempt) report into the void.
        gate.set(0);
        Completion {
            node: self.index,
            attempts: attempt,
            started,
            elapsed: clock.elapsed().as_secs_f64(),
            result,
            // What the attempt measured where it ran, else what this process saw.
            usage: usage
                .lock()
                .ok()
                .and_then(|u| *u)
                .or_else(|| scope.map(crate::store::ObserverScope::finish)),
            stuck,
        }
    }

    /// Run one attempt and wait for its blocking work to return.
    ///
    /// When the run is cancelled, the body gets `cancel_grace` to return by itself
    /// (saving its progress) before its future is dropped; when the attempt times out,
    /// the future is dropped at once. Either way the attempt's token is cancelled, and
    /// since dropping a future does not stop the blocking work it started, that work is
    /// waited for (see [`Job::settle`]) before a retry starts or another node can get the
    /// node's GPUs.
    async fn attempt(&self, ctx: NodeContext) -> AttemptEnd {
        let attempt = ctx.attempt;
        let token = ctx.cancel.clone();
        let work = ctx.work.clone();
        let grace = self.engine.cancel_grace;
        let remote = self.runner.is_some();
        let (result, told) = {
            let body = match &self.runner {
                Some(runner) => runner.run(ctx),
                None => self.exec.execute_boxed(ctx),
            };
            tokio::pin!(body);
            let limit = self.timeout;
            let deadline = async {
                match limit {
                    Some(limit) => tokio::time::sleep(limit).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                result = &mut body => (result, None),
                () = self.cancel.cancelled() => {
                    let told = tokio::time::Instant::now();
                    // Give the body its grace period to stop by itself and save.
                    let result = match tokio::time::timeout(grace, &mut body).await {
                        Ok(Ok(outputs)) => Ok(outputs),
                        Ok(Err(_)) | Err(_) => Err(NodeError::cancelled()),
                    };
                    (result, Some(told))
                }
                () = deadline => {
                    let told = tokio::time::Instant::now();
                    if remote {
                        // An attempt elsewhere (a job) does not stop when its future is
                        // dropped: the runner stops it once told, within the grace.
                        token.cancel();
                        let _ = tokio::time::timeout(grace, &mut body).await;
                    }
                    (Err(NodeError::timed_out(limit.unwrap_or_default())), Some(told))
                }
            }
            // The body's future is dropped here (at once on a timeout, as an async body
            // stops when dropped); its blocking work may still run.
        };
        // The attempt is over: whatever of it still runs must stop.
        token.cancel();
        if work.running() == 0 {
            return AttemptEnd {
                result,
                stuck: None,
            };
        }
        let told = told.unwrap_or_else(tokio::time::Instant::now);
        self.settle(attempt, &work, told, result).await
    }

    /// Wait for the blocking work of an attempt told to stop at `told`.
    ///
    /// Up to `cancel_grace` this is the normal way a body stops. Past it the attempt is
    /// reported stuck (an event and a warning) and its GPUs stay reserved. A cancelled run
    /// stops waiting then; otherwise the wait goes on up to `stuck_limit` after `told`,
    /// and past that the node fails without a retry (a retry would run beside the stuck
    /// work) while its GPUs stay reserved until the work returns (see
    /// `Scheduler::complete`).
    async fn settle(
        &self,
        attempt: u32,
        work: &AttemptWork,
        told: tokio::time::Instant,
        result: Result<Outputs, NodeError>,
    ) -> AttemptEnd {
        let engine = &self.engine;
        let returned = |result| AttemptEnd {
            result,
            stuck: None,
        };
        if tokio::time::timeout_at(told + engine.cancel_grace, work.idle())
            .await
            .is_ok()
        {
            return returned(result);
        }
        let id = &self.shared.ids[self.index];
        let gpus = &self.grant.gpus;
        let waited = told.elapsed();
        let held = if gpus.is_empty() {
            String::new()
        } else {
            format!("; GPU {gpus:?} stays reserved until it returns")
        };
        tracing::warn!(
            node = %id,
            attempt,
            "attempt {attempt} of node `{id}` was told to stop {} ago and still runs{held}",
            humantime::format_duration(crate::error::round_ms(waited))
        );
        self.shared.emitter.emit(EventKind::NodeStuck {
            node: Arc::clone(id),
            attempt,
            waited_secs: waited.as_secs_f64(),
            gpus: gpus.clone(),
        });
        if !self.cancel.is_cancelled() {
            let limit = told + engine.stuck_limit.max(engine.cancel_grace);
            let came_back = tokio::select! {
                r = tokio::time::timeout_at(limit, work.idle()) => r.is_ok(),
                () = self.cancel.cancelled() => false,
            };
            if came_back {
                tracing::info!(
                    node = %id,
                    attempt,
                    "the stuck attempt returned {} after it was told to stop",
                    humantime::format_duration(crate::error::round_ms(told.elapsed()))
                );
                return returned(result);
            }
        }
        // A cancelled run ends as cancelled; otherwise the node gives up on the attempt.
        let result = if self.cancel.is_cancelled() {
            result
        } else {
            let cause = result.err().unwrap_or_else(|| {
                NodeError::msg("its body returned but left blocking work running")
            });
            Err(NodeError::stuck(attempt, told.elapsed(), gpus, cause))
        };
        AttemptEnd {
            result,
            stuck: Some(work.clone()),
        }
    }

    /// Check the outputs against the spec and save them if there is a store.
    async fn finish(&self, outputs: Outputs) -> Result<Done, NodeError> {
        let plan = &self.shared.plan;
        let spec = plan.spec(self.index);
        let id = &self.shared.ids[self.index];
        for (port, value) in &outputs.values {
            let Some(declared) = spec.output_port(port) else {
                return Err(NodeError::msg(format!(
                    "node `{id}` produced output `{port}`, which node type `{}` does not declare",
                    spec.node_type
                )));
            };
            let produced = value.port_type();
            if !(declared.port_type == produced
                || declared.port_type == medfusion_graph::PortType::Value)
            {
                return Err(NodeError::msg(format!(
                    "node `{id}` produced a `{produced}` on output `{port}`, which carries `{}`",
                    declared.port_type
                )));
            }
        }
        // Every output an edge reads must be there.
        for port in plan.read_outputs(self.index) {
            if outputs.get(port).is_none() {
                let reader = plan
                    .dependents(self.index)
                    .iter()
                    .flat_map(|&d| plan.inputs(d).iter().map(move |b| (d, b)))
                    .find(|(_, b)| b.from_node == self.index && b.from_port == *port)
                    .map(|(d, b)| format!("`{}.{}`", plan.node(d).id, b.port))
                    .unwrap_or_default();
                return Err(NodeError::msg(format!(
                    "node `{id}` did not produce output `{port}`, which {reader} needs"
                )));
            }
        }
        let mut summary = Map::new();
        for (port, value) in &outputs.values {
            let s = value.summary();
            if !s.is_null() {
                summary.insert(port.clone(), s);
            }
        }
        let saved = if self.engine.store.is_some() && !outputs.values.is_empty() {
            let values: Vec<(String, Value)> = outputs.values.clone();
            let id = id.to_string();
            tokio::task::spawn_blocking(move || {
                values
                    .into_iter()
                    .map(|(port, v)| {
                        v.save().map(|s| (port.clone(), s)).map_err(|e| {
                            NodeError::with_source(
                                format!("cannot save output `{port}` of node `{id}`"),
                                e,
                            )
                        })
                    })
                    .collect::<Result<BTreeMap<_, _>, _>>()
            })
            .await
            .map_err(|e| NodeError::msg(format!("saving outputs stopped: {e}")))??
        } else {
            BTreeMap::new()
        };
        Ok(Done {
            outputs,
            saved,
            summary,
        })
    }
}
