//! Sign-in points (签到积分): one sign-in per member per local day, streaks, bonuses, a daily
//! cap, levels and leaderboards, all through the append-only ledger.
//! Domain code: it sees the store and plain values, never HTTP or platform payloads.

mod handler;
pub mod makeup;
pub mod ops;
pub mod redemption;
pub mod rules;

use chrono::{Datelike, NaiveDate};

pub use handler::PointsHandler;

use crate::config::PointsConfig;
use crate::store::points::{self as db, Standing};
use crate::store::{Store, StoreError, Tx};

/// The result of a sign-in attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SigninOutcome {
    Signed {
        granted: i64,
        reward: rules::Reward,
        /// The daily cap cut the reward.
        capped: bool,
        streak: i64,
        rank: i64,
        balance: i64,
        level: String,
        level_up: bool,
    },
    Already {
        rank: i64,
        streak: i64,
        balance: i64,
        level: String,
    },
}

/// Who signs in, where and when.
#[derive(Debug, Clone)]
pub struct SigninRequest {
    pub scope: String,
    pub user_id: String,
    pub name: Option<String>,
    pub group_id: Option<String>,
    /// Local day (yyyymmdd) of the platform's message time in the community's zone.
    pub day: i32,
    pub now_ms: i64,
}

/// Signs a member in for `day` in a transaction of its own.
pub async fn sign_in(
    store: &Store,
    config: &PointsConfig,
    req: &SigninRequest,
) -> Result<SigninOutcome, StoreError> {
    let mut tx = store.begin_write().await?;
    let outcome = sign_in_tx(&mut tx, config, req).await?;
    tx.commit().await?;
    Ok(outcome)
}

/// Signs a member in for `day` inside the caller's write transaction (the writer batches many
/// sign-ins into one commit), exactly once however often it is retried or raced: the
/// (member, day) sign-in row and the ledger's unique source key both guard it.
pub async fn sign_in_tx(
    tx: &mut Tx,
    config: &PointsConfig,
    req: &SigninRequest,
) -> Result<SigninOutcome, StoreError> {
    // Locks the account: copies of one member's sign-in queue up here.
    let (member_id, account) = db::member_account(
        tx,
        &req.scope,
        &req.user_id,
        req.name.as_deref(),
        req.now_ms,
    )
    .await?;
    let state = db::day_state(tx, member_id, req.day).await?;
    if let (Some(rank), Some(streak)) = (state.signin_rank, state.signin_streak) {
        return Ok(already(config, &account, rank, streak));
    }
    // A late delivery may sign in for a day before the last one: its streak comes from the day
    // before it, and the days after it are recomputed below.
    let backdated = account.last_signin_day.is_some_and(|last| last > req.day);
    let streak = if backdated {
        streak_from_day_before(tx, member_id, req.day).await?
    } else {
        rules::next_streak(account.last_signin_day, account.streak, req.day)
    };
    let reward = rules::reward(config, member_id, req.day, streak);
    let granted = rules::capped(config, reward.total(), state.earned);
    let source_key = format!("signin:{member_id}:{}", req.day);
    let signin = db::NewSignin {
        member_id,
        day: req.day,
        scope: &req.scope,
        group_id: req.group_id.as_deref(),
        points: granted,
        streak,
        source_key: &source_key,
        now_ms: req.now_ms,
    };
    let Some(db::RecordedSignin { rank, credited }) = db::record_signin(tx, &signin).await? else {
        // Lost a race with a concurrent copy: report what the winner recorded.
        let winner = db::day_state(tx, member_id, req.day).await?;
        return Ok(already(
            config,
            &account,
            winner.signin_rank.unwrap_or_default(),
            winner.signin_streak.unwrap_or(streak),
        ));
    };

    if let (true, Some(last)) = (backdated, account.last_signin_day) {
        restreak_after(tx, member_id, req.day, streak, last, req.now_ms).await?;
    }
    let (before, _) = rules::level_of(config, account.total_earned);
    let (level, _) = rules::level_of(config, account.total_earned + credited);
    Ok(SigninOutcome::Signed {
        granted: credited,
        reward,
        capped: credited < reward.total(),
        streak,
        rank,
        balance: account.balance + credited,
        level_up: level != before,
        level,
    })
}

/// The streak of a sign-in on `day`: one more than the day before's, or 1.
async fn streak_from_day_before(tx: &mut Tx, member_id: i64, day: i32) -> Result<i64, StoreError> {
    let Some(date) = rules::day_to_date(day) else {
        return Ok(1);
    };
    let before = to_day(date - chrono::Duration::days(1));
    Ok(db::signin_streak(tx, member_id, before)
        .await?
        .map_or(1, |s| s + 1))
}

/// After a sign-in was filled in on `day` with `streak`, carries the streak through the
/// consecutive signed-in days after it; when the run reaches `last_day`, the account's current
/// streak follows.
async fn restreak_after(
    tx: &mut Tx,
    member_id: i64,
    day: i32,
    mut streak: i64,
    last_day: i32,
    now_ms: i64,
) -> Result<(), StoreError> {
    let Some(mut date) = rules::day_to_date(day) else {
        return Ok(());
    };
    loop {
        date += chrono::Duration::days(1);
        let next = to_day(date);
        if next > last_day || db::signin_streak(tx, member_id, next).await?.is_none() {
            return Ok(());
        }
        streak += 1;
        db::set_signin_streak(tx, member_id, next, streak).await?;
        if next == last_day {
            return db::set_account_streak(tx, member_id, streak, last_day, now_ms).await;
        }
    }
}

fn already(config: &PointsConfig, account: &db::Account, rank: i64, streak: i64) -> SigninOutcome {
    SigninOutcome::Already {
        rank,
        streak,
        balance: account.balance,
        level: rules::level_of(config, account.total_earned).0,
    }
}

/// What `积分` shows.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    pub balance: i64,
    pub total_earned: i64,
    pub level: String,
    pub next_level: Option<String>,
    pub to_next: i64,
    /// Streak still alive today (signed in today or yesterday), else 0.
    pub streak: i64,
    pub rank: i64,
}

pub async fn summary(
    store: &Store,
    config: &PointsConfig,
    scope: &str,
    user_id: &str,
    today: i32,
) -> Result<Summary, StoreError> {
    let account = store
        .points_account(scope, user_id)
        .await?
        .map(|(_, a)| a)
        .unwrap_or_default();
    let (level, next) = rules::level_of(config, account.total_earned);
    let alive = account
        .last_signin_day
        .is_some_and(|d| d == today || is_yesterday(d, today));
    Ok(Summary {
        balance: account.balance,
        total_earned: account.total_earned,
        level,
        next_level: next.as_ref().map(|(n, _)| n.clone()),
        to_next: next.map_or(0, |(_, missing)| missing),
        streak: if alive { account.streak } else { 0 },
        rank: store.rank_by_total(scope, account.total_earned).await?,
    })
}

fn is_yesterday(day: i32, today: i32) -> bool {
    rules::day_to_date(today).and_then(|d| d.pred_opt()) == rules::day_to_date(day)
}

/// Leaderboard periods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Today,
    Week,
    Month,
    All,
}

impl Period {
    /// Parses the optional argument of `排行榜` (Chinese or English); default today.
    pub fn parse(arg: &str) -> Option<Self> {
        match arg.trim().to_lowercase().as_str() {
            "" | "今日" | "今天" | "日" | "day" | "today" => Some(Self::Today),
            "本周" | "周" | "week" => Some(Self::Week),
            "本月" | "月" | "month" => Some(Self::Month),
            "总" | "总榜" | "全部" | "all" => Some(Self::All),
            _ => None,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Today => "今日",
            Self::Week => "本周",
            Self::Month => "本月",
            Self::All => "总",
        }
    }

    /// Inclusive local-day range (weeks start on Monday).
    pub fn range(self, today: NaiveDate) -> (i32, i32) {
        let from = match self {
            Self::Today => today,
            Self::Week => {
                today - chrono::Duration::days(i64::from(today.weekday().num_days_from_monday()))
            }
            Self::Month => today.with_day(1).unwrap_or(today),
            Self::All => NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or(today),
        };
        (to_day(from), to_day(today))
    }
}

pub fn to_day(d: NaiveDate) -> i32 {
    d.year() * 10_000
        + i32::try_from(d.month()).unwrap_or(1) * 100
        + i32::try_from(d.day()).unwrap_or(1)
}

pub async fn leaderboard(
    store: &Store,
    scope: &str,
    period: Period,
    today: i32,
    group: Option<&str>,
) -> Result<Vec<Standing>, StoreError> {
    let today_date = rules::day_to_date(today).unwrap_or_default();
    let (from, to) = period.range(today_date);
    store.top_between(scope, from, to, group, 10).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods() {
        let wed = NaiveDate::from_ymd_opt(2024, 5, 15).expect("date");
        assert_eq!(Period::Week.range(wed), (20240513, 20240515));
        assert_eq!(Period::Month.range(wed), (20240501, 20240515));
        assert_eq!(Period::Today.range(wed), (20240515, 20240515));
        assert_eq!(Period::parse("本周"), Some(Period::Week));
        assert_eq!(Period::parse(" WEEK "), Some(Period::Week));
        assert_eq!(Period::parse(""), Some(Period::Today));
        assert_eq!(Period::parse("年"), None);
        assert!(is_yesterday(20231231, 20240101));
    }
}
