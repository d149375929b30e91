//! Slurm job states, and the queue watcher: one `squeue` call per poll for every job of the
//! run, with backoff while nothing changes.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, watch};

use crate::command::Slurm;

/// Where a Slurm job is, as `squeue` says.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JobState {
    /// Not known yet (submitted, not yet seen by a poll).
    Submitted,
    /// Waiting in the queue, with Slurm's reason (`Resources`, `Priority`, ...).
    Pending(String),
    /// Running (or starting, stopping, suspended: a job holding its resources).
    Running(String),
    /// Ended with exit code 0.
    Completed,
    /// Ended with a non-zero exit code or a failure of its own.
    Failed(String),
    /// Killed at its time limit.
    Timeout,
    /// Killed for using more memory than it asked for.
    OutOfMemory,
    /// Cancelled (`scancel`, by medfusion or someone else).
    Cancelled,
    /// Its node failed.
    NodeFail,
    /// Preempted by a more important job, or requeued: it will run (or ran) again.
    Preempted(String),
    /// No longer in the queue (finished longer ago than the controller remembers).
    Gone,
}

impl JobState {
    /// Reads `squeue`'s `%T` state (and `%r` reason).
    pub fn parse(state: &str, reason: &str) -> JobState {
        match state {
            "PENDING" | "REQUEUE_HOLD" | "REQUEUE_FED" | "RESV_DEL_HOLD" | "CONFIGURING" => {
                JobState::Pending(reason.to_string())
            }
            "RUNNING" | "COMPLETING" | "SUSPENDED" | "STOPPED" | "SIGNALING" | "STAGE_OUT"
            | "RESIZING" => JobState::Running(state.to_string()),
            "COMPLETED" => JobState::Completed,
            "TIMEOUT" | "DEADLINE" => JobState::Timeout,
            "OUT_OF_MEMORY" => JobState::OutOfMemory,
            "CANCELLED" => JobState::Cancelled,
            "NODE_FAIL" => JobState::NodeFail,
            "PREEMPTED" | "REQUEUED" => JobState::Preempted(state.to_string()),
            other => JobState::Failed(other.to_string()),
        }
    }

    /// Whether the job has ended (it will not write anything more).
    pub fn is_over(&self) -> bool {
        !matches!(
            self,
            JobState::Submitted | JobState::Pending(_) | JobState::Running(_)
        )
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobState::Submitted => f.write_str("SUBMITTED"),
            JobState::Pending(reason) => write!(f, "PENDING ({reason})"),
            JobState::Running(state) | JobState::Failed(state) | JobState::Preempted(state) => {
                f.write_str(state)
            }
            JobState::Completed => f.write_str("COMPLETED"),
            JobState::Timeout => f.write_str("TIMEOUT"),
            JobState::OutOfMemory => f.write_str("OUT_OF_MEMORY"),
            JobState::Cancelled => f.write_str("CANCELLED"),
            JobState::NodeFail => f.write_str("NODE_FAIL"),
            JobState::Gone => f.write_str("no longer in the queue"),
        }
    }
}

/// Polls the queue for every job registered, one `squeue` call per poll.
pub(crate) struct Queue {
    slurm: Slurm,
    jobs: Mutex<HashMap<String, watch::Sender<JobState>>>,
    wake: Arc<Notify>,
    fastest: Duration,
    slowest: Duration,
}

impl Queue {
    pub(crate) fn new(slurm: Slurm, fastest: Duration, slowest: Duration) -> Arc<Queue> {
        let queue = Arc::new(Queue {
            slurm,
            jobs: Mutex::new(HashMap::new()),
            wake: Arc::new(Notify::new()),
            fastest,
            slowest: slowest.max(fastest),
        });
        let weak = Arc::downgrade(&queue);
        let wake = Arc::clone(&queue.wake);
        tokio::spawn(async move {
            let mut wait = Duration::ZERO;
            loop {
                let Some(queue) = weak.upgrade() else { return };
                let changed = queue.poll().await;
                // Poll at once again after a change, then more and more slowly.
                wait = if changed {
                    queue.fastest
                } else {
                    (wait.mul_f64(1.5)).clamp(queue.fastest, queue.slowest)
                };
                let idle = queue.jobs.lock().map_or(true, |j| j.is_empty());
                drop(queue);
                let notified = wake.notified();
                if idle {
                    notified.await;
                } else {
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = notified => {}
                    }
                }
            }
        });
        queue
    }

    /// Watch job `id` until [`forget`](Queue::forget) is called.
    pub(crate) fn watch(&self, id: &str) -> watch::Receiver<JobState> {
        let mut jobs = self
            .jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let rx = jobs
            .entry(id.to_string())
            .or_insert_with(|| watch::channel(JobState::Submitted).0)
            .subscribe();
        drop(jobs);
        self.wake.notify_one();
        rx
    }

    /// Stop watching job `id`.
    pub(crate) fn forget(&self, id: &str) {
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.remove(id);
        }
    }

    /// One `squeue` for every watched job; whether any state changed.
    async fn poll(&self) -> bool {
        let ids: Vec<String> = self
            .jobs
            .lock()
            .map(|j| j.keys().cloned().collect())
            .unwrap_or_default();
        if ids.is_empty() {
            return false;
        }
        let states = match self.slurm.states(&ids).await {
            Ok(states) => states,
            Err(e) => {
                tracing::warn!("squeue failed (retrying): {e}");
                return false;
            }
        };
        let jobs = self
            .jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut changed = false;
        for id in ids {
            let Some(tx) = jobs.get(&id) else { continue };
            let state = states.get(&id).cloned().unwrap_or(JobState::Gone);
            changed |= tx.send_if_modified(|old| {
                // A job seen ended stays ended (it may drop out of the queue later).
                if *old != state && !(old.is_over() && state == JobState::Gone) {
                    *old = state;
                    true
                } else {
                    false
                }
            });
        }
        changed
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        // The watcher task ends when it finds the queue gone.
        self.wake.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_is_named_and_classed() {
        for (state, reason, over, shown) in [
            ("PENDING", "Resources", false, "PENDING (Resources)"),
            ("RUNNING", "None", false, "RUNNING"),
            ("COMPLETING", "None", false, "COMPLETING"),
            ("COMPLETED", "None", true, "COMPLETED"),
            ("FAILED", "NonZeroExitCode", true, "FAILED"),
            ("TIMEOUT", "TimeLimit", true, "TIMEOUT"),
            ("OUT_OF_MEMORY", "None", true, "OUT_OF_MEMORY"),
            ("CANCELLED", "None", true, "CANCELLED"),
            ("NODE_FAIL", "None", true, "NODE_FAIL"),
            ("PREEMPTED", "None", true, "PREEMPTED"),
            ("REQUEUED", "None", true, "REQUEUED"),
            ("BOOT_FAIL", "None", true, "BOOT_FAIL"),
        ] {
            let parsed = JobState::parse(state, reason);
            assert_eq!(parsed.is_over(), over, "{state}");
            assert_eq!(parsed.to_string(), shown, "{state}");
        }
    }
}
