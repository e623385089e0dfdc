//! The scheduler loop of a `serve` process: every second, each schedule's due tick is claimed
//! (once across replicas) and its job run — maintenance (stages, value layers, state tag rules,
//! inbox pruning) and recall plans.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{claim_due, Due, Schedule};
use crate::recall::{self, Plan, Plans};
use crate::state::AppState;

pub enum Job {
    Lifecycle,
    InboxPrune,
    /// The registry reconcile from WeCom (`[sync]`), then maintenance.
    RegistrySync,
    Recall(Arc<Plan>),
}

pub struct Runner {
    state: AppState,
    plans: Arc<Plans>,
    jobs: Vec<(Schedule, Job)>,
    started_ms: i64,
    worker: String,
    plans_read_at: std::sync::atomic::AtomicI64,
}

/// Stored plans are re-read this often.
const PLAN_RELOAD_MS: i64 = 30_000;

impl Runner {
    pub fn new(state: AppState, plans: Arc<Plans>, now_ms: i64) -> anyhow::Result<Self> {
        let s = &state.config.scheduler;
        let mut jobs = vec![
            (
                Schedule::parse("lifecycle", &s.lifecycle_cron).map_err(anyhow::Error::msg)?,
                Job::Lifecycle,
            ),
            (
                Schedule::parse("inbox_prune", &s.inbox_prune_cron).map_err(anyhow::Error::msg)?,
                Job::InboxPrune,
            ),
        ];
        let sync = &state.config.sync;
        if sync.enabled
            && crate::members::tag_sync::sync_channels(&state.config)
                .next()
                .is_some()
        {
            jobs.push((
                Schedule::parse("registry_sync", &sync.cron).map_err(anyhow::Error::msg)?,
                Job::RegistrySync,
            ));
        }
        Ok(Self {
            state,
            plans,
            jobs,
            started_ms: now_ms,
            plans_read_at: std::sync::atomic::AtomicI64::new(i64::MIN / 2),
            worker: format!("{}-{:08x}", std::process::id(), rand::random::<u32>()),
        })
    }

    /// Claims and runs every tick due at `now_ms`; returns the names of the jobs this process ran.
    pub async fn run_due(&self, now_ms: i64) -> Vec<String> {
        let tz = self.state.config.timezone();
        let window = self.state.config.scheduler.missed_window_secs * 1000;
        let mut ran = Vec::new();
        // Plans created through the API appear (and go) without a restart.
        let last = self
            .plans_read_at
            .load(std::sync::atomic::Ordering::Relaxed);
        if now_ms - last >= PLAN_RELOAD_MS || now_ms < last {
            self.plans_read_at
                .store(now_ms, std::sync::atomic::Ordering::Relaxed);
            if let Err(e) = self.plans.reload().await {
                tracing::warn!(error = %e, "recall plans not re-read");
            }
        }
        let plan_jobs: Vec<(Schedule, Job)> = self
            .plans
            .all()
            .into_iter()
            .map(|p| (p.schedule.clone(), Job::Recall(p)))
            .collect();
        for (schedule, job) in self.jobs.iter().chain(plan_jobs.iter()) {
            let due = claim_due(
                &self.state.store,
                schedule,
                tz,
                now_ms,
                window,
                self.started_ms,
                &self.worker,
            )
            .await;
            let scheduled_for = match due {
                Ok(Due::Run { scheduled_for }) => scheduled_for,
                Ok(_) => continue,
                Err(e) => {
                    tracing::warn!(schedule = %schedule.name, error = %e, "tick claim failed");
                    continue;
                }
            };
            let outcome = match self.run_job(job, now_ms).await {
                Ok(()) => "done",
                Err(e) => {
                    tracing::warn!(schedule = %schedule.name, error = %e, "scheduled job failed");
                    "failed"
                }
            };
            let finished = self.state.ingress.clock().now_ms();
            if let Err(e) = self
                .state
                .store
                .finish_tick(&schedule.name, scheduled_for, finished, outcome)
                .await
            {
                tracing::warn!(schedule = %schedule.name, error = %e, "tick not marked finished");
            }
            ran.push(schedule.name.clone());
        }
        ran
    }

    async fn run_job(&self, job: &Job, now_ms: i64) -> anyhow::Result<()> {
        match job {
            Job::Lifecycle => super::jobs::maintenance(&self.state, now_ms).await,
            Job::InboxPrune => {
                let keep = self.state.config.scheduler.inbox_retention_hours.max(24) * 3_600_000;
                let n = self.state.store.prune_inbox(now_ms - keep).await?;
                if n > 0 {
                    tracing::info!(rows = n, "processed inbox rows pruned");
                }
                Ok(())
            }
            Job::RegistrySync => {
                let setup = crate::members::sync::SyncSetup {
                    outbox: &self.state.outbox,
                    store: &self.state.store,
                    clock: self.state.ingress.clock().clone(),
                    config: &self.state.config,
                    progress: &|_, _| {},
                };
                let cfg = &self.state.config.sync;
                let what = crate::members::sync::configured_kinds(cfg);
                let reports =
                    crate::members::sync::sync_channels(&setup, &cfg.channels, &what).await?;
                for r in &reports {
                    for k in &r.kinds {
                        let t = k.tally;
                        tracing::info!(channel = %r.channel_id, what = k.what.as_str(), created = t.created,
                            updated = t.updated, unchanged = t.unchanged, gone = t.gone, errors = t.errors,
                            stopped = k.stopped.as_deref().unwrap_or(""), "registry sync done");
                    }
                }
                super::jobs::maintenance(&self.state, self.state.ingress.clock().now_ms()).await
            }
            Job::Recall(plan) => {
                let report = recall::run(&self.plans.ctx, plan, now_ms, false).await?;
                tracing::info!(
                    plan = plan.id(),
                    eligible = report.eligible,
                    touched = report.touched,
                    held_out = report.held_out,
                    outside_hours = report.outside_send_hours,
                    "recall plan ran"
                );
                Ok(())
            }
        }
    }

    /// Checks every second until `shutdown`.
    pub fn spawn(self, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    () = shutdown.cancelled() => return,
                }
                let now = self.state.ingress.clock().now_ms();
                self.run_due(now).await;
            }
        })
    }
}
