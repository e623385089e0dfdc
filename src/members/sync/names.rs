//! Names of the corp's own members who appear in the registry without one (senders of app
//! messages, staff in groups), from `user/get`; a name once stored is not asked for again.

use serde::{Deserialize, Serialize};

use super::{add_tally, read_cursor, write_cursor, Importer, SyncError, What};
use crate::store::registry::{self, SyncRun, Tally, Written};

/// Members asked for per round.
const ROUND: i64 = 100;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Cursor {
    /// The last user id looked up.
    after: String,
    done: i64,
}

pub(super) async fn run(sync: &Importer<'_>, run: &mut SyncRun) -> Result<(), SyncError> {
    let mut cursor: Cursor = read_cursor(run)?;
    loop {
        let unnamed = sync
            .store
            .unnamed_corp_members(sync.scope, &cursor.after, ROUND)
            .await?;
        let Some(last) = unnamed.last().cloned() else {
            return Ok(());
        };
        let mut found = Vec::new();
        let mut tally = Tally::default();
        for user in &unnamed {
            match sync
                .retrying(|| sync.outbox.corp_member_name(sync.channel_id, user))
                .await?
            {
                Some(name) => found.push((user.clone(), name)),
                None => tally.count(Written::Unchanged),
            }
        }
        let mut tx = sync.store.begin_write().await?;
        for (user, name) in &found {
            let named = registry::set_name(&mut tx, sync.scope, user, name).await?;
            tally.count(if named {
                Written::Updated
            } else {
                Written::Unchanged
            });
        }
        cursor.done += i64::try_from(unnamed.len()).unwrap_or(0);
        cursor.after = last;
        add_tally(run, tally);
        write_cursor(run, &cursor)?;
        registry::save_run(&mut tx, run).await?;
        tx.commit().await?;
        sync.report(What::Staff, run, cursor.done);
    }
}
