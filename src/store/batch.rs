//! One group-commit transaction: inbox rows, the member changes of the new ones, and processed
//! marks. PostgreSQL runs it statement by statement; SQLite sends it in two multi-statement
//! queries (a hop to sqlx's SQLite thread costs more than the statements themselves on a busy box).

use std::collections::HashMap;

use sqlx::QueryBuilder;

use super::inbox::{
    self, push_insert_inbox, push_mark_plain, Accepted, InsertedKey, NewInbox, Processed, CHUNK,
};
use super::members::{self, MemberChanges};
use super::{Pool, Store, StoreError};

/// Writes one batch atomically. `changes_for` turns the outcomes (which rows are new) into the
/// member changes to apply in the same transaction.
pub async fn commit_batch(
    store: &Store,
    rows: &[NewInbox],
    marks: &[Processed],
    changes_for: impl FnOnce(&[Accepted]) -> MemberChanges,
) -> Result<Vec<Accepted>, StoreError> {
    match store.pool() {
        Pool::Sqlite(pool) => {
            let mut conn = pool.acquire().await?;
            let result = commit_sqlite(&mut conn, rows, marks, changes_for).await;
            if result.is_err() {
                // The transaction was begun by hand, so it is ended by hand.
                let _ = sqlx::query("rollback").execute(&mut *conn).await;
            }
            result
        }
        Pool::Postgres(_) => {
            let mut tx = store.begin_write().await?;
            let outcomes = if rows.is_empty() {
                Vec::new()
            } else {
                inbox::insert_batch(&mut tx, rows).await?
            };
            members::apply(&mut tx, &changes_for(&outcomes)).await?;
            if !marks.is_empty() {
                inbox::mark_processed(&mut tx, marks).await?;
            }
            tx.commit().await?;
            Ok(outcomes)
        }
    }
}

async fn commit_sqlite(
    conn: &mut sqlx::pool::PoolConnection<sqlx::Sqlite>,
    rows: &[NewInbox],
    marks: &[Processed],
    changes_for: impl FnOnce(&[Accepted]) -> MemberChanges,
) -> Result<Vec<Accepted>, StoreError> {
    // Hop 1: begin, insert the inbox rows, learn which keys are new.
    let mut qb: QueryBuilder<sqlx::Sqlite> = QueryBuilder::new("begin immediate;\n");
    for chunk in rows.chunks(CHUNK) {
        push_insert_inbox!(qb, chunk.iter());
        qb.push(";\n");
    }
    let keys: Vec<InsertedKey> = qb
        .build_query_as::<InsertedKey>()
        .fetch_all(&mut **conn)
        .await?;
    let inserted: HashMap<(String, String), i64> = keys
        .into_iter()
        .map(|k| ((k.channel_id, k.dedupe_key), k.id))
        .collect();
    let outcomes = resolve(conn, rows, inserted).await?;

    // Hop 2: member changes, processed marks, commit.
    let changes = changes_for(&outcomes);
    let mut qb: QueryBuilder<sqlx::Sqlite> = QueryBuilder::new("");
    members::push_apply(&mut qb, &changes);
    let (plain, with_reply): (Vec<&Processed>, Vec<&Processed>) =
        marks.iter().partition(|m| m.reply.is_none());
    for chunk in plain.chunks(CHUNK) {
        let Some(at) = chunk.iter().map(|m| m.at).max() else {
            continue;
        };
        push_mark_plain!(qb, at, chunk.iter());
        qb.push(";\n");
    }
    for m in with_reply {
        qb.push("update inbox set processed_at = ");
        qb.push_bind(m.at);
        qb.push(", reply = ");
        qb.push_bind(m.reply.clone());
        qb.push(" where id = ");
        qb.push_bind(m.id);
        qb.push(";\n");
    }
    qb.push("commit");
    qb.build().execute(&mut **conn).await?;
    Ok(outcomes)
}

/// Maps rows to `New` (first copy of a key inserted now) or `Duplicate` (looked up: rare, retries).
async fn resolve(
    conn: &mut sqlx::pool::PoolConnection<sqlx::Sqlite>,
    rows: &[NewInbox],
    mut inserted: HashMap<(String, String), i64>,
) -> Result<Vec<Accepted>, StoreError> {
    let mut outcomes = Vec::with_capacity(rows.len());
    for row in rows {
        if let Some(id) = inserted.remove(&(row.channel_id.clone(), row.dedupe_key.clone())) {
            outcomes.push(Accepted::New { id });
            continue;
        }
        let (id, processed_at, reply): (i64, Option<i64>, Option<String>) =
            sqlx::query_as(inbox::SELECT_BY_KEY)
                .bind(&row.channel_id)
                .bind(&row.dedupe_key)
                .fetch_one(&mut **conn)
                .await?;
        outcomes.push(Accepted::Duplicate {
            id,
            processed: processed_at.is_some(),
            reply,
        });
    }
    Ok(outcomes)
}
