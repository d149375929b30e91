//! Timeouts and cancellation of blocking bodies: a stopped attempt has returned before its
//! retry starts, before its progress can be overwritten and before its GPU goes to another
//! node.
//!
//! The bodies here loop until their attempt's token is cancelled. Without per-attempt
//! tokens a timed-out body never sees a cancellation and would spin for ever, so the body
//! that checks the outcome (a retry, or the next node) releases it: every test ends, and
//! fails, rather than hangs. Outcomes are decided by counters and flags, not by sleeps;
//! the only times are generous upper bounds on waits that end at once when the engine
//! works.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Recorder, plan, runtime};
use medfusion_exec::{
    Engine, Event, EventKind, FailurePolicy, JsonValue, MemoryStore, NodeContext, NodeError,
    NodeStatus, Outputs, Registry, RunOptions, SavedValue,
};
use medfusion_graph::{NodeSpec, PortSpec, PortType};

/// A bound on waits that end at once when the engine works.
const BOUND: Duration = Duration::from_secs(30);

/// What the bodies of one test share.
#[derive(Default)]
struct Probe {
    /// Bodies running now (those that count), and the most at once.
    running: AtomicUsize,
    peak: AtomicUsize,
    /// Set once a spinning body has started.
    started: AtomicBool,
    /// Ends spinning bodies that never see their cancellation (and stuck ones).
    release: AtomicBool,
    /// The context of a first attempt, kept past its attempt.
    stash: Mutex<Option<NodeContext>>,
    /// What a retry found to continue from.
    resumed: Mutex<Option<serde_json::Value>>,
    /// Set once a `test.quick` body ran.
    quick_ran: AtomicBool,
}

/// Counts a running body until dropped.
struct Running<'a>(&'a Probe);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Probe {
    fn enter(&self) -> Running<'_> {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        Running(self)
    }

    fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }

    /// Spin until the attempt is told to stop (or the test releases it).
    fn spin(&self, ctx: &NodeContext) {
        self.started.store(true, Ordering::SeqCst);
        while !ctx.is_cancelled() && !self.release.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Spin until the test releases it, whatever the token says.
    fn spin_stuck(&self) {
        self.started.store(true, Ordering::SeqCst);
        while !self.release.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Poll `done` until it holds; an error past [`BOUND`].
fn wait_until(what: &str, done: impl Fn() -> bool) -> Result<(), NodeError> {
    let since = Instant::now();
    while !done() {
        if since.elapsed() > BOUND {
            return Err(NodeError::msg(format!("gave up waiting for {what}")));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

fn spec(node_type: &str, description: &str) -> NodeSpec {
    NodeSpec::new(node_type, description)
        .input(PortSpec::optional("in", PortType::Value).multiple())
        .output(PortSpec::output("out", PortType::Value))
}

fn out() -> Outputs {
    Outputs::new().with("out", JsonValue::new(serde_json::Value::Null))
}

/// The test node types, all blocking:
/// - `test.spin`: attempt 1 spins until told to stop; later attempts end at once.
/// - `test.stuck`: attempt 1 ignores its token and spins until released; later attempts
///   end at once.
/// - `test.quick`: ends at once, releasing every spinning body.
/// - `test.saver`: attempt 1 spins, then saves progress; attempt 2 saves its own, then
///   reports through attempt 1's kept context, then fails.
/// - `test.gate`: waits until a spinning body has started.
fn registry(probe: &Arc<Probe>) -> Registry {
    let mut registry = Registry::with_builtins();
    let p = Arc::clone(probe);
    registry
        .register_blocking(spec("test.spin", "spins until cancelled"), move |ctx| {
            let _running = p.enter();
            if ctx.attempt() == 1 {
                p.spin(ctx);
                return Err(NodeError::msg("stopped spinning"));
            }
            p.release.store(true, Ordering::SeqCst);
            Ok(out())
        })
        .unwrap();
    let p = Arc::clone(probe);
    registry
        .register_blocking(spec("test.stuck", "ignores cancellation"), move |ctx| {
            let _running = p.enter();
            if ctx.attempt() == 1 {
                p.spin_stuck();
                return Err(NodeError::msg("released"));
            }
            p.release.store(true, Ordering::SeqCst);
            Ok(out())
        })
        .unwrap();
    let p = Arc::clone(probe);
    registry
        .register_blocking(spec("test.quick", "ends at once"), move |_ctx| {
            let _running = p.enter();
            p.quick_ran.store(true, Ordering::SeqCst);
            p.release.store(true, Ordering::SeqCst);
            Ok(out())
        })
        .unwrap();
    let p = Arc::clone(probe);
    registry
        .register_blocking(spec("test.saver", "saves progress"), move |ctx| {
            let _running = p.enter();
            let epoch =
                |attempt| SavedValue::json("test", serde_json::json!({ "attempt": attempt }));
            if ctx.attempt() == 1 {
                *p.stash.lock().unwrap() = Some(ctx.clone());
                p.spin(ctx);
                // Saving on the way out after being told to stop is what trainers do.
                ctx.save_progress(epoch(1));
                return Err(NodeError::msg("stopped spinning"));
            }
            *p.resumed.lock().unwrap() = ctx.resume_state().map(|s| s.data.clone());
            ctx.save_progress(epoch(2));
            ctx.progress(Some(0.5), "attempt 2");
            let stale = p.stash.lock().unwrap().take().expect("attempt 1 ran");
            stale.save_progress(SavedValue::json("test", "stale".into()));
            stale.progress(None, "stale");
            // Without the fix attempt 1 still spins; let it save and end first.
            p.release.store(true, Ordering::SeqCst);
            wait_until("attempt 1 to end", || p.running.load(Ordering::SeqCst) == 1)?;
            Err(NodeError::msg("attempt 2 fails after saving"))
        })
        .unwrap();
    let p = Arc::clone(probe);
    registry
        .register_blocking(spec("test.gate", "waits for a spinner"), move |_ctx| {
            wait_until("a spinning body", || p.started.load(Ordering::SeqCst))?;
            Ok(out())
        })
        .unwrap();
    registry
}

/// Run `yaml` to the end (within [`BOUND`]), then release whatever still spins.
fn run(
    probe: &Arc<Probe>,
    engine: impl FnOnce(Registry) -> medfusion_exec::EngineBuilder,
    yaml: &str,
) -> medfusion_exec::RunReport {
    let registry = registry(probe);
    let plan = plan(&registry, yaml);
    let engine = engine(registry).build();
    let rt = runtime();
    let report = rt.block_on(async {
        tokio::time::timeout(BOUND, engine.run(plan, RunOptions::default())).await
    });
    probe.release.store(true, Ordering::SeqCst);
    report.expect("the run ended")
}

fn error_chain(report: &medfusion_exec::RunReport, node: &str) -> Vec<String> {
    let state = report.state.as_ref().unwrap();
    let node = state.node(node).unwrap();
    node.error
        .as_ref()
        .map(|e| e.chain.clone())
        .unwrap_or_default()
}

#[test]
fn a_timed_out_blocking_attempt_has_returned_before_its_retry_starts() {
    let probe = Arc::new(Probe::default());
    let report = run(
        &probe,
        Engine::builder,
        "name: t\nnodes:\n  - { id: s, type: test.spin, timeout: 20ms, retries: 1, retry_backoff: 1ms }\n",
    );
    assert!(report.is_success(), "{:?}", report.error);
    assert_eq!(report.state.as_ref().unwrap().nodes[0].attempts, 2);
    assert_eq!(
        probe.peak(),
        1,
        "attempt 2 ran beside the timed-out attempt 1"
    );
}

#[test]
fn progress_of_a_timed_out_attempt_never_replaces_its_retrys() {
    let probe = Arc::new(Probe::default());
    let events = Recorder::default();
    let store = MemoryStore::new();
    let (e, s) = (events.clone(), store.clone());
    let report = run(
        &probe,
        |registry| {
            Engine::builder(registry)
                .subscribe(Arc::new(e))
                .store(Arc::new(s))
        },
        "name: t\nnodes:\n  - { id: p, type: test.saver, timeout: 20ms, retries: 1, retry_backoff: 1ms }\n",
    );
    let state = report.state.as_ref().unwrap();
    assert_eq!(state.nodes[0].status, NodeStatus::Failed);
    assert_eq!(state.nodes[0].attempts, 2);
    // Attempt 1 saved on its way out, before attempt 2 started: the retry continued from it.
    assert_eq!(
        *probe.resumed.lock().unwrap(),
        Some(serde_json::json!({ "attempt": 1 }))
    );
    let progress = state.nodes[0].progress.as_ref().expect("progress kept");
    assert_eq!(progress.data, serde_json::json!({ "attempt": 2 }));
    let saved = store.latest().unwrap();
    assert_eq!(
        saved.nodes[0].progress.as_ref().unwrap().data,
        serde_json::json!({ "attempt": 2 })
    );
    let reports: Vec<(u32, String)> = events
        .kinds()
        .into_iter()
        .filter_map(|k| match k {
            EventKind::NodeProgress {
                attempt, message, ..
            } => Some((attempt, message)),
            _ => None,
        })
        .collect();
    assert_eq!(reports, [(2, "attempt 2".to_string())]);
}

/// Two GPU nodes and one GPU: `a` times out; `b` becomes ready while `a` runs.
const TWO_ON_ONE_GPU: &str = "name: t\nnodes:\n\
    \x20 - { id: a, type: A, timeout: 20ms, retries: RETRIES, retry_backoff: 1ms, resources: { gpus: 1 } }\n\
    \x20 - { id: gate, type: test.gate }\n\
    \x20 - { id: b, type: test.quick, resources: { gpus: 1 } }\n\
    edges:\n  - { from: gate.out, to: b.in }\n";

#[test]
fn a_timed_out_blocking_node_keeps_its_gpu_until_its_body_returns() {
    let probe = Arc::new(Probe::default());
    let report = run(
        &probe,
        |registry| {
            Engine::builder(registry)
                .gpus(1)
                .max_parallel(4)
                .failure_policy(FailurePolicy::Continue)
        },
        &TWO_ON_ONE_GPU
            .replace("type: A", "type: test.spin")
            .replace("RETRIES", "0"),
    );
    let state = report.state.as_ref().unwrap();
    assert_eq!(state.node("a").unwrap().status, NodeStatus::Failed);
    assert_eq!(error_chain(&report, "a"), ["timed out after 20ms"]);
    assert_eq!(state.node("b").unwrap().status, NodeStatus::Succeeded);
    assert_eq!(
        probe.peak(),
        1,
        "`b` got the GPU while the timed-out body of `a` still ran"
    );
}

#[test]
fn cancelling_a_run_stops_well_behaved_blocking_bodies_promptly() {
    let probe = Arc::new(Probe::default());
    let registry = registry(&probe);
    let plan = plan(
        &registry,
        "name: t\nnodes:\n  - { id: s, type: test.spin, resources: { gpus: 1 } }\n",
    );
    // A grace far past the bound: the run only ends in time if the body stopped itself.
    let engine = Engine::builder(registry)
        .gpus(1)
        .cancel_grace(BOUND * 4)
        .build();
    // Kept until bodies are released: dropping a runtime waits for its blocking threads.
    let rt = runtime();
    let report = rt.block_on(async {
        let handle = engine.start(plan, RunOptions::default()).unwrap();
        while !probe.started.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        handle.cancel();
        tokio::time::timeout(BOUND, handle.wait())
            .await
            .expect("the run stopped soon after cancellation")
    });
    probe.release.store(true, Ordering::SeqCst);
    assert!(matches!(
        report.error,
        Some(medfusion_exec::Error::Cancelled)
    ));
    assert_eq!(report.state.unwrap().nodes[0].status, NodeStatus::Cancelled);
    assert_eq!(
        probe.running.load(Ordering::SeqCst),
        0,
        "the run ended before its body returned"
    );
}

fn stuck_events(events: &Recorder) -> Vec<(String, u32, Vec<u32>)> {
    events
        .kinds()
        .into_iter()
        .filter_map(|k| match k {
            EventKind::NodeStuck {
                node,
                attempt,
                gpus,
                ..
            } => Some((node.to_string(), attempt, gpus)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_stuck_attempt_fails_its_node_without_a_retry_and_keeps_its_gpu() {
    let probe = Arc::new(Probe::default());
    let events = Recorder::default();
    let e = events.clone();
    let report = run(
        &probe,
        |registry| {
            Engine::builder(registry)
                .gpus(1)
                .max_parallel(4)
                .failure_policy(FailurePolicy::Continue)
                .cancel_grace(Duration::from_millis(10))
                .stuck_limit(Duration::from_millis(30))
                .subscribe(Arc::new(e))
        },
        &TWO_ON_ONE_GPU
            .replace("type: A", "type: test.stuck")
            .replace("RETRIES", "2"),
    );
    let state = report.state.as_ref().unwrap();
    let a = state.node("a").unwrap();
    assert_eq!(a.status, NodeStatus::Failed);
    assert_eq!(a.attempts, 1, "a stuck attempt was retried beside itself");
    assert_eq!(a.error.as_ref().unwrap().kind, "stuck");
    let chain = error_chain(&report, "a");
    assert!(
        chain[0].starts_with("attempt 1 was told to stop"),
        "{chain:?}"
    );
    assert!(
        chain[0].contains("GPU 0 stays reserved until it returns"),
        "{chain:?}"
    );
    assert_eq!(chain[1], "timed out after 20ms");
    assert_eq!(stuck_events(&events), [("a".to_string(), 1, vec![0])]);
    // `b` could only have run on the GPU the stuck body still holds.
    assert_eq!(state.node("b").unwrap().status, NodeStatus::Failed);
    let chain = error_chain(&report, "b");
    assert!(
        chain[0].contains("the stuck attempt of `a` (GPU [0]) still runs"),
        "{chain:?}"
    );
    assert!(!probe.quick_ran.load(Ordering::SeqCst));
    assert_eq!(probe.peak(), 1);
}

#[test]
fn a_stuck_attempts_gpu_goes_to_the_next_node_once_it_returns() {
    let probe = Arc::new(Probe::default());
    // `keeper` keeps the run going until `b` ran: it waits for `a` to be given up on,
    // releases the stuck body, and waits for `b` to get the GPU back.
    let (failed_tx, failed_rx) = std::sync::mpsc::channel::<()>();
    let failed_rx = Mutex::new(failed_rx);
    let mut registry = registry(&probe);
    let p = Arc::clone(&probe);
    registry
        .register_blocking(spec("test.keeper", "keeps the run going"), move |_ctx| {
            failed_rx
                .lock()
                .unwrap()
                .recv_timeout(BOUND)
                .map_err(|e| NodeError::msg(format!("`a` did not fail: {e}")))?;
            p.release.store(true, Ordering::SeqCst);
            wait_until("`b` to run", || p.quick_ran.load(Ordering::SeqCst))?;
            Ok(out())
        })
        .unwrap();
    let failed_tx = Mutex::new(failed_tx);
    let on_failed = move |event: &Event| {
        if matches!(&event.kind, EventKind::NodeFailed { node, .. } if &**node == "a") {
            let _ = failed_tx.lock().unwrap().send(());
        }
    };
    let yaml = TWO_ON_ONE_GPU
        .replace("type: A", "type: test.stuck")
        .replace("RETRIES", "0")
        .replace("edges:", "  - { id: keeper, type: test.keeper }\nedges:");
    let plan = plan(&registry, &yaml);
    let engine = Engine::builder(registry)
        .gpus(1)
        .max_parallel(4)
        .failure_policy(FailurePolicy::Continue)
        .cancel_grace(Duration::from_millis(10))
        .stuck_limit(Duration::from_millis(30))
        .subscribe(Arc::new(on_failed))
        .build();
    // Kept until bodies are released: dropping a runtime waits for its blocking threads.
    let rt = runtime();
    let report = rt.block_on(async {
        tokio::time::timeout(BOUND, engine.run(plan, RunOptions::default())).await
    });
    probe.release.store(true, Ordering::SeqCst);
    let report = report.expect("the run ended");
    let state = report.state.as_ref().unwrap();
    assert_eq!(
        state.node("a").unwrap().error.as_ref().unwrap().kind,
        "stuck"
    );
    assert_eq!(state.node("keeper").unwrap().status, NodeStatus::Succeeded);
    assert_eq!(state.node("b").unwrap().status, NodeStatus::Succeeded);
    assert_eq!(probe.peak(), 1, "`b` ran beside the stuck body of `a`");
}

#[test]
fn a_cancelled_run_with_a_stuck_body_ends_after_the_grace_and_says_so() {
    let probe = Arc::new(Probe::default());
    let events = Recorder::default();
    let registry = registry(&probe);
    let plan = plan(
        &registry,
        "name: t\nnodes:\n  - { id: s, type: test.stuck, resources: { gpus: 1 } }\n",
    );
    // The default stuck limit (minutes) only applies to timeouts: a cancelled run stops
    // waiting after the grace.
    let engine = Engine::builder(registry)
        .gpus(1)
        .cancel_grace(Duration::from_millis(20))
        .subscribe(Arc::new(events.clone()))
        .build();
    // Kept until bodies are released: dropping a runtime waits for its blocking threads.
    let rt = runtime();
    let report = rt.block_on(async {
        let handle = engine.start(plan, RunOptions::default()).unwrap();
        while !probe.started.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        handle.cancel();
        tokio::time::timeout(BOUND, handle.wait())
            .await
            .expect("the run ended after the grace")
    });
    probe.release.store(true, Ordering::SeqCst);
    assert!(matches!(
        report.error,
        Some(medfusion_exec::Error::Cancelled)
    ));
    assert_eq!(report.state.unwrap().nodes[0].status, NodeStatus::Cancelled);
    assert_eq!(stuck_events(&events), [("s".to_string(), 1, vec![0])]);
}
