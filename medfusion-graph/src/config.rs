//! Config schemas: the keys a node type takes, their types, ranges and defaults.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// The config keys of a node type.
///
/// Built key by key with [`ConfigSchema::field`], or derived from a node type's typed config
/// struct with [`ConfigSchema::of`], which also makes [`check`](ConfigSchema::check) run the
/// struct's own parsing and cross-key rules.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ConfigSchema {
    fields: Vec<ConfigField>,
    #[serde(skip)]
    pub(crate) typed: Option<crate::typed::TypedCheck>,
}

/// One config key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigField {
    /// The key.
    pub name: String,
    /// What values it takes.
    pub kind: FieldKind,
    /// The value used when the key is absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// Whether the key must be given (only meaningful without a default).
    #[serde(default)]
    pub required: bool,
    /// One line on what it does.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

/// The values a config key takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum FieldKind {
    /// `true` or `false`.
    Bool,
    /// A whole number in `[min, max]`.
    Integer {
        /// Smallest allowed value.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min: Option<i64>,
        /// Largest allowed value.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max: Option<i64>,
    },
    /// A finite number in `[min, max]` (integers are taken too); either end may be open.
    Float {
        /// Smallest allowed value.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min: Option<f64>,
        /// Largest allowed value.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max: Option<f64>,
        /// Whether `min` itself is excluded: `(min, ...`.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        exclusive_min: bool,
        /// Whether `max` itself is excluded: `..., max)`.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        exclusive_max: bool,
    },
    /// One of a fixed set of strings.
    Choice {
        /// The allowed strings.
        choices: Vec<String>,
    },
    /// Any string.
    String,
    /// A file or folder path.
    Path,
    /// A duration such as `2s` or `1h 30m`.
    Duration,
    /// A list whose items are each of one kind.
    List {
        /// What each item takes.
        items: Box<FieldKind>,
    },
    /// Any JSON value.
    Any,
}

impl FieldKind {
    /// A number in the closed range `[min, max]`.
    pub fn float(min: Option<f64>, max: Option<f64>) -> FieldKind {
        FieldKind::Float {
            min,
            max,
            exclusive_min: false,
            exclusive_max: false,
        }
    }
}

impl fmt::Display for FieldKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldKind::Bool => f.write_str("a boolean"),
            FieldKind::Integer { .. } => f.write_str("an integer"),
            FieldKind::Float { .. } => f.write_str("a number"),
            FieldKind::Choice { choices } => {
                write!(f, "one of ")?;
                for (i, c) in choices.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "`{c}`")?;
                }
                Ok(())
            }
            FieldKind::String => f.write_str("a string"),
            FieldKind::Path => f.write_str("a path"),
            FieldKind::Duration => f.write_str("a duration such as `2s`"),
            FieldKind::List { items } => write!(f, "a list of which each item is {items}"),
            FieldKind::Any => f.write_str("any value"),
        }
    }
}

/// What is wrong with one config key of a node.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ConfigIssue {
    /// The spec has no such key.
    UnknownKey {
        /// The key as written.
        key: String,
        /// The closest known key, if one is close.
        suggestion: Option<String>,
    },
    /// A required key is absent.
    Missing {
        /// The key.
        key: String,
    },
    /// The value has the wrong type.
    WrongType {
        /// The key.
        key: String,
        /// What the key takes.
        expected: String,
        /// The value as written.
        found: Value,
    },
    /// The value is outside the allowed range.
    OutOfRange {
        /// The key.
        key: String,
        /// The value as written.
        value: Value,
        /// The range, as text (`[1, 1000]`, `>= 0`).
        range: String,
    },
    /// The value is not one of the allowed strings.
    NotAChoice {
        /// The key.
        key: String,
        /// The value as written.
        value: String,
        /// The allowed strings.
        choices: Vec<String>,
        /// The closest allowed string, if one is close.
        suggestion: Option<String>,
    },
    /// The value breaks a rule of the node type: one that joins several keys (`warmup_epochs`
    /// must leave epochs for the schedule) or that the key's type alone does not say.
    Invalid {
        /// The key the rule is about.
        key: String,
        /// What is wrong, as a sentence fragment (`must be below \`learning_rate\``).
        message: String,
    },
}

impl ConfigIssue {
    /// A broken rule of the node type about `key`.
    pub fn invalid(key: impl Into<String>, message: impl fmt::Display) -> ConfigIssue {
        ConfigIssue::Invalid {
            key: key.into(),
            message: message.to_string(),
        }
    }

    /// The config key the issue is about.
    pub fn key(&self) -> &str {
        match self {
            ConfigIssue::UnknownKey { key, .. }
            | ConfigIssue::Missing { key }
            | ConfigIssue::WrongType { key, .. }
            | ConfigIssue::OutOfRange { key, .. }
            | ConfigIssue::NotAChoice { key, .. }
            | ConfigIssue::Invalid { key, .. } => key,
        }
    }
}

impl ConfigIssue {
    /// What is wrong, without the key: `is out of range: \`0\` is not in (0, 1]`.
    pub fn reason(&self) -> String {
        match self {
            ConfigIssue::UnknownKey { suggestion, .. } => match suggestion {
                Some(s) => format!("is not a known key; did you mean `{s}`?"),
                None => "is not a known key".to_string(),
            },
            ConfigIssue::Missing { .. } => "is required".to_string(),
            ConfigIssue::WrongType {
                expected, found, ..
            } => format!("must be {expected}, found `{found}`"),
            ConfigIssue::OutOfRange { value, range, .. } => {
                format!("is out of range: `{value}` is not in {range}")
            }
            ConfigIssue::NotAChoice {
                value,
                choices,
                suggestion,
                ..
            } => {
                let listed: Vec<String> = choices.iter().map(|c| format!("`{c}`")).collect();
                let hint = suggestion
                    .as_ref()
                    .map(|s| format!("; did you mean `{s}`?"))
                    .unwrap_or_default();
                format!(
                    "has no option `{value}` (expected one of {}){hint}",
                    listed.join(", ")
                )
            }
            ConfigIssue::Invalid { message, .. } => message.clone(),
        }
    }
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigIssue::UnknownKey { key, suggestion } => {
                write!(f, "unknown config key `{key}`")?;
                if let Some(s) = suggestion {
                    write!(f, "; did you mean `{s}`?")?;
                }
                Ok(())
            }
            ConfigIssue::Missing { key } => write!(f, "missing required config key `{key}`"),
            ConfigIssue::Invalid { key, message } if key.is_empty() => {
                write!(f, "config {message}")
            }
            other => write!(f, "config `{}` {}", other.key(), other.reason()),
        }
    }
}

impl ConfigField {
    /// A key that takes `kind`, with no default.
    pub fn new(name: impl Into<String>, kind: FieldKind) -> ConfigField {
        ConfigField {
            name: name.into(),
            kind,
            default: None,
            required: false,
            description: String::new(),
        }
    }

    /// Set the default value.
    pub fn default_value(mut self, value: impl Into<Value>) -> ConfigField {
        self.default = Some(value.into());
        self
    }

    /// Mark the key as required.
    pub fn required(mut self) -> ConfigField {
        self.required = true;
        self
    }

    /// Set the one-line description.
    pub fn describe(mut self, description: impl Into<String>) -> ConfigField {
        self.description = description.into();
        self
    }

    fn check_value(&self, value: &Value) -> Option<ConfigIssue> {
        check_kind(&self.name, &self.kind, value)
    }

    /// This key's JSON Schema.
    pub fn json_schema(&self) -> Value {
        let mut schema = kind_schema(&self.kind);
        if !self.description.is_empty() {
            schema["description"] = json!(self.description);
        }
        if let Some(d) = &self.default {
            schema["default"] = d.clone();
        }
        schema
    }
}

/// What is wrong with `value` as a value of `kind` for config key `key`, if anything.
fn check_kind(key: &str, kind: &FieldKind, value: &Value) -> Option<ConfigIssue> {
    let wrong = || ConfigIssue::WrongType {
        key: key.to_string(),
        expected: kind.to_string(),
        found: value.clone(),
    };
    match kind {
        FieldKind::Bool => (!value.is_boolean()).then(wrong),
        FieldKind::Integer { min, max } => {
            let Some(n) = value.as_i64() else {
                // A whole number beyond i64 is still a whole number, only a large one.
                return match (value.is_u64(), max) {
                    (true, None) => None,
                    (true, Some(_)) => Some(ConfigIssue::OutOfRange {
                        key: key.to_string(),
                        value: value.clone(),
                        range: range_text(
                            min.map(|m| m as f64),
                            max.map(|m| m as f64),
                            false,
                            false,
                        ),
                    }),
                    (false, _) => Some(wrong()),
                };
            };
            let below = min.is_some_and(|m| n < m);
            let above = max.is_some_and(|m| n > m);
            (below || above).then(|| ConfigIssue::OutOfRange {
                key: key.to_string(),
                value: value.clone(),
                range: range_text(min.map(|m| m as f64), max.map(|m| m as f64), false, false),
            })
        }
        FieldKind::Float {
            min,
            max,
            exclusive_min,
            exclusive_max,
        } => {
            let Some(x) = value.as_f64() else {
                return Some(wrong());
            };
            let below = min.is_some_and(|m| if *exclusive_min { x <= m } else { x < m });
            let above = max.is_some_and(|m| if *exclusive_max { x >= m } else { x > m });
            (below || above || !x.is_finite()).then(|| ConfigIssue::OutOfRange {
                key: key.to_string(),
                value: value.clone(),
                range: range_text(*min, *max, *exclusive_min, *exclusive_max),
            })
        }
        FieldKind::Choice { choices } => {
            let Some(s) = value.as_str() else {
                return Some(wrong());
            };
            (!choices.iter().any(|c| c == s)).then(|| ConfigIssue::NotAChoice {
                key: key.to_string(),
                value: s.to_string(),
                choices: choices.clone(),
                suggestion: closest(s, choices.iter().map(String::as_str)),
            })
        }
        FieldKind::String | FieldKind::Path => (!value.is_string()).then(wrong),
        FieldKind::Duration => match value.as_str().map(humantime::parse_duration) {
            Some(Ok(_)) => None,
            _ => Some(wrong()),
        },
        FieldKind::List { items } => {
            let Some(list) = value.as_array() else {
                return Some(wrong());
            };
            list.iter().enumerate().find_map(|(i, item)| {
                check_kind(&format!("{key}[{i}]"), items, item).map(|issue| match issue {
                    // Name the list in the message, and keep the key findable in the file.
                    ConfigIssue::WrongType {
                        key: item_key,
                        expected,
                        found,
                    } => ConfigIssue::invalid(
                        key,
                        format!("has `{found}` as item {i} ({item_key}), which must be {expected}"),
                    ),
                    ConfigIssue::OutOfRange { value, range, .. } => ConfigIssue::invalid(
                        key,
                        format!("has `{value}` as item {i}, which is not in {range}"),
                    ),
                    other => ConfigIssue::invalid(key, format!("item {i}: {other}")),
                })
            })
        }
        FieldKind::Any => None,
    }
}

/// The JSON Schema of the values of `kind`.
fn kind_schema(kind: &FieldKind) -> Value {
    match kind {
        FieldKind::Bool => json!({"type": "boolean"}),
        FieldKind::Integer { min, max } => {
            let mut s = json!({"type": "integer"});
            if let Some(m) = min {
                s["minimum"] = json!(m);
            }
            if let Some(m) = max {
                s["maximum"] = json!(m);
            }
            s
        }
        FieldKind::Float {
            min,
            max,
            exclusive_min,
            exclusive_max,
        } => {
            let mut s = json!({"type": "number"});
            if let Some(m) = min {
                let name = if *exclusive_min {
                    "exclusiveMinimum"
                } else {
                    "minimum"
                };
                s[name] = json!(m);
            }
            if let Some(m) = max {
                let name = if *exclusive_max {
                    "exclusiveMaximum"
                } else {
                    "maximum"
                };
                s[name] = json!(m);
            }
            s
        }
        FieldKind::Choice { choices } => json!({"type": "string", "enum": choices}),
        FieldKind::String | FieldKind::Path | FieldKind::Duration => json!({"type": "string"}),
        FieldKind::List { items } => json!({"type": "array", "items": kind_schema(items)}),
        FieldKind::Any => json!({}),
    }
}

impl ConfigSchema {
    /// A schema with no keys.
    pub fn new() -> ConfigSchema {
        ConfigSchema::default()
    }

    /// Add a key.
    pub fn field(mut self, field: ConfigField) -> ConfigSchema {
        self.fields.push(field);
        self
    }

    /// The keys, in declaration order.
    pub fn fields(&self) -> &[ConfigField] {
        &self.fields
    }

    /// The key with this name.
    pub fn get(&self, name: &str) -> Option<&ConfigField> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Every problem with a node's config: unknown keys, missing keys, wrong types, values
    /// out of range; then, when the schema comes from a typed config
    /// ([`ConfigSchema::of`]) and every key passed, whatever the typed struct's parsing and
    /// rules find in the config with its defaults filled in.
    pub fn check(&self, config: &Map<String, Value>) -> Vec<ConfigIssue> {
        let mut issues = self.check_keys(config);
        if issues.is_empty()
            && let Some(typed) = &self.typed
        {
            issues.extend(typed.check(&self.resolve(config)));
        }
        issues
    }

    pub(crate) fn check_keys(&self, config: &Map<String, Value>) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        for (key, value) in config {
            match self.get(key) {
                Some(field) => issues.extend(field.check_value(value)),
                None => issues.push(ConfigIssue::UnknownKey {
                    key: key.clone(),
                    suggestion: closest(key, self.fields.iter().map(|f| f.name.as_str())),
                }),
            }
        }
        for field in &self.fields {
            if field.required && field.default.is_none() && !config.contains_key(&field.name) {
                issues.push(ConfigIssue::Missing {
                    key: field.name.clone(),
                });
            }
        }
        issues
    }

    /// The config with every absent key that has a default filled in.
    pub fn resolve(&self, config: &Map<String, Value>) -> Map<String, Value> {
        let mut resolved = config.clone();
        for field in &self.fields {
            if let Some(default) = &field.default {
                resolved
                    .entry(field.name.clone())
                    .or_insert_with(|| default.clone());
            }
        }
        resolved
    }

    /// The JSON Schema of a config object of this shape.
    pub fn json_schema(&self) -> Value {
        let properties: Map<String, Value> = self
            .fields
            .iter()
            .map(|f| (f.name.clone(), f.json_schema()))
            .collect();
        let required: Vec<&str> = self
            .fields
            .iter()
            .filter(|f| f.required && f.default.is_none())
            .map(|f| f.name.as_str())
            .collect();
        json!({
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": false,
        })
    }

    /// Check the schema itself: unique names, defaults that pass their own check.
    pub(crate) fn check_schema(&self) -> Result<(), String> {
        for (i, field) in self.fields.iter().enumerate() {
            if self.fields[..i].iter().any(|f| f.name == field.name) {
                return Err(format!("config key `{}` is declared twice", field.name));
            }
            if let Some(issue) = field.default.as_ref().and_then(|d| field.check_value(d)) {
                return Err(format!(
                    "the default of config key `{}` is invalid: {issue}",
                    field.name
                ));
            }
        }
        Ok(())
    }
}

fn range_text(min: Option<f64>, max: Option<f64>, open_min: bool, open_max: bool) -> String {
    let (lo, hi) = (
        if open_min { "(" } else { "[" },
        if open_max { ")" } else { "]" },
    );
    let (ge, le) = (
        if open_min { ">" } else { ">=" },
        if open_max { "<" } else { "<=" },
    );
    match (min, max) {
        (Some(a), Some(b)) => format!("{lo}{a}, {b}{hi}"),
        (Some(a), None) => format!("{ge} {a}"),
        (None, Some(b)) => format!("{le} {b}"),
        (None, None) => "the finite numbers".to_string(),
    }
}

/// The candidate closest to `word`, if it is close enough to be a likely typo.
pub(crate) fn closest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<String> {
    candidates
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> ConfigSchema {
        ConfigSchema::new()
            .field(
                ConfigField::new(
                    "epochs",
                    FieldKind::Integer {
                        min: Some(1),
                        max: Some(10_000),
                    },
                )
                .default_value(10),
            )
            .field(ConfigField::new(
                "learning_rate",
                FieldKind::float(Some(0.0), Some(10.0)),
            ))
            .field(ConfigField::new(
                "optimizer",
                FieldKind::Choice {
                    choices: vec!["adam".into(), "adamw".into(), "sgd".into()],
                },
            ))
            .field(ConfigField::new("path", FieldKind::Path).required())
    }

    fn config(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    #[test]
    fn finds_every_issue_with_hints() {
        let issues = schema().check(&config(json!({
            "epoch": 3, "learning_rate": -1.0, "optimizer": "adamm"
        })));
        let text: Vec<String> = issues.iter().map(ToString::to_string).collect();
        assert_eq!(text.len(), 4, "{text:?}");
        assert!(text[0].contains("unknown config key `epoch`; did you mean `epochs`?"));
        assert!(text[1].contains("`learning_rate` is out of range"));
        assert!(text[2].contains("did you mean `adam`?") || text[2].contains("`adamw`"));
        assert!(text[3].contains("missing required config key `path`"));
    }

    #[test]
    fn integers_are_numbers_but_not_the_reverse() {
        let s = schema();
        assert!(
            s.check(&config(json!({"path": "x", "learning_rate": 1})))
                .is_empty()
        );
        let issues = s.check(&config(json!({"path": "x", "epochs": 2.5})));
        assert!(matches!(issues[0], ConfigIssue::WrongType { .. }));
    }

    #[test]
    fn resolve_fills_defaults_only_when_absent() {
        let s = schema();
        assert_eq!(s.resolve(&config(json!({})))["epochs"], json!(10));
        assert_eq!(s.resolve(&config(json!({"epochs": 3})))["epochs"], json!(3));
    }

    #[test]
    fn a_default_out_of_range_is_a_bad_spec() {
        let bad = ConfigSchema::new().field(
            ConfigField::new(
                "k",
                FieldKind::Integer {
                    min: Some(1),
                    max: None,
                },
            )
            .default_value(0),
        );
        assert!(bad.check_schema().is_err());
    }
}
