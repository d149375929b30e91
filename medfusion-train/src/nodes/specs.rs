//! The specs of this crate's node types: ports and config keys, checked before a run.

use medfusion_graph::{ConfigField, ConfigSchema, FieldKind, NodeSpec, PortSpec, PortType};

use crate::model::ModelKind;

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

fn string(name: &str) -> ConfigField {
    ConfigField::new(name, FieldKind::String)
}

fn list(name: &str, description: &str) -> ConfigField {
    ConfigField::new(name, FieldKind::Any).describe(description)
}

fn seed() -> ConfigField {
    ConfigField::new(
        "seed",
        FieldKind::Integer {
            min: Some(0),
            max: None,
        },
    )
    .describe("seed of generation and splitting (default: the workflow's)")
}

fn splits(schema: ConfigSchema) -> ConfigSchema {
    schema
        .field(float("val_fraction", 0.0, 0.9, 0.15).describe("share of samples for validation"))
        .field(float("test_fraction", 0.0, 0.9, 0.15).describe("share of samples for testing"))
        .field(seed())
}

fn images(schema: ConfigSchema) -> ConfigSchema {
    schema
        .field(int("image_size", 1, 4096, 64).describe("images are resized to this square size"))
        .field(int("channels", 1, 3, 1).describe("1 for grayscale, 3 for RGB"))
        .field(
            choice("on_error", &["fail", "skip"], "fail")
                .describe("unreadable images: stop, or skip with a warning"),
        )
        .field(list(
            "classes",
            "class folder names in label order (default: all, sorted)",
        ))
}

fn table(schema: ConfigSchema) -> ConfigSchema {
    schema
        .field(
            ConfigField::new("label_column", FieldKind::String)
                .default_value("label")
                .describe("the column holding the class"),
        )
        .field(list(
            "feature_columns",
            "the feature columns (default: every other column)",
        ))
        .field(list(
            "categorical_columns",
            "columns to one-hot encode (default: non-numeric ones)",
        ))
        .field(list("drop_columns", "columns to ignore"))
        .field(string("split_column").describe("a column of train/val/test instead of fractions"))
        .field(
            ConfigField::new("delimiter", FieldKind::String)
                .default_value(",")
                .describe("the field separator"),
        )
        .field(list(
            "missing_values",
            "cells read as missing (default: empty, NA, NaN, null, ...)",
        ))
        .field(
            int("max_categories", 1, 100_000, 50)
                .describe("most distinct values of a categorical column"),
        )
}

fn outputs(spec: NodeSpec, port_type: &PortType) -> NodeSpec {
    spec.output(PortSpec::output("train", port_type.clone()).describe("the training split"))
        .output(PortSpec::output("val", port_type.clone()).describe("the validation split"))
        .output(PortSpec::output("test", port_type.clone()).describe("the test split"))
}

/// A dataset input that takes any kind of dataset: the model decides what it reads.
fn any_dataset(name: &str, required: bool) -> PortSpec {
    let port = if required {
        PortSpec::required(name, PortType::MultimodalDataset)
    } else {
        PortSpec::optional(name, PortType::MultimodalDataset)
    };
    port.accepting(PortType::ImageDataset)
        .accepting(PortType::TabularDataset)
}

pub(super) fn synthetic() -> NodeSpec {
    outputs(
        NodeSpec::new(
            "dataset.synthetic",
            "Deterministic synthetic lesion images with clinical table rows (no download)",
        ),
        &PortType::MultimodalDataset,
    )
    .with_config(splits(
        ConfigSchema::new()
            .field(int("samples", 10, 10_000_000, 2000).describe("number of samples in all"))
            .field(int("image_size", 8, 1024, 64).describe("square image size in pixels"))
            .field(
                int("tabular_features", 0, 1024, 8)
                    .describe("clinical features per sample (at least classes + 1)"),
            )
            .field(int("classes", 2, 100, 2).describe("number of classes"))
            .field(list(
                "class_balance",
                "relative class frequencies, e.g. [0.7, 0.3] (default: equal)",
            ))
            .field(float("difficulty", 0.0, 1.0, 0.5).describe("0 = easy, 1 = very hard"))
            .field(
                float("image_share", 0.0, 1.0, 0.5)
                    .describe("share of diseased cases visible in the image only"),
            )
            .field(
                float("both_share", 0.0, 1.0, 0.1)
                    .describe("share of diseased cases visible in both modalities"),
            )
            .field(
                choice(
                    "modality",
                    &["multimodal", "image", "tabular"],
                    "multimodal",
                )
                .describe(
                    "which parts of the same samples to give (for single-modality baselines)",
                ),
            ),
    ))
}

pub(super) fn image_folder() -> NodeSpec {
    outputs(
        NodeSpec::new(
            "dataset.image_folder",
            "Images in root/{train,val,test}/<class>/*.png|jpg, or root/<class>/* split by fractions",
        ),
        &PortType::ImageDataset,
    )
    .with_config(splits(images(
        ConfigSchema::new()
            .field(ConfigField::new("root", FieldKind::Path).required().describe("the image folder")),
    )))
}

pub(super) fn npz() -> NodeSpec {
    outputs(
        NodeSpec::new(
            "dataset.npz",
            "A MedMNIST-style .npz (train_images, train_labels, val_*, test_*)",
        ),
        &PortType::ImageDataset,
    )
    .with_config(splits(
        ConfigSchema::new()
            .field(
                ConfigField::new("path", FieldKind::Path)
                    .required()
                    .describe("the .npz file"),
            )
            .field(
                ConfigField::new(
                    "image_size",
                    FieldKind::Integer {
                        min: Some(1),
                        max: Some(4096),
                    },
                )
                .describe("resize to this square size (default: the archive's own)"),
            )
            .field(
                ConfigField::new(
                    "channels",
                    FieldKind::Integer {
                        min: Some(1),
                        max: Some(3),
                    },
                )
                .describe("1 or 3 (default: the archive's own)"),
            )
            .field(list(
                "classes",
                "class names in label order (default: 0, 1, ...)",
            )),
    ))
}

pub(super) fn csv() -> NodeSpec {
    outputs(
        NodeSpec::new(
            "dataset.csv",
            "A table with a label column and feature columns",
        ),
        &PortType::TabularDataset,
    )
    .with_config(splits(table(
        ConfigSchema::new()
            .field(
                ConfigField::new("path", FieldKind::Path)
                    .required()
                    .describe("the .csv file"),
            )
            .field(string("id_column").describe("a column of unique sample ids"))
            .field(list(
                "classes",
                "class names in label order (default: the labels found, sorted)",
            )),
    )))
}

pub(super) fn multimodal() -> NodeSpec {
    outputs(
        NodeSpec::new(
            "dataset.multimodal",
            "Images joined with table rows by an id column, for fusion models",
        ),
        &PortType::MultimodalDataset,
    )
    .with_config(splits(table(
        ConfigSchema::new()
            .field(
                ConfigField::new("images", FieldKind::Path)
                    .required()
                    .describe("the image folder"),
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
                string("image_column")
                    .describe("a column of image paths (instead of matching ids)"),
            )
            .field(
                choice("on_unmatched", &["fail", "skip"], "fail")
                    .describe("rows or images without a partner"),
            )
            .field(
                int("image_size", 1, 4096, 64).describe("images are resized to this square size"),
            )
            .field(int("channels", 1, 3, 1).describe("1 for grayscale, 3 for RGB"))
            .field(
                choice("on_error", &["fail", "skip"], "fail")
                    .describe("unreadable images: stop, or skip"),
            )
            .field(list(
                "classes",
                "class names in label order (default: the labels found, sorted)",
            )),
    )))
}

/// The config keys of `train.classifier` that set the model (besides `model` itself).
pub(super) const MODEL_KEYS: [&str; 5] = [
    "fusion",
    "fusion_width",
    "tabular_hidden",
    "tabular_batch_norm",
    "patch_size",
];

/// The config keys of `train.classifier` that set augmentation.
pub(super) const AUGMENT_KEYS: [&str; 5] = [
    "horizontal_flip",
    "vertical_flip",
    "rotation_degrees",
    "brightness",
    "contrast",
];

pub(super) fn train() -> NodeSpec {
    let models: Vec<String> = ModelKind::names().iter().map(ToString::to_string).collect();
    let models: Vec<&str> = models.iter().map(String::as_str).collect();
    let schema = ConfigSchema::new()
        .field(choice("model", &models, "fusion_resnet18").describe("the architecture"))
        .field(
            choice("fusion", &["gated", "concat"], "gated")
                .describe("how fusion models join the two parts"),
        )
        .field(int("fusion_width", 1, 65_536, 64).describe("hidden width of the fusion head"))
        .field(list(
            "tabular_hidden",
            "hidden widths of the tabular MLP, e.g. [64, 32]",
        ))
        .field(ConfigField::new("tabular_batch_norm", FieldKind::Bool).default_value(true))
        .field(
            ConfigField::new(
                "patch_size",
                FieldKind::Integer {
                    min: Some(1),
                    max: Some(1024),
                },
            )
            .describe("ViT patch side"),
        )
        .field(int("epochs", 1, 100_000, 10))
        .field(int("batch_size", 1, 65_536, 32).describe("samples per micro-batch"))
        .field(float("learning_rate", 0.0, 10.0, 1e-3).describe("peak learning rate"))
        .field(choice("optimizer", &["adamw", "adam", "sgd"], "adamw"))
        .field(float("momentum", 0.0, 1.0, 0.9).describe("SGD momentum"))
        .field(float("weight_decay", 0.0, 1.0, 1e-4))
        .field(list("betas", "Adam betas, e.g. [0.9, 0.999]"))
        .field(choice("scheduler", &["cosine", "step", "none"], "cosine"))
        .field(
            int("warmup_epochs", 0, 100_000, 0)
                .describe("linear warm-up before the cosine schedule"),
        )
        .field(float("min_lr", 0.0, 10.0, 0.0).describe("floor of the cosine schedule"))
        .field(int("step_size", 1, 100_000, 10).describe("epochs between decays (step schedule)"))
        .field(float("gamma", 0.0, 1.0, 0.1).describe("decay factor (step schedule)"))
        .field(
            ConfigField::new("use_amp", FieldKind::Bool)
                .default_value(false)
                .describe("mixed precision"),
        )
        .field(choice("amp_dtype", &["bf16", "f16"], "bf16"))
        .field(
            int("gradient_accumulation_steps", 1, 4096, 1)
                .describe("micro-batches per optimizer step"),
        )
        .field(
            ConfigField::new(
                "early_stopping_patience",
                FieldKind::Integer {
                    min: Some(1),
                    max: None,
                },
            )
            .describe("stop after this many epochs without improvement (unset: never)"),
        )
        .field(
            float("min_delta", 0.0, 1e9, 0.0)
                .describe("smallest change that counts as an improvement"),
        )
        .field(
            ConfigField::new("monitor", FieldKind::String)
                .default_value("val_loss")
                .describe("val_loss, val_auc, val_accuracy, val_f1, ..."),
        )
        .field(
            ConfigField::new("restore_best", FieldKind::Bool)
                .default_value(true)
                .describe("keep the best epoch's weights"),
        )
        .field(
            int("checkpoint_interval", 0, 100_000, 1)
                .describe("epochs between checkpoints (0: none)"),
        )
        .field(
            ConfigField::new(
                "grad_clip",
                FieldKind::Float {
                    min: Some(0.0),
                    max: None,
                },
            )
            .describe("clip the global gradient norm"),
        )
        .field(int("num_workers", 0, 256, 2).describe("data loading threads"))
        .field(seed().describe(
            "seed of the weights and the data order (default: derived from the workflow's)",
        ))
        .field(
            ConfigField::new("device", FieldKind::String)
                .default_value("auto")
                .describe("auto, cpu or cuda:N"),
        )
        .field(
            ConfigField::new("activation_checkpointing", FieldKind::Bool)
                .default_value(false)
                .describe("recompute activations to save memory"),
        )
        .field(int("log_interval", 1, 1_000_000, 10).describe("batches between progress reports"))
        .field(float("horizontal_flip", 0.0, 1.0, 0.0).describe("probability of a left-right flip"))
        .field(float("vertical_flip", 0.0, 1.0, 0.0).describe("probability of an up-down flip"))
        .field(float("rotation_degrees", 0.0, 180.0, 0.0).describe("largest random rotation"))
        .field(float("brightness", 0.0, 1.0, 0.0).describe("largest brightness shift"))
        .field(float("contrast", 0.0, 1.0, 0.0).describe("largest relative contrast change"));
    NodeSpec::new(
        "train.classifier",
        "Train a classifier: image, tabular or fusion",
    )
    .input(any_dataset("train_data", true).describe("the data to fit"))
    .input(
        any_dataset("val_data", false)
            .describe("validation data: early stopping and best-model choice"),
    )
    .output(PortSpec::output("model", PortType::Model).describe("the trained model"))
    .with_config(schema)
}

pub(super) fn evaluate() -> NodeSpec {
    NodeSpec::new(
        "evaluate.classifier",
        "Accuracy, ROC AUC, sensitivity, specificity, precision, F1 and confusion matrix",
    )
    .input(
        PortSpec::required("model", PortType::Model)
            .multiple()
            .describe("one or more models, compared side by side"),
    )
    .input(any_dataset("data", true).describe("the data to evaluate on"))
    .output(PortSpec::output("metrics", PortType::Metrics).describe("the metrics of each model"))
    .with_config(
        ConfigSchema::new()
            .field(int("batch_size", 1, 65_536, 64))
            .field(
                float("threshold", 0.0, 1.0, 0.5)
                    .describe("decision threshold on class 1 (binary)"),
            ),
    )
}

pub(super) fn predict() -> NodeSpec {
    NodeSpec::new(
        "predict.classifier",
        "Per-sample class probabilities, written as CSV",
    )
    .input(PortSpec::required("model", PortType::Model))
    .input(any_dataset("data", true))
    .output(PortSpec::output("predictions", PortType::Predictions).describe("where the CSV is"))
    .with_config(ConfigSchema::new().field(int("batch_size", 1, 65_536, 64)))
}

/// Every node type of this crate, for validation and `medfusion nodes`.
pub fn specs() -> Vec<NodeSpec> {
    vec![
        synthetic(),
        image_folder(),
        npz(),
        csv(),
        multimodal(),
        train(),
        evaluate(),
        predict(),
    ]
}

/// The config a spec would resolve to with nothing set: every default.
#[cfg(test)]
pub(super) fn defaults(spec: &NodeSpec) -> serde_json::Value {
    serde_json::Value::Object(spec.config.resolve(&serde_json::Map::new()))
}
