//! FAQ answers through the real server: answering, "您是不是想问" with a numbered reply, the
//! unanswered loop (grouped, then resolved through the ops API and answered), and unprompted
//! answers in groups with the per-group switch and cooldown.

use serde_json::{json, Value};
use yunying::clock::Clock as _;
use yunying::config::{Config, Secret};
use yunying::faq::import;
use yunying::send;
use yunying::store::faq::NewFaqEntry;

use crate::backend_tests;
use crate::helpers::{Backend, TestApp};

backend_tests!(
    answers_suggests_and_takes_a_numbered_choice,
    unanswered_questions_are_grouped_and_resolved,
    groups_answer_unprompted_only_when_switched_on,
    entry_changes_take_effect_without_restart
);

const TOKEN: &str = "ops-token-0123456789";

fn entry(id: &str, question: &str, similar: &[&str], answer: &str) -> NewFaqEntry {
    NewFaqEntry {
        external_id: Some(id.into()),
        question: question.into(),
        similar: similar.iter().map(|s| (*s).to_owned()).collect(),
        answer: answer.into(),
        enabled: true,
        ..NewFaqEntry::default()
    }
}

async fn seed(app: &TestApp) {
    let rows: Vec<(usize, NewFaqEntry)> = [
        entry(
            "refund",
            "怎么申请退款",
            &["退款流程是什么"],
            "{{ name }}，退款请在订单页点击「申请退款」。",
        ),
        entry(
            "live",
            "直播几点开始",
            &["今晚直播什么时候"],
            "每晚八点开播。",
        ),
        entry("invoice", "发票怎么开", &[], "在个人中心申请电子发票。"),
        entry(
            "vip",
            "会员多少钱一年",
            &["年费会员价格"],
            "会员 99 元/年。",
        ),
        entry(
            "nick",
            "怎么修改群昵称",
            &[],
            "在群设置里修改“我在本群的昵称”。",
        ),
    ]
    .into_iter()
    .enumerate()
    .collect();
    import::import(&app.store, &rows, app.clock.now_ms(), |_, _| {})
        .await
        .expect("import");
}

fn with_token(config: &mut Config) {
    config.ops_api.token = Secret::new(TOKEN);
}

async fn api(app: &TestApp, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = match method {
        "GET" => app.client.get(app.url(path)),
        "PUT" => app.client.put(app.url(path)),
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

async fn answers_suggests_and_takes_a_numbered_choice(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    seed(&app).await;
    let answer = app
        .robot_say("u1", Some("g"), "请问如何申请退款？", "a1")
        .await;
    assert_eq!(answer, "用户u1，退款请在订单页点击「申请退款」。");

    // Thresholds that never answer outright: every match becomes a suggestion.
    let app = TestApp::spawn_with(backend, |c| {
        c.faq.answer_threshold = 1.0;
        c.faq.suggest_threshold = 0.0;
    })
    .await;
    seed(&app).await;
    let offer = app
        .robot_say("u1", Some("g"), "今晚直播几点开始", "b1")
        .await;
    assert!(
        offer.contains("您是不是想问") && offer.contains("1. 直播几点开始"),
        "{offer}"
    );
    let picked = app.robot_say("u1", Some("g"), "１", "b2").await;
    assert_eq!(picked, "每晚八点开播。");
    // The choice is used up; another member never had one.
    assert_eq!(app.robot_say("u1", Some("g"), "2", "b3").await, "");
    assert_eq!(app.robot_say("u2", Some("g"), "1", "b4").await, "");
    let hits = app.store.faq_entries(true).await.expect("entries");
    assert_eq!(
        hits.iter()
            .find(|e| e.question == "直播几点开始")
            .map(|e| e.hit_count),
        Some(1)
    );
}

async fn unanswered_questions_are_grouped_and_resolved(backend: Backend) {
    let app = TestApp::spawn_with(backend, with_token).await;
    seed(&app).await;
    let unsure = app
        .robot_say("u1", Some("g"), "火星上有没有你们的分店", "c1")
        .await;
    assert!(unsure.contains("已经记录"), "{unsure}");
    app.robot_say("u2", Some("g"), "火星上有你们的分店吗", "c2")
        .await;
    app.robot_say("u3", Some("g"), "你们支持海外邮寄吗", "c3")
        .await;

    let (status, body) = api(&app, "GET", "/api/v1/faq/unanswered", None).await;
    assert_eq!(status, 200);
    let items = body["unanswered"].as_array().expect("list");
    assert_eq!(items.len(), 2, "{body}");
    assert_eq!(items[0]["question"], "火星上有没有你们的分店");
    assert_eq!(items[0]["asked"], 2);

    let id = items[0]["id"].as_i64().expect("id");
    let (status, body) = api(
        &app,
        "POST",
        &format!("/api/v1/faq/unanswered/{id}/resolve"),
        Some(json!({ "answer": "暂时没有火星分店。" })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // The new entry answers at once (the matcher was rebuilt).
    let now = app
        .robot_say("u4", Some("g"), "火星上有没有你们的分店", "c4")
        .await;
    assert_eq!(now, "暂时没有火星分店。");
    let (_, body) = api(&app, "GET", "/api/v1/faq/unanswered", None).await;
    assert_eq!(body["unanswered"].as_array().map(Vec::len), Some(1));

    // Turning the other into a similar question of an existing entry.
    let other = body["unanswered"][0]["id"].as_i64().expect("id");
    let invoice = app
        .store
        .faq_entries(true)
        .await
        .expect("entries")
        .into_iter()
        .find(|e| e.question == "发票怎么开")
        .expect("invoice entry");
    let (status, _) = api(
        &app,
        "POST",
        &format!("/api/v1/faq/unanswered/{other}/resolve"),
        Some(json!({ "entry_id": invoice.id })),
    )
    .await;
    assert_eq!(status, 200);
    let entry = app
        .store
        .faq_entry(invoice.id)
        .await
        .expect("q")
        .expect("entry");
    assert_eq!(entry.similar, vec!["你们支持海外邮寄吗".to_owned()]);
    let (status, _) = api(
        &app,
        "POST",
        &format!("/api/v1/faq/unanswered/{other}/resolve"),
        Some(json!({ "entry_id": invoice.id })),
    )
    .await;
    assert_eq!(status, 409, "closed once");

    let (status, body) = api(
        &app,
        "POST",
        "/api/v1/faq/test",
        Some(json!({ "question": "会员一年多少钱" })),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        body["candidates"][0]["question"], "会员多少钱一年",
        "{body}"
    );
}

/// A group message through the gateway channel, not addressed to the bot.
async fn say_in_group(app: &TestApp, text: &str, msg_id: &str) -> Option<String> {
    let channel = app.channel("demo_gateway");
    let ts = app.clock.now_ms() / 1000;
    let inner = json!({
        "type": "message", "msg_id": msg_id, "sender": { "id": "m1", "name": "小明" },
        "group": { "id": "g1" }, "text": text, "mentions_bot": false, "time": ts,
    })
    .to_string();
    let request = send::build_request(channel, &inner, ts, "n1").expect("request");
    let response = app.post("demo_gateway", &request).await;
    assert_eq!(response.status(), 200);
    let body = response.bytes().await.expect("body");
    send::open_reply(channel, &body).expect("opens")
}

async fn groups_answer_unprompted_only_when_switched_on(backend: Backend) {
    let app = TestApp::spawn_with(backend, with_token).await;
    seed(&app).await;
    assert_eq!(
        say_in_group(&app, "直播几点开始？", "g1").await,
        None,
        "auto-answer is off by default"
    );

    let scope = app.channel("demo_gateway").scope.clone();
    let (status, _) = api(
        &app,
        "PUT",
        &format!("/api/v1/faq/groups/{scope}/g1"),
        Some(json!({ "auto_answer": true })),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        say_in_group(&app, "直播几点开始？", "g2").await.as_deref(),
        Some("每晚八点开播。")
    );
    assert_eq!(
        say_in_group(&app, "大家好呀", "g3").await,
        None,
        "not a question"
    );
    assert_eq!(
        say_in_group(&app, "发票怎么开？", "g4").await,
        None,
        "cooling down"
    );
    app.clock.advance_ms(31_000);
    assert_eq!(
        say_in_group(&app, "发票怎么开？", "g5").await.as_deref(),
        Some("在个人中心申请电子发票。")
    );
}

async fn entry_changes_take_effect_without_restart(backend: Backend) {
    let app = TestApp::spawn_with(backend, with_token).await;
    seed(&app).await;
    assert_eq!(
        app.robot_say("u1", None, "直播几点开始", "e1").await,
        "每晚八点开播。"
    );
    let live = app
        .store
        .faq_entries(true)
        .await
        .expect("entries")
        .into_iter()
        .find(|e| e.question == "直播几点开始")
        .expect("live");
    let path = format!("/api/v1/faq/entries/{}", live.id);
    let changed = json!({ "question": "直播几点开始", "answer": "本周改为晚上九点。" });
    let (status, body) = api(&app, "PUT", &path, Some(changed)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        app.robot_say("u1", None, "直播几点开始", "e2").await,
        "本周改为晚上九点。"
    );

    let disabled = json!({ "question": "直播几点开始", "answer": "x", "enabled": false });
    assert_eq!(api(&app, "PUT", &path, Some(disabled)).await.0, 200);
    let after = app.robot_say("u1", None, "直播几点开始", "e3").await;
    assert!(
        !after.contains("九点") && !after.contains("八点"),
        "{after}"
    );

    let (status, body) = api(
        &app,
        "POST",
        "/api/v1/faq/entries",
        Some(json!({ "question": "怎么退会员", "answer": "联系客服办理。" })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        app.robot_say("u1", None, "怎么退会员", "e4").await,
        "联系客服办理。"
    );
    let new_id = body["id"].as_i64().expect("id");
    let (status, _) = api_delete(&app, &format!("/api/v1/faq/entries/{new_id}")).await;
    assert_eq!(status, 204);
    assert_ne!(
        app.robot_say("u1", None, "怎么退会员", "e5").await,
        "联系客服办理。"
    );
    let (status, body) = api(
        &app,
        "POST",
        "/api/v1/faq/entries",
        Some(json!({ "question": "", "answer": "a" })),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("question")),
        "{body}"
    );
}

async fn api_delete(app: &TestApp, path: &str) -> (u16, Value) {
    let response = app
        .client
        .delete(app.url(path))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}
