//! Hyperparameter search over the training loop: the study behind `tune.classifier`.
//!
//! The samplers (TPE, random, grid) and the pruners (median, successive halving as in
//! ASHA, Hyperband) are the `optimizer` crate's, an Optuna-like library. This module runs
//! the trials, several at once, each a normal training run with sampled settings; it feeds
//! each epoch's monitored value to the pruner and ends weak trials there, and it keeps a
//! journal of every trial (and the last checkpoint of each running one), so a study that was
//! stopped continues: finished trials are not run again and a half-run trial continues
//! from its last epoch.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Instant;

use medfusion_graph::{ConfigIssue, ConfigSchema, NodeConfig};
use optimizer::Study;
use optimizer::distribution::Distribution;
use optimizer::parameter::{
    CategoricalParam, FloatParam, IntParam, ParamId, ParamValue, Parameter,
};
use optimizer::pruner::{HyperbandPruner, MedianPruner, NopPruner, SuccessiveHalvingPruner};
use optimizer::sampler::{CompletedTrial, GridSampler, RandomSampler, TpeSampler};
use optimizer::storage::MemoryStorage;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::{Monitor, TrainConfig};
use crate::data::{AugmentConfig, BatchLoader, DataSplit};
use crate::device::DeviceSpec;
use crate::error::{Error, Result};
use crate::hooks::{EpochRecord, Progress, TrainHooks};
use crate::nodes::TrainNodeConfig;
use crate::resume::TrainState;
use crate::source::BatchSource;
use crate::train::TrainedModel;

/// One dimension of the search space, written `{log_uniform: [1e-4, 1e-1]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum SearchSpace {
    /// A number drawn on a log scale between two positive bounds (learning rates, weight
    /// decay).
    LogUniform([f64; 2]),
    /// A number drawn uniformly between two bounds.
    Uniform([f64; 2]),
    /// A whole number between two bounds, both included.
    Int([i64; 2]),
    /// One of the listed values (any of the key's values: numbers, strings, lists).
    Choice(Vec<Value>),
}

impl SearchSpace {
    /// The values at the ends of the range (every value of a choice): if these are valid
    /// settings, so is everything between.
    fn extremes(&self) -> Vec<Value> {
        match self {
            SearchSpace::LogUniform([a, b]) | SearchSpace::Uniform([a, b]) => {
                vec![Value::from(*a), Value::from(*b)]
            }
            SearchSpace::Int([a, b]) => vec![Value::from(*a), Value::from(*b)],
            SearchSpace::Choice(values) => values.clone(),
        }
    }

    /// What is wrong with the range itself, if anything.
    fn range_issue(&self) -> Option<String> {
        match self {
            SearchSpace::LogUniform([a, b]) if !(*a > 0.0 && a < b && b.is_finite()) => Some(
                format!("log_uniform needs 0 < low < high, found [{a}, {b}]"),
            ),
            SearchSpace::Uniform([a, b]) if !(a < b && a.is_finite() && b.is_finite()) => {
                Some(format!("uniform needs low < high, found [{a}, {b}]"))
            }
            SearchSpace::Int([a, b]) if a > b => {
                Some(format!("int needs low <= high, found [{a}, {b}]"))
            }
            SearchSpace::Choice(values) if values.is_empty() => {
                Some("choice needs at least one value".into())
            }
            _ => None,
        }
    }

    /// Points of this dimension in a grid search with `points` per numeric range.
    fn grid_size(&self, points: usize) -> usize {
        match self {
            SearchSpace::LogUniform(_) | SearchSpace::Uniform(_) => points,
            SearchSpace::Int([a, b]) => {
                usize::try_from(b - a + 1).unwrap_or(usize::MAX).min(points)
            }
            SearchSpace::Choice(values) => values.len(),
        }
    }
}

/// How the next trial's settings are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SamplerKind {
    /// Uniformly at random.
    Random,
    /// Tree-structured Parzen Estimator (Optuna's default), after `n_startup_trials` random
    /// ones.
    #[default]
    Tpe,
    /// Every combination of a grid (`grid_points` per numeric range, every choice).
    Grid,
}

/// How weak trials are stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PrunerKind {
    /// Every trial runs all its epochs.
    None,
    /// Stop a trial whose value is worse than the median of earlier trials at the same epoch.
    #[default]
    Median,
    /// Asynchronous successive halving: at epochs 1, 3, 9, ... keep the best third (with
    /// `reduction_factor: 3`).
    Asha,
    /// Hyperband: successive halving in several brackets of different first rungs.
    Hyperband,
}

/// Whether the study looks for the largest or the smallest value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StudyDirection {
    /// Larger is better (AUC, accuracy).
    Maximize,
    /// Smaller is better (loss).
    Minimize,
}

/// The search settings of `tune.classifier`, beside the training settings it starts from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct TuneSettings {
    /// The settings to search: a `train.classifier` key and its range, e.g.
    /// `learning_rate: {log_uniform: [1e-4, 1e-1]}`, `batch_size: {choice: [16, 32]}`.
    #[schemars(extend("x-required" = true))]
    pub search_space: BTreeMap<String, SearchSpace>,
    /// Training runs in the study.
    #[schemars(range(min = 1, max = 100_000))]
    pub trials: usize,
    /// Trials trained at the same time (they share the node's CPU threads and GPUs).
    #[schemars(range(min = 1, max = 1024))]
    pub max_parallel: usize,
    /// The objective is `monitor` (e.g. `val_auc`) at the trial's best epoch; this says
    /// whether larger or smaller is better (default: larger, smaller for losses).
    pub direction: Option<StudyDirection>,
    /// How the next trial's settings are chosen: `tpe`, `random` or `grid`.
    pub sampler: SamplerKind,
    /// How weak trials are stopped early: `none`, `median`, `asha` or `hyperband`.
    pub pruner: PrunerKind,
    /// Random trials before TPE takes over (and before the median pruner stops any).
    #[schemars(range(min = 0, max = 100_000))]
    pub n_startup_trials: usize,
    /// Points per numeric range in a grid search.
    #[schemars(range(min = 2, max = 1000))]
    pub grid_points: usize,
    /// ASHA and Hyperband keep the best 1/`reduction_factor` of the trials at each rung
    /// (epochs 1, f, f², ...).
    #[schemars(range(min = 2, max = 100))]
    pub reduction_factor: u64,
}

impl Default for TuneSettings {
    fn default() -> TuneSettings {
        TuneSettings {
            search_space: BTreeMap::new(),
            trials: 20,
            max_parallel: 1,
            direction: None,
            sampler: SamplerKind::Tpe,
            pruner: PrunerKind::Median,
            n_startup_trials: 10,
            grid_points: 5,
            reduction_factor: 3,
        }
    }
}

/// The settings of `tune.classifier`: those of `train.classifier` (the base every trial
/// starts from) and the search.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(extend("additionalProperties" = false))]
pub struct TuneConfig {
    /// The training settings every trial starts from.
    #[serde(flatten)]
    pub base: TrainNodeConfig,
    /// The search.
    #[serde(flatten)]
    pub tune: TuneSettings,
}

/// Keys a study may not search: they are the study's own or set for every trial.
const FIXED_KEYS: [(&str, &str); 3] = [
    (
        "seed",
        "every trial trains from the same seed, so they differ only in what is searched",
    ),
    (
        "device",
        "the study places its trials on the node's devices",
    ),
    (
        "epochs",
        "it is each trial's budget, which the pruner divides; set `epochs` instead",
    ),
];

impl NodeConfig for TuneConfig {
    fn check(&self) -> Vec<ConfigIssue> {
        let mut issues = self.base.check();
        if self.tune.search_space.is_empty() {
            issues.push(ConfigIssue::invalid(
                "search_space",
                "is empty: name at least one `train.classifier` key to search",
            ));
        }
        let schema = ConfigSchema::of::<TrainNodeConfig>();
        let base = match base_map(&self.base) {
            Ok(map) => map,
            Err(e) => return vec![ConfigIssue::invalid("", e)],
        };
        for (key, space) in &self.tune.search_space {
            let name = format!("search_space.{key}");
            if let Some((_, why)) = FIXED_KEYS.iter().find(|(k, _)| k == key) {
                issues.push(ConfigIssue::invalid(
                    name,
                    format!("cannot be searched: {why}"),
                ));
                continue;
            }
            if schema.get(key).is_none() {
                issues.push(ConfigIssue::invalid(
                    name,
                    "is not a setting of `train.classifier`",
                ));
                continue;
            }
            if let Some(why) = space.range_issue() {
                issues.push(ConfigIssue::invalid(name, why));
                continue;
            }
            for value in space.extremes() {
                let mut map = base.clone();
                map.insert(key.clone(), value.clone());
                if let Err(found) = schema.parse::<TrainNodeConfig>(&map) {
                    for issue in found {
                        issues.push(ConfigIssue::invalid(
                            name.clone(),
                            format!(
                                "with `{key}: {value}`, `{}` {}",
                                issue.key(),
                                issue.reason()
                            ),
                        ));
                    }
                }
            }
        }
        issues
    }
}

/// The base settings as workflow keys (unset options left out).
fn base_map(base: &TrainNodeConfig) -> Result<Map<String, Value>> {
    let Value::Object(map) =
        serde_json::to_value(base).map_err(|e| Error::config("", e.to_string()))?
    else {
        return Err(Error::config("", "the training settings are not a map"));
    };
    Ok(map.into_iter().filter(|(_, v)| !v.is_null()).collect())
}

impl TuneConfig {
    /// The settings of one trial: the base with `params` in place.
    pub fn trial_config(&self, params: &BTreeMap<String, Value>) -> Result<TrainNodeConfig> {
        let mut map = base_map(&self.base)?;
        map.extend(params.iter().map(|(k, v)| (k.clone(), v.clone())));
        ConfigSchema::of::<TrainNodeConfig>()
            .parse(&map)
            .map_err(Error::from_issues)
    }

    /// Whether larger objective values are better.
    pub fn maximize(&self) -> Result<bool> {
        Ok(match self.tune.direction {
            Some(d) => d == StudyDirection::Maximize,
            None => Monitor::parse(&self.base.train.monitor)?.maximize,
        })
    }

    /// Trials the study runs: `trials`, or the grid's size when smaller.
    pub fn trial_budget(&self) -> usize {
        match self.tune.sampler {
            SamplerKind::Grid => self
                .tune
                .search_space
                .values()
                .map(|s| s.grid_size(self.tune.grid_points))
                .fold(1usize, usize::saturating_mul)
                .min(self.tune.trials),
            _ => self.tune.trials,
        }
    }
}

/// Where a trial is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrialStatus {
    /// Training (or stopped mid-way, to continue on resume).
    Running,
    /// Trained all its epochs (or stopped early by its own early stopping).
    Complete,
    /// Stopped by the pruner.
    Pruned,
    /// Training failed.
    Failed,
}

impl TrialStatus {
    /// The name written in `trials.csv`.
    pub fn as_str(self) -> &'static str {
        match self {
            TrialStatus::Running => "running",
            TrialStatus::Complete => "complete",
            TrialStatus::Pruned => "pruned",
            TrialStatus::Failed => "failed",
        }
    }
}

/// One trial of the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialRecord {
    /// 0, 1, 2, ... in the order trials were started.
    pub number: usize,
    /// The sampled settings.
    pub params: BTreeMap<String, Value>,
    /// Where it is.
    pub status: TrialStatus,
    /// The monitored value after each epoch (`None` where it was undefined).
    pub values: Vec<Option<f64>>,
    /// The objective: the monitored value at the best epoch (the last without
    /// `restore_best`).
    pub value: Option<f64>,
    /// The epoch (0-based) the objective comes from.
    pub best_epoch: Option<usize>,
    /// Seconds of training, over all sittings.
    pub seconds: f64,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The best finished trial's model.
#[derive(Debug, Clone)]
pub struct BestTrial {
    /// The trial's number.
    pub number: usize,
    /// Its model.
    pub model: TrainedModel,
    /// Its history.
    pub history: Vec<EpochRecord>,
    /// The epoch of its weights.
    pub best_epoch: Option<usize>,
    /// Whether its early stopping ended it.
    pub stopped_early: bool,
    /// Where its model lives.
    pub device: DeviceSpec,
}

/// Everything a study knows: its trials, the last checkpoint of each running one, and the
/// best model so far. What [`run_study`] continues from.
#[derive(Debug, Clone, Default)]
pub struct StudyJournal {
    /// Every trial started, by number.
    pub trials: Vec<TrialRecord>,
    /// The last checkpoint of each running trial.
    pub states: BTreeMap<usize, TrainState>,
    /// The best finished trial.
    pub best: Option<BestTrial>,
}

impl StudyJournal {
    /// Trials in `status`.
    pub fn count(&self, status: TrialStatus) -> usize {
        self.trials.iter().filter(|t| t.status == status).count()
    }

    /// Epochs trained over all trials.
    pub fn epochs(&self) -> usize {
        self.trials.iter().map(|t| t.values.len()).sum()
    }

    /// `trials.csv`: one row per trial (number, status, objective, best epoch, epochs,
    /// seconds, each searched setting, the monitored value after each epoch, error).
    pub fn to_csv(&self, keys: &[String], epochs: usize) -> Result<Vec<u8>> {
        let mut w = csv::Writer::from_writer(Vec::new());
        let mut header: Vec<String> =
            ["trial", "state", "value", "best_epoch", "epochs", "seconds"]
                .iter()
                .map(ToString::to_string)
                .collect();
        header.extend(keys.iter().cloned());
        header.extend((1..=epochs).map(|e| format!("epoch_{e}")));
        header.push("error".into());
        let csv_err = |e: csv::Error| Error::config("trials.csv", e.to_string());
        w.write_record(&header).map_err(csv_err)?;
        for t in &self.trials {
            let mut row = vec![
                t.number.to_string(),
                t.status.as_str().to_string(),
                t.value.map(|v| v.to_string()).unwrap_or_default(),
                t.best_epoch
                    .map(|e| (e + 1).to_string())
                    .unwrap_or_default(),
                t.values.len().to_string(),
                format!("{:.2}", t.seconds),
            ];
            row.extend(keys.iter().map(|k| match t.params.get(k) {
                Some(Value::String(s)) => s.clone(),
                Some(v) => v.to_string(),
                None => String::new(),
            }));
            row.extend((0..epochs).map(|e| {
                t.values
                    .get(e)
                    .copied()
                    .flatten()
                    .map(|v| v.to_string())
                    .unwrap_or_default()
            }));
            row.push(t.error.clone().unwrap_or_default());
            w.write_record(&row).map_err(csv_err)?;
        }
        w.into_inner()
            .map_err(|e| Error::config("trials.csv", e.to_string()))
    }
}

/// What a study tells its caller, and asks.
pub trait StudyHooks: Sync {
    /// A trial's progress report.
    fn on_progress(&self, _trial: usize, _progress: &Progress) {}

    /// A trial finished an epoch; `value` is the monitored value.
    fn on_epoch(&self, _trial: usize, _record: &EpochRecord, _value: Option<f64>) {}

    /// The journal changed in a way worth saving: a trial started, checkpointed or ended.
    fn on_change(&self, _journal: &StudyJournal) {}

    /// Checked before every batch of every trial: `true` stops the study (running trials
    /// stay running in the journal, to continue later).
    fn is_cancelled(&self) -> bool {
        false
    }

    /// Checked after every epoch: `true` makes each trial checkpoint now.
    fn checkpoint_requested(&self) -> bool {
        false
    }
}

/// The data a study trains on.
#[derive(Debug, Clone, Copy)]
pub struct StudyData<'a> {
    /// Training samples.
    pub train: &'a DataSplit,
    /// Validation samples (the monitored value comes from them).
    pub val: &'a DataSplit,
}

/// What a finished study gives.
#[derive(Debug, Clone)]
pub struct StudyOutcome {
    /// Every trial, and the best model.
    pub journal: StudyJournal,
    /// How much each searched setting mattered (the `optimizer` crate's estimate, summing to
    /// 1), largest first; empty with too few finished trials.
    pub importance: Vec<(String, f64)>,
}

/// One searched setting as the sampler sees it.
enum Dim {
    Float(FloatParam),
    Int(IntParam),
    Choice(CategoricalParam<usize>, Vec<Value>),
}

impl Dim {
    fn new(key: &str, space: &SearchSpace) -> Dim {
        match space {
            SearchSpace::LogUniform([a, b]) => {
                Dim::Float(FloatParam::new(*a, *b).log_scale().name(key))
            }
            SearchSpace::Uniform([a, b]) => Dim::Float(FloatParam::new(*a, *b).name(key)),
            SearchSpace::Int([a, b]) => Dim::Int(IntParam::new(*a, *b).name(key)),
            SearchSpace::Choice(values) => Dim::Choice(
                CategoricalParam::new((0..values.len()).collect()).name(key),
                values.clone(),
            ),
        }
    }

    fn id(&self) -> ParamId {
        match self {
            Dim::Float(p) => p.id(),
            Dim::Int(p) => p.id(),
            Dim::Choice(p, _) => p.id(),
        }
    }

    fn distribution(&self) -> Distribution {
        match self {
            Dim::Float(p) => p.distribution(),
            Dim::Int(p) => p.distribution(),
            Dim::Choice(p, _) => p.distribution(),
        }
    }

    fn suggest(&self, trial: &mut optimizer::Trial) -> Result<Value> {
        let failed = |e: optimizer::Error| Error::config("search_space", e.to_string());
        Ok(match self {
            Dim::Float(p) => Value::from(p.suggest(trial).map_err(failed)?),
            Dim::Int(p) => Value::from(p.suggest(trial).map_err(failed)?),
            Dim::Choice(p, values) => values[p.suggest(trial).map_err(failed)?].clone(),
        })
    }

    /// The sampler's form of a journal value (`None` if it is not in the range any more).
    fn raw(&self, value: &Value) -> Option<ParamValue> {
        match self {
            Dim::Float(_) => value.as_f64().map(ParamValue::Float),
            Dim::Int(_) => value.as_i64().map(ParamValue::Int),
            Dim::Choice(_, values) => values
                .iter()
                .position(|v| v == value)
                .map(ParamValue::Categorical),
        }
    }
}

/// The searched settings, by key.
struct Space {
    dims: Vec<(String, Dim)>,
}

impl Space {
    fn raw(&self, params: &BTreeMap<String, Value>) -> Option<HashMap<ParamId, ParamValue>> {
        self.dims
            .iter()
            .map(|(k, d)| Some((d.id(), d.raw(params.get(k)?)?)))
            .collect()
    }

    /// A finished journal trial as the sampler's history.
    fn completed(&self, t: &TrialRecord, maximize: bool) -> Option<CompletedTrial> {
        let state = match t.status {
            TrialStatus::Complete => optimizer::TrialState::Complete,
            TrialStatus::Pruned => optimizer::TrialState::Pruned,
            TrialStatus::Running | TrialStatus::Failed => return None,
        };
        let params = self.raw(&t.params)?;
        let distributions = self
            .dims
            .iter()
            .map(|(_, d)| (d.id(), d.distribution()))
            .collect();
        let labels = self.dims.iter().map(|(k, d)| (d.id(), k.clone())).collect();
        let worst = if maximize { f64::MIN } else { f64::MAX };
        let mut c = CompletedTrial::new(
            t.number as u64,
            params,
            distributions,
            labels,
            t.value
                .unwrap_or(if state == optimizer::TrialState::Pruned {
                    0.0
                } else {
                    worst
                }),
        );
        c.state = state;
        c.intermediate_values = steps(&t.values);
        Some(c)
    }
}

/// Monitored values as the pruner's `(step, value)` pairs, step = epochs done.
fn steps(values: &[Option<f64>]) -> Vec<(u64, f64)> {
    values
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v.map(|v| (i as u64 + 1, v)))
        .collect()
}

/// A trial waiting to run: a new one, or one of the journal's to continue.
struct Job {
    number: usize,
    resume: Option<(BTreeMap<String, Value>, Option<TrainState>)>,
}

/// Shared state of a running study.
struct Shared<'a> {
    config: &'a TuneConfig,
    space: Space,
    study: Study<f64>,
    monitor: Monitor,
    maximize: bool,
    budget: usize,
    queue: Mutex<Queue>,
    journal: Mutex<StudyJournal>,
    /// The sampler's id of each running trial, by trial number.
    running_ids: Mutex<HashMap<usize, u64>>,
    hooks: &'a dyn StudyHooks,
    data: StudyData<'a>,
    devices: &'a [DeviceSpec],
}

struct Queue {
    resume: VecDeque<Job>,
    next: usize,
    stop: bool,
    error: Option<Error>,
}

/// Run (or continue) a study: `config` gives the base settings and the search, `devices`
/// where trials train when their `device` is `auto` (trial slot `i` takes
/// `devices[i % len]`; empty: `auto`), `journal` what an earlier sitting did (empty for a
/// new study).
pub fn run_study(
    config: &TuneConfig,
    data: StudyData<'_>,
    devices: &[DeviceSpec],
    hooks: &dyn StudyHooks,
    journal: StudyJournal,
) -> Result<StudyOutcome> {
    check_config(config)?;
    let maximize = config.maximize()?;
    let monitor = Monitor::parse(&config.base.train.monitor)?;
    let space = Space {
        dims: config
            .tune
            .search_space
            .iter()
            .map(|(k, s)| (k.clone(), Dim::new(k, s)))
            .collect(),
    };
    let study = build_study(config, maximize, &space, &journal)?;
    let mut resume = VecDeque::new();
    for t in journal
        .trials
        .iter()
        .filter(|t| t.status == TrialStatus::Running)
    {
        resume.push_back(Job {
            number: t.number,
            resume: Some((t.params.clone(), journal.states.get(&t.number).cloned())),
        });
    }
    let shared = Shared {
        config,
        space,
        study,
        monitor,
        maximize,
        budget: config.trial_budget(),
        queue: Mutex::new(Queue {
            resume,
            next: journal.trials.len(),
            stop: false,
            error: None,
        }),
        journal: Mutex::new(journal),
        running_ids: Mutex::new(HashMap::new()),
        hooks,
        data,
        devices,
    };
    let workers = config.tune.max_parallel.min(shared.budget).max(1);
    std::thread::scope(|s| {
        for slot in 0..workers {
            let shared = &shared;
            s.spawn(move || worker(shared, slot));
        }
    });
    let queue = shared.queue.into_inner().map_err(|_| poisoned())?;
    if let Some(e) = queue.error {
        return Err(e);
    }
    let importance = shared.study.param_importance();
    let journal = shared.journal.into_inner().map_err(|_| poisoned())?;
    if hooks.is_cancelled() {
        return Err(Error::Cancelled { epoch: 0, batch: 0 });
    }
    if journal.best.is_none() {
        let reason = journal
            .trials
            .iter()
            .find_map(|t| t.error.clone())
            .unwrap_or_else(|| "every trial was pruned or had no monitored value".into());
        return Err(Error::config(
            "search_space",
            format!("no trial of the study finished: {reason}"),
        ));
    }
    Ok(StudyOutcome {
        journal,
        importance,
    })
}

fn poisoned() -> Error {
    Error::config("", "a trial thread panicked")
}

fn check_config(config: &TuneConfig) -> Result<()> {
    let issues = medfusion_graph::check_config(config)
        .err()
        .unwrap_or_default();
    if issues.is_empty() {
        Ok(())
    } else {
        Err(Error::from_issues(issues))
    }
}

fn build_study(
    config: &TuneConfig,
    maximize: bool,
    space: &Space,
    journal: &StudyJournal,
) -> Result<Study<f64>> {
    let direction = if maximize {
        optimizer::Direction::Maximize
    } else {
        optimizer::Direction::Minimize
    };
    let seed = config.base.train.seed;
    let history: Vec<CompletedTrial> = journal
        .trials
        .iter()
        .filter_map(|t| space.completed(t, maximize))
        .collect();
    let builder = Study::<f64>::builder()
        .direction(direction)
        .storage(MemoryStorage::with_trials(history));
    let builder = match config.tune.sampler {
        SamplerKind::Random => builder.sampler(RandomSampler::with_seed(seed)),
        SamplerKind::Tpe => builder.sampler(
            TpeSampler::builder()
                .seed(seed)
                .n_startup_trials(config.tune.n_startup_trials)
                .build()
                .map_err(|e| Error::config("sampler", e.to_string()))?,
        ),
        SamplerKind::Grid => builder.sampler(
            GridSampler::builder()
                .n_points_per_param(config.tune.grid_points)
                .build(),
        ),
    };
    let epochs = config.base.train.epochs as u64;
    let builder = match config.tune.pruner {
        PrunerKind::None => builder.pruner(NopPruner),
        PrunerKind::Median => builder
            .pruner(MedianPruner::new(direction).n_min_trials(config.tune.n_startup_trials.max(1))),
        PrunerKind::Asha => builder.pruner(
            SuccessiveHalvingPruner::new()
                .min_resource(1)
                .max_resource(epochs)
                .reduction_factor(config.tune.reduction_factor)
                .direction(direction),
        ),
        PrunerKind::Hyperband => builder.pruner(
            HyperbandPruner::new()
                .min_resource(1)
                .max_resource(epochs)
                .reduction_factor(config.tune.reduction_factor)
                .direction(direction),
        ),
    };
    Ok(builder.build())
}

/// A trial taken from the queue: its number, settings, sampler trial and where it starts.
struct Started {
    number: usize,
    params: BTreeMap<String, Value>,
    trial: optimizer::Trial,
    state: Option<TrainState>,
}

/// Take the next trial: a journal trial to continue, else a new one while the budget lasts.
/// Its settings are drawn and its journal entry made under the queue's lock, so trial
/// numbers are journal indices and a continued trial gets its own settings back.
fn next_job(shared: &Shared<'_>) -> Result<Option<Started>> {
    let mut queue = shared.queue.lock().map_err(|_| poisoned())?;
    if queue.stop || shared.hooks.is_cancelled() {
        return Ok(None);
    }
    let job = match queue.resume.pop_front() {
        Some(job) => job,
        None if queue.next < shared.budget => {
            queue.next += 1;
            Job {
                number: queue.next - 1,
                resume: None,
            }
        }
        None => return Ok(None),
    };
    if let Some((params, _)) = &job.resume
        && let Some(raw) = shared.space.raw(params)
    {
        shared.study.enqueue(raw);
    }
    let mut trial = shared.study.ask();
    shared
        .running_ids
        .lock()
        .map_err(|_| poisoned())?
        .insert(job.number, trial.id());
    let mut params = BTreeMap::new();
    for (key, dim) in &shared.space.dims {
        params.insert(key.clone(), dim.suggest(&mut trial)?);
    }
    let state = job.resume.and_then(|(_, state)| state);
    let mut journal = shared.journal.lock().map_err(|_| poisoned())?;
    let record = match journal.trials.get(job.number) {
        // Epochs already trained stay (their values are reported again, so the pruner
        // sees them); those after the checkpoint are trained again.
        Some(t) => TrialRecord {
            params: params.clone(),
            values: t.values[..state
                .as_ref()
                .map_or(0, |s| s.trainer.epochs_done)
                .min(t.values.len())]
                .to_vec(),
            ..t.clone()
        },
        None => TrialRecord {
            number: job.number,
            params: params.clone(),
            status: TrialStatus::Running,
            values: Vec::new(),
            value: None,
            best_epoch: None,
            seconds: 0.0,
            error: None,
        },
    };
    for (step, value) in steps(&record.values) {
        trial.report(step, value);
    }
    if job.number < journal.trials.len() {
        journal.trials[job.number] = record;
    } else {
        journal.trials.push(record);
    }
    if state.is_none() {
        journal.states.remove(&job.number);
    }
    shared.hooks.on_change(&journal);
    Ok(Some(Started {
        number: job.number,
        params,
        trial,
        state,
    }))
}

fn worker(shared: &Shared<'_>, slot: usize) {
    let result = (|| {
        while let Some(started) = next_job(shared)? {
            run_trial(shared, slot, started)?;
        }
        Ok(())
    })();
    if let Err(e) = result
        && let Ok(mut queue) = shared.queue.lock()
    {
        queue.stop = true;
        queue.error.get_or_insert(e);
    }
}

/// Run one trial to its end; an `Err` stops the whole study (a journal that cannot be
/// updated), a failed training only the trial.
fn run_trial(shared: &Shared<'_>, slot: usize, started: Started) -> Result<()> {
    let Started {
        number,
        params,
        mut trial,
        state,
    } = started;
    let mut record = shared.journal.lock().map_err(|_| poisoned())?.trials[number].clone();
    let started = Instant::now();
    let device = trial_device(shared, slot, &params)?;
    let outcome = train_trial(
        shared,
        slot,
        &mut trial,
        &mut record,
        &params,
        state.as_ref(),
    );
    record.seconds += started.elapsed().as_secs_f64();
    shared
        .running_ids
        .lock()
        .map_err(|_| poisoned())?
        .remove(&number);
    match outcome {
        Ok((outcome, pruned)) => {
            let best_epoch = if shared.config.base.train.restore_best {
                outcome.best_epoch.or(record.values.len().checked_sub(1))
            } else {
                record.values.len().checked_sub(1)
            };
            let value = best_epoch.and_then(|e| record.values.get(e).copied().flatten());
            record.best_epoch = best_epoch;
            record.value = value;
            if pruned {
                record.status = TrialStatus::Pruned;
                shared.study.prune_trial(trial);
            } else if let Some(v) = value {
                record.status = TrialStatus::Complete;
                shared.study.tell(trial, Ok::<f64, String>(v));
            } else {
                record.status = TrialStatus::Failed;
                record.error = Some(format!(
                    "`{}` was never defined (a validation split with one class?)",
                    shared.config.base.train.monitor
                ));
                shared.study.tell(trial, Err::<f64, _>("no value"));
            }
            let better = |best: &BestTrial, j: &StudyJournal| {
                let old = j.trials.get(best.number).and_then(|t| t.value);
                match (old, value) {
                    (Some(old), Some(new)) => {
                        if shared.maximize {
                            new > old
                        } else {
                            new < old
                        }
                    }
                    (None, Some(_)) => true,
                    _ => false,
                }
            };
            update(shared, |j| {
                if record.status == TrialStatus::Complete
                    && j.best.as_ref().is_none_or(|b| better(b, j))
                {
                    j.best = Some(BestTrial {
                        number,
                        model: outcome.model,
                        history: outcome.history,
                        best_epoch: outcome.best_epoch,
                        stopped_early: outcome.stopped_early,
                        device,
                    });
                }
                j.states.remove(&number);
                j.trials[number] = record.clone();
            })
        }
        Err(Error::Cancelled { .. }) if shared.hooks.is_cancelled() => {
            // Left running: it continues from its last checkpoint when the study resumes.
            update(shared, |j| j.trials[number].seconds = record.seconds)
        }
        Err(e) => {
            tracing::warn!(trial = number, "trial failed: {e}");
            record.status = TrialStatus::Failed;
            record.error = Some(e.to_string());
            shared.study.tell(trial, Err::<f64, _>(e.to_string()));
            update(shared, |j| {
                j.states.remove(&number);
                j.trials[number] = record.clone();
            })
        }
    }
}

/// Change the journal and tell the caller.
fn update(shared: &Shared<'_>, f: impl FnOnce(&mut StudyJournal)) -> Result<()> {
    let mut journal = shared.journal.lock().map_err(|_| poisoned())?;
    f(&mut journal);
    shared.hooks.on_change(&journal);
    Ok(())
}

/// Train one trial; `true` with the outcome when the pruner stopped it.
fn train_trial(
    shared: &Shared<'_>,
    slot: usize,
    trial: &mut optimizer::Trial,
    record: &mut TrialRecord,
    params: &BTreeMap<String, Value>,
    resume: Option<&TrainState>,
) -> Result<(crate::train::TrainOutcome, bool)> {
    let TrainNodeConfig { mut train, augment } = shared.config.trial_config(params)?;
    train.seed = shared.config.base.train.seed;
    train.device = trial_device(shared, slot, params)?;
    let (train_loader, val_loader) = loaders(&train, &augment, shared.data.train, shared.data.val)?;
    let info = shared.data.train.info().model_info();
    let mut hooks = TrialHooks {
        shared,
        trial,
        record,
        prune: false,
        started: Instant::now(),
    };
    let outcome = crate::train::train(
        &train,
        &info,
        &train_loader,
        Some(&val_loader as &dyn BatchSource),
        &mut hooks,
        resume,
    )?;
    Ok((outcome, hooks.prune))
}

/// Where a trial trains: its own `device` unless `auto`, else the slot's.
fn trial_device(
    shared: &Shared<'_>,
    slot: usize,
    params: &BTreeMap<String, Value>,
) -> Result<DeviceSpec> {
    let own = shared.config.trial_config(params)?.train.device;
    Ok(match (own, shared.devices) {
        (DeviceSpec::Auto, []) => DeviceSpec::Auto,
        (DeviceSpec::Auto, devices) => devices[slot % devices.len()],
        (own, _) => own,
    })
}

/// The training and validation loaders of a training run.
fn loaders(
    config: &TrainConfig,
    augment: &AugmentConfig,
    train: &DataSplit,
    val: &DataSplit,
) -> Result<(BatchLoader, BatchLoader)> {
    Ok((
        config.loader(train.clone(), true, augment.clone())?,
        config.loader(val.clone(), false, AugmentConfig::default())?,
    ))
}

/// The training loop's hooks for one trial.
struct TrialHooks<'a, 'b> {
    shared: &'a Shared<'b>,
    trial: &'a mut optimizer::Trial,
    record: &'a mut TrialRecord,
    prune: bool,
    /// When this sitting of the trial started (`record.seconds` holds earlier sittings').
    started: Instant,
}

impl TrialHooks<'_, '_> {
    /// The pruner's verdict after `step` epochs. Successive halving and Hyperband compare
    /// with every trial that reached the rung, running ones included (asynchronous successive
    /// halving, as Optuna does); the median pruner with finished trials only.
    fn should_prune(&self, step: u64) -> bool {
        match self.shared.config.tune.pruner {
            PrunerKind::None => false,
            PrunerKind::Median => self.trial.should_prune(),
            PrunerKind::Asha | PrunerKind::Hyperband => {
                let mut others = self.shared.study.trials();
                if let (Ok(journal), Ok(ids)) =
                    (self.shared.journal.lock(), self.shared.running_ids.lock())
                {
                    for t in journal.trials.iter().filter(|t| {
                        t.status == TrialStatus::Running && t.number != self.record.number
                    }) {
                        let Some(&id) = ids.get(&t.number) else {
                            continue;
                        };
                        let mut c = CompletedTrial::new(
                            id,
                            HashMap::new(),
                            HashMap::new(),
                            HashMap::new(),
                            0.0,
                        );
                        // Counted as having reached its rungs, like a pruned trial.
                        c.state = optimizer::TrialState::Pruned;
                        c.intermediate_values = steps(&t.values);
                        others.push(c);
                    }
                }
                self.shared.study.pruner().should_prune(
                    self.trial.id(),
                    step,
                    self.trial.intermediate_values(),
                    &others,
                )
            }
        }
    }
}

impl TrainHooks for TrialHooks<'_, '_> {
    fn on_progress(&mut self, progress: &Progress) {
        self.shared.hooks.on_progress(self.record.number, progress);
    }

    fn is_cancelled(&self) -> bool {
        self.shared.hooks.is_cancelled() || self.shared.queue.lock().map_or(true, |q| q.stop)
    }

    fn on_epoch(&mut self, r: &EpochRecord) {
        let value = self
            .shared
            .monitor
            .read(r.train_loss, r.val_loss, &r.val_metrics);
        self.record.values.truncate(r.epoch);
        self.record.values.push(value);
        if let Ok(mut journal) = self.shared.journal.lock()
            && let Some(t) = journal.trials.get_mut(self.record.number)
        {
            t.values.clone_from(&self.record.values);
        }
        if let Some(v) = value {
            self.trial.report(r.epoch as u64 + 1, v);
            self.prune = r.epoch + 1 < self.shared.config.base.train.epochs
                && self.should_prune(r.epoch as u64 + 1);
        }
        self.shared.hooks.on_epoch(self.record.number, r, value);
    }

    fn should_stop(&mut self) -> bool {
        self.prune
    }

    fn on_checkpoint(
        &mut self,
        state: &TrainState,
    ) -> std::result::Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let number = self.record.number;
        let values = self.record.values.clone();
        let seconds = self.record.seconds + self.started.elapsed().as_secs_f64();
        update(self.shared, |j| {
            j.states.insert(number, state.clone());
            if let Some(t) = j.trials.get_mut(number) {
                t.values = values;
                t.seconds = seconds;
            }
        })?;
        Ok(())
    }

    fn checkpoint_requested(&self) -> bool {
        self.shared.hooks.checkpoint_requested()
    }
}
