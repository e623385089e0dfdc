//! Checks that need more than a type: addresses parse, keys decode, each channel has exactly
//! the keys its kind uses. Returns `(key path, reason)` pairs; the loader adds the source.

use super::Config;

pub(super) fn validate(config: &Config) -> Vec<(String, String)> {
    let mut issues = Vec::new();
    for check in [
        validate_server,
        validate_database,
        validate_community_and_log,
        validate_commands,
        validate_members,
        validate_faq,
        validate_points,
        validate_ops_api,
    ] {
        check(config, &mut issues);
    }
    for (id, channel) in &config.channels {
        issues.extend(super::channel_checks::validate_channel(id, channel));
    }
    validate_outbound(config, &mut issues);
    validate_schedules(config, &mut issues);
    validate_limits(config, &mut issues);
    validate_staff(config, &mut issues);
    validate_ops_templates(config, &mut issues);
    issues
}

/// The listener, body limit, replay window, handler budget and sweeper.
fn validate_server(config: &Config, issues: &mut Vec<(String, String)>) {
    let mut bad = |key: &str, reason: String| issues.push((key.to_owned(), reason));
    if config
        .server
        .listen
        .parse::<std::net::SocketAddr>()
        .is_err()
    {
        bad(
            "server.listen",
            format!(
                "`{}` is not an address like 127.0.0.1:8080",
                config.server.listen
            ),
        );
    }
    if !(1024..=16 * 1024 * 1024).contains(&config.server.body_limit_bytes) {
        bad(
            "server.body_limit_bytes",
            "must be between 1024 and 16777216".into(),
        );
    }
    if config.server.replay_window_secs < 0 {
        bad(
            "server.replay_window_secs",
            "must be 0 (off) or a positive number of seconds".into(),
        );
    }
    if !(50..=4500).contains(&config.server.handler_budget_ms) {
        bad(
            "server.handler_budget_ms",
            "must be between 50 and 4500 (WeCom waits 5 s)".into(),
        );
    }
    if config.server.sweep_after_secs < 5 {
        bad("server.sweep_after_secs", "must be at least 5".into());
    }
}

/// The database URL, pool, batches and SQLite durability.
fn validate_database(config: &Config, issues: &mut Vec<(String, String)>) {
    let mut bad = |key: &str, reason: String| issues.push((key.to_owned(), reason));
    let url = config.database.url.expose();
    if !(url.starts_with("sqlite:")
        || url.starts_with("postgres://")
        || url.starts_with("postgresql://"))
    {
        bad(
            "database.url",
            "must start with sqlite:, postgres:// or postgresql://".into(),
        );
    }
    if config.database.max_connections < 2 {
        // The periodic jobs read on one connection while they write on another.
        bad("database.max_connections", "must be at least 2".into());
    }
    if !(1..=4096).contains(&config.database.batch_max) {
        bad("database.batch_max", "must be between 1 and 4096".into());
    }
    if config.database.writers > 64 {
        bad("database.writers", "must be 0 (auto) to 64".into());
    }
    if !["normal", "full"].contains(&config.database.sqlite_synchronous.as_str()) {
        bad(
            "database.sqlite_synchronous",
            "must be `normal` or `full`".into(),
        );
    }
}

/// The time zone and the log settings.
fn validate_community_and_log(config: &Config, issues: &mut Vec<(String, String)>) {
    let mut bad = |key: &str, reason: String| issues.push((key.to_owned(), reason));
    if config.community.timezone.parse::<chrono_tz::Tz>().is_err() {
        bad(
            "community.timezone",
            format!(
                "`{}` is not an IANA time zone such as Asia/Shanghai",
                config.community.timezone
            ),
        );
    }
    if !["text", "json"].contains(&config.log.format.as_str()) {
        bad("log.format", "must be `text` or `json`".into());
    }
    if tracing_subscriber::EnvFilter::try_new(&config.log.level).is_err() {
        bad(
            "log.level",
            format!(
                "`{}` is not a log filter such as info or yunying=debug",
                config.log.level
            ),
        );
    }
}

/// The command prefix and the staff list.
fn validate_commands(config: &Config, issues: &mut Vec<(String, String)>) {
    let mut bad = |key: &str, reason: String| issues.push((key.to_owned(), reason));
    if config.commands.prefix.trim().is_empty() || config.commands.prefix.chars().count() > 3 {
        bad(
            "commands.prefix",
            "must be 1 to 3 characters, e.g. /".into(),
        );
    }
    for (i, s) in config.commands.staff.iter().enumerate() {
        if !matches!(s.role.as_str(), "admin" | "operator") {
            bad(
                &format!("commands.staff[{i}].role"),
                format!("`{}` is not admin or operator", s.role),
            );
        }
        if s.user.trim().is_empty() || s.scope.trim().is_empty() {
            bad(
                &format!("commands.staff[{i}]"),
                "scope and user must not be empty".into(),
            );
        }
    }
}

/// Lifecycle thresholds and value layers.
fn validate_members(config: &Config, issues: &mut Vec<(String, String)>) {
    let mut bad = |key: &str, reason: String| issues.push((key.to_owned(), reason));
    let life = &config.lifecycle;
    if life.new_days < 1 || life.silent_days < 1 || life.lapsed_days <= life.silent_days {
        bad(
            "lifecycle.lapsed_days",
            "need new_days ≥ 1, silent_days ≥ 1 and lapsed_days > silent_days".into(),
        );
    }

    let layers = &config.value_layers.layers;
    if layers.is_empty()
        || layers.windows(2).any(|w| w[0].min_score <= w[1].min_score)
        || layers.last().is_some_and(|l| l.min_score > 3)
    {
        bad(
            "value_layers.layers",
            "list layers from the highest min_score down; the last must start at 3 or lower".into(),
        );
    }
}

/// The FAQ thresholds and timers.
fn validate_faq(config: &Config, issues: &mut Vec<(String, String)>) {
    let mut bad = |key: &str, reason: String| issues.push((key.to_owned(), reason));
    let faq = &config.faq;
    if !(0.0..=1.0).contains(&faq.answer_threshold) || !(0.0..=1.0).contains(&faq.suggest_threshold)
    {
        bad(
            "faq.answer_threshold",
            "thresholds are confidences between 0 and 1".into(),
        );
    } else if faq.suggest_threshold > faq.answer_threshold {
        bad(
            "faq.suggest_threshold",
            format!(
                "must not be above faq.answer_threshold ({})",
                faq.answer_threshold
            ),
        );
    }
    if faq.group_cooldown_secs < 0 || faq.choice_ttl_secs <= 0 {
        bad(
            "faq.choice_ttl_secs",
            "times must be positive (group_cooldown_secs may be 0)".into(),
        );
    }
}

/// Sign-in points, levels and the reward catalog.
fn validate_points(config: &Config, issues: &mut Vec<(String, String)>) {
    let mut bad = |key: &str, reason: String| issues.push((key.to_owned(), reason));
    let points = &config.points;
    if points.signin_keywords.iter().any(|k| k.trim().is_empty()) {
        bad(
            "points.signin_keywords",
            "keywords must not be empty".into(),
        );
    }
    if points.base < 0
        || points.daily_cap < 0
        || points.random_bonus_max < 0
        || points.streak_cycle_days < 0
    {
        bad(
            "points",
            "base, daily_cap, random_bonus_max and streak_cycle_days must not be negative".into(),
        );
    }
    if points
        .streak_bonuses
        .iter()
        .any(|b| b.day < 1 || b.points < 0)
    {
        bad(
            "points.streak_bonuses",
            "each bonus needs day >= 1 and points >= 0".into(),
        );
    }
    if points.streak_cycle_days > 0
        && points
            .streak_bonuses
            .iter()
            .any(|b| b.day > points.streak_cycle_days)
    {
        bad(
            "points.streak_bonuses",
            "a bonus day beyond streak_cycle_days would never be paid".into(),
        );
    }
    if points.levels.is_empty() || points.levels[0].min_points != 0 {
        bad(
            "points.levels",
            "the first level must start at min_points = 0".into(),
        );
    }
    if points
        .levels
        .windows(2)
        .any(|w| w[1].min_points <= w[0].min_points)
    {
        bad(
            "points.levels",
            "min_points must increase from level to level".into(),
        );
    }

    for (i, item) in points.items.iter().enumerate() {
        if item.name.trim().is_empty() || item.name.contains(char::is_whitespace) {
            bad(
                &format!("points.items[{i}].name"),
                "item names are single words (members type `兑换 <name>`)".into(),
            );
        }
        if item.cost <= 0 || item.stock < 0 || item.per_member_limit < 0 {
            bad(
                &format!("points.items[{i}]"),
                "cost must be positive; stock and per_member_limit not negative".into(),
            );
        }
    }
    if points.redeem_keyword.trim().is_empty() {
        bad("points.redeem_keyword", "must not be empty".into());
    }
}

/// The ops API token.
fn validate_ops_api(config: &Config, issues: &mut Vec<(String, String)>) {
    let mut bad = |key: &str, reason: String| issues.push((key.to_owned(), reason));
    let token = config.ops_api.token.expose();
    if !token.is_empty() && token.len() < 16 {
        bad(
            "ops_api.token",
            "must be empty (API off) or at least 16 characters".into(),
        );
    }
}

/// Connection timeouts, message-time skew, attempts and adjustment caps.
fn validate_limits(config: &Config, issues: &mut Vec<(String, String)>) {
    let mut bad = |key: &str, reason: &str| issues.push((key.to_owned(), reason.to_owned()));
    let s = &config.server;
    for (key, value) in [
        (
            "server.header_read_timeout_secs",
            s.header_read_timeout_secs,
        ),
        ("server.body_read_timeout_secs", s.body_read_timeout_secs),
        ("server.keep_alive_idle_secs", s.keep_alive_idle_secs),
    ] {
        if !(1..=3600).contains(&value) {
            bad(key, "must be between 1 and 3600 seconds");
        }
    }
    if s.max_connections != 0 && s.max_connections < 16 {
        bad(
            "server.max_connections",
            "must be 0 (automatic) or at least 16",
        );
    }
    if s.future_skew_secs < 60 {
        bad("server.future_skew_secs", "must be at least 60 seconds");
    }
    if s.past_skew_secs < 600 {
        bad(
            "server.past_skew_secs",
            "must be at least 600 seconds (platform retries come minutes late)",
        );
    }
    if !(1..=100).contains(&s.handler_max_attempts) {
        bad("server.handler_max_attempts", "must be between 1 and 100");
    }
    if config.commands.max_points_adjustment < 1 {
        bad("commands.max_points_adjustment", "must be at least 1");
    }
    if config
        .aibot
        .response_url_hosts
        .iter()
        .any(|h| h.trim().is_empty() || h.contains('/'))
    {
        bad(
            "aibot.response_url_hosts",
            "hosts are bare names such as qyapi.weixin.qq.com",
        );
    }
}

/// Welcome texts by contact-way state are ops templates: they must pass the sandbox.
fn validate_ops_templates(config: &Config, issues: &mut Vec<(String, String)>) {
    let sample =
        minijinja::context! { name => "会员昵称会员昵称会员昵称会员昵称", state => "渠道" };
    for (state, source) in &config.welcome.by_state {
        if let Err(e) = crate::templates::sandbox::shared().check(source, &sample) {
            issues.push((format!("welcome.by_state.{state}"), e.to_string()));
        }
    }
}

/// Staff entries: a named channel must exist.
fn validate_staff(config: &Config, issues: &mut Vec<(String, String)>) {
    for (i, s) in config.commands.staff.iter().enumerate() {
        if let Some(channel) = &s.channel {
            if !config.channels.contains_key(channel) {
                issues.push((
                    format!("commands.staff[{i}].channel"),
                    format!("no channel `{channel}` is configured"),
                ));
            }
        }
    }
}

fn validate_outbound(config: &Config, issues: &mut Vec<(String, String)>) {
    let mut bad = |key: &str, reason: &str| issues.push((key.to_owned(), reason.to_owned()));
    for (key, base) in [
        ("api.wecom_base", &config.api.wecom_base),
        ("api.mp_base", &config.api.mp_base),
    ] {
        if url::Url::parse(base).map_or(true, |u| !matches!(u.scheme(), "http" | "https")) {
            bad(
                key,
                "must be an http(s) URL such as https://qyapi.weixin.qq.com",
            );
        }
    }
    if !(100..=60_000).contains(&config.api.timeout_ms) {
        bad("api.timeout_ms", "must be between 100 and 60000");
    }
    let o = &config.outbox;
    if !(1..=1000).contains(&o.batch_size) {
        bad("outbox.batch_size", "must be between 1 and 1000");
    }
    if !(10..=60_000).contains(&o.poll_interval_ms) {
        bad("outbox.poll_interval_ms", "must be between 10 and 60000");
    }
    if o.lease_secs < 5 {
        bad(
            "outbox.lease_secs",
            "must be at least 5 (longer than one API call)",
        );
    }
    if o.max_attempts < 1 {
        bad("outbox.max_attempts", "must be at least 1");
    }
    if o.backoff_base_ms < 1 || o.backoff_cap_ms < o.backoff_base_ms {
        bad(
            "outbox.backoff_cap_ms",
            "backoff_base_ms must be positive and backoff_cap_ms at least as large",
        );
    }
    if o.robot_per_minute == 0 || o.member_per_minute == 0 || o.member_per_hour == 0 {
        bad(
            "outbox.robot_per_minute",
            "robot_per_minute, member_per_minute and member_per_hour must be positive",
        );
    }
    if !(0..=900).contains(&o.avoid_peak_secs) {
        bad("outbox.avoid_peak_secs", "must be between 0 (off) and 900");
    }
    if !(0..=14_400).contains(&o.duplicate_check_secs) {
        bad(
            "outbox.duplicate_check_secs",
            "must be between 0 (off) and 14400 (WeCom's maximum, 4 h)",
        );
    }
    if o.customer_monthly_quota < 0 {
        bad(
            "outbox.customer_monthly_quota",
            "must be 0 (days of the month) or more",
        );
    }
    let a = &config.aibot;
    if a.heartbeat_secs == 0 || a.reconnect_max_secs == 0 || a.lease_secs < 3 {
        bad(
            "aibot.lease_secs",
            "heartbeat_secs and reconnect_max_secs must be positive, lease_secs at least 3",
        );
    }
    if o.task_poll_secs < 1 || o.task_expire_hours < 1 {
        bad(
            "outbox.task_poll_secs",
            "task_poll_secs and task_expire_hours must be positive",
        );
    }
}

fn validate_schedules(config: &Config, issues: &mut Vec<(String, String)>) {
    let s = &config.scheduler;
    for (key, cron) in [
        ("scheduler.lifecycle_cron", &s.lifecycle_cron),
        ("scheduler.inbox_prune_cron", &s.inbox_prune_cron),
        ("sync.cron", &config.sync.cron),
    ] {
        if let Err(e) = crate::schedule::Schedule::parse(key, cron) {
            issues.push((key.to_owned(), e));
        }
    }
    if s.missed_window_secs < 0 {
        issues.push((
            "scheduler.missed_window_secs".into(),
            "must be 0 or more".into(),
        ));
    }
    validate_sync(config, issues);
    if s.inbox_retention_hours < 24 {
        issues.push((
            "scheduler.inbox_retention_hours".into(),
            "must be at least 24 (WeCom retries must still find their first copy)".into(),
        ));
    }
}

fn validate_sync(config: &Config, issues: &mut Vec<(String, String)>) {
    let s = &config.sync;
    for (i, w) in s.what.iter().enumerate() {
        if !["contacts", "groups", "staff"].contains(&w.as_str()) {
            issues.push((
                format!("sync.what[{i}]"),
                format!("`{w}` is not one of contacts, groups, staff"),
            ));
        }
    }
    for (i, id) in s.channels.iter().enumerate() {
        let able = config.channels.get(id).is_some_and(|c| {
            c.kind == super::ChannelKind::WecomApp && c.secret.is_some() && c.enabled
        });
        if !able {
            issues.push((
                format!("sync.channels[{i}]"),
                format!("`{id}` is not an enabled wecom_app channel with a secret"),
            ));
        }
    }
    if s.max_attempts < 1 {
        issues.push(("sync.max_attempts".into(), "must be at least 1".into()));
    }
}
