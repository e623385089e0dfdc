//! The member registry: joins, leaves, activity days in the configured zone.

use yunying::clock::Clock as _;
use yunying::send::Simulated;

use crate::backend_tests;
use crate::helpers::{Backend, TestApp};

backend_tests!(
    joins_and_messages_build_the_registry,
    activity_day_follows_the_community_time_zone
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
