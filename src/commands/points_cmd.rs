//! Points commands: `/points` adjusts a balance through the ledger, `/top` shows the leaderboard.

use minijinja::context;

use super::parse::Value;
use super::run::{once, record, render, Call};
use crate::bot::BotContext;
use crate::points::ops::{adjust_tx, AdjustOutcome, Adjustment};
use crate::points::{leaderboard, Period};
use crate::store::BoxFuture;

/// `/points @成员 +50 原因`: through the ledger, once per source message.
pub(super) fn adjust<'a>(
    ctx: &'a BotContext,
    call: &'a Call<'a>,
) -> BoxFuture<'a, anyhow::Result<String>> {
    Box::pin(async move {
        let [_, Value::Number(delta), Value::Text(reason)] = call.args() else {
            return Err(call.mismatch());
        };
        let scope = call.scope.clone();
        let _templates = call.templates.clone();
        let today = call.today;
        let now_ms = call.now_ms;
        let audit = |outcome: &str, reply: &str| call.audit(outcome, reply);
        let target = &call.targets[0];
        let (user, name, delta, reason, by) = (
            target.user_id.clone(),
            target.name.clone(),
            *delta,
            reason.clone(),
            call.operator.clone(),
        );
        // The ledger's source key is the chat message: a retried delivery credits once.
        let request_id = super::source_key(call.run.event);
        once(ctx, audit("ok", ""), move |tx, templates| {
            let (scope, user, name, reason, by) = (
                scope.clone(),
                user.clone(),
                name.clone(),
                reason.clone(),
                by.clone(),
            );
            let request_id = request_id.clone();
            Box::pin(async move {
                let a = Adjustment {
                    scope: &scope,
                    user_id: &user,
                    delta,
                    reason: &reason,
                    operator: &by,
                    request_id: &request_id,
                    day: today,
                    now_ms,
                };
                let (outcome, vars) = match adjust_tx(tx, &a).await? {
                    AdjustOutcome::Applied { balance } | AdjustOutcome::Duplicate { balance } => (
                        "ok",
                        context! { name, delta, reason, balance, done => true },
                    ),
                    AdjustOutcome::WouldGoNegative { balance } => {
                        ("failed", context! { name, delta, balance, done => false })
                    }
                    // A replayed event carries its own delta and reason: not reachable from chat.
                    AdjustOutcome::Conflict { .. } => {
                        ("failed", context! { name, delta, done => false })
                    }
                };
                Ok((outcome, render(&templates, "commands/points", vars)?))
            })
        })
        .await
    })
}

/// `/top [day|week|month]`: the points leaderboard.
pub(super) fn top<'a>(
    ctx: &'a BotContext,
    call: &'a Call<'a>,
) -> BoxFuture<'a, anyhow::Result<String>> {
    Box::pin(async move {
        let [period] = call.args() else {
            return Err(call.mismatch());
        };
        let scope = call.scope.clone();
        let templates = call.templates.clone();
        let today = call.today;
        let audit = |outcome: &str, reply: &str| call.audit(outcome, reply);
        let period = match period {
            Value::Choice(p) => Period::parse(p).unwrap_or(Period::Today),
            _ => Period::Today,
        };
        let rows = leaderboard(&ctx.store, &scope, period, today, None).await?;
        let reply = render(
            &templates,
            "replies/leaderboard",
            context! { period => period.label(), in_group => false, rows },
        )?;
        record(ctx, audit("ok", &reply)).await?;
        Ok(reply)
    })
}
