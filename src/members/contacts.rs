//! Customer contacts and stages as events arrive: who added whom (needed to mark tags at WeCom
//! and to see a contact deleted), and the acting members' lifecycle stage recomputed at once
//! (a lapsed member who speaks is "returned" now, not at the next periodic run).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::{mpsc, oneshot};

use crate::bot::{BotContext, Handler, HandlerFuture, Outcome};
use crate::config::LifecycleConfig;
use crate::events::{Event, EventKind};
use crate::members::lifecycle::StageFacts;
use crate::store::lifecycle::StageChange;
use crate::store::members::{CreatedMember, MemberChanges};
use crate::store::{contacts, Store};

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

/// Members remembered per generation of [`RecentChecks`].
const RECENT_CHECKS_PER_GENERATION: usize = 100_000;

/// After the handlers: the stage of every member the event is about.
pub struct StageOnEvent {
    config: LifecycleConfig,
    recent: StageChecks,
    /// The reader task, started with the first event (it needs the handlers' store).
    reads: OnceLock<mpsc::UnboundedSender<StageRead>>,
}

/// One member whose stage inputs a handler waits for.
struct StageRead {
    scope: String,
    user_id: String,
    done: oneshot::Sender<Result<Option<(i64, StageFacts)>, String>>,
}

/// Members' stage inputs read at most this many to a query.
const READS_PER_QUERY: usize = 500;

impl StageOnEvent {
    pub fn new(config: LifecycleConfig) -> Self {
        Self {
            config,
            recent: StageChecks::default(),
            reads: OnceLock::new(),
        }
    }

    /// A member's stage inputs (`None`: not in the registry). Reads asked for while another is
    /// running share the next query: when thousands of new members speak in the same seconds,
    /// one query per member kept PostgreSQL busy enough to delay every answer.
    async fn inputs_of(
        &self,
        store: &Store,
        scope: &str,
        user_id: &str,
    ) -> anyhow::Result<Option<(i64, StageFacts)>> {
        let reads = self.reads.get_or_init(|| spawn_reader(store.clone()));
        let (done, wait) = oneshot::channel();
        let read = StageRead {
            scope: scope.to_owned(),
            user_id: user_id.to_owned(),
            done,
        };
        reads
            .send(read)
            .map_err(|_| anyhow::anyhow!("stage reader stopped"))?;
        wait.await
            .map_err(|_| anyhow::anyhow!("stage reader stopped"))?
            .map_err(|e| anyhow::anyhow!(e))
    }

    /// What the PostgreSQL group commit needs to record the first stage of the members it
    /// creates as this handler would, and to note them as checked.
    pub fn first_stages(&self) -> FirstStages {
        FirstStages {
            config: self.config.clone(),
            checks: self.recent.clone(),
        }
    }
}

/// The first stages of members a group commit creates
/// ([`crate::members::lifecycle::first_stages`]), and the stage handler's memory to note them
/// in, so that their first messages cost it no read and no write.
#[derive(Clone)]
pub struct FirstStages {
    config: LifecycleConfig,
    checks: StageChecks,
}

impl FirstStages {
    /// The stages to record for the members `created` by a batch with these `changes`.
    pub fn stages<'a>(
        &self,
        changes: &MemberChanges,
        created: &'a [CreatedMember],
        now: i64,
    ) -> Vec<(&'a CreatedMember, StageChange)> {
        crate::members::lifecycle::first_stages(changes, created, &self.config, now)
    }

    /// Notes a member whose first stage was committed at `now` as checked.
    pub fn note(&self, scope: &str, user: &str, now: i64) {
        self.checks.note(scope, user, now);
    }
}

/// Which members' stages were checked lately (see [`RecentChecks`]). Cheap to clone; clones
/// share one memory.
#[derive(Clone)]
struct StageChecks(Arc<Mutex<RecentChecks>>);

impl Default for StageChecks {
    fn default() -> Self {
        Self(Arc::new(Mutex::new(RecentChecks::new(
            RECENT_CHECKS_PER_GENERATION,
        ))))
    }
}

impl StageChecks {
    /// Whether a message of this member should recompute now (a busy chatter costs one query
    /// per ten minutes, not one per message); if so, the check counts as done now.
    fn due(&self, scope: &str, user: &str, now: i64) -> bool {
        let mut recent = self.0.lock().unwrap_or_else(|p| p.into_inner());
        recent.due(RecentChecks::key(scope, user), now)
    }

    /// Notes that this member's stage is known to be right as of `now`.
    fn note(&self, scope: &str, user: &str, now: i64) {
        let mut recent = self.0.lock().unwrap_or_else(|p| p.into_inner());
        recent.note(RecentChecks::key(scope, user), now);
    }
}

/// When each member's messages last triggered a stage recompute, in two generations: when the
/// newer one is full it becomes the older one and the old older one is dropped. A look-up costs
/// the same with a million chatters as with ten, and memory stays under two generations. (An
/// earlier single map swept itself whenever it held more than its limit; once more members than
/// that chatted within ten minutes, every message swept the whole map.) Members are kept by a
/// 64-bit hash: a collision only skips one early recompute, which the periodic job makes up.
struct RecentChecks {
    newer: HashMap<u64, i64>,
    older: HashMap<u64, i64>,
    per_generation: usize,
}

impl RecentChecks {
    fn new(per_generation: usize) -> Self {
        Self {
            newer: HashMap::new(),
            older: HashMap::new(),
            per_generation,
        }
    }

    fn key(scope: &str, user: &str) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::hash::DefaultHasher::new();
        (scope, user).hash(&mut hasher);
        hasher.finish()
    }

    fn due(&mut self, key: u64, now: i64) -> bool {
        let last = self.newer.get(&key).or_else(|| self.older.get(&key));
        // A clock that went back (an NTP step) must not hold the check off until it catches up.
        if last.is_some_and(|&at| (0..MESSAGE_RECHECK_MS).contains(&(now - at))) {
            return false;
        }
        self.note(key, now);
        true
    }

    fn note(&mut self, key: u64, now: i64) {
        if self.newer.len() >= self.per_generation {
            self.older = std::mem::take(&mut self.newer);
        }
        self.newer.insert(key, now);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.newer.len() + self.older.len()
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
                EventKind::Message(m) if self.recent.due(&event.scope, &m.sender.id, now) => {
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
                if let Some(inputs) = self.inputs_of(&ctx.store, &event.scope, user).await? {
                    changes.extend(crate::members::lifecycle::changes_of(
                        vec![inputs],
                        &self.config,
                        now,
                    ));
                }
            }
            if changes.is_empty() {
                return Ok(Outcome::Continue);
            }
            // Through the group-commit writer, together with the other members' new stages: on
            // SQLite a write of its own would queue for the file lock behind the callbacks'
            // commits, and one statement per change kept PostgreSQL's rounds busy.
            ctx.writer.record_stages(changes).await?;
            Ok(Outcome::Continue)
        })
    }
}

/// Starts the task that serves [`StageOnEvent::inputs_of`]: it takes everything queued, reads
/// it with one query per scope, answers, and goes again. It ends with its handler.
fn spawn_reader(store: Store) -> mpsc::UnboundedSender<StageRead> {
    let (tx, mut rx) = mpsc::unbounded_channel::<StageRead>();
    tokio::spawn(async move {
        let mut batch = Vec::with_capacity(READS_PER_QUERY);
        while rx.recv_many(&mut batch, READS_PER_QUERY).await > 0 {
            answer_reads(&store, std::mem::take(&mut batch)).await;
        }
    });
    tx
}

async fn answer_reads(store: &Store, reads: Vec<StageRead>) {
    let mut by_scope: HashMap<String, Vec<StageRead>> = HashMap::new();
    for read in reads {
        by_scope.entry(read.scope.clone()).or_default().push(read);
    }
    for (scope, reads) in by_scope {
        let users: Vec<String> = reads.iter().map(|r| r.user_id.clone()).collect();
        match store.stage_inputs_of(&scope, &users).await {
            Ok(rows) => {
                let found: HashMap<String, (i64, StageFacts)> = rows
                    .into_iter()
                    .map(|(user, id, facts)| (user, (id, facts)))
                    .collect();
                for read in reads {
                    // Two reads of one member in a batch get the same inputs.
                    let inputs = found.get(&read.user_id).copied();
                    let _ = read.done.send(Ok(inputs));
                }
            }
            Err(e) => {
                let message = e.to_string();
                for read in reads {
                    let _ = read.done.send(Err(message.clone()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_is_rechecked_once_per_window() {
        let mut recent = RecentChecks::new(100);
        let key = RecentChecks::key("corp", "zhangsan");
        assert!(recent.due(key, 0));
        assert!(!recent.due(key, 1_000));
        assert!(!recent.due(key, MESSAGE_RECHECK_MS - 1));
        assert!(recent.due(key, MESSAGE_RECHECK_MS));
        assert!(!recent.due(key, MESSAGE_RECHECK_MS + 1));
        assert!(recent.due(RecentChecks::key("corp", "lisi"), 1_000));
        assert!(recent.due(RecentChecks::key("other-corp", "zhangsan"), 1_000));
    }

    #[test]
    fn a_clock_that_went_back_does_not_hold_the_check_off() {
        let mut recent = RecentChecks::new(100);
        let key = RecentChecks::key("corp", "zhangsan");
        assert!(recent.due(key, 1_000_000));
        assert!(
            recent.due(key, 1_000_000 - 60_000),
            "a clock stepped back a minute still checks"
        );
        assert!(!recent.due(key, 1_000_000 - 59_000));
    }

    #[test]
    fn many_chatters_stay_bounded_and_recent_ones_are_still_remembered() {
        let mut recent = RecentChecks::new(100);
        for i in 0..10_000 {
            assert!(recent.due(RecentChecks::key("corp", &format!("m{i}")), 5));
            assert!(recent.len() <= 200, "{} entries after {i}", recent.len());
        }
        // The last generation's members are still known; the earliest have been let go.
        assert!(!recent.due(RecentChecks::key("corp", "m9999"), 6));
        assert!(!recent.due(RecentChecks::key("corp", "m9950"), 6));
        assert!(recent.due(RecentChecks::key("corp", "m0"), 6));
    }
}
