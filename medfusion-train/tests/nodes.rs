//! The node types on the engine: a workflow of synthetic data, training and evaluation
//! runs end to end, and an out-of-memory failure is retried with half the micro-batch and
//! twice the accumulation (the same effective batch).

use std::sync::{Arc, Mutex};

use medfusion_exec::{Engine, Event, EventKind, EventSink, NodeStatus, Registry, RunOptions};
use medfusion_graph::{Workflow, validate};
use medfusion_train::nodes::{FaultInjection, NodeSettings, register};

#[derive(Default, Clone)]
struct Recorder(Arc<Mutex<Vec<Event>>>);

impl EventSink for Recorder {
    fn event(&self, event: &Event) {
        self.0.lock().unwrap().push(event.clone());
    }
}

const WORKFLOW: &str = "\
name: tiny
seed: 3
nodes:
  - { id: data, type: dataset.synthetic, config: { samples: 96, image_size: 16 } }
  - id: train
    type: train.classifier
    retries: 1
    retry_backoff: 1ms
    config: { model: fusion_cnn, epochs: 2, batch_size: 16, num_workers: 0, log_interval: 1 }
  - { id: eval, type: evaluate.classifier }
edges:
  - { from: data.train, to: train.train_data }
  - { from: data.val, to: train.val_data }
  - { from: train.model, to: eval.model }
  - { from: data.test, to: eval.data }
";

fn run(settings: NodeSettings) -> (medfusion_exec::RunReport, Vec<EventKind>) {
    run_workflow(WORKFLOW, settings)
}

fn run_workflow(
    workflow: &str,
    settings: NodeSettings,
) -> (medfusion_exec::RunReport, Vec<EventKind>) {
    let mut registry = Registry::with_builtins();
    register(&mut registry, settings).unwrap();
    let plan = validate(
        Workflow::parse_sniffed(workflow).unwrap(),
        registry.catalog(),
    )
    .unwrap();
    let events = Recorder::default();
    let engine = Engine::builder(registry)
        .subscribe(Arc::new(events.clone()))
        .build();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let report = runtime.block_on(engine.run(plan, RunOptions::default()));
    let kinds = events
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|e| e.kind.clone())
        .collect();
    (report, kinds)
}

/// The `batch b/B` counts of the training node's progress messages of `attempt`.
fn batches_per_epoch(events: &[EventKind]) -> Vec<String> {
    events
        .iter()
        .filter_map(|k| match k {
            EventKind::NodeProgress { node, message, .. } if &**node == "train" => message
                .split_whitespace()
                .skip_while(|w| *w != "batch")
                .nth(1)
                .map(String::from),
            _ => None,
        })
        .collect()
}

#[test]
fn data_train_evaluate_runs_on_the_engine() {
    let (report, events) = run(NodeSettings::default());
    assert!(report.is_success(), "{:?}", report.error);
    let metrics = report.output("eval", "metrics").unwrap().summary();
    let auc = metrics["models"]["train"]["roc_auc"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&auc));
    let model = report.output("train", "model").unwrap().summary();
    assert_eq!(model["history"].as_array().unwrap().len(), 2);
    // Epoch checkpoints were handed to the engine as saved progress.
    assert!(events.iter().any(|k| matches!(k, EventKind::NodeProgress { message, .. } if message.starts_with("epoch 2 done"))));
}

#[test]
fn out_of_memory_is_retried_with_half_the_micro_batch() {
    let fault = FaultInjection {
        node: "train".into(),
        attempts: vec![1],
        epoch: 0,
        batch: 1,
        message: "CUDA error: out of memory".into(),
    };
    let (report, events) = run(NodeSettings {
        fault: Some(fault),
        ..NodeSettings::default()
    });
    assert!(report.is_success(), "{:?}", report.error);
    let state = report.state.unwrap();
    let train = state.node("train").unwrap();
    assert_eq!(train.status, NodeStatus::Succeeded);
    assert_eq!(train.attempts, 2);
    let retry = events.iter().find_map(|k| match k {
        EventKind::NodeRetrying { node, error, .. } if &**node == "train" => Some(error.join(": ")),
        _ => None,
    });
    assert!(
        retry
            .as_deref()
            .is_some_and(|e| e.contains("out of memory")),
        "{retry:?}"
    );
    // 66 training samples: 5 batches of 16 first, then 9 batches of 8 after the retry.
    let counts = batches_per_epoch(&events);
    assert!(
        counts.first().is_some_and(|c| c.ends_with("/5")),
        "{counts:?}"
    );
    assert!(
        counts.last().is_some_and(|c| c.ends_with("/9")),
        "{counts:?}"
    );
}

#[test]
fn an_empty_validation_split_is_named_instead_of_scored_as_zero_classes() {
    // `val_fraction: 0` leaves the validation split empty (allowed: some workflows only
    // train); feeding it to training used to fail with "need at least 2 classes, got 0".
    let workflow = WORKFLOW.replace(
        "config: { samples: 96, image_size: 16 }",
        "config: { samples: 96, image_size: 16, val_fraction: 0 }",
    );
    let (report, events) = run_workflow(&workflow, NodeSettings::default());
    assert!(!report.is_success());
    let failure = events
        .iter()
        .find_map(|k| match k {
            EventKind::NodeFailed { node, error, .. } if &**node == "train" => {
                Some(error.join(": "))
            }
            _ => None,
        })
        .expect("the training node failed");
    assert!(
        failure.contains("input `val_data`")
            && failure.contains("the validation split of `synthetic` is empty")
            && failure.contains("0 val"),
        "{failure}"
    );
    assert!(!failure.contains("classes"), "{failure}");
}
