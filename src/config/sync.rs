//! `[sync]`: importing the member registry from WeCom and the scheduled reconcile.

use serde::{Deserialize, Serialize};

/// The registry import (`yunying sync`) and its schedule (成员同步).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyncConfig {
    /// Whether the scheduler reconciles on `cron` (needs `scheduler.enabled`).
    pub enabled: bool,
    /// When, in the community's time zone (six fields, with seconds).
    pub cron: String,
    /// Channels to sync (`wecom_app` with a secret); empty means every such channel.
    pub channels: Vec<String>,
    /// What to sync: `contacts`, `groups`, `staff`.
    pub what: Vec<String>,
    /// How long to wait when WeCom answers a frequency limit (45009): its window is a minute.
    pub rate_limit_wait_secs: u64,
    /// First wait after a transient failure; it doubles per attempt.
    pub retry_base_ms: u64,
    /// Attempts per call before the run stops (it continues from its cursor next time).
    pub max_attempts: u32,
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            cron: "0 30 3 * * *".into(),
            channels: Vec::new(),
            what: vec!["contacts".into(), "groups".into(), "staff".into()],
            rate_limit_wait_secs: 60,
            retry_base_ms: 1000,
            max_attempts: 8,
        }
    }
}
