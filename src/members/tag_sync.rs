//! WeCom tag sync for `wecom_app` channels with customer-contact access: the corp tag library is
//! pulled into local tags (mapped by name, remembering WeCom's id); local changes to such tags
//! are mirrored with `mark_tag` through the outbox; WeCom-side edits (`edit_external_contact`)
//! are applied locally with source `platform`, and platform-sourced changes are never pushed
//! back — so no loop can form.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::bot::{BotContext, Handler, HandlerFuture, Outcome};
use crate::config::{ChannelKind, Config};
use crate::events::{Event, EventKind};
use crate::outbox::directory::CorpTagFact;
use crate::outbox::{Envelope, Outbound, Outbox, PRIORITY_NORMAL};
use crate::store::tags::{self, TagChange};
use crate::store::{Store, StoreError};

const MIRROR_CURSOR: &str = "tag_mirror";

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("WeCom: {0}")]
    Api(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Channels that can sync tags: `wecom_app` with an API secret.
pub fn sync_channels(config: &Config) -> impl Iterator<Item = (&str, &str)> {
    config.channels.iter().filter_map(|(id, c)| {
        let scope = c.scope.as_deref().or(c.corp_id.as_deref())?;
        (c.enabled && c.kind == ChannelKind::WecomApp && c.secret.is_some())
            .then_some((id.as_str(), scope))
    })
}

/// Pulls the corp tag library into `scope`'s tags; returns how many tags were seen.
pub async fn pull(
    outbox: &Outbox,
    store: &Store,
    channel_id: &str,
    scope: &str,
    now_ms: i64,
) -> Result<usize, SyncError> {
    let library = outbox
        .corp_tag_library(channel_id)
        .await
        .map_err(|e| SyncError::Api(e.to_string()))?;
    store_library(store, scope, &library, now_ms).await
}

/// Stores a pulled corp tag library as `scope`'s platform tags; returns how many tags it has.
pub async fn store_library(
    store: &Store,
    scope: &str,
    library: &[CorpTagFact],
    now_ms: i64,
) -> Result<usize, SyncError> {
    let mut tx = store.begin_write().await?;
    for tag in library {
        tags::upsert_platform_tag(
            &mut tx,
            scope,
            &tag.name,
            Some(&tag.group_name),
            &tag.id,
            now_ms,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(library.len())
}

/// How the local tags of a scope and the corp tag library differ.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct TagDiff {
    /// Local tags WeCom does not have (they are never mirrored until created there).
    pub only_local: Vec<String>,
    /// WeCom tags with no local tag (a pull maps them).
    pub only_wecom: Vec<String>,
    /// Tags on both sides.
    pub mapped: usize,
}

/// Compares `scope`'s tags with the corp tag library.
pub async fn diff(
    outbox: &Outbox,
    store: &Store,
    channel_id: &str,
    scope: &str,
) -> Result<TagDiff, SyncError> {
    let library = outbox
        .corp_tag_library(channel_id)
        .await
        .map_err(|e| SyncError::Api(e.to_string()))?;
    let wecom: HashSet<&str> = library.iter().map(|t| t.name.as_str()).collect();
    let local = store.tag_list(scope).await?;
    let local_names: HashSet<&str> = local.iter().map(|t| t.name.as_str()).collect();
    let mut only_local: Vec<String> = local_names
        .iter()
        .filter(|n| !wecom.contains(*n))
        .map(|n| (*n).to_owned())
        .collect();
    let mut only_wecom: Vec<String> = wecom
        .iter()
        .filter(|n| !local_names.contains(*n))
        .map(|n| (*n).to_owned())
        .collect();
    only_local.sort();
    only_wecom.sort();
    Ok(TagDiff {
        mapped: local_names.len() - only_local.len(),
        only_local,
        only_wecom,
    })
}

/// Creates local tags at WeCom as corp tags in `group_name` (30 characters at most, WeCom's
/// limit) and maps them, so their changes are mirrored from then on. Returns the tags created.
pub async fn push(
    outbox: &Outbox,
    store: &Store,
    channel_id: &str,
    scope: &str,
    group_name: &str,
    names: &[String],
    now_ms: i64,
) -> Result<Vec<CorpTagFact>, SyncError> {
    let created = outbox
        .add_corp_tags(channel_id, group_name, names)
        .await
        .map_err(|e| SyncError::Api(e.to_string()))?;
    store_library(store, scope, &created, now_ms).await?;
    Ok(created)
}

/// Applies a customer's tags as WeCom has them (for one staff member's relation) locally.
pub async fn apply_contact(
    outbox: &Outbox,
    store: &Store,
    channel_id: &str,
    scope: &str,
    staff: &str,
    external: &str,
    now_ms: i64,
) -> Result<usize, SyncError> {
    let contact = outbox
        .external_contact(channel_id, external)
        .await
        .map_err(SyncError::Api)?;
    let Some(follow) = contact.follow_user.iter().find(|f| f.userid == staff) else {
        return Ok(0);
    };
    let mut tx = store.begin_write().await?;
    let mut wanted = HashSet::new();
    for t in &follow.tags {
        if t.tag_id.is_empty() {
            continue;
        }
        tags::upsert_platform_tag(
            &mut tx,
            scope,
            &t.tag_name,
            Some(&t.group_name),
            &t.tag_id,
            now_ms,
        )
        .await?;
        wanted.insert(t.tag_name.clone());
    }
    tx.commit().await?;
    let had: HashMap<String, String> = store
        .platform_tags_of(scope, external)
        .await?
        .into_iter()
        .collect();
    let by = format!("wecom:{staff}");
    let mut tx = store.begin_write().await?;
    let mut changed = 0;
    for name in wanted.iter().filter(|n| !had.contains_key(*n)) {
        let change = TagChange {
            scope,
            user_id: external,
            tag: name,
            source: "platform",
            by: &by,
            now_ms,
        };
        changed += usize::from(tags::add(&mut tx, &change).await?);
    }
    for name in had.keys().filter(|n| !wanted.contains(*n)) {
        let change = TagChange {
            scope,
            user_id: external,
            tag: name,
            source: "platform",
            by: &by,
            now_ms,
        };
        changed += usize::from(tags::remove(&mut tx, &change).await?);
    }
    tx.commit().await?;
    Ok(changed)
}

/// One customer's changes in a mirror batch: the channel, the last log id, and each WeCom tag's
/// final state (present or not).
type Folded<'a> = (&'a str, i64, BTreeMap<String, bool>);

/// Queues `mark_tag` for local changes of WeCom-mapped tags logged since the last run (not those
/// that came from WeCom). Changes of one customer are folded into one call per staff member
/// with each tag's final state (add, remove, add, remove sends one removal), so calls that
/// WeCom applies out of order cannot leave it with a state the registry does not have. Keys
/// name the batch's last change of that customer, so a re-run queues nothing twice. Returns how
/// many calls were queued.
pub async fn mirror(outbox: &Outbox, store: &Store, config: &Config) -> Result<usize, SyncError> {
    let channel_of: HashMap<&str, &str> = sync_channels(config)
        .map(|(id, scope)| (scope, id))
        .collect();
    if channel_of.is_empty() {
        return Ok(0);
    }
    let after = store.cursor(MIRROR_CURSOR).await?;
    let changes = store.tag_log_since(after, 500).await?;
    let Some(last) = changes.last().map(|c| c.id) else {
        return Ok(0);
    };
    let mut finals: BTreeMap<(String, String), Folded<'_>> = BTreeMap::new();
    for c in &changes {
        let (Some(platform_id), Some(channel)) = (&c.platform_id, channel_of.get(c.scope.as_str()))
        else {
            continue;
        };
        if c.source == "platform" {
            continue;
        }
        let entry = finals
            .entry((c.scope.clone(), c.platform_user_id.clone()))
            .or_insert_with(|| (*channel, c.id, BTreeMap::new()));
        entry.1 = c.id;
        entry.2.insert(platform_id.clone(), c.action == "add");
    }
    let mut queued = 0;
    for ((scope, customer), (channel, last_id, tags)) in finals {
        let add: Vec<String> = tags
            .iter()
            .filter(|(_, &on)| on)
            .map(|(t, _)| t.clone())
            .collect();
        let remove: Vec<String> = tags
            .iter()
            .filter(|(_, &on)| !on)
            .map(|(t, _)| t.clone())
            .collect();
        for staff in store.staff_of(&scope, &customer).await? {
            let env = Envelope {
                idem_key: format!("mark_tag:{last_id}:{staff}"),
                channel_id: channel.to_owned(),
                message: Outbound::MarkTag {
                    staff,
                    customer: customer.clone(),
                    add: add.clone(),
                    remove: remove.clone(),
                },
                priority: PRIORITY_NORMAL,
                not_before_ms: 0,
                expires_at_ms: None,
            };
            queued += usize::from(
                outbox
                    .enqueue(env)
                    .await
                    .map_err(|e| SyncError::Api(e.to_string()))?,
            );
        }
    }
    let mut tx = store.begin_write().await?;
    tags::set_cursor(&mut tx, MIRROR_CURSOR, last).await?;
    tx.commit().await?;
    Ok(queued)
}

/// Applies WeCom's tag events: a corp-library change pulls the library again; a staff member
/// editing a customer's tags applies them locally.
pub struct TagSyncEvents {
    outbox: Option<crate::outbox::Outbox>,
}

impl TagSyncEvents {
    pub fn new(outbox: Option<crate::outbox::Outbox>) -> Self {
        Self { outbox }
    }
}

impl Handler for TagSyncEvents {
    fn name(&self) -> &'static str {
        "tag_sync"
    }

    fn handle<'a>(&'a self, ctx: &'a BotContext, event: &'a Event) -> HandlerFuture<'a> {
        Box::pin(async move {
            let (EventKind::Other { event: name, raw }, Some(outbox)) = (&event.kind, &self.outbox)
            else {
                return Ok(Outcome::Continue);
            };
            let now = ctx.clock.now_ms();
            if name.starts_with("change_external_tag") {
                pull(outbox, &ctx.store, &event.channel_id, &event.scope, now).await?;
            } else if name == "change_external_contact.edit_external_contact" {
                let fields: HashMap<String, String> = serde_json::from_str(raw).unwrap_or_default();
                if let (Some(staff), Some(external)) =
                    (fields.get("UserID"), fields.get("ExternalUserID"))
                {
                    apply_contact(
                        outbox,
                        &ctx.store,
                        &event.channel_id,
                        &event.scope,
                        staff,
                        external,
                        now,
                    )
                    .await?;
                }
            }
            Ok(Outcome::Continue)
        })
    }
}
