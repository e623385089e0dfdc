//! Redemption through the real server: catalog, refusals with reasons, retries, and no
//! overselling or negative balances under concurrent orders.

use std::sync::Arc;

use yunying::config::{Config, ItemConfig};
use yunying::points::redemption::{redeem, RedeemOutcome, RedeemRequest};

use crate::backend_tests;
use crate::helpers::{Backend, TestApp};

backend_tests!(shop_order_and_refusals, concurrent_orders_never_oversell);

const SCOPE: &str = "wwdemo0000000001";

fn rich(config: &mut Config, stock: i64) {
    config.points.base = 100;
    config.points.daily_cap = 1000;
    config.points.items = vec![
        ItemConfig {
            name: "定制贴纸".into(),
            cost: 50,
            stock: 100,
            per_member_limit: 2,
            enabled: true,
            kind: Default::default(),
        },
        ItemConfig {
            name: "社区T恤".into(),
            cost: 500,
            stock: 20,
            per_member_limit: 1,
            enabled: true,
            kind: Default::default(),
        },
        ItemConfig {
            name: "限量杯".into(),
            cost: 50,
            stock,
            per_member_limit: 0,
            enabled: true,
            kind: Default::default(),
        },
    ];
}

async fn shop_order_and_refusals(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| rich(c, 10)).await;
    app.robot_say("u1", Some("g"), "签到", "s1").await;
    let shop = app.robot_say("u1", Some("g"), "商城", "s2").await;
    assert!(
        shop.contains("定制贴纸：50 积分，剩余 100，每人限 2 次") && shop.contains("社区T恤"),
        "{shop}"
    );

    let ok = app.robot_say("u1", Some("g"), "兑换 定制贴纸", "o1").await;
    assert!(
        ok.contains("兑换「定制贴纸」成功") && ok.contains("剩余 50 积分"),
        "{ok}"
    );
    let again = app.robot_say("u1", Some("g"), "兑换 定制贴纸", "o1").await;
    assert_eq!(
        again, ok,
        "a retried delivery gets the stored answer and places no second order"
    );
    let short = app.robot_say("u1", Some("g"), "兑换 社区T恤", "o2").await;
    assert!(short.contains("还差 450 积分"), "{short}");
    let unknown = app.robot_say("u1", Some("g"), "兑换 飞机", "o3").await;
    assert!(unknown.contains("没有找到「飞机」"), "{unknown}");
    let usage = app.robot_say("u1", Some("g"), "兑换", "o4").await;
    assert!(usage.starts_with("用法"), "{usage}");
    let second = app.robot_say("u1", Some("g"), "兑换 定制贴纸", "o5").await;
    assert!(
        second.contains("成功") && second.contains("剩余 0 积分"),
        "{second}"
    );
    let limit = app.robot_say("u1", Some("g"), "兑换 定制贴纸", "o6").await;
    assert!(limit.contains("每人限兑 2 次"), "{limit}");

    let (id, account) = app
        .store
        .points_account(SCOPE, "u1")
        .await
        .expect("q")
        .expect("account");
    assert_eq!(account.balance, 0);
    assert_eq!(app.store.ledger_sum(id).await.expect("sum"), 0);
    assert_eq!(
        app.store
            .orders_with_status("pending")
            .await
            .expect("orders")
            .len(),
        2
    );
    assert_eq!(
        app.store
            .item("定制贴纸")
            .await
            .expect("q")
            .expect("item")
            .stock,
        98
    );

    // A re-run of the same message (the sweeper after a crash) finds its order.
    app.robot_say("u9", Some("g"), "签到", "u9-sign").await;
    let req = RedeemRequest {
        scope: SCOPE.into(),
        user_id: "u9".into(),
        name: None,
        item_name: "限量杯".into(),
        source_key: "redeem:demo_robot:rerun".into(),
        day: 20231115,
        now_ms: 1,
    };
    let RedeemOutcome::Ordered {
        order_id, balance, ..
    } = redeem(&app.store, &req).await.expect("redeem")
    else {
        panic!("first run orders");
    };
    assert_eq!(balance, 50);
    assert_eq!(
        redeem(&app.store, &req).await.expect("redeem"),
        RedeemOutcome::AlreadyPlaced { order_id }
    );
    let (_, account) = app
        .store
        .points_account(SCOPE, "u9")
        .await
        .expect("q")
        .expect("account");
    assert_eq!(account.balance, 50, "charged once");
}

async fn concurrent_orders_never_oversell(backend: Backend) {
    let members = 100;
    let app = Arc::new(TestApp::spawn_with(backend, |c| rich(c, 10)).await);
    for m in 0..members {
        app.robot_say(&format!("m{m}"), Some("g"), "签到", &format!("sign-{m}"))
            .await;
    }
    let mut tasks = Vec::new();
    for m in 0..members {
        let app = Arc::clone(&app);
        tasks.push(tokio::spawn(async move {
            app.robot_say(
                &format!("m{m}"),
                Some("g"),
                "兑换 限量杯",
                &format!("buy-{m}"),
            )
            .await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        let reply = t.await.expect("task");
        if reply.contains("成功") {
            ok += 1;
        } else {
            assert!(reply.contains("兑完了"), "{reply}");
        }
    }
    assert_eq!(ok, 10, "exactly the stock");
    assert_eq!(
        app.store
            .item("限量杯")
            .await
            .expect("q")
            .expect("item")
            .stock,
        0
    );
    assert_eq!(
        app.store
            .orders_with_status("pending")
            .await
            .expect("orders")
            .len(),
        10
    );
    for m in 0..members {
        let (id, account) = app
            .store
            .points_account(SCOPE, &format!("m{m}"))
            .await
            .expect("q")
            .expect("account");
        assert!(account.balance >= 0);
        assert_eq!(
            app.store.ledger_sum(id).await.expect("sum"),
            account.balance
        );
    }
}
