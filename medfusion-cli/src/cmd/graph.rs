//! `medfusion graph FILE`: draw a workflow.

use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `medfusion graph`.
#[derive(Debug, clap::Args)]
pub(crate) struct GraphArgs {
    /// The workflow file (YAML or JSON; `-` reads standard input)
    file: PathBuf,
    /// The drawing language
    #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
    format: GraphFormat,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum GraphFormat {
    /// Graphviz DOT (`medfusion graph w.yaml | dot -Tsvg > w.svg`)
    Dot,
    /// A Mermaid flowchart, for Markdown
    Mermaid,
}

pub(crate) fn run(args: GraphArgs) -> anyhow::Result<ExitCode> {
    let workflow = super::read_workflow(&args.file)?;
    let text = match args.format {
        GraphFormat::Dot => medfusion_graph::to_dot(&workflow),
        GraphFormat::Mermaid => medfusion_graph::to_mermaid(&workflow),
    };
    out!("{text}");
    Ok(ExitCode::SUCCESS)
}
