//! The chat side of points: `签到`, `积分`, `排行榜 [period]`.

use std::sync::Arc;

use minijinja::context;

use super::{leaderboard, sign_in, summary, Period, SigninOutcome, SigninRequest};
use crate::bot::{BotContext, Handler, HandlerFuture, Outcome};
use crate::config::PointsConfig;
use crate::events::Event;
use crate::members::local_day;

pub struct PointsHandler {
    config: Arc<PointsConfig>,
}

impl PointsHandler {
    pub fn new(config: PointsConfig) -> Self {
        Self {
            config: Arc::new(config),
        }
    }

    fn matches(keywords: &[String], text: &str) -> bool {
        keywords.iter().any(|k| k == text)
    }

    /// `排行榜` or `排行榜 本周` → the argument after the keyword.
    fn leaderboard_arg<'t>(&self, text: &'t str) -> Option<&'t str> {
        self.config.leaderboard_keywords.iter().find_map(|k| {
            let rest = text.strip_prefix(k.as_str())?;
            (rest.is_empty() || rest.starts_with(char::is_whitespace)).then(|| rest.trim())
        })
    }
}

impl Handler for PointsHandler {
    fn name(&self) -> &'static str {
        "points"
    }

    fn handle<'a>(&'a self, ctx: &'a BotContext, event: &'a Event) -> HandlerFuture<'a> {
        Box::pin(async move {
            let Some(message) = event.message() else {
                return Ok(Outcome::Continue);
            };
            let text = message.text.trim();
            let name = message
                .sender
                .name
                .clone()
                .unwrap_or_else(|| message.sender.id.clone());
            // The day of the platform's message time in the community's zone, never the server's.
            let day = local_day(ctx.timezone, event.occurred_at);
            let group = message.group.as_ref().map(|g| g.id.as_str());

            if Self::matches(&self.config.signin_keywords, text) {
                let req = SigninRequest {
                    scope: event.scope.clone(),
                    user_id: message.sender.id.clone(),
                    name: message.sender.name.clone(),
                    group_id: group.map(str::to_owned),
                    day,
                    now_ms: ctx.clock.now_ms(),
                };
                let config = Arc::clone(&self.config);
                let outcome = ctx
                    .writer
                    .run(move |store| async move { sign_in(&store, &config, &req).await })
                    .await??;
                let reply = match outcome {
                    SigninOutcome::Signed { granted, reward, capped, streak, rank, balance, level, level_up } => ctx.templates.render(
                        "replies/signin_ok",
                        context! { name, granted, streak_bonus => reward.streak_bonus, random_bonus => reward.random_bonus,
                                   capped, streak, rank, balance, level, level_up },
                    )?,
                    SigninOutcome::Already { rank, streak, balance, level } => {
                        ctx.templates.render("replies/signin_already", context! { name, rank, streak, balance, level })?
                    }
                };
                return Ok(Outcome::Reply(reply));
            }
            if Self::matches(&self.config.balance_keywords, text) {
                let s = summary(
                    &ctx.store,
                    &self.config,
                    &event.scope,
                    &message.sender.id,
                    day,
                )
                .await?;
                let reply = ctx.templates.render(
                    "replies/points_balance",
                    context! { name, balance => s.balance, total_earned => s.total_earned, level => s.level,
                               next_level => s.next_level, to_next => s.to_next, streak => s.streak, rank => s.rank },
                )?;
                return Ok(Outcome::Reply(reply));
            }
            if let Some(arg) = self.leaderboard_arg(text) {
                let Some(period) = Period::parse(arg) else {
                    return Ok(Outcome::Reply(
                        ctx.templates
                            .render("replies/leaderboard_usage", context! {})?,
                    ));
                };
                let rows = leaderboard(&ctx.store, &event.scope, period, day, group).await?;
                let reply = ctx.templates.render(
                    "replies/leaderboard",
                    context! { period => period.label(), in_group => group.is_some(), rows },
                )?;
                return Ok(Outcome::Reply(reply));
            }
            Ok(Outcome::Continue)
        })
    }
}
