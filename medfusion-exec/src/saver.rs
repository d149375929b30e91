//! Saving run states in the background, one at a time, newest state first.

use std::sync::{Arc, Mutex};

use medfusion_graph::Workflow;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::event::{Emitter, EventKind};
use crate::state::{RunState, SaveReason};
use crate::store::RunStore;

/// Requests that arrive while a save is running are merged into the next one: it takes
/// the state as it is then, so nothing is lost and a slow store never slows the run.
pub(crate) struct Saver {
    tx: mpsc::UnboundedSender<SaveReason>,
    task: JoinHandle<()>,
}

/// Which of two reasons a merged save reports.
fn weight(reason: SaveReason) -> u8 {
    match reason {
        SaveReason::Started => 0,
        SaveReason::NodeProgress => 1,
        SaveReason::NodeFinished => 2,
        SaveReason::Requested => 3,
        SaveReason::NodeFailed => 4,
        SaveReason::Cancelled | SaveReason::Finished => 5,
    }
}

impl Saver {
    pub(crate) fn start(
        store: Arc<dyn RunStore>,
        workflow: Workflow,
        state: Arc<Mutex<RunState>>,
        emitter: Emitter,
    ) -> Saver {
        let (tx, mut rx) = mpsc::unbounded_channel::<SaveReason>();
        let workflow = Arc::new(workflow);
        let task = tokio::spawn(async move {
            while let Some(mut reason) = rx.recv().await {
                while let Ok(next) = rx.try_recv() {
                    if weight(next) >= weight(reason) {
                        reason = next;
                    }
                }
                let snapshot = {
                    let mut state = state
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    state.updated_at = crate::state::timestamp(std::time::SystemTime::now());
                    state.clone()
                };
                let store = Arc::clone(&store);
                let workflow = Arc::clone(&workflow);
                let result =
                    tokio::task::spawn_blocking(move || store.save(&workflow, &snapshot, reason))
                        .await;
                match result {
                    Ok(Ok(id)) => emitter.emit(EventKind::CheckpointSaved { id, reason }),
                    Ok(Err(e)) => {
                        let mut chain = vec![e.to_string()];
                        let mut source = e.source();
                        while let Some(s) = source {
                            chain.push(s.to_string());
                            source = s.source();
                        }
                        tracing::error!(error = %e, "saving the run state failed");
                        emitter.emit(EventKind::CheckpointFailed {
                            reason,
                            error: chain,
                        });
                    }
                    Err(e) => emitter.emit(EventKind::CheckpointFailed {
                        reason,
                        error: vec![format!("the save stopped: {e}")],
                    }),
                }
            }
        });
        Saver { tx, task }
    }

    /// Save the state soon.
    pub(crate) fn request(&self, reason: SaveReason) {
        // The task lives until `finish`.
        let _ = self.tx.send(reason);
    }

    /// Finish the saves asked for so far.
    pub(crate) async fn finish(self) {
        drop(self.tx);
        let _ = self.task.await;
    }
}
