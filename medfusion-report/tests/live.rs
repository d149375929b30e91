//! The live record folds the engine's events into the run record; the page stays small
//! for runs of thousands of nodes.

use std::fmt::Write as _;
use std::sync::Arc;

use medfusion_exec::{
    Event, EventKind, EventSink as _, NodeStatus, Registry, RunStatus, SaveReason, SkipReason,
};
use medfusion_graph::{Format, Plan, Workflow};
use medfusion_report::{LiveRecord, render};
use serde_json::{Map, Value, json};

fn plan(yaml: &str) -> Plan {
    let workflow = Workflow::parse(yaml, Format::Yaml).unwrap();
    medfusion_graph::validate(workflow, Registry::with_builtins().catalog()).unwrap()
}

fn three() -> Plan {
    plan(
        "name: demo\nnodes:\n  - { id: a, type: util.noop }\n  - { id: b, type: util.noop }\n  \
         - { id: c, type: util.noop }\nedges:\n  - { from: a.out, to: b.in }\n  - { from: b.out, to: c.in }\n",
    )
}

fn emit(live: &LiveRecord, kind: EventKind) {
    live.event(&Event::now(kind));
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

#[test]
fn the_record_follows_the_events() {
    let live = LiveRecord::new(&three(), "demo-1");
    let v0 = live.version();
    emit(
        &live,
        EventKind::RunStarted {
            run_id: "demo-1".into(),
            workflow: "demo".into(),
            nodes: 3,
            resumed: false,
        },
    );
    emit(
        &live,
        EventKind::NodeStarted {
            node: "a".into(),
            attempt: 1,
        },
    );
    emit(
        &live,
        EventKind::NodeProgress {
            node: "a".into(),
            attempt: 1,
            fraction: Some(0.5),
            message: "epoch 1/2 batch 5/10".into(),
            metrics: object(json!({ "epoch": 1, "loss": 0.5, "samples_per_sec": 800.0 })),
        },
    );
    let record = live.snapshot();
    assert!(live.version() > v0);
    assert_eq!(record.status, RunStatus::Running);
    let a = &record.nodes[0];
    assert_eq!((a.status, a.attempts), (NodeStatus::Running, 1));
    let progress = a.progress.as_ref().unwrap();
    assert_eq!(progress.fraction, Some(0.5));
    assert!(progress.eta_secs.is_some_and(|s| s >= 0.0));
    assert!(render(&record).contains("800 samples/s"));

    // Epoch records become the training curve; an epoch trained again replaces its point.
    for (epoch, loss) in [(0, 0.7), (1, 0.6), (1, 0.55)] {
        emit(
            &live,
            EventKind::NodeProgress {
                node: "a".into(),
                attempt: 1,
                fraction: None,
                message: format!("epoch {} done", epoch + 1),
                metrics: object(json!({ "epoch": epoch, "train_loss": loss, "val_metrics": {} })),
            },
        );
    }
    let history = live.snapshot().history["a"].clone();
    assert_eq!(history.as_array().unwrap().len(), 2);
    assert_eq!(history[1]["train_loss"], 0.55);

    emit(
        &live,
        EventKind::NodeFinished {
            node: "a".into(),
            duration_secs: 1.5,
            outputs: object(json!({ "out": { "type": "null" } })),
        },
    );
    // A node that passes the model on carries the same curve: it stays with `a`.
    emit(
        &live,
        EventKind::NodeFinished {
            node: "c".into(),
            duration_secs: 0.1,
            outputs: object(json!({ "out": { "history": history } })),
        },
    );
    assert_eq!(
        live.snapshot().history.keys().collect::<Vec<_>>(),
        ["a"],
        "one curve, the trainer's"
    );
    emit(
        &live,
        EventKind::NodeFailed {
            node: "b".into(),
            attempts: 2,
            error: vec!["boom".into(), "cause".into()],
        },
    );
    emit(
        &live,
        EventKind::NodeSkipped {
            node: "c".into(),
            reason: SkipReason::UpstreamFailed,
        },
    );
    emit(
        &live,
        EventKind::ResourceAlert {
            level: "critical".into(),
            message: "memory high: 97%".into(),
        },
    );
    for i in 0..60 {
        emit(
            &live,
            EventKind::CheckpointSaved {
                id: format!("demo_{i}"),
                reason: SaveReason::NodeFinished,
            },
        );
    }
    // An event for a node the run does not have is ignored.
    emit(
        &live,
        EventKind::NodeStarted {
            node: "ghost".into(),
            attempt: 1,
        },
    );
    emit(
        &live,
        EventKind::RunFinished {
            status: RunStatus::Failed,
            duration_secs: 2.0,
        },
    );
    let record = live.snapshot();
    let status: Vec<NodeStatus> = record.nodes.iter().map(|n| n.status).collect();
    assert_eq!(
        status,
        [
            NodeStatus::Succeeded,
            NodeStatus::Failed,
            NodeStatus::Skipped
        ]
    );
    assert!(record.nodes[0].progress.is_none());
    assert_eq!(record.nodes[0].duration_secs, Some(1.5));
    assert_eq!(
        record.nodes[1].error.as_deref(),
        Some(&["boom".to_string(), "cause".to_string()][..])
    );
    assert_eq!(record.status, RunStatus::Failed);
    assert_eq!(record.alerts.len(), 1);
    // The newest 50 checkpoints are listed; all 60 are counted.
    assert_eq!(record.checkpoints.len(), 50);
    assert_eq!(record.checkpoints.last().unwrap().id, "demo_59");
    assert_eq!(record.checkpoints[0].id, "demo_10");
    assert_eq!(live.checkpoints_saved(), 60);
    assert!(record.log.len() <= 200);
    assert!(
        record
            .log
            .iter()
            .any(|l| l.level == "error" && l.message.contains("b failed: boom: cause"))
    );
    let page = render(&record);
    for text in ["demo_59", "memory high: 97%", "b failed: boom"] {
        assert!(page.contains(text), "the page shows {text}");
    }

    // The final record keeps what only the live one saw.
    let mut last = record.clone();
    last.checkpoints.clear();
    last.log.clear();
    let final_record = live.finish(last);
    assert!(live.is_finished());
    assert_eq!(final_record.checkpoints.len(), 50);
    assert!(!final_record.log.is_empty());
}

#[test]
fn a_page_of_thousands_of_nodes_stays_small() {
    let mut yaml = String::from("name: big\nnodes:\n");
    for i in 0..5000 {
        let _ = writeln!(yaml, "  - {{ id: n{i}, type: util.noop }}");
    }
    let live = LiveRecord::new(&plan(&yaml), "big-1");
    for i in 0..4000 {
        emit(
            &live,
            EventKind::NodeFinished {
                node: format!("n{i}").into(),
                duration_secs: 0.001,
                outputs: Map::new(),
            },
        );
    }
    emit(
        &live,
        EventKind::NodeStarted {
            node: "n4999".into(),
            attempt: 1,
        },
    );
    emit(
        &live,
        EventKind::NodeFailed {
            node: "n4998".into(),
            attempts: 1,
            error: vec!["boom".into()],
        },
    );
    let page = render(&live.snapshot());
    assert!(page.len() < 400_000, "{} bytes", page.len());
    assert!(page.contains("4000 succeeded"), "the counts are shown");
    assert!(page.contains("and 4500 more nodes"));
    // The nodes that need attention are listed.
    assert!(page.contains("data-node=\"n4999\" data-status=\"running\""));
    assert!(page.contains("data-node=\"n4998\" data-status=\"failed\""));
}

#[test]
fn many_threads_fold_at_once() {
    let live = Arc::new(LiveRecord::new(&three(), "demo-2"));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let live = Arc::clone(&live);
            std::thread::spawn(move || {
                for i in 0..1000 {
                    emit(
                        &live,
                        EventKind::CheckpointSaved {
                            id: format!("{t}-{i}"),
                            reason: SaveReason::Requested,
                        },
                    );
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(live.checkpoints_saved(), 4000);
    assert_eq!(live.version(), 4000);
}
