//! The background writer: one thread, a bounded queue, a handle per save.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;

use crate::checkpoint::{Checkpoint, SaveReport};
use crate::error::{Error, Result};
use crate::manager::Config;

enum Job {
    Save {
        config: Arc<Config>,
        workflow_id: String,
        checkpoint: Checkpoint,
        reply: SyncSender<Result<SaveReport>>,
    },
    /// Answered once every job queued before it is done, with the failures nobody
    /// could be told about (their handles were dropped).
    Flush(SyncSender<Vec<Error>>),
}

/// The outcome of a background save, to wait for.
///
/// Dropping it does not cancel the save; a failure is then reported by
/// [`CheckpointManager::flush`](crate::CheckpointManager::flush).
#[derive(Debug)]
#[must_use = "a background save can fail: wait on it, or call `CheckpointManager::flush`"]
pub struct SaveHandle {
    reply: Receiver<Result<SaveReport>>,
    done: Option<Result<SaveReport>>,
    dir: PathBuf,
}

impl SaveHandle {
    /// Block until the save is done and return its outcome.
    pub fn wait(mut self) -> Result<SaveReport> {
        if let Some(done) = self.done.take() {
            return done;
        }
        self.reply.recv().unwrap_or_else(|_| {
            Err(Error::WriterStopped {
                dir: self.dir.clone(),
            })
        })
    }

    /// Whether the save is done (then [`wait`](Self::wait) returns at once).
    pub fn is_finished(&mut self) -> bool {
        if self.done.is_none() {
            self.done = match self.reply.try_recv() {
                Ok(result) => Some(result),
                Err(std::sync::mpsc::TryRecvError::Empty) => None,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                    Some(Err(Error::WriterStopped {
                        dir: self.dir.clone(),
                    }))
                }
            };
        }
        self.done.is_some()
    }
}

#[derive(Debug)]
pub(crate) struct Writer {
    jobs: SyncSender<Job>,
    thread: JoinHandle<()>,
    dir: PathBuf,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Job::Save { workflow_id, .. } => write!(f, "Save({workflow_id})"),
            Job::Flush(_) => f.write_str("Flush"),
        }
    }
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
            dir: dir.to_path_buf(),
        })
    }

    pub(crate) fn submit(
        &self,
        config: Arc<Config>,
        workflow_id: String,
        checkpoint: Checkpoint,
    ) -> Result<SaveHandle> {
        let (reply, receiver) = sync_channel(1);
        let job = Job::Save {
            config,
            workflow_id,
            checkpoint,
            reply,
        };
        // Blocks while the queue is full: that is what bounds the memory held.
        let sent = match self.jobs.try_send(job) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(job)) => self.jobs.send(job).map_err(|_| ()),
            Err(TrySendError::Disconnected(_)) => Err(()),
        };
        sent.map_err(|()| Error::WriterStopped {
            dir: self.dir.clone(),
        })?;
        Ok(SaveHandle {
            reply: receiver,
            done: None,
            dir: self.dir.clone(),
        })
    }

    pub(crate) fn flush(&self) -> Result<()> {
        let stopped = || Error::WriterStopped {
            dir: self.dir.clone(),
        };
        let (reply, receiver) = sync_channel(1);
        self.jobs.send(Job::Flush(reply)).map_err(|_| stopped())?;
        let mut errors = receiver.recv().map_err(|_| stopped())?.into_iter();
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
        // A panic in the writer has already been reported to every waiting handle as
        // `WriterStopped`; there is nobody left to tell.
        let _ = self.thread.join();
    }
}

fn run(queue: &Receiver<Job>) {
    let mut unreported = Vec::new();
    for job in queue {
        match job {
            Job::Save {
                config,
                workflow_id,
                checkpoint,
                reply,
            } => {
                let result = crate::save::save(&config, &workflow_id, &checkpoint);
                // Free the tensors before reporting, so a waiting caller sees the
                // memory back.
                drop(checkpoint);
                if let Err(std::sync::mpsc::SendError(Err(e))) = reply.send(result) {
                    unreported.push(e);
                }
            }
            Job::Flush(reply) => {
                let _ = reply.send(std::mem::take(&mut unreported));
            }
        }
    }
}
