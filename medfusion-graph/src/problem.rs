//! Validation problems: what is wrong with a workflow, and where.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Value, json};

use crate::config::ConfigIssue;
use crate::spec::PortType;
use crate::workflow::PortRef;

/// Which end of an edge a problem is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EdgeEnd {
    /// The producing end (`from`).
    From,
    /// The consuming end (`to`).
    To,
}

impl fmt::Display for EdgeEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EdgeEnd::From => "from",
            EdgeEnd::To => "to",
        })
    }
}

/// What is wrong.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ProblemKind {
    /// The workflow has no nodes.
    NoNodes,
    /// The workflow's name cannot be used in checkpoint paths.
    InvalidWorkflowName {
        /// The name as written.
        name: String,
        /// Why it is refused.
        reason: String,
    },
    /// A node id is not safe as a file name.
    InvalidNodeId {
        /// The id as written.
        id: String,
        /// Why it is refused.
        reason: String,
    },
    /// Two nodes share an id.
    DuplicateNodeId {
        /// The id.
        id: String,
        /// The line of the first node with this id.
        first_line: Option<u32>,
    },
    /// The node type is not registered.
    UnknownNodeType {
        /// The type as written.
        node_type: String,
        /// The closest registered type.
        suggestion: Option<String>,
    },
    /// An edge names a node that does not exist.
    UnknownNode {
        /// Which end.
        end: EdgeEnd,
        /// The node id as written.
        node: String,
        /// The closest node id.
        suggestion: Option<String>,
    },
    /// An edge names a port the node type does not have.
    UnknownPort {
        /// Which end.
        end: EdgeEnd,
        /// The port as written.
        port: PortRef,
        /// The node's type.
        node_type: String,
        /// The ports that exist on that side.
        available: Vec<String>,
        /// The closest port name.
        suggestion: Option<String>,
    },
    /// The output's type is not taken by the input.
    PortTypeMismatch {
        /// The producing port.
        from: PortRef,
        /// Its type.
        from_type: PortType,
        /// The consuming port.
        to: PortRef,
        /// The types the input takes.
        accepted: Vec<PortType>,
    },
    /// Two edges feed one input.
    DuplicateInput {
        /// The input port.
        to: PortRef,
        /// The index of the first edge into it.
        first_edge: usize,
        /// The line of the first edge into it.
        first_line: Option<u32>,
    },
    /// A required input has no edge.
    MissingInput {
        /// The input port.
        port: PortRef,
        /// Its type.
        port_type: PortType,
    },
    /// A config key is unknown, missing, mistyped or out of range.
    Config(ConfigIssue),
    /// Nodes depend on each other in a loop.
    Cycle {
        /// The node ids in the order data flows between them; the last feeds the first.
        path: Vec<String>,
    },
}

/// One problem found by validation, with where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// What is wrong.
    pub kind: ProblemKind,
    /// The node it is about, if any.
    pub node: Option<String>,
    /// The edge it is about (its index in the file), if any.
    pub edge: Option<usize>,
    /// The 1-based line in the workflow file, where the parser knew it.
    pub line: Option<u32>,
}

impl Problem {
    pub(crate) fn new(kind: ProblemKind) -> Problem {
        Problem {
            kind,
            node: None,
            edge: None,
            line: None,
        }
    }

    pub(crate) fn at_node(mut self, node: &str, line: Option<u32>) -> Problem {
        self.node = Some(node.to_string());
        self.line = line;
        self
    }

    pub(crate) fn at_edge(mut self, edge: usize, line: Option<u32>) -> Problem {
        self.edge = Some(edge);
        self.line = line;
        self
    }

    /// A short stable code for the kind of problem (`unknown-node-type`, `cycle`, ...).
    pub fn code(&self) -> &'static str {
        match &self.kind {
            ProblemKind::NoNodes => "no-nodes",
            ProblemKind::InvalidWorkflowName { .. } => "invalid-workflow-name",
            ProblemKind::InvalidNodeId { .. } => "invalid-node-id",
            ProblemKind::DuplicateNodeId { .. } => "duplicate-node-id",
            ProblemKind::UnknownNodeType { .. } => "unknown-node-type",
            ProblemKind::UnknownNode { .. } => "unknown-node",
            ProblemKind::UnknownPort { .. } => "unknown-port",
            ProblemKind::PortTypeMismatch { .. } => "port-type-mismatch",
            ProblemKind::DuplicateInput { .. } => "duplicate-input",
            ProblemKind::MissingInput { .. } => "missing-input",
            ProblemKind::Config(ConfigIssue::UnknownKey { .. }) => "unknown-config-key",
            ProblemKind::Config(ConfigIssue::Missing { .. }) => "missing-config-key",
            ProblemKind::Config(_) => "invalid-config-value",
            ProblemKind::Cycle { .. } => "cycle",
        }
    }

    /// The problem as one line, prefixed with `file:line` when both are known.
    pub fn render(&self, file: Option<&Path>) -> String {
        match (file, self.line) {
            (Some(f), Some(l)) => format!("{}:{l}: {self}", f.display()),
            (Some(f), None) => format!("{}: {self}", f.display()),
            (None, Some(l)) => format!("line {l}: {self}"),
            (None, None) => self.to_string(),
        }
    }

    /// The problem as a JSON object (`code`, `message`, `node`, `edge`, `line`, `file`).
    pub fn to_json(&self, file: Option<&Path>) -> Value {
        json!({
            "code": self.code(),
            "message": self.to_string(),
            "node": self.node,
            "edge": self.edge,
            "line": self.line,
            "file": file.map(|f| f.display().to_string()),
        })
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(node) = &self.node {
            write!(f, "node `{node}`: ")?;
        } else if let Some(edge) = self.edge {
            write!(f, "edge {}: ", edge + 1)?;
        }
        write!(f, "{}", self.kind)
    }
}

fn did_you_mean(f: &mut fmt::Formatter<'_>, suggestion: Option<&String>) -> fmt::Result {
    match suggestion {
        Some(s) => write!(f, "; did you mean `{s}`?"),
        None => Ok(()),
    }
}

fn list(
    f: &mut fmt::Formatter<'_>,
    items: impl IntoIterator<Item = impl fmt::Display>,
) -> fmt::Result {
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "`{item}`")?;
    }
    Ok(())
}

impl fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProblemKind::NoNodes => f.write_str("the workflow has no nodes"),
            ProblemKind::InvalidWorkflowName { name, reason } => {
                write!(f, "invalid workflow name `{name}`: {reason}")
            }
            ProblemKind::InvalidNodeId { id, reason } => {
                write!(f, "invalid node id `{id}`: {reason}")
            }
            ProblemKind::DuplicateNodeId { id, first_line } => {
                write!(f, "duplicate node id `{id}`")?;
                if let Some(l) = first_line {
                    write!(f, " (first defined on line {l})")?;
                }
                Ok(())
            }
            ProblemKind::UnknownNodeType {
                node_type,
                suggestion,
            } => {
                write!(f, "unknown node type `{node_type}`")?;
                did_you_mean(f, suggestion.as_ref())?;
                if suggestion.is_none() {
                    f.write_str(" (`medfusion nodes` lists the node types)")?;
                }
                Ok(())
            }
            ProblemKind::UnknownNode {
                end,
                node,
                suggestion,
            } => {
                write!(f, "`{end}` names unknown node `{node}`")?;
                did_you_mean(f, suggestion.as_ref())
            }
            ProblemKind::UnknownPort {
                end,
                port,
                node_type,
                available,
                suggestion,
            } => {
                let side = if *end == EdgeEnd::From {
                    "output"
                } else {
                    "input"
                };
                write!(
                    f,
                    "`{port}`: node type `{node_type}` has no {side} port `{}`",
                    port.port
                )?;
                if let Some(s) = suggestion {
                    write!(f, "; did you mean `{s}`?")?;
                } else if available.is_empty() {
                    write!(f, " (it has no {side} ports)")?;
                } else {
                    write!(f, " (its {side} ports: ")?;
                    list(f, available)?;
                    f.write_str(")")?;
                }
                Ok(())
            }
            ProblemKind::PortTypeMismatch {
                from,
                from_type,
                to,
                accepted,
            } => {
                write!(
                    f,
                    "port type mismatch: `{from}` gives `{from_type}` but `{to}` takes "
                )?;
                list(f, accepted)
            }
            ProblemKind::DuplicateInput {
                to,
                first_edge,
                first_line,
            } => {
                write!(
                    f,
                    "input `{to}` already has an edge (edge {}",
                    first_edge + 1
                )?;
                if let Some(l) = first_line {
                    write!(f, ", line {l}")?;
                }
                f.write_str("); an input takes one edge")
            }
            ProblemKind::MissingInput { port, port_type } => {
                write!(
                    f,
                    "missing required input `{}` ({port_type}); add an edge `{{ from: <node>.<port>, to: {port} }}`",
                    port.port
                )
            }
            ProblemKind::Config(issue) => write!(f, "{issue}"),
            ProblemKind::Cycle { path } => {
                f.write_str("cycle: ")?;
                for id in path {
                    write!(f, "`{id}` -> ")?;
                }
                match path.first() {
                    Some(first) => write!(f, "`{first}`"),
                    None => Ok(()),
                }
            }
        }
    }
}

/// Every problem validation found in one workflow.
#[derive(Debug, Clone, PartialEq)]
pub struct Problems {
    /// The workflow file, where known.
    pub file: Option<PathBuf>,
    /// The problems, in the order found.
    pub problems: Vec<Problem>,
}

impl Problems {
    /// The problems as a JSON array.
    pub fn to_json(&self) -> Value {
        Value::Array(
            self.problems
                .iter()
                .map(|p| p.to_json(self.file.as_deref()))
                .collect(),
        )
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(
            f,
            "the workflow has {n} problem{}",
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            write!(f, "\n  {}", p.render(self.file.as_deref()))?;
        }
        Ok(())
    }
}

impl Serialize for Problems {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(serializer)
    }
}
