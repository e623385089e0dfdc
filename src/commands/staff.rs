//! Staff commands: `/role` grants or takes away a role, `/mute` and `/unmute` stop or restore
//! the bot's replies and pushes to a member (the rules that may refuse them are in `roles`).

use minijinja::context;

use super::parse::Value;
use super::run::{once, render, Call};
use super::spec::Role;
use crate::bot::BotContext;
use crate::store::commands as db;
use crate::store::BoxFuture;

/// `/role @成员 admin|operator|none`.
pub(super) fn role<'a>(
    ctx: &'a BotContext,
    call: &'a Call<'a>,
) -> BoxFuture<'a, anyhow::Result<String>> {
    Box::pin(async move {
        let [_, Value::Choice(new_role)] = call.args() else {
            return Err(call.mismatch());
        };
        let scope = call.scope.clone();
        let _templates = call.templates.clone();
        let now_ms = call.now_ms;
        let audit = |outcome: &str, reply: &str| call.audit(outcome, reply);
        let target = &call.targets[0];
        let role_name = Role::parse(new_role).unwrap_or(Role::Member);
        let (user, name, by) = (
            target.user_id.clone(),
            target.name.clone(),
            call.run.message.sender.id.clone(),
        );
        once(ctx, audit("ok", ""), move |tx, templates| {
            let (scope, user, name, by) = (scope.clone(), user.clone(), name.clone(), by.clone());
            Box::pin(async move {
                db::set_role(tx, &scope, &user, role_name.as_str(), &by, now_ms).await?;
                let vars = context! { name, role => role_name.as_str() };
                Ok(("ok", render(&templates, "commands/role", vars)?))
            })
        })
        .await
    })
}

fn change_mute<'a>(
    ctx: &'a BotContext,
    call: &'a Call<'a>,
    mute: bool,
) -> BoxFuture<'a, anyhow::Result<String>> {
    Box::pin(async move {
        let [_] = call.args() else {
            return Err(call.mismatch());
        };
        let scope = call.scope.clone();
        let _templates = call.templates.clone();
        let now_ms = call.now_ms;
        let audit = |outcome: &str, reply: &str| call.audit(outcome, reply);
        let target = &call.targets[0];
        let (user, name, by) = (
            target.user_id.clone(),
            target.name.clone(),
            call.run.message.sender.id.clone(),
        );
        once(ctx, audit("ok", ""), move |tx, templates| {
            let (scope, user, name, by) = (scope.clone(), user.clone(), name.clone(), by.clone());
            Box::pin(async move {
                let changed = if mute {
                    db::mute(tx, &scope, &user, &by, now_ms).await?
                } else {
                    db::unmute(tx, &scope, &user).await?
                };
                let vars = context! { name, mute, changed };
                Ok(("ok", render(&templates, "commands/mute", vars)?))
            })
        })
        .await
    })
}

/// `/mute @成员`.
pub(super) fn mute<'a>(
    ctx: &'a BotContext,
    call: &'a Call<'a>,
) -> BoxFuture<'a, anyhow::Result<String>> {
    change_mute(ctx, call, true)
}

/// `/unmute @成员`.
pub(super) fn unmute<'a>(
    ctx: &'a BotContext,
    call: &'a Call<'a>,
) -> BoxFuture<'a, anyhow::Result<String>> {
    change_mute(ctx, call, false)
}
