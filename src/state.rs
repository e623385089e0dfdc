//! Shared application state handed to HTTP handlers; every field is cheap to clone.

use std::sync::Arc;

use crate::config::Config;
use crate::ingress::Ingress;
use crate::store::Store;
use crate::telemetry::Metrics;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Store,
    pub ingress: Ingress,
    pub metrics: Metrics,
    pub faq: Arc<crate::faq::FaqService>,
    pub outbox: crate::outbox::Outbox,
    pub recall: Arc<crate::recall::Plans>,
}
