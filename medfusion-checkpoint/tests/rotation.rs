//! Provisional checkpoints and progress marks: runs that fail early do not rotate good
//! checkpoints away.

mod common;

use common::{checkpoint, step_of};
use medfusion_checkpoint::{Checkpoint, CheckpointManager};

/// A checkpoint of a run that trained `train` for `epochs` epochs after `data` finished.
fn trained(step: u64, epochs: u64) -> Checkpoint {
    checkpoint(step)
        .with_progress("data", u64::MAX)
        .with_progress("train", epochs)
}

fn steps(manager: &CheckpointManager) -> Vec<u64> {
    manager
        .list("wf")
        .unwrap()
        .iter()
        .map(|i| step_of(&manager.load(&i.id).unwrap().checkpoint))
        .collect()
}

#[test]
fn failed_resumes_do_not_rotate_away_the_checkpoints_holding_progress() {
    // Before: three failed resumes, each saving a "started" and a "failed" checkpoint,
    // removed all five checkpoints of the run they resumed (max_checkpoints = 5).
    let dir = tempfile::tempdir().unwrap();
    let manager = CheckpointManager::new(dir.path()).max_checkpoints(5);
    let originals: Vec<String> = (1..=5)
        .map(|epoch| manager.save("wf", &trained(epoch, epoch)).unwrap().info.id)
        .collect();
    // Each resume: a provisional "started" checkpoint, then a "failed" one that holds
    // less training (the node restarted from scratch and failed in its first epoch).
    for attempt in 0..3 {
        let started = manager
            .save("wf", &checkpoint(100 + attempt).provisional())
            .unwrap();
        assert!(
            started.pruned.is_empty(),
            "a provisional save prunes nothing"
        );
        assert!(started.info.provisional);
        manager.save("wf", &trained(200 + attempt, 0)).unwrap();
    }
    let listed: Vec<String> = manager
        .list("wf")
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect();
    assert!(
        listed.contains(&originals[4]),
        "the checkpoint with the most training survives: {listed:?}"
    );
    // The newest five that are not provisional (two originals among them); the
    // provisional ones before the newest save are gone.
    assert_eq!(steps(&manager), [4, 5, 200, 201, 202]);
    let best = manager.load(&originals[4]).unwrap().checkpoint;
    assert_eq!(best.progress["train"], 5);
    assert_eq!(best, trained(5, 5));

    // More failures push every other original out, never the one holding train = 5.
    for attempt in 3..10 {
        manager
            .save("wf", &checkpoint(100 + attempt).provisional())
            .unwrap();
        manager.save("wf", &trained(200 + attempt, 1)).unwrap();
    }
    assert_eq!(steps(&manager), [5, 205, 206, 207, 208, 209]);
}

#[test]
fn provisional_checkpoints_do_not_count_and_are_removed_by_the_next_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let manager = CheckpointManager::new(dir.path()).max_checkpoints(2);
    for step in 1..=2 {
        manager.save("wf", &checkpoint(step)).unwrap();
    }
    // Even a manager keeping fewer removes nothing when it saves a provisional one.
    let stricter = CheckpointManager::new(dir.path()).max_checkpoints(1);
    for step in 10..13 {
        let saved = stricter
            .save("wf", &checkpoint(step).provisional())
            .unwrap();
        assert!(saved.pruned.is_empty());
    }
    assert_eq!(steps(&manager), [1, 2, 10, 11, 12]);
    // They are real checkpoints: the newest is what a run resumes from.
    let resumed = manager.resume_workflow("wf").unwrap().unwrap();
    assert_eq!(resumed.checkpoint, checkpoint(12).provisional());
    assert!(resumed.info.provisional);
    assert_eq!(
        manager.latest_valid("wf").unwrap().unwrap().id,
        resumed.info.id
    );
    // An explicit prune keeps the provisional ones newer than every other.
    assert!(manager.prune("wf").unwrap().removed.is_empty());

    // A save that is not provisional rotates: two of those, no provisional one older.
    let saved = manager.save("wf", &checkpoint(3)).unwrap();
    assert_eq!(saved.pruned.len(), 4, "{:?}", saved.pruned);
    assert_eq!(steps(&manager), [2, 3]);
    let again = manager.save("wf", &checkpoint(20).provisional()).unwrap();
    assert!(again.pruned.is_empty());
    assert_eq!(steps(&manager), [2, 3, 20]);
}

#[test]
fn marks_read_back_with_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let manager = CheckpointManager::new(dir.path());
    let marked = trained(1, 7).provisional();
    let saved = manager.save("wf", &marked).unwrap().info;
    assert!(saved.provisional);
    assert_eq!(saved.progress["train"], 7);
    assert_eq!(saved.progress["data"], u64::MAX);
    let info = manager.info(&saved.id).unwrap();
    assert_eq!(info, saved);
    assert_eq!(manager.load(&saved.id).unwrap().checkpoint, marked);
    // Without marks, the manifest holds none (and older readers see nothing new).
    let plain = manager.save("wf", &checkpoint(2)).unwrap().info;
    let text = std::fs::read_to_string(plain.path.join("manifest.json")).unwrap();
    assert!(
        !text.contains("provisional") && !text.contains("progress"),
        "{text}"
    );
}
