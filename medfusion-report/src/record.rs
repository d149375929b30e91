//! The run record: `run.json` (and the report rendered from it) in the run's output folder.

use std::path::Path;

use medfusion_exec::{NodeStatus, ResourceUsage, RunState, RunStatus};
use medfusion_graph::{Plan, PortType, Workflow};
use medfusion_monitor::{Alert, Snapshot};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::Error;

/// The version of the `run.json` format.
pub(crate) const RECORD_FORMAT: u32 = 1;
/// The record of a run still going, beside `run.json`.
pub const LIVE_FILE: &str = "live.json";

/// Everything about one run, as `run.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    pub format: u32,
    pub run_id: String,
    pub workflow: String,
    pub status: RunStatus,
    pub started_at: String,
    pub finished_at: String,
    /// The error chain, when the run failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Vec<String>>,
    /// The node whose failure ended the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_node: Option<String>,
    pub nodes: Vec<NodeRecord>,
    /// Evaluation results by node id.
    pub metrics: Map<String, Value>,
    /// Per-epoch training history by node id.
    pub history: Map<String, Value>,
    pub alerts: Vec<AlertRecord>,
    /// The resource samples of the run (CPU, memory, GPUs).
    pub resources: Vec<Value>,
    /// The workflow that ran, to draw its graph.
    pub definition: Workflow,
    /// The checkpoints saved during the run, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checkpoints: Vec<CheckpointRecord>,
    /// The run's last log lines (node starts, ends, retries, epochs, checkpoints, alerts).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub log: Vec<LogLine>,
}

/// A checkpoint saved during the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointRecord {
    /// When.
    pub time: String,
    /// The store's id for it (its folder in the checkpoint directory).
    pub id: String,
    /// Why it was saved (`node_finished`, `requested`, ...).
    pub reason: String,
}

/// One line of the run's log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    /// When.
    pub time: String,
    /// `info`, `warning` or `error`.
    pub level: String,
    /// What happened.
    pub message: String,
}

/// What a running node reported last.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeProgress {
    /// How far, 0 to 1, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fraction: Option<f32>,
    /// What it is doing (`epoch 2/5 batch 10/40 loss 0.4211 812 samples/s`).
    pub message: String,
    /// Figures it reported: `epoch`, `loss`, `samples_per_sec`, ...
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub metrics: Map<String, Value>,
    /// Seconds left at the pace so far, when the fraction is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta_secs: Option<f64>,
}

/// One node of the run record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeRecord {
    pub id: String,
    pub node_type: String,
    pub status: NodeStatus,
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_secs: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<ResourceUsage>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub outputs: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Vec<String>>,
    /// What it reported last, while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<NodeProgress>,
}

/// A resource alert raised during the run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AlertRecord {
    pub time: String,
    pub level: String,
    pub message: String,
}

impl RunRecord {
    pub fn new(
        plan: &Plan,
        state: &RunState,
        error: Option<&medfusion_exec::Error>,
        resources: &[Snapshot],
        alerts: &[Alert],
    ) -> RunRecord {
        let mut metrics = Map::new();
        let mut history = Map::new();
        let nodes = state
            .nodes
            .iter()
            .map(|n| {
                let spec = plan.index_of(&n.id).map(|i| plan.spec(i));
                for (port, summary) in &n.summary {
                    let is_metrics = spec
                        .and_then(|s| s.output_port(port))
                        .is_some_and(|p| p.port_type == PortType::Metrics);
                    if is_metrics {
                        metrics.insert(n.id.clone(), summary.clone());
                    }
                }
                NodeRecord {
                    id: n.id.clone(),
                    node_type: n.node_type.clone(),
                    status: n.status,
                    attempts: n.attempts,
                    started_at: n.started_at.clone(),
                    finished_at: n.finished_at.clone(),
                    duration_secs: n.duration_secs,
                    usage: n.usage,
                    outputs: n.summary.clone(),
                    error: n.error.as_ref().map(|e| e.chain.clone()),
                    progress: None,
                }
            })
            .collect();
        // A training curve belongs to the node that trained: a node after it that passes the
        // model on carries the same curve, and is left out.
        let by_id: std::collections::HashMap<&str, &medfusion_exec::NodeState> =
            state.nodes.iter().map(|n| (n.id.as_str(), n)).collect();
        for &i in plan.order() {
            let Some(n) = by_id.get(plan.node(i).id.as_str()) else {
                continue;
            };
            for summary in n.summary.values() {
                if let Some(h) = summary.get("history")
                    && !history.values().any(|seen| seen == h)
                {
                    history.insert(n.id.clone(), h.clone());
                }
            }
        }
        let error_chain = error.map(|e| {
            let mut chain = vec![e.to_string()];
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                chain.push(s.to_string());
                source = s.source();
            }
            chain
        });
        RunRecord {
            format: RECORD_FORMAT,
            run_id: state.run_id.clone(),
            workflow: state.workflow.clone(),
            status: state.status,
            started_at: state.started_at.clone(),
            finished_at: state.updated_at.clone(),
            error: error_chain,
            failed_node: error.and_then(|e| e.failed_node()).map(ToString::to_string),
            nodes,
            metrics,
            history,
            alerts: alerts
                .iter()
                .map(|a| AlertRecord {
                    time: humantime::format_rfc3339_millis(a.timestamp).to_string(),
                    level: format!("{:?}", a.level).to_lowercase(),
                    message: a.message.clone(),
                })
                .collect(),
            resources: resources
                .iter()
                .filter_map(|s| serde_json::to_value(s).ok())
                .collect(),
            definition: plan.workflow().clone(),
            checkpoints: Vec::new(),
            log: Vec::new(),
        }
    }

    /// Read the run record of a run's output folder.
    pub fn read(dir: &Path) -> Result<RunRecord, Error> {
        let path = dir.join("run.json");
        let text = std::fs::read_to_string(&path).map_err(|source| Error::Read {
            path: path.clone(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| Error::NotARecord { path, source })
    }

    /// Write `run.json` and `report.html` into `dir`.
    pub fn write(&self, dir: &Path) -> Result<(), Error> {
        self.write_json(dir)?;
        self.write_report(dir)
    }

    /// Write `live.json` into `dir`: the record of a run still going, read by `medfusion
    /// dashboard`. It never replaces `run.json` (a resumed run's folder keeps the record of
    /// the run it resumes until it writes its own); [`write`](Self::write) at the end of
    /// the run removes it.
    pub fn write_live(&self, dir: &Path) -> Result<(), Error> {
        self.write_json_as(dir, LIVE_FILE)
    }

    /// The newest record of a run folder: `live.json` while the run goes on (or after it
    /// was killed), else `run.json`.
    pub fn read_current(dir: &Path) -> Result<RunRecord, Error> {
        let live = dir.join(LIVE_FILE);
        if live.is_file() {
            let text = std::fs::read_to_string(&live).map_err(|source| Error::Read {
                path: live.clone(),
                source,
            })?;
            return serde_json::from_str(&text)
                .map_err(|source| Error::NotARecord { path: live, source });
        }
        RunRecord::read(dir)
    }

    /// Write `run.json` alone into `dir`.
    pub fn write_json(&self, dir: &Path) -> Result<(), Error> {
        self.write_json_as(dir, "run.json")?;
        match std::fs::remove_file(dir.join(LIVE_FILE)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::Write {
                path: dir.join(LIVE_FILE),
                source: e,
            }),
            _ => Ok(()),
        }
    }

    fn write_json_as(&self, dir: &Path, name: &str) -> Result<(), Error> {
        std::fs::create_dir_all(dir).map_err(|source| Error::Write {
            path: dir.to_path_buf(),
            source,
        })?;
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other);
        let path = dir.join(name);
        match json {
            Ok(json) => write_atomic(&path, &json),
            Err(source) => Err(Error::Write { path, source }),
        }
    }

    /// Write `report.html` into `dir`.
    pub fn write_report(&self, dir: &Path) -> Result<(), Error> {
        write_atomic(
            &dir.join("report.html"),
            crate::report::render(self).as_bytes(),
        )
    }
}

/// Write through a temporary file and a rename, so readers never see half a file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(|source| Error::Write {
        path: tmp.clone(),
        source,
    })?;
    std::fs::rename(&tmp, path).map_err(|source| Error::Write {
        path: path.to_path_buf(),
        source,
    })
}
