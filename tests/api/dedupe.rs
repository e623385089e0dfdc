//! A retried delivery is processed once, including retries that race the first copy.

use std::sync::Arc;

use yunying::clock::Clock as _;
use yunying::send::{self, Simulated};
use yunying::telemetry::Outcome;

use crate::backend_tests;
use crate::helpers::{Backend, TestApp};

backend_tests!(
    each_message_delivered_four_times_concurrently_is_processed_once,
    the_same_with_four_parallel_writers,
    a_retry_after_processing_gets_the_same_reply,
    two_contacts_added_in_the_same_second_are_both_kept,
    a_retry_across_the_key_change_is_still_a_duplicate,
);

const COPIES: usize = 4;

/// 300 in CI; `DEDUPE_TEST_MESSAGES=10000` runs the full-size check from the issue.
fn message_count() -> usize {
    std::env::var("DEDUPE_TEST_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300)
}

async fn each_message_delivered_four_times_concurrently_is_processed_once(backend: Backend) {
    four_copies_each_processed_once(TestApp::spawn(backend).await).await;
}

/// One writer is the default; several (`database.writers`) commit batches side by side, and
/// copies of one message may land in different writers' transactions.
async fn the_same_with_four_parallel_writers(backend: Backend) {
    four_copies_each_processed_once(TestApp::spawn_with(backend, |c| c.database.writers = 4).await)
        .await;
}

async fn four_copies_each_processed_once(app: TestApp) {
    let app = Arc::new(app);
    let messages = message_count();
    let mut requests = Vec::new();
    for i in 0..messages {
        let member = format!("member-{}", i % 50);
        let what = Simulated::Text {
            from: member,
            name: None,
            group: Some("chat-1".into()),
            text: format!("hello {i}"),
            msg_id: format!("msg-{i}"),
        };
        // Each copy is encrypted separately (fresh random prefix and nonce), as real retries are.
        for _ in 0..COPIES {
            requests.push(app.build("demo_robot", &what));
        }
    }
    let mut tasks = Vec::new();
    for chunk in requests.chunks(requests.len() / 16) {
        let app = Arc::clone(&app);
        let chunk = chunk.to_vec();
        tasks.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            for request in chunk {
                statuses.push(app.post("demo_robot", &request).await.status().as_u16());
            }
            statuses
        }));
    }
    for task in tasks {
        assert!(task.await.expect("task").iter().all(|s| *s == 200));
    }
    assert_eq!(
        app.inbox_count().await,
        i64::try_from(messages).expect("fits")
    );
    let metrics = &app.app_state.metrics;
    assert_eq!(
        metrics.callbacks_total("demo_robot", Outcome::Accepted),
        messages as u64,
        "handlers ran once per message"
    );
    assert_eq!(
        metrics.callbacks_total("demo_robot", Outcome::Duplicate),
        (messages * (COPIES - 1)) as u64
    );
    let mut total = 0;
    for m in 0..50 {
        let row = app
            .store
            .member("wwdemo0000000001", &format!("member-{m}"))
            .await
            .expect("query")
            .expect("member");
        total += row.message_count;
    }
    assert_eq!(
        total,
        i64::try_from(messages).expect("fits"),
        "member activity counted once per message"
    );
    assert_eq!(
        app.store
            .group_member_ids("wwdemo0000000001", "chat-1")
            .await
            .expect("members")
            .len(),
        50
    );
}

async fn a_retry_after_processing_gets_the_same_reply(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, first) = app
        .send_text("demo_robot", "zhangsan", Some("chat-1"), "ping", "same-id")
        .await;
    let (_, again) = app
        .send_text("demo_robot", "zhangsan", Some("chat-1"), "ping", "same-id")
        .await;
    assert!(first.is_some());
    assert_eq!(
        first, again,
        "the stored reply is sent again, not recomputed"
    );
    assert_eq!(app.inbox_count().await, 1);
    // The same msg id from another sender is another message.
    let (_, other) = app
        .send_text("demo_robot", "lisi", Some("chat-1"), "ping", "same-id")
        .await;
    assert!(other.is_some());
    assert_eq!(app.inbox_count().await, 2);
}

fn add_contact(external: &str, ts: i64) -> String {
    format!(
        "<xml><ToUserName><![CDATA[wwdemo0000000001]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName><CreateTime>{ts}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_external_contact]]></Event><ChangeType><![CDATA[add_external_contact]]></ChangeType><UserID><![CDATA[zhangsan]]></UserID><ExternalUserID><![CDATA[{external}]]></ExternalUserID><State><![CDATA[spring]]></State><WelcomeCode><![CDATA[WC]]></WelcomeCode></xml>"
    )
}

async fn two_contacts_added_in_the_same_second_are_both_kept(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ts = app.clock.now_ms() / 1000;
    let channel = app.channel("demo_app");
    for external in ["wmAAA", "wmBBB", "wmAAA"] {
        let request =
            send::build_request(channel, &add_contact(external, ts), ts, "n").expect("request");
        assert_eq!(app.post("demo_app", &request).await.status(), 200);
    }
    assert_eq!(
        app.inbox_count().await,
        2,
        "same sender `sys` and CreateTime, different contacts: two events; the retry: none"
    );
    assert!(app
        .store
        .member("wwdemo0000000001", "wmAAA")
        .await
        .expect("q")
        .is_some());
    assert!(app
        .store
        .member("wwdemo0000000001", "wmBBB")
        .await
        .expect("q")
        .is_some());
}

/// Message keys used to lead with the sender (`m:{sender}:{MsgId}`); migration 0018 rewrites
/// the last day's rows to the id-first form, so a platform retry of a message the previous
/// version accepted just before the upgrade is still answered as a duplicate.
async fn a_retry_across_the_key_change_is_still_a_duplicate(backend: Backend) {
    const MSG_ID: &str = "4561255354251345929";
    let app = TestApp::spawn(backend).await;
    let send_first = || app.send_text("demo_robot", "zhangsan", Some("chat-1"), "ping", MSG_ID);
    let (_, first) = send_first().await;
    let (_, old) = app
        .send_text("demo_robot", "lisi", Some("chat-1"), "ping", "old:id")
        .await;
    assert!(first.is_some() && old.is_some());
    let keys_sql = "select dedupe_key from inbox order by id";
    assert_eq!(
        app.query_column::<String>(keys_sql).await,
        [format!("msg:{MSG_ID}:zhangsan"), "msg:old:id:lisi".into()]
    );
    // Put both rows back as the previous version wrote them: the first received just now by
    // the database's own clock (which the migration reads), the second two days ago.
    #[allow(clippy::disallowed_methods)]
    let now_ms = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis(),
    )
    .expect("fits");
    app.execute_sql(
        "update inbox set dedupe_key = 'm:zhangsan:4561255354251345929', received_at = $1 \
         where sender = 'zhangsan'",
        &[now_ms],
    )
    .await;
    app.execute_sql(
        "update inbox set dedupe_key = 'm:lisi:old:id', received_at = $1 where sender = 'lisi'",
        &[now_ms - 2 * 86_400_000],
    )
    .await;

    let migration = match backend {
        Backend::Sqlite => include_str!("../../migrations/sqlite/0018_message_keys_id_first.sql"),
        Backend::Postgres => {
            include_str!("../../migrations/postgres/0018_message_keys_id_first.sql")
        }
    };
    app.execute_sql(migration, &[]).await;
    assert_eq!(
        app.query_column::<String>(keys_sql).await,
        [format!("msg:{MSG_ID}:zhangsan"), "m:lisi:old:id".into()],
        "the recent row is rewritten; the one past any retry is left as it was"
    );

    let duplicates = || {
        app.app_state
            .metrics
            .callbacks_total("demo_robot", Outcome::Duplicate)
    };
    let before = duplicates();
    let (status, again) = send_first().await;
    assert_eq!(status, 200);
    assert_eq!(again, first, "the stored reply, not a second run");
    assert_eq!(app.inbox_count().await, 2);
    assert_eq!(duplicates(), before + 1);
}
