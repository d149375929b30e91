//! Reading workflow files (YAML or JSON) with the line of every part.

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::{Map, Value};
use serde_saphyr::Spanned;

use crate::error::Error;
use crate::workflow::{
    EdgeLines, HumanDuration, Node, NodeLines, PortRef, Resources, SourceMap, Workflow,
};

/// The syntax of a workflow file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// YAML 1.2.
    Yaml,
    /// JSON.
    Json,
}

impl Format {
    /// The format a file name implies: `.json` is JSON, `.yaml`/`.yml` YAML.
    pub fn from_path(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "json" => Some(Format::Json),
            "yaml" | "yml" => Some(Format::Yaml),
            _ => None,
        }
    }

    /// The format the text looks like: JSON when it starts with `{`, else YAML.
    pub fn sniff(text: &str) -> Format {
        if text
            .trim_start_matches('\u{feff}')
            .trim_start()
            .starts_with('{')
        {
            Format::Json
        } else {
            Format::Yaml
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorkflow {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default)]
    nodes: Option<Vec<Spanned<RawNode>>>,
    #[serde(default)]
    edges: Option<Vec<Spanned<RawEdge>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    id: Spanned<String>,
    #[serde(rename = "type")]
    node_type: Spanned<String>,
    #[serde(default)]
    config: Option<IndexMap<String, Spanned<Value>>>,
    #[serde(default)]
    resources: Option<Resources>,
    #[serde(default)]
    retries: Option<u32>,
    #[serde(default)]
    retry_backoff: Option<HumanDuration>,
    #[serde(default)]
    timeout: Option<HumanDuration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEdge {
    from: Spanned<PortRef>,
    to: Spanned<PortRef>,
}

fn line(location: serde_saphyr::Location) -> Option<u32> {
    u32::try_from(location.line()).ok().filter(|l| *l > 0)
}

impl Workflow {
    /// Read a workflow file; `.json` files are JSON, anything else YAML (or JSON when the
    /// text starts with `{`).
    pub fn from_path(path: impl AsRef<Path>) -> Result<Workflow, Error> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let format = Format::from_path(path).unwrap_or_else(|| Format::sniff(&text));
        let mut workflow = parse(&text, format, Some(path))?;
        workflow.source.path = Some(path.to_path_buf());
        Ok(workflow)
    }

    /// Parse workflow text in the given format.
    pub fn parse(text: &str, format: Format) -> Result<Workflow, Error> {
        parse(text, format, None)
    }

    /// Parse workflow text whose format is told by its content (for standard input).
    pub fn parse_sniffed(text: &str) -> Result<Workflow, Error> {
        parse(text, Format::sniff(text), None)
    }

    /// Remember `path` as the file this workflow came from, for messages.
    pub fn with_source_path(mut self, path: impl Into<PathBuf>) -> Workflow {
        self.source.path = Some(path.into());
        self
    }
}

fn parse(text: &str, format: Format, file: Option<&Path>) -> Result<Workflow, Error> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if format == Format::Json {
        // JSON is valid YAML, so one reader gives lines for both; serde_json first keeps
        // JSON's own syntax rules and error messages for `.json` files.
        if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(text) {
            return Err(Error::Parse {
                file: file.map(Path::to_path_buf),
                line: u32::try_from(e.line()).ok().filter(|l| *l > 0),
                column: u32::try_from(e.column()).ok().filter(|c| *c > 0),
                message: json_message(&e),
            });
        }
    }
    let raw: RawWorkflow = serde_saphyr::from_str(text).map_err(|e| {
        let location = e.location();
        Error::Parse {
            file: file.map(Path::to_path_buf),
            line: location.and_then(line),
            column: location.and_then(|l| u32::try_from(l.column()).ok().filter(|c| *c > 0)),
            message: yaml_message(&e),
        }
    })?;
    Ok(convert(raw))
}

fn convert(raw: RawWorkflow) -> Workflow {
    let raw_nodes = raw.nodes.unwrap_or_default();
    let raw_edges = raw.edges.unwrap_or_default();
    let mut source = SourceMap {
        path: None,
        nodes: Vec::with_capacity(raw_nodes.len()),
        edges: Vec::with_capacity(raw_edges.len()),
    };
    let mut nodes = Vec::with_capacity(raw_nodes.len());
    for spanned in raw_nodes {
        let raw = spanned.value;
        let mut lines = NodeLines {
            node: line(spanned.referenced),
            id: line(raw.id.referenced),
            node_type: line(raw.node_type.referenced),
            config: std::collections::HashMap::default(),
        };
        let mut config = Map::new();
        for (key, value) in raw.config.unwrap_or_default() {
            if let Some(l) = line(value.referenced) {
                lines.config.insert(key.clone(), l);
            }
            config.insert(key, value.value);
        }
        source.nodes.push(lines);
        nodes.push(Node {
            id: raw.id.value,
            node_type: raw.node_type.value,
            config,
            resources: raw.resources,
            retries: raw.retries,
            retry_backoff: raw.retry_backoff,
            timeout: raw.timeout,
        });
    }
    let mut edges = Vec::with_capacity(raw_edges.len());
    for spanned in raw_edges {
        source.edges.push(EdgeLines {
            edge: line(spanned.referenced),
            from: line(spanned.value.from.referenced),
            to: line(spanned.value.to.referenced),
        });
        edges.push(crate::workflow::Edge {
            from: spanned.value.from.value,
            to: spanned.value.to.value,
        });
    }
    Workflow {
        name: raw.name,
        description: raw.description,
        seed: raw.seed,
        nodes,
        edges,
        source,
    }
}

fn json_message(e: &serde_json::Error) -> String {
    // serde_json appends " at line L column C"; the location is reported separately.
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(i) => format!("invalid JSON: {}", &text[..i]),
        None => format!("invalid JSON: {text}"),
    }
}

fn yaml_message(e: &serde_saphyr::Error) -> String {
    let options = serde_saphyr::render_options! { snippets: serde_saphyr::SnippetMode::Off };
    let text = e.without_snippet().render_with_options(options);
    let first = text.lines().next().unwrap_or("").trim();
    strip_location(first).to_string()
}

/// Drop a trailing " at line L, column C" (the location is reported separately).
fn strip_location(text: &str) -> &str {
    text.rfind(" at line ").map_or(text, |i| &text[..i])
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = "\
name: demo
seed: 7
nodes:
  - id: data
    type: dataset.synthetic
    config: { samples: 100, image_size: 32 }
  - id: train
    type: train.classifier
    config:
      epochs: 3
      learning_rate: 1.0e-3
edges:
  - { from: data.train, to: train.train_data }
";

    #[test]
    fn yaml_gives_values_and_lines() {
        let w = Workflow::parse(YAML, Format::Yaml).unwrap();
        assert_eq!(w.name, "demo");
        assert_eq!(w.seed, Some(7));
        assert_eq!(w.nodes.len(), 2);
        assert_eq!(
            w.nodes[1].config["learning_rate"],
            serde_json::json!(1.0e-3)
        );
        assert_eq!(w.node_line(0), Some(4));
        assert_eq!(w.node_line(1), Some(7));
        assert_eq!(w.edge_line(0), Some(13));
        assert_eq!(w.node_lines(1).unwrap().config["epochs"], 10);
        let keys: Vec<_> = w.nodes[0].config.keys().collect();
        assert_eq!(keys, ["samples", "image_size"], "config order is kept");
    }

    #[test]
    fn json_round_trips_and_has_lines() {
        let w = Workflow::parse(YAML, Format::Yaml).unwrap();
        let json = w.to_json_pretty();
        assert_eq!(Format::sniff(&json), Format::Json);
        let back = Workflow::parse(&json, Format::Json).unwrap();
        assert_eq!(back.nodes, w.nodes);
        assert_eq!(back.edges, w.edges);
        assert!(back.node_line(1).is_some());
    }

    #[test]
    fn json_with_tabs_parses() {
        let json = "{\n\t\"name\": \"t\",\n\t\"nodes\": [\n\t\t{\"id\": \"a\", \"type\": \"util.noop\"}\n\t]\n}";
        let w = Workflow::parse(json, Format::Json).unwrap();
        assert_eq!(w.nodes[0].id, "a");
    }

    #[test]
    fn errors_name_the_line() {
        let err =
            Workflow::parse("name: x\nnodes:\n  - id: a\n    typ: b\n", Format::Yaml).unwrap_err();
        let Error::Parse { line, message, .. } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(*line, Some(4), "{message}");
        assert!(message.contains("typ"), "{message}");

        let err = Workflow::parse("{\"name\": \"x\",}", Format::Json).unwrap_err();
        let Error::Parse { line, message, .. } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(*line, Some(1));
        assert!(message.starts_with("invalid JSON"), "{message}");
    }

    #[test]
    fn bad_port_refs_are_parse_errors_with_a_hint() {
        let err = Workflow::parse(
            "name: x\nnodes: []\nedges:\n  - { from: data, to: b.c }\n",
            Format::Yaml,
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("expected `node.port`"), "{text}");
        assert!(text.starts_with("line 4"), "{text}");
    }
}
