//! Welcome messages (欢迎语): a new customer contact gets `send_welcome_msg` with the event's
//! WelcomeCode (valid for 20 seconds, once), a member joining a group gets a greeting from the
//! group's robot. Both go through the outbox with keys derived from the event, so a retried
//! or re-run event queues nothing twice.

use std::sync::Arc;

use minijinja::context;

use crate::bot::{BotContext, Handler, HandlerFuture, Outcome};
use crate::config::{ChannelKind, Config};
use crate::events::{Event, EventKind, GroupRef, UserRef};
use crate::outbox::{Envelope, Outbound, PRIORITY_URGENT};

/// How long a WelcomeCode can be used after its event (Doc 92137).
const WELCOME_WINDOW_MS: i64 = 20_000;

pub struct Welcomer {
    config: Arc<Config>,
    outbox: Option<crate::outbox::Outbox>,
}

impl Welcomer {
    pub fn new(config: &Config, outbox: Option<crate::outbox::Outbox>) -> Self {
        Self {
            config: Arc::new(config.clone()),
            outbox,
        }
    }

    fn contact_text(
        &self,
        ctx: &BotContext,
        contact: &UserRef,
        state: Option<&str>,
    ) -> anyhow::Result<String> {
        let name = contact.name.as_deref().unwrap_or("朋友");
        let by_state = state.and_then(|s| self.config.welcome.by_state.get(s));
        Ok(match by_state {
            Some(source) => {
                ctx.templates
                    .render_str("welcome.by_state", source, context! { name, state })?
            }
            None => ctx
                .templates
                .render("outbound/welcome_contact", context! { name, state })?,
        })
    }

    /// Robot channels of the scope that sit in `group`.
    fn robots_for<'a>(&'a self, scope: &'a str, group: &'a str) -> impl Iterator<Item = &'a str> {
        self.config.channels.iter().filter_map(move |(id, c)| {
            let robot_scope = c.scope.as_deref().unwrap_or(id);
            let here = c.groups.iter().any(|g| g == "*" || g == group);
            (c.enabled
                && c.welcome
                && c.kind == ChannelKind::WecomRobot
                && c.webhook_key.is_some()
                && robot_scope == scope
                && here)
                .then_some(id.as_str())
        })
    }

    async fn welcome_contact(
        &self,
        ctx: &BotContext,
        event: &Event,
        contact: &UserRef,
        state: Option<&str>,
        code: &str,
    ) -> anyhow::Result<()> {
        let channel = self.config.channels.get(&event.channel_id);
        if !self.config.welcome.contact
            || !channel.is_some_and(|c| c.welcome && c.kind == ChannelKind::WecomApp)
        {
            return Ok(());
        }
        let Some(outbox) = &self.outbox else {
            return Ok(());
        };
        let now = ctx.clock.now_ms();
        let mut contact = contact.clone();
        if contact.name.is_none() {
            contact.name = outbox.contact_name(&event.channel_id, &contact.id).await;
        }
        let text = self.contact_text(ctx, &contact, state)?;
        let env = Envelope {
            idem_key: format!("welcome:{}:{}", event.channel_id, event.dedupe_key),
            channel_id: event.channel_id.clone(),
            message: Outbound::Welcome {
                welcome_code: code.to_owned(),
                text,
            },
            priority: PRIORITY_URGENT,
            not_before_ms: now,
            expires_at_ms: Some((event.occurred_at * 1000).min(now) + WELCOME_WINDOW_MS),
        };
        outbox.enqueue(env).await?;
        Ok(())
    }

    async fn welcome_members(
        &self,
        ctx: &BotContext,
        event: &Event,
        group: &GroupRef,
        members: &[UserRef],
    ) -> anyhow::Result<()> {
        let Some(outbox) = &self.outbox else {
            return Ok(());
        };
        if !self.config.welcome.group || members.is_empty() {
            return Ok(());
        }
        let from_app = self
            .config
            .channels
            .get(&event.channel_id)
            .is_some_and(|c| c.kind == ChannelKind::WecomApp && c.secret.is_some());
        let mut names = Vec::with_capacity(members.len());
        for m in members {
            let looked_up = match (&m.name, from_app && names.len() < 10) {
                (None, true) => outbox.contact_name(&event.channel_id, &m.id).await,
                _ => None,
            };
            names.push(m.name.clone().or(looked_up).unwrap_or_else(|| m.id.clone()));
        }
        let text = ctx.templates.render(
            "outbound/welcome_group",
            context! {
                names => names.join("、"),
                group => group.name.as_deref().unwrap_or(""),
                rules => self.config.welcome.group_rules.as_str(),
            },
        )?;
        let now = ctx.clock.now_ms();
        for robot in self.robots_for(&event.scope, &group.id) {
            let env = Envelope {
                idem_key: format!("group_welcome:{robot}:{}", event.dedupe_key),
                channel_id: robot.to_owned(),
                message: Outbound::Robot {
                    message: Outbound::text(text.clone()),
                    mentions: Vec::new(),
                },
                priority: PRIORITY_URGENT,
                not_before_ms: now,
                // A greeting an hour late is noise.
                expires_at_ms: Some(now + 3_600_000),
            };
            outbox.enqueue(env).await?;
        }
        Ok(())
    }
}

impl Handler for Welcomer {
    fn name(&self) -> &'static str {
        "welcome"
    }

    fn handle<'a>(&'a self, ctx: &'a BotContext, event: &'a Event) -> HandlerFuture<'a> {
        Box::pin(async move {
            match &event.kind {
                EventKind::ContactAdded {
                    contact,
                    state,
                    welcome_code: Some(code),
                    ..
                } if !code.is_empty() => {
                    self.welcome_contact(ctx, event, contact, state.as_deref(), code)
                        .await?;
                }
                EventKind::MemberJoined { group, members, .. } => {
                    self.welcome_members(ctx, event, group, members).await?;
                }
                // A user opens the AI bot's chat (first time that day): the passive reply greets.
                EventKind::Other { event: name, raw } if name == "aibot.enter_chat" => {
                    let fields: serde_json::Value = serde_json::from_str(raw).unwrap_or_default();
                    let name = fields["from.name"].as_str().unwrap_or("");
                    let text = ctx
                        .templates
                        .render("replies/aibot_welcome", context! { name })?;
                    return Ok(Outcome::Reply(text));
                }
                _ => {}
            }
            Ok(Outcome::Continue)
        })
    }
}
