//! `train.classifier` on the engine: loaders from the inputs, the training loop on a
//! blocking thread, progress as events, epoch checkpoints as saved progress.

use std::fmt::Write as _;

use medfusion_exec::{BoxError, NodeContext, NodeError, NodeErrorKind, Outputs, SavedValue};
use serde_json::{Map, Value, json};

use super::specs::TrainNodeConfig;
use super::values::ModelValue;
use super::{NodeSettings, dataset_input, optional_dataset_input};
use crate::config::TrainConfig;
use crate::data::AugmentConfig;
use crate::device::DeviceSpec;
use crate::error::Error;
use crate::hooks::{EpochRecord, Progress, TrainHooks};
use crate::resume::TrainState;
use crate::source::BatchSource;

/// Codec name of a training node's saved progress.
const STATE_CODEC: &str = "medfusion.train_state";
/// Tensors of the best epoch's weights ride in the optimizer file under this prefix.
const BEST_PREFIX: &str = "best_model/";

/// The node config split into the loop's settings and the augmentation, the seed derived
/// from the workflow's when the config sets none.
fn parse_config(ctx: &NodeContext) -> Result<(TrainConfig, AugmentConfig), NodeError> {
    let TrainNodeConfig { mut train, augment } = ctx.config_as()?;
    train.seed = ctx.seed();
    Ok((train, augment))
}

/// Where this node trains: its own `device` unless `auto`; else the run's device; else the
/// GPU the engine granted; else whatever `auto` finds.
fn device(config: &TrainConfig, settings: &NodeSettings, ctx: &NodeContext) -> DeviceSpec {
    match config.device {
        DeviceSpec::Auto => match (settings.device, ctx.grant().gpus.first()) {
            (Some(DeviceSpec::Auto) | None, Some(&gpu)) => DeviceSpec::Cuda(gpu as usize),
            (Some(spec), _) => spec,
            (None, None) => DeviceSpec::Auto,
        },
        spec => spec,
    }
}

/// Checks, before a run starts, that every `train.classifier` node of `plan` can have its
/// device (its own `device`, else the run's): `cuda:7` on a machine with one GPU, or any
/// CUDA device in a build without CUDA, is an error naming the node, not a failure found
/// hours later when training starts.
pub fn check_devices(plan: &medfusion_graph::Plan, settings: &NodeSettings) -> Result<(), Error> {
    for i in plan.order().iter().copied() {
        let node = plan.node(i);
        let own = if node.node_type == super::specs::train().node_type {
            plan.spec(i)
                .config
                .parse::<TrainNodeConfig>(plan.config(i))
                .map(|c| c.train.device)
        } else if node.node_type == super::specs::tune().node_type {
            plan.spec(i)
                .config
                .parse::<crate::tune::TuneConfig>(plan.config(i))
                .map(|c| c.base.train.device)
        } else {
            continue;
        };
        // Invalid settings are reported by validation, with their line.
        let Ok(own) = own else {
            continue;
        };
        let spec = match (own, settings.device) {
            (DeviceSpec::Auto, Some(run)) => run,
            (own, _) => own,
        };
        spec.resolve().map_err(|e| Error::Config {
            field: format!("{}.device", node.id),
            reason: format!("`{spec}` cannot be used: {e}"),
        })?;
    }
    Ok(())
}

/// The training loop's hooks, reporting to the engine.
struct EngineHooks<'a> {
    ctx: &'a NodeContext,
    fault: Option<&'a super::FaultInjection>,
    epochs_seen: usize,
}

impl TrainHooks for EngineHooks<'_> {
    fn on_progress(&mut self, p: &Progress) {
        let fraction =
            (p.epoch as f32 + p.batch as f32 / p.batches.max(1) as f32) / p.epochs.max(1) as f32;
        let mut metrics = Map::new();
        metrics.insert("epoch".into(), json!(p.epoch + 1));
        metrics.insert("epochs".into(), json!(p.epochs));
        metrics.insert("batch".into(), json!(p.batch));
        metrics.insert("batches".into(), json!(p.batches));
        metrics.insert("loss".into(), json!(p.loss));
        metrics.insert("samples_per_sec".into(), json!(p.samples_per_sec));
        metrics.insert("learning_rate".into(), json!(p.learning_rate));
        self.ctx.progress_with(
            Some(fraction.clamp(0.0, 1.0)),
            format!(
                "epoch {}/{} batch {}/{} loss {:.4} {:.0} samples/s",
                p.epoch + 1,
                p.epochs,
                p.batch,
                p.batches,
                p.loss,
                p.samples_per_sec
            ),
            metrics,
        );
    }

    fn is_cancelled(&self) -> bool {
        self.ctx.is_cancelled()
    }

    fn on_epoch(&mut self, r: &EpochRecord) {
        self.epochs_seen += 1;
        let mut text = format!("epoch {} done: train loss {:.4}", r.epoch + 1, r.train_loss);
        if let Some(v) = r.val_loss {
            let _ = write!(text, ", val loss {v:.4}");
        }
        if let Some(auc) = r.val_metrics.get("roc_auc") {
            let _ = write!(text, ", val AUC {auc:.3}");
        }
        if let Some(acc) = r.val_metrics.get("accuracy") {
            let _ = write!(text, ", val accuracy {acc:.3}");
        }
        let metrics = serde_json::to_value(r)
            .ok()
            .and_then(|v| v.as_object().cloned())
            .unwrap_or_default();
        self.ctx.progress_with(None, text, metrics);
    }

    fn on_checkpoint(&mut self, state: &TrainState) -> Result<(), BoxError> {
        self.ctx.save_progress(encode_state(state)?);
        Ok(())
    }

    fn checkpoint_requested(&self) -> bool {
        self.ctx.checkpoint_requested()
    }

    fn inject_fault(&mut self, epoch: usize, batch: usize) -> Option<String> {
        let fault = self.fault?;
        (fault.node == self.ctx.id()
            && fault.attempts.contains(&self.ctx.attempt())
            && fault.epoch == epoch
            && fault.batch == batch)
            .then(|| fault.message.clone())
    }
}

/// A training state as saved progress: the checkpoint layout's files.
pub(super) fn encode_state(state: &TrainState) -> Result<SavedValue, BoxError> {
    let optimizer = match &state.best_model {
        None => state.optimizer.clone(),
        Some(best) => merge_safetensors(&state.optimizer, best, BEST_PREFIX)?,
    };
    let history = serde_json::to_vec_pretty(&state.trainer.history)?;
    Ok(SavedValue::json(
        STATE_CODEC,
        json!({ "epochs_done": state.trainer.epochs_done }),
    )
    .with_blob("model.safetensors", state.model.clone().into())
    .with_blob("optimizer.safetensors", optimizer.into())
    .with_blob("state.json", state.trainer_json()?.into_bytes().into())
    .with_blob("history.json", history.into()))
}

pub(super) fn decode_state(saved: &SavedValue) -> Result<TrainState, BoxError> {
    if saved.codec != STATE_CODEC {
        return Err(format!(
            "saved progress has codec `{}`, not `{STATE_CODEC}`",
            saved.codec
        )
        .into());
    }
    let blob = |name: &str| {
        saved
            .blobs
            .get(name)
            .ok_or_else(|| format!("the saved progress lacks `{name}`"))
    };
    let (optimizer, best) = split_safetensors(blob("optimizer.safetensors")?, BEST_PREFIX)?;
    let trainer = std::str::from_utf8(blob("state.json")?)?;
    Ok(TrainState::from_parts(
        blob("model.safetensors")?.to_vec(),
        optimizer,
        best,
        trainer,
    )?)
}

/// One safetensors file holding `a`'s tensors and `b`'s under `prefix` (with `a`'s metadata).
fn merge_safetensors(a: &[u8], b: &[u8], prefix: &str) -> Result<Vec<u8>, BoxError> {
    use safetensors::SafeTensors;
    let (_, meta) = SafeTensors::read_metadata(a)?;
    let (ta, tb) = (SafeTensors::deserialize(a)?, SafeTensors::deserialize(b)?);
    let mut views: Vec<(String, safetensors::tensor::TensorView<'_>)> = ta.tensors();
    views.extend(
        tb.tensors()
            .into_iter()
            .map(|(name, view)| (format!("{prefix}{name}"), view)),
    );
    Ok(safetensors::serialize(views, meta.metadata().clone())?)
}

/// The inverse of [`merge_safetensors`]: the tensors without `prefix`, and those with it.
fn split_safetensors(bytes: &[u8], prefix: &str) -> Result<(Vec<u8>, Option<Vec<u8>>), BoxError> {
    use safetensors::SafeTensors;
    let tensors = SafeTensors::deserialize(bytes)?;
    if !tensors.names().iter().any(|n| n.starts_with(prefix)) {
        return Ok((bytes.to_vec(), None));
    }
    let (_, meta) = SafeTensors::read_metadata(bytes)?;
    let (best, rest): (Vec<_>, Vec<_>) = tensors
        .tensors()
        .into_iter()
        .partition(|(n, _)| n.starts_with(prefix));
    let best: Vec<_> = best
        .into_iter()
        .map(|(n, v)| (n[prefix.len()..].to_string(), v))
        .collect();
    Ok((
        safetensors::serialize(rest, meta.metadata().clone())?,
        Some(safetensors::serialize(best, None)?),
    ))
}

/// Halve the micro-batch and double the accumulation: the same effective batch in less
/// memory, for the retry after an out-of-memory error.
fn smaller_footprint(config: &TrainConfig) -> Option<Map<String, Value>> {
    (config.batch_size > 1).then(|| {
        let mut patch = Map::new();
        patch.insert("batch_size".into(), json!(config.batch_size.div_ceil(2)));
        patch.insert(
            "gradient_accumulation_steps".into(),
            json!(config.gradient_accumulation_steps * 2),
        );
        patch
    })
}

fn node_error(ctx: &NodeContext, e: Error, config: &TrainConfig) -> NodeError {
    match e {
        Error::Cancelled { .. } => NodeError::cancelled(),
        e if e.is_out_of_memory() => {
            let err =
                NodeError::with_source(format!("node `{}` ran out of device memory", ctx.id()), e)
                    .kind_of(NodeErrorKind::OutOfMemory);
            match smaller_footprint(config) {
                Some(patch) => err.retry_with(patch),
                None => err,
            }
        }
        e @ Error::Config { .. } => {
            NodeError::with_source(format!("node `{}`: invalid settings", ctx.id()), e)
                .kind_of(NodeErrorKind::InvalidInput)
        }
        e => NodeError::with_source(format!("node `{}`: training failed", ctx.id()), e),
    }
}

pub(super) fn run(ctx: &NodeContext, settings: &NodeSettings) -> Result<Outputs, NodeError> {
    let (mut config, augment) = parse_config(ctx)?;
    config.device = device(&config, settings, ctx);
    let train_data = dataset_input(ctx, "train_data")?;
    let val_data = optional_dataset_input(ctx, "val_data")?;
    let info = train_data.info().model_info();
    let loader = |split, shuffle: bool, augment: AugmentConfig| {
        config.loader(split, shuffle, augment).map_err(|e| {
            NodeError::with_source(format!("node `{}`: cannot load its data", ctx.id()), e)
        })
    };
    let train_loader = loader(train_data, true, augment)?;
    let val_loader = val_data
        .map(|s| loader(s, false, AugmentConfig::default()))
        .transpose()?;
    let resume = match ctx.resume_state() {
        Some(saved) => {
            let state = decode_state(saved).map_err(|e| {
                NodeError::msg(format!(
                    "node `{}`: its saved progress cannot be read: {e}",
                    ctx.id()
                ))
            })?;
            ctx.progress(
                None,
                format!("continuing from epoch {}", state.trainer.epochs_done + 1),
            );
            Some(state)
        }
        None => None,
    };
    let mut hooks = EngineHooks {
        ctx,
        fault: settings.fault.as_ref(),
        epochs_seen: 0,
    };
    let outcome = crate::train::train(
        &config,
        &info,
        &train_loader,
        val_loader.as_ref().map(|l| l as &dyn BatchSource),
        &mut hooks,
        resume.as_ref(),
    )
    .map_err(|e| node_error(ctx, e, &config))?;
    let device = config
        .device
        .resolve()
        .map_err(|e| node_error(ctx, e, &config))?;
    Ok(Outputs::new().with(
        "model",
        ModelValue {
            node: ctx.id().to_string(),
            trained: outcome.model,
            history: outcome.history,
            best_epoch: outcome.best_epoch,
            stopped_early: outcome.stopped_early,
            device,
            quantization: None,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_defaults_parse_into_the_loop_settings() {
        let spec = super::super::specs::train();
        let defaults = super::super::specs::defaults(&spec);
        let node: TrainNodeConfig = spec.config.parse(defaults.as_object().unwrap()).unwrap();
        assert_eq!(node, TrainNodeConfig::default());
        assert_eq!(node.train.epochs, 10);
        assert_eq!(node.train.model.arch.to_string(), "fusion_resnet18");
        assert!(
            defaults.get("seed").is_none(),
            "the seed comes from the workflow"
        );
    }

    #[test]
    fn out_of_memory_retries_halve_the_micro_batch() {
        let config = TrainConfig {
            batch_size: 32,
            gradient_accumulation_steps: 2,
            ..TrainConfig::default()
        };
        let patch = smaller_footprint(&config).unwrap();
        assert_eq!(patch["batch_size"], 16);
        assert_eq!(patch["gradient_accumulation_steps"], 4);
    }

    #[test]
    fn best_weights_ride_in_the_optimizer_file_and_come_back() {
        let a = safetensors::serialize(
            [(
                "w/m",
                safetensors::tensor::TensorView::new(
                    safetensors::Dtype::F32,
                    vec![1],
                    &[0, 0, 128, 63],
                )
                .unwrap(),
            )],
            Some([("step".to_string(), "3".to_string())].into()),
        )
        .unwrap();
        let b = safetensors::serialize(
            [(
                "w",
                safetensors::tensor::TensorView::new(
                    safetensors::Dtype::F32,
                    vec![1],
                    &[0, 0, 0, 64],
                )
                .unwrap(),
            )],
            None,
        )
        .unwrap();
        let merged = merge_safetensors(&a, &b, BEST_PREFIX).unwrap();
        let (opt, best) = split_safetensors(&merged, BEST_PREFIX).unwrap();
        let opt = safetensors::SafeTensors::deserialize(&opt).unwrap();
        assert_eq!(opt.names(), ["w/m"]);
        let (_, meta) = safetensors::SafeTensors::read_metadata(&merged).unwrap();
        assert_eq!(meta.metadata().as_ref().unwrap()["step"], "3");
        let best = best.unwrap();
        let best = safetensors::SafeTensors::deserialize(&best).unwrap();
        assert_eq!(best.tensor("w").unwrap().data(), &[0, 0, 0, 64]);
    }
}
