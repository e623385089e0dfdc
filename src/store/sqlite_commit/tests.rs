//! The group commit's memory, its failure handling and its background checkpoints, on real
//! SQLite files.

use super::*;
use crate::store::members::{GroupUpsert, MemberUpsert, MembershipUpsert};
use crate::store::{Store, StoreOptions};

const MIN: i64 = 60_000;

fn member(user: &str) -> MemberUpsert {
    MemberUpsert {
        scope: "s".into(),
        user_id: user.into(),
        name: None,
        first_seen_at: 0,
        last_active_at: 0,
        messages: 0,
    }
}

fn inbox_row(key: &str) -> NewInbox {
    NewInbox {
        channel_id: "c".into(),
        dedupe_key: key.into(),
        kind: "message".into(),
        sender: None,
        group_id: None,
        occurred_at: 0,
        received_at: 0,
        payload: "{}".into(),
    }
}

fn change(user: &str, group_name: Option<&str>, at: i64, left: bool) -> MemberChanges {
    MemberChanges {
        members: vec![member(user)],
        groups: vec![GroupUpsert {
            scope: "s".into(),
            group_id: "g".into(),
            name: group_name.map(Into::into),
            at,
        }],
        memberships: vec![MembershipUpsert {
            scope: "s".into(),
            group_id: "g".into(),
            user_id: user.into(),
            at,
            left,
        }],
        activity: Vec::new(),
    }
}

/// A migrated database file `t.db` in a folder of its own, and its URL.
async fn migrated_file() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}/t.db?mode=rwc", dir.path().display());
    let store = Store::connect(&url, &StoreOptions::default())
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    store.close().await;
    (dir, url)
}

/// One member's changes, nothing else.
fn one_member() -> MemberChanges {
    MemberChanges {
        members: vec![member("u1")],
        ..MemberChanges::default()
    }
}

/// Each case runs on a writer that remembers and on one that does not: same rows after.
async fn committers() -> (tempfile::TempDir, Vec<SqliteCommitter>, Connection) {
    let (dir, url) = migrated_file().await;
    let remembering = SqliteCommitter::open(&url, false).expect("open");
    let mut plain = SqliteCommitter::open(&url, false).expect("open");
    plain.known = None;
    let reader = Connection::open(dir.path().join("t.db")).expect("reader");
    (dir, vec![remembering, plain], reader)
}

fn state(db: &Connection) -> (Option<String>, i64, Option<i64>) {
    db.query_row(
        "select g.name, g.last_active_at, gm.left_at from chat_groups g \
         join group_members gm on gm.group_id = g.id",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .expect("row")
}

#[tokio::test]
async fn remembered_rows_still_get_every_change_that_matters() {
    let (_dir, committers, db) = committers().await;
    for mut c in committers {
        // Another connection's commit: the remembering writer starts over by itself.
        db.execute_batch("delete from group_members; delete from chat_groups;")
            .expect("reset");
        let mut commit = |ch: MemberChanges| {
            c.commit_batch(&[], &[], &[], |_| ch).expect("commit");
        };
        commit(change("a", Some("群一"), 10 * MIN, false));
        assert_eq!(state(&db), (Some("群一".into()), 10 * MIN, None));
        // Within the minute and unnamed: nothing to write.
        commit(change("a", None, 10 * MIN + 30_000, false));
        assert_eq!(state(&db), (Some("群一".into()), 10 * MIN, None));
        // A rename is written at once; a minute later the activity time moves.
        commit(change("a", Some("群二"), 10 * MIN + 31_000, false));
        assert_eq!(state(&db).0.as_deref(), Some("群二"));
        commit(change("a", None, 12 * MIN, false));
        assert_eq!(state(&db).1, 12 * MIN);
        // A leave, then a message from the same member: active again.
        commit(change("a", None, 12 * MIN + 1, true));
        assert_eq!(state(&db).2, Some(12 * MIN + 1));
        commit(change("a", None, 12 * MIN + 2, false));
        assert_eq!(state(&db).2, None);
    }
}

#[tokio::test]
async fn another_connections_writes_are_not_hidden_by_the_memory() {
    let (_dir, mut committers, db) = committers().await;
    let c = &mut committers[0];
    c.commit_batch(&[], &[], &[], |_| change("a", Some("群一"), MIN, false))
        .expect("commit");
    // A second `serve` process on the same file records a leave and a rename.
    db.execute_batch(
        "update group_members set left_at = 60001; update chat_groups set name = '群二';",
    )
    .expect("other writer");
    // This writer remembered the membership as active and the group as 群一 touched within the
    // minute: from memory it would write nothing and leave both changes standing.
    c.commit_batch(&[], &[], &[], |_| {
        change("a", Some("群一"), MIN + 30_000, false)
    })
    .expect("commit");
    assert_eq!(state(&db), (Some("群一".into()), MIN + 30_000, None));
}

#[tokio::test]
async fn a_failed_batch_is_not_remembered() {
    let (_dir, mut committers, db) = committers().await;
    let c = &mut committers[0];
    let outcomes = c
        .commit_batch(&[inbox_row("k")], &[], &[], |_| {
            change("a", None, MIN, false)
        })
        .expect("commit")
        .accepted;
    let Accepted::New { id } = outcomes[0] else {
        panic!("not new")
    };
    c.commit_batch(&[], &[], &[], |_| change("a", None, MIN + 1, true))
        .expect("commit");
    // A return to the group in a batch that fails at its very end (the mark): had the
    // writer remembered it, the next message would be skipped as "active, touched now".
    db.execute_batch(
        "create trigger no_bad before update on inbox when new.reply = 'bad' \
         begin select raise(abort, 'bad mark'); end;",
    )
    .expect("trigger");
    let bad = Processed {
        id,
        at: 0,
        reply: Some("bad".into()),
    };
    assert!(c
        .commit_batch(&[], &[bad], &[], |_| change("a", None, 5 * MIN, false))
        .is_err());
    assert_eq!(state(&db), (None, MIN, Some(MIN + 1)));
    c.commit_batch(&[], &[], &[], |_| change("a", None, 5 * MIN + 1, false))
        .expect("commit");
    assert_eq!(state(&db), (None, 5 * MIN + 1, None));
}

#[tokio::test]
async fn a_failing_stage_write_leaves_the_callbacks_of_its_batch_committed() {
    let (_dir, mut committers, db) = committers().await;
    let c = &mut committers[0];
    c.commit_batch(&[inbox_row("k1")], &[], &[], |_| {
        change("a", None, MIN, false)
    })
    .expect("commit");
    let member: i64 = db
        .query_row("select id from members", [], |r| r.get(0))
        .expect("member");
    let stage = |member_id| StageChange {
        member_id,
        from: None,
        to: "new",
        at: MIN,
    };
    // The second change names no member: the foreign key refuses it.
    let committed = c
        .commit_batch(
            &[inbox_row("k2")],
            &[],
            &[stage(member), stage(member + 99)],
            |_| MemberChanges::default(),
        )
        .expect("commit");
    assert!(matches!(committed.accepted[..], [Accepted::New { .. }]));
    assert!(committed.stages_failed.is_some());
    let count = |sql: &str| -> i64 { db.query_row(sql, [], |r| r.get(0)).expect("count") };
    assert_eq!(count("select count(*) from inbox"), 2);
    assert_eq!(
        count("select count(*) from member_stages"),
        0,
        "rolled back together"
    );
    assert_eq!(count("select count(*) from member_stage_history"), 0);
    let committed = c
        .commit_batch(&[], &[], &[stage(member)], |_| MemberChanges::default())
        .expect("commit");
    assert!(committed.stages_failed.is_none());
    assert_eq!(count("select count(*) from member_stages"), 1);
    assert_eq!(count("select count(*) from member_stage_history"), 1);
}

fn member_change(user: &str, name: Option<&str>, at: i64, messages: i64) -> MemberChanges {
    MemberChanges {
        members: vec![MemberUpsert {
            name: name.map(Into::into),
            first_seen_at: at,
            last_active_at: at,
            messages,
            ..member(user)
        }],
        ..MemberChanges::default()
    }
}

type MemberState = (Option<String>, i64, i64, i64);

fn member_state(db: &Connection, user: &str) -> Option<MemberState> {
    db.query_row(
        "select display_name, first_seen_at, last_active_at, message_count from members \
         where scope = 's' and platform_user_id = ?1",
        [user],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )
    .optional()
    .expect("member")
}

#[tokio::test]
async fn remembered_members_are_updated_as_the_upsert_would() {
    let (_dir, committers, db) = committers().await;
    let mut states = Vec::new();
    for mut c in committers {
        db.execute_batch("delete from members").expect("reset");
        let mut seen = Vec::new();
        let mut commit = |ch: MemberChanges| {
            c.commit_batch(&[], &[], &[], |_| ch).expect("commit");
            seen.push(member_state(&db, "a"));
        };
        commit(member_change("a", Some("阿一"), 10 * MIN, 1));
        // Unnamed, earlier in time (a late retry): the name and the last activity stay.
        commit(member_change("a", None, 5 * MIN, 1));
        commit(member_change("a", Some("阿二"), 11 * MIN, 2));
        commit(member_change("a", None, 12 * MIN, 0));
        states.push(seen);
    }
    assert_eq!(
        states[0].last(),
        Some(&Some((Some("阿二".into()), 10 * MIN, 12 * MIN, 4)))
    );
    assert_eq!(states[0], states[1], "remembering and plain writers agree");
}

#[tokio::test]
async fn a_remembered_member_whose_row_is_gone_is_written_again() {
    let (_dir, mut committers, db) = committers().await;
    let c = &mut committers[0];
    c.commit_batch(&[], &[], &[], |_| member_change("a", None, MIN, 1))
        .expect("commit");
    // Deleted on the writer's own connection, which leaves `data_version` as it was: only the
    // update's row count tells the writer that the row it remembers is gone.
    c.conn
        .as_ref()
        .expect("open")
        .execute_batch("delete from members")
        .expect("delete");
    let mut changes = member_change("a", Some("阿一"), 2 * MIN, 1);
    changes
        .activity
        .push(crate::store::members::ActivityUpsert {
            scope: "s".into(),
            user_id: "a".into(),
            day: 20_261_206,
            messages: 1,
            events: 0,
        });
    c.commit_batch(&[], &[], &[], |_| changes).expect("commit");
    assert_eq!(
        member_state(&db, "a"),
        Some((Some("阿一".into()), 2 * MIN, 2 * MIN, 1))
    );
    let activity_member: i64 = db
        .query_row("select member_id from member_daily_activity", [], |r| {
            r.get(0)
        })
        .expect("activity");
    let member: i64 = db
        .query_row("select id from members", [], |r| r.get(0))
        .expect("member");
    assert_eq!(activity_member, member, "activity goes to the new row");
}

/// A membership of `user` in `group`, from a message or a leave.
fn membership_change(user: &str, group: &str, at: i64, left: bool) -> MemberChanges {
    let mut changes = change(user, None, at, left);
    changes.groups[0].group_id = group.into();
    changes.memberships[0].group_id = group.into();
    changes
}

fn memberships(db: &Connection) -> Vec<(String, String, Option<i64>)> {
    let mut rows = db
        .prepare(
            "select g.platform_group_id, m.platform_user_id, gm.left_at from group_members gm \
             join chat_groups g on g.id = gm.group_id join members m on m.id = gm.member_id \
             order by 1, 2",
        )
        .expect("prepare");
    rows.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

#[tokio::test]
async fn remembered_memberships_are_told_apart_by_group_and_member() {
    let (_dir, committers, db) = committers().await;
    let mut seen = Vec::new();
    for mut c in committers {
        db.execute_batch(
            "delete from group_members; delete from chat_groups; delete from members;",
        )
        .expect("reset");
        let mut commit = |ch: MemberChanges| {
            c.commit_batch(&[], &[], &[], |_| ch).expect("commit");
        };
        commit(membership_change("a", "g1", MIN, false));
        // Another member of the same group, and the same member in another group: both new.
        commit(membership_change("b", "g1", MIN + 1, false));
        commit(membership_change("a", "g2", MIN + 2, false));
        // `a` leaves g1 and speaks in g2 again: only the g1 membership ends.
        commit(membership_change("a", "g1", MIN + 3, true));
        commit(membership_change("a", "g2", MIN + 4, false));
        seen.push(memberships(&db));
        // Back in g1: the remembered leave must not hide the return.
        commit(membership_change("a", "g1", MIN + 5, false));
        seen.push(memberships(&db));
    }
    let left = vec![
        ("g1".to_owned(), "a".to_owned(), Some(MIN + 3)),
        ("g1".to_owned(), "b".to_owned(), None),
        ("g2".to_owned(), "a".to_owned(), None),
    ];
    let mut back = left.clone();
    back[0].2 = None;
    let expected = [left, back].concat();
    assert_eq!(seen[..2].concat(), expected, "remembering writer");
    assert_eq!(seen[2..].concat(), expected, "plain writer");
}

// The background checkpoints (`checkpoint.rs`).

/// Inbox rows in the database file alone, as a copy without the log shows them; `None`
/// while the copy caught a checkpoint half-way.
fn rows_in_file(dir: &std::path::Path) -> Option<i64> {
    let copy = dir.join("copy.db");
    std::fs::copy(dir.join("t.db"), &copy).ok()?;
    let db = Connection::open(&copy).ok()?;
    db.query_row("select count(*) from inbox", [], |r| r.get(0))
        .ok()
}

#[tokio::test]
async fn commits_reach_the_database_file_without_the_writer_checkpointing() {
    let (dir, url) = migrated_file().await;
    let before = rows_in_file(dir.path()).expect("readable file");
    assert_eq!(before, 0);

    let mut writer = SqliteCommitter::open(&url, false).expect("open");
    for i in 0..20 {
        writer
            .commit_batch(&[inbox_row(&format!("k{i}"))], &[], &[], |_| one_member())
            .expect("commit");
    }
    // Far below the writer's own threshold: only the background thread copies the log.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while rows_in_file(dir.path()) != Some(20) {
        assert!(
            std::time::Instant::now() < deadline,
            "the log was not checkpointed into the file: {:?} rows there",
            rows_in_file(dir.path())
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(writer.checkpointer.as_ref().expect("thread").rounds() >= 1);

    // A checkpoint is not another connection's commit: the writer keeps its memory.
    writer
        .commit_batch(&[inbox_row("k20")], &[], &[], |_| one_member())
        .expect("commit");
    let known = writer.known.as_ref().expect("memory");
    assert_eq!(known.member_count, 1);
    assert!(known.member_id("s", "u1").is_some());

    writer.close();
    assert!(writer.checkpointer.is_none());
}

/// The log's checkpoint sequence number (WAL header, bytes 12-15, big-endian): it goes up
/// by one each time the log starts over.
fn log_restarts(dir: &std::path::Path) -> u32 {
    let header = std::fs::read(dir.join("t.db-wal")).expect("log");
    u32::from_be_bytes(header[12..16].try_into().expect("four bytes"))
}

#[tokio::test]
async fn the_log_starts_over_while_the_writer_never_pauses() {
    let (dir, url) = migrated_file().await;
    let mut writer = SqliteCommitter::open(&url, false).expect("open");
    // Only the thread may start the log over: the writer's backstop is out of reach, and
    // the restart size is small enough for a test's worth of commits.
    writer
        .conn
        .as_ref()
        .expect("open")
        .pragma_update(None, "wal_autocheckpoint", 1_000_000)
        .expect("pragma");
    writer.checkpointer = None;
    writer.checkpointer = Some(
        checkpoint::Checkpointer::start(&dir.path().join("t.db"), false, writer.turn.clone(), 100)
            .expect("checkpointer"),
    );
    let turn = writer.turn.clone().expect("a file has a turn");
    let mut commits = 0;
    let mut first = None;
    while writer.checkpointer.as_ref().expect("thread").rounds() < 4 {
        // As the group commit does: one write turn per batch.
        let _turn = turn.take().await.expect("turn");
        writer
            .commit_batch(&[inbox_row(&format!("k{commits}"))], &[], &[], |_| {
                one_member()
            })
            .expect("commit");
        commits += 1;
        first.get_or_insert_with(|| log_restarts(dir.path()));
    }
    let restarts = log_restarts(dir.path()) - first.expect("committed");
    assert!(
        restarts >= 1,
        "the log never started over in {commits} commits"
    );
}

#[test]
fn the_group_touch_rule_is_one_number_in_code_and_sql() {
    assert!(super::TOUCH_GROUP.contains(&format!("+ {}", super::GROUP_TOUCH_MS)));
}
