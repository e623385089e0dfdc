//! Executing a parsed, permitted command. Commands that change something run their change and
//! their audit record in one write transaction, after checking that this source message was
//! not executed already — a retried delivery gets the first reply and changes nothing.

use std::sync::Arc;

use chrono::TimeZone as _;
use minijinja::context;

use super::parse::{Parsed, Value};
use super::roles::{self, Roles};
use super::spec::Role;
use super::AuditOwned;
use crate::bot::BotContext;
use crate::events::{Event, Message};
use crate::faq::check_entry;
use crate::members::local_day;
use crate::points::ops::{adjust_tx, AdjustOutcome, Adjustment};
use crate::points::{leaderboard, rules, Period};
use crate::store::commands as db;
use crate::store::faq::{self as faq_db, NewFaqEntry};
use crate::store::tags;
use crate::store::{StoreError, Tx};
use crate::templates::Templates;

/// A member named in a command, resolved.
struct Target {
    user_id: String,
    name: String,
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
}

pub(super) async fn execute(ctx: &BotContext, run: &Run<'_>) -> anyhow::Result<String> {
    let Run {
        points,
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
    let today = local_day(ctx.timezone, event.occurred_at);
    let now_ms = ctx.clock.now_ms();
    let templates = ctx.templates.clone();
    let scope = event.scope.clone();

    match (parsed.spec.name, parsed.args.as_slice()) {
        ("points", [_, Value::Number(delta), Value::Text(reason)]) => {
            let target = &targets[0];
            let (user, name, delta, reason, by) = (
                target.user_id.clone(),
                target.name.clone(),
                *delta,
                reason.clone(),
                operator.clone(),
            );
            // The ledger's source key is the chat message: a retried delivery credits once.
            let request_id = super::source_key(event);
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
                        AdjustOutcome::Applied { balance }
                        | AdjustOutcome::Duplicate { balance } => (
                            "ok",
                            context! { name, delta, reason, balance, done => true },
                        ),
                        AdjustOutcome::WouldGoNegative { balance } => {
                            ("failed", context! { name, delta, balance, done => false })
                        }
                    };
                    Ok((outcome, render(&templates, "commands/points", vars)?))
                })
            })
            .await
        }
        (cmd @ ("tag" | "untag"), [_, Value::List(names)]) => {
            let target = &targets[0];
            let add = cmd == "tag";
            let (user, name, by, names) = (
                target.user_id.clone(),
                target.name.clone(),
                message.sender.id.clone(),
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
        }
        ("role", [_, Value::Choice(new_role)]) => {
            let target = &targets[0];
            let role_name = Role::parse(new_role).unwrap_or(Role::Member);
            let (user, name, by) = (
                target.user_id.clone(),
                target.name.clone(),
                message.sender.id.clone(),
            );
            once(ctx, audit("ok", ""), move |tx, templates| {
                let (scope, user, name, by) =
                    (scope.clone(), user.clone(), name.clone(), by.clone());
                Box::pin(async move {
                    db::set_role(tx, &scope, &user, role_name.as_str(), &by, now_ms).await?;
                    let vars = context! { name, role => role_name.as_str() };
                    Ok(("ok", render(&templates, "commands/role", vars)?))
                })
            })
            .await
        }
        (cmd @ ("mute" | "unmute"), [_]) => {
            let target = &targets[0];
            let mute = cmd == "mute";
            let (user, name, by) = (
                target.user_id.clone(),
                target.name.clone(),
                message.sender.id.clone(),
            );
            once(ctx, audit("ok", ""), move |tx, templates| {
                let (scope, user, name, by) =
                    (scope.clone(), user.clone(), name.clone(), by.clone());
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
        }
        ("faq add", [Value::Pair(question, answer)]) => {
            let entry = NewFaqEntry {
                question: question.clone(),
                answer: answer.clone(),
                enabled: true,
                ..NewFaqEntry::default()
            };
            if let Err(reason) = check_entry(&entry) {
                let reply = render(
                    &templates,
                    "commands/faq",
                    context! { action => "invalid", reason },
                )?;
                record(ctx, audit("invalid", &reply)).await?;
                return Ok(reply);
            }
            let reply = once(ctx, audit("ok", ""), move |tx, templates| {
                let entry = entry.clone();
                Box::pin(async move {
                    let id = faq_db::insert_entry(tx, &entry, now_ms).await?;
                    let vars = context! { action => "added", id, question => entry.question };
                    Ok(("ok", render(&templates, "commands/faq", vars)?))
                })
            })
            .await;
            run.faq.invalidate();
            reply
        }
        ("faq similar", [Value::Id(id), Value::Text(wording)]) => {
            let Some(mut entry) = ctx.store.faq_entry(*id).await? else {
                let reply = render(
                    &templates,
                    "commands/faq",
                    context! { action => "missing", id },
                )?;
                record(ctx, audit("invalid", &reply)).await?;
                return Ok(reply);
            };
            if !entry.similar.contains(wording) {
                entry.similar.push(wording.clone());
            }
            let (id, wording) = (*id, wording.clone());
            let update = NewFaqEntry::from(entry);
            let reply = once(ctx, audit("ok", ""), move |tx, templates| {
                let (update, wording) = (update.clone(), wording.clone());
                Box::pin(async move {
                    faq_db::update_entry(tx, id, &update, now_ms).await?;
                    let vars = context! { action => "similar", id, question => wording };
                    Ok(("ok", render(&templates, "commands/faq", vars)?))
                })
            })
            .await;
            run.faq.invalidate();
            reply
        }
        ("faq del", [Value::Id(id)]) => {
            let id = *id;
            let reply = once(ctx, audit("ok", ""), move |tx, templates| {
                Box::pin(async move {
                    let deleted = faq_db::delete_entry(tx, id).await?;
                    let action = if deleted { "deleted" } else { "missing" };
                    Ok((
                        "ok",
                        render(&templates, "commands/faq", context! { action, id })?,
                    ))
                })
            })
            .await;
            run.faq.invalidate();
            reply
        }
        ("faq test", [Value::Text(question)]) => {
            let snapshot = run.faq.snapshot(&ctx.store, now_ms).await?;
            let ranked: Vec<_> = snapshot
                .rank(question, 3)
                .into_iter()
                .map(|(c, e)| context! { id => e.id, question => e.question.clone(), score => format!("{:.3}", c.score) })
                .collect();
            let confidence = snapshot
                .rank(question, 1)
                .first()
                .map_or(0.0, |(c, _)| c.confidence);
            let reply = render(
                &templates,
                "commands/faq_test",
                context! { question, ranked, confidence => format!("{confidence:.2}") },
            )?;
            record(ctx, audit("ok", &reply)).await?;
            Ok(reply)
        }
        ("recall", [Value::Choice(action), Value::Text(plan_id)]) => {
            let action = match action.as_str() {
                "预览" => "preview",
                "效果" => "stats",
                "执行" => "run",
                other => other,
            };
            let plans = run.recall;
            let Some(plan) = plans.and_then(|p| p.get(plan_id)) else {
                let ids: Vec<String> = plans
                    .map(|p| p.all().iter().map(|p| p.id().to_owned()).collect())
                    .unwrap_or_default();
                let reply = format!("没有启用的召回计划「{plan_id}」。可用：{}", ids.join("、"));
                record(ctx, audit("invalid", &reply)).await?;
                return Ok(reply);
            };
            if action == "run" && role < Role::Admin {
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
                let report =
                    crate::recall::run(&plans.ctx, &plan, now_ms, action == "preview").await?;
                render(
                    &templates,
                    "commands/recall",
                    context! { action, plan => plan.id(), report },
                )?
            };
            record(ctx, audit("ok", &reply)).await?;
            Ok(reply)
        }
        ("stats", [period]) => {
            // Whole local days, today included, at most 90.
            let days: i64 = match period {
                Value::Duration(secs) => ((secs + 86_399) / 86_400).clamp(1, 90),
                _ => 1,
            };
            let today_date = rules::day_to_date(today).unwrap_or_default();
            let first = today_date - chrono::Duration::days(days - 1);
            let from = crate::points::to_day(first);
            let since_ms = first
                .and_hms_opt(0, 0, 0)
                .and_then(|t| ctx.timezone.from_local_datetime(&t).earliest())
                .map_or(0, |t| t.timestamp_millis());
            let stats = ctx.store.stats(&scope, from, today, since_ms).await?;
            let reply = render(&templates, "commands/stats", context! { days, stats })?;
            record(ctx, audit("ok", &reply)).await?;
            Ok(reply)
        }
        ("top", [period]) => {
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
        }
        ("member", [_]) => {
            let target = &targets[0];
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
            let (level, _) = rules::level_of(points, account.total_earned);
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
        }
        _ => anyhow::bail!("command `{}` has no implementation", parsed.spec.name),
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

fn render(templates: &Templates, name: &str, vars: minijinja::Value) -> Result<String, StoreError> {
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
async fn once<F>(ctx: &BotContext, audit: AuditOwned, write: F) -> anyhow::Result<String>
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
async fn record(ctx: &BotContext, audit: AuditOwned) -> anyhow::Result<()> {
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
