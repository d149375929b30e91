//! This crate's node types on medfusion's engine: datasets, training, evaluation and
//! prediction, registered with their specs into a [`Registry`].

mod compress_node;
mod specs;
mod train_node;
mod tune_node;
mod values;

use std::path::PathBuf;
use std::sync::Arc;

use medfusion_exec::{
    FileEntry, FilesValue, JsonValue, NodeContext, NodeError, NodeErrorKind, Outputs, Registry,
};
use medfusion_graph::PortType;
use serde_json::{Map, Value, json};

use crate::data::{BatchLoader, DataSplit, DatasetConfig, LoaderConfig, SplitName};
use crate::device::DeviceSpec;
use crate::metrics::{ClassificationMetrics, write_predictions_csv};

pub use specs::{EvaluateConfig, PredictConfig, TrainNodeConfig, specs};
pub use train_node::check_devices;
pub use values::{DatasetValue, ModelValue};

/// Settings of a run that this crate's nodes share.
#[derive(Debug, Clone, Default)]
pub struct NodeSettings {
    /// Relative paths in dataset configs are resolved against this folder (the workflow
    /// file's).
    pub base_dir: PathBuf,
    /// Evaluation and prediction write their files under `<out_dir>/<node>/` (nothing is
    /// written when unset).
    pub out_dir: Option<PathBuf>,
    /// The device of training nodes whose `device` is `auto` (a command line's `--device`).
    pub device: Option<DeviceSpec>,
    /// Make a training step fail, for tests of the engine's handling of it.
    pub fault: Option<FaultInjection>,
}

/// A failure to inject into a training step (tests).
#[derive(Debug, Clone)]
pub struct FaultInjection {
    /// The training node.
    pub node: String,
    /// The attempts it fails in (1 = the first).
    pub attempts: Vec<u32>,
    /// The epoch (0-based).
    pub epoch: usize,
    /// The batch (0-based).
    pub batch: usize,
    /// The panic message (`out of memory` makes it an out-of-memory error).
    pub message: String,
}

/// Register every node type of this crate, and the codecs that restore their values.
pub fn register(
    registry: &mut Registry,
    settings: NodeSettings,
) -> Result<(), medfusion_exec::Error> {
    let settings = Arc::new(settings);
    registry.register_codec(values::DATASET_CODEC, values::DatasetCodec::default());
    registry.register_codec(values::MODEL_CODEC, values::restore_model);
    // Each dataset type with the config keys that name its files.
    for (spec, path_keys) in [
        (specs::synthetic(), &[][..]),
        (specs::image_folder(), &["root"][..]),
        (specs::npz(), &["path"][..]),
        (specs::csv(), &["path"][..]),
        (specs::multimodal(), &["images", "table"][..]),
        (specs::dicom(), &["root", "labels"][..]),
        (specs::nifti(), &["root", "labels"][..]),
    ] {
        let s = Arc::clone(&settings);
        let port_type = spec.outputs[0].port_type.clone();
        registry.register_blocking(spec, move |ctx| {
            load_dataset(ctx, &s, &port_type, path_keys)
        })?;
    }
    let s = Arc::clone(&settings);
    registry.register_blocking(specs::train(), move |ctx| train_node::run(ctx, &s))?;
    let s = Arc::clone(&settings);
    registry.register_blocking(specs::tune(), move |ctx| tune_node::run(ctx, &s))?;
    let s = Arc::clone(&settings);
    registry.register_blocking(specs::quantize(), move |ctx| {
        compress_node::quantize(ctx, &s)
    })?;
    let s = Arc::clone(&settings);
    registry.register_blocking(specs::prune(), move |ctx| compress_node::prune(ctx, &s))?;
    let s = Arc::clone(&settings);
    registry.register_blocking(specs::evaluate(), move |ctx| evaluate(ctx, &s))?;
    let s = Arc::clone(&settings);
    registry.register_blocking(specs::predict(), move |ctx| predict(ctx, &s))?;
    Ok(())
}

fn invalid(ctx: &NodeContext, what: &str, e: impl Into<medfusion_exec::BoxError>) -> NodeError {
    NodeError::with_source(format!("node `{}`: {what}", ctx.id()), e)
        .kind_of(NodeErrorKind::InvalidInput)
}

/// With files on the `files` input, each path key of the config names one of them (by its
/// name, or its file name): the key becomes that file's path.
fn paths_from_files(
    ctx: &NodeContext,
    config: &mut Map<String, Value>,
    path_keys: &[&str],
) -> Result<(), NodeError> {
    let files: Vec<&FileEntry> = ctx
        .inputs()
        .all("files")
        .iter()
        .filter_map(|v| v.downcast_ref::<FilesValue>())
        .flat_map(|f| f.files.iter())
        .collect();
    if files.is_empty() {
        return Ok(());
    }
    for key in path_keys {
        let Some(wanted) = config.get(*key).and_then(Value::as_str).map(str::to_string) else {
            continue;
        };
        let base = |name: &str| {
            std::path::Path::new(name)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        };
        let found = files
            .iter()
            .find(|f| f.name == wanted)
            .or_else(|| files.iter().find(|f| base(&f.name) == base(&wanted)));
        let Some(file) = found else {
            let names: Vec<String> = files.iter().map(|f| format!("`{}`", f.name)).collect();
            return Err(NodeError::msg(format!(
                "node `{}`: `{key}: {wanted}` names none of the files on input `files` ({})",
                ctx.id(),
                names.join(", ")
            ))
            .kind_of(NodeErrorKind::InvalidInput));
        };
        config.insert(
            (*key).to_string(),
            Value::String(file.path.display().to_string()),
        );
    }
    Ok(())
}

fn load_dataset(
    ctx: &NodeContext,
    settings: &NodeSettings,
    port_type: &PortType,
    path_keys: &[&str],
) -> Result<Outputs, NodeError> {
    let mut map = ctx.config().clone();
    paths_from_files(ctx, &mut map, path_keys)?;
    let config = Value::Object(map);
    let source = values::DatasetSource {
        node_type: ctx.node_type().to_string(),
        config: config.clone(),
        workflow_seed: ctx.workflow_seed(),
        base_dir: settings.base_dir.clone(),
    };
    // Check the config before the (possibly long) load, so mistakes are reported as such.
    let mut parsed = DatasetConfig::from_json(ctx.node_type(), &config, Some(ctx.workflow_seed()))
        .map_err(|e| invalid(ctx, "invalid dataset settings", e))?;
    ctx.progress(Some(0.0), "loading");
    let splits = source
        .load()
        .map_err(|e| invalid(ctx, "cannot load the dataset", e))?;
    let source = Arc::new(source);
    let mut out = Outputs::new();
    for name in [SplitName::Train, SplitName::Val, SplitName::Test] {
        out = out.with(
            name.as_str(),
            DatasetValue {
                port_type: port_type.clone(),
                split: splits.split(name).clone(),
                source: Arc::clone(&source),
            },
        );
    }
    // The files it read, for shell nodes downstream (checksummed only when one reads them).
    if !path_keys.is_empty() && ctx.output_is_read("files") {
        parsed.resolve_paths(&settings.base_dir);
        let entries = path_keys.iter().filter_map(|key| {
            config.get(*key).and_then(Value::as_str).map(|given| {
                let path = parsed.path_of(key).unwrap_or_else(|| given.into());
                let name = path
                    .file_name()
                    .map_or_else(|| given.to_string(), |n| n.to_string_lossy().into_owned());
                (name, path)
            })
        });
        let files =
            FilesValue::read(entries).map_err(|e| invalid(ctx, "cannot read its files", e))?;
        out = out.with("files", files);
    }
    let meta = splits.info();
    ctx.progress(
        Some(1.0),
        format!(
            "{} train, {} val, {} test samples, {} classes",
            splits.train.len(),
            splits.val.len(),
            splits.test.len(),
            meta.num_classes()
        ),
    );
    Ok(out)
}

fn input_split(
    ctx: &NodeContext,
    value: &medfusion_exec::Value,
    port: &str,
) -> Result<DataSplit, NodeError> {
    let split = value
        .downcast_ref::<DatasetValue>()
        .map(|d| d.split.clone())
        .ok_or_else(|| not_ours(ctx, port, "a dataset", value))?;
    // An empty split would fail later with a less telling message (no classes to score).
    split
        .require_samples()
        .map_err(|e| invalid(ctx, &format!("input `{port}`"), e))?;
    Ok(split)
}

/// The error for an input value of another crate's type.
pub(super) fn not_ours(
    ctx: &NodeContext,
    port: &str,
    what: &str,
    value: &medfusion_exec::Value,
) -> NodeError {
    invalid(
        ctx,
        &format!("input `{port}` is not {what} of this crate"),
        format!(
            "it carries a value of port type `{}`",
            value.port_type().name()
        ),
    )
}

pub(crate) fn dataset_input(ctx: &NodeContext, port: &str) -> Result<DataSplit, NodeError> {
    input_split(ctx, ctx.input(port)?, port)
}

pub(crate) fn optional_dataset_input(
    ctx: &NodeContext,
    port: &str,
) -> Result<Option<DataSplit>, NodeError> {
    ctx.inputs()
        .all(port)
        .first()
        .map(|v| input_split(ctx, v, port))
        .transpose()
}

pub(super) fn eval_loader(
    ctx: &NodeContext,
    split: DataSplit,
    batch_size: usize,
) -> Result<BatchLoader, NodeError> {
    BatchLoader::new(
        split,
        LoaderConfig {
            batch_size,
            shuffle: false,
            num_workers: 2,
            ..LoaderConfig::default()
        },
    )
    .map_err(|e| invalid(ctx, "cannot load its data", e))
}

pub(super) fn node_folder(
    ctx: &NodeContext,
    settings: &NodeSettings,
) -> Result<Option<PathBuf>, NodeError> {
    let Some(out) = &settings.out_dir else {
        return Ok(None);
    };
    let dir = out.join(ctx.id());
    std::fs::create_dir_all(&dir)
        .map_err(|e| NodeError::with_source(format!("cannot create `{}`", dir.display()), e))?;
    Ok(Some(dir))
}

fn evaluate(ctx: &NodeContext, settings: &NodeSettings) -> Result<Outputs, NodeError> {
    let specs::EvaluateConfig {
        batch_size,
        threshold,
        latency,
    } = ctx.config_as()?;
    let split = dataset_input(ctx, "data")?;
    let loader = eval_loader(ctx, split.clone(), batch_size)?;
    let classes = split.info().model_info().class_names;
    let mut models = Map::new();
    for (i, value) in ctx.inputs().all("model").iter().enumerate() {
        let Some(model) = value.downcast_ref::<ModelValue>() else {
            return Err(not_ours(ctx, "model", "a model", value));
        };
        check_model_fits(ctx, model, &split)?;
        ctx.progress(
            Some(i as f32 / ctx.inputs().all("model").len() as f32),
            format!("scoring `{}`", model.node),
        );
        let predictions = crate::eval::predict(&model.trained.model, &loader, &model.device)
            .map_err(|e| {
                NodeError::with_source(
                    format!("node `{}`: scoring `{}` failed", ctx.id(), model.node),
                    e,
                )
            })?;
        let metrics = if classes.len() == 2 {
            ClassificationMetrics::compute_with_threshold(
                &predictions.probabilities,
                &predictions.labels,
                &classes,
                threshold,
            )
        } else {
            ClassificationMetrics::compute(
                &predictions.probabilities,
                &predictions.labels,
                &classes,
            )
        }
        .map_err(|e| {
            NodeError::with_source(
                format!("node `{}`: metrics of `{}`", ctx.id(), model.node),
                e,
            )
        })?;
        if let Some(dir) = node_folder(ctx, settings)? {
            let name = if ctx.inputs().all("model").len() == 1 {
                "metrics.json".to_string()
            } else {
                format!("{}_metrics.json", model.node)
            };
            metrics
                .write_json(&dir.join(name))
                .map_err(|e| NodeError::with_source("cannot write the metrics", e))?;
        }
        let mut entry = serde_json::to_value(&metrics).unwrap_or(Value::Null);
        if let Value::Object(entry) = &mut entry {
            let size = crate::compress::stored_size(&model.trained.model).ok();
            entry.insert("size_bytes".into(), json!(size));
            if latency {
                let mut ms = Map::new();
                for n in [1, 32] {
                    let source = eval_loader(ctx, split.clone(), n)?;
                    let t = crate::eval::forward_latency(
                        &model.trained.model,
                        &source,
                        &model.device,
                        2,
                        10,
                    )
                    .map_err(|e| {
                        NodeError::with_source(
                            format!("node `{}`: timing `{}` failed", ctx.id(), model.node),
                            e,
                        )
                    })?;
                    ms.insert(format!("batch_{n}"), json!(t));
                }
                entry.insert("latency_ms".into(), Value::Object(ms));
            }
        }
        models.insert(model.node.clone(), entry);
    }
    let summary = json!({ "models": models, "classes": classes, "split": split.name().as_str() });
    Ok(Outputs::new().with(
        "metrics",
        JsonValue {
            port_type: PortType::Metrics,
            value: summary,
        },
    ))
}

/// An error naming the model unless it was built for data like `split`'s.
fn check_model_fits(
    ctx: &NodeContext,
    model: &ModelValue,
    split: &DataSplit,
) -> Result<(), NodeError> {
    model
        .trained
        .check_data(&split.info().model_info())
        .map_err(|e| {
            invalid(
                ctx,
                &format!("model `{}` cannot score `data`", model.node),
                e,
            )
        })
}

fn predict(ctx: &NodeContext, settings: &NodeSettings) -> Result<Outputs, NodeError> {
    let split = dataset_input(ctx, "data")?;
    let value = ctx.input("model")?;
    let Some(model) = value.downcast_ref::<ModelValue>() else {
        return Err(not_ours(ctx, "model", "a model", value));
    };
    check_model_fits(ctx, model, &split)?;
    let specs::PredictConfig { batch_size } = ctx.config_as()?;
    let loader = eval_loader(ctx, split.clone(), batch_size)?;
    let predictions =
        crate::eval::predict(&model.trained.model, &loader, &model.device).map_err(|e| {
            NodeError::with_source(format!("node `{}`: prediction failed", ctx.id()), e)
        })?;
    let classes = split.info().model_info().class_names;
    let path = match node_folder(ctx, settings)? {
        Some(dir) => {
            let path = dir.join("predictions.csv");
            write_predictions_csv(
                &path,
                &classes,
                split.ids(),
                Some(&predictions.labels),
                &predictions.probabilities,
            )
            .map_err(|e| NodeError::with_source("cannot write the predictions", e))?;
            Some(path.display().to_string())
        }
        None => None,
    };
    let summary =
        json!({ "rows": predictions.len(), "classes": classes, "path": path, "model": model.node });
    Ok(Outputs::new().with(
        "predictions",
        JsonValue {
            port_type: PortType::Predictions,
            value: summary,
        },
    ))
}
