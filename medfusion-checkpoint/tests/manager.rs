//! Saving, listing, loading, verifying and rotating checkpoints.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::{checkpoint, model, step_of, visible_entries};
use medfusion_checkpoint::{
    CheckpointManager, Corruption, Error, FileKind, Goal, NodeState, TensorSet, validate_id,
};

fn is_checkpoint_name(id: &str) -> bool {
    let Some(rest) = id.strip_prefix("wf_") else {
        return false;
    };
    let (date, rest) = rest.split_at(8.min(rest.len()));
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    let Some(rest) = rest.strip_prefix('_') else {
        return false;
    };
    let (time, suffix) = rest.split_at(6.min(rest.len()));
    digits(date, 8)
        && digits(time, 6)
        && (suffix.is_empty()
            || suffix
                .strip_prefix('_')
                .is_some_and(|n| n.parse::<u32>().is_ok()))
}

#[test]
fn save_writes_the_documented_layout() {
    let dir = tempfile::tempdir().unwrap();
    let manager = CheckpointManager::new(dir.path().join("ckpt"));
    let saved = manager.save("wf", &checkpoint(1)).unwrap();
    assert!(is_checkpoint_name(&saved.info.id), "{}", saved.info.id);
    let root = dir.path().join("ckpt").join(&saved.info.id);
    assert_eq!(saved.info.path, root);
    let mut files: Vec<String> = walk(&root);
    files.sort();
    assert_eq!(
        files,
        [
            "manifest.json",
            "models/data_state.json",
            "models/train_history.json",
            "models/train_model.safetensors",
            "models/train_optimizer.safetensors",
            "models/train_state.json",
            "state.json",
            "workflow.json",
        ]
    );
    for file in &saved.info.files {
        assert_eq!(
            fs::metadata(root.join(&file.path)).unwrap().len(),
            file.size,
            "{}",
            file.path
        );
    }
    assert_eq!(saved.info.nodes(), ["data", "train"]);
    assert!((saved.info.metrics["val_loss"] - 0.5).abs() < 1e-12);
    let model_file = TensorSet::read_file(root.join("models/train_model.safetensors")).unwrap();
    assert_eq!(model_file, model(0));
    let loaded = manager.load(&saved.info.id).unwrap();
    assert_eq!(loaded.checkpoint, checkpoint(1));
    assert_eq!(loaded.info, saved.info);
    let state: serde_json::Value =
        serde_json::from_slice(&fs::read(root.join("state.json")).unwrap()).unwrap();
    assert_eq!(state["step"], 1);
}

fn walk(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in fs::read_dir(root).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type().unwrap().is_dir() {
            out.extend(
                walk(&entry.path())
                    .into_iter()
                    .map(|n| format!("{name}/{n}")),
            );
        } else {
            out.push(name);
        }
    }
    out
}

#[test]
fn saves_in_one_second_get_distinct_ids_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let manager = CheckpointManager::new(dir.path()).max_checkpoints(10);
    let ids: Vec<String> = (0..4)
        .map(|s| manager.save("wf", &checkpoint(s)).unwrap().info.id)
        .collect();
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), 4, "{ids:?}");
    assert!(ids.iter().all(|id| is_checkpoint_name(id)), "{ids:?}");
    let listed: Vec<String> = manager
        .list("wf")
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(listed, ids);
    let sequences: Vec<u64> = manager
        .list("wf")
        .unwrap()
        .iter()
        .map(|i| i.sequence)
        .collect();
    assert_eq!(sequences, [1, 2, 3, 4]);
}

#[test]
fn an_unchanged_model_is_linked_not_written() {
    let dir = tempfile::tempdir().unwrap();
    let manager = CheckpointManager::new(dir.path());
    let first = manager.save("wf", &checkpoint(0)).unwrap();
    let second = manager.save("wf", &checkpoint(1)).unwrap();
    let file = |r: &medfusion_checkpoint::SaveReport, kind| {
        r.info
            .files
            .iter()
            .find(|f| f.kind == kind)
            .unwrap()
            .clone()
    };
    let model_size = file(&second, FileKind::Model).size;
    assert_eq!(first.bytes_reused, 0);
    assert_eq!(second.bytes_reused, model_size);
    assert!(second.bytes_written < first.bytes_written);
    let inode = |r: &medfusion_checkpoint::SaveReport, kind| {
        fs::metadata(r.info.path.join(file(r, kind).path))
            .unwrap()
            .ino()
    };
    assert_eq!(
        inode(&first, FileKind::Model),
        inode(&second, FileKind::Model)
    );
    assert_ne!(
        inode(&first, FileKind::Optimizer),
        inode(&second, FileKind::Optimizer)
    );
    // The same weights saved again: nothing but JSON and the manifest is written.
    let third = manager.save("wf", &checkpoint(1)).unwrap();
    let tensors: u64 = third
        .info
        .files
        .iter()
        .filter(|f| f.kind.is_tensors())
        .map(|f| f.size)
        .sum();
    assert_eq!(third.bytes_reused, tensors);
    assert_eq!(
        manager.load(&first.info.id).unwrap().checkpoint,
        checkpoint(0)
    );
}

#[test]
fn rotation_keeps_the_five_newest_and_their_shared_data() {
    let dir = tempfile::tempdir().unwrap();
    let manager = CheckpointManager::new(dir.path()).max_checkpoints(5);
    let mut ids = Vec::new();
    for step in 0..20 {
        let report = manager.save("wf", &checkpoint(step)).unwrap();
        ids.push(report.info.id);
    }
    let kept = manager.list("wf").unwrap();
    let kept_ids: Vec<&str> = kept.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(
        kept_ids,
        ids[15..].iter().map(String::as_str).collect::<Vec<_>>()
    );
    let mut newest: Vec<String> = ids[15..].to_vec();
    newest.sort();
    assert_eq!(visible_entries(dir.path()), newest);
    for (info, step) in kept.iter().zip(15..) {
        manager.verify(&info.id).unwrap();
        assert_eq!(step_of(&manager.load(&info.id).unwrap().checkpoint), step);
        assert_eq!(manager.load(&info.id).unwrap().checkpoint, checkpoint(step));
    }
    // Step 15 shares its model (version 3) with the removed steps 12 to 14; steps 16 to
    // 19 share version 4. Only the objects the kept checkpoints link to remain.
    let used: BTreeSet<String> = kept
        .iter()
        .flat_map(|i| {
            i.files
                .iter()
                .filter(|f| f.kind.is_tensors())
                .map(|f| f.checksum.clone())
        })
        .collect();
    let stored: BTreeSet<String> = fs::read_dir(dir.path().join(".objects"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(stored, used);
    assert_eq!(
        used.len(),
        2 + 5,
        "two model versions and five optimizer states"
    );
}

#[test]
fn keep_best_survives_rotation() {
    let dir = tempfile::tempdir().unwrap();
    // val_loss falls with every step, so its maximum is the first checkpoint.
    let manager = CheckpointManager::new(dir.path())
        .max_checkpoints(3)
        .keep_best("val_loss", Goal::Maximize);
    for step in 0..10 {
        manager.save("wf", &checkpoint(step)).unwrap();
    }
    let steps: Vec<u64> = manager
        .list("wf")
        .unwrap()
        .iter()
        .map(|i| step_of(&manager.load(&i.id).unwrap().checkpoint))
        .collect();
    assert_eq!(steps, [0, 7, 8, 9]);
    let report = manager.prune("wf").unwrap();
    assert_eq!(report.kept.len(), 4);
    assert!(report.removed.is_empty());
}

#[test]
fn max_checkpoints_zero_still_keeps_the_only_valid_one() {
    let dir = tempfile::tempdir().unwrap();
    let manager = CheckpointManager::new(dir.path()).max_checkpoints(0);
    for step in 0..3 {
        let report = manager.save("wf", &checkpoint(step)).unwrap();
        assert_eq!(manager.list("wf").unwrap().len(), 1);
        assert_eq!(manager.list("wf").unwrap()[0].id, report.info.id);
    }
}

#[test]
fn workflows_are_rotated_and_listed_separately() {
    let dir = tempfile::tempdir().unwrap();
    let manager = CheckpointManager::new(dir.path()).max_checkpoints(2);
    for step in 0..3 {
        manager.save("wf", &checkpoint(step)).unwrap();
        manager.save("wf_b", &checkpoint(step + 100)).unwrap();
    }
    assert_eq!(manager.list("wf").unwrap().len(), 2);
    assert_eq!(manager.list("wf_b").unwrap().len(), 2);
    let all = manager.list_all().unwrap();
    let workflows: Vec<&str> = all.iter().map(|i| i.workflow_id.as_str()).collect();
    assert_eq!(workflows, ["wf", "wf", "wf_b", "wf_b"]);
    assert!(manager.list("w").unwrap().is_empty());
}

#[test]
fn a_damaged_file_is_named_and_resume_falls_back() {
    let dir = tempfile::tempdir().unwrap();
    let manager = CheckpointManager::new(dir.path());
    let good = manager.save("wf", &checkpoint(1)).unwrap().info;
    let bad = manager.save("wf", &checkpoint(2)).unwrap().info;
    let optimizer = bad.path.join("models/train_optimizer.safetensors");
    let mut bytes = fs::read(&optimizer).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    fs::remove_file(&optimizer).unwrap();
    fs::write(&optimizer, &bytes).unwrap();

    let err = manager.verify(&bad.id).unwrap_err();
    assert!(
        matches!(&err, Error::Corrupt { path, problem: Corruption::Checksum { .. } } if *path == optimizer),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("train_optimizer.safetensors"),
        "{err}"
    );
    assert!(manager.load(&bad.id).is_err());
    assert_eq!(manager.latest_valid("wf").unwrap().unwrap().id, good.id);
    let resumed = manager.resume_workflow("wf").unwrap().unwrap();
    assert_eq!(resumed.checkpoint, checkpoint(1));

    let state = good.path.join("state.json");
    fs::write(&state, b"{}").unwrap();
    let err = manager.load(&good.id).unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Corrupt {
                problem: Corruption::Size { .. },
                ..
            }
        ),
        "{err:?}"
    );
    fs::remove_file(&state).unwrap();
    let err = manager.verify(&good.id).unwrap_err();
    assert!(
        matches!(&err, Error::Corrupt { problem: Corruption::Missing, path } if *path == state)
    );
    assert_eq!(manager.latest_valid("wf").unwrap(), None);
    assert_eq!(manager.resume_workflow("wf").unwrap(), None);
}

#[test]
fn only_checkpoints_with_a_valid_manifest_are_listed() {
    let dir = tempfile::tempdir().unwrap();
    let manager = CheckpointManager::new(dir.path());
    let real = manager.save("wf", &checkpoint(1)).unwrap().info;
    // A visible directory without a manifest, one with a broken manifest, and the
    // hidden directory of an interrupted save holding a copy of a real checkpoint.
    fs::create_dir(dir.path().join("wf_20000101_000000")).unwrap();
    let broken = dir.path().join("wf_20000101_000001");
    fs::create_dir(&broken).unwrap();
    fs::write(
        broken.join("manifest.json"),
        b"{\"format\": \"medfusion-checkpoint\"",
    )
    .unwrap();
    let tmp = dir.path().join(".tmp-wf_20990101_000000");
    fs::create_dir(&tmp).unwrap();
    fs::copy(real.path.join("manifest.json"), tmp.join("manifest.json")).unwrap();

    let listed: Vec<String> = manager
        .list("wf")
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(listed, std::slice::from_ref(&real.id));
    let err = manager.load("wf_20000101_000000").unwrap_err();
    assert!(err.to_string().contains("manifest.json"), "{err}");
    let err = manager.load("wf_20000101_000001").unwrap_err();
    assert!(
        matches!(err, Error::Manifest { ref path, .. } if *path == broken.join("manifest.json"))
    );
    assert!(matches!(
        manager.load("wf_19990101_000000"),
        Err(Error::NotFound { .. })
    ));

    let next = manager.save("wf", &checkpoint(2)).unwrap();
    assert!(!tmp.exists(), "the next save removes an interrupted save");
    // Directories that are not checkpoints are neither counted nor removed.
    assert_eq!(manager.list("wf").unwrap().len(), 2);
    assert!(broken.exists());
    assert_eq!(next.info.sequence, 2);
}

#[test]
fn prune_removes_leftovers_and_unused_objects() {
    let dir = tempfile::tempdir().unwrap();
    let manager = CheckpointManager::new(dir.path());
    manager.save("wf", &checkpoint(1)).unwrap();
    fs::create_dir_all(dir.path().join(".tmp-wf_x/models")).unwrap();
    fs::create_dir(dir.path().join(".trash-wf_y")).unwrap();
    fs::write(dir.path().join(".objects/.tmp-abc"), b"half").unwrap();
    fs::write(dir.path().join(".objects").join("0".repeat(32)), b"orphan").unwrap();
    let report = manager.prune("wf").unwrap();
    assert_eq!(report.leftovers_removed, 3);
    assert_eq!(report.objects_removed, 1);
    assert_eq!(report.kept.len(), 1);
    let stored = fs::read_dir(dir.path().join(".objects")).unwrap().count();
    assert_eq!(
        stored, 2,
        "the model and the optimizer of the kept checkpoint"
    );
    assert!(manager.prune("wf").unwrap().removed.is_empty());
    let empty = CheckpointManager::new(dir.path().join("never-created"));
    assert_eq!(empty.prune("wf").unwrap().kept.len(), 0);
    assert!(empty.list("wf").unwrap().is_empty());
}

#[test]
fn unsafe_ids_and_symbolic_links_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let manager = CheckpointManager::new(dir.path());
    for id in ["..", "../x", "a/b", "", ".hidden"] {
        assert!(
            matches!(
                manager.save(id, &checkpoint(1)),
                Err(Error::InvalidId { .. })
            ),
            "{id}"
        );
        assert!(
            matches!(manager.load(id), Err(Error::InvalidId { .. })),
            "{id}"
        );
        assert!(
            matches!(manager.list(id), Err(Error::InvalidId { .. })),
            "{id}"
        );
    }
    let bad_node = checkpoint(1).with_node("../../escape", NodeState::new());
    let err = manager.save("wf", &bad_node).unwrap_err();
    assert!(
        err.to_string().contains("invalid node id `../../escape`"),
        "{err}"
    );
    let nan = checkpoint(1).with_metric("auc", f64::NAN);
    assert!(matches!(
        manager.save("wf", &nan),
        Err(Error::InvalidMetric { .. })
    ));
    assert!(validate_id("workflow id", "ok-id_1.2").is_ok());

    // A link to a checkpoint elsewhere is not listed, nor loaded.
    let outside = tempfile::tempdir().unwrap();
    let other = CheckpointManager::new(outside.path());
    let elsewhere = other.save("wf", &checkpoint(3)).unwrap().info;
    let link = dir.path().join("wf_20240101_000000");
    std::os::unix::fs::symlink(&elsewhere.path, &link).unwrap();
    assert!(manager.list("wf").unwrap().is_empty());
    assert!(matches!(
        manager.load("wf_20240101_000000"),
        Err(Error::Symlink { .. })
    ));

    // Nor is a checkpoint whose `models/` is a link.
    let real = manager.save("wf", &checkpoint(4)).unwrap().info;
    let models = real.path.join("models");
    fs::rename(&models, real.path.join("moved")).unwrap();
    std::os::unix::fs::symlink(elsewhere.path.join("models"), &models).unwrap();
    let err = manager.verify(&real.id).unwrap_err();
    assert!(
        matches!(&err, Error::Symlink { path } if *path == models),
        "{err:?}"
    );
    // Nor a file that is a link.
    fs::remove_file(&models).unwrap();
    fs::rename(real.path.join("moved"), &models).unwrap();
    let state = real.path.join("state.json");
    fs::remove_file(&state).unwrap();
    std::os::unix::fs::symlink(elsewhere.path.join("state.json"), &state).unwrap();
    assert!(matches!(manager.load(&real.id), Err(Error::Symlink { .. })));
}

#[test]
fn async_saves_report_success_and_failure() {
    let dir = tempfile::tempdir().unwrap();
    let manager = CheckpointManager::new(dir.path())
        .max_checkpoints(10)
        .queue_capacity(2);
    let handles: Vec<_> = (0..4)
        .map(|s| manager.save_async("wf", checkpoint(s)).unwrap())
        .collect();
    let sequences: Vec<u64> = handles
        .into_iter()
        .map(|h| h.wait().unwrap().info.sequence)
        .collect();
    assert_eq!(sequences, [1, 2, 3, 4]);

    let failing = manager
        .save_async("wf", checkpoint(5).with_metric("x", f64::INFINITY))
        .unwrap();
    let err = loop {
        // `is_finished` never blocks; `wait` returns the stored outcome.
        if failing.is_finished() {
            break failing.wait().unwrap_err();
        }
        std::thread::yield_now();
    };
    assert!(matches!(err, Error::InvalidMetric { .. }), "{err:?}");

    // A failure whose handle was dropped is reported by `flush`, once.
    drop(
        manager
            .save_async("wf", checkpoint(6).with_metric("y", f64::NAN))
            .unwrap(),
    );
    drop(manager.save_async("wf", checkpoint(7)).unwrap());
    let err = manager.flush().unwrap_err();
    assert!(
        matches!(&err, Error::Background { first, rest } if matches!(**first, Error::InvalidMetric { .. }) && rest.is_empty()),
        "{err:?}"
    );
    manager.flush().unwrap();
    assert_eq!(manager.list("wf").unwrap().len(), 5);
}

#[test]
fn a_failed_background_write_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_dir = dir.path().join("file");
    fs::write(&not_a_dir, b"x").unwrap();
    let manager = CheckpointManager::new(&not_a_dir);
    let err = manager
        .save_async("wf", checkpoint(1))
        .unwrap()
        .wait()
        .unwrap_err();
    assert!(
        matches!(&err, Error::Io { path, .. } if path.starts_with(&not_a_dir)),
        "{err:?}"
    );
    assert!(
        err.to_string().contains(&*not_a_dir.to_string_lossy()),
        "{err}"
    );
}

#[test]
fn dropping_the_manager_finishes_queued_saves() {
    let dir = tempfile::tempdir().unwrap();
    let handles = {
        let manager = CheckpointManager::new(dir.path())
            .max_checkpoints(10)
            .queue_capacity(3);
        (0..3)
            .map(|s| manager.save_async("wf", checkpoint(s)).unwrap())
            .collect::<Vec<_>>()
    };
    for handle in handles {
        handle.wait().unwrap();
    }
    assert_eq!(
        CheckpointManager::new(dir.path()).list("wf").unwrap().len(),
        3
    );
}

#[test]
fn managers_sharing_a_directory_take_turns() {
    let dir = tempfile::tempdir().unwrap();
    let barrier = std::sync::Barrier::new(2);
    std::thread::scope(|scope| {
        for offset in [0, 100] {
            let (barrier, path) = (&barrier, dir.path());
            scope.spawn(move || {
                let manager = CheckpointManager::new(path).max_checkpoints(100);
                barrier.wait();
                for step in 0..5 {
                    manager.save("wf", &checkpoint(offset + step)).unwrap();
                }
            });
        }
    });
    let manager = CheckpointManager::new(dir.path());
    let all = manager.list("wf").unwrap();
    let sequences: Vec<u64> = all.iter().map(|i| i.sequence).collect();
    assert_eq!(sequences, (1..=10).collect::<Vec<_>>());
    let mut steps: Vec<u64> = all
        .iter()
        .map(|i| step_of(&manager.load(&i.id).unwrap().checkpoint))
        .collect();
    steps.sort_unstable();
    assert_eq!(steps, [0, 1, 2, 3, 4, 100, 101, 102, 103, 104]);
}

#[test]
fn metrics_and_json_read_back_bit_for_bit() {
    // Found by the fault-injection test: without serde_json's `float_roundtrip`, some
    // values came back one ulp off.
    let dir = tempfile::tempdir().unwrap();
    let manager = CheckpointManager::new(dir.path());
    let values = [
        3.571_426_020_409_985_6e-7,
        0.1 + 0.2,
        1.0 / 3.0,
        f64::MIN_POSITIVE,
        1e308,
    ];
    let mut checkpoint = checkpoint(1);
    for (i, v) in values.iter().enumerate() {
        checkpoint = checkpoint.with_metric(format!("m{i}"), *v);
    }
    checkpoint.state["values"] = serde_json::json!(values);
    let id = manager.save("wf", &checkpoint).unwrap().info.id;
    let loaded = manager.load(&id).unwrap();
    for (i, v) in values.iter().enumerate() {
        assert_eq!(loaded.info.metrics[&format!("m{i}")].to_bits(), v.to_bits());
    }
    assert_eq!(loaded.checkpoint, checkpoint);
}
