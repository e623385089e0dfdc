//! Access tokens: cached per app, refreshed before expiry by one caller at a time (an in-process
//! lock, and the app's row locked in the database so replicas on PostgreSQL wait for one refresh
//! instead of each calling `gettoken`), dropped and refreshed once on a token-invalid answer,
//! and backed off when `gettoken` itself fails so a wrong secret never burns the quota.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::clock::SharedClock;
use crate::store::outbox::{lock_token, put_token};
use crate::store::{Store, StoreError};
use crate::wecom::api::{ApiClient, ApiError};

/// Refresh this long before the platform's expiry.
const MARGIN_MS: i64 = 5 * 60 * 1000;
/// `gettoken` failures back off exponentially up to this.
const MAX_BLOCK_MS: i64 = 10 * 60 * 1000;

/// What a token is fetched with.
#[derive(Debug, Clone)]
pub enum Credentials {
    Wecom { corp_id: String, secret: String },
    Mp { app_id: String, secret: String },
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum TokenError {
    #[error("no access token until {retry_at_ms}: {reason}")]
    Unavailable { retry_at_ms: i64, reason: String },
    #[error("token store: {0}")]
    Store(String),
}

impl From<StoreError> for TokenError {
    fn from(e: StoreError) -> Self {
        Self::Store(e.to_string())
    }
}

#[derive(Debug, Default)]
struct Slot {
    token: Option<(String, i64)>,
    failures: u32,
    blocked_until: i64,
    last_failure: String,
}

/// The token cache of every app. Cheap to share behind an `Arc`.
pub struct Tokens {
    api: ApiClient,
    store: Store,
    clock: SharedClock,
    slots: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Slot>>>>,
}

impl Tokens {
    pub fn new(api: ApiClient, store: Store, clock: SharedClock) -> Self {
        Self {
            api,
            store,
            clock,
            slots: Mutex::new(HashMap::new()),
        }
    }

    fn slot(&self, app_key: &str) -> Arc<tokio::sync::Mutex<Slot>> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(slots.entry(app_key.to_owned()).or_default())
    }

    /// A valid token for the app, fetching one if needed (one fetch at a time).
    pub async fn get(&self, app_key: &str, creds: &Credentials) -> Result<String, TokenError> {
        let slot = self.slot(app_key);
        let mut slot = slot.lock().await;
        let now = self.clock.now_ms();
        if let Some((token, expires)) = &slot.token {
            if expires - MARGIN_MS > now {
                return Ok(token.clone());
            }
        }
        if slot.blocked_until > now {
            return Err(TokenError::Unavailable {
                retry_at_ms: slot.blocked_until,
                reason: slot.last_failure.clone(),
            });
        }
        // Another worker or replica may have refreshed it already.
        if let Some((token, expires)) = self.store.stored_token(app_key).await? {
            if !token.is_empty() && expires - MARGIN_MS > now {
                slot.token = Some((token.clone(), expires));
                return Ok(token);
            }
        }
        let mut tx = self.store.begin_write().await?;
        let (token, expires) = lock_token(&mut tx, app_key).await?;
        if !token.is_empty() && expires - MARGIN_MS > now {
            tx.commit().await?;
            slot.token = Some((token.clone(), expires));
            return Ok(token);
        }
        let fetched = match creds {
            Credentials::Wecom { corp_id, secret } => self.api.gettoken(corp_id, secret).await,
            Credentials::Mp { app_id, secret } => self.api.mp_token(app_id, secret).await,
        };
        match fetched {
            Ok(t) if !t.access_token.is_empty() => {
                let now = self.clock.now_ms();
                let expires = now + t.expires_in.max(60) * 1000;
                put_token(&mut tx, app_key, &t.access_token, expires, now).await?;
                tx.commit().await?;
                slot.token = Some((t.access_token.clone(), expires));
                slot.failures = 0;
                tracing::info!(
                    app = app_key,
                    expires_in = t.expires_in,
                    "access token fetched"
                );
                Ok(t.access_token)
            }
            other => {
                tx.rollback().await.ok();
                let error = match other {
                    Err(e) => e,
                    Ok(_) => ApiError::Decode("gettoken returned no access_token".into()),
                };
                slot.failures += 1;
                // A wrong secret will not fix itself: wait long; anything else: back off.
                let block = if error.errcode() == Some(40001) {
                    MAX_BLOCK_MS
                } else {
                    (1000_i64 << slot.failures.min(12)).min(MAX_BLOCK_MS)
                };
                slot.blocked_until = now + block;
                slot.last_failure = format!("gettoken failed: {error}");
                tracing::warn!(app = app_key, error = %error, retry_in_ms = block, "gettoken failed");
                Err(TokenError::Unavailable {
                    retry_at_ms: slot.blocked_until,
                    reason: slot.last_failure.clone(),
                })
            }
        }
    }

    /// Forgets `token` after the platform called it invalid (unless it was replaced already).
    pub async fn invalidate(&self, app_key: &str, token: &str) -> Result<(), TokenError> {
        let slot = self.slot(app_key);
        let mut slot = slot.lock().await;
        if slot.token.as_ref().is_some_and(|(t, _)| t == token) {
            slot.token = None;
        }
        self.store.drop_token(app_key, token).await?;
        Ok(())
    }
}
