//! The record of a run while it goes on, folded from the engine's events.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use medfusion_exec::{Event, EventKind, EventSink, NodeStatus, RunStatus, SkipReason};
use medfusion_graph::{Plan, PortType};
use medfusion_monitor::ResourceMonitor;
use serde_json::{Map, Value};
use tokio::sync::watch;

use crate::record::{
    AlertRecord, CheckpointRecord, LogLine, NodeProgress, NodeRecord, RECORD_FORMAT, RunRecord,
};

/// The log lines a record keeps (the newest).
const LOG_LINES: usize = 200;
/// The checkpoints a record lists (the newest; older ones are rotated away on disk anyway).
const CHECKPOINTS: usize = 50;

/// The record of a run as it goes on: subscribe it to the engine
/// ([`EngineBuilder::subscribe`](medfusion_exec::EngineBuilder::subscribe)) and it follows
/// every node's status, progress, training curve and outputs, the alerts, the checkpoints
/// and the log. Each event bumps a version that [`subscribe`](Self::subscribe) watches.
///
/// Folding an event takes a short lock and never waits on readers: a slow dashboard
/// client never holds up the engine.
pub struct LiveRecord {
    state: Mutex<State>,
    version: watch::Sender<u64>,
    monitor: Option<Arc<ResourceMonitor>>,
    finished: AtomicBool,
}

/// What the fold keeps. Per event it does as little as it can under the lock: times stay
/// `SystemTime`s and log lines stay unformatted until a snapshot; nodes are shared with
/// snapshots (`Arc`), so taking one copies pointers, not records.
struct State {
    /// The record but its nodes, log and times.
    record: RunRecord,
    nodes: Vec<Arc<NodeRecord>>,
    /// Each node's first start and its end.
    times: Vec<(Option<SystemTime>, Option<SystemTime>)>,
    run_started: SystemTime,
    last_update: SystemTime,
    /// The final record, once the run ended.
    last: Option<RunRecord>,
    /// Node index by id.
    index: HashMap<String, usize>,
    /// Each node's output ports that carry metrics.
    metric_ports: Vec<Vec<String>>,
    /// When each node's current attempt started (for the time left).
    attempt_started: Vec<Option<SystemTime>>,
    log: VecDeque<LogEntry>,
    /// Checkpoints saved so far (the record lists the newest `CHECKPOINTS`).
    checkpoints_saved: u64,
}

fn time_text(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

/// A log line, formatted when a snapshot is taken.
struct LogEntry {
    time: SystemTime,
    level: &'static str,
    text: LogText,
}

enum LogText {
    Started(Arc<str>, u32),
    Finished(Arc<str>, f64),
    Text(String),
}

impl LogEntry {
    fn line(&self) -> LogLine {
        let message = match &self.text {
            LogText::Started(node, 1) => format!("{node} started"),
            LogText::Started(node, attempt) => format!("{node} started (attempt {attempt})"),
            LogText::Finished(node, secs) => format!("{node} finished in {secs:.2} s"),
            LogText::Text(text) => text.clone(),
        };
        LogLine {
            time: time_text(self.time),
            level: self.level.to_string(),
            message,
        }
    }
}

impl LiveRecord {
    /// The record of a run of `plan` that is about to start: every node pending.
    pub fn new(plan: &Plan, run_id: &str) -> LiveRecord {
        let start = SystemTime::now();
        let now = time_text(start);
        let nodes: Vec<NodeRecord> = (0..plan.len())
            .map(|i| {
                let node = plan.node(i);
                NodeRecord {
                    id: node.id.clone(),
                    node_type: node.node_type.clone(),
                    status: NodeStatus::Pending,
                    attempts: 0,
                    started_at: None,
                    finished_at: None,
                    duration_secs: None,
                    usage: None,
                    outputs: Map::new(),
                    error: None,
                    progress: None,
                }
            })
            .collect();
        let metric_ports = (0..plan.len())
            .map(|i| {
                plan.spec(i)
                    .outputs
                    .iter()
                    .filter(|p| p.port_type == PortType::Metrics)
                    .map(|p| p.name.clone())
                    .collect()
            })
            .collect();
        let index = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id.clone(), i))
            .collect();
        let record = RunRecord {
            format: RECORD_FORMAT,
            run_id: run_id.to_string(),
            workflow: plan.workflow().name.clone(),
            status: RunStatus::Running,
            started_at: now.clone(),
            finished_at: now,
            error: None,
            failed_node: None,
            nodes: Vec::new(),
            metrics: Map::new(),
            history: Map::new(),
            alerts: Vec::new(),
            resources: Vec::new(),
            definition: plan.workflow().clone(),
            checkpoints: Vec::new(),
            log: Vec::new(),
        };
        LiveRecord {
            state: Mutex::new(State {
                attempt_started: vec![None; nodes.len()],
                times: vec![(None, None); nodes.len()],
                nodes: nodes.into_iter().map(Arc::new).collect(),
                run_started: start,
                last_update: start,
                last: None,
                record,
                index,
                metric_ports,
                log: VecDeque::new(),
                checkpoints_saved: 0,
            }),
            version: watch::channel(0).0,
            monitor: None,
            finished: AtomicBool::new(false),
        }
    }

    /// Take the resource samples (CPU, memory, GPUs) from `monitor`.
    pub fn with_monitor(mut self, monitor: Arc<ResourceMonitor>) -> LiveRecord {
        self.monitor = Some(monitor);
        self
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while folding leaves a record that is still worth showing.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The record now, with the monitor's samples.
    pub fn snapshot(&self) -> RunRecord {
        self.snapshot_with(true)
    }

    /// The record for the page: a run too large for its graph and timeline to be drawn
    /// gets no node times (formatting 10,000 of them is most of a snapshot's cost).
    pub(crate) fn page_snapshot(&self) -> RunRecord {
        let drawn = self.lock().nodes.len() <= crate::report::MAX_DRAWN;
        self.snapshot_with(drawn)
    }

    fn snapshot_with(&self, with_times: bool) -> RunRecord {
        let (mut record, nodes, times, log, started, updated) = {
            let state = self.lock();
            if let Some(last) = &state.last {
                return last.clone();
            }
            (
                state.record.clone(),
                state.nodes.clone(),
                state.times.clone(),
                state.log.iter().map(LogEntry::line).collect::<Vec<_>>(),
                state.run_started,
                state.last_update,
            )
        };
        record.started_at = time_text(started);
        record.finished_at = time_text(updated);
        record.log = log;
        record.nodes = nodes
            .iter()
            .zip(times)
            .map(|(n, (start, end))| {
                let mut n = NodeRecord::clone(n);
                if with_times {
                    n.started_at = start.map(time_text);
                    n.finished_at = end.map(time_text);
                }
                n
            })
            .collect();
        if let Some(monitor) = &self.monitor
            && !self.is_finished()
        {
            record.resources = monitor
                .history()
                .iter()
                .filter_map(|s| serde_json::to_value(s).ok())
                .collect();
        }
        record
    }

    /// The run id and how many nodes have each status (in `NodeStatus` order, those with
    /// none left out), without a snapshot.
    pub fn node_counts(&self) -> (String, Vec<(NodeStatus, usize)>) {
        let state = self.lock();
        let (run_id, statuses): (&str, Vec<NodeStatus>) = match &state.last {
            Some(last) => (&last.run_id, last.nodes.iter().map(|n| n.status).collect()),
            None => (
                &state.record.run_id,
                state.nodes.iter().map(|n| n.status).collect(),
            ),
        };
        let mut counts: Vec<(NodeStatus, usize)> = Vec::new();
        for status in statuses {
            match counts.iter_mut().find(|(s, _)| *s == status) {
                Some((_, c)) => *c += 1,
                None => counts.push((status, 1)),
            }
        }
        (run_id.to_string(), counts)
    }

    /// How many checkpoints the run has saved so far.
    pub fn checkpoints_saved(&self) -> u64 {
        self.lock().checkpoints_saved
    }

    /// How many changes the record has seen.
    pub fn version(&self) -> u64 {
        *self.version.borrow()
    }

    /// A receiver that wakes on every change (changes between two looks are seen as one).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    /// Whether [`finish`](Self::finish) was called: the record is final.
    pub fn is_finished(&self) -> bool {
        self.finished.load(Ordering::SeqCst)
    }

    /// Ends the live record with the run's final record (built from the engine's state):
    /// the checkpoints and log seen live are added to it, and it is returned to be written.
    pub fn finish(&self, mut record: RunRecord) -> RunRecord {
        {
            let mut state = self.lock();
            record.checkpoints.clone_from(&state.record.checkpoints);
            record.log = state.log.iter().map(LogEntry::line).collect();
            state.last = Some(record.clone());
        }
        self.finished.store(true, Ordering::SeqCst);
        self.version.send_modify(|v| *v += 1);
        record
    }

    /// Writes `live.json` into `dir` every `interval` while the run goes on (for `medfusion
    /// dashboard`, which shows the runs of a folder), from a thread of its own; dropping
    /// the returned guard stops it. [`RunRecord::write`] at the end removes the file.
    pub fn write_every(self: &Arc<Self>, dir: PathBuf, interval: Duration) -> PeriodicWriter {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let live = Arc::clone(self);
        let thread = std::thread::Builder::new()
            .name("medfusion-run-json".into())
            .spawn(move || {
                let mut written = u64::MAX;
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(interval)
                {
                    let version = live.version();
                    if version == written || live.is_finished() {
                        continue;
                    }
                    let mut record = live.snapshot();
                    // The resource samples go into the final record; a live run.json stays small.
                    record.resources.clear();
                    if let Err(e) = record.write_live(&dir) {
                        tracing::warn!("cannot write the live run record: {e}");
                    }
                    written = version;
                }
            })
            .ok();
        PeriodicWriter {
            stop: Some(stop),
            thread,
        }
    }

    fn log(state: &mut State, time: SystemTime, level: &'static str, message: String) {
        Self::push_log(state, time, level, LogText::Text(message));
    }

    fn push_log(state: &mut State, time: SystemTime, level: &'static str, text: LogText) {
        if state.log.len() == LOG_LINES {
            state.log.pop_front();
        }
        state.log.push_back(LogEntry { time, level, text });
    }

    fn fold(state: &mut State, event: &Event) {
        let time = event.time;
        let node_index = |state: &State, id: &str| state.index.get(id).copied();
        match &event.kind {
            EventKind::RunStarted {
                run_id,
                workflow,
                resumed,
                nodes,
            } => {
                state.record.run_id.clone_from(run_id);
                state.record.workflow.clone_from(workflow);
                state.run_started = time;
                let how = if *resumed { "resuming" } else { "running" };
                Self::log(
                    state,
                    time,
                    "info",
                    format!("{how} workflow `{workflow}` ({nodes} nodes, run {run_id})"),
                );
            }
            EventKind::NodeStarted { node, attempt } => {
                let Some(i) = node_index(state, node) else {
                    return;
                };
                let n = Arc::make_mut(&mut state.nodes[i]);
                n.status = NodeStatus::Running;
                n.attempts = *attempt;
                n.progress = None;
                state.times[i].0.get_or_insert(time);
                state.attempt_started[i] = Some(time);
                Self::push_log(
                    state,
                    time,
                    "info",
                    LogText::Started(Arc::clone(node), *attempt),
                );
            }
            EventKind::NodeProgress {
                node,
                fraction,
                message,
                metrics,
                ..
            } => {
                let Some(i) = node_index(state, node) else {
                    return;
                };
                if metrics.contains_key("train_loss") && metrics.contains_key("epoch") {
                    // An epoch ended: a point of the training curves.
                    let history = state
                        .record
                        .history
                        .entry(node.to_string())
                        .or_insert_with(|| Value::Array(Vec::new()));
                    if let Value::Array(epochs) = history {
                        // A resumed or retried node trains some epochs again.
                        epochs.retain(|e| e["epoch"] != metrics["epoch"]);
                        epochs.push(Value::Object(metrics.clone()));
                    }
                    Self::log(state, time, "info", format!("{node}: {message}"));
                    return;
                }
                let eta_secs = fraction.filter(|f| *f > 0.001).and_then(|f| {
                    let elapsed = time
                        .duration_since(state.attempt_started[i]?)
                        .ok()?
                        .as_secs_f64();
                    Some(elapsed * f64::from(1.0 - f.min(1.0)) / f64::from(f))
                });
                Arc::make_mut(&mut state.nodes[i]).progress = Some(NodeProgress {
                    fraction: *fraction,
                    message: message.clone(),
                    metrics: metrics.clone(),
                    eta_secs,
                });
                if fraction.is_none() {
                    Self::log(state, time, "info", format!("{node}: {message}"));
                }
            }
            EventKind::NodeFinished {
                node,
                duration_secs,
                outputs,
            } => {
                let Some(i) = node_index(state, node) else {
                    return;
                };
                for port in &state.metric_ports[i] {
                    if let Some(summary) = outputs.get(port) {
                        state
                            .record
                            .metrics
                            .insert(node.to_string(), summary.clone());
                    }
                }
                // A node that passes a trained model on carries its curve: the curve stays
                // with the node that trained.
                for summary in outputs.values() {
                    if let Some(h) = summary.get("history")
                        && !state
                            .record
                            .history
                            .iter()
                            .any(|(other, seen)| **other != **node && seen == h)
                    {
                        state.record.history.insert(node.to_string(), h.clone());
                    }
                }
                let n = Arc::make_mut(&mut state.nodes[i]);
                n.status = NodeStatus::Succeeded;
                n.duration_secs = Some(*duration_secs);
                n.outputs.clone_from(outputs);
                n.progress = None;
                state.times[i].1 = Some(time);
                Self::push_log(
                    state,
                    time,
                    "info",
                    LogText::Finished(Arc::clone(node), *duration_secs),
                );
            }
            EventKind::NodeRetrying {
                node,
                attempt,
                delay_secs,
                error,
            } => {
                if let Some(i) = node_index(state, node) {
                    Arc::make_mut(&mut state.nodes[i]).progress = None;
                }
                Self::log(
                    state,
                    time,
                    "warning",
                    format!(
                        "{node} attempt {attempt} failed, retrying in {delay_secs:.1} s: {}",
                        error.join(": ")
                    ),
                );
            }
            EventKind::NodeFailed {
                node,
                attempts,
                error,
            } => {
                let Some(i) = node_index(state, node) else {
                    return;
                };
                let n = Arc::make_mut(&mut state.nodes[i]);
                n.status = NodeStatus::Failed;
                n.attempts = *attempts;
                n.error = Some(error.clone());
                n.progress = None;
                state.times[i].1 = Some(time);
                Self::log(
                    state,
                    time,
                    "error",
                    format!("{node} failed: {}", error.join(": ")),
                );
            }
            EventKind::NodeStuck {
                node, waited_secs, ..
            } => Self::log(
                state,
                time,
                "warning",
                format!("{node} has not stopped {waited_secs:.0} s after it was told to"),
            ),
            EventKind::NodeSkipped { node, reason } => {
                let Some(i) = node_index(state, node) else {
                    return;
                };
                let n = Arc::make_mut(&mut state.nodes[i]);
                n.status = match reason {
                    SkipReason::Restored => NodeStatus::Restored,
                    _ => NodeStatus::Skipped,
                };
                n.progress = None;
            }
            EventKind::CheckpointRequested => {
                Self::log(state, time, "info", "checkpoint requested".into());
            }
            EventKind::CheckpointSaved { id, reason } => {
                let reason = serde_json::to_value(reason)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default();
                state.checkpoints_saved += 1;
                if state.record.checkpoints.len() == CHECKPOINTS {
                    state.record.checkpoints.remove(0);
                }
                state.record.checkpoints.push(CheckpointRecord {
                    time: time_text(time),
                    id: id.clone(),
                    reason: reason.clone(),
                });
                Self::log(
                    state,
                    time,
                    "info",
                    format!("checkpoint {id} saved ({reason})"),
                );
            }
            EventKind::CheckpointFailed { error, .. } => Self::log(
                state,
                time,
                "warning",
                format!("saving a checkpoint failed: {}", error.join(": ")),
            ),
            EventKind::ResourceAlert { level, message } => {
                state.record.alerts.push(AlertRecord {
                    time: time_text(time),
                    level: level.clone(),
                    message: message.clone(),
                });
                let level = if level == "critical" {
                    "error"
                } else {
                    "warning"
                };
                Self::log(state, time, level, message.clone());
            }
            EventKind::RunFinished {
                status,
                duration_secs,
            } => {
                state.record.status = *status;
                let status = serde_json::to_value(status)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default();
                Self::log(
                    state,
                    time,
                    "info",
                    format!("run {status} after {duration_secs:.1} s"),
                );
            }
            _ => {}
        }
    }
}

impl EventSink for LiveRecord {
    fn event(&self, event: &Event) {
        {
            let mut state = self.lock();
            Self::fold(&mut state, event);
            state.last_update = event.time;
        }
        self.version.send_modify(|v| *v += 1);
    }
}

impl std::fmt::Debug for LiveRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveRecord")
            .field("version", &self.version())
            .field("finished", &self.is_finished())
            .finish_non_exhaustive()
    }
}

/// Writes a running run's `run.json` now and then; stops when dropped.
#[derive(Debug)]
pub struct PeriodicWriter {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for PeriodicWriter {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
