//! Ops commands in chat: declared once ([`spec`](crate::commands::spec)), parsed into typed
//! arguments ([`parse`](crate::commands::parse)), permission-checked (default deny), executed
//! once per source message and audited.

mod faq_cmd;
mod help;
mod member;
pub mod parse;
mod points_cmd;
mod recall_cmd;
pub mod roles;
mod run;
pub mod spec;
mod staff;
mod stats;
mod tags;

use std::sync::Arc;

use minijinja::context;

use self::parse::ParseError;
use self::roles::Roles;
use self::spec::Role;
use crate::bot::{BotContext, Handler, HandlerFuture, Outcome};
use crate::config::CommandsConfig;
use crate::events::{Event, Message};
use crate::store::commands::{self as db, NewAudit};

/// The command handler. It runs before the mute gate, so a muted staff member's commands are
/// still carried out (and audited), and before sign-in and FAQ, so `/…` is never taken for a
/// question.
pub struct CommandHandler {
    config: CommandsConfig,
    /// For levels in `/member`.
    points: crate::config::PointsConfig,
    roles: Roles,
    /// Members' commands (`/help`) are silent for muted members, like everything else.
    mute: Arc<MuteGate>,
    /// For `/faq`.
    faq: Arc<crate::faq::FaqService>,
    /// For `/recall`.
    recall: Option<Arc<crate::recall::Plans>>,
}

impl CommandHandler {
    pub fn new(
        config: &crate::config::Config,
        mute: Arc<MuteGate>,
        faq: Arc<crate::faq::FaqService>,
        recall: Option<Arc<crate::recall::Plans>>,
    ) -> Self {
        Self {
            config: config.commands.clone(),
            points: config.points.clone(),
            roles: Roles::new(config),
            mute,
            faq,
            recall,
        }
    }

    /// The command text after the prefix, if `text` is a command.
    fn command_text(&self, text: &str) -> Option<String> {
        let prefix = parse::normalize(&self.config.prefix);
        // Every message passes here: look at its first character before normalizing it all.
        let first = text.trim_start().chars().next()?;
        if !parse::normalize(first.encode_utf8(&mut [0; 4])).starts_with(prefix.chars().next()?) {
            return None;
        }
        let normalized = parse::normalize(text);
        normalized
            .strip_prefix(prefix.as_str())
            .filter(|rest| !rest.is_empty() && !rest.starts_with(' '))
            .map(str::to_owned)
    }
}

impl Handler for CommandHandler {
    fn name(&self) -> &'static str {
        "commands"
    }

    fn handle<'a>(&'a self, ctx: &'a BotContext, event: &'a Event) -> HandlerFuture<'a> {
        Box::pin(async move {
            let Some(message) = event.message() else {
                return Ok(Outcome::Continue);
            };
            let Some(text) = self.command_text(&message.text) else {
                return Ok(Outcome::Continue);
            };
            let user = message.sender.id.as_str();
            let staff_role = self
                .roles
                .effective(&ctx.store, &event.channel_id, &event.scope, user)
                .await?;
            // A body no signature covers could come from anyone who saw one delivery URL.
            let role = if event.unsigned_body {
                Role::Member
            } else {
                staff_role
            };
            if role == Role::Member && self.mute.is_muted(ctx, &event.scope, user).await? {
                return Ok(Outcome::Silent);
            }
            let prefix = self.config.prefix.as_str();
            let parsed = match parse::parse(&text) {
                Ok(p) => p,
                Err(ParseError::Unknown(word)) => {
                    // Not one of ours (e.g. `/签到` is handled further down the chain).
                    if role == Role::Member {
                        return Ok(Outcome::Continue);
                    }
                    let reply = ctx
                        .templates
                        .render("commands/unknown", context! { word, prefix })?;
                    audit(ctx, event, message, role, &text, "[]", "unknown", &reply).await?;
                    return Ok(Outcome::Reply(reply));
                }
                Err(ParseError::Usage { spec, reason }) => {
                    let reply = ctx.templates.render(
                        "commands/usage",
                        context! { usage => format!("{prefix}{}", spec.usage), reason },
                    )?;
                    if spec.role > Role::Member && role >= spec.role {
                        audit(ctx, event, message, role, &text, "[]", "invalid", &reply).await?;
                    }
                    return Ok(Outcome::Reply(reply));
                }
            };
            if role < parsed.spec.role {
                let unsigned = event.unsigned_body && staff_role >= parsed.spec.role;
                let reply = ctx.templates.render(
                    "commands/refused",
                    context! { command => parsed.spec.name, needed => parsed.spec.role.as_str(), unsigned },
                )?;
                let args = serde_json::to_string(&parsed.args)?;
                let outcome = if unsigned {
                    "refused_unsigned"
                } else {
                    "refused"
                };
                audit(ctx, event, message, role, &text, &args, outcome, &reply).await?;
                return Ok(Outcome::Reply(reply));
            }
            let run = run::Run {
                points: &self.points,
                roles: &self.roles,
                faq: &self.faq,
                recall: self.recall.as_deref(),
                max_adjustment: self.config.max_points_adjustment,
                event,
                message,
                role,
                text: &text,
                parsed: &parsed,
                prefix,
            };
            Ok(Outcome::Reply(run::execute(ctx, &run).await?))
        })
    }
}

/// Records a command in the audit log (once per source message).
#[allow(clippy::too_many_arguments)]
async fn audit(
    ctx: &BotContext,
    event: &Event,
    message: &Message,
    role: Role,
    text: &str,
    args: &str,
    outcome: &str,
    reply: &str,
) -> anyhow::Result<()> {
    let record = AuditOwned::new(
        event,
        message,
        role,
        text,
        args,
        outcome,
        reply,
        ctx.clock.now_ms(),
    );
    ctx.writer
        .run_batched(move |tx| {
            let record = record.clone();
            Box::pin(async move { db::insert_audit(tx, &record.borrow()).await })
        })
        .await??;
    Ok(())
}

/// An audit record that can move into a write closure.
#[derive(Debug, Clone)]
pub(crate) struct AuditOwned {
    source_key: String,
    scope: String,
    channel_id: String,
    group_id: Option<String>,
    user_id: String,
    role: String,
    command: String,
    args: String,
    outcome: String,
    reply: String,
    now_ms: i64,
}

impl AuditOwned {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        event: &Event,
        message: &Message,
        role: Role,
        text: &str,
        args: &str,
        outcome: &str,
        reply: &str,
        now_ms: i64,
    ) -> Self {
        Self {
            source_key: source_key(event),
            scope: event.scope.clone(),
            channel_id: event.channel_id.clone(),
            group_id: message.group.as_ref().map(|g| g.id.clone()),
            user_id: message.sender.id.clone(),
            role: role.as_str().into(),
            command: text.into(),
            args: args.into(),
            outcome: outcome.into(),
            reply: reply.into(),
            now_ms,
        }
    }

    pub(crate) fn set_result(&mut self, outcome: &str, reply: &str) {
        outcome.clone_into(&mut self.outcome);
        reply.clone_into(&mut self.reply);
    }

    pub(crate) fn borrow(&self) -> NewAudit<'_> {
        NewAudit {
            source_key: &self.source_key,
            scope: &self.scope,
            channel_id: &self.channel_id,
            group_id: self.group_id.as_deref(),
            user_id: &self.user_id,
            role: &self.role,
            command: &self.command,
            args: &self.args,
            outcome: &self.outcome,
            reply: &self.reply,
            now_ms: self.now_ms,
        }
    }
}

/// The message a command came in: a retried delivery has the same key.
pub(crate) fn source_key(event: &Event) -> String {
    format!("{}:{}", event.channel_id, event.dedupe_key)
}

/// Says nothing to muted members: every later handler is skipped for them. The muted list is
/// read from the database at most every [`MUTES_RECHECK_MS`] (the hot path stays in memory;
/// a `/mute` on another replica takes effect within that time).
#[derive(Default)]
pub struct MuteGate {
    cache: std::sync::RwLock<(std::collections::HashSet<(String, String)>, i64)>,
}

pub const MUTES_RECHECK_MS: i64 = 2_000;

impl MuteGate {
    pub(crate) async fn is_muted(
        &self,
        ctx: &BotContext,
        scope: &str,
        user: &str,
    ) -> anyhow::Result<bool> {
        let now = ctx.clock.now_ms();
        let fresh = self
            .cache
            .read()
            .map(|c| now - c.1 < MUTES_RECHECK_MS && c.1 != 0)
            .unwrap_or(false);
        if !fresh {
            let muted = ctx.store.muted_members().await?;
            if let Ok(mut c) = self.cache.write() {
                *c = (muted.into_iter().collect(), now);
            }
        }
        Ok(self
            .cache
            .read()
            .map(|c| c.0.contains(&(scope.to_owned(), user.to_owned())))
            .unwrap_or(false))
    }
}

impl Handler for Arc<MuteGate> {
    fn name(&self) -> &'static str {
        "mute"
    }

    fn handle<'a>(&'a self, ctx: &'a BotContext, event: &'a Event) -> HandlerFuture<'a> {
        Box::pin(async move {
            let Some(message) = event.message() else {
                return Ok(Outcome::Continue);
            };
            if self.is_muted(ctx, &event.scope, &message.sender.id).await? {
                return Ok(Outcome::Silent);
            }
            Ok(Outcome::Continue)
        })
    }
}
