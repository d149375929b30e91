//! What a careless or hostile user does, end to end: nothing on disk is lost, nothing hangs,
//! nothing panics. Each test is named after what broke before.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{Running, medfusion, root, stderr};

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

fn quickstart(dir: &Path) {
    std::fs::copy(
        root().join("examples/quickstart.yaml"),
        dir.join("quickstart.yaml"),
    )
    .unwrap();
}

/// A small quickstart run: `medfusion run quickstart.yaml` with tiny settings and `extra`.
fn small_run(dir: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "run",
        "quickstart.yaml",
        "--monitor-interval",
        "200ms",
        "--set",
        "data.samples=200",
        "--set",
        "data.image_size=16",
        "--set",
        "train.epochs=3",
        "--set",
        "train.num_workers=1",
        "--set",
        "train.early_stopping_patience=10",
    ];
    args.extend(extra);
    medfusion(dir, &args)
}

fn checkpoint_ids(dir: &Path) -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(dir.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    ids.sort();
    ids
}

fn verify(dir: &Path) -> Output {
    medfusion(dir, &["checkpoints", "verify"])
}

#[test]
fn a_corrupt_tensor_file_is_not_linked_into_new_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    quickstart(dir.path());
    let out = small_run(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let before = checkpoint_ids(dir.path());
    let newest = before.last().unwrap();
    let model = dir
        .path()
        .join("checkpoints")
        .join(newest)
        .join("models/train_model.safetensors");
    // Flip one byte in the middle of the weights (a hard link of the stored object).
    let mut bytes = std::fs::read(&model).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0xff;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&model)
        .and_then(|mut f| std::io::Write::write_all(&mut f, &bytes))
        .unwrap();

    let resumed = medfusion(dir.path(), &["resume", "quickstart"]);
    let text = stderr(&resumed);
    assert_eq!(resumed.status.code(), Some(0), "{text}");
    assert!(
        text.contains(&format!("skipped checkpoint {newest}")),
        "resume must say which checkpoint it skipped and why: {text}"
    );
    let new: Vec<String> = checkpoint_ids(dir.path())
        .into_iter()
        .filter(|id| !before.contains(id))
        .collect();
    assert!(!new.is_empty());
    for id in &new {
        let one = medfusion(dir.path(), &["checkpoints", "verify", id]);
        assert_eq!(
            one.status.code(),
            Some(0),
            "{id}: {}{}",
            String::from_utf8_lossy(&one.stdout),
            stderr(&one)
        );
    }
    let all = verify(dir.path());
    assert_eq!(all.status.code(), Some(1));
    let report = stderr(&all);
    assert!(
        report.contains("the same file is linked into"),
        "verify says how many checkpoints share the damaged file: {report}"
    );
    let listed = medfusion(dir.path(), &["checkpoints", "list"]);
    let table = String::from_utf8_lossy(&listed.stdout);
    let marked = table
        .lines()
        .find(|l| l.starts_with(newest.as_str()))
        .unwrap_or_default();
    assert!(
        marked.contains("CORRUPT"),
        "list marks the damaged one: {table}"
    );
}

const FLAKY: &str = "\
name: flaky
nodes:
  - { id: a, type: util.value, config: { value: 1 } }
  - { id: f, type: util.fail, config: { failures: 1 } }
edges:
  - { from: a.out, to: f.in }
";

#[test]
fn failed_resumes_do_not_rotate_good_checkpoints_away() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "flaky.yaml", FLAKY);
    let first = medfusion(dir.path(), &["run", "flaky.yaml", "--max-checkpoints", "2"]);
    assert_eq!(first.status.code(), Some(1), "{}", stderr(&first));
    let good = checkpoint_ids(dir.path());
    assert!(!good.is_empty());
    // Each resume restores `a` and fails `f` at once: no work done.
    for _ in 0..3 {
        let again = medfusion(dir.path(), &["resume", "flaky", "--max-checkpoints", "2"]);
        assert_eq!(again.status.code(), Some(1), "{}", stderr(&again));
    }
    let now = checkpoint_ids(dir.path());
    for id in &good {
        assert!(
            now.contains(id),
            "{id} was rotated away by runs that did no work: {now:?}"
        );
    }
}

#[test]
fn a_second_run_of_a_workflow_is_refused_naming_the_first() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "s.yaml",
        "name: s\nnodes:\n  - { id: s, type: util.sleep, config: { duration: 60s } }\n",
    );
    let mut first = Running::until(dir.path(), &["run", "s.yaml"], "sleeping");
    let second = medfusion(dir.path(), &["run", "s.yaml"]);
    let pid = first.child.id();
    let _ = first.child.kill();
    let _ = first.child.wait();
    let text = stderr(&second);
    assert_eq!(second.status.code(), Some(1), "{text}");
    assert!(text.contains(&format!("process {pid}")), "{text}");
    assert!(text.contains("--checkpoint-dir"), "{text}");
    assert!(!text.contains("running workflow"), "{text}");
}

#[test]
fn example_data_does_not_overwrite_the_users_files() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("table.csv"), "mine\n").unwrap();
    let out = medfusion(
        dir.path(),
        &[
            "example-data",
            "data",
            "--samples",
            "60",
            "--image-size",
            "8",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(data.join("table.csv")).unwrap(),
        "mine\n"
    );
    let forced = medfusion(
        dir.path(),
        &[
            "example-data",
            "data",
            "--samples",
            "60",
            "--image-size",
            "8",
            "--force",
        ],
    );
    assert_eq!(forced.status.code(), Some(0), "{}", stderr(&forced));
    assert_ne!(
        std::fs::read_to_string(data.join("table.csv")).unwrap(),
        "mine\n"
    );
}

#[test]
fn output_paths_are_checked_before_any_node_runs() {
    let dir = tempfile::tempdir().unwrap();
    let workflow = "name: w\nnodes:\n  - { id: a, type: util.value, config: { value: 1 } }\n";
    write(dir.path(), "w.yaml", workflow);
    // `--log` naming the workflow file must not truncate it.
    let out = medfusion(dir.path(), &["run", "w.yaml", "--log", "w.yaml"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("workflow file"), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("w.yaml")).unwrap(),
        workflow
    );
    // Nor any other file that is not a run log.
    write(dir.path(), "notes.txt", "my notes\n");
    let out = medfusion(dir.path(), &["run", "w.yaml", "--log", "notes.txt"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("notes.txt")).unwrap(),
        "my notes\n"
    );
    // A run log may be written again.
    let ok = medfusion(dir.path(), &["run", "w.yaml", "--log", "run.jsonl"]);
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    let again = medfusion(dir.path(), &["run", "w.yaml", "--log", "run.jsonl"]);
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    // `--out` naming a file: refused before the run starts.
    write(dir.path(), "afile", "x");
    let out = medfusion(dir.path(), &["run", "w.yaml", "--out", "afile"]);
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("`--out afile` is a file"), "{text}");
    assert!(!text.contains("node `a` started"), "{text}");
}

#[test]
fn a_run_whose_record_cannot_be_written_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "w.yaml",
        "name: w\nnodes:\n  - { id: a, type: util.value, config: { value: 1 } }\n",
    );
    // `run.json` cannot be renamed over a folder.
    std::fs::create_dir_all(dir.path().join("out/run.json/x")).unwrap();
    let out = medfusion(dir.path(), &["run", "w.yaml", "--out", "out"]);
    let text = stderr(&out);
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("run.json"), "{text}");
}

#[test]
fn sigterm_saves_records_and_exits_143() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "s.yaml",
        "name: s\nnodes:\n  - { id: s, type: util.sleep, config: { duration: 60s } }\n",
    );
    let run = Running::until(dir.path(), &["run", "s.yaml", "--out", "out"], "sleeping");
    run.signal(libc::SIGTERM);
    let (status, rest) = run.finish();
    assert_eq!(status.code(), Some(143), "{rest:#?}");
    assert!(rest.iter().any(|l| l.contains("SIGTERM")), "{rest:#?}");
    let record = common::run_record(&dir.path().join("out"));
    assert_eq!(record["status"], "cancelled");
    assert!(
        rest.iter()
            .any(|l| l.contains("checkpoint saved") && l.contains("Cancelled")),
        "{rest:#?}"
    );
}

/// Runs `args` with stdout (and stderr when `both`) going to a pipe whose reader has
/// already gone.
fn into_closed_pipe(dir: &Path, args: &[&str], both: bool) -> std::process::ExitStatus {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut command = Command::new(env!("CARGO_BIN_EXE_medfusion"));
    command
        .args(args)
        .current_dir(dir)
        .stdout(writer.try_clone().unwrap());
    if both {
        command.stderr(writer);
    } else {
        drop(writer);
        command.stderr(Stdio::null());
    }
    command.status().unwrap()
}

#[test]
fn a_closed_pipe_is_not_a_panic_nor_a_failed_run() {
    let dir = tempfile::tempdir().unwrap();
    quickstart(dir.path());
    for args in [
        &["validate", "quickstart.yaml"][..],
        &["graph", "quickstart.yaml"],
        &["schema"],
        &["nodes"],
        &["nodes", "train.classifier"],
    ] {
        let status = into_closed_pipe(dir.path(), args, true);
        assert_eq!(status.code(), Some(0), "{args:?}");
    }
    let status = into_closed_pipe(
        dir.path(),
        &[
            "run",
            "quickstart.yaml",
            "--out",
            "out",
            "--set",
            "data.samples=60",
            "--set",
            "data.image_size=8",
            "--set",
            "train.epochs=1",
        ],
        true,
    );
    assert_eq!(status.code(), Some(0));
    let record = common::run_record(&dir.path().join("out"));
    assert_eq!(record["status"], "succeeded");
}

#[test]
fn usage_errors_instead_of_silent_adjustments() {
    let dir = tempfile::tempdir().unwrap();
    quickstart(dir.path());
    for (flag, value) in [
        ("--max-parallel", "0"),
        ("--max-checkpoints", "0"),
        ("--monitor-interval", "1ms"),
    ] {
        let out = medfusion(dir.path(), &["run", "quickstart.yaml", flag, value]);
        let text = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {text}");
        assert!(text.contains(flag), "{text}");
        assert!(
            !dir.path().join("checkpoints").exists(),
            "{flag}: nothing ran"
        );
    }
}

#[test]
fn validate_refuses_what_training_would_refuse() {
    let dir = tempfile::tempdir().unwrap();
    quickstart(dir.path());
    for (set, key) in [
        ("train.learning_rate=5", "learning_rate"),
        ("train.momentum=1", "momentum"),
        ("train.gamma=0", "gamma"),
        ("train.warmup_epochs=6", "warmup_epochs"),
        ("train.min_lr=0.5", "min_lr"),
        ("train.model=resnet19", "model"),
    ] {
        let out = medfusion(
            dir.path(),
            &["run", "quickstart.yaml", "--set", set, "--no-checkpoints"],
        );
        let text = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{set}: {text}");
        assert!(text.contains(&format!("`{key}`")), "{set}: {text}");
        assert!(
            text.contains("quickstart.yaml:"),
            "{set}: the file and line: {text}"
        );
        assert!(!text.contains("node `data` started"), "{set}: {text}");
    }
}

#[test]
fn a_device_that_does_not_exist_stops_the_run_before_any_node() {
    let dir = tempfile::tempdir().unwrap();
    quickstart(dir.path());
    let out = medfusion(
        dir.path(),
        &["run", "quickstart.yaml", "--device", "cuda:7"],
    );
    let text = stderr(&out);
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("cuda:7"), "{text}");
    assert!(!text.contains("node `data` started"), "{text}");
    assert!(
        !dir.path().join("checkpoints").exists() || checkpoint_ids(dir.path()).is_empty(),
        "no checkpoint for a run that never started"
    );
}

#[test]
fn terminal_control_characters_from_files_are_escaped() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "w.yaml",
        "name: w\nnodes:\n  - { id: \"a\\e[31mred\", type: util.noop }\n",
    );
    let out = medfusion(dir.path(), &["validate", "w.yaml"]);
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(!text.contains('\u{1b}'), "{text:?}");
    assert!(text.contains("\\u{1b}"), "{text:?}");
}

#[test]
fn logs_are_plain_text_when_stderr_is_not_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    quickstart(dir.path());
    // Mixed precision on the CPU logs a warning.
    let out = small_run(
        dir.path(),
        &["--set", "train.use_amp=true", "--set", "train.epochs=1"],
    );
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(!text.contains('\u{1b}'), "{text:?}");
}

#[test]
fn a_run_ends_with_its_headline_metrics_and_folds_epoch_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    quickstart(dir.path());
    let out = small_run(dir.path(), &[]);
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("eval: model `train` accuracy ") && l.contains("ROC AUC")),
        "{text}"
    );
    assert!(
        !text.contains("(NodeProgress)"),
        "epoch checkpoints ride on the progress line: {text}"
    );
    let verbose = small_run(dir.path(), &["-v"]);
    assert!(
        stderr(&verbose).contains("(NodeProgress)"),
        "{}",
        stderr(&verbose)
    );
}

#[test]
fn checkpoints_verify_and_list_show_broken_folders_and_missing_dirs() {
    let dir = tempfile::tempdir().unwrap();
    let missing = medfusion(
        dir.path(),
        &["checkpoints", "verify", "--dir", "/nonexistent/checkpoints"],
    );
    assert_eq!(missing.status.code(), Some(1), "{}", stderr(&missing));
    assert!(
        stderr(&missing).contains("does not exist"),
        "{}",
        stderr(&missing)
    );
    // A folder named like a checkpoint without a manifest (a save cut short by hand).
    std::fs::create_dir_all(dir.path().join("checkpoints/w_20260101_000000/models")).unwrap();
    let out = verify(dir.path());
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let listed = medfusion(dir.path(), &["checkpoints", "list"]);
    let table = String::from_utf8_lossy(&listed.stdout);
    assert!(
        table.contains("w_20260101_000000") && table.contains("BROKEN"),
        "{table}"
    );
}

#[test]
fn ctrl_c_without_checkpoints_does_not_promise_a_resume() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "s.yaml",
        "name: s\nnodes:\n  - { id: s, type: util.sleep, config: { duration: 60s } }\n",
    );
    let run = Running::until(
        dir.path(),
        &["run", "s.yaml", "--no-checkpoints"],
        "sleeping",
    );
    run.signal(libc::SIGINT);
    let (status, rest) = run.finish();
    assert_eq!(status.code(), Some(130), "{rest:#?}");
    let text = rest.join("\n");
    assert!(!text.contains("medfusion resume"), "{text}");
    assert!(text.contains("--no-checkpoints"), "{text}");
}

#[test]
fn validate_of_an_endless_file_stops_at_the_size_limit() {
    let dir = tempfile::tempdir().unwrap();
    let out = medfusion(dir.path(), &["validate", "/dev/zero"]);
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("limit"), "{text}");
}

#[test]
fn a_second_ctrl_c_exits_at_once_while_a_node_ignores_cancellation() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "s.yaml",
        "name: s\nnodes:\n  - { id: s, type: util.sleep, config: { duration: 10m, ignore_cancel: true } }\n",
    );
    let started = std::time::Instant::now();
    let mut run = Running::until(dir.path(), &["run", "s.yaml", "--out", "out"], "sleeping");
    run.signal(libc::SIGINT);
    let mut seen = Vec::new();
    for line in run.lines.by_ref() {
        let line = line.unwrap();
        let stopping = line.contains("press Ctrl-C again");
        seen.push(line);
        if stopping {
            // The node ignores the first signal; the second ends the process.
            run.signal(libc::SIGTERM);
            break;
        }
    }
    let (status, rest) = run.finish();
    seen.extend(rest);
    assert_eq!(status.code(), Some(143), "{seen:#?}");
    assert!(
        started.elapsed() < std::time::Duration::from_mins(2),
        "the second signal did not end the run at once: {seen:#?}"
    );
    assert!(
        seen.iter().any(|l| l.contains("stopped at once")),
        "{seen:#?}"
    );
}
