//! Node type specs: the ports and config schema of each node type, and the catalog of them.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::config::ConfigSchema;
use crate::error::Error;
use crate::workflow::Resources;

/// The kind of value that flows through a port.
///
/// Written in specs and messages as `dataset.image`, `dataset.tabular`,
/// `dataset.multimodal`, `model`, `metrics`, `predictions`, `files`, `value`, or any other
/// dotted name for custom types.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum PortType {
    /// Images with labels.
    ImageDataset,
    /// Rows of features with labels.
    TabularDataset,
    /// Images and table rows joined per sample, with labels.
    MultimodalDataset,
    /// A trained model.
    Model,
    /// Evaluation metrics.
    Metrics,
    /// Per-sample predictions.
    Predictions,
    /// Files and folders on disk (what shell nodes read and write).
    Files,
    /// A generic JSON value.
    Value,
    /// A type defined by a custom node type.
    Custom(String),
}

impl PortType {
    /// The name used in files and messages.
    pub fn name(&self) -> &str {
        match self {
            PortType::ImageDataset => "dataset.image",
            PortType::TabularDataset => "dataset.tabular",
            PortType::MultimodalDataset => "dataset.multimodal",
            PortType::Model => "model",
            PortType::Metrics => "metrics",
            PortType::Predictions => "predictions",
            PortType::Files => "files",
            PortType::Value => "value",
            PortType::Custom(name) => name,
        }
    }
}

impl fmt::Display for PortType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for PortType {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<PortType, Self::Err> {
        Ok(match s {
            "dataset.image" => PortType::ImageDataset,
            "dataset.tabular" => PortType::TabularDataset,
            "dataset.multimodal" => PortType::MultimodalDataset,
            "model" => PortType::Model,
            "metrics" => PortType::Metrics,
            "predictions" => PortType::Predictions,
            "files" => PortType::Files,
            "value" => PortType::Value,
            other => PortType::Custom(other.to_string()),
        })
    }
}

impl Serialize for PortType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for PortType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<PortType, D::Error> {
        let name = String::deserialize(deserializer)?;
        Ok(name.parse().unwrap_or(PortType::Value))
    }
}

/// One input or output port of a node type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PortSpec {
    /// The port's name, unique among the node type's inputs (or outputs).
    pub name: String,
    /// The type of value it carries.
    #[serde(rename = "type")]
    pub port_type: PortType,
    /// For inputs: whether the node cannot run without it.
    #[serde(default)]
    pub required: bool,
    /// For inputs: further types this port takes besides `port_type`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also_accepts: Vec<PortType>,
    /// For inputs: whether several edges may feed it (the node then gets a list, in edge
    /// order); otherwise an input takes one edge.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub multiple: bool,
    /// One line on what the port carries.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

impl PortSpec {
    /// A required input port.
    pub fn required(name: impl Into<String>, port_type: PortType) -> PortSpec {
        PortSpec {
            name: name.into(),
            port_type,
            required: true,
            also_accepts: Vec::new(),
            multiple: false,
            description: String::new(),
        }
    }

    /// An optional input port, or an output port.
    pub fn optional(name: impl Into<String>, port_type: PortType) -> PortSpec {
        PortSpec {
            required: false,
            ..PortSpec::required(name, port_type)
        }
    }

    /// An output port.
    pub fn output(name: impl Into<String>, port_type: PortType) -> PortSpec {
        PortSpec::optional(name, port_type)
    }

    /// Let this input also take values of `port_type`.
    pub fn accepting(mut self, port_type: PortType) -> PortSpec {
        self.also_accepts.push(port_type);
        self
    }

    /// Let several edges feed this input.
    pub fn multiple(mut self) -> PortSpec {
        self.multiple = true;
        self
    }

    /// Set the one-line description.
    pub fn describe(mut self, description: impl Into<String>) -> PortSpec {
        self.description = description.into();
        self
    }

    /// Whether this input takes a value of type `produced`.
    ///
    /// The rule lives here, with the spec: a port takes its own type, whatever it lists in
    /// `also_accepts`, and a `value` port takes anything.
    pub fn accepts(&self, produced: &PortType) -> bool {
        self.port_type == *produced
            || self.port_type == PortType::Value
            || self.also_accepts.contains(produced)
    }
}

/// Everything the validator and tools know about a node type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeSpec {
    /// The type name used in workflow files, such as `train.classifier`.
    pub node_type: String,
    /// One line on what the node does.
    #[serde(default)]
    pub description: String,
    /// Input ports.
    #[serde(default)]
    pub inputs: Vec<PortSpec>,
    /// Output ports.
    #[serde(default)]
    pub outputs: Vec<PortSpec>,
    /// The config keys the node takes.
    #[serde(default)]
    pub config: ConfigSchema,
    /// Resources the node holds unless its `resources` says otherwise.
    #[serde(default)]
    pub default_resources: Resources,
}

impl NodeSpec {
    /// A spec with no ports and no config.
    pub fn new(node_type: impl Into<String>, description: impl Into<String>) -> NodeSpec {
        NodeSpec {
            node_type: node_type.into(),
            description: description.into(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            config: ConfigSchema::default(),
            default_resources: Resources::default(),
        }
    }

    /// Add an input port.
    pub fn input(mut self, port: PortSpec) -> NodeSpec {
        self.inputs.push(port);
        self
    }

    /// Add an output port.
    pub fn output(mut self, port: PortSpec) -> NodeSpec {
        self.outputs.push(port);
        self
    }

    /// Set the config schema.
    pub fn with_config(mut self, config: ConfigSchema) -> NodeSpec {
        self.config = config;
        self
    }

    /// Set the config schema to the one derived from the typed settings `T`, which the
    /// node also parses its config into ([`ConfigSchema::of`]).
    pub fn with_config_type<T: crate::NodeConfig>(self) -> NodeSpec {
        self.with_config(ConfigSchema::of::<T>())
    }

    /// Set the resources held by default.
    pub fn with_default_resources(mut self, resources: Resources) -> NodeSpec {
        self.default_resources = resources;
        self
    }

    /// The input port with this name.
    pub fn input_port(&self, name: &str) -> Option<&PortSpec> {
        self.inputs.iter().find(|p| p.name == name)
    }

    /// The output port with this name.
    pub fn output_port(&self, name: &str) -> Option<&PortSpec> {
        self.outputs.iter().find(|p| p.name == name)
    }
}

/// The node types a workflow may use, by type name.
///
/// Crates add their node types at run time with [`NodeCatalog::register`]; the validator
/// checks workflows against it.
#[derive(Debug, Clone, Default)]
pub struct NodeCatalog {
    specs: BTreeMap<String, Arc<NodeSpec>>,
}

impl NodeCatalog {
    /// An empty catalog.
    pub fn new() -> NodeCatalog {
        NodeCatalog::default()
    }

    /// Add a node type; a type name can be registered once.
    pub fn register(&mut self, spec: NodeSpec) -> Result<(), Error> {
        if self.specs.contains_key(&spec.node_type) {
            return Err(Error::DuplicateNodeType {
                node_type: spec.node_type,
            });
        }
        check_spec(&spec)?;
        self.specs.insert(spec.node_type.clone(), Arc::new(spec));
        Ok(())
    }

    /// The spec of a node type.
    pub fn get(&self, node_type: &str) -> Option<&Arc<NodeSpec>> {
        self.specs.get(node_type)
    }

    /// Whether the type is registered.
    pub fn contains(&self, node_type: &str) -> bool {
        self.specs.contains_key(node_type)
    }

    /// All specs, ordered by type name.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<NodeSpec>> {
        self.specs.values()
    }

    /// The registered type names, ordered.
    pub fn type_names(&self) -> impl Iterator<Item = &str> {
        self.specs.keys().map(String::as_str)
    }

    /// How many node types are registered.
    pub fn len(&self) -> usize {
        self.specs.len()
    }

    /// Whether no node type is registered.
    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }
}

fn check_spec(spec: &NodeSpec) -> Result<(), Error> {
    let invalid = |reason: String| Error::InvalidSpec {
        node_type: spec.node_type.clone(),
        reason,
    };
    if spec.node_type.is_empty() {
        return Err(invalid("the type name is empty".into()));
    }
    for (side, ports) in [("input", &spec.inputs), ("output", &spec.outputs)] {
        for (i, port) in ports.iter().enumerate() {
            if port.name.is_empty() {
                return Err(invalid(format!("{side} port {i} has no name")));
            }
            if ports[..i].iter().any(|p| p.name == port.name) {
                return Err(invalid(format!(
                    "{side} port `{}` is declared twice",
                    port.name
                )));
            }
        }
    }
    spec.config.check_schema().map_err(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compatibility_is_decided_by_the_input_spec() {
        let image = PortSpec::required("data", PortType::ImageDataset);
        assert!(image.accepts(&PortType::ImageDataset));
        assert!(!image.accepts(&PortType::MultimodalDataset));
        let lenient = image.clone().accepting(PortType::MultimodalDataset);
        assert!(lenient.accepts(&PortType::MultimodalDataset));
        assert!(!lenient.accepts(&PortType::Model));
        let any = PortSpec::required("x", PortType::Value);
        assert!(any.accepts(&PortType::Custom("my.thing".into())));
    }

    #[test]
    fn port_type_names_round_trip() {
        for name in [
            "dataset.image",
            "dataset.tabular",
            "dataset.multimodal",
            "model",
            "files",
            "x.y",
        ] {
            assert_eq!(name.parse::<PortType>().unwrap().name(), name);
        }
    }

    #[test]
    fn catalog_refuses_a_type_twice_and_bad_specs() {
        let mut catalog = NodeCatalog::new();
        catalog.register(NodeSpec::new("a.b", "")).unwrap();
        assert!(matches!(
            catalog.register(NodeSpec::new("a.b", "")),
            Err(Error::DuplicateNodeType { .. })
        ));
        let twice = NodeSpec::new("c", "")
            .input(PortSpec::required("x", PortType::Model))
            .input(PortSpec::required("x", PortType::Model));
        assert!(matches!(
            catalog.register(twice),
            Err(Error::InvalidSpec { .. })
        ));
    }
}
