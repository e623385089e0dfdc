//! The chat side of points: `签到`, `补签`, `积分`, `排行榜 [period]`, `商城`, `兑换 <item>`.

use std::sync::Arc;

use minijinja::context;

use super::makeup::{make_up_tx, MakeupOutcome, MakeupRefusal, MakeupRequest};
use super::redemption::{redeem_tx, RedeemOutcome, RedeemRequest, Refusal};
use super::{leaderboard, sign_in_tx, summary, Period, SigninOutcome, SigninRequest};
use crate::bot::{BotContext, Handler, HandlerFuture, Outcome};
use crate::config::PointsConfig;
use crate::events::Event;
use crate::members::local_day;

/// A message the points handler answers, and what every answer needs of it.
struct Said<'a> {
    event: &'a Event,
    message: &'a crate::events::Message,
    /// The sender's display name (their id without one).
    name: String,
    /// The local day of the message.
    day: i32,
    group: Option<&'a str>,
}

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

    /// `兑换 定制贴纸` → `Some("定制贴纸")`; `兑换` alone → `Some("")`.
    fn redeem_arg<'t>(&self, text: &'t str) -> Option<&'t str> {
        let rest = text.strip_prefix(self.config.redeem_keyword.as_str())?;
        (rest.is_empty() || rest.starts_with(char::is_whitespace)).then(|| rest.trim())
    }

    /// `排行榜` or `排行榜 本周` → the argument after the keyword.
    fn leaderboard_arg<'t>(&self, text: &'t str) -> Option<&'t str> {
        self.config.leaderboard_keywords.iter().find_map(|k| {
            let rest = text.strip_prefix(k.as_str())?;
            (rest.is_empty() || rest.starts_with(char::is_whitespace)).then(|| rest.trim())
        })
    }

    /// `签到`: once per local day, with streak, rank and level.
    async fn sign_in(&self, ctx: &BotContext, said: &Said<'_>) -> anyhow::Result<String> {
        let event = said.event;
        let message = said.message;
        let day = said.day;
        let group = said.group;
        let name = said.name.clone();
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
            .run_batched(move |tx| {
                let (config, req) = (Arc::clone(&config), req.clone());
                Box::pin(async move { sign_in_tx(tx, &config, &req).await })
            })
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
        Ok(reply)
    }

    /// `积分`: balance, level, streak and rank.
    async fn balance(&self, ctx: &BotContext, said: &Said<'_>) -> anyhow::Result<String> {
        let event = said.event;
        let message = said.message;
        let day = said.day;
        let name = said.name.clone();
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
        Ok(reply)
    }

    /// `商城`: the catalog.
    async fn shop(&self, ctx: &BotContext) -> anyhow::Result<String> {
        let items = ctx.store.shop_items().await?;
        Ok(ctx.templates.render("replies/shop", context! { items })?)
    }

    /// `兑换 <名称>`: points and stock taken in one transaction, or why not.
    async fn redeem(
        &self,
        ctx: &BotContext,
        said: &Said<'_>,
        item_name: &str,
    ) -> anyhow::Result<String> {
        let event = said.event;
        let message = said.message;
        let day = said.day;
        let name = said.name.clone();
        if item_name.is_empty() {
            return Ok(ctx
                .templates
                .render("replies/redeem_refused", context! { reason => "usage" })?);
        }
        let req = RedeemRequest {
            scope: event.scope.clone(),
            user_id: message.sender.id.clone(),
            name: message.sender.name.clone(),
            item_name: item_name.to_owned(),
            source_key: format!("redeem:{}:{}", event.channel_id, event.dedupe_key),
            day,
            now_ms: ctx.clock.now_ms(),
        };
        let outcome = ctx
            .writer
            .run_batched(move |tx| {
                let req = req.clone();
                Box::pin(async move { redeem_tx(tx, &req).await })
            })
            .await??;
        let item = item_name;
        let reply = match outcome {
            RedeemOutcome::Ordered {
                order_id,
                item,
                balance,
            } => ctx.templates.render(
                "replies/redeem_ok",
                context! { name, card => item.is_makeup_card(), item => item.name, cost => item.cost, balance, order_id },
            )?,
            RedeemOutcome::AlreadyPlaced { order_id } => ctx
                .templates
                .render("replies/redeem_again", context! { order_id })?,
            RedeemOutcome::Refused(refusal) => {
                let vars = match refusal {
                    Refusal::UnknownItem => context! { reason => "unknown", item },
                    Refusal::Disabled => context! { reason => "disabled", item },
                    Refusal::NotEnoughPoints { short, balance } => {
                        context! { reason => "short", name, item, short, balance }
                    }
                    Refusal::OutOfStock => context! { reason => "stock", item },
                    Refusal::LimitReached { limit } => {
                        context! { reason => "limit", item, limit }
                    }
                };
                ctx.templates.render("replies/redeem_refused", vars)?
            }
        };
        Ok(reply)
    }

    /// `补签`: a make-up card spent on yesterday.
    async fn make_up(&self, ctx: &BotContext, said: &Said<'_>) -> anyhow::Result<String> {
        let event = said.event;
        let message = said.message;
        let day = said.day;
        let name = said.name.clone();
        let req = MakeupRequest {
            scope: event.scope.clone(),
            user_id: message.sender.id.clone(),
            name: message.sender.name.clone(),
            today: day,
            now_ms: ctx.clock.now_ms(),
        };
        let outcome = ctx
            .writer
            .run_batched(move |tx| {
                let req = req.clone();
                Box::pin(async move { make_up_tx(tx, &req).await })
            })
            .await??;
        let reply = match outcome {
            MakeupOutcome::Repaired {
                day,
                streak,
                cards_left,
            } => {
                let day = format!("{}-{:02}-{:02}", day / 10_000, (day / 100) % 100, day % 100);
                ctx.templates.render(
                    "replies/makeup_ok",
                    context! { name, day, streak, cards_left },
                )?
            }
            MakeupOutcome::Refused(refusal) => {
                let reason = match refusal {
                    MakeupRefusal::NotNeeded => "not_needed",
                    MakeupRefusal::NothingToRepair => "nothing",
                    MakeupRefusal::NoCard => "no_card",
                };
                ctx.templates
                    .render("replies/makeup_refused", context! { name, reason })?
            }
        };
        Ok(reply)
    }

    /// `排行榜 [period]`: in the group when said in one, else overall.
    async fn leaderboard(
        &self,
        ctx: &BotContext,
        said: &Said<'_>,
        arg: &str,
    ) -> anyhow::Result<String> {
        let event = said.event;
        let day = said.day;
        let group = said.group;
        let Some(period) = Period::parse(arg) else {
            return Ok(ctx
                .templates
                .render("replies/leaderboard_usage", context! {})?);
        };
        let rows = leaderboard(&ctx.store, &event.scope, period, day, group).await?;
        let reply = ctx.templates.render(
            "replies/leaderboard",
            context! { period => period.label(), in_group => group.is_some(), rows },
        )?;
        Ok(reply)
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
            let said = Said {
                event,
                message,
                name: message
                    .sender
                    .name
                    .clone()
                    .unwrap_or_else(|| message.sender.id.clone()),
                // The day of the platform's message time in the community's zone, never the
                // server's.
                day: local_day(ctx.timezone, event.occurred_at),
                group: message.group.as_ref().map(|g| g.id.as_str()),
            };
            let config = &self.config;
            let reply = if Self::matches(&config.signin_keywords, text) {
                self.sign_in(ctx, &said).await?
            } else if Self::matches(&config.balance_keywords, text) {
                self.balance(ctx, &said).await?
            } else if Self::matches(&config.shop_keywords, text) {
                self.shop(ctx).await?
            } else if let Some(item_name) = self.redeem_arg(text) {
                self.redeem(ctx, &said, item_name).await?
            } else if Self::matches(&config.makeup_keywords, text) {
                self.make_up(ctx, &said).await?
            } else if let Some(arg) = self.leaderboard_arg(text) {
                self.leaderboard(ctx, &said, arg).await?
            } else {
                return Ok(Outcome::Continue);
            };
            Ok(Outcome::Reply(reply))
        })
    }
}
