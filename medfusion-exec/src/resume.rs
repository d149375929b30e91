//! Resume: which nodes of a saved run are restored and which run again, and why.

use std::collections::BTreeSet;
use std::fmt;

use medfusion_graph::{Plan, Workflow};

use crate::state::RunState;

/// A saved run to continue: its state and the workflow it ran.
#[derive(Debug, Clone)]
pub struct ResumeFrom {
    /// The saved state (with the blobs of its values loaded).
    pub state: RunState,
    /// The workflow of the saved run, to see what changed since.
    pub workflow: Workflow,
}

/// What a resumed run does with a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Not run again: its outputs are restored.
    Restore,
    /// Run (again), and why.
    Run(RerunReason),
}

/// Why a node runs in a resumed run.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RerunReason {
    /// The node is not in the saved run.
    New,
    /// It had not finished (the saved progress, if any, is continued).
    NotFinished,
    /// Its type, config or inputs changed since.
    Changed(String),
    /// A node it depends on runs again.
    Upstream(String),
    /// Its saved outputs could not be restored.
    RestoreFailed(String),
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decision::Restore => f.write_str("skip: finished in the saved run, outputs restored"),
            Decision::Run(RerunReason::New) => f.write_str("run: not in the saved run"),
            Decision::Run(RerunReason::NotFinished) => {
                f.write_str("run: had not finished (continues from its saved progress, if any)")
            }
            Decision::Run(RerunReason::Changed(what)) => write!(f, "run: {what} changed"),
            Decision::Run(RerunReason::Upstream(node)) => {
                write!(f, "run: upstream `{node}` runs again")
            }
            Decision::Run(RerunReason::RestoreFailed(why)) => {
                write!(f, "run: saved outputs could not be restored ({why})")
            }
        }
    }
}

/// The inputs of node `id` in `workflow`: `(input port, from node, from port)`, sorted.
fn input_edges<'a>(workflow: &'a Workflow, id: &str) -> BTreeSet<(&'a str, &'a str, &'a str)> {
    workflow
        .edges
        .iter()
        .filter(|e| e.to.node == id)
        .map(|e| {
            (
                e.to.port.as_str(),
                e.from.node.as_str(),
                e.from.port.as_str(),
            )
        })
        .collect()
}

/// What changed in a node between the saved workflow and this one, if anything.
fn change(plan: &Plan, i: usize, old: &Workflow) -> Option<String> {
    let node = plan.node(i);
    let Some(before) = old.node(&node.id) else {
        return Some("the node".into());
    };
    if before.node_type != node.node_type {
        return Some(format!(
            "its type (`{}` -> `{}`)",
            before.node_type, node.node_type
        ));
    }
    if before.config != node.config {
        let mut keys: BTreeSet<&str> = BTreeSet::new();
        for (k, v) in &node.config {
            if before.config.get(k) != Some(v) {
                keys.insert(k);
            }
        }
        for k in before.config.keys() {
            if !node.config.contains_key(k) {
                keys.insert(k);
            }
        }
        let keys: Vec<String> = keys.into_iter().map(|k| format!("`{k}`")).collect();
        return Some(format!("its config ({})", keys.join(", ")));
    }
    if input_edges(plan.workflow(), &node.id) != input_edges(old, &node.id) {
        return Some("its inputs".into());
    }
    None
}

/// Decide, in topological order, what a resumed run does with each node of `plan`.
///
/// A node is restored when it finished in the saved run, nothing about it changed, and
/// every node it depends on is restored too. `restorable(i)` says whether node `i`'s saved
/// outputs can be restored (`Err` with the reason when not).
pub fn decide(
    plan: &Plan,
    from: &ResumeFrom,
    mut restorable: impl FnMut(usize) -> Result<(), String>,
) -> Vec<Decision> {
    let mut decisions = vec![Decision::Run(RerunReason::New); plan.len()];
    for &i in plan.order() {
        let node = plan.node(i);
        let decision = match from.state.node(&node.id) {
            None => Decision::Run(RerunReason::New),
            Some(saved) => {
                if let Some(what) = change(plan, i, &from.workflow) {
                    Decision::Run(RerunReason::Changed(what))
                } else if let Some(&d) = plan
                    .dependencies(i)
                    .iter()
                    .find(|&&d| decisions[d] != Decision::Restore)
                {
                    Decision::Run(RerunReason::Upstream(plan.node(d).id.clone()))
                } else if !saved.status.is_done() {
                    Decision::Run(RerunReason::NotFinished)
                } else {
                    match restorable(i) {
                        Ok(()) => Decision::Restore,
                        Err(why) => Decision::Run(RerunReason::RestoreFailed(why)),
                    }
                }
            }
        };
        decisions[i] = decision;
    }
    decisions
}

/// Whether a node with this decision continues from its saved progress: only when it had
/// not finished and its inputs are exactly the saved run's.
pub(crate) fn continues_progress(decision: &Decision) -> bool {
    *decision == Decision::Run(RerunReason::NotFinished)
}
