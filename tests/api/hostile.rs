//! Hostile and broken input, through the real server: Official Account modes that cannot be
//! downgraded, bounded parsing before the signature, nesting limits, identifiers that never fail
//! a group commit, and platform times that are not believed blindly.

use serde_json::{json, Value};
use yunying::clock::Clock as _;
use yunying::config::{ChannelKind, Secret, StaffConfig};
use yunying::send::{self, BuiltRequest, Simulated};
use yunying::wecom::crypto;

use crate::backend_tests;
use crate::helpers::{channel_config, Backend, TestApp};

backend_tests!(
    a_safe_mode_official_account_refuses_plaintext_bodies,
    compatible_mode_never_runs_staff_commands_from_plaintext_bodies,
    a_plaintext_official_account_refuses_encrypted_posts_with_400,
    deep_or_huge_xml_is_refused_before_and_after_the_signature,
    segment_and_rule_nesting_is_refused_with_the_position,
    bad_identifiers_get_400_and_never_fail_their_neighbours,
    implausible_message_times_use_the_arrival_time,
    a_late_sign_in_never_breaks_the_streak,
    ops_templates_are_refused_when_saved_and_dead_lettered_when_sent
);

const TOKEN: &str = "ops-token-0123456789";
const MP_APP_ID: &str = "wxdemo0000000001";

fn text(from: &str, body: &str, msg_id: &str) -> Simulated {
    Simulated::Text {
        from: from.into(),
        name: None,
        group: None,
        text: body.into(),
        msg_id: msg_id.into(),
    }
}

/// What the platform sends in plaintext mode: the body as is, `signature` over token,
/// timestamp and nonce only.
fn plaintext_request(app: &TestApp, channel_id: &str, what: &Simulated) -> BuiltRequest {
    let channel = app.channel(channel_id);
    let ts = app.clock.now_ms() / 1000;
    let inner = send::inner_payload(channel, what, ts).expect("payload");
    let token = channel.token.as_deref().expect("token");
    let nonce = "123456";
    let signature = crypto::signature(token, &ts.to_string(), nonce, None);
    BuiltRequest {
        query: format!("signature={signature}&timestamp={ts}&nonce={nonce}&openid=o"),
        headers: Vec::new(),
        body: inner.into_bytes(),
    }
}

async fn reply_text(app: &TestApp, channel: &str, response: reqwest::Response) -> Option<String> {
    assert_eq!(response.status(), 200);
    let body = response.bytes().await.expect("body");
    send::open_reply(app.channel(channel), &body).expect("opens")
}

async fn a_safe_mode_official_account_refuses_plaintext_bodies(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let forged = plaintext_request(&app, "demo_mp", &text("zhangsan", "/stats", "f1"));
    let response = app.post("demo_mp", &forged).await;
    assert_eq!(response.status(), 400);
    let reason = response.text().await.expect("reason");
    assert!(reason.contains("safe mode"), "{reason}");
    assert_eq!(
        app.inbox_count().await,
        0,
        "nothing of a refused body is stored"
    );
    // The genuine, encrypted delivery works.
    let (status, reply) = app.send_text("demo_mp", "o1", None, "ping", "f2").await;
    assert_eq!(status, 200);
    assert!(reply.expect("reply").starts_with("pong"));
}

async fn compatible_mode_never_runs_staff_commands_from_plaintext_bodies(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.ops_api.token = Secret::new(TOKEN);
        c.channels.get_mut("demo_mp").expect("demo_mp").mode = Some("compatible".into());
        c.commands.staff.push(StaffConfig {
            scope: MP_APP_ID.into(),
            user: "oStaff".into(),
            role: "admin".into(),
            channel: None,
        });
    })
    .await;
    let forged = plaintext_request(&app, "demo_mp", &text("oStaff", "/stats", "c1"));
    let reply = reply_text(&app, "demo_mp", app.post("demo_mp", &forged).await)
        .await
        .expect("reply");
    assert!(reply.contains("未经签名"), "{reply}");
    // Plaintext members' messages still work.
    let ping = plaintext_request(&app, "demo_mp", &text("o2", "ping", "c2"));
    let pong = reply_text(&app, "demo_mp", app.post("demo_mp", &ping).await).await;
    assert!(pong.expect("pong").starts_with("pong"));
    // The same command, encrypted, runs.
    let (_, stats) = app
        .send_text("demo_mp", "oStaff", None, "/stats", "c3")
        .await;
    let stats = stats.expect("stats");
    assert!(
        !stats.contains("未经签名") && !stats.contains("权限"),
        "{stats}"
    );
    // `scope = "*"` (zhangsan, the example's admin) does not reach Official Account OpenIDs.
    let (_, star) = app
        .send_text("demo_mp", "zhangsan", None, "/stats", "c4")
        .await;
    assert!(star.expect("reply").contains("需要运营权限"));

    let (_, audit) = app
        .api_call("GET", "/api/v1/audit", TOKEN, &Value::Null)
        .await;
    let outcomes: Vec<(&str, &str)> = audit["audit"]
        .as_array()
        .expect("audit")
        .iter()
        .map(|r| {
            (
                r["user_id"].as_str().unwrap_or(""),
                r["outcome"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert!(
        outcomes.contains(&("oStaff", "refused_unsigned")),
        "{outcomes:?}"
    );
    assert!(outcomes.contains(&("oStaff", "ok")), "{outcomes:?}");
}

async fn a_plaintext_official_account_refuses_encrypted_posts_with_400(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        let mut plain = channel_config(ChannelKind::WechatMp);
        plain.token = Some(Secret::new("plainToken123"));
        plain.app_id = Some("wxplain000000001".into());
        plain.mode = Some("plaintext".into());
        c.channels.insert("mp_plain".into(), plain);
    })
    .await;
    // An encrypted delivery as the safe-mode channel would get, posted to the plaintext one.
    let encrypted = app.build("demo_mp", &text("o1", "ping", "p1"));
    let response = app.post("mp_plain", &encrypted).await;
    assert_eq!(response.status(), 400);
    let reason = response.text().await.expect("reason");
    assert!(reason.contains("plaintext mode"), "{reason}");
    let ok = plaintext_request(&app, "mp_plain", &text("o1", "ping", "p2"));
    let pong = reply_text(&app, "mp_plain", app.post("mp_plain", &ok).await).await;
    assert!(pong.expect("pong").starts_with("pong"));
}

/// A delivery to the demo robot with `inner` as its (signed, encrypted) message.
fn sealed(app: &TestApp, inner: &str) -> BuiltRequest {
    let channel = app.channel("demo_robot");
    let ts = app.clock.now_ms() / 1000;
    send::build_request(channel, inner, ts, "777").expect("request")
}

async fn deep_or_huge_xml_is_refused_before_and_after_the_signature(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let good = app.build("demo_robot", &text("u1", "ping", "x0"));
    // 9,000 nested elements (63 KB) with a garbage signature: the scan finds no Encrypt and stops.
    let deep = format!("<xml>{}{}</xml>", "<a>".repeat(9_000), "</a>".repeat(9_000));
    let response = app
        .client
        .post(app.url(&format!("/callbacks/demo_robot?{}", good.query)))
        .body(deep.clone())
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 400);
    // The same with an Encrypt element: the signature is checked first, and fails.
    let with_encrypt = deep.replace("</xml>", "<Encrypt>AAAA</Encrypt></xml>");
    let response = app
        .client
        .post(app.url(&format!("/callbacks/demo_robot?{}", good.query)))
        .body(with_encrypt)
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 401);
    // Signed and encrypted, but nesting past the limit inside: refused after decryption.
    let inner = format!("<xml>{}{}</xml>", "<a>".repeat(40), "</a>".repeat(40));
    let response = app.post("demo_robot", &sealed(&app, &inner)).await;
    assert_eq!(response.status(), 400);
    assert!(response
        .text()
        .await
        .expect("reason")
        .contains("nests deeper"));
    // An element name with control characters comes back escaped.
    let inner = "<xml><MsgType>text</MsgType><a\u{1b}[31m>x</b></xml>";
    let response = app.post("demo_robot", &sealed(&app, inner)).await;
    assert_eq!(response.status(), 400);
    let reason = response.text().await.expect("reason");
    assert!(!reason.chars().any(char::is_control), "{reason:?}");
    assert_eq!(app.inbox_count().await, 0);
}

async fn segment_and_rule_nesting_is_refused_with_the_position(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.ops_api.token = Secret::new(TOKEN)).await;
    let deep = format!("{}tag:a{}", "(".repeat(5000), ")".repeat(5000));
    let response = app
        .client
        .get(app.url("/api/v1/members/wwdemo0000000001"))
        .query(&[("segment", deep.as_str())])
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("get");
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.expect("json");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(error.contains("at character 65"), "{error}");
    let nots = format!("{}tag:a", "not ".repeat(3000));
    let (status, body) = app
        .api_call(
            "PUT",
            "/api/v1/tag-rules/deep",
            TOKEN,
            &json!({ "kind": "segment", "pattern": nots, "add": ["x"] }),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    // The server is still there.
    let (status, _) = app
        .api_call(
            "GET",
            "/api/v1/members/wwdemo0000000001?segment=tag:a",
            TOKEN,
            &Value::Null,
        )
        .await;
    assert_eq!(status, 200);
}

async fn bad_identifiers_get_400_and_never_fail_their_neighbours(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let bad_bodies = [
        json!({ "type": "message", "msg_id": "n1", "sender": { "id": "u\u{0}x" }, "text": "hi", "mentions_bot": true }),
        json!({ "type": "message", "msg_id": "x".repeat(30_000), "sender": { "id": "u1" }, "text": "hi" }),
        json!({ "type": "message", "msg_id": "n3", "sender": { "id": "u1" }, "group": { "id": "g".repeat(30_000) }, "text": "hi" }),
    ];
    let mut requests = Vec::new();
    for (i, body) in bad_bodies.iter().enumerate() {
        requests.push((false, gateway_request(&app, &body.to_string(), i)));
    }
    for i in 0..60 {
        let body = json!({ "type": "message", "msg_id": format!("ok{i}"), "sender": { "id": format!("u{i}"), "name": "名\u{0}字" },
                           "group": { "id": "g1", "name": "群\u{0}" }, "text": "大家好" });
        requests.push((true, gateway_request(&app, &body.to_string(), 100 + i)));
    }
    let app = &app;
    let results = futures_util::future::join_all(requests.iter().map(|(good, r)| async move {
        (
            *good,
            app.post_unsettled("demo_gateway", r)
                .await
                .status()
                .as_u16(),
        )
    }))
    .await;
    for (good, status) in &results {
        assert_eq!(*status, if *good { 200 } else { 400 }, "{results:?}");
    }
    app.settle().await;
    assert_eq!(app.inbox_count().await, 60);
    let names: Vec<String> = app
        .query_column("select name from chat_groups where platform_group_id = 'g1'")
        .await;
    assert_eq!(names, vec!["群".to_owned()]);
}

fn gateway_request(app: &TestApp, body: &str, nonce: usize) -> BuiltRequest {
    let ts = app.clock.now_ms() / 1000;
    send::build_request(app.channel("demo_gateway"), body, ts, &nonce.to_string()).expect("request")
}

async fn implausible_message_times_use_the_arrival_time(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let channel = app.channel("demo_app");
    let now = app.clock.now_ms() / 1000;
    for (i, claimed) in [0, now + 2 * 86_400, i64::MAX].into_iter().enumerate() {
        let what = text(&format!("t{i}"), "签到", &format!("t{i}"));
        let inner = send::inner_payload(channel, &what, claimed).expect("inner");
        let request = send::build_request(channel, &inner, now, "9").expect("request");
        let response = app.post("demo_app", &request).await;
        assert_eq!(response.status(), 200);
    }
    let today = yunying::members::local_day(app.app_state.config.timezone(), now);
    let days: Vec<i32> = app
        .query_column("select day from signins order by member_id")
        .await;
    assert_eq!(
        days,
        vec![today; 3],
        "every sign-in is for the day it arrived"
    );
    let first_seen: Vec<i64> = app
        .query_column("select first_seen_at from members where platform_user_id = 't2'")
        .await;
    assert!(
        first_seen.iter().all(|&t| (t / 1000 - now).abs() < 5),
        "{first_seen:?}"
    );
}

async fn a_late_sign_in_never_breaks_the_streak(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let channel = app.channel("demo_app");
    let now = app.clock.now_ms() / 1000;
    let signin = |at: i64, id: &str| {
        let inner = send::inner_payload(channel, &text("late", "签到", id), at).expect("inner");
        send::build_request(channel, &inner, now, id).expect("request")
    };
    // Today first, then yesterday's delivery arrives late (within the 24 h window).
    app.post("demo_app", &signin(now, "d0")).await;
    let late = app.post("demo_app", &signin(now - 20 * 3600, "d1")).await;
    assert_eq!(late.status(), 200);
    let (_, summary) = app.send_text("demo_app", "late", None, "积分", "d2").await;
    let summary = summary.expect("summary");
    assert!(summary.contains("连续签到 2 天"), "{summary}");
    let tz = app.app_state.config.timezone();
    let (today, yesterday) = (
        yunying::members::local_day(tz, now),
        yunying::members::local_day(tz, now - 20 * 3600),
    );
    let last: Vec<i32> = app
        .query_column("select cast(last_signin_day as integer) from points_accounts")
        .await;
    assert_eq!(last, vec![today]);
    let streaks: Vec<i64> = app
        .query_column("select cast(streak as bigint) from signins order by day")
        .await;
    assert_eq!(streaks, vec![1, 2], "{yesterday} then {today}");
}

async fn ops_templates_are_refused_when_saved_and_dead_lettered_when_sent(backend: Backend) {
    let long_reply = format!("{{{{ name }}}}{}", "好".repeat(620));
    let plan: yunying::config::RecallPlanConfig = toml::from_str(&format!(
        r#"
        id = "long"
        name = "长消息"
        cron = "0 0 10 * * *"
        channel = "demo_robot"
        segment = "messages >= 0"
        holdout_percent = 0
        recall_window_days = 7
        cooldown_days = 5
        max_touches = 1
        send_hours = [0, 24]
        [[touches]]
        after_days = 1
        template = "{long_reply}"
        "#
    ))
    .expect("plan");
    let app = TestApp::spawn_with(backend, move |c| {
        c.ops_api.token = Secret::new(TOKEN);
        c.recall.plans = vec![plan];
    })
    .await;
    let nested = "{% for a in [1,2,3,4,5,6,7,8,9,10] %}{% for b in [1,2,3,4,5,6,7,8,9,10] %}{% for c in [1,2,3,4,5,6,7,8,9,10] %}{% for d in [1,2,3,4,5,6,7,8,9,10] %}x{% endfor %}{% endfor %}{% endfor %}{% endfor %}";
    for answer in [
        nested,
        "{{ debug() }}",
        "{% include 'replies/pong.txt.j2' %}",
        "{% for i in [1,2,3] %}{{ 'x' * 10000 }}{% endfor %}",
    ] {
        let (status, body) = app
            .api_call(
                "POST",
                "/api/v1/faq/entries",
                TOKEN,
                &json!({ "question": "测试问题", "answer": answer }),
            )
            .await;
        assert_eq!(status, 400, "{answer}: {body}");
        assert!(
            body["error"]
                .as_str()
                .unwrap_or_default()
                .contains("answer template"),
            "{body}"
        );
    }
    let what = Simulated::Text {
        from: "zhangsan".into(),
        name: Some("张三".into()),
        group: Some("g".into()),
        text: "/faq add 循环 | {{ debug() }}".into(),
        msg_id: "t1".into(),
    };
    let refused = reply_text(
        &app,
        "demo_robot",
        app.post("demo_robot", &app.build("demo_robot", &what))
            .await,
    )
    .await
    .expect("reply");
    assert!(
        refused.contains("未新增") && refused.contains("debug"),
        "{refused}"
    );

    // A member whose name makes the touch longer than one message: a dead letter with the reason.
    let long_name = "长".repeat(128);
    let what = Simulated::Text {
        from: "u-long".into(),
        name: Some(long_name),
        group: Some("g".into()),
        text: "大家好".into(),
        msg_id: "t2".into(),
    };
    app.post("demo_robot", &app.build("demo_robot", &what))
        .await;
    app.clock.advance_ms(2 * 86_400_000);
    let (status, report) = app
        .api_call("POST", "/api/v1/recall/long/run", TOKEN, &Value::Null)
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["unrendered"], 1, "{report}");
    let errors: Vec<String> = app
        .query_column("select last_error from outbox where state = 'dead' and kind = 'unrendered'")
        .await;
    assert_eq!(errors.len(), 1);
    assert!(errors[0].contains("2048"), "{errors:?}");
}
