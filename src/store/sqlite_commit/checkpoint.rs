//! Checkpoints of the write-ahead log on a thread of their own.
//!
//! SQLite's automatic checkpoint runs inside the commit that crosses its threshold: the writer
//! copies the log into the database file and waits for two `fsync`s, and every callback queued
//! behind it waits too. Under wrk that was 6-9 % of the writer's wall time blocked on the disk,
//! with the CPU idle meanwhile (docs/benchmarks.md §2). Here a second connection
//! copies the log in the background (a PASSIVE checkpoint takes no lock that the writer needs)
//! at most every [`GATHER`], so a page written many times in between is copied once.
//!
//! The log starts over from its beginning only at a commit that finds all of it copied, and
//! under steady load the writer appends faster than that ever happens by itself. So once the
//! log holds [`RESTART_AT_PAGES`], the thread catches up to within a few hundred pages and then
//! copies those while holding the process's write turn: the writer waits a few milliseconds and
//! its next commit starts the log over. The writer keeps SQLite's automatic checkpoint as a
//! backstop, at [`WAL_BACKSTOP_PAGES`] instead of 1,000, for when this thread cannot keep up.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::store_error;
use crate::store::turn::WriteTurn;
use crate::store::StoreError;

/// How long the log gathers frames between two background checkpoints.
pub const GATHER: Duration = Duration::from_millis(100);

/// Log size (pages) at which a commit checkpoints by itself: about 40 MiB with 4 KiB pages.
pub const WAL_BACKSTOP_PAGES: u32 = 10_000;

/// Log size (pages) at which the thread makes the log start over (about 16 MiB).
pub const RESTART_AT_PAGES: i64 = 4_000;

/// Pages left to copy under the write turn, at most (unless the writer outruns the catch-up).
const LAST_PAGES: i64 = 256;

/// The background checkpointer of one database file. Dropping it stops the thread.
pub struct Checkpointer {
    nudge: Option<SyncSender<()>>,
    rounds: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Opens a connection of its own to the database at `path` and starts the thread.
    pub fn start(
        path: &Path,
        full_sync: bool,
        turn: Option<WriteTurn>,
        restart_at: i64,
    ) -> Result<Self, StoreError> {
        let conn = Connection::open(path).map_err(store_error)?;
        // The same durability as the writer: the checkpoint syncs the log, then the file.
        conn.execute_batch(if full_sync {
            "pragma synchronous = full;"
        } else {
            "pragma synchronous = normal;"
        })
        .map_err(store_error)?;
        // Only to wait for the write turn, with its timeout, from this plain thread.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(|e| StoreError::Other(format!("cannot start the checkpoint thread: {e}")))?;
        // One waiting nudge is enough: it means "something was committed since".
        let (nudge, nudges) = mpsc::sync_channel(1);
        let rounds = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&rounds);
        let thread = std::thread::Builder::new()
            .name("yunying-ckpt".into())
            .spawn(move || {
                let log = Log {
                    conn,
                    runtime,
                    turn,
                    restart_at,
                    failing: false,
                };
                run(log, &nudges, &counted);
            })
            .map_err(|e| StoreError::Other(format!("cannot start the checkpoint thread: {e}")))?;
        Ok(Self {
            nudge: Some(nudge),
            rounds,
            thread: Some(thread),
        })
    }

    /// Tells the thread that a commit added to the log. Never blocks.
    pub fn nudge(&self) {
        if let Some(nudge) = &self.nudge {
            // Full: a nudge is already waiting. Disconnected: the thread is gone (a panic),
            // and the writer's backstop checkpoint carries on alone.
            let _ = nudge.try_send(());
        }
    }

    /// Checkpoints finished so far (successful or not).
    pub fn rounds(&self) -> u64 {
        self.rounds.load(Ordering::Acquire)
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        // Closing the channel stops the thread within one checkpoint.
        self.nudge = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The thread's connection and what it needs to make the log start over.
struct Log {
    conn: Connection,
    runtime: tokio::runtime::Runtime,
    turn: Option<WriteTurn>,
    restart_at: i64,
    /// A failure is logged once until the next success.
    failing: bool,
}

fn run(mut log: Log, nudges: &Receiver<()>, rounds: &AtomicU64) {
    while nudges.recv().is_ok() {
        loop {
            log.round();
            rounds.fetch_add(1, Ordering::Release);
            match gather(nudges) {
                Gathered::Stop => return,
                Gathered::Committed => continue,
                Gathered::Nothing => break,
            }
        }
    }
}

impl Log {
    fn round(&mut self) {
        let Some((pages, copied)) = self.checkpoint() else {
            return;
        };
        let Some(turn) = self.turn.clone() else {
            return;
        };
        if pages < self.restart_at {
            return;
        }
        // Catch up while the writer goes on appending: each pass has less to copy.
        let mut left = pages - copied;
        for _ in 0..4 {
            if left <= LAST_PAGES {
                break;
            }
            let Some((pages, copied)) = self.checkpoint() else {
                return;
            };
            left = pages - copied;
        }
        // The last pages with the writer held back: its next commit finds the log all copied.
        // No turn within the writers' timeout: leave the restart to a later round.
        if let Ok(_turn) = self.runtime.block_on(turn.take()) {
            self.checkpoint();
        }
    }

    /// One PASSIVE checkpoint: copies what no reader still needs, waits for nobody. Returns
    /// the log's size and how much of it is now copied, in pages; `None` when another
    /// checkpoint was running (the writer's backstop) or this one failed.
    fn checkpoint(&mut self) -> Option<(i64, i64)> {
        let result = self
            .conn
            .query_row("pragma wal_checkpoint(passive)", [], |row| {
                Ok((row.get::<_, i64>(0)?, row.get(1)?, row.get(2)?))
            });
        match result {
            Ok((busy, pages, copied)) => {
                if self.failing {
                    tracing::info!("background WAL checkpoints work again");
                }
                self.failing = false;
                (busy == 0).then_some((pages, copied))
            }
            Err(e) => {
                if !self.failing {
                    tracing::warn!(error = %e, "background WAL checkpoint failed; commits will checkpoint by themselves");
                }
                self.failing = true;
                None
            }
        }
    }
}

enum Gathered {
    Stop,
    /// Something was committed while gathering: checkpoint again now.
    Committed,
    Nothing,
}

/// Waits out [`GATHER`], watching for commits and for the writer going away.
fn gather(nudges: &Receiver<()>) -> Gathered {
    let until = Instant::now() + GATHER;
    let mut committed = false;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        match nudges.recv_timeout(left) {
            Ok(()) => committed = true,
            Err(RecvTimeoutError::Disconnected) => return Gathered::Stop,
            Err(RecvTimeoutError::Timeout) => {
                return if committed {
                    Gathered::Committed
                } else {
                    Gathered::Nothing
                }
            }
        }
    }
}
