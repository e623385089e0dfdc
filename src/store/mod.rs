//! Storage behind one layer: SQLite (embedded default) or PostgreSQL, chosen by URL scheme.
//! The same SQL text serves both backends (`$1…$n` bind parameters); the [`on_pool!`] and
//! [`on_tx!`] macros paste one expression into both arms so each type-checks on its backend.

pub mod batch;
pub mod commands;
pub mod contacts;
mod error;
pub mod faq;
pub mod inbox;
pub mod layers;
pub mod leases;
pub mod lifecycle;
pub mod members;
pub mod outbox;
mod pg_commit;
pub mod points;
pub mod recall;
pub mod redemption;
pub mod registry;
pub mod rules;
pub mod schedule;
pub mod segments;
pub mod sqlite_commit;
pub mod stream;
pub mod tags;
pub mod turn;
pub mod windows;
pub mod writer;

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

pub use error::StoreError;

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend a database URL names: `sqlite:` URLs are SQLite's, every other (validated)
    /// URL PostgreSQL's.
    pub fn of_url(url: &str) -> Self {
        if url.starts_with("sqlite:") {
            Self::Sqlite
        } else {
            Self::Postgres
        }
    }
}

/// A connection pool of either backend.
#[derive(Debug, Clone)]
pub enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// A boxed future borrowing for `'a` (write closures over a transaction).
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// An open write transaction of either backend.
pub enum Tx {
    Sqlite(SqliteTx),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

/// A SQLite write transaction and the process's write turn on its file ([`turn`]), held until
/// commit or rollback. Derefs to the connection, as sqlx's own transaction does.
pub struct SqliteTx {
    tx: sqlx::Transaction<'static, sqlx::Sqlite>,
    _turn: Option<turn::Turn>,
}

impl SqliteTx {
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }

    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.tx.rollback().await
    }
}

impl std::ops::Deref for SqliteTx {
    type Target = sqlx::SqliteConnection;

    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl std::ops::DerefMut for SqliteTx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}

/// Runs one expression against whichever pool is active: `on_pool!(pool, p => query.fetch_one(p))`.
#[macro_export]
macro_rules! on_pool {
    ($pool:expr, $p:ident => $body:expr) => {
        match $pool {
            $crate::store::Pool::Sqlite($p) => $body,
            $crate::store::Pool::Postgres($p) => $body,
        }
    };
}

/// Runs one expression inside whichever transaction is open: `on_tx!(tx, c => q.execute(&mut **c))`.
#[macro_export]
macro_rules! on_tx {
    ($tx:expr, $c:ident => $body:expr) => {
        match $tx {
            $crate::store::Tx::Sqlite($c) => $body,
            $crate::store::Tx::Postgres($c) => $body,
        }
    };
}

/// Binds segment values ([`segments::Bind`]) in order onto a query.
macro_rules! bind_all {
    ($q:expr, $binds:expr) => {{
        let mut q = $q;
        for b in $binds {
            q = match b {
                $crate::store::segments::Bind::Text(s) => q.bind(s.clone()),
                $crate::store::segments::Bind::Int(i) => q.bind(*i),
            };
        }
        q
    }};
}
pub(crate) use bind_all;

/// SQLite page cache of each pool connection (negative: KiB).
const POOL_CACHE_SIZE: &str = "-8000";

/// Pool settings taken from the configuration.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    /// `true` for SQLite `synchronous = FULL`.
    pub sqlite_full_sync: bool,
    /// PostgreSQL: open every connection at start and keep it (the server; a one-off command
    /// opens what it uses).
    pub open_all: bool,
    /// PostgreSQL: check each connection with a round trip before lending it out. The group
    /// commit turns it off: the check was one of its six round trips, and a connection that did
    /// die fails its batch with a 503 that the platform retries, and is then replaced.
    pub ping_before_use: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 8,
            acquire_timeout: Duration::from_secs(1),
            sqlite_full_sync: false,
            open_all: false,
            ping_before_use: true,
        }
    }
}

/// The storage handle: cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pool: Pool,
    /// SQLite: this process's write turn on the file (none for in-memory databases).
    turn: Option<turn::WriteTurn>,
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

impl Store {
    /// Connects by URL scheme. SQLite files (and their folder) are created on first use, in WAL mode.
    pub async fn connect(url: &str, options: &StoreOptions) -> Result<Self, StoreError> {
        if Backend::of_url(url) == Backend::Sqlite {
            let connect = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(if options.sqlite_full_sync {
                    SqliteSynchronous::Full
                } else {
                    SqliteSynchronous::Normal
                })
                .busy_timeout(turn::TURN_TIMEOUT)
                .foreign_keys(true)
                .pragma("temp_store", "memory")
                // Per connection, and a pool has several: with 32 MiB each, reading a million
                // members filled 8 × 32 MiB in the app pool alone. The OS keeps the file cached
                // anyway; the writer's own connection keeps a larger cache for the hot pages.
                .pragma("cache_size", POOL_CACHE_SIZE)
                // The writer's checkpointer copies the log; a pool commit checkpoints only when
                // the log has grown past the same backstop as the writer's.
                .pragma(
                    "wal_autocheckpoint",
                    sqlite_commit::checkpoint::WAL_BACKSTOP_PAGES.to_string(),
                );
            if let Some(parent) = connect.get_filename().parent() {
                if !parent.as_os_str().is_empty() {
                    std::fs::create_dir_all(parent).map_err(|e| {
                        StoreError::Config(format!("cannot create {}: {e}", parent.display()))
                    })?;
                }
            }
            let turn = turn::WriteTurn::for_file(connect.get_filename());
            // A local file needs no liveness ping before every use; it cost a round trip per batch.
            let pool = SqlitePoolOptions::new()
                .test_before_acquire(false)
                .max_connections(options.max_connections)
                .acquire_timeout(options.acquire_timeout)
                .connect_with(connect)
                .await?;
            Ok(Self {
                pool: Pool::Sqlite(pool),
                turn,
            })
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let mut connect = PgConnectOptions::from_str(url)?;
            // Our statements are short and many: JIT compiling one cost 85 ms where running it
            // took 4 (a 2,000-member window of the periodic job). A URL that sets jit keeps it.
            if !url.contains("jit") {
                connect = connect.options([("jit", "off")]);
            }
            // The server opens every connection at start and keeps it: opened on demand, a
            // burst of callbacks right after start-up also waited for new server processes and
            // their cold caches (p99 of the first seconds at 5,000/s: 24–29 ms against 18–20 ms).
            let keep_open = if options.open_all {
                options.max_connections
            } else {
                0
            };
            let pool = PgPoolOptions::new()
                .test_before_acquire(options.ping_before_use)
                .min_connections(keep_open)
                .max_connections(options.max_connections)
                .acquire_timeout(options.acquire_timeout)
                .connect_with(connect)
                .await?;
            Ok(Self {
                pool: Pool::Postgres(pool),
                turn: None,
            })
        } else {
            Err(StoreError::Config(
                "database.url must start with sqlite:, postgres:// or postgresql://".into(),
            ))
        }
    }

    /// Applies pending migrations of this backend.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match &self.pool {
            Pool::Sqlite(p) => SQLITE_MIGRATIONS.run(p).await?,
            Pool::Postgres(p) => POSTGRES_MIGRATIONS.run(p).await?,
        }
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// SQLite: this process's write turn on the database file.
    pub fn write_turn(&self) -> Option<&turn::WriteTurn> {
        self.turn.as_ref()
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Opens a write transaction (`BEGIN IMMEDIATE` on SQLite so writers queue up front
    /// instead of failing to upgrade a read lock).
    pub async fn begin_write(&self) -> Result<Tx, StoreError> {
        Ok(match &self.pool {
            Pool::Sqlite(p) => {
                // The turn first: waiting in line, not in SQLite's sleeping busy handler.
                let turn = match &self.turn {
                    Some(t) => Some(t.take().await?),
                    None => None,
                };
                Tx::Sqlite(SqliteTx {
                    tx: p.begin_with("begin immediate").await?,
                    _turn: turn,
                })
            }
            Pool::Postgres(p) => Tx::Postgres(p.begin().await?),
        })
    }

    /// `true` when the database answers a trivial query.
    pub async fn ping(&self) -> bool {
        on_pool!(&self.pool, p => sqlx::query("select 1").execute(p).await.is_ok())
    }

    pub async fn close(&self) {
        on_pool!(&self.pool, p => p.close().await);
    }
}

impl Tx {
    pub async fn commit(self) -> Result<(), StoreError> {
        on_tx!(self, t => t.commit().await?);
        Ok(())
    }

    pub async fn rollback(self) -> Result<(), StoreError> {
        on_tx!(self, t => t.rollback().await?);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn both_migration_folders_list_the_same_versions() {
        let names = |dir: &str| {
            let mut v: Vec<String> =
                std::fs::read_dir(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir))
                    .expect("migrations folder")
                    .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                    .collect();
            v.sort();
            v
        };
        assert_eq!(names("migrations/sqlite"), names("migrations/postgres"));
    }
}
