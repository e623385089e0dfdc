//! The SQLite group commit alone, without HTTP: batches of 17 callbacks (the batch size measured
//! under wrk) from 10,000 members chatting in one group. Each callback is a group text message
//! turned into its inbox row and, through the same `changes_for` as the server, into member,
//! group, membership and activity changes. The time per batch, divided by 17, is the writer's
//! cost per callback.
//!
//! cargo bench --bench sqlite_commit

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use yunying::events::{Event, EventKind, GroupRef, Message, UserRef};
use yunying::ingress::normalize::message_key;
use yunying::members::activity::changes_for;
use yunying::store::inbox::NewInbox;
use yunying::store::sqlite_commit::SqliteCommitter;
use yunying::store::{Store, StoreOptions};

const BATCH: u64 = 17;
const MEMBERS: u64 = 10_000;

fn message(n: u64, member: u64) -> Event {
    let user = format!("member-{member:05}");
    let msg_id = format!("bench-{n}");
    Event {
        channel_id: "demo_robot".into(),
        scope: "wwdemo0000000001".into(),
        dedupe_key: message_key(&user, &msg_id),
        occurred_at: 1_765_000_000 + i64::try_from(n).expect("fits"),
        kind: EventKind::Message(Message {
            sender: UserRef::new(user, None),
            group: Some(GroupRef {
                id: "wrOgQhDgAAcwMTB7YmDkbeBsgT_AAAA".into(),
                name: None,
            }),
            msg_type: "text".into(),
            text: "大家好，今天的直播几点开始？".into(),
            mentions_bot: true,
            platform_msg_id: msg_id,
        }),
        reply_url: None,
        unsigned_body: false,
    }
}

fn inbox_row(event: &Event) -> NewInbox {
    NewInbox {
        channel_id: event.channel_id.clone(),
        dedupe_key: event.dedupe_key.clone(),
        kind: event.kind.name().to_owned(),
        sender: event.actor().map(|u| u.id.clone()),
        group_id: event.group().map(|g| g.id.clone()),
        occurred_at: event.occurred_at * 1000,
        received_at: event.occurred_at * 1000,
        payload: serde_json::to_string(event).expect("json"),
    }
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}/commit.db?mode=rwc", dir.path().display());
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let store = Store::connect(&url, &StoreOptions::default())
            .await
            .expect("connect");
        store.migrate().await.expect("migrate");
        store.close().await;
    });
    let mut committer = SqliteCommitter::open(&url, false).expect("open");
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next_member = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % MEMBERS
    };
    let mut n = 0;
    // The rows are built on the Tokio workers in the server: outside the measured part here.
    // `changes_for` runs on the writer, inside the commit, as in the server.
    let mut next_batch = move || {
        let events: Vec<Event> = (n..n + BATCH).map(|i| message(i, next_member())).collect();
        n += BATCH;
        let rows: Vec<NewInbox> = events.iter().map(inbox_row).collect();
        (events, rows)
    };
    let commit = |committer: &mut SqliteCommitter, (events, rows): (Vec<Event>, Vec<NewInbox>)| {
        committer
            .commit_batch(&rows, &[], &[], |_| {
                changes_for(&events, chrono_tz::Asia::Shanghai)
            })
            .expect("commit");
    };
    // Every member known before the clock starts, as in a community that has been chatting.
    for _ in 0..(MEMBERS * 3 / BATCH) {
        commit(&mut committer, next_batch());
    }
    let mut group = c.benchmark_group("sqlite_commit");
    group.throughput(Throughput::Elements(BATCH));
    group.bench_function("batch of 17 callbacks, 10,000 members", |b| {
        b.iter_batched(
            &mut next_batch,
            |batch| commit(&mut committer, batch),
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
