//! Lose nothing, stall nothing: a hanging `gettoken` never holds up callbacks, poison events back
//! off and go dead instead of looping, late answers go out actively once, a duplicate racing the
//! first copy gets its answer, and one row the database refuses fails only its own callback.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::Notify;
use yunying::bot::{BotContext, Handler, HandlerFuture, Outcome};
use yunying::config::Secret;
use yunying::events::Event;
use yunying::fake_wecom::{FakeWecom, Faults};
use yunying::send::{self, Simulated};

use crate::backend_tests;
use crate::helpers::{Backend, TestApp};

backend_tests!(
    a_hanging_gettoken_never_holds_up_callbacks,
    poison_events_back_off_go_dead_and_never_block_newer_ones,
    late_answers_go_out_actively_once_on_every_channel,
    a_duplicate_racing_the_first_copy_gets_its_answer,
    a_row_the_database_refuses_fails_only_its_own_callback,
);

const TOKEN: &str = "ops-token-0123456789";

/// Waits (up to ten seconds) until `done` holds, checking every 20 ms: for effects of background
/// tasks, never a fixed sleep.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..500 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

fn text(from: &str, group: Option<&str>, body: &str, msg_id: &str) -> Simulated {
    Simulated::Text {
        from: from.into(),
        name: Some(format!("用户{from}")),
        group: group.map(str::to_owned),
        text: body.into(),
        msg_id: msg_id.into(),
    }
}

async fn a_hanging_gettoken_never_holds_up_callbacks(backend: Backend) {
    let fake = FakeWecom::start("127.0.0.1:0").await.expect("stand-in");
    fake.set_faults(Faults {
        gettoken_delay_ms: 20_000,
        ..Faults::default()
    });
    let base = fake.base_url();
    let app = TestApp::spawn_with(backend, move |c| {
        c.ops_api.token = Secret::new(TOKEN);
        c.api.wecom_base = base.clone();
        c.api.mp_base = base;
        // Longer than the writers' five-second turn: a refresh that held it would 503 callbacks.
        c.api.timeout_ms = 15_000;
    })
    .await;
    let (status, body) = app
        .api_call(
            "POST",
            "/api/v1/outbox",
            TOKEN,
            &json!({ "channel": "demo_app", "to": ["zhangsan"], "text": "通知" }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    eventually("the worker to call gettoken", || {
        fake.delayed_token_calls() >= 1
    })
    .await;
    let app = &app;
    let answers = futures_util::future::join_all((0..10).map(|i| async move {
        app.send_text(
            "demo_robot",
            &format!("u{i}"),
            Some("g1"),
            "ping",
            &format!("h{i}"),
        )
        .await
    }))
    .await;
    for (status, reply) in answers {
        assert_eq!(status, 200);
        assert!(reply.expect("reply").starts_with("pong"));
    }
}

/// Fails every message that says 毒.
struct Poison;

impl Handler for Poison {
    fn name(&self) -> &'static str {
        "poison"
    }

    fn handle<'a>(&'a self, _ctx: &'a BotContext, event: &'a Event) -> HandlerFuture<'a> {
        Box::pin(async move {
            if event.message().is_some_and(|m| m.text == "毒") {
                anyhow::bail!("this handler always fails on 毒");
            }
            Ok(Outcome::Continue)
        })
    }
}

async fn poison_events_back_off_go_dead_and_never_block_newer_ones(backend: Backend) {
    let app = TestApp::spawn_with_handler_and(
        backend,
        |c| {
            c.ops_api.token = Secret::new(TOKEN);
            c.server.handler_max_attempts = 3;
        },
        Poison,
    )
    .await;
    // More poison rows than one sweep round takes, then one good delivery after them.
    for i in 0..520 {
        let (status, _) = app
            .send_text("demo_app", &format!("p{i}"), None, "毒", &format!("p{i}"))
            .await;
        assert_eq!(status, 200);
    }
    // A good delivery whose first run was lost in a crash, newer than all the poison.
    crash_leftover(&app, "zhangsan", "你好", "good").await;
    assert_eq!(app.store.inbox_depth().await.expect("depth"), 521);

    let sweep = || async { app.app_state.ingress.sweep().await.expect("sweep") };
    app.clock.advance_ms(61_000);
    assert_eq!(
        sweep().await,
        500,
        "second runs of the oldest poison, one round"
    );
    assert_eq!(
        sweep().await,
        21,
        "the failed ones wait out their backoff: the rest and the good row"
    );
    assert_eq!(
        app.store.inbox_depth().await.expect("depth"),
        520,
        "the good row is done"
    );
    assert_eq!(sweep().await, 0, "nothing due before the next backoff");
    app.clock.advance_ms(121_000);
    let mut swept = 0;
    loop {
        let n = sweep().await;
        if n == 0 {
            break;
        }
        swept += n;
    }
    assert_eq!(swept, 520, "third and last runs");
    assert_eq!(
        app.store.inbox_depth().await.expect("depth"),
        0,
        "dead rows are not waiting"
    );
    app.clock.advance_ms(3_600_000);
    assert_eq!(
        sweep().await,
        0,
        "dead rows are never run again by themselves"
    );

    let (status, dead) = app
        .api_call("GET", "/api/v1/inbox/dead?limit=1000", TOKEN, &Value::Null)
        .await;
    assert_eq!(status, 200);
    let dead = dead["dead"].as_array().expect("list");
    assert_eq!(dead.len(), 520);
    assert_eq!(dead[0]["attempts"], 3);
    assert!(dead[0]["last_error"]
        .as_str()
        .unwrap_or_default()
        .contains("always fails"));
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(metrics.contains("yunying_inbox_dead 520"), "{metrics}");

    let first = dead[0]["id"].as_i64().expect("id");
    let second = dead[1]["id"].as_i64().expect("id");
    let (status, _) = app
        .api_call(
            "POST",
            &format!("/api/v1/inbox/dead/{first}/retry"),
            TOKEN,
            &Value::Null,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(sweep().await, 1, "a re-driven event runs again");
    let (status, _) = app
        .api_call(
            "POST",
            &format!("/api/v1/inbox/dead/{second}/discard"),
            TOKEN,
            &Value::Null,
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = app
        .api_call(
            "POST",
            &format!("/api/v1/inbox/dead/{second}/discard"),
            TOKEN,
            &Value::Null,
        )
        .await;
    assert_eq!(status, 404, "already discarded");
    // The re-driven one failed once more and waits for its next run; the discarded one is closed.
    assert_eq!(app.store.inbox_dead_count().await.expect("count"), 518);
    assert_eq!(app.store.inbox_depth().await.expect("depth"), 1);
}

/// An inbox row and its event for `user` (the writer's input, past ingress's checks).
fn row_for(
    app: &TestApp,
    user: &str,
    msg_id: &str,
) -> (yunying::store::inbox::NewInbox, Arc<Event>) {
    use yunying::clock::Clock as _;
    use yunying::events::{EventKind, Message, UserRef};
    let event = Event {
        channel_id: "demo_app".into(),
        scope: "wwdemo0000000001".into(),
        dedupe_key: yunying::ingress::normalize::message_key(user, msg_id),
        occurred_at: app.clock.now_secs(),
        kind: EventKind::Message(Message {
            sender: UserRef::new(user, None),
            group: None,
            msg_type: "text".into(),
            text: "你好".into(),
            mentions_bot: true,
            platform_msg_id: msg_id.into(),
        }),
        reply_url: None,
        unsigned_body: false,
    };
    let row = yunying::store::inbox::NewInbox {
        channel_id: event.channel_id.clone(),
        dedupe_key: event.dedupe_key.clone(),
        kind: "message".into(),
        sender: Some(user.into()),
        group_id: None,
        occurred_at: event.occurred_at * 1000,
        received_at: app.clock.now_ms(),
        payload: serde_json::to_string(&event).expect("json"),
    };
    (row, Arc::new(event))
}

async fn a_row_the_database_refuses_fails_only_its_own_callback(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let writer = app.app_state.ingress.writer();
    // PostgreSQL refuses NUL in text; SQLite stores it. Ingress never lets one through; the
    // writer must still not fail the neighbours of a row the database refuses.
    let mut rows: Vec<_> = (0..40)
        .map(|i| row_for(&app, &format!("w{i}"), &format!("w{i}")))
        .collect();
    rows.insert(20, row_for(&app, "bad\u{0}user", "bad"));
    let results =
        futures_util::future::join_all(rows.into_iter().map(|(row, event)| async move {
            (row.sender.clone(), writer.accept(row, event).await)
        }))
        .await;
    for (sender, result) in &results {
        let bad = sender.as_deref().is_some_and(|s| s.contains('\0'));
        match (bad, backend) {
            (true, Backend::Postgres) => assert!(result.is_err(), "refused: {result:?}"),
            _ => assert!(result.is_ok(), "{sender:?}: {result:?}"),
        }
    }
    let good: Vec<i64> = app
        .query_column("select cast(count(*) as bigint) from inbox where sender like 'w%'")
        .await;
    assert_eq!(good, vec![40]);
}

/// Stores a delivery as committed whose handlers never ran (the process died in between).
async fn crash_leftover(app: &TestApp, user: &str, body: &str, msg_id: &str) {
    use yunying::clock::Clock as _;
    use yunying::events::{EventKind, Message, UserRef};
    use yunying::store::inbox::NewInbox;
    let event = Event {
        channel_id: "demo_app".into(),
        scope: "wwdemo0000000001".into(),
        dedupe_key: yunying::ingress::normalize::message_key(user, msg_id),
        occurred_at: app.clock.now_secs(),
        kind: EventKind::Message(Message {
            sender: UserRef::new(user, None),
            group: None,
            msg_type: "text".into(),
            text: body.into(),
            mentions_bot: true,
            platform_msg_id: msg_id.into(),
        }),
        reply_url: None,
        unsigned_body: false,
    };
    let row = NewInbox {
        channel_id: event.channel_id.clone(),
        dedupe_key: event.dedupe_key.clone(),
        kind: "message".into(),
        sender: Some(user.into()),
        group_id: None,
        occurred_at: event.occurred_at * 1000,
        received_at: app.clock.now_ms(),
        payload: serde_json::to_string(&event).expect("json"),
    };
    // Accepted by the writer, handlers never run: what a crash in between leaves.
    app.app_state
        .ingress
        .writer()
        .accept(row, Arc::new(event))
        .await
        .expect("insert");
}

/// Holds every chain until released, then answers "迟到的回答".
struct Gate {
    open: Arc<Notify>,
    entered: Arc<AtomicUsize>,
}

impl Handler for Gate {
    fn name(&self) -> &'static str {
        "gate"
    }

    fn handle<'a>(&'a self, _ctx: &'a BotContext, _event: &'a Event) -> HandlerFuture<'a> {
        Box::pin(async move {
            self.entered.fetch_add(1, Ordering::SeqCst);
            self.open.notified().await;
            Ok(Outcome::Reply("迟到的回答".into()))
        })
    }
}

async fn late_answers_go_out_actively_once_on_every_channel(backend: Backend) {
    let fake = FakeWecom::start("127.0.0.1:0").await.expect("stand-in");
    let base = fake.base_url();
    let open = Arc::new(Notify::new());
    let entered = Arc::new(AtomicUsize::new(0));
    let gate = Gate {
        open: Arc::clone(&open),
        entered: Arc::clone(&entered),
    };
    let app = TestApp::spawn_with_handler_and(
        backend,
        move |c| {
            c.api.wecom_base = base.clone();
            c.api.mp_base = base.clone();
            c.server.handler_budget_ms = 50;
            c.outbox.poll_interval_ms = 20;
            c.channels.get_mut("demo_mp").expect("mp").secret = Some(Secret::new("mp-secret"));
            c.channels
                .get_mut("demo_gateway")
                .expect("gateway")
                .send_url = Some(format!("{base}/gateway/send"));
        },
        gate,
    )
    .await;
    let cases = [
        ("demo_app", None, "message/send"),
        ("demo_robot", Some("g1"), "webhook/send"),
        ("demo_mp", None, "message/custom/send"),
        ("demo_gateway", Some("g@chatroom"), "gateway/send"),
    ];
    for (i, (channel, group, api)) in cases.into_iter().enumerate() {
        let request = app.build(channel, &text("u1", group, "问题", &format!("late{i}")));
        let response = app.post(channel, &request).await;
        assert_eq!(response.status(), 200);
        let body = response.bytes().await.expect("body");
        assert_eq!(
            send::open_reply(app.channel(channel), &body).expect("opens"),
            None,
            "{channel}: nothing passive past the budget"
        );
        eventually("the chain to start", || {
            entered.load(Ordering::SeqCst) == i + 1
        })
        .await;
        open.notify_one();
        eventually("the active answer", || {
            fake.deliveries()
                .iter()
                .any(|d| d.api == api && d.body.to_string().contains("迟到的回答"))
        })
        .await;
        // The platform retries the same delivery: it gets an empty answer, not a second copy.
        let again = app.post(channel, &request).await;
        let body = again.bytes().await.expect("body");
        assert_eq!(
            send::open_reply(app.channel(channel), &body).expect("opens"),
            None
        );
    }
    let deliveries = fake.deliveries();
    for (_, _, api) in cases {
        let n = deliveries
            .iter()
            .filter(|d| d.api == api && d.body.to_string().contains("迟到的回答"))
            .count();
        assert_eq!(n, 1, "{api}: once");
    }
    let robot = deliveries
        .iter()
        .find(|d| d.api == "webhook/send")
        .expect("robot");
    assert!(
        robot.body.to_string().contains("u1"),
        "the sender is @-ed: {}",
        robot.body
    );
}

async fn a_duplicate_racing_the_first_copy_gets_its_answer(backend: Backend) {
    let open = Arc::new(Notify::new());
    let entered = Arc::new(AtomicUsize::new(0));
    let gate = Gate {
        open: Arc::clone(&open),
        entered: Arc::clone(&entered),
    };
    let app = TestApp::spawn_with_handler(backend, gate).await;
    let request = app.build("demo_robot", &text("u1", Some("g1"), "问题", "race"));
    let first = {
        let (app, request) = (&app, request.clone());
        async move { app.post_unsettled("demo_robot", &request).await }
    };
    let second = {
        let (app, request, entered, open) = (&app, request.clone(), &entered, &open);
        async move {
            eventually("the first copy's chain", || {
                entered.load(Ordering::SeqCst) == 1
            })
            .await;
            let retry = app.post_unsettled("demo_robot", &request);
            let release = async {
                // The retry is waiting for the first copy's answer before the gate opens.
                eventually("the retry to wait", || {
                    app.app_state.metrics.duplicate_waits() == 1
                })
                .await;
                open.notify_one();
            };
            let (response, ()) = tokio::join!(retry, release);
            response
        }
    };
    let (a, b) = tokio::join!(first, second);
    for response in [a, b] {
        assert_eq!(response.status(), 200);
        let body = response.bytes().await.expect("body");
        assert_eq!(
            send::open_reply(app.channel("demo_robot"), &body)
                .expect("opens")
                .as_deref(),
            Some("迟到的回答")
        );
    }
    assert_eq!(entered.load(Ordering::SeqCst), 1, "the chain ran once");
}
