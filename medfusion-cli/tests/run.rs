//! `medfusion run` end to end: exit codes, the run log, Ctrl-C.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn medfusion(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_medfusion"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("runs")
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

const GOOD: &str = "\
name: ok
nodes:
  - { id: a, type: util.value, config: { value: 3 } }
  - { id: b, type: util.noop }
  - { id: f, type: util.fail, config: { failures: 1 }, retries: 1, retry_backoff: 10ms }
edges:
  - { from: a.out, to: b.in }
";

#[test]
fn a_good_run_exits_0_and_logs_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "w.yaml", GOOD);
    let out = medfusion(dir.path(), &["run", "w.yaml", "--log", "run.jsonl"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("node `f` attempt 1 failed"), "{stderr}");
    assert!(stderr.contains("run succeeded"), "{stderr}");
    let log = std::fs::read_to_string(dir.path().join("run.jsonl")).unwrap();
    let events: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.first().unwrap()["event"], "run_started");
    assert_eq!(events.last().unwrap()["event"], "run_finished");
    assert_eq!(
        events
            .iter()
            .filter(|e| e["event"] == "node_finished")
            .count(),
        3
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| e["event"] == "node_retrying")
            .count(),
        1
    );
}

#[test]
fn a_failed_run_exits_1_naming_the_node_and_cause() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "w.yaml",
        &GOOD.replace("retries: 1", "retries: 0"),
    );
    let out = medfusion(dir.path(), &["run", "w.yaml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("error: node `f` failed after 1 attempt"),
        "{stderr}"
    );
    assert!(stderr.contains("caused by: injected failure"), "{stderr}");
}

#[test]
fn an_invalid_workflow_exits_2_before_running() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "w.yaml", &GOOD.replace("util.noop", "util.nop"));
    let out = medfusion(dir.path(), &["run", "w.yaml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("w.yaml:4: node `b`: unknown node type `util.nop`"),
        "{stderr}"
    );
    assert!(!stderr.contains("running workflow"), "{stderr}");
}

#[test]
fn ctrl_c_cancels_and_exits_130() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "w.yaml",
        "name: s\nnodes:\n  - { id: s, type: util.sleep, config: { duration: 60s } }\n",
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_medfusion"))
        .args(["run", "w.yaml"])
        .current_dir(dir.path())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    for line in lines.by_ref() {
        if line.unwrap().contains("sleeping") {
            break;
        }
    }
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: sending SIGINT to our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{rest:?}");
    assert!(rest.iter().any(|l| l.contains("interrupted")), "{rest:?}");
}

#[test]
fn sigusr1_saves_a_checkpoint_while_running() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "w.yaml",
        "name: s\nnodes:\n  - { id: s, type: util.sleep, config: { duration: 60s } }\n",
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_medfusion"))
        .args(["run", "w.yaml"])
        .current_dir(dir.path())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = i32::try_from(child.id()).unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    let mut requested = false;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line.contains("sleeping") {
            // SAFETY: signalling our own child process.
            assert_eq!(unsafe { libc::kill(pid, libc::SIGUSR1) }, 0);
        }
        requested |= line.contains("checkpoint requested");
        let saved = line.contains("checkpoint saved") && line.contains("Requested");
        seen.push(line);
        if saved {
            // SAFETY: as above; Ctrl-C ends the run.
            assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
            break;
        }
    }
    let _ = child.wait();
    assert!(requested, "{seen:#?}");
    assert!(
        seen.last().is_some_and(|l| l.contains("(Requested)")),
        "{seen:#?}"
    );
}

#[test]
fn checkpoint_now_asks_the_running_run_and_prints_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "w.yaml",
        "name: s\nnodes:\n  - { id: s, type: util.sleep, config: { duration: 60s } }\n",
    );
    let medfusion = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_medfusion"));
        c.current_dir(dir.path());
        c
    };
    // Nothing runs yet: a clear error.
    let none = medfusion().args(["checkpoint", "--now"]).output().unwrap();
    assert_eq!(none.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&none.stderr).contains("no running `medfusion run`"),
        "{none:?}"
    );

    let mut child = medfusion()
        .args(["run", "w.yaml"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = i32::try_from(child.id()).unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    let mut asked = None;
    let (mut sleeping, mut first_saved) = (false, false);
    for line in lines.by_ref() {
        let line = line.unwrap();
        sleeping |= line.contains("sleeping");
        first_saved |= line.contains("checkpoint saved") && line.contains("(Started)");
        seen.push(line);
        // Asked once the run's first save is on disk, so that the answer is the save asked for.
        if sleeping && first_saved {
            asked = Some(
                medfusion()
                    .args(["checkpoint", "--now", "s", "--wait", "60s"])
                    .output()
                    .unwrap(),
            );
            break;
        }
    }
    // SAFETY: signalling our own child process; Ctrl-C ends the run.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    seen.extend(lines.map_while(Result::ok));
    let _ = child.wait();
    let asked = asked.unwrap_or_else(|| panic!("the run never slept: {seen:#?}"));
    assert!(asked.status.success(), "{asked:?}\n{seen:#?}");
    let id = String::from_utf8(asked.stdout).unwrap().trim().to_owned();
    assert!(id.starts_with("s_"), "{id}");
    assert!(
        seen.iter()
            .any(|l| l.contains("checkpoint saved") && l.contains(&id) && l.contains("Requested")),
        "{id}\n{seen:#?}"
    );
    // The run is over: its registration is gone.
    let after = medfusion().args(["checkpoint", "--now"]).output().unwrap();
    assert!(!after.status.success());
}
