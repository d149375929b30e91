//! Every example workflow runs, on small settings, and leaves what it promises: run.json
//! with metrics, report.html, metrics and prediction files.

mod common;

use std::path::Path;

use common::{medfusion, root, run_record, stderr};

/// Small settings for the nodes of the examples (`--set` overrides).
fn small(workflow: &str) -> Vec<String> {
    let text = std::fs::read_to_string(root().join("examples").join(workflow)).unwrap();
    let w = medfusion_graph::Workflow::parse_sniffed(&text).unwrap();
    let mut sets = Vec::new();
    for node in &w.nodes {
        let id = &node.id;
        match node.node_type.as_str() {
            "dataset.synthetic" => {
                sets.push(format!("{id}.samples=160"));
                sets.push(format!("{id}.image_size=16"));
            }
            "dataset.image_folder" | "dataset.multimodal" | "dataset.dicom" => {
                sets.push(format!("{id}.image_size=16"));
            }
            "train.classifier" => {
                sets.push(format!("{id}.epochs=1"));
                sets.push(format!("{id}.batch_size=16"));
                sets.push(format!("{id}.num_workers=1"));
            }
            _ => {}
        }
    }
    sets.into_iter()
        .flat_map(|s| ["--set".to_string(), s])
        .collect()
}

fn run_example(dir: &Path, workflow: &str) -> serde_json::Value {
    std::fs::copy(root().join("examples").join(workflow), dir.join(workflow)).unwrap();
    let mut args: Vec<String> = [
        "run",
        workflow,
        "--out",
        "out",
        "--monitor-interval",
        "200ms",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    args.extend(small(workflow));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = medfusion(dir, &args);
    assert_eq!(out.status.code(), Some(0), "{workflow}: {}", stderr(&out));
    let record = run_record(&dir.join("out"));
    assert_eq!(record["status"], "succeeded", "{workflow}");
    assert!(
        dir.join("out/report.html").exists(),
        "{workflow}: no report"
    );
    assert!(
        std::fs::read_dir(dir.join("checkpoints"))
            .unwrap()
            .next()
            .is_some(),
        "{workflow}: no checkpoint"
    );
    record
}

/// The metrics of every evaluated model are numbers in range, with a confusion matrix
/// that counts every test sample.
fn check_metrics(record: &serde_json::Value, workflow: &str, models: &[&str]) {
    let metrics = record["metrics"]
        .as_object()
        .unwrap_or_else(|| panic!("{workflow}: no metrics"));
    assert!(!metrics.is_empty(), "{workflow}: no metrics");
    for (_, m) in metrics {
        for model in models {
            let m = &m["models"][*model];
            let auc = m["roc_auc"]
                .as_f64()
                .unwrap_or_else(|| panic!("{workflow}: {model} has no AUC: {m}"));
            assert!((0.0..=1.0).contains(&auc), "{workflow}: {model} AUC {auc}");
            let samples = m["samples"].as_u64().unwrap();
            let counted: u64 = m["confusion_matrix"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|r| r.as_array().unwrap())
                .map(|v| v.as_u64().unwrap())
                .sum();
            assert_eq!(counted, samples, "{workflow}: {model}");
        }
    }
}

#[test]
fn quickstart_runs() {
    let dir = tempfile::tempdir().unwrap();
    let record = run_example(dir.path(), "quickstart.yaml");
    check_metrics(&record, "quickstart", &["train"]);
    assert!(dir.path().join("out/eval/metrics.json").exists());
    assert!(
        record["history"]["train"]
            .as_array()
            .is_some_and(|h| h.len() == 1)
    );
    let train = record["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == "train")
        .unwrap();
    assert!(train["usage"]["peak_rss_bytes"].as_u64().unwrap() > 0);
}

#[test]
fn fusion_vs_single_and_parallel_models_run() {
    let dir = tempfile::tempdir().unwrap();
    let record = run_example(dir.path(), "fusion-vs-single.yaml");
    check_metrics(
        &record,
        "fusion-vs-single",
        &["image_only", "tabular_only", "fusion"],
    );

    let dir = tempfile::tempdir().unwrap();
    let record = run_example(dir.path(), "parallel-models.yaml");
    check_metrics(&record, "parallel-models", &["concat", "gated"]);
    let csv = std::fs::read_to_string(dir.path().join("out/predictions/predictions.csv")).unwrap();
    assert!(csv.lines().count() > 10, "{csv}");
}

#[test]
fn file_based_examples_run_on_exported_data() {
    let dir = tempfile::tempdir().unwrap();
    let out = medfusion(
        dir.path(),
        &[
            "example-data",
            "data",
            "--samples",
            "160",
            "--image-size",
            "16",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    for workflow in [
        "image-folder.yaml",
        "tabular-csv.yaml",
        "medmnist-npz.yaml",
        "multimodal-csv.yaml",
        "dicom.yaml",
        "nifti.yaml",
    ] {
        let run = dir.path().join(workflow.trim_end_matches(".yaml"));
        std::fs::create_dir_all(&run).unwrap();
        // The examples read `data/...` beside the workflow file.
        std::os::unix::fs::symlink(dir.path().join("data"), run.join("data")).unwrap();
        let record = run_example(&run, workflow);
        check_metrics(&record, workflow, &["train"]);
    }
    let csv = std::fs::read_to_string(dir.path().join("tabular-csv/out/predict/predictions.csv"))
        .unwrap();
    assert!(csv.starts_with("id,"), "{csv}");
}

#[test]
fn shell_example_mixes_commands_and_medfusion_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let record = run_example(dir.path(), "shell-csv.yaml");
    check_metrics(&record, "shell-csv", &["train"]);
    // The command downstream of the dataset read the same table the dataset node did.
    let rows = std::fs::read_to_string(dir.path().join("out/work/count/1/rows.txt")).unwrap();
    assert_eq!(rows.trim(), "601");
    assert!(
        dir.path()
            .join("out/jobs/make_table/1/stderr.log")
            .is_file()
    );

    // Resumed unchanged, nothing runs; with the table edited by hand, the command that
    // wrote it and everything after it runs again, and `--explain` says why.
    let resume = |dir: &std::path::Path| {
        medfusion(
            dir,
            &[
                "run",
                "shell-csv.yaml",
                "--out",
                "out",
                "--resume",
                "--explain",
                "--set",
                "train.epochs=1",
                "--set",
                "train.batch_size=16",
                "--set",
                "train.num_workers=1",
            ],
        )
    };
    let again = resume(dir.path());
    let text = stderr(&again);
    assert_eq!(again.status.code(), Some(0), "{text}");
    assert!(
        text.contains("make_table           skip: finished in the saved run"),
        "{text}"
    );
    let table = dir.path().join("out/work/make_table/1/table.csv");
    let mut edited = std::fs::read_to_string(&table).unwrap();
    edited.push_str("p999,50.0,0.5,benign\n");
    std::fs::write(&table, edited).unwrap();
    let rerun = resume(dir.path());
    let text = stderr(&rerun);
    assert_eq!(rerun.status.code(), Some(0), "{text}");
    assert!(
        text.contains("make_table           run: saved outputs could not be restored")
            && text.contains("table.csv` changed since it was saved"),
        "{text}"
    );
}

#[test]
fn compress_example_compares_the_float_quantized_and_pruned_models() {
    let dir = tempfile::tempdir().unwrap();
    let record = run_example(dir.path(), "compress.yaml");
    check_metrics(&record, "compress", &["train", "quantize", "prune"]);
    let models = &record["metrics"]["eval"]["models"];
    let size = |m: &str| models[m]["size_bytes"].as_f64().unwrap();
    assert!(size("quantize") < 0.3 * size("train"), "{models:#}");
    // The int8 model is on disk at that size.
    let file = std::fs::metadata(dir.path().join("out/quantize/model.bpk")).unwrap();
    assert_eq!(Some(file.len()), models["quantize"]["size_bytes"].as_u64());
    for m in ["train", "quantize", "prune"] {
        for b in ["batch_1", "batch_32"] {
            assert!(
                models[m]["latency_ms"][b].as_f64().unwrap() > 0.0,
                "{m} {b}"
            );
        }
    }
    let node = |id: &str| {
        record["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["id"] == id)
            .unwrap()["outputs"]["report"]
            .clone()
    };
    let (quantize, prune) = (node("quantize"), node("prune"));
    assert!(
        quantize["agreement"].as_f64().unwrap() >= 0.9,
        "{quantize:#}"
    );
    assert!(
        (prune["sparsity"].as_f64().unwrap() - 0.5).abs() < 1e-3,
        "{prune:#}"
    );
    assert!(!prune["layers"].as_array().unwrap().is_empty());
    assert_eq!(prune["fine_tune_history"].as_array().unwrap().len(), 1);
    let report = std::fs::read_to_string(dir.path().join("out/report.html")).unwrap();
    assert!(report.contains("latency b1 / b32"));
}
