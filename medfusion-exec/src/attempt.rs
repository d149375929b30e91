//! One attempt of a node: the blocking work it started, and which attempt may report.
//!
//! A timeout or a cancellation drops an attempt's future, but dropping the handle of a
//! `spawn_blocking` thread does not stop the thread: a training loop on the blocking pool
//! keeps running (and keeps using its GPU) until it sees its cancellation token and
//! returns. [`AttemptWork`] counts that work so the engine can wait for it before it
//! retries or hands the node's GPUs to another node, and [`AttemptGate`] drops what a
//! stale attempt still reports once a newer attempt (or nothing) is current.

use std::sync::{Arc, RwLock};

use tokio::sync::watch;

/// The blocking work one attempt started that has not returned yet.
#[derive(Clone)]
pub(crate) struct AttemptWork(Arc<watch::Sender<usize>>);

impl AttemptWork {
    pub(crate) fn new() -> AttemptWork {
        AttemptWork(Arc::new(watch::Sender::new(0)))
    }

    /// Count one piece of work until the guard is dropped (when the work returns or
    /// unwinds, or is dropped without ever running).
    pub(crate) fn enter(&self) -> WorkGuard {
        self.0.send_modify(|n| *n += 1);
        WorkGuard(self.clone())
    }

    /// Pieces of work still running.
    pub(crate) fn running(&self) -> usize {
        *self.0.borrow()
    }

    /// Completes once no work of the attempt runs.
    pub(crate) async fn idle(&self) {
        let mut rx = self.0.subscribe();
        // The sender lives in `self`, so this cannot fail.
        let _ = rx.wait_for(|&n| n == 0).await;
    }
}

/// Held by a running piece of an attempt's work.
pub(crate) struct WorkGuard(AttemptWork);

impl Drop for WorkGuard {
    fn drop(&mut self) {
        self.0.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// The attempt of a node whose progress counts: a stale attempt (one that timed out and
/// was abandoned, or a context clone kept past its attempt) reports into the void.
#[derive(Default)]
pub(crate) struct AttemptGate(RwLock<u32>);

impl AttemptGate {
    /// Make `attempt` the current one (0: none, the node has ended).
    pub(crate) fn set(&self, attempt: u32) {
        *self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = attempt;
    }

    /// Run `report` if `attempt` is current; the gate is held meanwhile, so the node cannot
    /// move on to another attempt halfway through a report.
    pub(crate) fn report(&self, attempt: u32, report: impl FnOnce()) -> bool {
        let current = self
            .0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if *current != attempt {
            return false;
        }
        report();
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_waits_for_every_guard_even_one_dropped_by_a_panic() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let work = AttemptWork::new();
        rt.block_on(work.idle());
        let a = work.enter();
        let b = work.enter();
        assert_eq!(work.running(), 2);
        drop(a);
        let panicking = std::thread::spawn(move || {
            let _b = b;
            panic!("body panicked");
        });
        assert!(panicking.join().is_err());
        rt.block_on(work.idle());
        assert_eq!(work.running(), 0);
    }

    #[test]
    fn only_the_current_attempt_reports() {
        let gate = AttemptGate::default();
        gate.set(2);
        assert!(!gate.report(1, || unreachable!()));
        let mut reported = false;
        assert!(gate.report(2, || reported = true));
        assert!(reported);
        gate.set(0);
        assert!(!gate.report(2, || unreachable!()));
    }
}
