//! Members through the ops API and as events arrive: stored tag rules of every state kind,
//! lifecycle stages recomputed on events, tag CRUD with provenance, and the WeCom tag sync
//! (pull, mirror with mark_tag through the outbox, WeCom-side edits applied without a loop).

use serde_json::{json, Value};
use yunying::clock::Clock as _;
use yunying::config::Secret;
use yunying::fake_wecom::FakeWecom;
use yunying::send::{self, Simulated};

use crate::backend_tests;
use crate::helpers::{Backend, TestApp};

backend_tests!(
    stored_rules_of_every_kind_tag_members_as_they_change,
    tags_are_managed_with_their_provenance,
    wecom_tags_are_pulled_mirrored_and_applied_without_loops,
);

const TOKEN: &str = "ops-token-0123456789";
const SCOPE: &str = "wwdemo0000000001";
const DAY_MS: i64 = 86_400_000;

async fn call(app: &TestApp, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let url = app.url(path);
    let request = match method {
        "GET" => app.client.get(url),
        "PUT" => app.client.put(url),
        "DELETE" => app.client.delete(url),
        _ => app.client.post(url),
    }
    .bearer_auth(TOKEN);
    let request = match body {
        Some(b) => request.json(&b),
        None => request,
    };
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn tag_names(detail: &Value) -> Vec<String> {
    detail["tags"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|t| t["name"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

async fn detail(app: &TestApp, user: &str) -> Value {
    let (status, body) = call(app, "GET", &format!("/api/v1/members/{SCOPE}/{user}"), None).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn stored_rules_of_every_kind_tag_members_as_they_change(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.ops_api.token = Secret::new(TOKEN)).await;
    let rule = |kind: &str, pattern: &str, tag: &str| json!({ "kind": kind, "pattern": pattern, "add": [tag] });
    for (id, body) in [
        ("rich", rule("points", "10", "小富")),
        ("chatty", rule("activity", "3/7d", "活跃分子")),
        ("price", rule("keyword", "多少钱", "意向")),
        ("back", rule("stage", "returned", "回流用户")),
    ] {
        let (status, reply) =
            call(&app, "PUT", &format!("/api/v1/tag-rules/{id}"), Some(body)).await;
        assert_eq!(status, 200, "{id}: {reply}");
    }
    let (status, reply) = call(
        &app,
        "PUT",
        "/api/v1/tag-rules/bad",
        Some(rule("points", "lots", "x")),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        reply["error"]
            .as_str()
            .unwrap_or("")
            .contains("not a number"),
        "{reply}"
    );
    let (_, listed) = call(&app, "GET", "/api/v1/tag-rules", None).await;
    assert_eq!(
        listed["database"].as_array().map(Vec::len),
        Some(4),
        "{listed}"
    );
    assert!(
        listed["config"].as_array().is_some_and(|a| !a.is_empty()),
        "configured rules are listed too"
    );
    app.clock.advance_ms(6_000); // stored rules are re-read every few seconds

    app.robot_say("u1", Some("g1"), "签到", "m1").await;
    assert!(
        !tag_names(&detail(&app, "u1").await).contains(&"小富".to_string()),
        "5 points: not yet"
    );
    app.clock.advance_ms(DAY_MS);
    app.robot_say("u1", Some("g1"), "签到", "m2").await;
    let d = detail(&app, "u1").await;
    assert!(
        tag_names(&d).contains(&"小富".to_string()),
        "10 points after the second sign-in: {d}"
    );
    let rich = d["tags"]
        .as_array()
        .and_then(|a| a.iter().find(|t| t["name"] == "小富"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(rich["source"], "rule");
    assert_eq!(rich["set_by"], "rule:rich");
    assert!(
        !tag_names(&d).contains(&"活跃分子".to_string()),
        "two messages: not yet"
    );
    app.robot_say("u1", Some("g1"), "会员多少钱", "m3").await;
    let tags = tag_names(&detail(&app, "u1").await);
    assert!(
        tags.contains(&"意向".to_string()) && tags.contains(&"活跃分子".to_string()),
        "{tags:?}"
    );
    assert_eq!(d["stage"]["stage"], "new", "stage computed on the event");

    // A month of silence, the periodic run marks u1 lapsed; one message brings them back at once.
    app.clock.advance_ms(40 * DAY_MS);
    let config = &app.app_state.config;
    yunying::members::lifecycle::recompute(
        &app.store,
        &config.lifecycle,
        app.clock.now_ms(),
        yunying::store::windows::MEMBER_WINDOW,
    )
    .await
    .expect("recompute");
    assert_eq!(detail(&app, "u1").await["stage"]["stage"], "lapsed");
    app.robot_say("u1", Some("g1"), "我回来了", "m4").await;
    let d = detail(&app, "u1").await;
    assert_eq!(d["stage"]["stage"], "returned", "{d}");
    assert!(
        tag_names(&d).contains(&"回流用户".to_string()),
        "stage rule on the same event: {d}"
    );
    let history: Vec<&str> = d["stage_history"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| h["to"].as_str())
        .collect();
    assert_eq!(history, vec!["new", "lapsed", "returned"]);

    assert_eq!(
        call(&app, "DELETE", "/api/v1/tag-rules/rich", None).await.0,
        200
    );
    assert_eq!(
        call(&app, "DELETE", "/api/v1/tag-rules/rich", None).await.0,
        404
    );
}

async fn tags_are_managed_with_their_provenance(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.ops_api.token = Secret::new(TOKEN)).await;
    app.robot_say("u7", Some("g1"), "大家好", "m1").await;
    let tag = json!({ "name": "VIP", "group": "等级", "color": "#e5484d" });
    assert_eq!(
        call(
            &app,
            "POST",
            &format!("/api/v1/tags/{SCOPE}"),
            Some(tag.clone())
        )
        .await
        .0,
        201
    );
    assert_eq!(
        call(&app, "POST", &format!("/api/v1/tags/{SCOPE}"), Some(tag))
            .await
            .0,
        409
    );
    let bad = json!({ "name": "x", "color": "red" });
    assert_eq!(
        call(&app, "POST", &format!("/api/v1/tags/{SCOPE}"), Some(bad))
            .await
            .0,
        400
    );

    let path = format!("/api/v1/members/{SCOPE}/u7/tags");
    let (status, body) = call(
        &app,
        "POST",
        &path,
        Some(json!({ "add": ["VIP", "老客户"], "by": "zhangsan" })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["added"], json!(["VIP", "老客户"]));
    let (_, again) = call(&app, "POST", &path, Some(json!({ "add": ["VIP"] }))).await;
    assert_eq!(again["added"], json!([]), "adding twice changes nothing");
    let d = detail(&app, "u7").await;
    let vip = d["tags"]
        .as_array()
        .and_then(|a| a.iter().find(|t| t["name"] == "VIP"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (
            vip["source"].as_str(),
            vip["set_by"].as_str(),
            vip["color"].as_str()
        ),
        (Some("manual"), Some("zhangsan"), Some("#e5484d"))
    );
    assert_eq!(
        call(
            &app,
            "POST",
            "/api/v1/members/wwdemo0000000001/nobody/tags",
            Some(json!({ "add": ["x"] }))
        )
        .await
        .0,
        404
    );

    let (_, list) = call(&app, "GET", &format!("/api/v1/tags/{SCOPE}"), None).await;
    let vip = list["tags"]
        .as_array()
        .and_then(|a| a.iter().find(|t| t["name"] == "VIP"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(vip["members"], 1);
    assert_eq!(
        call(
            &app,
            "POST",
            &format!("/api/v1/tags/{SCOPE}/VIP"),
            Some(json!({ "color": "#00aa00" }))
        )
        .await
        .0,
        200
    );
    assert_eq!(
        call(&app, "DELETE", &format!("/api/v1/tags/{SCOPE}/VIP"), None)
            .await
            .0,
        200
    );
    assert_eq!(tag_names(&detail(&app, "u7").await), vec!["老客户"]);
    assert_eq!(
        call(&app, "DELETE", &format!("/api/v1/tags/{SCOPE}/VIP"), None)
            .await
            .0,
        404
    );
}

/// Posts a raw decrypted event as the platform would (encrypted, signed) to demo_app.
async fn post_event(app: &TestApp, inner: &str) {
    let channel = app.channel("demo_app");
    let ts = app.clock.now_ms() / 1000;
    let request = send::build_request(channel, inner, ts, "4242").expect("request");
    assert_eq!(app.post("demo_app", &request).await.status(), 200);
}

fn event_xml(ts: i64, body: &str) -> String {
    format!("<xml><ToUserName><![CDATA[{SCOPE}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName><CreateTime>{ts}</CreateTime><MsgType><![CDATA[event]]></MsgType>{body}</xml>")
}

async fn mark_tags(fake: &FakeWecom, n: usize) -> Vec<Value> {
    for _ in 0..1500 {
        let list: Vec<Value> = fake
            .deliveries()
            .into_iter()
            .filter(|d| d.api == "mark_tag")
            .map(|d| d.body)
            .collect();
        if list.len() >= n {
            return list;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("fewer than {n} mark_tag calls arrived");
}

async fn wecom_tags_are_pulled_mirrored_and_applied_without_loops(backend: Backend) {
    let fake = FakeWecom::start("127.0.0.1:0").await.expect("stand-in");
    fake.add_tag_group(
        json!({ "group_id": "etg1", "group_name": "客户等级", "tag": [
            { "id": "etVIP", "name": "VIP" }, { "id": "etNEW", "name": "新客" }
        ]}),
    );
    fake.add_contact(&json!({ "external_userid": "wm1", "name": "王五", "follow_user": [{ "userid": "zhangsan",
        "tags": [{ "group_name": "客户等级", "tag_name": "新客", "tag_id": "etNEW", "type": 1 }] }] }));
    let base = fake.base_url();
    let app = TestApp::spawn_with(backend, move |c| {
        c.ops_api.token = Secret::new(TOKEN);
        c.api.wecom_base = base;
        c.outbox.poll_interval_ms = 10;
    })
    .await;
    let added = Simulated::ContactAdded {
        staff: "zhangsan".into(),
        external: "wm1".into(),
        state: None,
        welcome_code: None,
    };
    assert_eq!(
        app.post("demo_app", &app.build("demo_app", &added))
            .await
            .status(),
        200
    );

    let (status, body) = call(&app, "POST", &format!("/api/v1/tags/{SCOPE}/sync"), None).await;
    assert_eq!((status, body["tags"].as_i64()), (200, Some(2)), "{body}");
    assert_eq!(
        call(&app, "POST", "/api/v1/tags/nowhere/sync", None)
            .await
            .0,
        404
    );

    // A local change of a WeCom tag is marked at WeCom, for the staff member who has the customer.
    let path = format!("/api/v1/members/{SCOPE}/wm1/tags");
    call(&app, "POST", &path, Some(json!({ "add": ["VIP"] }))).await;
    let marks = mark_tags(&fake, 1).await;
    assert_eq!(
        marks[0],
        json!({ "userid": "zhangsan", "external_userid": "wm1", "add_tag": ["etVIP"] })
    );

    // A staff member edited the customer's tags in WeCom: applied locally as platform tags.
    let ts = app.clock.now_ms() / 1000;
    post_event(&app, &event_xml(ts, "<Event><![CDATA[change_external_contact]]></Event><ChangeType><![CDATA[edit_external_contact]]></ChangeType><UserID><![CDATA[zhangsan]]></UserID><ExternalUserID><![CDATA[wm1]]></ExternalUserID>")).await;
    let d = detail(&app, "wm1").await;
    let new = d["tags"]
        .as_array()
        .and_then(|a| a.iter().find(|t| t["name"] == "新客"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (new["source"].as_str(), new["set_by"].as_str()),
        (Some("platform"), Some("wecom:zhangsan")),
        "{d}"
    );

    // Not pushed back: the next mirrored change is the manual removal, and nothing marks 新客.
    call(&app, "POST", &path, Some(json!({ "remove": ["VIP"] }))).await;
    let marks = mark_tags(&fake, 2).await;
    assert_eq!(marks[1]["remove_tag"], json!(["etVIP"]));
    assert!(
        !marks.iter().any(|m| m.to_string().contains("etNEW")),
        "{marks:?}"
    );

    // The corp tag library changed at WeCom: the event pulls it again.
    fake.add_tag_group(json!({ "group_id": "etg2", "group_name": "兴趣", "tag": [{ "id": "etRUN", "name": "跑步" }] }));
    post_event(&app, &event_xml(ts, "<Event><![CDATA[change_external_tag]]></Event><ChangeType><![CDATA[create]]></ChangeType><Id><![CDATA[etg2]]></Id><TagType><![CDATA[tag_group]]></TagType>")).await;
    let (_, list) = call(&app, "GET", &format!("/api/v1/tags/{SCOPE}"), None).await;
    let run = list["tags"]
        .as_array()
        .and_then(|a| a.iter().find(|t| t["name"] == "跑步"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (run["platform_id"].as_str(), run["source"].as_str()),
        (Some("etRUN"), Some("platform")),
        "{list}"
    );

    // Add, remove, add, remove in quick succession: WeCom gets the final state in one call,
    // so calls applied out of order there cannot leave the customer tagged.
    let mut tx = app.store.begin_write().await.expect("tx");
    for add in [true, false, true, false] {
        let change = yunying::store::tags::TagChange {
            scope: SCOPE,
            user_id: "wm1",
            tag: "VIP",
            source: "manual",
            by: "ops",
            now_ms: app.clock.now_ms(),
        };
        yunying::store::tags::set(&mut tx, &change, add)
            .await
            .expect("set");
    }
    tx.commit().await.expect("commit");
    let marks = mark_tags(&fake, 3).await;
    assert_eq!(
        marks[2],
        json!({ "userid": "zhangsan", "external_userid": "wm1", "remove_tag": ["etVIP"] }),
        "{marks:?}"
    );

    // A tag made here is not at WeCom until pushed: the reconcile lists it, a push creates it.
    let (status, _) = call(
        &app,
        "POST",
        &format!("/api/v1/tags/{SCOPE}"),
        Some(json!({ "name": "活跃用户" })),
    )
    .await;
    assert_eq!(status, 201);
    let wecom = format!("/api/v1/tags/{SCOPE}/wecom");
    let (status, diff) = call(&app, "GET", &wecom, None).await;
    assert_eq!(status, 200, "{diff}");
    assert!(
        diff["only_local"]
            .as_array()
            .is_some_and(|a| a.contains(&json!("活跃用户"))),
        "{diff}"
    );
    let (status, pushed) = call(
        &app,
        "POST",
        &wecom,
        Some(json!({ "group": "运营标签", "tags": ["活跃用户"] })),
    )
    .await;
    assert_eq!(
        (status, pushed["created"].clone()),
        (200, json!(["活跃用户"])),
        "{pushed}"
    );
    let (_, diff) = call(&app, "GET", &wecom, None).await;
    assert!(
        !diff["only_local"]
            .as_array()
            .is_some_and(|a| a.contains(&json!("活跃用户"))),
        "{diff}"
    );
    assert_eq!(
        app.store
            .tag_by_platform_id(SCOPE, "et活跃用户")
            .await
            .expect("read")
            .as_deref(),
        Some("活跃用户")
    );
    let (status, _) = call(
        &app,
        "POST",
        &wecom,
        Some(json!({ "group": "", "tags": ["x"] })),
    )
    .await;
    assert_eq!(status, 400);
}
