//! Ops actions on points: manual adjustments and order fulfilment/cancellation (with refund),
//! all through the ledger, each applied once per request id.

use crate::store::points::{self as db, LedgerChange};
use crate::store::redemption as shop;
use crate::store::{Store, StoreError, Tx};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdjustOutcome {
    Applied {
        balance: i64,
    },
    /// The request id was used before; nothing changed.
    Duplicate {
        balance: i64,
    },
    WouldGoNegative {
        balance: i64,
    },
    /// The request id was used before for this member with another delta or reason.
    Conflict {
        delta: i64,
        reason: String,
    },
}

/// An ops adjustment: `delta` (negative to deduct) for a member, once per `request_id`.
#[derive(Debug, Clone)]
pub struct Adjustment<'a> {
    pub scope: &'a str,
    pub user_id: &'a str,
    pub delta: i64,
    pub reason: &'a str,
    pub operator: &'a str,
    pub request_id: &'a str,
    pub day: i32,
    pub now_ms: i64,
}

/// Applies an adjustment in a transaction of its own.
pub async fn adjust(store: &Store, a: &Adjustment<'_>) -> Result<AdjustOutcome, StoreError> {
    let mut tx = store.begin_write().await?;
    let outcome = adjust_tx(&mut tx, a).await?;
    tx.commit().await?;
    Ok(outcome)
}

/// Applies an adjustment inside the caller's transaction, through the ledger.
pub async fn adjust_tx(tx: &mut Tx, a: &Adjustment<'_>) -> Result<AdjustOutcome, StoreError> {
    let (member_id, account) = db::member_account(tx, a.scope, a.user_id, None, a.now_ms).await?;
    if account.balance + a.delta < 0 {
        return Ok(AdjustOutcome::WouldGoNegative {
            balance: account.balance,
        });
    }
    // Request ids are the caller's, unique per member: the same id for another member is
    // another request.
    let source_key = format!("adjust:{member_id}:{}", a.request_id);
    let change = LedgerChange {
        member_id,
        delta: a.delta,
        reason: a.reason,
        source_key: &source_key,
        operator: Some(a.operator),
        day: a.day,
        now_ms: a.now_ms,
    };
    Ok(if db::insert_ledger(tx, &change).await? {
        db::adjust_balance(tx, member_id, a.delta, a.now_ms).await?;
        AdjustOutcome::Applied {
            balance: account.balance + a.delta,
        }
    } else {
        match db::ledger_by_source(tx, &source_key).await? {
            Some((_, delta, reason)) if delta != a.delta || reason != a.reason => {
                AdjustOutcome::Conflict { delta, reason }
            }
            _ => AdjustOutcome::Duplicate {
                balance: account.balance,
            },
        }
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderAction {
    Fulfil,
    Cancel,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderOutcome {
    Done,
    NotFound,
    /// Already fulfilled or cancelled.
    NotPending {
        status: String,
    },
}

/// Fulfils or cancels a pending order; cancelling refunds the points and returns the stock.
pub async fn close_order(
    store: &Store,
    order_id: i64,
    action: OrderAction,
    operator: &str,
    day: i32,
    now_ms: i64,
) -> Result<OrderOutcome, StoreError> {
    let mut tx = store.begin_write().await?;
    let Some(order) = shop::order_by_id(&mut tx, order_id).await? else {
        tx.commit().await?;
        return Ok(OrderOutcome::NotFound);
    };
    let status = match action {
        OrderAction::Fulfil => "fulfilled",
        OrderAction::Cancel => "cancelled",
    };
    if !shop::close_order(&mut tx, order_id, status, now_ms).await? {
        tx.commit().await?;
        return Ok(OrderOutcome::NotPending {
            status: order.status,
        });
    }
    if action == OrderAction::Cancel {
        let source_key = format!("refund:{order_id}");
        let change = LedgerChange {
            member_id: order.member_id,
            delta: order.cost,
            reason: "兑换取消退款",
            source_key: &source_key,
            operator: Some(operator),
            day,
            now_ms,
        };
        if db::insert_ledger(&mut tx, &change).await? {
            // A refund gives points back; it is not new earning, so `total_earned` stays.
            shop::debit(&mut tx, order.member_id, -order.cost, now_ms).await?;
        }
        shop::return_stock(&mut tx, order.item_id).await?;
    }
    tx.commit().await?;
    Ok(OrderOutcome::Done)
}
