//! The run record: `run.json` (and the report rendered from it) in the run's output folder.

use std::path::Path;

use anyhow::Context as _;
use medfusion_exec::{NodeStatus, ResourceUsage, RunState, RunStatus};
use medfusion_graph::{Plan, PortType, Workflow};
use medfusion_monitor::{Alert, Snapshot};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The version of the `run.json` format.
const RECORD_FORMAT: u32 = 1;

/// Everything about one run, as `run.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RunRecord {
    pub(crate) format: u32,
    pub(crate) run_id: String,
    pub(crate) workflow: String,
    pub(crate) status: RunStatus,
    pub(crate) started_at: String,
    pub(crate) finished_at: String,
    /// The error chain, when the run failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<Vec<String>>,
    /// The node whose failure ended the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) failed_node: Option<String>,
    pub(crate) nodes: Vec<NodeRecord>,
    /// Evaluation results by node id.
    pub(crate) metrics: Map<String, Value>,
    /// Per-epoch training history by node id.
    pub(crate) history: Map<String, Value>,
    pub(crate) alerts: Vec<AlertRecord>,
    /// The resource samples of the run (CPU, memory, GPUs).
    pub(crate) resources: Vec<Value>,
    /// The workflow that ran, to draw its graph.
    pub(crate) definition: Workflow,
}

/// One node of the run record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct NodeRecord {
    pub(crate) id: String,
    pub(crate) node_type: String,
    pub(crate) status: NodeStatus,
    pub(crate) attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) finished_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) duration_secs: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) usage: Option<ResourceUsage>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub(crate) outputs: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<Vec<String>>,
}

/// A resource alert raised during the run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AlertRecord {
    pub(crate) time: String,
    pub(crate) level: String,
    pub(crate) message: String,
}

impl RunRecord {
    pub(crate) fn new(
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
                    if let Some(h) = summary.get("history") {
                        history.insert(n.id.clone(), h.clone());
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
                }
            })
            .collect();
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
        }
    }

    /// Read the run record of a run's output folder.
    pub(crate) fn read(dir: &Path) -> anyhow::Result<RunRecord> {
        let path = dir.join("run.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read `{}`", path.display()))?;
        serde_json::from_str(&text)
            .with_context(|| format!("`{}` is not a medfusion run record", path.display()))
    }

    /// Write `run.json` and `report.html` into `dir`.
    pub(crate) fn write(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create `{}`", dir.display()))?;
        write_atomic(&dir.join("run.json"), &serde_json::to_vec_pretty(self)?)?;
        self.write_report(dir)
    }

    /// Write `report.html` into `dir`.
    pub(crate) fn write_report(&self, dir: &Path) -> anyhow::Result<()> {
        write_atomic(
            &dir.join("report.html"),
            crate::report::render(self).as_bytes(),
        )
    }
}

/// Write through a temporary file and a rename, so readers never see half a file.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write `{}`", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write `{}`", path.display()))
}
