//! Stored tensor files are checked before a save links them, and a verification report
//! says which checkpoints share a damaged one.

mod common;

use std::fs;
use std::time::{Duration, SystemTime};

use common::{checkpoint, flip_last_byte_in_place, inode, model};
use medfusion_checkpoint::{
    CheckpointManager, CheckpointStatus, Corruption, Error, FileKind, NodeState,
};

const MODEL: &str = "models/train_model.safetensors";

/// The stored object holding the model of a checkpoint.
fn object_of(
    dir: &std::path::Path,
    info: &medfusion_checkpoint::CheckpointInfo,
) -> std::path::PathBuf {
    let checksum = &info
        .files
        .iter()
        .find(|f| f.kind == FileKind::Model)
        .unwrap()
        .checksum;
    dir.join(".objects").join(checksum)
}

#[test]
fn a_corrupt_object_is_not_linked_into_new_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let manager = CheckpointManager::new(dir.path());
    // Steps 1 to 3 share model version 0.
    let first = manager.save("wf", &checkpoint(1)).unwrap().info;
    let object = object_of(dir.path(), &first);
    assert_eq!(inode(&first.path.join(MODEL)), inode(&object));
    flip_last_byte_in_place(&first.path.join(MODEL));
    assert!(manager.verify(&first.id).is_err());

    // Before the fix, every later save linked the damaged object and was corrupt too.
    let second = manager.save("wf", &checkpoint(2)).unwrap();
    manager.verify(&second.info.id).unwrap();
    assert_eq!(
        second.bytes_reused, 0,
        "the damaged object was written again"
    );
    assert_ne!(
        inode(&second.info.path.join(MODEL)),
        inode(&first.path.join(MODEL))
    );
    // The stored object is the good copy now; the first checkpoint keeps its own.
    assert_eq!(inode(&object), inode(&second.info.path.join(MODEL)));
    assert!(matches!(
        manager.verify(&first.id),
        Err(Error::Corrupt {
            problem: Corruption::Checksum { .. },
            ..
        })
    ));
    let third = manager.save("wf", &checkpoint(3)).unwrap();
    manager.verify(&third.info.id).unwrap();
    assert_eq!(
        inode(&third.info.path.join(MODEL)),
        inode(&second.info.path.join(MODEL)),
        "the good object is reused"
    );
    assert!(third.bytes_reused > 0);
    let resumed = manager.resume_workflow("wf").unwrap().unwrap();
    assert_eq!(resumed.checkpoint, checkpoint(3));
}

#[test]
fn an_object_damaged_after_it_was_verified_is_checked_again() {
    let dir = tempfile::tempdir().unwrap();
    let manager = CheckpointManager::new(dir.path());
    let first = manager.save("wf", &checkpoint(1)).unwrap().info;
    // Written long ago: once verified, the manager trusts it while it is unchanged.
    let object = object_of(dir.path(), &first);
    let long_ago = SystemTime::now() - Duration::from_hours(1);
    fs::File::open(&object)
        .unwrap()
        .set_modified(long_ago)
        .unwrap();
    let second = manager.save("wf", &checkpoint(2)).unwrap();
    assert!(second.bytes_reused > 0);
    assert_eq!(inode(&second.info.path.join(MODEL)), inode(&object));
    let third = manager.save("wf", &checkpoint(3)).unwrap();
    assert!(third.bytes_reused > 0, "the verified object is reused");

    // Damaged in place: the same inode and size, a new modification time.
    flip_last_byte_in_place(&third.info.path.join(MODEL));
    let fourth = manager.save("wf", &checkpoint(3)).unwrap().info;
    manager.verify(&fourth.id).unwrap();
    assert_ne!(
        inode(&fourth.path.join(MODEL)),
        inode(&third.info.path.join(MODEL))
    );
}

#[test]
fn identical_tensor_files_in_one_checkpoint_are_saved() {
    // Found while fixing the object check: two files with the same content in one save
    // (two nodes with the same weights) failed with "cannot create `.objects/.tmp-...`".
    let dir = tempfile::tempdir().unwrap();
    let manager = CheckpointManager::new(dir.path());
    let twins = checkpoint(1)
        .with_node("a", NodeState::new().with_model(model(9)))
        .with_node("b", NodeState::new().with_model(model(9)));
    let saved = manager.save("wf", &twins).unwrap();
    let (a, b) = (
        saved.info.path.join("models/a_model.safetensors"),
        saved.info.path.join("models/b_model.safetensors"),
    );
    assert_eq!(inode(&a), inode(&b));
    assert_eq!(manager.load(&saved.info.id).unwrap().checkpoint, twins);
    let again = manager.save("wf", &twins).unwrap();
    manager.verify(&again.info.id).unwrap();
    assert_eq!(
        inode(&again.info.path.join("models/a_model.safetensors")),
        inode(&a)
    );
    assert!(
        fs::read_dir(dir.path().join(".objects"))
            .unwrap()
            .all(|e| !e.unwrap().file_name().to_string_lossy().starts_with('.')),
        "no half-written object is left"
    );
}

#[test]
fn verify_report_names_the_checkpoints_sharing_a_damaged_file() {
    let dir = tempfile::tempdir().unwrap();
    let manager = CheckpointManager::new(dir.path());
    let ids: Vec<String> = (1..=3)
        .map(|step| manager.save("wf", &checkpoint(step)).unwrap().info.id)
        .collect();
    let other = manager.save("other", &checkpoint(1)).unwrap().info.id;
    let first = manager.info(&ids[0]).unwrap();
    flip_last_byte_in_place(&first.path.join(MODEL));

    let report = manager.verify_report(&ids[0]).unwrap();
    assert_eq!(report.id, ids[0]);
    assert_eq!(report.workflow_id, "wf");
    assert!(!report.is_valid());
    let CheckpointStatus::Corrupt { files } = &report.status else {
        panic!("{report:?}")
    };
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(files[0].path, first.path.join(MODEL));
    assert!(
        files[0]
            .error
            .to_string()
            .contains("train_model.safetensors"),
        "{}",
        files[0].error
    );
    // The same weights in another workflow share the stored file too.
    let mut expected = vec![ids[1].clone(), ids[2].clone(), other.clone()];
    expected.sort();
    assert_eq!(files[0].shared_with, expected);
    // `verify` still names the first damaged file.
    assert!(matches!(
        manager.verify(&ids[1]),
        Err(Error::Corrupt { .. })
    ));

    // A new save does not link the damaged file, so it shares nothing.
    let fresh = manager.save("wf", &checkpoint(3)).unwrap().info.id;
    let reports = manager.inspect("wf").unwrap();
    let statuses: Vec<(&str, usize)> = reports
        .iter()
        .map(|r| {
            let shared = match &r.status {
                CheckpointStatus::Corrupt { files } => files[0].shared_with.len(),
                CheckpointStatus::Valid => 0,
                CheckpointStatus::NoValidManifest { error } => panic!("{error}"),
                _ => unreachable!(),
            };
            (r.id.as_str(), shared)
        })
        .collect();
    assert_eq!(
        statuses,
        [
            (ids[0].as_str(), 3),
            (ids[1].as_str(), 3),
            (ids[2].as_str(), 3),
            (fresh.as_str(), 0)
        ]
    );
    assert!(reports[3].is_valid());
}
