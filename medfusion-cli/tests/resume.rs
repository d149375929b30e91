//! Kill -9 during training, then resume: no finished node runs again, training continues
//! from its last epoch checkpoint, and the final metrics equal an uninterrupted run's.

mod common;

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use common::{medfusion, root, run_record, stderr};

const SETS: [&str; 14] = [
    "--set",
    "data.samples=400",
    "--set",
    "data.image_size=24",
    "--set",
    "train.epochs=4",
    "--set",
    "train.batch_size=16",
    "--set",
    "train.num_workers=1",
    "--set",
    "train.early_stopping_patience=10",
    "--set",
    "train.model=fusion_cnn",
];

fn args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "run",
        "quickstart.yaml",
        "--out",
        "out",
        "--monitor-interval",
        "200ms",
    ];
    a.extend(extra);
    a.extend(SETS);
    a
}

fn setup(dir: &Path) {
    std::fs::copy(
        root().join("examples/quickstart.yaml"),
        dir.join("quickstart.yaml"),
    )
    .unwrap();
}

#[test]
fn killed_during_training_then_resumed_equals_an_uninterrupted_run() {
    // The reference: one uninterrupted run.
    let straight = tempfile::tempdir().unwrap();
    setup(straight.path());
    let out = medfusion(straight.path(), &args(&[]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let expected =
        run_record(&straight.path().join("out"))["metrics"]["eval"]["models"]["train"].clone();

    // Kill -9 once the training node has saved an epoch checkpoint.
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let mut child = Command::new(env!("CARGO_BIN_EXE_medfusion"))
        .args(args(&["--verbose"]))
        .current_dir(dir.path())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut seen = Vec::new();
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        let saved_epoch = line.contains("checkpoint saved") && line.contains("NodeProgress");
        seen.push(line);
        if saved_epoch {
            child.kill().unwrap(); // SIGKILL
            break;
        }
    }
    let status = child.wait().unwrap();
    assert!(
        status.code().is_none(),
        "the run ended before it was killed: {seen:#?}"
    );
    assert!(!dir.path().join("out/run.json").exists());

    // Resume: the data node is restored, training continues from its checkpoint.
    let out = medfusion(dir.path(), &args(&["--resume", "--explain"]));
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("data                 skip: finished in the saved run"),
        "{text}"
    );
    assert!(
        text.contains("node `data` restored from the checkpoint"),
        "{text}"
    );
    assert!(text.contains("continuing from epoch"), "{text}");
    assert!(
        !text.contains("node `data` started"),
        "the finished node ran again: {text}"
    );
    let record = run_record(&dir.path().join("out"));
    let got = &record["metrics"]["eval"]["models"]["train"];
    assert_eq!(got["confusion_matrix"], expected["confusion_matrix"]);
    for key in ["accuracy", "roc_auc", "log_loss", "f1"] {
        let (a, b) = (got[key].as_f64().unwrap(), expected[key].as_f64().unwrap());
        assert!(
            (a - b).abs() < 1e-9,
            "{key}: resumed {a} vs uninterrupted {b}"
        );
    }
    let history = record["history"]["train"].as_array().unwrap();
    assert_eq!(
        history.len(),
        4,
        "the history covers every epoch, resumed ones included"
    );
}

#[test]
fn a_failed_node_leaves_a_checkpoint_and_run_json_and_resumes_after_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("w.yaml"),
        "name: fixme\nnodes:\n  - { id: a, type: util.value, config: { value: 1 } }\n\
         \x20 - { id: broken, type: util.fail, config: { failures: 1, message: disk on fire } }\n\
         edges:\n  - { from: a.out, to: broken.in }\n",
    )
    .unwrap();
    let out = medfusion(dir.path(), &["run", "w.yaml", "--out", "out"]);
    assert_eq!(out.status.code(), Some(1));
    let record = run_record(&dir.path().join("out"));
    assert_eq!(record["failed_node"], "broken");
    assert_eq!(record["status"], "failed");
    let broken = record["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == "broken")
        .unwrap();
    assert!(
        broken["error"][0]
            .as_str()
            .unwrap()
            .starts_with("disk on fire"),
        "{broken}"
    );
    let list = medfusion(dir.path(), &["checkpoints", "list", "fixme"]);
    assert!(
        String::from_utf8_lossy(&list.stdout).contains("fixme_"),
        "{}",
        stderr(&list)
    );

    // "Fix" the cause, then resume: only the broken node runs.
    let text = std::fs::read_to_string(dir.path().join("w.yaml"))
        .unwrap()
        .replace("failures: 1", "failures: 0");
    std::fs::write(dir.path().join("w.yaml"), text).unwrap();
    let out = medfusion(dir.path(), &["run", "w.yaml", "--resume", "--out", "out"]);
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("node `a` restored"), "{text}");
    assert_eq!(run_record(&dir.path().join("out"))["status"], "succeeded");
}
