//! Typed node configs: one struct is both the spec of a node type's config and its parsing.
//!
//! A node type's settings are a `#[derive(Deserialize, Serialize, JsonSchema)]` struct with
//! `#[serde(default)]` and a [`Default`] impl. Everything the validator and tools know about
//! the config comes from that struct through its JSON Schema (schemars):
//!
//! - the keys and their types (a unit-variant enum is a choice of strings, a `Vec` a list, an
//!   `Option` a key that may be left out, a path or duration field is marked with
//!   `#[schemars(extend("format" = "path"))]` or `"duration"`);
//! - the defaults, from the [`Default`] impl (`#[schemars(transform = no_default)]` hides a
//!   default that the node derives at run time instead, such as a seed taken from the
//!   workflow);
//! - ranges, from `#[schemars(range(min = 1, max = 100))]`, with open ends written as
//!   `#[schemars(extend("exclusiveMinimum" = 0.0))]`;
//! - one-line descriptions, from the fields' doc comments;
//! - required keys, marked `#[schemars(extend("x-required" = true))]` (a container default
//!   gives every field a value, so serde alone cannot say which keys a user must write).
//!
//! Rules that join several keys live in [`NodeConfig::check`]. [`ConfigSchema::check`] (run
//! by [`validate`](crate::validate)) runs the per-key checks, then parses the config into the
//! struct and runs its rules, and the node reads its config with [`ConfigSchema::parse`]:
//! `validate` accepts exactly what the node will run.

use std::fmt;
use std::sync::Arc;

use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::config::{ConfigField, ConfigIssue, ConfigSchema, FieldKind};

/// The schema extension that marks a key as required (`#[schemars(extend("x-required" =
/// true))]`).
pub const REQUIRED_EXTENSION: &str = "x-required";

/// A node type's settings as one typed struct: its [`ConfigSchema`] is derived from it
/// ([`ConfigSchema::of`]) and nodes parse their config into it ([`ConfigSchema::parse`]).
///
/// ```
/// use medfusion_graph::{ConfigIssue, ConfigSchema, NodeConfig};
/// use schemars::JsonSchema;
/// use serde::{Deserialize, Serialize};
///
/// /// Settings of a training node.
/// #[derive(Debug, Serialize, Deserialize, JsonSchema)]
/// #[serde(default, deny_unknown_fields)]
/// struct Train {
///     /// Passes over the data.
///     #[schemars(range(min = 1, max = 1000))]
///     epochs: usize,
///     /// Epochs of warm-up.
///     warmup_epochs: usize,
/// }
///
/// impl Default for Train {
///     fn default() -> Train {
///         Train { epochs: 10, warmup_epochs: 0 }
///     }
/// }
///
/// impl NodeConfig for Train {
///     fn check(&self) -> Vec<ConfigIssue> {
///         let mut issues = Vec::new();
///         if self.warmup_epochs >= self.epochs {
///             issues.push(ConfigIssue::invalid("warmup_epochs", "must be below `epochs`"));
///         }
///         issues
///     }
/// }
///
/// let schema = ConfigSchema::of::<Train>();
/// assert_eq!(schema.get("epochs").unwrap().default, Some(10.into()));
/// let config = serde_json::json!({"epochs": 2, "warmup_epochs": 3});
/// let issues = schema.check(config.as_object().unwrap());
/// assert_eq!(issues[0].to_string(), "config `warmup_epochs` must be below `epochs`");
/// let train: Train = schema.parse(serde_json::json!({"epochs": 3}).as_object().unwrap()).unwrap();
/// assert_eq!(train.epochs, 3);
/// ```
pub trait NodeConfig: DeserializeOwned + Serialize + JsonSchema + 'static {
    /// The rules a key's type and range do not say, such as rules joining several keys; one
    /// issue per broken rule, each naming the key it is about. None by default.
    fn check(&self) -> Vec<ConfigIssue> {
        Vec::new()
    }
}

/// Parse a config into a typed struct and run its rules.
type CheckFn = dyn Fn(&Map<String, Value>) -> Vec<ConfigIssue> + Send + Sync;

/// The typed part of a schema's check: parse into the struct, then its rules.
#[derive(Clone)]
pub(crate) struct TypedCheck(Arc<CheckFn>);

impl TypedCheck {
    pub(crate) fn check(&self, config: &Map<String, Value>) -> Vec<ConfigIssue> {
        (self.0)(config)
    }
}

impl fmt::Debug for TypedCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TypedCheck")
    }
}

impl PartialEq for TypedCheck {
    /// Schemas compare by their keys; the typed check follows from them.
    fn eq(&self, _: &TypedCheck) -> bool {
        true
    }
}

/// A schemars `transform` that drops a field's default from the schema: the node derives
/// the value at run time (`#[schemars(transform = medfusion_graph::no_default)]`).
pub fn no_default(schema: &mut schemars::Schema) {
    schema.remove("default");
}

impl ConfigSchema {
    /// The config schema of the typed settings `T`: keys, types, ranges, defaults and
    /// descriptions from `T`'s JSON Schema, and [`check`](ConfigSchema::check) also parses
    /// into `T` and runs [`NodeConfig::check`].
    pub fn of<T: NodeConfig>() -> ConfigSchema {
        let generator = SchemaSettings::draft2020_12()
            .with(|s| s.inline_subschemas = true)
            .into_generator();
        let root = generator.into_root_schema_for::<T>().to_value();
        let mut schema = ConfigSchema::new();
        for field in fields_of(&root) {
            schema = schema.field(field);
        }
        schema.typed = Some(TypedCheck(Arc::new(|config| {
            match deserialize::<T>(config) {
                Ok(value) => value.check(),
                Err(issues) => issues,
            }
        })));
        schema
    }

    /// Read a node's config into its typed settings, after every check of
    /// [`check`](ConfigSchema::check); absent keys take their defaults.
    pub fn parse<T: NodeConfig>(&self, config: &Map<String, Value>) -> Result<T, Vec<ConfigIssue>> {
        let issues = self.check_keys(config);
        if !issues.is_empty() {
            return Err(issues);
        }
        let value = deserialize::<T>(&self.resolve(config))?;
        let issues = value.check();
        if issues.is_empty() {
            Ok(value)
        } else {
            Err(issues)
        }
    }
}

/// Check settings built in code (not read from a workflow) against the rules their
/// workflow form must follow: every key's type and range, then [`NodeConfig::check`].
pub fn check_config<T: NodeConfig>(config: &T) -> Result<(), Vec<ConfigIssue>> {
    let value = serde_json::to_value(config).map_err(|e| vec![ConfigIssue::invalid("", e)])?;
    let Value::Object(map) = value else {
        return Err(vec![ConfigIssue::invalid("", "is not a map of keys")]);
    };
    let schema = ConfigSchema::of::<T>();
    // Keys a struct writes as `null` (unset options) are absent in a workflow file.
    let map: Map<String, Value> = map.into_iter().filter(|(_, v)| !v.is_null()).collect();
    let issues = schema.check(&map);
    if issues.is_empty() {
        Ok(())
    } else {
        Err(issues)
    }
}

fn deserialize<T: DeserializeOwned>(config: &Map<String, Value>) -> Result<T, Vec<ConfigIssue>> {
    let try_parse = |config: &Map<String, Value>| {
        serde_path_to_error::deserialize::<_, T>(Value::Object(config.clone()))
    };
    let issue = |key: &str, e: &serde_path_to_error::Error<serde_json::Error>| {
        ConfigIssue::invalid(key, format!("is invalid: {}", e.inner()))
    };
    try_parse(config).map_err(|e| {
        if let Some(key) = e
            .path()
            .iter()
            .next()
            .map(ToString::to_string)
            .filter(|k| config.contains_key(k))
        {
            return vec![issue(&key, &e)];
        }
        // Flattened structs lose the path: find the keys that fail on their own (each
        // alone, the others left to their defaults; this runs only for a config that fails).
        let bad: Vec<ConfigIssue> = config
            .iter()
            .filter_map(|(key, value)| {
                let alone: Map<String, Value> =
                    [(key.clone(), value.clone())].into_iter().collect();
                try_parse(&alone).err().map(|e| issue(key, &e))
            })
            .collect();
        if bad.is_empty() {
            vec![issue("", &e)]
        } else {
            bad
        }
    })
}

/// The config keys described by the JSON Schema of a struct.
fn fields_of(root: &Value) -> Vec<ConfigField> {
    let Some(properties) = root.get("properties").and_then(Value::as_object) else {
        return Vec::new();
    };
    let required: Vec<&str> = root
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    properties
        .iter()
        .map(|(name, property)| {
            let required = required.contains(&name.as_str())
                || property.get(REQUIRED_EXTENSION) == Some(&Value::Bool(true));
            let kind = kind_of(property);
            let default = property
                .get("default")
                .filter(|d| !d.is_null() && !required)
                .map(|d| tidy_default(d, property));
            let mut field = ConfigField::new(name.clone(), kind);
            field.default = default;
            field.required = required;
            field.description = description(property);
            field
        })
        .collect()
}

/// A one-line description: the doc comment's first paragraph, lines joined.
fn description(property: &Value) -> String {
    let text = property
        .get("title")
        .or_else(|| property.get("description"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let paragraph = text.split("\n\n").next().unwrap_or_default();
    let line = paragraph.split_whitespace().collect::<Vec<_>>().join(" ");
    line.strip_suffix('.').map(str::to_string).unwrap_or(line)
}

/// f32 defaults written as the f32 they are (`0.1`, not `0.10000000149011612`).
fn tidy_default(default: &Value, property: &Value) -> Value {
    match (
        default.as_f64(),
        property.get("format").and_then(Value::as_str),
    ) {
        (Some(x), Some("float")) if !default.is_i64() && !default.is_u64() => (x as f32)
            .to_string()
            .parse::<f64>()
            .ok()
            .and_then(|x| serde_json::Number::from_f64(x).map(Value::Number))
            .unwrap_or_else(|| default.clone()),
        _ => default.clone(),
    }
}

/// The types a schema allows, `null` left out.
fn types(schema: &Value) -> Vec<&str> {
    match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .filter(|t| *t != "null")
            .collect(),
        _ => Vec::new(),
    }
}

fn is_null_schema(schema: &Value) -> bool {
    schema.get("type").and_then(Value::as_str) == Some("null")
}

/// The strings a schema allows, when it is a choice of strings.
fn choices(schema: &Value) -> Option<Vec<String>> {
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        let strings: Vec<String> = values
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        return (!strings.is_empty()
            && strings.len() == values.iter().filter(|v| !v.is_null()).count())
        .then_some(strings);
    }
    if let Some(c) = schema.get("const").and_then(Value::as_str) {
        return Some(vec![c.to_string()]);
    }
    let variants = schema
        .get("oneOf")
        .or_else(|| schema.get("anyOf"))
        .and_then(Value::as_array)?;
    let mut all = Vec::new();
    for variant in variants.iter().filter(|v| !is_null_schema(v)) {
        all.extend(choices(variant)?);
    }
    (!all.is_empty()).then_some(all)
}

fn kind_of(schema: &Value) -> FieldKind {
    // `Option<T>` of a composite `T`: `anyOf: [T, null]`.
    if let Some(variants) = schema.get("anyOf").and_then(Value::as_array) {
        let real: Vec<&Value> = variants.iter().filter(|v| !is_null_schema(v)).collect();
        if real.len() == 1 && choices(schema).is_none() {
            return kind_of(real[0]);
        }
    }
    if let Some(choices) = choices(schema) {
        return FieldKind::Choice { choices };
    }
    let number = |name: &str| schema.get(name).and_then(Value::as_f64);
    match (
        types(schema).as_slice(),
        schema.get("format").and_then(Value::as_str),
    ) {
        (["string"], Some("path")) => FieldKind::Path,
        (["string"], Some("duration")) => FieldKind::Duration,
        (["string"], _) => FieldKind::String,
        (["boolean"], _) => FieldKind::Bool,
        (["integer"], _) => {
            let min = number("minimum")
                .map(f64::ceil)
                .or_else(|| number("exclusiveMinimum").map(|m| m.floor() + 1.0));
            let max = number("maximum")
                .map(f64::floor)
                .or_else(|| number("exclusiveMaximum").map(|m| m.ceil() - 1.0));
            FieldKind::Integer {
                min: min.map(|m| m as i64),
                max: max.map(|m| m as i64),
            }
        }
        (["number"], _) => {
            let (min, exclusive_min) = match number("exclusiveMinimum") {
                Some(m) => (Some(m), true),
                None => (number("minimum"), false),
            };
            let (max, exclusive_max) = match number("exclusiveMaximum") {
                Some(m) => (Some(m), true),
                None => (number("maximum"), false),
            };
            FieldKind::Float {
                min,
                max,
                exclusive_min,
                exclusive_max,
            }
        }
        (["array"], _) => match schema.get("items") {
            Some(items) if items.is_object() => FieldKind::List {
                items: Box::new(kind_of(items)),
            },
            _ => FieldKind::Any,
        },
        _ => FieldKind::Any,
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
    #[serde(rename_all = "lowercase")]
    enum Optimizer {
        /// Decoupled weight decay.
        Adamw,
        /// Momentum.
        Sgd,
    }

    /// Settings used to test the derivation.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
    #[serde(default, deny_unknown_fields)]
    struct Settings {
        /// The data file.
        #[schemars(extend("format" = "path", "x-required" = true))]
        path: PathBuf,
        /// Passes over the data.
        ///
        /// More text that is not the summary.
        #[schemars(range(min = 1, max = 1000))]
        epochs: usize,
        /// Peak learning rate.
        #[schemars(range(max = 1.0), extend("exclusiveMinimum" = 0.0))]
        learning_rate: f64,
        /// Which optimizer.
        optimizer: Optimizer,
        /// Stop early after this many epochs.
        #[schemars(range(min = 1))]
        patience: Option<usize>,
        /// Hidden widths.
        hidden: Vec<usize>,
        /// A probability.
        flip: f32,
        /// The seed (default: the workflow's).
        #[schemars(transform = no_default)]
        seed: u64,
        /// Maybe an optimizer.
        fallback: Option<Optimizer>,
    }

    impl Default for Settings {
        fn default() -> Settings {
            Settings {
                path: PathBuf::new(),
                epochs: 10,
                learning_rate: 1e-3,
                optimizer: Optimizer::Adamw,
                patience: None,
                hidden: vec![64],
                flip: 0.1,
                seed: 42,
                fallback: None,
            }
        }
    }

    impl NodeConfig for Settings {
        fn check(&self) -> Vec<ConfigIssue> {
            if self.patience.is_some_and(|p| p >= self.epochs) {
                vec![ConfigIssue::invalid("patience", "must be below `epochs`")]
            } else {
                Vec::new()
            }
        }
    }

    fn map(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    #[test]
    fn the_schema_follows_the_struct() {
        let schema = ConfigSchema::of::<Settings>();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "path",
                "epochs",
                "learning_rate",
                "optimizer",
                "patience",
                "hidden",
                "flip",
                "seed",
                "fallback"
            ]
        );
        let path = schema.get("path").unwrap();
        assert_eq!(
            (path.kind.clone(), path.required, path.default.clone()),
            (FieldKind::Path, true, None)
        );
        assert_eq!(path.description, "The data file");
        let epochs = schema.get("epochs").unwrap();
        assert_eq!(
            epochs.kind,
            FieldKind::Integer {
                min: Some(1),
                max: Some(1000)
            }
        );
        assert_eq!(epochs.default, Some(json!(10)));
        assert_eq!(epochs.description, "Passes over the data");
        assert_eq!(
            schema.get("learning_rate").unwrap().kind,
            FieldKind::Float {
                min: Some(0.0),
                max: Some(1.0),
                exclusive_min: true,
                exclusive_max: false
            }
        );
        assert_eq!(
            schema.get("optimizer").unwrap().kind,
            FieldKind::Choice {
                choices: vec!["adamw".into(), "sgd".into()]
            }
        );
        assert_eq!(
            schema.get("optimizer").unwrap().default,
            Some(json!("adamw"))
        );
        let patience = schema.get("patience").unwrap();
        assert_eq!(
            (
                patience.kind.clone(),
                patience.default.clone(),
                patience.required
            ),
            (
                FieldKind::Integer {
                    min: Some(1),
                    max: None
                },
                None,
                false
            )
        );
        assert_eq!(
            schema.get("hidden").unwrap().kind,
            FieldKind::List {
                items: Box::new(FieldKind::Integer {
                    min: Some(0),
                    max: None
                })
            }
        );
        assert_eq!(schema.get("flip").unwrap().default, Some(json!(0.1)));
        assert_eq!(schema.get("seed").unwrap().default, None);
        assert!(matches!(
            schema.get("fallback").unwrap().kind,
            FieldKind::Choice { .. }
        ));
    }

    #[test]
    fn check_runs_the_keys_then_the_struct_rules() {
        let schema = ConfigSchema::of::<Settings>();
        assert!(schema.check(&map(json!({"path": "a"}))).is_empty());
        let text = |config: Value| -> Vec<String> {
            schema
                .check(&map(config))
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        assert_eq!(text(json!({})), ["missing required config key `path`"]);
        assert_eq!(
            text(json!({"path": "a", "learning_rate": 0})),
            ["config `learning_rate` is out of range: `0` is not in (0, 1]"]
        );
        assert_eq!(
            text(json!({"path": "a", "epochs": 3, "patience": 3})),
            ["config `patience` must be below `epochs`"]
        );
        assert_eq!(
            text(json!({"path": "a", "hidden": [4, -1]})),
            ["config `hidden` has `-1` as item 1, which is not in >= 0"]
        );
        assert_eq!(
            text(json!({"path": "a", "optimizr": "sgd"})),
            ["unknown config key `optimizr`; did you mean `optimizer`?"]
        );
    }

    #[test]
    fn parse_fills_defaults_and_refuses_what_check_refuses() {
        let schema = ConfigSchema::of::<Settings>();
        let parsed: Settings = schema
            .parse(&map(json!({"path": "d.csv", "epochs": 5})))
            .unwrap();
        assert_eq!(
            parsed,
            Settings {
                path: "d.csv".into(),
                epochs: 5,
                ..Settings::default()
            }
        );
        for bad in [
            json!({"path": "a", "epochs": 0}),
            json!({"path": "a", "epochs": 3, "patience": 5}),
            json!({"epochs": 3}),
        ] {
            let issues = schema.check(&map(bad.clone()));
            assert!(!issues.is_empty(), "{bad}");
            assert_eq!(schema.parse::<Settings>(&map(bad)).unwrap_err(), issues);
        }
    }

    #[test]
    fn settings_built_in_code_are_checked_like_workflow_ones() {
        let good = Settings {
            path: "a".into(),
            ..Settings::default()
        };
        check_config(&good).unwrap();
        let bad = Settings {
            learning_rate: 2.0,
            ..good
        };
        let issues = check_config(&bad).unwrap_err();
        assert_eq!(issues[0].key(), "learning_rate");
    }
}
