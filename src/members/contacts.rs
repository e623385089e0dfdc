//! Customer contacts and stages as events arrive: who added whom (needed to mark tags at WeCom
//! and to see a contact deleted), and the acting members' lifecycle stage recomputed at once
//! (a lapsed member who speaks is "returned" now, not at the next periodic run).

use std::collections::HashMap;
use std::sync::Mutex;

use crate::bot::{BotContext, Handler, HandlerFuture, Outcome};
use crate::config::LifecycleConfig;
use crate::events::{Event, EventKind};
use crate::store::contacts;

/// Records customer contacts added and removed (first in the chain, never replies).
pub struct Follows;

impl Handler for Follows {
    fn name(&self) -> &'static str {
        "follows"
    }

    fn handle<'a>(&'a self, ctx: &'a BotContext, event: &'a Event) -> HandlerFuture<'a> {
        Box::pin(async move {
            let (staff, contact, state, added) = match &event.kind {
                EventKind::ContactAdded {
                    staff,
                    contact,
                    state,
                    ..
                } => (staff.clone(), contact.id.clone(), state.clone(), true),
                EventKind::ContactRemoved { staff, contact, .. } => {
                    (staff.clone(), contact.id.clone(), None, false)
                }
                _ => return Ok(Outcome::Continue),
            };
            let scope = event.scope.clone();
            let at = event.occurred_at * 1000;
            ctx.writer
                .run_batched(move |tx| {
                    let (scope, staff, contact, state) =
                        (scope.clone(), staff.clone(), contact.clone(), state.clone());
                    Box::pin(async move {
                        if added {
                            contacts::add_follow(tx, &scope, &contact, &staff, state.as_deref(), at)
                                .await
                        } else {
                            contacts::remove_follow(tx, &scope, &contact, &staff, at).await
                        }
                    })
                })
                .await??;
            Ok(Outcome::Continue)
        })
    }
}

/// A member's messages are checked for a stage change at most this often (the periodic job
/// covers the rest); joins, leaves and contact changes always are.
const MESSAGE_RECHECK_MS: i64 = 10 * 60 * 1000;

/// After the handlers: the stage of every member the event is about.
pub struct StageOnEvent {
    config: LifecycleConfig,
    /// (scope, user) → when a message of theirs last triggered a recompute.
    recent: Mutex<HashMap<(String, String), i64>>,
}

impl StageOnEvent {
    pub fn new(config: LifecycleConfig) -> Self {
        Self {
            config,
            recent: Mutex::new(HashMap::new()),
        }
    }

    /// Whether a message of this member should recompute now (a busy chatter costs one query
    /// per ten minutes, not one per message).
    fn due(&self, scope: &str, user: &str, now: i64) -> bool {
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if recent.len() > 200_000 {
            recent.retain(|_, at| now - *at < MESSAGE_RECHECK_MS);
        }
        let key = (scope.to_owned(), user.to_owned());
        match recent.get(&key) {
            Some(&at) if now - at < MESSAGE_RECHECK_MS => false,
            _ => {
                recent.insert(key, now);
                true
            }
        }
    }
}

impl Handler for StageOnEvent {
    fn name(&self) -> &'static str {
        "stage_on_event"
    }

    fn handle<'a>(&'a self, ctx: &'a BotContext, event: &'a Event) -> HandlerFuture<'a> {
        Box::pin(async move {
            let now = ctx.clock.now_ms();
            let users: Vec<&str> = match &event.kind {
                EventKind::Message(m) if self.due(&event.scope, &m.sender.id, now) => {
                    vec![m.sender.id.as_str()]
                }
                EventKind::Message(_) => Vec::new(),
                EventKind::MemberJoined { members, .. } | EventKind::MemberLeft { members, .. } => {
                    members.iter().map(|u| u.id.as_str()).collect()
                }
                EventKind::ContactAdded { contact, .. }
                | EventKind::ContactRemoved { contact, .. } => vec![contact.id.as_str()],
                EventKind::Other { .. } => Vec::new(),
            };
            let mut changes = Vec::new();
            for user in users {
                changes.extend(
                    crate::members::lifecycle::member_change(
                        &ctx.store,
                        &self.config,
                        &event.scope,
                        user,
                        now,
                    )
                    .await?,
                );
            }
            if changes.is_empty() {
                return Ok(Outcome::Continue);
            }
            // Through the group-commit writer: on SQLite a write of its own would queue for the
            // file lock behind the callbacks' commits.
            ctx.writer
                .run_batched(move |tx| {
                    let changes = changes.clone();
                    Box::pin(async move {
                        for c in &changes {
                            crate::store::lifecycle::apply(tx, c).await?;
                        }
                        Ok(())
                    })
                })
                .await??;
            Ok(Outcome::Continue)
        })
    }
}
