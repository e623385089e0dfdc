//! Counting and listing the members of a compiled segment (see `members::segment`).

use super::{bind_all, Store, StoreError};
use crate::members::segment::Compiled;
use crate::on_pool;

fn from(backend: super::Backend) -> String {
    let join = crate::members::segment::AccountSql::for_backend(backend).join();
    format!("from members m{join} where m.scope = $1 and ")
}

impl Store {
    /// How many members of `scope` the segment holds. `segment` must number its parameters from 2.
    pub async fn segment_count(&self, scope: &str, segment: &Compiled) -> Result<i64, StoreError> {
        let sql = format!(
            "select cast(count(*) as bigint) {}{}",
            from(self.backend()),
            segment.condition
        );
        Ok(on_pool!(self.pool(), p => {
            let q = sqlx::query_scalar::<_, i64>(&sql).bind(scope);
            bind_all!(q, &segment.binds).fetch_one(p).await?
        }))
    }

    /// A page of the segment's members (platform user ids, sorted).
    pub async fn segment_members(
        &self,
        scope: &str,
        segment: &Compiled,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<String>, StoreError> {
        let n = segment.binds.len() + 2;
        let sql = format!(
            "select m.platform_user_id {}{} order by m.platform_user_id limit ${n} offset ${}",
            from(self.backend()),
            segment.condition,
            n + 1
        );
        Ok(on_pool!(self.pool(), p => {
            let q = sqlx::query_scalar::<_, String>(&sql).bind(scope);
            bind_all!(q, &segment.binds).bind(limit).bind(offset).fetch_all(p).await?
        }))
    }
}
