//! The figures the README quotes hold: the quickstart as written reaches a test ROC AUC of
//! about 0.98, and in `fusion-vs-single.yaml` fusion beats both single modalities (0.99
//! against 0.80 and 0.79), and the 3D example `volume-3d.yaml` reaches at least 0.9 (the
//! README says 0.97), and the tuning example `tune.yaml` reaches about 0.96 while pruning
//! about half of its trials' epochs, and `compress.yaml` quantizes to a quarter of the size
//! with the same class for at least 98% of the validation samples. Each example runs as it ships, full size (a few minutes on 2
//! cores in the release build the README's test command uses).

mod common;

use common::{medfusion, root, run_record, stderr};

/// The test ROC AUC of `model` in evaluation node `eval` of the run in `dir/out`.
fn auc(dir: &std::path::Path, eval: &str, model: &str) -> f64 {
    let record = run_record(&dir.join("out"));
    record["metrics"][eval]["models"][model]["roc_auc"]
        .as_f64()
        .unwrap_or_else(|| panic!("no ROC AUC of `{model}` in `{eval}`: {record:#}"))
}

fn run_example(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(root().join("examples").join(name), dir.path().join(name)).unwrap();
    let out = medfusion(
        dir.path(),
        &["run", name, "--out", "out", "--no-checkpoints"],
    );
    assert_eq!(out.status.code(), Some(0), "{name}: {}", stderr(&out));
    dir
}

fn assert_about(name: &str, value: f64, quoted: f64, tolerance: f64) {
    assert!(
        (value - quoted).abs() <= tolerance,
        "{name}: test ROC AUC {value:.4}, the README says {quoted} (tolerance {tolerance})"
    );
}

#[test]
fn the_quickstart_reaches_the_readme_auc() {
    let dir = run_example("quickstart.yaml");
    assert_about("quickstart", auc(dir.path(), "eval", "train"), 0.98, 0.02);
}

#[test]
fn fusion_beats_each_single_modality_as_the_readme_says() {
    let dir = run_example("fusion-vs-single.yaml");
    let fusion = auc(dir.path(), "compare", "fusion");
    let image = auc(dir.path(), "compare", "image_only");
    let tabular = auc(dir.path(), "compare", "tabular_only");
    assert_about("fusion", fusion, 0.99, 0.02);
    assert_about("image only", image, 0.80, 0.05);
    assert_about("tabular only", tabular, 0.79, 0.05);
    assert!(
        fusion - image.max(tabular) >= 0.1,
        "{fusion} {image} {tabular}"
    );
}

#[test]
fn the_3d_example_reaches_the_readme_auc() {
    let dir = run_example("volume-3d.yaml");
    let auc = auc(dir.path(), "eval", "train");
    assert!(
        auc >= 0.9,
        "volume-3d: test ROC AUC {auc:.4}, the README promises at least 0.9"
    );
    assert_about("volume-3d", auc, 0.97, 0.03);
}

#[test]
fn the_tune_example_prunes_and_reaches_the_readme_auc() {
    let dir = run_example("tune.yaml");
    let auc = auc(dir.path(), "eval", "tune");
    assert_about("tune", auc, 0.96, 0.03);
    // "16 trials, about half of their epochs pruned away".
    let csv = std::fs::read_to_string(dir.path().join("out/tune/trials.csv")).unwrap();
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(rows.len(), 16);
    let epochs: usize = rows.iter().map(|r| r[4].parse::<usize>().unwrap()).sum();
    let share = epochs as f64 / 96.0;
    assert!(
        (0.3..=0.7).contains(&share),
        "tune: {epochs} of 96 epochs trained ({share:.2}), the README says about half"
    );
}

#[test]
fn the_compress_example_quantizes_to_a_quarter_with_the_same_predictions() {
    let dir = run_example("compress.yaml");
    let record = run_record(&dir.path().join("out"));
    let quantize = record["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == "quantize")
        .unwrap()["outputs"]["report"]
        .clone();
    let ratio = quantize["size_ratio"].as_f64().unwrap();
    assert!(
        (0.23..=0.27).contains(&ratio),
        "compress: the int8 model is {ratio:.3} of the f32 size, the README says a quarter"
    );
    let agreement = quantize["agreement"].as_f64().unwrap();
    assert!(
        agreement >= 0.98,
        "compress: agreement {agreement}, the README says at least 98%"
    );
}
