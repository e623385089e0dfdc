//! Batched writes: writes of several callers that share one transaction (a "round"), and
//! where the rounds run on each backend.

use tokio::sync::{mpsc, oneshot};

use super::WriteError;
use crate::store::lifecycle::StageChange;
use crate::store::{self, Store, StoreError, Tx};

pub(super) use crate::store::BoxFuture;

/// A write run inside a transaction shared with others; it keeps its result until the commit.
pub(super) trait BatchedWrite: Send {
    fn run<'a>(&'a mut self, tx: &'a mut Tx) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Answers the caller after the commit.
    fn succeed(self: Box<Self>);
    fn fail(self: Box<Self>, error: StoreError);
}

pub(super) struct PendingWrite<T, F> {
    pub(super) write: F,
    pub(super) result: Option<T>,
    pub(super) done: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> BatchedWrite for PendingWrite<T, F>
where
    T: Send + 'static,
    F: for<'a> Fn(&'a mut Tx) -> BoxFuture<'a, Result<T, StoreError>> + Send + Sync + 'static,
{
    fn run<'a>(&'a mut self, tx: &'a mut Tx) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.result = Some((self.write)(tx).await?);
            Ok(())
        })
    }

    fn succeed(self: Box<Self>) {
        if let Some(value) = self.result {
            let _ = self.done.send(Ok(value));
        }
    }

    fn fail(self: Box<Self>, error: StoreError) {
        let _ = self.done.send(Err(error));
    }
}

/// The stage changes of one batch as one batched write (PostgreSQL), answering every caller.
#[derive(Default)]
pub(super) struct PendingStages {
    pub(super) changes: Vec<StageChange>,
    pub(super) waiters: Vec<oneshot::Sender<Result<(), WriteError>>>,
}

impl BatchedWrite for PendingStages {
    fn run<'a>(&'a mut self, tx: &'a mut Tx) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(store::lifecycle::apply_many(tx, &self.changes))
    }

    fn succeed(self: Box<Self>) {
        for done in self.waiters {
            let _ = done.send(Ok(()));
        }
    }

    fn fail(self: Box<Self>, error: StoreError) {
        let error = WriteError::from(&error);
        for done in self.waiters {
            let _ = done.send(Err(error.clone()));
        }
    }
}

/// Where batched writes run. SQLite: inline on its single writer, after the group commit (a
/// second writing task would wait in SQLite's sleeping busy handler). PostgreSQL: one task of
/// its own, so the group commits go on meanwhile and two rounds never take the same rows in
/// different orders (a deadlock).
#[derive(Clone)]
pub(super) enum Rounds {
    Inline,
    Task(mpsc::UnboundedSender<Box<dyn BatchedWrite>>),
}

impl Rounds {
    pub(super) fn start(
        store: &Store,
        round_max: usize,
    ) -> (Self, Option<tokio::task::JoinHandle<()>>) {
        if store.backend() == store::Backend::Sqlite {
            return (Self::Inline, None);
        }
        let (tx, mut rx) = mpsc::unbounded_channel::<Box<dyn BatchedWrite>>();
        let store = store.clone();
        let task = tokio::spawn(async move {
            let mut round = Vec::with_capacity(round_max);
            // Ends when every writer has stopped and the queue is drained.
            while rx.recv_many(&mut round, round_max).await > 0 {
                run_batched(&store, std::mem::take(&mut round)).await;
            }
        });
        (Self::Task(tx), Some(task))
    }

    pub(super) async fn run(&self, store: &Store, writes: Vec<Box<dyn BatchedWrite>>) {
        match self {
            Self::Inline => run_batched(store, writes).await,
            Self::Task(tx) => {
                for write in writes {
                    if let Err(mpsc::error::SendError(write)) = tx.send(write) {
                        write.fail(StoreError::Other("writer stopped".into()));
                    }
                }
            }
        }
    }
}

async fn run_batched(store: &Store, mut writes: Vec<Box<dyn BatchedWrite>>) {
    if writes.len() > 1 {
        match run_together(store, &mut writes).await {
            Ok(()) => {
                writes.into_iter().for_each(|w| w.succeed());
                return;
            }
            Err(e) => {
                tracing::debug!(error = %e, writes = writes.len(), "shared transaction failed; retrying each write alone");
            }
        }
    }
    for mut write in writes {
        let alone = async {
            let mut tx = store.begin_write().await?;
            write.run(&mut tx).await?;
            tx.commit().await
        };
        match alone.await {
            Ok(()) => write.succeed(),
            Err(e) => write.fail(e),
        }
    }
}

async fn run_together(
    store: &Store,
    writes: &mut [Box<dyn BatchedWrite>],
) -> Result<(), StoreError> {
    let mut tx = store.begin_write().await?;
    for write in writes.iter_mut() {
        if let Err(e) = write.run(&mut tx).await {
            let _ = tx.rollback().await;
            return Err(e);
        }
    }
    tx.commit().await
}
