//! Customers: the staff members who have customers, then their customers 100 staff members and
//! 100 relations a page at a time; each page's members, relations, corp tags and contact-way
//! tag rules are written with the cursor of the next page. A finished run ends the relations
//! it did not see.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::{add_tally, read_cursor, write_cursor, Importer, SyncError, What};
use crate::members::rule_spec::Trigger;
use crate::outbox::directory::{CustomerFact, STAFF_PER_CALL};
use crate::store::registry::{self, KnownFollow, KnownMember, NewMember, SyncRun, Tally, Written};
use crate::store::tags::{self, TagBatch};
use crate::store::Tx;

/// Where a customer import stands.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Cursor {
    /// Every staff member with customers, as listed at the start.
    staff: Vec<String>,
    /// The chunk of [`STAFF_PER_CALL`] staff members being read.
    chunk: usize,
    /// The platform's cursor within that chunk.
    page: String,
    /// Relations written so far.
    done: i64,
}

pub(super) async fn run(sync: &Importer<'_>, run: &mut SyncRun) -> Result<(), SyncError> {
    let mut cursor: Cursor = if run.cursor.is_empty() {
        // Tags first, so the customers' tag ids have local names.
        let library = sync
            .retrying(|| sync.outbox.corp_tag_library(sync.channel_id))
            .await?;
        crate::members::tag_sync::store_library(
            sync.store,
            sync.scope,
            &library,
            sync.clock.now_ms(),
        )
        .await
        .map_err(|e| SyncError::Cursor(format!("corp tags: {e}")))?;
        let mut staff = sync
            .retrying(|| sync.outbox.follow_users(sync.channel_id))
            .await?;
        staff.sort();
        staff.dedup();
        Cursor {
            staff,
            ..Cursor::default()
        }
    } else {
        read_cursor(run)?
    };
    let tag_names = sync.store.platform_tag_names(sync.scope).await?;
    sync.measure_tables(0).await?;
    let chunks: Vec<Vec<String>> = cursor
        .staff
        .chunks(STAFF_PER_CALL)
        .map(<[String]>::to_vec)
        .collect();
    while cursor.chunk < chunks.len() {
        let staff = &chunks[cursor.chunk];
        let page_cursor = cursor.page.clone();
        let page = sync
            .retrying(|| {
                sync.outbox
                    .customers_page(sync.channel_id, staff, &page_cursor)
            })
            .await?;
        cursor.done += i64::try_from(page.items.len()).unwrap_or(0);
        if page.next_cursor.is_empty() {
            cursor.chunk += 1;
            cursor.page.clear();
        } else {
            cursor.page = page.next_cursor;
        }
        write_cursor(run, &cursor)?;
        let mut tx = sync.store.begin_write().await?;
        let tally = write_page(sync, &mut tx, &page.items, &tag_names, run.id).await?;
        add_tally(run, tally);
        registry::save_run(&mut tx, run).await?;
        tx.commit().await?;
        sync.report(What::Contacts, run, cursor.done);
        sync.measure_tables(cursor.done).await?;
    }
    let now = sync.clock.now_ms();
    let mut tx = sync.store.begin_write().await?;
    let gone =
        registry::end_unseen_follows(&mut tx, sync.scope, run.id, run.started_at, now).await?;
    run.gone += i64::try_from(gone.len()).unwrap_or(0);
    registry::save_run(&mut tx, run).await?;
    tx.commit().await?;
    if !gone.is_empty() {
        tracing::info!(
            channel = sync.channel_id,
            relations_members = gone.len(),
            "customer relations gone at WeCom ended"
        );
    }
    Ok(())
}

/// Tag changes of a page, by (tag, source, set by, present): the members they apply to.
type TagChanges = BTreeMap<(String, &'static str, String, bool), Vec<i64>>;

/// Writes one page: its members, relations and tags are read first; new members and relations
/// go in with a few multi-row statements, corrections row by row, tags one statement per tag.
/// Counts per relation (created for a customer's first relation when the customer is new,
/// updated when the member, the relation or a tag changed).
async fn write_page(
    sync: &Importer<'_>,
    tx: &mut Tx,
    page: &[CustomerFact],
    tag_names: &HashMap<String, String>,
    run: i64,
) -> Result<Tally, SyncError> {
    let now = sync.clock.now_ms();
    let users: Vec<&str> = page.iter().map(|c| c.external_userid.as_str()).collect();
    let mut members = registry::members_by_user(tx, sync.scope, &users).await?;
    let follows = registry::follows_of(tx, sync.scope, &users).await?;
    let (new, new_at) = new_customers(page, &members);
    registry::insert_members(tx, sync.scope, &new, &mut members).await?;
    let ids: Vec<i64> = members.values().map(|m| m.id).collect();
    let mut have_tags = registry::tags_of_members(tx, &ids).await?;
    let mut tally = Tally::default();
    let mut new_follows = Vec::new();
    let mut unchanged = Vec::new();
    let mut tag_changes = TagChanges::new();
    let mut counted: HashSet<&str> = HashSet::new();
    for c in page {
        let (member_id, member) = if new_at.contains_key(c.external_userid.as_str()) {
            let id = members.get(&c.external_userid).map_or(0, |m| m.id);
            (id, Written::Created)
        } else {
            let known = KnownMember {
                scope: sync.scope,
                user_id: &c.external_userid,
                name: &c.name,
                first_seen_ms: c.added_at_ms,
            };
            registry::write_member(tx, &known, &mut members).await?
        };
        let known = KnownFollow {
            scope: sync.scope,
            external_userid: &c.external_userid,
            staff: &c.staff,
            state: &c.state,
            remark: &c.remark,
            added_at_ms: c.added_at_ms,
            run,
        };
        let follow = match follows.get(&(c.external_userid.clone(), c.staff.clone())) {
            None => {
                new_follows.push(known);
                Written::Created
            }
            stored => registry::write_follow(tx, &known, stored).await?,
        };
        if follow == Written::Unchanged {
            unchanged.push((c.external_userid.as_str(), c.staff.as_str()));
        }
        let mut tagged = 0;
        let has = have_tags.entry(member_id).or_default();
        for tag in c.tag_ids.iter().filter_map(|id| tag_names.get(id)) {
            if has.insert(tag.clone()) {
                let key = (tag.clone(), "platform", "sync".to_owned(), true);
                tag_changes.entry(key).or_default().push(member_id);
                tagged += 1;
            }
        }
        if follow == Written::Created && !c.state.is_empty() {
            tagged += channel_tags(sync, &mut tag_changes, member_id, &c.state);
        }
        tally.count(match (member, follow, tagged) {
            (Written::Created, ..) if counted.insert(&c.external_userid) => Written::Created,
            (Written::Unchanged, Written::Unchanged, 0) => Written::Unchanged,
            _ => Written::Updated,
        });
    }
    registry::insert_follows(tx, &new_follows).await?;
    registry::see_follows(tx, sync.scope, run, &unchanged).await?;
    apply_tags(sync, tx, &tag_changes, now).await?;
    Ok(tally)
}

/// The page's customers the registry does not have, with their earliest add time on the page,
/// and where each is in that list.
fn new_customers<'p>(
    page: &'p [CustomerFact],
    members: &HashMap<String, registry::StoredMember>,
) -> (Vec<NewMember<'p>>, HashMap<&'p str, usize>) {
    let mut new: Vec<NewMember<'p>> = Vec::new();
    let mut new_at: HashMap<&'p str, usize> = HashMap::new();
    for c in page
        .iter()
        .filter(|c| !members.contains_key(&c.external_userid))
    {
        match new_at.get(c.external_userid.as_str()) {
            Some(&i) => new[i].first_seen_ms = new[i].first_seen_ms.min(c.added_at_ms),
            None => {
                new_at.insert(&c.external_userid, new.len());
                new.push(NewMember {
                    user_id: &c.external_userid,
                    name: &c.name,
                    first_seen_ms: c.added_at_ms,
                });
            }
        }
    }
    (new, new_at)
}

/// Writes a page's tag changes, one statement per tag.
async fn apply_tags(
    sync: &Importer<'_>,
    tx: &mut Tx,
    changes: &TagChanges,
    now: i64,
) -> Result<(), SyncError> {
    for ((tag, source, by, present), ids) in changes {
        let batch = TagBatch {
            scope: sync.scope,
            tag,
            source,
            by,
            now_ms: now,
        };
        tags::set_many(tx, &batch, ids, *present).await?;
    }
    Ok(())
}

/// The contact-way tag rules for a relation first seen by the import, as the add-contact event
/// would have applied them; returns how many tag changes it adds.
fn channel_tags(
    sync: &Importer<'_>,
    changes: &mut TagChanges,
    member_id: i64,
    state: &str,
) -> usize {
    let mut added = 0;
    for rule in sync.rules {
        let Trigger::ChannelState(want) = &rule.trigger else {
            continue;
        };
        if want.as_deref().is_some_and(|w| w != state) {
            continue;
        }
        let by = format!("rule:{}", rule.id);
        let adds = rule.add.iter().map(|t| (t, true));
        let removes = rule.remove.iter().map(|t| (t, false));
        for (tag, present) in adds.chain(removes) {
            let key = (tag.replace("{state}", state), "rule", by.clone(), present);
            changes.entry(key).or_default().push(member_id);
            added += 1;
        }
    }
    added
}
