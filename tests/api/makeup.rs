//! Make-up cards (补签卡) through the real server: bought in the shop, delivered at once, spent on
//! `补签` to fill yesterday so the streak carries on, once per message and never without a card.

use yunying::config::{Config, ItemConfig, ItemKind};

use crate::backend_tests;
use crate::helpers::{Backend, TestApp};

backend_tests!(card_fills_yesterday_and_joins_the_streak);

const SCOPE: &str = "wwdemo0000000001";
/// 2024-01-01 12:00 in Shanghai.
const JAN_1_NOON: i64 = 1_704_081_600_000;
const DAY_MS: i64 = 86_400_000;

fn with_card(config: &mut Config) {
    config.points.base = 5;
    config.points.streak_bonuses.clear();
    config.points.random_bonus_max = 0;
    config.points.items = vec![ItemConfig {
        name: "补签卡".into(),
        cost: 5,
        stock: 10,
        per_member_limit: 0,
        enabled: true,
        kind: ItemKind::MakeupCard,
    }];
}

async fn card_fills_yesterday_and_joins_the_streak(backend: Backend) {
    let app = TestApp::spawn_with(backend, with_card).await;
    app.clock.set_ms(JAN_1_NOON);
    app.robot_say("u1", Some("g"), "签到", "d1").await;

    // Jan 3: Jan 2 was missed.
    app.clock.set_ms(JAN_1_NOON + 2 * DAY_MS);
    let no_card = app.robot_say("u1", Some("g"), "补签", "d3a").await;
    assert!(no_card.contains("还没有补签卡"), "{no_card}");
    let bought = app.robot_say("u1", Some("g"), "兑换 补签卡", "d3b").await;
    assert!(bought.contains("补签卡已到账"), "{bought}");
    assert!(
        app.store
            .orders_with_status("pending")
            .await
            .expect("orders")
            .is_empty(),
        "a card needs no shipping"
    );
    let today = app.robot_say("u1", Some("g"), "签到", "d3c").await;
    assert!(today.contains("连续签到 1 天"), "{today}");
    let repaired = app.robot_say("u1", Some("g"), "补签", "d3d").await;
    assert!(
        repaired.contains("补签成功")
            && repaired.contains("2024-01-02")
            && repaired.contains("连续签到 3 天")
            && repaired.contains("剩余补签卡 0 张"),
        "{repaired}"
    );
    // A second 补签 finds yesterday filled and spends nothing.
    let again = app.robot_say("u1", Some("g"), "补签", "d3e").await;
    assert!(again.contains("昨天已经签到"), "{again}");
    let summary = app.robot_say("u1", Some("g"), "积分", "d3f").await;
    assert!(summary.contains("连续签到 3 天"), "{summary}");

    // Jan 4 carries the repaired streak on.
    app.clock.set_ms(JAN_1_NOON + 3 * DAY_MS);
    let next = app.robot_say("u1", Some("g"), "签到", "d4").await;
    assert!(next.contains("连续签到 4 天"), "{next}");

    // Jan 10: nothing on Jan 8 either, so no streak to save.
    app.clock.set_ms(JAN_1_NOON + 9 * DAY_MS);
    let nothing = app.robot_say("u1", Some("g"), "补签", "d10").await;
    assert!(nothing.contains("没有可以接上的连续签到"), "{nothing}");

    // Points: 3 sign-ins of 5, one card of 5; the made-up day pays nothing.
    let (id, account) = app
        .store
        .points_account(SCOPE, "u1")
        .await
        .expect("q")
        .expect("account");
    assert_eq!(account.balance, 10);
    assert_eq!(app.store.ledger_sum(id).await.expect("sum"), 10);
    assert_eq!(account.best_streak, 4);
}
