//! Sign-in points through the real server: replies, streaks across local days, the daily cap,
//! leaderboards, and exactly-once under concurrent retries and duplicates.

use std::sync::Arc;

use yunying::send::Simulated;

use crate::backend_tests;
use crate::helpers::{Backend, TestApp};

backend_tests!(
    signin_reply_balance_and_repeat,
    streak_follows_the_community_day_not_utc,
    daily_cap_limits_points_from_all_sources,
    leaderboard_per_group_and_overall,
    concurrent_retries_and_duplicates_sign_in_once,
);

const SCOPE: &str = "wwdemo0000000001";

async fn signin_reply_balance_and_repeat(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let first = app.robot_say("u1", Some("g1"), "签到", "m1").await;
    assert!(
        first.contains("签到成功") && first.contains("第 1 位") && first.contains("+5 积分"),
        "{first}"
    );
    let second_member = app.robot_say("u2", Some("g1"), "打卡", "m2").await;
    assert!(second_member.contains("第 2 位"), "{second_member}");
    let again = app.robot_say("u1", Some("g1"), "/签到", "m3").await;
    assert!(again.contains("已经签到过"), "{again}");
    let balance = app.robot_say("u1", Some("g1"), "我的积分", "m4").await;
    assert!(
        balance.contains("积分：5") && balance.contains("新手"),
        "{balance}"
    );
    let (id, account) = app
        .store
        .points_account(SCOPE, "u1")
        .await
        .expect("q")
        .expect("account");
    assert_eq!(account.balance, 5);
    assert_eq!(app.store.ledger_sum(id).await.expect("sum"), 5);
    // Chat that is not a keyword gets no reply.
    assert_eq!(app.robot_say("u1", Some("g1"), "签到了吗", "m5").await, "");
}

async fn streak_follows_the_community_day_not_utc(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // 2024-01-01 23:59 in Shanghai (15:59 UTC) and 00:30 the next local day (16:30 UTC):
    // the same UTC day, two community days.
    app.clock.set_ms(1_704_124_740_000);
    let day1 = app.robot_say("u1", None, "签到", "d1").await;
    assert!(day1.contains("连续签到 1 天"), "{day1}");
    app.clock.set_ms(1_704_126_600_000);
    let day2 = app.robot_say("u1", None, "签到", "d2").await;
    assert!(
        day2.contains("签到成功") && day2.contains("连续签到 2 天"),
        "{day2}"
    );
    // Day 3 pays the streak bonus (5 + 5).
    app.clock.set_ms(1_704_126_600_000 + 86_400_000);
    let day3 = app.robot_say("u1", None, "签到", "d3").await;
    assert!(
        day3.contains("+10 积分") && day3.contains("连续签到 3 天"),
        "{day3}"
    );
    // Skipping a day breaks the streak.
    app.clock.set_ms(1_704_126_600_000 + 3 * 86_400_000);
    let day5 = app.robot_say("u1", None, "签到", "d5").await;
    assert!(day5.contains("连续签到 1 天"), "{day5}");
    let (_, account) = app
        .store
        .points_account(SCOPE, "u1")
        .await
        .expect("q")
        .expect("account");
    assert_eq!((account.balance, account.best_streak), (25, 3));
}

async fn daily_cap_limits_points_from_all_sources(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.points.daily_cap = 7;
        c.points.base = 5;
    })
    .await;
    // Day 1 and 2: 5 each; day 3 would pay 10 but the cap is 7.
    for (i, day) in [0i64, 1, 2].iter().enumerate() {
        app.clock.set_ms(1_704_067_200_000 + day * 86_400_000);
        let reply = app.robot_say("u1", None, "签到", &format!("c{i}")).await;
        if *day == 2 {
            assert!(
                reply.contains("+7 积分") && reply.contains("上限"),
                "{reply}"
            );
        }
    }
    let (id, account) = app
        .store
        .points_account(SCOPE, "u1")
        .await
        .expect("q")
        .expect("account");
    assert_eq!(account.balance, 17);
    assert_eq!(app.store.ledger_sum(id).await.expect("sum"), 17);
}

async fn leaderboard_per_group_and_overall(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.robot_say("a", Some("g1"), "签到", "l1").await;
    app.robot_say("b", Some("g2"), "签到", "l2").await;
    app.clock.advance_ms(86_400_000);
    app.robot_say("a", Some("g1"), "签到", "l3").await;
    let overall = app.robot_say("a", None, "排行榜 总", "l4").await;
    assert!(
        overall.contains("总积分榜")
            && overall.contains("1. 用户a  10 分")
            && overall.contains("2. 用户b  5 分"),
        "{overall}"
    );
    let group = app.robot_say("a", Some("g2"), "排行榜 本周", "l5").await;
    assert!(group.contains("（本群）"), "{group}");
    assert!(group.contains("用户b"), "{group}");
    let today = app.robot_say("b", Some("g2"), "排行榜", "l6").await;
    assert!(
        today.contains("今日积分榜") && !today.contains("用户b"),
        "b signed in yesterday only: {today}"
    );
    let usage = app.robot_say("a", None, "排行榜 明年", "l7").await;
    assert!(usage.starts_with("用法"), "{usage}");
}

/// `DEDUPE_TEST_MEMBERS=1000` runs the full size (64 copies × 1,000 members).
async fn concurrent_retries_and_duplicates_sign_in_once(backend: Backend) {
    let members: usize = std::env::var("DEDUPE_TEST_MEMBERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let copies = 64;
    let app = Arc::new(TestApp::spawn(backend).await);
    let mut requests = Vec::new();
    for m in 0..members {
        for c in 0..copies {
            // Half are platform retries (same MsgId), half are repeated sign-in messages.
            let msg_id = if c % 2 == 0 {
                format!("s-{m}")
            } else {
                format!("s-{m}-{c}")
            };
            let what = Simulated::Text {
                from: format!("m{m}"),
                name: None,
                group: Some("g".into()),
                text: "签到".into(),
                msg_id,
            };
            requests.push(app.build("demo_robot", &what));
        }
    }
    // Interleave members so copies of one member race each other.
    let mut tasks = Vec::new();
    for lane in 0..16 {
        let app = Arc::clone(&app);
        let mine: Vec<_> = requests.iter().skip(lane).step_by(16).cloned().collect();
        tasks.push(tokio::spawn(async move {
            for r in mine {
                assert_eq!(app.post("demo_robot", &r).await.status(), 200);
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    for m in 0..members {
        let (id, account) = app
            .store
            .points_account(SCOPE, &format!("m{m}"))
            .await
            .expect("q")
            .expect("account");
        assert_eq!(account.balance, 5, "member {m} signed in once");
        assert_eq!(
            app.store.ledger_sum(id).await.expect("sum"),
            account.balance
        );
        assert_eq!(app.store.ledger_of(id, 10).await.expect("ledger").len(), 1);
    }
    // Today's ranks are exactly 1..=members: no rank taken twice, none lost to a duplicate.
    let mut ranks: Vec<i64> = yunying::on_pool!(app.store.pool(), p => sqlx::query_scalar(
        "select cast(rank as bigint) from signins").fetch_all(p).await.expect("ranks"));
    ranks.sort_unstable();
    assert_eq!(
        ranks,
        (1..=i64::try_from(members).expect("n")).collect::<Vec<_>>()
    );
    let counted: i64 = yunying::on_pool!(app.store.pool(), p => sqlx::query_scalar(
        "select signins from signin_counts").fetch_one(p).await.expect("count"));
    assert_eq!(counted, i64::try_from(members).expect("n"));
}
