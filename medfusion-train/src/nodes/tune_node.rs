//! `tune.classifier` on the engine: the study on a blocking thread, trial progress as
//! events, the journal (with each running trial's last checkpoint) as saved progress, and
//! `trials.csv` beside the node's other files.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Mutex;

use medfusion_exec::{
    BoxError, JsonValue, NodeContext, NodeError, NodeErrorKind, Outputs, SavedValue,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::train_node::{decode_state, encode_state};
use super::values::ModelValue;
use super::{NodeSettings, dataset_input, node_folder};
use crate::data::DatasetInfo;
use crate::device::DeviceSpec;
use crate::error::Error;
use crate::hooks::{EpochRecord, Progress};
use crate::train::TrainedModel;
use crate::tune::{
    BestTrial, StudyData, StudyHooks, StudyJournal, StudyOutcome, TrialRecord, TuneConfig,
    run_study,
};

/// Codec name of a study's saved progress.
const STUDY_CODEC: &str = "medfusion.tune_study";

/// The JSON part of a study's saved progress.
#[derive(Serialize, Deserialize)]
struct SavedStudy {
    trials: Vec<TrialRecord>,
    /// The best trial's model: its number and history (weights in `best/model.safetensors`).
    best: Option<SavedBest>,
}

#[derive(Serialize, Deserialize)]
struct SavedBest {
    number: usize,
    history: Vec<EpochRecord>,
    best_epoch: Option<usize>,
    stopped_early: bool,
}

/// Where trials train when their `device` is `auto`: the run's device, else one GPU of the
/// node's grant per trial slot, else `auto`.
fn devices(settings: &NodeSettings, ctx: &NodeContext) -> Vec<DeviceSpec> {
    match settings.device {
        Some(DeviceSpec::Auto) | None => ctx
            .grant()
            .gpus
            .iter()
            .map(|&g| DeviceSpec::Cuda(g as usize))
            .collect(),
        Some(spec) => vec![spec],
    }
}

struct EngineStudyHooks<'a> {
    ctx: &'a NodeContext,
    config: &'a TuneConfig,
    csv: Option<PathBuf>,
    /// The best model's weights, encoded once per best trial.
    best_bytes: Mutex<Option<(usize, Vec<u8>)>>,
}

impl EngineStudyHooks<'_> {
    /// The journal in the checkpoint layout's two weight files: every running trial's model
    /// and optimizer state under `trial-N/`, the best model under `best/`; the JSON parts
    /// (trials, each running trial's loop state) in the value's data.
    fn encode(&self, journal: &StudyJournal) -> Result<SavedValue, BoxError> {
        let mut models: Vec<(String, Vec<u8>)> = Vec::new();
        let mut optimizers: Vec<(String, Vec<u8>)> = Vec::new();
        let mut trainers = BTreeMap::new();
        for (number, state) in &journal.states {
            let mut state = encode_state(state)?;
            let mut take = |name: &str| {
                state
                    .blobs
                    .remove(name)
                    .ok_or_else(|| format!("a trial's state lacks `{name}`"))
            };
            let prefix = format!("trial-{number}/");
            models.push((prefix.clone(), take("model.safetensors")?.to_vec()));
            optimizers.push((prefix, take("optimizer.safetensors")?.to_vec()));
            trainers.insert(
                number.to_string(),
                String::from_utf8(take("state.json")?.to_vec())?,
            );
        }
        if let Some(best) = &journal.best {
            let mut cache = self.best_bytes.lock().map_err(|_| "poisoned")?;
            if cache.as_ref().is_none_or(|(n, _)| *n != best.number) {
                *cache = Some((best.number, best.model.to_safetensors()?));
            }
            if let Some((_, bytes)) = cache.as_ref() {
                models.push(("best/".into(), bytes.clone()));
            }
        }
        let data = json!({
            "study": SavedStudy {
                trials: journal.trials.clone(),
                best: journal.best.as_ref().map(|b| SavedBest {
                    number: b.number,
                    history: b.history.clone(),
                    best_epoch: b.best_epoch,
                    stopped_early: b.stopped_early,
                }),
            },
            "trainers": trainers,
        });
        let mut saved = SavedValue::json(STUDY_CODEC, data);
        for (name, files) in [
            ("model.safetensors", models),
            ("optimizer.safetensors", optimizers),
        ] {
            if !files.is_empty() {
                saved = saved.with_blob(name, pack(&files)?.into());
            }
        }
        Ok(saved)
    }

    fn write_csv(&self, journal: &StudyJournal) -> Result<(), BoxError> {
        let Some(path) = &self.csv else {
            return Ok(());
        };
        let keys: Vec<String> = self.config.tune.search_space.keys().cloned().collect();
        let bytes = journal.to_csv(&keys, self.config.base.train.epochs)?;
        let tmp = path.with_extension("csv.tmp");
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }
}

impl StudyHooks for EngineStudyHooks<'_> {
    fn on_progress(&self, trial: usize, p: &Progress) {
        let mut metrics = Map::new();
        metrics.insert("trial".into(), json!(trial));
        metrics.insert("epoch".into(), json!(p.epoch + 1));
        metrics.insert("loss".into(), json!(p.loss));
        metrics.insert("samples_per_sec".into(), json!(p.samples_per_sec));
        self.ctx.progress_with(
            None,
            format!(
                "trial {trial}: epoch {}/{} batch {}/{} loss {:.4}",
                p.epoch + 1,
                p.epochs,
                p.batch,
                p.batches,
                p.loss
            ),
            metrics,
        );
    }

    fn on_epoch(&self, trial: usize, r: &EpochRecord, value: Option<f64>) {
        let mut text = format!("trial {trial}: epoch {} done", r.epoch + 1);
        if let Some(v) = value {
            let _ = write!(text, ", {} {v:.4}", self.config.base.train.monitor);
        }
        let mut metrics = serde_json::to_value(r)
            .ok()
            .and_then(|v| v.as_object().cloned())
            .unwrap_or_default();
        metrics.insert("trial".into(), json!(trial));
        self.ctx.progress_with(None, text, metrics);
    }

    fn on_change(&self, journal: &StudyJournal) {
        let finished = journal.trials.len() - journal.count(crate::tune::TrialStatus::Running);
        let budget = self.config.trial_budget().max(1);
        self.ctx.progress(
            Some((finished as f32 / budget as f32).clamp(0.0, 1.0)),
            format!(
                "{finished}/{budget} trials finished ({} pruned, {} failed)",
                journal.count(crate::tune::TrialStatus::Pruned),
                journal.count(crate::tune::TrialStatus::Failed)
            ),
        );
        match self.encode(journal) {
            Ok(saved) => self.ctx.save_progress(saved),
            Err(e) => tracing::warn!(
                node = self.ctx.id(),
                "the study's progress cannot be saved: {e}"
            ),
        }
        if let Err(e) = self.write_csv(journal) {
            tracing::warn!(node = self.ctx.id(), "trials.csv cannot be written: {e}");
        }
    }

    fn is_cancelled(&self) -> bool {
        self.ctx.is_cancelled()
    }

    fn checkpoint_requested(&self) -> bool {
        self.ctx.checkpoint_requested()
    }
}

/// The journal of an earlier sitting.
fn decode_journal(
    saved: &SavedValue,
    config: &TuneConfig,
    info: &DatasetInfo,
) -> Result<StudyJournal, BoxError> {
    if saved.codec != STUDY_CODEC {
        return Err(format!(
            "saved progress has codec `{}`, not `{STUDY_CODEC}`",
            saved.codec
        )
        .into());
    }
    let study: SavedStudy = serde_json::from_value(saved.data["study"].clone())?;
    let trainers: BTreeMap<String, String> =
        serde_json::from_value(saved.data["trainers"].clone())?;
    let blob = |name: &str| saved.blobs.get(name).map_or(&[][..], |b| &b[..]);
    let (models, optimizers) = (blob("model.safetensors"), blob("optimizer.safetensors"));
    let mut journal = StudyJournal {
        trials: study.trials,
        ..StudyJournal::default()
    };
    for (number, trainer) in trainers {
        let prefix = format!("trial-{number}/");
        let (Some(model), Some(optimizer)) =
            (unpack(models, &prefix)?, unpack(optimizers, &prefix)?)
        else {
            return Err(format!("the saved study lacks the weights of trial {number}").into());
        };
        let state = SavedValue::json("medfusion.train_state", Value::Null)
            .with_blob("model.safetensors", model.into())
            .with_blob("optimizer.safetensors", optimizer.into())
            .with_blob("state.json", trainer.into_bytes().into());
        journal
            .states
            .insert(number.parse()?, decode_state(&state)?);
    }
    if let Some(best) = study.best {
        let trial = journal
            .trials
            .get(best.number)
            .ok_or("the best trial is not in the journal")?;
        let bytes = unpack(models, "best/")?.ok_or("the best model's weights are missing")?;
        let train = config.trial_config(&trial.params)?.train;
        journal.best = Some(BestTrial {
            number: best.number,
            model: TrainedModel::from_safetensors(
                train.model,
                info.clone(),
                bytes,
                &DeviceSpec::Cpu.resolve()?,
            )?,
            history: best.history,
            best_epoch: best.best_epoch,
            stopped_early: best.stopped_early,
            device: DeviceSpec::Cpu,
        });
    }
    Ok(journal)
}

/// Several safetensors files as one: each file's tensors and metadata keys under its prefix.
fn pack(files: &[(String, Vec<u8>)]) -> Result<Vec<u8>, BoxError> {
    use safetensors::SafeTensors;
    let parsed = files
        .iter()
        .map(|(prefix, bytes)| {
            Ok((
                prefix,
                SafeTensors::deserialize(bytes)?,
                SafeTensors::read_metadata(bytes)?.1,
            ))
        })
        .collect::<Result<Vec<_>, BoxError>>()?;
    let mut views = Vec::new();
    let mut metadata = std::collections::HashMap::new();
    for (prefix, tensors, meta) in &parsed {
        views.extend(
            tensors
                .tensors()
                .into_iter()
                .map(|(name, view)| (format!("{prefix}{name}"), view)),
        );
        for (k, v) in meta.metadata().iter().flatten() {
            metadata.insert(format!("{prefix}{k}"), v.clone());
        }
    }
    Ok(safetensors::serialize(views, Some(metadata))?)
}

/// The file packed under `prefix` by [`pack`], if there is one.
fn unpack(bytes: &[u8], prefix: &str) -> Result<Option<Vec<u8>>, BoxError> {
    use safetensors::SafeTensors;
    if bytes.is_empty() {
        return Ok(None);
    }
    let tensors = SafeTensors::deserialize(bytes)?;
    let (_, meta) = SafeTensors::read_metadata(bytes)?;
    let views: Vec<_> = tensors
        .tensors()
        .into_iter()
        .filter_map(|(name, view)| Some((name.strip_prefix(prefix)?.to_string(), view)))
        .collect();
    let metadata: std::collections::HashMap<String, String> = meta
        .metadata()
        .iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.strip_prefix(prefix)?.to_string(), v.clone())))
        .collect();
    if views.is_empty() && metadata.is_empty() {
        return Ok(None);
    }
    Ok(Some(safetensors::serialize(views, Some(metadata))?))
}

/// The study as the `study` port's value (and the report's tuning section).
fn study_summary(config: &TuneConfig, outcome: &StudyOutcome) -> Value {
    let journal = &outcome.journal;
    let best = journal
        .best
        .as_ref()
        .and_then(|b| journal.trials.get(b.number));
    let as_name = |v: Value| v.as_str().map(ToString::to_string).unwrap_or_default();
    json!({
            "monitor": config.base.train.monitor,
            "direction": if config.maximize().unwrap_or(true) { "maximize" } else { "minimize" },
            "sampler": as_name(json!(config.tune.sampler)),
            "pruner": as_name(json!(config.tune.pruner)),
            "epochs_per_trial": config.base.train.epochs,
            "epochs_trained": journal.epochs(),
            "best_trial": best.map(|t| t.number),
            "best_value": best.and_then(|t| t.value),
            "best_params": best.map(|t| t.params.clone()),
            "importance": outcome.importance,
            "trials": journal.trials,
    })
}

pub(super) fn run(ctx: &NodeContext, settings: &NodeSettings) -> Result<Outputs, NodeError> {
    let mut config: TuneConfig = ctx.config_as()?;
    config.base.train.seed = ctx.seed();
    let train = dataset_input(ctx, "train_data")?;
    let val = dataset_input(ctx, "val_data")?;
    let info = train.info().model_info();
    let journal = match ctx.resume_state() {
        Some(saved) => {
            let journal = decode_journal(saved, &config, &info).map_err(|e| {
                NodeError::msg(format!(
                    "node `{}`: its saved study cannot be read: {e}",
                    ctx.id()
                ))
            })?;
            ctx.progress(
                None,
                format!(
                    "continuing the study: {} trials finished, {} to continue",
                    journal.trials.len() - journal.count(crate::tune::TrialStatus::Running),
                    journal.count(crate::tune::TrialStatus::Running)
                ),
            );
            journal
        }
        None => StudyJournal::default(),
    };
    let csv = node_folder(ctx, settings)?.map(|dir| dir.join("trials.csv"));
    let hooks = EngineStudyHooks {
        ctx,
        config: &config,
        csv,
        best_bytes: Mutex::new(None),
    };
    let outcome = run_study(
        &config,
        StudyData {
            train: &train,
            val: &val,
        },
        &devices(settings, ctx),
        &hooks,
        journal,
    )
    .map_err(|e| match e {
        Error::Cancelled { .. } => NodeError::cancelled(),
        e @ Error::Config { .. } => {
            NodeError::with_source(format!("node `{}`: the study failed", ctx.id()), e)
                .kind_of(NodeErrorKind::InvalidInput)
        }
        e => NodeError::with_source(format!("node `{}`: the study failed", ctx.id()), e),
    })?;
    let summary = study_summary(&config, &outcome);
    let Some(best) = outcome.journal.best else {
        return Err(NodeError::msg(format!(
            "node `{}`: no trial finished",
            ctx.id()
        )));
    };
    let device = best.device.resolve().map_err(|e| {
        NodeError::with_source(format!("node `{}`: the best model's device", ctx.id()), e)
    })?;
    Ok(Outputs::new()
        .with(
            "model",
            ModelValue {
                node: ctx.id().to_string(),
                trained: best.model,
                history: best.history,
                best_epoch: best.best_epoch,
                stopped_early: best.stopped_early,
                device,
                quantization: None,
            },
        )
        .with("study", JsonValue::new(summary)))
}
