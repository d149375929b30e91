//! Reading workflow files (YAML or JSON) with the line of every part.
//!
//! ## Limits
//!
//! A workflow file is outside input, so reading one is bounded:
//!
//! - **Size.** [`Workflow::from_path`] and [`Workflow::from_reader`] read at most
//!   [`Workflow::MAX_FILE_BYTES`] (64 MiB) and refuse anything larger, without reading more
//!   than one byte past the limit: a regular file's size is checked before it is read,
//!   and a stream that never ends (`/dev/zero`, a FIFO) is cut off at the limit.
//! - **YAML values.** A file may hold at most [`Workflow::MAX_YAML_VALUES`] YAML values
//!   (scalars, lists and mappings) and twice as many parser events. That is sized for
//!   workflows of 100,000 nodes with a dozen config keys each, plus their edges; the size
//!   limit bounds ordinary files long before it.
//! - **Aliases.** YAML anchors (`&name`) and aliases (`*name`) let a few lines stand for
//!   an exponential amount of data (an "alias bomb", or "billion laughs"). Aliases may
//!   expand to at most 1,000,000 values in all, nest at most 64 deep, and number at most
//!   ten per anchor once there are 100 of them; a file past any of these is refused
//!   before it is expanded, in well under a second.
//! - **Nesting.** Lists and mappings may nest at most 64 deep.
//!
//! Every refusal is a [`Error::Parse`] (or [`Error::TooLarge`]) that says in words what
//! was exceeded and the limit, with the file and line.
//!
//! ## Messages
//!
//! Errors from the YAML and JSON readers are rewritten for the person who wrote the
//! file: they name the key (`` `retries` of node 2 must be a whole number from 0 to
//! 4294967295, found `lots` ``), the line, and, for a duplicate key, the line of its first
//! occurrence. No message names a Rust type or a reader's API.

use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use serde_saphyr::Spanned;
use serde_saphyr::budget::BudgetBreach;

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
    #[serde(default)]
    executor: Option<crate::workflow::ExecutorSettings>,
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
    #[serde(default)]
    executor: Option<String>,
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

fn column(location: serde_saphyr::Location) -> Option<u32> {
    u32::try_from(location.column()).ok().filter(|c| *c > 0)
}

/// Most alias-replayed YAML values in one file (see the module docs).
const MAX_ALIAS_EXPANSION: usize = 1_000_000;

impl Workflow {
    /// The largest workflow file [`Workflow::from_path`] and [`Workflow::from_reader`]
    /// accept: 64 MiB.
    ///
    /// Reading stops one byte past it, so a stream that never ends (`/dev/zero`, a FIFO)
    /// is refused with [`Error::TooLarge`] instead of filling memory.
    pub const MAX_FILE_BYTES: u64 = 64 << 20;

    /// The most YAML values (scalars, lists and mappings, counted before aliases expand)
    /// a workflow may hold: 10,000,000.
    ///
    /// A node with a dozen config keys is about 30 values and an edge 5, so this leaves
    /// room for workflows of well over 100,000 nodes; it exists, with the limits on
    /// aliases described in the module docs, so that a small file cannot make the reader
    /// build an enormous document.
    pub const MAX_YAML_VALUES: usize = 10_000_000;

    /// Read a workflow file; `.json` files are JSON, anything else YAML (or JSON when the
    /// text starts with `{`).
    ///
    /// Files larger than [`Workflow::MAX_FILE_BYTES`] are refused with
    /// [`Error::TooLarge`], having read at most one byte more than the limit.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Workflow, Error> {
        let path = path.as_ref();
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let metadata = file.metadata().map_err(io)?;
        // A regular file's size is known: refuse a large one before reading it. Anything
        // else (a device, a FIFO) is read up to the limit.
        if metadata.is_file() && metadata.len() > Workflow::MAX_FILE_BYTES {
            return Err(too_large(path));
        }
        Workflow::from_reader(file, path)
    }

    /// Read a workflow from `reader` (standard input, say), naming it `path` in messages:
    /// JSON if `path` ends in `.json` or the text starts with `{`, else YAML.
    ///
    /// At most [`Workflow::MAX_FILE_BYTES`] are accepted: reading stops one byte past
    /// the limit with [`Error::TooLarge`].
    pub fn from_reader(reader: impl Read, path: impl Into<PathBuf>) -> Result<Workflow, Error> {
        let path = path.into();
        let text = read_limited(reader, &path)?;
        let format = Format::from_path(&path).unwrap_or_else(|| Format::sniff(&text));
        let mut workflow = parse(&text, format, Some(&path))?;
        workflow.source.path = Some(path);
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

fn too_large(path: &Path) -> Error {
    Error::TooLarge {
        path: path.to_path_buf(),
        limit: Workflow::MAX_FILE_BYTES,
    }
}

/// The text of `reader`, refusing more than [`Workflow::MAX_FILE_BYTES`] or bytes that
/// are not UTF-8.
fn read_limited(reader: impl Read, path: &Path) -> Result<String, Error> {
    let mut bytes = Vec::new();
    reader
        .take(Workflow::MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
    if bytes.len() as u64 > Workflow::MAX_FILE_BYTES {
        return Err(too_large(path));
    }
    String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = valid.split(|b| *b == b'\n').count();
        let column = valid.len() - valid.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        Error::Parse {
            file: Some(path.to_path_buf()),
            line: u32::try_from(line).ok(),
            column: u32::try_from(column + 1).ok(),
            message: "the file is not UTF-8 text (workflow files are YAML or JSON, in UTF-8)"
                .to_string(),
        }
    })
}

/// The reader's settings: the budget and alias limits described in the module docs.
fn yaml_options() -> serde_saphyr::Options {
    let mut options = serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_nodes: Workflow::MAX_YAML_VALUES,
            max_events: 2 * Workflow::MAX_YAML_VALUES,
        },
        with_snippet: false,
    };
    options.alias_limits.max_total_replayed_events = MAX_ALIAS_EXPANSION;
    options
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
    let options = yaml_options();
    let mut path = None;
    let raw = serde_saphyr::with_deserializer_from_str_with_options(text, options.clone(), |de| {
        serde_path_to_error::deserialize::<_, RawWorkflow>(de).map_err(|e| {
            path = Some(e.path().clone());
            e.into_inner()
        })
    });
    match raw {
        Ok(raw) => Ok(convert(raw)),
        Err(e) => {
            let yaml = YamlError::new(&e, text, &options);
            let unknown_key = match yaml.error {
                serde_saphyr::Error::SerdeUnknownField { field, .. } => Some(field.as_str()),
                _ => None,
            };
            let place = path
                .as_ref()
                .map(|p| Place::of(p, unknown_key))
                .unwrap_or_default();
            Err(Error::Parse {
                file: file.map(Path::to_path_buf),
                line: yaml.line,
                column: yaml.column,
                message: yaml.message(&place),
            })
        }
    }
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
            executor: raw.executor,
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
        executor: raw.executor,
        source,
    }
}

fn json_message(e: &serde_json::Error) -> String {
    // serde_json appends " at line L column C"; the location is reported separately.
    let text = e.to_string();
    let text = text
        .rfind(" at line ")
        .map_or(text.as_str(), |i| &text[..i]);
    let text = text.replace("EOF while parsing", "the file ends inside");
    format!("invalid JSON: {text}")
}

/// Where in a workflow a reader error happened, from the path of keys and indices that
/// led to it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
enum Place {
    /// The top level, or nowhere known.
    #[default]
    Root,
    /// A top-level key: `name`, `nodes`, ...
    Key(String),
    /// Node or edge `index` (0-based), or a key inside it (`field`, dotted when nested).
    Item {
        list: &'static str,
        index: usize,
        field: Option<String>,
    },
    /// Config key `key` of node `index`.
    Config { index: usize, key: String },
}

impl Place {
    /// The place `path` leads to; with `unknown_key`, the place of the mapping holding
    /// that key (the path of an unknown key ends in the key).
    fn of(path: &serde_path_to_error::Path, unknown_key: Option<&str>) -> Place {
        use serde_path_to_error::Segment;
        // Stop at the first segment the path tracker could not name.
        let mut segments: Vec<Result<&str, usize>> = path
            .iter()
            .map_while(|s| match s {
                Segment::Map { key } => Some(Ok(key.as_str())),
                Segment::Seq { index } => Some(Err(*index)),
                Segment::Enum { .. } | Segment::Unknown => None,
            })
            .collect();
        if unknown_key.is_some() && segments.last() == unknown_key.map(Ok).as_ref() {
            segments.pop();
        }
        let mut segments = segments.into_iter().peekable();
        let Some(Ok(top)) = segments.next() else {
            return Place::Root;
        };
        let list = match top {
            "nodes" => "node",
            "edges" => "edge",
            _ => return Place::Key(top.to_string()),
        };
        let Some(Err(index)) = segments.next() else {
            return Place::Key(top.to_string());
        };
        // A node or edge is `Spanned`, which adds one `value` key below it.
        segments.next_if_eq(&Ok("value"));
        let Some(Ok(field)) = segments.next() else {
            return Place::Item {
                list,
                index,
                field: None,
            };
        };
        if list == "node"
            && field == "config"
            && let Some(Ok(key)) = segments.next()
        {
            return Place::Config {
                index,
                key: key.to_string(),
            };
        }
        let mut dotted = field.to_string();
        if !matches!(field, "id" | "type" | "from" | "to" | "config") {
            for segment in segments {
                match segment {
                    Ok(key) => {
                        dotted.push('.');
                        dotted.push_str(key);
                    }
                    Err(i) => {
                        let _ = write!(dotted, "[{i}]");
                    }
                }
            }
        }
        Place::Item {
            list,
            index,
            field: Some(dotted),
        }
    }

    /// The place in words, as the subject of a sentence: "`retries` of node 2".
    fn subject(&self) -> String {
        match self {
            Place::Root => "the workflow".to_string(),
            Place::Key(key) => format!("`{key}`"),
            Place::Item {
                list,
                index,
                field: None,
            } => format!("{list} {}", index + 1),
            Place::Item {
                list,
                index,
                field: Some(field),
            } => format!("`{field}` of {list} {}", index + 1),
            Place::Config { index, key } => format!("config `{key}` of node {}", index + 1),
        }
    }

    /// What a value here must be, in words.
    fn expected(&self) -> Option<&'static str> {
        const WHOLE_U32: &str = "a whole number from 0 to 4294967295";
        const DURATION: &str = "a duration such as `500ms`, `2s` or `1h 30m`";
        Some(match self {
            Place::Root => {
                "a mapping of workflow keys (`name`, `description`, `seed`, `nodes`, `edges`, \
                 `executor`)"
            }
            Place::Key(key) => match key.as_str() {
                "name" | "description" => "text",
                "seed" => "a whole number from 0 to 18446744073709551615",
                "nodes" => "a list of nodes (each a mapping with `id` and `type`)",
                "edges" => "a list of edges (each a mapping with `from` and `to`)",
                "executor" => "a mapping with `type` (`local` or `slurm`) and its options",
                _ => return None,
            },
            Place::Item {
                list: "node",
                field: None,
                ..
            } => {
                "a mapping with `id`, `type` and optionally `config`, `resources`, \
                  `retries`, `retry_backoff`, `timeout` and `executor`"
            }
            Place::Item {
                list: "edge",
                field: None,
                ..
            } => "a mapping with `from` and `to`, each a port written `node.port`",
            Place::Item {
                field: Some(field), ..
            } => match field.as_str() {
                "id" | "type" => "text",
                "from" | "to" => "a port written `node.port`, such as `data.train`",
                "config" => "a mapping of config keys to values",
                "resources" => "a mapping with `gpus`, `cpus`, `memory` and `time`",
                "resources.gpus" | "resources.cpus" | "retries" => WHOLE_U32,
                "retry_backoff" | "timeout" | "resources.time" => DURATION,
                "resources.memory" => "an amount of memory such as `16G` or `512M`",
                "executor" => "`local`, or the name of the workflow's executor",
                _ => return None,
            },
            Place::Item { .. } => return None,
            Place::Config { .. } => "a value (a number, text, `true`/`false`, a list or a mapping)",
        })
    }
}

/// A YAML reader error, taken apart: where it is and what went wrong.
struct YamlError<'a> {
    error: &'a serde_saphyr::Error,
    text: &'a str,
    options: &'a serde_saphyr::Options,
    line: Option<u32>,
    column: Option<u32>,
}

impl<'a> YamlError<'a> {
    fn new(
        error: &'a serde_saphyr::Error,
        text: &'a str,
        options: &'a serde_saphyr::Options,
    ) -> Self {
        let location = error.location();
        let mut inner = error.without_snippet();
        while let serde_saphyr::Error::AliasError { error, .. }
        | serde_saphyr::Error::WithSnippet { error, .. } = inner
        {
            inner = error;
        }
        let mut line = location.and_then(line);
        if matches!(inner, serde_saphyr::Error::MultipleDocuments { .. }) {
            line = line.map(|l| document_marker_line(text, l));
        }
        YamlError {
            error: inner,
            text,
            options,
            line,
            column: location.and_then(column),
        }
    }

    /// The message, with no location (that is reported beside it).
    fn message(&self, place: &Place) -> String {
        use serde_saphyr::Error as E;
        let subject = place.subject();
        let must_be = |fallback: &str| {
            let expected = place.expected().unwrap_or(fallback);
            format!("{subject} must be {expected}{}", self.found())
        };
        match self.error {
            E::DuplicateMappingKey { key, .. } => {
                let mut text = match key {
                    Some(key) => format!("duplicate key `{}`", clean(key)),
                    None => "duplicate key".to_string(),
                };
                if let Some(first) = key.as_deref().and_then(|k| self.first_occurrence(k)) {
                    let _ = write!(text, " (first at line {first})");
                }
                text.push_str("; each key may appear once in a mapping");
                text
            }
            E::MultipleDocuments { .. } => format!(
                "a workflow file holds one YAML document; found a second at line {}",
                self.line.unwrap_or(0)
            ),
            E::Budget { breach, .. } => self.budget_message(breach),
            E::AliasReplayLimitExceeded {
                max_total_replayed_events,
                ..
            } => format!(
                "aliases (`*name`) expand to more than {} values; workflow files may expand to \
                 at most that many, to refuse alias bombs",
                thousands(*max_total_replayed_events)
            ),
            E::AliasExpansionLimitExceeded {
                max_expansions_per_anchor,
                ..
            } => format!(
                "an anchor (`&name`) is used through aliases more than {} times",
                thousands(*max_expansions_per_anchor)
            ),
            E::AliasReplayStackDepthExceeded { max_depth, .. } => format!(
                "aliases (`*name`) nest more than {max_depth} deep; workflow files may nest \
                 aliases at most that deep, to refuse alias bombs"
            ),
            E::AliasReplayCounterOverflow { .. } => {
                "aliases (`*name`) expand to too many values; refused as an alias bomb".to_string()
            }
            E::RecursiveReferencesRequireWeakTypes { .. } => {
                "an alias (`*name`) refers to the value that contains it".to_string()
            }
            E::UnknownAnchor { .. } => format!(
                "alias `{}` refers to no anchor; define it first with `&name`",
                self.token().unwrap_or_else(|| "*".to_string())
            ),
            E::Eof { .. } if is_blank(self.text) => {
                "the file is empty; a workflow needs at least `name` and `nodes`".to_string()
            }
            E::Eof { .. } => "the file ends too early".to_string(),
            E::NullIntoString { .. } | E::InvalidCharNull { .. } => {
                let expected = place.expected().unwrap_or("text");
                format!("{subject} is empty; it must be {expected}")
            }
            E::Unexpected { expected, .. } => must_be(plain_expected(expected)),
            E::InvalidScalar { ty, .. } => must_be(plain_expected(ty)),
            E::SerdeInvalidType { expected, .. }
            | E::SerdeInvalidValue { expected, .. }
            | E::SerdeInvalidLength { expected, .. } => must_be(plain_expected(expected)),
            E::InvalidBooleanStrict { .. } => must_be("`true` or `false`"),
            E::InvalidCharNotSingleScalar { .. } => must_be("a single character"),
            E::UnexpectedValueForUnit { .. }
            | E::ExpectedEmptyMappingForUnitStruct { .. }
            | E::UnexpectedValueForUnitEnumVariant { .. }
            | E::ExternallyTaggedEnumExpectedScalarOrMapping { .. }
            | E::ExpectedStringKeyForExternallyTaggedEnum { .. }
            | E::TaggedScalarCannotDeserializeIntoString { .. }
            | E::BytesNotSupportedMissingBinaryTag { .. }
            | E::QuotingRequired { .. }
            | E::CannotBorrowTransformedString { .. } => must_be("a different kind of value"),
            E::SerdeUnknownField {
                field, expected, ..
            } => {
                let mut text = format!("unknown key `{field}` in {subject}");
                if !expected.is_empty() {
                    let keys: Vec<String> = expected.iter().map(|k| format!("`{k}`")).collect();
                    let _ = write!(text, "; expected one of {}", keys.join(", "));
                }
                if let Some(s) = crate::config::closest(field, expected.iter().copied()) {
                    let _ = write!(text, "; did you mean `{s}`?");
                }
                text
            }
            E::SerdeMissingField { field, .. } => format!("{subject} has no `{field}`"),
            E::Message { msg, .. } | E::SerdeVariantId { msg, .. } | E::HookError { msg, .. } => {
                match place {
                    Place::Root => msg.clone(),
                    _ => format!("{subject}: {msg}"),
                }
            }
            E::NonFiniteFloat { value, .. } => {
                format!("{subject}: `{value}` is not a finite number")
            }
            E::BinaryNotUtf8 { .. } => {
                format!("{subject}: this `!!binary` value is not UTF-8 text")
            }
            E::InvalidBinaryBase64 { .. } => {
                format!("{subject}: this `!!binary` value is not valid base64")
            }
            E::MergeValueNotMapOrSeqOfMaps { .. } => {
                "a merge key (`<<`) must be followed by a mapping or a list of mappings".to_string()
            }
            E::MergeKeyNotAllowed { .. } => "merge keys (`<<`) are not allowed here".to_string(),
            E::InvalidUtf8Input => {
                "the file is not UTF-8 text (workflow files are YAML or JSON, in UTF-8)".to_string()
            }
            E::ExternalMessage { msg, .. } => format!("invalid YAML: {}", clean(msg)),
            E::IndentationError {
                required, actual, ..
            } => format!(
                "invalid YAML: wrong indentation: expected {required}, found {actual} spaces"
            ),
            // Reader-internal faults and features workflow files do not use.
            _ => "invalid YAML: the file cannot be read as a workflow".to_string(),
        }
    }

    fn budget_message(&self, breach: &BudgetBreach) -> String {
        let budget = self.options.budget.clone().unwrap_or_default();
        let bomb =
            "to refuse alias bombs (a few lines of aliases that stand for billions of values)";
        match breach {
            BudgetBreach::Nodes { .. } => format!(
                "the file holds more than {} YAML values (single values, lists and mappings); \
                 workflow files may hold at most that many",
                thousands(budget.max_nodes)
            ),
            BudgetBreach::Events { .. } => format!(
                "the file is too large to read: more than {} YAML items (values and the ends \
                 of lists and mappings); workflow files may hold at most that many",
                thousands(budget.max_events)
            ),
            BudgetBreach::Aliases { .. } => format!(
                "the file uses more than {} aliases (`*name`); workflow files may use at most \
                 that many, {bomb}",
                thousands(budget.max_aliases)
            ),
            BudgetBreach::Anchors { .. } => format!(
                "the file defines more than {} anchors (`&name`); workflow files may define \
                 at most that many",
                thousands(budget.max_anchors)
            ),
            BudgetBreach::AliasAnchorRatio { aliases, anchors } => format!(
                "the file uses {} for {}; workflow files may use at most {} aliases per \
                 anchor, {bomb}",
                count(*aliases, "alias (`*name`)", "aliases (`*name`)"),
                count(*anchors, "anchor (`&name`)", "anchors (`&name`)"),
                budget.alias_anchor_ratio_multiplier
            ),
            BudgetBreach::RecordedAnchorEvents { .. } => format!(
                "anchored values (`&name`) are too large: together they may hold at most {} \
                 values, {bomb}",
                thousands(budget.max_recorded_anchor_events)
            ),
            BudgetBreach::RecordedAnchorBytes { .. } => format!(
                "anchored values (`&name`) are too large: together they may hold at most {} of \
                 text, {bomb}",
                bytes_in_words(budget.max_recorded_anchor_bytes as u64)
            ),
            BudgetBreach::Depth { .. } => format!(
                "lists and mappings nest more than {} deep; workflow files may nest at most \
                 that deep",
                budget.max_depth
            ),
            BudgetBreach::ScalarBytes { .. } => format!(
                "the text values of the file add up to more than {}; workflow files may hold \
                 at most that much",
                bytes_in_words(budget.max_total_scalar_bytes as u64)
            ),
            BudgetBreach::InputBytes { .. } => format!(
                "the file is larger than the {} limit for workflow files",
                bytes_in_words(Workflow::MAX_FILE_BYTES)
            ),
            BudgetBreach::MergeKeys { .. } => format!(
                "the file uses more than {} merge keys (`<<`); workflow files may use at most \
                 that many",
                thousands(budget.max_merge_keys)
            ),
            BudgetBreach::Documents { .. } => "a workflow file holds one YAML document".to_string(),
            BudgetBreach::SequenceUnbalanced => {
                "invalid YAML: a list or mapping ends that never began".to_string()
            }
            _ => "the file is too large or too complex to read as a workflow".to_string(),
        }
    }

    /// The source text of the value the error points at, for "found ..." (empty if none).
    fn found(&self) -> String {
        match self.token() {
            Some(token) if token.starts_with('[') => ", found a list".to_string(),
            Some(token) if token == "-" || token.starts_with("- ") => ", found a list".to_string(),
            Some(token) if token.starts_with('{') => ", found a mapping".to_string(),
            Some(token) => format!(", found `{token}`"),
            None => String::new(),
        }
    }

    /// The scalar (or the start of the list or mapping) at the error's location.
    fn token(&self) -> Option<String> {
        let line = usize::try_from(self.line?).ok()?;
        let column = usize::try_from(self.column?).ok()?;
        let text: String = self
            .text
            .lines()
            .nth(line - 1)?
            .chars()
            .skip(column - 1)
            .collect();
        let token = match text.chars().next()? {
            '[' | '{' => text[..1].to_string(),
            quote @ ('"' | '\'') => {
                let end = text[1..].find(quote).map_or(text.len(), |i| i + 2);
                text[..end].to_string()
            }
            _ => {
                let end = text
                    .find([',', ']', '}'])
                    .or_else(|| text.find(" #"))
                    .unwrap_or(text.len());
                text[..end].trim_end().to_string()
            }
        };
        if token.is_empty() {
            return None;
        }
        let mut token = clean(&token).replace('`', "'");
        if token.chars().count() > 40 {
            token = token.chars().take(40).collect::<String>() + "...";
        }
        Some(token)
    }

    /// The line where `key` first appears in the mapping that repeats it at the error's
    /// location.
    fn first_occurrence(&self, key: &str) -> Option<u32> {
        let at = (self.line?, self.column?);
        let mut options = self.options.clone();
        options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::PassThrough;
        let mut found = None;
        let _ = serde_saphyr::with_deserializer_from_str_with_options(self.text, options, |de| {
            FindFirst {
                key,
                at,
                found: &mut found,
            }
            .deserialize(de)
        });
        found
    }
}

/// Walks a YAML document looking for the mapping where `key` appears at `at` (line,
/// column), and records the line of the first `key` in it.
struct FindFirst<'k, 'f> {
    key: &'k str,
    at: (u32, u32),
    found: &'f mut Option<u32>,
}

impl<'de> DeserializeSeed<'de> for FindFirst<'_, '_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

/// A mapping key, as text.
struct KeyText(String);

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<KeyText, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = KeyText;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<KeyText, E> {
                Ok(KeyText(String::new()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<KeyText, A::Error> {
                while seq.next_element::<de::IgnoredAny>()?.is_some() {}
                Ok(KeyText(String::new()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<KeyText, A::Error> {
                while map
                    .next_entry::<de::IgnoredAny, de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(KeyText(String::new()))
            }
        }
        deserializer.deserialize_any(V)
    }
}

impl<'de> Visitor<'de> for FindFirst<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        self.deserialize(d)
    }
    fn visit_newtype_struct<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        self.deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq
            .next_element_seed(FindFirst {
                key: self.key,
                at: self.at,
                found: &mut *self.found,
            })?
            .is_some()
        {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut first = None;
        while let Some(key) = map.next_key::<Spanned<KeyText>>()? {
            let here = (
                line(key.referenced).unwrap_or(0),
                column(key.referenced).unwrap_or(0),
            );
            if key.value.0 == self.key {
                if here == self.at && self.found.is_none() {
                    *self.found = first;
                }
                first = first.or(Some(here.0));
            }
            map.next_value_seed(FindFirst {
                key: self.key,
                at: self.at,
                found: &mut *self.found,
            })?;
        }
        Ok(())
    }
}

/// The line of the `---` that starts the document whose content begins on `line`, if
/// only blank and comment lines lie between them; else `line`.
fn document_marker_line(text: &str, line: u32) -> u32 {
    let lines: Vec<&str> = text.lines().collect();
    let mut at = usize::try_from(line).unwrap_or(0);
    let is_marker = |l: &str| l == "---" || l.starts_with("--- ") || l.starts_with("---\t");
    if at >= 1 && lines.get(at - 1).is_some_and(|l| is_marker(l)) {
        return line;
    }
    while at >= 2 {
        at -= 1;
        let previous = lines[at - 1];
        if is_marker(previous) {
            return u32::try_from(at).unwrap_or(line);
        }
        let trimmed = previous.trim();
        if !trimmed.is_empty() && !trimmed.starts_with('#') {
            break;
        }
    }
    line
}

/// Whether the text holds only blank lines and comments.
fn is_blank(text: &str) -> bool {
    text.lines().all(|l| {
        let l = l.trim();
        l.is_empty() || l.starts_with('#')
    })
}

/// What a reader's word for a type means to someone writing a workflow.
fn plain_expected(word: &str) -> &'static str {
    let word = word.trim_start_matches("a ").trim_start_matches("an ");
    match word {
        "u8" => "a whole number from 0 to 255",
        "u16" => "a whole number from 0 to 65535",
        "u32" => "a whole number from 0 to 4294967295",
        "u64" | "usize" => "a whole number from 0 to 18446744073709551615",
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" | "u128" | "integer" => "a whole number",
        "f32" | "f64" | "float" | "number" => "a number",
        "bool" | "boolean" => "`true` or `false`",
        "char" | "character" => "a single character",
        "string" | "str" | "string scalar" | "borrowed string" => "text",
        "scalar" | "plain scalar" => "a single value",
        "sequence" | "sequence start" | "seq" | "list" => "a list",
        "map" | "mapping" | "mapping start" => "a mapping of `key: value` pairs",
        _ => "a different kind of value",
    }
}

/// Control characters escaped, so a message stays on one line.
fn clean(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_debug().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

/// `n` and the noun: `1 anchor`, `2 anchors`.
fn count(n: usize, one: &str, many: &str) -> String {
    format!("{} {}", thousands(n), if n == 1 { one } else { many })
}

/// `1234567` as `1,234,567`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A size in the largest binary unit that divides it: `64 MiB`, `1500 bytes`.
pub(crate) fn bytes_in_words(bytes: u64) -> String {
    for (shift, unit) in [(30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return format!("{} {unit}", bytes >> shift);
        }
    }
    format!("{bytes} bytes")
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

    /// The message for a reader error built by hand, at the top level of an empty text.
    fn message_for(error: &serde_saphyr::Error) -> String {
        YamlError::new(error, "", &yaml_options()).message(&Place::Root)
    }

    #[test]
    fn every_budget_breach_names_the_limit_in_words() {
        use serde_saphyr::Location;
        let cases = [
            (
                BudgetBreach::Nodes { nodes: 10_000_001 },
                "more than 10,000,000 YAML values",
            ),
            (
                BudgetBreach::Events { events: 1 },
                "more than 20,000,000 YAML items",
            ),
            (
                BudgetBreach::Aliases { aliases: 1 },
                "more than 50,000 aliases (`*name`)",
            ),
            (
                BudgetBreach::Anchors { anchors: 1 },
                "more than 50,000 anchors (`&name`)",
            ),
            (BudgetBreach::Depth { depth: 65 }, "nest more than 64 deep"),
            (
                BudgetBreach::ScalarBytes {
                    total_scalar_bytes: 1,
                },
                "more than 64 MiB",
            ),
            (
                BudgetBreach::MergeKeys { merge_keys: 1 },
                "more than 10,000 merge keys",
            ),
            (
                BudgetBreach::AliasAnchorRatio {
                    aliases: 2_000,
                    anchors: 3,
                },
                "2,000 aliases (`*name`) for 3 anchors (`&name`)",
            ),
            (
                BudgetBreach::RecordedAnchorEvents {
                    recorded_anchor_events: 1,
                },
                "at most 1,000,000 values",
            ),
            (
                BudgetBreach::RecordedAnchorBytes {
                    recorded_anchor_bytes: 1,
                },
                "at most 64 MiB of text",
            ),
            (BudgetBreach::InputBytes { input_bytes: 1 }, "64 MiB limit"),
        ];
        for (breach, expected) in cases {
            let debug = format!("{breach:?}");
            let message = message_for(&serde_saphyr::Error::Budget {
                breach,
                location: Location::UNKNOWN,
            });
            assert!(message.contains(expected), "{debug}: {message}");
            assert!(!message.contains('{'), "{debug}: {message}");
            assert!(!message.contains("budget"), "{debug}: {message}");
        }
    }

    #[test]
    fn alias_limits_are_named_in_words() {
        use serde_saphyr::Location;
        let message = message_for(&serde_saphyr::Error::AliasReplayLimitExceeded {
            total_replayed_events: 1_000_001,
            max_total_replayed_events: MAX_ALIAS_EXPANSION,
            location: Location::UNKNOWN,
        });
        assert!(
            message.contains("expand to more than 1,000,000 values"),
            "{message}"
        );
        assert!(message.contains("alias bombs"), "{message}");
        let message = message_for(&serde_saphyr::Error::AliasReplayStackDepthExceeded {
            depth: 65,
            max_depth: 64,
            location: Location::UNKNOWN,
        });
        assert!(message.contains("nest more than 64 deep"), "{message}");
    }

    #[test]
    fn sizes_and_counts_read_well() {
        assert_eq!(bytes_in_words(64 << 20), "64 MiB");
        assert_eq!(bytes_in_words(1 << 30), "1 GiB");
        assert_eq!(bytes_in_words(1500), "1500 bytes");
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(18_446_744), "18,446,744");
        assert_eq!(count(1, "anchor", "anchors"), "1 anchor");
        assert_eq!(count(2, "anchor", "anchors"), "2 anchors");
    }

    #[test]
    fn a_document_marker_is_found_above_the_second_document() {
        let text = "name: x\n...\n# next\n\n---\nname: y\n";
        assert_eq!(document_marker_line(text, 6), 5);
        assert_eq!(document_marker_line(text, 5), 5);
        assert_eq!(document_marker_line("a: 1\nb: 2\n", 2), 2);
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
