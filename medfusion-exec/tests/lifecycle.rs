//! Cancellation, saving, manual checkpoints, resume, and responsiveness with blocking work.
#![allow(clippy::format_push_string, clippy::format_collect)]

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Recorder, plan, runtime, runtime_mt};
use medfusion_exec::{
    Decision, Engine, EventKind, FnExecutor, JsonValue, MemoryStore, NodeContext, NodeError,
    NodeStatus, Outputs, Registry, RerunReason, ResumeFrom, RunOptions, SaveReason, SavedValue,
};
use medfusion_graph::{NodeSpec, PortSpec, PortType, Workflow};
use tokio::sync::mpsc;

#[test]
fn cancelling_stops_a_60s_sleep_at_once_and_saves_state() {
    let registry = Registry::with_builtins();
    let plan = plan(
        &registry,
        "name: t\nnodes:\n  - { id: s, type: util.sleep, config: { duration: 60s } }\n",
    );
    let store = MemoryStore::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let engine = Engine::builder(registry)
        .store(Arc::new(store.clone()))
        .subscribe(Arc::new(tx))
        .build();
    let report = runtime().block_on(async {
        let handle = engine.start(plan, RunOptions::default()).unwrap();
        // Cancel once the sleep is running.
        while let Some(event) = rx.recv().await {
            if matches!(event.kind, EventKind::NodeProgress { .. }) {
                break;
            }
        }
        let asked = Instant::now();
        handle.cancel();
        // The sleep is 60 s: stopping well before shows it was interrupted (the bound is loose
        // so that a loaded machine cannot fail it; it stops in milliseconds).
        let report = tokio::time::timeout(Duration::from_secs(10), handle.wait())
            .await
            .expect("the run stopped soon after cancellation");
        assert!(asked.elapsed() < Duration::from_secs(10));
        report
    });
    assert!(matches!(
        report.error,
        Some(medfusion_exec::Error::Cancelled)
    ));
    let (reason, saved) = store.saves().pop().unwrap();
    assert_eq!(reason, SaveReason::Cancelled);
    assert_eq!(saved.status, medfusion_exec::RunStatus::Cancelled);
    assert_eq!(saved.nodes[0].status, NodeStatus::Cancelled);
}

/// `test.count`: counts its executions per node id; fails while `FAIL[id]` is set.
#[derive(Default, Clone)]
struct Counting {
    runs: Arc<Mutex<HashMap<String, usize>>>,
    failing: Arc<Mutex<Vec<String>>>,
}

impl Counting {
    fn registry(&self) -> Registry {
        let mut registry = Registry::with_builtins();
        let me = self.clone();
        registry
            .register(
                NodeSpec::new("test.count", "counts runs")
                    .input(PortSpec::optional("in", PortType::Value).multiple())
                    .output(PortSpec::output("out", PortType::Value)),
                FnExecutor(move |ctx: NodeContext| {
                    let me = me.clone();
                    async move {
                        let id = ctx.id().to_string();
                        *me.runs.lock().unwrap().entry(id.clone()).or_default() += 1;
                        if me.failing.lock().unwrap().contains(&id) {
                            return Err(NodeError::msg(format!("{id} is broken")));
                        }
                        // Output: own id plus what came in, to check restored inputs.
                        let mut got: Vec<serde_json::Value> = ctx
                            .inputs()
                            .all("in")
                            .iter()
                            .map(medfusion_exec::Value::summary)
                            .collect();
                        got.push(id.clone().into());
                        Ok(Outputs::new().with("out", JsonValue::new(got.into())))
                    }
                }),
            )
            .unwrap();
        registry
    }

    fn runs(&self, id: &str) -> usize {
        self.runs.lock().unwrap().get(id).copied().unwrap_or(0)
    }
}

const CHAIN: &str = "name: chain\nnodes:\n  - { id: a, type: test.count }\n  - { id: b, type: test.count }\n\
                     \x20 - { id: c, type: test.count }\n  - { id: side, type: test.count }\n\
                     edges:\n  - { from: a.out, to: b.in }\n  - { from: b.out, to: c.in }\n";

#[test]
fn resume_skips_finished_nodes_and_restores_their_outputs() {
    let counting = Counting::default();
    counting.failing.lock().unwrap().push("b".into());
    let registry = counting.registry();
    let store = MemoryStore::new();
    let engine = Engine::builder(registry.clone())
        .max_parallel(1)
        .store(Arc::new(store.clone()))
        .build();
    let rt = runtime();

    // First run: b fails in the middle.
    let report = rt.block_on(engine.run(plan(&registry, CHAIN), RunOptions::default()));
    assert_eq!(
        report.error.as_ref().and_then(|e| e.failed_node()),
        Some("b")
    );
    let saved = store.latest().unwrap();
    let status: Vec<_> = saved.nodes.iter().map(|n| n.status).collect();
    assert_eq!(status[0], NodeStatus::Succeeded);
    assert_eq!(status[1], NodeStatus::Failed);
    assert_eq!(status[2], NodeStatus::Skipped);

    // Fix the cause and resume.
    counting.failing.lock().unwrap().clear();
    let from = ResumeFrom {
        state: saved,
        workflow: Workflow::parse_sniffed(CHAIN).unwrap(),
    };
    let events = Recorder::default();
    let engine = Engine::builder(registry.clone())
        .max_parallel(1)
        .store(Arc::new(store.clone()))
        .subscribe(Arc::new(events.clone()))
        .build();
    let report = rt.block_on(engine.run(
        plan(&registry, CHAIN),
        RunOptions {
            resume: Some(from),
            ..RunOptions::default()
        },
    ));
    assert!(report.is_success(), "{:?}", report.error);
    let state = report.state.as_ref().unwrap();
    assert_eq!(state.nodes[0].status, NodeStatus::Restored);
    assert_eq!(
        report.output("c", "out").unwrap().summary(),
        serde_json::json!([[["a"], "b"], "c"])
    );

    // Every node succeeded exactly once overall (b failed once before).
    assert_eq!(counting.runs("a"), 1);
    assert_eq!(counting.runs("b"), 2);
    assert_eq!(counting.runs("c"), 1);
    assert!(events.kinds().iter().any(|k| matches!(k,
        EventKind::NodeSkipped { node, reason: medfusion_exec::SkipReason::Restored } if &**node == "a")));
    assert!(matches!(
        events.kinds()[0],
        EventKind::RunStarted { resumed: true, .. }
    ));
}

#[test]
fn resume_reruns_changed_nodes_and_their_dependents_and_explains_why() {
    let counting = Counting::default();
    let registry = counting.registry();
    let store = MemoryStore::new();
    let engine = Engine::builder(registry.clone())
        .store(Arc::new(store.clone()))
        .build();
    let rt = runtime();
    assert!(
        rt.block_on(engine.run(plan(&registry, CHAIN), RunOptions::default()))
            .is_success()
    );

    let changed = CHAIN
        .replace(
            "{ id: b, type: test.count }",
            "{ id: b, type: test.count, config: {} }",
        )
        .replace(
            "  - { id: side, type: test.count }\n",
            "  - { id: side, type: test.count }\n  - { id: new, type: test.count }\n",
        )
        .replace(
            "  - { from: b.out, to: c.in }\n",
            "  - { from: b.out, to: c.in }\n  - { from: a.out, to: side.in }\n",
        );
    let from = ResumeFrom {
        state: store.latest().unwrap(),
        workflow: Workflow::parse_sniffed(CHAIN).unwrap(),
    };
    let new_plan = plan(&registry, &changed);
    let decisions = engine.explain_resume(&new_plan, &from);
    assert_eq!(decisions[0], Decision::Restore);
    assert_eq!(
        decisions[1],
        Decision::Restore,
        "an empty config is no change"
    );
    assert_eq!(decisions[2], Decision::Restore);
    assert_eq!(
        decisions[3],
        Decision::Run(RerunReason::Changed("its inputs".into()))
    );
    assert_eq!(decisions[4], Decision::Run(RerunReason::New));
    assert_eq!(decisions[3].to_string(), "run: its inputs changed");

    let report = rt.block_on(engine.run(
        new_plan,
        RunOptions {
            resume: Some(from),
            ..RunOptions::default()
        },
    ));
    assert!(report.is_success());
    assert_eq!(counting.runs("a"), 1);
    assert_eq!(counting.runs("c"), 1);
    assert_eq!(counting.runs("side"), 2);
    assert_eq!(counting.runs("new"), 1);
}

#[test]
fn config_changes_rerun_downstream_too() {
    let counting = Counting::default();
    let registry = counting.registry();
    let store = MemoryStore::new();
    let engine = Engine::builder(registry.clone())
        .store(Arc::new(store.clone()))
        .build();
    let rt = runtime();
    let yaml = "name: v\nnodes:\n  - { id: v, type: util.value, config: { value: 1 } }\n  - { id: n, type: test.count }\n\
                edges:\n  - { from: v.out, to: n.in }\n";
    assert!(
        rt.block_on(engine.run(plan(&registry, yaml), RunOptions::default()))
            .is_success()
    );
    let from = ResumeFrom {
        state: store.latest().unwrap(),
        workflow: Workflow::parse_sniffed(yaml).unwrap(),
    };
    let changed = yaml.replace("value: 1", "value: 2");
    let decisions = engine.explain_resume(&plan(&registry, &changed), &from);
    assert_eq!(
        decisions[0],
        Decision::Run(RerunReason::Changed("its config (`value`)".into()))
    );
    assert_eq!(
        decisions[1],
        Decision::Run(RerunReason::Upstream("v".into()))
    );
}

#[test]
fn blocking_work_never_holds_the_async_worker() {
    // One async worker; a blocking node waits for the test to see progress from another
    // node, which can only happen if the blocking node is off the worker.
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let release_rx = Arc::new(Mutex::new(release_rx));
    let mut registry = Registry::with_builtins();
    registry
        .register_blocking(
            NodeSpec::new("test.block", "blocks until released"),
            move |_ctx| {
                release_rx
                    .lock()
                    .unwrap()
                    .recv()
                    .map_err(|e| NodeError::msg(e.to_string()))?;
                Ok(Outputs::new())
            },
        )
        .unwrap();
    registry
        .register(
            NodeSpec::new("test.ticker", "reports progress five times"),
            FnExecutor(|ctx: NodeContext| async move {
                for i in 0..5 {
                    ctx.progress(Some(i as f32 / 5.0), format!("tick {i}"));
                    tokio::task::yield_now().await;
                }
                Ok(Outputs::new())
            }),
        )
        .unwrap();
    let plan = plan(
        &registry,
        "name: t\nnodes:\n  - { id: blocker, type: test.block }\n  - { id: ticker, type: test.ticker }\n",
    );
    let (tx, mut rx) = mpsc::unbounded_channel();
    let engine = Engine::builder(registry)
        .max_parallel(2)
        .subscribe(Arc::new(tx))
        .build();
    let report = runtime().block_on(async {
        let handle = engine.start(plan, RunOptions::default()).unwrap();
        let mut ticks = 0;
        let mut ticker_done = false;
        let watch = async {
            while let Some(e) = rx.recv().await {
                match e.kind {
                    EventKind::NodeProgress { ref node, .. } if &**node == "ticker" => ticks += 1,
                    EventKind::NodeFinished { ref node, .. } if &**node == "ticker" => {
                        ticker_done = true;
                        break;
                    }
                    _ => {}
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(30), watch)
            .await
            .expect("progress flowed while blocked");
        release_tx.send(()).unwrap();
        (handle.wait().await, ticks, ticker_done)
    });
    let (report, ticks, ticker_done) = report;
    assert_eq!(ticks, 5);
    assert!(ticker_done);
    assert!(report.is_success());
}

#[test]
fn a_requested_checkpoint_saves_and_nodes_see_the_request() {
    let seen = Arc::new(AtomicUsize::new(0));
    let store = MemoryStore::new();
    let node_store = store.clone();
    let mut registry = Registry::with_builtins();
    let s = Arc::clone(&seen);
    let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
    let started_tx = Arc::new(Mutex::new(started_tx));
    registry
        .register(
            NodeSpec::new("test.epochs", "saves progress when asked"),
            FnExecutor(move |ctx: NodeContext| {
                let s = Arc::clone(&s);
                let started_tx = Arc::clone(&started_tx);
                let store = node_store.clone();
                async move {
                    let _ = started_tx.lock().unwrap().send(());
                    loop {
                        if ctx.checkpoint_requested() {
                            ctx.save_progress(SavedValue::json(
                                "test",
                                serde_json::json!({"epoch": 3}),
                            ));
                            s.fetch_add(1, Ordering::SeqCst);
                            // Still running, so the engine handles the request itself (once
                            // the node has ended, the final save would cover it).
                            while !store
                                .saves()
                                .iter()
                                .any(|(r, _)| *r == SaveReason::Requested)
                            {
                                tokio::task::yield_now().await;
                            }
                            return Ok(Outputs::new());
                        }
                        tokio::task::yield_now().await;
                    }
                }
            }),
        )
        .unwrap();
    let plan = plan(
        &registry,
        "name: t\nnodes:\n  - { id: e, type: test.epochs }\n",
    );
    let engine = Engine::builder(registry)
        .store(Arc::new(store.clone()))
        .build();
    let report = runtime_mt(2).block_on(async {
        let handle = engine.start(plan, RunOptions::default()).unwrap();
        tokio::task::spawn_blocking(move || started_rx.recv().unwrap())
            .await
            .unwrap();
        handle.request_checkpoint();
        tokio::time::timeout(Duration::from_secs(30), handle.wait())
            .await
            .expect("the request was saved and the node ended")
    });
    assert!(report.is_success());
    assert_eq!(seen.load(Ordering::SeqCst), 1);
    let reasons: Vec<SaveReason> = store.saves().into_iter().map(|(r, _)| r).collect();
    assert!(reasons.contains(&SaveReason::Finished), "{reasons:?}");
    assert!(reasons.contains(&SaveReason::Requested), "{reasons:?}");
}

#[test]
fn a_retry_continues_from_saved_progress() {
    let mut registry = Registry::with_builtins();
    registry
        .register(
            NodeSpec::new(
                "test.resumable",
                "saves epoch 2, fails, then continues from it",
            )
            .output(PortSpec::output("out", PortType::Value)),
            FnExecutor(|ctx: NodeContext| async move {
                match ctx.resume_state() {
                    None => {
                        ctx.save_progress(SavedValue::json(
                            "test",
                            serde_json::json!({"epoch": 2}),
                        ));
                        Err(NodeError::msg("crashed after epoch 2"))
                    }
                    Some(saved) => {
                        let epoch = saved.data["epoch"].as_u64().unwrap();
                        Ok(Outputs::new().with("out", JsonValue::new(epoch.into())))
                    }
                }
            }),
        )
        .unwrap();
    let plan = plan(
        &registry,
        "name: t\nnodes:\n  - { id: r, type: test.resumable, retries: 1, retry_backoff: 1ms }\n",
    );
    let report = runtime().block_on(
        Engine::builder(registry)
            .build()
            .run(plan, RunOptions::default()),
    );
    assert!(report.is_success(), "{:?}", report.error);
    assert_eq!(report.output("r", "out").unwrap().summary(), 2);
}
