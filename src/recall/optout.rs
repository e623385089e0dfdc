//! `退订` / `订阅`: a member opts out of recall messages (tag `免打扰`, which the default plan
//! segment excludes) or back in. Both are logged like any tag change.

use minijinja::context;

use crate::bot::{BotContext, Handler, HandlerFuture, Outcome};
use crate::events::Event;
use crate::store::tags::{self, TagChange};

pub const OPT_OUT_TAG: &str = "免打扰";

pub struct OptOut;

impl Handler for OptOut {
    fn name(&self) -> &'static str {
        "recall_opt_out"
    }

    fn handle<'a>(&'a self, ctx: &'a BotContext, event: &'a Event) -> HandlerFuture<'a> {
        Box::pin(async move {
            let Some(m) = event.message() else {
                return Ok(Outcome::Continue);
            };
            let out = match m.text.trim() {
                "退订" | "TD" | "td" => true,
                "订阅" => false,
                _ => return Ok(Outcome::Continue),
            };
            let (scope, user, now_ms) =
                (event.scope.clone(), m.sender.id.clone(), ctx.clock.now_ms());
            ctx.writer
                .run_batched(move |tx| {
                    let (scope, user) = (scope.clone(), user.clone());
                    Box::pin(async move {
                        let change = TagChange {
                            scope: &scope,
                            user_id: &user,
                            tag: OPT_OUT_TAG,
                            source: "manual",
                            by: "self",
                            now_ms,
                        };
                        tags::set(tx, &change, out).await
                    })
                })
                .await??;
            let name = m.sender.name.as_deref().unwrap_or("");
            let template = if out {
                "replies/recall_opt_out"
            } else {
                "replies/recall_opt_in"
            };
            Ok(Outcome::Reply(
                ctx.templates.render(template, context! { name })?,
            ))
        })
    }
}
