//! Helpers shared by the engine tests.

#![allow(dead_code, unreachable_pub)]

use std::sync::{Arc, Mutex};

use medfusion_exec::{Event, EventKind, Registry};
use medfusion_graph::{Plan, Workflow, validate};

/// Collects every event.
#[derive(Default, Clone)]
pub struct Recorder(pub Arc<Mutex<Vec<Event>>>);

impl Recorder {
    pub fn events(&self) -> Vec<Event> {
        self.0.lock().unwrap().clone()
    }

    pub fn kinds(&self) -> Vec<EventKind> {
        self.events().into_iter().map(|e| e.kind).collect()
    }

    pub fn count(&self, f: impl Fn(&EventKind) -> bool) -> usize {
        self.kinds().iter().filter(|k| f(k)).count()
    }
}

impl medfusion_exec::EventSink for Recorder {
    fn event(&self, event: &Event) {
        self.0.lock().unwrap().push(event.clone());
    }
}

/// Parse and validate a YAML workflow against `registry`.
pub fn plan(registry: &Registry, yaml: &str) -> Plan {
    let workflow = Workflow::parse_sniffed(yaml).expect("parses");
    match validate(workflow, registry.catalog()) {
        Ok(plan) => plan,
        Err(e) => panic!("invalid test workflow: {e}"),
    }
}

/// A current-thread runtime with time enabled.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A multi-thread runtime with `workers` workers.
pub fn runtime_mt(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap()
}
