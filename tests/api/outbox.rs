//! The outbox against the WeCom stand-in over real HTTP, on both databases: faults (5xx,
//! timeouts, busy), exclusive claims by two workers, token caching and refresh, gettoken
//! backoff, platform rate limits, permanent errors, and customer mass-send tasks.

use std::sync::Arc;

use yunying::channels::Channels;
use yunying::clock::{Clock, ManualClock, SharedClock, SystemClock};
use yunying::config::{Config, Secret};
use yunying::fake_wecom::{FakeWecom, Faults};
use yunying::outbox::{Envelope, Outbound, Outbox, PRIORITY_NORMAL};
use yunying::store::{Store, StoreOptions};

use crate::backend_tests;
use crate::helpers::{fresh_database, test_config, Backend};

backend_tests!(
    every_message_is_delivered_once_through_5xx_and_timeouts,
    two_workers_never_send_the_same_row,
    one_gettoken_per_lifetime_and_one_refresh_when_revoked,
    a_wrong_secret_backs_off_instead_of_hammering_gettoken,
    robot_sends_stay_within_twenty_per_minute_and_45009_pauses,
    permanent_errors_go_dead_with_the_reason_and_can_be_requeued,
    mass_sends_are_tasks_until_confirmed_and_respect_the_monthly_quota,
);

fn message_count() -> usize {
    std::env::var("OUTBOX_TEST_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600)
}

struct Rig {
    fake: FakeWecom,
    store: Store,
    config: Arc<Config>,
    channels: Arc<Channels>,
    _dir: tempfile::TempDir,
    _pg: Option<crate::helpers::PgDatabase>,
}

impl Rig {
    async fn new(backend: Backend, adjust: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("tmp");
        let (url, _pg) = fresh_database(backend, dir.path()).await;
        let fake = FakeWecom::start("127.0.0.1:0").await.expect("stand-in");
        let mut config = test_config(&url);
        config.api.wecom_base = fake.base_url();
        config.api.mp_base = fake.base_url();
        config.api.timeout_ms = 300;
        config.outbox.poll_interval_ms = 10;
        config.outbox.backoff_base_ms = 5;
        config.outbox.backoff_cap_ms = 100;
        config.outbox.max_attempts = 30;
        config.outbox.batch_size = 32;
        adjust(&mut config);
        let store = Store::connect(&url, &StoreOptions::default())
            .await
            .expect("connect");
        store.migrate().await.expect("migrate");
        let channels = Arc::new(Channels::from_config(&config).expect("channels"));
        Self {
            fake,
            store,
            config: Arc::new(config),
            channels,
            _dir: dir,
            _pg,
        }
    }

    fn outbox(&self, clock: SharedClock) -> Outbox {
        Outbox::new(
            Arc::clone(&self.config),
            Arc::clone(&self.channels),
            self.store.clone(),
            None,
            clock,
        )
        .expect("outbox")
    }

    async fn count(&self, state: &str) -> i64 {
        self.store
            .outbox_counts()
            .await
            .expect("counts")
            .into_iter()
            .find(|(s, _)| s == state)
            .map_or(0, |(_, n)| n)
    }

    /// Runs rounds until nothing is pending or in flight (bounded, so a bug fails instead of hanging).
    async fn drain(&self, outbox: &Outbox) {
        for _ in 0..100_000 {
            let busy = self.count("pending").await + self.count("sending").await;
            if busy == 0 {
                return;
            }
            if outbox.run_once().await.expect("round") == 0 {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        }
        panic!("the outbox did not drain");
    }
}

fn app_text(i: usize, user: &str, now: i64) -> Envelope {
    Envelope {
        idem_key: format!("test:{i}"),
        channel_id: "demo_app".into(),
        message: Outbound::App {
            to: vec![user.into()],
            message: Outbound::text(format!("消息 #{i}")),
        },
        priority: PRIORITY_NORMAL,
        not_before_ms: now,
        expires_at_ms: None,
    }
}

fn robot_text(key: &str, text: &str, now: i64) -> Envelope {
    Envelope {
        idem_key: key.into(),
        channel_id: "demo_robot".into(),
        message: Outbound::Robot {
            message: Outbound::text(text),
            mentions: Vec::new(),
        },
        priority: PRIORITY_NORMAL,
        not_before_ms: now,
        expires_at_ms: None,
    }
}

fn contents(fake: &FakeWecom, api: &str) -> Vec<String> {
    fake.deliveries()
        .into_iter()
        .filter(|d| d.api == api)
        .map(|d| d.body["text"]["content"].as_str().unwrap_or("").to_owned())
        .collect()
}

fn assert_unique(list: &[String]) {
    let mut sorted = list.to_vec();
    sorted.sort();
    let before = sorted.len();
    sorted.dedup();
    assert_eq!(before, sorted.len(), "a message was delivered twice");
}

async fn every_message_is_delivered_once_through_5xx_and_timeouts(backend: Backend) {
    let rig = Rig::new(backend, |c| c.outbox.channel_per_second = 400).await;
    rig.fake.set_faults(Faults {
        http_5xx_rate: 0.3,
        timeout_rate: 0.1,
        timeout_ms: 600,
        ..Faults::default()
    });
    let outbox = rig.outbox(Arc::new(SystemClock));
    let n = message_count();
    let now = SystemClock.now_ms();
    for i in 0..n {
        // Two messages per member: the per-member limit (25/min) is not what this test is about.
        assert!(outbox
            .enqueue(app_text(i, &format!("u{}", i / 2), now))
            .await
            .expect("enqueue"));
    }
    // Queuing a key again changes nothing.
    assert!(!outbox
        .enqueue(app_text(0, "u0", now))
        .await
        .expect("enqueue"));
    rig.drain(&outbox).await;

    let delivered = contents(&rig.fake, "message/send");
    assert_unique(&delivered);
    let (sent, dead) = (rig.count("sent").await, rig.count("dead").await);
    assert_eq!(sent + dead, n as i64, "every row ended sent or dead");
    assert_eq!(
        delivered.len() as i64,
        sent,
        "every sent row was delivered, once"
    );
    let requests = rig.fake.requests();
    let failures = requests.iter().filter(|r| r.outcome == "5xx").count();
    assert!(failures > n / 10, "faults were injected: {failures}");
    assert!(
        rig.fake.duplicates_suppressed() > 0,
        "timed-out sends were re-sent and caught by the duplicate check"
    );

    // The channel bucket (400/s, burst 400): never more than 800 calls in any second.
    let mut times: Vec<i64> = requests
        .iter()
        .filter(|r| r.api == "message/send")
        .map(|r| r.at_ms)
        .collect();
    times.sort_unstable();
    for (i, &t) in times.iter().enumerate() {
        let in_second = times[i..].iter().take_while(|&&u| u < t + 1000).count();
        assert!(
            in_second <= 800 + 40,
            "{in_second} calls in the second from {t}"
        );
    }
}

async fn two_workers_never_send_the_same_row(backend: Backend) {
    let rig = Rig::new(backend, |_| {}).await;
    // Without the duplicate check, a double send would show as a second delivery.
    rig.fake.set_faults(Faults {
        ignore_duplicate_check: true,
        latency_ms: 1,
        ..Faults::default()
    });
    let (a, b) = (
        rig.outbox(Arc::new(SystemClock)),
        rig.outbox(Arc::new(SystemClock)),
    );
    let n = message_count() / 2;
    let now = SystemClock.now_ms();
    for i in 0..n {
        a.enqueue(app_text(i, &format!("u{i}"), now))
            .await
            .expect("enqueue");
    }
    tokio::join!(rig.drain(&a), rig.drain(&b));
    let delivered = contents(&rig.fake, "message/send");
    assert_unique(&delivered);
    assert_eq!(delivered.len(), n);
    assert_eq!(
        rig.fake.gettoken_calls(),
        1,
        "one token shared by both workers"
    );
}

async fn one_gettoken_per_lifetime_and_one_refresh_when_revoked(backend: Backend) {
    let rig = Rig::new(backend, |_| {}).await;
    let outbox = rig.outbox(Arc::new(SystemClock));
    let now = SystemClock.now_ms();
    for i in 0..100 {
        outbox
            .enqueue(app_text(i, &format!("u{i}"), now))
            .await
            .expect("enqueue");
    }
    rig.drain(&outbox).await;
    assert_eq!(rig.fake.gettoken_calls(), 1);
    // WeCom invalidates tokens before expiry now and then.
    rig.fake.set_faults(Faults {
        expire_tokens_now: true,
        ..Faults::default()
    });
    for i in 100..200 {
        outbox
            .enqueue(app_text(i, &format!("u{i}"), now))
            .await
            .expect("enqueue");
    }
    rig.drain(&outbox).await;
    assert_eq!(
        rig.fake.gettoken_calls(),
        2,
        "one refresh for all the workers' failures"
    );
    assert_eq!(rig.count("sent").await, 200);
    // A restarted process finds the shared token and fetches none.
    let restarted = rig.outbox(Arc::new(SystemClock));
    restarted
        .enqueue(app_text(200, "u200", now))
        .await
        .expect("enqueue");
    rig.drain(&restarted).await;
    assert_eq!(rig.fake.gettoken_calls(), 2);
}

async fn a_wrong_secret_backs_off_instead_of_hammering_gettoken(backend: Backend) {
    let rig = Rig::new(backend, |c| {
        if let Some(app) = c.channels.get_mut("demo_app") {
            app.secret = Some(Secret::new("bad-secret"));
        }
        c.outbox.max_attempts = 3;
    })
    .await;
    let clock = ManualClock::new(SystemClock.now_ms());
    let outbox = rig.outbox(clock.clone());
    outbox
        .enqueue(app_text(1, "u1", clock.now_ms()))
        .await
        .expect("enqueue");
    outbox
        .enqueue(app_text(2, "u2", clock.now_ms()))
        .await
        .expect("enqueue");
    outbox.run_once().await.expect("round");
    assert_eq!(
        rig.fake.gettoken_calls(),
        1,
        "the second row waits for the backoff too"
    );
    // Rounds within the backoff call nothing.
    clock.advance_ms(60_000);
    outbox.run_once().await.expect("round");
    assert_eq!(rig.fake.gettoken_calls(), 1);
    let rows = rig.store.outbox_rows(None, 10).await.expect("rows");
    assert!(
        rows.iter()
            .all(|r| r.last_error.as_deref().is_some_and(|e| e.contains("40001"))),
        "{rows:?}"
    );
    // After the 10-minute block, one more try; after max_attempts the rows are dead.
    for _ in 0..4 {
        clock.advance_ms(11 * 60_000);
        outbox.run_once().await.expect("round");
    }
    assert_eq!(rig.count("dead").await, 2);
    assert!(
        rig.fake.gettoken_calls() <= 3,
        "{}",
        rig.fake.gettoken_calls()
    );
}

async fn robot_sends_stay_within_twenty_per_minute_and_45009_pauses(backend: Backend) {
    let rig = Rig::new(backend, |_| {}).await;
    let clock = ManualClock::new(SystemClock.now_ms());
    let outbox = rig.outbox(clock.clone());
    for i in 0..50 {
        let env = robot_text(
            &format!("robot:{i}"),
            &format!("群消息 {i}"),
            clock.now_ms(),
        );
        outbox.enqueue(env).await.expect("enqueue");
    }
    // Ten minutes in 5-second steps, recording when (on the outbox's clock) each went out.
    let mut sent_at = Vec::new();
    for _ in 0..120 {
        let before = contents(&rig.fake, "webhook/send").len();
        outbox.run_once().await.expect("round");
        let after = contents(&rig.fake, "webhook/send").len();
        sent_at.extend(std::iter::repeat_n(clock.now_ms(), after - before));
        clock.advance_ms(5_000);
    }
    assert_eq!(sent_at.len(), 50);
    for (i, &t) in sent_at.iter().enumerate() {
        let in_minute = sent_at[i..].iter().take_while(|&&u| u < t + 60_000).count();
        assert!(
            in_minute <= 20,
            "{in_minute} robot messages in the minute from {t}"
        );
    }

    // The platform says 45009: the row waits a minute instead of retrying at once.
    rig.fake.set_faults(Faults {
        rate_limit_rate: 1.0,
        ..Faults::default()
    });
    let env = robot_text("robot:limited", "限流", clock.now_ms());
    outbox.enqueue(env).await.expect("enqueue");
    outbox.run_once().await.expect("round");
    rig.fake.set_faults(Faults::default());
    clock.advance_ms(30_000);
    outbox.run_once().await.expect("round");
    let limited = rig
        .store
        .outbox_row("robot:limited")
        .await
        .expect("row")
        .expect("exists");
    assert_eq!(limited.state, "pending", "still paused half a minute later");
    assert_eq!(
        limited.attempts, 0,
        "a rate-limited try is not a failed attempt"
    );
    clock.advance_ms(31_000);
    outbox.run_once().await.expect("round");
    let limited = rig
        .store
        .outbox_row("robot:limited")
        .await
        .expect("row")
        .expect("exists");
    assert_eq!(limited.state, "sent");
}

async fn permanent_errors_go_dead_with_the_reason_and_can_be_requeued(backend: Backend) {
    let rig = Rig::new(backend, |_| {}).await;
    let outbox = rig.outbox(Arc::new(SystemClock));
    let now = SystemClock.now_ms();
    for i in 0..2 {
        let env = Envelope {
            idem_key: format!("welcome:{i}"),
            channel_id: "demo_app".into(),
            // The same code twice: WeCom accepts a welcome code once (41051).
            message: Outbound::Welcome {
                welcome_code: "CODE1".into(),
                text: "欢迎".into(),
            },
            priority: PRIORITY_NORMAL,
            not_before_ms: now,
            expires_at_ms: None,
        };
        outbox.enqueue(env).await.expect("enqueue");
    }
    rig.drain(&outbox).await;
    let dead = rig.store.outbox_rows(Some("dead"), 10).await.expect("rows");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attempts, 1, "no retry of a permanent error");
    let reason = dead[0].last_error.clone().unwrap_or_default();
    assert!(
        reason.contains("41051") && reason.contains("欢迎语"),
        "{reason}"
    );
    assert_eq!(
        rig.store
            .requeue_outbox(Some(dead[0].id), now)
            .await
            .expect("requeue"),
        1
    );
    assert_eq!(rig.count("pending").await, 1);
    rig.drain(&outbox).await;
    assert_eq!(rig.count("dead").await, 1);
    assert_eq!(rig.count("sent").await, 1);
}

async fn mass_sends_are_tasks_until_confirmed_and_respect_the_monthly_quota(backend: Backend) {
    let rig = Rig::new(backend, |c| c.outbox.customer_monthly_quota = 1).await;
    let clock = ManualClock::new(SystemClock.now_ms());
    let outbox = rig.outbox(clock.clone());
    let mass = |key: &str, recipients: &[&str]| Envelope {
        idem_key: key.into(),
        channel_id: "demo_app".into(),
        message: Outbound::Mass {
            sender: "zhangsan".into(),
            recipients: recipients.iter().map(|r| (*r).to_owned()).collect(),
            text: "双十一活动开始啦".into(),
        },
        priority: PRIORITY_NORMAL,
        not_before_ms: clock.now_ms(),
        expires_at_ms: None,
    };
    outbox
        .enqueue(mass("mass:1", &["wm1", "wm2"]))
        .await
        .expect("enqueue");
    outbox.run_once().await.expect("round");
    let row = rig
        .store
        .outbox_row("mass:1")
        .await
        .expect("row")
        .expect("exists");
    assert_eq!(row.state, "task_created", "created is not delivered");
    let msgid = row.platform_id.clone().expect("msgid");
    assert!(
        contents(&rig.fake, "groupmsg").is_empty(),
        "nothing delivered before confirmation"
    );

    // Polled before staff confirm: still a task.
    clock.advance_ms(rig.config.outbox.task_poll_secs * 1000 + 1);
    assert_eq!(outbox.poll_tasks_once().await.expect("poll"), 1);
    assert_eq!(
        rig.store
            .outbox_row("mass:1")
            .await
            .expect("row")
            .expect("row")
            .state,
        "task_created"
    );
    assert!(rig.fake.confirm(&msgid));
    clock.advance_ms(rig.config.outbox.task_poll_secs * 1000 + 1);
    outbox.poll_tasks_once().await.expect("poll");
    let row = rig
        .store
        .outbox_row("mass:1")
        .await
        .expect("row")
        .expect("exists");
    assert_eq!(row.state, "delivered");
    assert!(
        row.result
            .as_deref()
            .is_some_and(|r| r.contains("\"sent\":2")),
        "{:?}",
        row.result
    );

    // Quota 1 per month: wm1 is used up, wm3 is not.
    outbox
        .enqueue(mass("mass:2", &["wm1", "wm3"]))
        .await
        .expect("enqueue");
    outbox
        .enqueue(mass("mass:3", &["wm2"]))
        .await
        .expect("enqueue");
    outbox.run_once().await.expect("round");
    let tasks = rig.fake.tasks();
    let second = tasks
        .iter()
        .find(|t| t.recipients.contains(&"wm3".to_string()))
        .expect("task");
    assert_eq!(second.recipients, vec!["wm3".to_string()]);
    let third = rig
        .store
        .outbox_row("mass:3")
        .await
        .expect("row")
        .expect("exists");
    assert_eq!(third.state, "dead");
    assert!(third.last_error.unwrap_or_default().contains("quota"));
}
