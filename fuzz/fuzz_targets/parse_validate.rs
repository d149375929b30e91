//! Parse any bytes as a workflow file (YAML and JSON) and validate what parses against a
//! catalog of typed node types: nothing may panic.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use medfusion_graph::{
    ConfigField, ConfigSchema, FieldKind, Format, NodeCatalog, NodeSpec, PortSpec, PortType,
    Workflow, validate,
};

fn catalog() -> &'static NodeCatalog {
    static CATALOG: OnceLock<NodeCatalog> = OnceLock::new();
    CATALOG.get_or_init(|| {
        let mut c = NodeCatalog::new();
        let _ = c.register(
            NodeSpec::new("data", "")
                .output(PortSpec::output("train", PortType::ImageDataset))
                .output(PortSpec::output("test", PortType::MultimodalDataset))
                .with_config(ConfigSchema::new().field(
                    ConfigField::new("n", FieldKind::Integer { min: Some(1), max: Some(10) })
                        .default_value(2),
                )),
        );
        let _ = c.register(
            NodeSpec::new("train", "")
                .input(PortSpec::required("data", PortType::ImageDataset).accepting(PortType::MultimodalDataset))
                .output(PortSpec::output("model", PortType::Model))
                .with_config(
                    ConfigSchema::new()
                        .field(ConfigField::new("lr", FieldKind::float(Some(0.0), Some(1.0))))
                        .field(ConfigField::new("opt", FieldKind::Choice { choices: vec!["adam".into(), "sgd".into()] }))
                        .field(ConfigField::new("wait", FieldKind::Duration)),
                ),
        );
        let _ = c.register(
            NodeSpec::new("eval", "")
                .input(PortSpec::required("model", PortType::Model).multiple())
                .input(PortSpec::optional("in", PortType::Value))
                .output(PortSpec::output("out", PortType::Value)),
        );
        c
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    for format in [Format::Yaml, Format::Json] {
        if let Ok(workflow) = Workflow::parse(text, format) {
            let _ = medfusion_graph::to_dot(&workflow);
            let _ = medfusion_graph::to_mermaid(&workflow);
            if let Ok(plan) = validate(workflow, catalog()) {
                let _ = plan.levels();
            }
        }
    }
});
