//! Helpers shared by the integration tests: a small catalog of node types.

use medfusion_graph::{
    ConfigField, ConfigSchema, FieldKind, NodeCatalog, NodeSpec, PortSpec, PortType,
};

/// `data` (outputs train/test image datasets), `train` (needs train_data, optional
/// val_data; outputs model), `eval` (needs model and data; outputs metrics), `pass`
/// (value in, value out).
pub(crate) fn catalog() -> NodeCatalog {
    let mut c = NodeCatalog::new();
    c.register(
        NodeSpec::new("data", "makes data")
            .output(PortSpec::output("train", PortType::ImageDataset))
            .output(PortSpec::output("test", PortType::ImageDataset))
            .output(PortSpec::output("table", PortType::TabularDataset))
            .with_config(
                ConfigSchema::new().field(
                    ConfigField::new(
                        "samples",
                        FieldKind::Integer {
                            min: Some(1),
                            max: Some(1000),
                        },
                    )
                    .default_value(10),
                ),
            ),
    )
    .unwrap();
    c.register(
        NodeSpec::new("train", "trains")
            .input(PortSpec::required("train_data", PortType::ImageDataset))
            .input(PortSpec::optional("val_data", PortType::ImageDataset))
            .output(PortSpec::output("model", PortType::Model))
            .with_config(
                ConfigSchema::new()
                    .field(
                        ConfigField::new(
                            "epochs",
                            FieldKind::Integer {
                                min: Some(1),
                                max: None,
                            },
                        )
                        .default_value(1),
                    )
                    .field(ConfigField::new(
                        "optimizer",
                        FieldKind::Choice {
                            choices: vec!["adam".into(), "sgd".into()],
                        },
                    )),
            ),
    )
    .unwrap();
    c.register(
        NodeSpec::new("eval", "evaluates")
            .input(PortSpec::required("model", PortType::Model).multiple())
            .input(PortSpec::required("data", PortType::ImageDataset))
            .output(PortSpec::output("metrics", PortType::Metrics)),
    )
    .unwrap();
    c.register(
        NodeSpec::new("pass", "passes a value on")
            .input(PortSpec::optional("in", PortType::Value))
            .output(PortSpec::output("out", PortType::Value)),
    )
    .unwrap();
    c
}
