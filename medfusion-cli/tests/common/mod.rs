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

/// A `medfusion` child whose stderr is read line by line.
pub struct Running {
    /// The process.
    pub child: std::process::Child,
    /// Its stderr, from where reading stopped.
    pub lines: std::io::Lines<std::io::BufReader<std::process::ChildStderr>>,
}

impl Running {
    /// Start `medfusion args` in `dir` and read its stderr up to the first line containing
    /// `marker` (a run's `sleeping`, say).
    pub fn until(dir: &Path, args: &[&str], marker: &str) -> Running {
        use std::io::BufRead as _;
        let mut child = Command::new(env!("CARGO_BIN_EXE_medfusion"))
            .args(args)
            .current_dir(dir)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("medfusion starts");
        let mut lines = std::io::BufReader::new(child.stderr.take().expect("piped")).lines();
        for line in lines.by_ref() {
            if line.expect("stderr is text").contains(marker) {
                break;
            }
        }
        Running { child, lines }
    }

    /// Send `signal` to the child.
    pub fn signal(&self, signal: i32) {
        let pid = i32::try_from(self.child.id()).expect("a pid fits");
        // SAFETY: signalling our own child process.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
    }

    /// Read the rest of stderr and wait for the exit.
    pub fn finish(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let rest: Vec<String> = self.lines.by_ref().map_while(Result::ok).collect();
        (self.child.wait().expect("medfusion ends"), rest)
    }
}

/// Headless Chromium as the browser tests start it: no sandbox (CI runs as root), no GPU,
/// nothing fetched in the background.
pub const HEADLESS: [&str; 8] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

/// Chromium (`$CHROMIUM`, `/usr/bin/chromium` or `chromium` on the path), if it runs.
pub fn chromium() -> Option<String> {
    let candidates = [
        std::env::var("CHROMIUM").unwrap_or_default(),
        "/usr/bin/chromium".into(),
        "chromium".into(),
    ];
    candidates.into_iter().filter(|c| !c.is_empty()).find(|c| {
        Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// Chromium for a browser test, or `None` with a note when there is none: the test is then
/// skipped, unless `MEDFUSION_REQUIRE_CHROMIUM` is set (as CI sets it), which fails it.
#[allow(clippy::print_stderr)] // the note
pub fn browser_for_test() -> Option<String> {
    let found = chromium();
    if found.is_none() {
        assert!(
            std::env::var("MEDFUSION_REQUIRE_CHROMIUM").is_err(),
            "MEDFUSION_REQUIRE_CHROMIUM is set but no Chromium was found"
        );
        eprintln!("note: skipping the browser test: no Chromium (apt-get install chromium)");
    }
    found
}
