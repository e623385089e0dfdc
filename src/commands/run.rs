//! Executing a parsed, permitted command. Commands that change something run their change and
//! their audit record in one write transaction, after checking that this source message was
//! not executed already — a retried delivery gets the first reply and changes nothing.

use std::sync::Arc;

use minijinja::context;

use super::parse::{Parsed, Value};
use super::roles::{self, Roles};
use super::spec::Role;
use super::AuditOwned;
use crate::bot::BotContext;
use crate::events::{Event, Message};
use crate::members::local_day;
use crate::store::commands as db;
use crate::store::{StoreError, Tx};
use crate::templates::Templates;

/// A member named in a command, resolved.
pub(super) struct Target {
    pub user_id: String,
    pub name: String,
}

/// One permitted command to carry out.
pub(super) struct Run<'r> {
    pub points: &'r crate::config::PointsConfig,
    pub roles: &'r Roles,
    pub faq: &'r crate::faq::FaqService,
    pub recall: Option<&'r crate::recall::Plans>,
    /// Largest change of one `/points` adjustment.
    pub max_adjustment: i64,
    pub event: &'r Event,
    pub message: &'r Message,
    /// The sender's role.
    pub role: Role,
    pub text: &'r str,
    pub parsed: &'r Parsed,
    /// The command prefix, for usage lines.
    pub prefix: &'r str,
}

pub(super) async fn execute(ctx: &BotContext, run: &Run<'_>) -> anyhow::Result<String> {
    let Run {
        points: _,
        event,
        message,
        role,
        text,
        parsed,
        ..
    } = *run;
    let args_json = serde_json::to_string(&parsed.args)?;
    let audit = |outcome: &str, reply: &str| {
        AuditOwned::new(
            event,
            message,
            role,
            text,
            &args_json,
            outcome,
            reply,
            ctx.clock.now_ms(),
        )
    };
    // Members first: an unknown or ambiguous name is a usage problem, answered and audited.
    let mut targets = Vec::new();
    for value in &parsed.args {
        if let Value::Mention(name) = value {
            match resolve(ctx, event, message, name).await? {
                Ok(t) => targets.push(t),
                Err(reply) => {
                    record(ctx, audit("invalid", &reply)).await?;
                    return Ok(reply);
                }
            }
        }
    }
    if let Some(reply) = refusal(ctx, run, &targets).await? {
        record(ctx, audit("refused", &reply)).await?;
        return Ok(reply);
    }
    let operator = message
        .sender
        .name
        .clone()
        .unwrap_or_else(|| message.sender.id.clone());
    let call = Call {
        run,
        targets,
        args_json,
        operator,
        today: local_day(ctx.timezone, event.occurred_at),
        now_ms: ctx.clock.now_ms(),
        scope: event.scope.clone(),
        templates: ctx.templates.clone(),
    };
    (parsed.spec.run)(ctx, &call).await
}

/// One command being carried out: the parsed command, the members it names (resolved), and
/// what its handler needs besides the context.
pub(super) struct Call<'a> {
    pub run: &'a Run<'a>,
    /// The members named by `@…` arguments, in order.
    pub targets: Vec<Target>,
    args_json: String,
    /// The sender's display name, for the ledger.
    pub operator: String,
    /// The local day of the message.
    pub today: i32,
    pub now_ms: i64,
    pub scope: String,
    pub templates: Templates,
}

impl Call<'_> {
    /// The parsed arguments (their kinds follow the command's declaration).
    pub fn args(&self) -> &[Value] {
        &self.run.parsed.args
    }

    /// An audit record of this command with `outcome` and `reply`.
    pub fn audit(&self, outcome: &str, reply: &str) -> AuditOwned {
        AuditOwned::new(
            self.run.event,
            self.run.message,
            self.run.role,
            self.run.text,
            &self.args_json,
            outcome,
            reply,
            self.now_ms,
        )
    }

    /// The arguments do not have the shape their declaration gives: a bug, not a usage error.
    pub fn mismatch(&self) -> anyhow::Error {
        anyhow::anyhow!(
            "the arguments of `{}` do not match its declaration",
            self.run.parsed.spec.name
        )
    }
}

/// The reply refusing a command whose arguments break a rule: an adjustment past the cap, a
/// mute of an equal or higher role, a role change that would leave no admin.
async fn refusal(
    ctx: &BotContext,
    run: &Run<'_>,
    targets: &[Target],
) -> anyhow::Result<Option<String>> {
    let name = run.parsed.spec.name;
    let scope = run.event.scope.as_str();
    let refused = |code: &str, target: &str| -> anyhow::Result<Option<String>> {
        Ok(Some(ctx.templates.render(
            "commands/rule_refused",
            context! { code, name => target, limit => run.max_adjustment },
        )?))
    };
    match (name, run.parsed.args.as_slice()) {
        ("points", [_, Value::Number(delta), ..])
            if delta.unsigned_abs() > run.max_adjustment.unsigned_abs() =>
        {
            refused("adjustment_too_large", &targets[0].name)
        }
        ("mute" | "unmute", _) => {
            let target = &targets[0];
            let target_role = run
                .roles
                .effective(&ctx.store, &run.event.channel_id, scope, &target.user_id)
                .await?;
            match roles::check_mute(run.role, target_role) {
                Some(r) => refused(r.as_str(), &target.name),
                None => Ok(None),
            }
        }
        ("role", [_, Value::Choice(new_role)]) => {
            let target = &targets[0];
            let new_role = Role::parse(new_role).unwrap_or(Role::Member);
            let current = run
                .roles
                .effective(&ctx.store, &run.event.channel_id, scope, &target.user_id)
                .await?;
            match run
                .roles
                .check_role_change(&ctx.store, scope, &target.user_id, current, new_role)
                .await?
            {
                Some(r) => refused(r.as_str(), &target.name),
                None => Ok(None),
            }
        }
        _ => Ok(None),
    }
}

pub(super) fn render(
    templates: &Templates,
    name: &str,
    vars: minijinja::Value,
) -> Result<String, StoreError> {
    templates
        .render(name, vars)
        .map_err(|e| StoreError::Other(e.to_string()))
}

type WriteFn = dyn for<'a> Fn(
        &'a mut Tx,
        Templates,
    ) -> crate::store::BoxFuture<'a, Result<(&'static str, String), StoreError>>
    + Send
    + Sync;

/// Runs a changing command once per source message: a second run returns the first reply.
pub(super) async fn once<F>(ctx: &BotContext, audit: AuditOwned, write: F) -> anyhow::Result<String>
where
    F: for<'a> Fn(
            &'a mut Tx,
            Templates,
        )
            -> crate::store::BoxFuture<'a, Result<(&'static str, String), StoreError>>
        + Send
        + Sync
        + 'static,
{
    let write: Arc<WriteFn> = Arc::new(write);
    let templates = ctx.templates.clone();
    let reply = ctx
        .writer
        .run_batched(move |tx| {
            let (write, audit, templates) = (Arc::clone(&write), audit.clone(), templates.clone());
            Box::pin(async move {
                let key = audit.borrow().source_key.to_owned();
                if let Some(reply) = db::audited_reply(tx, &key).await? {
                    return Ok(reply);
                }
                let (outcome, reply) = write(tx, templates).await?;
                let mut record = audit.clone();
                record.set_result(outcome, &reply);
                db::insert_audit(tx, &record.borrow()).await?;
                Ok(reply)
            })
        })
        .await??;
    Ok(reply)
}

/// Writes an audit record for a command that changed nothing.
pub(super) async fn record(ctx: &BotContext, audit: AuditOwned) -> anyhow::Result<()> {
    ctx.writer
        .run_batched(move |tx| {
            let audit = audit.clone();
            Box::pin(async move { db::insert_audit(tx, &audit.borrow()).await })
        })
        .await??;
    Ok(())
}

/// `@name` → the one member of the group (or scope) called that; otherwise the reply to send.
async fn resolve(
    ctx: &BotContext,
    event: &Event,
    message: &Message,
    name: &str,
) -> anyhow::Result<Result<Target, String>> {
    let group = message.group.as_ref().map(|g| g.id.as_str());
    let found = ctx.store.members_named(&event.scope, group, name).await?;
    Ok(match found.as_slice() {
        [one] => Ok(Target {
            user_id: one.user_id.clone(),
            name: one.name.clone().unwrap_or_else(|| one.user_id.clone()),
        }),
        [] => Err(ctx.templates.render(
            "commands/mention",
            context! { name, candidates => Vec::<String>::new() },
        )?),
        many => {
            let candidates: Vec<String> = many
                .iter()
                .map(|m| format!("{}（{}）", m.name.clone().unwrap_or_default(), m.user_id))
                .collect();
            Err(ctx
                .templates
                .render("commands/mention", context! { name, candidates })?)
        }
    })
}
