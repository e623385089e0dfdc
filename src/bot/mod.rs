//! What happens to an accepted event: an ordered chain of handlers, the first that answers
//! wins. Handlers see the normalized [`Event`] and the domain context, never HTTP or XML.

mod ping;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use ping::Ping;

use crate::clock::SharedClock;
use crate::events::Event;
use crate::store::Store;
use crate::templates::Templates;

/// What a handler decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Answer with this text; later handlers do not run.
    Reply(String),
    /// Not mine (or nothing to say); let the next handler look.
    Continue,
    /// Handled, and nothing is to be said (e.g. the member is muted); later handlers do not run.
    Silent,
}

/// Everything a handler may use.
#[derive(Clone)]
pub struct BotContext {
    pub store: Store,
    /// Write transactions go through the group-commit writer (one writer on SQLite).
    pub writer: crate::ingress::InboxWriter,
    pub templates: Templates,
    pub clock: SharedClock,
    pub timezone: chrono_tz::Tz,
    /// The FAQ knowledge base in memory.
    pub faq: Arc<crate::faq::FaqService>,
    /// Outbound messages (welcomes, pushes); absent when the outbox is off.
    pub outbox: Option<crate::outbox::Outbox>,
}

pub type HandlerFuture<'a> = Pin<Box<dyn Future<Output = anyhow::Result<Outcome>> + Send + 'a>>;

/// One step of the chain. Handlers must be idempotent per event (`dedupe_key`): after a crash
/// the sweeper runs an accepted event again.
pub trait Handler: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    fn handle<'a>(&'a self, ctx: &'a BotContext, event: &'a Event) -> HandlerFuture<'a>;
}

/// The ordered handler chain. Cheap to clone.
#[derive(Clone, Default)]
pub struct Dispatcher {
    handlers: Arc<Vec<Arc<dyn Handler>>>,
}

impl Dispatcher {
    /// The built-in chain, in order.
    pub fn standard(config: &crate::config::Config) -> Self {
        Self::default()
            .with(crate::members::rules::TagRules::new(&config.tag_rules))
            .with(crate::outbox::welcome::Welcomer::new(config))
            .with(crate::commands::MuteGate::default())
            .with(crate::commands::CommandHandler::new(
                config.commands.clone(),
                config.points.clone(),
            ))
            .with(Ping)
            .with(crate::points::PointsHandler::new(config.points.clone()))
            .with(crate::faq::FaqHandler)
    }

    #[must_use]
    pub fn with(mut self, handler: impl Handler) -> Self {
        Arc::make_mut(&mut self.handlers).push(Arc::new(handler));
        self
    }

    /// Runs handlers in order until one replies. A handler error stops the chain and is
    /// returned, so the event stays unprocessed and is retried by the sweeper (handlers are
    /// idempotent) instead of being lost.
    pub async fn dispatch(
        &self,
        ctx: &BotContext,
        event: &Event,
    ) -> Result<Option<String>, HandlerError> {
        for handler in self.handlers.iter() {
            match handler.handle(ctx, event).await {
                Ok(Outcome::Reply(text)) => return Ok(Some(text)),
                Ok(Outcome::Silent) => return Ok(None),
                Ok(Outcome::Continue) => {}
                Err(e) => {
                    tracing::error!(handler = handler.name(), key = %event.dedupe_key, error = %e, "handler failed; left for retry");
                    return Err(HandlerError {
                        handler: handler.name(),
                        reason: e.to_string(),
                    });
                }
            }
        }
        Ok(None)
    }
}

/// A handler failed; the event is retried later.
#[derive(Debug, Clone, thiserror::Error)]
#[error("handler {handler} failed: {reason}")]
pub struct HandlerError {
    pub handler: &'static str,
    pub reason: String,
}
