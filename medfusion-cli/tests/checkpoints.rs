//! `medfusion checkpoints` end to end, on checkpoints saved with the library.

use std::path::Path;
use std::process::{Command, Output};

use medfusion_checkpoint::{Checkpoint, CheckpointManager, NodeState, Tensor, TensorSet};
use serde_json::json;

fn medfusion(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_medfusion"))
        .args(args)
        .output()
        .expect("medfusion runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn save(dir: &Path, workflow: &str, step: u32) -> String {
    let model = TensorSet::new().with(
        "fc.weight",
        Tensor::from_vec([2, 2], vec![step as f32; 4]).unwrap(),
    );
    let checkpoint = Checkpoint::new(json!({"name": workflow}), json!({"step": step}))
        .with_node(
            "train",
            NodeState::new()
                .with_model(model)
                .with_state(json!({"epoch": step})),
        )
        .with_metric("val_loss", 1.0 / f64::from(step + 1));
    let manager = CheckpointManager::new(dir).max_checkpoints(10);
    manager.save(workflow, &checkpoint).unwrap().info.id
}

#[test]
fn list_show_verify_and_prune() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_str().unwrap();

    let empty = medfusion(&["checkpoints", "list", "--dir", dir]);
    assert_eq!(empty.status.code(), Some(0), "{}", text(&empty.stderr));
    assert!(
        text(&empty.stdout).starts_with("no checkpoints"),
        "{}",
        text(&empty.stdout)
    );

    let ids: Vec<String> = (0..3).map(|s| save(tmp.path(), "wf", s)).collect();
    let other = save(tmp.path(), "other", 9);

    let table = medfusion(&["checkpoints", "list", "--dir", dir]);
    assert_eq!(table.status.code(), Some(0), "{}", text(&table.stderr));
    let stdout = text(&table.stdout);
    assert!(stdout.starts_with("ID "), "{stdout}");
    for id in ids.iter().chain([&other]) {
        assert!(stdout.contains(id.as_str()), "{id} missing:\n{stdout}");
    }
    assert_eq!(stdout.lines().count(), 5, "{stdout}");

    let listed = medfusion(&["checkpoints", "list", "--dir", dir, "wf", "--json"]);
    let rows: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let listed_ids: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed_ids, ids);
    assert_eq!(rows[0]["nodes"], json!(["train"]));
    assert_eq!(rows[2]["sequence"], 3);

    let shown = medfusion(&["checkpoints", "show", "--dir", dir, "wf"]);
    assert_eq!(shown.status.code(), Some(0), "{}", text(&shown.stderr));
    let stdout = text(&shown.stdout);
    assert!(
        stdout.contains(&format!("checkpoint  {}", ids[2])),
        "{stdout}"
    );
    assert!(
        stdout.contains("models/train_model.safetensors"),
        "{stdout}"
    );
    let shown = medfusion(&["checkpoints", "show", "--dir", dir, &ids[0], "--json"]);
    let value: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(value["id"], ids[0].as_str());
    assert_eq!(value["files"].as_array().unwrap().len(), 4);

    let verified = medfusion(&["checkpoints", "verify", "--dir", dir]);
    assert_eq!(
        verified.status.code(),
        Some(0),
        "{}",
        text(&verified.stderr)
    );
    assert!(text(&verified.stdout).contains("4 checkpoints verified, 0 corrupt"));

    // Damage one file: verify names it and exits 1.
    let state = tmp.path().join(&ids[1]).join("models/train_state.json");
    std::fs::write(&state, b"{\"epoch\": 99}\n").unwrap();
    let verified = medfusion(&["checkpoints", "verify", "--dir", dir, "wf"]);
    assert_eq!(verified.status.code(), Some(1));
    assert!(text(&verified.stdout).contains(&format!("CORRUPT  {}", ids[1])));
    assert!(
        text(&verified.stderr).contains(&*state.to_string_lossy()),
        "{}",
        text(&verified.stderr)
    );
    let one = medfusion(&["checkpoints", "verify", "--dir", dir, &ids[0]]);
    assert_eq!(one.status.code(), Some(0), "{}", text(&one.stderr));

    let pruned = medfusion(&["checkpoints", "prune", "--dir", dir, "wf", "--keep", "1"]);
    assert_eq!(pruned.status.code(), Some(0), "{}", text(&pruned.stderr));
    assert!(text(&pruned.stdout).contains(&format!("removed  {}", ids[0])));
    let after = CheckpointManager::new(tmp.path());
    assert_eq!(after.list("wf").unwrap().len(), 1);
    assert_eq!(after.list("other").unwrap().len(), 1);
}

#[test]
fn unknown_targets_and_bad_ids_fail_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_str().unwrap();
    let missing = medfusion(&["checkpoints", "show", "--dir", dir, "nope"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        text(&missing.stderr).contains("no checkpoint or workflow `nope`"),
        "{}",
        text(&missing.stderr)
    );
    let bad = medfusion(&["checkpoints", "list", "--dir", dir, "../etc"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        text(&bad.stderr).contains("invalid workflow id `../etc`"),
        "{}",
        text(&bad.stderr)
    );
    let no_action = medfusion(&["checkpoints"]);
    assert_eq!(no_action.status.code(), Some(2));
}
