//! The AI bot (智能机器人) in API callback mode: encrypted JSON in, an encrypted JSON `stream`
//! reply finished in one frame out; retries answered once; the `enter_chat` welcome as `text`.

use serde_json::{json, Value};
use yunying::clock::Clock as _;
use yunying::send::{self, Simulated};

use crate::backend_tests;
use crate::helpers::{Backend, TestApp};

backend_tests!(
    json_callbacks_get_stream_replies_once,
    enter_chat_gets_the_welcome_text,
    a_slow_answer_goes_to_the_response_url,
);

/// Posts a decrypted message as the platform would; returns (status, decrypted reply JSON).
async fn post(app: &TestApp, inner: &str) -> (u16, Option<Value>) {
    let channel = app.channel("demo_aibot");
    let ts = app.clock.now_ms() / 1000;
    let request = send::build_request(channel, inner, ts, "777").expect("request");
    assert!(String::from_utf8_lossy(&request.body).starts_with("{\"encrypt\""));
    let response = app.post("demo_aibot", &request).await;
    let status = response.status().as_u16();
    let body = response.bytes().await.expect("body");
    if body.is_empty() {
        return (status, None);
    }
    let envelope: Value = serde_json::from_slice(&body).expect("JSON envelope");
    let crypt = channel.crypt.as_ref().expect("keys");
    let plain = crypt
        .open(
            envelope["msgsignature"].as_str().expect("msgsignature"),
            &envelope["timestamp"].to_string(),
            envelope["nonce"].as_str().expect("nonce"),
            envelope["encrypt"].as_str().expect("encrypt"),
        )
        .expect("reply opens with the channel's keys");
    (
        status,
        Some(serde_json::from_slice(&plain).expect("reply JSON")),
    )
}

async fn json_callbacks_get_stream_replies_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let channel = app.channel("demo_aibot");
    let what = |msg_id: &str, group: Option<&str>, content: &str| Simulated::Text {
        from: "lisi".into(),
        name: Some("李四".into()),
        group: group.map(str::to_owned),
        text: content.into(),
        msg_id: msg_id.into(),
    };
    let ts = app.clock.now_ms() / 1000;
    let inner =
        send::inner_payload(channel, &what("ai-1", Some("wrGroupA"), "ping"), ts).expect("inner");
    assert!(
        inner.contains("\"content\":\"@运营小助手 ping\""),
        "{inner}"
    );
    let (status, reply) = post(&app, &inner).await;
    assert_eq!(status, 200);
    let reply = reply.expect("a reply");
    assert_eq!(reply["msgtype"], "stream");
    assert_eq!(reply["stream"]["finish"], true);
    assert!(
        reply["stream"]["content"]
            .as_str()
            .is_some_and(|c| c.starts_with("pong")),
        "{reply}"
    );
    assert!(reply["stream"]["id"]
        .as_str()
        .is_some_and(|id| !id.is_empty()));

    // WeCom's retry of the same msgid: answered the same, processed once.
    let (_, again) = post(&app, &inner).await;
    assert_eq!(
        again.expect("reply")["stream"]["content"],
        reply["stream"]["content"]
    );
    assert_eq!(app.inbox_count().await, 1);

    // A voice message is its speech-to-text; a 1:1 sign-in works like anywhere else.
    let voice = json!({ "msgid": "ai-2", "chattype": "single", "from": { "userid": "lisi" },
        "msgtype": "voice", "voice": { "content": "签到" } })
    .to_string();
    let (_, signed) = post(&app, &voice).await;
    let content = signed.expect("reply")["stream"]["content"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert!(content.contains("签到成功"), "{content}");
    // Mixed text and image: the text parts count.
    let mixed = json!({ "msgid": "ai-3", "chattype": "single", "from": { "userid": "lisi" }, "msgtype": "mixed",
        "mixed": { "msg_item": [ { "msgtype": "text", "text": { "content": "pi" } },
                                  { "msgtype": "image", "image": { "url": "https://x" } },
                                  { "msgtype": "text", "text": { "content": "ng" } } ] } }).to_string();
    let (status, _) = post(&app, &mixed).await;
    assert_eq!(status, 200);
    assert_eq!(app.inbox_count().await, 3);
    // A reply that quotes an earlier message: the member's own words count, not the quote.
    let quoted = json!({ "msgid": "ai-4", "chattype": "single", "from": { "userid": "lisi" }, "msgtype": "text",
        "text": { "content": "ping" }, "quote": { "msgtype": "text", "text": { "content": "签到" } } }).to_string();
    let (_, answer) = post(&app, &quoted).await;
    let content = answer.expect("reply")["stream"]["content"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert!(content.starts_with("pong"), "{content}");
    // URL verification uses the same keys with an empty receive id.
    let (query, echo) = send::build_verification(channel, ts, "42").expect("verification");
    let body = app
        .client
        .get(format!("{}?{query}", app.url("/callbacks/demo_aibot")))
        .send()
        .await
        .expect("get");
    assert_eq!(body.text().await.expect("text"), echo);
}

async fn enter_chat_gets_the_welcome_text(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let event = json!({ "msgid": "ev-1", "create_time": app.clock.now_ms() / 1000, "aibotid": "aibdemo000000001",
        "from": { "userid": "wangwu" }, "msgtype": "event", "event": { "eventtype": "enter_chat" } }).to_string();
    let (status, reply) = post(&app, &event).await;
    assert_eq!(status, 200);
    let reply = reply.expect("a welcome");
    assert_eq!(reply["msgtype"], "text");
    assert!(
        reply["text"]["content"]
            .as_str()
            .is_some_and(|t| t.contains("签到")),
        "{reply}"
    );
}

/// A handler slower than the callback budget.
struct Slow;

impl yunying::bot::Handler for Slow {
    fn name(&self) -> &'static str {
        "slow"
    }

    fn handle<'a>(
        &'a self,
        _ctx: &'a yunying::bot::BotContext,
        _event: &'a yunying::events::Event,
    ) -> yunying::bot::HandlerFuture<'a> {
        Box::pin(async move {
            tokio::time::sleep(std::time::Duration::from_millis(400)).await;
            Ok(yunying::bot::Outcome::Reply("想了一会儿：答案是 42".into()))
        })
    }
}

async fn a_slow_answer_goes_to_the_response_url(backend: Backend) {
    let fake = yunying::fake_wecom::FakeWecom::start("127.0.0.1:0")
        .await
        .expect("stand-in");
    let base = fake.base_url();
    let app = TestApp::spawn_with_handler_and(
        backend,
        move |c| {
            c.server.handler_budget_ms = 100;
            c.api.wecom_base = base;
            c.outbox.poll_interval_ms = 10;
        },
        Slow,
    )
    .await;
    let url = format!("{}/cgi-bin/aibot/response?key=one-shot-1", fake.base_url());
    let message = json!({ "msgid": "slow-1", "chattype": "single", "from": { "userid": "lisi" },
        "msgtype": "text", "text": { "content": "终极问题" }, "response_url": url })
    .to_string();
    let (status, reply) = post(&app, &message).await;
    assert_eq!(status, 200);
    assert!(
        reply.is_none(),
        "the passive answer went out empty, in time"
    );
    for _ in 0..500 {
        let late: Vec<_> = fake
            .deliveries()
            .into_iter()
            .filter(|d| d.api == "aibot/response")
            .collect();
        if let Some(d) = late.first() {
            assert_eq!(d.body["msgtype"], "markdown");
            assert_eq!(d.body["markdown"]["content"], "想了一会儿：答案是 42");
            assert_eq!(late.len(), 1);
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the late answer never reached the response_url");
}
