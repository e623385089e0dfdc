//! The after-handlers (stage checks, state rules) of an event run once its answer is decided,
//! without holding the answer back: a member's first message used to wait for its stage read
//! and write. Runs that wait on something go on in tasks counted here, so shutdown and tests can
//! wait until they are done.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

/// Spawned after-handler runs at most at once; past this an event runs its after-handlers before
/// its answer again, so a database that falls behind slows the callbacks instead of piling up
/// tasks in memory.
const MAX_IN_FLIGHT: usize = 10_000;

/// Counts the after-handler runs still going on in tasks of their own.
#[derive(Clone, Default)]
pub struct AfterTasks {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    running: AtomicUsize,
    idle: Notify,
}

/// One counted run; dropping it (when the run ends, or if it panics) uncounts it.
pub(super) struct Running(Arc<Inner>);

impl AfterTasks {
    /// Counts a new run, unless [`MAX_IN_FLIGHT`] are going on already.
    pub(super) fn start(&self) -> Option<Running> {
        self.inner
            .running
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_IN_FLIGHT).then_some(n + 1)
            })
            .ok()
            .map(|_| Running(Arc::clone(&self.inner)))
    }

    /// How many runs are going on now.
    pub fn running(&self) -> usize {
        self.inner.running.load(Ordering::Acquire)
    }

    /// Waits until no run is going on (runs started meanwhile are waited for too).
    pub async fn settled(&self) {
        loop {
            let idle = self.inner.idle.notified();
            tokio::pin!(idle);
            // Registered before the check, so a run ending in between still wakes us.
            idle.as_mut().enable();
            if self.running() == 0 {
                return;
            }
            idle.await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.0.running.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn settled_waits_for_every_run_and_returns_at_once_when_idle() {
        let tasks = AfterTasks::default();
        tasks.settled().await;
        let first = tasks.start().expect("room");
        let second = tasks.start().expect("room");
        assert_eq!(tasks.running(), 2);
        let waiter = tokio::spawn({
            let tasks = tasks.clone();
            async move { tasks.settled().await }
        });
        drop(first);
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(!waiter.is_finished(), "one run is still going on");
        drop(second);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("settled after the last run")
            .expect("waiter");
        assert_eq!(tasks.running(), 0);
    }

    #[test]
    fn no_more_than_the_limit_run_at_once() {
        let tasks = AfterTasks::default();
        let held: Vec<_> = (0..MAX_IN_FLIGHT)
            .map(|_| tasks.start().expect("room"))
            .collect();
        assert!(tasks.start().is_none());
        drop(held);
        assert!(tasks.start().is_some());
    }
}
