//! `medfusion run --executor slurm` on a real Slurm (`scripts/slurm-local.sh start` makes a
//! one-machine cluster). Skipped with a note where no Slurm answers, unless
//! `MEDFUSION_REQUIRE_SLURM=1` (set by CI) makes that a failure.
//!
//! The tests share the cluster's two CPUs; each waits for what it checks through the run's
//! own output and Slurm's queue, never through sleeps that decide an outcome.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Running, medfusion, root, run_record, stderr};

/// Whether a Slurm cluster takes jobs here.
fn slurm_here() -> bool {
    let up = medfusion_slurm::cluster_takes_jobs();
    let required = std::env::var("MEDFUSION_REQUIRE_SLURM").is_ok_and(|v| v == "1");
    assert!(
        up || !required,
        "MEDFUSION_REQUIRE_SLURM=1 but no Slurm cluster takes jobs (start one with \
         scripts/slurm-local.sh start)"
    );
    if !up {
        #[allow(clippy::print_stderr)]
        {
            eprintln!(
                "note: skipping: no Slurm cluster here (set MEDFUSION_REQUIRE_SLURM=1 to make \
                 this a failure)"
            );
        }
    }
    up
}

/// The ids of the jobs of run folder `out` still in the queue (any state but ended ones).
fn live_jobs(name_prefix: &str) -> Vec<String> {
    let out = Command::new("squeue")
        .args(["-h", "-o", "%i|%j|%T"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut parts = l.split('|');
            let (id, name, state) = (parts.next()?, parts.next()?, parts.next()?);
            (name.starts_with(name_prefix) && matches!(state, "PENDING" | "RUNNING" | "COMPLETING"))
                .then(|| id.to_string())
        })
        .collect()
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

const SMALL: [&str; 10] = [
    "--set",
    "data.samples=200",
    "--set",
    "data.image_size=16",
    "--set",
    "train.epochs=2",
    "--set",
    "train.num_workers=1",
    "--set",
    "train.model=fusion_cnn",
];

#[test]
fn the_quickstart_through_slurm_matches_a_local_run() {
    if !slurm_here() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        root().join("examples/quickstart.yaml"),
        dir.path().join("quickstart.yaml"),
    )
    .unwrap();
    let run = |executor: &str, out: &str| {
        let mut args = vec![
            "run",
            "quickstart.yaml",
            "--executor",
            executor,
            "--out",
            out,
            "--no-checkpoints",
        ];
        args.extend(SMALL);
        let result = medfusion(dir.path(), &args);
        assert_eq!(
            result.status.code(),
            Some(0),
            "{executor}: {}",
            stderr(&result)
        );
        result
    };
    let on_slurm = run("slurm", "slurm");
    run("local", "local");
    assert!(
        stderr(&on_slurm).contains("submitted as Slurm job"),
        "{}",
        stderr(&on_slurm)
    );
    let metrics =
        |out: &str| run_record(&dir.path().join(out))["metrics"]["eval"]["models"]["train"].clone();
    let (a, b) = (metrics("slurm"), metrics("local"));
    for key in ["accuracy", "roc_auc", "confusion_matrix"] {
        assert_eq!(a[key], b[key], "{key}: {a} vs {b}");
    }
    // Each node's peaks come from its job, as for local nodes.
    let record = run_record(&dir.path().join("slurm"));
    for node in record["nodes"].as_array().unwrap() {
        assert!(
            node["usage"]["peak_rss_bytes"].as_u64().unwrap() > 0,
            "{node}"
        );
    }
    for node in ["data", "train", "eval"] {
        assert!(
            dir.path()
                .join(format!("slurm/jobs/{node}/1/slurm.out"))
                .is_file()
        );
    }
}

#[test]
fn a_shell_pipeline_runs_as_jobs() {
    if !slurm_here() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        root().join("examples/shell-csv.yaml"),
        dir.path().join("shell-csv.yaml"),
    )
    .unwrap();
    let out = medfusion(
        dir.path(),
        &[
            "run",
            "shell-csv.yaml",
            "--executor",
            "slurm",
            "--out",
            "out",
            "--set",
            "train.epochs=1",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows = std::fs::read_to_string(dir.path().join("out/work/count/1/rows.txt")).unwrap();
    assert_eq!(rows.trim(), "601");
    assert!(
        dir.path()
            .join("out/jobs/make_table/1/stdout.log")
            .is_file()
    );
}

#[test]
fn a_job_cancelled_from_outside_is_retried() {
    if !slurm_here() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "w.yaml",
        "name: outside\nnodes:\n  - { id: s, type: util.sleep, config: { duration: 8s }, retries: 1, retry_backoff: 10ms }\n",
    );
    let run = Running::until(
        dir.path(),
        &["run", "w.yaml", "--executor", "slurm", "--out", "out"],
        "runs",
    );
    let jobs = live_jobs("mf-outside-");
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    let scancel = Command::new("scancel").arg(&jobs[0]).status().unwrap();
    assert!(scancel.success());
    let (status, rest) = run.finish();
    assert_eq!(status.code(), Some(0), "{rest:#?}");
    let text = rest.join("\n");
    assert!(text.contains("node `s` attempt 1 failed"), "{text}");
    assert!(text.contains("CANCELLED"), "{text}");
    let record = run_record(&dir.path().join("out"));
    assert_eq!(record["nodes"][0]["attempts"], 2);
}

#[test]
fn a_job_over_its_time_limit_fails_as_timeout_naming_the_node() {
    if !slurm_here() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "w.yaml",
        "name: slow\nnodes:\n  - { id: forever, type: util.sleep, config: { duration: 10m }, resources: { time: 1m } }\n",
    );
    let out = medfusion(
        dir.path(),
        &["run", "w.yaml", "--executor", "slurm", "--no-checkpoints"],
    );
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("node `forever`"), "{text}");
    assert!(text.contains("TIMEOUT"), "{text}");
}

#[test]
fn ctrl_c_on_the_head_leaves_no_job_in_the_queue() {
    if !slurm_here() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "w.yaml",
        "name: interrupted\nnodes:\n  - { id: s, type: util.sleep, config: { duration: 5m } }\n",
    );
    let run = Running::until(
        dir.path(),
        &["run", "w.yaml", "--executor", "slurm"],
        "runs",
    );
    assert_eq!(live_jobs("mf-interrupted-").len(), 1);
    run.signal(libc::SIGINT);
    let (status, rest) = run.finish();
    assert_eq!(status.code(), Some(130), "{rest:#?}");
    assert!(live_jobs("mf-interrupted-").is_empty(), "{rest:#?}");
}

#[test]
fn after_kill_9_resume_re_attaches_to_the_running_job() {
    if !slurm_here() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "w.yaml",
        "name: reattach\nnodes:\n  - { id: s, type: util.sleep, config: { duration: 12s } }\n  - { id: after, type: util.noop }\nedges:\n  - { from: s.out, to: after.in }\n",
    );
    let mut run = Running::until(
        dir.path(),
        &["run", "w.yaml", "--executor", "slurm", "--out", "out", "-v"],
        "runs",
    );
    // Once the run's state holding the job id is saved, the head dies.
    for line in run.lines.by_ref() {
        let line = line.unwrap();
        if line.contains("checkpoint saved") && line.contains("NodeProgress") {
            break;
        }
    }
    let jobs = live_jobs("mf-reattach-");
    assert_eq!(jobs.len(), 1);
    run.child.kill().unwrap(); // SIGKILL: no chance to cancel its job
    let _ = run.child.wait();
    assert_eq!(live_jobs("mf-reattach-"), jobs, "the job outlives its head");

    let resumed = medfusion(
        dir.path(),
        &["resume", "reattach", "--executor", "slurm", "--out", "out"],
    );
    let text = stderr(&resumed);
    assert_eq!(resumed.status.code(), Some(0), "{text}");
    assert!(
        text.contains(&format!("re-attached to Slurm job {}", jobs[0])),
        "{text}"
    );
    assert!(
        !text.contains("node `s` submitted"),
        "submitted twice: {text}"
    );
    // One job script for node `s`: nothing was submitted again.
    let scripts = std::fs::read_dir(dir.path().join("out/jobs/s"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().join("job.sh").is_file())
        .count();
    assert_eq!(scripts, 1);
}

#[test]
fn a_training_job_killed_by_its_time_limit_continues_from_its_last_epoch() {
    if !slurm_here() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // More epochs than a minute holds: Slurm ends the first job at its time limit, and the
    // retry must start from the epochs that job saved, not from the first.
    write(
        dir.path(),
        "w.yaml",
        "name: limited\nseed: 7\nnodes:\n  \
         - { id: data, type: dataset.synthetic, config: { samples: 200, image_size: 16 } }\n  \
         - id: train\n    type: train.classifier\n    retries: 1\n    retry_backoff: 10ms\n    \
           resources: { time: 1m }\n    \
           config: { model: fusion_cnn, epochs: 100000, batch_size: 32, num_workers: 1, checkpoint_interval: 1 }\n\
         edges:\n  - { from: data.train, to: train.train_data }\n  - { from: data.val, to: train.val_data }\n",
    );
    let mut run = Running::until(
        dir.path(),
        &["run", "w.yaml", "--executor", "slurm", "--out", "out"],
        "runs",
    );
    let mut seen = Vec::new();
    let mut continued_at = None;
    for line in run.lines.by_ref() {
        let line = line.unwrap();
        if let Some((_, rest)) = line.split_once("continuing from epoch ") {
            let epoch: String = rest.chars().take_while(char::is_ascii_digit).collect();
            continued_at = Some(epoch.parse::<u64>().unwrap());
            seen.push(line);
            break;
        }
        seen.push(line);
    }
    let text = seen.join("\n");
    let epoch = continued_at.unwrap_or_else(|| panic!("the retry did not continue: {text}"));
    assert!(text.contains("node `train` attempt 1 failed"), "{text}");
    assert!(text.contains("TIMEOUT"), "{text}");
    assert!(epoch > 1, "continued from epoch {epoch}: {text}");
    // The retry is a second job; stop it and the run.
    run.signal(libc::SIGINT);
    let (status, rest) = run.finish();
    assert_eq!(status.code(), Some(130), "{rest:#?}");
    assert!(live_jobs("mf-limited-").is_empty(), "{rest:#?}");
}
