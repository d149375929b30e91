//! `medfusion validate FILE`: report every problem of a workflow file.

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::json;

use crate::output::{EXIT_INVALID, print_problems};

/// Arguments of `medfusion validate`.
#[derive(Debug, clap::Args)]
pub(crate) struct ValidateArgs {
    /// The workflow file (YAML or JSON; `-` reads standard input)
    file: PathBuf,
    /// Print the result as one JSON object on standard output
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: ValidateArgs) -> anyhow::Result<ExitCode> {
    let catalog = crate::catalog::builtin();
    let file = args.file.display().to_string();
    let workflow = match super::read_workflow(&args.file) {
        Ok(w) => w,
        Err(err) if args.json => {
            let parse = err.downcast_ref::<medfusion_graph::Error>();
            let line = match parse {
                Some(medfusion_graph::Error::Parse { line, .. }) => *line,
                _ => None,
            };
            let code = if parse.is_some_and(medfusion_graph::Error::is_invalid_workflow) {
                "parse"
            } else {
                "io"
            };
            let problem = json!({
                "code": code, "message": format!("{err:#}"), "node": null, "edge": null,
                "line": line, "file": file,
            });
            outln!(
                "{}",
                json!({ "valid": false, "file": file, "problems": [problem] })
            );
            return Ok(ExitCode::from(if code == "io" { 1 } else { EXIT_INVALID }));
        }
        Err(err) => return Err(err),
    };
    match medfusion_graph::validate(workflow, &catalog) {
        Ok(plan) => {
            let w = plan.workflow();
            if args.json {
                outln!(
                    "{}",
                    json!({
                        "valid": true, "file": file, "workflow": w.name, "nodes": plan.len(),
                        "edges": w.edges.len(), "levels": plan.levels().len(), "problems": [],
                    })
                );
            } else {
                outln!(
                    "ok: {file}: workflow `{}` is valid ({} nodes, {} edges, {} levels)",
                    w.name,
                    plan.len(),
                    w.edges.len(),
                    plan.levels().len()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            let Some(problems) = err.problems() else {
                return Err(err.into());
            };
            if args.json {
                outln!(
                    "{}",
                    json!({ "valid": false, "file": file, "problems": problems.to_json() })
                );
            } else {
                print_problems(problems);
            }
            Ok(ExitCode::from(EXIT_INVALID))
        }
    }
}
