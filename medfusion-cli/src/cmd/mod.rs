//! One module per subcommand: its arguments and what it does.

pub(crate) mod checkpoints;
pub(crate) mod example_data;
pub(crate) mod graph;
pub(crate) mod monitor;
pub(crate) mod nodes;
pub(crate) mod report;
pub(crate) mod run;
pub(crate) mod schema;
pub(crate) mod validate;

use std::io::Read as _;
use std::path::Path;

use anyhow::Context as _;
use medfusion_graph::Workflow;

/// Read a workflow from a file, or from standard input when the path is `-`.
pub(crate) fn read_workflow(path: &Path) -> anyhow::Result<Workflow> {
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read standard input")?;
        return Ok(Workflow::parse_sniffed(&text)?.with_source_path("<stdin>"));
    }
    Ok(Workflow::from_path(path)?)
}
