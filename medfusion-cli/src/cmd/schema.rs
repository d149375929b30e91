//! `medfusion schema`: the JSON Schema of workflow files.

use std::process::ExitCode;

/// Arguments of `medfusion schema`.
#[derive(Debug, clap::Args)]
pub(crate) struct SchemaArgs {}

pub(crate) fn run(_args: SchemaArgs) -> anyhow::Result<ExitCode> {
    let schema = medfusion_graph::workflow_schema(&crate::catalog::builtin());
    outln!("{}", serde_json::to_string_pretty(&schema)?);
    Ok(ExitCode::SUCCESS)
}
