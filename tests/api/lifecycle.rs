//! Lifecycle stages on an injected clock through the real server: members talk at chosen times,
//! the recompute assigns stages, a lapsed member who comes back is "returned", every change is
//! in the history, and `stage:` segments count them.

use yunying::clock::Clock as _;
use yunying::config::Config;
use yunying::members::lifecycle::recompute;
use yunying::members::segment::{self, SegmentContext};
use yunying::send::Simulated;

use crate::backend_tests;
use crate::helpers::{Backend, TestApp};

backend_tests!(
    stages_follow_activity_and_are_recorded,
    first_stages_of_many_members_arriving_together_are_each_recorded_once,
    several_changes_of_one_member_written_together_keep_the_last,
    stage_inputs_read_together_match_those_read_one_by_one,
    a_member_created_by_a_group_message_gets_one_first_stage,
);

const SCOPE: &str = "wwdemo0000000001";
const DAY: i64 = 86_400_000;
/// Members per read in the recomputes: four members take two windows.
const WINDOW: i64 = 2;

async fn count(app: &TestApp, config: &Config, text: &str, now: i64) -> i64 {
    let ctx = SegmentContext {
        accounts: yunying::members::segment::AccountSql::for_backend(app.store.backend()),
        now_ms: now,
        levels: &config.points.levels,
    };
    let compiled =
        segment::to_sql(&segment::parse(text).expect("parses"), &ctx, 2).expect("compiles");
    app.store
        .segment_count(SCOPE, &compiled)
        .await
        .expect("count")
}

async fn stages_follow_activity_and_are_recorded(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.ops_api.token = yunying::config::Secret::new("ops-token-0123456789");
    })
    .await;
    let config = Config::example().expect("config");
    let now = app.clock.now_ms();
    let at = |days_ago: i64| now - days_ago * DAY;

    app.clock.set_ms(at(60));
    app.robot_say("old", Some("g"), "大家好", "a1").await;
    app.clock.set_ms(at(20));
    app.robot_say("quiet", Some("g"), "大家好", "a2").await;
    app.robot_say("busy", Some("g"), "大家好", "a3").await;
    app.clock.set_ms(at(10));
    app.robot_say("quiet", Some("g"), "还在", "a4").await;
    app.clock.set_ms(at(1));
    app.robot_say("busy", Some("g"), "今天也在", "a5").await;
    app.clock.set_ms(now);
    app.robot_say("newbie", Some("g"), "第一次来", "a6").await;

    // Each member's events set a stage already (all four were new or active then); the periodic
    // run moves the two who went quiet since.
    assert_eq!(
        recompute(&app.store, &config.lifecycle, now, WINDOW)
            .await
            .expect("recompute"),
        2
    );
    for (stage, n) in [
        ("new", 1),
        ("active", 1),
        ("silent", 1),
        ("lapsed", 1),
        ("returned", 0),
    ] {
        assert_eq!(
            count(&app, &config, &format!("stage:{stage}"), now).await,
            n,
            "{stage}"
        );
    }
    assert_eq!(
        recompute(&app.store, &config.lifecycle, now, WINDOW)
            .await
            .expect("again"),
        0,
        "nothing changed"
    );

    // The same through the ops API, with a bad segment answered by position.
    let get = |q: &str| {
        app.client
            .get(app.url(&format!("/api/v1/members/{SCOPE}")))
            .query(&[("segment", q)])
            .bearer_auth("ops-token-0123456789")
            .send()
    };
    let body: serde_json::Value = get("stage:lapsed or stage:silent")
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(body["count"], 2, "{body}");
    assert_eq!(body["members"], serde_json::json!(["old", "quiet"]));
    let bad = get("stage:lapsed and").await.expect("get");
    assert_eq!(bad.status(), 400);
    let body: serde_json::Value = bad.json().await.expect("json");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("at character 17")),
        "{body}"
    );

    // The lapsed member comes back: the message itself makes them "returned".
    app.robot_say("old", Some("g"), "我回来了", "b1").await;
    assert_eq!(
        recompute(&app.store, &config.lifecycle, now + 1, WINDOW)
            .await
            .expect("recompute"),
        0
    );
    assert_eq!(
        count(&app, &config, "stage:returned and not stage:lapsed", now).await,
        1
    );
    // Value layers: everyone is scored and the distribution adds up.
    let tz = config.timezone();
    let day = |ms: i64| yunying::members::local_day(tz, ms / 1000);
    let days = (day(now - 29 * DAY), day(now));
    let layers = &config.value_layers;
    let recompute_layers =
        || yunying::members::layers::recompute(&app.store, layers, now, days, WINDOW);
    assert_eq!(recompute_layers().await.expect("layers"), 4);
    assert_eq!(
        recompute_layers().await.expect("again"),
        0,
        "unchanged layers are not written again"
    );
    let layers: serde_json::Value = app
        .client
        .get(app.url(&format!("/api/v1/layers/{SCOPE}")))
        .bearer_auth("ops-token-0123456789")
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    let rows = layers["layers"].as_array().expect("layers");
    let total: i64 = rows.iter().map(|l| l["count"].as_i64().unwrap_or(0)).sum();
    assert_eq!(total, 4, "{layers}");
    // The long-gone member with no points sleeps; nobody here is a core member yet.
    assert!(rows.iter().any(|l| l["layer"] == "沉睡"), "{layers}");
    assert!(rows.iter().all(|l| l["layer"] != "核心"), "{layers}");

    let history = app
        .store
        .stage_history(SCOPE, "old")
        .await
        .expect("history");
    let steps: Vec<(Option<&str>, &str)> = history
        .iter()
        .map(|(f, t, _)| (f.as_deref(), t.as_str()))
        .collect();
    assert_eq!(
        steps,
        vec![
            (None, "new"),
            (Some("new"), "lapsed"),
            (Some("lapsed"), "returned")
        ]
    );
}

/// Forty new members write at once: their first stages go out together (in the group commit on
/// SQLite, in one round on PostgreSQL), and each member gets exactly one stage and one history row.
async fn first_stages_of_many_members_arriving_together_are_each_recorded_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let users: Vec<String> = (0..40).map(|i| format!("n{i:02}")).collect();
    let says = users.iter().enumerate().map(|(i, user)| {
        let msg_id = format!("first-{i}");
        let app = &app;
        async move { app.robot_say(user, Some("g"), "大家好", &msg_id).await }
    });
    futures_util::future::join_all(says).await;
    for user in &users {
        let history = app.store.stage_history(SCOPE, user).await.expect("history");
        assert_eq!(history.len(), 1, "{user}: {history:?}");
        assert_eq!(
            (history[0].0.as_deref(), history[0].1.as_str()),
            (None, "new")
        );
    }
    let config = Config::example().expect("config");
    assert_eq!(
        count(&app, &config, "stage:new", app.clock.now_ms()).await,
        40
    );
}

/// Two changes of one member in one write (two events of the same member in one batch): the
/// member ends on the later stage and both changes are in the history. PostgreSQL would refuse a
/// statement that updates the same stage row twice.
async fn several_changes_of_one_member_written_together_keep_the_last(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.robot_say("m", Some("g"), "大家好", "x1").await;
    let id = app
        .store
        .member(SCOPE, "m")
        .await
        .expect("read")
        .expect("member")
        .id;
    let now = app.clock.now_ms();
    let change = |from, to, at| yunying::store::lifecycle::StageChange {
        member_id: id,
        from,
        to,
        at,
    };
    let mut tx = app.store.begin_write().await.expect("begin");
    yunying::store::lifecycle::apply_many(
        &mut tx,
        &[
            change(Some("new"), "silent", now + 1),
            change(Some("silent"), "returned", now + 2),
        ],
    )
    .await
    .expect("apply");
    tx.commit().await.expect("commit");
    let history = app.store.stage_history(SCOPE, "m").await.expect("history");
    let stages: Vec<&str> = history.iter().map(|h| h.1.as_str()).collect();
    assert_eq!(stages, ["new", "silent", "returned"]);
    let config = Config::example().expect("config");
    assert_eq!(count(&app, &config, "stage:returned", now + 3).await, 1);
    assert_eq!(count(&app, &config, "stage:silent", now + 3).await, 0);
}

/// The shared read of stage inputs (many members, one query) gives what one read per member
/// gives, and leaves out members who are not in the registry.
async fn stage_inputs_read_together_match_those_read_one_by_one(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.robot_say("a", Some("g1"), "大家好", "r1").await;
    app.robot_say("b", None, "你好", "r2").await;
    app.robot_say("a", Some("g2"), "又来了", "r3").await;
    let users: Vec<String> = ["a", "b", "nobody"].map(String::from).to_vec();
    let mut together = app
        .store
        .stage_inputs_of(SCOPE, &users)
        .await
        .expect("together");
    together.sort_by(|x, y| x.0.cmp(&y.0));
    let mut one_by_one = Vec::new();
    for user in &users {
        let alone = std::slice::from_ref(user);
        one_by_one.extend(app.store.stage_inputs_of(SCOPE, alone).await.expect("one"));
    }
    assert_eq!(together, one_by_one);
    assert_eq!(together.len(), 2, "{together:?}");
    assert_eq!(together[0].2.groups_now, 2, "a is in two groups");
}

/// A member's first group message creates them with their first stage. On PostgreSQL the stage
/// is written by the commit that creates the member, so it is there when the callback is answered
/// and the stage check after it neither reads nor writes; on SQLite that check writes it inside
/// the next group commit. Either way one stage and one history row, also for a first message
/// outside any group (always left to the check).
async fn a_member_created_by_a_group_message_gets_one_first_stage(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let in_group = Simulated::Text {
        from: "fresh".into(),
        name: None,
        group: Some("g".into()),
        text: "大家好".into(),
        msg_id: "fresh-1".into(),
    };
    let response = app
        .post_unsettled("demo_robot", &app.build("demo_robot", &in_group))
        .await;
    assert_eq!(response.status(), 200);
    if backend == Backend::Postgres {
        let history = app
            .store
            .stage_history(SCOPE, "fresh")
            .await
            .expect("history");
        assert_eq!(history.len(), 1, "{history:?}");
        assert_eq!(
            (history[0].0.as_deref(), history[0].1.as_str()),
            (None, "new")
        );
    }
    let alone = Simulated::Text {
        from: "solo".into(),
        name: None,
        group: None,
        text: "你好".into(),
        msg_id: "solo-1".into(),
    };
    app.post("demo_app", &app.build("demo_app", &alone)).await;
    app.robot_say("fresh", Some("g"), "又来了", "fresh-2").await;
    app.settle().await;
    for user in ["fresh", "solo"] {
        let history = app.store.stage_history(SCOPE, user).await.expect("history");
        assert_eq!(history.len(), 1, "{user}: {history:?}");
        assert_eq!(
            (history[0].0.as_deref(), history[0].1.as_str()),
            (None, "new"),
            "{user}"
        );
    }
}
