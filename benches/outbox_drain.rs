//! Outbox benchmarks against the WeCom stand-in (run: `cargo bench --bench outbox_drain`).
//!
//! 1. Drain rate: 10,000 queued app messages, rate limits off, no faults → messages/s.
//! 2. Faults: 10,000 messages with 30% HTTP 5xx and 10% timeouts → delivered / dead / delivered
//!    twice, calls suppressed by the duplicate check, and the busiest second against the bucket.
//!
//! SQLite always; PostgreSQL too when YUNYING_TEST_DATABASE_URL points at a database (the
//! tables are created there; use a scratch database). OUTBOX_BENCH_MESSAGES changes the count.

use std::sync::Arc;
use std::time::{Duration, Instant};

use yunying::channels::Channels;
use yunying::clock::{Clock as _, SystemClock};
use yunying::config::{Config, Secret};
use yunying::fake_wecom::{FakeWecom, Faults};
use yunying::outbox::{enqueue, Envelope, Outbound, Outbox, PRIORITY_NORMAL};
use yunying::store::{Store, StoreOptions};

struct Outcome {
    seconds: f64,
    sent: i64,
    dead: i64,
    delivered: usize,
    distinct: usize,
    suppressed: u64,
    busiest_second: usize,
}

async fn run(url: &str, n: usize, faults: Faults, per_second: u32) -> Outcome {
    let fake = FakeWecom::start("127.0.0.1:0").await.expect("stand-in");
    fake.set_faults(faults);
    let mut config = Config::example().expect("config");
    config.database.url = Secret::new(url);
    config.api.wecom_base = fake.base_url();
    config.api.timeout_ms = 300;
    config.outbox.batch_size = 64;
    config.outbox.poll_interval_ms = 10;
    config.outbox.backoff_base_ms = 10;
    config.outbox.backoff_cap_ms = 500;
    config.outbox.max_attempts = 30;
    config.outbox.channel_per_second = per_second;
    // One message per member: the per-member quota is not what is measured.
    let store = Store::connect(url, &StoreOptions::default())
        .await
        .expect("db");
    store.migrate().await.expect("migrate");
    // The database may hold an earlier run's rows: count this run's only.
    let before = store.outbox_counts().await.expect("counts");
    let earlier = |state: &str| {
        before
            .iter()
            .find(|(s, _)| s == state)
            .map_or(0, |(_, n)| *n)
    };
    let now = SystemClock.now_ms();
    let mut tx = store.begin_write().await.expect("tx");
    for i in 0..n {
        let env = Envelope {
            idem_key: format!("bench:{now}:{i}"),
            channel_id: "demo_app".into(),
            message: Outbound::App {
                to: vec![format!("u{i}")],
                message: Outbound::text(format!("bench {now} #{i}")),
            },
            priority: PRIORITY_NORMAL,
            not_before_ms: now,
            expires_at_ms: None,
        };
        enqueue(&mut tx, &config, &env, now).await.expect("enqueue");
    }
    tx.commit().await.expect("commit");
    let channels = Arc::new(Channels::from_config(&config).expect("channels"));
    let config = Arc::new(config);
    // Two workers, as two tasks of one process would run them.
    let workers: Vec<Outbox> = (0..2)
        .map(|_| {
            Outbox::new(
                Arc::clone(&config),
                Arc::clone(&channels),
                store.clone(),
                None,
                Arc::new(SystemClock),
            )
            .expect("outbox")
        })
        .collect();
    let started = Instant::now();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let handles: Vec<_> = workers.iter().map(|w| w.spawn(shutdown.clone())).collect();
    loop {
        let counts = store.outbox_counts().await.expect("counts");
        let busy: i64 = counts
            .iter()
            .filter(|(s, _)| s == "pending" || s == "sending")
            .map(|(_, n)| n)
            .sum();
        if busy == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    shutdown.cancel();
    for h in handles {
        let _ = h.await;
    }
    let counts = store.outbox_counts().await.expect("counts");
    let get = |state: &str| {
        counts
            .iter()
            .find(|(s, _)| s == state)
            .map_or(0, |(_, n)| *n)
            - earlier(state)
    };
    let mut texts: Vec<String> = fake
        .deliveries()
        .into_iter()
        .map(|d| d.body["text"]["content"].as_str().unwrap_or("").to_owned())
        .collect();
    let delivered = texts.len();
    texts.sort();
    texts.dedup();
    let mut times: Vec<i64> = fake
        .requests()
        .iter()
        .filter(|r| r.api == "message/send")
        .map(|r| r.at_ms)
        .collect();
    times.sort_unstable();
    let busiest_second = (0..times.len())
        .map(|i| {
            times[i..]
                .iter()
                .take_while(|&&t| t < times[i] + 1000)
                .count()
        })
        .max()
        .unwrap_or(0);
    Outcome {
        seconds,
        sent: get("sent"),
        dead: get("dead"),
        delivered,
        distinct: texts.len(),
        suppressed: fake.duplicates_suppressed(),
        busiest_second,
    }
}

fn main() {
    let n: usize = std::env::var("OUTBOX_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tmp");
    let mut databases = vec![(
        "SQLite",
        format!("sqlite://{}", dir.path().join("bench.db").display()),
    )];
    if let Ok(url) = std::env::var("YUNYING_TEST_DATABASE_URL") {
        if !url.is_empty() {
            databases.push(("PostgreSQL", url));
        }
    }
    for (name, url) in &databases {
        let o = runtime.block_on(run(url, n, Faults::default(), 0));
        println!(
            "{name}: drain {n} messages, limits off: {:.2} s → {:.0} messages/s (sent {}, dead {})",
            o.seconds,
            o.sent as f64 / o.seconds,
            o.sent,
            o.dead
        );
        let faults = Faults {
            http_5xx_rate: 0.3,
            timeout_rate: 0.1,
            timeout_ms: 600,
            ..Faults::default()
        };
        let o = runtime.block_on(run(url, n, faults, 1000));
        println!(
            "{name}: {n} messages with 30% 5xx + 10% timeouts, bucket 1000/s: {:.2} s; sent {}, dead {}; \
             delivered {} ({} distinct → {} twice); duplicate check caught {}; busiest second {} calls (bucket allows ≤ 2000)",
            o.seconds,
            o.sent,
            o.dead,
            o.delivered,
            o.distinct,
            o.delivered - o.distinct,
            o.suppressed,
            o.busiest_second
        );
    }
}
