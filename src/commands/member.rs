//! `/member`: one member's points, level, streak, tags, last activity and groups.

use chrono::TimeZone as _;
use minijinja::context;

use super::run::{record, render, Call};
use crate::bot::BotContext;
use crate::points::rules;
use crate::store::BoxFuture;

/// `/member @成员`: points, level, streak, tags, last active, groups.
pub(super) fn member<'a>(
    ctx: &'a BotContext,
    call: &'a Call<'a>,
) -> BoxFuture<'a, anyhow::Result<String>> {
    Box::pin(async move {
        let [_] = call.args() else {
            return Err(call.mismatch());
        };
        let scope = call.scope.clone();
        let templates = call.templates.clone();
        let audit = |outcome: &str, reply: &str| call.audit(outcome, reply);
        let target = &call.targets[0];
        let account = ctx
            .store
            .points_account(&scope, &target.user_id)
            .await?
            .map(|(_, a)| a)
            .unwrap_or_default();
        let member = ctx.store.member(&scope, &target.user_id).await?;
        let groups: Vec<String> = ctx
            .store
            .groups_of(&scope, &target.user_id)
            .await?
            .into_iter()
            .map(|(id, name)| name.unwrap_or(id))
            .collect();
        let member_tags = ctx.store.tags_of(&scope, &target.user_id).await?;
        let (level, _) = rules::level_of(call.run.points, account.total_earned);
        let last_active = member.as_ref().and_then(|m| {
            ctx.timezone
                .timestamp_millis_opt(m.last_active_at)
                .single()
                .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
        });
        let reply = render(
            &templates,
            "commands/member",
            context! {
                name => target.name, user_id => target.user_id, balance => account.balance,
                total_earned => account.total_earned, streak => account.streak,
                best_streak => account.best_streak, messages => member.as_ref().map_or(0, |m| m.message_count),
                last_active, groups, tags => member_tags, level,
            },
        )?;
        record(ctx, audit("ok", &reply)).await?;
        Ok(reply)
    })
}
