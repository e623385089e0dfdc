//! Which staff member each customer contact belongs to (from add/remove-contact events).

use super::{Store, StoreError, Tx};
use crate::{on_pool, on_tx};

const ADD: &str =
    "insert into contact_follows (scope, external_userid, staff, state, added_at, removed_at) \
     values ($1, $2, $3, $4, $5, null) on conflict (scope, external_userid, staff) do update set \
     state = coalesce(excluded.state, contact_follows.state), removed_at = null";
const REMOVE: &str = "update contact_follows set removed_at = $4 \
     where scope = $1 and external_userid = $2 and staff = $3 and removed_at is null";
const STAFF_OF: &str = "select staff from contact_follows \
     where scope = $1 and external_userid = $2 and removed_at is null order by added_at, staff";

pub async fn add_follow(
    tx: &mut Tx,
    scope: &str,
    external: &str,
    staff: &str,
    state: Option<&str>,
    at_ms: i64,
) -> Result<(), StoreError> {
    on_tx!(tx, c => {
        sqlx::query(ADD).bind(scope).bind(external).bind(staff).bind(state).bind(at_ms).execute(&mut **c).await?;
    });
    Ok(())
}

pub async fn remove_follow(
    tx: &mut Tx,
    scope: &str,
    external: &str,
    staff: &str,
    at_ms: i64,
) -> Result<(), StoreError> {
    on_tx!(tx, c => {
        sqlx::query(REMOVE).bind(scope).bind(external).bind(staff).bind(at_ms).execute(&mut **c).await?;
    });
    Ok(())
}

impl Store {
    /// The staff members who currently have `external` as a customer.
    pub async fn staff_of(&self, scope: &str, external: &str) -> Result<Vec<String>, StoreError> {
        Ok(
            on_pool!(self.pool(), p => sqlx::query_scalar::<_, String>(STAFF_OF).bind(scope).bind(external).fetch_all(p).await?),
        )
    }
}
