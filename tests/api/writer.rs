//! Batched writes share one transaction; one failing write must not take the others with it,
//! and a write retried alone after a rolled-back round must not be applied twice.

use std::sync::Arc;

use yunying::on_tx;
use yunying::store::{StoreError, Tx};

use crate::backend_tests;
use crate::helpers::{Backend, TestApp};

backend_tests!(one_failing_write_leaves_the_others_committed_once);

/// A job that writes chunk after chunk (the periodic stage and layer jobs over a large community)
/// must not starve the callbacks' group commit. On SQLite a writer that found the file locked
/// slept in the busy handler while the next chunk took the lock again, until its 5 s timeout
/// answered 503. Now writers queue for the process's write turn in arrival order: a callback that
/// arrives while one chunk writes is committed before the next chunk starts.
#[tokio::test]
async fn a_callback_waiting_behind_a_chunk_goes_before_the_next_chunk() {
    // Nothing else in the process writes: the only writers are the ones this test starts.
    let app = Arc::new(
        TestApp::spawn_with(Backend::Sqlite, |c| {
            c.outbox.enabled = false;
            c.scheduler.enabled = false;
        })
        .await,
    );
    let turn = app
        .store
        .write_turn()
        .expect("a SQLite file has a write turn")
        .clone();
    let until_waiting = |n: usize| {
        let turn = turn.clone();
        async move {
            for _ in 0..5_000 {
                if turn.waiting() >= n {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            panic!("fewer than {n} writers ever waited for the turn");
        }
    };
    let first_chunk = app.store.begin_write().await.expect("first chunk");
    let callback = {
        let app = Arc::clone(&app);
        tokio::spawn(async move {
            app.send_text("demo_app", "zhangsan", None, "hello", "behind-a-chunk")
                .await
        })
    };
    until_waiting(1).await;
    let next_chunk = {
        let store = app.store.clone();
        tokio::spawn(async move {
            let mut tx = store.begin_write().await.expect("next chunk");
            let seen: i64 = yunying::on_tx!(&mut tx, c => sqlx::query_scalar("select count(*) from inbox")
                .fetch_one(&mut **c).await.expect("count"));
            tx.commit().await.expect("commit");
            seen
        })
    };
    until_waiting(2).await;
    first_chunk.commit().await.expect("commit");
    let (status, _) = callback.await.expect("callback task");
    assert_eq!(status, 200);
    assert_eq!(
        next_chunk.await.expect("chunk task"),
        1,
        "the callback waiting first must commit before the next chunk"
    );
}

async fn insert_count(tx: &mut Tx, day: i32) -> Result<i32, StoreError> {
    if day == 13 {
        // A statement the database refuses: aborts the shared round.
        on_tx!(tx, c => {
            sqlx::query("insert into no_such_table values (1)").execute(&mut **c).await?;
        });
    }
    on_tx!(tx, c => {
        sqlx::query("insert into signin_counts (scope, day, signins) values ('t', $1, 1)")
            .bind(day).execute(&mut **c).await?;
    });
    Ok(day)
}

async fn one_failing_write_leaves_the_others_committed_once(backend: Backend) {
    let app = Arc::new(TestApp::spawn(backend).await);
    let mut tasks = Vec::new();
    for day in 0..64 {
        let app = Arc::clone(&app);
        tasks.push(tokio::spawn(async move {
            app.app_state
                .ingress
                .writer()
                .run_batched(move |tx| Box::pin(insert_count(tx, day)))
                .await
                .expect("writer running")
        }));
    }
    let mut failed = Vec::new();
    for (day, task) in tasks.into_iter().enumerate() {
        match task.await.expect("task") {
            Ok(echo) => assert_eq!(echo, i32::try_from(day).expect("day")),
            Err(_) => failed.push(day),
        }
    }
    assert_eq!(failed, vec![13]);
    let rows: Vec<(i32, i64)> = yunying::on_pool!(app.store.pool(), p => sqlx::query_as(
        "select day, signins from signin_counts where scope = 't' order by day")
        .fetch_all(p).await.expect("rows"));
    let expected: Vec<(i32, i64)> = (0..64).filter(|d| *d != 13).map(|d| (d, 1)).collect();
    assert_eq!(rows, expected);
}

/// PostgreSQL: an ops API write runs beside the group commits, not in the writer's turn. An
/// adjustment that waits for a points row locked elsewhere must not hold up the callbacks; once
/// the lock goes, it is applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_waiting_on_a_row_lock_does_not_hold_up_callbacks() {
    use sqlx::Connection as _;
    const TOKEN: &str = "ops-token-0123456789";
    if crate::helpers::pg_url().is_none() {
        eprintln!("skipped: YUNYING_TEST_DATABASE_URL is not set");
        return;
    }
    let app = Arc::new(
        TestApp::spawn_with(Backend::Postgres, |c| {
            c.ops_api.token = yunying::config::Secret::new(TOKEN);
        })
        .await,
    );
    let adjust = |request_id: &'static str| {
        let app = Arc::clone(&app);
        async move {
            let body = serde_json::json!({
                "delta": 10, "reason": "活动奖励", "operator": "小运营", "request_id": request_id
            });
            let (status, answer) = app
                .api_post("/api/v1/members/wwdemo0000000001/u1/points", TOKEN, &body)
                .await;
            assert_eq!(status, 200, "{answer}");
            answer
        }
    };
    app.robot_say("u1", Some("g1"), "大家好", "w-u1").await;
    adjust("r1").await;

    // Another session holds u1's points row.
    let mut other = sqlx::PgConnection::connect(&app.database_url())
        .await
        .expect("connect");
    sqlx::query("begin")
        .execute(&mut other)
        .await
        .expect("begin");
    sqlx::query(
        "select balance from points_accounts where member_id = \
         (select id from members where platform_user_id = 'u1') for update",
    )
    .execute(&mut other)
    .await
    .expect("lock");
    let blocked = tokio::spawn(adjust("r2"));
    // Until the adjustment is waiting for that lock (seen from the database, not a sleep).
    let database = app
        .database_url()
        .rsplit('/')
        .next()
        .expect("name")
        .to_owned();
    let mut observer = sqlx::PgConnection::connect(&app.database_url())
        .await
        .expect("connect");
    let waiting = async {
        loop {
            let waiters: i64 = sqlx::query_scalar(
                "select count(*) from pg_stat_activity where datname = $1 and wait_event_type = 'Lock'",
            )
            .bind(&database)
            .fetch_one(&mut observer)
            .await
            .expect("activity");
            if waiters > 0 {
                break;
            }
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(30), waiting)
        .await
        .expect("the adjustment waits for the lock");

    let answered = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        app.robot_say("u2", Some("g"), "ping", "lock-1"),
    )
    .await
    .expect("a callback is answered while the job waits");
    assert!(answered.starts_with("pong"), "{answered}");
    assert!(!blocked.is_finished(), "the adjustment still waits");

    sqlx::query("rollback")
        .execute(&mut other)
        .await
        .expect("rollback");
    let done = tokio::time::timeout(std::time::Duration::from_secs(30), blocked)
        .await
        .expect("the adjustment goes on")
        .expect("task");
    assert_eq!(
        (done["applied"].as_bool(), done["balance"].as_i64()),
        (Some(true), Some(20))
    );
}

/// PostgreSQL: once the inbox has outgrown what the planner last measured (here: never, as
/// with autovacuum off), the writer has the tables analyzed, so statements prepared on the
/// nearly empty tables are planned again for the tables as they are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tables_are_measured_once_the_inbox_has_grown() {
    use sqlx::Connection as _;
    if crate::helpers::pg_url().is_none() {
        eprintln!("skipped: YUNYING_TEST_DATABASE_URL is not set");
        return;
    }
    let app = Arc::new(TestApp::spawn(Backend::Postgres).await);
    let mut observer = sqlx::PgConnection::connect(&app.database_url())
        .await
        .expect("connect");
    assert!(
        measured_rows(&mut observer).await < 0.0,
        "a new table is not measured"
    );

    const MESSAGES: usize = 2_100;
    let mut tasks = Vec::new();
    for worker in 0..16 {
        let app = Arc::clone(&app);
        tasks.push(tokio::spawn(async move {
            for i in (worker..MESSAGES).step_by(16) {
                let what = yunying::send::Simulated::Text {
                    from: format!("m{}", i % 300),
                    name: None,
                    group: Some("g".into()),
                    text: "大家好".into(),
                    msg_id: format!("grow-{i}"),
                };
                let response = app
                    .post("demo_robot", &app.build("demo_robot", &what))
                    .await;
                assert_eq!(response.status(), 200);
            }
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    // The statistics are gathered in the background: wait for them (bounded), then check.
    let waited = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        loop {
            let rows = measured_rows(&mut observer).await;
            if rows >= 2_000.0 {
                return rows;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    let rows = waited.expect("the inbox is measured after 2,000 new rows");
    assert!(rows <= MESSAGES as f32, "{rows}");
    assert_eq!(app.inbox_count().await, MESSAGES as i64);

    // A small sample (statistics target 10: at most 11 histogram bounds) and nothing on the
    // payloads, so that measuring a large inbox stays cheap.
    let stats: Vec<(String, Option<i32>)> = sqlx::query_as(
        "select attname::text, array_length(histogram_bounds::text::text[], 1) from pg_stats \
         where schemaname = current_schema() and tablename = 'inbox' order by attname",
    )
    .fetch_all(&mut observer)
    .await
    .expect("pg_stats");
    let names: Vec<&str> = stats.iter().map(|(name, _)| name.as_str()).collect();
    assert!(
        names.contains(&"id") && names.contains(&"dedupe_key"),
        "{names:?}"
    );
    assert!(
        !names.contains(&"payload") && !names.contains(&"reply"),
        "{names:?}"
    );
    let id_bounds = stats
        .iter()
        .find(|(name, _)| name == "id")
        .and_then(|(_, n)| *n);
    assert!(id_bounds.is_some_and(|n| n <= 11), "{id_bounds:?}");
}

/// What the planner last measured of the inbox: -1 until it is analyzed.
async fn measured_rows(observer: &mut sqlx::PgConnection) -> f32 {
    sqlx::query_scalar("select reltuples from pg_class where oid = 'inbox'::regclass")
        .fetch_one(observer)
        .await
        .expect("reltuples")
}

/// PostgreSQL: the group commit lends its connections out without a liveness check (it cost a
/// round trip per batch). When the server kills them, a callback may get a 503, which the
/// platform retries; the dead connections are then replaced and nothing is lost or doubled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writer_connections_killed_by_the_server_are_replaced() {
    if crate::helpers::pg_url().is_none() {
        eprintln!("skipped: YUNYING_TEST_DATABASE_URL is not set");
        return;
    }
    let app = TestApp::spawn(Backend::Postgres).await;
    let (status, _) = app
        .send_text("demo_app", "zhangsan", None, "早上好", "before-kill")
        .await;
    assert_eq!(status, 200);

    // Every other session of this database, the writer's included.
    app.execute_sql(
        "select pg_terminate_backend(pid) from pg_stat_activity \
         where datname = current_database() and pid <> pg_backend_pid()",
        &[],
    )
    .await;

    // The platform's retries: the same delivery until it is accepted. The writer has two
    // connections, so at most two attempts can meet a dead one.
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let (status, _) = app
            .send_text("demo_app", "zhangsan", None, "还在吗", "after-kill")
            .await;
        statuses.push(status);
        if status == 200 {
            break;
        }
    }
    assert_eq!(statuses.last(), Some(&200), "attempts: {statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 503),
        "only 503s before the success: {statuses:?}"
    );
    // Later deliveries go straight through.
    let (status, _) = app
        .send_text("demo_app", "lisi", None, "你好", "later")
        .await;
    assert_eq!(status, 200);
    app.settle().await;
    assert_eq!(app.inbox_count().await, 3, "each delivery stored once");
    let counts: Vec<i64> = app
        .query_column("select message_count from members order by platform_user_id")
        .await;
    assert_eq!(counts, vec![1, 2], "lisi once, zhangsan twice");
}

/// The two group committers (SQLite's own statements, PostgreSQL's array statements) are fed the
/// same random deliveries round by round and must leave the same members, groups, memberships
/// and daily activity. `DIFF_SEED=<n>` replays a run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_committers_leave_the_same_rows() {
    use rand::{Rng as _, SeedableRng as _};
    if crate::helpers::pg_url().is_none() {
        eprintln!("skipped: YUNYING_TEST_DATABASE_URL is not set");
        return;
    }
    let seed: u64 = std::env::var("DIFF_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("DIFF_SEED={seed}");
    let apps = [
        TestApp::spawn_with_chain(Backend::Sqlite, |d| d).await,
        TestApp::spawn_with_chain(Backend::Postgres, |d| d).await,
    ];
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let base = crate::helpers::NOW_MS / 1000;
    for round in 0..40 {
        // Each member and each group at most once per round: within a round the order of
        // commits is the writer's, across rounds it is the test's.
        let mut members: Vec<usize> = (0..30).collect();
        let mut groups: Vec<usize> = (0..6).collect();
        shuffle(&mut members, &mut rng);
        shuffle(&mut groups, &mut rng);
        let at = base + round * 45 + rng.gen_range(0..40);
        let mut events = Vec::new();
        for (i, member) in members.iter().take(12).enumerate() {
            let group = groups.get(i).copied();
            let kind = rng.gen_range(0..10);
            events.push(event(*member, group, kind, at + i as i64, round, i));
        }
        for app in &apps {
            let writer = app.app_state.ingress.writer();
            let accepted = futures_util::future::join_all(events.iter().cloned().map(|e| {
                let row = row_of(&e, crate::helpers::NOW_MS);
                writer.accept(row, Arc::new(e))
            }))
            .await;
            assert!(
                accepted.iter().all(Result::is_ok),
                "seed {seed}: {accepted:?}"
            );
        }
    }
    let queries = [
        "select scope || '|' || platform_user_id || '|' || coalesce(display_name, '-') || '|' || cast(first_seen_at as text) || '|' || cast(last_active_at as text) || '|' || cast(message_count as text) from members order by scope, platform_user_id",
        "select scope || '|' || platform_group_id || '|' || coalesce(name, '-') || '|' || cast(first_seen_at as text) || '|' || cast(last_active_at as text) from chat_groups order by scope, platform_group_id",
        "select g.platform_group_id || '|' || m.platform_user_id || '|' || cast(gm.joined_at as text) || '|' || coalesce(cast(gm.left_at as text), '-') from group_members gm join chat_groups g on g.id = gm.group_id join members m on m.id = gm.member_id order by g.platform_group_id, m.platform_user_id",
        "select cast(a.day as text) || '|' || m.platform_user_id || '|' || cast(a.message_count as text) || '|' || cast(a.event_count as text) from member_daily_activity a join members m on m.id = a.member_id order by a.day, m.platform_user_id",
    ];
    for sql in queries {
        let sqlite: Vec<String> = apps[0].query_column(sql).await;
        let pg: Vec<String> = apps[1].query_column(sql).await;
        assert!(!sqlite.is_empty(), "{sql}");
        assert_eq!(sqlite, pg, "seed {seed}: {sql}");
    }
}

fn shuffle<T>(items: &mut [T], rng: &mut impl rand::Rng) {
    for i in (1..items.len()).rev() {
        items.swap(i, rng.gen_range(0..=i));
    }
}

/// A random delivery: a message (in a group or not, with or without a name), a join or a leave.
fn event(
    member: usize,
    group: Option<usize>,
    kind: u32,
    at: i64,
    round: i64,
    i: usize,
) -> yunying::events::Event {
    use yunying::events::{Event, EventKind, GroupRef, Message, UserRef};
    let user = UserRef::new(
        format!("u{member}"),
        (kind % 3 != 0).then(|| format!("名{member}-{}", round % 4)),
    );
    let group_ref = group.map(|g| GroupRef {
        id: format!("g{g}"),
        name: (kind % 2 == 0).then(|| format!("群{g}-{}", round % 3)),
    });
    let kind = match (kind, group_ref) {
        (0..=6, g) => EventKind::Message(Message {
            sender: user,
            group: g,
            msg_type: "text".into(),
            text: "你好".into(),
            mentions_bot: false,
            platform_msg_id: format!("m{round}-{i}"),
        }),
        (7..=8, Some(g)) => EventKind::MemberJoined {
            group: g,
            members: vec![user],
            inviter: None,
            join_scene: None,
        },
        (_, Some(g)) => EventKind::MemberLeft {
            group: g,
            members: vec![user],
            removed: false,
        },
        (_, None) => EventKind::Message(Message {
            sender: user,
            group: None,
            msg_type: "text".into(),
            text: "在吗".into(),
            mentions_bot: true,
            platform_msg_id: format!("m{round}-{i}"),
        }),
    };
    Event {
        channel_id: "demo_gateway".into(),
        scope: "demo_gateway".into(),
        dedupe_key: format!("diff:{round}:{i}"),
        occurred_at: at,
        kind,
        reply_url: None,
        unsigned_body: false,
    }
}

fn row_of(event: &yunying::events::Event, received_at: i64) -> yunying::store::inbox::NewInbox {
    yunying::store::inbox::NewInbox {
        channel_id: event.channel_id.clone(),
        dedupe_key: event.dedupe_key.clone(),
        kind: event.kind.name().to_owned(),
        sender: event.actor().map(|u| u.id.clone()),
        group_id: event.group().map(|g| g.id.clone()),
        occurred_at: event.occurred_at * 1000,
        received_at,
        payload: serde_json::to_string(event).expect("json"),
    }
}
