//! The engine's two doors to the outside: a run store and a resource observer.
//!
//! The engine knows no file format and no monitoring library: the `medfusion` CLI plugs
//! `medfusion-checkpoint` and `medfusion-monitor` in through these traits, and tests use
//! the in-memory ones here.

use std::sync::{Arc, Mutex};

use medfusion_graph::Workflow;

use crate::error::BoxError;
use crate::state::{ResourceUsage, RunState, SaveReason};

/// Saves run states (after each node, on failure, on request) and loads them to resume.
///
/// Calls are blocking; the engine makes them off its async workers, one at a time.
pub trait RunStore: Send + Sync {
    /// Save the state of a run (with the blobs of its values) and return an id for it
    /// (a checkpoint name), shown in events.
    fn save(
        &self,
        workflow: &Workflow,
        state: &RunState,
        reason: SaveReason,
    ) -> Result<String, BoxError>;
}

/// A resource observer: told when nodes start and finish, so it can measure what each
/// used (peak memory, CPU, GPU memory).
pub trait ResourceObserver: Send + Sync {
    /// Node `node` started; measure until the returned scope finishes.
    fn node_started(&self, node: &str) -> Box<dyn ObserverScope>;
}

/// The measurement of one node, started by [`ResourceObserver::node_started`].
pub trait ObserverScope: Send {
    /// Stop measuring and report.
    fn finish(self: Box<Self>) -> ResourceUsage;
}

/// A run store that keeps every saved state in memory (for tests and embedding).
#[derive(Debug, Default, Clone)]
pub struct MemoryStore {
    saves: Arc<Mutex<Vec<(SaveReason, RunState)>>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// Every state saved so far, oldest first, with why.
    pub fn saves(&self) -> Vec<(SaveReason, RunState)> {
        self.saves.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// The newest saved state.
    pub fn latest(&self) -> Option<RunState> {
        self.saves.lock().ok()?.last().map(|(_, s)| s.clone())
    }
}

impl RunStore for MemoryStore {
    fn save(
        &self,
        _workflow: &Workflow,
        state: &RunState,
        reason: SaveReason,
    ) -> Result<String, BoxError> {
        let mut saves = self.saves.lock().map_err(|_| "memory store poisoned")?;
        saves.push((reason, state.clone()));
        Ok(format!("memory-{}", saves.len()))
    }
}
