//! `compress.quantize` and `compress.prune` on the engine: a model in, a smaller model out,
//! with a report of sizes, sparsity and (given data) how far the predictions moved.

use medfusion_exec::{JsonValue, NodeContext, NodeError, NodeErrorKind, Outputs};
use serde_json::{Map, Value, json};

use super::values::ModelValue;
use super::{NodeSettings, eval_loader, node_folder, not_ours, optional_dataset_input};
use crate::compress::{self, PruneConfig, QuantizeConfig};
use crate::config::TrainConfig;
use crate::data::{AugmentConfig, DataSplit};
use crate::device::DeviceSpec;
use crate::hooks::{Progress, TrainHooks};
use crate::model::Model;
use crate::source::BatchSource;

fn input_model(ctx: &NodeContext) -> Result<&ModelValue, NodeError> {
    let value = ctx.input("model")?;
    value
        .downcast_ref::<ModelValue>()
        .ok_or_else(|| not_ours(ctx, "model", "a model", value))
}

fn failed(ctx: &NodeContext, what: &str, e: impl Into<medfusion_exec::BoxError>) -> NodeError {
    NodeError::with_source(format!("node `{}`: {what}", ctx.id()), e)
}

/// How the compressed model's predictions on `data` compare with the original's: the share
/// of samples given the same class, and each metric before and after.
fn compare(
    ctx: &NodeContext,
    original: &ModelValue,
    compressed: &Model,
    report: &mut Map<String, Value>,
) -> Result<(), NodeError> {
    let Some(split) = optional_dataset_input(ctx, "data")? else {
        return Ok(());
    };
    original
        .trained
        .check_data(&split.info().model_info())
        .map_err(|e| {
            failed(ctx, "the model cannot score `data`", e).kind_of(NodeErrorKind::InvalidInput)
        })?;
    let classes = split.info().model_info().class_names;
    let loader = eval_loader(ctx, split, 64)?;
    let score = |model: &Model| {
        crate::eval::predict(model, &loader, &original.device)
            .map_err(|e| failed(ctx, "scoring failed", e))
    };
    let (before, after) = (score(&original.trained.model)?, score(compressed)?);
    let argmax = |p: &[f32]| {
        p.chunks(before.classes.max(1))
            .map(|row| {
                row.iter()
                    .enumerate()
                    .max_by(|a, b| a.1.total_cmp(b.1))
                    .map_or(0, |(i, _)| i)
            })
            .collect::<Vec<_>>()
    };
    let (a, b) = (argmax(&before.probabilities), argmax(&after.probabilities));
    let same = a.iter().zip(&b).filter(|(x, y)| x == y).count();
    report.insert("samples".into(), json!(a.len()));
    report.insert(
        "agreement".into(),
        json!(same as f64 / a.len().max(1) as f64),
    );
    let (mb, ma) = (
        before
            .metrics(&classes)
            .map_err(|e| failed(ctx, "metrics", e))?,
        after
            .metrics(&classes)
            .map_err(|e| failed(ctx, "metrics", e))?,
    );
    for metric in ["accuracy", "roc_auc", "f1"] {
        if let (Some(x), Some(y)) = (mb.get(metric), ma.get(metric)) {
            report.insert(format!("{metric}_before"), json!(x));
            report.insert(format!("{metric}_after"), json!(y));
        }
    }
    report.insert("log_loss_before".into(), json!(before.loss));
    report.insert("log_loss_after".into(), json!(after.loss));
    Ok(())
}

/// Sizes before and after in Burn's own format; with an output folder, the compressed model
/// is written there as `model.bpk` (int8 weights as int8).
fn sizes(
    ctx: &NodeContext,
    settings: &NodeSettings,
    before: &Model,
    after: &Model,
    report: &mut Map<String, Value>,
) -> Result<(), NodeError> {
    let bytes =
        |m: &Model| compress::burnpack(m).map_err(|e| failed(ctx, "cannot serialize the model", e));
    let (b, a) = (bytes(before)?.len(), bytes(after)?);
    report.insert("size_bytes_before".into(), json!(b));
    report.insert("size_bytes_after".into(), json!(a.len()));
    report.insert("size_ratio".into(), json!(a.len() as f64 / b.max(1) as f64));
    if let Some(dir) = node_folder(ctx, settings)? {
        let path = dir.join("model.bpk");
        let tmp = dir.join("model.bpk.tmp");
        std::fs::write(&tmp, &a)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| failed(ctx, &format!("cannot write `{}`", path.display()), e))?;
        report.insert("file".into(), json!(path.display().to_string()));
    }
    Ok(())
}

fn outputs(
    ctx: &NodeContext,
    original: &ModelValue,
    model: Model,
    quantization: Option<QuantizeConfig>,
    report: Map<String, Value>,
) -> Outputs {
    let mut trained = original.trained.clone();
    trained.model = model;
    Outputs::new()
        .with(
            "model",
            ModelValue {
                node: ctx.id().to_string(),
                trained,
                history: original.history.clone(),
                best_epoch: original.best_epoch,
                stopped_early: original.stopped_early,
                device: original.device.clone(),
                quantization,
            },
        )
        .with("report", JsonValue::new(Value::Object(report)))
}

pub(super) fn quantize(ctx: &NodeContext, settings: &NodeSettings) -> Result<Outputs, NodeError> {
    let config: QuantizeConfig = ctx.config_as()?;
    let original = input_model(ctx)?;
    if original.quantization.is_some() {
        return Err(failed(
            ctx,
            "its model is quantized already",
            format!(
                "`{}` is the output of a compress.quantize node",
                original.node
            ),
        )
        .kind_of(NodeErrorKind::InvalidInput));
    }
    ctx.progress(Some(0.0), "quantizing");
    let (model, tensors) = compress::quantize(&original.trained.model, &config);
    let mut report = Map::new();
    report.insert("source".into(), json!(original.node));
    report.insert("quantized_tensors".into(), json!(tensors));
    report.insert("scheme".into(), json!(config));
    sizes(ctx, settings, &original.trained.model, &model, &mut report)?;
    ctx.progress(Some(0.5), "comparing predictions");
    compare(ctx, original, &model, &mut report)?;
    Ok(outputs(ctx, original, model, Some(config), report))
}

pub(super) fn prune(ctx: &NodeContext, settings: &NodeSettings) -> Result<Outputs, NodeError> {
    let config: PruneConfig = ctx.config_as()?;
    let original = input_model(ctx)?;
    ctx.progress(Some(0.0), "pruning");
    let (mut model, mut layers) = compress::prune(&original.trained.model, &config)
        .map_err(|e| failed(ctx, "pruning failed", e))?;
    let channel = config.method == compress::PruneMethod::Channel;
    let mut report = Map::new();
    if config.fine_tune_epochs > 0 {
        let history;
        (model, history) = fine_tune(ctx, original, &config, &model)?;
        layers = compress::sparsity(&model, channel);
        report.insert("fine_tune_history".into(), json!(history));
    }
    // A pruned quantized model is quantized again: the zeros stay zeros.
    if let Some(q) = &original.quantization {
        model = compress::quantize(&model, q).0;
    }
    let (weights, zeros) = layers
        .iter()
        .fold((0, 0), |(w, z), l| (w + l.weights, z + l.zeros));
    report.insert("source".into(), json!(original.node));
    report.insert("method".into(), json!(config.method));
    report.insert(
        "sparsity".into(),
        json!(zeros as f64 / weights.max(1) as f64),
    );
    report.insert("layers".into(), json!(layers));
    sizes(ctx, settings, &original.trained.model, &model, &mut report)?;
    ctx.progress(Some(0.5), "comparing predictions");
    compare(ctx, original, &model, &mut report)?;
    Ok(outputs(ctx, original, model, original.quantization, report))
}

/// The training loop's hooks for fine-tuning: progress to the engine, the zeros kept.
struct FineTuneHooks<'a> {
    ctx: &'a NodeContext,
    mask: compress::ZeroMask,
}

impl TrainHooks for FineTuneHooks<'_> {
    fn on_progress(&mut self, p: &Progress) {
        self.ctx.progress(
            None,
            format!(
                "fine-tuning epoch {}/{} batch {}/{} loss {:.4}",
                p.epoch + 1,
                p.epochs,
                p.batch,
                p.batches,
                p.loss
            ),
        );
    }

    fn is_cancelled(&self) -> bool {
        self.ctx.is_cancelled()
    }

    fn after_step(&mut self, model: Model) -> Model {
        self.mask.apply(model)
    }
}

/// `fine_tune_epochs` of training of the pruned `model` with its zeros held.
fn fine_tune(
    ctx: &NodeContext,
    original: &ModelValue,
    config: &PruneConfig,
    model: &Model,
) -> Result<(Model, Vec<crate::hooks::EpochRecord>), NodeError> {
    let Some(train) = optional_dataset_input(ctx, "train_data")? else {
        return Err(NodeError::msg(format!(
            "node `{}`: `fine_tune_epochs: {}` needs data on input `train_data`",
            ctx.id(),
            config.fine_tune_epochs
        ))
        .kind_of(NodeErrorKind::InvalidInput));
    };
    let val = optional_dataset_input(ctx, "val_data")?;
    let settings = TrainConfig {
        model: original.trained.config.clone(),
        epochs: config.fine_tune_epochs,
        learning_rate: config.learning_rate,
        batch_size: config.batch_size,
        seed: ctx.seed(),
        device: crate::device::device_name(&original.device)
            .parse()
            .unwrap_or(DeviceSpec::Auto),
        ..TrainConfig::default()
    };
    let loader = |split: DataSplit, shuffle: bool| {
        settings
            .loader(split, shuffle, AugmentConfig::default())
            .map_err(|e| failed(ctx, "cannot load its data", e))
    };
    let train_loader = loader(train, true)?;
    let val_loader = val.map(|v| loader(v, false)).transpose()?;
    let mut hooks = FineTuneHooks {
        ctx,
        mask: compress::ZeroMask::of(model, config.method == compress::PruneMethod::Channel),
    };
    let outcome = crate::train::fine_tune(
        &original.device,
        &settings,
        &original.trained.info,
        model,
        &train_loader,
        val_loader.as_ref().map(|l| l as &dyn BatchSource),
        &mut hooks,
    )
    .map_err(|e| match e {
        crate::error::Error::Cancelled { .. } => NodeError::cancelled(),
        e => failed(ctx, "fine-tuning failed", e),
    })?;
    Ok((outcome.model.model, outcome.history))
}
