//! `medfusion nodes`: the node types, their ports and config.

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::bail;
use medfusion_graph::{NodeSpec, PortSpec};

/// Arguments of `medfusion nodes`.
#[derive(Debug, clap::Args)]
pub(crate) struct NodesArgs {
    /// Show only this node type
    node_type: Option<String>,
    /// Print the specs as JSON
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: NodesArgs) -> anyhow::Result<ExitCode> {
    let catalog = crate::catalog::builtin();
    let specs: Vec<&NodeSpec> = match &args.node_type {
        Some(t) => {
            let Some(spec) = catalog.get(t) else {
                let known: Vec<&str> = catalog.type_names().collect();
                bail!("unknown node type `{t}` (known: {})", known.join(", "));
            };
            vec![spec.as_ref()]
        }
        None => catalog.iter().map(AsRef::as_ref).collect(),
    };
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&specs)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = String::new();
    for (i, spec) in specs.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        describe(&mut out, spec);
    }
    out!("{out}");
    Ok(ExitCode::SUCCESS)
}

fn describe(out: &mut String, spec: &NodeSpec) {
    let _ = writeln!(out, "{}  {}", spec.node_type, spec.description);
    port_lines(out, "inputs", &spec.inputs);
    port_lines(out, "outputs", &spec.outputs);
    if !spec.config.fields().is_empty() {
        let _ = writeln!(out, "  config:");
        for f in spec.config.fields() {
            let mut line = format!("    {:<28} {}", f.name, f.kind);
            if let Some(d) = &f.default {
                let _ = write!(line, " (default {d})");
            } else if f.required {
                line.push_str(" (required)");
            }
            if !f.description.is_empty() {
                let _ = write!(line, ": {}", f.description);
            }
            let _ = writeln!(out, "{line}");
        }
    }
}

fn port_lines(out: &mut String, title: &str, ports: &[PortSpec]) {
    if ports.is_empty() {
        return;
    }
    let _ = writeln!(out, "  {title}:");
    for p in ports {
        let mut types = p.port_type.to_string();
        for t in &p.also_accepts {
            let _ = write!(types, " | {t}");
        }
        let mut flags = Vec::new();
        if p.required {
            flags.push("required");
        }
        if p.multiple {
            flags.push("several edges");
        }
        let flags = if flags.is_empty() {
            String::new()
        } else {
            format!(" ({})", flags.join(", "))
        };
        let desc = if p.description.is_empty() {
            String::new()
        } else {
            format!(": {}", p.description)
        };
        let _ = writeln!(out, "    {:<14} {types}{flags}{desc}", p.name);
    }
}
