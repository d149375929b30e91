//! The background writer: one thread, a bounded queue, a handle per save.
//!
//! Every outcome goes somewhere: into the save's [`SaveHandle`], or, when the handle
//! was dropped first, into the list that [`CheckpointManager::flush`] returns. Both
//! sides decide under one lock, so no failure slips between them.
//!
//! [`CheckpointManager::flush`]: crate::CheckpointManager::flush

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use crate::checkpoint::{Checkpoint, SaveReport};
use crate::error::{Error, Result};
use crate::manager::Config;

/// Failures of saves whose handles were dropped, oldest first.
type Unreported = Arc<Mutex<Vec<Error>>>;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Where one save's outcome meets its handle.
#[derive(Debug, Default)]
struct Slot {
    state: Mutex<SlotState>,
    ready: Condvar,
}

#[derive(Debug, Default)]
struct SlotState {
    result: Option<Result<SaveReport>>,
    abandoned: bool,
}

/// The writer's end of a slot; if it is dropped unused (the writer died), the handle
/// learns that.
struct Reply {
    slot: Arc<Slot>,
    unreported: Unreported,
    dir: PathBuf,
    sent: bool,
}

impl Reply {
    fn send(mut self, result: Result<SaveReport>) {
        self.sent = true;
        self.deliver(result);
    }

    fn deliver(&self, result: Result<SaveReport>) {
        let mut state = lock(&self.slot.state);
        if state.abandoned {
            if let Err(e) = result {
                lock(&self.unreported).push(e);
            }
        } else {
            state.result = Some(result);
            self.slot.ready.notify_all();
        }
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        if !self.sent {
            self.deliver(Err(Error::WriterStopped {
                dir: self.dir.clone(),
            }));
        }
    }
}

enum Job {
    Save {
        config: Arc<Config>,
        workflow_id: String,
        checkpoint: Box<Checkpoint>,
        reply: Reply,
    },
    /// Answered once every job queued before it is done.
    Flush(SyncSender<()>),
}

/// The outcome of a background save, to wait for.
///
/// Dropping it does not cancel the save; a failure is then reported by
/// [`CheckpointManager::flush`](crate::CheckpointManager::flush).
#[derive(Debug)]
#[must_use = "a background save can fail: wait on it, or call `CheckpointManager::flush`"]
pub struct SaveHandle {
    slot: Arc<Slot>,
    unreported: Unreported,
}

impl SaveHandle {
    /// Block until the save is done and return its outcome.
    pub fn wait(self) -> Result<SaveReport> {
        let mut state = lock(&self.slot.state);
        loop {
            if let Some(result) = state.result.take() {
                return result;
            }
            state = self
                .slot
                .ready
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Whether the save is done (then [`wait`](Self::wait) returns at once).
    pub fn is_finished(&self) -> bool {
        lock(&self.slot.state).result.is_some()
    }
}

impl Drop for SaveHandle {
    fn drop(&mut self) {
        let mut state = lock(&self.slot.state);
        state.abandoned = true;
        if let Some(Err(e)) = state.result.take() {
            lock(&self.unreported).push(e);
        }
    }
}

#[derive(Debug)]
pub(crate) struct Writer {
    jobs: SyncSender<Job>,
    thread: JoinHandle<()>,
    unreported: Unreported,
    dir: PathBuf,
}

impl Writer {
    pub(crate) fn start(capacity: usize, dir: &Path) -> Result<Writer> {
        let (jobs, queue) = sync_channel(capacity);
        let thread = std::thread::Builder::new()
            .name("medfusion-checkpoint-writer".into())
            .spawn(move || run(&queue))
            .map_err(|e| Error::io("start the writer thread for", dir, e))?;
        Ok(Writer {
            jobs,
            thread,
            unreported: Unreported::default(),
            dir: dir.to_path_buf(),
        })
    }

    /// Queue a save; blocks while the queue is full, which bounds the memory held.
    pub(crate) fn submit(
        &self,
        config: Arc<Config>,
        workflow_id: String,
        checkpoint: Checkpoint,
    ) -> Result<SaveHandle> {
        let slot = Arc::new(Slot::default());
        let reply = Reply {
            slot: Arc::clone(&slot),
            unreported: Arc::clone(&self.unreported),
            dir: self.dir.clone(),
            sent: false,
        };
        let handle = SaveHandle {
            slot,
            unreported: Arc::clone(&self.unreported),
        };
        self.jobs
            .send(Job::Save {
                config,
                workflow_id,
                checkpoint: Box::new(checkpoint),
                reply,
            })
            .map_err(|_| Error::WriterStopped {
                dir: self.dir.clone(),
            })?;
        Ok(handle)
    }

    pub(crate) fn flush(&self) -> Result<()> {
        let stopped = || Error::WriterStopped {
            dir: self.dir.clone(),
        };
        let (done, finished) = sync_channel(1);
        self.jobs.send(Job::Flush(done)).map_err(|_| stopped())?;
        finished.recv().map_err(|_| stopped())?;
        let mut errors = std::mem::take(&mut *lock(&self.unreported)).into_iter();
        match errors.next() {
            None => Ok(()),
            Some(first) => Err(Error::Background {
                first: Box::new(first),
                rest: errors.collect(),
            }),
        }
    }

    /// Close the queue and wait for the jobs in it to finish.
    pub(crate) fn shut_down(self) {
        drop(self.jobs);
        // A panic in the writer has already reached every waiting handle as
        // `WriterStopped` (each `Reply` reports it when dropped).
        let _ = self.thread.join();
    }
}

fn run(queue: &Receiver<Job>) {
    for job in queue {
        match job {
            Job::Save {
                config,
                workflow_id,
                checkpoint,
                reply,
            } => {
                let result = crate::save::save(&config, &workflow_id, &checkpoint);
                // Free the tensors before reporting, so a waiting caller has the memory
                // back when it wakes.
                drop(checkpoint);
                reply.send(result);
            }
            Job::Flush(done) => {
                let _ = done.send(());
            }
        }
    }
}
