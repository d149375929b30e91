//! The node types the CLI knows: the engine's utilities and the training crate's.

use medfusion_exec::Registry;
use medfusion_graph::NodeCatalog;
use medfusion_train::nodes::NodeSettings;

/// Every node type the `medfusion` binary runs, with these run settings (shell nodes keep
/// their work and log folders in the run's output folder).
pub(crate) fn registry(settings: NodeSettings) -> Registry {
    let mut registry = Registry::with_builtins();
    let run_dir = settings
        .out_dir
        .clone()
        .unwrap_or_else(|| std::path::PathBuf::from("runs"));
    medfusion_exec::register_shell(&mut registry, medfusion_exec::ShellSettings { run_dir })
        .expect("the shell node type registers");
    // Fixed specs registered into a registry of distinct types: a clash is a bug the tests
    // catch, not something input can cause.
    medfusion_train::nodes::register(&mut registry, settings)
        .expect("built-in node types register");
    registry
}

/// The specs of every node type, for validation and listings.
pub(crate) fn builtin() -> NodeCatalog {
    registry(NodeSettings::default()).catalog().clone()
}

#[cfg(test)]
mod tests {
    #[test]
    fn builtin_catalog_has_every_node_type() {
        let catalog = super::builtin();
        for t in [
            "util.noop",
            "dataset.synthetic",
            "train.classifier",
            "evaluate.classifier",
            "predict.classifier",
            "process.shell",
        ] {
            assert!(catalog.contains(t), "{t}");
        }
    }
}
