//! WORKLOADS.md section 1: engine overhead per node. No-op nodes in three shapes (chain,
//! wide, layered) at 1,000 and 10,000 nodes, 2 worker threads, events on, checkpoints off.
//! Divide the time per run by the node count for µs per node (criterion's throughput line
//! gives nodes per second).

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use medfusion_bench::BenchDag;
use medfusion_exec::{Engine, Event, EventKind, Registry, RunOptions};
use medfusion_graph::{Format, Plan, Workflow, validate};

/// The workload graph as a workflow of `util.noop` nodes.
fn plan(registry: &Registry, dag: &BenchDag) -> Plan {
    let yaml = dag.noop_workflow();
    let workflow = Workflow::parse(&yaml, Format::Yaml).expect("workload parses");
    validate(workflow, registry.catalog()).expect("workload validates")
}

/// What a progress display does with events: count them and keep the finished total.
#[derive(Default)]
struct Progress {
    events: AtomicU64,
    finished: AtomicU64,
}

impl medfusion_exec::EventSink for Progress {
    fn event(&self, event: &Event) {
        self.events.fetch_add(1, Ordering::Relaxed);
        if matches!(event.kind, EventKind::NodeFinished { .. }) {
            self.finished.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn noop_workloads(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let registry = Registry::with_builtins();
    let progress = Arc::new(Progress::default());
    let engine = Engine::builder(registry.clone())
        .max_parallel(1024)
        .subscribe(progress.clone())
        .build();
    let mut group = c.benchmark_group("exec_schedule");
    group.sample_size(20);
    for shape in ["chain", "wide", "layered"] {
        for n in [1_000usize, 10_000] {
            let dag: BenchDag = medfusion_bench::read_json(&format!("dags/{shape}-{n}.json"));
            let plan = plan(&registry, &dag);
            // One checked run: every node finished.
            let before = progress.finished.load(Ordering::Relaxed);
            assert!(
                runtime
                    .block_on(engine.run(plan.clone(), RunOptions::default()))
                    .is_success()
            );
            assert_eq!(progress.finished.load(Ordering::Relaxed) - before, n as u64);
            group.throughput(Throughput::Elements(n as u64));
            group.bench_with_input(BenchmarkId::new(shape, n), &plan, |b, plan| {
                b.iter_batched(
                    || plan.clone(),
                    |plan| black_box(runtime.block_on(engine.run(plan, RunOptions::default()))),
                    BatchSize::LargeInput,
                );
            });
        }
    }
    group.finish();
}

criterion_group!(exec_schedule, noop_workloads);
criterion_main!(exec_schedule);
