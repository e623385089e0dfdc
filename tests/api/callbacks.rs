//! Round trips per channel kind, URL verification, and the official sample vectors over HTTP.

use crate::backend_tests;
use crate::helpers::{Backend, TestApp};

backend_tests!(
    ping_round_trip_on_every_channel_kind,
    url_verification_per_kind,
    official_v1_sample_over_http,
    plain_chat_gets_an_empty_200,
    healthz_readyz_and_metrics,
    the_answer_does_not_wait_for_the_after_handlers,
    shutdown_waits_for_the_after_handlers,
);

/// An after-handler that records the events it saw once its gate opens.
struct GatedAfter {
    gate: tokio::sync::watch::Receiver<bool>,
    seen: Seen,
}

impl yunying::bot::Handler for GatedAfter {
    fn name(&self) -> &'static str {
        "gated_after"
    }

    fn handle<'a>(
        &'a self,
        _ctx: &'a yunying::bot::BotContext,
        event: &'a yunying::events::Event,
    ) -> yunying::bot::HandlerFuture<'a> {
        Box::pin(async move {
            let mut gate = self.gate.clone();
            gate.wait_for(|open| *open).await?;
            self.seen
                .lock()
                .expect("seen")
                .push(event.dedupe_key.clone());
            Ok(yunying::bot::Outcome::Continue)
        })
    }
}

/// The dedupe keys a [`GatedAfter`] saw.
type Seen = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

/// A server whose chain is `ping` and a [`GatedAfter`]: the gate's sender and what it saw.
async fn spawn_gated(backend: Backend) -> (TestApp, tokio::sync::watch::Sender<bool>, Seen) {
    let (open, gate) = tokio::sync::watch::channel(false);
    let seen = Seen::default();
    let after = GatedAfter {
        gate,
        seen: std::sync::Arc::clone(&seen),
    };
    let app = TestApp::spawn_with_chain(backend, move |d| {
        d.with(yunying::bot::Ping).with_after(after)
    })
    .await;
    (app, open, seen)
}

/// `ping` from zhangsan, answered without waiting for the after-handlers.
async fn ping_unsettled(app: &TestApp, msg_id: &str) -> reqwest::Response {
    let what = yunying::send::Simulated::Text {
        from: "zhangsan".into(),
        name: None,
        group: Some("chat-1".into()),
        text: "ping".into(),
        msg_id: msg_id.into(),
    };
    app.post_unsettled("demo_robot", &app.build("demo_robot", &what))
        .await
}

async fn the_answer_does_not_wait_for_the_after_handlers(backend: Backend) {
    let (app, open, seen) = spawn_gated(backend).await;
    let response = ping_unsettled(&app, "m-after-1").await;
    assert_eq!(response.status(), 200);
    let body = response.bytes().await.expect("body");
    let reply = yunying::send::open_reply(app.channel("demo_robot"), &body).expect("opens");
    assert!(
        reply.is_some_and(|r| r.starts_with("pong")),
        "answered while the gate is shut"
    );
    assert!(
        seen.lock().expect("seen").is_empty(),
        "the after-handler still waits"
    );

    {
        let settled = app.settle();
        tokio::pin!(settled);
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(50), settled.as_mut())
                .await
                .is_err(),
            "settle waits for the after-handler"
        );
        open.send(true).expect("gate");
        tokio::time::timeout(std::time::Duration::from_secs(10), settled)
            .await
            .expect("settled once the gate opened");
    }
    assert_eq!(seen.lock().expect("seen").len(), 1);
    app.stop().await;
}

async fn ping_round_trip_on_every_channel_kind(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for (channel, group) in [
        ("demo_app", None),
        ("demo_robot", Some("chat-1")),
        ("demo_robot", None),
        ("demo_mp", None),
        ("demo_gateway", Some("g@chatroom")),
    ] {
        let (status, reply) = app
            .send_text(
                channel,
                "zhangsan",
                group,
                "ping",
                &format!("m-{channel}-{group:?}"),
            )
            .await;
        assert_eq!(status, 200, "{channel}");
        let reply = reply.unwrap_or_else(|| panic!("{channel} gave no reply"));
        assert!(reply.starts_with("pong"), "{channel}: {reply}");
    }
    assert_eq!(app.inbox_count().await, 5);
    app.stop().await;
}

async fn url_verification_per_kind(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for channel in ["demo_app", "demo_robot", "demo_mp"] {
        let (query, echo) = yunying::send::build_verification(
            app.channel(channel),
            app.clock.now_ms() / 1000,
            "nonce1",
        )
        .expect("query");
        let response = app
            .client
            .get(app.url(&format!("/callbacks/{channel}?{query}")))
            .send()
            .await
            .expect("get");
        assert_eq!(response.status(), 200, "{channel}");
        assert_eq!(
            response.text().await.expect("body"),
            echo,
            "{channel}: raw echo, no quotes or newline"
        );
    }
    let response = app
        .client
        .get(app.url("/callbacks/demo_gateway?timestamp=1&nonce=2&echostr=3"))
        .send()
        .await
        .expect("get");
    assert_eq!(response.status(), 405);
}

use yunying::clock::Clock as _;

async fn official_v1_sample_over_http(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // V1a: URL verification exactly as the WeCom console sends it (echostr percent-encoded).
    app.clock.set_ms(1_476_416_373_000);
    let query = "msg_signature=012bc692d0a58dd4b10f8dfe5c4ac00ae211ebeb&timestamp=1476416373&nonce=47744683&echostr=fsi1xnbH4yQh0%2BPJxcOdhhK6TDXkjMyhEPA7xB2TGz6b%2Bg7xyAbEkRxN%2F3cNXW9qdqjnoVzEtpbhnFyq6SVHyA%3D%3D";
    let response = app
        .client
        .get(app.url(&format!("/callbacks/v1?{query}")))
        .send()
        .await
        .expect("get");
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.expect("body"), "1288432023552776189");

    // V1b: the official text message from ChenJiaShun.
    app.clock.set_ms(1_476_422_779_000);
    let body = "<xml><ToUserName><![CDATA[ww1436e0e65a779aee]]></ToUserName><Encrypt><![CDATA[Kl7kjoSf6DMD1zh7rtrHjFaDapSCkaOnwu3bqLc5tAybhhMl9pFeK8NslNPVdMwmBQTNoW4mY7AIjeLvEl3NyeTkAgGzBhzTtRLNshw2AEew+kkYcD+Fq72Kt00fT0WnN87hGrW8SqGc+NcT3mu87Ha3dz1pSDi6GaUA6A0sqfde0VJPQbZ9U+3JWcoD4Z5jaU0y9GSh010wsHF8KZD24YhmZH4ch4Ka7ilEbjbfvhKkNL65HHL0J6EYJIZUC2pFrdkJ7MhmEbU2qARR4iQHE7wy24qy0cRX3Mfp6iELcDNfSsPGjUQVDGxQDCWjayJOpcwocugux082f49HKYg84EpHSGXAyh+/oxwaWbvL6aSDPOYuPDGOCI8jmnKiypE+]]></Encrypt><AgentID><![CDATA[1000002]]></AgentID></xml>";
    let response = app
        .client
        .post(app.url("/callbacks/v1?msg_signature=0c3914025cb4b4d68103f6bfc8db550f79dcf48e&timestamp=1476422779&nonce=1597212914"))
        .body(body)
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.text().await.expect("body"),
        "",
        "plain chat: no passive reply"
    );
    let member = app
        .store
        .member("ww1436e0e65a779aee", "ChenJiaShun")
        .await
        .expect("query")
        .expect("member registered");
    assert_eq!(member.message_count, 1);
    assert_eq!(member.last_active_at, 1_476_422_779_000);
    // 2016-10-14 13:26 +08:00.
    assert_eq!(
        app.store
            .member_messages_on("ww1436e0e65a779aee", "ChenJiaShun", 20161014)
            .await
            .expect("activity"),
        1
    );
}

async fn plain_chat_gets_an_empty_200(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, reply) = app
        .send_text("demo_robot", "lisi", Some("chat-1"), "大家好", "m1")
        .await;
    assert_eq!((status, reply), (200, None));
    let (status, reply) = app
        .send_text("demo_gateway", "lisi", Some("chat-1"), "大家好", "m2")
        .await;
    assert_eq!((status, reply), (200, None));
}

async fn healthz_readyz_and_metrics(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    assert_eq!(
        app.client
            .get(app.url("/healthz"))
            .send()
            .await
            .expect("get")
            .status(),
        200
    );
    assert_eq!(
        app.client
            .get(app.url("/readyz"))
            .send()
            .await
            .expect("get")
            .status(),
        200
    );
    app.send_text("demo_app", "zhangsan", None, "ping", "m1")
        .await;
    app.send_text("demo_app", "zhangsan", None, "ping", "m1")
        .await;
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("get")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("yunying_callbacks_total{channel=\"demo_app\",outcome=\"accepted\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("yunying_callbacks_total{channel=\"demo_app\",outcome=\"duplicate\"} 1"),
        "{metrics}"
    );
    // `ping` has a reply, which is stored durably before the answer, so nothing is left unprocessed.
    assert!(metrics.contains("yunying_inbox_depth 0"), "{metrics}");
    assert!(
        metrics.contains("yunying_handler_duration_seconds_count 1"),
        "{metrics}"
    );
    // Both deliveries went through the group commit (the retry found its key there), and every
    // commit is timed, so an operator can see commits waiting on the disk.
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing in {metrics}"))
    };
    assert_eq!(value("yunying_group_commit_rows_total"), 2.0, "{metrics}");
    let commits = value("yunying_group_commit_duration_seconds_count");
    assert!(commits >= 1.0, "{metrics}");
    assert_eq!(
        value("yunying_group_commit_duration_seconds_bucket{le=\"+Inf\"}"),
        commits
    );
    assert!(
        value("yunying_group_commit_duration_seconds_sum") > 0.0,
        "{metrics}"
    );
}

async fn shutdown_waits_for_the_after_handlers(backend: Backend) {
    let (app, open, seen) = spawn_gated(backend).await;
    assert_eq!(ping_unsettled(&app, "m-after-2").await.status(), 200);
    let stopping = tokio::spawn(app.stop());
    for _ in 0..20 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        assert!(
            !stopping.is_finished(),
            "shutdown waits for the after-handler"
        );
    }
    open.send(true).expect("gate");
    tokio::time::timeout(std::time::Duration::from_secs(10), stopping)
        .await
        .expect("stopped once the after-handler finished")
        .expect("stop");
    assert_eq!(
        seen.lock().expect("seen").len(),
        1,
        "the after-handler ran to its end"
    );
}
