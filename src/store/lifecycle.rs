//! Lifecycle storage: current stage per member and the history of changes. The stage names and
//! the facts read per member are this layer's row types (the rules live in `members::lifecycle`).

use std::sync::OnceLock;

use sqlx::QueryBuilder;

use super::{Pool, Store, StoreError, Tx};
use crate::{on_pool, on_tx};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    New,
    Active,
    Silent,
    Lapsed,
    Churned,
    Returned,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Active => "active",
            Self::Silent => "silent",
            Self::Lapsed => "lapsed",
            Self::Churned => "churned",
            Self::Returned => "returned",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "new" | "新成员" => Self::New,
            "active" | "活跃" => Self::Active,
            "silent" | "沉默" => Self::Silent,
            "lapsed" | "流失" => Self::Lapsed,
            "churned" | "已离开" => Self::Churned,
            "returned" | "回流" => Self::Returned,
            _ => return None,
        })
    }
}

/// What the stage rules look at, per member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StageFacts {
    pub first_seen_at: i64,
    pub last_active_at: i64,
    /// Groups the member was ever in, and is in now.
    pub groups_ever: i64,
    pub groups_now: i64,
    /// Staff members who ever had the member as a customer contact, and still have.
    pub contacts_ever: i64,
    pub contacts_now: i64,
    /// The stage recorded last time, and since when.
    pub previous: Option<(Stage, i64)>,
}

const INPUTS: &str = "select m.id, m.first_seen_at, m.last_active_at, \
     cast((select count(*) from group_members gm where gm.member_id = m.id) as bigint), \
     cast((select count(*) from group_members gm where gm.member_id = m.id and gm.left_at is null) as bigint), \
     cast((select count(*) from contact_follows cf where cf.scope = m.scope and cf.external_userid = m.platform_user_id) as bigint), \
     cast((select count(*) from contact_follows cf where cf.scope = m.scope and cf.external_userid = m.platform_user_id \
       and cf.removed_at is null) as bigint), \
     s.stage, s.since, m.platform_user_id \
     from members m left join member_stages s on s.member_id = m.id";
const SET_TAIL: &str =
    " on conflict (member_id) do update set stage = excluded.stage, since = excluded.since";
const HISTORY: &str = "select h.from_stage, h.to_stage, h.at from member_stage_history h \
     join members m on m.id = h.member_id where m.scope = $1 and m.platform_user_id = $2 order by h.id";

type InputRow = (
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    Option<String>,
    Option<i64>,
    String,
);

/// A stage change to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageChange {
    pub member_id: i64,
    pub from: Option<&'static str>,
    pub to: &'static str,
    pub at: i64,
}

impl Store {
    /// The members with ids in `(after, last]` with what the stage rules need.
    pub async fn stage_inputs(
        &self,
        (after, last): (i64, i64),
    ) -> Result<Vec<(i64, StageFacts)>, StoreError> {
        let sql = format!("{INPUTS} where m.id > $1 and m.id <= $2");
        let rows: Vec<InputRow> = on_pool!(self.pool(), p => sqlx::query_as::<_, InputRow>(&sql)
            .bind(after).bind(last).persistent(false).fetch_all(p).await?);
        Ok(rows
            .into_iter()
            .map(|row| {
                let (_, id, facts) = facts_of(row);
                (id, facts)
            })
            .collect())
    }

    /// [`Store::stage_inputs`] for members of one scope by platform user id, each with that id;
    /// members not in the registry are left out. One query per 500 members.
    pub async fn stage_inputs_of(
        &self,
        scope: &str,
        user_ids: &[String],
    ) -> Result<Vec<(String, i64, StageFacts)>, StoreError> {
        let mut out = Vec::with_capacity(user_ids.len());
        for chunk in user_ids.chunks(MANY) {
            let rows: Vec<InputRow> = match self.pool() {
                // Planned at every run (about a millisecond for up to 500 members), not kept
                // prepared: a plan made while the tables were nearly empty (the first seconds of a
                // new community, or any time before their statistics are gathered) scans them
                // whole for every member, and took 70–200 ms per read once they had filled.
                Pool::Postgres(p) => {
                    static TEXT: OnceLock<String> = OnceLock::new();
                    let sql = TEXT.get_or_init(|| {
                        format!("{INPUTS} where m.scope = $1 and m.platform_user_id = any($2)")
                    });
                    sqlx::query_as::<_, InputRow>(sql)
                        .bind(scope)
                        .bind(chunk)
                        .persistent(false)
                        .fetch_all(p)
                        .await?
                }
                Pool::Sqlite(p) => {
                    let mut qb = QueryBuilder::new(format!("{INPUTS} where m.scope = "));
                    qb.push_bind(scope);
                    qb.push(" and m.platform_user_id in (");
                    let mut users = qb.separated(", ");
                    for user in chunk {
                        users.push_bind(user);
                    }
                    qb.push(")");
                    // The text differs with the number of members: only the one-member text (the
                    // usual case outside bursts) is worth keeping prepared.
                    qb.build_query_as::<InputRow>()
                        .persistent(chunk.len() == 1)
                        .fetch_all(p)
                        .await?
                }
            };
            out.extend(rows.into_iter().map(facts_of));
        }
        Ok(out)
    }

    /// A member's stage changes: (from, to, at), oldest first.
    pub async fn stage_history(
        &self,
        scope: &str,
        user_id: &str,
    ) -> Result<Vec<(Option<String>, String, i64)>, StoreError> {
        Ok(
            on_pool!(self.pool(), p => sqlx::query_as::<_, (Option<String>, String, i64)>(HISTORY)
            .bind(scope).bind(user_id).fetch_all(p).await?),
        )
    }
}

fn facts_of(
    (id, first, last, ever, now, contacts_ever, contacts_now, stage, since, user): InputRow,
) -> (String, i64, StageFacts) {
    let previous = stage
        .as_deref()
        .and_then(Stage::parse)
        .map(|s| (s, since.unwrap_or(0)));
    let facts = StageFacts {
        first_seen_at: first,
        last_active_at: last,
        groups_ever: ever,
        groups_now: now,
        contacts_ever,
        contacts_now,
        previous,
    };
    (user, id, facts)
}

/// Rows per multi-row stage statement.
const MANY: usize = 500;

/// Records stage changes, two statements per 500 (on PostgreSQL one in all). The last change of
/// a member sets its stage and every change is logged. Stages are written once per member
/// (PostgreSQL refuses to update a row twice in one statement) and in member order, so that
/// writers running at the same time take the rows' locks in one order.
pub async fn apply_many(tx: &mut Tx, changes: &[StageChange]) -> Result<(), StoreError> {
    if let Tx::Postgres(pg) = tx {
        return apply_many_postgres(pg, changes).await;
    }
    let latest = latest_per_member(changes);
    for chunk in latest.chunks(MANY) {
        on_tx!(tx, conn => {
            let mut qb = QueryBuilder::new("insert into member_stages (member_id, stage, since) ");
            qb.push_values(chunk, |mut row, c| {
                row.push_bind(c.member_id).push_bind(c.to).push_bind(c.at);
            });
            qb.push(SET_TAIL);
            qb.build().execute(&mut **conn).await?;
        });
    }
    for chunk in changes.chunks(MANY) {
        on_tx!(tx, conn => {
            let mut qb = QueryBuilder::new("insert into member_stage_history (member_id, from_stage, to_stage, at) ");
            qb.push_values(chunk, |mut row, c| {
                row.push_bind(c.member_id).push_bind(c.from).push_bind(c.to).push_bind(c.at);
            });
            qb.build().execute(&mut **conn).await?;
        });
    }
    Ok(())
}

/// Prepares [`apply_many`]'s statements on a PostgreSQL connection (they run with no rows).
pub(super) async fn prepare_postgres(pg: &mut sqlx::PgConnection) -> Result<(), StoreError> {
    apply_many_postgres(pg, &[]).await
}

/// The last change of each member, in member order.
fn latest_per_member(changes: &[StageChange]) -> Vec<&StageChange> {
    let mut latest = std::collections::BTreeMap::new();
    for c in changes {
        latest.insert(c.member_id, c);
    }
    latest.into_values().collect()
}

/// PostgreSQL: the two `with` items that record stage changes (`staged`, `logged`), their rows as
/// arrays in the seven parameters from `$first` on, for [`bind_postgres`]. The texts never
/// change, so they are prepared once; the group commit puts them in its memberships statement.
pub(super) fn postgres_ctes(first: usize) -> String {
    let p = |i: usize| first + i;
    format!(
        "staged as ( \
           insert into member_stages (member_id, stage, since) \
           select * from unnest(${}::int8[], ${}::text[], ${}::int8[]){SET_TAIL} \
         ), logged as ( \
           insert into member_stage_history (member_id, from_stage, to_stage, at) \
           select * from unnest(${}::int8[], ${}::text[], ${}::text[], ${}::int8[]) \
         )",
        p(0),
        p(1),
        p(2),
        p(3),
        p(4),
        p(5),
        p(6),
    )
}

/// Binds the parameters of [`postgres_ctes`].
pub(super) fn bind_postgres<'q>(
    query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    changes: &[StageChange],
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    let latest = latest_per_member(changes);
    query
        .bind(latest.iter().map(|c| c.member_id).collect::<Vec<_>>())
        .bind(latest.iter().map(|c| c.to).collect::<Vec<_>>())
        .bind(latest.iter().map(|c| c.at).collect::<Vec<_>>())
        .bind(changes.iter().map(|c| c.member_id).collect::<Vec<_>>())
        .bind(changes.iter().map(|c| c.from).collect::<Vec<_>>())
        .bind(changes.iter().map(|c| c.to).collect::<Vec<_>>())
        .bind(changes.iter().map(|c| c.at).collect::<Vec<_>>())
}

/// [`apply_many`] on PostgreSQL: both tables in one statement whose text never changes.
async fn apply_many_postgres(
    pg: &mut sqlx::PgConnection,
    changes: &[StageChange],
) -> Result<(), StoreError> {
    static STATEMENT: OnceLock<String> = OnceLock::new();
    // Items of `with` that change data run whether or not the query reads them.
    let statement = STATEMENT.get_or_init(|| format!("with {} select 1", postgres_ctes(1)));
    bind_postgres(sqlx::query(statement), changes)
        .execute(pg)
        .await?;
    Ok(())
}
