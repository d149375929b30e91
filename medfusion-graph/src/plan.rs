//! Plans: a validated workflow with its order, dependencies and resolved configs.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::spec::NodeSpec;
use crate::workflow::{Node, Resources, Workflow};

/// Where one input port of a node gets its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputBinding {
    /// The input port.
    pub port: String,
    /// The producing node (index into the workflow's nodes).
    pub from_node: usize,
    /// The producing node's output port.
    pub from_port: String,
    /// The edge (index into the workflow's edges).
    pub edge: usize,
}

/// A validated workflow, ready to run: made only by [`validate`](crate::validate).
///
/// Nodes are referred to by their index in [`Workflow::nodes`].
#[derive(Debug, Clone)]
pub struct Plan {
    workflow: Workflow,
    specs: Vec<Arc<NodeSpec>>,
    configs: Vec<Map<String, Value>>,
    order: Vec<usize>,
    inputs: Vec<Vec<InputBinding>>,
    dependencies: Vec<Vec<usize>>,
    dependents: Vec<Vec<usize>>,
    level: Vec<usize>,
    read_outputs: Vec<Vec<String>>,
    by_id: HashMap<String, usize>,
}

impl Plan {
    pub(crate) fn new(
        workflow: Workflow,
        specs: Vec<Arc<NodeSpec>>,
        order: Vec<usize>,
        inputs: Vec<Vec<InputBinding>>,
    ) -> Plan {
        let n = workflow.nodes.len();
        let mut dependencies: Vec<Vec<usize>> = inputs
            .iter()
            .map(|bindings| bindings.iter().map(|b| b.from_node).collect())
            .collect();
        let mut dependents = vec![Vec::new(); n];
        for (node, deps) in dependencies.iter_mut().enumerate() {
            deps.sort_unstable();
            deps.dedup();
            for &d in deps.iter() {
                dependents[d].push(node);
            }
        }
        let mut level = vec![0; n];
        for &node in &order {
            level[node] = dependencies[node]
                .iter()
                .map(|&d| level[d] + 1)
                .max()
                .unwrap_or(0);
        }
        let mut read_outputs: Vec<Vec<String>> = vec![Vec::new(); n];
        for binding in inputs.iter().flatten() {
            let ports = &mut read_outputs[binding.from_node];
            if !ports.contains(&binding.from_port) {
                ports.push(binding.from_port.clone());
            }
        }
        let configs = workflow
            .nodes
            .iter()
            .zip(&specs)
            .map(|(n, s)| s.config.resolve(&n.config))
            .collect();
        let by_id = workflow
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id.clone(), i))
            .collect();
        Plan {
            workflow,
            specs,
            configs,
            order,
            inputs,
            dependencies,
            dependents,
            level,
            read_outputs,
            by_id,
        }
    }

    /// The workflow this plan runs.
    pub fn workflow(&self) -> &Workflow {
        &self.workflow
    }

    /// The number of nodes.
    pub fn len(&self) -> usize {
        self.workflow.nodes.len()
    }

    /// Whether the plan has no nodes (never true for a validated workflow).
    pub fn is_empty(&self) -> bool {
        self.workflow.nodes.is_empty()
    }

    /// Node `i`.
    pub fn node(&self, i: usize) -> &Node {
        &self.workflow.nodes[i]
    }

    /// The index of the node with this id.
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.by_id.get(id).copied()
    }

    /// The spec of node `i`'s type.
    pub fn spec(&self, i: usize) -> &Arc<NodeSpec> {
        &self.specs[i]
    }

    /// Node `i`'s config with the spec's defaults filled in.
    pub fn config(&self, i: usize) -> &Map<String, Value> {
        &self.configs[i]
    }

    /// The resources node `i` holds: its own `resources`, else its type's default.
    pub fn resources(&self, i: usize) -> Resources {
        self.workflow.nodes[i]
            .resources
            .unwrap_or(self.specs[i].default_resources)
    }

    /// All nodes in an order where every node comes after its dependencies.
    pub fn order(&self) -> &[usize] {
        &self.order
    }

    /// Where each connected input of node `i` comes from.
    pub fn inputs(&self, i: usize) -> &[InputBinding] {
        &self.inputs[i]
    }

    /// The nodes node `i` needs finished first (each once, ascending).
    pub fn dependencies(&self, i: usize) -> &[usize] {
        &self.dependencies[i]
    }

    /// The output ports of node `i` that some edge reads (each once).
    pub fn read_outputs(&self, i: usize) -> &[String] {
        &self.read_outputs[i]
    }

    /// The nodes that need node `i` (each once, ascending).
    pub fn dependents(&self, i: usize) -> &[usize] {
        &self.dependents[i]
    }

    /// Node `i`'s parallel level: 0 without dependencies, else one more than the deepest
    /// dependency.
    pub fn level(&self, i: usize) -> usize {
        self.level[i]
    }

    /// The nodes grouped by parallel level (for display: the engine does not wait for a
    /// level to finish before starting the next).
    pub fn levels(&self) -> Vec<Vec<usize>> {
        let depth = self.level.iter().max().map_or(0, |m| m + 1);
        let mut levels = vec![Vec::new(); depth];
        for &i in &self.order {
            levels[self.level[i]].push(i);
        }
        for level in &mut levels {
            level.sort_unstable();
        }
        levels
    }

    /// `nodes` and everything downstream of them, as a mask over node indices.
    pub fn downstream_of(&self, nodes: impl IntoIterator<Item = usize>) -> Vec<bool> {
        let mut mask = vec![false; self.len()];
        let mut stack: Vec<usize> = nodes.into_iter().filter(|&i| i < self.len()).collect();
        while let Some(i) = stack.pop() {
            if !std::mem::replace(&mut mask[i], true) {
                stack.extend(self.dependents[i].iter().copied().filter(|&d| !mask[d]));
            }
        }
        mask
    }
}
