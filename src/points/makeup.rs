//! Make-up cards (补签卡): a member who missed yesterday spends a card from the shop to fill that
//! day, so the streak from the day before carries on (to today as well, if they signed in today).

use super::rules::day_to_date;
use super::to_day;
use crate::store::points as db;
use crate::store::redemption as shop;
use crate::store::{StoreError, Tx};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MakeupOutcome {
    Repaired {
        /// The day filled in (yyyymmdd).
        day: i32,
        /// The streak now (counting today when signed in today).
        streak: i64,
        cards_left: i64,
    },
    Refused(MakeupRefusal),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MakeupRefusal {
    /// Yesterday has a sign-in already.
    NotNeeded,
    /// The day before yesterday has none either: there is no streak to save.
    NothingToRepair,
    NoCard,
}

#[derive(Debug, Clone)]
pub struct MakeupRequest {
    pub scope: String,
    pub user_id: String,
    pub name: Option<String>,
    /// The local day of the message (yyyymmdd); yesterday is the day repaired.
    pub today: i32,
    pub now_ms: i64,
}

/// Spends one card on yesterday. Running it again (a retried message) finds yesterday filled
/// and changes nothing, so one message spends at most one card.
pub async fn make_up_tx(tx: &mut Tx, req: &MakeupRequest) -> Result<MakeupOutcome, StoreError> {
    let refused = |r| Ok(MakeupOutcome::Refused(r));
    let Some(today) = day_to_date(req.today) else {
        return refused(MakeupRefusal::NothingToRepair);
    };
    let yesterday = to_day(today - chrono::Duration::days(1));
    let before = to_day(today - chrono::Duration::days(2));
    // Locks the account: a make-up and a sign-in of one member never interleave.
    let (member_id, _) = db::member_account(
        tx,
        &req.scope,
        &req.user_id,
        req.name.as_deref(),
        req.now_ms,
    )
    .await?;
    if db::signin_streak(tx, member_id, yesterday).await?.is_some() {
        return refused(MakeupRefusal::NotNeeded);
    }
    let Some(streak_before) = db::signin_streak(tx, member_id, before).await? else {
        return refused(MakeupRefusal::NothingToRepair);
    };
    let Some(card) = shop::unused_card(tx, member_id).await? else {
        return refused(MakeupRefusal::NoCard);
    };
    let streak = streak_before + 1;
    let later = db::signin_streak(tx, member_id, req.today)
        .await?
        .map(|_| (req.today, streak + 1));
    let made_up = db::MadeUp {
        member_id,
        scope: &req.scope,
        day: yesterday,
        streak,
        later,
        now_ms: req.now_ms,
    };
    if !db::record_makeup(tx, &made_up).await?
        || !shop::spend_card(tx, card, yesterday, req.now_ms).await?
    {
        return Err(StoreError::Other("make-up raced with another write".into()));
    }
    Ok(MakeupOutcome::Repaired {
        day: yesterday,
        streak: later.map_or(streak, |(_, s)| s),
        cards_left: shop::unused_cards(tx, member_id).await?,
    })
}
