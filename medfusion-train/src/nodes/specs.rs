//! The specs of this crate's node types: ports, and the typed settings each node reads
//! (from which its config keys, ranges, defaults and descriptions come).

use medfusion_graph::{ConfigIssue, NodeConfig, NodeSpec, PortSpec, PortType};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;
use crate::data::{
    AugmentConfig, CsvConfig, DicomConfig, ImageFolderConfig, MultimodalConfig, NiftiConfig,
    NpzConfig, SyntheticConfig,
};

/// The settings of `train.classifier`: the training loop's and the augmentation's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(extend("additionalProperties" = false))]
pub struct TrainNodeConfig {
    /// The model, the optimizer, the schedule, mixed precision, early stopping, ...
    #[serde(flatten)]
    pub train: TrainConfig,
    /// Random image transformations of the training data.
    #[serde(flatten)]
    pub augment: AugmentConfig,
}

impl NodeConfig for TrainNodeConfig {
    fn check(&self) -> Vec<ConfigIssue> {
        let mut issues = self.train.check();
        issues.extend(self.augment.check());
        issues
    }
}

/// The settings of `evaluate.classifier`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct EvaluateConfig {
    /// Samples per batch.
    #[schemars(range(min = 1, max = 65_536))]
    pub batch_size: usize,
    /// Decision threshold on class 1 (binary).
    #[schemars(range(min = 0.0, max = 1.0))]
    pub threshold: f64,
    /// Also time each model's forward pass at batch 1 and 32 on its device (median of 10
    /// after 2 warm-up passes): `latency_ms` beside the metrics.
    pub latency: bool,
}

impl Default for EvaluateConfig {
    fn default() -> EvaluateConfig {
        EvaluateConfig {
            batch_size: 64,
            threshold: 0.5,
            latency: false,
        }
    }
}

impl NodeConfig for EvaluateConfig {}

/// The settings of `predict.classifier`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct PredictConfig {
    /// Samples per batch.
    #[schemars(range(min = 1, max = 65_536))]
    pub batch_size: usize,
}

impl Default for PredictConfig {
    fn default() -> PredictConfig {
        PredictConfig { batch_size: 64 }
    }
}

impl NodeConfig for PredictConfig {}

fn outputs(spec: NodeSpec, port_type: &PortType) -> NodeSpec {
    spec.output(PortSpec::output("train", port_type.clone()).describe("the training split"))
        .output(PortSpec::output("val", port_type.clone()).describe("the validation split"))
        .output(PortSpec::output("test", port_type.clone()).describe("the test split"))
}

/// The `files` ports of a dataset read from files: an input naming where the data comes
/// from (a shell node's outputs; the config's path keys then name one of its files), and an
/// output with the files the dataset was read from (for shell nodes downstream).
fn file_ports(spec: NodeSpec) -> NodeSpec {
    spec.input(PortSpec::optional("files", PortType::Files).multiple().describe(
        "files to read the data from (the config's paths name them), e.g. a shell node's outputs",
    ))
    .output(PortSpec::output("files", PortType::Files).describe("the files the data was read from"))
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
    .with_config_type::<SyntheticConfig>()
}

pub(super) fn image_folder() -> NodeSpec {
    file_ports(
        outputs(
            NodeSpec::new(
                "dataset.image_folder",
                "Images in root/{train,val,test}/<class>/*.png|jpg, or root/<class>/* split by fractions",
            ),
            &PortType::ImageDataset,
        )
        .with_config_type::<ImageFolderConfig>(),
    )
}

pub(super) fn npz() -> NodeSpec {
    file_ports(
        outputs(
            NodeSpec::new(
                "dataset.npz",
                "A MedMNIST-style .npz (train_images, train_labels, val_*, test_*)",
            ),
            &PortType::ImageDataset,
        )
        .with_config_type::<NpzConfig>(),
    )
}

pub(super) fn csv() -> NodeSpec {
    file_ports(
        outputs(
            NodeSpec::new(
                "dataset.csv",
                "A table with a label column and feature columns",
            ),
            &PortType::TabularDataset,
        )
        .with_config_type::<CsvConfig>(),
    )
}

pub(super) fn multimodal() -> NodeSpec {
    file_ports(
        outputs(
            NodeSpec::new(
                "dataset.multimodal",
                "Images joined with table rows by an id column, for fusion models",
            ),
            &PortType::MultimodalDataset,
        )
        .with_config_type::<MultimodalConfig>(),
    )
}

pub(super) fn dicom() -> NodeSpec {
    file_ports(
        outputs(
            NodeSpec::new(
                "dataset.dicom",
                "DICOM files (CT, MR, X-ray) windowed as a radiologist sees them, labels from a CSV, split by patient",
            ),
            &PortType::MultimodalDataset,
        )
        .with_config_type::<DicomConfig>(),
    )
}

pub(super) fn nifti() -> NodeSpec {
    file_ports(
        outputs(
            NodeSpec::new(
                "dataset.nifti",
                "NIfTI volumes (.nii, .nii.gz) with labels from a CSV, resampled and normalised; volumes or 2D slices",
            ),
            &PortType::ImageDataset,
        )
        .with_config_type::<NiftiConfig>(),
    )
}

pub(super) fn train() -> NodeSpec {
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
    .with_config_type::<TrainNodeConfig>()
}

pub(super) fn tune() -> NodeSpec {
    NodeSpec::new(
        "tune.classifier",
        "Hyperparameter search over train.classifier: TPE, random or grid sampling, median/ASHA/Hyperband pruning",
    )
    .input(any_dataset("train_data", true).describe("the data every trial fits"))
    .input(
        any_dataset("val_data", true)
            .describe("validation data: the monitored value that trials are compared and pruned by"),
    )
    .output(PortSpec::output("model", PortType::Model).describe("the best trial's model"))
    .output(
        PortSpec::output("study", PortType::Value)
            .describe("every trial: settings, value per epoch, state (also trials.csv)"),
    )
    .with_config_type::<crate::tune::TuneConfig>()
}

pub(super) fn quantize() -> NodeSpec {
    NodeSpec::new(
        "compress.quantize",
        "Post-training int8 quantization of a model's convolution and linear weights (per tensor or per channel, symmetric)",
    )
    .input(PortSpec::required("model", PortType::Model))
    .input(any_dataset("data", false).describe(
        "data to compare the quantized model's predictions with the original's",
    ))
    .output(PortSpec::output("model", PortType::Model).describe("the quantized model"))
    .output(
        PortSpec::output("report", PortType::Value)
            .describe("sizes before and after, agreement and metric changes on `data`"),
    )
    .with_config_type::<crate::compress::QuantizeConfig>()
}

pub(super) fn prune() -> NodeSpec {
    NodeSpec::new(
        "compress.prune",
        "Global magnitude pruning, or structured channel pruning of convolutions, to a target sparsity",
    )
    .input(PortSpec::required("model", PortType::Model))
    .input(any_dataset("data", false).describe(
        "data to compare the pruned model's predictions with the original's",
    ))
    .input(any_dataset("train_data", false).describe("data to fine-tune on (`fine_tune_epochs`)"))
    .input(any_dataset("val_data", false).describe("validation data of the fine-tuning"))
    .output(PortSpec::output("model", PortType::Model).describe("the pruned model"))
    .output(
        PortSpec::output("report", PortType::Value)
            .describe("sparsity per layer, agreement and metric changes on `data`"),
    )
    .with_config_type::<crate::compress::PruneConfig>()
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
    .with_config_type::<EvaluateConfig>()
}

pub(super) fn predict() -> NodeSpec {
    NodeSpec::new(
        "predict.classifier",
        "Per-sample class probabilities, written as CSV",
    )
    .input(PortSpec::required("model", PortType::Model))
    .input(any_dataset("data", true))
    .output(PortSpec::output("predictions", PortType::Predictions).describe("where the CSV is"))
    .with_config_type::<PredictConfig>()
}

/// Every node type of this crate, for validation and `medfusion nodes`.
pub fn specs() -> Vec<NodeSpec> {
    vec![
        synthetic(),
        image_folder(),
        npz(),
        csv(),
        multimodal(),
        dicom(),
        nifti(),
        train(),
        tune(),
        quantize(),
        prune(),
        evaluate(),
        predict(),
    ]
}

/// The config a spec would resolve to with nothing set: every default.
#[cfg(test)]
pub(super) fn defaults(spec: &NodeSpec) -> serde_json::Value {
    serde_json::Value::Object(spec.config.resolve(&serde_json::Map::new()))
}
