//! Redemption (积分兑换): `兑换 <item>` deducts points and stock atomically and places a pending
//! order; refusals say why. A retried chat message places its order once (unique source key).

use crate::store::points::{self as db, LedgerChange};
use crate::store::redemption::{self as shop, Item};
use crate::store::{Store, StoreError, Tx};

/// Why an order was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    UnknownItem,
    Disabled,
    NotEnoughPoints { short: i64, balance: i64 },
    OutOfStock,
    LimitReached { limit: i64 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedeemOutcome {
    Ordered {
        order_id: i64,
        item: Item,
        balance: i64,
    },
    /// The same message again (a platform retry): the order it already placed.
    AlreadyPlaced {
        order_id: i64,
    },
    Refused(Refusal),
}

#[derive(Debug, Clone)]
pub struct RedeemRequest {
    pub scope: String,
    pub user_id: String,
    pub name: Option<String>,
    pub item_name: String,
    /// Identifies the chat message, e.g. `redeem:{channel}:{dedupe key}`.
    pub source_key: String,
    pub day: i32,
    pub now_ms: i64,
}

/// Places an order in one write transaction: stock (never below zero), order and ledger
/// (balance never below zero) move together or not at all.
pub async fn redeem(store: &Store, req: &RedeemRequest) -> Result<RedeemOutcome, StoreError> {
    let mut tx = store.begin_write().await?;
    let outcome = redeem_tx(&mut tx, req).await?;
    tx.commit().await?;
    Ok(outcome)
}

/// [`redeem`] inside the caller's write transaction.
pub async fn redeem_tx(tx: &mut Tx, req: &RedeemRequest) -> Result<RedeemOutcome, StoreError> {
    if let Some(order) = shop::order_by_source(tx, &req.source_key).await? {
        return Ok(RedeemOutcome::AlreadyPlaced { order_id: order.id });
    }
    // Locks the member's account row for the rest of the transaction (PostgreSQL).
    let (member_id, account) = db::member_account(
        tx,
        &req.scope,
        &req.user_id,
        req.name.as_deref(),
        req.now_ms,
    )
    .await?;
    let refusal = match shop::item_by_name(tx, &req.item_name).await? {
        None => Err(Refusal::UnknownItem),
        Some(item) if !item.enabled => Err(Refusal::Disabled),
        Some(item) => Ok(item),
    };
    let item = match refusal {
        Ok(item) => item,
        Err(refusal) => {
            return Ok(RedeemOutcome::Refused(refusal));
        }
    };
    let refusal = if item.per_member_limit > 0
        && shop::orders_for_item(tx, member_id, item.id).await? >= item.per_member_limit
    {
        Some(Refusal::LimitReached {
            limit: item.per_member_limit,
        })
    } else if account.balance < item.cost {
        Some(Refusal::NotEnoughPoints {
            short: item.cost - account.balance,
            balance: account.balance,
        })
    } else if !shop::take_stock(tx, item.id).await? {
        Some(Refusal::OutOfStock)
    } else {
        None
    };
    if let Some(refusal) = refusal {
        return Ok(RedeemOutcome::Refused(refusal));
    }
    let order = shop::insert_order(
        tx,
        item.id,
        member_id,
        item.cost,
        &req.source_key,
        // A make-up card is delivered at once; goods wait for ops to ship them.
        if item.is_makeup_card() {
            "fulfilled"
        } else {
            "pending"
        },
        req.now_ms,
    )
    .await?;
    let source_key = format!("order:{}", order.id);
    let reason = format!("兑换 {}", item.name);
    let change = LedgerChange {
        member_id,
        delta: -item.cost,
        reason: &reason,
        source_key: &source_key,
        operator: None,
        day: req.day,
        now_ms: req.now_ms,
    };
    if db::insert_ledger(tx, &change).await? {
        shop::debit(tx, member_id, item.cost, req.now_ms).await?;
    }
    Ok(RedeemOutcome::Ordered {
        order_id: order.id,
        balance: account.balance - item.cost,
        item,
    })
}

/// The catalog row a configured item becomes.
pub fn catalog_item(item: &crate::config::ItemConfig) -> crate::store::redemption::NewItem<'_> {
    crate::store::redemption::NewItem {
        name: &item.name,
        cost: item.cost,
        stock: item.stock,
        per_member_limit: item.per_member_limit,
        enabled: item.enabled,
        kind: item.kind.as_str(),
    }
}
