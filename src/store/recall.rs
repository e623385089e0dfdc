//! Recall storage: candidates of a plan (with their touches in the current absence), touches
//! recorded once per (plan, member, cycle, touch), results per touch, and bonus settlement.

use futures_util::{StreamExt as _, TryStreamExt as _};
use sqlx::QueryBuilder;

use super::segments::Compiled;
use super::stream::RowStream;
use super::{bind_all, Store, StoreError, Tx};
use crate::{on_pool, on_tx};

/// A member a plan may touch, with what the templates and the rules need.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Candidate {
    pub member_id: i64,
    pub user_id: String,
    pub name: Option<String>,
    pub last_active_at: i64,
    pub balance: i64,
    pub total_earned: i64,
    pub streak: i64,
    /// Touches of this plan in the current absence (cycle = `last_active_at`).
    pub touches: i64,
    /// Last touch of this plan, any absence.
    pub last_touch_at: Option<i64>,
}

/// A touch (or a held-out would-be touch) to record.
#[derive(Debug, Clone)]
pub struct NewTouch<'a> {
    pub plan: &'a str,
    pub member_id: i64,
    pub cycle: i64,
    pub touch: i64,
    pub held_out: bool,
    pub touched_at: i64,
    pub touch_day: i32,
    pub window_end_day: i32,
    pub bonus_points: i64,
    pub bonus_end_day: Option<i32>,
}

/// Results of one touch of a plan, touched or held out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct TouchCounts {
    pub members: i64,
    pub recalled: i64,
}

const INSERT: &str =
    "insert into recall_touches (plan, member_id, cycle, touch, held_out, touched_at, touch_day, \
     window_end_day, bonus_points, bonus_end_day) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
     on conflict (plan, member_id, cycle, touch) do nothing";
const RESULTS: &str = "select cast(t.touch as bigint), t.held_out, cast(count(*) as bigint), \
     cast(sum(case when exists (select 1 from member_daily_activity d where d.member_id = t.member_id \
       and d.day > t.touch_day and d.day <= t.window_end_day and d.message_count > 0) then 1 else 0 end) as bigint) \
     from recall_touches t where t.plan = $1 group by t.touch, t.held_out order by 1, 2";
const DUE_BONUSES: &str = "select t.id, m.scope, m.platform_user_id, t.bonus_points from recall_touches t \
     join members m on m.id = t.member_id where t.plan = $1 and t.held_out = false and t.bonus_points > 0 \
     and t.bonus_credited = false and exists (select 1 from member_daily_activity d where d.member_id = t.member_id \
       and d.day > t.touch_day and d.day <= t.bonus_end_day and d.message_count > 0)";
const CREDITED: &str = "update recall_touches set bonus_credited = true where id = $1";

/// The candidate query of a plan whose segment was compiled with parameters numbered from 2.
pub fn candidate_sql(segment: &Compiled) -> String {
    let n = segment.binds.len() + 2;
    format!(
        "select m.id as member_id, m.platform_user_id as user_id, m.display_name as name, m.last_active_at, \
         coalesce(a.balance, 0) as balance, coalesce(a.total_earned, 0) as total_earned, cast(coalesce(a.streak, 0) as bigint) as streak, \
         cast((select count(*) from recall_touches t where t.plan = ${n} and t.member_id = m.id \
           and t.cycle = m.last_active_at) as bigint) as touches, \
         (select max(t.touched_at) from recall_touches t where t.plan = ${} and t.member_id = m.id) as last_touch_at \
         from members m left join points_accounts a on a.member_id = m.id \
         where m.scope = $1 and {} and m.last_active_at <= ${} order by m.id",
        n + 1,
        segment.condition,
        n + 2
    )
}

/// Records a touch; `false` when it was recorded before (a re-run or another replica).
pub async fn insert_touch(tx: &mut Tx, t: &NewTouch<'_>) -> Result<bool, StoreError> {
    let n = on_tx!(tx, c => sqlx::query(INSERT).bind(t.plan).bind(t.member_id).bind(t.cycle).bind(t.touch)
        .bind(t.held_out).bind(t.touched_at).bind(t.touch_day).bind(t.window_end_day).bind(t.bonus_points)
        .bind(t.bonus_end_day).execute(&mut **c).await?.rows_affected());
    Ok(n == 1)
}

pub async fn mark_bonus_credited(tx: &mut Tx, id: i64) -> Result<(), StoreError> {
    on_tx!(tx, c => { sqlx::query(CREDITED).bind(id).execute(&mut **c).await?; });
    Ok(())
}

impl Store {
    /// Members of `scope` in the segment idle since `idle_before_ms`, in id order, read as a
    /// stream (`sql` from [`candidate_sql`] for the same segment).
    pub fn recall_candidates<'q>(
        &'q self,
        sql: &'q str,
        scope: &'q str,
        plan: &'q str,
        segment: &'q Compiled,
        idle_before_ms: i64,
    ) -> RowStream<'q, Candidate> {
        on_pool!(self.pool(), p => {
            let q = sqlx::query_as::<_, Candidate>(sql).bind(scope);
            bind_all!(q, &segment.binds).bind(plan).bind(plan).bind(idle_before_ms)
                .fetch(p).map_err(StoreError::from).boxed()
        })
    }

    /// Per touch number: (touched, held out) counts with how many came back in the window.
    pub async fn recall_results(
        &self,
        plan: &str,
    ) -> Result<Vec<(i64, TouchCounts, TouchCounts)>, StoreError> {
        let rows: Vec<(i64, bool, i64, i64)> =
            on_pool!(self.pool(), p => sqlx::query_as(RESULTS).bind(plan).fetch_all(p).await?);
        let mut out: Vec<(i64, TouchCounts, TouchCounts)> = Vec::new();
        for (touch, held_out, members, recalled) in rows {
            if out.last().is_none_or(|(t, _, _)| *t != touch) {
                out.push((touch, TouchCounts::default(), TouchCounts::default()));
            }
            if let Some(last) = out.last_mut() {
                let slot = if held_out { &mut last.2 } else { &mut last.1 };
                *slot = TouchCounts { members, recalled };
            }
        }
        Ok(out)
    }

    /// Touches whose bonus is earned (the member came back in time) and not yet credited:
    /// (touch id, scope, user id, points).
    pub async fn due_recall_bonuses(
        &self,
        plan: &str,
    ) -> Result<Vec<(i64, String, String, i64)>, StoreError> {
        Ok(on_pool!(self.pool(), p => sqlx::query_as(DUE_BONUSES).bind(plan).fetch_all(p).await?))
    }
}

const ACTIVE_DAYS: &str = "select g.member_id, m.scope, m.last_active_at, g.days, \
     g.first_day, g.last_day, r.risk, r.usual_gap_days, cast(case when exists (select 1 from member_tags mt \
       join tags t on t.id = mt.tag_id where mt.member_id = m.id and t.scope = m.scope and t.name = $5) \
       then 1 else 0 end as bigint) as tagged \
     from (select d.member_id, cast(count(*) as bigint) as days, min(d.day) as first_day, max(d.day) as last_day \
       from member_daily_activity d where d.member_id > $3 and d.member_id <= $4 and d.day >= $1 \
       and d.message_count > 0 group by d.member_id having count(*) >= $2) g \
     join members m on m.id = g.member_id left join member_risk r on r.member_id = g.member_id";
const PUT_RISKS_TAIL: &str = " on conflict (member_id) do update set risk = excluded.risk, \
     usual_gap_days = excluded.usual_gap_days, computed_at = excluded.computed_at";
const RISK_ROWS: &str =
    "select r.member_id, m.scope from member_risk r join members m on m.id = r.member_id \
     where r.member_id > $1 and r.member_id <= $2 order by r.member_id";
const AT_RISK: &str = "select m.platform_user_id, m.display_name, r.risk, m.last_active_at from member_risk r \
     join members m on m.id = r.member_id where m.scope = $1 and r.risk >= $2 order by r.risk desc, m.id limit $3";

/// A member's active days in the look-back window, with the risk stored last time and whether
/// the member has the warning tag now.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ActiveSpan {
    pub member_id: i64,
    pub scope: String,
    pub last_active_at: i64,
    pub days: i64,
    pub first_day: i32,
    pub last_day: i32,
    pub risk: Option<f64>,
    pub usual_gap_days: Option<f64>,
    pub tagged: i64,
}

/// Rows per multi-row risk statement.
const RISKS: usize = 1000;

/// Stores (member id, risk, usual gap) for each member, a thousand per statement.
pub async fn put_risks(
    tx: &mut Tx,
    rows: &[(i64, f64, f64)],
    now_ms: i64,
) -> Result<(), StoreError> {
    for chunk in rows.chunks(RISKS) {
        on_tx!(tx, c => {
            let mut qb = QueryBuilder::new("insert into member_risk (member_id, risk, usual_gap_days, computed_at) ");
            qb.push_values(chunk, |mut row, (member, risk, gap)| {
                row.push_bind(*member).push_bind(*risk).push_bind(*gap).push_bind(now_ms);
            });
            qb.push(PUT_RISKS_TAIL);
            qb.build().execute(&mut **c).await?;
        });
    }
    Ok(())
}

/// Forgets the stored risk of each of `members`.
pub async fn drop_risks(tx: &mut Tx, members: &[i64]) -> Result<(), StoreError> {
    for chunk in members.chunks(RISKS) {
        on_tx!(tx, c => {
            let mut qb = QueryBuilder::new("delete from member_risk where member_id in (");
            let mut list = qb.separated(", ");
            for id in chunk {
                list.push_bind(*id);
            }
            qb.push(")");
            qb.build().execute(&mut **c).await?;
        });
    }
    Ok(())
}

impl Store {
    /// Members with ids in `(after, last]` that have a stored risk: (member id, scope), by id.
    pub async fn risk_rows_in(
        &self,
        (after, last): (i64, i64),
    ) -> Result<Vec<(i64, String)>, StoreError> {
        Ok(
            on_pool!(self.pool(), p => sqlx::query_as::<_, (i64, String)>(RISK_ROWS).bind(after).bind(last)
                .persistent(false).fetch_all(p).await?),
        )
    }

    /// Members with ids in `(after, last]` and at least `min_days` active days since local day
    /// `since_day`; `tagged` tells whether each has `risk_tag`.
    pub async fn active_spans(
        &self,
        since_day: i32,
        min_days: i64,
        (after, last): (i64, i64),
        risk_tag: &str,
    ) -> Result<Vec<ActiveSpan>, StoreError> {
        Ok(
            on_pool!(self.pool(), p => sqlx::query_as::<_, ActiveSpan>(ACTIVE_DAYS)
                .bind(since_day).bind(min_days).bind(after).bind(last).bind(risk_tag)
                .persistent(false).fetch_all(p).await?),
        )
    }

    /// Members of `scope` at or above `threshold`: (user id, name, risk, last active ms).
    pub async fn at_risk_above(
        &self,
        scope: &str,
        threshold: f64,
        limit: i64,
    ) -> Result<Vec<(String, Option<String>, f64, i64)>, StoreError> {
        Ok(
            on_pool!(self.pool(), p => sqlx::query_as(AT_RISK).bind(scope).bind(threshold).bind(limit).fetch_all(p).await?),
        )
    }
}

const STORED_PLANS: &str = "select config from recall_plans order by id";
const PUT_PLAN: &str = "insert into recall_plans (id, config, updated_at) values ($1, $2, $3) \
     on conflict (id) do update set config = excluded.config, updated_at = excluded.updated_at";
const DELETE_PLAN: &str = "delete from recall_plans where id = $1";

impl Store {
    /// Plans created through the API, as JSON.
    pub async fn stored_plans(&self) -> Result<Vec<String>, StoreError> {
        Ok(
            on_pool!(self.pool(), p => sqlx::query_scalar::<_, String>(STORED_PLANS).fetch_all(p).await?),
        )
    }

    pub async fn put_plan(&self, id: &str, json: &str, now_ms: i64) -> Result<(), StoreError> {
        on_pool!(self.pool(), p => { sqlx::query(PUT_PLAN).bind(id).bind(json).bind(now_ms).execute(p).await?; });
        Ok(())
    }

    pub async fn delete_plan(&self, id: &str) -> Result<bool, StoreError> {
        let n = on_pool!(self.pool(), p => sqlx::query(DELETE_PLAN).bind(id).execute(p).await?.rows_affected());
        Ok(n == 1)
    }
}
