//! Attempts run elsewhere through an `AttemptRunner`: a runner that ships each attempt
//! through the attempt files to "another side" (a thread with its own runtime, running
//! `run_detached` as `medfusion node-exec` would) and reads the result back.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{Recorder, plan, runtime_mt};
use medfusion_exec::{
    AttemptFiles, AttemptRequest, AttemptResult, AttemptRunner, BoxFuture, CancellationToken,
    Engine, EventKind, MemoryStore, NodeContext, NodeError, NodeStatus, Outputs, Registry,
    RunOptions, run_detached,
};
use medfusion_graph::{Node, NodeSpec};

/// Runs every node but `util.value` ones on "the other side".
struct ThreadRunner {
    root: tempfile::TempDir,
    shipped: AtomicUsize,
}

impl AttemptRunner for ThreadRunner {
    fn takes(&self, node: &Node, _spec: &NodeSpec) -> bool {
        node.executor.as_deref() != Some("local")
    }

    fn run(&self, ctx: NodeContext) -> BoxFuture<'static, Result<Outputs, NodeError>> {
        self.shipped.fetch_add(1, Ordering::SeqCst);
        let files = AttemptFiles::new(
            self.root
                .path()
                .join(ctx.id())
                .join(ctx.attempt().to_string()),
        );
        Box::pin(async move {
            let request = AttemptRequest::from_context(&ctx, serde_json::json!({"side": "b"}))
                .map_err(NodeError::from_error)?;
            files
                .write_request(&request)
                .map_err(NodeError::from_error)?;
            ctx.record_handle(format!("thread-{}", ctx.attempt()));
            let dir = files.clone();
            // The other side: its own process in real life.
            let other = std::thread::spawn(move || {
                let rt = tokio::runtime::Runtime::new().unwrap();
                rt.block_on(async {
                    let registry = Registry::with_builtins();
                    let request = dir.read_request().unwrap();
                    assert_eq!(request.settings["side"], "b");
                    let (plan, attempt) = request.into_detached(&registry).unwrap();
                    let mut seq = 0;
                    let result = run_detached(
                        &registry,
                        plan,
                        attempt,
                        Vec::new(),
                        CancellationToken::new(),
                        |saved| {
                            seq += 1;
                            dir.write_progress(seq, &saved).unwrap();
                        },
                    )
                    .await;
                    let result = AttemptResult::from_outcome(result.as_ref(), None).unwrap();
                    dir.write_result(&result).unwrap();
                });
            });
            tokio::task::spawn_blocking(move || other.join())
                .await
                .unwrap()
                .unwrap();
            let result = files
                .read_result()
                .map_err(NodeError::from_error)?
                .ok_or_else(|| NodeError::msg("no result"))?;
            result.into_outputs(&ctx)
        })
    }
}

const WORKFLOW: &str = "
name: remote
nodes:
  - { id: a, type: util.value, config: { value: { answer: 42 } }, executor: local }
  - { id: b, type: util.noop }
  - { id: f, type: util.fail, config: { failures: 1, message: boom }, retries: 1, retry_backoff: 1ms }
edges:
  - { from: a.out, to: b.in }
  - { from: b.out, to: f.in }
";

#[test]
fn attempts_run_elsewhere_and_their_outputs_come_back() {
    let registry = Registry::with_builtins();
    let plan = plan(&registry, WORKFLOW);
    let runner = Arc::new(ThreadRunner {
        root: tempfile::tempdir().unwrap(),
        shipped: AtomicUsize::new(0),
    });
    let events = Recorder::default();
    let store = MemoryStore::new();
    let engine = Engine::builder(registry)
        .runner(Arc::clone(&runner) as Arc<dyn AttemptRunner>)
        .subscribe(Arc::new(events.clone()))
        .store(Arc::new(store.clone()))
        .build();
    let state = runtime_mt(2)
        .block_on(engine.run(plan, RunOptions::default()))
        .into_result()
        .unwrap();
    assert!(
        state
            .nodes
            .iter()
            .all(|n| n.status == NodeStatus::Succeeded)
    );
    // `a` stayed here; `b` went once, `f` twice (its first attempt failed over there).
    assert_eq!(runner.shipped.load(Ordering::SeqCst), 3);
    assert_eq!(state.nodes[2].attempts, 2);
    // The value crossed both ways: `b` passed on what `a` made.
    assert_eq!(
        state.nodes[1].summary["out"],
        serde_json::json!({"answer": 42})
    );
    // The failure over there is a failure here, with its message, and was retried.
    let retried = events.count(|k| {
        matches!(k, EventKind::NodeRetrying { error, .. } if error.iter().any(|l| l.contains("boom")))
    });
    assert_eq!(retried, 1);
    // The handle was saved with the run while the attempt ran, and cleared at its end.
    assert!(
        store
            .saves()
            .iter()
            .any(|(_, s)| s.nodes[1].handle.as_deref() == Some("thread-1"))
    );
    assert!(state.nodes.iter().all(|n| n.handle.is_none()));
}

#[test]
fn attempt_files_round_trip_values_with_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let files = AttemptFiles::new(dir.path().join("n/1"));
    let blob: medfusion_exec::Blob = Arc::from(vec![1u8, 2, 3]);
    let saved = medfusion_exec::SavedValue::json("x", serde_json::json!({"k": 1}))
        .with_blob("model.safetensors", blob.clone());
    files.write_progress(1, &saved).unwrap();
    files.write_progress(2, &saved).unwrap();
    let read = files.read_progress_after(1).unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].0, 2);
    assert_eq!(read[0].1.blobs["model.safetensors"], blob);
    assert!(files.read_result().unwrap().is_none());
    files
        .write_result(&AttemptResult {
            outputs: vec![("out".into(), saved)],
            ..AttemptResult::default()
        })
        .unwrap();
    let result = files.read_result().unwrap().unwrap();
    assert_eq!(result.outputs[0].1.data["k"], 1);
    assert_eq!(result.outputs[0].1.blobs["model.safetensors"], blob);
}
