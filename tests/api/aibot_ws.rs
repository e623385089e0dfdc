//! The AI bot's long connection against the stand-in's WebSocket endpoint: subscribe, a message
//! answered with its own `req_id` (a retried `msgid` processed once), the `enter_chat` welcome,
//! a kick that does not start a reconnect storm, a dead heartbeat that is redialled, and the
//! lease that lets one replica hold the connection.

use std::time::Duration;

use serde_json::{json, Value};
use yunying::clock::Clock as _;
use yunying::config::{ChannelKind, Secret};
use yunying::fake_wecom::FakeWecom;

use crate::backend_tests;
use crate::helpers::{channel_config, Backend, TestApp};

backend_tests!(
    messages_over_the_long_connection_are_answered_with_their_req_id,
    kicks_do_not_start_a_storm_and_dead_links_are_redialled,
    one_replica_holds_the_connection_and_the_other_takes_over,
    a_killed_holder_is_replaced_once_its_lease_lapses,
);

const BOT: &str = "bot-ws-1";

fn configure(fake: &FakeWecom) -> impl FnOnce(&mut yunying::config::Config) {
    let url = fake.ws_url();
    move |c| {
        let mut ch = channel_config(ChannelKind::WecomAibot);
        ch.mode = Some("websocket".into());
        ch.bot_id = Some(BOT.into());
        ch.secret = Some(Secret::new("long-connection-secret"));
        ch.ws_url = Some(url);
        ch.robot_name = Some("运营小助手".into());
        ch.scope = Some("wwdemo0000000001".into());
        c.channels.insert("ws_bot".into(), ch);
        c.aibot.heartbeat_secs = 1;
        c.aibot.lease_secs = 3;
        c.aibot.reconnect_max_secs = 1;
        c.outbox.poll_interval_ms = 10;
    }
}

async fn spawn(backend: Backend, fake: &FakeWecom) -> TestApp {
    TestApp::spawn_with(backend, configure(fake)).await
}

/// Waits (up to 10 s) until `check` holds.
async fn until(mut check: impl FnMut() -> bool, what: &str) {
    for _ in 0..1000 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

fn replies(fake: &FakeWecom, cmd: &str, req_id: &str) -> Vec<Value> {
    fake.aibot_frames()
        .into_iter()
        .filter(|f| f["cmd"] == cmd && f["headers"]["req_id"] == req_id)
        .collect()
}

async fn messages_over_the_long_connection_are_answered_with_their_req_id(backend: Backend) {
    let fake = FakeWecom::start("127.0.0.1:0").await.expect("stand-in");
    let app = spawn(backend, &fake).await;
    until(|| fake.aibot_counts().0 >= 1, "the subscribe").await;

    let message = json!({ "msgid": "ws-m1", "aibotid": BOT, "chattype": "single", "from": { "userid": "lisi" },
        "msgtype": "text", "text": { "content": "ping" } });
    let mut pushed = None;
    until(
        || {
            pushed = fake.aibot_push(BOT, "aibot_msg_callback", message.clone());
            pushed.is_some()
        },
        "a live connection",
    )
    .await;
    let first = pushed.expect("req_id");
    until(
        || !replies(&fake, "aibot_respond_msg", &first).is_empty(),
        "the reply",
    )
    .await;
    let reply = replies(&fake, "aibot_respond_msg", &first)[0].clone();
    assert_eq!(reply["body"]["msgtype"], "stream");
    assert_eq!(reply["body"]["stream"]["finish"], true);
    assert!(
        reply["body"]["stream"]["content"]
            .as_str()
            .is_some_and(|c| c.starts_with("pong")),
        "{reply}"
    );

    // The same msgid again (a redelivery): answered with the same text, processed once.
    let again = fake
        .aibot_push(BOT, "aibot_msg_callback", message)
        .expect("pushed");
    until(
        || !replies(&fake, "aibot_respond_msg", &again).is_empty(),
        "the second reply",
    )
    .await;
    assert_eq!(
        replies(&fake, "aibot_respond_msg", &again)[0]["body"]["stream"]["content"],
        reply["body"]["stream"]["content"]
    );
    assert_eq!(app.inbox_count().await, 1);

    let enter = json!({ "msgid": "ws-e1", "aibotid": BOT, "create_time": app.clock.now_ms() / 1000,
        "from": { "userid": "wangwu" }, "msgtype": "event", "event": { "eventtype": "enter_chat" } });
    let req = fake
        .aibot_push(BOT, "aibot_event_callback", enter)
        .expect("pushed");
    until(
        || !replies(&fake, "aibot_respond_welcome_msg", &req).is_empty(),
        "the welcome",
    )
    .await;
    let welcome = &replies(&fake, "aibot_respond_welcome_msg", &req)[0];
    assert!(
        welcome["body"]["text"]["content"]
            .as_str()
            .is_some_and(|t| t.contains("签到")),
        "{welcome}"
    );

    // A push from the outbox goes over the connection as aibot_send_msg.
    let push = yunying::outbox::Envelope {
        idem_key: "aibot-push-1".into(),
        channel_id: "ws_bot".into(),
        message: yunying::outbox::Outbound::AibotPush {
            chat_id: "wrchat1".into(),
            markdown: "**今晚 8 点直播**".into(),
        },
        priority: yunying::outbox::PRIORITY_NORMAL,
        not_before_ms: app.clock.now_ms(),
        expires_at_ms: None,
    };
    assert!(app.app_state.outbox.enqueue(push).await.expect("enqueue"));
    until(
        || {
            fake.aibot_frames()
                .iter()
                .any(|f| f["cmd"] == "aibot_send_msg")
        },
        "the push",
    )
    .await;
    let sent = fake
        .aibot_frames()
        .into_iter()
        .find(|f| f["cmd"] == "aibot_send_msg")
        .expect("push frame");
    assert_eq!(sent["body"]["chatid"], "wrchat1");
    assert_eq!(sent["body"]["markdown"]["content"], "**今晚 8 点直播**");
    for _ in 0..500 {
        let row = app
            .store
            .outbox_row("aibot-push-1")
            .await
            .expect("row")
            .expect("exists");
        if row.state == "sent" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        app.store
            .outbox_row("aibot-push-1")
            .await
            .expect("row")
            .expect("exists")
            .state,
        "sent"
    );

    // The lease: one holder at a time, taken over only after it lapses.
    let now = app.clock.now_ms();
    assert!(app
        .store
        .acquire_lease("test", "a", now, now + 1000)
        .await
        .expect("lease"));
    assert!(!app
        .store
        .acquire_lease("test", "b", now + 10, now + 1010)
        .await
        .expect("lease"));
    assert!(app
        .store
        .acquire_lease("test", "a", now + 20, now + 1020)
        .await
        .expect("renew"));
    assert!(app
        .store
        .acquire_lease("test", "b", now + 2000, now + 3000)
        .await
        .expect("after expiry"));
    assert_eq!(
        app.store
            .lease_holder("test", now + 2500)
            .await
            .expect("holder")
            .as_deref(),
        Some("b")
    );
}

async fn kicks_do_not_start_a_storm_and_dead_links_are_redialled(backend: Backend) {
    let fake = FakeWecom::start("127.0.0.1:0").await.expect("stand-in");
    let app = spawn(backend, &fake).await;
    until(|| fake.aibot_counts().0 == 1, "the subscribe").await;

    // Another connection took over: one measured redial after a backoff, not a loop.
    assert!(fake.aibot_kick(BOT));
    until(|| fake.aibot_counts().0 == 2, "the redial after the kick").await;
    // Three lease looks later (one a second), still that one redial.
    let links = app.app_state.outbox.aibot_links().clone();
    let looks = links.lease_looks();
    until(
        || links.lease_looks() >= looks + 3,
        "three more lease looks",
    )
    .await;
    let (subscribes, _) = fake.aibot_counts();
    assert_eq!(subscribes, 2, "one redial after a kick, not a storm");

    // The server stops answering pings: after two misses the link is redialled.
    fake.aibot_ignore_pings(true);
    until(
        || fake.aibot_counts().0 >= 3,
        "a redial after lost heartbeats",
    )
    .await;
    fake.aibot_ignore_pings(false);
}

async fn one_replica_holds_the_connection_and_the_other_takes_over(backend: Backend) {
    let fake = FakeWecom::start("127.0.0.1:0").await.expect("stand-in");
    let first = spawn(backend, &fake).await;
    until(
        || fake.aibot_counts().0 == 1,
        "the first replica's subscribe",
    )
    .await;
    let second = TestApp::spawn_on(&first.database_url(), configure(&fake)).await;
    // The second replica sees the lease and stays off the line (it would kick the first).
    let looks = second.app_state.outbox.aibot_links().clone();
    until(
        || looks.lease_looks() >= 3,
        "the second replica's lease looks",
    )
    .await;
    assert_eq!(fake.aibot_counts().0, 1, "only the lease holder connects");

    // The holder stops: the other one takes over within the lease time.
    let stopped = std::time::Instant::now();
    // Its database stays (the other replica is on it) while the returned value lives.
    let _first_database = first.stop().await;
    until(|| fake.aibot_counts().0 == 2, "the takeover").await;
    let took = stopped.elapsed();
    assert!(took < Duration::from_secs(4), "took over after {took:?}");
    eprintln!(
        "long connection taken over {} ms after the holder stopped",
        took.as_millis()
    );
    // And it answers.
    let message = json!({ "msgid": "ws-r1", "chattype": "single", "from": { "userid": "lisi" },
        "msgtype": "text", "text": { "content": "ping" } });
    let req = fake
        .aibot_push(BOT, "aibot_msg_callback", message)
        .expect("pushed");
    until(
        || !replies(&fake, "aibot_respond_msg", &req).is_empty(),
        "the new holder's reply",
    )
    .await;
    drop(second);
}

/// A real `yunying serve` with a websocket-mode bot dialling the stand-in.
fn serve_with_bot(db: &str, fake: &FakeWecom) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_yunying"))
        .arg("serve")
        .env("YUNYING_DATABASE__URL", db)
        .env("YUNYING_SERVER__LISTEN", "127.0.0.1:0")
        .env("YUNYING_CHANNELS__WSBOT__KIND", "wecom_aibot")
        .env("YUNYING_CHANNELS__WSBOT__MODE", "websocket")
        .env("YUNYING_CHANNELS__WSBOT__BOT_ID", BOT)
        .env("YUNYING_CHANNELS__WSBOT__SECRET", "long-connection-secret")
        .env("YUNYING_CHANNELS__WSBOT__WS_URL", fake.ws_url())
        .env("YUNYING_AIBOT__LEASE_SECS", "3")
        .env("YUNYING_AIBOT__HEARTBEAT_SECS", "1")
        .env("YUNYING_LOG", "warn,yunying::aibot=debug")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start yunying serve")
}

/// Counts the lines of `child`'s log saying another process holds the connection.
fn count_standby_looks(
    child: &mut std::process::Child,
) -> std::sync::Arc<std::sync::atomic::AtomicUsize> {
    use std::io::BufRead as _;
    let looks = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = std::sync::Arc::clone(&looks);
    let out = child.stdout.take().expect("piped stdout");
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if line.contains("held by another process") {
                counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    });
    looks
}

async fn a_killed_holder_is_replaced_once_its_lease_lapses(backend: Backend) {
    let fake = FakeWecom::start("127.0.0.1:0").await.expect("stand-in");
    let dir = tempfile::tempdir().expect("tmp");
    let (db, _pg) = crate::helpers::fresh_database(backend, dir.path()).await;
    let mut holder = serve_with_bot(&db, &fake);
    count_standby_looks(&mut holder);
    until(
        || fake.aibot_counts().0 == 1,
        "the first process's subscribe",
    )
    .await;
    let mut other = serve_with_bot(&db, &fake);
    let looks = count_standby_looks(&mut other);
    until(
        || looks.load(std::sync::atomic::Ordering::Relaxed) >= 2,
        "two looks at the held lease by the second process",
    )
    .await;
    assert_eq!(
        fake.aibot_counts().0,
        1,
        "the second process stays off the line"
    );

    holder.kill().expect("SIGKILL"); // no shutdown, no lease release
    holder.wait().ok();
    let killed = std::time::Instant::now();
    until(|| fake.aibot_counts().0 == 2, "the takeover").await;
    let took = killed.elapsed();
    other.kill().ok();
    other.wait().ok();
    eprintln!(
        "long connection taken over {} ms after the holder was killed",
        took.as_millis()
    );
    // Lease 3 s, looked at every second: the takeover waits for the lapse, and not much longer.
    assert!(
        took >= Duration::from_millis(500),
        "took over before the lease lapsed: {took:?}"
    );
    assert!(took < Duration::from_secs(6), "took over after {took:?}");
}
