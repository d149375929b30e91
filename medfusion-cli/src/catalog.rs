//! The node types the CLI knows: built-in specs gathered from the crates.

use medfusion_graph::{
    ConfigField, ConfigSchema, FieldKind, NodeCatalog, NodeSpec, PortSpec, PortType,
};

fn int(name: &str, min: i64, max: i64, default: i64) -> ConfigField {
    ConfigField::new(
        name,
        FieldKind::Integer {
            min: Some(min),
            max: Some(max),
        },
    )
    .default_value(default)
}

fn float(name: &str, min: f64, max: f64, default: f64) -> ConfigField {
    ConfigField::new(
        name,
        FieldKind::Float {
            min: Some(min),
            max: Some(max),
        },
    )
    .default_value(default)
}

fn choice(name: &str, choices: &[&str], default: &str) -> ConfigField {
    ConfigField::new(
        name,
        FieldKind::Choice {
            choices: choices.iter().map(ToString::to_string).collect(),
        },
    )
    .default_value(default)
}

fn dataset_outputs(spec: NodeSpec, port_type: &PortType) -> NodeSpec {
    spec.output(PortSpec::output("train", port_type.clone()).describe("the training split"))
        .output(PortSpec::output("val", port_type.clone()).describe("the validation split"))
        .output(PortSpec::output("test", port_type.clone()).describe("the test split"))
}

fn split_fields(schema: ConfigSchema) -> ConfigSchema {
    schema
        .field(float("val_fraction", 0.0, 0.9, 0.15).describe("share of samples for validation"))
        .field(float("test_fraction", 0.0, 0.9, 0.15).describe("share of samples for testing"))
        .field(
            ConfigField::new(
                "seed",
                FieldKind::Integer {
                    min: Some(0),
                    max: None,
                },
            )
            .describe("seed for splitting and generation (default: the workflow's)"),
        )
}

fn image_fields(schema: ConfigSchema) -> ConfigSchema {
    schema
        .field(int("image_size", 8, 1024, 64).describe("images are resized to this square size"))
        .field(int("channels", 1, 3, 1).describe("1 for grayscale, 3 for RGB"))
}

/// A dataset input that takes any kind of dataset: the model decides what it uses.
fn any_dataset(name: &str) -> PortSpec {
    PortSpec::required(name, PortType::MultimodalDataset)
        .accepting(PortType::ImageDataset)
        .accepting(PortType::TabularDataset)
}

/// The specs of the data, training and evaluation node types.
fn learning_specs() -> Vec<NodeSpec> {
    let synthetic = dataset_outputs(
        NodeSpec::new(
            "dataset.synthetic",
            "Deterministic synthetic medical images with clinical table rows (no download)",
        ),
        &PortType::MultimodalDataset,
    )
    .with_config(split_fields(
        ConfigSchema::new()
            .field(int("samples", 10, 10_000_000, 2000).describe("number of samples in all"))
            .field(int("image_size", 8, 1024, 64).describe("square image size in pixels"))
            .field(int("tabular_features", 0, 1024, 8).describe("clinical features per sample"))
            .field(int("classes", 2, 100, 2).describe("number of classes"))
            .field(
                ConfigField::new("class_balance", FieldKind::Any)
                    .describe("relative class frequencies, e.g. [0.7, 0.3] (default: equal)"),
            )
            .field(float("difficulty", 0.0, 1.0, 0.5).describe("0 = easy, 1 = very hard")),
    ));
    let image_folder = dataset_outputs(
        NodeSpec::new(
            "dataset.image_folder",
            "Images in root/{train,val,test}/<class>/*.png|jpg, or root/<class>/* split by fractions",
        ),
        &PortType::ImageDataset,
    )
    .with_config(split_fields(image_fields(
        ConfigSchema::new()
            .field(ConfigField::new("root", FieldKind::Path).required().describe("the folder")),
    )));
    let npz = dataset_outputs(
        NodeSpec::new(
            "dataset.npz",
            "A MedMNIST-style .npz file (train_images, train_labels, val_*, test_*)",
        ),
        &PortType::ImageDataset,
    )
    .with_config(image_fields(
        ConfigSchema::new().field(
            ConfigField::new("path", FieldKind::Path)
                .required()
                .describe("the .npz file"),
        ),
    ));
    let csv = dataset_outputs(
        NodeSpec::new(
            "dataset.csv",
            "A table with a label column and feature columns",
        ),
        &PortType::TabularDataset,
    )
    .with_config(split_fields(
        ConfigSchema::new()
            .field(
                ConfigField::new("path", FieldKind::Path)
                    .required()
                    .describe("the .csv file"),
            )
            .field(
                ConfigField::new("label_column", FieldKind::String)
                    .default_value("label")
                    .describe("the column holding the class"),
            )
            .field(ConfigField::new("id_column", FieldKind::String).describe("a column of ids"))
            .field(
                ConfigField::new("split_column", FieldKind::String)
                    .describe("a column of train/val/test (instead of fractions)"),
            ),
    ));
    let multimodal = dataset_outputs(
        NodeSpec::new(
            "dataset.multimodal",
            "Images joined with table rows by an id column, for fusion models",
        ),
        &PortType::MultimodalDataset,
    )
    .with_config(split_fields(image_fields(
        ConfigSchema::new()
            .field(
                ConfigField::new("images", FieldKind::Path)
                    .required()
                    .describe("image folder"),
            )
            .field(
                ConfigField::new("table", FieldKind::Path)
                    .required()
                    .describe("the .csv file"),
            )
            .field(
                ConfigField::new("id_column", FieldKind::String)
                    .default_value("id")
                    .describe("the column matching image file names (without extension)"),
            )
            .field(
                ConfigField::new("label_column", FieldKind::String)
                    .default_value("label")
                    .describe("the column holding the class"),
            ),
    )));
    let train = NodeSpec::new(
        "train.classifier",
        "Train a classifier (image, tabular or fusion)",
    )
    .input(any_dataset("train_data").describe("the data to fit"))
    .input(
        PortSpec::optional("val_data", PortType::MultimodalDataset)
            .accepting(PortType::ImageDataset)
            .accepting(PortType::TabularDataset)
            .describe("data for validation, early stopping and model choice"),
    )
    .output(PortSpec::output("model", PortType::Model).describe("the trained model"))
    .with_config(train_config());
    let evaluate = NodeSpec::new(
        "evaluate.classifier",
        "Accuracy, ROC AUC, sensitivity, specificity, F1 and confusion matrix of models",
    )
    .input(
        PortSpec::required("model", PortType::Model)
            .multiple()
            .describe("one or more models, compared side by side"),
    )
    .input(any_dataset("data").describe("the data to evaluate on"))
    .output(PortSpec::output("metrics", PortType::Metrics).describe("the metrics"))
    .with_config(
        ConfigSchema::new()
            .field(int("batch_size", 1, 65_536, 64))
            .field(float("threshold", 0.0, 1.0, 0.5).describe("decision threshold (binary)")),
    );
    let predict = NodeSpec::new(
        "predict.classifier",
        "Per-sample class probabilities as CSV",
    )
    .input(PortSpec::required("model", PortType::Model))
    .input(any_dataset("data"))
    .output(PortSpec::output("predictions", PortType::Predictions))
    .with_config(ConfigSchema::new().field(int("batch_size", 1, 65_536, 64)));
    vec![
        synthetic,
        image_folder,
        npz,
        csv,
        multimodal,
        train,
        evaluate,
        predict,
    ]
}

fn train_config() -> ConfigSchema {
    ConfigSchema::new()
        .field(
            choice(
                "model",
                &[
                    "fusion_resnet18",
                    "fusion_cnn",
                    "resnet18",
                    "resnet34",
                    "resnet50",
                    "resnet101",
                    "vit_small",
                    "vit_base",
                    "cnn",
                    "mlp",
                ],
                "fusion_resnet18",
            )
            .describe("the architecture"),
        )
        .field(choice("fusion", &["concat", "gated"], "concat").describe("how fusion models join"))
        .field(int("epochs", 1, 100_000, 10))
        .field(int("batch_size", 1, 65_536, 32))
        .field(float("learning_rate", 0.0, 10.0, 1e-3))
        .field(choice("optimizer", &["adamw", "adam", "sgd"], "adamw"))
        .field(float("weight_decay", 0.0, 1.0, 1e-4))
        .field(float("momentum", 0.0, 1.0, 0.9).describe("for sgd"))
        .field(choice("scheduler", &["cosine", "step", "none"], "cosine"))
        .field(int("warmup_epochs", 0, 100_000, 0))
        .field(int("step_size", 1, 100_000, 10).describe("epochs between decays (step)"))
        .field(float("gamma", 0.0, 1.0, 0.1).describe("decay factor (step)"))
        .field(ConfigField::new("use_amp", FieldKind::Bool).default_value(false))
        .field(choice("amp_dtype", &["bf16", "f16"], "bf16"))
        .field(int("gradient_accumulation_steps", 1, 4096, 1))
        .field(int("early_stopping_patience", 0, 100_000, 0).describe("0 turns it off"))
        .field(float("min_delta", 0.0, 1e9, 0.0))
        .field(choice(
            "monitor",
            &["val_loss", "val_auc", "val_accuracy"],
            "val_loss",
        ))
        .field(int("checkpoint_interval", 1, 100_000, 1).describe("epochs between checkpoints"))
        .field(ConfigField::new(
            "grad_clip",
            FieldKind::Float {
                min: Some(0.0),
                max: None,
            },
        ))
        .field(int("num_workers", 0, 256, 2).describe("data loading threads"))
        .field(ConfigField::new(
            "seed",
            FieldKind::Integer {
                min: Some(0),
                max: None,
            },
        ))
        .field(
            ConfigField::new("device", FieldKind::String)
                .default_value("auto")
                .describe("auto, cpu or cuda:N"),
        )
        .field(ConfigField::new("activation_checkpointing", FieldKind::Bool).default_value(false))
        .field(ConfigField::new("hflip", FieldKind::Bool).default_value(true))
        .field(ConfigField::new("vflip", FieldKind::Bool).default_value(false))
        .field(float("rotate_degrees", 0.0, 180.0, 10.0))
        .field(float("intensity_jitter", 0.0, 1.0, 0.1))
}

/// The node types the `medfusion` binary runs: the engine's utilities and, once their
/// executors are wired, the learning node types.
pub(crate) fn registry() -> medfusion_exec::Registry {
    medfusion_exec::Registry::with_builtins()
}

/// Every node type the `medfusion` binary can validate: the registry's, plus the learning
/// node types whose specs are known here.
pub(crate) fn catalog(registry: &medfusion_exec::Registry) -> NodeCatalog {
    let mut catalog = registry.catalog().clone();
    for spec in learning_specs() {
        if !catalog.contains(&spec.node_type) {
            // The built-in specs are fixed at compile time; a clash is a bug caught by tests.
            catalog
                .register(spec)
                .expect("built-in node specs are valid and distinct");
        }
    }
    catalog
}

/// The catalog of [`registry`].
pub(crate) fn builtin() -> NodeCatalog {
    catalog(&registry())
}

#[cfg(test)]
mod tests {
    #[test]
    fn builtin_catalog_is_valid() {
        let catalog = super::builtin();
        assert!(catalog.contains("train.classifier"));
        assert!(catalog.contains("dataset.synthetic"));
    }
}
