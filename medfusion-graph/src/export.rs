//! Drawing a workflow: Graphviz DOT and Mermaid flowcharts, ports as edge labels.

use std::fmt::Write as _;

use petgraph::dot::{Config, Dot, RankDir};
use petgraph::graph::DiGraph;

use crate::workflow::Workflow;

/// The workflow as a Graphviz DOT digraph: one box per node (id and type), one arrow per
/// edge labelled `output -> input`.
///
/// Edges naming unknown nodes are left out, so a workflow can be drawn before it validates.
pub fn to_dot(workflow: &Workflow) -> String {
    let mut graph =
        DiGraph::<String, String>::with_capacity(workflow.nodes.len(), workflow.edges.len());
    let ids: Vec<_> = workflow
        .nodes
        .iter()
        .map(|n| graph.add_node(format!("{}\n{}", n.id, n.node_type)))
        .collect();
    for edge in &workflow.edges {
        let (Some(a), Some(b)) = (
            workflow.node_index(&edge.from.node),
            workflow.node_index(&edge.to.node),
        ) else {
            continue;
        };
        graph.add_edge(
            ids[a],
            ids[b],
            format!("{} -> {}", edge.from.port, edge.to.port),
        );
    }
    let dot = Dot::with_attr_getters(
        &graph,
        &[Config::RankDir(RankDir::LR)],
        &|_, _| "fontsize=10".to_string(),
        &|_, _| "shape=box, style=rounded".to_string(),
    );
    dot.to_string()
}

/// The workflow as a Mermaid flowchart (`flowchart LR`), for Markdown renderers.
///
/// Node ids are safe Mermaid identifiers once validated; labels are quoted.
pub fn to_mermaid(workflow: &Workflow) -> String {
    let mut out = String::from("flowchart LR\n");
    for (i, node) in workflow.nodes.iter().enumerate() {
        let _ = writeln!(
            out,
            "    n{i}[\"{}<br/><small>{}</small>\"]",
            mermaid_text(&node.id),
            mermaid_text(&node.node_type)
        );
    }
    for edge in &workflow.edges {
        let (Some(a), Some(b)) = (
            workflow.node_index(&edge.from.node),
            workflow.node_index(&edge.to.node),
        ) else {
            continue;
        };
        let _ = writeln!(
            out,
            "    n{a} -->|\"{} &rarr; {}\"| n{b}",
            mermaid_text(&edge.from.port),
            mermaid_text(&edge.to.port)
        );
    }
    out
}

/// Text made safe inside a quoted Mermaid label.
fn mermaid_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("#quot;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '|' => out.push_str("#124;"),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::{Edge, Node, PortRef};

    fn workflow() -> Workflow {
        Workflow::new(
            "w",
            vec![
                Node::new("data", "dataset.synthetic"),
                Node::new("train", "t\"x"),
            ],
            vec![Edge::new(
                PortRef::new("data", "train"),
                PortRef::new("train", "data"),
            )],
        )
    }

    #[test]
    fn dot_has_nodes_edges_and_port_labels() {
        let dot = to_dot(&workflow());
        assert!(dot.starts_with("digraph {"), "{dot}");
        assert!(
            dot.contains("rankdir=\"LR\"") || dot.contains("rankdir=LR"),
            "{dot}"
        );
        assert!(dot.contains("label = \"train -> data\""), "{dot}");
        assert!(dot.contains("t\\\"x"), "quotes are escaped: {dot}");
        assert!(dot.contains("0 -> 1"), "{dot}");
    }

    #[test]
    fn mermaid_has_nodes_edges_and_port_labels() {
        let m = to_mermaid(&workflow());
        assert!(m.starts_with("flowchart LR\n"));
        assert!(
            m.contains("n0[\"data<br/><small>dataset.synthetic</small>\"]"),
            "{m}"
        );
        assert!(m.contains("t#quot;x"), "{m}");
        assert!(m.contains("n0 -->|\"train &rarr; data\"| n1"), "{m}");
    }
}
