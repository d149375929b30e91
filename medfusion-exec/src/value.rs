//! Values that flow between nodes, and how they are saved and restored.

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use medfusion_graph::PortType;
use serde::{Deserialize, Serialize};

use crate::error::BoxError;

/// A value produced on an output port: a dataset, a model, metrics...
///
/// Node types define their own value types and say how each is saved, so that a resumed
/// run restores a finished node's outputs instead of running it again.
pub trait PortValue: Any + Send + Sync + fmt::Debug {
    /// The port type this value has.
    fn port_type(&self) -> PortType;

    /// A short JSON summary for events and run records (sizes, shapes, names).
    fn summary(&self) -> serde_json::Value {
        serde_json::Value::Null
    }

    /// The value in a form a run store can write; restored by the [`ValueCodec`]
    /// registered under [`SavedValue::codec`].
    fn save(&self) -> Result<SavedValue, BoxError>;
}

/// A cheap-to-share handle to a port value.
#[derive(Clone)]
pub struct Value(Arc<dyn PortValue>);

impl Value {
    /// Wrap a port value.
    pub fn new(value: impl PortValue) -> Value {
        Value(Arc::new(value))
    }

    /// Wrap a shared port value.
    pub fn from_arc(value: Arc<dyn PortValue>) -> Value {
        Value(value)
    }

    /// The port type of the value.
    pub fn port_type(&self) -> PortType {
        self.0.port_type()
    }

    /// The value as `T`, if it is one.
    pub fn downcast_ref<T: PortValue>(&self) -> Option<&T> {
        let any: &dyn Any = self.0.as_ref();
        any.downcast_ref::<T>()
    }

    /// The shared value.
    pub fn as_arc(&self) -> &Arc<dyn PortValue> {
        &self.0
    }

    /// The value's JSON summary.
    pub fn summary(&self) -> serde_json::Value {
        self.0.summary()
    }

    /// The value in savable form.
    pub fn save(&self) -> Result<SavedValue, BoxError> {
        self.0.save()
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Bytes shared without copying (model weights, tables).
pub type Blob = Arc<[u8]>;

/// A value in savable form: JSON plus named binary blobs.
///
/// Run stores write `data` into the run state and each blob as a file; a blob named
/// `model.safetensors` of node `train` becomes `models/train_model.safetensors` in a
/// checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SavedValue {
    /// Which [`ValueCodec`] restores it (for example `json` or `medfusion.model`).
    pub codec: String,
    /// The value's JSON part.
    #[serde(default)]
    pub data: serde_json::Value,
    /// The value's binary parts, by name (`model.safetensors`).
    #[serde(skip)]
    pub blobs: BTreeMap<String, Blob>,
    /// The names (and sizes) of the blobs, kept in the state so a store knows what to load.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub blob_sizes: BTreeMap<String, u64>,
}

impl SavedValue {
    /// A value saved as JSON only.
    pub fn json(codec: impl Into<String>, data: serde_json::Value) -> SavedValue {
        SavedValue {
            codec: codec.into(),
            data,
            ..SavedValue::default()
        }
    }

    /// Add a binary part.
    pub fn with_blob(mut self, name: impl Into<String>, blob: Blob) -> SavedValue {
        let name = name.into();
        self.blob_sizes.insert(name.clone(), blob.len() as u64);
        self.blobs.insert(name, blob);
        self
    }

    /// Whether every blob the state names is present (after a store loaded them).
    pub fn blobs_complete(&self) -> bool {
        self.blob_sizes.keys().all(|k| self.blobs.contains_key(k))
    }
}

/// Restores values saved under one codec name.
pub trait ValueCodec: Send + Sync {
    /// Rebuild the value.
    fn restore(&self, saved: &SavedValue) -> Result<Value, BoxError>;
}

impl<F> ValueCodec for F
where
    F: Fn(&SavedValue) -> Result<Value, BoxError> + Send + Sync,
{
    fn restore(&self, saved: &SavedValue) -> Result<Value, BoxError> {
        self(saved)
    }
}

/// A plain JSON value on a port of any JSON-carried type (`value`, `metrics`).
#[derive(Debug, Clone, PartialEq)]
pub struct JsonValue {
    /// The port type it is sent as.
    pub port_type: PortType,
    /// The value.
    pub value: serde_json::Value,
}

impl JsonValue {
    /// The codec name of JSON values.
    pub const CODEC: &'static str = "json";

    /// A generic `value`.
    pub fn new(value: serde_json::Value) -> JsonValue {
        JsonValue {
            port_type: PortType::Value,
            value,
        }
    }

    /// Restore a saved JSON value.
    pub fn restore(saved: &SavedValue) -> Result<Value, BoxError> {
        let port_type = saved.data["port_type"].as_str().unwrap_or("value");
        Ok(Value::new(JsonValue {
            port_type: port_type.parse().unwrap_or(PortType::Value),
            value: saved.data["value"].clone(),
        }))
    }
}

impl PortValue for JsonValue {
    fn port_type(&self) -> PortType {
        self.port_type.clone()
    }

    fn summary(&self) -> serde_json::Value {
        self.value.clone()
    }

    fn save(&self) -> Result<SavedValue, BoxError> {
        Ok(SavedValue::json(
            JsonValue::CODEC,
            serde_json::json!({ "port_type": self.port_type.name(), "value": self.value }),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_values_round_trip_and_downcast() {
        let v = Value::new(JsonValue::new(serde_json::json!({"a": 1})));
        assert_eq!(v.downcast_ref::<JsonValue>().unwrap().value["a"], 1);
        let saved = v.save().unwrap();
        let back = JsonValue::restore(&saved).unwrap();
        assert_eq!(back.downcast_ref::<JsonValue>().unwrap().value["a"], 1);
        assert_eq!(back.port_type(), PortType::Value);
    }
}
