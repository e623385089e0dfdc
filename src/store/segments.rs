//! Counting and listing the members of a compiled segment (see `members::segment`).

use super::{bind_all, Store, StoreError};
use crate::on_pool;

/// A bind value of a compiled segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bind {
    Text(String),
    Int(i64),
}

/// A segment as SQL: a condition over `members m`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compiled {
    pub condition: String,
    pub binds: Vec<Bind>,
}

/// How a compiled segment reads `points_accounts`: as uncorrelated sub-selects (fast on SQLite)
/// or through `points_accounts a` joined by the caller (fast on PostgreSQL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountSql {
    SubSelect,
    Joined,
}

impl AccountSql {
    /// The form that is fast on `backend`.
    pub fn for_backend(backend: super::Backend) -> Self {
        match backend {
            super::Backend::Sqlite => Self::SubSelect,
            super::Backend::Postgres => Self::Joined,
        }
    }

    /// What the caller's FROM needs after `members m`.
    pub fn join(self) -> &'static str {
        match self {
            Self::SubSelect => "",
            Self::Joined => " left join points_accounts a on a.member_id = m.id",
        }
    }
}

fn from(backend: super::Backend) -> String {
    let join = AccountSql::for_backend(backend).join();
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
