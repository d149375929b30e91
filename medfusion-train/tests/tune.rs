//! Hyperparameter studies: trials within their ranges and the best kept, weak trials pruned,
//! and a stopped study continued without rerunning what finished.
#![allow(clippy::float_cmp)]

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use medfusion_train::EpochRecord;
use medfusion_train::data::{DatasetConfig, DatasetSplits, SplitName};
use medfusion_train::tune::{
    StudyData, StudyHooks, StudyJournal, TrialStatus, TuneConfig, run_study,
};
use serde_json::json;

fn data() -> DatasetSplits {
    DatasetConfig::from_json(
        "dataset.synthetic",
        &json!({ "samples": 320, "image_size": 16 }),
        Some(5),
    )
    .unwrap()
    .load()
    .unwrap()
}

fn config(extra: serde_json::Value) -> TuneConfig {
    let mut map = json!({
        "model": "fusion_cnn", "epochs": 3, "batch_size": 16, "num_workers": 0,
        "monitor": "val_auc", "log_interval": 100,
    });
    let serde_json::Value::Object(extra) = extra else {
        panic!("settings are a map")
    };
    for (k, v) in extra {
        map[&k] = v;
    }
    medfusion_graph::ConfigSchema::of::<TuneConfig>()
        .parse(map.as_object().unwrap())
        .unwrap()
}

/// Hooks that count epochs per trial and keep the last journal.
#[derive(Default)]
struct Watch {
    epochs: Mutex<Vec<(usize, usize)>>,
    last: Mutex<Option<StudyJournal>>,
    /// Cancel the study once this trial finished its first epoch.
    cancel_after: Option<usize>,
    cancelled: AtomicBool,
    changes: AtomicUsize,
}

impl StudyHooks for Watch {
    fn on_epoch(&self, trial: usize, record: &EpochRecord, value: Option<f64>) {
        assert!(value.is_some(), "val_auc is defined on the synthetic data");
        self.epochs.lock().unwrap().push((trial, record.epoch));
        if self.cancel_after == Some(trial) {
            self.cancelled.store(true, Ordering::SeqCst);
        }
    }

    fn on_change(&self, journal: &StudyJournal) {
        self.changes.fetch_add(1, Ordering::SeqCst);
        *self.last.lock().unwrap() = Some(journal.clone());
    }

    fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }
}

fn study_data(splits: &DatasetSplits) -> StudyData<'_> {
    StudyData {
        train: splits.split(SplitName::Train),
        val: splits.split(SplitName::Val),
    }
}

#[test]
fn a_study_samples_within_its_ranges_and_keeps_the_best_trial() {
    let splits = data();
    let config = config(json!({
        "search_space": {
            "learning_rate": { "log_uniform": [1e-4, 3e-2] },
            "batch_size": { "choice": [8, 16] },
            "weight_decay": { "uniform": [0.0, 0.01] },
        },
        "trials": 4, "max_parallel": 2, "sampler": "random", "pruner": "none",
    }));
    let watch = Watch::default();
    let outcome = run_study(
        &config,
        study_data(&splits),
        &[],
        &watch,
        StudyJournal::default(),
    )
    .unwrap();
    let journal = &outcome.journal;
    assert_eq!(journal.trials.len(), 4);
    for t in &journal.trials {
        assert_eq!(t.status, TrialStatus::Complete, "{t:?}");
        assert_eq!(t.values.len(), 3);
        let lr = t.params["learning_rate"].as_f64().unwrap();
        assert!((1e-4..=3e-2).contains(&lr), "{lr}");
        assert!([json!(8), json!(16)].contains(&t.params["batch_size"]));
        let wd = t.params["weight_decay"].as_f64().unwrap();
        assert!((0.0..=0.01).contains(&wd));
        // The objective is the value at the best epoch.
        let best = t.values.iter().flatten().copied().fold(f64::MIN, f64::max);
        assert_eq!(t.value, Some(best));
    }
    let best = journal.best.as_ref().unwrap();
    let best_value = journal.trials[best.number].value.unwrap();
    assert!(
        journal
            .trials
            .iter()
            .all(|t| t.value.unwrap() <= best_value)
    );
    assert_eq!(best.history.len(), 3);
    // Every trial ran on its own: 4 trials x 3 epochs, each epoch reported once.
    let mut epochs = watch.epochs.lock().unwrap().clone();
    epochs.sort_unstable();
    let expected: Vec<(usize, usize)> = (0..4).flat_map(|t| (0..3).map(move |e| (t, e))).collect();
    assert_eq!(epochs, expected);
    // trials.csv: a header and one row per trial, the searched keys as columns.
    let keys: Vec<String> = config.tune.search_space.keys().cloned().collect();
    let csv = String::from_utf8(journal.to_csv(&keys, 3).unwrap()).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "trial,state,value,best_epoch,epochs,seconds,batch_size,learning_rate,weight_decay,epoch_1,epoch_2,epoch_3,error"
    );
    assert_eq!(lines.len(), 5);
    assert!(lines[1].starts_with("0,complete,"), "{}", lines[1]);
}

#[test]
fn the_pruner_stops_trials_that_do_not_learn() {
    let splits = data();
    // A learning rate of 1e-7 leaves the model where it started; 1e-2 learns in an epoch.
    let config = config(json!({
        "search_space": { "learning_rate": { "choice": [1e-2, 1e-7] } },
        "trials": 8, "sampler": "random", "pruner": "median", "n_startup_trials": 2,
        "epochs": 4,
    }));
    let watch = Watch::default();
    let outcome = run_study(
        &config,
        study_data(&splits),
        &[],
        &watch,
        StudyJournal::default(),
    )
    .unwrap();
    let journal = &outcome.journal;
    let pruned: Vec<_> = journal
        .trials
        .iter()
        .filter(|t| t.status == TrialStatus::Pruned)
        .collect();
    assert!(!pruned.is_empty(), "{:#?}", journal.trials);
    for t in &pruned {
        assert!(
            t.values.len() < 4,
            "a pruned trial stops before its last epoch"
        );
        assert_eq!(
            t.params["learning_rate"],
            json!(1e-7),
            "{:#?}",
            journal.trials
        );
    }
    let best = journal.best.as_ref().unwrap();
    assert_eq!(
        journal.trials[best.number].params["learning_rate"],
        json!(1e-2)
    );
    assert!(journal.epochs() < 8 * 4);
}

#[test]
fn a_stopped_study_continues_without_rerunning_finished_trials() {
    let splits = data();
    let config = config(json!({
        "search_space": { "learning_rate": { "log_uniform": [1e-3, 1e-2] } },
        "trials": 3, "sampler": "tpe", "n_startup_trials": 2, "pruner": "none",
    }));
    // First sitting: stopped after trial 1's first epoch.
    let first = Watch {
        cancel_after: Some(1),
        ..Watch::default()
    };
    let err = run_study(
        &config,
        study_data(&splits),
        &[],
        &first,
        StudyJournal::default(),
    )
    .unwrap_err();
    assert!(
        matches!(err, medfusion_train::Error::Cancelled { .. }),
        "{err}"
    );
    let journal = first.last.lock().unwrap().clone().unwrap();
    assert_eq!(journal.trials.len(), 2);
    assert_eq!(journal.trials[0].status, TrialStatus::Complete);
    assert_eq!(journal.trials[1].status, TrialStatus::Running);
    assert_eq!(journal.trials[1].values.len(), 1);
    assert_eq!(journal.states[&1].trainer.epochs_done, 1);
    let trial1_lr = journal.trials[1].params["learning_rate"].clone();
    let trial0 = journal.trials[0].clone();

    // Second sitting: trial 0 is not run again, trial 1 continues at its second epoch with
    // its own learning rate, trial 2 runs whole.
    let second = Watch::default();
    let outcome = run_study(&config, study_data(&splits), &[], &second, journal).unwrap();
    let epochs = second.epochs.lock().unwrap().clone();
    assert_eq!(epochs, [(1, 1), (1, 2), (2, 0), (2, 1), (2, 2)]);
    let journal = outcome.journal;
    assert_eq!(journal.trials[0], trial0);
    assert_eq!(journal.trials[1].params["learning_rate"], trial1_lr);
    assert_eq!(journal.trials[1].values.len(), 3);
    assert!(
        journal
            .trials
            .iter()
            .all(|t| t.status == TrialStatus::Complete)
    );
    assert!(journal.states.is_empty());
}

#[test]
fn bad_search_spaces_name_the_key() {
    for (space, words) in [
        (json!({}), "search_space` is empty"),
        (
            json!({ "learning_rat": { "uniform": [0.1, 0.2] } }),
            "not a setting",
        ),
        (json!({ "seed": { "int": [1, 5] } }), "cannot be searched"),
        (
            json!({ "learning_rate": { "log_uniform": [0.0, 0.1] } }),
            "0 < low < high",
        ),
        (
            json!({ "learning_rate": { "uniform": [0.1, 5.0] } }),
            "learning_rate: 5.0",
        ),
        (
            json!({ "model": { "choice": ["cnn", "resnet19"] } }),
            "resnet19",
        ),
        (json!({ "batch_size": { "int": [0, 8] } }), "batch_size"),
    ] {
        let map = json!({ "search_space": space });
        let issues = medfusion_graph::ConfigSchema::of::<TuneConfig>()
            .parse::<TuneConfig>(map.as_object().unwrap())
            .unwrap_err();
        let text: Vec<String> = issues.iter().map(ToString::to_string).collect();
        let text = text.join("; ");
        assert!(text.contains(words), "{space}: {text}");
        assert!(text.contains("search_space"), "{space}: {text}");
    }
}
