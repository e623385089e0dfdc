//! The member registry: joins, leaves, activity days in the configured zone.

use yunying::clock::Clock as _;
use yunying::send::Simulated;

use crate::backend_tests;
use crate::helpers::{Backend, TestApp};

backend_tests!(
    joins_and_messages_build_the_registry,
    activity_day_follows_the_community_time_zone,
    groups_take_new_names_and_note_activity_once_a_minute
);

async fn joins_and_messages_build_the_registry(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let join = app.build(
        "demo_app",
        &Simulated::Join {
            group: "wrGroup1".into(),
            members: vec!["wmA".into(), "wmB".into()],
        },
    );
    assert_eq!(app.post("demo_app", &join).await.status(), 200);
    assert_eq!(
        app.store
            .group_member_ids("wwdemo0000000001", "wrGroup1")
            .await
            .expect("q"),
        vec!["wmA", "wmB"]
    );

    // A leave event (old comma-separated list encoding) removes one of them.
    let ts = app.clock.now_ms() / 1000 + 1;
    let leave = format!(
        "<xml><ToUserName>wwdemo0000000001</ToUserName><FromUserName>sys</FromUserName><CreateTime>{ts}</CreateTime><MsgType>event</MsgType><Event>change_external_chat</Event><ChatId>wrGroup1</ChatId><ChangeType>update</ChangeType><UpdateDetail>del_member</UpdateDetail><QuitScene>0</QuitScene><MemChangeList><![CDATA[wmA]]></MemChangeList></xml>"
    );
    let request =
        yunying::send::build_request(app.channel("demo_app"), &leave, ts, "n").expect("request");
    assert_eq!(app.post("demo_app", &request).await.status(), 200);
    assert_eq!(
        app.store
            .group_member_ids("wwdemo0000000001", "wrGroup1")
            .await
            .expect("q"),
        vec!["wmB"]
    );

    // Gateway members carry display names.
    let what = Simulated::Text {
        from: "wxid_1".into(),
        name: Some("小王".into()),
        group: Some("g1".into()),
        text: "hi".into(),
        msg_id: "1".into(),
    };
    assert_eq!(
        app.post("demo_gateway", &app.build("demo_gateway", &what))
            .await
            .status(),
        200
    );
    let member = app
        .store
        .member("demo_gateway", "wxid_1")
        .await
        .expect("q")
        .expect("member");
    assert_eq!(member.display_name.as_deref(), Some("小王"));
    assert_eq!(member.message_count, 1);
    assert_eq!(app.store.member_count().await.expect("count"), 3);
}

async fn activity_day_follows_the_community_time_zone(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // 2024-01-01 16:30 UTC = 2024-01-02 00:30 in Asia/Shanghai (the default zone).
    app.clock.set_ms(1_704_126_600_000);
    app.send_text("demo_app", "night_owl", None, "晚安", "n1")
        .await;
    assert_eq!(
        app.store
            .member_messages_on("wwdemo0000000001", "night_owl", 20240102)
            .await
            .expect("q"),
        1
    );
    assert_eq!(
        app.store
            .member_messages_on("wwdemo0000000001", "night_owl", 20240101)
            .await
            .expect("q"),
        0
    );
    assert_eq!(
        app.store
            .active_members_between(20240102, 20240102)
            .await
            .expect("dau"),
        1
    );
}

/// A gateway message in group `g1`, with the group's name when given.
async fn say_in_named_group(app: &TestApp, name: Option<&str>, msg_id: &str) {
    let channel = app.channel("demo_gateway");
    let ts = app.clock.now_ms() / 1000;
    let inner = serde_json::json!({
        "type": "message", "msg_id": msg_id, "sender": { "id": "m1", "name": "小明" },
        "group": { "id": "g1", "name": name }, "text": "大家好", "mentions_bot": false, "time": ts,
    })
    .to_string();
    let request = yunying::send::build_request(channel, &inner, ts, msg_id).expect("request");
    assert_eq!(app.post("demo_gateway", &request).await.status(), 200);
}

/// (name, last active) of group `g1`.
async fn group_row(app: &TestApp) -> (Option<String>, i64) {
    let scope = app.channel("demo_gateway").scope.clone();
    yunying::on_pool!(app.store.pool(), p => sqlx::query_as::<_, (Option<String>, i64)>(
        "select name, last_active_at from chat_groups where scope = $1 and platform_group_id = 'g1'")
        .bind(&scope).fetch_one(p).await.expect("group row"))
}

async fn groups_take_new_names_and_note_activity_once_a_minute(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let start = app.clock.now_ms() / 1000 * 1000;
    say_in_named_group(&app, Some("产品交流群"), "n1").await;
    assert_eq!(group_row(&app).await, (Some("产品交流群".into()), start));

    // A new name is taken at once, with the time.
    app.clock.advance_ms(10_000);
    say_in_named_group(&app, Some("产品交流群（新）"), "n2").await;
    assert_eq!(
        group_row(&app).await,
        (Some("产品交流群（新）".into()), start + 10_000)
    );

    // No name and less than a minute later: the row is left alone.
    app.clock.advance_ms(20_000);
    say_in_named_group(&app, None, "n3").await;
    assert_eq!(
        group_row(&app).await,
        (Some("产品交流群（新）".into()), start + 10_000)
    );

    // More than a minute after the last time written: the time moves, the name stays.
    app.clock.advance_ms(45_000);
    say_in_named_group(&app, None, "n4").await;
    assert_eq!(
        group_row(&app).await,
        (Some("产品交流群（新）".into()), start + 75_000)
    );
    app.stop().await;
}
