//! The composition of the standard handler chain: which handlers run, in what order, and the
//! services each is given. The one module that names every domain's handlers, so the domains
//! and the chain's machinery (`bot`) never need each other.

use std::sync::Arc;

use crate::bot::Dispatcher;
use crate::config::Config;
use crate::faq::FaqService;
use crate::members::contacts::StageOnEvent;
use crate::outbox::Outbox;
use crate::recall::Plans;

/// What the handlers are given besides the per-event context.
#[derive(Clone)]
pub struct Services {
    pub faq: Arc<FaqService>,
    /// Absent when the outbox is off.
    pub outbox: Option<Outbox>,
    pub recall: Option<Arc<Plans>>,
}

/// Makes a chain of the caller's own from an empty dispatcher and the services.
pub type MakeChain = Box<dyn FnOnce(Dispatcher, &Services) -> Dispatcher + Send>;

/// How the server's chain is made.
pub enum Chain {
    /// [`standard`].
    Standard,
    /// A chain of the caller's own (tests).
    Custom(MakeChain),
}

impl Chain {
    /// A custom chain of `make` that ignores the services.
    pub fn custom(make: impl FnOnce(Dispatcher) -> Dispatcher + Send + 'static) -> Self {
        Self::Custom(Box::new(move |d, _| make(d)))
    }
}

/// The stage check after the events: made before the chain, because the group commit records the
/// first stages of the members it creates with the check's own memory.
pub fn stage_check(config: &Config) -> StageOnEvent {
    StageOnEvent::new(config.lifecycle.clone())
}

/// The built-in chain, in order.
pub fn standard(config: &Config, services: &Services, stages: StageOnEvent) -> Dispatcher {
    use crate::members::{contacts, rules::TagRules, tag_sync};
    let rules = TagRules::new(&config.tag_rules, &config.points.levels);
    let mute = Arc::new(crate::commands::MuteGate::default());
    let commands = crate::commands::CommandHandler::new(
        config,
        Arc::clone(&mute),
        Arc::clone(&services.faq),
        services.recall.clone(),
    );
    Dispatcher::default()
        .with(contacts::Follows)
        .with(tag_sync::TagSyncEvents::new(services.outbox.clone()))
        .with(rules.clone())
        .with(crate::members::welcome::Welcomer::new(
            config,
            services.outbox.clone(),
        ))
        .with(commands)
        .with(mute)
        .with(crate::bot::Ping)
        .with(crate::recall::optout::OptOut)
        .with(crate::points::PointsHandler::new(config.points.clone()))
        .with(crate::faq::FaqHandler::new(Arc::clone(&services.faq)))
        .with_after(stages)
        .with_after(rules.state_rules_after_events())
}
