//! Points storage: accounts, the append-only ledger and daily sign-ins. The balance changes only
//! together with a ledger row whose `source_key` is unique, so every source counts at most once.

use sqlx::FromRow;

use super::{Store, StoreError, Tx};
use crate::{on_pool, on_tx};

#[derive(Debug, Clone, Default, FromRow, PartialEq, Eq)]
pub struct Account {
    pub balance: i64,
    pub total_earned: i64,
    pub streak: i64,
    pub best_streak: i64,
    pub last_signin_day: Option<i32>,
}

#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct SigninRow {
    pub points: i64,
    pub streak: i64,
    pub rank: i64,
}

/// One leaderboard line.
#[derive(Debug, Clone, FromRow, PartialEq, Eq, serde::Serialize)]
pub struct Standing {
    pub user_id: String,
    pub name: Option<String>,
    pub points: i64,
}

#[derive(Debug, Clone, FromRow, PartialEq, Eq, serde::Serialize)]
pub struct LedgerEntry {
    pub id: i64,
    pub delta: i64,
    pub reason: String,
    pub source_key: String,
    pub operator: Option<String>,
    pub day: i32,
    pub created_at: i64,
}

/// A member's id by scope and platform user id.
pub(super) const MEMBER_ID: &str =
    "select id from members where scope = $1 and platform_user_id = $2";
const UPSERT_MEMBER_ID: &str = "insert into members (scope, platform_user_id, display_name, first_seen_at, last_active_at, message_count) \
     values ($1, $2, $3, $4, $4, 0) on conflict (scope, platform_user_id) do update set \
     display_name = coalesce(excluded.display_name, members.display_name) returning id";
const UPSERT_ACCOUNT: &str = "insert into points_accounts (member_id, updated_at) values ($1, $2) \
     on conflict (member_id) do update set updated_at = excluded.updated_at \
     returning balance, total_earned, cast(streak as bigint) as streak, cast(best_streak as bigint) as best_streak, \
     cast(last_signin_day as integer) as last_signin_day";
const DAY_STATE: &str = "select \
     (select cast(rank as bigint) from signins where member_id = $1 and day = $2) as signin_rank, \
     (select cast(streak as bigint) from signins where member_id = $1 and day = $2) as signin_streak, \
     (select cast(coalesce(sum(delta), 0) as bigint) from points_ledger where member_id = $1 and day = $2 and delta > 0) as earned";
const BUMP_SIGNIN_COUNT: &str =
    "insert into signin_counts (scope, day, signins) values ($1, $2, 1) \
     on conflict (scope, day) do update set signins = signin_counts.signins + 1 returning signins";
const DROP_SIGNIN_COUNT: &str =
    "update signin_counts set signins = signins - 1 where scope = $1 and day = $2";
// A sign-in for a day before the last one (a late delivery) never moves the last day back; its
// streak and the later ones are recomputed by the caller.
const SIGNIN_UPDATE: &str = "update points_accounts set balance = balance + $1, total_earned = total_earned + $1, \
     streak = case when last_signin_day is null or last_signin_day < $3 then $2 else streak end, \
     best_streak = case when $2 > best_streak then $2 else best_streak end, \
     last_signin_day = case when last_signin_day is null or last_signin_day < $3 then $3 else last_signin_day end, \
     updated_at = $4 where member_id = $5";
const SELECT_ACCOUNT_BY_ID: &str = "select balance, total_earned, cast(streak as bigint) as streak, cast(best_streak as bigint) as best_streak, \
     cast(last_signin_day as integer) as last_signin_day from points_accounts where member_id = $1";
/// The ledger reason of sign-in points.
pub const SIGNIN_REASON: &str = "签到";
// $1 member, $2 day, $3 scope, $4 group, $5 points, $6 streak, $7 now, $8 ledger source key.
const RECORD_SIGNIN_PG: &str = "with counted as ( \
       insert into signin_counts (scope, day, signins) values ($3::text, $2::integer, 1) \
       on conflict (scope, day) do update set signins = signin_counts.signins + 1 returning signins), \
     signed as ( \
       insert into signins (member_id, day, scope, group_id, points, streak, rank, created_at) \
       select $1::bigint, $2::integer, $3::text, $4::text, $5::bigint, $6::integer, signins, $7::bigint from counted \
       on conflict (member_id, day) do nothing returning rank), \
     credited as ( \
       insert into points_ledger (member_id, delta, reason, source_key, operator, day, created_at) \
       select $1::bigint, $5::bigint, '签到', $8::text, null, $2::integer, $7::bigint from signed where $5::bigint > 0 \
       on conflict (source_key) do nothing returning delta), \
     updated as ( \
       update points_accounts set \
         balance = balance + coalesce((select delta from credited), 0), \
         total_earned = total_earned + coalesce((select delta from credited), 0), \
         streak = case when last_signin_day is null or last_signin_day < $2::integer then $6::integer else streak end, \
         best_streak = greatest(best_streak, $6::integer), \
         last_signin_day = greatest(coalesce(last_signin_day, $2::integer), $2::integer), updated_at = $7::bigint \
       where member_id = $1::bigint and exists (select 1 from signed)) \
     select cast((select rank from signed) as bigint), cast((select delta from credited) as bigint)";
const INSERT_SIGNIN: &str =
    "insert into signins (member_id, day, scope, group_id, points, streak, rank, created_at) \
     values ($1, $2, $3, $4, $5, $6, $7, $8) on conflict (member_id, day) do nothing";
const INSERT_LEDGER: &str =
    "insert into points_ledger (member_id, delta, reason, source_key, operator, day, created_at) \
     values ($1, $2, $3, $4, $5, $6, $7) on conflict (source_key) do nothing";
const LEDGER_SUM: &str =
    "select cast(coalesce(sum(delta), 0) as bigint) from points_ledger where member_id = $1";
const LEDGER_OF: &str =
    "select id, delta, reason, source_key, operator, day, created_at from points_ledger \
     where member_id = $1 order by id desc limit $2";
const TOP_BETWEEN: &str = "select m.platform_user_id as user_id, m.display_name as name, cast(sum(l.delta) as bigint) as points \
     from points_ledger l join members m on m.id = l.member_id \
     where m.scope = $1 and l.day >= $2 and l.day <= $3 and l.delta > 0 \
     group by m.platform_user_id, m.display_name order by points desc, m.platform_user_id limit $4";
const TOP_BETWEEN_IN_GROUP: &str = "select m.platform_user_id as user_id, m.display_name as name, cast(sum(l.delta) as bigint) as points \
     from points_ledger l join members m on m.id = l.member_id \
     join group_members gm on gm.member_id = m.id and gm.left_at is null \
     join chat_groups g on g.id = gm.group_id and g.platform_group_id = $4 and g.scope = $1 \
     where m.scope = $1 and l.day >= $2 and l.day <= $3 and l.delta > 0 \
     group by m.platform_user_id, m.display_name order by points desc, m.platform_user_id limit $5";
const RANK_BY_TOTAL: &str = "select cast(count(*) as bigint) + 1 from points_accounts a join members m on m.id = a.member_id \
     where m.scope = $1 and a.total_earned > $2";

/// The member's id, creating a bare member row if the registry has not seen them yet. The
/// usual case reads only: the group commit has registered the sender already, and not taking the
/// member row's lock keeps batched sign-ins from deadlocking with a group commit on PostgreSQL.
pub async fn member_id(
    tx: &mut Tx,
    scope: &str,
    user_id: &str,
    name: Option<&str>,
    now_ms: i64,
) -> Result<i64, StoreError> {
    let known = on_tx!(tx, c => sqlx::query_scalar::<_, i64>(MEMBER_ID)
        .bind(scope).bind(user_id).fetch_optional(&mut **c).await?);
    if let Some(id) = known {
        return Ok(id);
    }
    Ok(
        on_tx!(tx, c => sqlx::query_scalar::<_, i64>(UPSERT_MEMBER_ID)
        .bind(scope).bind(user_id).bind(name).bind(now_ms).fetch_one(&mut **c).await?),
    )
}

const MEMBER_ACCOUNT: &str = "insert into points_accounts (member_id, updated_at) \
     select id, $3 from members where scope = $1 and platform_user_id = $2 \
     on conflict (member_id) do update set updated_at = excluded.updated_at \
     returning member_id, balance, total_earned, cast(streak as bigint) as streak, \
     cast(best_streak as bigint) as best_streak, cast(last_signin_day as integer) as last_signin_day";

#[derive(FromRow)]
struct MemberAccount {
    member_id: i64,
    #[sqlx(flatten)]
    account: Account,
}

/// The member's id and account (created if needed, and locked for this transaction), in one
/// statement when the member is registered, which the group commit has usually done already.
pub async fn member_account(
    tx: &mut Tx,
    scope: &str,
    user_id: &str,
    name: Option<&str>,
    now_ms: i64,
) -> Result<(i64, Account), StoreError> {
    let found = on_tx!(tx, c => sqlx::query_as::<_, MemberAccount>(MEMBER_ACCOUNT)
        .bind(scope).bind(user_id).bind(now_ms).fetch_optional(&mut **c).await?);
    if let Some(found) = found {
        return Ok((found.member_id, found.account));
    }
    let member_id = member_id(tx, scope, user_id, name, now_ms).await?;
    Ok((member_id, account(tx, member_id, now_ms).await?))
}

/// The member's account, creating an empty one if needed (and locking it for this transaction).
pub async fn account(tx: &mut Tx, member_id: i64, now_ms: i64) -> Result<Account, StoreError> {
    Ok(
        on_tx!(tx, c => sqlx::query_as::<_, Account>(UPSERT_ACCOUNT).bind(member_id).bind(now_ms).fetch_one(&mut **c).await?),
    )
}

/// What one query tells about a member's day: an existing sign-in, points earned, sign-ins so far.
#[derive(Debug, Clone, FromRow)]
pub struct DayState {
    pub signin_rank: Option<i64>,
    pub signin_streak: Option<i64>,
    pub earned: i64,
}

pub async fn day_state(tx: &mut Tx, member_id: i64, day: i32) -> Result<DayState, StoreError> {
    Ok(
        on_tx!(tx, c => sqlx::query_as::<_, DayState>(DAY_STATE).bind(member_id).bind(day).fetch_one(&mut **c).await?),
    )
}

const LEDGER_BY_SOURCE: &str =
    "select member_id, delta, reason from points_ledger where source_key = $1";

/// The (member, delta, reason) recorded under `source_key`, if any.
pub async fn ledger_by_source(
    tx: &mut Tx,
    source_key: &str,
) -> Result<Option<(i64, i64, String)>, StoreError> {
    Ok(
        on_tx!(tx, c => sqlx::query_as(LEDGER_BY_SOURCE).bind(source_key).fetch_optional(&mut **c).await?),
    )
}

/// Appends a ledger row once per source key; `false` when the source was already recorded.
pub async fn insert_ledger(tx: &mut Tx, change: &LedgerChange<'_>) -> Result<bool, StoreError> {
    let inserted = on_tx!(tx, c => sqlx::query(INSERT_LEDGER)
        .bind(change.member_id)
        .bind(change.delta)
        .bind(change.reason)
        .bind(change.source_key)
        .bind(change.operator)
        .bind(change.day)
        .bind(change.now_ms)
        .execute(&mut **c)
        .await?
        .rows_affected());
    Ok(inserted == 1)
}

/// A sign-in to record.
#[derive(Debug, Clone)]
pub struct NewSignin<'a> {
    pub member_id: i64,
    pub day: i32,
    pub scope: &'a str,
    pub group_id: Option<&'a str>,
    /// Points to credit (after the daily cap).
    pub points: i64,
    pub streak: i64,
    pub source_key: &'a str,
    pub now_ms: i64,
}

/// What recording a sign-in did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromRow)]
pub struct RecordedSignin {
    /// Today's sign-in rank in the scope (第 N 位).
    pub rank: i64,
    /// Points actually credited (0 if the ledger had the source key already).
    pub credited: i64,
}

/// Records a sign-in: the day's rank, the sign-in row, its ledger row and the account's new
/// balance and streak. `None` when the member already signed in that day (nothing changes).
pub async fn record_signin(
    tx: &mut Tx,
    s: &NewSignin<'_>,
) -> Result<Option<RecordedSignin>, StoreError> {
    let recorded = match tx {
        Tx::Postgres(_) => record_signin_pg(tx, s).await?,
        Tx::Sqlite(_) => record_signin_sqlite(tx, s).await?,
    };
    if recorded.is_none() {
        drop_signin_count(tx, s.scope, s.day).await?;
    }
    Ok(recorded)
}

/// One round trip instead of five: the same steps chained as data-modifying CTEs (each runs
/// exactly once; a duplicate sign-in leaves `signed` empty and so changes nothing).
async fn record_signin_pg(
    tx: &mut Tx,
    s: &NewSignin<'_>,
) -> Result<Option<RecordedSignin>, StoreError> {
    let Tx::Postgres(c) = tx else {
        unreachable!("called for PostgreSQL only")
    };
    let (rank, credited) = sqlx::query_as::<_, (Option<i64>, Option<i64>)>(RECORD_SIGNIN_PG)
        .bind(s.member_id)
        .bind(s.day)
        .bind(s.scope)
        .bind(s.group_id)
        .bind(s.points)
        .bind(s.streak)
        .bind(s.now_ms)
        .bind(s.source_key)
        .fetch_one(&mut **c)
        .await?;
    Ok(rank.map(|rank| RecordedSignin {
        rank,
        credited: credited.unwrap_or(0),
    }))
}

/// The day's rank, the sign-in row, its ledger row and the account update, step by step.
async fn record_signin_sqlite(
    tx: &mut Tx,
    s: &NewSignin<'_>,
) -> Result<Option<RecordedSignin>, StoreError> {
    let Tx::Sqlite(c) = tx else {
        unreachable!("called for SQLite only")
    };
    let rank = sqlx::query_scalar::<_, i64>(BUMP_SIGNIN_COUNT)
        .bind(s.scope)
        .bind(s.day)
        .fetch_one(&mut **c)
        .await?;
    let inserted = sqlx::query(INSERT_SIGNIN)
        .bind(s.member_id)
        .bind(s.day)
        .bind(s.scope)
        .bind(s.group_id)
        .bind(s.points)
        .bind(s.streak)
        .bind(rank)
        .bind(s.now_ms)
        .execute(&mut **c)
        .await?
        .rows_affected()
        == 1;
    if !inserted {
        return Ok(None);
    }
    let change = LedgerChange {
        member_id: s.member_id,
        delta: s.points,
        reason: SIGNIN_REASON,
        source_key: s.source_key,
        operator: None,
        day: s.day,
        now_ms: s.now_ms,
    };
    // The sign-in row already makes this once per day; the ledger key guards the balance too.
    let credited = if s.points > 0 && insert_ledger(tx, &change).await? {
        s.points
    } else {
        0
    };
    let Tx::Sqlite(c) = tx else { unreachable!() };
    sqlx::query(SIGNIN_UPDATE)
        .bind(credited)
        .bind(s.streak)
        .bind(s.day)
        .bind(s.now_ms)
        .bind(s.member_id)
        .execute(&mut **c)
        .await?;
    Ok(Some(RecordedSignin { rank, credited }))
}

async fn drop_signin_count(tx: &mut Tx, scope: &str, day: i32) -> Result<(), StoreError> {
    on_tx!(tx, c => {
        sqlx::query(DROP_SIGNIN_COUNT).bind(scope).bind(day).execute(&mut **c).await?;
    });
    Ok(())
}

/// A ledger change for one source.
#[derive(Debug, Clone)]
pub struct LedgerChange<'a> {
    pub member_id: i64,
    pub delta: i64,
    pub reason: &'a str,
    pub source_key: &'a str,
    pub operator: Option<&'a str>,
    pub day: i32,
    pub now_ms: i64,
}

impl Store {
    /// Account of a member by platform id (`None` if never seen).
    pub async fn points_account(
        &self,
        scope: &str,
        user_id: &str,
    ) -> Result<Option<(i64, Account)>, StoreError> {
        let id: Option<i64> = on_pool!(self.pool(), p => sqlx::query_scalar::<_, i64>(MEMBER_ID).bind(scope).bind(user_id).fetch_optional(p).await?);
        let Some(id) = id else { return Ok(None) };
        let account = on_pool!(self.pool(), p => sqlx::query_as::<_, Account>(SELECT_ACCOUNT_BY_ID).bind(id).fetch_optional(p).await?);
        Ok(Some((id, account.unwrap_or_default())))
    }

    pub async fn ledger_sum(&self, member_id: i64) -> Result<i64, StoreError> {
        Ok(
            on_pool!(self.pool(), p => sqlx::query_scalar::<_, i64>(LEDGER_SUM).bind(member_id).fetch_one(p).await?),
        )
    }

    pub async fn ledger_of(
        &self,
        member_id: i64,
        limit: i64,
    ) -> Result<Vec<LedgerEntry>, StoreError> {
        Ok(
            on_pool!(self.pool(), p => sqlx::query_as::<_, LedgerEntry>(LEDGER_OF).bind(member_id).bind(limit).fetch_all(p).await?),
        )
    }

    /// Points earned between two local days (inclusive), best first; optionally within a group.
    pub async fn top_between(
        &self,
        scope: &str,
        from_day: i32,
        to_day: i32,
        group: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Standing>, StoreError> {
        Ok(match group {
            None => on_pool!(self.pool(), p => sqlx::query_as::<_, Standing>(TOP_BETWEEN)
                .bind(scope).bind(from_day).bind(to_day).bind(limit).fetch_all(p).await?),
            Some(g) => {
                on_pool!(self.pool(), p => sqlx::query_as::<_, Standing>(TOP_BETWEEN_IN_GROUP)
                .bind(scope).bind(from_day).bind(to_day).bind(g).bind(limit).fetch_all(p).await?)
            }
        })
    }

    /// 1-based rank by total points earned within the scope.
    pub async fn rank_by_total(&self, scope: &str, total_earned: i64) -> Result<i64, StoreError> {
        Ok(
            on_pool!(self.pool(), p => sqlx::query_scalar::<_, i64>(RANK_BY_TOTAL).bind(scope).bind(total_earned).fetch_one(p).await?),
        )
    }
}

const ADJUST_BALANCE: &str = "update points_accounts set balance = balance + $1, \
     total_earned = total_earned + case when $1 > 0 then $1 else 0 end, updated_at = $2 where member_id = $3";

/// Moves the balance by `delta` (the caller wrote the ledger row in the same transaction).
pub async fn adjust_balance(
    tx: &mut Tx,
    member_id: i64,
    delta: i64,
    now_ms: i64,
) -> Result<(), StoreError> {
    on_tx!(tx, c => {
        sqlx::query(ADJUST_BALANCE).bind(delta).bind(now_ms).bind(member_id).execute(&mut **c).await?;
    });
    Ok(())
}

const SIGNIN_STREAK: &str =
    "select cast(streak as bigint) from signins where member_id = $1 and day = $2";
const SET_SIGNIN_STREAK: &str = "update signins set streak = $1 where member_id = $2 and day = $3";
const SET_ACCOUNT_STREAK: &str = "update points_accounts set streak = $1, \
     best_streak = case when $1 > best_streak then $1 else best_streak end, \
     last_signin_day = case when last_signin_day is null or last_signin_day < $2 then $2 else last_signin_day end, \
     updated_at = $3 where member_id = $4";

/// The streak recorded with the member's sign-in on `day`, if they signed in.
pub async fn signin_streak(
    tx: &mut Tx,
    member_id: i64,
    day: i32,
) -> Result<Option<i64>, StoreError> {
    Ok(
        on_tx!(tx, c => sqlx::query_scalar::<_, i64>(SIGNIN_STREAK).bind(member_id).bind(day).fetch_optional(&mut **c).await?),
    )
}

/// Sets the streak recorded with the member's sign-in on `day`.
pub async fn set_signin_streak(
    tx: &mut Tx,
    member_id: i64,
    day: i32,
    streak: i64,
) -> Result<(), StoreError> {
    on_tx!(tx, c => {
        sqlx::query(SET_SIGNIN_STREAK).bind(streak).bind(member_id).bind(day).execute(&mut **c).await?;
    });
    Ok(())
}

/// Sets the account's current streak as of `last_day` (the last day never moves back).
pub async fn set_account_streak(
    tx: &mut Tx,
    member_id: i64,
    streak: i64,
    last_day: i32,
    now_ms: i64,
) -> Result<(), StoreError> {
    on_tx!(tx, c => {
        sqlx::query(SET_ACCOUNT_STREAK).bind(streak).bind(last_day).bind(now_ms).bind(member_id)
            .execute(&mut **c).await?;
    });
    Ok(())
}

/// A made-up sign-in (补签): a sign-in row without points for a missed day, and the streak carried
/// on to a later sign-in when there is one.
#[derive(Debug, Clone)]
pub struct MadeUp<'a> {
    pub member_id: i64,
    pub scope: &'a str,
    pub day: i32,
    pub streak: i64,
    /// A later sign-in (day, its new streak) the repaired day joins up with.
    pub later: Option<(i32, i64)>,
    pub now_ms: i64,
}

/// Records a made-up day; `false` (nothing changed) if the member has a sign-in that day already.
pub async fn record_makeup(tx: &mut Tx, m: &MadeUp<'_>) -> Result<bool, StoreError> {
    let rank = on_tx!(tx, c => sqlx::query_scalar::<_, i64>(BUMP_SIGNIN_COUNT)
        .bind(m.scope).bind(m.day).fetch_one(&mut **c).await?);
    let inserted = on_tx!(tx, c => sqlx::query(INSERT_SIGNIN)
        .bind(m.member_id).bind(m.day).bind(m.scope).bind(None::<&str>).bind(0_i64)
        .bind(m.streak).bind(rank).bind(m.now_ms)
        .execute(&mut **c).await?.rows_affected())
        == 1;
    if !inserted {
        drop_signin_count(tx, m.scope, m.day).await?;
        return Ok(false);
    }
    let (last_day, streak) = match m.later {
        Some((day, streak)) => {
            on_tx!(tx, c => {
                sqlx::query(SET_SIGNIN_STREAK).bind(streak).bind(m.member_id).bind(day)
                    .execute(&mut **c).await?;
            });
            (day, streak)
        }
        None => (m.day, m.streak),
    };
    on_tx!(tx, c => {
        sqlx::query(SET_ACCOUNT_STREAK).bind(streak).bind(last_day).bind(m.now_ms).bind(m.member_id)
            .execute(&mut **c).await?;
    });
    Ok(true)
}
