//! The reward catalog and orders. Stock, order and ledger change in one transaction; the stock
//! decrement is conditional (`stock > 0`) so concurrent orders can never oversell.

use sqlx::FromRow;

use super::{Store, StoreError, Tx};
use crate::{on_pool, on_tx};

#[derive(Debug, Clone, FromRow, PartialEq, Eq, serde::Serialize)]
pub struct Item {
    pub id: i64,
    pub name: String,
    pub cost: i64,
    pub stock: i64,
    pub per_member_limit: i64,
    pub enabled: bool,
    /// `goods` (shipped by ops) or `makeup_card` (补签卡, kept by the member and spent on `补签`).
    pub kind: String,
}

/// The `kind` of a make-up card (补签卡).
pub const MAKEUP_CARD: &str = "makeup_card";

impl Item {
    pub fn is_makeup_card(&self) -> bool {
        self.kind == MAKEUP_CARD
    }
}

/// An item to add to the catalog.
#[derive(Debug, Clone)]
pub struct NewItem<'a> {
    pub name: &'a str,
    pub cost: i64,
    pub stock: i64,
    pub per_member_limit: i64,
    pub enabled: bool,
    /// `goods` or [`MAKEUP_CARD`].
    pub kind: &'a str,
}

#[derive(Debug, Clone, FromRow, PartialEq, Eq, serde::Serialize)]
pub struct Order {
    pub id: i64,
    pub item_id: i64,
    pub member_id: i64,
    pub cost: i64,
    pub status: String,
    pub created_at: i64,
}

const SEED_ITEM: &str =
    "insert into reward_items (name, cost, stock, per_member_limit, enabled, created_at, kind) \
     values ($1, $2, $3, $4, $5, $6, $7) on conflict (name) do nothing";
const LIST_ENABLED: &str = "select id, name, cost, stock, per_member_limit, enabled, kind from reward_items where enabled order by cost, name";
const ITEM_BY_NAME: &str =
    "select id, name, cost, stock, per_member_limit, enabled, kind from reward_items where name = $1";
const ORDER_BY_SOURCE: &str = "select id, item_id, member_id, cost, status, created_at from reward_orders where source_key = $1";
const ORDERS_OF_FOR_ITEM: &str = "select cast(count(*) as bigint) from reward_orders where member_id = $1 and item_id = $2 and status <> 'cancelled'";
const TAKE_STOCK: &str = "update reward_items set stock = stock - 1 where id = $1 and stock > 0";
const INSERT_ORDER: &str = "insert into reward_orders (item_id, member_id, cost, status, source_key, created_at, updated_at) \
     values ($1, $2, $3, $6, $4, $5, $5) returning id, item_id, member_id, cost, status, created_at";
const DEBIT: &str =
    "update points_accounts set balance = balance - $1, updated_at = $2 where member_id = $3";
/// An order with who ordered what, for ops.
#[derive(Debug, Clone, FromRow, PartialEq, Eq, serde::Serialize)]
pub struct OrderView {
    pub id: i64,
    pub item_id: i64,
    pub item_name: String,
    pub member_id: i64,
    pub scope: String,
    pub user_id: String,
    pub member_name: Option<String>,
    pub cost: i64,
    pub status: String,
    pub created_at: i64,
}

const ORDER_VIEWS_BY_STATUS: &str = "select o.id, o.item_id, i.name as item_name, o.member_id, m.scope, \
     m.platform_user_id as user_id, m.display_name as member_name, o.cost, o.status, o.created_at \
     from reward_orders o join reward_items i on i.id = o.item_id join members m on m.id = o.member_id \
     where o.status = $1 order by o.id";
const ORDERS_BY_STATUS: &str = "select id, item_id, member_id, cost, status, created_at from reward_orders where status = $1 order by id";

/// Adds configured items that the catalog does not have yet.
pub async fn seed_items(
    store: &Store,
    items: &[NewItem<'_>],
    now_ms: i64,
) -> Result<(), StoreError> {
    for item in items {
        on_pool!(store.pool(), p => {
            sqlx::query(SEED_ITEM)
                .bind(item.name)
                .bind(item.cost)
                .bind(item.stock)
                .bind(item.per_member_limit)
                .bind(item.enabled)
                .bind(now_ms)
                .bind(item.kind)
                .execute(p)
                .await?;
        });
    }
    Ok(())
}

pub async fn item_by_name(tx: &mut Tx, name: &str) -> Result<Option<Item>, StoreError> {
    Ok(
        on_tx!(tx, c => sqlx::query_as::<_, Item>(ITEM_BY_NAME).bind(name).fetch_optional(&mut **c).await?),
    )
}

pub async fn order_by_source(tx: &mut Tx, source_key: &str) -> Result<Option<Order>, StoreError> {
    Ok(
        on_tx!(tx, c => sqlx::query_as::<_, Order>(ORDER_BY_SOURCE).bind(source_key).fetch_optional(&mut **c).await?),
    )
}

pub async fn orders_for_item(tx: &mut Tx, member_id: i64, item_id: i64) -> Result<i64, StoreError> {
    Ok(
        on_tx!(tx, c => sqlx::query_scalar::<_, i64>(ORDERS_OF_FOR_ITEM).bind(member_id).bind(item_id).fetch_one(&mut **c).await?),
    )
}

/// Takes one unit of stock; `false` when none is left.
pub async fn take_stock(tx: &mut Tx, item_id: i64) -> Result<bool, StoreError> {
    let affected = on_tx!(tx, c => sqlx::query(TAKE_STOCK).bind(item_id).execute(&mut **c).await?.rows_affected());
    Ok(affected == 1)
}

pub async fn insert_order(
    tx: &mut Tx,
    item_id: i64,
    member_id: i64,
    cost: i64,
    source_key: &str,
    status: &str,
    now_ms: i64,
) -> Result<Order, StoreError> {
    Ok(on_tx!(tx, c => sqlx::query_as::<_, Order>(INSERT_ORDER)
        .bind(item_id).bind(member_id).bind(cost).bind(source_key).bind(now_ms).bind(status)
        .fetch_one(&mut **c).await?))
}

/// Lowers the balance (the ledger row is written by the caller with the same source).
pub async fn debit(
    tx: &mut Tx,
    member_id: i64,
    amount: i64,
    now_ms: i64,
) -> Result<(), StoreError> {
    on_tx!(tx, c => {
        sqlx::query(DEBIT).bind(amount).bind(now_ms).bind(member_id).execute(&mut **c).await?;
    });
    Ok(())
}

impl Store {
    pub async fn shop_items(&self) -> Result<Vec<Item>, StoreError> {
        Ok(on_pool!(self.pool(), p => sqlx::query_as::<_, Item>(LIST_ENABLED).fetch_all(p).await?))
    }

    pub async fn orders_with_status(&self, status: &str) -> Result<Vec<Order>, StoreError> {
        Ok(
            on_pool!(self.pool(), p => sqlx::query_as::<_, Order>(ORDERS_BY_STATUS).bind(status).fetch_all(p).await?),
        )
    }

    /// Orders with `status`, with the member's user id and name and the item's name.
    pub async fn order_views(&self, status: &str) -> Result<Vec<OrderView>, StoreError> {
        Ok(
            on_pool!(self.pool(), p => sqlx::query_as::<_, OrderView>(ORDER_VIEWS_BY_STATUS).bind(status).fetch_all(p).await?),
        )
    }

    pub async fn item(&self, name: &str) -> Result<Option<Item>, StoreError> {
        Ok(
            on_pool!(self.pool(), p => sqlx::query_as::<_, Item>(ITEM_BY_NAME).bind(name).fetch_optional(p).await?),
        )
    }
}

const ALL_ITEMS: &str =
    "select id, name, cost, stock, per_member_limit, enabled, kind from reward_items order by id";
const INSERT_ITEM: &str = "insert into reward_items (name, cost, stock, per_member_limit, enabled, created_at, kind) \
     values ($1, $2, $3, $4, $5, $6, $7) on conflict (name) do nothing returning id, name, cost, stock, per_member_limit, enabled, kind";
const UPDATE_ITEM: &str = "update reward_items set cost = $1, stock = $2, per_member_limit = $3, enabled = $4 where id = $5 \
     returning id, name, cost, stock, per_member_limit, enabled, kind";
const ORDER_BY_ID: &str =
    "select id, item_id, member_id, cost, status, created_at from reward_orders where id = $1";
const SET_ORDER_STATUS: &str =
    "update reward_orders set status = $1, updated_at = $2 where id = $3 and status = 'pending'";
const DELETE_UNORDERED_ITEM: &str = "delete from reward_items where id = $1 \
     and not exists (select 1 from reward_orders o where o.item_id = reward_items.id)";
const ITEM_EXISTS: &str = "select cast(count(*) as bigint) from reward_items where id = $1";
const RETURN_STOCK: &str = "update reward_items set stock = stock + 1 where id = $1";

impl Store {
    pub async fn all_items(&self) -> Result<Vec<Item>, StoreError> {
        Ok(on_pool!(self.pool(), p => sqlx::query_as::<_, Item>(ALL_ITEMS).fetch_all(p).await?))
    }

    /// `None` when an item with that name exists.
    pub async fn create_item(
        &self,
        item: &NewItem<'_>,
        now_ms: i64,
    ) -> Result<Option<Item>, StoreError> {
        Ok(
            on_pool!(self.pool(), p => sqlx::query_as::<_, Item>(INSERT_ITEM)
            .bind(item.name).bind(item.cost).bind(item.stock).bind(item.per_member_limit).bind(item.enabled).bind(now_ms)
            .bind(item.kind).fetch_optional(p).await?),
        )
    }

    /// Deletes an item nobody ordered: `Ok(true)` deleted, `Ok(false)` it has orders (disable it
    /// instead), `Err(NotFound)` no such item.
    pub async fn delete_item(&self, id: i64) -> Result<bool, StoreError> {
        let deleted = on_pool!(self.pool(), p => sqlx::query(DELETE_UNORDERED_ITEM).bind(id).execute(p).await?.rows_affected());
        if deleted == 1 {
            return Ok(true);
        }
        let exists = on_pool!(self.pool(), p => sqlx::query_scalar::<_, i64>(ITEM_EXISTS).bind(id).fetch_one(p).await?);
        if exists == 0 {
            Err(StoreError::NotFound)
        } else {
            Ok(false)
        }
    }

    pub async fn update_item(
        &self,
        id: i64,
        cost: i64,
        stock: i64,
        per_member_limit: i64,
        enabled: bool,
    ) -> Result<Option<Item>, StoreError> {
        Ok(
            on_pool!(self.pool(), p => sqlx::query_as::<_, Item>(UPDATE_ITEM)
            .bind(cost).bind(stock).bind(per_member_limit).bind(enabled).bind(id)
            .fetch_optional(p).await?),
        )
    }
}

pub async fn order_by_id(tx: &mut Tx, id: i64) -> Result<Option<Order>, StoreError> {
    Ok(
        on_tx!(tx, c => sqlx::query_as::<_, Order>(ORDER_BY_ID).bind(id).fetch_optional(&mut **c).await?),
    )
}

/// Moves a pending order to `status`; `false` if it was not pending.
pub async fn close_order(
    tx: &mut Tx,
    id: i64,
    status: &str,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let affected = on_tx!(tx, c => sqlx::query(SET_ORDER_STATUS).bind(status).bind(now_ms).bind(id).execute(&mut **c).await?.rows_affected());
    Ok(affected == 1)
}

pub async fn return_stock(tx: &mut Tx, item_id: i64) -> Result<(), StoreError> {
    on_tx!(tx, c => {
        sqlx::query(RETURN_STOCK).bind(item_id).execute(&mut **c).await?;
    });
    Ok(())
}

const UNUSED_CARD: &str = "select o.id from reward_orders o join reward_items i on i.id = o.item_id \
     where o.member_id = $1 and i.kind = 'makeup_card' and o.status = 'fulfilled' and o.used_day is null \
     order by o.id limit 1";
const UNUSED_CARDS: &str = "select cast(count(*) as bigint) from reward_orders o join reward_items i on i.id = o.item_id \
     where o.member_id = $1 and i.kind = 'makeup_card' and o.status = 'fulfilled' and o.used_day is null";
const SPEND_CARD: &str =
    "update reward_orders set used_day = $1, updated_at = $2 where id = $3 and used_day is null";

/// The oldest make-up card the member holds and has not spent.
pub async fn unused_card(tx: &mut Tx, member_id: i64) -> Result<Option<i64>, StoreError> {
    Ok(
        on_tx!(tx, c => sqlx::query_scalar::<_, i64>(UNUSED_CARD).bind(member_id).fetch_optional(&mut **c).await?),
    )
}

pub async fn unused_cards(tx: &mut Tx, member_id: i64) -> Result<i64, StoreError> {
    Ok(
        on_tx!(tx, c => sqlx::query_scalar::<_, i64>(UNUSED_CARDS).bind(member_id).fetch_one(&mut **c).await?),
    )
}

/// Marks a card spent on `day`; `false` if it was spent already.
pub async fn spend_card(
    tx: &mut Tx,
    order_id: i64,
    day: i32,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let affected = on_tx!(tx, c => sqlx::query(SPEND_CARD).bind(day).bind(now_ms).bind(order_id)
        .execute(&mut **c).await?.rows_affected());
    Ok(affected == 1)
}
