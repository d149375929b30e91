//! Directed graphs of node indices: topological order and cycle extraction.

use std::collections::VecDeque;

use petgraph::algo::{tarjan_scc, toposort};
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;

/// A directed graph over nodes `0..n`; an edge `(a, b)` means `b` depends on `a`.
///
/// ```
/// use medfusion_graph::Dag;
///
/// let dag = Dag::new(3, [(0, 1), (1, 2)]);
/// assert_eq!(dag.topological_order().unwrap(), vec![0, 1, 2]);
/// let cyclic = Dag::new(3, [(0, 1), (1, 2), (2, 0)]);
/// assert_eq!(cyclic.topological_order().unwrap_err().len(), 3);
/// ```
#[derive(Debug, Clone, Default)]
pub struct Dag {
    graph: DiGraph<(), (), u32>,
}

impl Dag {
    /// A graph of `node_count` nodes and these edges. Edges naming a node `>= node_count`
    /// are ignored.
    pub fn new(node_count: usize, edges: impl IntoIterator<Item = (usize, usize)>) -> Dag {
        let edges = edges.into_iter();
        let mut graph = DiGraph::with_capacity(node_count, edges.size_hint().0);
        for _ in 0..node_count {
            graph.add_node(());
        }
        for (a, b) in edges {
            if a < node_count && b < node_count {
                graph.add_edge(NodeIndex::new(a), NodeIndex::new(b), ());
            }
        }
        Dag { graph }
    }

    /// The number of nodes.
    pub fn node_count(&self) -> usize {
        self.graph.node_count()
    }

    /// The number of edges.
    pub fn edge_count(&self) -> usize {
        self.graph.edge_count()
    }

    /// The nodes in an order where every edge goes forward; if there is none, one cycle
    /// (its nodes in edge order, the last with an edge back to the first).
    pub fn topological_order(&self) -> Result<Vec<usize>, Vec<usize>> {
        match toposort(&self.graph, None) {
            Ok(order) => Ok(order.into_iter().map(NodeIndex::index).collect()),
            Err(cycle) => {
                let path = self.cycle_through(cycle.node_id(), None);
                if path.is_empty() {
                    // petgraph names a node of a cycle; this is only a safety net.
                    Err(self.cycles().into_iter().next().unwrap_or_default())
                } else {
                    Err(path)
                }
            }
        }
    }

    /// One cycle per group of nodes that depend on each other (strongly connected
    /// component), each starting at its smallest node; empty when the graph is acyclic.
    pub fn cycles(&self) -> Vec<Vec<usize>> {
        let mut in_scc = vec![false; self.graph.node_count()];
        let mut cycles = Vec::new();
        for scc in tarjan_scc(&self.graph) {
            let start = scc.iter().copied().min_by_key(|n| n.index());
            let Some(start) = start else { continue };
            if scc.len() == 1 && self.graph.find_edge(start, start).is_none() {
                continue;
            }
            for n in &scc {
                in_scc[n.index()] = true;
            }
            cycles.push(self.cycle_through(start, Some(&in_scc)));
            for n in &scc {
                in_scc[n.index()] = false;
            }
        }
        cycles.sort_by_key(|c| c.first().copied());
        cycles
    }

    /// The shortest cycle through `start` (breadth first), staying inside `within` when
    /// given; empty when there is none.
    fn cycle_through(&self, start: NodeIndex<u32>, within: Option<&[bool]>) -> Vec<usize> {
        let n = self.graph.node_count();
        let mut parent = vec![u32::MAX; n];
        let mut queue = VecDeque::from([start]);
        while let Some(u) = queue.pop_front() {
            for edge in self.graph.edges(u) {
                let v = edge.target();
                if within.is_some_and(|w| !w[v.index()]) {
                    continue;
                }
                if v == start {
                    let mut path = vec![u.index()];
                    let mut at = u;
                    while at != start {
                        at = NodeIndex::new(parent[at.index()] as usize);
                        path.push(at.index());
                    }
                    path.reverse();
                    return path;
                }
                if parent[v.index()] == u32::MAX {
                    parent[v.index()] = u.index() as u32;
                    queue.push_back(v);
                }
            }
        }
        Vec::new()
    }
}

/// Whether `path` is a real cycle of the edges: every consecutive pair, and last-to-first,
/// is an edge.
pub fn is_cycle(edges: &[(usize, usize)], path: &[usize]) -> bool {
    if path.is_empty() {
        return false;
    }
    let set: std::collections::HashSet<(usize, usize)> = edges.iter().copied().collect();
    (0..path.len()).all(|i| set.contains(&(path[i], path[(i + 1) % path.len()])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_respects_every_edge() {
        let edges = [(3, 1), (1, 0), (3, 2), (2, 0)];
        let order = Dag::new(4, edges).topological_order().unwrap();
        let pos: Vec<usize> = (0..4)
            .map(|n| order.iter().position(|&m| m == n).unwrap())
            .collect();
        assert!(edges.iter().all(|&(a, b)| pos[a] < pos[b]));
    }

    #[test]
    fn cycles_are_real_and_one_per_component() {
        let edges = [(0, 1), (1, 2), (2, 0), (3, 4), (4, 3), (5, 5), (2, 3)];
        let dag = Dag::new(6, edges);
        let cycle = dag.topological_order().unwrap_err();
        assert!(is_cycle(&edges, &cycle), "{cycle:?}");
        let cycles = dag.cycles();
        assert_eq!(cycles.len(), 3, "{cycles:?}");
        assert_eq!(cycles[0], [0, 1, 2]);
        assert_eq!(cycles[1], [3, 4]);
        assert_eq!(cycles[2], [5]);
        assert!(cycles.iter().all(|c| is_cycle(&edges, c)));
    }
}
