//! Welcome messages and pushes through the running server: encrypted add-contact and join
//! callbacks become `send_welcome_msg` and robot greetings at the WeCom stand-in, once each,
//! within the welcome window; the ops API queues pushes by key and refuses bad ones.

use serde_json::{json, Value};
use yunying::clock::Clock as _;
use yunying::config::Secret;
use yunying::fake_wecom::FakeWecom;
use yunying::send::Simulated;

use crate::backend_tests;
use crate::helpers::{Backend, TestApp};

backend_tests!(
    new_contacts_and_new_group_members_are_welcomed_once,
    pushes_from_the_api_are_queued_once_and_skip_muted_members,
);

const TOKEN: &str = "ops-token-0123456789";

async fn spawn(backend: Backend, fake: &FakeWecom) -> TestApp {
    let base = fake.base_url();
    TestApp::spawn_with(backend, move |c| {
        c.api.wecom_base = base.clone();
        c.api.mp_base = base;
        c.outbox.poll_interval_ms = 10;
        c.ops_api.token = Secret::new(TOKEN);
        c.welcome
            .by_state
            .insert("spring".into(), "{{ name }}，春季活动欢迎你！".into());
    })
    .await
}

/// Waits until the stand-in has `n` deliveries of `api` (the worker runs on its own).
async fn delivered(fake: &FakeWecom, api: &str, n: usize) -> Vec<Value> {
    for _ in 0..1000 {
        let list: Vec<Value> = fake
            .deliveries()
            .into_iter()
            .filter(|d| d.api == api)
            .map(|d| d.body)
            .collect();
        if list.len() >= n {
            return list;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the stand-in did not receive {n} × {api}");
}

async fn seed_contact(fake: &FakeWecom, id: &str, name: &str) {
    let response = reqwest::Client::new()
        .post(format!("{}/_fake/contacts", fake.base_url()))
        .json(&json!({ "external_userid": id, "name": name, "follow_user": [{ "userid": "zhangsan" }] }))
        .send()
        .await
        .expect("seed");
    assert!(response.status().is_success());
}

fn added(external: &str, state: Option<&str>, code: &str) -> Simulated {
    Simulated::ContactAdded {
        staff: "zhangsan".into(),
        external: external.into(),
        state: state.map(str::to_owned),
        welcome_code: Some(code.into()),
    }
}

async fn new_contacts_and_new_group_members_are_welcomed_once(backend: Backend) {
    let fake = FakeWecom::start("127.0.0.1:0").await.expect("stand-in");
    seed_contact(&fake, "wm-wang", "王五").await;
    seed_contact(&fake, "wm-zhao", "赵六").await;
    let app = spawn(backend, &fake).await;

    let request = app.build("demo_app", &added("wm-wang", None, "WC-1"));
    assert_eq!(app.post("demo_app", &request).await.status(), 200);
    // WeCom's retry of the same event (fresh envelope, same inner message).
    let retry = app.build("demo_app", &added("wm-wang", None, "WC-1"));
    assert_eq!(app.post("demo_app", &retry).await.status(), 200);
    let welcomes = delivered(&fake, "send_welcome_msg", 1).await;
    assert_eq!(welcomes[0]["welcome_code"], "WC-1");
    let text = welcomes[0]["text"]["content"].as_str().unwrap_or("");
    assert!(
        text.contains("王五"),
        "the name comes from externalcontact/get: {text}"
    );

    // A contact-way State with its own text.
    let spring = app.build("demo_app", &added("wm-zhao", Some("spring"), "WC-2"));
    assert_eq!(app.post("demo_app", &spring).await.status(), 200);
    let welcomes = delivered(&fake, "send_welcome_msg", 2).await;
    assert_eq!(welcomes[1]["text"]["content"], "赵六，春季活动欢迎你！");

    // An event older than the 20-second window: the code is useless, so nothing is sent.
    app.clock.advance_ms(-30_000);
    let late = app.build("demo_app", &added("wm-late", None, "WC-3"));
    app.clock.advance_ms(30_000);
    assert_eq!(app.post("demo_app", &late).await.status(), 200);

    // A member joins a customer group: the group's robot greets them with the rules.
    let join = Simulated::Join {
        group: "wr-group-1".into(),
        members: vec!["wm-wang".into()],
    };
    assert_eq!(
        app.post("demo_app", &app.build("demo_app", &join))
            .await
            .status(),
        200
    );
    let greetings = delivered(&fake, "webhook/send", 1).await;
    let greeting = greetings[0]["text"]["content"].as_str().unwrap_or("");
    assert!(
        greeting.contains("王五") && greeting.contains("群规"),
        "{greeting}"
    );

    for _ in 0..500 {
        let dead = app.store.outbox_rows(Some("dead"), 10).await.expect("rows");
        if !dead.is_empty() {
            assert!(dead[0]
                .last_error
                .as_deref()
                .unwrap_or("")
                .contains("expired"));
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let rows = app.store.outbox_rows(None, 100).await.expect("rows");
    assert_eq!(rows.len(), 4, "one row per event and purpose: {rows:?}");
    assert_eq!(
        delivered(&fake, "send_welcome_msg", 2).await.len(),
        2,
        "no second welcome for the retry, none for the late event"
    );
}

async fn api(app: &TestApp, body: Value) -> (u16, Value) {
    app.api_post("/api/v1/outbox", TOKEN, &body).await
}

async fn pushes_from_the_api_are_queued_once_and_skip_muted_members(backend: Backend) {
    let fake = FakeWecom::start("127.0.0.1:0").await.expect("stand-in");
    let app = spawn(backend, &fake).await;
    let push =
        json!({ "channel": "demo_app", "to": ["lisi"], "text": "今晚八点直播", "key": "push-1" });
    assert_eq!(api(&app, push.clone()).await.0, 201);
    assert_eq!(api(&app, push).await.0, 200, "the same key is queued once");
    let sent = delivered(&fake, "message/send", 1).await;
    assert_eq!(sent[0]["touser"], "lisi");
    assert_eq!(sent[0]["agentid"], 1000002);
    assert_eq!(sent[0]["enable_duplicate_check"], 1);

    let (status, body) = api(&app, json!({ "channel": "nope", "text": "x" })).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = api(
        &app,
        json!({ "channel": "demo_app", "to": ["a"], "text": "  " }),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = api(
        &app,
        json!({ "channel": "demo_app", "to": ["wm1"], "text": "x", "format": "mass" }),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap_or("").contains("sender"),
        "{body}"
    );
    let (status, body) = api(&app, json!({ "channel": "demo_gateway", "text": "x" })).await;
    assert_eq!(status, 400, "{body}");

    // A muted member gets no pushes.
    let mut tx = app.store.begin_write().await.expect("tx");
    yunying::store::commands::mute(
        &mut tx,
        "wwdemo0000000001",
        "quiet",
        "zhangsan",
        app.clock.now_ms(),
    )
    .await
    .expect("mute");
    tx.commit().await.expect("commit");
    assert_eq!(
        api(
            &app,
            json!({ "channel": "demo_app", "to": ["quiet"], "text": "打扰了", "key": "push-2" })
        )
        .await
        .0,
        201
    );
    for _ in 0..500 {
        let row = app
            .store
            .outbox_row("push-2")
            .await
            .expect("row")
            .expect("exists");
        if row.state == "dead" {
            assert!(row.last_error.unwrap_or_default().contains("muted"));
            let stats: Value = app
                .client
                .get(app.url("/api/v1/outbox/stats"))
                .bearer_auth(TOKEN)
                .send()
                .await
                .expect("stats")
                .json()
                .await
                .expect("json");
            assert_eq!(stats["states"]["sent"], 1);
            assert_eq!(stats["states"]["dead"], 1);
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the muted push never went dead");
}
