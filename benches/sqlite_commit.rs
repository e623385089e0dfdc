//! The SQLite group commit alone, without HTTP: batches of 17 callbacks (the batch size measured
//! under wrk) from 10,000 members chatting in one group, each a new inbox row, a member update,
//! an active membership and a day's activity. The time per batch, divided by 17, is the writer's
//! cost per callback.
//!
//! cargo bench --bench sqlite_commit

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use yunying::store::inbox::NewInbox;
use yunying::store::members::{
    ActivityUpsert, GroupUpsert, MemberChanges, MemberUpsert, MembershipUpsert,
};
use yunying::store::sqlite_commit::SqliteCommitter;
use yunying::store::{Store, StoreOptions};

const BATCH: usize = 17;
const MEMBERS: u64 = 10_000;

fn batch(first: u64, next_member: &mut impl FnMut() -> u64) -> (Vec<NewInbox>, MemberChanges) {
    let mut rows = Vec::with_capacity(BATCH);
    let mut changes = MemberChanges::default();
    for n in first..first + BATCH as u64 {
        let user = format!("member-{:05}", next_member());
        let at = 1_765_000_000_000 + i64::try_from(n).expect("fits");
        rows.push(NewInbox {
            channel_id: "demo_robot".into(),
            dedupe_key: format!("msg:{n}:{user}"),
            kind: "message".into(),
            sender: Some(user.clone()),
            group_id: Some("wrOgQhDgAAcwMTB7YmDkbeBsgT_AAAA".into()),
            occurred_at: at,
            received_at: at,
            payload: "x".repeat(330),
        });
        changes.members.push(MemberUpsert {
            scope: "wwdemo".into(),
            user_id: user.clone(),
            name: None,
            first_seen_at: at,
            last_active_at: at,
            messages: 1,
        });
        changes.groups.push(GroupUpsert {
            scope: "wwdemo".into(),
            group_id: "wrOgQhDgAAcwMTB7YmDkbeBsgT_AAAA".into(),
            name: None,
            at,
        });
        changes.memberships.push(MembershipUpsert {
            scope: "wwdemo".into(),
            group_id: "wrOgQhDgAAcwMTB7YmDkbeBsgT_AAAA".into(),
            user_id: user.clone(),
            at,
            left: false,
        });
        changes.activity.push(ActivityUpsert {
            scope: "wwdemo".into(),
            user_id: user,
            day: 20_261_206,
            messages: 1,
            events: 0,
        });
    }
    (rows, changes)
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
    let mut commit = |committer: &mut SqliteCommitter| {
        let (rows, changes) = batch(n, &mut next_member);
        n += BATCH as u64;
        committer
            .commit_batch(&rows, &[], &[], |_| changes)
            .expect("commit");
    };
    // Every member known before the clock starts, as in a community that has been chatting.
    for _ in 0..(MEMBERS as usize * 3 / BATCH) {
        commit(&mut committer);
    }
    let mut group = c.benchmark_group("sqlite_commit");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("batch of 17 callbacks, 10,000 members", |b| {
        b.iter(|| commit(&mut committer));
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
