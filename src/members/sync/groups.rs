//! Customer groups: the group list 1,000 ids a page at a time, then each group with its
//! members, written with the cursor that says how far the page is done. Members not in a
//! group's list any more have left it; groups an earlier run saw and this finished run did not
//! are gone (dismissed, or out of the app's sight) and their members left them. `gone` counts
//! both: groups and memberships that ended.

use serde::{Deserialize, Serialize};

use super::{add_tally, read_cursor, write_cursor, Importer, SyncError, What};
use crate::outbox::directory::{DirectoryError, GroupFact};
use crate::store::registry::{
    self, KnownGroup, KnownMember, KnownMembership, NewMember, SyncRun, Tally, Written,
};
use crate::store::Tx;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Cursor {
    /// The platform's cursor of the list page being worked through.
    page: String,
    /// Groups of that page already written.
    skip: usize,
    /// Groups written so far.
    done: i64,
}

pub(super) async fn run(sync: &Importer<'_>, run: &mut SyncRun) -> Result<(), SyncError> {
    let mut cursor: Cursor = read_cursor(run)?;
    sync.measure_tables(0).await?;
    // Memberships written by this process, for when to measure the tables again.
    let mut memberships: i64 = 0;
    loop {
        let page_cursor = cursor.page.clone();
        let page = sync
            .retrying(|| sync.outbox.groups_page(sync.channel_id, &page_cursor))
            .await?;
        for listed in page.items.iter().skip(cursor.skip) {
            let fetched = sync
                .retrying(|| sync.outbox.group(sync.channel_id, &listed.chat_id))
                .await;
            cursor.skip += 1;
            let mut tx = sync.store.begin_write().await?;
            let tally = match fetched {
                Ok(group) => {
                    memberships += i64::try_from(group.members.len()).unwrap_or(0);
                    write_group(sync, &mut tx, &group, run).await?
                }
                // A group dismissed between the list and the read: the end of the run sees it gone.
                Err(DirectoryError::Permanent(reason)) => {
                    tracing::warn!(channel = sync.channel_id, chat = %listed.chat_id, %reason, "customer group not readable");
                    run.last_error = Some(format!("{}: {reason}", listed.chat_id));
                    Tally {
                        errors: 1,
                        ..Tally::default()
                    }
                }
                Err(e) => return Err(e.into()),
            };
            cursor.done += 1;
            add_tally(run, tally);
            write_cursor(run, &cursor)?;
            registry::save_run(&mut tx, run).await?;
            tx.commit().await?;
            sync.report(What::Groups, run, cursor.done);
            sync.measure_tables(memberships).await?;
        }
        if page.next_cursor.is_empty() {
            break;
        }
        cursor.page = page.next_cursor;
        cursor.skip = 0;
    }
    let mut tx = sync.store.begin_write().await?;
    let (groups, members) =
        registry::end_unseen_groups(&mut tx, sync.scope, run.id, sync.clock.now_ms()).await?;
    run.gone += groups + i64::try_from(members.len()).unwrap_or(0);
    registry::save_run(&mut tx, run).await?;
    tx.commit().await?;
    Ok(())
}

/// Writes one group and its members; counts the group (updated when the group or any
/// membership changed) and members who left.
async fn write_group(
    sync: &Importer<'_>,
    tx: &mut Tx,
    g: &GroupFact,
    run: &SyncRun,
) -> Result<Tally, SyncError> {
    let (group_id, group) = registry::upsert_group(
        tx,
        &KnownGroup {
            scope: sync.scope,
            chat_id: &g.chat_id,
            name: &g.name,
            owner: &g.owner,
            notice: &g.notice,
            created_ms: g.created_at_ms,
            run: run.id,
        },
    )
    .await?;
    let mut changed = group != Written::Unchanged;
    let users: Vec<&str> = g.members.iter().map(|m| m.user_id.as_str()).collect();
    let mut members = registry::members_by_user(tx, sync.scope, &users).await?;
    let memberships = registry::memberships_of(tx, group_id).await?;
    let new: Vec<NewMember<'_>> = g
        .members
        .iter()
        .filter(|m| !members.contains_key(&m.user_id))
        .map(|m| NewMember {
            user_id: &m.user_id,
            name: &m.name,
            first_seen_ms: m.joined_at_ms,
        })
        .collect();
    changed |= !new.is_empty();
    registry::insert_members(tx, sync.scope, &new, &mut members).await?;
    let mut unchanged = Vec::new();
    let mut joined = Vec::new();
    for m in &g.members {
        let known = KnownMember {
            scope: sync.scope,
            user_id: &m.user_id,
            name: &m.name,
            first_seen_ms: m.joined_at_ms,
        };
        let (member_id, member) = registry::write_member(tx, &known, &mut members).await?;
        let membership = KnownMembership {
            group_id,
            member_id,
            joined_at_ms: m.joined_at_ms,
            join_scene: m.join_scene,
            inviter: m.inviter.as_deref(),
            run: run.id,
        };
        let written = match memberships.get(&member_id) {
            None => {
                joined.push(membership);
                Written::Created
            }
            stored => registry::write_membership(tx, &membership, stored).await?,
        };
        if written == Written::Unchanged {
            unchanged.push(member_id);
        }
        changed |= member != Written::Unchanged || written != Written::Unchanged;
    }
    registry::insert_memberships(tx, &joined).await?;
    registry::see_memberships(tx, group_id, run.id, &unchanged).await?;
    let left =
        registry::leave_unseen(tx, group_id, run.id, run.started_at, sync.clock.now_ms()).await?;
    let mut tally = Tally {
        gone: i64::try_from(left.len()).unwrap_or(0),
        ..Tally::default()
    };
    tally.count(match group {
        Written::Created => Written::Created,
        _ if changed || !left.is_empty() => Written::Updated,
        _ => Written::Unchanged,
    });
    Ok(tally)
}
