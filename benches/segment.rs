//! Segment count over a large community: fills a fresh database with N members (accounts, tags,
//! groups, stages), then times `segment_count` for typical expressions.
//!
//! cargo bench --bench segment -- sqlite 1000000
//! cargo bench --bench segment -- postgres://postgres@127.0.0.1:5432/yunying_seg 1000000

use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use yunying::config::Config;
use yunying::members::segment::{self, SegmentContext};
use yunying::on_pool;
use yunying::store::{Store, StoreOptions};

const SCOPE: &str = "wwbench";
const NOW: i64 = 1_717_200_000_000;
const DAY: i64 = 86_400_000;

mod common;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let db = common::database_from_args("seg.db");
    let (target, n, url) = (db.target.clone(), db.members, db.url.clone());
    let store = Store::connect(&url, &StoreOptions::default())
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    let pool = store.pool();
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(1);
    for (i, (id, name)) in [("g1", "产品交流1群"), ("g2", "福利群")].iter().enumerate() {
        on_pool!(pool, p => {
            sqlx::query("insert into chat_groups (scope, platform_group_id, name, first_seen_at, last_active_at) values ($1, $2, $3, 0, 0)")
                .bind(SCOPE).bind(*id).bind(*name).execute(p).await.expect("group");
        });
        let _ = i;
    }
    for t in ["VIP", "免打扰", "意向"] {
        on_pool!(pool, p => {
            sqlx::query("insert into tags (scope, name, source, created_at) values ($1, $2, 'manual', 0)")
                .bind(SCOPE).bind(t).execute(p).await.expect("tag");
        });
    }
    let chunk = 2_000;
    let stages = ["new", "active", "silent", "lapsed", "churned", "returned"];
    let mut next = 1i64;
    while next <= n {
        let end = (next + chunk - 1).min(n);
        // Ids are given so the other tables can refer to them (PostgreSQL must be told).
        let mut members = format!(
            "insert into members (id, scope, platform_user_id, first_seen_at, last_active_at, message_count) {}values ",
            if target == "sqlite" { "" } else { "overriding system value " }
        );
        let mut accounts = String::from(
            "insert into points_accounts (member_id, balance, total_earned, updated_at) values ",
        );
        let mut stage_rows =
            String::from("insert into member_stages (member_id, stage, since) values ");
        let mut tag_rows = Vec::new();
        let mut group_rows = Vec::new();
        for id in next..=end {
            let sep = if id == next { "" } else { "," };
            let first = NOW - rng.gen_range(0..400) * DAY;
            let last = NOW - rng.gen_range(0..90) * DAY;
            members += &format!(
                "{sep}({id}, '{SCOPE}', 'u{id}', {first}, {last}, {})",
                rng.gen_range(0..500)
            );
            let balance = rng.gen_range(0..2000);
            accounts += &format!(
                "{sep}({id}, {balance}, {}, 0)",
                balance + rng.gen_range(0..500)
            );
            stage_rows += &format!(
                "{sep}({id}, '{}', 0)",
                stages[rng.gen_range(0..stages.len())]
            );
            if rng.gen_bool(0.1) {
                tag_rows.push(format!(
                    "({id}, {}, 'manual', 'bench', 0)",
                    rng.gen_range(1..=3)
                ));
            }
            if rng.gen_bool(0.5) {
                group_rows.push(format!("({}, {id}, 0)", rng.gen_range(1..=2)));
            }
        }
        let mut statements = vec![members, accounts, stage_rows];
        if !tag_rows.is_empty() {
            statements.push(format!(
                "insert into member_tags (member_id, tag_id, source, set_by, set_at) values {}",
                tag_rows.join(",")
            ));
        }
        if !group_rows.is_empty() {
            statements.push(format!(
                "insert into group_members (group_id, member_id, joined_at) values {}",
                group_rows.join(",")
            ));
        }
        for sql in statements {
            on_pool!(pool, p => { sqlx::query(&sql).execute(p).await.expect("insert"); });
        }
        next = end + 1;
    }
    on_pool!(pool, p => { sqlx::query("analyze").execute(p).await.expect("analyze"); });
    println!(
        "{target}: {n} members loaded in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let config = Config::example().expect("config");
    let ctx = SegmentContext {
        accounts: yunying::members::segment::AccountSql::for_backend(store.backend()),
        now_ms: NOW,
        levels: &config.points.levels,
    };
    for text in [
        "stage:lapsed and not tag:免打扰",
        "tag:VIP and points >= 100",
        "group:\"产品交流1群\" and last_active < 14d",
        "level:核心 or (messages > 400 and joined > 300d)",
        "points >= 0",
    ] {
        let compiled =
            segment::to_sql(&segment::parse(text).expect("parses"), &ctx, 2).expect("compiles");
        let mut times = Vec::new();
        let mut count = 0;
        for _ in 0..3 {
            let t = Instant::now();
            count = store.segment_count(SCOPE, &compiled).await.expect("count");
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        times.sort_by(f64::total_cmp);
        println!(
            "  {text:<50} {count:>8} members  median {:>7.1} ms",
            times[1]
        );
    }
}
