//! Leases: one holder per key across replicas, renewed by the holder, taken over after expiry.

use super::{Store, StoreError};
use crate::on_pool;

const ACQUIRE: &str = "insert into channel_leases (channel_id, holder, expires_at) values ($1, $2, $3) \
     on conflict (channel_id) do update set holder = excluded.holder, expires_at = excluded.expires_at \
     where channel_leases.holder = excluded.holder or channel_leases.expires_at < $4";
const RELEASE: &str = "delete from channel_leases where channel_id = $1 and holder = $2";
const HOLDER: &str = "select holder from channel_leases where channel_id = $1 and expires_at >= $2";

impl Store {
    /// Takes or renews the lease until `until_ms`; `true` when `holder` has it.
    pub async fn acquire_lease(
        &self,
        key: &str,
        holder: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<bool, StoreError> {
        let n = on_pool!(self.pool(), p => sqlx::query(ACQUIRE).bind(key).bind(holder).bind(until_ms).bind(now_ms)
            .execute(p).await?.rows_affected());
        Ok(n == 1)
    }

    pub async fn release_lease(&self, key: &str, holder: &str) -> Result<(), StoreError> {
        on_pool!(self.pool(), p => { sqlx::query(RELEASE).bind(key).bind(holder).execute(p).await?; });
        Ok(())
    }

    /// The current holder, if the lease is live.
    pub async fn lease_holder(&self, key: &str, now_ms: i64) -> Result<Option<String>, StoreError> {
        Ok(
            on_pool!(self.pool(), p => sqlx::query_scalar::<_, String>(HOLDER).bind(key).bind(now_ms).fetch_optional(p).await?),
        )
    }
}
