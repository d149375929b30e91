//! Helpers shared by the CLI end-to-end tests.

#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Run `medfusion` in `dir`.
pub fn medfusion(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_medfusion"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("medfusion runs")
}

/// Standard error as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The run record of a run's output folder.
pub fn run_record(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("run.json")).expect("run.json written");
    serde_json::from_str(&text).expect("run.json is JSON")
}
