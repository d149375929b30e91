//! `examples/tune.yaml`: a study runs through the engine, writes trials.csv and the report's
//! tuning section; killed with -9 mid-study and resumed, it does not run finished trials
//! again and ends with every trial finished.

mod common;

use std::path::Path;

use common::{Running, medfusion, root, run_record, stderr};

const SETS: [&str; 16] = [
    "--set",
    "data.samples=240",
    "--set",
    "data.image_size=16",
    "--set",
    "tune.epochs=3",
    "--set",
    "tune.trials=4",
    "--set",
    "tune.max_parallel=1",
    "--set",
    "tune.n_startup_trials=2",
    "--set",
    "tune.num_workers=1",
    "--set",
    "tune.log_interval=1",
];

fn args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec!["run", "tune.yaml", "--out", "out", "--verbose"];
    a.extend(extra);
    a.extend(SETS);
    a
}

fn trial_rows(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("out/tune/trials.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(String::from)
        .collect()
}

#[test]
fn a_study_killed_mid_way_resumes_without_rerunning_finished_trials() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        root().join("examples/tune.yaml"),
        dir.path().join("tune.yaml"),
    )
    .unwrap();

    // Kill -9 once trial 1 has trained an epoch (trial 0 is finished by then).
    let mut running = Running::until(dir.path(), &args(&[]), "trial 1: epoch 1 done");
    for line in running.lines.by_ref() {
        if line.unwrap().contains("checkpoint saved") {
            break;
        }
    }
    running.child.kill().unwrap();
    let (status, _) = running.finish();
    assert!(
        status.code().is_none(),
        "the run ended before it was killed"
    );
    let before = trial_rows(dir.path());
    assert!(before[0].starts_with("0,complete,"), "{before:#?}");

    let out = medfusion(dir.path(), &args(&["--resume"]));
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("continuing the study"), "{text}");
    assert!(
        !text.contains("trial 0: epoch"),
        "a finished trial ran again: {text}"
    );
    let after = trial_rows(dir.path());
    assert_eq!(after.len(), 4, "{after:#?}");
    assert_eq!(
        after[0], before[0],
        "the finished trial's row is kept as it was"
    );
    for row in &after {
        let state = row.split(',').nth(1).unwrap();
        assert!(["complete", "pruned"].contains(&state), "{row}");
    }

    let record = run_record(&dir.path().join("out"));
    let study = record["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == "tune")
        .map(|n| n["outputs"]["study"].clone())
        .unwrap();
    assert_eq!(study["trials"].as_array().unwrap().len(), 4);
    let best = study["best_trial"].as_u64().unwrap() as usize;
    assert!(after[best].contains(",complete,"), "{after:#?}");
    let auc = record["metrics"]["eval"]["models"]["tune"]["roc_auc"]
        .as_f64()
        .unwrap();
    assert!((0.0..=1.0).contains(&auc));
    let report = std::fs::read_to_string(dir.path().join("out/report.html")).unwrap();
    assert!(report.contains("Tuning: <code>tune</code>"));
    assert!(report.contains("val_auc by trial"));
}

#[test]
fn validate_names_a_bad_search_space_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(root().join("examples/tune.yaml"))
        .unwrap()
        .replace(
            "learning_rate: { log_uniform",
            "learning_rat: { log_uniform",
        );
    std::fs::write(dir.path().join("tune.yaml"), text).unwrap();
    let out = medfusion(dir.path(), &["validate", "tune.yaml"]);
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("tune.yaml:25: node `tune`: config `search_space.learning_rat` is not a setting of `train.classifier`"),
        "{text}"
    );
}
