//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use std::path::Path;
use std::process::{Command, Output};

use medfusion_checkpoint::{Checkpoint, NodeState, Tensor, TensorSet};
use serde_json::json;

/// The env variable that turns a child test function on.
pub const CHILD_ENV: &str = "MEDFUSION_CHECKPOINT_TEST_CHILD";

/// Values from the splitmix64 generator of WORKLOADS.md, as f32 in [-1, 1).
pub fn values(seed: u64, n: usize) -> Vec<f32> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            (z >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// A model whose weights depend only on `version`.
pub fn model(version: u64) -> TensorSet {
    let mut set = TensorSet::new()
        .with(
            "conv.weight",
            Tensor::from_vec([16, 3, 3, 3], values(version, 432)).unwrap(),
        )
        .with(
            "fc.weight",
            Tensor::from_vec([64, 64], values(version + 1000, 4096)).unwrap(),
        )
        .with(
            "fc.bias",
            Tensor::from_vec([64], values(version + 2000, 64)).unwrap(),
        )
        .with("bn.num_batches_tracked", Tensor::scalar(version as i64));
    set.metadata_mut()
        .insert("version".into(), version.to_string());
    set
}

/// The checkpoint of step `step`: the model changes every 4 steps (so unchanged model
/// files are shared), the optimizer state every step.
pub fn checkpoint(step: u64) -> Checkpoint {
    let optimizer = TensorSet::new()
        .with(
            "fc.weight.exp_avg",
            Tensor::from_vec([64, 64], values(step + 7, 4096)).unwrap(),
        )
        .with("step", Tensor::scalar(step));
    let train = NodeState::new()
        .with_model(model(step / 4))
        .with_optimizer(optimizer)
        .with_history(
            json!({ "loss": (0..step % 5).map(|e| 1.0 / (e + 1) as f64).collect::<Vec<_>>() }),
        )
        .with_state(json!({ "epoch": step, "rng": [step, step * 3] }));
    Checkpoint::new(
        json!({ "name": "wf", "nodes": ["data", "train"] }),
        json!({ "step": step, "completed": ["data"] }),
    )
    .with_node(
        "data",
        NodeState::new().with_state(json!({ "samples": 100 })),
    )
    .with_node("train", train)
    .with_metric("val_loss", 1.0 / (step + 1) as f64)
}

/// The step a checkpoint built by [`checkpoint`] was made for.
pub fn step_of(checkpoint: &Checkpoint) -> u64 {
    checkpoint.state["step"].as_u64().expect("state.step")
}

/// Run the test function `name` of this test binary in a child process with the
/// child env variable set to `arg`, and return its output.
pub fn run_child(name: &str, arg: &str) -> Output {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, arg)
        .output()
        .unwrap()
}

/// The child env variable, when this process is a child.
pub fn child_arg() -> Option<String> {
    std::env::var(CHILD_ENV).ok()
}

/// Names in `dir` that are not hidden.
pub fn visible_entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    names
}

/// Names in `dir` that start with `prefix`.
pub fn entries_with_prefix(dir: &Path, prefix: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default()
}

/// Flip one bit of the last byte of `path` in place, as a disk error or a tool editing
/// the file would: the inode (shared by every hard link) and the size stay the same.
pub fn flip_last_byte_in_place(path: &Path) {
    use std::io::{Seek, SeekFrom, Write};
    use std::os::unix::fs::{FileExt, PermissionsExt};
    // Stored tensor files are read-only; their owner may still make them writable.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let last = file.metadata().unwrap().len() - 1;
    let mut byte = [0u8; 1];
    file.read_exact_at(&mut byte, last).unwrap();
    file.seek(SeekFrom::Start(last)).unwrap();
    file.write_all(&[byte[0] ^ 0x01]).unwrap();
    file.sync_all().unwrap();
}

/// The inode of `path`.
pub fn inode(path: &Path) -> u64 {
    std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(path).unwrap())
}
