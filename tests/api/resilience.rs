//! Failure paths: database down → 503 (the platform retries, nothing is lost), crash leftovers
//! re-run by the sweeper, graceful shutdown.

use yunying::clock::Clock as _;
use yunying::events::{Event, EventKind, Message, UserRef};
use yunying::store::inbox::{self, NewInbox};
use yunying::store::{Store, StoreOptions};

use crate::backend_tests;
use crate::helpers::{Backend, TestApp};

backend_tests!(
    database_down_answers_503_and_loses_nothing,
    sweeper_reruns_deliveries_left_by_a_crash,
    a_failing_handler_is_retried_not_lost,
    graceful_shutdown_finishes,
    reply_less_marks_are_written_when_due,
);

/// Fails its first `failures` calls, then answers "ok".
struct Flaky {
    failures: usize,
    calls: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl yunying::bot::Handler for Flaky {
    fn name(&self) -> &'static str {
        "flaky"
    }

    fn handle<'a>(
        &'a self,
        _ctx: &'a yunying::bot::BotContext,
        _event: &'a Event,
    ) -> yunying::bot::HandlerFuture<'a> {
        Box::pin(async move {
            let n = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if n < self.failures {
                anyhow::bail!("simulated failure {n}");
            }
            Ok(yunying::bot::Outcome::Reply("ok".into()))
        })
    }
}

async fn a_failing_handler_is_retried_not_lost(backend: Backend) {
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let app = TestApp::spawn_with_handler(
        backend,
        Flaky {
            failures: 2,
            calls: calls.clone(),
        },
    )
    .await;
    let (status, reply) = app
        .send_text("demo_app", "zhangsan", None, "hello", "flaky-1")
        .await;
    assert_eq!((status, reply), (200, None), "accepted, no reply yet");
    assert_eq!(
        app.store.inbox_depth().await.expect("depth"),
        1,
        "still unprocessed"
    );
    app.clock.advance_ms(61_000);
    app.app_state.ingress.sweep().await.expect("sweep");
    assert_eq!(
        app.store.inbox_depth().await.expect("depth"),
        1,
        "second attempt failed too"
    );
    assert_eq!(
        app.app_state.ingress.sweep().await.expect("sweep"),
        0,
        "not before its backoff"
    );
    app.clock.advance_ms(121_000);
    app.app_state.ingress.sweep().await.expect("sweep");
    assert_eq!(
        app.store.inbox_depth().await.expect("depth"),
        0,
        "third attempt succeeded"
    );
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 3);
    // The answer was too late to be passive: it went to the outbox, and a retry of the delivery
    // answers empty instead of sending it twice.
    let (_, again) = app
        .send_text("demo_app", "zhangsan", None, "hello", "flaky-1")
        .await;
    assert_eq!(again, None);
    let late: Vec<String> = app
        .query_column("select payload from outbox where idem_key like 'late_reply:%'")
        .await;
    assert_eq!(late.len(), 1);
    assert!(late[0].contains("\"ok\""), "{late:?}");
}

async fn database_down_answers_503_and_loses_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let request = app.build(
        "demo_app",
        &yunying::send::Simulated::Text {
            from: "zhangsan".into(),
            name: None,
            group: None,
            text: "ping".into(),
            msg_id: "during-outage".into(),
        },
    );
    app.store.close().await;
    app.app_state.ingress.writer().close_database().await;
    let started = std::time::Instant::now();
    let response = app.post("demo_app", &request).await;
    assert_eq!(response.status(), 503, "the platform must retry");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "answered quickly"
    );
    let ready = app
        .client
        .get(app.url("/readyz"))
        .send()
        .await
        .expect("get");
    assert_eq!(ready.status(), 503);
    assert_eq!(
        app.app_state
            .metrics
            .callbacks_total("demo_app", yunying::telemetry::Outcome::Unavailable),
        1
    );
}

async fn sweeper_reruns_deliveries_left_by_a_crash(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // A delivery committed to the inbox whose handlers never ran (process killed in between).
    let event = Event {
        channel_id: "demo_app".into(),
        scope: "wwdemo0000000001".into(),
        dedupe_key: yunying::ingress::normalize::message_key("zhangsan", "crash-1"),
        occurred_at: app.clock.now_secs(),
        kind: EventKind::Message(Message {
            sender: UserRef::new("zhangsan", None),
            group: None,
            msg_type: "text".into(),
            text: "ping".into(),
            mentions_bot: true,
            platform_msg_id: "crash-1".into(),
        }),
        reply_url: None,
        unsigned_body: false,
    };
    let row = NewInbox {
        channel_id: event.channel_id.clone(),
        dedupe_key: event.dedupe_key.clone(),
        kind: "message".into(),
        sender: Some("zhangsan".into()),
        group_id: None,
        occurred_at: event.occurred_at * 1000,
        received_at: app.clock.now_ms(),
        payload: serde_json::to_string(&event).expect("json"),
    };
    // Accepted by the writer, handlers never run: what a crash in between leaves.
    let outcome = app
        .app_state
        .ingress
        .writer()
        .accept(row, std::sync::Arc::new(event.clone()))
        .await
        .expect("insert");
    let inbox::Accepted::New { id } = outcome else {
        panic!("expected a new row")
    };

    // Too recent: the first copy may still be running.
    assert_eq!(app.app_state.ingress.sweep().await.expect("sweep"), 0);
    app.clock.advance_ms(61_000);
    assert_eq!(app.app_state.ingress.sweep().await.expect("sweep"), 1);
    let row = app.store.inbox_row(id).await.expect("row");
    assert!(row.processed_at.is_some());
    // Too late for a passive reply: the answer goes out as an app message, once.
    let late: Vec<String> = app
        .query_column("select payload from outbox where idem_key like 'late_reply:%'")
        .await;
    assert_eq!(late.len(), 1);
    assert!(
        late[0].contains("pong") && late[0].contains("zhangsan"),
        "{late:?}"
    );
    assert_eq!(
        app.app_state.ingress.sweep().await.expect("sweep"),
        0,
        "nothing left"
    );
    assert_eq!(app.store.inbox_depth().await.expect("depth"), 0);
}

async fn graceful_shutdown_finishes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, reply) = app
        .send_text("demo_app", "zhangsan", None, "hello", "before-stop")
        .await;
    assert_eq!((status, reply), (200, None));
    let stopped = app.stop().await;
    // On SQLite the processed mark was still waiting for company (for up to 100 ms); the writer
    // wrote it before it stopped, so the sweeper will not run the event again.
    let store = Store::connect(&stopped.database_url, &StoreOptions::default())
        .await
        .expect("database still there");
    assert_eq!(store.inbox_depth().await.expect("depth"), 0);
}

/// Reply-less processed marks wait for others, then go on their own when nothing else comes.
async fn reply_less_marks_are_written_when_due(backend: Backend) {
    // Nothing else wakes the writer: on SQLite the outbox and the periodic jobs write through it.
    let app = TestApp::spawn_with(backend, |c| {
        c.outbox.enabled = false;
        c.scheduler.enabled = false;
    })
    .await;
    for i in 0..3 {
        let (status, reply) = app
            .send_text(
                "demo_app",
                &format!("quiet-{i}"),
                None,
                "hello",
                &format!("quiet-{i}"),
            )
            .await;
        assert_eq!((status, reply), (200, None));
    }
    // The writer's delay runs on real time (it is a batching delay, not business time): wait
    // for the marks with a generous deadline rather than for a fixed time.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let depth = app.store.inbox_depth().await.expect("depth");
        if depth == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{depth} processed marks were never written"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
