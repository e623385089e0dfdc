//! The member registry from WeCom (`yunying sync` and the nightly reconcile): every customer of
//! every staff member with name, add time, contact way, remark and corp tags; every customer
//! group with name, owner, notice and members (join time, scene, inviter); the names of corp
//! members who speak. Each kind runs page by page and saves its cursor with each page's writes,
//! so a crash continues where it stopped; a second run changes only what changed; a finished run
//! ends what it did not see (relations and memberships gone at WeCom) so the lifecycle job moves
//! those members on with their history.

mod customers;
mod groups;
mod names;

use std::time::Duration;

use crate::clock::SharedClock;
use crate::config::SyncConfig;
use crate::members::rule_spec::Rule;
use crate::outbox::directory::DirectoryError;
use crate::outbox::Outbox;
use crate::store::registry::{SyncRun, Tally};
use crate::store::{Store, StoreError};

/// What a run imports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum What {
    Contacts,
    Groups,
    Staff,
}

impl What {
    pub const ALL: [What; 3] = [What::Contacts, What::Groups, What::Staff];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Contacts => "contacts",
            Self::Groups => "groups",
            Self::Staff => "staff",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|w| w.as_str() == s.trim())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("WeCom: {0}")]
    Directory(#[from] DirectoryError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Cursor(String),
}

/// Where a run stands, for a progress bar and the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub what: What,
    /// Items written so far in this run (customer relations, groups, names).
    pub done: i64,
    pub tally: Tally,
}

/// The end of one kind's run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindReport {
    pub what: What,
    /// Whether this run continued one a crash or an error had left unfinished.
    pub resumed: bool,
    pub tally: Tally,
    /// Why it stopped early (it continues from its cursor next time).
    pub stopped: Option<String>,
    /// Wall time of the run, and the part of it spent waiting for WeCom.
    pub elapsed_ms: u64,
    pub api_wait_ms: u64,
}

/// One channel's sync.
pub struct Importer<'a> {
    pub outbox: &'a Outbox,
    pub store: &'a Store,
    pub clock: SharedClock,
    pub config: &'a SyncConfig,
    pub channel_id: &'a str,
    pub scope: &'a str,
    /// The tag rules whose trigger is a contact way (`channel_state`), for imported customers.
    pub rules: &'a [Rule],
    pub progress: &'a (dyn Fn(&Progress) + Send + Sync),
    /// Time spent in platform calls (and their retries) so far.
    pub api_wait: std::sync::atomic::AtomicU64,
    /// Rows written at which table statistics are gathered next.
    pub analyze_at: std::sync::Mutex<i64>,
}

impl Importer<'_> {
    /// Runs each kind in `what` and reports each; a kind that stops on an error is reported
    /// with it and the others still run.
    pub async fn run(&self, what: &[What]) -> Vec<KindReport> {
        let mut reports = Vec::new();
        for &w in what {
            reports.push(self.run_kind(w).await);
        }
        reports
    }

    async fn run_kind(&self, what: What) -> KindReport {
        let started = std::time::Instant::now();
        self.api_wait.store(0, std::sync::atomic::Ordering::Relaxed);
        let now = self.clock.now_ms();
        let mut run = match self
            .store
            .open_sync_run(self.channel_id, what.as_str(), now)
            .await
        {
            Ok(run) => run,
            Err(e) => {
                return KindReport {
                    what,
                    resumed: false,
                    tally: Tally::default(),
                    stopped: Some(e.to_string()),
                    elapsed_ms: 0,
                    api_wait_ms: 0,
                }
            }
        };
        let resumed = !run.cursor.is_empty();
        *self.analyze_at.lock().unwrap_or_else(|p| p.into_inner()) = 0;
        if resumed {
            tracing::info!(
                channel = self.channel_id,
                what = what.as_str(),
                run = run.id,
                "continuing an unfinished sync from its cursor"
            );
        }
        let result = match what {
            What::Contacts => customers::run(self, &mut run).await,
            What::Groups => groups::run(self, &mut run).await,
            What::Staff => names::run(self, &mut run).await,
        };
        let stopped = match result {
            Ok(()) => match self.store.finish_sync_run(&run, self.clock.now_ms()).await {
                Ok(()) => None,
                Err(e) => Some(e.to_string()),
            },
            Err(e) => {
                tracing::warn!(channel = self.channel_id, what = what.as_str(), error = %e, "sync stopped; the next run continues from its cursor");
                Some(e.to_string())
            }
        };
        KindReport {
            what,
            resumed,
            tally: run.tally(),
            stopped,
            elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            api_wait_ms: self.api_wait.load(std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// Calls `f` until it succeeds, waiting out rate limits and backing off on transient
    /// failures, at most `max_attempts` times.
    async fn retrying<T, F, Fut>(&self, mut f: F) -> Result<T, DirectoryError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, DirectoryError>>,
    {
        let started = std::time::Instant::now();
        let result = self.retry_loop(&mut f).await;
        let waited = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.api_wait
            .fetch_add(waited, std::sync::atomic::Ordering::Relaxed);
        result
    }

    async fn retry_loop<T, F, Fut>(&self, f: &mut F) -> Result<T, DirectoryError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, DirectoryError>>,
    {
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let wait = match f().await {
                Ok(v) => return Ok(v),
                Err(e @ DirectoryError::Permanent(_)) => return Err(e),
                Err(e) if attempt >= self.config.max_attempts => return Err(e),
                Err(DirectoryError::RateLimited(reason)) => {
                    tracing::info!(channel = self.channel_id, %reason, "frequency limit; waiting for the window");
                    Duration::from_secs(self.config.rate_limit_wait_secs)
                }
                Err(DirectoryError::Transient(reason)) => {
                    let backoff = self
                        .config
                        .retry_base_ms
                        .saturating_mul(1 << (attempt - 1).min(6));
                    tracing::info!(channel = self.channel_id, %reason, backoff_ms = backoff, "retrying");
                    Duration::from_millis(backoff)
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// Gathers table statistics at the start and whenever the run has written ten times as
    /// much as at the last time (2,000 rows first).
    async fn measure_tables(&self, written: i64) -> Result<(), StoreError> {
        let due = {
            let mut next = self.analyze_at.lock().unwrap_or_else(|p| p.into_inner());
            if written < *next {
                false
            } else {
                *next = if written == 0 {
                    2_000
                } else {
                    written.saturating_mul(10)
                };
                true
            }
        };
        if due {
            self.store.analyze_registry().await?;
        }
        Ok(())
    }

    fn report(&self, what: What, run: &SyncRun, done: i64) {
        let progress = Progress {
            what,
            done,
            tally: run.tally(),
        };
        (self.progress)(&progress);
    }
}

/// Where a run stands, from its stored cursor (a new run starts from the default).
fn read_cursor<T: serde::de::DeserializeOwned + Default>(run: &SyncRun) -> Result<T, SyncError> {
    if run.cursor.is_empty() {
        return Ok(T::default());
    }
    serde_json::from_str(&run.cursor).map_err(|e| SyncError::Cursor(e.to_string()))
}

/// Stores where a run stands in the run (saved with the page's writes).
fn write_cursor<T: serde::Serialize>(run: &mut SyncRun, cursor: &T) -> Result<(), SyncError> {
    run.cursor = serde_json::to_string(cursor).map_err(|e| SyncError::Cursor(e.to_string()))?;
    Ok(())
}

/// Adds a page's counts to the run.
fn add_tally(run: &mut SyncRun, t: Tally) {
    run.created += t.created;
    run.updated += t.updated;
    run.unchanged += t.unchanged;
    run.gone += t.gone;
    run.errors += t.errors;
}

/// One channel's reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelReport {
    pub channel_id: String,
    pub scope: String,
    pub kinds: Vec<KindReport>,
}

/// What every sync of a process shares.
pub struct SyncSetup<'a> {
    pub outbox: &'a Outbox,
    pub store: &'a Store,
    pub clock: SharedClock,
    pub config: &'a crate::config::Config,
    pub progress: &'a (dyn Fn(&str, &Progress) + Send + Sync),
}

/// The kinds named in `[sync] what` (unknown names were refused by the configuration check).
pub fn configured_kinds(config: &SyncConfig) -> Vec<What> {
    config.what.iter().filter_map(|w| What::parse(w)).collect()
}

/// Syncs `what` on every channel that can (`wecom_app` with a secret), or on those in `only`;
/// an unknown or unsuitable channel in `only` is an error before anything runs.
pub async fn sync_channels(
    setup: &SyncSetup<'_>,
    only: &[String],
    what: &[What],
) -> Result<Vec<ChannelReport>, SyncError> {
    let able: Vec<(String, String)> = crate::members::tag_sync::sync_channels(setup.config)
        .map(|(id, scope)| (id.to_owned(), scope.to_owned()))
        .collect();
    if let Some(missing) = only.iter().find(|c| !able.iter().any(|(id, _)| id == *c)) {
        return Err(SyncError::Cursor(format!(
            "channel `{missing}` cannot sync: it must be an enabled wecom_app channel with a secret (able: {})",
            able.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>().join(", ")
        )));
    }
    let mut rules: Vec<Rule> = setup
        .config
        .tag_rules
        .iter()
        .filter_map(|c| crate::members::rule_spec::compile(c).ok())
        .collect();
    rules.extend(crate::members::rules::compile_rows(
        &setup.store.tag_rule_rows().await?,
    ));
    rules.retain(|r| {
        matches!(
            r.trigger,
            crate::members::rule_spec::Trigger::ChannelState(_)
        )
    });
    let mut out = Vec::new();
    for (channel_id, scope) in able
        .iter()
        .filter(|(id, _)| only.is_empty() || only.contains(id))
    {
        let progress = |p: &Progress| (setup.progress)(channel_id, p);
        let importer = Importer {
            outbox: setup.outbox,
            store: setup.store,
            clock: setup.clock.clone(),
            config: &setup.config.sync,
            channel_id,
            scope,
            rules: &rules,
            progress: &progress,
            api_wait: std::sync::atomic::AtomicU64::new(0),
            analyze_at: std::sync::Mutex::new(0),
        };
        out.push(ChannelReport {
            channel_id: channel_id.clone(),
            scope: scope.clone(),
            kinds: importer.run(what).await,
        });
    }
    Ok(out)
}
