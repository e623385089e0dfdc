//! PostgreSQL's group commit in four round trips (begin, inbox, members, memberships with the
//! first stages of new members; commit) with statements whose text never changes: the rows go in
//! as arrays (`unnest`), so each connection prepares and plans every statement once. Multi-row
//! `values (…)` lists gave one text per batch size, more than the connection's statement cache
//! holds, and each callback paid for nine round trips of its batch.

use std::collections::HashMap;

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use sqlx::{Connection as _, PgConnection};

use super::inbox::{self, Accepted, InsertedKey, NewInbox, Processed};
use super::lifecycle::StageChange;
use super::members::{self, CreatedMember, MemberChanges};
use super::{StoreError, Tx};

/// The plain processed marks (a row already marked keeps its time), and the new inbox rows.
const INSERT_INBOX_AND_MARK: &str = "with marked as ( \
       update inbox set processed_at = coalesce(processed_at, $9) where id = any($10) \
     ) \
     insert into inbox (channel_id, dedupe_key, kind, sender, group_id, occurred_at, received_at, payload) \
     select * from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int8[], $7::int8[], $8::text[]) \
     on conflict (channel_id, dedupe_key) do nothing \
     returning id, channel_id, dedupe_key";

/// Members, and groups: new groups inserted, known ones touched only when their name changed or
/// a minute has passed (a busy group's row, rewritten by every batch, queued the writers).
/// Returns the members it created: a row that `on conflict do update` rewrote carries the
/// updating transaction's lock in `xmax`, a row it inserted has none.
fn upsert_members_and_groups() -> String {
    format!(
        "with upserted as ( \
           insert into members (scope, platform_user_id, display_name, first_seen_at, last_active_at, message_count) \
           select * from unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::int8[], $6::int8[]) \
           {members_tail} \
           returning id, scope, platform_user_id, xmax = 0 as created \
         ), touched as ( \
           update chat_groups g set name = coalesce(v.name, g.name), \
             last_active_at = case when v.at > g.last_active_at then v.at else g.last_active_at end \
           from unnest($7::text[], $8::text[], $9::text[], $10::int8[]) as v (scope, group_id, name, at) \
           where g.scope = v.scope and g.platform_group_id = v.group_id \
             and (v.at > g.last_active_at + {granularity} \
                  or (v.name is not null and (g.name is null or g.name <> v.name))) \
         ), inserted_groups as ( \
           insert into chat_groups (scope, platform_group_id, name, first_seen_at, last_active_at) \
           select v.scope, v.group_id, v.name, v.at, v.at \
           from unnest($7::text[], $8::text[], $9::text[], $10::int8[]) as v (scope, group_id, name, at) \
           {groups_tail} \
         ) \
         select id, scope, platform_user_id from upserted where created",
        members_tail = members::UPSERT_MEMBERS_TAIL,
        granularity = members::GROUP_ACTIVITY_GRANULARITY_MS,
        groups_tail = members::INSERT_GROUPS_TAIL,
    )
}

/// Memberships and daily activity, after `stage_ctes` (empty, or items of `with` that end in a
/// comma). Ids come from scalar subqueries on the unique keys (the members and groups of this
/// batch are visible: they were written by the statement before); `order by` fixes the lock order
/// between parallel writers.
fn upsert_memberships_and_activity(stage_ctes: &str) -> String {
    format!(
        "with {stage_ctes}joined as ( \
           insert into group_members (group_id, member_id, joined_at, left_at) \
           select (select g.id from chat_groups g where g.scope = v.scope and g.platform_group_id = v.group_id), \
             (select m.id from members m where m.scope = v.scope and m.platform_user_id = v.user_id), \
             v.at, v.left_at \
           from unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::int8[]) as v (scope, group_id, user_id, at, left_at) \
           order by 1, 2 \
           {membership_tail} \
         ) \
         insert into member_daily_activity (day, member_id, message_count, event_count) \
         select v.day, (select m.id from members m where m.scope = v.scope and m.platform_user_id = v.user_id), \
           v.messages, v.events \
         from unnest($6::text[], $7::text[], $8::int4[], $9::int8[], $10::int8[]) as v (scope, user_id, day, messages, events) \
         order by 1, 2 \
         {activity_tail}",
        membership_tail = members::UPSERT_MEMBERSHIP_TAIL,
        activity_tail = members::UPSERT_ACTIVITY_TAIL,
    )
}

/// The statement texts, built once.
struct Statements {
    members_and_groups: String,
    memberships_and_activity: String,
    /// The same with the first stages of the members the batch created: one round trip where a
    /// batch of new members had three (memberships, stages, their history).
    memberships_activity_and_stages: String,
}

fn statements() -> &'static Statements {
    static TEXTS: std::sync::OnceLock<Statements> = std::sync::OnceLock::new();
    TEXTS.get_or_init(|| Statements {
        members_and_groups: upsert_members_and_groups(),
        memberships_and_activity: upsert_memberships_and_activity(""),
        memberships_activity_and_stages: upsert_memberships_and_activity(&format!(
            "{}, ",
            super::lifecycle::postgres_ctes(MEMBERSHIP_PARAMETERS + 1)
        )),
    })
}

/// Parameters of the memberships and activity statement; the stages' come after them.
const MEMBERSHIP_PARAMETERS: usize = 10;

/// Writes one batch inside `tx` (a PostgreSQL transaction): the inbox rows with the plain
/// processed marks, the member changes of the new rows, the first stages that `first_stages`
/// gives for the members this batch created, and the marks that carry a reply. Returns one
/// outcome per row, in input order.
pub(super) async fn write_batch(
    tx: &mut Tx,
    rows: &[NewInbox],
    marks: &[Processed],
    changes_for: impl FnOnce(&[Accepted]) -> MemberChanges,
    first_stages: impl FnOnce(&MemberChanges, &[CreatedMember]) -> Vec<StageChange>,
) -> Result<Vec<Accepted>, StoreError> {
    let inserted = insert_and_mark(postgres(tx)?, rows, marks).await?;
    // Copies of rows already stored (retries) are looked up one by one: rare.
    let outcomes = inbox::resolve_outcomes(tx, rows, inserted).await?;
    let changes = changes_for(&outcomes);
    let created = upsert_members_and_groups_of(postgres(tx)?, &changes).await?;
    // Only members created by this transaction: no other writer can hold their stage rows.
    let stages = if created.is_empty() {
        Vec::new()
    } else {
        first_stages(&changes, &created)
    };
    let pg = postgres(tx)?;
    upsert_memberships_activity_and_stages(pg, &changes, &stages).await?;
    for mark in marks.iter().filter(|m| m.reply.is_some()) {
        sqlx::query(inbox::MARK_PROCESSED)
            .bind(mark.at)
            .bind(&mark.reply)
            .bind(mark.id)
            .execute(&mut *pg)
            .await?;
    }
    Ok(outcomes)
}

/// Gathers the statistics of the tables the group commit writes whenever the inbox has outgrown
/// what PostgreSQL last measured of it. Without statistics (autovacuum off, or not yet run on a
/// new community) a statement prepared after a few small batches kept a generic plan made for
/// nearly empty tables: it found the processed marks by scanning the whole inbox, and every commit
/// got slower as the inbox grew (p99 above 300 ms within ten seconds at 5,000/s, after a trickle of
/// first messages). `analyze` gives the planner the tables as they are and makes every connection
/// plan its statements again. Checked at 2,000 new rows, then at ten times as many each time: once
/// the tables are measured, plans that look rows up by index stay right as they grow, and each
/// `analyze` costs the database CPU and every connection a fresh plan.
pub struct TableGrowth {
    url: String,
    inserted: u64,
    next_check: u64,
    running: Arc<AtomicBool>,
}

impl TableGrowth {
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            inserted: 0,
            next_check: 2_000,
            running: Arc::default(),
        }
    }

    /// Counts rows this writer inserted; past the next check, compares in the background.
    pub fn note_inserted(&mut self, rows: usize) {
        self.inserted += rows as u64;
        if self.inserted < self.next_check || self.running.swap(true, Ordering::AcqRel) {
            return;
        }
        self.next_check = self.inserted.saturating_mul(10);
        let (url, inserted, running) = (self.url.clone(), self.inserted, Arc::clone(&self.running));
        tokio::spawn(async move {
            match analyze_if_outgrown(&url, inserted).await {
                Ok(true) => tracing::info!(inserted, "table statistics gathered"),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "table statistics not gathered"),
            }
            running.store(false, Ordering::Release);
        });
    }
}

/// On a connection of its own, so that the writers' connections stay free.
async fn analyze_if_outgrown(url: &str, inserted: u64) -> Result<bool, StoreError> {
    let options = sqlx::postgres::PgConnectOptions::from_str(url)?;
    let mut conn = sqlx::PgConnection::connect_with(&options).await?;
    // -1 until the table was first analyzed.
    let known: f32 =
        sqlx::query_scalar("select reltuples from pg_class where oid = 'inbox'::regclass")
            .fetch_one(&mut conn)
            .await?;
    #[allow(clippy::cast_precision_loss)] // row counts far below 2^52
    let outgrown = f64::from(known) < inserted as f64;
    if outgrown {
        sqlx::query(
            "analyze inbox, members, chat_groups, group_members, member_daily_activity, \
             member_stages, member_stage_history",
        )
        .execute(&mut conn)
        .await?;
    }
    conn.close().await?;
    Ok(outgrown)
}

fn postgres(tx: &mut Tx) -> Result<&mut PgConnection, StoreError> {
    match tx {
        Tx::Postgres(pg) => Ok(&mut **pg),
        Tx::Sqlite(_) => Err(StoreError::Other(
            "the PostgreSQL group commit got a SQLite transaction".into(),
        )),
    }
}

async fn insert_and_mark(
    pg: &mut PgConnection,
    rows: &[NewInbox],
    marks: &[Processed],
) -> Result<HashMap<(String, String), i64>, StoreError> {
    // Key order, so parallel writers take the unique index's locks in the same order.
    let mut sorted: Vec<&NewInbox> = rows.iter().collect();
    sorted.sort_by(|a, b| (&a.channel_id, &a.dedupe_key).cmp(&(&b.channel_id, &b.dedupe_key)));
    let column = |f: fn(&NewInbox) -> String| sorted.iter().map(|r| f(r)).collect::<Vec<_>>();
    let plain: Vec<i64> = marks
        .iter()
        .filter(|m| m.reply.is_none())
        .map(|m| m.id)
        .collect();
    let marked_at = marks
        .iter()
        .filter(|m| m.reply.is_none())
        .map(|m| m.at)
        .max()
        .unwrap_or(0);
    let keys: Vec<InsertedKey> = sqlx::query_as(INSERT_INBOX_AND_MARK)
        .bind(column(|r| r.channel_id.clone()))
        .bind(column(|r| r.dedupe_key.clone()))
        .bind(column(|r| r.kind.clone()))
        .bind(sorted.iter().map(|r| r.sender.clone()).collect::<Vec<_>>())
        .bind(
            sorted
                .iter()
                .map(|r| r.group_id.clone())
                .collect::<Vec<_>>(),
        )
        .bind(sorted.iter().map(|r| r.occurred_at).collect::<Vec<_>>())
        .bind(sorted.iter().map(|r| r.received_at).collect::<Vec<_>>())
        .bind(column(|r| r.payload.clone()))
        .bind(marked_at)
        .bind(plain)
        .fetch_all(pg)
        .await?;
    Ok(keys
        .into_iter()
        .map(|k| ((k.channel_id, k.dedupe_key), k.id))
        .collect())
}

/// Prepares the group commit's statements on `connections` of the pool's connections: each
/// runs them once with no rows, in a transaction it rolls back. The server processes then have
/// the tables' catalog entries cached and the statements parsed before the first callback, which
/// otherwise paid for all of it in the first second of a burst.
pub(super) async fn warm_up(pool: &sqlx::PgPool, connections: u32) -> Result<(), StoreError> {
    // Held together, so that each is a different connection.
    let mut held = Vec::new();
    for _ in 0..connections {
        held.push(pool.begin().await?);
    }
    let none = MemberChanges::default();
    for tx in &mut held {
        let pg: &mut PgConnection = tx;
        insert_and_mark(pg, &[], &[]).await?;
        run_members_and_groups(pg, &none).await?;
        run_memberships_and_activity(pg, &none, None).await?;
        run_memberships_and_activity(pg, &none, Some(&[])).await?;
        super::lifecycle::prepare_postgres(pg).await?;
        sqlx::query(inbox::MARK_PROCESSED)
            .bind(0_i64)
            .bind(None::<String>)
            .bind(0_i64)
            .execute(&mut *pg)
            .await?;
    }
    for tx in held {
        tx.rollback().await?;
    }
    Ok(())
}

async fn upsert_members_and_groups_of(
    pg: &mut PgConnection,
    changes: &MemberChanges,
) -> Result<Vec<CreatedMember>, StoreError> {
    if changes.members.is_empty() && changes.groups.is_empty() {
        return Ok(Vec::new());
    }
    run_members_and_groups(pg, changes).await
}

async fn run_members_and_groups(
    pg: &mut PgConnection,
    changes: &MemberChanges,
) -> Result<Vec<CreatedMember>, StoreError> {
    let (m, g) = (&changes.members, &changes.groups);
    let created = sqlx::query_as(&statements().members_and_groups)
        .bind(m.iter().map(|r| r.scope.clone()).collect::<Vec<_>>())
        .bind(m.iter().map(|r| r.user_id.clone()).collect::<Vec<_>>())
        .bind(m.iter().map(|r| r.name.clone()).collect::<Vec<_>>())
        .bind(m.iter().map(|r| r.first_seen_at).collect::<Vec<_>>())
        .bind(m.iter().map(|r| r.last_active_at).collect::<Vec<_>>())
        .bind(m.iter().map(|r| r.messages).collect::<Vec<_>>())
        .bind(g.iter().map(|r| r.scope.clone()).collect::<Vec<_>>())
        .bind(g.iter().map(|r| r.group_id.clone()).collect::<Vec<_>>())
        .bind(g.iter().map(|r| r.name.clone()).collect::<Vec<_>>())
        .bind(g.iter().map(|r| r.at).collect::<Vec<_>>())
        .fetch_all(pg)
        .await?;
    Ok(created)
}

async fn upsert_memberships_activity_and_stages(
    pg: &mut PgConnection,
    changes: &MemberChanges,
    stages: &[StageChange],
) -> Result<(), StoreError> {
    if !stages.is_empty() {
        return run_memberships_and_activity(pg, changes, Some(stages)).await;
    }
    if changes.memberships.is_empty() && changes.activity.is_empty() {
        return Ok(());
    }
    run_memberships_and_activity(pg, changes, None).await
}

/// With `stages` (even none), the statement that also records them.
async fn run_memberships_and_activity(
    pg: &mut PgConnection,
    changes: &MemberChanges,
    stages: Option<&[StageChange]>,
) -> Result<(), StoreError> {
    let (j, a) = (&changes.memberships, &changes.activity);
    let texts = statements();
    let text = match stages {
        Some(_) => &texts.memberships_activity_and_stages,
        None => &texts.memberships_and_activity,
    };
    let query = sqlx::query(text)
        .bind(j.iter().map(|r| r.scope.clone()).collect::<Vec<_>>())
        .bind(j.iter().map(|r| r.group_id.clone()).collect::<Vec<_>>())
        .bind(j.iter().map(|r| r.user_id.clone()).collect::<Vec<_>>())
        .bind(j.iter().map(|r| r.at).collect::<Vec<_>>())
        .bind(j.iter().map(|r| r.left.then_some(r.at)).collect::<Vec<_>>())
        .bind(a.iter().map(|r| r.scope.clone()).collect::<Vec<_>>())
        .bind(a.iter().map(|r| r.user_id.clone()).collect::<Vec<_>>())
        .bind(a.iter().map(|r| r.day).collect::<Vec<_>>())
        .bind(a.iter().map(|r| r.messages).collect::<Vec<_>>())
        .bind(a.iter().map(|r| r.events).collect::<Vec<_>>());
    match stages {
        Some(stages) => super::lifecycle::bind_postgres(query, stages),
        None => query,
    }
    .execute(pg)
    .await?;
    Ok(())
}
