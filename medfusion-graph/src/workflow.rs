//! The workflow model: what a workflow file holds once parsed.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// A workflow: named nodes of registered types, joined port to port by edges.
///
/// Read one with [`Workflow::from_path`], [`Workflow::from_reader`] or
/// [`Workflow::parse`]; check it with [`validate`](crate::validate), which turns it into a
/// [`Plan`](crate::Plan).
///
/// # Limits
///
/// Workflow files are outside input, so reading one is bounded: at most
/// [`Workflow::MAX_FILE_BYTES`] (64 MiB) are read from a file or stream (a larger one,
/// or one that never ends such as `/dev/zero`, is refused with
/// [`Error::TooLarge`](crate::Error::TooLarge)); at most [`Workflow::MAX_YAML_VALUES`]
/// YAML values (room for well over 100,000 nodes); and YAML aliases (`*name`) may
/// expand to at most 1,000,000 values, at most ten per anchor once there are 100, nested
/// at most 64 deep, so that an alias bomb ("billion laughs": a few lines that stand for
/// billions of values) is refused before it is expanded. Lists and mappings nest at most
/// 64 deep. Each refusal says what was exceeded and the limit, with the file and line.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Workflow {
    /// The workflow's name; checkpoints are grouped under it.
    pub name: String,
    /// Free text shown by `medfusion graph` and in reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The seed every random choice of the run derives from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// The nodes, in file order.
    pub nodes: Vec<Node>,
    /// Connections from an output port to an input port.
    #[serde(default)]
    pub edges: Vec<Edge>,
    /// Where the nodes run: in the `medfusion run` process (the default), or as jobs of a
    /// batch scheduler (`{ type: slurm, partition: gpu, ... }`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor: Option<ExecutorSettings>,
    /// Where each part came from in the file, when it was read from one.
    #[serde(skip)]
    #[schemars(skip)]
    pub(crate) source: SourceMap,
}

/// One step of a workflow.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Node {
    /// Unique within the workflow, made of `[A-Za-z0-9_-]` (at most 64 characters): ids
    /// become file names in checkpoints.
    pub id: String,
    /// The registered node type, such as `train.classifier`.
    #[serde(rename = "type")]
    pub node_type: String,
    /// Settings checked against the node type's config schema.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub config: Map<String, Value>,
    /// What the node holds while it runs; the node type's defaults apply when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    /// How many times a failed attempt is retried (0 = no retry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// Wait before the first retry; doubled for every further one (e.g. `2s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_backoff: Option<HumanDuration>,
    /// Longest time one attempt may take (e.g. `30m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<HumanDuration>,
    /// Where this node runs: `local` keeps a cheap node in the `medfusion run` process when
    /// the workflow's executor sends the others to a cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor: Option<String>,
}

/// Where a workflow's nodes run, and the executor's options.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ExecutorSettings {
    /// `local` (in the `medfusion run` process) or `slurm` (each node a Slurm job).
    #[serde(rename = "type")]
    pub kind: String,
    /// The executor's own options (for Slurm: `partition`, `account`, `qos`, `options`).
    #[serde(flatten)]
    pub options: Map<String, Value>,
}

/// Resources a node holds while it runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// GPUs held for the whole run of the node.
    #[serde(default)]
    pub gpus: u32,
    /// CPU cores for the node (a cluster job asks for this many).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u32>,
    /// Memory for the node, such as `16G` or `512M` (a cluster job asks for this much).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemorySize>,
    /// The longest a cluster job of the node may run, such as `2h` (its time limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<HumanDuration>,
}

impl Resources {
    /// `gpus` GPUs and nothing else said.
    pub fn gpus(gpus: u32) -> Resources {
        Resources {
            gpus,
            ..Resources::default()
        }
    }
}

/// An amount of memory written the way batch schedulers take it: `512M`, `16G`, `1T`
/// (binary units; a bare number is megabytes, as in Slurm's `--mem`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MemorySize(pub u64);

impl MemorySize {
    /// The size in bytes.
    pub fn bytes(self) -> u64 {
        self.0
    }

    /// The size in whole megabytes, rounded up (Slurm's `--mem` unit).
    pub fn megabytes(self) -> u64 {
        self.0.div_ceil(1 << 20)
    }
}

impl fmt::Display for MemorySize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (unit, shift) in [("T", 40), ("G", 30), ("M", 20), ("K", 10)] {
            if self.0 >= 1 << shift && self.0.is_multiple_of(1 << shift) {
                return write!(f, "{}{unit}", self.0 >> shift);
            }
        }
        write!(f, "{}", self.0)
    }
}

impl FromStr for MemorySize {
    type Err = String;

    fn from_str(text: &str) -> Result<MemorySize, String> {
        let t = text.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (digits, unit) = t.split_at(split);
        let n: u64 = digits.parse().map_err(|_| {
            format!("`{text}` is not an amount of memory (write it like `512M` or `16G`)")
        })?;
        let shift = match unit.trim().to_ascii_uppercase().trim_end_matches('B') {
            "" | "M" => 20,
            "K" => 10,
            "G" => 30,
            "T" => 40,
            _ => {
                return Err(format!(
                    "`{text}` has an unknown unit (use K, M, G or T, as in `16G`)"
                ));
            }
        };
        n.checked_mul(1 << shift)
            .map(MemorySize)
            .ok_or_else(|| format!("`{text}` is too large"))
    }
}

impl Serialize for MemorySize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MemorySize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<MemorySize, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Megabytes(u64),
            Text(String),
        }
        match Repr::deserialize(deserializer)? {
            Repr::Megabytes(n) => Ok(MemorySize(n.saturating_mul(1 << 20))),
            Repr::Text(text) => text.parse().map_err(serde::de::Error::custom),
        }
    }
}

impl JsonSchema for MemorySize {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "MemorySize".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": ["string", "integer"],
            "description": "Memory such as `512M` or `16G` (a bare number is megabytes)"
        })
    }
}

/// An edge from one node's output port to another node's input port.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Edge {
    /// The producing end, `node.port`.
    pub from: PortRef,
    /// The consuming end, `node.port`.
    pub to: PortRef,
}

/// A port of a node, written `node.port` in workflow files.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortRef {
    /// The node id.
    pub node: String,
    /// The port name.
    pub port: String,
}

impl PortRef {
    /// A reference to `port` of `node`.
    pub fn new(node: impl Into<String>, port: impl Into<String>) -> PortRef {
        PortRef {
            node: node.into(),
            port: port.into(),
        }
    }
}

impl fmt::Display for PortRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.node, self.port)
    }
}

/// The text is not of the form `node.port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRefParseError {
    text: String,
}

impl fmt::Display for PortRefParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "expected `node.port`, found `{}` (an edge joins a port of one node to a port of \
             another, e.g. `data.train`)",
            self.text
        )
    }
}

impl std::error::Error for PortRefParseError {}

impl FromStr for PortRef {
    type Err = PortRefParseError;

    fn from_str(s: &str) -> Result<PortRef, PortRefParseError> {
        // Node ids cannot contain dots, so the first dot ends the id.
        match s.split_once('.') {
            Some((node, port)) if !node.is_empty() && !port.is_empty() => {
                Ok(PortRef::new(node, port))
            }
            _ => Err(PortRefParseError {
                text: s.to_string(),
            }),
        }
    }
}

impl Serialize for PortRef {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PortRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<PortRef, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for PortRef {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "PortRef".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A node's port: `node.port`",
            "pattern": "^[A-Za-z0-9_-]+\\.[A-Za-z0-9_.-]+$"
        })
    }
}

/// A duration written the human way in workflow files: `500ms`, `2s`, `1h 30m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct HumanDuration(pub Duration);

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        humantime::format_duration(self.0).fmt(f)
    }
}

impl FromStr for HumanDuration {
    type Err = humantime::DurationError;

    fn from_str(s: &str) -> Result<HumanDuration, Self::Err> {
        humantime::parse_duration(s).map(HumanDuration)
    }
}

impl From<Duration> for HumanDuration {
    fn from(d: Duration) -> HumanDuration {
        HumanDuration(d)
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<HumanDuration, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(|e| {
            serde::de::Error::custom(format_args!(
                "invalid duration `{text}`: {e} (write it like `500ms`, `2s` or `1h 30m`)"
            ))
        })
    }
}

impl JsonSchema for HumanDuration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "format": "duration",
            "description": "A duration such as `500ms`, `2s` or `1h 30m`"
        })
    }
}

/// Lines (1-based) of the parts of a workflow in the file it was read from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SourceMap {
    pub(crate) path: Option<PathBuf>,
    pub(crate) nodes: Vec<NodeLines>,
    pub(crate) edges: Vec<EdgeLines>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct NodeLines {
    pub(crate) node: Option<u32>,
    pub(crate) id: Option<u32>,
    pub(crate) node_type: Option<u32>,
    pub(crate) config: HashMap<String, u32>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct EdgeLines {
    pub(crate) edge: Option<u32>,
    pub(crate) from: Option<u32>,
    pub(crate) to: Option<u32>,
}

impl Workflow {
    /// A workflow built in code rather than read from a file.
    pub fn new(name: impl Into<String>, nodes: Vec<Node>, edges: Vec<Edge>) -> Workflow {
        Workflow {
            name: name.into(),
            nodes,
            edges,
            ..Workflow::default()
        }
    }

    /// The file this workflow was read from, if any.
    pub fn source_path(&self) -> Option<&Path> {
        self.source.path.as_deref()
    }

    /// The line of node `index` (its position in [`Workflow::nodes`]) in the source file.
    pub fn node_line(&self, index: usize) -> Option<u32> {
        let lines = self.source.nodes.get(index)?;
        lines.id.or(lines.node)
    }

    /// The line of edge `index` (its position in [`Workflow::edges`]) in the source file.
    pub fn edge_line(&self, index: usize) -> Option<u32> {
        self.source.edges.get(index)?.edge
    }

    /// The index of the node with this id, if there is one (the first, if ids repeat).
    pub fn node_index(&self, id: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.id == id)
    }

    /// The node with this id, if there is one.
    pub fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// Set config `key` of node `node` to `value` (a command-line override such as
    /// `--set train.epochs=1`); the node must exist.
    pub fn set_config(&mut self, node: &str, key: &str, value: Value) -> Result<(), String> {
        let Some(n) = self.nodes.iter_mut().find(|n| n.id == node) else {
            let ids: Vec<&str> = self.nodes.iter().map(|n| n.id.as_str()).collect();
            return Err(format!("no node `{node}` (the nodes: {})", ids.join(", ")));
        };
        n.config.insert(key.to_string(), value);
        Ok(())
    }

    /// The workflow as pretty JSON, the form checkpoints store as `workflow.json`.
    pub fn to_json_pretty(&self) -> String {
        // A Workflow holds only strings, numbers and JSON values: serialising cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    pub(crate) fn node_lines(&self, index: usize) -> Option<&NodeLines> {
        self.source.nodes.get(index)
    }

    pub(crate) fn edge_lines(&self, index: usize) -> EdgeLines {
        self.source.edges.get(index).copied().unwrap_or_default()
    }
}

impl Node {
    /// A node of `node_type` with this id and an empty config.
    pub fn new(id: impl Into<String>, node_type: impl Into<String>) -> Node {
        Node {
            id: id.into(),
            node_type: node_type.into(),
            ..Node::default()
        }
    }

    /// Set one config value.
    pub fn with_config(mut self, key: impl Into<String>, value: impl Into<Value>) -> Node {
        self.config.insert(key.into(), value.into());
        self
    }
}

impl Edge {
    /// An edge from `from` (`node.port`) to `to` (`node.port`).
    pub fn new(from: PortRef, to: PortRef) -> Edge {
        Edge { from, to }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_ref_parses_at_first_dot() {
        let p: PortRef = "data.train".parse().unwrap();
        assert_eq!(p, PortRef::new("data", "train"));
        assert_eq!(p.to_string(), "data.train");
        assert!("data".parse::<PortRef>().is_err());
        assert!(".train".parse::<PortRef>().is_err());
        assert!("data.".parse::<PortRef>().is_err());
    }

    #[test]
    fn durations_round_trip() {
        let d: HumanDuration = "1m 30s".parse().unwrap();
        assert_eq!(d.0, Duration::from_secs(90));
        let json = serde_json::to_string(&d).unwrap();
        let back: HumanDuration = serde_json::from_str(&json).unwrap();
        assert_eq!(back, d);
        assert!(serde_json::from_str::<HumanDuration>("\"soon\"").is_err());
    }

    #[test]
    fn memory_sizes_read_like_slurm_takes_them() {
        for (text, bytes) in [
            ("512M", 512 << 20),
            ("16G", 16 << 30),
            ("16gb", 16 << 30),
            ("1T", 1 << 40),
            ("2048", 2048 << 20),
            ("64K", 64 << 10),
        ] {
            let size: MemorySize = text.parse().unwrap();
            assert_eq!(size.bytes(), bytes, "{text}");
        }
        assert_eq!("16G".parse::<MemorySize>().unwrap().megabytes(), 16 * 1024);
        assert_eq!("16G".parse::<MemorySize>().unwrap().to_string(), "16G");
        assert!("lots".parse::<MemorySize>().is_err());
        assert!("5X".parse::<MemorySize>().is_err());
        let yaml: Resources =
            serde_json::from_str(r#"{"cpus": 4, "memory": 8192, "time": "2h"}"#).unwrap();
        assert_eq!(yaml.memory.unwrap().megabytes(), 8192);
        assert_eq!(yaml.time.unwrap().0, Duration::from_hours(2));
    }
}
