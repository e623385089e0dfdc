//! The ops JSON API: authentication, adjustments through the ledger, catalog, orders.

use serde_json::{json, Value};
use yunying::config::{ItemConfig, Secret};
use yunying::send::Simulated;

use crate::backend_tests;
use crate::helpers::{Backend, TestApp};

backend_tests!(ops_api_requires_a_token, adjust_points_catalog_and_orders);

const TOKEN: &str = "ops-token-0123456789";
const SCOPE: &str = "wwdemo0000000001";

async fn call(app: &TestApp, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = match method {
        "GET" => app.client.get(app.url(path)),
        _ => app.client.post(app.url(path)),
    }
    .bearer_auth(TOKEN);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let response = req.send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn ops_api_requires_a_token(backend: Backend) {
    let off = TestApp::spawn(backend).await;
    let response = off
        .client
        .get(off.url("/api/v1/items"))
        .bearer_auth("anything")
        .send()
        .await
        .expect("get");
    assert_eq!(response.status(), 403, "empty token: API off");
    let on = TestApp::spawn_with(backend, |c| c.ops_api.token = Secret::new(TOKEN)).await;
    assert_eq!(
        on.client
            .get(on.url("/api/v1/items"))
            .send()
            .await
            .expect("get")
            .status(),
        401
    );
    let wrong = on
        .client
        .get(on.url("/api/v1/items"))
        .bearer_auth("ops-token-0123456788")
        .send()
        .await
        .expect("get");
    assert_eq!(wrong.status(), 401);
    let body: Value = wrong.json().await.expect("json");
    assert!(body["error"].as_str().is_some_and(|e| e.contains("token")));
}

async fn adjust_points_catalog_and_orders(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.ops_api.token = Secret::new(TOKEN);
        c.tag_rules.push(yunying::config::TagRuleConfig {
            id: "hundred".into(),
            when: "points".into(),
            pattern: "100".into(),
            add: vec!["百分会员".into()],
            remove: Vec::new(),
        });
        c.points.items = vec![ItemConfig {
            name: "贴纸".into(),
            cost: 30,
            stock: 5,
            per_member_limit: 0,
            enabled: true,
            kind: Default::default(),
        }];
    })
    .await;
    let path = format!("/api/v1/members/{SCOPE}/u1/points");
    let adjust =
        json!({ "delta": 50, "reason": "活动奖励", "operator": "小运营", "request_id": "r1" });
    // A member the registry does not have (a typo in the id or the scope) is a 404, not a new member.
    let (status, body) = call(&app, "POST", &path, Some(adjust.clone())).await;
    assert_eq!(status, 404, "{body}");
    let (status, _) = call(
        &app,
        "POST",
        "/api/v1/members/wwnowhere/u1/points",
        Some(adjust.clone()),
    )
    .await;
    assert_eq!(status, 404);
    assert!(
        app.store.member(SCOPE, "u1").await.expect("read").is_none(),
        "no phantom member"
    );
    app.robot_say("u1", Some("g1"), "大家好", "m-u1").await;
    app.robot_say("u2", Some("g1"), "大家好", "m-u2").await;
    let (status, body) = call(&app, "POST", &path, Some(adjust.clone())).await;
    assert_eq!(
        (status, body["applied"].as_bool(), body["balance"].as_i64()),
        (200, Some(true), Some(50))
    );
    let (_, again) = call(&app, "POST", &path, Some(adjust.clone())).await;
    assert_eq!(
        (again["applied"].as_bool(), again["balance"].as_i64()),
        (Some(false), Some(50)),
        "same request id applies once"
    );
    // The same request id with another delta is a conflict, not a silent no-op.
    let mut changed = adjust.clone();
    changed["delta"] = json!(60);
    let (status, body) = call(&app, "POST", &path, Some(changed)).await;
    assert_eq!(status, 409, "{body}");
    // Request ids belong to their member: u2's r1 is its own request.
    let (status, body) = call(
        &app,
        "POST",
        &format!("/api/v1/members/{SCOPE}/u2/points"),
        Some(adjust.clone()),
    )
    .await;
    assert_eq!(
        (status, body["applied"].as_bool()),
        (200, Some(true)),
        "{body}"
    );
    let (status, _) = call(
        &app,
        "POST",
        &path,
        Some(json!({ "delta": -80, "reason": "x", "operator": "o", "request_id": "r2" })),
    )
    .await;
    assert_eq!(status, 409, "never below zero");
    let (status, _) = call(&app, "POST", &path, Some(json!({ "delta": 5 }))).await;
    assert_eq!(status, 400);
    let (status, points) = call(&app, "GET", &path, None).await;
    assert_eq!(status, 200);
    assert_eq!(points["balance"], 50);
    assert_eq!(points["ledger"][0]["operator"], "小运营");

    // A points rule tags at once after an adjustment, and untags when the balance falls back.
    let tagged = |app: &TestApp| {
        let store = app.store.clone();
        async move {
            store
                .tags_of(SCOPE, "u1")
                .await
                .expect("tags")
                .contains(&"百分会员".to_owned())
        }
    };
    let (status, _) = call(
        &app,
        "POST",
        &path,
        Some(json!({ "delta": 60, "reason": "活动", "operator": "o", "request_id": "r3" })),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        tagged(&app).await,
        "110 points: tagged without waiting for the periodic job"
    );
    let (status, _) = call(
        &app,
        "POST",
        &path,
        Some(json!({ "delta": -20, "reason": "纠错", "operator": "o", "request_id": "r4" })),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        !tagged(&app).await,
        "90 points: the rule's tag is taken back"
    );

    // Catalog.
    let (status, created) = call(
        &app,
        "POST",
        "/api/v1/items",
        Some(json!({ "name": "水杯", "cost": 20, "stock": 1 })),
    )
    .await;
    assert_eq!(status, 201);
    let (status, _) = call(
        &app,
        "POST",
        "/api/v1/items",
        Some(json!({ "name": "水杯", "cost": 20, "stock": 1 })),
    )
    .await;
    assert_eq!(status, 409);
    let id = created["id"].as_i64().expect("id");
    let (status, updated) = call(
        &app,
        "POST",
        &format!("/api/v1/items/{id}"),
        Some(json!({ "cost": 20, "stock": 3, "per_member_limit": 1, "enabled": true })),
    )
    .await;
    assert_eq!((status, updated["stock"].as_i64()), (200, Some(3)));
    let (_, items) = call(&app, "GET", "/api/v1/items", None).await;
    assert_eq!(items["items"].as_array().map(Vec::len), Some(2));

    // An order from chat, then fulfil one and cancel another (refund + stock back).
    for (i, item) in ["贴纸", "水杯"].iter().enumerate() {
        let what = Simulated::Text {
            from: "u1".into(),
            name: None,
            group: Some("g".into()),
            text: format!("兑换 {item}"),
            msg_id: format!("buy{i}"),
        };
        assert_eq!(
            app.post("demo_robot", &app.build("demo_robot", &what))
                .await
                .status(),
            200
        );
    }
    let (_, orders) = call(&app, "GET", "/api/v1/orders", None).await;
    let orders = orders["orders"].as_array().cloned().expect("orders");
    assert_eq!(orders.len(), 2);
    // Who ordered what, not only internal ids.
    assert_eq!(
        (
            orders[0]["user_id"].as_str(),
            orders[0]["scope"].as_str(),
            orders[0]["item_name"].as_str().is_some()
        ),
        (Some("u1"), Some(SCOPE), true),
        "{orders:?}"
    );
    let (first, second) = (
        orders[0]["id"].as_i64().expect("id"),
        orders[1]["id"].as_i64().expect("id"),
    );
    assert_eq!(
        call(
            &app,
            "POST",
            &format!("/api/v1/orders/{first}/fulfil"),
            None
        )
        .await
        .0,
        200
    );
    assert_eq!(
        call(
            &app,
            "POST",
            &format!("/api/v1/orders/{second}/cancel"),
            None
        )
        .await
        .0,
        200
    );
    assert_eq!(
        call(
            &app,
            "POST",
            &format!("/api/v1/orders/{second}/cancel"),
            None
        )
        .await
        .0,
        409,
        "cancelled once"
    );
    assert_eq!(
        call(&app, "POST", "/api/v1/orders/9999/fulfil", None)
            .await
            .0,
        404
    );
    let (_, fulfilled) = call(&app, "GET", "/api/v1/orders?status=fulfilled", None).await;
    assert_eq!(fulfilled["orders"].as_array().map(Vec::len), Some(1));
    let (id, account) = app
        .store
        .points_account(SCOPE, "u1")
        .await
        .expect("q")
        .expect("account");
    assert_eq!(account.balance, 90 - 30, "the cancelled order was refunded");
    assert_eq!(
        app.store.ledger_sum(id).await.expect("sum"),
        account.balance
    );
    assert_eq!(
        app.store
            .item("水杯")
            .await
            .expect("q")
            .expect("item")
            .stock,
        3,
        "stock returned"
    );
}
