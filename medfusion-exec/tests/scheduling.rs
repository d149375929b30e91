//! Scheduling: parallelism, GPU slots, dependency order, retries, failure policies.
#![allow(clippy::format_push_string, clippy::format_collect)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Recorder, plan, runtime, runtime_mt};
use medfusion_exec::{
    Engine, EventKind, FailurePolicy, FnExecutor, JsonValue, NodeContext, NodeError, NodeStatus,
    Outputs, Registry, RunOptions,
};
use medfusion_graph::{NodeSpec, PortSpec, PortType, Resources};
use tokio::sync::Barrier;

/// A node type `test.meet` whose nodes wait at a shared barrier: they can only finish if
/// they run at the same time.
fn meeting(parties: usize) -> Registry {
    let barrier = Arc::new(Barrier::new(parties));
    let mut registry = Registry::with_builtins();
    registry
        .register(
            NodeSpec::new("test.meet", "waits for the others")
                .output(PortSpec::output("out", PortType::Value)),
            FnExecutor(move |_ctx: NodeContext| {
                let barrier = Arc::clone(&barrier);
                async move {
                    barrier.wait().await;
                    Ok(Outputs::new().with("out", JsonValue::new(1.into())))
                }
            }),
        )
        .unwrap();
    registry
}

#[test]
fn independent_nodes_run_at_the_same_time() {
    let registry = meeting(2);
    let plan = plan(
        &registry,
        "name: t\nnodes:\n  - { id: a, type: test.meet }\n  - { id: b, type: test.meet }\n",
    );
    let engine = Engine::builder(registry).max_parallel(2).build();
    let report = runtime().block_on(async {
        // A guard against hanging; the barrier decides the outcome.
        tokio::time::timeout(
            Duration::from_secs(30),
            engine.run(plan, RunOptions::default()),
        )
        .await
        .expect("both nodes met at the barrier")
    });
    assert!(report.is_success(), "{:?}", report.error);
}

/// A node type `test.gpu` holding one GPU that records how many hold one at once.
fn gpu_counter(
    running: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
    grants: Arc<Mutex<Vec<Vec<u32>>>>,
) -> Registry {
    let mut registry = Registry::with_builtins();
    registry
        .register(
            NodeSpec::new("test.gpu", "holds a GPU")
                .output(PortSpec::output("out", PortType::Value))
                .with_default_resources(Resources::gpus(1)),
            FnExecutor(move |ctx: NodeContext| {
                let (running, peak, grants) = (running.clone(), peak.clone(), grants.clone());
                async move {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    grants.lock().unwrap().push(ctx.grant().gpus.clone());
                    for _ in 0..50 {
                        tokio::task::yield_now().await;
                    }
                    running.fetch_sub(1, Ordering::SeqCst);
                    Ok(Outputs::new())
                }
            }),
        )
        .unwrap();
    registry
}

#[test]
fn one_gpu_slot_is_never_granted_twice() {
    let (running, peak, grants) = (
        Arc::default(),
        Arc::new(AtomicUsize::new(0)),
        Arc::default(),
    );
    let registry = gpu_counter(Arc::clone(&running), Arc::clone(&peak), Arc::clone(&grants));
    let yaml = "name: t\nnodes:\n".to_string()
        + &(0..6)
            .map(|i| format!("  - {{ id: g{i}, type: test.gpu }}\n"))
            .collect::<String>();
    let plan = plan(&registry, &yaml);
    let engine = Engine::builder(registry).max_parallel(6).gpus(1).build();
    let report = runtime_mt(2).block_on(engine.run(plan, RunOptions::default()));
    assert!(report.is_success(), "{:?}", report.error);
    assert_eq!(peak.load(Ordering::SeqCst), 1, "two GPU nodes overlapped");
    assert!(grants.lock().unwrap().iter().all(|g| g == &[0]));
}

#[test]
fn two_gpu_slots_run_two_gpu_nodes_together_on_different_gpus() {
    let (running, peak, grants) = (
        Arc::default(),
        Arc::new(AtomicUsize::new(0)),
        Arc::default(),
    );
    let registry = gpu_counter(Arc::clone(&running), Arc::clone(&peak), Arc::clone(&grants));
    let yaml = "name: t\nnodes:\n  - { id: g0, type: test.gpu }\n  - { id: g1, type: test.gpu }\n";
    let plan = plan(&registry, yaml);
    let engine = Engine::builder(registry).max_parallel(4).gpus(2).build();
    let report = runtime().block_on(engine.run(plan, RunOptions::default()));
    assert!(report.is_success());
    let mut seen: Vec<Vec<u32>> = grants.lock().unwrap().clone();
    seen.sort();
    assert_eq!(seen, vec![vec![0], vec![1]]);
}

#[test]
fn a_node_needing_more_gpus_than_exist_fails_clearly() {
    let registry = Registry::with_builtins();
    let plan = plan(
        &registry,
        "name: t\nnodes:\n  - { id: a, type: util.noop, resources: { gpus: 2 } }\n",
    );
    let engine = Engine::builder(registry).gpus(1).build();
    let report = runtime().block_on(engine.run(plan, RunOptions::default()));
    let err = report.error.expect("fails");
    let chain = format!("{err}: {}", std::error::Error::source(&err).unwrap());
    assert!(
        chain.contains("needs 2 GPUs but the engine has 1"),
        "{chain}"
    );
}

#[test]
fn a_node_never_starts_before_its_inputs_finished() {
    // A diamond with a long tail, on two workers and max_parallel 8.
    let log: Arc<Mutex<Vec<(String, bool)>>> = Arc::default();
    let mut registry = Registry::with_builtins();
    let l = Arc::clone(&log);
    registry
        .register(
            NodeSpec::new("test.log", "logs start and end")
                .input(PortSpec::optional("in", PortType::Value).multiple())
                .output(PortSpec::output("out", PortType::Value)),
            FnExecutor(move |ctx: NodeContext| {
                let l = Arc::clone(&l);
                async move {
                    l.lock().unwrap().push((ctx.id().to_string(), true));
                    tokio::task::yield_now().await;
                    l.lock().unwrap().push((ctx.id().to_string(), false));
                    Ok(Outputs::new().with("out", JsonValue::new(ctx.id().into())))
                }
            }),
        )
        .unwrap();
    let mut yaml = String::from("name: t\nnodes:\n");
    let mut edges = String::from("edges:\n");
    for i in 0usize..40 {
        yaml += &format!("  - {{ id: n{i}, type: test.log }}\n");
        for d in [i / 2, i / 3, i.saturating_sub(7)] {
            if d < i {
                edges += &format!("  - {{ from: n{d}.out, to: n{i}.in }}\n");
            }
        }
    }
    let plan = plan(&registry, &(yaml + &edges));
    let deps: Vec<Vec<usize>> = (0..40).map(|i| plan.dependencies(i).to_vec()).collect();
    let engine = Engine::builder(registry).max_parallel(8).build();
    let report = runtime_mt(2).block_on(engine.run(plan, RunOptions::default()));
    assert!(report.is_success());
    let log = log.lock().unwrap();
    let pos = |id: &str, start: bool| {
        log.iter()
            .position(|(n, s)| n == id && *s == start)
            .unwrap()
    };
    for (i, ds) in deps.iter().enumerate() {
        for &d in ds {
            assert!(
                pos(&format!("n{d}"), false) < pos(&format!("n{i}"), true),
                "n{i} started before n{d} ended"
            );
        }
    }
}

#[test]
fn util_fail_with_two_retries_succeeds_on_the_third_attempt() {
    let registry = Registry::with_builtins();
    let plan = plan(
        &registry,
        "name: t\nnodes:\n  - { id: f, type: util.fail, config: { failures: 2 }, retries: 2, retry_backoff: 1ms }\n",
    );
    let events = Recorder::default();
    let engine = Engine::builder(registry)
        .subscribe(Arc::new(events.clone()))
        .build();
    let state = runtime()
        .block_on(engine.run(plan, RunOptions::default()))
        .into_result()
        .unwrap();
    assert_eq!(state.nodes[0].status, NodeStatus::Succeeded);
    assert_eq!(state.nodes[0].attempts, 3);
    let retries: Vec<(u32, f64)> = events
        .kinds()
        .into_iter()
        .filter_map(|k| match k {
            EventKind::NodeRetrying {
                attempt,
                delay_secs,
                ..
            } => Some((attempt, delay_secs)),
            _ => None,
        })
        .collect();
    assert_eq!(
        retries,
        [(1, 0.001), (2, 0.002)],
        "two retries with doubling backoff"
    );
    assert_eq!(
        events.count(|k| matches!(k, EventKind::NodeStarted { .. })),
        3
    );
}

#[test]
fn without_retries_util_fail_fails_and_names_the_node() {
    let registry = Registry::with_builtins();
    let plan = plan(
        &registry,
        "name: t\nnodes:\n  - { id: f, type: util.fail, config: { message: boom } }\n",
    );
    let engine = Engine::builder(registry).build();
    let report = runtime().block_on(engine.run(plan, RunOptions::default()));
    let err = report.error.unwrap();
    assert_eq!(err.to_string(), "node `f` failed after 1 attempt");
    assert!(
        std::error::Error::source(&err)
            .unwrap()
            .to_string()
            .starts_with("boom")
    );
    let state = report.state.unwrap();
    assert_eq!(
        state.nodes[0].error.as_ref().unwrap().chain[0],
        "boom (attempt 1 of the first 1 that fail)"
    );
}

#[test]
fn fail_fast_cancels_running_siblings() {
    let registry = Registry::with_builtins();
    let plan = plan(
        &registry,
        "name: t\nnodes:\n  - { id: slow, type: util.sleep, config: { duration: 60s } }\n\
         \x20 - { id: bad, type: util.fail }\n  - { id: after, type: util.noop }\n\
         edges:\n  - { from: slow.out, to: after.in }\n",
    );
    let engine = Engine::builder(registry)
        .max_parallel(4)
        .failure_policy(FailurePolicy::FailFast)
        .build();
    let report = runtime().block_on(async {
        tokio::time::timeout(
            Duration::from_secs(30),
            engine.run(plan, RunOptions::default()),
        )
        .await
        .unwrap()
    });
    assert_eq!(
        report.error.as_ref().and_then(|e| e.failed_node()),
        Some("bad")
    );
    let state = report.state.unwrap();
    assert_eq!(state.nodes[0].status, NodeStatus::Cancelled);
    assert_eq!(state.nodes[1].status, NodeStatus::Failed);
    assert_eq!(state.nodes[2].status, NodeStatus::Skipped);
}

#[test]
fn continue_finishes_the_independent_branch() {
    let registry = Registry::with_builtins();
    let plan = plan(
        &registry,
        "name: t\nnodes:\n  - { id: bad, type: util.fail }\n  - { id: down, type: util.noop }\n\
         \x20 - { id: x, type: util.value, config: { value: 7 } }\n  - { id: y, type: util.noop }\n\
         edges:\n  - { from: bad.out, to: down.in }\n  - { from: x.out, to: y.in }\n",
    );
    let events = Recorder::default();
    let engine = Engine::builder(registry)
        .max_parallel(1)
        .failure_policy(FailurePolicy::Continue)
        .subscribe(Arc::new(events.clone()))
        .build();
    let report = runtime().block_on(engine.run(plan, RunOptions::default()));
    assert_eq!(
        report.error.as_ref().and_then(|e| e.failed_node()),
        Some("bad")
    );
    let state = report.state.as_ref().unwrap();
    let status: Vec<_> = state.nodes.iter().map(|n| n.status).collect();
    assert_eq!(
        status,
        [
            NodeStatus::Failed,
            NodeStatus::Skipped,
            NodeStatus::Succeeded,
            NodeStatus::Succeeded
        ]
    );
    assert_eq!(report.output("y", "out").unwrap().summary(), 7);
    assert!(events.kinds().iter().any(|k| matches!(k,
        EventKind::NodeSkipped { node, reason: medfusion_exec::SkipReason::UpstreamFailed } if &**node == "down")));
}

#[test]
fn timeouts_fail_the_attempt() {
    let registry = Registry::with_builtins();
    let plan = plan(
        &registry,
        "name: t\nnodes:\n  - { id: s, type: util.sleep, config: { duration: 1h }, timeout: 20ms }\n",
    );
    let engine = Engine::builder(registry).build();
    let report = runtime().block_on(engine.run(plan, RunOptions::default()));
    let state = report.state.unwrap();
    let error = state.nodes[0].error.as_ref().unwrap();
    assert_eq!(error.kind, "timedout");
    assert_eq!(error.chain, ["timed out after 20ms"]);
}

#[test]
fn a_panicking_node_fails_without_hanging_the_run() {
    let mut registry = Registry::with_builtins();
    registry
        .register_blocking(NodeSpec::new("test.panic", "panics"), |_ctx| {
            panic!("kaboom")
        })
        .unwrap();
    let plan = plan(
        &registry,
        "name: t\nnodes:\n  - { id: p, type: test.panic }\n",
    );
    let report = runtime().block_on(
        Engine::builder(registry)
            .build()
            .run(plan, RunOptions::default()),
    );
    let state = report.state.unwrap();
    assert!(state.nodes[0].error.as_ref().unwrap().chain[0].contains("panicked: kaboom"));
}

#[test]
fn undeclared_or_missing_outputs_are_errors_naming_the_port() {
    let mut registry = Registry::with_builtins();
    registry
        .register(
            NodeSpec::new("test.liar", "declares `out`, produces `other`")
                .output(PortSpec::output("out", PortType::Value)),
            FnExecutor(|_ctx: NodeContext| async {
                Ok(Outputs::new().with("other", JsonValue::new(1.into())))
            }),
        )
        .unwrap();
    registry
        .register(
            NodeSpec::new("test.silent", "declares `out`, produces nothing")
                .output(PortSpec::output("out", PortType::Value)),
            FnExecutor(|_ctx: NodeContext| async { Ok::<_, NodeError>(Outputs::new()) }),
        )
        .unwrap();
    let plan = plan(
        &registry,
        "name: t\nnodes:\n  - { id: l, type: test.liar }\n  - { id: s, type: test.silent }\n  - { id: n, type: util.noop }\n\
         edges:\n  - { from: s.out, to: n.in }\n",
    );
    let engine = Engine::builder(registry)
        .failure_policy(FailurePolicy::Continue)
        .build();
    let state = runtime()
        .block_on(engine.run(plan, RunOptions::default()))
        .state
        .unwrap();
    assert_eq!(
        state.nodes[0].error.as_ref().unwrap().chain[0],
        "node `l` produced output `other`, which node type `test.liar` does not declare"
    );
    assert_eq!(
        state.nodes[1].error.as_ref().unwrap().chain[0],
        "node `s` did not produce output `out`, which `n.in` needs"
    );
}
