//! FAQ commands: `/faq add`, `/faq similar`, `/faq del` change the knowledge base live;
//! `/faq test` shows how a question would be matched.

use minijinja::context;

use super::parse::Value;
use super::run::{once, record, render, Call};
use crate::bot::BotContext;
use crate::faq::check_entry;
use crate::store::faq::{self as faq_db, NewFaqEntry};
use crate::store::BoxFuture;

/// `/faq add 问题 | 答案`.
pub(super) fn faq_add<'a>(
    ctx: &'a BotContext,
    call: &'a Call<'a>,
) -> BoxFuture<'a, anyhow::Result<String>> {
    Box::pin(async move {
        let [Value::Pair(question, answer)] = call.args() else {
            return Err(call.mismatch());
        };
        let templates = call.templates.clone();
        let now_ms = call.now_ms;
        let audit = |outcome: &str, reply: &str| call.audit(outcome, reply);
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
        call.run.faq.invalidate();
        reply
    })
}

/// `/faq similar 编号 问法`.
pub(super) fn faq_similar<'a>(
    ctx: &'a BotContext,
    call: &'a Call<'a>,
) -> BoxFuture<'a, anyhow::Result<String>> {
    Box::pin(async move {
        let [Value::Id(id), Value::Text(wording)] = call.args() else {
            return Err(call.mismatch());
        };
        let templates = call.templates.clone();
        let now_ms = call.now_ms;
        let audit = |outcome: &str, reply: &str| call.audit(outcome, reply);
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
        call.run.faq.invalidate();
        reply
    })
}

/// `/faq del 编号`.
pub(super) fn faq_del<'a>(
    ctx: &'a BotContext,
    call: &'a Call<'a>,
) -> BoxFuture<'a, anyhow::Result<String>> {
    Box::pin(async move {
        let [Value::Id(id)] = call.args() else {
            return Err(call.mismatch());
        };
        let _templates = call.templates.clone();
        let audit = |outcome: &str, reply: &str| call.audit(outcome, reply);
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
        call.run.faq.invalidate();
        reply
    })
}

/// `/faq test 问题`: the ranked candidates and the confidence.
pub(super) fn faq_test<'a>(
    ctx: &'a BotContext,
    call: &'a Call<'a>,
) -> BoxFuture<'a, anyhow::Result<String>> {
    Box::pin(async move {
        let [Value::Text(question)] = call.args() else {
            return Err(call.mismatch());
        };
        let templates = call.templates.clone();
        let now_ms = call.now_ms;
        let audit = |outcome: &str, reply: &str| call.audit(outcome, reply);
        let snapshot = call.run.faq.snapshot(&ctx.store, now_ms).await?;
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
    })
}
