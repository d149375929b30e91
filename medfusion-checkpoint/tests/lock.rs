//! The run lock of a workflow: a second run fails at once, naming the holder; the lock
//! goes with the process that held it, however it ends.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{CHILD_ENV, child_arg};
use medfusion_checkpoint::{CheckpointManager, Error};

const LOCKED: &str = "medfusion-checkpoint-child-locked";

#[test]
fn a_second_lock_of_a_workflow_fails_at_once_naming_the_holder() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("ckpt");
    let manager = CheckpointManager::new(&dir);
    let lock = manager.lock_workflow("wf").unwrap();
    let path = dir.join(".locks/wf.lock");
    assert_eq!(lock.path(), path);
    assert_eq!(lock.workflow_id(), "wf");
    let holder: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(holder["pid"], std::process::id());
    assert!(holder["started"].as_str().unwrap().ends_with('Z'));

    // A second open of the file in this process is a second lock: it conflicts.
    let err = CheckpointManager::new(&dir)
        .lock_workflow("wf")
        .unwrap_err();
    let Error::WorkflowLocked {
        workflow_id,
        path: locked,
        pid,
        since,
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(workflow_id, "wf");
    assert_eq!(*locked, path);
    assert_eq!(*pid, Some(std::process::id()));
    assert_eq!(since.as_deref(), holder["started"].as_str());
    let message = err.to_string();
    for part in [
        "workflow `wf` is already running".to_string(),
        format!("`{}`", path.display()),
        format!("process {}", std::process::id()),
        "`--checkpoint-dir`".to_string(),
    ] {
        assert!(message.contains(&part), "{message}");
    }
    assert_eq!(err.path(), Some(path.as_path()));
    // Other workflows have locks of their own.
    let other = manager.lock_workflow("wf_b").unwrap();

    drop(lock);
    assert_eq!(std::fs::read(&path).unwrap(), b"", "the holder is cleared");
    let again = manager.lock_workflow("wf").unwrap();
    drop((again, other));
    // Lock files stay; the checkpoint listing does not show them.
    assert!(path.exists());
    assert!(manager.list_all().unwrap().is_empty());
    assert!(manager.inspect_all().unwrap().is_empty());
}

#[test]
fn a_lock_without_a_holder_written_says_another_process() {
    let dir = tempfile::tempdir().unwrap();
    let manager = CheckpointManager::new(dir.path());
    let lock = manager.lock_workflow("wf").unwrap();
    // As if the holder had not written its pid yet.
    std::fs::write(lock.path(), b"").unwrap();
    let err = manager.lock_workflow("wf").unwrap_err();
    assert!(
        matches!(err, Error::WorkflowLocked { pid: None, .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("locked by another process"),
        "{err}"
    );
}

#[test]
fn unsafe_ids_and_links_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let manager = CheckpointManager::new(dir.path());
    for id in ["..", "a/b", "", ".hidden"] {
        assert!(
            matches!(manager.lock_workflow(id), Err(Error::InvalidId { .. })),
            "{id}"
        );
    }
    // A lock file that is a link is not followed.
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("target");
    std::fs::write(&target, b"keep").unwrap();
    std::fs::create_dir(dir.path().join(".locks")).unwrap();
    std::os::unix::fs::symlink(&target, dir.path().join(".locks/wf.lock")).unwrap();
    let err = manager.lock_workflow("wf").unwrap_err();
    assert!(matches!(err, Error::Symlink { .. }), "{err:?}");
    assert_eq!(std::fs::read(&target).unwrap(), b"keep");
    // Nor is a `.locks` that is a link.
    let linked = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), linked.path().join(".locks")).unwrap();
    let err = CheckpointManager::new(linked.path())
        .lock_workflow("wf")
        .unwrap_err();
    assert!(matches!(err, Error::Symlink { .. }), "{err:?}");
    assert!(!outside.path().join("wf.lock").exists());
}

/// The child: take the lock, say so, and wait to be killed.
#[test]
fn locking_child() {
    let Some(dir) = child_arg() else { return };
    let lock = CheckpointManager::new(&dir).lock_workflow("wf").unwrap();
    #[allow(clippy::print_stdout)]
    {
        println!("{LOCKED}");
    }
    // Bounded, so that a child whose parent died stops by itself.
    std::thread::sleep(Duration::from_mins(1));
    drop(lock);
}

fn lock_error(dir: &Path) -> Error {
    CheckpointManager::new(dir).lock_workflow("wf").unwrap_err()
}

#[test]
fn a_killed_holder_releases_the_lock() {
    if child_arg().is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "locking_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut preamble = 0;
    while !lines.next().unwrap().unwrap().ends_with(LOCKED) {
        preamble += 1;
        assert!(preamble < 10, "the child did not lock");
    }
    let err = lock_error(dir.path());
    assert!(
        matches!(err, Error::WorkflowLocked { pid: Some(pid), .. } if pid == child.id()),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains(&format!("locked by process {}", child.id())),
        "{err}"
    );

    child.kill().unwrap();
    child.wait().unwrap();
    let lock = CheckpointManager::new(dir.path())
        .lock_workflow("wf")
        .unwrap();
    let holder: serde_json::Value =
        serde_json::from_slice(&std::fs::read(lock.path()).unwrap()).unwrap();
    assert_eq!(holder["pid"], std::process::id());
}
