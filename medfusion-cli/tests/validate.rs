//! `medfusion validate`, `graph`, `schema` and `nodes` end to end, on the examples.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn medfusion(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_medfusion"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("medfusion runs")
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn quickstart_is_valid() {
    let out = medfusion(&["validate", "examples/quickstart.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("workflow `quickstart` is valid"));
}

#[test]
fn every_invalid_example_fails_with_exit_2_naming_the_place() {
    let dir = root().join("examples/invalid");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 10, "one example per class of error");
    for file in files {
        let rel = format!(
            "examples/invalid/{}",
            file.file_name().unwrap().to_string_lossy()
        );
        let out = medfusion(&["validate", &rel]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{rel}: {stderr}");
        let first = stderr.lines().next().unwrap_or_default();
        // `error: FILE:LINE: node `x`: ...` or `... edge N: ...`
        let prefix = format!("error: {rel}:");
        assert!(first.starts_with(&prefix), "{rel}: {first}");
        let line: String = first[prefix.len()..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        assert!(!line.is_empty(), "{rel}: no line in {first}");
        let names_place = first.contains("node `") || first.contains("edge ");
        assert!(names_place || rel.contains("syntax"), "{rel}: {first}");
    }
}

#[test]
fn three_errors_are_reported_in_one_run() {
    let out = medfusion(&["validate", "examples/invalid/three-errors.yaml"]);
    let stderr = text(&out.stderr);
    let errors: Vec<_> = stderr
        .lines()
        .filter(|l| l.starts_with("error: examples"))
        .collect();
    assert_eq!(errors.len(), 3, "{stderr}");
    assert!(stderr.ends_with("is invalid: 3 problems\n"), "{stderr}");
}

#[test]
fn json_output_lists_problems() {
    let out = medfusion(&[
        "validate",
        "--json",
        "examples/invalid/unknown-config-key.yaml",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["valid"], false);
    assert_eq!(v["problems"][0]["code"], "unknown-config-key");
    assert_eq!(v["problems"][0]["node"], "train");
    assert_eq!(v["problems"][0]["line"], 9);

    let out = medfusion(&["validate", "--json", "examples/quickstart.yaml"]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["valid"], true);
    assert_eq!(v["nodes"], 3);

    let out = medfusion(&["validate", "--json", "examples/invalid/syntax-error.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["problems"][0]["code"], "parse");
    assert_eq!(v["problems"][0]["line"], 4);
}

#[test]
fn a_missing_file_is_exit_1_and_named() {
    let out = medfusion(&["validate", "no/such.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("cannot read workflow file `no/such.yaml`"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn standard_input_is_read_when_the_file_is_a_dash() {
    use std::io::Write as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_medfusion"))
        .args(["validate", "-"])
        .current_dir(root())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let json = r#"{"name": "s", "nodes": [{"id": "d", "type": "dataset.synthetic"}]}"#;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(json.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn graph_draws_dot_and_mermaid() {
    let out = medfusion(&["graph", "examples/quickstart.yaml"]);
    assert_eq!(out.status.code(), Some(0));
    let dot = text(&out.stdout);
    assert!(
        dot.starts_with("digraph {") && dot.contains("train -> train_data"),
        "{dot}"
    );
    let out = medfusion(&["graph", "examples/quickstart.yaml", "--format", "mermaid"]);
    let mermaid = text(&out.stdout);
    assert!(
        mermaid.starts_with("flowchart LR") && mermaid.contains("model &rarr; model"),
        "{mermaid}"
    );
}

#[test]
fn schema_is_json_schema_of_workflows() {
    let out = medfusion(&["schema"]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["title"], "medfusion workflow");
    let types = v["$defs"]["Node"]["properties"]["type"]["enum"]
        .as_array()
        .unwrap();
    assert!(types.iter().any(|t| t == "train.classifier"));
}

#[test]
fn nodes_lists_ports_and_config() {
    let out = medfusion(&["nodes", "train.classifier"]);
    assert_eq!(out.status.code(), Some(0));
    let listing = text(&out.stdout);
    assert!(
        listing.contains("train_data") && listing.contains("learning_rate"),
        "{listing}"
    );
    let out = medfusion(&["nodes", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("unknown node type `nope`"));
}
