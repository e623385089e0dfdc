//! One write turn per SQLite file in this process. SQLite lets one writer in at a time and makes
//! the others poll in a sleeping busy handler; a task that commits chunk after chunk (the
//! periodic stage, layer and tag jobs over a million members) then slips in again during every
//! sleep, and the group commit of live callbacks can starve past its busy timeout and answer 503.
//! Every write transaction of the process, the writer's group commit included, first takes this
//! turn: a fair (first come, first served) queue, so a callback waits for at most one chunk.
//! Other processes on the same file still meet SQLite's own lock.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use tokio::sync::OwnedMutexGuard;

use super::StoreError;

/// How long a writer waits for its turn: SQLite's busy timeout, so a writer that would have
/// failed with "database is locked" still fails the same way instead of waiting forever.
pub const TURN_TIMEOUT: Duration = Duration::from_secs(5);

/// The turn of one database file.
#[derive(Debug, Clone, Default)]
pub struct WriteTurn {
    lock: Arc<tokio::sync::Mutex<()>>,
    waiting: Arc<AtomicUsize>,
}

/// Held while writing; the next writer in line goes when it is dropped.
pub type Turn = OwnedMutexGuard<()>;

static TURNS: LazyLock<Mutex<HashMap<String, WriteTurn>>> = LazyLock::new(Mutex::default);

impl WriteTurn {
    /// The turn of the database file at `path`; `None` for in-memory databases, which no other
    /// connection shares.
    pub fn for_file(path: &Path) -> Option<Self> {
        let key = path.to_string_lossy();
        if key.is_empty() || key.starts_with(":memory:") {
            return None;
        }
        let mut turns = TURNS.lock().unwrap_or_else(|p| p.into_inner());
        Some(turns.entry(key.into_owned()).or_default().clone())
    }

    /// Waits for the turn, at most [`TURN_TIMEOUT`].
    pub async fn take(&self) -> Result<Turn, StoreError> {
        self.take_within(TURN_TIMEOUT).await
    }

    async fn take_within(&self, limit: Duration) -> Result<Turn, StoreError> {
        // Counted down on drop, so a waiter whose task is cancelled is not counted forever.
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let _waiting = Waiting(&self.waiting);
        let turn = tokio::time::timeout(limit, Arc::clone(&self.lock).lock_owned()).await;
        turn.map_err(|_| {
            StoreError::Unavailable("database is locked: no write turn within 5 s".into())
        })
    }

    /// Writers now waiting for the turn.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_file_one_turn_and_writers_go_in_arrival_order() {
        let a = WriteTurn::for_file(Path::new("/tmp/yunying-turn-test.db")).expect("file");
        let b = WriteTurn::for_file(Path::new("/tmp/yunying-turn-test.db")).expect("file");
        assert!(WriteTurn::for_file(Path::new(":memory:")).is_none());
        let held = a.take().await.expect("first");
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut waiting = Vec::new();
        for i in 0..3 {
            let (turn, order) = (b.clone(), Arc::clone(&order));
            waiting.push(tokio::spawn(async move {
                let _turn = turn.take().await.expect("turn");
                order.lock().expect("order").push(i);
            }));
            // Each waiter queues before the next is spawned.
            tokio::task::yield_now().await;
        }
        assert!(
            order.lock().expect("order").is_empty(),
            "nobody writes while the turn is held"
        );
        drop(held);
        for w in waiting {
            w.await.expect("task");
        }
        assert_eq!(*order.lock().expect("order"), vec![0, 1, 2]);
    }

    #[tokio::test]
    async fn a_writer_that_never_gets_the_turn_fails_as_unavailable() {
        let turn = WriteTurn::for_file(Path::new("/tmp/yunying-turn-timeout.db")).expect("file");
        let _held = turn.take().await.expect("first");
        let err = turn
            .take_within(Duration::from_millis(20))
            .await
            .expect_err("second must time out");
        assert_eq!(turn.waiting(), 0, "a writer that gave up no longer waits");
        assert!(err.is_unavailable(), "{err}");
    }
}
