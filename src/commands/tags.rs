//! Tag commands: `/tag` and `/untag`, several tags at once, every change logged.

use minijinja::context;

use super::parse::Value;
use super::run::{once, render, Call};
use crate::bot::BotContext;
use crate::store::tags;
use crate::store::BoxFuture;

/// `/tag @成员 标签…`.
pub(super) fn tag<'a>(
    ctx: &'a BotContext,
    call: &'a Call<'a>,
) -> BoxFuture<'a, anyhow::Result<String>> {
    change_tags(ctx, call, true)
}

/// `/untag @成员 标签…`.
pub(super) fn untag<'a>(
    ctx: &'a BotContext,
    call: &'a Call<'a>,
) -> BoxFuture<'a, anyhow::Result<String>> {
    change_tags(ctx, call, false)
}

fn change_tags<'a>(
    ctx: &'a BotContext,
    call: &'a Call<'a>,
    add: bool,
) -> BoxFuture<'a, anyhow::Result<String>> {
    Box::pin(async move {
        let [_, Value::List(names)] = call.args() else {
            return Err(call.mismatch());
        };
        let scope = call.scope.clone();
        let _templates = call.templates.clone();
        let now_ms = call.now_ms;
        let audit = |outcome: &str, reply: &str| call.audit(outcome, reply);
        let target = &call.targets[0];
        let (user, name, by, names) = (
            target.user_id.clone(),
            target.name.clone(),
            call.run.message.sender.id.clone(),
            names.clone(),
        );
        once(ctx, audit("ok", ""), move |tx, templates| {
            let (scope, user, name, by, names) = (
                scope.clone(),
                user.clone(),
                name.clone(),
                by.clone(),
                names.clone(),
            );
            Box::pin(async move {
                let mut changed = Vec::new();
                let mut unchanged = Vec::new();
                for tag in &names {
                    let change = tags::TagChange {
                        scope: &scope,
                        user_id: &user,
                        tag,
                        source: "manual",
                        by: &by,
                        now_ms,
                    };
                    let did = if add {
                        tags::add(tx, &change).await?
                    } else {
                        tags::remove(tx, &change).await?
                    };
                    if did {
                        changed.push(tag.clone());
                    } else {
                        unchanged.push(tag.clone());
                    }
                }
                let vars = context! { name, add, changed, unchanged };
                Ok(("ok", render(&templates, "commands/tag", vars)?))
            })
        })
        .await
    })
}
