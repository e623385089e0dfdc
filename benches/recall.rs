//! Recall selection at scale: a fresh database with N members of whom one in EVERY (default 10)
//! is lapsed (idle 35 days), then one run of a recall plan: select the targets with the segment,
//! render, and record every touch with its outbox row.
//!
//! cargo bench --bench recall -- sqlite 1000000 [EVERY]
//! cargo bench --bench recall -- postgres://postgres@127.0.0.1:5432/yunying_recall 1000000

use std::sync::Arc;
use std::time::Instant;

use yunying::channels::Channels;
use yunying::config::{Config, RecallPlanConfig, Secret};
use yunying::on_pool;
use yunying::recall::{self, Plan, RecallContext};
use yunying::store::{Store, StoreOptions};

const SCOPE: &str = "wwdemo0000000001";
const NOW: i64 = 1_767_600_000_000; // a weekday, 16:00 in Shanghai
const DAY: i64 = 86_400_000;

mod common;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let db = common::database_from_args("recall.db");
    let (target, n, url) = (db.target.clone(), db.members, db.url.clone());
    // Every how-many-th member is lapsed: 10 by default; 1 makes the whole community lapsed.
    let every: i64 = db
        .rest
        .first()
        .and_then(|v| v.parse().ok())
        .filter(|e| *e >= 1)
        .unwrap_or(10);
    let store = Store::connect(&url, &StoreOptions::default())
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    let pool = store.pool();
    let started = Instant::now();
    let chunk = 2_000;
    let mut next = 1i64;
    while next <= n {
        let end = (next + chunk - 1).min(n);
        let mut members = format!(
            "insert into members (id, scope, platform_user_id, display_name, first_seen_at, last_active_at, message_count) {}values ",
            if target == "sqlite" { "" } else { "overriding system value " }
        );
        let mut stages =
            String::from("insert into member_stages (member_id, stage, since) values ");
        for id in next..=end {
            let sep = if id == next { "" } else { "," };
            let lapsed = id % every == 0;
            let last = if lapsed { NOW - 35 * DAY } else { NOW - DAY };
            members += &format!(
                "{sep}({id}, '{SCOPE}', 'u{id}', '成员{id}', {}, {last}, 20)",
                NOW - 200 * DAY
            );
            stages += &format!(
                "{sep}({id}, '{}', {last})",
                if lapsed { "lapsed" } else { "active" }
            );
        }
        // Not kept as prepared statements: each is unique, and a cache of big ones would
        // swell the resident memory the runs below report.
        on_pool!(pool, p => {
            sqlx::query(&members).persistent(false).execute(p).await.expect("members");
            sqlx::query(&stages).persistent(false).execute(p).await.expect("stages");
        });
        next = end + 1;
    }
    println!(
        "{target}: {n} members loaded in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let mut config = Config::example().expect("config");
    config.database.url = Secret::new(&url);
    let mut plan: RecallPlanConfig = config.recall.plans[0].clone();
    plan.holdout_percent = 0;
    plan.send_hours = [0, 24];
    let plan = Plan::compile(&plan).expect("plan");
    let ctx = RecallContext {
        store: store.clone(),
        channels: Arc::new(Channels::from_config(&config).expect("channels")),
        config: Arc::new(config),
        outbox: None,
    };
    let rss_before = common::memory("VmRSS");
    common::reset_peak_memory(); // so the peak below is the run's own
    let started = Instant::now();
    let report = recall::run(&ctx, &plan, NOW, false).await.expect("run");
    let seconds = started.elapsed().as_secs_f64();
    let peak = common::memory("VmHWM");
    let queued: i64 = store
        .outbox_counts()
        .await
        .expect("counts")
        .iter()
        .map(|(_, n)| n)
        .sum();
    println!(
        "{target}: selected {} of {n} and recorded {} touches with {queued} outbox rows in {seconds:.2} s",
        report.eligible, report.touched
    );
    println!("{target}: resident {rss_before} MiB before the run, peak {peak} MiB during it");
}
