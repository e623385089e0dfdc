//! Automatic tagging (自动打标签): rules from the configuration, evaluated on every event before
//! any reply is decided. A rule adds or removes tags; applying it again changes nothing, and
//! every change is logged with the rule's id (`rule:<id>`).

use crate::bot::{BotContext, Handler, HandlerFuture, Outcome};
use crate::config::TagRuleConfig;
use crate::events::{Event, EventKind};
use crate::store::tags::{self, TagChange};

enum Trigger {
    Keywords(Vec<String>),
    Regex(regex::Regex),
    JoinedGroup(String),
    /// `None` = any State.
    ChannelState(Option<String>),
}

struct Rule {
    id: String,
    trigger: Trigger,
    add: Vec<String>,
    remove: Vec<String>,
}

/// The rule engine as the first handler of the chain (it never replies).
pub struct TagRules {
    rules: Vec<Rule>,
}

impl TagRules {
    /// Compiles the configured rules (validation already refused bad ones).
    pub fn new(configs: &[TagRuleConfig]) -> Self {
        let rules = configs
            .iter()
            .filter_map(|c| {
                let trigger = match c.when.as_str() {
                    "keyword" => Trigger::Keywords(
                        c.pattern
                            .split('|')
                            .map(str::trim)
                            .filter(|w| !w.is_empty())
                            .map(str::to_owned)
                            .collect(),
                    ),
                    "regex" => Trigger::Regex(regex::Regex::new(&c.pattern).ok()?),
                    "joined_group" => Trigger::JoinedGroup(c.pattern.clone()),
                    "channel_state" => {
                        Trigger::ChannelState((c.pattern != "*").then(|| c.pattern.clone()))
                    }
                    _ => return None,
                };
                Some(Rule {
                    id: c.id.clone(),
                    trigger,
                    add: c.add.clone(),
                    remove: c.remove.clone(),
                })
            })
            .collect();
        Self { rules }
    }

    /// (user id, rule index, `{state}` value) for every rule the event fires.
    fn fired(&self, event: &Event) -> Vec<(String, usize, String)> {
        let mut out = Vec::new();
        for (i, rule) in self.rules.iter().enumerate() {
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
}

impl Handler for TagRules {
    fn name(&self) -> &'static str {
        "tag_rules"
    }

    fn handle<'a>(&'a self, ctx: &'a BotContext, event: &'a Event) -> HandlerFuture<'a> {
        Box::pin(async move {
            let fired = self.fired(event);
            if fired.is_empty() {
                return Ok(Outcome::Continue);
            }
            // (user, tag, add?, rule id) with `{state}` filled in.
            let changes: Vec<(String, String, bool, String)> = fired
                .into_iter()
                .flat_map(|(user, i, state)| {
                    let rule = &self.rules[i];
                    let fill = move |t: &String| t.replace("{state}", &state);
                    let adds = rule.add.iter().map(fill.clone()).map(|t| (t, true));
                    let removes = rule.remove.iter().map(fill).map(|t| (t, false));
                    adds.chain(removes)
                        .map(|(t, add)| (user.clone(), t, add, format!("rule:{}", rule.id)))
                        .collect::<Vec<_>>()
                })
                .collect();
            let (scope, now_ms) = (event.scope.clone(), ctx.clock.now_ms());
            ctx.writer
                .run_batched(move |tx| {
                    let (scope, changes) = (scope.clone(), changes.clone());
                    Box::pin(async move {
                        for (user, tag, add, by) in &changes {
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
        let rules = TagRules::new(&[
            rule("intent", "keyword", "价格|多少钱", &["意向"]),
            rule("phone", "regex", r"1[3-9]\d{9}", &["留过电话"]),
            rule("g1", "joined_group", "产品交流1群", &["1群"]),
            rule("any", "channel_state", "*", &["渠道:{state}"]),
            rule("ad", "channel_state", "ad2024", &["广告"]),
        ]);
        let ids = |e: &Event| -> Vec<String> {
            rules
                .fired(e)
                .into_iter()
                .map(|(u, i, s)| format!("{u}:{}:{s}", rules.rules[i].id))
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
