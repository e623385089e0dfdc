//! Automatic tagging through the real server: a keyword rule tags the sender once (however often
//! they ask), a regex rule and a removal work, and every application is logged with the rule id.

use yunying::config::TagRuleConfig;
use yunying::on_pool;

use crate::backend_tests;
use crate::helpers::{Backend, TestApp};

backend_tests!(rules_tag_members_once_and_log_it);

const SCOPE: &str = "wwdemo0000000001";

async fn rules_tag_members_once_and_log_it(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.tag_rules.push(TagRuleConfig {
            id: "bought".into(),
            when: "regex".into(),
            pattern: r"已(下单|付款)".into(),
            add: vec!["已购".into()],
            remove: vec!["意向".into()],
        });
    })
    .await;
    app.robot_say("u1", Some("g"), "会员多少钱？", "t1").await;
    app.robot_say("u1", Some("g"), "价格能便宜点吗", "t2").await;
    assert_eq!(
        app.store.tags_of(SCOPE, "u1").await.expect("tags"),
        vec!["意向".to_owned()]
    );
    app.robot_say("u1", Some("g"), "我已付款了", "t3").await;
    assert_eq!(
        app.store.tags_of(SCOPE, "u1").await.expect("tags"),
        vec!["已购".to_owned()]
    );
    assert!(app
        .store
        .tags_of(SCOPE, "u2")
        .await
        .expect("tags")
        .is_empty());

    let log: Vec<(String, String, String)> = on_pool!(app.store.pool(), p => sqlx::query_as(
        "select l.action, t.name, l.set_by from member_tag_log l join tags t on t.id = l.tag_id order by l.id")
        .fetch_all(p).await.expect("log"));
    let expected = [
        ("add", "意向", "rule:intent"),
        ("add", "已购", "rule:bought"),
        ("remove", "意向", "rule:bought"),
    ];
    let log: Vec<(&str, &str, &str)> = log
        .iter()
        .map(|(a, t, b)| (a.as_str(), t.as_str(), b.as_str()))
        .collect();
    assert_eq!(log, expected);
}
