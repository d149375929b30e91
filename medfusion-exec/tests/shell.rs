//! `process.shell`: files in, files out, logs, failures with stderr, cancellation, and
//! checksums that make a resumed run notice changed files.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{plan, runtime_mt};
use medfusion_exec::{
    Engine, FilesValue, MemoryStore, NodeStatus, Registry, ResumeFrom, RunOptions, RunReport,
    ShellSettings, register_shell,
};

fn registry(run_dir: &Path) -> Registry {
    let mut registry = Registry::with_builtins();
    register_shell(
        &mut registry,
        ShellSettings {
            run_dir: run_dir.to_path_buf(),
        },
    )
    .unwrap();
    registry
}

fn run(run_dir: &Path, yaml: &str, resume: Option<ResumeFrom>) -> (RunReport, MemoryStore) {
    let registry = registry(run_dir);
    let plan = plan(&registry, yaml);
    let store = MemoryStore::new();
    let engine = Engine::builder(registry)
        .store(Arc::new(store.clone()))
        .build();
    let report = runtime_mt(2).block_on(engine.run(
        plan,
        RunOptions {
            run_id: Some("r".into()),
            resume,
            ..RunOptions::default()
        },
    ));
    (report, store)
}

const PIPELINE: &str = r#"
name: pipe
nodes:
  - id: make
    type: process.shell
    config:
      command: "mkdir -p out && printf 'a,b\n1,2\n' > out/table.csv && echo $GREETING > hello.txt"
      outputs: [out/*.csv, hello.txt]
      env: { GREETING: hi }
  - id: count
    type: process.shell
    config:
      command: [sh, -c, "wc -l < table.csv > lines.txt && cat hello.txt >> lines.txt"]
      outputs: [lines.txt]
edges:
  - { from: make.out, to: count.in }
"#;

#[test]
fn files_flow_from_one_command_to_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let (report, _) = run(dir.path(), PIPELINE, None);
    let state = report.into_result().unwrap();
    assert!(
        state
            .nodes
            .iter()
            .all(|n| n.status == NodeStatus::Succeeded)
    );
    let lines = std::fs::read_to_string(dir.path().join("work/count/1/lines.txt")).unwrap();
    assert_eq!(lines, "2\nhi\n");
    // The outputs are named as declared and carry checksums.
    let out = &state.nodes[0].summary["out"]["files"];
    assert_eq!(out, &serde_json::json!(["out/table.csv", "hello.txt"]));
    assert!(dir.path().join("jobs/make/1/stdout.log").is_file());
}

#[test]
fn a_failing_command_reports_the_end_of_its_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = r#"
name: fail
nodes:
  - id: bad
    type: process.shell
    config:
      command: "for i in $(seq 1 30); do echo line-$i >&2; done; exit 3"
"#;
    let (report, _) = run(dir.path(), yaml, None);
    let err = report.into_result().unwrap_err();
    let chain: Vec<String> =
        std::iter::successors(Some(&err as &dyn std::error::Error), |e| e.source())
            .map(ToString::to_string)
            .collect();
    let text = chain.join("\n");
    assert!(text.contains("exited with status 3"), "{text}");
    assert!(
        text.contains("line-30") && text.contains("line-11"),
        "{text}"
    );
    assert!(
        !text.contains("line-10\n"),
        "only the last 20 lines: {text}"
    );
    assert!(text.contains("stderr.log"), "{text}");
}

#[test]
fn a_missing_declared_output_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = r#"
name: missing
nodes:
  - id: lazy
    type: process.shell
    config: { command: "true", outputs: [result.csv] }
"#;
    let err = run(dir.path(), yaml, None).0.into_result().unwrap_err();
    let text = format!("{err:#}");
    let chain: Vec<String> =
        std::iter::successors(Some(&err as &dyn std::error::Error), |e| e.source())
            .map(ToString::to_string)
            .collect();
    assert!(
        chain
            .iter()
            .any(|l| l.contains("declared output `result.csv`")),
        "{text} {chain:?}"
    );
}

#[test]
fn cancelling_stops_the_command_and_its_children() {
    cancel_and_check_the_child("sleep 300 &");
}

#[test]
fn cancelling_stops_a_child_that_ignores_sigterm() {
    // The shell exits on SIGTERM; its child ignores it and must still be stopped.
    cancel_and_check_the_child("(trap '' TERM; exec sleep 300) &");
}

fn cancel_and_check_the_child(start_child: &str) {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("child.pid");
    let yaml = format!(
        r#"
name: long
nodes:
  - id: wait
    type: process.shell
    config: {{ command: "{start_child} echo $! > {} ; wait" }}
"#,
        pid_file.display()
    );
    let registry = registry(dir.path());
    let plan = plan(&registry, &yaml);
    let engine = Engine::builder(registry).build();
    let rt = runtime_mt(2);
    let started = Instant::now();
    let report = rt.block_on(async {
        let handle = engine.start(plan, RunOptions::default()).unwrap();
        while !pid_file.is_file() || std::fs::read_to_string(&pid_file).unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        handle.cancel_token().cancel();
        handle.wait().await
    });
    assert!(report.error.is_some());
    assert!(started.elapsed() < Duration::from_mins(1));
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // The grandchild `sleep` is gone too (a zombie counts as gone: it is not running). It has
    // been sent SIGKILL; the kernel finishes it asynchronously, so allow it a moment.
    let alive = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| s.split_whitespace().nth(2).is_none_or(|state| state != "Z"))
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!alive(), "the command's child {pid} still runs");
}

#[test]
fn a_resumed_run_reruns_a_shell_node_only_when_its_input_files_changed() {
    let dir = tempfile::tempdir().unwrap();
    let (report, store) = run(dir.path(), PIPELINE, None);
    let state = report.into_result().unwrap();
    let workflow = medfusion_graph::Workflow::parse_sniffed(PIPELINE).unwrap();
    let from = |state: medfusion_exec::RunState| ResumeFrom {
        state,
        workflow: workflow.clone(),
    };
    // Unchanged: both restored.
    let (again, _) = run(dir.path(), PIPELINE, Some(from(state.clone())));
    let again = again.into_result().unwrap();
    assert!(again.nodes.iter().all(|n| n.status == NodeStatus::Restored));
    // `make`'s output edited by hand: `make` runs again (its saved outputs no longer match),
    // and so does `count` downstream.
    std::fs::write(dir.path().join("work/make/1/out/table.csv"), "a,b\n").unwrap();
    let (changed, _) = run(dir.path(), PIPELINE, Some(from(state)));
    let changed = changed.into_result().unwrap();
    assert!(
        changed
            .nodes
            .iter()
            .all(|n| n.status == NodeStatus::Succeeded),
        "{:?}",
        changed.nodes
    );
    assert!(!store.saves().is_empty());
    // The restored value is what was saved.
    let saved = &again.nodes[0].outputs["out"];
    let value = FilesValue::restore(saved).unwrap();
    assert_eq!(value.downcast_ref::<FilesValue>().unwrap().files.len(), 2);
}

#[test]
fn bad_settings_are_refused_by_validation() {
    let dir = tempfile::tempdir().unwrap();
    let registry = registry(dir.path());
    for (config, key) in [
        ("{ command: \"\" }", "command"),
        ("{ command: [] }", "command"),
        ("{ command: ls, outputs: [../x] }", "outputs"),
        ("{ command: ls, outputs: [/etc/passwd] }", "outputs"),
        ("{ outputs: [a] }", "command"),
    ] {
        let yaml =
            format!("name: w\nnodes:\n  - {{ id: s, type: process.shell, config: {config} }}\n");
        let workflow = medfusion_graph::Workflow::parse_sniffed(&yaml).unwrap();
        let err = medfusion_graph::validate(workflow, registry.catalog())
            .unwrap_err()
            .to_string();
        assert!(err.contains(&format!("`{key}`")), "{config}: {err}");
    }
}
