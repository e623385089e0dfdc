//! The periodic jobs go through members in windows of consecutive ids: a run over a million
//! members then holds one window's rows at a time, and its writes come in short transactions
//! that callbacks can slip between.
//!
//! The window reads are planned afresh every time (`persistent(false)`). A prepared statement
//! keeps the plan PostgreSQL chose when it was first used; made while the tables were small, it
//! stayed in use after they grew (without ANALYZE): 210 s a run at a million members against
//! 22 s with plans made for the tables as they are. Planning a window's query costs about 1 ms.

use super::{Store, StoreError};
use crate::on_pool;

/// Members per window in the periodic jobs.
pub const MEMBER_WINDOW: i64 = 2_000;

const WINDOW_END: &str =
    "select max(id) from (select id from members where id > $1 order by id limit $2) w";

/// Member id windows `(after, last]`, in id order, each holding at most `size` members.
#[derive(Debug, Clone, Copy)]
pub struct MemberWindows {
    after: i64,
    size: i64,
}

impl MemberWindows {
    pub fn new(size: i64) -> Self {
        Self {
            after: 0,
            size: size.max(1),
        }
    }

    /// The next window `(after, last]`, or `None` once every member was covered. Members who
    /// arrive during the run have higher ids and fall into a later window.
    pub async fn next(&mut self, store: &Store) -> Result<Option<(i64, i64)>, StoreError> {
        let end: Option<i64> = on_pool!(store.pool(), p => sqlx::query_scalar(WINDOW_END)
            .bind(self.after).bind(self.size).persistent(false).fetch_one(p).await?);
        Ok(end.map(|last| {
            let window = (self.after, last);
            self.after = last;
            window
        }))
    }
}
