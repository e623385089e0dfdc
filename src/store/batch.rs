//! One group-commit transaction: inbox rows, the member changes of the new ones, and processed
//! marks. SQLite runs it on the writer's own connection ([`super::sqlite_commit`]); PostgreSQL
//! in a few fixed statements through the pool (`pg_commit`).

use super::inbox::{Accepted, NewInbox, Processed};
use super::lifecycle::StageChange;
use super::members::{CreatedMember, MemberChanges};
use super::pg_commit;
use super::sqlite_commit::SqliteCommitter;
use super::{Backend, Store, StoreError};

/// What one group commit wrote.
#[derive(Debug)]
pub struct Committed {
    /// One outcome per inbox row, in input order.
    pub accepted: Vec<Accepted>,
    /// Why the stage changes were rolled back while the rest committed.
    pub stages_failed: Option<StoreError>,
}

/// How one writer commits its batches.
pub enum BatchCommitter {
    Sqlite(SqliteCommitter),
    Postgres(Store, pg_commit::TableGrowth),
}

impl BatchCommitter {
    /// A committer for `store`'s database (`url` is the same database's URL).
    pub fn for_store(store: &Store, url: &str, sqlite_full_sync: bool) -> Result<Self, StoreError> {
        Ok(match store.backend() {
            Backend::Sqlite => Self::Sqlite(SqliteCommitter::open(url, sqlite_full_sync)?),
            Backend::Postgres => Self::Postgres(store.clone(), pg_commit::TableGrowth::new(url)),
        })
    }

    /// Whether stage changes go into the group commit itself (SQLite: a second transaction on
    /// another connection would also make the writer drop its page cache). PostgreSQL's run in
    /// the round of batched writes, on one task, so parallel group commits never take the same
    /// stage rows in different orders.
    pub fn commits_stages(&self) -> bool {
        matches!(self, Self::Sqlite(_))
    }

    /// Writes one batch atomically. `changes_for` turns the outcomes (which rows are new) into
    /// the member changes to apply in the same transaction. `stages` must be empty unless
    /// [`Self::commits_stages`]. On PostgreSQL, `first_stages` gives the stages to record, in the
    /// same transaction, for the members the batch created (their stage check then has nothing
    /// to read or write); SQLite's checks read the writer's own file and write inside the group
    /// commit already, so it is not called there.
    pub async fn commit_batch(
        &mut self,
        rows: &[NewInbox],
        marks: &[Processed],
        stages: &[StageChange],
        changes_for: impl FnOnce(&[Accepted]) -> MemberChanges,
        first_stages: impl FnOnce(&MemberChanges, &[CreatedMember]) -> Vec<StageChange>,
    ) -> Result<Committed, StoreError> {
        match self {
            Self::Sqlite(committer) => {
                let _turn = match committer.turn() {
                    Some(turn) => Some(turn.take().await?),
                    None => None,
                };
                committer.commit_batch(rows, marks, stages, changes_for)
            }
            Self::Postgres(store, growth) => {
                debug_assert!(stages.is_empty(), "PostgreSQL stages go through the rounds");
                let mut tx = store.begin_write().await?;
                let outcomes =
                    pg_commit::write_batch(&mut tx, rows, marks, changes_for, first_stages).await?;
                tx.commit().await?;
                growth.note_inserted(
                    outcomes
                        .iter()
                        .filter(|o| matches!(o, Accepted::New { .. }))
                        .count(),
                );
                Ok(Committed {
                    accepted: outcomes,
                    stages_failed: None,
                })
            }
        }
    }

    /// PostgreSQL: prepares the group commit's statements on `connections` of the store's
    /// connections (all the writers' pool holds), so the first burst does not pay for it.
    pub async fn warm_up(store: &Store, connections: u32) -> Result<(), StoreError> {
        match store.pool() {
            super::Pool::Postgres(pool) => pg_commit::warm_up(pool, connections).await,
            super::Pool::Sqlite(_) => Ok(()),
        }
    }

    /// Stops this committer's writes (the pool is closed separately).
    pub fn close(&mut self) {
        if let Self::Sqlite(committer) = self {
            committer.close();
        }
    }
}
