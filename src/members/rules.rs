//! Automatic tagging (自动打标签): rules from the configuration and from the database. Event
//! rules (keyword, regex, joined group, contact-way State) run on every event before any reply is
//! decided; state rules (segments, points, levels, stages, activity) run for the acting member
//! after the handlers, and for everyone with the periodic job. A rule adds or removes tags;
//! applying it again changes nothing, and every change is logged with the rule's id (`rule:<id>`).

use std::sync::{Arc, Mutex};

use super::rule_spec::{compile, Rule, Trigger};
use crate::bot::{BotContext, Handler, HandlerFuture, Outcome};
use crate::config::{LevelConfig, TagRuleConfig};
use crate::events::{Event, EventKind};
use crate::store::rules::TagRuleRow;
use crate::store::tags::{self, TagChange};
use crate::store::{Store, StoreError};

/// Rules stored in the database are re-read when they change, checked at most this often.
const DB_CHECK_MS: i64 = 5_000;

/// Compiles stored rules; a rule that no longer compiles is skipped with a warning.
pub fn compile_rows(rows: &[TagRuleRow]) -> Vec<Rule> {
    rows.iter()
        .filter(|r| r.enabled)
        .filter_map(|r| {
            let spec = TagRuleConfig {
                id: r.id.clone(),
                when: r.kind.clone(),
                pattern: r.pattern.clone(),
                add: serde_json::from_str(&r.add_tags).unwrap_or_default(),
                remove: serde_json::from_str(&r.remove_tags).unwrap_or_default(),
            };
            compile(&spec)
                .map_err(|e| tracing::warn!(rule = %r.id, error = %e, "stored tag rule skipped"))
                .ok()
        })
        .collect()
}

#[derive(Default)]
struct DbRules {
    rules: Arc<Vec<Rule>>,
    stamp: Option<(i64, i64)>,
    checked_at: i64,
}

/// The rule engine: first handler of the chain (event rules) and an after-handler (state rules).
pub struct TagRules {
    config_rules: Vec<Rule>,
    levels: Vec<LevelConfig>,
    db: Mutex<DbRules>,
}

impl TagRules {
    /// Compiles the configured rules (validation already refused bad ones).
    pub fn new(configs: &[TagRuleConfig], levels: &[LevelConfig]) -> Arc<Self> {
        Arc::new(Self {
            config_rules: configs.iter().filter_map(|c| compile(c).ok()).collect(),
            levels: levels.to_vec(),
            db: Mutex::new(DbRules::default()),
        })
    }

    /// The stored rules, re-read when their stamp changed (checked every few seconds).
    async fn db_rules(&self, store: &Store, now_ms: i64) -> Result<Arc<Vec<Rule>>, StoreError> {
        let (cached, due, stamp) = {
            let db = self.db.lock().unwrap_or_else(|p| p.into_inner());
            (
                Arc::clone(&db.rules),
                now_ms - db.checked_at >= DB_CHECK_MS || db.stamp.is_none(),
                db.stamp,
            )
        };
        if !due {
            return Ok(cached);
        }
        let fresh = store.tag_rules_stamp().await?;
        let rules = if Some(fresh) == stamp {
            cached
        } else {
            Arc::new(compile_rows(&store.tag_rule_rows().await?))
        };
        let mut db = self.db.lock().unwrap_or_else(|p| p.into_inner());
        db.rules = Arc::clone(&rules);
        db.stamp = Some(fresh);
        db.checked_at = now_ms;
        Ok(rules)
    }

    /// The after-handler that applies state rules to the member who acted.
    pub fn state_rules_after_events(self: &Arc<Self>) -> StateRulesOnEvent {
        StateRulesOnEvent(Arc::clone(self))
    }
}

/// (user id, rule index, `{state}` value) for every event rule the event fires.
fn fired(rules: &[Rule], event: &Event) -> Vec<(String, usize, String)> {
    let mut out = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        match (&rule.trigger, &event.kind) {
            (Trigger::Keywords(words), EventKind::Message(m))
                if words.iter().any(|w| m.text.contains(w.as_str())) =>
            {
                out.push((m.sender.id.clone(), i, String::new()));
            }
            (Trigger::Regex(re), EventKind::Message(m)) if re.is_match(&m.text) => {
                out.push((m.sender.id.clone(), i, String::new()));
            }
            (Trigger::JoinedGroup(g), EventKind::MemberJoined { group, members, .. })
                if &group.id == g || group.name.as_deref() == Some(g.as_str()) =>
            {
                out.extend(members.iter().map(|u| (u.id.clone(), i, String::new())));
            }
            (Trigger::ChannelState(want), EventKind::ContactAdded { contact, state, .. }) => {
                if let Some(state) = state.as_deref().filter(|s| !s.is_empty()) {
                    if want.as_deref().is_none_or(|w| w == state) {
                        out.push((contact.id.clone(), i, state.to_owned()));
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// (user, tag, add?, rule id) for the fired rules, with `{state}` filled in.
fn changes(
    rules: &[Rule],
    fired: Vec<(String, usize, String)>,
) -> Vec<(String, String, bool, String)> {
    fired
        .into_iter()
        .flat_map(|(user, i, state)| {
            let rule = &rules[i];
            let fill = move |t: &String| t.replace("{state}", &state);
            let adds = rule.add.iter().map(fill.clone()).map(|t| (t, true));
            let removes = rule.remove.iter().map(fill).map(|t| (t, false));
            adds.chain(removes)
                .map(|(t, add)| (user.clone(), t, add, format!("rule:{}", rule.id)))
                .collect::<Vec<_>>()
        })
        .collect()
}

impl Handler for Arc<TagRules> {
    fn name(&self) -> &'static str {
        "tag_rules"
    }

    fn handle<'a>(&'a self, ctx: &'a BotContext, event: &'a Event) -> HandlerFuture<'a> {
        Box::pin(async move {
            let db_rules = self.db_rules(&ctx.store, ctx.clock.now_ms()).await?;
            let mut todo = changes(&self.config_rules, fired(&self.config_rules, event));
            todo.extend(changes(&db_rules, fired(&db_rules, event)));
            if todo.is_empty() {
                return Ok(Outcome::Continue);
            }
            let (scope, now_ms) = (event.scope.clone(), ctx.clock.now_ms());
            ctx.writer
                .run_batched(move |tx| {
                    let (scope, todo) = (scope.clone(), todo.clone());
                    Box::pin(async move {
                        for (user, tag, add, by) in &todo {
                            let change = TagChange {
                                scope: &scope,
                                user_id: user,
                                tag,
                                source: "rule",
                                by,
                                now_ms,
                            };
                            if *add {
                                tags::add(tx, &change).await?;
                            } else {
                                tags::remove(tx, &change).await?;
                            }
                        }
                        Ok(())
                    })
                })
                .await??;
            Ok(Outcome::Continue)
        })
    }
}

/// Applies state rules to the member an event came from, after the handlers ran (so a sign-in
/// that crosses a points threshold tags at once).
pub struct StateRulesOnEvent(Arc<TagRules>);

impl Handler for StateRulesOnEvent {
    fn name(&self) -> &'static str {
        "state_rules"
    }

    fn handle<'a>(&'a self, ctx: &'a BotContext, event: &'a Event) -> HandlerFuture<'a> {
        Box::pin(async move {
            let Some(actor) = event.actor() else {
                return Ok(Outcome::Continue);
            };
            let now_ms = ctx.clock.now_ms();
            let db_rules = self.0.db_rules(&ctx.store, now_ms).await?;
            let rules = self.0.config_rules.iter().chain(db_rules.iter());
            let state = super::state_rules::StateContext {
                levels: &self.0.levels,
                now_ms,
                timezone: ctx.timezone,
            };
            super::state_rules::apply(&ctx.store, rules, &event.scope, Some(&actor.id), &state)
                .await?;
            Ok(Outcome::Continue)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{GroupRef, Message, UserRef};

    fn rule(id: &str, when: &str, pattern: &str, add: &[&str]) -> TagRuleConfig {
        TagRuleConfig {
            id: id.into(),
            when: when.into(),
            pattern: pattern.into(),
            add: add.iter().map(|t| (*t).to_owned()).collect(),
            remove: Vec::new(),
        }
    }

    fn event(kind: EventKind) -> Event {
        Event {
            channel_id: "c".into(),
            scope: "s".into(),
            dedupe_key: "k".into(),
            occurred_at: 0,
            kind,
            reply_url: None,
            unsigned_body: false,
        }
    }

    fn say(text: &str) -> Event {
        event(EventKind::Message(Message {
            sender: UserRef::new("u1", None),
            group: None,
            msg_type: "text".into(),
            text: text.into(),
            mentions_bot: false,
            platform_msg_id: "m".into(),
        }))
    }

    #[test]
    fn each_trigger_fires_on_its_event_only() {
        let rules = TagRules::new(
            &[
                rule("intent", "keyword", "价格|多少钱", &["意向"]),
                rule("phone", "regex", r"1[3-9]\d{9}", &["留过电话"]),
                rule("g1", "joined_group", "产品交流1群", &["1群"]),
                rule("any", "channel_state", "*", &["渠道:{state}"]),
                rule("ad", "channel_state", "ad2024", &["广告"]),
                rule("rich", "points", "100", &["富有"]),
            ],
            &[],
        );
        let ids = |e: &Event| -> Vec<String> {
            fired(&rules.config_rules, e)
                .into_iter()
                .map(|(u, i, s)| format!("{u}:{}:{s}", rules.config_rules[i].id))
                .collect()
        };
        assert_eq!(ids(&say("会员多少钱？")), vec!["u1:intent:"]);
        assert_eq!(ids(&say("电话 13800138000")), vec!["u1:phone:"]);
        assert!(ids(&say("大家好")).is_empty());
        let joined = event(EventKind::MemberJoined {
            group: GroupRef {
                id: "g1".into(),
                name: Some("产品交流1群".into()),
            },
            members: vec![UserRef::new("a", None), UserRef::new("b", None)],
            inviter: None,
            join_scene: None,
        });
        assert_eq!(ids(&joined), vec!["a:g1:", "b:g1:"]);
        let added = |state: Option<&str>| {
            event(EventKind::ContactAdded {
                staff: "s1".into(),
                contact: UserRef::new("c", None),
                state: state.map(str::to_owned),
                welcome_code: None,
            })
        };
        assert_eq!(
            ids(&added(Some("ad2024"))),
            vec!["c:any:ad2024", "c:ad:ad2024"]
        );
        assert_eq!(ids(&added(Some("poster"))), vec!["c:any:poster"]);
        assert!(ids(&added(None)).is_empty());
    }
}
