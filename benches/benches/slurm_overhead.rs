//! The cost of running nodes as Slurm jobs: a workflow of independent `process.shell` nodes
//! running `true`, through `medfusion run --executor slurm` against the cluster that
//! `scripts/slurm-local.sh start` makes, beside the same workflow run in-process
//! (`--executor local`). Divide the time per run by the node count for seconds per node.
//!
//! It times the real product path (the head submits, each job runs `medfusion node-exec`),
//! so it needs the release binary: `cargo build --release -p medfusion-cli` first. Without
//! a binary or a cluster the Slurm half is skipped with a note.
//!
//! Snakemake 9.27.1 with snakemake-executor-plugin-slurm 2.8.0 on the same cluster is the
//! reference; `benches/benches/slurm_overhead_reference.sh` runs it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group};

/// Nodes per run: enough to fill the queue, few enough for criterion's ten samples.
const NODES: usize = 20;

/// The `medfusion` binary next to this benchmark's (`target/release/medfusion`).
fn medfusion_bin() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    // target/release/deps/slurm_overhead-<hash> -> target/release/medfusion
    let bin = exe.parent()?.parent()?.join("medfusion");
    bin.is_file().then_some(bin)
}

/// `NODES` independent shell nodes running `true`.
fn workflow(dir: &Path) -> PathBuf {
    let mut yaml = String::from("name: overhead\nnodes:\n");
    for i in 0..NODES {
        let _ = writeln!(
            yaml,
            "  - {{ id: n{i}, type: process.shell, config: {{ command: \"true\" }} }}"
        );
    }
    let path = dir.join("overhead.yaml");
    std::fs::write(&path, yaml).expect("the workflow is written");
    path
}

fn run(bin: &Path, dir: &Path, file: &Path, executor: &str, out: &Path) {
    let status = Command::new(bin)
        .current_dir(dir)
        .arg("run")
        .arg(file)
        .args(["--executor", executor, "--no-checkpoints", "--out"])
        .arg(out)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("medfusion starts");
    assert!(
        status.success(),
        "medfusion run --executor {executor} failed"
    );
}

fn overhead(c: &mut Criterion) {
    let Some(bin) = medfusion_bin() else {
        #[allow(clippy::print_stderr)]
        {
            eprintln!(
                "note: skipping slurm_overhead: no target/release/medfusion (run `cargo build \
                 --release -p medfusion-cli` first)"
            );
        }
        return;
    };
    let dir = tempfile::tempdir().expect("a temporary folder");
    let file = workflow(dir.path());
    let mut group = c.benchmark_group("slurm_overhead");
    group.sample_size(10);
    group.throughput(Throughput::Elements(NODES as u64));
    let mut executors = vec!["local"];
    if medfusion_slurm::cluster_takes_jobs() {
        executors.push("slurm");
    } else {
        #[allow(clippy::print_stderr)]
        {
            eprintln!(
                "note: skipping slurm_overhead/slurm: no Slurm cluster here \
                 (scripts/slurm-local.sh start)"
            );
        }
    }
    let mut runs = 0u64;
    for executor in executors {
        // A Slurm run takes about 10 s here: ten of them, not criterion's 5 s budget.
        group.measurement_time(Duration::from_secs(if executor == "slurm" {
            110
        } else {
            10
        }));
        group.bench_function(BenchmarkId::new(executor, NODES), |b| {
            b.iter_batched(
                || {
                    runs += 1;
                    dir.path().join(format!("runs/{runs}"))
                },
                |out| run(&bin, dir.path(), &file, executor, &out),
                BatchSize::PerIteration,
            );
        });
    }
    group.finish();
}

criterion_group!(benches, overhead);
criterion::criterion_main!(benches);
