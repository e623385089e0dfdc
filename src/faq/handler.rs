//! The chat side of the FAQ: answer, offer "您是不是想问" (then a reply of 1/2/3 answers), or stay
//! quiet and record the question for ops. In groups the bot answers when @-mentioned; with
//! auto-answer on it also takes messages that look like questions, one per cooldown.

use std::sync::Arc;

use minijinja::context;

use super::normalize::normalize;
use super::rerank::bigram_dice;
use crate::bot::{BotContext, Handler, HandlerFuture, Outcome};
use crate::events::{Event, Message};
use crate::members::local_day;
use crate::store::faq::{self as db, FaqEntry};

/// Open unanswered questions compared with a new one when grouping.
const GROUPING_WINDOW: i64 = 500;
/// Bigram overlap from which two unanswered questions count as the same question.
const SAME_QUESTION: f32 = 0.6;

pub struct FaqHandler {
    faq: Arc<super::FaqService>,
}

impl FaqHandler {
    pub fn new(faq: Arc<super::FaqService>) -> Self {
        Self { faq }
    }
}

/// Question words and marks that make an unaddressed group message worth answering.
fn looks_like_question(text: &str) -> bool {
    const HINTS: &[&str] = &[
        "?",
        "？",
        "吗",
        "怎么",
        "如何",
        "什么",
        "哪",
        "几",
        "多少",
        "能不能",
        "可以",
        "是否",
        "为什么",
        "请问",
    ];
    text.chars().count() >= 4 && HINTS.iter().any(|h| text.contains(h))
}

/// `1`…`3` (also full-width) → the index of a pending choice.
fn choice(text: &str) -> Option<usize> {
    match normalize(text).as_slice() {
        [c @ '1'..='3'] => Some(*c as usize - '1' as usize),
        _ => None,
    }
}

impl FaqHandler {
    /// A reply `1`–`3` to a "您是不是想问" list: the chosen entry's answer, counted once.
    async fn picked(
        &self,
        ctx: &BotContext,
        event: &Event,
        message: &Message,
        snapshot: &super::service::Snapshot,
        index: usize,
    ) -> anyhow::Result<Outcome> {
        let (scope, user, group) = keys(event, message);
        // "1" is common chat: only a member with a pending list costs a write.
        if !ctx.store.faq_has_pending(&scope, &user, &group).await? {
            return Ok(Outcome::Continue);
        }
        let ttl_ms = self.faq.config().choice_ttl_secs * 1000;
        let (now_ms, day) = (
            ctx.clock.now_ms(),
            local_day(ctx.timezone, event.occurred_at),
        );
        let picked = ctx
            .writer
            .run_batched(move |tx| {
                let (scope, user, group) = (scope.clone(), user.clone(), group.clone());
                Box::pin(async move {
                    let Some((ids, at)) = db::pending(tx, &scope, &user, &group).await? else {
                        return Ok(None);
                    };
                    if now_ms - at > ttl_ms {
                        db::drop_pending(tx, &scope, &user, &group).await?;
                        return Ok(None);
                    }
                    let Some(&id) = ids.get(index) else {
                        return Ok(None);
                    };
                    db::drop_pending(tx, &scope, &user, &group).await?;
                    db::count_hit(tx, id).await?;
                    db::count_day(tx, &scope, day, true).await?;
                    Ok(Some(id))
                })
            })
            .await??;
        match picked.and_then(|id| snapshot.entries.iter().find(|e| e.id == id)) {
            Some(entry) => answer(ctx, event, message, entry).await,
            None => Ok(Outcome::Continue),
        }
    }

    /// Whether an unaddressed group message may be answered: it looks like a question, the group
    /// answers on its own, and its cooldown is over.
    async fn may_answer_unasked(
        &self,
        ctx: &BotContext,
        event: &Event,
        text: &str,
        group: &str,
        now_ms: i64,
    ) -> anyhow::Result<bool> {
        // The text test first: most group chat is not a question and costs no query.
        if !looks_like_question(text) {
            return Ok(false);
        }
        let config = self.faq.config();
        let settings = ctx.store.faq_group(&event.scope, group).await?;
        let auto = settings.map_or(config.auto_answer, |(auto, _)| auto);
        let last = settings.map_or(0, |(_, at)| at);
        Ok(auto && now_ms - last >= config.group_cooldown_secs * 1000)
    }

    /// Counts a direct answer (and an unprompted one against the group's cooldown).
    async fn count_answer(
        &self,
        ctx: &BotContext,
        event: &Event,
        id: i64,
        group: &str,
        unprompted: bool,
        now_ms: i64,
    ) -> anyhow::Result<()> {
        let day = local_day(ctx.timezone, event.occurred_at);
        let (scope, group_id, auto) = (
            event.scope.clone(),
            group.to_owned(),
            self.faq.config().auto_answer,
        );
        ctx.writer
            .run_batched(move |tx| {
                let (scope, group_id) = (scope.clone(), group_id.clone());
                Box::pin(async move {
                    db::count_hit(tx, id).await?;
                    db::count_day(tx, &scope, day, true).await?;
                    if unprompted {
                        db::touch_group(tx, &scope, &group_id, auto, now_ms).await?;
                    }
                    Ok(())
                })
            })
            .await??;
        Ok(())
    }

    /// "您是不是想问": the top candidates, remembered for a numbered reply.
    async fn suggest(
        &self,
        ctx: &BotContext,
        event: &Event,
        message: &Message,
        ranked: &[(super::matcher::Candidate, &FaqEntry)],
        now_ms: i64,
    ) -> anyhow::Result<Outcome> {
        let ids: Vec<i64> = ranked.iter().map(|(_, e)| e.id).collect();
        let questions: Vec<&str> = ranked.iter().map(|(_, e)| e.question.as_str()).collect();
        let (scope, user, group_key) = keys(event, message);
        ctx.writer
            .run_batched(move |tx| {
                let (scope, user, group_key, ids) =
                    (scope.clone(), user.clone(), group_key.clone(), ids.clone());
                Box::pin(async move {
                    db::set_pending(tx, &scope, &user, &group_key, &ids, now_ms).await
                })
            })
            .await??;
        let name = ctx.sender_name(event, &message.sender).await;
        let reply = ctx
            .templates
            .render("replies/faq_suggest", context! { name, questions })?;
        Ok(Outcome::Reply(reply))
    }
}

impl Handler for FaqHandler {
    fn name(&self) -> &'static str {
        "faq"
    }

    fn handle<'a>(&'a self, ctx: &'a BotContext, event: &'a Event) -> HandlerFuture<'a> {
        Box::pin(async move {
            let Some(message) = event.message() else {
                return Ok(Outcome::Continue);
            };
            let config = self.faq.config();
            let text = message.text.trim();
            if !config.enabled || text.is_empty() {
                return Ok(Outcome::Continue);
            }
            let now_ms = ctx.clock.now_ms();
            let day = local_day(ctx.timezone, event.occurred_at);
            let group = message.group.as_ref().map_or("", |g| g.id.as_str());
            let snapshot = self.faq.snapshot(&ctx.store, now_ms).await?;
            if snapshot.entries.is_empty() {
                // No knowledge base yet: nothing to answer, and "not sure" to every message
                // would only be noise.
                return Ok(Outcome::Continue);
            }

            if let Some(index) = choice(text) {
                return self.picked(ctx, event, message, &snapshot, index).await;
            }

            let addressed = message.mentions_bot || message.group.is_none();
            if !addressed
                && !self
                    .may_answer_unasked(ctx, event, text, group, now_ms)
                    .await?
            {
                return Ok(Outcome::Continue);
            }

            let ranked = snapshot.rank(text, 3);
            let confidence = ranked.first().map_or(0.0, |(c, _)| c.confidence);
            if confidence >= config.answer_threshold {
                let entry = ranked[0].1;
                self.count_answer(ctx, event, entry.id, group, !addressed, now_ms)
                    .await?;
                return answer(ctx, event, message, entry).await;
            }
            if confidence >= config.suggest_threshold {
                return self.suggest(ctx, event, message, &ranked, now_ms).await;
            }

            record_unanswered(ctx, &event.scope, text, day, now_ms).await?;
            if addressed {
                let name = ctx.sender_name(event, &message.sender).await;
                let reply = ctx
                    .templates
                    .render("replies/faq_unsure", context! { name, question => text })?;
                return Ok(Outcome::Reply(reply));
            }
            Ok(Outcome::Continue)
        })
    }
}

fn keys(event: &Event, message: &Message) -> (String, String, String) {
    (
        event.scope.clone(),
        message.sender.id.clone(),
        message
            .group
            .as_ref()
            .map_or(String::new(), |g| g.id.clone()),
    )
}

/// The entry's answer for this member. The answer is ops-written text: it renders in the
/// sandbox on a blocking thread, and one that fails (it passed the check when saved, but not with
/// this member's values) is logged and left unsaid rather than failing the event for ever.
async fn answer(
    ctx: &BotContext,
    event: &Event,
    message: &Message,
    entry: &FaqEntry,
) -> anyhow::Result<Outcome> {
    // Ops-written answers may say `{{ name }}`: a member the registry does not know is 朋友.
    let name = ctx
        .sender_name(event, &message.sender)
        .await
        .unwrap_or_else(|| "朋友".to_owned());
    let group = message.group.as_ref().and_then(|g| g.name.clone());
    let (templates, source, what) = (
        ctx.templates.clone(),
        entry.answer.clone(),
        format!("faq entry {}", entry.id),
    );
    let vars = context! { name => name.clone(), group };
    let rendered =
        tokio::task::spawn_blocking(move || templates.render_str(&what, &source, vars)).await?;
    let text = match rendered {
        Ok(text) => text,
        Err(e) => {
            tracing::error!(entry = entry.id, error = %e, "FAQ answer does not render; not answered");
            return Ok(Outcome::Silent);
        }
    };
    Ok(Outcome::Reply(ctx.templates.render(
        "replies/faq_answer",
        context! { answer => text, question => entry.question, name },
    )?))
}

/// Counts the question with an open one that says nearly the same, or records it anew.
async fn record_unanswered(
    ctx: &BotContext,
    scope: &str,
    text: &str,
    day: i32,
    now_ms: i64,
) -> anyhow::Result<()> {
    let (scope, text) = (scope.to_owned(), text.to_owned());
    ctx.writer
        .run_batched(move |tx| {
            let (scope, text) = (scope.clone(), text.clone());
            Box::pin(async move {
                let asked = normalize(&text);
                let open = db::open_unanswered(tx, &scope, GROUPING_WINDOW).await?;
                let same = open
                    .iter()
                    .map(|(id, q)| (*id, bigram_dice(&asked, &normalize(q))))
                    .filter(|(_, s)| *s >= SAME_QUESTION)
                    .max_by(|a, b| a.1.total_cmp(&b.1));
                db::count_day(tx, &scope, day, false).await?;
                match same {
                    Some((id, _)) => db::bump_unanswered(tx, id, now_ms).await,
                    None => db::insert_unanswered(tx, &scope, &text, now_ms).await,
                }
            })
        })
        .await??;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn questions_and_choices() {
        assert!(looks_like_question("直播几点开始？"));
        assert!(looks_like_question("请问怎么开发票"));
        assert!(!looks_like_question("哈哈哈哈"));
        assert!(!looks_like_question("吗？"));
        assert_eq!(choice("2"), Some(1));
        assert_eq!(choice("３"), Some(2));
        assert_eq!(choice(" 1 "), Some(0));
        assert_eq!(choice("4"), None);
        assert_eq!(choice("12"), None);
    }
}
