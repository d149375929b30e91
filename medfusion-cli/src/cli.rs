//! The command line's shape: `medfusion <command> ...`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::cmd;

/// Run deep-learning workflows for medical imaging: validate a workflow file, run it with
/// independent nodes in parallel, checkpoint and resume it, and watch the machine.
#[derive(Debug, Parser)]
#[command(name = "medfusion", version, about, long_about = None, max_term_width = 100)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Validate and run a workflow (exit 0 done, 1 failed, 2 invalid, 130 interrupted)
    Run(cmd::run::RunArgs),
    /// Continue a workflow from its newest valid checkpoint
    Resume(cmd::run::ResumeArgs),
    /// Measure: `bench train` times training steps on synthetic batches (JSON line)
    Bench(cmd::bench::BenchArgs),
    /// Render report.html again from a run's run.json
    Report(cmd::report::ReportArgs),
    /// Serve the runs of a folder in the browser: their reports, and live pages of runs
    /// still going
    Dashboard(cmd::dashboard::DashboardArgs),
    /// Check a workflow file and report every problem (exit 0 valid, 2 invalid)
    Validate(cmd::validate::ValidateArgs),
    /// Draw a workflow as Graphviz DOT or a Mermaid flowchart
    Graph(cmd::graph::GraphArgs),
    /// Print the JSON Schema of workflow files (for editors)
    Schema(cmd::schema::SchemaArgs),
    /// List the node types with their ports and config
    Nodes(cmd::nodes::NodesArgs),
    /// Watch CPU, memory and GPUs: a row per sample, or JSON lines
    Monitor(cmd::monitor::MonitorArgs),
    /// List, show, verify and prune saved checkpoints
    Checkpoints(cmd::checkpoints::CheckpointsArgs),
    /// `checkpoint --now`: ask a running `medfusion run` to save a checkpoint
    Checkpoint(cmd::checkpoint::CheckpointArgs),
    /// Write the synthetic dataset as image folders, a CSV table and a MedMNIST .npz
    ExampleData(cmd::example_data::ExampleDataArgs),
    /// Run one attempt of a node from its files (what a cluster job of a run runs)
    NodeExec(cmd::node_exec::NodeExecArgs),
}

impl Command {
    pub(crate) fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            Command::Run(args) => cmd::run::run(args),
            Command::Resume(args) => cmd::run::resume(args),
            Command::Report(args) => cmd::report::run(args),
            Command::Dashboard(args) => cmd::dashboard::run(args),
            Command::Bench(args) => cmd::bench::run(args),
            Command::Validate(args) => cmd::validate::run(args),
            Command::Graph(args) => cmd::graph::run(args),
            Command::Schema(args) => cmd::schema::run(args),
            Command::Nodes(args) => cmd::nodes::run(args),
            Command::Monitor(args) => cmd::monitor::run(args),
            Command::Checkpoints(args) => cmd::checkpoints::run(args),
            Command::Checkpoint(args) => cmd::checkpoint::run(args),
            Command::ExampleData(args) => cmd::example_data::run(args),
            Command::NodeExec(args) => cmd::node_exec::run(args),
        }
    }
}
