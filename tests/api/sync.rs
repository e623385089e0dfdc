//! The member registry imported from the WeCom stand-in (which pages like WeCom): customers
//! with names, add times, contact ways, remarks and tags; customer groups with names and
//! members; staff names; a second run that changes nothing; relations and memberships gone at
//! WeCom ended and their members churned; a run stopped by failures continued from its cursor;
//! a killed `yunying sync` process continued the same way; rate limits waited out.

use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use yunying::clock::Clock as _;
use yunying::config::{Config, Secret, TagRuleConfig};
use yunying::fake_wecom::{Community, FakeWecom, Faults};
use yunying::members::sync::{self, ChannelReport, Progress, SyncSetup, What};

use crate::backend_tests;
use crate::helpers::{Backend, TestApp};

backend_tests!(
    customers_groups_and_names_are_imported_and_a_rerun_changes_nothing,
    relations_and_memberships_gone_at_wecom_are_ended_and_members_churn,
    a_run_stopped_by_failures_continues_from_its_cursor,
    rate_limits_and_busy_answers_are_waited_out,
    a_killed_sync_process_continues_where_it_stopped,
);

const SCOPE: &str = "wwdemo0000000001";
const TOKEN: &str = "ops-token-0123456789";
const DAY_S: i64 = 86_400;

fn adjust(base: String) -> impl FnOnce(&mut Config) {
    move |c| {
        c.api.wecom_base = base;
        c.scheduler.enabled = false;
        c.sync.retry_base_ms = 1;
        c.sync.rate_limit_wait_secs = 0;
        c.tag_rules.push(TagRuleConfig {
            id: "live".into(),
            when: "channel_state".into(),
            pattern: "livestream".into(),
            add: vec!["直播间来的".into()],
            remove: Vec::new(),
        });
        c.ops_api.token = Secret::new(TOKEN);
    }
}

/// Two staff members, three customers (one followed by both), one group and a corp member.
fn seed(fake: &FakeWecom, now_s: i64) {
    fake.add_tag_group(json!({ "group_id": "etg1", "group_name": "客户等级",
        "tag": [{ "id": "etVIP", "name": "VIP" }] }));
    let follow = |userid: &str, days_ago: i64, state: &str, tags: Value| {
        json!({ "userid": userid, "remark": "", "createtime": now_s - days_ago * DAY_S,
            "state": state, "add_way": 1, "tags": tags })
    };
    let vip =
        json!([{ "group_name": "客户等级", "tag_name": "VIP", "tag_id": "etVIP", "type": 1 }]);
    fake.add_contact(&json!({ "external_userid": "wmA", "name": "王五",
        "follow_user": [follow("zhangsan", 90, "livestream", vip.clone()), follow("lisi", 30, "", json!([]))] }));
    fake.add_contact(&json!({ "external_userid": "wmB", "name": "赵六",
        "follow_user": [follow("zhangsan", 60, "", json!([]))] }));
    fake.add_contact(&json!({ "external_userid": "wmC", "name": "钱七",
        "follow_user": [follow("lisi", 40, "", vip)] }));
    fake.set_group(json!({ "chat_id": "wrG1", "name": "产品交流1群", "owner": "zhangsan",
        "create_time": now_s - 100 * DAY_S, "notice": "群公告", "status": 0, "member_list": [
            { "userid": "zhangsan", "type": 1, "join_time": now_s - 100 * DAY_S, "join_scene": 1, "name": "张三" },
            { "userid": "wmA", "type": 2, "join_time": now_s - 80 * DAY_S, "join_scene": 3,
              "invitor": { "userid": "zhangsan" }, "name": "王五" },
            { "userid": "wmD", "type": 2, "join_time": now_s - 20 * DAY_S, "join_scene": 2,
              "invitor": { "userid": "zhangsan" }, "name": "孙八" },
        ] }));
    fake.add_user("lisi", "李四");
}

async fn run_sync(
    app: &TestApp,
    what: &[What],
    on_progress: &(dyn Fn(&str, &Progress) + Send + Sync),
) -> Vec<ChannelReport> {
    let state = &app.app_state;
    let setup = SyncSetup {
        outbox: &state.outbox,
        store: &state.store,
        clock: app.clock.clone(),
        config: &state.config,
        progress: on_progress,
    };
    sync::sync_channels(&setup, &["demo_app".to_owned()], what)
        .await
        .expect("sync")
}

fn kind(reports: &[ChannelReport], what: What) -> &sync::KindReport {
    reports[0]
        .kinds
        .iter()
        .find(|k| k.what == what)
        .expect("kind reported")
}

async fn name_of(app: &TestApp, user: &str) -> Option<String> {
    app.store
        .member(SCOPE, user)
        .await
        .expect("member")
        .and_then(|m| m.display_name)
}

async fn customers_groups_and_names_are_imported_and_a_rerun_changes_nothing(backend: Backend) {
    let fake = FakeWecom::start("127.0.0.1:0").await.expect("stand-in");
    let app = TestApp::spawn_with(backend, adjust(fake.base_url())).await;
    let now_s = app.clock.now_ms() / 1000;
    seed(&fake, now_s);
    // lisi speaks to the app before the import: a member without a name.
    app.send_text("demo_app", "lisi", None, "你好", "pre-1")
        .await;

    let reports = run_sync(&app, &What::ALL, &|_, _| {}).await;
    let contacts = kind(&reports, What::Contacts);
    assert_eq!(contacts.stopped, None, "{reports:?}");
    // Four relations: wmA is new once (created), then its second relation updates nothing new.
    assert_eq!(
        (contacts.tally.created, contacts.tally.gone),
        (3, 0),
        "{contacts:?}"
    );
    assert_eq!(name_of(&app, "wmA").await.as_deref(), Some("王五"));
    let wm_a = app
        .store
        .member(SCOPE, "wmA")
        .await
        .expect("read")
        .expect("wmA");
    assert_eq!(
        wm_a.first_seen_at,
        (now_s - 90 * DAY_S) * 1000,
        "first seen is the earliest add time"
    );
    let mut staff = app.store.staff_of(SCOPE, "wmA").await.expect("staff");
    staff.sort();
    assert_eq!(staff, ["lisi", "zhangsan"]);
    let tags_a = app.store.tags_of(SCOPE, "wmA").await.expect("tags");
    assert!(tags_a.contains(&"VIP".to_owned()), "corp tag: {tags_a:?}");
    assert!(
        tags_a.contains(&"直播间来的".to_owned()),
        "the contact-way rule: {tags_a:?}"
    );
    assert_eq!(
        app.store.tags_of(SCOPE, "wmB").await.expect("tags"),
        Vec::<String>::new()
    );
    // The tag change log says where each came from.
    let (status, log) = app
        .api_call(
            "GET",
            &format!("/api/v1/tags/{SCOPE}/log?user=wmA"),
            TOKEN,
            &Value::Null,
        )
        .await;
    let mut seen: Vec<(String, String, String)> = log["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let field = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
            (field("tag"), field("source"), field("set_by"))
        })
        .collect();
    seen.sort();
    assert_eq!(status, 200);
    assert_eq!(
        seen,
        [
            ("VIP".to_owned(), "platform".to_owned(), "sync".to_owned()),
            // The example configuration's own contact-way rule, and this test's.
            (
                "渠道:livestream".to_owned(),
                "rule".to_owned(),
                "rule:channel".to_owned()
            ),
            (
                "直播间来的".to_owned(),
                "rule".to_owned(),
                "rule:live".to_owned()
            ),
        ],
        "{log}"
    );

    // The group: its name, members with join scene and inviter; a member only in the group.
    let groups = kind(&reports, What::Groups);
    assert_eq!((groups.tally.created, groups.stopped.as_deref()), (1, None));
    assert_eq!(
        app.store
            .group_member_ids(SCOPE, "wrG1")
            .await
            .expect("members"),
        ["wmA", "wmD", "zhangsan"]
    );
    assert_eq!(name_of(&app, "wmD").await.as_deref(), Some("孙八"));
    let facts: Vec<String> = app
        .query_column(
            "select g.name || '|' || coalesce(g.owner, '') || '|' || cast(gm.join_scene as text) || '|' || coalesce(gm.inviter, '') \
             from group_members gm join chat_groups g on g.id = gm.group_id join members m on m.id = gm.member_id \
             where m.platform_user_id = 'wmA'",
        )
        .await;
    assert_eq!(facts, ["产品交流1群|zhangsan|3|zhangsan"]);
    // A segment by the group's name finds its members.
    let path = format!(
        "/api/v1/members/{SCOPE}?segment={}",
        url::form_urlencoded::byte_serialize("group:\"产品交流1群\"".as_bytes())
            .collect::<String>()
    );
    let (status, body) = app.api_call("GET", &path, TOKEN, &Value::Null).await;
    assert_eq!((status, body["count"].as_i64()), (200, Some(3)), "{body}");

    // The corp member who spoke gets their name from user/get.
    assert_eq!(kind(&reports, What::Staff).tally.updated, 1);
    assert_eq!(name_of(&app, "lisi").await.as_deref(), Some("李四"));
    // An app message carries only the user id: the reply addresses lisi by the stored name.
    let (status, reply) = app
        .send_text("demo_app", "lisi", None, "ping", "after-1")
        .await;
    let reply = reply.unwrap_or_default();
    assert!(status == 200 && reply.contains("李四，"), "{reply}");

    // Nothing changed at WeCom: a second run writes nothing new.
    let again = run_sync(&app, &What::ALL, &|_, _| {}).await;
    for k in &again[0].kinds {
        assert_eq!(
            (
                k.tally.created,
                k.tally.updated,
                k.tally.gone,
                k.stopped.as_deref()
            ),
            (0, 0, 0, None),
            "{k:?}"
        );
    }
    assert_eq!(kind(&again, What::Contacts).tally.unchanged, 4);
    assert_eq!(kind(&again, What::Groups).tally.unchanged, 1);
}

async fn relations_and_memberships_gone_at_wecom_are_ended_and_members_churn(backend: Backend) {
    let fake = FakeWecom::start("127.0.0.1:0").await.expect("stand-in");
    let app = TestApp::spawn_with(backend, adjust(fake.base_url())).await;
    let now_s = app.clock.now_ms() / 1000;
    seed(&fake, now_s);
    run_sync(&app, &[What::Contacts, What::Groups], &|_, _| {}).await;

    // wmB deletes their only staff member; wmD leaves the group; wmC deleted lisi too and
    // nothing else holds them.
    assert!(fake.remove_contact("wmB"));
    assert!(fake.remove_contact("wmC"));
    let mut group = fake.group("wrG1").expect("group");
    let members = group["member_list"].as_array_mut().expect("list");
    members.retain(|m| m["userid"] != "wmD");
    fake.set_group(group);
    app.clock.advance_ms(1000);

    let reports = run_sync(&app, &[What::Contacts, What::Groups], &|_, _| {}).await;
    assert_eq!(kind(&reports, What::Contacts).tally.gone, 2, "{reports:?}");
    assert_eq!(kind(&reports, What::Groups).tally.gone, 1, "{reports:?}");
    assert_eq!(
        app.store.staff_of(SCOPE, "wmB").await.expect("staff"),
        Vec::<String>::new()
    );
    assert_eq!(
        app.store
            .group_member_ids(SCOPE, "wrG1")
            .await
            .expect("members"),
        ["wmA", "zhangsan"]
    );
    yunying::scheduler::jobs::maintenance(&app.app_state, app.clock.now_ms())
        .await
        .expect("maintenance");
    for gone in ["wmB", "wmC", "wmD"] {
        let history = app.store.stage_history(SCOPE, gone).await.expect("history");
        assert_eq!(
            history.last().map(|h| h.1.as_str()),
            Some("churned"),
            "{gone}: {history:?}"
        );
    }
    let kept = app
        .store
        .stage_history(SCOPE, "wmA")
        .await
        .expect("history");
    assert_ne!(kept.last().map(|h| h.1.as_str()), Some("churned"));

    // The group is dismissed: it is gone and its members left it.
    assert!(fake.remove_group("wrG1"));
    let reports = run_sync(&app, &[What::Groups], &|_, _| {}).await;
    assert_eq!(
        kind(&reports, What::Groups).tally.gone,
        3,
        "group + 2 members"
    );
    assert_eq!(
        app.store
            .group_member_ids(SCOPE, "wrG1")
            .await
            .expect("members"),
        Vec::<String>::new()
    );
}

fn batch_requests(fake: &FakeWecom) -> usize {
    fake.requests()
        .iter()
        .filter(|r| r.api == "batch/get_by_user")
        .count()
}

async fn a_run_stopped_by_failures_continues_from_its_cursor(backend: Backend) {
    let fake = Arc::new(FakeWecom::start("127.0.0.1:0").await.expect("stand-in"));
    let app = TestApp::spawn_with(backend, adjust(fake.base_url())).await;
    fake.generate(Community {
        customers: 450,
        groups: 0,
        staff: 3,
        group_size: 0,
        seed: 7,
    });
    // After the second page is written, WeCom starts answering "system busy".
    let pages = Mutex::new(0);
    let breaker = Arc::clone(&fake);
    let on_progress = move |_: &str, _: &Progress| {
        let mut n = pages.lock().expect("lock");
        *n += 1;
        if *n == 2 {
            breaker.set_faults(Faults {
                error_rate: 1.0,
                ..Faults::default()
            });
        }
    };
    let first = run_sync(&app, &[What::Contacts], &on_progress).await;
    let stopped = kind(&first, What::Contacts);
    assert!(stopped.stopped.is_some(), "{stopped:?}");
    let t = stopped.tally;
    assert_eq!(
        t.created + t.updated + t.unchanged,
        200,
        "two pages of 100: {t:?}"
    );
    let written: Vec<i64> = app
        .query_column("select cast(count(*) as bigint) from contact_follows")
        .await;
    assert_eq!(written, [200]);

    fake.set_faults(Faults::default());
    let before = batch_requests(&fake);
    let second = run_sync(&app, &[What::Contacts], &|_, _| {}).await;
    let resumed = kind(&second, What::Contacts);
    assert!(resumed.resumed && resumed.stopped.is_none(), "{resumed:?}");
    let follows: Vec<i64> = app
        .query_column(
            "select cast(count(*) as bigint) from contact_follows where removed_at is null",
        )
        .await;
    let members: Vec<i64> = app
        .query_column(
            "select cast(count(*) as bigint) from members where platform_user_id like 'wmgen%'",
        )
        .await;
    assert_eq!(members, [450], "every customer once");
    // The run's counts carry on from the cursor: every relation counted once.
    assert_eq!(
        resumed.tally.created + resumed.tally.updated + resumed.tally.unchanged,
        follows[0],
        "{resumed:?}"
    );
    // The continued run did not read the first two pages again.
    let pages_total = (follows[0] + 99) / 100;
    let reread = batch_requests(&fake) - before;
    assert!(
        i64::try_from(reread).unwrap_or(i64::MAX) <= pages_total - 2 + 1,
        "{reread} page reads for {pages_total} pages"
    );
}

async fn rate_limits_and_busy_answers_are_waited_out(backend: Backend) {
    let fake = FakeWecom::start("127.0.0.1:0").await.expect("stand-in");
    let base = fake.base_url();
    let app = TestApp::spawn_with(backend, move |c| {
        adjust(base)(c);
        c.sync.max_attempts = 40;
    })
    .await;
    fake.generate(Community {
        customers: 300,
        groups: 5,
        staff: 4,
        group_size: 20,
        seed: 3,
    });
    fake.set_faults(Faults {
        rate_limit_rate: 0.3,
        error_rate: 0.2,
        ..Faults::default()
    });
    let reports = run_sync(&app, &[What::Contacts, What::Groups], &|_, _| {}).await;
    for k in &reports[0].kinds {
        assert_eq!(k.stopped, None, "{k:?}");
    }
    let refused = fake
        .requests()
        .iter()
        .filter(|r| r.outcome == "rate_limited" || r.outcome == "busy")
        .count();
    assert!(refused > 0, "the faults were exercised");
    let members: Vec<i64> = app
        .query_column(
            "select cast(count(*) as bigint) from members where platform_user_id like 'wmgen%'",
        )
        .await;
    assert_eq!(members, [300]);
    let groups: Vec<String> = app
        .query_column("select name from chat_groups where platform_group_id like 'wrgen%' order by platform_group_id")
        .await;
    assert_eq!(groups.len(), 5);
    assert_eq!(groups[0], "产品交流1群");
}

async fn a_killed_sync_process_continues_where_it_stopped(backend: Backend) {
    let fake = FakeWecom::start("127.0.0.1:0").await.expect("stand-in");
    fake.generate(Community {
        customers: 3000,
        groups: 0,
        staff: 5,
        group_size: 0,
        seed: 11,
    });
    fake.set_faults(Faults {
        latency_ms: 40,
        ..Faults::default()
    });
    let dir = tempfile::tempdir().expect("tmp");
    let (db, _pg) = crate::helpers::fresh_database(backend, dir.path()).await;
    let sync_process = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_yunying"))
            .args(["sync", "--channel", "demo_app", "--what", "contacts"])
            .env("YUNYING_DATABASE__URL", &db)
            .env("YUNYING_API__WECOM_BASE", fake.base_url())
            .env("YUNYING_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start yunying sync")
    };
    let store = yunying::store::Store::connect(&db, &yunying::store::StoreOptions::default())
        .await
        .expect("connect");
    let mut first = sync_process();
    // Kill it once some pages are in and well before the end.
    let mut written = 0_i64;
    for _ in 0..2000 {
        let runs = store.sync_runs(1).await.unwrap_or_default();
        written = runs.first().map_or(0, |r| r.created);
        if written >= 500 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    first.kill().expect("SIGKILL");
    first.wait().ok();
    assert!(written >= 500, "the first process wrote {written}");
    let runs = store.sync_runs(1).await.expect("runs");
    assert!(
        runs[0].finished_at.is_none(),
        "killed before the end: {runs:?}"
    );
    let before = batch_requests(&fake);

    let second = sync_process().wait_with_output().expect("second run");
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stdout)
    );
    let report = String::from_utf8_lossy(&second.stdout);
    assert!(report.contains("接着上次的进度"), "{report}");
    let members: Vec<i64> = yunying::on_pool!(store.pool(), p => sqlx::query_scalar(
        "select cast(count(*) as bigint) from members where platform_user_id like 'wmgen%'").fetch_all(p).await)
    .expect("count");
    assert_eq!(members, [3000], "every customer exactly once");
    let runs = store.sync_runs(1).await.expect("runs");
    assert_eq!(
        runs[0].created, 3000,
        "created counted once across both: {runs:?}"
    );
    // One full run reads each page once; together the two read at most the page in flight twice.
    let follows: Vec<i64> = yunying::on_pool!(store.pool(), p => sqlx::query_scalar(
        "select cast(count(*) as bigint) from contact_follows").fetch_all(p).await)
    .expect("count");
    let pages = usize::try_from((follows[0] + 99) / 100).unwrap_or(0);
    let reads = batch_requests(&fake);
    assert!(
        reads <= pages + 1 && reads - before < pages,
        "{reads} page reads ({before} before the kill) for {pages} pages"
    );
    store.close().await;
}
