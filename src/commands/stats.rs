//! `/stats`: active and new members, sign-ins, points issued, FAQ answered and unanswered.

use chrono::TimeZone as _;
use minijinja::context;

use super::parse::Value;
use super::run::{record, render, Call};
use crate::bot::BotContext;
use crate::points::rules;
use crate::store::BoxFuture;

/// `/stats [today|7d|30d]`: whole local days, today included, at most 90.
pub(super) fn stats<'a>(
    ctx: &'a BotContext,
    call: &'a Call<'a>,
) -> BoxFuture<'a, anyhow::Result<String>> {
    Box::pin(async move {
        let [period] = call.args() else {
            return Err(call.mismatch());
        };
        let scope = call.scope.clone();
        let templates = call.templates.clone();
        let today = call.today;
        let audit = |outcome: &str, reply: &str| call.audit(outcome, reply);
        // Whole local days, today included, at most 90.
        let days: i64 = match period {
            Value::Duration(secs) => ((secs + 86_399) / 86_400).clamp(1, 90),
            _ => 1,
        };
        let today_date = rules::day_to_date(today).unwrap_or_default();
        let first = today_date - chrono::Duration::days(days - 1);
        let from = crate::points::to_day(first);
        let since_ms = first
            .and_hms_opt(0, 0, 0)
            .and_then(|t| ctx.timezone.from_local_datetime(&t).earliest())
            .map_or(0, |t| t.timestamp_millis());
        let stats = ctx.store.stats(&scope, from, today, since_ms).await?;
        let reply = render(&templates, "commands/stats", context! { days, stats })?;
        record(ctx, audit("ok", &reply)).await?;
        Ok(reply)
    })
}
