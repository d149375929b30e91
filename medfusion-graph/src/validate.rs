//! Validation: every problem of a workflow against a catalog, in one pass.

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::closest;
use crate::dag::Dag;
use crate::error::Error;
use crate::plan::{InputBinding, Plan};
use crate::problem::{EdgeEnd, Problem, ProblemKind, Problems};
use crate::spec::{NodeCatalog, NodeSpec, PortSpec};
use crate::workflow::{PortRef, Workflow};

/// The longest node id (and workflow name) accepted.
pub const MAX_ID_LEN: usize = 64;

/// Why `id` cannot be a node id (or workflow name), if it cannot: ids become file and
/// folder names in checkpoints, so only `[A-Za-z0-9_-]`, 1 to 64 characters.
pub fn check_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("it is empty".into());
    }
    if id.len() > MAX_ID_LEN {
        return Err(format!(
            "it is {} characters long; the limit is {MAX_ID_LEN}",
            id.len()
        ));
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        return Err(format!(
            "it contains {c:?}; ids may use only letters, digits, `_` and `-` because they \
             become file names"
        ));
    }
    Ok(())
}

/// Check a workflow against the node types of `catalog` and, if it holds, plan it.
///
/// Every problem is reported at once, each with the node or edge it is about and its line
/// in the file where the parser knew it. Cost is linear in nodes + edges.
pub fn validate(workflow: Workflow, catalog: &NodeCatalog) -> Result<Plan, Error> {
    let mut problems = Vec::new();
    let n = workflow.nodes.len();

    if workflow.nodes.is_empty() {
        problems.push(Problem::new(ProblemKind::NoNodes));
    }
    if let Err(reason) = check_id(&workflow.name) {
        problems.push(Problem::new(ProblemKind::InvalidWorkflowName {
            name: workflow.name.clone(),
            reason,
        }));
    }

    // Nodes: ids, types, config.
    let mut by_id: HashMap<&str, usize> = HashMap::with_capacity(n);
    let mut specs: Vec<Option<&Arc<NodeSpec>>> = Vec::with_capacity(n);
    for (i, node) in workflow.nodes.iter().enumerate() {
        let line = workflow.node_line(i);
        if let Err(reason) = check_id(&node.id) {
            problems.push(
                Problem::new(ProblemKind::InvalidNodeId {
                    id: node.id.clone(),
                    reason,
                })
                .at_node(&node.id, line),
            );
        }
        if let Some(&first) = by_id.get(node.id.as_str()) {
            problems.push(
                Problem::new(ProblemKind::DuplicateNodeId {
                    id: node.id.clone(),
                    first_line: workflow.node_line(first),
                })
                .at_node(&node.id, line),
            );
        } else {
            by_id.insert(&node.id, i);
        }
        let spec = catalog.get(&node.node_type);
        let lines = workflow.node_lines(i);
        match spec {
            None => problems.push(
                Problem::new(ProblemKind::UnknownNodeType {
                    node_type: node.node_type.clone(),
                    suggestion: closest(&node.node_type, catalog.type_names()),
                })
                .at_node(&node.id, lines.and_then(|l| l.node_type).or(line)),
            ),
            Some(spec) => {
                for issue in spec.config.check(&node.config) {
                    let key_line = lines.and_then(|l| l.config.get(issue.key()).copied());
                    problems.push(
                        Problem::new(ProblemKind::Config(issue))
                            .at_node(&node.id, key_line.or(line)),
                    );
                }
            }
        }
        specs.push(spec);
    }

    // Edges: both ends exist, types agree, one edge per input.
    let mut inputs: Vec<Vec<InputBinding>> = vec![Vec::new(); n];
    let mut first_edge_into: HashMap<(usize, &str), usize> = HashMap::new();
    let mut dag_edges = Vec::with_capacity(workflow.edges.len());
    let mut fed_by_broken_edge: Vec<(usize, &str)> = Vec::new();
    for (e, edge) in workflow.edges.iter().enumerate() {
        let lines = workflow.edge_lines(e);
        let from = resolve_end(
            &workflow,
            &by_id,
            &specs,
            e,
            &edge.from,
            EdgeEnd::From,
            lines.from,
        )
        .map_err(|p| problems.push(*p));
        let to = resolve_end(
            &workflow,
            &by_id,
            &specs,
            e,
            &edge.to,
            EdgeEnd::To,
            lines.to,
        )
        .map_err(|p| problems.push(*p));
        let (Ok((from_node, from_port)), Ok((to_node, to_port))) = (from, to) else {
            if let Ok((to_node, _)) = to {
                // The input has an edge, only a broken one: its absence is not news.
                fed_by_broken_edge.push((to_node, edge.to.port.as_str()));
            }
            continue;
        };
        if let (Some(out), Some(input)) = (from_port, to_port)
            && !input.accepts(&out.port_type)
        {
            let mut accepted = vec![input.port_type.clone()];
            accepted.extend(input.also_accepts.iter().cloned());
            problems.push(
                Problem::new(ProblemKind::PortTypeMismatch {
                    from: edge.from.clone(),
                    from_type: out.port_type.clone(),
                    to: edge.to.clone(),
                    accepted,
                })
                .at_edge(e, lines.edge),
            );
        }
        let multiple = to_port.is_some_and(|p| p.multiple);
        if let Some(&first) = first_edge_into.get(&(to_node, edge.to.port.as_str()))
            && !multiple
        {
            problems.push(
                Problem::new(ProblemKind::DuplicateInput {
                    to: edge.to.clone(),
                    first_edge: first,
                    first_line: workflow.edge_line(first),
                })
                .at_edge(e, lines.edge),
            );
            continue;
        }
        first_edge_into
            .entry((to_node, edge.to.port.as_str()))
            .or_insert(e);
        inputs[to_node].push(InputBinding {
            port: edge.to.port.clone(),
            from_node,
            from_port: edge.from.port.clone(),
            edge: e,
        });
        dag_edges.push((from_node, to_node));
    }

    // Required inputs.
    for (i, node) in workflow.nodes.iter().enumerate() {
        let Some(spec) = specs[i] else { continue };
        if by_id.get(node.id.as_str()) != Some(&i) {
            // Edges reach the first node of a duplicated id; the duplicate is reported.
            continue;
        }
        for port in spec.inputs.iter().filter(|p| p.required) {
            let fed = inputs[i].iter().any(|b| b.port == port.name)
                || fed_by_broken_edge.contains(&(i, port.name.as_str()));
            if !fed {
                problems.push(
                    Problem::new(ProblemKind::MissingInput {
                        port: PortRef::new(&node.id, &port.name),
                        port_type: port.port_type.clone(),
                    })
                    .at_node(&node.id, workflow.node_line(i)),
                );
            }
        }
    }

    // Cycles, over the edges that resolved.
    let dag = Dag::new(n, dag_edges.iter().copied());
    let order = dag.topological_order().unwrap_or_default();
    if order.len() != n {
        for cycle in dag.cycles() {
            let first = cycle[0];
            let path = cycle
                .iter()
                .map(|&i| workflow.nodes[i].id.clone())
                .collect();
            problems.push(
                Problem::new(ProblemKind::Cycle { path })
                    .at_node(&workflow.nodes[first].id, workflow.node_line(first)),
            );
        }
    }

    if !problems.is_empty() {
        let file = workflow.source_path().map(std::path::Path::to_path_buf);
        return Err(Error::Invalid(Box::new(Problems { file, problems })));
    }
    let specs: Vec<Arc<NodeSpec>> = specs.into_iter().flatten().cloned().collect();
    Ok(Plan::new(workflow, specs, order, inputs))
}

type ResolvedEnd<'a> = (usize, Option<&'a PortSpec>);

fn resolve_end<'a>(
    workflow: &Workflow,
    by_id: &HashMap<&str, usize>,
    specs: &[Option<&'a Arc<NodeSpec>>],
    edge: usize,
    port: &PortRef,
    end: EdgeEnd,
    line: Option<u32>,
) -> Result<ResolvedEnd<'a>, Box<Problem>> {
    let line = line.or_else(|| workflow.edge_line(edge));
    let Some(&node) = by_id.get(port.node.as_str()) else {
        return Err(Box::new(
            Problem::new(ProblemKind::UnknownNode {
                end,
                node: port.node.clone(),
                suggestion: closest(&port.node, by_id.keys().copied()),
            })
            .at_edge(edge, line),
        ));
    };
    // An unknown node type is reported once, on the node; its ports cannot be checked.
    let Some(spec) = specs[node] else {
        return Ok((node, None));
    };
    let ports = if end == EdgeEnd::From {
        &spec.outputs
    } else {
        &spec.inputs
    };
    match ports.iter().find(|p| p.name == port.port) {
        Some(p) => Ok((node, Some(p))),
        None => Err(Box::new(
            Problem::new(ProblemKind::UnknownPort {
                end,
                port: port.clone(),
                node_type: spec.node_type.clone(),
                available: ports.iter().map(|p| p.name.clone()).collect(),
                suggestion: closest(&port.port, ports.iter().map(|p| p.name.as_str())),
            })
            .at_edge(edge, line),
        )),
    }
}
