//! Events of a run, and the sinks that receive them (progress bars, run logs, tests).

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::state::{RunStatus, SaveReason};

/// Something that happened in a run.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// When.
    #[serde(serialize_with = "serialize_time")]
    pub time: SystemTime,
    /// What.
    #[serde(flatten)]
    pub kind: EventKind,
}

fn serialize_time<S: serde::Serializer>(time: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_rfc3339_millis(*time))
}

/// Why a node was not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// It finished in the run being resumed; its outputs were restored.
    Restored,
    /// A node it depends on failed.
    UpstreamFailed,
    /// The run was cancelled or stopped before it could start.
    Cancelled,
}

/// What happened.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventKind {
    /// The run started.
    RunStarted {
        /// The run's id.
        run_id: String,
        /// The workflow's name.
        workflow: String,
        /// Number of nodes.
        nodes: usize,
        /// Whether it continues a saved run.
        resumed: bool,
    },
    /// A node attempt started.
    NodeStarted {
        /// The node id.
        node: Arc<str>,
        /// The attempt, from 1.
        attempt: u32,
    },
    /// A running node reported progress.
    NodeProgress {
        /// The node id.
        node: Arc<str>,
        /// The attempt reporting, from 1 (only the node's current attempt reports).
        attempt: u32,
        /// How far, 0 to 1, when known.
        #[serde(skip_serializing_if = "Option::is_none")]
        fraction: Option<f32>,
        /// What it is doing.
        message: String,
        /// Figures such as `loss` or `samples_per_sec`.
        #[serde(skip_serializing_if = "Map::is_empty")]
        metrics: Map<String, Value>,
    },
    /// A node finished.
    NodeFinished {
        /// The node id.
        node: Arc<str>,
        /// Time from its first start, seconds.
        duration_secs: f64,
        /// Summaries of its outputs.
        #[serde(skip_serializing_if = "Map::is_empty")]
        outputs: Map<String, Value>,
    },
    /// A node attempt failed and will be retried.
    NodeRetrying {
        /// The node id.
        node: Arc<str>,
        /// The attempt that failed.
        attempt: u32,
        /// Wait before the next attempt, seconds.
        delay_secs: f64,
        /// The error and its causes.
        error: Vec<String>,
    },
    /// A node failed after its last attempt.
    NodeFailed {
        /// The node id.
        node: Arc<str>,
        /// Attempts made.
        attempts: u32,
        /// The error and its causes.
        error: Vec<String>,
    },
    /// A node attempt was told to stop (its `timeout` passed or the run is being
    /// cancelled) and its blocking work has not returned after the engine's `cancel_grace`.
    /// Its GPUs stay reserved until it returns: no other node gets them meanwhile. A
    /// timed-out attempt is waited for up to the engine's `stuck_limit`, then the node
    /// fails without a retry; a cancelled run ends without waiting longer.
    NodeStuck {
        /// The node id.
        node: Arc<str>,
        /// The attempt that does not stop.
        attempt: u32,
        /// Time since it was told to stop, seconds.
        waited_secs: f64,
        /// The GPU indices it holds.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        gpus: Vec<u32>,
    },
    /// A node was not run.
    NodeSkipped {
        /// The node id.
        node: Arc<str>,
        /// Why.
        reason: SkipReason,
    },
    /// Someone asked for a checkpoint; running nodes save at their next safe point.
    CheckpointRequested,
    /// The run state was saved.
    CheckpointSaved {
        /// The store's id for it.
        id: String,
        /// Why it was saved.
        reason: SaveReason,
    },
    /// Saving the run state failed (the run goes on).
    CheckpointFailed {
        /// Why it was being saved.
        reason: SaveReason,
        /// The error and its causes.
        error: Vec<String>,
    },
    /// A resource crossed a threshold.
    ResourceAlert {
        /// `warning` or `critical`.
        level: String,
        /// The alert text, such as `GPU 0 memory high: 92.3% (22.1/24.0 GB)`.
        message: String,
    },
    /// The run ended.
    RunFinished {
        /// How.
        status: RunStatus,
        /// Its length, seconds.
        duration_secs: f64,
    },
}

impl Event {
    /// An event happening now.
    pub fn now(kind: EventKind) -> Event {
        Event {
            time: SystemTime::now(),
            kind,
        }
    }
}

/// Receives events. Called on the engine's threads: keep it quick (buffer, or send to a
/// channel).
pub trait EventSink: Send + Sync {
    /// One event.
    fn event(&self, event: &Event);
}

impl<F: Fn(&Event) + Send + Sync> EventSink for F {
    fn event(&self, event: &Event) {
        self(event);
    }
}

impl EventSink for tokio::sync::mpsc::UnboundedSender<Event> {
    fn event(&self, event: &Event) {
        // A closed receiver means nobody listens any more.
        let _ = self.send(event.clone());
    }
}

/// A sink that writes each event as one JSON line (the run log).
pub struct JsonLinesLog<W: Write + Send> {
    out: Mutex<std::io::BufWriter<W>>,
}

impl<W: Write + Send> JsonLinesLog<W> {
    /// Log to `out`.
    pub fn new(out: W) -> JsonLinesLog<W> {
        JsonLinesLog {
            out: Mutex::new(std::io::BufWriter::new(out)),
        }
    }
}

impl<W: Write + Send> EventSink for JsonLinesLog<W> {
    fn event(&self, event: &Event) {
        let Ok(mut out) = self.out.lock() else { return };
        // The log is a record, not the run: a write error must not stop the run.
        if serde_json::to_writer(&mut *out, event).is_ok() {
            let _ = out.write_all(b"\n");
        }
        if matches!(event.kind, EventKind::RunFinished { .. }) {
            let _ = out.flush();
        }
    }
}

impl<W: Write + Send> Drop for JsonLinesLog<W> {
    fn drop(&mut self) {
        if let Ok(out) = self.out.get_mut() {
            let _ = out.flush();
        }
    }
}

/// Sends events to every subscribed sink. Cheap to clone; other parts of a program (a
/// resource monitor's alerts) can publish through it.
#[derive(Clone, Default)]
pub struct Emitter {
    sinks: Arc<[Arc<dyn EventSink>]>,
}

impl Emitter {
    pub(crate) fn new(sinks: Vec<Arc<dyn EventSink>>) -> Emitter {
        Emitter {
            sinks: sinks.into(),
        }
    }

    /// Publish an event happening now.
    pub fn emit(&self, kind: EventKind) {
        if self.sinks.is_empty() {
            return;
        }
        let event = Event::now(kind);
        for sink in self.sinks.iter() {
            sink.event(&event);
        }
    }
}

impl std::fmt::Debug for Emitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emitter")
            .field("sinks", &self.sinks.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().write(b)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn json_lines_have_time_and_tag() {
        let buf: Arc<Mutex<Vec<u8>>> = Arc::default();
        let log = JsonLinesLog::new(Shared(buf.clone()));
        log.event(&Event::now(EventKind::NodeStarted {
            node: "a".into(),
            attempt: 1,
        }));
        log.event(&Event::now(EventKind::RunFinished {
            status: RunStatus::Succeeded,
            duration_secs: 1.5,
        }));
        let text = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["event"], "node_started");
        assert_eq!(lines[0]["node"], "a");
        assert!(lines[0]["time"].as_str().unwrap().ends_with('Z'));
        assert_eq!(lines[1]["status"], "succeeded");
    }

    #[test]
    fn progress_lines_name_their_attempt() {
        let event = Event::now(EventKind::NodeProgress {
            node: "train".into(),
            attempt: 2,
            fraction: Some(0.5),
            message: "epoch 1/2".into(),
            metrics: Map::new(),
        });
        let line = serde_json::to_value(&event).unwrap();
        assert_eq!(line["event"], "node_progress");
        assert_eq!(line["attempt"], 2);
        assert_eq!(line["message"], "epoch 1/2");
    }
}
