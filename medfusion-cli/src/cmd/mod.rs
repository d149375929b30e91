//! One module per subcommand: its arguments and what it does.

pub(crate) mod bench;
pub(crate) mod checkpoint;
pub(crate) mod checkpoints;
pub(crate) mod dashboard;
pub(crate) mod example_data;
pub(crate) mod graph;
pub(crate) mod monitor;
pub(crate) mod node_exec;
pub(crate) mod nodes;
pub(crate) mod report;
pub(crate) mod run;
pub(crate) mod schema;
pub(crate) mod validate;

use std::path::Path;

use anyhow::Context as _;
use medfusion_graph::Workflow;

/// Read a workflow from a file, or from standard input when the path is `-`.
pub(crate) fn read_workflow(path: &Path) -> anyhow::Result<Workflow> {
    if path.as_os_str() == "-" {
        return Ok(Workflow::from_reader(std::io::stdin().lock(), "<stdin>")?);
    }
    Ok(Workflow::from_path(path)?)
}

/// Apply `--set node.key=value` overrides; the value is read as YAML (`1`, `1e-3`, `true`,
/// `adam`, `[0.7, 0.3]`).
pub(crate) fn apply_overrides(workflow: &mut Workflow, sets: &[String]) -> anyhow::Result<()> {
    for set in sets {
        let (target, text) = set
            .split_once('=')
            .with_context(|| format!("`--set {set}`: expected `node.key=value`"))?;
        let (node, key) = target
            .split_once('.')
            .with_context(|| format!("`--set {set}`: expected `node.key=value`"))?;
        let value: serde_json::Value = serde_saphyr::from_str(text).map_err(|e| {
            anyhow::anyhow!(
                "`--set {set}`: cannot read the value: {}",
                e.without_snippet()
            )
        })?;
        workflow
            .set_config(node, key, value)
            .map_err(|e| anyhow::anyhow!("`--set {set}`: {e}"))?;
    }
    Ok(())
}
