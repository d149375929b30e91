//! Property tests: random DAGs plan in an order that respects every edge; a back edge
//! gives a cycle error whose nodes form a real cycle; no text makes the parser panic.

mod common;

use medfusion_graph::{
    Dag, Edge, Format, Node, PortRef, ProblemKind, Workflow, is_cycle, validate,
};
use proptest::prelude::*;

/// A random DAG: `n` nodes, edges only from a smaller to a larger index.
fn dag() -> impl Strategy<Value = (usize, Vec<(usize, usize)>)> {
    (2usize..40).prop_flat_map(|n| {
        let edge = (0..n - 1).prop_flat_map(move |a| (Just(a), a + 1..n));
        (Just(n), proptest::collection::vec(edge, 0..3 * n))
    })
}

/// A workflow of `multi` nodes (any number of values in, one out) joined by `edges`.
fn workflow(n: usize, edges: &[(usize, usize)]) -> Workflow {
    let mut wf_edges = Vec::new();
    for &(a, b) in edges {
        wf_edges.push(Edge::new(
            PortRef::new(format!("n{a}"), "out"),
            PortRef::new(format!("n{b}"), "in"),
        ));
    }
    Workflow::new(
        "prop",
        (0..n)
            .map(|i| Node::new(format!("n{i}"), "multi"))
            .collect(),
        wf_edges,
    )
}

fn catalog() -> medfusion_graph::NodeCatalog {
    use medfusion_graph::{NodeSpec, PortSpec, PortType};
    let mut c = common::catalog();
    c.register(
        NodeSpec::new("multi", "takes any number of values")
            .input(PortSpec::optional("in", PortType::Value).multiple())
            .output(PortSpec::output("out", PortType::Value)),
    )
    .unwrap();
    c
}

proptest! {
    #[test]
    fn random_dags_plan_in_edge_order((n, edges) in dag()) {
        let plan = validate(workflow(n, &edges), &catalog()).unwrap();
        let mut pos = vec![0; n];
        for (i, &node) in plan.order().iter().enumerate() {
            pos[node] = i;
        }
        prop_assert_eq!(plan.order().len(), n);
        for &(a, b) in &edges {
            prop_assert!(pos[a] < pos[b]);
            prop_assert!(plan.level(a) < plan.level(b));
            prop_assert!(plan.dependencies(b).contains(&a));
        }
    }

    #[test]
    fn a_back_edge_gives_a_real_cycle((n, mut edges) in dag(), pick in any::<prop::sample::Index>()) {
        prop_assume!(!edges.is_empty());
        // Close a cycle: from the end of a path back to its start.
        let (a, b) = edges[pick.index(edges.len())];
        edges.push((b, a));
        let err = validate(workflow(n, &edges), &catalog()).unwrap_err();
        let problems = &err.problems().unwrap().problems;
        let cycles: Vec<_> = problems.iter().filter_map(|p| match &p.kind {
            ProblemKind::Cycle { path } => Some(path.clone()),
            _ => None,
        }).collect();
        prop_assert!(!cycles.is_empty());
        for path in cycles {
            let ids: Vec<usize> = path.iter().map(|id| id[1..].parse().unwrap()).collect();
            prop_assert!(is_cycle(&edges, &ids), "{:?} is not a cycle of {:?}", ids, edges);
        }
        let dag = Dag::new(n, edges.iter().copied());
        let cycle = dag.topological_order().unwrap_err();
        prop_assert!(is_cycle(&edges, &cycle));
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        for format in [Format::Yaml, Format::Json] {
            if let Ok(w) = Workflow::parse(&text, format) {
                let _ = validate(w, &catalog());
            }
        }
    }

    #[test]
    fn mutated_workflows_never_panic(cut in 0usize..400, insert in "[-:{}\\[\\],. a-z0-9\\n]{0,12}") {
        let good = include_str!("../../examples/quickstart.yaml");
        let cut = cut.min(good.len());
        let cut = (0..=cut).rev().find(|&i| good.is_char_boundary(i)).unwrap_or(0);
        let text = format!("{}{}{}", &good[..cut], insert, &good[cut..]);
        if let Ok(w) = Workflow::parse(&text, Format::Yaml) {
            let _ = validate(w, &catalog());
        }
    }
}
