//! The periodic maintenance over a large community: a fresh database with N members, each active
//! on a few of the last 60 days, and one segment state rule; then the job three times at the same time.
//! The first run finds everything new (stages, value layers, churn risk, rule tags); the others
//! find nothing to change. Prints the time of each part and the run's own peak memory.
//!
//! cargo bench --bench maintenance -- sqlite 1000000
//! cargo bench --bench maintenance -- postgres://postgres@127.0.0.1:5432/yunying_maint 1000000

use std::sync::Arc;
use std::time::Instant;

use yunying::app::App;
use yunying::clock::{Clock as _, SystemClock};
use yunying::config::{Config, Secret, TagRuleConfig};
use yunying::on_pool;
use yunying::store::windows::MEMBER_WINDOW;

const SCOPE: &str = "wwdemo0000000001";
const DAY: i64 = 86_400_000;

mod common;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let db = common::database_from_args("maintenance.db");
    let (target, n, url) = (db.target.clone(), db.members, db.url.clone());
    let mut config = Config::example().expect("config");
    config.database.url = Secret::new(&url);
    config.server.listen = "127.0.0.1:0".into();
    config.scheduler.enabled = false;
    config.tag_rules.push(TagRuleConfig {
        id: "quiet".into(),
        when: "segment".into(),
        pattern: "last_active >= 5d".into(),
        add: vec!["五天未发言".into()],
        remove: vec![],
    });
    let now = SystemClock.now_ms();
    let app = App::build(config, Arc::new(SystemClock))
        .await
        .expect("app");
    let state = app.state().clone();
    let started = Instant::now();
    load(
        &state.store,
        n,
        now,
        state.config.timezone(),
        target != "sqlite",
    )
    .await;
    println!(
        "{target}: {n} members loaded in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let runs = [
        "first run (all new)",
        "second run (no change)",
        "third run (no change)",
    ];
    for run in runs {
        common::reset_peak_memory();
        let before = common::memory("VmRSS");
        let mut parts = Vec::new();
        let started = Instant::now();
        let t = Instant::now();
        let stages = yunying::members::lifecycle::recompute(
            &state.store,
            &state.config.lifecycle,
            now,
            MEMBER_WINDOW,
        )
        .await
        .expect("stages");
        parts.push(part("stages", stages, t));
        let t = Instant::now();
        let tz = state.config.timezone();
        let days = (
            yunying::members::local_day(tz, now / 1000 - 29 * 86_400),
            yunying::members::local_day(tz, now / 1000),
        );
        let layers = yunying::members::layers::recompute(
            &state.store,
            &state.config.value_layers,
            now,
            days,
            MEMBER_WINDOW,
        )
        .await
        .expect("layers");
        parts.push(part("layers", layers, t));
        let t = Instant::now();
        let risk =
            yunying::recall::risk::recompute(&state.store, &state.config, now, MEMBER_WINDOW)
                .await
                .expect("risk");
        parts.push(part("risk tags", risk, t));
        let t = Instant::now();
        let rules = yunying::scheduler::jobs::apply_state_rules(&state.store, &state.config, now)
            .await
            .expect("rules");
        parts.push(part("rule tags", rules, t));
        println!(
            "{target}: {run}: {:.1} s — {}; resident {before} MiB before, peak {} MiB",
            started.elapsed().as_secs_f64(),
            parts.join(", "),
            common::memory("VmHWM")
        );
    }
}

/// "what count in seconds" for one part of a run.
fn part(what: &str, count: usize, since: Instant) -> String {
    format!("{what} {count} in {:.1} s", since.elapsed().as_secs_f64())
}

/// Members `u1..=uN`; member i was last active `i % 60` days ago and active on up to four days
/// before that, three days apart (a quarter of them once only).
async fn load(store: &yunying::store::Store, n: i64, now: i64, tz: chrono_tz::Tz, postgres: bool) {
    let pool = store.pool();
    let day_of = |ms: i64| yunying::members::local_day(tz, ms / 1000);
    let chunk = 2_000;
    let mut next = 1i64;
    while next <= n {
        let end = (next + chunk - 1).min(n);
        let mut members = format!(
            "insert into members (id, scope, platform_user_id, display_name, first_seen_at, last_active_at, message_count) {}values ",
            if postgres { "overriding system value " } else { "" }
        );
        let mut activity = String::from(
            "insert into member_daily_activity (day, member_id, message_count, event_count) values ",
        );
        for id in next..=end {
            let sep = if id == next { "" } else { "," };
            let last = now - (id % 60) * DAY;
            let visits = if id % 4 == 0 { 1 } else { 4 };
            let first = last - (visits - 1) * 3 * DAY;
            members += &format!(
                "{sep}({id}, '{SCOPE}', 'u{id}', '成员{id}', {first}, {last}, {})",
                visits * 2
            );
            for v in 0..visits {
                let sep = if id == next && v == 0 { "" } else { "," };
                activity += &format!("{sep}({}, {id}, 2, 0)", day_of(last - v * 3 * DAY));
            }
        }
        // Not kept as prepared statements: each is unique, and a cache of big ones would
        // swell the resident memory the runs below report.
        on_pool!(pool, p => {
            sqlx::query(&members).persistent(false).execute(p).await.expect("members");
            sqlx::query(&activity).persistent(false).execute(p).await.expect("activity");
        });
        next = end + 1;
    }
}
