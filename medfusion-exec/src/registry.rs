//! The registry: node types with their specs and executors, and value codecs.

use std::collections::HashMap;
use std::sync::Arc;

use medfusion_graph::{NodeCatalog, NodeSpec};

use crate::context::{NodeContext, Outputs};
use crate::error::{Error, NodeError};
use crate::executor::{BlockingExecutor, DynExecutor, NodeExecutor};
use crate::value::{JsonValue, ValueCodec};

/// Node types the engine can run (spec + executor), and the codecs that restore saved
/// values. Custom node types register here at run time.
#[derive(Clone)]
pub struct Registry {
    catalog: NodeCatalog,
    executors: HashMap<String, Arc<dyn DynExecutor>>,
    codecs: HashMap<String, Arc<dyn ValueCodec>>,
}

impl Default for Registry {
    fn default() -> Registry {
        Registry::new()
    }
}

impl Registry {
    /// A registry with no node types, and the codecs of JSON and `files` values.
    pub fn new() -> Registry {
        let mut registry = Registry {
            catalog: NodeCatalog::new(),
            executors: HashMap::new(),
            codecs: HashMap::new(),
        };
        registry.register_codec(JsonValue::CODEC, JsonValue::restore);
        registry.register_codec(
            crate::files::FilesValue::CODEC,
            crate::files::FilesValue::restore,
        );
        registry
    }

    /// A registry with the built-in utility node types (`util.noop`, `util.sleep`,
    /// `util.fail`, `util.value`).
    pub fn with_builtins() -> Registry {
        let mut registry = Registry::new();
        // Fixed specs registered into an empty registry: this cannot clash (tested).
        crate::builtin::register(&mut registry).expect("built-in node types register");
        registry
    }

    /// Add a node type.
    pub fn register(&mut self, spec: NodeSpec, executor: impl NodeExecutor) -> Result<(), Error> {
        self.register_dyn(spec, Arc::new(executor))
    }

    /// Add a node type whose body blocks; it runs on the blocking thread pool.
    pub fn register_blocking<F>(&mut self, spec: NodeSpec, body: F) -> Result<(), Error>
    where
        F: Fn(&NodeContext) -> Result<Outputs, NodeError> + Send + Sync + 'static,
    {
        self.register(spec, BlockingExecutor(Arc::new(body)))
    }

    fn register_dyn(
        &mut self,
        spec: NodeSpec,
        executor: Arc<dyn DynExecutor>,
    ) -> Result<(), Error> {
        let node_type = spec.node_type.clone();
        if self.executors.contains_key(&node_type) {
            return Err(Error::DuplicateNodeType { node_type });
        }
        self.catalog.register(spec)?;
        self.executors.insert(node_type, executor);
        Ok(())
    }

    /// Add a codec restoring values saved under `name`.
    pub fn register_codec(&mut self, name: impl Into<String>, codec: impl ValueCodec + 'static) {
        self.codecs.insert(name.into(), Arc::new(codec));
    }

    /// The specs of the registered node types, for validation.
    pub fn catalog(&self) -> &NodeCatalog {
        &self.catalog
    }

    pub(crate) fn executor(&self, node_type: &str) -> Option<&Arc<dyn DynExecutor>> {
        self.executors.get(node_type)
    }

    pub(crate) fn codec(&self, name: &str) -> Option<&Arc<dyn ValueCodec>> {
        self.codecs.get(name)
    }
}

#[allow(clippy::missing_fields_in_debug)] // Executors and codecs are opaque.
impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("node_types", &self.catalog.type_names().collect::<Vec<_>>())
            .field("codecs", &self.codecs.keys().collect::<Vec<_>>())
            .finish()
    }
}
