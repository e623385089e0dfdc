//! Group commit: concurrent callbacks hand their inbox row to a writer task, which writes
//! everything queued so far (inbox rows + member changes + processed marks, on SQLite the
//! reply-less ones once enough have gathered: `writer/marks.rs`) in one transaction and then
//! answers each caller. Every answer still waits for its own durable write; the platform is
//! acknowledged only after the commit. What a delivery changes in the registry is the layer
//! above's to say ([`BatchRules`]): this layer stores it, knowing nothing of events or members.

mod commit;
mod marks;
mod rounds;

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Mutex};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use commit::{commit_and_answer, Answers, Commit};
use marks::MarkQueue;
use rounds::{BatchedWrite, BoxFuture, PendingStages, PendingWrite, Rounds};

use crate::store::batch::BatchCommitter;
use crate::store::inbox::{Accepted, NewInbox, Processed};
use crate::store::lifecycle::StageChange;
use crate::store::members::{CreatedMember, MemberChanges};
use crate::store::{self, Store, StoreError, Tx};

/// A delivery as the layer above hands it over with its inbox row (the writer only passes it
/// back to [`BatchRules`]).
pub type Delivery = Arc<dyn std::any::Any + Send + Sync>;

/// What the group commit asks of the layer above, batch by batch.
pub trait BatchRules: Send + Sync + 'static {
    /// The registry changes (members, groups, activity) of the deliveries new in a batch.
    fn changes(&self, fresh: &mut dyn Iterator<Item = &Delivery>) -> MemberChanges;
    /// The first stage rows of the members the batch `created`, recorded in its transaction
    /// (PostgreSQL); none when stages are not checked on events.
    fn first_stages<'a>(
        &self,
        changes: &MemberChanges,
        created: &'a [CreatedMember],
        now_ms: i64,
    ) -> Vec<(&'a CreatedMember, StageChange)>;
    /// After the commit, before the answers: the members whose first stage was committed.
    fn staged(&self, scope: &str, user_id: &str, now_ms: i64);
    /// A group commit of `rows` deliveries took `secs`.
    fn committed(&self, secs: f64, rows: usize);
}

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
        event: Delivery,
        done: oneshot::Sender<Result<Accepted, WriteError>>,
    },
    /// A mark whose caller waits for its commit (the reply-less ones go through the pending marks).
    Mark(Processed, oneshot::Sender<Result<Accepted, WriteError>>),
    /// Wakes the writer for the processed marks waiting in [`InboxWriter::mark_processed`].
    Flush,
    /// Closes the writer's connection pool (shutdown; tests simulate an outage with it).
    Close(oneshot::Sender<()>),
    /// Another write transaction (e.g. an ops adjustment). On SQLite the writer runs it between
    /// batches, so it never waits in the busy handler for the group commit's lock; on PostgreSQL
    /// it starts it beside them on the writers' pool.
    Job(Job),
    /// A write that joins one transaction with the other batched writes of the same round
    /// (e.g. sign-ins): one commit serves them all.
    Batched(Box<dyn BatchedWrite>),
    /// Members' new lifecycle stages. All those queued together go out in multi-row statements:
    /// on SQLite inside the group commit itself, on PostgreSQL as one write of the next round.
    Stages(Vec<StageChange>, oneshot::Sender<Result<(), WriteError>>),
}

type Job = Box<
    dyn FnOnce(Store) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> + Send,
>;

/// Handle to the writer tasks. Cheap to clone.
#[derive(Clone)]
pub struct InboxWriter {
    tx: mpsc::Sender<Op>,
    /// Reply-less processed marks waiting to ride along with a batch ([`marks`]): they cost no
    /// queue hop each.
    marks: PendingMarks,
}

type PendingMarks = Arc<std::sync::Mutex<MarkQueue>>;

fn lock_marks(marks: &PendingMarks) -> std::sync::MutexGuard<'_, MarkQueue> {
    marks.lock().unwrap_or_else(|p| p.into_inner())
}

/// Settings of the writer pool.
#[derive(Clone)]
pub struct WriterOptions {
    pub batch_max: usize,
    pub writers: usize,
    /// The registry changes of deliveries, first stages and commit timings.
    pub rules: Arc<dyn BatchRules>,
}

/// The OS thread running the writers; join it after shutdown.
pub struct WriterThread(std::thread::JoinHandle<()>);

impl WriterThread {
    /// Waits (blocking) for the writers to finish their queued work.
    pub fn join(self) {
        let _ = self.0.join();
    }
}

impl InboxWriter {
    /// Starts the writers on their own thread and single-threaded runtime, with their own
    /// connection pool. The hops between a writer and the database then never queue behind
    /// HTTP work on the main runtime, which otherwise stretches every group commit.
    pub fn spawn_dedicated(
        url: &str,
        store_options: &store::StoreOptions,
        options: WriterOptions,
        shutdown: CancellationToken,
    ) -> Result<(Self, WriterThread), StoreError> {
        let (tx, rx) = mpsc::channel(64 * 1024);
        let sqlite = store::Backend::of_url(url) == store::Backend::Sqlite;
        let marks = Arc::new(std::sync::Mutex::new(if sqlite {
            MarkQueue::gathering()
        } else {
            MarkQueue::immediate()
        }));
        let marks_in_thread = Arc::clone(&marks);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let url = url.to_owned();
        let mut store_options = store_options.clone();
        if sqlite {
            // One writer, one transaction at a time: two connections are plenty (each holds a
            // page cache of its own).
            store_options.max_connections = store_options.max_connections.min(2);
        }
        let thread = std::thread::Builder::new()
            .name("yunying-writer".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(StoreError::Other(e.to_string())));
                        return;
                    }
                };
                runtime.block_on(serve_writers(
                    url,
                    store_options,
                    options,
                    rx,
                    marks_in_thread,
                    ready_tx,
                    shutdown,
                ));
            })
            .map_err(|e| StoreError::Other(e.to_string()))?;
        ready_rx
            .recv()
            .map_err(|_| StoreError::Other("writer thread died".into()))??;
        Ok((Self { tx, marks }, WriterThread(thread)))
    }

    /// Runs a write transaction on the writers' connection pool: on SQLite queued with the group
    /// commits, on PostgreSQL started by the writer beside them.
    pub async fn run<T, F, Fut>(&self, f: F) -> Result<T, WriteError>
    where
        F: FnOnce(Store) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        self.ask(|done| {
            let job: Job = Box::new(move |store| {
                Box::pin(async move {
                    let _ = done.send(f(store).await);
                })
            });
            Op::Job(job)
        })
        .await
    }

    /// Runs `write` inside a transaction shared with the other batched writes queued at the same
    /// time, and answers after their common commit. `write` must be safe to run again: if any
    /// write of the round fails, the round is rolled back and each write retried on its own.
    pub async fn run_batched<T, F>(&self, write: F) -> Result<Result<T, StoreError>, WriteError>
    where
        T: Send + 'static,
        F: for<'a> Fn(&'a mut Tx) -> BoxFuture<'a, Result<T, StoreError>> + Send + Sync + 'static,
    {
        self.ask(|done| {
            Op::Batched(Box::new(PendingWrite {
                write,
                result: None,
                done,
            }))
        })
        .await
    }

    /// Queues `op` with a fresh answer channel and waits for the writer's answer.
    async fn ask<T>(&self, op: impl FnOnce(oneshot::Sender<T>) -> Op) -> Result<T, WriteError> {
        let stopped = || WriteError::Unavailable("writer stopped".into());
        let (done, wait) = oneshot::channel();
        self.tx.send(op(done)).await.map_err(|_| stopped())?;
        wait.await.map_err(|_| stopped())
    }

    /// Records members' new lifecycle stages and waits for their commit. Stage changes queued
    /// at the same time share statements and one commit.
    pub async fn record_stages(&self, changes: Vec<StageChange>) -> Result<(), WriteError> {
        self.ask(|done| Op::Stages(changes, done)).await?
    }

    /// Closes the writers' connection pool: every later write fails as unavailable.
    pub async fn close_database(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Op::Close(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    /// Writes the row (and the member changes of its event) durably; returns whether it is new.
    pub async fn accept(&self, row: NewInbox, event: Delivery) -> Result<Accepted, WriteError> {
        self.ask(|done| Op::Accept { row, event, done }).await?
    }

    /// Queues a processed mark; it rides along with a later batch (`writer/marks.rs`). Losing it
    /// in a crash only means the sweeper re-runs an idempotent handler.
    pub fn mark_processed(&self, mark: Processed) {
        let first = lock_marks(&self.marks).push(mark, Instant::now);
        // The first waiting mark wakes the writer, which then knows when to write it; later
        // ones ride along.
        if !first {
            return;
        }
        if let Err(mpsc::error::TrySendError::Full(op)) = self.tx.try_send(Op::Flush) {
            let tx = self.tx.clone();
            tokio::spawn(async move {
                let _ = tx.send(op).await;
            });
        }
    }

    /// Writes a processed mark and waits for the commit, so a retry finds the stored reply.
    pub async fn mark_processed_durably(&self, mark: Processed) -> Result<(), WriteError> {
        self.ask(|done| Op::Mark(mark, done)).await?.map(|_| ())
    }
}

/// The writer thread's work: connect, make the committers, say whether that worked, then run
/// the writers until shutdown and close the pool.
async fn serve_writers(
    url: String,
    store_options: store::StoreOptions,
    options: WriterOptions,
    rx: mpsc::Receiver<Op>,
    marks: PendingMarks,
    ready_tx: std::sync::mpsc::Sender<Result<(), StoreError>>,
    shutdown: CancellationToken,
) {
    let store = match Store::connect(&url, &store_options).await {
        Ok(store) => store,
        Err(e) => {
            let _ = ready_tx.send(Err(e));
            return;
        }
    };
    let mut committers = Vec::new();
    for _ in 0..options.writers.max(1) {
        match BatchCommitter::for_store(&store, &url, store_options.sqlite_full_sync) {
            Ok(c) => committers.push(c),
            Err(e) => {
                let _ = ready_tx.send(Err(e));
                return;
            }
        }
    }
    if store_options.open_all {
        let all = store_options.max_connections;
        if let Err(e) = BatchCommitter::warm_up(&store, all).await {
            tracing::warn!(error = %e, "preparing the group commit's statements failed");
        }
    }
    let _ = ready_tx.send(Ok(()));
    let rx = Arc::new(Mutex::new(rx));
    let (rounds, rounds_task) = Rounds::start(&store, options.batch_max);
    let tasks: Vec<_> = committers
        .into_iter()
        .map(|committer| {
            tokio::spawn(run_writer(
                store.clone(),
                committer,
                Arc::clone(&rx),
                Arc::clone(&marks),
                rounds.clone(),
                options.clone(),
                shutdown.clone(),
            ))
        })
        .collect();
    for task in tasks {
        let _ = task.await;
    }
    drop(rounds);
    if let Some(task) = rounds_task {
        let _ = task.await;
    }
    store.close().await;
}

async fn run_writer(
    store: Store,
    mut committer: BatchCommitter,
    rx: Arc<Mutex<mpsc::Receiver<Op>>>,
    pending_marks: PendingMarks,
    rounds: Rounds,
    options: WriterOptions,
    shutdown: CancellationToken,
) {
    let mut batch: Vec<Op> = Vec::with_capacity(options.batch_max);
    loop {
        let stop = {
            let mut rx = rx.lock().await;
            let marks_due = lock_marks(&pending_marks).due_at();
            let woken = tokio::select! {
                op = rx.recv() => op.map_or(Woken::Stop, Woken::Op),
                () = sleep_until(marks_due) => Woken::MarksDue,
                // Drain what is already queued, then stop.
                () = shutdown.cancelled() => rx.try_recv().map_or(Woken::Stop, Woken::Op),
            };
            let stop = matches!(woken, Woken::Stop);
            if let Woken::Op(op) = woken {
                batch.push(op);
            }
            while batch.len() < options.batch_max {
                match rx.try_recv() {
                    Ok(op) => batch.push(op),
                    Err(_) => break,
                }
            }
            stop
        };
        let marks = lock_marks(&pending_marks).take_due(Instant::now(), stop);
        write_batch(&store, &mut committer, &mut batch, marks, &rounds, &options).await;
        if stop {
            return;
        }
    }
}

/// Why a writer woke up.
enum Woken {
    Op(Op),
    /// The waiting processed marks are due ([`marks`]).
    MarksDue,
    /// Shutdown with nothing left queued, or every sender gone: write what waits, then stop.
    Stop,
}

/// Sleeps until `at`; forever without one.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn write_batch(
    store: &Store,
    committer: &mut BatchCommitter,
    batch: &mut Vec<Op>,
    mut marks: Vec<Processed>,
    rounds: &Rounds,
    options: &WriterOptions,
) {
    let mut rows = Vec::new();
    let mut events = Vec::new();
    let mut waiters = Vec::new();
    let mut mark_waiters = Vec::new();
    let mut jobs = Vec::new();
    let mut batched = Vec::new();
    let mut stages = PendingStages::default();
    for op in batch.drain(..) {
        match op {
            Op::Accept { row, event, done } => {
                rows.push(row);
                events.push(event);
                waiters.push(done);
            }
            Op::Job(job) => jobs.push(job),
            Op::Batched(write) => batched.push(write),
            Op::Flush => {}
            Op::Close(done) => {
                committer.close();
                store.close().await;
                let _ = done.send(());
            }
            Op::Mark(mark, done) => {
                mark_waiters.push((mark.id, done));
                marks.push(mark);
            }
            Op::Stages(changes, done) => {
                stages.changes.extend(changes);
                stages.waiters.push(done);
            }
        }
    }
    if !stages.waiters.is_empty() && !committer.commits_stages() {
        batched.push(Box::new(std::mem::take(&mut stages)) as Box<dyn BatchedWrite>);
    }
    if !(rows.is_empty() && marks.is_empty() && stages.waiters.is_empty()) {
        let commit = Commit {
            rows: &rows,
            events: &events,
            marks: &marks,
            stages: &stages.changes,
        };
        let answers = Answers {
            accepts: waiters,
            marks: mark_waiters,
            stages: stages.waiters,
        };
        commit_and_answer(committer, commit, answers, options).await;
    }
    if !batched.is_empty() {
        rounds.run(store, batched).await;
    }
    for job in jobs {
        if store.backend() == store::Backend::Sqlite {
            // SQLite: between batches, so the job never waits for the group commit's lock.
            job(store.clone()).await;
        } else {
            // PostgreSQL: beside the batches, so a job waiting on a row lock (an ops adjustment
            // behind a sign-in) cannot hold up the callbacks behind it.
            tokio::spawn(job(store.clone()));
        }
    }
}
