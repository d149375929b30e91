//! A child process saves checkpoints in a loop and is killed with SIGKILL at random
//! moments; after every kill the directory must hold only whole checkpoints.
//!
//! The child is this test binary itself, started with `--exact saving_child` and the
//! child env variable naming the directory and the first step to save.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{CHILD_ENV, checkpoint, child_arg, entries_with_prefix, step_of, visible_entries};
use medfusion_checkpoint::CheckpointManager;

const KILLS: u64 = 210;
const READY: &str = "medfusion-checkpoint-child-ready";
const SAVED: &str = "medfusion-checkpoint-child-saved";

/// The child: save steps `start`, `start + 1`, ... until killed.
#[test]
fn saving_child() {
    let Some(arg) = child_arg() else { return };
    let (dir, start) = arg.rsplit_once(':').expect("dir:start");
    let start: u64 = start.parse().unwrap();
    let manager = CheckpointManager::new(dir).max_checkpoints(3);
    #[allow(clippy::print_stdout)]
    {
        println!("{READY}");
    }
    // Bounded, so that a child whose parent died stops by itself.
    for step in start..start + 2_000 {
        manager.save("wf", &checkpoint(step)).unwrap();
        #[allow(clippy::print_stdout)]
        {
            println!("{SAVED}");
        }
    }
}

/// Every checkpoint listed verifies, every visible directory is listed, and the newest
/// valid one equals a state the child saved, never older than the one seen before.
fn check_consistent(dir: &Path, previous_step: Option<u64>, round: u64) -> Option<u64> {
    let manager = CheckpointManager::new(dir);
    let listed = manager.list("wf").unwrap();
    let listed_ids: Vec<String> = listed.iter().map(|i| i.id.clone()).collect();
    let mut sorted = listed_ids.clone();
    sorted.sort();
    assert_eq!(
        visible_entries(dir),
        sorted,
        "round {round}: a partial checkpoint is visible"
    );
    for info in &listed {
        if let Err(e) = manager.verify(&info.id) {
            panic!(
                "round {round}: listed checkpoint `{}` does not verify: {e}",
                info.id
            );
        }
    }
    let latest = manager.latest_valid("wf").unwrap();
    assert_eq!(
        latest.as_ref().map(|i| &i.id),
        listed_ids.last(),
        "round {round}"
    );
    let loaded = latest.map(|info| manager.load(&info.id).unwrap().checkpoint);
    let step = loaded.as_ref().map(step_of);
    if let (Some(loaded), Some(step)) = (&loaded, step) {
        assert_eq!(
            *loaded,
            checkpoint(step),
            "round {round}: loaded state differs from step {step}"
        );
    }
    assert!(
        step >= previous_step,
        "round {round}: newest went back from {previous_step:?} to {step:?}"
    );
    step
}

#[test]
fn sigkill_at_random_moments_leaves_only_whole_checkpoints() {
    if child_arg().is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = 0x5EED_u64;
    let mut next = move || {
        rng = rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let z = (rng ^ (rng >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        let z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let (mut step, mut steps_seen, mut interrupted) = (None, BTreeSet::new(), 0);
    let mut save_time = Duration::from_millis(10);
    for round in 0..KILLS {
        let mut child = Command::new(&exe)
            .args(["--exact", "saving_child", "--nocapture", "--test-threads=1"])
            .env(
                CHILD_ENV,
                format!("{}:{}", dir.path().display(), round * 100_000),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Let the child finish 0 or 1 save, then kill it at a random moment within
        // about one more save: the kills land in every phase of a save, whatever the
        // machine's speed.
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut preamble = 0;
        while !lines.next().unwrap().unwrap().ends_with(READY) {
            preamble += 1;
            assert!(preamble < 10, "round {round}: the child did not start");
        }
        let started = Instant::now();
        let wanted = next() % 2;
        for _ in 0..wanted {
            assert!(
                lines.next().unwrap().unwrap().ends_with(SAVED),
                "round {round}"
            );
        }
        if wanted > 0 {
            save_time = started.elapsed() / wanted as u32;
        }
        let window = u64::try_from(save_time.as_micros() * 3 / 2).unwrap().max(1);
        std::thread::sleep(Duration::from_micros(next() % window));
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert!(
            !status.success(),
            "round {round}: the child ended before the kill"
        );
        if !entries_with_prefix(dir.path(), ".tmp-").is_empty() {
            interrupted += 1;
        }
        step = check_consistent(dir.path(), step, round);
        steps_seen.extend(step);
    }
    // The kills hit saves in progress, and saves got through between them.
    assert!(
        interrupted >= 10,
        "only {interrupted} kills interrupted a save"
    );
    assert!(
        steps_seen.len() >= 50,
        "only {} distinct newest states",
        steps_seen.len()
    );

    // A later save cleans up after all of it.
    let manager = CheckpointManager::new(dir.path()).max_checkpoints(3);
    manager.save("wf", &checkpoint(1)).unwrap();
    assert!(entries_with_prefix(dir.path(), ".tmp-").is_empty());
    assert!(entries_with_prefix(dir.path(), ".trash-").is_empty());
    assert!(entries_with_prefix(&dir.path().join(".objects"), ".tmp-").is_empty());
    for object in std::fs::read_dir(dir.path().join(".objects")).unwrap() {
        let object = object.unwrap();
        assert!(
            object.metadata().unwrap().nlink() >= 2,
            "{:?} is unused",
            object.path()
        );
    }
    assert_eq!(manager.list("wf").unwrap().len(), 3);
}
