//! Shared application state handed to HTTP handlers. Cloned for every request (axum's `State`),
//! so it is one `Arc`: a clone and a drop are one counter each, not one per service.

use std::sync::Arc;

use crate::config::Config;
use crate::ingress::Ingress;
use crate::store::Store;
use crate::telemetry::Metrics;

#[derive(Clone)]
pub struct AppState(Arc<AppParts>);

/// The services behind [`AppState`].
pub struct AppParts {
    pub config: Arc<Config>,
    pub store: Store,
    pub ingress: Ingress,
    pub metrics: Metrics,
    pub faq: Arc<crate::faq::FaqService>,
    pub outbox: crate::outbox::Outbox,
    pub recall: Arc<crate::recall::Plans>,
}

impl AppState {
    pub fn new(parts: AppParts) -> Self {
        Self(Arc::new(parts))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppParts;

    fn deref(&self) -> &AppParts {
        &self.0
    }
}
