//! Workflow files for medfusion: the model, node type specs, validation and plans.
//!
//! A workflow is a DAG of typed nodes joined output port to input port. This crate reads
//! workflow files (YAML or JSON, with the line of every part), holds the catalog of node
//! types (their ports and config schemas, extended at run time by other crates), checks a
//! workflow against it (reporting every problem at once, each with its node, edge and
//! line) and turns a valid workflow into a [`Plan`]: topological order, dependencies,
//! parallel levels and configs with defaults. It knows nothing of execution.
//!
//! A node type's settings are best written as one typed struct implementing
//! [`NodeConfig`]: [`ConfigSchema::of`] derives the spec's keys, ranges, defaults and
//! descriptions from it, and the same schema's [`ConfigSchema::parse`] is how the node reads
//! its config, so validation accepts exactly what the node will run. The builder below is the
//! hand-written form of the same schema.
//!
//! ```
//! use medfusion_graph::{
//!     ConfigField, ConfigSchema, FieldKind, NodeCatalog, NodeSpec, PortSpec, PortType,
//!     Workflow, validate,
//! };
//!
//! let mut catalog = NodeCatalog::new();
//! catalog.register(
//!     NodeSpec::new("source", "Makes a number")
//!         .output(PortSpec::output("out", PortType::Value))
//!         .with_config(ConfigSchema::new().field(
//!             ConfigField::new("value", FieldKind::Integer { min: Some(0), max: None })
//!                 .default_value(1),
//!         )),
//! )?;
//! catalog.register(
//!     NodeSpec::new("sink", "Takes a number").input(PortSpec::required("in", PortType::Value)),
//! )?;
//!
//! let workflow = Workflow::parse_sniffed(
//!     "name: demo\n\
//!      nodes:\n  - { id: a, type: source }\n  - { id: b, type: sink }\n\
//!      edges:\n  - { from: a.out, to: b.in }\n",
//! )?;
//! let plan = validate(workflow, &catalog)?;
//! assert_eq!(plan.order(), [0, 1]);
//! assert_eq!(plan.config(0)["value"], 1);
//!
//! let bad = Workflow::parse_sniffed(
//!     "name: demo\nnodes:\n  - { id: a, type: sorce }\n  - { id: b, type: sink }\n",
//! )?;
//! let err = validate(bad, &catalog).unwrap_err();
//! let problems = err.problems().unwrap();
//! assert_eq!(problems.problems.len(), 2); // the unknown type and b's missing input
//! assert!(problems.problems[0].to_string().contains("did you mean `source`?"));
//! # Ok::<(), medfusion_graph::Error>(())
//! ```
//!
//! ## Feature flags
//!
//! This crate has no feature flags.
#![warn(missing_docs)]

mod config;
mod dag;
mod error;
mod export;
mod parse;
mod plan;
mod problem;
mod schema;
mod spec;
mod typed;
mod validate;
mod workflow;

pub use config::{ConfigField, ConfigIssue, ConfigSchema, FieldKind};
pub use dag::{Dag, is_cycle};
pub use error::Error;
pub use export::{to_dot, to_mermaid};
pub use parse::Format;
pub use plan::{InputBinding, Plan};
pub use problem::{EdgeEnd, Problem, ProblemKind, Problems};
pub use schema::workflow_schema;
pub use spec::{NodeCatalog, NodeSpec, PortSpec, PortType};
pub use typed::{NodeConfig, REQUIRED_EXTENSION, check_config, no_default};
pub use validate::{MAX_ID_LEN, check_id, validate};
pub use workflow::{
    Edge, ExecutorSettings, HumanDuration, MemorySize, Node, PortRef, PortRefParseError, Resources,
    Workflow,
};
