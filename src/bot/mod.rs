//! What happens to an accepted event: an ordered chain of handlers, the first that answers
//! wins. Handlers see the normalized [`Event`](crate::events::Event) and the domain context,
//! never HTTP or XML.

mod after;
mod ping;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use after::AfterTasks;
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

/// Everything a handler may use besides the services it was built with.
#[derive(Clone)]
pub struct BotContext {
    pub store: Store,
    /// Write transactions go through the group-commit writer (one writer on SQLite).
    pub writer: crate::store::writer::InboxWriter,
    pub templates: Templates,
    pub clock: SharedClock,
    pub timezone: chrono_tz::Tz,
}

impl BotContext {
    /// The name of the sender of `event`: the one the platform sent, else the one the registry
    /// holds (an app message carries only the user id); `None` when neither knows it, so a
    /// reply never addresses a member by a raw id.
    pub async fn sender_name(
        &self,
        event: &Event,
        sender: &crate::events::UserRef,
    ) -> Option<String> {
        if let Some(name) = sender.name.as_deref().filter(|n| !n.is_empty()) {
            return Some(name.to_owned());
        }
        match self.store.member(&event.scope, &sender.id).await {
            Ok(Some(m)) => m.display_name.filter(|n| !n.is_empty()),
            _ => None,
        }
    }
}

pub type HandlerFuture<'a> = Pin<Box<dyn Future<Output = anyhow::Result<Outcome>> + Send + 'a>>;

/// One step of the chain. Handlers must be idempotent per event (`dedupe_key`): after a crash
/// the sweeper runs an accepted event again.
pub trait Handler: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    fn handle<'a>(&'a self, ctx: &'a BotContext, event: &'a Event) -> HandlerFuture<'a>;
}

/// The ordered handler chain, and handlers that run after it whatever it answered. Cheap to clone.
#[derive(Clone, Default)]
pub struct Dispatcher {
    handlers: Arc<Vec<Arc<dyn Handler>>>,
    after: Arc<Vec<Arc<dyn Handler>>>,
    after_tasks: AfterTasks,
}

impl Dispatcher {
    #[must_use]
    pub fn with(mut self, handler: impl Handler) -> Self {
        Arc::make_mut(&mut self.handlers).push(Arc::new(handler));
        self
    }

    /// Adds a handler that runs after the chain on every event, once the answer is decided and
    /// without holding it back (its answer is ignored; a failure is logged, and the periodic
    /// jobs repair what it missed, also after a crash).
    #[must_use]
    pub fn with_after(mut self, handler: impl Handler) -> Self {
        Arc::make_mut(&mut self.after).push(Arc::new(handler));
        self
    }

    /// The after-handler runs still going on (shutdown and tests wait for them).
    pub fn after_tasks(&self) -> &AfterTasks {
        &self.after_tasks
    }

    /// Starts the after-handlers of `event`. Most finish on their first poll (a member checked
    /// minutes ago); those that wait on the database go on in a task of their own, unless too
    /// many do already: then this waits for them, which slows the callbacks down.
    async fn start_after(&self, ctx: &Arc<BotContext>, event: &Arc<Event>) {
        if self.after.is_empty() {
            return;
        }
        let mut run = Box::pin(run_after(
            Arc::clone(&self.after),
            Arc::clone(ctx),
            Arc::clone(event),
        ));
        if poll_once(&mut run).await.is_some() {
            return;
        }
        match self.after_tasks.start() {
            Some(running) => {
                tokio::spawn(async move {
                    run.await;
                    drop(running);
                });
            }
            None => run.await,
        }
    }

    /// Runs handlers in order until one replies. A handler error stops the chain and is
    /// returned, so the event stays unprocessed and is retried by the sweeper (handlers are
    /// idempotent) instead of being lost.
    pub async fn dispatch(
        &self,
        ctx: &Arc<BotContext>,
        event: &Arc<Event>,
    ) -> Result<Option<String>, HandlerError> {
        for handler in self.handlers.iter() {
            match handler.handle(ctx, event).await {
                Ok(Outcome::Reply(text)) => {
                    self.start_after(ctx, event).await;
                    return Ok(Some(text));
                }
                Ok(Outcome::Silent) => {
                    self.start_after(ctx, event).await;
                    return Ok(None);
                }
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
        self.start_after(ctx, event).await;
        Ok(None)
    }
}

/// Polls `future` once: its output if it finished without waiting on anything (then it needs no
/// task and no timer), `None` if it is still pending.
pub(crate) async fn poll_once<F: Future + Unpin>(future: &mut F) -> Option<F::Output> {
    std::future::poll_fn(|cx| {
        std::task::Poll::Ready(match Pin::new(&mut *future).poll(cx) {
            std::task::Poll::Ready(output) => Some(output),
            std::task::Poll::Pending => None,
        })
    })
    .await
}

async fn run_after(after: Arc<Vec<Arc<dyn Handler>>>, ctx: Arc<BotContext>, event: Arc<Event>) {
    for handler in after.iter() {
        if let Err(e) = handler.handle(&ctx, &event).await {
            tracing::warn!(handler = handler.name(), key = %event.dedupe_key, error = %e, "after-handler failed");
        }
    }
}

/// A handler failed; the event is retried later.
#[derive(Debug, Clone, thiserror::Error)]
#[error("handler {handler} failed: {reason}")]
pub struct HandlerError {
    pub handler: &'static str,
    pub reason: String,
}
