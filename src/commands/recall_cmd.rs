//! `/recall preview|stats|run`: a recall plan's dry run, its results against the control group,
//! or a run now (admins).

use minijinja::context;

use super::parse::Value;
use super::run::{record, render, Call};
use super::spec::Role;
use crate::bot::BotContext;
use crate::store::BoxFuture;

/// `/recall preview|stats|run 计划`.
pub(super) fn recall<'a>(
    ctx: &'a BotContext,
    call: &'a Call<'a>,
) -> BoxFuture<'a, anyhow::Result<String>> {
    Box::pin(async move {
        let [Value::Choice(action), Value::Text(plan_id)] = call.args() else {
            return Err(call.mismatch());
        };
        let templates = call.templates.clone();
        let now_ms = call.now_ms;
        let audit = |outcome: &str, reply: &str| call.audit(outcome, reply);
        let action = match action.as_str() {
            "预览" => "preview",
            "效果" => "stats",
            "执行" => "run",
            other => other,
        };
        let plans = call.run.recall;
        let Some(plan) = plans.and_then(|p| p.get(plan_id)) else {
            let ids: Vec<String> = plans
                .map(|p| p.all().iter().map(|p| p.id().to_owned()).collect())
                .unwrap_or_default();
            let reply = format!("没有启用的召回计划「{plan_id}」。可用：{}", ids.join("、"));
            record(ctx, audit("invalid", &reply)).await?;
            return Ok(reply);
        };
        if action == "run" && call.run.role < Role::Admin {
            let reply = "只有管理员可以立即执行召回计划。".to_owned();
            record(ctx, audit("refused", &reply)).await?;
            return Ok(reply);
        }
        let plans = plans.ok_or_else(|| anyhow::anyhow!("no plans"))?;
        let reply = if action == "stats" {
            let touches = crate::recall::stats::plan_stats(&ctx.store, plan.id()).await?;
            render(
                &templates,
                "commands/recall",
                context! { action, plan => plan.id(), touches },
            )?
        } else {
            let report = crate::recall::run(&plans.ctx, &plan, now_ms, action == "preview").await?;
            render(
                &templates,
                "commands/recall",
                context! { action, plan => plan.id(), report },
            )?
        };
        record(ctx, audit("ok", &reply)).await?;
        Ok(reply)
    })
}
