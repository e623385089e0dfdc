//! The trivial built-in handler that makes the round trip observable: `ping` → `pong`.

use super::{BotContext, Handler, HandlerFuture, Outcome};
use crate::events::Event;

pub struct Ping;

impl Handler for Ping {
    fn name(&self) -> &'static str {
        "ping"
    }

    fn handle<'a>(&'a self, ctx: &'a BotContext, event: &'a Event) -> HandlerFuture<'a> {
        Box::pin(async move {
            let Some(message) = event.message() else {
                return Ok(Outcome::Continue);
            };
            if !message.text.trim().eq_ignore_ascii_case("ping") {
                return Ok(Outcome::Continue);
            }
            let name = ctx.sender_name(event, &message.sender).await;
            let text = ctx
                .templates
                .render("replies/pong", minijinja::context! { name })?;
            Ok(Outcome::Reply(text))
        })
    }
}
