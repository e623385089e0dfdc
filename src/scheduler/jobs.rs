//! The periodic jobs the scheduler runs: maintenance of every member (lifecycle stages, value
//! layers, churn risk, state tag rules), paged so a million members never sit in memory.

use crate::config::Config;
use crate::state::AppState;
use crate::store::Store;

/// Periodic maintenance (on the scheduler's `lifecycle_cron`): lifecycle stages, value layers,
/// churn risk and the state tag rules of every member.
pub async fn maintenance(state: &AppState, now: i64) -> anyhow::Result<()> {
    maintenance_in_windows(state, now, crate::store::windows::MEMBER_WINDOW).await
}

/// [`maintenance`], reading `window` members at a time.
pub async fn maintenance_in_windows(state: &AppState, now: i64, window: i64) -> anyhow::Result<()> {
    maintenance_of(&state.store, &state.config, now, window).await
}

/// Maintenance on `store` with `config` (also run after a registry sync, outside a server).
pub async fn maintenance_of(
    store: &Store,
    config: &Config,
    now: i64,
    window: i64,
) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let stages =
        crate::members::lifecycle::recompute(store, &config.lifecycle, now, window).await?;
    let tz = config.timezone();
    let days = (
        crate::members::local_day(tz, now / 1000 - 29 * 86_400),
        crate::members::local_day(tz, now / 1000),
    );
    let layers = &config.value_layers;
    let layers = crate::members::layers::recompute(store, layers, now, days, window).await?;
    let risk_tags = crate::recall::risk::recompute(store, config, now, window).await?;
    let rule_tags = apply_state_rules(store, config, now).await?;
    tracing::info!(
        stages,
        layers,
        risk_tags,
        rule_tags,
        elapsed_ms = started.elapsed().as_millis(),
        "maintenance done (changes)"
    );
    Ok(())
}

/// Applies the state tag rules (configured and stored) to every member of every scope.
pub async fn apply_state_rules(
    store: &Store,
    config: &Config,
    now_ms: i64,
) -> Result<usize, crate::store::StoreError> {
    use crate::members::state_rules;
    let all = state_rules::all_rules(&config.tag_rules, store).await?;
    if !all.iter().any(|r| r.trigger.is_state()) {
        return Ok(0);
    }
    let ctx = state_rules::StateContext {
        levels: &config.points.levels,
        now_ms,
        timezone: config.timezone(),
    };
    let mut changed = 0;
    for scope in store.member_scopes().await? {
        changed += state_rules::apply(store, all.iter(), &scope, None, &ctx).await?;
    }
    Ok(changed)
}
