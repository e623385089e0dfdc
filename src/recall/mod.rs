//! Lapsed-member recall (流失召回): plans touch eligible members on a schedule through the
//! outbox, hold out a deterministic control group, and measure recall against it.
//!
//! A member's *cycle* is their current absence, identified by the time of their last activity:
//! a member who comes back and lapses again starts a new cycle with fresh touches. Every touch
//! (and every held-out would-be touch) is a row unique per (plan, member, cycle, touch), and its
//! message an outbox row keyed the same way, so a re-run, a crash or a second replica never sends
//! a touch twice.

pub mod optout;
pub mod risk;
pub mod stats;

use std::sync::Arc;

use chrono::Timelike as _;
use minijinja::context;
use sha2::{Digest as _, Sha256};

use crate::channels::Channels;
use crate::config::{ChannelKind, Config, RecallPlanConfig};
use crate::members::local_day;
use crate::members::segment::{self, Expr, SegmentContext};
use crate::outbox::{self, Envelope, Outbound, PRIORITY_NORMAL};
use crate::points::ops::{self, Adjustment};
use crate::schedule::Schedule;
use crate::store::recall::{self as rows, Candidate, NewTouch};
use crate::store::stream::next_batch;
use crate::store::{Store, StoreError};

const DAY_MS: i64 = 86_400_000;
/// Candidates are read, and their touches written, this many per transaction.
const CHUNK: usize = 1000;

/// A plan from the configuration, checked and compiled.
pub struct Plan {
    pub config: RecallPlanConfig,
    pub schedule: Schedule,
    segment: Expr,
}

impl Plan {
    /// Compiles a plan; the error names what is wrong.
    pub fn compile(c: &RecallPlanConfig) -> Result<Self, String> {
        let schedule = Schedule::parse(&format!("recall:{}", c.id), &c.cron)?;
        let segment = segment::parse(&c.segment).map_err(|e| format!("segment: {e}"))?;
        if c.touches.is_empty() {
            return Err("a plan needs at least one touch".into());
        }
        if c.touches
            .windows(2)
            .any(|w| w[1].after_days <= w[0].after_days)
        {
            return Err("touches must come in increasing after_days".into());
        }
        let sample = context! {
            name => "会员昵称会员昵称会员昵称会员昵称", days_away => 30, balance => 1000,
            streak_lost => 12, level => "核心", faq_top => vec!["怎么签到", "积分怎么用", "怎么兑换"],
            bonus => 100,
        };
        for (i, t) in c.touches.iter().enumerate() {
            crate::templates::sandbox::shared()
                .check(&t.template, &sample)
                .map_err(|e| format!("touches[{i}].template: {e}"))?;
        }
        Ok(Self {
            config: c.clone(),
            schedule,
            segment,
        })
    }

    pub fn id(&self) -> &str {
        &self.config.id
    }

    /// Whether the member is in this plan's control group (stable across runs and cycles).
    pub fn holds_out(&self, member_id: i64) -> bool {
        let digest = Sha256::digest(format!("{}:{member_id}", self.config.id).as_bytes());
        let mut first = [0_u8; 8];
        first.copy_from_slice(&digest[..8]);
        u64::from_be_bytes(first) % 100 < u64::from(self.config.holdout_percent)
    }
}

/// What the plans need from the application.
#[derive(Clone)]
pub struct RecallContext {
    pub store: Store,
    pub config: Arc<Config>,
    pub channels: Arc<Channels>,
    pub outbox: Option<crate::outbox::Outbox>,
}

/// What a run did (or, dry, would do).
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct RunReport {
    pub plan: String,
    pub dry_run: bool,
    /// Members due a touch now, touched or held out.
    pub eligible: usize,
    pub touched: usize,
    pub held_out: usize,
    /// In the segment but waiting: cooldown, or not idle long enough for their next touch.
    pub waiting: usize,
    /// Already had every touch in this absence.
    pub exhausted: usize,
    /// Touches recorded before (a re-run of the same tick).
    pub already_done: usize,
    pub bonuses_credited: usize,
    /// Up to five rendered messages: (user id, text).
    pub samples: Vec<(String, String)>,
    /// Members held out, up to twenty (user ids).
    pub held_out_sample: Vec<String>,
    /// Set when the run was outside the plan's send hours and sent nothing.
    pub outside_send_hours: bool,
    /// Touches whose template failed for the member: dead letters with the reason.
    pub unrendered: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum RecallError {
    #[error("{0}")]
    Plan(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

struct Decided {
    candidate: Candidate,
    touch: usize,
    held_out: bool,
    /// The message, or why its template failed for this member (held out: none).
    text: Option<Result<String, String>>,
}

/// Runs (or previews, with `dry_run`) one plan at `now_ms`.
pub async fn run(
    ctx: &RecallContext,
    plan: &Plan,
    now_ms: i64,
    dry_run: bool,
) -> Result<RunReport, RecallError> {
    run_in_batches(ctx, plan, now_ms, dry_run, CHUNK).await
}

/// [`run`], reading and writing `batch` candidates at a time.
pub async fn run_in_batches(
    ctx: &RecallContext,
    plan: &Plan,
    now_ms: i64,
    dry_run: bool,
    batch: usize,
) -> Result<RunReport, RecallError> {
    let c = &plan.config;
    let tz = ctx.config.timezone();
    let mut report = RunReport {
        plan: c.id.clone(),
        dry_run,
        ..RunReport::default()
    };
    let hour = chrono::DateTime::from_timestamp_millis(now_ms)
        .unwrap_or_default()
        .with_timezone(&tz)
        .hour();
    if !(c.send_hours[0]..c.send_hours[1]).contains(&hour) && !dry_run {
        report.outside_send_hours = true;
        return Ok(report);
    }
    let channel = ctx
        .channels
        .get(&c.channel)
        .ok_or_else(|| RecallError::Plan(format!("channel `{}` is not enabled", c.channel)))?;
    let seg_ctx = SegmentContext {
        accounts: crate::members::segment::AccountSql::for_backend(ctx.store.backend()),
        now_ms,
        levels: &ctx.config.points.levels,
    };
    let compiled = segment::to_sql(&plan.segment, &seg_ctx, 2)
        .map_err(|e| RecallError::Plan(format!("segment: {e}")))?;
    let first_after = c.touches.iter().map(|t| t.after_days).min().unwrap_or(0);
    let faq_top = ctx.store.faq_top_questions(3).await?;
    let sql = rows::candidate_sql(&compiled);
    let mut candidates = Some(ctx.store.recall_candidates(
        &sql,
        &channel.scope,
        &c.id,
        &compiled,
        now_ms - first_after * DAY_MS,
    ));
    let (mut recorded, mut fresh) = (0, 0);
    // One batch of candidates at a time: decided, then written before the next is read, so a
    // run over a lapsed million holds a thousand.
    while candidates.is_some() {
        let read = next_batch(&mut candidates, batch.max(1)).await?;
        let decided = decide(plan, read, now_ms, &faq_top, ctx, &mut report)?;
        if !dry_run && !decided.is_empty() {
            recorded += decided.len();
            fresh += record(ctx, plan, channel.kind, &decided, now_ms, tz).await?;
        }
    }
    if dry_run {
        return Ok(report);
    }
    report.already_done = recorded - fresh;
    report.bonuses_credited = settle_bonuses(ctx, plan, now_ms, tz).await?;
    if let Some(outbox) = &ctx.outbox {
        outbox.wake();
    }
    Ok(report)
}

/// Which of `candidates` are due which touch, held out or with their rendered message; counts
/// every candidate in `report` and keeps its samples.
fn decide(
    plan: &Plan,
    candidates: Vec<Candidate>,
    now_ms: i64,
    faq_top: &[String],
    ctx: &RecallContext,
    report: &mut RunReport,
) -> Result<Vec<Decided>, RecallError> {
    let c = &plan.config;
    let mut decided = Vec::new();
    for cand in candidates {
        let k = usize::try_from(cand.touches).unwrap_or(usize::MAX);
        if cand.touches >= c.max_touches || k >= c.touches.len() {
            report.exhausted += 1;
            continue;
        }
        let touch = &c.touches[k];
        let idle_days = (now_ms - cand.last_active_at) / DAY_MS;
        let cooling = cand
            .last_touch_at
            .is_some_and(|t| now_ms - t < c.cooldown_days * DAY_MS);
        if idle_days < touch.after_days || cooling {
            report.waiting += 1;
            continue;
        }
        report.eligible += 1;
        let held_out = plan.holds_out(cand.member_id);
        let text = if held_out {
            report.held_out += 1;
            if report.held_out_sample.len() < 20 {
                report.held_out_sample.push(cand.user_id.clone());
            }
            None
        } else {
            match render(plan, k, &cand, idle_days, faq_top, ctx) {
                Ok(text) => {
                    report.touched += 1;
                    if report.samples.len() < 5 {
                        report.samples.push((cand.user_id.clone(), text.clone()));
                    }
                    Some(Ok(text))
                }
                Err(reason) => {
                    report.unrendered += 1;
                    Some(Err(reason))
                }
            }
        };
        decided.push(Decided {
            candidate: cand,
            touch: k,
            held_out,
            text,
        });
    }
    Ok(decided)
}

fn render(
    plan: &Plan,
    k: usize,
    cand: &Candidate,
    idle_days: i64,
    faq_top: &[String],
    ctx: &RecallContext,
) -> Result<String, String> {
    let level = ctx
        .config
        .points
        .levels
        .iter()
        .rev()
        .find(|l| cand.total_earned >= l.min_points)
        .map(|l| l.name.clone())
        .unwrap_or_default();
    let vars = context! {
            name => cand.name.as_deref().unwrap_or("朋友"),
            days_away => idle_days,
            balance => cand.balance,
            streak_lost => cand.streak,
            level => level,
            faq_top => faq_top,
            bonus => plan.config.touches[k].bonus_points,
    };
    crate::templates::sandbox::shared()
        .render(&plan.config.touches[k].template, &vars)
        .map(|s| s.trim().to_owned())
        .map_err(|e| format!("touches[{k}].template: {e}"))
}

/// Writes a batch of touches and their outbox rows in one transaction; returns how many were new.
async fn record(
    ctx: &RecallContext,
    plan: &Plan,
    kind: ChannelKind,
    decided: &[Decided],
    now_ms: i64,
    tz: chrono_tz::Tz,
) -> Result<usize, RecallError> {
    let c = &plan.config;
    let day = |ms: i64| local_day(tz, ms / 1000);
    let (today, window_end) = (day(now_ms), day(now_ms + c.recall_window_days * DAY_MS));
    let mut fresh = 0;
    let mut tx = ctx.store.begin_write().await?;
    for d in decided {
        let t = &c.touches[d.touch];
        let touch = NewTouch {
            plan: &c.id,
            member_id: d.candidate.member_id,
            cycle: d.candidate.last_active_at,
            touch: i64::try_from(d.touch).unwrap_or(0) + 1,
            held_out: d.held_out,
            touched_at: now_ms,
            touch_day: today,
            window_end_day: window_end,
            bonus_points: if d.held_out { 0 } else { t.bonus_points },
            bonus_end_day: (t.bonus_points > 0).then(|| day(now_ms + t.bonus_within_days * DAY_MS)),
        };
        let idem_key = format!(
            "recall:{}:{}:{}:{}",
            c.id, touch.touch, touch.member_id, touch.cycle
        );
        // A message that could not be made is a dead letter, and no touch: the member was not
        // reached, so neither the plan's counts nor its cooldown take them.
        if let Some(Err(reason)) = &d.text {
            let user = &d.candidate.user_id;
            outbox::enqueue_unrendered(&mut tx, &c.channel, &idem_key, user, reason, now_ms)
                .await
                .map_err(|e| RecallError::Plan(e.to_string()))?;
            continue;
        }
        if !rows::insert_touch(&mut tx, &touch).await? {
            continue;
        }
        fresh += 1;
        let Some(Ok(text)) = &d.text else { continue };
        let user = d.candidate.user_id.clone();
        let message = match kind {
            ChannelKind::WecomRobot => Outbound::Robot {
                message: Outbound::text(text.clone()),
                mentions: vec![user],
            },
            ChannelKind::WecomApp => Outbound::App {
                to: vec![user],
                message: Outbound::text(text.clone()),
            },
            ChannelKind::WechatMp => Outbound::Mp {
                openid: user,
                message: Outbound::text(text.clone()),
            },
            ChannelKind::Gateway | ChannelKind::WecomAibot => continue,
        };
        let env = Envelope {
            idem_key,
            channel_id: c.channel.clone(),
            message,
            priority: PRIORITY_NORMAL,
            not_before_ms: now_ms,
            // A recall message a day late is still fine; two days late it is not.
            expires_at_ms: Some(now_ms + 2 * DAY_MS),
        };
        outbox::enqueue(&mut tx, &ctx.config, &env, now_ms)
            .await
            .map_err(|e| RecallError::Plan(e.to_string()))?;
    }
    tx.commit().await?;
    Ok(fresh)
}

/// Credits the bonus of every touch whose member came back in time, once (ledger key per touch).
pub async fn settle_bonuses(
    ctx: &RecallContext,
    plan: &Plan,
    now_ms: i64,
    tz: chrono_tz::Tz,
) -> Result<usize, RecallError> {
    let due = ctx.store.due_recall_bonuses(plan.id()).await?;
    let day = local_day(tz, now_ms / 1000);
    let mut credited = 0;
    for (id, scope, user, points) in due {
        let mut tx = ctx.store.begin_write().await?;
        let request = format!("recall_bonus:{id}");
        let adjustment = Adjustment {
            scope: &scope,
            user_id: &user,
            delta: points,
            reason: "召回奖励",
            operator: "recall",
            request_id: &request,
            day,
            now_ms,
        };
        ops::adjust_tx(&mut tx, &adjustment).await?;
        rows::mark_bonus_credited(&mut tx, id).await?;
        tx.commit().await?;
        credited += 1;
    }
    Ok(credited)
}

/// The plans (from the configuration and from the API) with what they run against. Cheap to
/// share behind an `Arc`.
pub struct Plans {
    pub ctx: RecallContext,
    configured: Vec<Arc<Plan>>,
    stored: std::sync::RwLock<Vec<Arc<Plan>>>,
}

impl Plans {
    /// Compiles the enabled configured plans (validation already refused bad ones); stored plans
    /// come with [`Plans::reload`].
    pub fn new(ctx: RecallContext) -> Self {
        let configured = ctx
            .config
            .recall
            .plans
            .iter()
            .filter(|p| p.enabled)
            .filter_map(|p| Plan::compile(p).ok().map(Arc::new))
            .collect();
        Self {
            ctx,
            configured,
            stored: std::sync::RwLock::new(Vec::new()),
        }
    }

    /// Every enabled plan: configured first, then stored.
    pub fn all(&self) -> Vec<Arc<Plan>> {
        let stored = self.stored.read().unwrap_or_else(|p| p.into_inner());
        self.configured
            .iter()
            .chain(stored.iter())
            .cloned()
            .collect()
    }

    pub fn get(&self, id: &str) -> Option<Arc<Plan>> {
        self.all().into_iter().find(|p| p.id() == id)
    }

    /// Whether the plan is defined in the configuration (the API cannot change it).
    pub fn is_configured(&self, id: &str) -> bool {
        self.ctx.config.recall.plans.iter().any(|p| p.id == id)
    }

    /// Re-reads the plans stored through the API; one that no longer checks out is skipped.
    pub async fn reload(&self) -> Result<(), StoreError> {
        let mut plans = Vec::new();
        for json in self.ctx.store.stored_plans().await? {
            let parsed: Result<RecallPlanConfig, String> =
                serde_json::from_str(&json).map_err(|e| e.to_string());
            match parsed.and_then(|c| {
                check_plan(&self.ctx.config, &c)
                    .into_iter()
                    .next()
                    .map_or(Ok(c), |(_, e)| Err(e))
            }) {
                Ok(c) if c.enabled => {
                    if let Ok(plan) = Plan::compile(&c) {
                        plans.push(Arc::new(plan));
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "stored recall plan skipped"),
            }
        }
        *self.stored.write().unwrap_or_else(|p| p.into_inner()) = plans;
        Ok(())
    }
}

/// The configuration check of recall: every plan, and no id twice.
pub fn check_config(config: &Config) -> Vec<(String, String)> {
    let mut issues = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, p) in config.recall.plans.iter().enumerate() {
        let key = format!("recall.plans[{i}]");
        if !seen.insert(p.id.as_str()) {
            issues.push((format!("{key}.id"), format!("`{}` is used twice", p.id)));
        }
        for (field, reason) in check_plan(config, p) {
            issues.push((format!("{key}.{field}"), reason));
        }
    }
    issues
}

/// What is wrong with a plan, as (field, reason) pairs; empty when it is fine.
pub fn check_plan(config: &Config, p: &RecallPlanConfig) -> Vec<(&'static str, String)> {
    let mut bad = Vec::new();
    if p.id.is_empty()
        || !p
            .id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        bad.push(("id", format!("`{}`: use a-z, 0-9, `_` and `-`", p.id)));
    }
    match config.channels.get(&p.channel).map(|c| c.kind) {
        None => bad.push(("channel", format!("no channel `{}`", p.channel))),
        Some(kind @ (ChannelKind::Gateway | ChannelKind::WecomAibot)) => bad.push((
            "channel",
            format!("{} channels cannot send recall touches yet", kind.as_str()),
        )),
        Some(_) => {}
    }
    if p.holdout_percent > 50 {
        bad.push(("holdout_percent", "must be between 0 and 50".into()));
    }
    if p.recall_window_days < 1 || p.cooldown_days < 0 || p.max_touches < 1 {
        bad.push((
            "recall_window_days",
            "recall_window_days and max_touches must be at least 1, cooldown_days not negative"
                .into(),
        ));
    }
    if p.send_hours[0] >= p.send_hours[1] || p.send_hours[1] > 24 {
        bad.push((
            "send_hours",
            "must be [from, to) with 0 ≤ from < to ≤ 24".into(),
        ));
    }
    if let Err(e) = Plan::compile(p) {
        let field = if e.contains("cron") {
            "cron"
        } else if e.contains("segment") {
            "segment"
        } else {
            "touches"
        };
        bad.push((field, e));
    }
    bad
}

#[cfg(test)]
mod tests;
