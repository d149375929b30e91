//! Inspection hides no broken checkpoint, and resuming says what it passed over.

mod common;

use std::fs;

use common::checkpoint;
use medfusion_checkpoint::{
    CheckpointManager, CheckpointReport, CheckpointStatus, Corruption, Error,
};

/// `(id, status)` rows, the status as `ok`, `corrupt: <files>` or `no manifest: <error>`.
fn rows(reports: &[CheckpointReport]) -> Vec<(String, String)> {
    reports
        .iter()
        .map(|r| {
            let status = match &r.status {
                CheckpointStatus::Valid => "ok".to_string(),
                CheckpointStatus::Corrupt { files } => {
                    let names: Vec<String> = files
                        .iter()
                        .map(|f| f.path.strip_prefix(&r.path).unwrap().display().to_string())
                        .collect();
                    format!("corrupt: {}", names.join(","))
                }
                CheckpointStatus::NoValidManifest { error } => format!("no manifest: {error}"),
                _ => unreachable!(),
            };
            (r.id.clone(), status)
        })
        .collect()
}

#[test]
fn inspection_lists_broken_checkpoints_that_list_hides() {
    let dir = tempfile::tempdir().unwrap();
    let manager = CheckpointManager::new(dir.path());
    let good = manager.save("wf", &checkpoint(1)).unwrap().info;
    let damaged = manager.save("wf", &checkpoint(2)).unwrap().info;
    // A damaged copy, not the shared file: only this checkpoint is hit.
    let optimizer = damaged.path.join("models/train_optimizer.safetensors");
    let mut bytes = fs::read(&optimizer).unwrap();
    bytes[0] ^= 0x10;
    fs::remove_file(&optimizer).unwrap();
    fs::write(&optimizer, &bytes).unwrap();
    fs::remove_file(damaged.path.join("state.json")).unwrap();
    let other = manager.save("wf_b", &checkpoint(3)).unwrap().info;
    // Named like checkpoints: no manifest, a broken one, a link.
    fs::create_dir(dir.path().join("wf_20990101_000000")).unwrap();
    let broken = dir.path().join("wf_20990101_000000_2");
    fs::create_dir(&broken).unwrap();
    fs::write(broken.join("manifest.json"), b"{\"format\":").unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), dir.path().join("wf_20990101_000001")).unwrap();
    // Not named like checkpoints: never listed.
    fs::create_dir(dir.path().join("notes")).unwrap();
    fs::create_dir(dir.path().join("wf_latest")).unwrap();
    fs::write(dir.path().join("wf_20990101_000002"), b"a file").unwrap();
    fs::create_dir(dir.path().join(".tmp-wf_20990101_000003")).unwrap();

    // `list` shows the two with a valid manifest, unmarked.
    assert_eq!(manager.list("wf").unwrap().len(), 2);
    let reports = manager.inspect("wf").unwrap();
    let rows = rows(&reports);
    let expected = [
        (good.id.clone(), "ok".to_string()),
        (
            damaged.id.clone(),
            "corrupt: state.json,models/train_optimizer.safetensors".to_string(),
        ),
        (
            "wf_20990101_000000".to_string(),
            format!(
                "no manifest: corrupt checkpoint file `{}`: the file is missing",
                dir.path()
                    .join("wf_20990101_000000/manifest.json")
                    .display()
            ),
        ),
        (
            "wf_20990101_000000_2".to_string(),
            format!(
                "no manifest: invalid manifest `{}`: it is not a checkpoint manifest",
                broken.join("manifest.json").display()
            ),
        ),
        (
            "wf_20990101_000001".to_string(),
            format!(
                "no manifest: `{}` is a symbolic link; checkpoints never follow links",
                dir.path().join("wf_20990101_000001").display()
            ),
        ),
    ];
    assert_eq!(rows, expected);
    assert!(reports.iter().all(|r| r.workflow_id == "wf"));
    assert_eq!(reports[0].info.as_ref(), Some(&good));
    assert!(reports[2].info.is_none());
    let CheckpointStatus::Corrupt { files } = &reports[1].status else {
        unreachable!()
    };
    assert!(matches!(
        files[0].error,
        Error::Corrupt {
            problem: Corruption::Missing,
            ..
        }
    ));
    assert!(matches!(
        files[1].error,
        Error::Corrupt {
            problem: Corruption::Checksum { .. },
            ..
        }
    ));
    assert!(files[1].shared_with.is_empty());

    // Every workflow: `wf`, then `wf_b`.
    let all = manager.inspect_all().unwrap();
    assert_eq!(all.len(), 6);
    assert_eq!(all[5].id, other.id);
    assert!(all[5].is_valid());

    // One at a time, a folder without a manifest is a report, not an error.
    let report = manager.verify_report("wf_20990101_000000").unwrap();
    assert!(matches!(
        report.status,
        CheckpointStatus::NoValidManifest { .. }
    ));
    assert!(manager.verify_report(&good.id).unwrap().is_valid());
    assert!(matches!(
        manager.verify_report("wf_20000101_000000"),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        manager.verify_report("../wf"),
        Err(Error::InvalidId { .. })
    ));
    assert!(matches!(
        manager.verify_report("notes"),
        Err(Error::Io { .. })
    ));
    assert!(matches!(
        manager.inspect("a/b"),
        Err(Error::InvalidId { .. })
    ));
}

#[test]
fn inspecting_a_missing_directory_is_an_error() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("never-created");
    let manager = CheckpointManager::new(&dir);
    let expected = format!("checkpoint directory `{}` does not exist", dir.display());
    for err in [
        manager.inspect("wf").unwrap_err(),
        manager.inspect_all().unwrap_err(),
        manager.verify_report("wf_20240101_000000").unwrap_err(),
    ] {
        assert!(matches!(err, Error::NoCheckpointDir { .. }), "{err:?}");
        assert_eq!(err.to_string(), expected);
        assert_eq!(err.path(), Some(dir.as_path()));
    }
    // Resuming from nothing is not an error: there is nothing to resume.
    let report = manager.resume_workflow_report("wf").unwrap();
    assert!(report.loaded.is_none() && report.skipped.is_empty());
}

#[test]
fn resume_reports_the_newer_checkpoints_it_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let manager = CheckpointManager::new(dir.path());
    let good = manager.save("wf", &checkpoint(1)).unwrap().info;
    let damaged = manager.save("wf", &checkpoint(2)).unwrap().info;
    let state = damaged.path.join("state.json");
    fs::remove_file(&state).unwrap();
    fs::write(&state, b"{\"step\": 3}\n").unwrap();
    // An older folder without a manifest is not "skipped": resuming never reaches it.
    fs::create_dir(dir.path().join("wf_20000101_000000")).unwrap();
    fs::create_dir(dir.path().join("wf_20990101_000000")).unwrap();
    manager.save("wf_b", &checkpoint(4)).unwrap();

    let report = manager.resume_workflow_report("wf").unwrap();
    let loaded = report.loaded.unwrap();
    assert_eq!(loaded.info.id, good.id);
    assert_eq!(loaded.checkpoint, checkpoint(1));
    let skipped: Vec<(&str, String)> = report
        .skipped
        .iter()
        .map(|s| (s.id.as_str(), s.reason.to_string()))
        .collect();
    assert_eq!(
        skipped,
        [
            (
                "wf_20990101_000000",
                format!(
                    "corrupt checkpoint file `{}`: the file is missing",
                    dir.path()
                        .join("wf_20990101_000000/manifest.json")
                        .display()
                )
            ),
            (
                damaged.id.as_str(),
                format!(
                    "corrupt checkpoint file `{}`: size is 12 bytes, the manifest says {}",
                    state.display(),
                    damaged
                        .files
                        .iter()
                        .find(|f| f.path == "state.json")
                        .unwrap()
                        .size
                )
            ),
        ]
    );
    assert_eq!(report.skipped[1].path, damaged.path);
    // `resume_workflow` agrees.
    assert_eq!(
        manager.resume_workflow("wf").unwrap().unwrap().info.id,
        good.id
    );

    // Nothing valid: everything is skipped.
    fs::remove_file(good.path.join("workflow.json")).unwrap();
    let report = manager.resume_workflow_report("wf").unwrap();
    assert!(report.loaded.is_none());
    let ids: Vec<&str> = report.skipped.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "wf_20990101_000000",
            damaged.id.as_str(),
            good.id.as_str(),
            "wf_20000101_000000"
        ]
    );
}
