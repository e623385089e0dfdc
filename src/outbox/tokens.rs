//! Access tokens: cached per app, refreshed before expiry by one caller at a time (an in-process
//! lock, and a lease in the database so replicas wait for one refresh instead of each calling
//! `gettoken`), dropped and refreshed once on a token-invalid answer, and backed off when
//! `gettoken` itself fails so a wrong secret never burns the quota. No transaction is open while
//! `gettoken` is in flight: on SQLite that would hold every callback's write turn for up to the
//! API timeout.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::clock::SharedClock;
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

/// How often a caller waiting on another replica's refresh looks for its token.
const WAIT_STEP: std::time::Duration = std::time::Duration::from_millis(100);

/// The token cache of every app. Cheap to share behind an `Arc`.
pub struct Tokens {
    api: ApiClient,
    store: Store,
    clock: SharedClock,
    slots: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Slot>>>>,
    /// This process's name on the refresh leases.
    holder: String,
    /// How long one refresh may take (the API timeout and a margin): the lease's length.
    refresh_ms: i64,
}

impl Tokens {
    pub fn new(api: ApiClient, store: Store, clock: SharedClock, api_timeout_ms: u64) -> Self {
        Self {
            api,
            store,
            clock,
            slots: Mutex::new(HashMap::new()),
            holder: format!("tokens-{:016x}", rand::random::<u64>()),
            refresh_ms: i64::try_from(api_timeout_ms).unwrap_or(10_000) + 5_000,
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
        if let Some(fresh) = self.fresh_stored(app_key, now).await? {
            slot.token = Some(fresh.clone());
            return Ok(fresh.0);
        }
        let lease = format!("token:{app_key}");
        if !self
            .store
            .acquire_lease(&lease, &self.holder, now, now + self.refresh_ms)
            .await?
        {
            let fresh = self.wait_for_other_refresh(app_key).await?;
            slot.token = Some(fresh.clone());
            return Ok(fresh.0);
        }
        // The other refresher may have finished just before the lease came free.
        if let Some(fresh) = self.fresh_stored(app_key, now).await? {
            self.store.release_lease(&lease, &self.holder).await?;
            slot.token = Some(fresh.clone());
            return Ok(fresh.0);
        }
        let fetched = match creds {
            Credentials::Wecom { corp_id, secret } => self.api.gettoken(corp_id, secret).await,
            Credentials::Mp { app_id, secret } => self.api.mp_token(app_id, secret).await,
        };
        let result = self.settle(&mut slot, app_key, fetched).await;
        self.store.release_lease(&lease, &self.holder).await?;
        result
    }

    /// The stored token when it is still good for longer than the margin.
    async fn fresh_stored(
        &self,
        app_key: &str,
        now: i64,
    ) -> Result<Option<(String, i64)>, TokenError> {
        Ok(self
            .store
            .stored_token(app_key)
            .await?
            .filter(|(token, expires)| !token.is_empty() && expires - MARGIN_MS > now))
    }

    /// Another replica holds the refresh lease: its token, once stored (at most one refresh's
    /// time, measured on the real clock so a stalled refresher cannot hold anyone for ever).
    async fn wait_for_other_refresh(&self, app_key: &str) -> Result<(String, i64), TokenError> {
        let limit =
            std::time::Duration::from_millis(u64::try_from(self.refresh_ms).unwrap_or(15_000));
        let started = std::time::Instant::now();
        loop {
            tokio::time::sleep(WAIT_STEP).await;
            if let Some(fresh) = self.fresh_stored(app_key, self.clock.now_ms()).await? {
                return Ok(fresh);
            }
            if started.elapsed() >= limit {
                return Err(TokenError::Unavailable {
                    retry_at_ms: self.clock.now_ms() + 1_000,
                    reason: "another replica's token refresh did not finish".into(),
                });
            }
        }
    }

    /// Stores a fetched token, or backs off after a failure.
    async fn settle(
        &self,
        slot: &mut Slot,
        app_key: &str,
        fetched: Result<crate::wecom::api::types::TokenResponse, ApiError>,
    ) -> Result<String, TokenError> {
        let now = self.clock.now_ms();
        match fetched {
            Ok(t) if !t.access_token.is_empty() => {
                let expires = now + t.expires_in.max(60) * 1000;
                self.store
                    .save_token(app_key, &t.access_token, expires, now)
                    .await?;
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
