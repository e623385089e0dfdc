//! Group commit: concurrent callbacks hand their inbox row to a writer task, which writes
//! everything queued so far (inbox rows + member changes + processed marks) in one transaction
//! and then answers each caller. Every answer still waits for its own durable write; the
//! platform is acknowledged only after the commit.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Mutex};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::events::Event;
use crate::members;
use crate::store::inbox::{self, Accepted, NewInbox, Processed};
use crate::store::{self, Store, StoreError};

/// Why a write failed, cloneable so one failed batch can answer all its callers.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("write failed: {0}")]
    Failed(String),
}

impl From<&StoreError> for WriteError {
    fn from(e: &StoreError) -> Self {
        if e.is_unavailable() {
            Self::Unavailable(e.to_string())
        } else {
            Self::Failed(e.to_string())
        }
    }
}

enum Op {
    Accept {
        row: NewInbox,
        event: Arc<Event>,
        done: oneshot::Sender<Result<Accepted, WriteError>>,
    },
    Mark(
        Processed,
        Option<oneshot::Sender<Result<Accepted, WriteError>>>,
    ),
}

/// Handle to the writer tasks. Cheap to clone.
#[derive(Clone)]
pub struct InboxWriter {
    tx: mpsc::Sender<Op>,
}

/// Settings of the writer pool.
#[derive(Debug, Clone, Copy)]
pub struct WriterOptions {
    pub batch_max: usize,
    pub writers: usize,
    pub timezone: chrono_tz::Tz,
}

impl InboxWriter {
    /// Starts `writers` tasks sharing one queue. They finish the queued work and exit when
    /// `shutdown` fires.
    pub fn spawn(
        store: Store,
        options: WriterOptions,
        shutdown: CancellationToken,
    ) -> (Self, Vec<JoinHandle<()>>) {
        let (tx, rx) = mpsc::channel(64 * 1024);
        let rx = Arc::new(Mutex::new(rx));
        let handles = (0..options.writers.max(1))
            .map(|_| {
                tokio::spawn(run_writer(
                    store.clone(),
                    Arc::clone(&rx),
                    options,
                    shutdown.clone(),
                ))
            })
            .collect();
        (Self { tx }, handles)
    }

    /// Writes the row (and the member changes of its event) durably; returns whether it is new.
    pub async fn accept(&self, row: NewInbox, event: Arc<Event>) -> Result<Accepted, WriteError> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Op::Accept { row, event, done })
            .await
            .map_err(|_| WriteError::Unavailable("writer stopped".into()))?;
        wait.await
            .map_err(|_| WriteError::Unavailable("writer stopped".into()))?
    }

    /// Queues a processed mark; it rides along with the next batch. Losing it in a crash only
    /// means the sweeper re-runs an idempotent handler.
    pub fn mark_processed(&self, mark: Processed) {
        if let Err(mpsc::error::TrySendError::Full(op)) = self.tx.try_send(Op::Mark(mark, None)) {
            let tx = self.tx.clone();
            tokio::spawn(async move {
                let _ = tx.send(op).await;
            });
        }
    }

    /// Writes a processed mark and waits for the commit, so a retry finds the stored reply.
    pub async fn mark_processed_durably(&self, mark: Processed) -> Result<(), WriteError> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Op::Mark(mark, Some(done)))
            .await
            .map_err(|_| WriteError::Unavailable("writer stopped".into()))?;
        wait.await
            .map_err(|_| WriteError::Unavailable("writer stopped".into()))?
            .map(|_| ())
    }
}

async fn run_writer(
    store: Store,
    rx: Arc<Mutex<mpsc::Receiver<Op>>>,
    options: WriterOptions,
    shutdown: CancellationToken,
) {
    let mut batch: Vec<Op> = Vec::with_capacity(options.batch_max);
    loop {
        {
            let mut rx = rx.lock().await;
            let first = tokio::select! {
                op = rx.recv() => op,
                () = shutdown.cancelled() => {
                    // Drain what is already queued, then stop.
                    rx.try_recv().ok()
                }
            };
            let Some(first) = first else { return };
            batch.push(first);
            while batch.len() < options.batch_max {
                match rx.try_recv() {
                    Ok(op) => batch.push(op),
                    Err(_) => break,
                }
            }
        }
        write_batch(&store, &mut batch, options.timezone).await;
    }
}

async fn write_batch(store: &Store, batch: &mut Vec<Op>, tz: chrono_tz::Tz) {
    let mut rows = Vec::new();
    let mut events = Vec::new();
    let mut waiters = Vec::new();
    let mut marks = Vec::new();
    let mut mark_waiters = Vec::new();
    for op in batch.drain(..) {
        match op {
            Op::Accept { row, event, done } => {
                rows.push(row);
                events.push(event);
                waiters.push(done);
            }
            Op::Mark(mark, done) => {
                if let Some(done) = done {
                    mark_waiters.push((mark.id, done));
                }
                marks.push(mark);
            }
        }
    }
    match commit(store, &rows, &events, &marks, tz).await {
        Ok(outcomes) => {
            for (done, outcome) in waiters.into_iter().zip(outcomes) {
                let _ = done.send(Ok(outcome));
            }
            for (id, done) in mark_waiters {
                let _ = done.send(Ok(Accepted::New { id }));
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, rows = rows.len(), "group commit failed");
            let err = WriteError::from(&e);
            for done in waiters
                .into_iter()
                .chain(mark_waiters.into_iter().map(|(_, d)| d))
            {
                let _ = done.send(Err(err.clone()));
            }
        }
    }
}

async fn commit(
    store: &Store,
    rows: &[NewInbox],
    events: &[Arc<Event>],
    marks: &[Processed],
    tz: chrono_tz::Tz,
) -> Result<Vec<Accepted>, StoreError> {
    let mut tx = store.begin_write().await?;
    let outcomes = if rows.is_empty() {
        Vec::new()
    } else {
        inbox::insert_batch(&mut tx, rows).await?
    };
    let fresh = events
        .iter()
        .zip(&outcomes)
        .filter(|(_, o)| matches!(o, Accepted::New { .. }))
        .map(|(e, _)| e.as_ref());
    let changes = members::changes_for(fresh, tz);
    store::members::apply(&mut tx, &changes).await?;
    if !marks.is_empty() {
        inbox::mark_processed(&mut tx, marks).await?;
    }
    tx.commit().await?;
    Ok(outcomes)
}
